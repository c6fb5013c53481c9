use super::*;
use proptest::prelude::*;
use wire::checksum::checksum;

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];

fn outer(encap: Encap, label: u32) -> Outer {
    Outer {
        encap,
        src_mac: A,
        dst_mac: B,
        src: Ipv4Addr::new(198, 18, 0, 1),
        dst: Ipv4Addr::new(198, 18, 0, 2),
        label,
        entropy: 0xc123,
        ttl: 63,
    }
}

fn encapsulate(o: &Outer, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; o.encap.outer_len() + payload.len()];
    o.write(&mut out, payload.len());
    out[o.encap.outer_len()..].copy_from_slice(payload);
    out
}

/// The outer IPv4 header the vrouter must write, with its checksum (RFC 791).
fn ipv4(proto: u8, total: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

#[test]
fn golden_mpls_over_udp() {
    let inner = [0x45u8; 28];
    let got = encapsulate(&outer(Encap::MplsOverUdp, 17), &inner);
    let mut want = vec![2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
    want.extend(ipv4(17, 20 + 8 + 4 + 28));
    // UDP: source 0xc123 (entropy), destination 6635, length 40, checksum 0.
    want.extend([0xc1, 0x23, 0x19, 0xeb, 0x00, 0x28, 0x00, 0x00]);
    // MPLS: label 17, TC 0, bottom of stack, TTL 63.
    want.extend([0x00, 0x01, 0x11, 0x3f]);
    want.extend(inner);
    assert_eq!(got, want);
    assert_eq!(checksum(&got[14..34]), 0);
}

#[test]
fn golden_mpls_over_gre() {
    let inner = [0x60u8; 40];
    let got = encapsulate(&outer(Encap::MplsOverGre, 0xfffff), &inner);
    let mut want = vec![2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
    want.extend(ipv4(47, 20 + 4 + 4 + 40));
    want.extend([0x00, 0x00, 0x88, 0x47, 0xff, 0xff, 0xf1, 0x3f]);
    want.extend(inner);
    assert_eq!(got, want);
}

#[test]
fn golden_vxlan() {
    let inner = [0x11u8; 60];
    let got = encapsulate(&outer(Encap::Vxlan, 0x1005), &inner);
    let mut want = vec![2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa, 0x08, 0x00];
    want.extend(ipv4(17, 20 + 8 + 8 + 60));
    want.extend([0xc1, 0x23, 0x12, 0xb5, 0x00, 0x4c, 0x00, 0x00]);
    want.extend([0x08, 0x00, 0x00, 0x00, 0x00, 0x10, 0x05, 0x00]);
    want.extend(inner);
    assert_eq!(got, want);
}

#[test]
fn decapsulation_rejects_what_is_not_ours() {
    let good = encapsulate(&outer(Encap::MplsOverUdp, 17), &[0x45; 28]);
    assert!(parse(&good).is_ok());
    assert_eq!(parse(&good[..30]), Err(DecapError::Truncated));
    assert_eq!(parse(&good[..good.len() - 1]), Err(DecapError::Truncated));
    let mut bad = good.clone();
    bad[14 + 10] ^= 1;
    assert_eq!(parse(&bad), Err(DecapError::BadOuterHeader));
    let mut other_port = good.clone();
    other_port[14 + 20 + 3] = 53;
    assert_eq!(parse(&other_port), Err(DecapError::NotTunnel));
    let mut legacy = good.clone();
    legacy[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&MPLS_UDP_LEGACY_PORT.to_be_bytes());
    assert_eq!(parse(&legacy).map(|d| d.label), Ok(17));
    let mut stacked = good.clone();
    stacked[14 + 28 + 2] &= !1;
    assert_eq!(parse(&stacked), Err(DecapError::LabelStack));
    let mut vx = encapsulate(&outer(Encap::Vxlan, 9), &[0u8; 60]);
    vx[14 + 28] = 0;
    assert_eq!(parse(&vx), Err(DecapError::BadVxlanHeader));
    let mut arp = good.clone();
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert_eq!(parse(&arp), Err(DecapError::NotTunnel));
}

#[test]
fn entropy_ports_are_in_the_dynamic_range() {
    for h in [0u64, 1, u64::MAX, 0x1234_5678_9abc_def0] {
        assert!(entropy_port(h) >= ENTROPY_PORT_BASE);
    }
}

proptest! {
    /// decap(encap(p)) == p for every encapsulation, label and payload; Ethernet
    /// padding after the packet is ignored.
    #[test]
    fn decap_inverts_encap(payload in proptest::collection::vec(any::<u8>(), 14..1500), label in any::<u32>(), entropy in any::<u16>(), ttl in any::<u8>(), which in 0usize..3, pad in 0usize..20) {
        let encap = Encap::DEFAULT_PRIORITY[which];
        let o = Outer { entropy, ttl, ..outer(encap, label) };
        let mut frame = encapsulate(&o, &payload);
        frame.extend(std::iter::repeat_n(0, pad));
        let d = parse(&frame).unwrap();
        let mask = if encap == Encap::Vxlan { 0xff_ffff } else { 0xf_ffff };
        prop_assert_eq!(d.encap, encap);
        prop_assert_eq!(d.label, label & mask);
        prop_assert_eq!((d.src, d.dst), (o.src, o.dst));
        prop_assert_eq!(&frame[d.payload..d.payload + d.payload_len], &payload[..]);
    }

    /// Any bytes: a result, never a panic.
    #[test]
    fn parse_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&frame);
    }
}

#[test]
fn header_checksum_matches_a_known_value() {
    // A real IPv4 header with its checksum field zeroed; the right value is 0xb861.
    let h = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];
    assert_eq!(checksum(&h), 0xb861);
}

