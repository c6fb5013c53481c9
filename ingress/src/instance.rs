//! One haproxy instance of an ingress on this node, as the agent's
//! `opencontrail_vrouter_netns` runs it: a network namespace of its own, a veth whose
//! host end is the vrouter's port (the pod end holds the VIP), and haproxy in master-worker mode inside, with its
//! configuration, sockets and log in a directory of its own.
//!
//! Blocking calls (iproute2, process spawning): the caller runs them off its event
//! loop. Every name is derived from the ingress's name and the node's instance
//! directory (so two vrouters on one host, as in the lab, never share one), and a
//! new process finds what a crashed one left in that directory.

use crate::haproxy::{self, Sockets};
use control_client::IngressSpec;
use nexthop::MacAddr;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vrouter_cni::link::{self, Netns, Veth};
use vrouter_cni::spec::RouteConfig;

/// The prefix of every name an instance uses (namespace, host interface).
pub const NAME_PREFIX: &str = "vring";

/// The names of an ingress's instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceNames {
    /// The network namespace (`ip netns`) and the veth's host end: the vrouter port.
    pub netns: String,
    /// The pod end's MAC.
    pub mac: MacAddr,
    /// The directory of its configuration, sockets and log.
    pub dir: PathBuf,
}

impl InstanceNames {
    /// The names for ingress `name`, its files under `base`.
    pub fn of(name: &str, base: &Path) -> Self {
        let mut key = base.as_os_str().as_encoded_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(name.as_bytes());
        Self::of_id(&format!("{:08x}", fnv1a(&key) as u32), base)
    }

    /// The names of the instance whose directory under `base` is `id`.
    fn of_id(id: &str, base: &Path) -> Self {
        let h = u32::from_str_radix(id, 16).unwrap_or(0);
        let b = h.to_be_bytes();
        Self {
            // 5 + 8 = 13 characters: a valid interface name too.
            netns: format!("{NAME_PREFIX}{id}"),
            mac: MacAddr([0x02, 0xa7, b[0], b[1], b[2], b[3]]),
            dir: base.join(id),
        }
    }

    /// The host end of its veth (the vrouter's port): named as the namespace.
    pub fn host_if(&self) -> &str {
        &self.netns
    }

    /// Its sockets.
    pub fn sockets(&self) -> Sockets {
        Sockets {
            stats: self.dir.join("stats.sock"),
            health: self.dir.join("health.sock"),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }
}

/// 64-bit FNV-1a: stable across runs and builds (names must outlive the process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why an instance could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// A command failed.
    #[error("{what}: {detail}")]
    Command {
        /// What was being done.
        what: String,
        /// What the command said.
        detail: String,
    },
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl InstanceError {
    fn io(what: &str) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| InstanceError::Io {
            what: what.to_string(),
            source,
        }
    }
}

impl From<vrouter_cni::spec::CniError> for InstanceError {
    fn from(e: vrouter_cni::spec::CniError) -> Self {
        InstanceError::Command {
            what: e.msg,
            detail: e.details.unwrap_or_default(),
        }
    }
}

/// How the node runs its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The haproxy binary.
    pub haproxy: PathBuf,
    /// The gateway the instance routes through (the vrouter answers for it).
    pub gateway: Ipv4Addr,
    /// Queues of the veth per direction (one per forwarding worker).
    pub queues: usize,
    /// The veth's MTU.
    pub mtu: u16,
    /// The vrouter finishes checksums: the instance's interface keeps checksum offload.
    pub checksum_offload: bool,
}

/// Makes the namespace and the veth, with the VIP on the pod end and a default
/// route through the gateway; what a crashed run left is replaced.
pub fn create_network(spec: &IngressSpec, names: &InstanceNames, setup: &Setup) -> Result<(), InstanceError> {
    remove_network(names);
    run("creating the namespace", "ip", &["netns", "add", &names.netns])?;
    let host = Netns::at_or_own(None);
    link::create_veth(
        &host,
        &Veth {
            host_if: names.host_if(),
            ifname: "eth0",
            pod_netns: &names.netns_path(),
            mac: names.mac,
            mtu: setup.mtu,
            queues: setup.queues,
        },
    )?;
    let addresses = [ipnet::IpNet::from(std::net::IpAddr::V4(spec.vip))];
    let gateway = std::net::IpAddr::V4(setup.gateway);
    let routes = [
        RouteConfig {
            dst: ipnet::IpNet::from(gateway),
            gw: None,
        },
        RouteConfig {
            dst: "0.0.0.0/0".parse().expect("a prefix"),
            gw: Some(gateway),
        },
    ];
    link::configure_pod(
        &Netns::at(&names.netns_path()),
        "eth0",
        &addresses,
        &routes,
        setup.checksum_offload,
    )?;
    Ok(())
}

/// Removes the namespace (its veth goes with it) and the host end if it is left.
pub fn remove_network(names: &InstanceNames) {
    let _ = run("", "ip", &["netns", "del", &names.netns]);
    let _ = Netns::at_or_own(None).delete_link(names.host_if());
}

/// Writes the instance's configuration if it changed, checked with `haproxy -c`
/// first: a configuration haproxy refuses never replaces the one it runs (and would
/// start again with). True if it changed.
pub fn write_config(spec: &IngressSpec, names: &InstanceNames, setup: &Setup) -> Result<bool, InstanceError> {
    std::fs::create_dir_all(&names.dir).map_err(InstanceError::io("the instance's directory"))?;
    let text = haproxy::config(spec, &names.sockets());
    if std::fs::read_to_string(names.config()).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    let tmp = names.dir.join("haproxy.cfg.new");
    std::fs::write(&tmp, &text).map_err(InstanceError::io("the haproxy configuration"))?;
    let checked = tmp.display().to_string();
    let haproxy = setup.haproxy.display().to_string();
    if let Err(e) = run(
        "checking the haproxy configuration",
        &haproxy,
        &["-c", "-q", "-f", &checked],
    ) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, names.config()).map_err(InstanceError::io("the haproxy configuration"))?;
    Ok(true)
}

