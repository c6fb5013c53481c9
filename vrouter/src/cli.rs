//! Command-line interface for the operator: `run`, `check-config`, and views and
//! changes in the spirit of the Tungsten Fabric tools (`vif`, `rt`, `nh`, `flow`,
//! `dropstats`) that talk to a running vrouter. (The measurement tools are
//! `vrouter-lab`'s.)

use crate::api::{
    ApiClient, DropStatsView, FlowFilter, FlowStatsView, FlowView, InterfaceView, NextHopView, Request, RouteView,
    ServiceView, StatusView,
};
use crate::config::Config;
use crate::run::Overrides;
use clap::{CommandFactory, Parser, Subcommand};
use control_client::{InterfaceSpec, RouteSpec, RouteTarget};
use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::{MacAddr, NextHop};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

mod apply;
mod apply_chains;
mod capture;
mod chain;
mod ingress;
mod policy;
mod top;
mod views;
pub use chain::ChainAction;
pub use ingress::IngressAction;
pub use policy::PolicyAction;
pub use views::api_command;

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

/// The command line's definition (for checking documented commands against it).
pub fn command() -> clap::Command {
    Cli::command()
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
    /// The MPLS label table: label -> next hop (a local interface keeps its label for its lifetime, across restarts).
    Mpls,
    /// Traffic per remote node (tunnel endpoint): packets and bytes each way.
    Tunnel,
    /// The channels to control nodes: up or down, since when, counters, last error, and the latest stanzas.
    Xmpp,
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
    /// The configuration from the control node: its server, objects, and the bound ports (attached, or what they wait for).
    Config,
    /// Fabric source NAT: the node's address, the port ranges, connections and ports in use, the busiest destination, refusals.
    Snat,
    /// Services (native load balancers): list, add or replace, delete.
    Service {
        /// list, add or delete.
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Floating IPs (1:1 NAT of a pod's address into another VRF): list, add or replace, delete.
    Fip {
        /// list, add or delete.
        #[command(subcommand)]
        action: FipAction,
    },
    /// Service chains (traffic between two networks through a service instance): list, add or replace, delete.
    Chain {
        /// list, add or delete.
        #[command(subcommand)]
        action: ChainAction,
    },
    /// Ingresses (haproxy load balancers, active-standby): list, delete.
    Ingress {
        /// list or delete.
        #[command(subcommand)]
        action: IngressAction,
    },
    /// Network policies (selectors resolved to addresses): list, add or replace, delete.
    Policy {
        /// list, add or delete.
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Apply Kubernetes manifests (a YAML file or a directory of them: Namespaces,
    /// Pods, Services, Endpoints, EndpointSlices, NetworkPolicies): their services and
    /// network policies are added or replaced, and this node's isolated pods get their
    /// floating IPs.
    Apply {
        /// The manifests and how to translate them.
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Also remove the services, ingresses, policies and floating IPs named
        /// namespace/name that the manifests no longer define.
        #[arg(long)]
        prune: bool,
        /// Print the translation (networks, pod placement, services, policies,
        /// floating IPs, warnings) as JSON instead of applying it.
        #[arg(long)]
        dry_run: bool,
        /// Also write the services' DNS names (`<service>.<namespace>.svc.cluster.local`
        /// and its ClusterIP, a line each) to this hosts file, for kube-dns (dnsmasq's
        /// `--addn-hosts`; it rereads the file on SIGHUP). Written even with --dry-run.
        #[arg(long, value_name = "FILE")]
        dns_hosts: Option<PathBuf>,
    },
    /// Remove the services, ingresses, network policies and floating IPs Kubernetes
    /// manifests define.
    Delete {
        /// The manifests and how they were translated.
        #[command(flatten)]
        manifests: ManifestArgs,
    },
    /// Process status.
    Status,
    /// Capture an interface's packets as the vrouter sees them (Tungsten's vifdump):
    /// received, dropped with the reason, and sent after rewrite, as pcapng.
    Capture(capture::CaptureArgs),
    /// A live view: per-worker load, per-interface packet, bit and drop rates, drops
    /// by reason, flow setups; refreshed until q (on a terminal).
    Top {
        /// Seconds between refreshes (0.1..=3600).
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print this many frames and exit, as `top -b -n` (the default off a terminal: 1).
        #[arg(long)]
        iterations: Option<u32>,
    },
}

/// A service port on the command line: `PROTOCOL:PORT:TARGET_PORT[:NODE_PORT]`
/// (`tcp:80:9376`, `tcp:80:9376:30080`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortArg(pub control_client::ServicePort);

impl std::str::FromStr for PortArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (protocol, port, target, node_port) = match parts.as_slice() {
            [protocol, port, target] => (protocol, port, target, None),
            [protocol, port, target, node_port] => (protocol, port, target, Some(node_port)),
            _ => {
                return Err(format!(
                    "{s:?}: PROTOCOL:PORT:TARGET_PORT[:NODE_PORT], e.g. tcp:80:9376 or tcp:80:9376:30080"
                ))
            }
        };
        let number = |p: &str| p.parse::<u16>().map_err(|e| format!("{s:?}: {p}: {e}"));
        Ok(PortArg(control_client::ServicePort {
            protocol: protocol.parse()?,
            port: number(port)?,
            target_port: number(target)?,
            node_port: node_port.map(|p| number(p)).transpose()?,
        }))
    }
}

/// Kubernetes manifests on the command line, and the translation's settings.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// The file or directory.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// The shared network's name (kube-manager's cluster network).
    #[arg(long, default_value = "cluster-network")]
    pub cluster_network: String,
    /// Where isolated namespaces' pods get their egress-only floating IPs in the
    /// cluster network (an IPv4 prefix); unset: they get none.
    #[arg(long, value_name = "CIDR")]
    pub floating_pool: Option<String>,
}

/// `service` actions.
#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Every service port with its backends.
    List,
    /// Add a service, or replace the one of that name (its backends changed).
    Add {
        /// Its name (Kubernetes: namespace/name).
        name: String,
        /// The VRF it is in.
        #[arg(long)]
        vrf: String,
        /// The service address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// A port: PROTOCOL:PORT:TARGET_PORT, or PROTOCOL:PORT:TARGET_PORT:NODE_PORT (tcp or udp; with a node
        /// port, reached from outside the cluster on the node's fabric address);
        /// repeat for more.
        #[arg(long = "port", required = true)]
        ports: Vec<PortArg>,
        /// A backend's address; repeat for more (none: connections are refused).
        #[arg(long = "backend")]
        backends: Vec<std::net::IpAddr>,
        /// An external (or load-balancer) IP the service's ports are reached on from
        /// outside the cluster; repeat for more.
        #[arg(long = "external-ip")]
        external_ips: Vec<std::net::IpAddr>,
        /// A LoadBalancer service: it gets an external IP from host.load_balancer_pool
        /// (unless one of --external-ip is in the pool).
        #[arg(long)]
        load_balancer: bool,
        /// Client-address affinity (Kubernetes' sessionAffinity: ClientIP): a
        /// client's new connections go to its last backend for this many seconds.
        #[arg(long, value_name = "SECS")]
        affinity_timeout: Option<u32>,
        /// Probe the backends: tcp (a connection is accepted), http (a GET is
        /// answered 2xx or 3xx) or icmp (an echo is answered); a failing backend is taken out of the group, and
        /// put back when it answers again (needs the host section of the configuration).
        #[arg(long, value_name = "KIND", value_parser = ["tcp", "http", "icmp"])]
        health_check: Option<String>,
        /// The path an http probe gets.
        #[arg(long, value_name = "PATH", default_value = "/")]
        health_path: String,
        /// The port probed (default: the first TCP port's target port).
        #[arg(long, value_name = "PORT")]
        health_port: Option<u16>,
        /// Seconds between probes of a backend.
        #[arg(long, value_name = "SECS", default_value_t = 5)]
        health_interval: u32,
        /// Seconds a probe waits for its answer.
        #[arg(long, value_name = "SECS", default_value_t = 2)]
        health_timeout: u32,
        /// Probes failed in a row that take a backend out.
        #[arg(long, value_name = "N", default_value_t = 3)]
        health_retries: u32,
    },
    /// Remove a service.
    Delete {
        /// Its name.
        name: String,
    },
}

