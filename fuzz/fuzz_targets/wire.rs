//! Fuzzes the wire layer: any bytes through every view's `new_checked`; when it
//! accepts, every accessor must answer without a panic, and each `Repr` that parses
//! must emit bytes that parse back to the same `Repr`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ethernet::Frame::new_checked(data) {
        let r = ethernet::Repr::parse(&f);
        let mut out = [0u8; ethernet::HEADER_LEN];
        r.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
        assert_eq!(ethernet::Repr::parse(&ethernet::Frame::new_unchecked(&out[..])), r);
        let _ = (f.is_group_dst(), f.payload().len());
    }
    if let Ok(t) = vlan::Tag::new_checked(data) {
        let r = vlan::Repr::parse(&t);
        let mut out = [0u8; vlan::HEADER_LEN];
        r.emit(&mut vlan::Tag::new_unchecked(&mut out[..]));
        assert_eq!(vlan::Repr::parse(&vlan::Tag::new_unchecked(&out[..])), r);
    }
    if let Ok(p) = arp::Packet::new_checked(data) {
        let r = arp::Repr::parse(&p);
        let mut out = [0u8; arp::PACKET_LEN];
        r.emit(&mut arp::Packet::new_unchecked(&mut out[..]));
        assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&out[..]).unwrap()), r);
    }
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        let _ = (p.payload().len(), p.header().len(), p.verify_checksum(), p.frag_offset(), p.more_frags());
        let _ = (p.ident(), p.tos(), p.ttl(), p.src_addr(), p.dst_addr(), p.is_later_fragment());
        if let Ok(r) = ipv4::Repr::parse(&p) {
            let mut out = vec![0u8; ipv4::HEADER_LEN + usize::from(r.payload_len)];
            r.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
            assert_eq!(ipv4::Repr::parse(&ipv4::Packet::new_checked(&out[..]).unwrap()), Ok(r));
        }
        let mut copy = data.to_vec();
        let mut p = ipv4::Packet::new_checked(&mut copy[..]).unwrap();
        let _ = (p.header_mut().len(), p.payload_mut().len());
        p.decrement_ttl();
    }
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let r = ipv6::Repr::parse(&p);
        let _ = (p.payload().len(), p.pseudo_sum(58, p.payload().len() as u32));
        let mut out = vec![0u8; ipv6::HEADER_LEN + usize::from(r.payload_len)];
        r.emit(&mut ipv6::Packet::new_unchecked(&mut out[..]));
        assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&out[..]).unwrap()), r);
    }
    if let Ok(p) = icmp::Packet::new_checked(data) {
        let r = icmp::Repr::parse(&p);
        let _ = (p.is_echo(true), p.is_echo(false), p.verify_checksum_v4(), p.verify_checksum_v6(7));
        let _ = (p.echo_ident(), p.echo_seq(), p.payload().len());
        let mut out = [0u8; icmp::HEADER_LEN];
        r.emit(&mut icmp::Packet::new_unchecked(&mut out[..]));
        assert_eq!(icmp::Repr::parse(&icmp::Packet::new_unchecked(&out[..])), r);
    }
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = (p.src_port(), p.dst_port(), p.checksum(), p.payload().len());
        if let Ok(r) = udp::Repr::parse(&p) {
            let mut out = vec![0u8; udp::HEADER_LEN + usize::from(r.payload_len)];
            r.emit(&mut udp::Packet::new_unchecked(&mut out[..]));
            assert_eq!(udp::Repr::parse(&udp::Packet::new_checked(&out[..]).unwrap()), Ok(r));
        }
    }
    if let Ok(p) = tcp::Packet::new_checked(data) {
        let r = tcp::Repr::parse(&p);
        let _ = (p.options().len(), p.mss(), p.header_len());
        let mut out = [0u8; tcp::HEADER_LEN];
        r.emit(&mut tcp::Packet::new_unchecked(&mut out[..]));
        assert_eq!(tcp::Repr::parse(&tcp::Packet::new_checked(&out[..]).unwrap()), r);
        let mut copy = data.to_vec();
        let before = p.mss();
        tcp::Packet::new_checked(&mut copy[..]).unwrap().clamp_mss(536);
        let after = tcp::Packet::new_checked(&copy[..]).unwrap().mss();
        assert!(after.map(|m| m.0) <= before.map(|m| m.0.max(536)).or(after.map(|m| m.0)));
    }
    if let Ok(e) = mpls::Entry::new_checked(data) {
        let r = mpls::Repr::parse(&e);
        let mut out = [0u8; mpls::HEADER_LEN];
        r.emit(&mut mpls::Entry::new_unchecked(&mut out[..]));
        assert_eq!(mpls::Repr::parse(&mpls::Entry::new_unchecked(&out[..])), r);
    }
    if let Ok(p) = gre::Packet::new_checked(data) {
        let _ = (p.payload().len(), p.is_plain());
        if let Ok(r) = gre::Repr::parse(&p) {
            let mut out = [0u8; gre::HEADER_LEN];
            r.emit(&mut gre::Packet::new_unchecked(&mut out[..]));
            assert_eq!(gre::Repr::parse(&gre::Packet::new_checked(&out[..]).unwrap()), Ok(r));
        }
    }
    if let Ok(p) = vxlan::Packet::new_checked(data) {
        let _ = p.payload().len();
        if let Ok(r) = vxlan::Repr::parse(&p) {
            let mut out = [0u8; vxlan::HEADER_LEN];
            r.emit(&mut vxlan::Packet::new_unchecked(&mut out[..]));
            assert_eq!(vxlan::Repr::parse(&vxlan::Packet::new_checked(&out[..]).unwrap()), Ok(r));
        }
    }
});
