//! Overlay encapsulations between compute nodes: MPLS over UDP (RFC 7510), MPLS over
//! GRE (RFC 4023) and VXLAN (RFC 7348), all over an outer IPv4 header from the fabric
//! address. Headers are written into the space in front of the packet (the caller
//! grows the frame by [`Encap::grow`]) and parsed back by [`parse`].

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// UDP destination port of MPLS over UDP (RFC 7510).
pub const MPLS_UDP_PORT: u16 = 6635;
/// The port Contrail used for MPLS over UDP before RFC 7510.
pub const MPLS_UDP_LEGACY_PORT: u16 = 51234;
/// UDP destination port of VXLAN (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// GRE protocol type of MPLS unicast.
pub const GRE_PROTO_MPLS: u16 = 0x8847;
/// First UDP source port used for flow entropy (RFC 7510 section 3).
pub const ENTROPY_PORT_BASE: u16 = 49152;

const ETH: usize = 14;
const IPV4: usize = 20;
const UDP: usize = 8;

/// An encapsulation. Written as `mplsoudp`, `mplsogre` or `vxlan` everywhere (TOML,
/// API, CLI, views); read case-insensitively, also in Contrail's spelling (`MPLSoUDP`,
/// `MPLSoGRE`, `VXLAN`) and as `mplsoverudp` / `mplsovergre` (state files written by
/// earlier versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Encap {
    /// MPLS over UDP: outer Ethernet / IPv4 / UDP 6635 / MPLS / inner IP packet.
    MplsOverUdp,
    /// MPLS over GRE: outer Ethernet / IPv4 / GRE 0x8847 / MPLS / inner IP packet.
    MplsOverGre,
    /// VXLAN: outer Ethernet / IPv4 / UDP 4789 / VXLAN / inner Ethernet frame.
    Vxlan,
}

impl Encap {
    /// The encapsulations in Tungsten's default priority order.
    pub const DEFAULT_PRIORITY: [Encap; 3] = [Encap::MplsOverUdp, Encap::MplsOverGre, Encap::Vxlan];

    /// Bytes of outer headers in front of the payload (inner IP packet for MPLS,
    /// inner Ethernet frame for VXLAN).
    pub const fn outer_len(self) -> usize {
        match self {
            Encap::MplsOverUdp => ETH + IPV4 + UDP + 4,
            Encap::MplsOverGre => ETH + IPV4 + 4 + 4,
            Encap::Vxlan => ETH + IPV4 + UDP + 8,
        }
    }

    /// How much a routed frame (Ethernet + IP) grows: MPLS replaces the inner
    /// Ethernet header, VXLAN keeps it.
    pub const fn grow(self) -> usize {
        match self {
            Encap::Vxlan => self.outer_len(),
            _ => self.outer_len() - ETH,
        }
    }

    /// The name used in configuration and views.
    pub fn name(self) -> &'static str {
        match self {
            Encap::MplsOverUdp => "mplsoudp",
            Encap::MplsOverGre => "mplsogre",
            Encap::Vxlan => "vxlan",
        }
    }
}

impl std::str::FromStr for Encap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mplsoudp" | "mplsoverudp" => Ok(Encap::MplsOverUdp),
            "mplsogre" | "mplsovergre" => Ok(Encap::MplsOverGre),
            "vxlan" => Ok(Encap::Vxlan),
            _ => Err(format!(
                "unknown encapsulation {s:?}: expected mplsoudp, mplsogre or vxlan"
            )),
        }
    }
}

impl From<Encap> for &'static str {
    fn from(e: Encap) -> Self {
        e.name()
    }
}

impl TryFrom<String> for Encap {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The outer headers of one tunnel packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// Which encapsulation.
    pub encap: Encap,
    /// Outer source MAC (the fabric interface).
    pub src_mac: [u8; 6],
    /// Outer destination MAC (the next hop on the fabric towards `dst`).
    pub dst_mac: [u8; 6],
    /// This node's fabric address.
    pub src: Ipv4Addr,
    /// The remote node's fabric address.
    pub dst: Ipv4Addr,
    /// MPLS label (20 bits) or VXLAN network identifier (24 bits).
    pub label: u32,
    /// Flow entropy: becomes the UDP source port (49152-65535).
    pub entropy: u16,
    /// MPLS TTL (the inner packet's TTL); ignored for VXLAN.
    pub ttl: u8,
}

/// The UDP source port for a flow hash (RFC 7510: from the dynamic range).
pub fn entropy_port(hash: u64) -> u16 {
    ENTROPY_PORT_BASE | (((hash >> 16) ^ hash) as u16 & 0x3fff)
}

