//! The links, addresses and routes of an attachment, made with iproute2, ethtool and
//! ping run inside the right network namespace (`nsenter --net=PATH`): the tools every
//! node has, so the plugin needs no privileges of its own beyond the runtime's.

use crate::spec::{CniError, ErrorCode, RouteConfig};
use ipnet::IpNet;
use nexthop::MacAddr;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the standard tools are when the runtime passes a short `PATH`.
const TOOL_DIRS: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A network namespace: a path, or the plugin's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns(Option<PathBuf>);

impl Netns {
    /// The namespace at `path`.
    pub fn at(path: &Path) -> Self {
        Netns(Some(path.to_path_buf()))
    }

    /// The namespace at `path` if given, else the plugin's own.
    pub fn at_or_own(path: Option<&Path>) -> Self {
        Netns(path.map(Path::to_path_buf))
    }

    /// True if the namespace can be entered (the plugin's own always can).
    pub fn exists(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.exists())
    }

    fn command(&self, program: &str) -> Command {
        let path = match std::env::var("PATH") {
            Ok(p) if !p.is_empty() => format!("{p}:{TOOL_DIRS}"),
            _ => TOOL_DIRS.to_string(),
        };
        let mut c = match &self.0 {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        };
        // The runtime's CNI_* variables are not for the tools.
        c.env("PATH", path).env_remove("CNI_COMMAND");
        c
    }

    /// Runs `program args` here, with `input` on stdin; its stdout, or its stderr as
    /// the error.
    pub fn run(&self, program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
        let mut c = self.command(program);
        c.args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("{program}: {e}"))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("{program}: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Like [`Self::run`], failures as I/O errors (code 5) saying what failed.
    fn must(&self, what: &str, program: &str, args: &[&str], input: Option<&str>) -> Result<String, CniError> {
        self.run(program, args, input)
            .map_err(|e| CniError::new(ErrorCode::Io, what.to_string()).with_details(e))
    }

    /// True if link `name` exists here.
    pub fn has_link(&self, name: &str) -> bool {
        self.run("ip", &["link", "show", "dev", name], None).is_ok()
    }

    /// Deletes link `name` (a veth takes its peer with it); true if it was there.
    pub fn delete_link(&self, name: &str) -> Result<bool, CniError> {
        match self.run("ip", &["link", "del", "dev", name], None) {
            Ok(_) => Ok(true),
            Err(_) if !self.has_link(name) => Ok(false),
            Err(e) => Err(CniError::new(ErrorCode::Io, format!("deleting {name}")).with_details(e)),
        }
    }

    /// The state of link `name` here, or None if there is none.
    pub fn link_state(&self, name: &str) -> Result<Option<LinkState>, CniError> {
        if !self.exists() || !self.has_link(name) {
            return Ok(None);
        }
        let text = self.must(
            &format!("reading {name}"),
            "ip",
            &["-j", "addr", "show", "dev", name],
            None,
        )?;
        LinkState::parse(&text).map(Some)
    }
}

/// What a veth for a pod is made of.
#[derive(Debug, Clone)]
pub struct Veth<'a> {
    /// Host end (the vrouter's port).
    pub host_if: &'a str,
    /// Pod end, inside the pod.
    pub ifname: &'a str,
    /// The pod's namespace.
    pub pod_netns: &'a Path,
    /// The pod end's MAC.
    pub mac: MacAddr,
    /// MTU of both ends.
    pub mtu: u16,
    /// Queues per direction: one per forwarding worker, so each has its own.
    pub queues: usize,
}

/// Creates the veth with its pod end already in the pod, and brings the host end up
/// without IPv6 of its own (the vrouter answers for the pod's gateway; kernel chatter
/// from the host end would only be counted as drops). A host end left by an
/// interrupted ADD of the same attachment is replaced.
pub fn create_veth(host: &Netns, v: &Veth<'_>) -> Result<(), CniError> {
    let q = v.queues.max(1).to_string();
    let mtu = v.mtu.to_string();
    let mac = v.mac.to_string();
    let netns = v.pod_netns.display().to_string();
    #[rustfmt::skip]
    let args = [
        "link", "add", v.host_if, "numtxqueues", &q, "numrxqueues", &q, "mtu", &mtu, "type", "veth",
        "peer", "name", v.ifname, "numtxqueues", &q, "numrxqueues", &q, "mtu", &mtu, "address", &mac,
        "netns", &netns,
    ];
    if let Err(first) = host.run("ip", &args, None) {
        if !host.delete_link(v.host_if)? {
            return Err(CniError::new(ErrorCode::Io, "creating the pod's veth").with_details(first));
        }
        host.must("creating the pod's veth", "ip", &args, None)?;
    }
    host.must(
        "turning IPv6 off on the host end",
        "sysctl",
        &["-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", v.host_if)],
        None,
    )?;
    host.must(
        "bringing the host end up",
        "ip",
        &["link", "set", "dev", v.host_if, "up"],
        None,
    )?;
    Ok(())
}

