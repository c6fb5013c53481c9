//! Nested mode end to end: Kubernetes on a VM, a pod in the VM reaching the network
//! through its own 802.1Q VLAN on the VM's port. The vrouter attaches the VLAN as a
//! sub-interface of the VM's port, in the pod's VRF, and the pod reaches another pod
//! and its gateway while the VM's own untagged traffic goes on as before.
//!
//! This kernel has no 802.1Q driver (no `8021q` module), so the nested pod is a raw
//! packet socket in the VM's namespace: it sends tagged echo requests as the VM's VLAN
//! device would, and reads the replies with the tag the kernel reports for them
//! (`PACKET_AUXDATA`). Everything on the vrouter's side is real.

use control_client::{InterfaceSpec, RouteSpec, RouteTarget, VlanSpec};
use nexthop::encap::Encap;
use nexthop::{MacAddr, VlanTag};
use std::net::Ipv4Addr;
use system_tests::{node, route_to_pod, serial, two_started_nodes};
use vrouter::api::{ErrorCode, Request};
use vrouter::config::XdpMode;
use vrouter_lab::node::{FabricLan, LabNode, Pod};
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// The nested pod: `ifname src_mac dst_mac src_ip dst_ip vlan`. Sends ICMP echo
/// requests tagged `vlan`; exits 0 on a reply tagged `vlan`, 2 on an untagged or
/// wrongly tagged reply, 1 on none within six tries.
const NESTED_PING: &str = r#"
import os, socket, struct, sys, time
ifname, src_mac, dst_mac, src_ip, dst_ip, vlan = sys.argv[1:7]
vlan = int(vlan)
mac = lambda s: bytes(int(x, 16) for x in s.split(":"))
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sock.bind((ifname, 0))
sock.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA
sock.settimeout(0.2)
ident = os.getpid() & 0xFFFF
for seq in range(1, 7):
    icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"nested")
    struct.pack_into("!H", icmp, 2, csum(bytes(icmp)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0x4000, 64, 1, 0,
                               socket.inet_aton(src_ip), socket.inet_aton(dst_ip)))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    sock.send(mac(dst_mac) + mac(src_mac) + struct.pack("!HH", 0x8100, vlan) + b"\x08\x00" + bytes(ip) + bytes(icmp))
    deadline = time.time() + 1
    while time.time() < deadline:
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(32))
        except socket.timeout:
            continue
        tci = None
        for level, kind, d in anc:
            if level == 263 and kind == 8 and len(d) >= 20:
                status, _, _, _, _, vtci, _ = struct.unpack("IIIHHHH", d[:20])
                if status & 0x10:  # TP_STATUS_VLAN_VALID
                    tci = vtci
        if data[12:14] == b"\x81\x00":
            tci, data = struct.unpack("!H", data[14:16])[0], data[:12] + data[16:]
        if data[0:6] != mac(src_mac) or data[12:14] != b"\x08\x00" or data[23] != 1:
            continue
        ihl = (data[14] & 15) * 4
        reply = data[14 + ihl:]
        if reply[0] == 0 and struct.unpack("!HH", reply[4:8]) == (ident, seq) and data[26:30] == socket.inet_aton(dst_ip):
            print("reply tagged", tci)
            sys.exit(0 if tci is not None and tci & 0xFFF == vlan else 2)
sys.exit(1)
"#;

#[test]
fn a_pod_behind_a_vlan_on_a_vms_port_reaches_pods_and_its_gateway() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("vms", 0, 1, true).unwrap();
    n.add_pod("red", 1, 1, true).unwrap();
    let (vm, b) = (&n.pods[0], &n.pods[1]);
    // In the VM, VLAN 100 on its NIC carries the nested pod.
    let nested = attach_nested(&n, vm, "red", 100, Ipv4Addr::new(198, 18, 2, 50), b.gateway4);
    let sub = format!("{}.100", vm.host_if);
    let ping_from_nested = |to: Ipv4Addr| nested_ping(vm, &nested, to);
    assert_eq!(
        ping_from_nested(b.gateway4),
        0,
        "nested pod -> its gateway, tagged both ways\n{}",
        n.log()
    );
    assert_eq!(
        ping_from_nested(b.ipv4),
        0,
        "nested pod -> pod b, tagged both ways\n{}",
        n.log()
    );
    assert!(ping(vm, vm.gateway4.into(), 3), "the VM's own traffic, untagged");
    // Isolation holds across the tag: the VM (VRF vms) does not reach pod b (red).
    assert!(!ping(vm, b.ipv4.into(), 1), "vms reached red");
    // The sub-interface is listed with its parent and tag; the VM's port cannot go
    // while it carries it.
    let vifs = n.interfaces().unwrap();
    let vm_vif = vifs.iter().find(|i| i.name == vm.host_if).unwrap().vif;
    let listed = vifs.iter().find(|i| i.name == sub).expect("sub-interface listed");
    assert_eq!(listed.vif, nested.vif);
    assert_eq!(
        listed.vlan,
        Some(VlanTag {
            parent: nexthop::Vif(vm_vif),
            id: 100
        })
    );
    let refused = n
        .api()
        .call::<serde_json::Value>(&Request::RemoveInterface {
            name: vm.host_if.clone(),
        })
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InUse), "{refused}");
    // Detached, the nested pod is gone and the VM's port can go.
    n.api()
        .call::<serde_json::Value>(&Request::RemoveInterface { name: sub })
        .unwrap();
    assert_eq!(ping_from_nested(b.ipv4), 1, "a detached sub-interface still forwards");
    let drops = n.drop_stats().unwrap();
    assert!(drops.get("unknown_vlan") > 0, "{drops:?}");
}

