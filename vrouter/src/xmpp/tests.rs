//! A channel against a control node played by the test over loopback TCP: it opens
//! the stream, subscribes the pod's VRF and publishes the pod's route, applies the
//! route the control node sends, keeps it when the connection drops, and comes back.

use super::*;
use crate::control::task::spawn;
use crate::control::Control;
use crate::store::StateStore;
use control_client::xmpp::{Element, Frame, Framer};
use control_client::{DesiredState, InterfaceSpec};
use nexthop::{FabricInfo, MacAddr, NextHop, VrfId};
use tokio::net::TcpListener;

/// Reads frames from `stream` until one satisfies `want` (bounded in time).
async fn read_until(stream: &mut TcpStream, framer: &mut Framer, want: impl Fn(&Frame) -> bool) -> Vec<Frame> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(frame) = framer.next_frame().expect("the vrouter frames well") {
            let done = want(&frame);
            seen.push(frame);
            if done {
                return seen;
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out; seen {seen:?}"))
            .unwrap();
        assert!(n > 0, "the vrouter closed the connection; seen {seen:?}");
        framer.push(&buf[..n]);
    }
}

fn stanza_has(frame: &Frame, needle: &str) -> bool {
    matches!(frame, Frame::Stanza(s) if s.contains(needle))
}

const CN_OPEN: &str = r#"<stream:stream from="network-control@contrailsystems.com" to="node-1" id="++1" version="1.0" xml:lang="en" xmlns="" xmlns:stream="http://etherx.jabber.org/streams" >"#;

const ROUTE: &str = r#"<message from="network-control@contrailsystems.com" to="node-1/bgp-peer"><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/red"><item id="198.19.0.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.19.0.0/24</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>20</label><tunnel-encapsulation-list><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list></next-hop></next-hops></entry></item></items></event></message>"#;

const END_OF_RIB: &str = r#"<message from="network-control@contrailsystems.com" to="node-1/bgp-peer"><event xmlns="http://jabber.org/protocol/pubsub"><items node="0/0/EndOfRib"></items></event></message>"#;

