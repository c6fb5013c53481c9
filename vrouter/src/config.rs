//! The vrouter's TOML configuration: parsing, defaults and validation.
//!
//! Every key is documented in the README. Unknown keys, malformed masks, cores that do
//! not exist and overlapping masks are rejected with an error naming the key.

use ipnet::Ipv4Net;
use nexthop::MacAddr;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A configuration error; `key` is the dotted TOML key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown / mistyped keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key and line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// A set of CPU cores, written as a hex mask (`"0x6"`, or the TOML integer `0x6`) or
/// a list (`"1-3,5"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoreMask(pub BTreeSet<usize>);

impl CoreMask {
    /// Parses `0x..` hex masks and `a-b,c` lists.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty core mask".into());
        }
        let mut cores = BTreeSet::new();
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            if hex.is_empty() || hex.len() > 32 {
                return Err(format!("{text:?} is not a hex mask of 1-128 bits"));
            }
            let bits = u128::from_str_radix(hex, 16).map_err(|_| format!("{text:?} is not a hex mask"))?;
            cores.extend((0..128).filter(|b| bits & (1u128 << b) != 0));
        } else {
            for part in t.split(',') {
                let part = part.trim();
                let num = |s: &str| {
                    s.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n < 4096)
                        .ok_or_else(|| format!("{s:?} in {text:?} is not a core number"))
                };
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (num(a)?, num(b)?);
                        if a > b {
                            return Err(format!("range {part:?} in {text:?} runs backwards"));
                        }
                        cores.extend(a..=b);
                    }
                    None => {
                        cores.insert(num(part)?);
                    }
                }
            }
        }
        if cores.is_empty() {
            return Err(format!("{text:?} selects no core"));
        }
        Ok(CoreMask(cores))
    }

    /// The cores, lowest first.
    pub fn cores(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().copied()
    }
}

impl std::fmt::Display for CoreMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(|c| c.to_string()).collect();
        f.write_str(&list.join(","))
    }
}

impl<'de> Deserialize<'de> for CoreMask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Bits(i64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Bits(b) if b > 0 => format!("0x{b:x}"),
            Raw::Bits(b) => return Err(serde::de::Error::custom(format!("mask {b} selects no core"))),
        };
        CoreMask::parse(&text).map_err(serde::de::Error::custom)
    }
}

pub use xsk::XdpMode;

/// How idle workers wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin on the rings (lowest latency; the core shows 100 % busy).
    Busy,
    /// Spin while busy, sleep in poll(2) after a run of empty polls.
    Adaptive,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, every field a key (for a log shipper).
    Json,
}

/// `[cores]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresConfig {
    /// Cores running forwarding workers, one pinned worker each.
    pub forwarding: Option<CoreMask>,
    /// Cores the control thread (API, publication) may run on.
    pub control: Option<CoreMask>,
}

/// `[fabric]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabricConfig {
    /// The node's interface towards other compute nodes.
    pub interface: String,
    /// Its IPv4 address with prefix length (the tunnel source).
    pub ip: Ipv4Net,
    /// Encapsulations in order of preference; a route uses the first it offers.
    #[serde(default = "default_encap_priority")]
    pub encap_priority: Vec<nexthop::encap::Encap>,
}

fn default_encap_priority() -> Vec<nexthop::encap::Encap> {
    nexthop::encap::Encap::DEFAULT_PRIORITY.to_vec()
}

