//! Loading and attaching the steering program (bpf/steer.c) with aya.

use crate::XdpMode;
use aya::maps::XskMap;
use aya::programs::{ProgramError, Xdp, XdpMode as AyaMode};
use aya::{Ebpf, EbpfLoader};
use std::os::fd::RawFd;

static STEER_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/steer.o"));

/// The loader, made once per process: `EbpfLoader::new` parses the kernel's BTF
/// (megabytes: tens of milliseconds) and `Ebpf::load` parses it once more, which was
/// paid per port attached. The steering programs use no CO-RE relocations, so they
/// load without it (`btf(None)`).
static LOADER: std::sync::Mutex<Option<EbpfLoader<'static>>> = std::sync::Mutex::new(None);

/// Entries of the fabric's claims map (as `steer.c` declares it).
const CLAIMS_MAX: u32 = 65536;

/// Which program an interface gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// Everything to the vrouter.
    Pod,
    /// Only overlay tunnels to the vrouter; the rest to the kernel.
    Fabric,
}

/// Why a program could not be attached or a socket registered.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// Loading the object or the program into the kernel failed.
    #[error("loading the XDP program: {0}")]
    Load(String),
    /// Attaching to the interface failed.
    #[error("attaching XDP to {ifname}: {message}")]
    Attach {
        /// Interface.
        ifname: String,
        /// Why.
        message: String,
    },
    /// The XSK map update failed.
    #[error("registering queue {queue} of {ifname}: {message}")]
    Register {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// Why.
        message: String,
    },
}

/// The steering program attached to one interface. Dropping it detaches the program
/// (and the kernel does the same if the process dies, since it is a BPF link).
pub struct XdpAttachment {
    ebpf: Ebpf,
    ifname: String,
}

impl std::fmt::Debug for XdpAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpAttachment").field("ifname", &self.ifname).finish()
    }
}

pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl XdpAttachment {
    /// Loads a fresh copy of the program and attaches it to `ifname`. A program left
    /// attached the legacy (netlink) way, e.g. by a crashed older process or by hand,
    /// is removed first, so programs are replaced, never stacked.
    pub fn attach(ifname: &str, kind: PortKind, mode: XdpMode) -> Result<Self, XdpError> {
        let name = match kind {
            PortKind::Pod => "vrouter_pod",
            PortKind::Fabric => "vrouter_fabric",
        };
        let ebpf = load_program(ifname, name, mode)?;
        Ok(Self {
            ebpf,
            ifname: ifname.to_string(),
        })
    }

    /// Points receive queue `queue` at the AF_XDP socket `fd`.
    pub fn register(&mut self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        let err = |message: String| XdpError::Register {
            ifname: self.ifname.clone(),
            queue,
            message,
        };
        let map = self
            .ebpf
            .map_mut("xsks")
            .ok_or_else(|| err("map xsks missing".into()))?;
        let mut xsks = XskMap::try_from(map).map_err(|e| err(chain(&e)))?;
        // SAFETY: the fd belongs to a live PortSocket; the kernel takes its own
        // reference to the socket, the borrow lasts only for this call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        xsks.set(queue, fd, 0).map_err(|e| err(chain(&e)))
    }

    /// The interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Makes the fabric program steer replies to fabric source NAT: to `addr`, on
    /// TCP ports, UDP ports and ICMP echo identifiers `[tcp, udp, icmp]` (first,
    /// last each).
    pub fn set_snat_ports(&mut self, addr: std::net::Ipv4Addr, ranges: [(u16, u16); 3]) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut("snat_ports")
            .ok_or_else(|| XdpError::Load("map snat_ports missing".into()))?;
        let mut ports: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(map).map_err(|e| XdpError::Load(chain(&e)))?;
        let range = |(first, last): (u16, u16)| u64::from(first) << 16 | u64::from(last);
        let [tcp, udp, icmp] = ranges;
        // The ranges before the address: the address turns it on.
        for (index, value) in [
            (1, range(tcp)),
            (2, range(udp)),
            (3, range(icmp)),
            (0, u64::from(u32::from_ne_bytes(addr.octets()))),
        ] {
            ports
                .set(index, value, 0)
                .map_err(|e| XdpError::Load(format!("snat_ports: {}", chain(&e))))?;
        }
        Ok(())
    }

    /// The fabric program's claimed ports (see [`FabricClaims`]); taken once.
    pub fn take_claims(&mut self) -> Result<FabricClaims, XdpError> {
        let map = self
            .ebpf
            .take_map("claimed")
            .ok_or_else(|| XdpError::Load("map claimed missing (or taken)".into()))?;
        let map = aya::maps::HashMap::try_from(map).map_err(|e| XdpError::Load(chain(&e)))?;
        Ok(FabricClaims {
            map,
            current: std::collections::BTreeSet::new(),
        })
    }
}

