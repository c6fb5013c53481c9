//! Overlay encapsulations between compute nodes: MPLS over UDP (RFC 7510), MPLS over
//! GRE (RFC 4023) and VXLAN (RFC 7348), all over an outer IPv4 header from the fabric
//! address. Headers are written into the space in front of the packet (the caller
//! grows the frame by [`Encap::grow`]) and parsed back by [`parse`].

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use wire::{ethernet, gre, ip_proto, ipv4, mpls, udp, vxlan};

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

const ETH: usize = ethernet::HEADER_LEN;
const IPV4: usize = ipv4::HEADER_LEN;
const UDP: usize = udp::HEADER_LEN;

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
        let ip_payload = (outer - ETH - IPV4 + payload_len) as u16;
        let eth = ethernet::Repr {
            dst: self.dst_mac,
            src: self.src_mac,
            ethertype: ethernet::ETHERTYPE_IPV4,
        };
        eth.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
        let protocol = if self.encap == Encap::MplsOverGre {
            ip_proto::GRE
        } else {
            ip_proto::UDP
        };
        let ip = ipv4::Repr {
            src: self.src,
            dst: self.dst,
            protocol,
            payload_len: ip_payload,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
        };
        ip.emit(&mut ipv4::Packet::new_unchecked(&mut out[ETH..]));
        let l4 = &mut out[ETH + IPV4..outer];
        let label = mpls::Repr {
            label: self.label,
            traffic_class: 0,
            bottom: true,
            ttl: self.ttl,
        };
        match self.encap {
            Encap::MplsOverUdp | Encap::Vxlan => {
                let dst_port = if self.encap == Encap::Vxlan {
                    VXLAN_PORT
                } else {
                    MPLS_UDP_PORT
                };
                let header = udp::Repr {
                    src_port: self.entropy,
                    dst_port,
                    payload_len: ip_payload - UDP as u16,
                };
                header.emit(&mut udp::Packet::new_unchecked(&mut l4[..]));
                if self.encap == Encap::Vxlan {
                    vxlan::Repr { vni: self.label }.emit(&mut vxlan::Packet::new_unchecked(&mut l4[UDP..]));
                } else {
                    label.emit(&mut mpls::Entry::new_unchecked(&mut l4[UDP..]));
                }
            }
            Encap::MplsOverGre => {
                let header = gre::Repr {
                    protocol: gre::PROTO_MPLS,
                };
                header.emit(&mut gre::Packet::new_unchecked(&mut l4[..]));
                label.emit(&mut mpls::Entry::new_unchecked(&mut l4[gre::HEADER_LEN..]));
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
        let mut ip = ipv4::Packet::new_unchecked(&mut bytes[ETH..]);
        ip.set_total_len(0);
        ip.set_checksum(0);
        let ip_sum = wire::checksum::sum(ip.header(), 0);
        if self.encap != Encap::MplsOverGre {
            udp::Packet::new_unchecked(&mut bytes[ETH + IPV4..]).set_length(0);
        }
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
        let mut ip = ipv4::Packet::new_unchecked(&mut out[ETH..]);
        ip.set_total_len(ip_len);
        ip.set_checksum(wire::checksum::finish(self.ip_sum + u32::from(ip_len)));
        let l4 = &mut out[ETH + IPV4..];
        match self.encap {
            Encap::MplsOverUdp | Encap::Vxlan => {
                let mut udp = udp::Packet::new_unchecked(&mut l4[..]);
                udp.set_src_port(entropy);
                udp.set_length(ip_len - IPV4 as u16);
                if self.encap == Encap::MplsOverUdp {
                    mpls::Entry::new_unchecked(&mut l4[UDP..]).set_ttl(ttl);
                }
            }
            Encap::MplsOverGre => mpls::Entry::new_unchecked(&mut l4[gre::HEADER_LEN..]).set_ttl(ttl),
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
    /// A fragment of a tunnel packet (not reassembled): the first fragment of one,
    /// or a later fragment of GRE (a later UDP fragment carries no port to tell a
    /// tunnel's from another datagram's: it is [`DecapError::NotTunnel`]).
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
    let eth = ethernet::Frame::new_unchecked(frame);
    if eth.ethertype() != ethernet::ETHERTYPE_IPV4 {
        return Err(DecapError::NotTunnel);
    }
    let ip = match ipv4::Packet::new_checked(eth.payload()) {
        Ok(ip) => ip,
        Err(wire::Error::Truncated) => return Err(DecapError::Truncated),
        Err(wire::Error::Malformed) => return Err(DecapError::BadOuterHeader),
    };
    if !ip.verify_checksum() {
        return Err(DecapError::BadOuterHeader);
    }
    if ip.is_later_fragment() {
        return Err(match ip.protocol() {
            ip_proto::GRE => DecapError::Fragment,
            _ => DecapError::NotTunnel,
        });
    }
    // A first fragment is a tunnel's if its headers say so (then refused below).
    let fragment = ip.more_frags();
    let (src, dst, l4) = (ip.src_addr(), ip.dst_addr(), ip.payload());
    // Offsets in `frame`: where the transport header starts and where the IP packet ends.
    let base = ETH + ip.header_len();
    let end = ETH + usize::from(ip.total_len());
    let decapsulated = |encap, label, payload: usize| Decapsulated {
        encap,
        src,
        dst,
        label,
        payload,
        payload_len: end - payload,
    };
    let mpls = |entry: &[u8], at: usize, encap: Encap| -> Result<Decapsulated, DecapError> {
        let entry = mpls::Entry::new_checked(entry).map_err(|_| DecapError::Truncated)?;
        if !entry.bottom() {
            return Err(DecapError::LabelStack);
        }
        Ok(decapsulated(encap, entry.label(), at))
    };
    let parsed = match ip.protocol() {
        ip_proto::UDP => {
            let udp = udp::Packet::new_checked(l4).map_err(|_| DecapError::Truncated)?;
            match udp.dst_port() {
                MPLS_UDP_PORT | MPLS_UDP_LEGACY_PORT => {
                    mpls(udp.payload(), base + UDP + mpls::HEADER_LEN, Encap::MplsOverUdp)
                }
                VXLAN_PORT => {
                    let header = vxlan::Packet::new_checked(udp.payload()).map_err(|_| DecapError::Truncated)?;
                    if header.payload().len() < ETH {
                        return Err(DecapError::Truncated);
                    }
                    let vni = vxlan::Repr::parse(&header).map_err(|_| DecapError::BadVxlanHeader)?.vni;
                    Ok(decapsulated(Encap::Vxlan, vni, base + UDP + vxlan::HEADER_LEN))
                }
                _ => Err(DecapError::NotTunnel),
            }
        }
        ip_proto::GRE => {
            let gre = gre::Packet::new_checked(l4).map_err(|_| DecapError::Truncated)?;
            // Plain GRE only: no checksum, key or sequence number (RFC 4023 section 4).
            if !gre.is_plain() || gre.protocol() != GRE_PROTO_MPLS {
                return Err(DecapError::NotTunnel);
            }
            mpls(
                gre.payload(),
                base + gre::HEADER_LEN + mpls::HEADER_LEN,
                Encap::MplsOverGre,
            )
        }
        _ => Err(DecapError::NotTunnel),
    };
    match parsed {
        Ok(_) if fragment => Err(DecapError::Fragment),
        Err(DecapError::NotTunnel) => parsed,
        Err(_) if fragment => Err(DecapError::Fragment),
        _ => parsed,
    }
}

#[cfg(test)]
mod tests;
