//! Inputs shared by the benchmarks: flow keys, a node's forwarding snapshot, frames.
//!
//! Contract: deterministic (no randomness between runs), so numbers compare across
//! commits.
#![forbid(unsafe_code)]

pub mod policy;
pub mod port;

use control_client::{DesiredState, InterfaceSpec};
use etherparse::PacketBuilder;
use flow_table::FlowKey;
use nexthop::{MacAddr, Snapshot};
use std::net::Ipv4Addr;

/// The vrouter MAC used by the benchmark snapshot.
pub const ROUTER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];

/// The `n`-th of a family of distinct UDP flow keys.
pub fn key(n: u32) -> FlowKey {
    FlowKey::v4(
        1,
        Ipv4Addr::from(0xc612_0000 | (n >> 16)),
        Ipv4Addr::new(198, 19, 0, 1),
        17,
        n as u16,
        4789,
    )
}

/// A permutation of `0..n` (xorshift-scrambled), so lookups do not walk memory in order.
pub fn scrambled(n: u32, count: usize) -> Vec<u32> {
    let mut x = 0x9e37_79b9u32;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % n
        })
        .collect()
}

/// A node with two pods in one VRF (vifs 1 and 2), as the pipeline sees it.
pub fn snapshot() -> Snapshot {
    pods().build(1, MacAddr(ROUTER))
}

/// The service address of [`service_snapshot`].
pub const SERVICE: [u8; 4] = [198, 18, 100, 10];

/// [`snapshot`] with a service at 198.18.100.10, UDP port 5000 to port 5001 on pod b.
pub fn service_snapshot() -> Snapshot {
    let mut s = pods();
    s.add_service(control_client::ServiceSpec {
        name: "default/bench".into(),
        vrf: "red".into(),
        ip: Ipv4Addr::from(SERVICE).into(),
        ports: vec![control_client::ServicePort {
            protocol: control_client::L4Protocol::Udp,
            port: 5000,
            target_port: 5001,
            node_port: None,
        }],
        backends: vec![Ipv4Addr::new(198, 18, 1, 3).into()],
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    })
    .expect("valid service");
    s.build(1, MacAddr(ROUTER))
}

/// [`snapshot`] with `services` services (198.19.0.0/16 onwards, TCP port 80 to
/// 8080), each with `backends` backends in 198.18.64.0/18, which routes to pod b;
/// the first service is at [`SERVICE`].
pub fn services_snapshot(services: u32, backends: u32) -> Snapshot {
    let mut s = pods();
    s.add_route(control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.64.0/18".parse().expect("a prefix"),
        target: control_client::RouteTarget::Interface { name: "b".into() },
    })
    .expect("a route to pod b");
    for i in 0..services {
        let ip = if i == 0 {
            Ipv4Addr::from(SERVICE)
        } else {
            Ipv4Addr::from(0xc613_0000 + i)
        };
        s.add_service(control_client::ServiceSpec {
            name: format!("ns/svc-{i}"),
            vrf: "red".into(),
            ip: ip.into(),
            ports: vec![control_client::ServicePort {
                protocol: control_client::L4Protocol::Tcp,
                port: 80,
                target_port: 8080,
                node_port: None,
            }],
            backends: (0..backends)
                .map(|b| Ipv4Addr::from(0xc612_4000 + (i * backends + b) % 16_384).into())
                .collect(),
            affinity_timeout_secs: None,
            external_ips: Vec::new(),
            health_check: None,
            load_balancer: false,
        })
        .expect("valid service");
    }
    s.build(1, MacAddr(ROUTER))
}

/// The memory the services of `snap` take in it (entries, backend lists, the
/// address arena; the hash map's own slots estimated at its capacity).
pub fn services_memory(snap: &Snapshot) -> usize {
    let by_key = &snap.services.by_key;
    let slots = by_key.capacity()
        * (std::mem::size_of::<nexthop::ServiceKey>() + std::mem::size_of::<nexthop::ServiceEntry>() + 1);
    let lists: usize = by_key
        .values()
        .map(|e| e.backends.capacity() * 4 + e.ids.capacity() * 8 + e.down.capacity() * 4 + e.name.len())
        .sum();
    slots + lists + snap.services.nat_addresses.capacity() * std::mem::size_of::<std::net::IpAddr>()
}

/// A TCP SYN from pod a to `dst`:80 with the given source port (64 bytes).
pub fn tcp_syn_to(dst: [u8; 4], src_port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], ROUTER)
        .ipv4([198, 18, 1, 2], dst, 64)
        .tcp(src_port, 80, 1, 64_000)
        .syn()
        .write(&mut out, &[0u8; 6])
        .expect("in-memory write");
    out
}

fn pods() -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    for (name, last) in [("a", 2u8), ("b", 3u8)] {
        s.add_interface(InterfaceSpec {
            name: name.into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            ipv4: Some(Ipv4Addr::new(198, 18, 1, last)),
            ipv6: None,
            gateway4: Some(Ipv4Addr::new(198, 18, 1, 1)),
            gateway6: None,
            allowed_address_pairs: Vec::new(),
            mtu: None,
            vlan: None,
            security_groups: Vec::new(),
            local_preference: None,
        })
        .expect("valid pod");
    }
    s
}

/// A 64-byte UDP frame from pod a to pod b with the given source port.
pub fn udp_frame(src_port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], ROUTER)
        .ipv4([198, 18, 1, 2], [198, 18, 1, 3], 64)
        .udp(src_port, 5000)
        .write(&mut out, &[0u8; 18])
        .expect("in-memory write");
    out
}

/// A node whose VRF red routes 198.18.2.0/24 to another node over MPLS over UDP,
/// with pod a (vif 1, 198.18.1.2) local.
pub fn tunnel_snapshot() -> Snapshot {
    tunnel_state().build(1, MacAddr(ROUTER))
}

/// The desired state [`tunnel_snapshot`] is built from, for benchmarks that change it.
pub fn tunnel_state() -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some(Ipv4Addr::new(198, 18, 0, 1)),
        mac: MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu: 1500,
    });
    s.add_interface(InterfaceSpec {
        name: "a".into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 2]),
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 2)),
        ipv6: None,
        gateway4: Some(Ipv4Addr::new(198, 18, 1, 1)),
        gateway6: None,
        // The generator varies its source address past 60,000 flows: an allowed
        // address pair, as a load generator pod would be given.
        allowed_address_pairs: vec!["198.18.1.0/24".parse().expect("prefix")],
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    })
    .expect("valid pod");
    let remote = Ipv4Addr::new(198, 18, 0, 2);
    s.set_neighbor(remote, MacAddr([2, 0, 0, 0, 0, 0xf2]));
    let target = control_client::RouteTarget::Tunnel {
        remote,
        label: 40,
        encaps: vec![nexthop::encap::Encap::MplsOverUdp],
        mac: None,
    };
    s.add_route(control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.2.0/24".parse().expect("prefix"),
        target,
    })
    .expect("valid route");
    s
}

/// A 64-byte UDP frame from pod a to `dst` with the given source port.
pub fn udp_frame_to(dst: [u8; 4], src_port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], ROUTER)
        .ipv4([198, 18, 1, 2], dst, 64)
        .udp(src_port, 5000)
        .write(&mut out, &[0u8; 18])
        .expect("in-memory write");
    out
}
