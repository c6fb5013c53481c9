//! A compute node made of network namespaces: the node itself (running a real
//! vrouter process), a fabric veth, and pods whose veth host ends the vrouter owns.

use super::netns::Netns;
use anyhow::{bail, Context};
use control_client::InterfaceSpec;
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use vrouter::api::{ApiClient, DropStatsView, InterfaceView, Request, StatusView};
use vrouter::config::{PollMode, XdpMode};

/// How to build the node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The vrouter executable.
    pub binary: PathBuf,
    /// Forwarding workers (each takes a core; one core must stay for control).
    pub workers: usize,
    /// XDP mode for the ports.
    pub xdp_mode: XdpMode,
    /// Worker idle behaviour.
    pub poll_mode: PollMode,
    /// The `[flows]` section.
    pub flows: vrouter::flows::FlowConfig,
    /// This node's fabric address (/24).
    pub fabric_ip: Ipv4Addr,
}

/// A fabric LAN: a namespace with a Linux bridge that nodes' fabric interfaces join.
#[derive(Debug)]
pub struct FabricLan {
    /// The namespace holding the bridge.
    pub ns: Netns,
}

impl FabricLan {
    /// Creates the namespace and its bridge `br0`.
    pub fn new() -> anyhow::Result<Self> {
        let ns = Netns::create("fabric")?;
        ns.ip(&["link", "add", "br0", "type", "bridge"])?;
        ns.ip(&["link", "set", "br0", "up"])?;
        Ok(Self { ns })
    }

    /// Puts `ifname` (already in the LAN's namespace) on the bridge, up.
    fn enslave(&self, ifname: &str) -> anyhow::Result<()> {
        self.ns.ip(&["link", "set", ifname, "master", "br0"])?;
        self.ns.ip(&["link", "set", ifname, "up"])?;
        Ok(())
    }

    /// The bridge port of the host [`FabricLan::add_host`] made with `last`.
    pub fn host_port(last: u8) -> String {
        format!("h{last}")
    }

    /// Adds a plain host (no vrouter) with fabric address 198.18.0.`last`.
    pub fn add_host(&self, last: u8) -> anyhow::Result<Netns> {
        let host = Netns::create("host")?;
        let far = Self::host_port(last);
        host.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &far,
            "netns",
            self.ns.name(),
        ])?;
        self.enslave(&far)?;
        host.ip(&["addr", "add", &format!("198.18.0.{last}/24"), "dev", "eth0"])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        // What a wire delivers has its checksums complete; a veth would hand on the
        // sender's unfinished ones (offload), which AF_XDP in copy mode sees as is.
        host.exec("ethtool", &["-K", "eth0", "tx", "off", "tso", "off", "gso", "off"])?;
        Ok(host)
    }
}

/// A pod: a namespace with a real Linux stack behind a veth.
#[derive(Debug)]
pub struct Pod {
    /// Short name (`red-1`).
    pub name: String,
    /// VRF it is attached to.
    pub vrf: String,
    /// Host end of its veth, in the node namespace.
    pub host_if: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// IPv4 address.
    pub ipv4: Ipv4Addr,
    /// IPv6 address.
    pub ipv6: Ipv6Addr,
    /// IPv4 gateway.
    pub gateway4: Ipv4Addr,
    /// IPv6 gateway.
    pub gateway6: Ipv6Addr,
    /// Its namespace.
    pub ns: Netns,
    /// Further sources it may send from (allowed address pairs), e.g. for a
    /// generator that varies its source address; set before attaching.
    pub allowed_address_pairs: Vec<ipnet::IpNet>,
}

impl Pod {
    /// The spec the vrouter API gets for this pod.
    pub fn spec(&self) -> InterfaceSpec {
        InterfaceSpec {
            name: self.host_if.clone(),
            vrf: self.vrf.clone(),
            mac: self.mac,
            ipv4: Some(self.ipv4),
            ipv6: Some(self.ipv6),
            gateway4: Some(self.gateway4),
            gateway6: Some(self.gateway6),
            allowed_address_pairs: self.allowed_address_pairs.clone(),
            mtu: None,
            vlan: None,
            security_groups: Vec::new(),
            local_preference: None,
        }
    }
}

