use super::*;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

fn endpoints(v6: bool) -> Endpoints {
    let (src_ip, dst_ip): (IpAddr, IpAddr) = if v6 {
        ("2001:2:0:1::2".parse().unwrap(), "2001:2:0:2::2".parse().unwrap())
    } else {
        ("198.18.1.2".parse().unwrap(), "198.18.2.2".parse().unwrap())
    };
    Endpoints {
        src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        src_ip,
        dst_ip,
        dst_port: 9,
    }
}

/// Checks every checksum with etherparse's own computation; returns (source address,
/// source port).
fn verify(frame: &[u8]) -> (IpAddr, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("parses");
    let (src, v4, v6): (IpAddr, _, _) = match p.net.expect("ip") {
        NetSlice::Ipv4(ip) => {
            assert_eq!(checksum::checksum(ip.header().slice()), 0, "IPv4 header checksum");
            (ip.header().source_addr().into(), Some(ip.header().to_header()), None)
        }
        NetSlice::Ipv6(ip) => (ip.header().source_addr().into(), None, Some(ip.header().to_header())),
        _ => panic!("not IP"),
    };
    match p.transport.expect("transport") {
        TransportSlice::Udp(u) => {
            let h = u.to_header();
            let want = match (&v4, &v6) {
                (Some(ip), _) => h.calc_checksum_ipv4(ip, u.payload()).unwrap(),
                (_, Some(ip)) => h.calc_checksum_ipv6(ip, u.payload()).unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(h.checksum, want, "UDP checksum");
            (src, h.source_port)
        }
        TransportSlice::Tcp(t) => {
            let h = t.to_header();
            assert!(h.syn && !h.ack, "a SYN");
            let want = match (&v4, &v6) {
                (Some(ip), _) => h.calc_checksum_ipv4(ip, t.payload()).unwrap(),
                (_, Some(ip)) => h.calc_checksum_ipv6(ip, t.payload()).unwrap(),
                _ => unreachable!(),
            };
            assert_eq!(h.checksum, want, "TCP checksum");
            (src, h.source_port)
        }
        _ => panic!("not UDP or TCP"),
    }
}

#[test]
fn every_stream_kind_carries_valid_checksums_and_distinct_flows() {
    for v6 in [false, true] {
        for proto in [Proto::Udp, Proto::TcpSyn] {
            for size in [64u16, 128, 576, 1500] {
                let e = endpoints(v6);
                let t = Template::new(&e, proto, size).unwrap();
                let headers = 14 + if v6 { 40 } else { 20 } + if proto == Proto::Udp { 8 } else { 20 } + 16;
                assert_eq!(t.len(), usize::from(size).max(headers));
                let mut a = vec![0; t.len()];
                let mut b = vec![0; t.len()];
                t.write(&mut a, e.src_ip, 7, 123_456_789);
                t.write(&mut b, e.src_ip, 60_007, u64::MAX - 3);
                let (src_a, port_a) = verify(&a);
                let (src_b, port_b) = verify(&b);
                assert_eq!(port_a, port_b, "same port, next source address ({v6} {proto:?} {size})");
                assert_ne!(src_a, src_b);
                assert_eq!(src_a, e.src_ip);
                let at = a.windows(8).position(|w| w == STAMP_MAGIC).expect("stamped");
                assert_eq!(a[at + 8..at + 16], 123_456_789u64.to_be_bytes());
            }
        }
    }
}

#[test]
fn imix_follows_the_seven_four_one_mix() {
    let mut counts = std::collections::BTreeMap::new();
    for n in 0..1200 {
        *counts.entry(FrameSize::Imix.nth(n)).or_insert(0) += 1;
    }
    assert_eq!(counts, [(64, 700), (576, 400), (1500, 100)].into_iter().collect());
    assert_eq!("imix".parse::<FrameSize>(), Ok(FrameSize::Imix));
    assert_eq!("512".parse::<FrameSize>(), Ok(FrameSize::Fixed(512)));
    assert!("63".parse::<FrameSize>().is_err());
    assert!("jumbo".parse::<FrameSize>().is_err());
}

#[test]
fn mixed_families_are_refused() {
    let mut e = endpoints(false);
    e.dst_ip = "2001:2::1".parse().unwrap();
    assert!(Template::new(&e, Proto::Udp, 64).is_err());
}