/// `[dataplane]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// Packets per receive batch.
    pub batch_size: u32,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// Idle behaviour.
    pub poll_mode: PollMode,
    /// UMEM frames per worker (4 KiB each).
    pub umem_frames: u32,
    /// Frames each socket's fill ring is always given (its floor); a socket that is
    /// receiving borrows more, up to its ring, from a quarter of the UMEM. A worker
    /// takes at most `umem_frames / (4 * fill_frames)` sockets, so idle ports never
    /// starve a new one (see `fill.rs`).
    /// Unset: 64, or `batch_size` when that is larger ([`Self::fill_frames`]).
    pub fill_frames: Option<u32>,
    /// Entries in each RX, TX, fill and completion ring.
    pub ring_size: u32,
    /// Packets per second each port may send that the vrouter answers itself (ARP,
    /// neighbour discovery, echo requests to its gateway), per worker; 0: unpoliced.
    pub exception_rate: u32,
    /// Ask the kernel to complete the TCP and UDP checksums of the frames sent
    /// (AF_XDP transmit metadata, Linux 6.11+): pods may keep their checksum offload
    /// on. Ignored (and reported) on a kernel without it.
    pub tx_checksum_offload: bool,
}

impl DataplaneConfig {
    /// The fill-ring floor in force: as configured, else 64 or a batch if larger.
    pub fn fill_frames(&self) -> u32 {
        self.fill_frames.unwrap_or(self.batch_size.max(64))
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            xdp_mode: XdpMode::Native,
            poll_mode: PollMode::Busy,
            umem_frames: 32768,
            fill_frames: None,
            ring_size: 2048,
            exception_rate: crate::packet::DEFAULT_EXCEPTION_RATE,
            tx_checksum_offload: true,
        }
    }
}

/// `[tables]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    /// Maximum interfaces (vifs), fabric included.
    pub interfaces: u32,
    /// Maximum routes added through the API, all VRFs together.
    pub routes: u32,
}

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            interfaces: 4096,
            routes: 65536,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[cores]`
    #[serde(default = "default_cores")]
    pub cores: CoresConfig,
    /// `[fabric]`
    pub fabric: FabricConfig,
    /// MAC the vrouter uses towards pods.
    #[serde(default = "default_mac")]
    pub vrouter_mac: MacAddr,
    /// `[dataplane]`
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// `[tables]`
    #[serde(default)]
    pub tables: TablesConfig,
    /// `[flows]`
    #[serde(default)]
    pub flows: crate::flows::FlowConfig,
    /// Where added ports and routes are kept across restarts.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The local API's Unix socket.
    #[serde(default = "default_api_socket")]
    pub api_socket: PathBuf,
    /// A group whose members may use the API besides root and the vrouter's user
    /// (the socket is then mode 0660 and owned by it; 0600 otherwise).
    #[serde(default)]
    pub api_group: Option<String>,
    /// API connections served at once.
    #[serde(default = "default_api_max_connections")]
    pub api_max_connections: usize,
    /// An API connection with no request for this long is closed.
    #[serde(default = "default_api_idle_timeout_secs")]
    pub api_idle_timeout_secs: u32,
    /// trace, debug, info, warn or error (or a tracing filter directive).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// `[xmpp]`
    #[serde(default)]
    pub xmpp: XmppConfig,
    /// `[host]`: the node's own interface; none without the section.
    #[serde(default)]
    pub host: Option<HostConfig>,
    /// `[metrics]`
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[flow_export]`
    #[serde(default)]
    pub flow_export: crate::flow_export::FlowExportConfig,
    /// `[ingress]`
    #[serde(default)]
    pub ingress: IngressConfig,
}

/// `[metrics]`: the Prometheus endpoint, served by the control side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and TCP port of the HTTP endpoint (`GET /metrics`); unset: none.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
}