proptest::proptest! {
    /// A tunnel's template writes exactly the headers the tunnel writes field by field.
    #[test]
    fn template_writes_what_the_headers_write(
        encap in proptest::sample::select(vec![Encap::MplsOverUdp, Encap::MplsOverGre, Encap::Vxlan]),
        src_mac in proptest::prelude::any::<[u8; 6]>(),
        dst_mac in proptest::prelude::any::<[u8; 6]>(),
        src in proptest::prelude::any::<u32>(),
        dst in proptest::prelude::any::<u32>(),
        label in proptest::prelude::any::<u32>(),
        entropy in proptest::prelude::any::<u16>(),
        ttl in proptest::prelude::any::<u8>(),
        payload_len in 0usize..9000,
    ) {
        let o = Outer { encap, src_mac, dst_mac, src: src.into(), dst: dst.into(), label, entropy, ttl };
        let mut want = [0u8; 64];
        o.write(&mut want, payload_len);
        let mut got = [0xa5u8; 64];
        o.template().write(&mut got, payload_len, entropy, ttl);
        let n = encap.outer_len();
        proptest::prop_assert_eq!(&got[..n], &want[..n]);
        proptest::prop_assert!(got[n..].iter().all(|b| *b == 0xa5), "nothing written past the headers");
    }
}

#[test]
fn one_spelling_everywhere_and_contrails_accepted() {
    for (text, e) in [
        ("mplsoudp", Encap::MplsOverUdp),
        ("MPLSoUDP", Encap::MplsOverUdp),
        ("mplsoverudp", Encap::MplsOverUdp),
        ("mplsogre", Encap::MplsOverGre),
        ("MPLSoGRE", Encap::MplsOverGre),
        ("vxlan", Encap::Vxlan),
        ("VXLAN", Encap::Vxlan),
    ] {
        assert_eq!(text.parse::<Encap>(), Ok(e), "{text}");
        let json: Encap = serde_json_like(text);
        assert_eq!(json, e);
    }
    assert!("gre".parse::<Encap>().is_err());
    assert_eq!(serde_plain(Encap::MplsOverUdp), "mplsoudp");
}

fn serde_json_like(text: &str) -> Encap {
    use serde::de::IntoDeserializer;
    let d: serde::de::value::StringDeserializer<serde::de::value::Error> = text.to_string().into_deserializer();
    serde::Deserialize::deserialize(d).unwrap()
}

fn serde_plain(e: Encap) -> &'static str {
    e.into()
}

#[test]
fn fragments_of_tunnels_are_refused_and_other_fragments_are_no_tunnel() {
    // Flags and offset of the outer header, its checksum made right again.
    let as_fragment = |frame: &[u8], more: bool, offset: usize| {
        let mut f = frame.to_vec();
        let mut ip = wire::ipv4::Packet::new_unchecked(&mut f[14..]);
        ip.set_fragment(more, offset);
        ip.fill_checksum();
        f
    };
    let mpls = encapsulate(&outer(Encap::MplsOverUdp, 17), &[0x45; 28]);
    assert_eq!(parse(&as_fragment(&mpls, true, 0)), Err(DecapError::Fragment));
    let gre = encapsulate(&outer(Encap::MplsOverGre, 17), &[0x45; 28]);
    assert_eq!(parse(&as_fragment(&gre, true, 0)), Err(DecapError::Fragment));
    assert_eq!(parse(&as_fragment(&gre, false, 64)), Err(DecapError::Fragment));
    // A datagram to another port (a reply to source NAT, a node port): its first
    // fragment says so; a later UDP fragment cannot tell, and is no tunnel either.
    let mut other_port = mpls.clone();
    other_port[14 + 20 + 3] = 53;
    assert_eq!(parse(&as_fragment(&other_port, true, 0)), Err(DecapError::NotTunnel));
    assert_eq!(parse(&as_fragment(&mpls, false, 64)), Err(DecapError::NotTunnel));
}