/// The node. Dropping it stops the vrouter and removes every namespace and file.
#[derive(Debug)]
pub struct LabNode {
    vrouter: Option<Child>,
    /// Pods, in creation order.
    pub pods: Vec<Pod>,
    /// The node namespace.
    pub ns: Netns,
    dir: PathBuf,
    options: NodeOptions,
    encap_priority: Option<String>,
    forwarding_cores: Option<Vec<usize>>,
    /// `dataplane.umem_frames` and `dataplane.fill_frames` (room for
    /// `umem_frames / (4 * fill_frames)` sockets).
    umem_frames: u32,
    fill_frames: u32,
    /// Top-level configuration lines added to the generated file.
    extra_config: String,
    /// `dataplane.tx_checksum_offload`.
    tx_checksum_offload: bool,
}

/// The fabric interface inside the node namespace.
pub const FABRIC_IF: &str = "fab0";

impl LabNode {
    /// Creates the node namespace and its fabric veth; no vrouter yet.
    pub fn new(options: NodeOptions) -> anyhow::Result<Self> {
        let ns = Netns::create("node")?;
        let dir = std::env::temp_dir().join(ns.name());
        let node = Self {
            vrouter: None,
            pods: Vec::new(),
            ns,
            dir,
            options,
            encap_priority: None,
            forwarding_cores: None,
            extra_config: String::new(),
            umem_frames: 16384,
            fill_frames: 64,
            tx_checksum_offload: true,
        };
        std::fs::create_dir_all(&node.dir)?;
        let q = node.options.workers.max(1).to_string();
        add_veth(&node.ns, FABRIC_IF, "fab0p", &q, &[])?;
        node.ns.ip(&[
            "addr",
            "add",
            &format!("{}/24", node.options.fabric_ip),
            "dev",
            FABRIC_IF,
        ])?;
        node.ns.ip(&["link", "set", FABRIC_IF, "up"])?;
        node.ns.ip(&["link", "set", "fab0p", "up"])?;
        Ok(node)
    }

    /// Moves the fabric veth's far end into `lan` and onto its bridge, so this node
    /// reaches the other nodes there.
    pub fn join(&self, lan: &FabricLan) -> anyhow::Result<()> {
        let far = self.lan_port();
        self.ns.ip(&["link", "set", "fab0p", "name", &far])?;
        self.ns.ip(&["link", "set", &far, "netns", lan.ns.name()])?;
        lan.enslave(&far)
    }

    /// The far end of this node's fabric veth, on the LAN's bridge.
    pub fn lan_port(&self) -> String {
        format!("fab{}", self.options.fabric_ip.octets()[3])
    }

    /// This node's fabric address.
    pub fn fabric_ip(&self) -> Ipv4Addr {
        self.options.fabric_ip
    }

    /// The API socket of this node's vrouter.
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    /// A client for this node's vrouter.
    pub fn api(&self) -> ApiClient {
        ApiClient::new(&self.api_socket())
    }

    /// The directory holding the config, state and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets `cores.forwarding` for the next start (default: the highest cores, one
    /// per worker).
    pub fn set_forwarding_cores(&mut self, cores: &[usize]) {
        self.forwarding_cores = Some(cores.to_vec());
    }

    /// Sets `dataplane.tx_checksum_offload` for the next start (on by default: pods
    /// added while the vrouter runs keep their checksum offload where it finishes
    /// checksums).
    pub fn set_checksum_offload(&mut self, on: bool) {
        self.tx_checksum_offload = on;
    }