fn checksum(data: &[u8]) -> u16 {
    let mut acc: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

impl Outer {
    /// The whole tunnel packet around `payload` (the inner IP packet; for VXLAN the
    /// inner Ethernet frame), in a new buffer: for tests, tools and benchmarks (the
    /// data path writes in place).
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; self.encap.outer_len()];
        self.write(&mut out, payload.len());
        out.extend_from_slice(payload);
        out
    }

    /// Writes the outer headers into `out[..encap.outer_len()]`, for a payload of
    /// `payload_len` bytes that follows them. `out` must be at least that long.
    pub fn write(&self, out: &mut [u8], payload_len: usize) {
        let outer = self.encap.outer_len();
        let ip_len = (outer - ETH + payload_len) as u16;
        out[0..6].copy_from_slice(&self.dst_mac);
        out[6..12].copy_from_slice(&self.src_mac);
        out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let proto = if self.encap == Encap::MplsOverGre { 47 } else { 17 };
        let ip = &mut out[ETH..ETH + IPV4];
        ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = &mut out[ETH + IPV4..outer];
        let mpls = (self.label & 0xf_ffff) << 12 | 1 << 8 | u32::from(self.ttl);
        match self.encap {
            Encap::MplsOverUdp | Encap::Vxlan => {
                let port = if self.encap == Encap::Vxlan {
                    VXLAN_PORT
                } else {
                    MPLS_UDP_PORT
                };
                l4[0..2].copy_from_slice(&self.entropy.to_be_bytes());
                l4[2..4].copy_from_slice(&port.to_be_bytes());
                l4[4..6].copy_from_slice(&(ip_len - IPV4 as u16).to_be_bytes());
                l4[6..8].copy_from_slice(&[0, 0]);
                if self.encap == Encap::Vxlan {
                    l4[8..12].copy_from_slice(&0x0800_0000u32.to_be_bytes());
                    l4[12..16].copy_from_slice(&((self.label & 0xff_ffff) << 8).to_be_bytes());
                } else {
                    l4[8..12].copy_from_slice(&mpls.to_be_bytes());
                }
            }
            Encap::MplsOverGre => {
                l4[0..4].copy_from_slice(&[0, 0, 0x88, 0x47]);
                l4[4..8].copy_from_slice(&mpls.to_be_bytes());
            }
        }
    }
}

impl Outer {
    /// These headers with the per-packet fields (lengths, checksum, entropy, MPLS TTL)
    /// blank, to write many packets of one tunnel with a copy and a few patches.
    pub fn template(&self) -> OuterTemplate {
        let mut bytes = [0u8; OUTER_MAX];
        Outer {
            entropy: 0,
            ttl: 0,
            ..*self
        }
        .write(&mut bytes, 0);
        let udp = self.encap != Encap::MplsOverGre;
        bytes[ETH + 2..ETH + 4].fill(0);
        bytes[ETH + 10..ETH + 12].fill(0);
        if udp {
            bytes[ETH + IPV4 + 4..ETH + IPV4 + 6].fill(0);
        }
        let ip_sum = bytes[ETH..ETH + IPV4]
            .chunks_exact(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        OuterTemplate {
            bytes,
            encap: self.encap,
            ip_sum,
        }
    }
}

/// The longest outer headers (VXLAN).
const OUTER_MAX: usize = ETH + IPV4 + UDP + 8;

/// A tunnel's outer headers with the per-packet fields blank, and the partial
/// checksum of its outer IPv4 header without the length (made by [`Outer::template`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterTemplate {
    bytes: [u8; OUTER_MAX],
    encap: Encap,
    ip_sum: u32,
}

impl OuterTemplate {
    /// The encapsulation.
    pub fn encap(&self) -> Encap {
        self.encap
    }

    /// Writes what [`Outer::write`] writes for this tunnel with `entropy` and `ttl`,
    /// for a payload of `payload_len` bytes: a copy, the lengths, the checksum from
    /// the partial sum (RFC 1624 style), the UDP source port and the MPLS TTL.
    #[inline]
    pub fn write(&self, out: &mut [u8], payload_len: usize, entropy: u16, ttl: u8) {
        // Constant lengths per arm, so that each copy is a few moves, not a call.
        match self.encap {
            Encap::MplsOverUdp => self.patch::<{ Encap::MplsOverUdp.outer_len() }>(out, payload_len, entropy, ttl),
            Encap::MplsOverGre => self.patch::<{ Encap::MplsOverGre.outer_len() }>(out, payload_len, entropy, ttl),
            Encap::Vxlan => self.patch::<{ Encap::Vxlan.outer_len() }>(out, payload_len, entropy, ttl),
        }
    }