/// `fip` actions.
#[derive(Debug, Subcommand)]
pub enum FipAction {
    /// Floating IPs in force (their interface attached).
    List,
    /// Give a pod interface a floating IP, or replace the one of that name.
    Add {
        /// Its name.
        name: String,
        /// The VRF the floating address is in.
        #[arg(long)]
        vrf: String,
        /// The floating address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// The pod interface it is given to.
        #[arg(long)]
        interface: String,
        /// Only for the pod's own connections out: connections to the floating
        /// address are refused (an isolated namespace's pod in the cluster network).
        #[arg(long)]
        egress_only: bool,
    },
    /// Remove a floating IP.
    Delete {
        /// Its name.
        name: String,
    },
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
        /// A further source prefix the pod may send from (allowed address pair);
        /// repeat for more.
        #[arg(long = "allow-source")]
        allow_source: Vec<ipnet::IpNet>,
        /// The pod interface's MTU (default: the host end's MTU, or the parent's).
        #[arg(long)]
        mtu: Option<u16>,
        /// Nested mode: a VLAN sub-interface of this attached port (with --vlan); the
        /// name is then the sub-interface's own, not a Linux interface.
        #[arg(long, requires = "vlan")]
        parent: Option<String>,
        /// The sub-interface's 802.1Q VLAN id on its parent (1..=4094).
        #[arg(long, requires = "parent")]
        vlan: Option<u16>,
        /// The BGP local preference its address is advertised with (default 100):
        /// of several nodes holding one address, the highest preference takes the
        /// traffic (an active instance 200, its standby 100).
        #[arg(long = "local-preference")]
        local_preference: Option<u32>,
    },
    /// Bind a pod interface to a virtual machine interface of the control node's
    /// configuration: it is attached (VRF, MAC, addresses, gateway, VLAN) as that
    /// configuration says, and kept in step with it.
    Bind {
        /// Interface name (the host end of the pod's veth).
        name: String,
        /// The virtual machine interface's UUID.
        #[arg(long)]
        vmi: control_client::contrail::Uuid,
        /// The virtual machine's (pod's) UUID: its configuration is subscribed.
        #[arg(long)]
        vm: Option<control_client::contrail::Uuid>,
        /// The pod interface's MTU (default: the host end's MTU).
        #[arg(long)]
        mtu: Option<u16>,
    },
    /// Detach an interface (and forget its binding, if bound).
    Delete {
        /// Interface name.
        name: String,
    },
}

