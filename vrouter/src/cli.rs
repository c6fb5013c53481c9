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
use nexthop::encap::Encap;
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
    /// The MPLS label table: label -> next hop (labels of local interfaces are 16 + vif).
    Mpls,
    /// Traffic per remote node (tunnel endpoint): packets and bytes each way.
    Tunnel,
    /// VXLAN: the VNI table, or give a VRF its VNI.
    Vxlan {
        /// With --vrf and --vni: set; without: list.
        #[arg(long, requires = "vni")]
        vrf: Option<String>,
        /// The VNI (1..=16777215).
        #[arg(long, requires = "vrf")]
        vni: Option<u32>,
    },
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
    /// Add a route: to a local interface, a discard route, a tunnel to another node,
    /// or ECMP over several of those.
    Add {
        /// VRF.
        #[arg(long)]
        vrf: String,
        /// Destination prefix.
        prefix: IpNet,
        /// Send to this interface.
        #[arg(long, group = "target")]
        interface: Option<String>,
        /// Drop (blackhole).
        #[arg(long, group = "target")]
        discard: bool,
        /// Tunnel to this remote node's fabric address (with --label).
        #[arg(long, group = "target", requires = "label")]
        tunnel: Option<Ipv4Addr>,
        /// The MPLS label (or VNI) the remote advertised.
        #[arg(long)]
        label: Option<u32>,
        /// Encapsulations the remote accepts (comma separated: mplsoudp,mplsogre,vxlan).
        #[arg(long, value_delimiter = ',', value_parser = parse_encap)]
        encap: Vec<Encap>,
        /// The remote vrouter's MAC (inner destination of VXLAN).
        #[arg(long)]
        remote_mac: Option<MacAddr>,
        /// ECMP member, repeated: an interface name, or REMOTE/LABEL[/ENCAP[+ENCAP..]].
        #[arg(long, group = "target")]
        ecmp: Vec<String>,
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

fn parse_encap(s: &str) -> Result<Encap, String> {
    match s {
        "mplsoudp" => Ok(Encap::MplsOverUdp),
        "mplsogre" => Ok(Encap::MplsOverGre),
        "vxlan" => Ok(Encap::Vxlan),
        other => Err(format!("{other:?}: expected mplsoudp, mplsogre or vxlan")),
    }
}

/// Parses an ECMP member: an interface name, or `REMOTE/LABEL[/ENCAP[+ENCAP..]]`.
pub fn parse_member(text: &str) -> anyhow::Result<RouteTarget> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [name] => Ok(RouteTarget::Interface { name: name.to_string() }),
        [remote, label, rest @ ..] if rest.len() <= 1 => {
            let encaps = match rest.first() {
                Some(list) => list
                    .split('+')
                    .map(parse_encap)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| anyhow::anyhow!(e))?,
                None => Encap::DEFAULT_PRIORITY.to_vec(),
            };
            Ok(RouteTarget::Tunnel {
                remote: remote.parse()?,
                label: label.parse()?,
                encaps,
                mac: None,
            })
        }
        _ => anyhow::bail!("ECMP member {text:?}: an interface name or REMOTE/LABEL[/ENCAP]"),
    }
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
                    discard,
                    tunnel,
                    label,
                    encap,
                    remote_mac,
                    ecmp,
                },
        } => {
            let target = if let Some(name) = interface {
                RouteTarget::Interface { name }
            } else if let Some(remote) = tunnel {
                let encaps = if encap.is_empty() {
                    Encap::DEFAULT_PRIORITY.to_vec()
                } else {
                    encap
                };
                RouteTarget::Tunnel {
                    remote,
                    label: label.unwrap_or_default(),
                    encaps,
                    mac: remote_mac,
                }
            } else if !ecmp.is_empty() {
                RouteTarget::Ecmp {
                    members: ecmp.iter().map(|m| parse_member(m)).collect::<anyhow::Result<_>>()?,
                }
            } else if discard {
                RouteTarget::Discard
            } else {
                anyhow::bail!("give one of --interface, --discard, --tunnel or --ecmp");
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
        Command::Tunnel => {
            let t: Vec<crate::stats::TunnelTotals> = api.call(&Request::Tunnels)?;
            print(json, &t, |t| {
                println!(
                    "{:<16} {:>12} {:>14} {:>12} {:>14}",
                    "remote", "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes"
                );
                for r in t {
                    println!(
                        "{:<16} {:>12} {:>14} {:>12} {:>14}",
                        r.remote.to_string(),
                        r.tx_packets,
                        r.tx_bytes,
                        r.rx_packets,
                        r.rx_bytes
                    );
                }
            })
        }
        Command::Mpls => {
            let table: Vec<(u32, u32)> = api.call(&Request::Mpls)?;
            print(json, &table, |t| {
                println!("{:>8} {:>6}", "label", "nh");
                for (l, nh) in t {
                    println!("{l:>8} {nh:>6}");
                }
            })
        }
        Command::Vxlan {
            vrf: Some(vrf),
            vni: Some(vni),
        } => {
            let _: serde_json::Value = api.call(&Request::SetVrfVni { vrf: vrf.clone(), vni })?;
            print(json, &serde_json::Value::Null, |_| println!("VRF {vrf} has VNI {vni}"))
        }
        Command::Vxlan { .. } => {
            let table: Vec<(u32, String)> = api.call(&Request::Vxlan)?;
            print(json, &table, |t| {
                println!("{:>10} vrf", "vni");
                for (n, v) in t {
                    println!("{n:>10} {v}");
                }
            })
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
