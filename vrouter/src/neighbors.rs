//! The fabric as the kernel sees it: this node's fabric MAC and MTU, and the MAC of
//! the next hop towards each remote node (from the kernel's routing and neighbour
//! tables, refreshed by the control thread; nothing configured by hand).

use anyhow::Context;
use nexthop::{FabricInfo, MacAddr};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

/// Reads the fabric interface's MAC and MTU from sysfs.
pub fn fabric_info(ifname: &str, ip: Ipv4Addr) -> anyhow::Result<FabricInfo> {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/{what}"))
            .with_context(|| format!("fabric.interface {ifname}: {what}"))
    };
    let mac: MacAddr = read("address")?
        .trim()
        .parse()
        .map_err(|e: String| anyhow::anyhow!("fabric.interface {ifname}: {e}"))?;
    // Loopback and some virtual devices report 65536: more than an IPv4 packet can be.
    let mtu: u32 = read("mtu")?
        .trim()
        .parse()
        .with_context(|| format!("fabric.interface {ifname}: its MTU"))?;
    let mtu = mtu.min(u32::from(u16::MAX)) as u16;
    Ok(FabricInfo { ip: Some(ip), mac, mtu })
}

/// Complete entries of the kernel's IPv4 neighbour table (`/proc/net/arp`).
pub fn arp_table() -> HashMap<Ipv4Addr, MacAddr> {
    parse_arp(&std::fs::read_to_string("/proc/net/arp").unwrap_or_default())
}

fn parse_arp(text: &str) -> HashMap<Ipv4Addr, MacAddr> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // IP, HW type, flags (0x2 = complete), HW address, mask, device.
            let complete = u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()? & 0x2 != 0;
            let mac: MacAddr = f.get(3)?.parse().ok()?;
            (complete && mac.0 != [0; 6]).then_some((f.first()?.parse().ok()?, mac))
        })
        .collect()
}

/// The address whose MAC frames to `remote` go to: the gateway of the longest
/// matching route in `/proc/net/route`, or `remote` itself when it is on-link.
pub fn next_hop(remote: Ipv4Addr) -> Ipv4Addr {
    next_hop_in(&std::fs::read_to_string("/proc/net/route").unwrap_or_default(), remote)
}

fn next_hop_in(text: &str, remote: Ipv4Addr) -> Ipv4Addr {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(|v| Ipv4Addr::from(v.swap_bytes()));
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dst), Some(gw), Some(mask)) = (
            f.get(1).and_then(|s| hex(s)),
            f.get(2).and_then(|s| hex(s)),
            f.get(7).and_then(|s| hex(s)),
        ) else {
            continue;
        };
        let (dst, mask) = (u32::from(dst), u32::from(mask));
        if u32::from(remote) & mask == dst && best.is_none_or(|(m, _)| mask.count_ones() > m) {
            best = Some((mask.count_ones(), gw));
        }
    }
    match best {
        Some((_, gw)) if !gw.is_unspecified() => gw,
        _ => remote,
    }
}

/// Makes the kernel resolve the neighbour towards `remote` (a datagram to the
/// discard port; the answer, if any, is not needed).
pub fn solicit(remote: Ipv4Addr) {
    if let Ok(sock) = UdpSocket::bind("0.0.0.0:0") {
        let _ = sock.set_nonblocking(true);
        let _ = sock.send_to(b"vrouter neighbour resolution", SocketAddr::new(remote.into(), 9));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
fab0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0
fab0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn a_fabric_mtu_above_what_ip_can_carry_is_taken_as_the_ip_maximum() {
        // Loopback reports 65536 (one more than an IPv4 total length can say).
        let lo_mtu: u32 = std::fs::read_to_string("/sys/class/net/lo/mtu")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let info = fabric_info("lo", Ipv4Addr::new(198, 18, 0, 1)).unwrap();
        assert_eq!(u32::from(info.mtu), lo_mtu.min(65535));
        let missing = fabric_info("no-such-if0", Ipv4Addr::new(198, 18, 0, 1)).unwrap_err();
        assert!(
            format!("{missing:#}").contains("fabric.interface no-such-if0"),
            "{missing:#}"
        );
    }

    #[test]
    fn next_hop_is_the_gateway_unless_on_link() {
        // 198.18.0.0/24 on-link, default via 198.18.0.1.
        assert_eq!(
            next_hop_in(ROUTES, Ipv4Addr::new(198, 18, 0, 7)),
            Ipv4Addr::new(198, 18, 0, 7)
        );
        assert_eq!(
            next_hop_in(ROUTES, Ipv4Addr::new(198, 19, 5, 5)),
            Ipv4Addr::new(198, 18, 0, 1)
        );
        assert_eq!(
            next_hop_in("", Ipv4Addr::new(198, 19, 5, 5)),
            Ipv4Addr::new(198, 19, 5, 5)
        );
    }

    #[test]
    fn arp_keeps_complete_entries_only() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device
198.18.0.2       0x1         0x2         02:00:00:00:00:bb     *        fab0
198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        fab0
";
        let t = parse_arp(text);
        assert_eq!(t.len(), 1);
        assert_eq!(t[&Ipv4Addr::new(198, 18, 0, 2)], MacAddr([2, 0, 0, 0, 0, 0xbb]));
    }
}