/// Which flows to list; unset fields match everything.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FlowMatch {
    /// VRF name.
    #[arg(long)]
    pub vrf: Option<String>,
    /// Source or destination address.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// Source address.
    #[arg(long)]
    pub src: Option<std::net::IpAddr>,
    /// Destination address.
    #[arg(long)]
    pub dst: Option<std::net::IpAddr>,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    #[arg(long)]
    pub proto: Option<u8>,
    /// Source or destination port.
    #[arg(long)]
    pub port: Option<u16>,
}

impl From<FlowMatch> for FlowFilter {
    fn from(m: FlowMatch) -> Self {
        FlowFilter {
            vrf: m.vrf,
            ip: m.ip,
            src: m.src,
            dst: m.dst,
            proto: m.proto,
            port: m.port,
        }
    }
}

/// `flow` actions.
#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Flows, optionally matching a filter (Tungsten's `flow -l` and `flow --match`).
    List {
        /// What to match.
        #[command(flatten)]
        filter: FlowMatch,
        /// At most this many (at most 10000 per answer).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start at this entry index (the next page: the last index listed, plus one).
        #[arg(long, default_value_t = 0)]
        from_index: u32,
    },
    /// Table statistics: capacity, active, created, aged, refused, memory.
    Stats,
    /// Flow setup rate once a second (Tungsten's `flow -r`).
    Rate {
        /// For this many seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
    },
    /// Flow records as JSON lines as they are made: each flow entry's creation (or
    /// denial), periodic records of long ones, and its end with why, its counts,
    /// translation and policy verdict.
    Watch {
        /// Start with the oldest records kept (default: only new ones).
        #[arg(long)]
        from_start: bool,
        /// Stop after this many records (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
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
        #[arg(long, group = "target", value_parser = parse_member_arg)]
        ecmp: Vec<RouteTarget>,
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
    s.parse()
}

fn parse_member_arg(text: &str) -> Result<RouteTarget, String> {
    parse_member(text).map_err(|e| format!("{e:#}"))
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