/// The longest haproxy log kept across a start; a longer one starts afresh.
const MAX_LOG: u64 = 1 << 20;

/// Starts haproxy (master-worker, in the foreground) in the namespace; its output
/// goes to `haproxy.log` in the instance's directory.
pub fn start_haproxy(names: &InstanceNames, setup: &Setup) -> Result<Child, InstanceError> {
    for socket in [names.sockets().stats, names.sockets().health] {
        let _ = std::fs::remove_file(socket);
    }
    let log_path = names.dir.join("haproxy.log");
    if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > MAX_LOG) {
        let _ = std::fs::rename(&log_path, names.dir.join("haproxy.log.1"));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(InstanceError::io("haproxy's log"))?;
    let err = log.try_clone().map_err(InstanceError::io("haproxy's log"))?;
    Command::new("nsenter")
        .arg(format!("--net={}", names.netns_path().display()))
        .arg("--")
        .arg(&setup.haproxy)
        .args(["-W", "-db", "-f"])
        .arg(names.config())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(InstanceError::io("starting haproxy"))
}

/// Asks haproxy's master to reload its configuration: new workers take the
/// listeners, old ones finish the connections they hold.
pub fn reload(child: &Child) -> Result<(), InstanceError> {
    run("reloading haproxy", "kill", &["-USR2", &child.id().to_string()]).map(|_| ())
}

/// One health probe: `GET /healthz` on the health socket answered 200 within
/// `timeout`.
pub fn probe(names: &InstanceNames, timeout: Duration) -> bool {
    let answer = || -> std::io::Result<bool> {
        let mut s = connect(&names.sockets().health)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(format!("GET {} HTTP/1.0\r\n\r\n", haproxy::HEALTH_URI).as_bytes())?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
    };
    answer().unwrap_or(false)
}

/// A command on the stats socket (`show stat`, `show info`); its answer.
pub fn stats_command(names: &InstanceNames, command: &str, timeout: Duration) -> std::io::Result<String> {
    let mut s = connect(&names.sockets().stats)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("{command}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Connects to a unix socket without waiting: a hung haproxy's full backlog is an
/// error at once (a blocking connect would wait for it forever).
fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&socket2::SockAddr::unix(path)?)?;
    socket.set_nonblocking(false)?;
    Ok(UnixStream::from(socket))
}

/// Kills every process in the instance's namespace (haproxy's master and its
/// workers, a hung or stopped one too, and those a reload left).
pub fn kill_all(names: &InstanceNames) {
    if let Ok(pids) = run("", "ip", &["netns", "pids", &names.netns]) {
        for pid in pids.split_whitespace() {
            let _ = run("", "kill", &["-KILL", pid]);
        }
    }
    // By its configuration file too: a namespace mounted in another mount namespace
    // (a vrouter started with `ip netns exec`) shows no pids from here.
    let config = names.config().display().to_string();
    let _ = run("", "pkill", &["-KILL", "-f", &config]);
}

/// Runs a command here (the CNI plugin's runner: the standard tool directories on
/// `PATH`); its stdout, or what it said as the error.
fn run(what: &str, program: &str, args: &[&str]) -> Result<String, InstanceError> {
    Netns::at_or_own(None)
        .run(program, args, None)
        .map_err(|detail| InstanceError::Command {
            what: what.to_string(),
            detail,
        })
}

/// The instances whose directories are under `base` (left by a crashed run).
pub fn leftovers(base: &Path) -> Vec<InstanceNames> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut out: Vec<InstanceNames> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|id| id.len() == 8 && u32::from_str_radix(id, 16).is_ok())
        .map(|id| InstanceNames::of_id(&id, base))
        .collect();
    out.sort_by(|a, b| a.netns.cmp(&b.netns));
    out
}

/// Removes an instance: kills what runs in its namespace (haproxy's master and
/// workers, also those a reload left), deletes the namespace, the veth and the
/// directory.
pub fn remove(names: &InstanceNames) {
    kill_all(names);
    remove_network(names);
    let _ = std::fs::remove_dir_all(&names.dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_and_distinct() {
        let a = InstanceNames::of("web/simple-fanout", Path::new("/var/lib/vrouter/ingress"));
        let b = InstanceNames::of("web/virtual-host", Path::new("/var/lib/vrouter/ingress"));
        assert_eq!(
            a,
            InstanceNames::of("web/simple-fanout", Path::new("/var/lib/vrouter/ingress"))
        );
        assert_ne!(a.netns, b.netns);
        assert_ne!(a.mac, b.mac);
        assert!(a.host_if().len() <= 15, "an interface name");
        assert!(a.netns.starts_with(NAME_PREFIX));
        assert_eq!(a.mac.0[0] & 0x03, 0x02, "locally administered unicast");
        assert!(
            a.sockets().health.display().to_string().len() < 108,
            "a unix socket path"
        );
        let other_node = InstanceNames::of("web/simple-fanout", Path::new("/var/lib/vrouter-2/ingress"));
        assert_ne!(a.netns, other_node.netns, "two nodes on one host");
    }

    #[test]
    fn leftovers_are_the_instance_directories() {
        let base = tempfile::tempdir().unwrap();
        let a = InstanceNames::of("web/a", base.path());
        std::fs::create_dir_all(&a.dir).unwrap();
        std::fs::create_dir_all(base.path().join("not-an-instance")).unwrap();
        assert_eq!(leftovers(base.path()), [a]);
    }
}