    #[inline(always)]
    fn patch<const LEN: usize>(&self, out: &mut [u8], payload_len: usize, entropy: u16, ttl: u8) {
        let out = &mut out[..LEN];
        out.copy_from_slice(&self.bytes[..LEN]);
        let ip_len = (LEN - ETH + payload_len) as u16;
        out[ETH + 2..ETH + 4].copy_from_slice(&ip_len.to_be_bytes());
        let mut acc = self.ip_sum + u32::from(ip_len);
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        out[ETH + 10..ETH + 12].copy_from_slice(&(!(acc as u16)).to_be_bytes());
        let l4 = ETH + IPV4;
        match self.encap {
            Encap::MplsOverUdp | Encap::Vxlan => {
                out[l4..l4 + 2].copy_from_slice(&entropy.to_be_bytes());
                out[l4 + 4..l4 + 6].copy_from_slice(&(ip_len - IPV4 as u16).to_be_bytes());
                if self.encap == Encap::MplsOverUdp {
                    out[l4 + UDP + 3] = ttl;
                }
            }
            Encap::MplsOverGre => out[l4 + 7] = ttl,
        }
    }
}

/// A tunnel packet taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    /// Which encapsulation.
    pub encap: Encap,
    /// Outer source (the sending node).
    pub src: Ipv4Addr,
    /// Outer destination (should be this node).
    pub dst: Ipv4Addr,
    /// MPLS label or VNI.
    pub label: u32,
    /// Offset of the payload: the inner IP packet (MPLS) or inner Ethernet (VXLAN).
    pub payload: usize,
    /// Payload length (from the outer IP length, without Ethernet padding).
    pub payload_len: usize,
}

/// Why a fabric frame is not a tunnel packet the vrouter can take apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than its headers.
    Truncated,
    /// Outer header malformed (not IPv4, bad IHL, length, checksum).
    BadOuterHeader,
    /// A later IPv4 fragment of a tunnel packet (not reassembled).
    Fragment,
    /// Not MPLS over UDP/GRE nor VXLAN.
    NotTunnel,
    /// MPLS without bottom-of-stack on the first label (label stacks are not used).
    LabelStack,
    /// VXLAN header without the I flag.
    BadVxlanHeader,
}

/// Parses an Ethernet frame received on the fabric.
pub fn parse(frame: &[u8]) -> Result<Decapsulated, DecapError> {
    if frame.len() < ETH + IPV4 {
        return Err(DecapError::Truncated);
    }
    if frame[12..14] != [0x08, 0x00] {
        return Err(DecapError::NotTunnel);
    }
    let ip = &frame[ETH..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < IPV4 || total < ihl || ip.len() < ihl {
        return Err(DecapError::BadOuterHeader);
    }
    if ip.len() < total {
        return Err(DecapError::Truncated);
    }
    if checksum(&ip[..ihl]) != 0 {
        return Err(DecapError::BadOuterHeader);
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(DecapError::Fragment);
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = &ip[ihl..total];
    let base = ETH + ihl;
    let mpls = |word: &[u8], at: usize, encap: Encap| -> Result<Decapsulated, DecapError> {
        let w = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        if w & 0x100 == 0 {
            return Err(DecapError::LabelStack);
        }
        Ok(Decapsulated {
            encap,
            src,
            dst,
            label: w >> 12,
            payload: at,
            payload_len: ETH + total - at,
        })
    };
    match ip[9] {
        17 => {
            if l4.len() < UDP + 4 {
                return Err(DecapError::Truncated);
            }
            match u16::from_be_bytes([l4[2], l4[3]]) {
                MPLS_UDP_PORT | MPLS_UDP_LEGACY_PORT => mpls(&l4[UDP..], base + UDP + 4, Encap::MplsOverUdp),
                VXLAN_PORT => {
                    if l4.len() < UDP + 8 + ETH {
                        return Err(DecapError::Truncated);
                    }
                    if l4[UDP] & 0x08 == 0 {
                        return Err(DecapError::BadVxlanHeader);
                    }
                    let vni = u32::from_be_bytes([0, l4[UDP + 4], l4[UDP + 5], l4[UDP + 6]]);
                    let at = base + UDP + 8;
                    Ok(Decapsulated {
                        encap: Encap::Vxlan,
                        src,
                        dst,
                        label: vni,
                        payload: at,
                        payload_len: ETH + total - at,
                    })
                }
                _ => Err(DecapError::NotTunnel),
            }
        }
        47 => {
            if l4.len() < 8 {
                return Err(DecapError::Truncated);
            }
            // Plain GRE only: no checksum, key or sequence number (RFC 4023 section 4).
            if l4[0..2] != [0, 0] || u16::from_be_bytes([l4[2], l4[3]]) != GRE_PROTO_MPLS {
                return Err(DecapError::NotTunnel);
            }
            mpls(&l4[4..], base + 8, Encap::MplsOverGre)
        }
        _ => Err(DecapError::NotTunnel),
    }
}

#[cfg(test)]
mod tests;