    /// Sets `fabric.encap_priority` (TOML names, most preferred first) for the next
    /// start.
    pub fn set_encap_priority(&mut self, names: &[&str]) {
        self.encap_priority = Some(names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "));
    }

    /// Gives each worker a UMEM of `frames` frames (room for `frames / (4 * fill_frames)`
    /// sockets; the default 16384 holds 64 at the default floor).
    pub fn set_umem_frames(&mut self, frames: u32) {
        self.umem_frames = frames;
    }

    /// Gives each socket a floor of `frames` in its fill ring (`dataplane.fill_frames`).
    pub fn set_fill_frames(&mut self, frames: u32) {
        self.fill_frames = frames;
    }

    /// Adds top-level configuration lines (`key = value`) to the file the next start
    /// writes.
    pub fn add_config(&mut self, lines: &str) {
        self.extra_config.push_str(lines);
        self.extra_config.push('\n');
    }

    fn config_text(&self) -> String {
        self.config_text_for(&self.dir.join("state"), &self.api_socket())
    }

    /// The node's configuration with another state directory and API socket (for a
    /// second instance).
    pub fn config_text_for(&self, state_dir: &Path, api_socket: &Path) -> String {
        let cores = vrouter::run::available_cores();
        let workers = self.options.workers.max(1);
        let forwarding: Vec<String> = match &self.forwarding_cores {
            Some(chosen) => chosen.iter().map(|c| c.to_string()).collect(),
            None => cores.iter().rev().take(workers).map(|c| c.to_string()).collect(),
        };
        let mode = match self.options.xdp_mode {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        };
        let poll = match self.options.poll_mode {
            PollMode::Busy => "busy",
            PollMode::Adaptive => "adaptive",
        };
        let flows = toml::to_string(&self.options.flows).unwrap_or_default();
        let encaps = self
            .encap_priority
            .as_ref()
            .map(|e| format!("encap_priority = [{e}]\n"))
            .unwrap_or_default();
        format!(
            "state_dir = {state:?}\napi_socket = {api:?}\nlog_level = \"info\"\n{extra}\n[cores]\nforwarding = {fwd:?}\n\n[fabric]\ninterface = \"{FABRIC_IF}\"\nip = \"{fabric_ip}/24\"\n{encaps}\n[dataplane]\nxdp_mode = \"{mode}\"\npoll_mode = \"{poll}\"\numem_frames = {umem}\nfill_frames = {fill}\nring_size = 2048\ntx_checksum_offload = {csum}\n\n[flows]\n{flows}",
            state = state_dir.display().to_string(),
            api = api_socket.display().to_string(),
            extra = self.extra_config,
            umem = self.umem_frames,
            fill = self.fill_frames,
            csum = self.tx_checksum_offload,
            fwd = forwarding.join(","),
            fabric_ip = self.options.fabric_ip,
        )
    }

    /// Starts the vrouter in the node namespace and waits for its API.
    pub fn start_vrouter(&mut self) -> anyhow::Result<()> {
        if self.vrouter.is_some() {
            bail!("vrouter already running");
        }
        let config = self.dir.join("vrouter.toml");
        std::fs::write(&config, self.config_text())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("vrouter.log"))?;
        let binary = self.options.binary.display().to_string();
        let mut cmd = self.ns.command(&binary);
        cmd.args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.vrouter = Some(cmd.spawn().context("spawning the vrouter")?);
        let deadline = Instant::now() + Duration::from_secs(20);
        let api = self.api();
        loop {
            if let Some(status) = self.vrouter.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.vrouter = None;
                bail!("vrouter exited at start ({status}):\n{}", self.log());
            }
            // Up, and done restoring its state directory.
            if api.call::<StatusView>(&Request::Status).is_ok_and(|s| s.ready) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("vrouter API not up after 20 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True if the running vrouter's workers finish the checksums they send, so that
    /// pods may leave theirs to it (false if it is not running).
    pub fn checksum_offload(&self) -> bool {
        self.vrouter.is_some()
            && self
                .api()
                .call::<StatusView>(&Request::Status)
                .is_ok_and(|s| s.checksum_offload())
    }

    /// Runs another vrouter with `config` in the node namespace and waits (up to
    /// `timeout`, then kills it) for it to exit; returns its status and output. For
    /// starts that must be refused.
    pub fn run_other_instance(&self, config: &str, timeout: Duration) -> anyhow::Result<(ExitStatus, String)> {
        let path = self.dir.join("other.toml");
        std::fs::write(&path, config)?;
        let out_path = self.dir.join("other.log");
        let out = std::fs::File::create(&out_path)?;
        let mut child = self
            .ns
            .command(&self.options.binary.display().to_string())
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok((status, std::fs::read_to_string(out_path).unwrap_or_default()))
    }

    /// The running vrouter's process id.
    pub fn vrouter_pid(&self) -> Option<u32> {
        self.vrouter.as_ref().map(|c| c.id())
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop_vrouter(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.vrouter.take() else {
            bail!("vrouter not running")
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("vrouter ignored SIGTERM for 15 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the vrouter with SIGKILL, as a crash would.
    pub fn kill_vrouter(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.vrouter.take() else {
            bail!("vrouter not running")
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Writes the vrouter's XDP object to the node directory; returns its path.
    pub fn xdp_object_path(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("steer.o");
        std::fs::write(&path, xsk::steering_object())?;
        Ok(path)
    }

    /// The vrouter's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vrouter.log")).unwrap_or_default()
    }

    /// Creates pod `index` of VRF number `vrf_index` (named `vrf`), configures its
    /// stack, and attaches it through the API when `attach` is set.
    pub fn add_pod(&mut self, vrf: &str, vrf_index: u8, index: u8, attach: bool) -> anyhow::Result<&Pod> {
        let ns = Netns::create("pod")?;
        let n = self.pods.len() + 1;
        let host_if = format!("vp{n}");
        let mac = MacAddr([0x02, 0x00, 0x00, 0x00, vrf_index, index]);
        let subnet = vrf_index + 1;
        let pod = Pod {
            name: format!("{vrf}-{index}"),
            vrf: vrf.to_string(),
            host_if: host_if.clone(),
            mac,
            ipv4: Ipv4Addr::new(198, 18, subnet, index + 1),
            ipv6: format!("2001:2:0:{subnet}::{}", index + 1).parse()?,
            gateway4: Ipv4Addr::new(198, 18, subnet, 1),
            gateway6: format!("2001:2:0:{subnet}::1").parse()?,
            ns,
            allowed_address_pairs: Vec::new(),
        };
        let q = self.options.workers.max(1).to_string();
        let mac_text = mac.to_string();
        add_veth(
            &self.ns,
            &host_if,
            "eth0",
            &q,
            &["address", &mac_text, "netns", pod.ns.name()],
        )?;
        // The host end belongs to the vrouter: no kernel IPv6 chatter from it.
        self.ns
            .exec("sysctl", &["-qw", &format!("net.ipv6.conf.{host_if}.disable_ipv6=1")])?;
        self.ns.ip(&["link", "set", &host_if, "up"])?;
        let p = &pod.ns;
        p.ip(&["link", "set", "eth0", "up"])?;
        p.ip(&["addr", "add", &format!("{}/24", pod.ipv4), "dev", "eth0"])?;
        p.ip(&["-6", "addr", "add", &format!("{}/64", pod.ipv6), "dev", "eth0", "nodad"])?;
        p.ip(&["route", "add", "default", "via", &pod.gateway4.to_string()])?;
        p.ip(&["-6", "route", "add", "default", "via", &pod.gateway6.to_string()])?;
        // As the CNI plugin sets them: AF_XDP in copy mode sees the frame as the pod's
        // stack wrote it, so segments must be cut, and checksums complete unless the
        // running vrouter finishes them (its status says). GRO on: the pod merges what
        // the vrouter sends it.
        let tx = if self.checksum_offload() { "on" } else { "off" };
        p.exec(
            "ethtool",
            &["-K", "eth0", "tx", tx, "tso", "off", "gso", tx, "gro", "on"],
        )?;
        self.pods.push(pod);
        if attach {
            self.attach(self.pods.len() - 1)?;
        }
        Ok(self.pods.last().expect("just pushed"))
    }

    /// Sets pod `i`'s MTU, on both ends of its veth; before attaching (the vrouter
    /// takes the host end's MTU as the port's at attach).
    pub fn set_pod_mtu(&self, i: usize, mtu: u16) -> anyhow::Result<()> {
        let pod = &self.pods[i];
        let mtu = mtu.to_string();
        self.ns.ip(&["link", "set", &pod.host_if, "mtu", &mtu])?;
        pod.ns.ip(&["link", "set", "eth0", "mtu", &mtu])?;
        Ok(())
    }

    /// Lets pod `i` send from every address of its subnets (/24 and /64), as a
    /// generator that varies its source address needs; set before attaching.
    pub fn allow_subnet_sources(&mut self, i: usize) -> anyhow::Result<()> {
        let pod = &mut self.pods[i];
        let v4 = ipnet::Ipv4Net::new(pod.ipv4, 24)?.trunc();
        let v6 = ipnet::Ipv6Net::new(pod.ipv6, 64)?.trunc();
        pod.allowed_address_pairs = vec![v4.into(), v6.into()];
        Ok(())
    }

    /// Attaches pod `i` through the API.
    pub fn attach(&self, i: usize) -> anyhow::Result<u32> {
        let v: serde_json::Value = self.api().call(&Request::AddInterface {
            spec: self.pods[i].spec(),
        })?;
        v["vif"].as_u64().map(|v| v as u32).context("no vif in answer")
    }

    /// Points this node's VRF of `remote`'s pod `pod` at that pod through a tunnel
    /// with `encap` (its label, or `vni` for VXLAN), replacing any route to it here
    /// (what a control node would reflect from the pod's node).
    pub fn route_to(&self, remote: &LabNode, pod: usize, encap: Encap, vni: u32) -> anyhow::Result<()> {
        let pod = &remote.pods[pod];
        let pod_label = remote
            .interfaces()?
            .into_iter()
            .find(|i| i.name == pod.host_if)
            .and_then(|i| i.label)
            .context("a pod has a label")?;
        let label = if encap == Encap::Vxlan { vni } else { pod_label };
        let api = self.api();
        for prefix in [format!("{}/32", pod.ipv4), format!("{}/128", pod.ipv6)] {
            let prefix: ipnet::IpNet = prefix.parse()?;
            let _ = api.call::<serde_json::Value>(&Request::RemoveRoute {
                vrf: pod.vrf.clone(),
                prefix,
            });
            let route = control_client::RouteSpec {
                vrf: pod.vrf.clone(),
                prefix,
                target: control_client::RouteTarget::Tunnel {
                    remote: remote.fabric_ip(),
                    label,
                    encaps: vec![encap],
                    mac: None,
                },
            };
            let _: serde_json::Value = api.call(&Request::AddRoute { route })?;
        }
        Ok(())
    }

    /// Drop counters by reason.
    pub fn drop_stats(&self) -> anyhow::Result<DropStatsView> {
        Ok(self.api().call(&Request::DropStats)?)
    }

    /// Interfaces with counters.
    pub fn interfaces(&self) -> anyhow::Result<Vec<InterfaceView>> {
        Ok(self.api().call(&Request::Interfaces)?)
    }

    /// Interfaces of the node namespace with an XDP program attached.
    pub fn interfaces_with_xdp(&self) -> Vec<String> {
        std::iter::once(FABRIC_IF.to_string())
            .chain(self.pods.iter().map(|p| p.host_if.clone()))
            .filter(|i| self.ns.has_xdp_program(i))
            .collect()
    }
}

/// Creates veth `name` in `ns` with peer `peer`, both with `queues` queues (one per
/// forwarding worker); `peer_extra` are further `ip link` words for the peer.
fn add_veth(ns: &Netns, name: &str, peer: &str, queues: &str, peer_extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![
        "link",
        "add",
        name,
        "numtxqueues",
        queues,
        "numrxqueues",
        queues,
        "type",
        "veth",
    ];
    args.extend(["peer", "name", peer, "numtxqueues", queues, "numrxqueues", queues]);
    args.extend_from_slice(peer_extra);
    ns.ip(&args)?;
    Ok(())
}

impl Drop for LabNode {
    fn drop(&mut self) {
        if self.vrouter.is_some() {
            let _ = self.stop_vrouter();
        }
        self.pods.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
