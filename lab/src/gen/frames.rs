//! The generator's frames: Ethernet / IPv4 or IPv6 / UDP or TCP SYN templates, and
//! the per-packet stamping of flow number and send time with checksums kept valid.
//!
//! Checksums are not recomputed per packet: each template keeps the one's-complement
//! sum of everything that does not vary (with the varying fields zeroed), and a packet
//! adds the sum of its varying fields (source address, source port, timestamp).

use nexthop::MacAddr;
use std::net::IpAddr;
use vrouter::packet::checksum;

/// Marks a payload that carries a send timestamp (the next 8 bytes, ns since
/// [`super::epoch`]).
pub const STAMP_MAGIC: [u8; 8] = *b"vRtStamp";

/// Transport of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Proto {
    /// UDP datagrams.
    Udp,
    /// TCP SYN segments (each flow opens a connection; payload pads to the size, as
    /// SYN data is allowed).
    TcpSyn,
}

/// Frame sizes of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSize {
    /// Every frame this many bytes (Ethernet header included, FCS not).
    Fixed(u16),
    /// Simple IMIX: 64, 576 and 1500 byte frames in the ratio 7:4:1.
    Imix,
}

/// The simple-IMIX cycle: 7 x 64, 4 x 576, 1 x 1500.
const IMIX: [u16; 12] = [64, 576, 64, 64, 576, 64, 1500, 64, 576, 64, 576, 64];

impl FrameSize {
    /// The size of packet `n` of the stream.
    pub fn nth(self, n: u64) -> u16 {
        match self {
            FrameSize::Fixed(s) => s,
            FrameSize::Imix => IMIX[(n % IMIX.len() as u64) as usize],
        }
    }

    /// The distinct sizes the stream uses.
    pub fn sizes(self) -> Vec<u16> {
        match self {
            FrameSize::Fixed(s) => vec![s],
            FrameSize::Imix => vec![64, 576, 1500],
        }
    }
}

impl std::str::FromStr for FrameSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(FrameSize::Imix);
        }
        match s.parse::<u16>() {
            Ok(n) if (64..=1500).contains(&n) => Ok(FrameSize::Fixed(n)),
            _ => Err(format!("frame size {s:?}: give 64..=1500 bytes or \"imix\"")),
        }
    }
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameSize::Fixed(s) => write!(f, "{s}"),
            FrameSize::Imix => f.write_str("imix"),
        }
    }
}

/// One frame shape with the offsets of its varying fields.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    v6: bool,
    proto: Proto,
    /// Source address offset and length.
    src: (usize, usize),
    /// Source port offset.
    sport: usize,
    /// L4 checksum offset.
    l4_check: usize,
    /// Timestamp offset (8 bytes behind [`STAMP_MAGIC`]).
    stamp: usize,
    /// One's-complement sum of the pseudo-header and L4 bytes with the varying fields
    /// zeroed.
    l4_base: u32,
    /// The same for the IPv4 header (unused for IPv6).
    ip_base: u32,
}

/// What a stream sends from and to.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// First source address.
    pub src_ip: IpAddr,
    /// Destination address (same family as the source).
    pub dst_ip: IpAddr,
    /// Destination port.
    pub dst_port: u16,
}

impl Template {
    /// Builds the template of `size` bytes (clamped to what the headers need).
    pub fn new(e: &Endpoints, proto: Proto, size: u16) -> anyhow::Result<Template> {
        let v6 = match (e.src_ip, e.dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => anyhow::bail!("source {} and destination {} differ in family", e.src_ip, e.dst_ip),
        };
        let ip_len = if v6 { 40 } else { 20 };
        let l4_len = if proto == Proto::Udp { 8 } else { 20 };
        let l4_at = 14 + ip_len;
        let size = usize::from(size).clamp(64, 1500).max(l4_at + l4_len + 16);
        let mut f = vec![0u8; size];
        f[0..6].copy_from_slice(&e.dst_mac.0);
        f[6..12].copy_from_slice(&e.src_mac.0);
        let l4_total = size - l4_at;
        let next = if proto == Proto::Udp { 17 } else { 6 };
        match (e.src_ip, e.dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(dst)) => {
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let ip = &mut f[14..34];
                ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, next, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                ip[2..4].copy_from_slice(&((size - 14) as u16).to_be_bytes());
                ip[16..20].copy_from_slice(&dst.octets());
            }
            (_, IpAddr::V6(dst)) => {
                f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                let ip = &mut f[14..54];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(l4_total as u16).to_be_bytes());
                ip[6] = next;
                ip[7] = 64;
                ip[24..40].copy_from_slice(&dst.octets());
            }
            _ => unreachable!("families checked above"),
        }
        let l4 = &mut f[l4_at..];
        l4[2..4].copy_from_slice(&e.dst_port.to_be_bytes());
        let (l4_check, payload) = if proto == Proto::Udp {
            l4[4..6].copy_from_slice(&(l4_total as u16).to_be_bytes());
            (l4_at + 6, l4_at + 8)
        } else {
            l4[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
            l4[12] = 5 << 4;
            l4[13] = 0x02; // SYN
            l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
            (l4_at + 16, l4_at + 20)
        };
        f[payload..payload + 8].copy_from_slice(&STAMP_MAGIC);
        // Sums with the varying fields (source address, source port, stamp) still zero.
        let dst_bytes: &[u8] = if v6 { &f[38..54] } else { &f[30..34] };
        let pseudo = checksum::sum(dst_bytes, 0) + u32::from(next) + l4_total as u32;
        let l4_base = checksum::sum(&f[l4_at..], pseudo);
        let ip_base = if v6 { 0 } else { checksum::sum(&f[14..34], 0) };
        let src = if v6 { (22, 16) } else { (26, 4) };
        Ok(Template {
            bytes: f,
            v6,
            proto,
            src,
            sport: l4_at,
            l4_check,
            stamp: payload + 8,
            l4_base,
            ip_base,
        })
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the template is empty (never: at least 64 bytes).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Writes flow `n` sent at `sent_ns` into `out` (exactly [`Template::len`] bytes):
    /// source port `1024 + n % 60000`, source address `base + n / 60000`.
    pub fn write(&self, out: &mut [u8], base: IpAddr, n: u32, sent_ns: u64) {
        out.copy_from_slice(&self.bytes);
        let port = 1024 + (n % 60_000) as u16;
        let step = n / 60_000;
        let (at, len) = self.src;
        match base {
            IpAddr::V4(a) => out[at..at + len].copy_from_slice(&u32::from(a).wrapping_add(step).to_be_bytes()),
            IpAddr::V6(a) => {
                out[at..at + len].copy_from_slice(&u128::from(a).wrapping_add(u128::from(step)).to_be_bytes())
            }
        }
        out[self.sport..self.sport + 2].copy_from_slice(&port.to_be_bytes());
        out[self.stamp..self.stamp + 8].copy_from_slice(&sent_ns.to_be_bytes());
        let varying = checksum::sum(&out[at..at + len], u32::from(port));
        let l4 = checksum::sum(&out[self.stamp..self.stamp + 8], varying + self.l4_base);
        let mut check = checksum::finish(l4);
        if check == 0 && self.proto == Proto::Udp {
            check = 0xffff; // UDP sends a computed zero as all ones (RFC 768).
        }
        out[self.l4_check..self.l4_check + 2].copy_from_slice(&check.to_be_bytes());
        if !self.v6 {
            let ip = checksum::finish(checksum::sum(&out[at..at + len], self.ip_base));
            out[24..26].copy_from_slice(&ip.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests;