/// The VM's router-facing MAC as the nested pods address it (the vrouter's).
const ROUTER_MAC: &str = "00:00:5e:00:01:00";

/// A nested pod: a VLAN of the VM's port, attached as a sub-interface in `vrf`.
struct Nested {
    vif: u32,
    tag: u16,
    mac: MacAddr,
    address: Ipv4Addr,
    label: u32,
}

fn attach_nested(n: &LabNode, vm: &Pod, vrf: &str, tag: u16, address: Ipv4Addr, gateway: Ipv4Addr) -> Nested {
    let mac = MacAddr([0x02, 0, 0, 0, (tag >> 8) as u8, tag as u8]);
    let attached: vrouter::api::AttachedView = n
        .api()
        .call(&Request::AddInterface {
            spec: InterfaceSpec {
                name: format!("{}.{tag}", vm.host_if),
                vrf: vrf.into(),
                mac,
                ipv4: Some(address),
                gateway4: Some(gateway),
                vlan: Some(VlanSpec {
                    parent: vm.host_if.clone(),
                    id: tag,
                }),
                ..InterfaceSpec::default()
            },
        })
        .unwrap();
    Nested {
        vif: attached.vif,
        tag,
        mac,
        address,
        label: attached.label,
    }
}

/// Exit status of the nested pod's tagged ping of `to` (0: a reply with its tag).
fn nested_ping(vm: &Pod, pod: &Nested, to: Ipv4Addr) -> i32 {
    let out = vm
        .ns
        .command("python3")
        .args(["-c", NESTED_PING, "eth0", &pod.mac.to_string(), ROUTER_MAC])
        .args([pod.address.to_string(), to.to_string(), pod.tag.to_string()])
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

/// Nested mode across nodes: two pods in one VM on VLANs 100 and 200, in VRFs red and
/// blue, each reaches the pod of its own network on another node (over MPLS over UDP,
/// by the label of its sub-interface) and not the other network's.
#[test]
fn two_nested_pods_on_different_vlans_reach_their_own_networks_on_another_node() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (mut a, mut b) = two_started_nodes(BIN, &lan);
    a.add_pod("vms", 0, 1, true).unwrap();
    b.add_pod("red", 1, 2, true).unwrap();
    b.add_pod("blue", 2, 2, true).unwrap();
    let vm = &a.pods[0];
    let (red_pod, blue_pod) = (&b.pods[0], &b.pods[1]);
    let red = attach_nested(&a, vm, "red", 100, Ipv4Addr::new(198, 18, 2, 50), red_pod.gateway4);
    let blue = attach_nested(&a, vm, "blue", 200, Ipv4Addr::new(198, 18, 3, 50), blue_pod.gateway4);
    route_to_pod(&a, &b, 0, Encap::MplsOverUdp, 0);
    route_to_pod(&a, &b, 1, Encap::MplsOverUdp, 0);
    for (vrf, nested) in [("red", &red), ("blue", &blue)] {
        let route = RouteSpec {
            vrf: vrf.into(),
            prefix: std::net::IpAddr::from(nested.address).into(),
            target: RouteTarget::Tunnel {
                remote: a.fabric_ip(),
                label: nested.label,
                encaps: vec![Encap::MplsOverUdp],
                mac: None,
            },
        };
        b.api().call::<serde_json::Value>(&Request::AddRoute { route }).unwrap();
    }
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    assert_eq!(
        nested_ping(vm, &red, red_pod.ipv4),
        0,
        "VLAN 100 -> red on node 2\n{}",
        logs()
    );
    assert_eq!(
        nested_ping(vm, &blue, blue_pod.ipv4),
        0,
        "VLAN 200 -> blue on node 2\n{}",
        logs()
    );
    assert_eq!(nested_ping(vm, &red, blue_pod.ipv4), 1, "VLAN 100 (red) reached blue");
    assert_eq!(nested_ping(vm, &blue, red_pod.ipv4), 1, "VLAN 200 (blue) reached red");
    // Each reply came back on its own tag (the script checks it: exit 2 otherwise),
    // and the VM's own untagged traffic is its own VRF's: it does not reach red.
    assert!(!ping(vm, red_pod.ipv4.into(), 1), "the VM (vms) reached red");
}
