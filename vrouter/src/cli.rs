//! Command-line interface: `run`, the lab, and views in the spirit of the Tungsten
//! Fabric tools (`vif`, `rt`, `nh`, `dropstats`) that talk to a running vrouter.

use crate::api::{
    ApiClient, DropStatsView, FlowFilter, FlowStatsView, FlowView, InterfaceView, NextHopView, Request, RouteView,
    StatusView,
};
use crate::config::Config;
use crate::run::Overrides;
use clap::{Parser, Subcommand};
use control_client::{InterfaceSpec, RouteSpec, RouteTarget};
use ipnet::IpNet;
use nexthop::{MacAddr, NextHop};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// Default API socket.
pub const DEFAULT_API_SOCKET: &str = "/run/vrouter/api.sock";

/// vrouter: a userspace AF_XDP virtual router for Kubernetes (Tungsten Fabric / OpenSDN style).
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The running vrouter's API socket (for the view and change commands).
    #[arg(long, global = true, env = "VROUTER_API_SOCKET")]
    pub api_socket: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the vrouter (forwarding workers + control thread) until SIGTERM/SIGINT.
    Run {
        /// The TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
        /// Values overriding the file.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Check a configuration file and print the cores it resolves to.
    CheckConfig {
        /// The TOML configuration.
        config: PathBuf,
    },
    /// Interfaces (vifs).
    Vif {
        /// list, add or delete.
        #[command(subcommand)]
        action: VifAction,
    },
    /// Routes.
    Rt {
        /// list, add or delete.
        #[command(subcommand)]
        action: RtAction,
    },
    /// Next hops.
    Nh,
    /// Flows.
    Flow {
        /// list, stats or rate.
        #[command(subcommand)]
        action: FlowCommand,
    },
    /// Drops by reason, summed over workers.
    Dropstats,
    /// Process status.
    Status,
    /// Build a node of network namespaces with pods on a real vrouter, run ping, TCP
    /// and UDP between them, print what happened, and remove everything.
    Lab(crate::lab::LabOptions),
}

/// `vif` actions.
#[derive(Debug, Subcommand)]
pub enum VifAction {
    /// Every interface with its counters.
    List,
    /// Attach a pod interface (the host end of its veth).
    Add {
        /// Interface name.
        name: String,
        /// VRF (virtual network routing instance).
        #[arg(long)]
        vrf: String,
        /// The pod's MAC.
        #[arg(long)]
        mac: MacAddr,
        /// The pod's IPv4 address.
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// The pod's IPv6 address.
        #[arg(long)]
        ip6: Option<Ipv6Addr>,
        /// The pod's IPv4 gateway.
        #[arg(long)]
        gateway: Option<Ipv4Addr>,
        /// The pod's IPv6 gateway.
        #[arg(long)]
        gateway6: Option<Ipv6Addr>,
    },
    /// Detach an interface.
    Delete {
        /// Interface name.
        name: String,
    },
}

/// `flow` actions.
#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Flows, optionally matching a filter (Tungsten's `flow -l` and `flow --match`).
    List {
        /// What to match.
        #[command(flatten)]
        filter: FlowFilter,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Table statistics: capacity, active, created, aged, refused, memory.
    Stats,
    /// Flow setup rate once a second (Tungsten's `flow -r`).
    Rate {
        /// For this many seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
    },
}

/// `rt` actions.
#[derive(Debug, Subcommand)]
pub enum RtAction {
    /// Routes of one VRF or all.
    List {
        /// Only this VRF.
        #[arg(long)]
        vrf: Option<String>,
    },
    /// Add a route to a local interface or a discard route.
    Add {
        /// VRF.
        #[arg(long)]
        vrf: String,
        /// Destination prefix.
        prefix: IpNet,
        /// Send to this interface.
        #[arg(long, conflicts_with = "discard", required_unless_present = "discard")]
        interface: Option<String>,
        /// Drop (blackhole).
        #[arg(long)]
        discard: bool,
    },
    /// Remove a route.
    Delete {
        /// VRF.
        #[arg(long)]
        vrf: String,
        /// Destination prefix.
        prefix: IpNet,
    },
}

