//! Two vrouters (their control sides, no data plane) and the control-node peer over
//! loopback TCP: each learns the other's pod route over XMPP, and loses it when the
//! other goes away.

use super::*;
use control_client::{DesiredState, InterfaceSpec, PeerId, SnapshotPublisher};
use nexthop::encap::Encap;
use nexthop::{FabricInfo, MacAddr, NextHop, VrfId};
use std::net::Ipv4Addr;
use std::time::Instant;
use vrouter::control::task::{spawn, ControlTask};
use vrouter::control::Control;
use vrouter::xmpp::{ChannelSetup, ChannelStats};

/// A node at fabric address 198.18.0.`n` with pod 198.18.1.`n` in red.
fn node(n: u8, dir: &std::path::Path) -> (ControlTask, SnapshotPublisher) {
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    model.set_fabric_info(FabricInfo {
        ip: Some(Ipv4Addr::new(198, 18, 0, n)),
        mac: MacAddr([2, 0, 0, 0, 0, n]),
        mtu: 1500,
    });
    let (mut control, publisher) = Control::detached(model, vrouter::store::StateStore::open(dir).unwrap(), 100);
    let pod = InterfaceSpec {
        name: format!("p{n}"),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 1, n]),
        ipv4: Some(Ipv4Addr::new(198, 18, 1, n)),
        mtu: Some(1500),
        ..InterfaceSpec::default()
    };
    control.add_interface(pod).unwrap();
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    (spawn(control, Duration::from_secs(60), ready).unwrap(), publisher)
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What node `snap` does with a packet to `dst` in red.
fn towards(publisher: &SnapshotPublisher, dst: [u8; 4]) -> Option<NextHop> {
    publisher.load().route4(VrfId(1), dst.into()).copied()
}

#[test]
fn two_vrouters_learn_each_others_pods_through_the_peer_and_forget_them() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (task_a, pub_a) = node(1, dirs.0.path());
    let (task_b, pub_b) = node(2, dirs.1.path());
    let label_b = pub_b.load().interface_by_name("p2").unwrap().label.unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let (stop_peer, peer_stop) = watch::channel(false);
        let peer = tokio::spawn(serve(listener, peer_stop));
        let channel = |n: u8| ChannelSetup {
            peer: PeerId(0),
            server,
            host: format!("node-{n}"),
            hold_time: Duration::from_secs(30),
            fabric_ip: Ipv4Addr::new(198, 18, 0, n),
            encaps: vec![Encap::MplsOverUdp],
            config: Default::default(),
            tls: None,
        };
        let (stop_a, a_stop) = watch::channel(false);
        let (stop_b, b_stop) = watch::channel(false);
        let stats = |n| Arc::new(ChannelStats::new(&channel(n)));
        let a = tokio::spawn(vrouter::xmpp::run(channel(1), pub_a.clone(), task_a.handle(), stats(1), a_stop));
        let b = tokio::spawn(vrouter::xmpp::run(channel(2), pub_b.clone(), task_b.handle(), stats(2), b_stop));
        // Each node reaches the other's pod through a tunnel to the other's fabric
        // address, by the label the other gave it.
        let a_to_b = || matches!(towards(&pub_a, [198, 18, 1, 2]), Some(NextHop::Tunnel { remote, label, .. }) if remote == Ipv4Addr::new(198, 18, 0, 2) && label == label_b);
        eventually("node 1 learns node 2's pod", a_to_b).await;
        eventually("node 2 learns node 1's pod", || {
            matches!(towards(&pub_b, [198, 18, 1, 1]), Some(NextHop::Tunnel { remote, .. }) if remote == Ipv4Addr::new(198, 18, 0, 1))
        })
        .await;
        // Node 2 goes away: the peer withdraws its route from node 1.
        stop_b.send(true).unwrap();
        b.await.unwrap();
        eventually("node 1 forgets node 2's pod", || towards(&pub_a, [198, 18, 1, 2]).is_none()).await;
        assert!(towards(&pub_a, [198, 18, 1, 1]).is_some(), "its own pod stays");
        stop_a.send(true).unwrap();
        a.await.unwrap();
        stop_peer.send(true).unwrap();
        peer.await.unwrap().unwrap();
    });
    task_a.shutdown();
    task_b.shutdown();
}