/// `[host]`: the node's own interface (Tungsten's vhost0), a veth whose kernel end
/// the vrouter creates at start and removes at exit.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The kernel's end; the vrouter's end is named `<interface>-vr`.
    #[serde(default = "default_host_interface")]
    pub interface: String,
    /// The VRF the node's interface is in (the cluster network's): the node reaches
    /// its pods and services, and node ports and external IPs are served, there.
    pub vrf: String,
    /// IPv4 prefixes the node's kernel routes through it (the pod and service
    /// ranges), with the fabric address as source.
    #[serde(default)]
    pub routes: Vec<Ipv4Net>,
    /// Fabric source NAT: pods of `vrf` reach addresses nothing in it routes from
    /// the node's fabric address.
    #[serde(default = "default_true")]
    pub snat: bool,
    /// Its TCP source ports, first and last.
    #[serde(default = "default_snat_tcp_ports")]
    pub snat_tcp_ports: [u16; 2],
    /// Its UDP source ports, first and last.
    #[serde(default = "default_snat_udp_ports")]
    pub snat_udp_ports: [u16; 2],
    /// Its ICMP echo identifiers, first and last.
    #[serde(default = "default_snat_icmp_ids")]
    pub snat_icmp_ids: [u16; 2],
    /// The ports services may take as node ports, first and last.
    #[serde(default = "default_node_ports")]
    pub node_ports: [u16; 2],
    /// The prefixes LoadBalancer services take their external IP from (the public
    /// floating-IP pool's role in Contrail).
    #[serde(default)]
    pub load_balancer_pool: Vec<ipnet::IpNet>,
}

fn default_node_ports() -> [u16; 2] {
    [30_000, 32_767]
}

impl HostConfig {
    /// The port (and echo identifier) ranges of fabric source NAT.
    pub fn snat_ranges(&self) -> nexthop::SnatRanges {
        let range = |[first, last]: [u16; 2]| nexthop::PortRange { first, last };
        nexthop::SnatRanges {
            tcp: range(self.snat_tcp_ports),
            udp: range(self.snat_udp_ports),
            icmp: range(self.snat_icmp_ids),
        }
    }
}

fn default_host_interface() -> String {
    "vhost0".into()
}

fn default_true() -> bool {
    true
}

/// Inside the kernel's default ephemeral range (32768-60999): 4000 ports, reserved
/// from the kernel while the vrouter runs.
fn default_snat_tcp_ports() -> [u16; 2] {
    [57_000, 60_999]
}

/// Above the kernel's ephemeral range: nothing of the node's own uses them.
fn default_snat_udp_ports() -> [u16; 2] {
    [61_000, 64_999]
}

/// Echo identifiers: the node's own pings rarely take one (ping sockets count up
/// from 1), and an echo reply no pod's ping awaits goes to the node's kernel anyway.
fn default_snat_icmp_ids() -> [u16; 2] {
    [61_000, 64_999]
}

fn default_cores() -> CoresConfig {
    CoresConfig {
        forwarding: None,
        control: None,
    }
}
fn default_mac() -> MacAddr {
    MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x00])
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/vrouter")
}
fn default_api_socket() -> PathBuf {
    PathBuf::from("/run/vrouter/api.sock")
}
fn default_api_max_connections() -> usize {
    64
}
fn default_api_idle_timeout_secs() -> u32 {
    60
}
fn default_log_level() -> String {
    "info".into()
}

/// The cores chosen after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCores {
    /// One worker per core.
    pub forwarding: Vec<usize>,
    /// The control thread's allowed cores.
    pub control: Vec<usize>,
}

