//! Fuzzes the fabric receive path: any frame arriving on the fabric goes through the
//! whole pipeline (outer parse, label / VNI lookup, inner parse, delivery), against
//! a node with local pods, tunnel routes, labels and a VNI. It must never panic.
#![no_main]

use control_client::{DesiredState, InterfaceSpec, RouteSpec, RouteTarget};
use libfuzzer_sys::fuzz_target;
use nexthop::encap::Encap;
use nexthop::{FabricInfo, MacAddr, Snapshot};
use std::sync::OnceLock;
use vrouter::packet::{process, PacketBuf, PipelineContext};

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        s.set_fabric_info(FabricInfo { ip: Some([198, 18, 0, 1].into()), mac: MacAddr([2, 0, 0, 0, 0, 1]), mtu: 1500 });
        for (name, last) in [("a", 2u8), ("b", 3u8)] {
            s.add_interface(InterfaceSpec {
                name: name.into(),
                vrf: "red".into(),
                mac: MacAddr([2, 0, 0, 0, 1, last]),
                ipv4: Some([198, 18, 1, last].into()),
                ipv6: Some(format!("2001:2:0:1::{last}").parse().unwrap()),
                gateway4: Some([198, 18, 1, 1].into()),
                gateway6: Some("2001:2:0:1::1".parse().unwrap()),
                allowed_address_pairs: Vec::new(),
                mtu: None,
            })
            .unwrap();
        }
        s.set_vrf_vni("red", 4100).unwrap();
        let target = RouteTarget::Tunnel { remote: [198, 18, 0, 2].into(), label: 17, encaps: vec![Encap::MplsOverUdp], mac: None };
        s.add_route(RouteSpec { vrf: "red".into(), prefix: "198.18.2.0/24".parse().unwrap(), target }).unwrap();
        s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; 4096];
    let len = data.len().min(4096 - 256);
    buf[256..256 + len].copy_from_slice(&data[..len]);
    let Some(mut pkt) = PacketBuf::new(&mut buf, 256, len) else { return };
    let mut ctx = PipelineContext::default();
    let _ = process(snapshot(), 0, &mut pkt, &mut ctx);
    assert!(pkt.start() + pkt.len() <= 4096);
});