fn print<T: serde::Serialize>(json: bool, value: &T, table: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table(value);
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// Runs an API command against the vrouter at `socket`.
pub fn api_command(socket: &std::path::Path, json: bool, command: Command) -> anyhow::Result<()> {
    let api = ApiClient::new(socket);
    match command {
        Command::Vif {
            action: VifAction::List,
        } => {
            let list: Vec<InterfaceView> = api.call(&Request::Interfaces)?;
            print(json, &list, |list| {
                println!(
                    "{:<5} {:<15} {:<6} {:<12} {:<17} {:<15} {:>10} {:>10} {:>8}",
                    "vif", "name", "kind", "vrf", "mac", "ipv4", "rx_pkts", "tx_pkts", "drops"
                );
                for i in list {
                    println!(
                        "{:<5} {:<15} {:<6} {:<12} {:<17} {:<15} {:>10} {:>10} {:>8}",
                        i.vif,
                        i.name,
                        format!("{:?}", i.kind).to_lowercase(),
                        i.vrf,
                        i.mac.to_string(),
                        opt(&i.ipv4),
                        i.counters.rx_packets,
                        i.counters.tx_packets,
                        i.counters.drops
                    );
                    if let Some(v6) = i.ipv6 {
                        println!("{:<5} {:<15} ipv6 {v6} gateway6 {}", "", "", opt(&i.gateway6));
                    }
                }
            })
        }
        Command::Vif {
            action:
                VifAction::Add {
                    name,
                    vrf,
                    mac,
                    ip,
                    ip6,
                    gateway,
                    gateway6,
                },
        } => {
            let spec = InterfaceSpec {
                name: name.clone(),
                vrf,
                mac,
                ipv4: ip,
                ipv6: ip6,
                gateway4: gateway,
                gateway6,
            };
            let answer: serde_json::Value = api.call(&Request::AddInterface { spec })?;
            print(json, &answer, |a| println!("{name} attached as vif {}", a["vif"]))
        }
        Command::Vif {
            action: VifAction::Delete { name },
        } => {
            let _: serde_json::Value = api.call(&Request::RemoveInterface { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| println!("{name} detached"))
        }
        Command::Rt {
            action: RtAction::List { vrf },
        } => {
            let routes: Vec<RouteView> = api.call(&Request::Routes { vrf })?;
            print(json, &routes, |routes| {
                println!("{:<16} {:<44} {:>4}", "vrf", "prefix", "nh");
                for r in routes {
                    println!("{:<16} {:<44} {:>4}", r.vrf, r.prefix.to_string(), r.nh);
                }
            })
        }
        Command::Rt {
            action:
                RtAction::Add {
                    vrf,
                    prefix,
                    interface,
                    discard: _,
                },
        } => {
            let target = match interface {
                Some(name) => RouteTarget::Interface { name },
                None => RouteTarget::Discard,
            };
            let _: serde_json::Value = api.call(&Request::AddRoute {
                route: RouteSpec { vrf, prefix, target },
            })?;
            print(json, &serde_json::Value::Null, |_| println!("route {prefix} added"))
        }
        Command::Rt {
            action: RtAction::Delete { vrf, prefix },
        } => {
            let _: serde_json::Value = api.call(&Request::RemoveRoute { vrf, prefix })?;
            print(json, &serde_json::Value::Null, |_| println!("route {prefix} removed"))
        }
        Command::Nh => {
            let nhs: Vec<NextHopView> = api.call(&Request::NextHops)?;
            print(json, &nhs, |nhs| {
                println!("{:>4} {:<8} {:>6}  detail", "id", "type", "routes");
                for n in nhs {
                    let detail = match n.nexthop {
                        NextHop::Interface { vif, dst_mac } => {
                            format!("vif {vif} dst_mac {dst_mac}")
                        }
                        _ => String::new(),
                    };
                    println!("{:>4} {:<8} {:>6}  {detail}", n.id, n.nexthop.kind(), n.routes);
                }
            })
        }
        Command::Flow {
            action: FlowCommand::List { filter, limit },
        } => {
            let flows: Vec<FlowView> = api.call(&Request::Flows { filter, limit })?;
            print(json, &flows, |flows| {
                println!(
                    "{:>8} {:>8} {:<10} {:<40} {:>5} {:<26} {:>10} {:>12} {:>6}",
                    "index", "reverse", "vrf", "flow", "proto", "action", "packets", "bytes", "idle"
                );
                for f in flows {
                    let tuple = format!("{}:{} > {}:{}", f.src, f.src_port, f.dst, f.dst_port);
                    let reverse = f.reverse.map_or_else(|| "-".into(), |r| r.to_string());
                    let stale = if f.stale { " (stale)" } else { "" };
                    println!(
                        "{:>8} {:>8} {:<10} {:<40} {:>5} {:<26} {:>10} {:>12} {:>5}s",
                        f.index,
                        reverse,
                        f.vrf,
                        tuple,
                        f.proto,
                        format!("{}{stale}", f.action),
                        f.packets,
                        f.bytes,
                        f.idle_secs
                    );
                }
            })
        }
        Command::Flow {
            action: FlowCommand::Stats,
        } => {
            let s: FlowStatsView = api.call(&Request::FlowStats)?;
            print(json, &s, |s| {
                println!("capacity (entries)        {}", s.capacity);
                println!("active entries            {}", s.active_entries);
                println!("created entries           {}", s.created_entries);
                println!("deleted entries           {}", s.deleted_entries);
                println!("aged flows                {}", s.aged_flows);
                println!("refused: table full       {}", s.refused_table_full);
                println!("refused: interface limit  {}", s.refused_interface_limit);
                println!(
                    "memory                    {} MiB ({} B per entry)",
                    s.memory_bytes >> 20,
                    s.memory_bytes / s.capacity.max(1)
                );
            })
        }
        Command::Flow {
            action: FlowCommand::Rate { seconds },
        } => {
            let _: FlowStatsView = api.call(&Request::FlowStats)?;
            for _ in 0..seconds {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let s: FlowStatsView = api.call(&Request::FlowStats)?;
                print(json, &s, |s| {
                    println!(
                        "{:>10.0} flows/s set up, {} entries active",
                        s.setup_rate_per_sec, s.active_entries
                    )
                })?;
            }
            Ok(())
        }
        Command::Dropstats => {
            let d: DropStatsView = api.call(&Request::DropStats)?;
            print(json, &d, |d| {
                for (label, n) in &d.reasons {
                    println!("{label:<24} {n:>12}");
                }
                println!("{:<24} {:>12}", "icmp_errors_sent", d.icmp_errors_sent);
                println!("{:<24} {:>12}", "icmp_errors_suppressed", d.icmp_errors_suppressed);
            })
        }
        Command::Status => {
            let s: StatusView = api.call(&Request::Status)?;
            print(json, &s, |s| {
                println!("generation        {}", s.generation);
                println!("forwarding cores  {:?}", s.forwarding_cores);
                println!("interfaces        {}", s.interfaces);
                println!("vrfs              {}", s.vrfs);
                println!(
                    "{:>6} {:>5} {:>12} {:>12} {:>12} {:>12} {:>10}",
                    "worker", "core", "busy_loops", "idle_loops", "rx_pkts", "tx_pkts", "drops"
                );
                for w in &s.workers {
                    println!(
                        "{:>6} {:>5} {:>12} {:>12} {:>12} {:>12} {:>10}",
                        w.index, w.core, w.busy_loops, w.idle_loops, w.rx_packets, w.tx_packets, w.drops
                    );
                }
            })
        }
        Command::Run { .. } | Command::CheckConfig { .. } | Command::Lab(_) => {
            anyhow::bail!("not an API command")
        }
    }
}

/// `check-config`: parse, validate, print the resolved cores.
pub fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let cores = config.validate(&crate::run::available_cores())?;
    println!(
        "{}: ok (forwarding cores {:?}, control cores {:?})",
        path.display(),
        cores.forwarding,
        cores.control
    );
    Ok(())
}