impl Config {
    /// Reads and validates a file against the cores of this machine.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Checks values that parse but make no sense; `available` are the cores this
    /// process may run on.
    pub fn validate(&self, available: &[usize]) -> Result<ResolvedCores, ConfigError> {
        let d = &self.dataplane;
        if !(1..=256).contains(&d.batch_size) {
            return Err(invalid(
                "dataplane.batch_size",
                format!("{} is not in 1..=256", d.batch_size),
            ));
        }
        if !d.ring_size.is_power_of_two() || !(64..=16384).contains(&d.ring_size) {
            return Err(invalid(
                "dataplane.ring_size",
                format!("{} is not a power of two in 64..=16384", d.ring_size),
            ));
        }
        if d.umem_frames < 2 * d.ring_size || d.umem_frames > 1 << 20 {
            return Err(invalid(
                "dataplane.umem_frames",
                format!(
                    "{} must be at least twice dataplane.ring_size ({}) and at most 1048576",
                    d.umem_frames, d.ring_size
                ),
            ));
        }
        let fill_frames = d.fill_frames();
        if fill_frames < d.batch_size || fill_frames > d.ring_size {
            return Err(invalid(
                "dataplane.fill_frames",
                format!(
                    "{} is not in dataplane.batch_size..=dataplane.ring_size ({}..={})",
                    fill_frames, d.batch_size, d.ring_size
                ),
            ));
        }
        if d.umem_frames < 8 * fill_frames {
            return Err(invalid(
                "dataplane.umem_frames",
                format!(
                    "{} frames guarantee the fill rings of fewer than two sockets of dataplane.fill_frames ({}) each (a quarter of the UMEM is for floors)",
                    d.umem_frames, fill_frames
                ),
            ));
        }
        if d.exception_rate > 10_000_000 {
            return Err(invalid(
                "dataplane.exception_rate",
                format!("{} is not in 0..=10000000 packets per second", d.exception_rate),
            ));
        }
        if !(2..=65536).contains(&self.tables.interfaces) {
            return Err(invalid(
                "tables.interfaces",
                format!("{} is not in 2..=65536", self.tables.interfaces),
            ));
        }
        let f = &self.flows;
        if !(16..=1 << 26).contains(&f.entries) {
            return Err(invalid(
                "flows.entries",
                format!("{} is not in 16..=67108864", f.entries),
            ));
        }
        if !(16..=1 << 24).contains(&f.affinity_entries) {
            return Err(invalid(
                "flows.affinity_entries",
                format!("{} is not in 16..=16777216", f.affinity_entries),
            ));
        }
        if !(16..=1 << 24).contains(&f.fragment_entries) {
            return Err(invalid(
                "flows.fragment_entries",
                format!("{} is not in 16..=16777216", f.fragment_entries),
            ));
        }
        for (key, v) in [
            ("flows.idle_timeout_secs", f.idle_timeout_secs),
            ("flows.tcp_closed_timeout_secs", f.tcp_closed_timeout_secs),
            ("flows.drop_timeout_secs", f.drop_timeout_secs),
        ] {
            if v == 0 || v > 86_400 {
                return Err(invalid(key, format!("{v} is not in 1..=86400 seconds")));
            }
        }
        if let Some(h) = &self.host {
            let name = &h.interface;
            if name.is_empty() || name.len() > 12 || name.contains(['/', ' ', ':']) || name == &self.fabric.interface {
                return Err(invalid(
                    "host.interface",
                    format!("{name:?}: 1-12 characters (the vrouter's end adds \"-vr\"), no '/', ':' or space, not the fabric's"),
                ));
            }
            if let Err(e) = control_client::validate_vrf_name(&h.vrf) {
                return Err(invalid("host.vrf", e.to_string()));
            }
            if h.routes.len() > 256 {
                return Err(invalid(
                    "host.routes",
                    format!("{} prefixes: at most 256", h.routes.len()),
                ));
            }
            for (key, [first, last]) in [
                ("host.snat_tcp_ports", h.snat_tcp_ports),
                ("host.snat_udp_ports", h.snat_udp_ports),
                ("host.snat_icmp_ids", h.snat_icmp_ids),
                ("host.node_ports", h.node_ports),
            ] {
                if first < 1024 || first > last {
                    return Err(invalid(
                        key,
                        format!("[{first}, {last}]: first and last port, 1024 <= first <= last"),
                    ));
                }
            }
        }
        if self.tables.routes == 0 {
            return Err(invalid("tables.routes", "must be at least 1"));
        }
        let name = &self.fabric.interface;
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
            return Err(invalid(
                "fabric.interface",
                format!("{name:?} is not a Linux interface name"),
            ));
        }
        let p = &self.fabric.encap_priority;
        if p.is_empty() || (1..p.len()).any(|i| p[..i].contains(&p[i])) {
            return Err(invalid(
                "fabric.encap_priority",
                "must list each of mplsoudp, mplsogre, vxlan at most once, and at least one",
            ));
        }
        let mac = self.vrouter_mac.0;
        if mac == [0; 6] || mac[0] & 1 == 1 {
            return Err(invalid(
                "vrouter_mac",
                format!("{} is not a unicast address", self.vrouter_mac),
            ));
        }
        if self.log_level.trim().is_empty() {
            return Err(invalid("log_level", "is empty"));
        }
        if !(1..=4096).contains(&self.api_max_connections) {
            return Err(invalid(
                "api_max_connections",
                format!("{} is not in 1..=4096", self.api_max_connections),
            ));
        }
        if !(1..=86_400).contains(&self.api_idle_timeout_secs) {
            return Err(invalid(
                "api_idle_timeout_secs",
                format!("{} is not in 1..=86400", self.api_idle_timeout_secs),
            ));
        }
        if let Some(addr) = self.flow_export.ipfix_collector.filter(|a| a.port() == 0) {
            return Err(invalid(
                "flow_export.ipfix_collector",
                format!("{addr}: port 0 (IPFIX collectors listen on 4739)"),
            ));
        }
        if self.flow_export.recent_records > 1 << 20 {
            return Err(invalid(
                "flow_export.recent_records",
                format!("{} is more than 1048576", self.flow_export.recent_records),
            ));
        }
        if !(1..=86_400).contains(&self.flow_export.active_timeout_secs) {
            return Err(invalid(
                "flow_export.active_timeout_secs",
                format!("{} is not in 1..=86400", self.flow_export.active_timeout_secs),
            ));
        }
        if let Some(addr) = self.metrics.listen.filter(|a| a.port() == 0) {
            return Err(invalid(
                "metrics.listen",
                format!("{addr}: port 0 is not a port Prometheus can be told to scrape"),
            ));
        }
        if self.api_socket.as_os_str().is_empty() || self.api_socket.file_name().is_none() {
            return Err(invalid(
                "api_socket",
                format!("{} is not a socket path", self.api_socket.display()),
            ));
        }
        self.api_group_id()?;
        self.xmpp.validate()?;
        self.ingress.validate()?;
        self.resolve_cores(available)
    }

    /// The `api_group`'s id, if one is configured; an error if it does not exist.
    pub fn api_group_id(&self) -> Result<Option<nix::unistd::Gid>, ConfigError> {
        let Some(name) = &self.api_group else {
            return Ok(None);
        };
        match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(Some(g.gid)),
            Ok(None) => Err(invalid("api_group", format!("no group named {name:?}"))),
            Err(e) => Err(invalid("api_group", format!("{name:?}: {e}"))),
        }
    }

    fn resolve_cores(&self, available: &[usize]) -> Result<ResolvedCores, ConfigError> {
        let describe = || available.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
        let check = |key: &'static str, mask: &CoreMask| -> Result<Vec<usize>, ConfigError> {
            if let Some(bad) = mask.cores().find(|c| !available.contains(c)) {
                return Err(invalid(
                    key,
                    format!("core {bad} does not exist on this machine (available: {})", describe()),
                ));
            }
            Ok(mask.cores().collect())
        };
        let last = *available
            .last()
            .ok_or_else(|| invalid("cores", "no core is available"))?;
        let forwarding = match &self.cores.forwarding {
            Some(m) => check("cores.forwarding", m)?,
            None => vec![last],
        };
        let control = match &self.cores.control {
            Some(m) => check("cores.control", m)?,
            None => available.iter().copied().filter(|c| !forwarding.contains(c)).collect(),
        };
        if control.is_empty() {
            return Err(invalid(
                "cores.control",
                "no core is left for the control thread; give it one outside cores.forwarding",
            ));
        }
        if let Some(c) = control.iter().find(|c| forwarding.contains(c)) {
            return Err(invalid(
                "cores.control",
                format!("core {c} is also in cores.forwarding; the masks must not overlap"),
            ));
        }
        Ok(ResolvedCores { forwarding, control })
    }
}

mod ingress;
mod xmpp;
pub use ingress::{IngressConfig, IngressRole};
pub use xmpp::XmppConfig;

#[cfg(test)]
mod tests;