/// Gives the pod end its addresses and routes and brings it up, in one `ip -batch`;
/// then sets the offloads copy-mode AF_XDP can honour: checksum offload only if the
/// vrouter finishes checksums (`checksum_offload`, its status says), segments always
/// cut when the frame leaves the pod.
pub fn configure_pod(
    pod: &Netns,
    ifname: &str,
    addresses: &[IpNet],
    routes: &[RouteConfig],
    checksum_offload: bool,
) -> Result<(), CniError> {
    let mut batch = format!("link set dev lo up\nlink set dev {ifname} up\n");
    for a in addresses {
        let nodad = if a.addr().is_ipv6() { " nodad" } else { "" };
        batch.push_str(&format!("addr add {a} dev {ifname}{nodad}\n"));
    }
    for r in routes {
        match r.gw {
            Some(gw) => batch.push_str(&format!("route replace {} via {gw} dev {ifname}\n", r.dst)),
            None => batch.push_str(&format!("route replace {} dev {ifname}\n", r.dst)),
        }
    }
    pod.must("configuring the pod's interface", "ip", &["-batch", "-"], Some(&batch))?;
    // AF_XDP in copy mode takes frames as the pod wrote them. A vrouter that asks the
    // kernel to finish every checksum it sends lets the pod leave them to it
    // (checksum offload on; segments are cut before the veth either way, which drops
    // TSO from the pod's end once the vrouter's XDP program is attached); one that
    // cannot (Linux before 6.11) needs them complete: transmit offloads off. GRO on:
    // the veth then receives in NAPI, merging the vrouter's segments before the pod's
    // TCP takes them (`vrouter-lab tcp-bench`: +12 % one stream, +20 % four).
    pod.must(
        "setting the pod interface's offloads",
        "ethtool",
        &pod_offloads(ifname, checksum_offload),
        None,
    )?;
    Ok(())
}

/// `ethtool` arguments for a pod interface's offloads (see [`configure_pod`]).
pub fn pod_offloads(ifname: &str, checksum_offload: bool) -> Vec<&str> {
    let tx = if checksum_offload { "on" } else { "off" };
    vec!["-K", ifname, "tx", tx, "tso", "off", "gso", tx, "gro", "on"]
}

/// Pings `target` from the pod until it answers or `timeout` passes: the proof that
/// the vrouter forwards for the pod.
pub fn wait_reachable(pod: &Netns, target: IpAddr, timeout: Duration) -> Result<Duration, CniError> {
    let start = Instant::now();
    let target_text = target.to_string();
    let mut last = String::new();
    while start.elapsed() < timeout {
        let tried = Instant::now();
        match pod.run("ping", &["-c", "1", "-W", "0.2", "-q", &target_text], None) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) => last = e,
        }
        // A ping that failed at once (no route yet, a tool missing) is not retried
        // flat out: a burst of ADDs shares the CPU with the vrouter.
        if tried.elapsed() < Duration::from_millis(50) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(CniError::new(
        ErrorCode::NotReachable,
        format!("the pod does not reach {target} through the vrouter"),
    )
    .with_details(format!("after {} ms: {last}", timeout.as_millis())))
}

/// A link as `ip -j addr show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Its MAC.
    pub mac: String,
    /// Its MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Its global addresses with prefix lengths.
    pub addresses: Vec<IpNet>,
}

impl LinkState {
    fn parse(text: &str) -> Result<Self, CniError> {
        let bad = |e: String| CniError::new(ErrorCode::Decode, "cannot read `ip -j addr` output").with_details(e);
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let link = v.get(0).ok_or_else(|| bad("no link".into()))?;
        let flags = link["flags"].as_array().cloned().unwrap_or_default();
        let addresses = link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"] != "link" && a["scope"] != "host")
            .filter_map(|a| {
                let ip: IpAddr = a["local"].as_str()?.parse().ok()?;
                IpNet::new(ip, u8::try_from(a["prefixlen"].as_u64()?).ok()?).ok()
            })
            .collect();
        Ok(LinkState {
            mac: link["address"].as_str().unwrap_or_default().to_string(),
            mtu: link["mtu"].as_u64().unwrap_or(0) as u32,
            up: flags.iter().any(|f| f == "UP"),
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_json_is_read() {
        let text = r#"[{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,
            "address":"02:11:22:33:44:55","addr_info":[
              {"family":"inet","local":"198.18.1.5","prefixlen":24,"scope":"global"},
              {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"},
              {"family":"inet6","local":"2001:2::5","prefixlen":64,"scope":"global"}]}]"#;
        let s = LinkState::parse(text).unwrap();
        assert!(s.up);
        assert_eq!(s.mtu, 1500);
        assert_eq!(s.mac, "02:11:22:33:44:55");
        let want: Vec<IpNet> = vec!["198.18.1.5/24".parse().unwrap(), "2001:2::5/64".parse().unwrap()];
        assert_eq!(s.addresses, want);
        assert_eq!(LinkState::parse("[]").unwrap_err().code, ErrorCode::Decode);
    }
}