/// A TCP or UDP port on an address of the node that the fabric program steers to
/// the vrouter (a node port, an external IP's service port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    /// The destination address.
    pub addr: std::net::Ipv4Addr,
    /// IP protocol (6, 17).
    pub proto: u8,
    /// The destination port.
    pub port: u16,
}

impl Claim {
    /// The map's key: the address as on the wire, read in host order, protocol, port.
    fn key(self) -> u64 {
        u64::from(u32::from_ne_bytes(self.addr.octets())) << 32 | u64::from(self.proto) << 16 | u64::from(self.port)
    }
}

/// The fabric program's claimed ports, kept equal to a wanted set.
pub struct FabricClaims {
    map: aya::maps::HashMap<aya::maps::MapData, u64, u8>,
    current: std::collections::BTreeSet<Claim>,
}

impl std::fmt::Debug for FabricClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricClaims").field("current", &self.current).finish()
    }
}

impl FabricClaims {
    /// Makes the claimed ports `wanted`: adds the new ones before removing the old.
    /// On error the claims that went in stay recorded (a retry completes the rest).
    pub fn set(&mut self, wanted: &std::collections::BTreeSet<Claim>) -> Result<(), XdpError> {
        let err = |e: aya::maps::MapError| XdpError::Load(format!("claimed ports: {}", chain(&e)));
        for c in wanted.difference(&self.current.clone()) {
            self.map.insert(c.key(), 1, 0).map_err(err)?;
            self.current.insert(*c);
        }
        for c in self.current.clone().difference(wanted) {
            match self.map.remove(&c.key()) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {
                    self.current.remove(c);
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    /// The claimed ports now.
    pub fn current(&self) -> &std::collections::BTreeSet<Claim> {
        &self.current
    }
}

/// Loads a fresh copy of program `name` from the object and attaches it to `ifname`.
/// A program left attached the legacy (netlink) way, e.g. by a crashed older process
/// or by hand, is removed first, so programs are replaced, never stacked.
pub(super) fn load_program(ifname: &str, name: &str, mode: XdpMode) -> Result<Ebpf, XdpError> {
    // Only the fabric's program reads the claims; a preallocated hash of 65536
    // entries (megabytes of kernel memory) per pod would be waste.
    let claims = if name == "vrouter_fabric" { CLAIMS_MAX } else { 1 };
    let mut ebpf = LOADER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(|| {
            let mut loader = EbpfLoader::new();
            loader.btf(None);
            loader
        })
        .map_max_entries("claimed", claims)
        .load(STEER_OBJECT)
        .map_err(|e| XdpError::Load(chain(&e)))?;
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| XdpError::Load(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(chain(&e)))?;
    program.load().map_err(|e| XdpError::Load(chain(&e)))?;
    let aya_mode = match mode {
        XdpMode::Native => AyaMode::Driver,
        XdpMode::Generic => AyaMode::Skb,
    };
    let attach_error = |e: ProgramError| XdpError::Attach {
        ifname: ifname.to_string(),
        message: chain(&e),
    };
    if let Err(first) = program.attach(ifname, aya_mode) {
        if !remove_legacy_programs(ifname) {
            return Err(attach_error(first));
        }
        program.attach(ifname, aya_mode).map_err(|e| XdpError::Attach {
            ifname: ifname.to_string(),
            message: format!("{} (after removing a program left attached)", chain(&e)),
        })?;
        tracing::warn!(ifname, "replaced an XDP program left attached on the interface");
    }
    Ok(ebpf)
}

/// Removes XDP programs attached through netlink (not BPF links, which belong to a
/// live process). True if the command ran and succeeded.
fn remove_legacy_programs(ifname: &str) -> bool {
    // One mode per command: iproute2 takes a single xdp mode keyword.
    ["xdpgeneric", "xdpdrv"].iter().all(|mode| {
        let out = std::process::Command::new("ip")
            .args(["link", "set", "dev", ifname, mode, "off"])
            .output();
        match out {
            Ok(out) if out.status.success() => true,
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                tracing::warn!(ifname, "ip link set {mode} off: {}", stderr.trim());
                false
            }
            Err(e) => {
                tracing::warn!(ifname, "cannot run ip: {e}");
                false
            }
        }
    })
}

/// The compiled steering object (for tools and tests that attach it by hand).
pub fn steering_object() -> &'static [u8] {
    STEER_OBJECT
}