#[test]
fn a_channel_tells_learns_keeps_routes_headless_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    model.set_fabric_info(FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        mtu: 1500,
    });
    let (mut control, publisher) = Control::detached(model, StateStore::open(dir.path()).unwrap(), 100);
    let pod = InterfaceSpec {
        name: "p".into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 2]),
        ipv4: Some([198, 18, 1, 2].into()),
        mtu: Some(1500),
        ..InterfaceSpec::default()
    };
    control.add_interface(pod).unwrap();
    let task = spawn(control, Duration::from_secs(60), Arc::new(AtomicBool::new(false))).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let setup = ChannelSetup {
            peer: PeerId(0),
            server: listener.local_addr().unwrap(),
            host: "node-1".into(),
            hold_time: Duration::from_secs(9),
            fabric_ip: [198, 18, 0, 1].into(),
            encaps: vec![Encap::MplsOverUdp, Encap::MplsOverGre],
            config: Default::default(),
            tls: None,
        };
        let stats = Arc::new(ChannelStats::new(&setup));
        let (stop, shutdown) = watch::channel(false);
        let channel = tokio::spawn(run(
            setup,
            publisher.clone(),
            task.handle(),
            Arc::clone(&stats),
            shutdown,
        ));
        // The vrouter opens; the control node answers; the vrouter subscribes red
        // with its instance id and publishes the pod's route, then associates it.
        let (mut cn, _) = listener.accept().await.unwrap();
        let mut framer = Framer::new(1 << 20);
        read_until(
            &mut cn,
            &mut framer,
            |f| matches!(f, Frame::StreamOpen(t) if t.contains("from=\"node-1\"")),
        )
        .await;
        cn.write_all(CN_OPEN.as_bytes()).await.unwrap();
        let told = read_until(&mut cn, &mut framer, |f| stanza_has(f, "<associate")).await;
        assert!(
            told.iter()
                .any(|f| stanza_has(f, "<subscribe node=\"red\"><options><instance-id>1</instance-id>")),
            "{told:?}"
        );
        let publish = told.iter().find(|f| stanza_has(f, "<publish")).expect("a publish");
        let Frame::Stanza(publish) = publish else {
            unreachable!()
        };
        let entry = Element::parse(publish).unwrap();
        let nh = entry
            .child("pubsub")
            .and_then(|p| p.child("publish"))
            .and_then(|p| p.child("item"));
        let nh = nh
            .and_then(|i| i.child("entry"))
            .and_then(|e| e.child("next-hops"))
            .and_then(|n| n.child("next-hop"))
            .unwrap();
        assert_eq!(nh.child_text("address"), Some("198.18.0.1"));
        assert!(publish.contains("<address>198.18.1.2/32</address>"));
        // Then the end of its routes: an IQ publish with no item, after the associate.
        let end = read_until(&mut cn, &mut framer, |f| stanza_has(f, "<publish />")).await;
        let Some(Frame::Stanza(end)) = end.last() else {
            panic!("{end:?}")
        };
        let end = Element::parse(end).unwrap();
        let publish = end.child("pubsub").and_then(|p| p.child("publish")).unwrap();
        assert!(publish.attr("node").is_none() && publish.children.is_empty());
        assert_eq!(end.attr("to"), Some("network-control@contrailsystems.com/bgp-peer"));
        // A route from the control node reaches the forwarding state.
        cn.write_all(ROUTE.as_bytes()).await.unwrap();
        let learned = || {
            matches!(
                publisher.load().route4(VrfId(1), [198, 19, 0, 7].into()),
                Some(NextHop::Tunnel { label: 20, .. })
            )
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !learned() {
            assert!(Instant::now() < deadline, "the route never reached the snapshot");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(stats.up.load(Ordering::Relaxed));
        let view = stats.view();
        assert!(
            view.up && view.route_messages == 1 && view.up_for_secs.is_some(),
            "{view:?}"
        );
        assert!(
            view.trace
                .iter()
                .any(|l| l.starts_with("> <iq type=\"set\"") && l.contains("<publish")),
            "{view:?}"
        );
        assert!(
            view.trace.iter().any(|l| l == "< routes Inet red: 1 items, 0 retracts"),
            "{view:?}"
        );
        // The control node goes away: the route stays (headless); the channel comes
        // back (after the agent's 1 s back-off) and tells everything again.
        drop(cn);
        let (mut cn, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert!(learned(), "routes are kept while the control node is away");
        let mut framer = Framer::new(1 << 20);
        read_until(&mut cn, &mut framer, |f| matches!(f, Frame::StreamOpen(_))).await;
        cn.write_all(CN_OPEN.as_bytes()).await.unwrap();
        read_until(&mut cn, &mut framer, |f| stanza_has(f, "<subscribe node=\"red\"")).await;
        assert_eq!(stats.established.load(Ordering::Relaxed), 2);
        assert_eq!(
            stats.view().last_error.as_deref(),
            Some("the control node closed the connection"),
            "why it went down last"
        );
        // Graceful restart: the node sends another route and its end-of-RIB; the old
        // route forwarded until then, and is swept now.
        assert!(learned(), "no forwarding gap while the node re-syncs");
        cn.write_all(ROUTE.replace("198.19.0.0", "198.19.1.0").as_bytes())
            .await
            .unwrap();
        cn.write_all(END_OF_RIB.as_bytes()).await.unwrap();
        let resynced = || {
            let snap = publisher.load();
            snap.route4(VrfId(1), [198, 19, 1, 7].into()).is_some()
                && snap.route4(VrfId(1), [198, 19, 0, 7].into()).is_none()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !resynced() {
            assert!(Instant::now() < deadline, "the stale route was never swept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Shutting down closes the stream.
        stop.send(true).unwrap();
        read_until(&mut cn, &mut framer, |f| *f == Frame::StreamClose).await;
        tokio::time::timeout(Duration::from_secs(10), channel)
            .await
            .unwrap()
            .unwrap();
    });
    task.shutdown();
}
