//! ICMP errors about a both-ends flow (a pod behind a floating IP reaching a service
//! of the floating address's VRF, the seed's rule d): the error comes from the
//! backend, or a router on its way, to the floating address, quoting the packet as
//! the backend saw it (from the floating address to the backend). The pod's stack
//! matches an error to its connection only by the packet it sent, so the error is
//! rewritten as its connection sees it: to the pod, from the service's address when
//! the backend sent it (a router's address stays), quoting the pod's own packet (to
//! the service's address and port), every checksum kept right. It is then routed to
//! the pod in the pod's VRF, without a flow of its own: the floating address takes
//! no connections (egress only), and the error belongs to the pod's connection.
//! Cold: only ICMP errors get here.

use super::forward::Family;
use flow_table::{FlowKey, FlowTable};
use nexthop::{Nat, NatSide};
use std::net::IpAddr;
use wire::{checksum, icmp, ip_proto, ipv4, ipv6};

/// Where an IP header's fields are: its length, the protocol's offset and the
/// source and destination addresses' offsets and length.
#[derive(Clone, Copy)]
struct Layout {
    header_len: usize,
    proto_at: usize,
    src_at: usize,
    dst_at: usize,
    addr_len: usize,
}

impl Layout {
    /// The layout of the IP header starting `ip`, if it is one of `family`.
    fn of(ip: &[u8], family: Family) -> Option<Self> {
        match family {
            Family::V4 => {
                let header_len = usize::from(*ip.first()? & 0x0f) * 4;
                (ip[0] >> 4 == 4 && header_len >= ipv4::HEADER_LEN && ip.len() >= header_len).then_some(Self {
                    header_len,
                    proto_at: 9,
                    src_at: 12,
                    dst_at: 16,
                    addr_len: 4,
                })
            }
            Family::V6 => (*ip.first()? >> 4 == 6 && ip.len() >= ipv6::HEADER_LEN).then_some(Self {
                header_len: ipv6::HEADER_LEN,
                proto_at: 6,
                src_at: 8,
                dst_at: 24,
                addr_len: 16,
            }),
        }
    }

    fn addr(&self, ip: &[u8], at: usize) -> IpAddr {
        if self.addr_len == 4 {
            IpAddr::from(<[u8; 4]>::try_from(&ip[at..at + 4]).expect("4 bytes"))
        } else {
            IpAddr::from(<[u8; 16]>::try_from(&ip[at..at + 16]).expect("16 bytes"))
        }
    }
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Rewrites ICMP error `ip` (a whole IP packet of `family`, seen in VRF `vrf`) if it
/// is about a both-ends flow of `table` (see the module doc); returns the key of the
/// rewritten error (in the pod's VRF, to the pod) to route it by. `None`: not such
/// an error, nothing changed.
#[cold]
#[inline(never)]
pub(super) fn rewrite(table: &FlowTable, vrf: u16, ip: &mut [u8], family: Family) -> Option<FlowKey> {
    let v6 = family == Family::V6;
    let outer = Layout::of(ip, family)?;
    let icmp_proto = if v6 { ip_proto::ICMPV6 } else { ip_proto::ICMP };
    let at = outer.header_len;
    if ip[outer.proto_at] != icmp_proto || !super::icmp_nat::is_error(*ip.get(at)?, v6) {
        return None;
    }
    // A fragment of an error is no error to rewrite (its data may not be one).
    if !v6 && (ip[6] & 0x3f != 0 || ip[7] != 0) {
        return None;
    }
    let inner_at = at + icmp::HEADER_LEN;
    let inner = Layout::of(ip.get(inner_at..)?, family)?;
    let quoted = &ip[inner_at..];
    let (proto, l4) = (quoted[inner.proto_at], &quoted[inner.header_len..]);
    let ports = match proto {
        ip_proto::TCP | ip_proto::UDP if l4.len() >= 4 => {
            (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]))
        }
        _ => return None,
    };
    let (src, dst) = (inner.addr(quoted, inner.src_at), inner.addr(quoted, inner.dst_at));
    // An error goes to the sender of the packet it quotes: the floating address.
    if outer.addr(ip, outer.dst_at) != src {
        return None;
    }
    let key = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => FlowKey::v4(vrf, s, d, proto, ports.0, ports.1),
        (IpAddr::V6(s), IpAddr::V6(d)) => FlowKey::v6(vrf, s, d, proto, ports.0, ports.1),
        _ => return None,
    };
    // The quoted packet is the flow's forward direction as the backend got it: the
    // reply entry (its key turned round) is the both-ends entry, linked to the pod's.
    let reply = key.reversed();
    let found = table.lookup(&reply, reply.hash())?;
    if Nat::decode(table.transform(found.index))?.side != NatSide::Both {
        return None;
    }
    let pod = super::nat::linked_pair(table, &found)?.key;
    // The quoted packet as the pod sent it: its forward entry's key (each end's
    // address and port, the quoted transport checksum kept right as for any
    // translated error).
    {
        let quoted = &mut ip[inner_at..];
        let q = super::icmp_nat::Quoted {
            header_len: inner.header_len,
            proto,
        };
        let ends = [
            (inner.src_at, pod.src_addr(), true, pod.src_port()),
            (inner.dst_at, pod.dst_addr(), false, pod.dst_port()),
        ];
        let (header, l4) = quoted.split_at_mut(inner.header_len);
        for (addr_at, new_addr, source, new_port) in ends {
            let (old_addr, new_addr) = (header[addr_at..addr_at + inner.addr_len].to_vec(), octets(new_addr));
            header[addr_at..addr_at + inner.addr_len].copy_from_slice(&new_addr);
            super::icmp_nat::rewrite_quoted_port(l4, &q, source, new_port, (&old_addr, &new_addr), v6);
        }
        if !v6 {
            header[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(header);
            header[10..12].copy_from_slice(&c.to_be_bytes());
        }
    }
    // The error's own header: to the pod, from the service if the backend sent it.
    let outer_src = outer.addr(ip, outer.src_at);
    let from = if outer_src == dst { pod.dst_addr() } else { outer_src };
    ip[outer.src_at..outer.src_at + outer.addr_len].copy_from_slice(&octets(from));
    ip[outer.dst_at..outer.dst_at + outer.addr_len].copy_from_slice(&octets(pod.src_addr()));
    let total = ip.len();
    if v6 {
        let (s, d) = (
            <[u8; 16]>::try_from(&ip[8..24]).expect("16 bytes"),
            <[u8; 16]>::try_from(&ip[24..40]).expect("16 bytes"),
        );
        let pseudo = checksum::ipv6_pseudo_sum(&s, &d, (total - at) as u32, ip_proto::ICMPV6);
        icmp::Packet::new_unchecked(&mut ip[at..]).fill_checksum_v6(pseudo);
    } else {
        ipv4::Packet::new_unchecked(&mut *ip).fill_checksum();
        icmp::Packet::new_unchecked(&mut ip[at..]).fill_checksum_v4();
    }
    match (from, pod.src_addr()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(FlowKey::v4(pod.vrf(), s, d, icmp_proto, 0, 0)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(FlowKey::v6(pod.vrf(), s, d, icmp_proto, 0, 0)),
        _ => None,
    }
}
