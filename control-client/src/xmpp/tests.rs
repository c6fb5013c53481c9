//! The protocol against real captures and tf-controller's fixtures, byte by byte
//! and element by element, and the session under simulated time.

use super::*;
use std::time::{Duration, Instant};

macro_rules! vector {
    ($file:literal) => {
        include_str!(concat!("../../testdata/xmpp/", $file))
    };
}

/// Frames everything in `input`, fed one byte at a time (the worst split).
fn frames_bytewise(input: &[u8]) -> Vec<Frame> {
    let mut framer = Framer::new(1 << 20);
    let mut out = Vec::new();
    for b in input {
        framer.push(std::slice::from_ref(b));
        while let Some(frame) = framer.next_frame().unwrap() {
            out.push(frame);
        }
    }
    out
}

fn routes(stanza: &str) -> RouteUpdate {
    match Incoming::decode(&Element::parse(stanza).unwrap()).unwrap() {
        Incoming::Routes(update) => update,
        other => panic!("not a route update: {other:?}"),
    }
}

#[test]
fn the_stream_open_is_the_real_agents_byte_for_byte() {
    let captured = vector!("01_agent_stream_open_opensdn_2026.txt").trim_end();
    assert_eq!(messages::stream_open("opensdn-VirtualBox"), captured);
}

#[test]
fn subscribe_with_instance_id_is_the_real_agents_byte_for_byte() {
    let captured = vector!("12_agent_routing_instance_subscribe_instance_id_2013.xml").trim_end();
    let ours = messages::subscribe(
        "default-global-system-config:nodea1.bng-contrail.englab.juniper.net",
        0,
        "default-domain:default-project:ip-fabric:__default__",
        0,
    );
    assert_eq!(ours, captured);
    // Element by element, the other captured and fixture forms say the same.
    let theirs = Element::parse(vector!("12b_routing_instance_subscribe_no_options_2022.xml")).unwrap();
    let mine = Element::parse(&messages::subscribe(
        "worker-3",
        3,
        "default-domain:default:ext-vn2:ext-vn2",
        7,
    ))
    .unwrap();
    for e in [&theirs, &mine] {
        assert_eq!((e.name.as_str(), e.attr("type")), ("iq", Some("set")));
        let sub = e.child("pubsub").and_then(|p| p.child("subscribe")).unwrap();
        assert_eq!(sub.attr("node"), Some("default-domain:default:ext-vn2:ext-vn2"));
    }
    assert_eq!(
        e_text(&mine, &["pubsub", "subscribe", "options", "instance-id"]),
        Some("7")
    );
    let fixture = Element::parse(vector!("tf-controller_src_bgp_testdata_pubsub_sub.xml")).unwrap();
    assert_eq!(
        fixture
            .child("pubsub")
            .and_then(|p| p.child("subscribe"))
            .and_then(|s| s.attr("node")),
        Some("blue")
    );
    let unsub = Element::parse(vector!("tf-controller_src_bgp_testdata_pubsub_usub.xml")).unwrap();
    let ours = Element::parse(&messages::unsubscribe("h", 1, "blue")).unwrap();
    for e in [&unsub, &ours] {
        assert_eq!(
            e.child("pubsub")
                .and_then(|p| p.child("unsubscribe"))
                .and_then(|s| s.attr("node")),
            Some("blue")
        );
    }
}

fn e_text<'a>(e: &'a Element, path: &[&str]) -> Option<&'a str> {
    let mut at = e;
    for name in path {
        at = at.child(name)?;
    }
    Some(at.text.as_str())
}

#[test]
fn a_control_nodes_stream_open_and_route_update_frame_and_decode_however_split() {
    // The 2013 control node: an XML declaration, then its open; then a message with
    // its own declaration, keepalives and whitespace in between.
    let mut input = Vec::new();
    input.extend_from_slice(vector!("02_cn_stream_open_response_2013.txt").as_bytes());
    input.extend_from_slice("\u{200}\n\u{200}".as_bytes());
    input.extend_from_slice(vector!("10_cn_route_update_inet_single_nh_2016.xml").as_bytes());
    input.extend_from_slice(b"<!-- a comment -->\n</stream:stream>");
    let frames = frames_bytewise(&input);
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert!(matches!(&frames[0], Frame::StreamOpen(tag) if tag.contains("id=\"++123\"")));
    assert_eq!(frames[2], Frame::StreamClose);
    let Frame::Stanza(stanza) = &frames[1] else {
        panic!("{:?}", frames[1])
    };
    let update = routes(stanza);
    assert_eq!(update.family, Family::Inet);
    assert_eq!(update.vrf, "default-domain:admin:VN-R:VN-R");
    assert!(update.retracts.is_empty());
    let item = &update.items[..];
    assert_eq!(item.len(), 1);
    assert_eq!(item[0].id, "200.200.200.0/24");
    assert_eq!(item[0].prefix, Some("200.200.200.0/24".parse().unwrap()));
    assert_eq!(item[0].virtual_network.as_deref(), Some("default-domain:admin:VN-L"));
    assert_eq!((item[0].local_preference, item[0].sequence), (Some(200), Some(1)));
    let nh = &item[0].next_hops[..];
    assert_eq!(nh.len(), 1);
    assert_eq!(nh[0].address, Some("172.222.45.2".parse().unwrap()));
    assert_eq!(nh[0].label, 23);
    assert_eq!(nh[0].encapsulations, ["gre", "udp"]);
}

#[test]
fn two_items_with_tags_and_the_handcrafted_open_decode() {
    let frames = frames_bytewise(vector!("02b_cn_stream_open_response_handcrafted_opensdn.txt").as_bytes());
    assert!(matches!(&frames[..], [Frame::StreamOpen(_)]));
    let update = routes(vector!("11_cn_route_update_inet_2items_tags_2022.xml"));
    assert_eq!(update.vrf, "default-domain:default:ext-vn2:ext-vn2");
    let ids: Vec<&str> = update.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["2.0.0.2/32", "10.235.65.0/32"]);
    let first = &update.items[0].next_hops[0];
    assert_eq!((first.label, first.vni, first.mac.as_deref()), (47, None, None));
    assert_eq!(first.tags, [65543, 524295]);
    assert_eq!(update.items[1].next_hops[0].tags.len(), 4);
}

#[test]
fn retracts_ecmp_and_end_of_rib_decode() {
    let stanza = r#"<message from="network-control@contrailsystems.com" to="h/bgp-peer"><event xmlns="http://jabber.org/protocol/pubsub"><items node="2/1/red"><retract id="2001:db8::1/128"/><retract id="2001:db8::2/128"/></items></event></message>"#;
    let update = routes(stanza);
    assert_eq!(
        (update.family, update.retracts.len(), update.items.len()),
        (Family::Inet6, 2, 0)
    );
    let ecmp = r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/red"><item id="198.18.5.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.18.5.0/24</address></nlri><next-hops>
        <next-hop><af>1</af><address>198.18.0.2</address><label>20</label><tunnel-encapsulation-list><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list></next-hop>
        <next-hop><af>1</af><address>198.18.0.3</address><label>21</label></next-hop>
        <next-hop><af>1</af><address>198.18.0.4</address><label>22</label><unknown-future-element/></next-hop>
        </next-hops></entry></item></items></event></message>"#;
    let update = routes(ecmp);
    let labels: Vec<u32> = update.items[0].next_hops.iter().map(|n| n.label).collect();
    assert_eq!(labels, [20, 21, 22], "three members, unknown elements tolerated");
    let eor = r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="0/0/EndOfRib"></items></event></message>"#;
    assert_eq!(Incoming::decode(&Element::parse(eor).unwrap()), Ok(Incoming::EndOfRib));
}

#[test]
fn tf_controllers_bad_items_are_refused_one_by_one() {
    for bad in [
        vector!("tf-controller_src_bgp_testdata_bad_inet_item_1.xml"),
        vector!("tf-controller_src_bgp_testdata_bad_enet_item_1.xml"),
        vector!("tf-controller_src_bgp_testdata_bad_mcast_item_1.xml"),
    ] {
        let item = bad.trim().replacen("<item>", "<item id=\"x\">", 1);
        let stanza = format!(
            r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/red">{item}</items></event></message>"#
        );
        let element = Element::parse(&stanza).expect("well-formed XML");
        assert!(Incoming::decode(&element).is_err(), "{bad}");
    }
}

#[test]
fn the_framer_bounds_stanzas_and_refuses_text_between_them() {
    let mut framer = Framer::new(64);
    framer.push(b"<message>");
    framer.push(&[b'a'; 100]);
    assert_eq!(framer.next_frame(), Err(FrameError::TooLarge(64)));
    let mut framer = Framer::new(64);
    framer.push(b"hello <iq/>");
    assert!(matches!(framer.next_frame(), Err(FrameError::Unexpected(_))));
    let mut framer = Framer::new(64);
    framer.push(b"<a x='>'><b/><![CDATA[</a>]]></a><c/>");
    assert_eq!(
        framer.next_frame(),
        Ok(Some(Frame::Stanza("<a x='>'><b/><![CDATA[</a>]]></a>".into())))
    );
    assert_eq!(framer.next_frame(), Ok(Some(Frame::Stanza("<c/>".into()))));
    assert_eq!(framer.next_frame(), Ok(None));
    assert_eq!(framer.buffered(), 0);
    assert!(Element::parse(&"<a>".repeat(MAX_DEPTH + 1)).is_err());
}

fn session(now: Instant) -> Session {
    let config = SessionConfig {
        host: "node-1".into(),
        ..SessionConfig::default()
    };
    Session::new(config, now)
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn a_session_opens_keeps_alive_and_expires_its_hold_timer_in_simulated_time() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let sent = s.poll_transmit().unwrap();
    assert_eq!(sent, messages::stream_open("node-1").as_bytes());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(90)));
    s.handle_input(
        vector!("02b_cn_stream_open_response_handcrafted_opensdn.txt").as_bytes(),
        t0,
    );
    assert_eq!(events(&mut s), [Event::Established]);
    // Nothing sent for a third of the hold time: a keepalive goes out.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    s.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(s.poll_transmit().unwrap(), "\u{200}".as_bytes());
    // The peer's keepalives keep it up; then it goes silent for the hold time.
    s.handle_input("\u{200}".as_bytes(), t0 + Duration::from_secs(60));
    s.handle_timeout(t0 + Duration::from_secs(149));
    assert_eq!(s.state(), State::Established);
    s.handle_timeout(t0 + Duration::from_secs(150));
    assert_eq!(s.state(), State::Closed);
    assert!(events(&mut s).contains(&Event::Closed(CloseReason::HoldTimerExpired)));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_session_reports_bad_stanzas_and_closes_on_garbage_or_an_endless_stanza() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_input(
        vector!("02b_cn_stream_open_response_handcrafted_opensdn.txt").as_bytes(),
        t0,
    );
    s.handle_input(
        b"<message><event><items node='1/1/red'><item/></items></event></message>",
        t0,
    );
    s.handle_input(b"<iq type='set'><a></b></iq>", t0);
    let got = events(&mut s);
    assert_eq!(got[0], Event::Established);
    assert!(matches!(got[1], Event::Unusable(_)), "{got:?}");
    assert!(matches!(got[2], Event::Unusable(_)), "{got:?}");
    assert_eq!(s.state(), State::Established, "a bad stanza does not close the channel");
    s.handle_input(b"garbage", t0);
    assert!(matches!(events(&mut s)[..], [Event::Closed(CloseReason::Framing(_))]));
    let mut s = Session::new(
        SessionConfig {
            max_stanza: 1024,
            ..SessionConfig::default()
        },
        t0,
    );
    s.handle_input(b"<stream:stream><message>", t0);
    for _ in 0..100 {
        s.handle_input(&[b'x'; 64], t0);
    }
    assert_eq!(
        events(&mut s)[1],
        Event::Closed(CloseReason::Framing(FrameError::TooLarge(1024)))
    );
    // The peer closing its stream is answered with ours.
    let mut s = session(t0);
    let _ = s.poll_transmit();
    s.handle_input(b"<stream:stream from='cn'></stream:stream>", t0);
    assert_eq!(s.poll_transmit().unwrap(), b"</stream:stream>");
    assert!(events(&mut s).contains(&Event::Closed(CloseReason::PeerClosed)));
}

#[test]
fn reconnects_back_off_as_the_agent_does_with_jitter() {
    let secs = |n| reconnect_delay(n, 0.0).as_secs_f64();
    let delays: Vec<f64> = (0..8).map(secs).collect();
    assert_eq!(delays, [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]);
    assert_eq!(reconnect_delay(3, 1.0), Duration::from_millis(4400));
    assert_eq!(
        reconnect_delay(3, -7.0),
        Duration::from_millis(3600),
        "jitter is clamped"
    );
}

#[test]
fn this_nodes_end_of_rib_is_the_form_a_control_node_acts_on() {
    // tf-controller's control-node test agent (network_agent_mock.cc, AddEorMarker)
    // and BgpXmppChannel::ReceiveUpdate: an IQ set on the bgp-peer resource whose
    // pubsub publish has no item is the end-of-RIB for every family.
    let mock = "<iq type=\"set\" from=\"agent-a\" to=\"network-control@contrailsystems.com/bgp-peer\"><pubsub xmlns=\"http://jabber.org/protocol/pubsub\"><publish/></pubsub></iq>";
    let (theirs, ours) = (
        Element::parse(mock).unwrap(),
        Element::parse(&messages::end_of_rib("agent-a")).unwrap(),
    );
    for e in [&theirs, &ours] {
        assert_eq!((e.name.as_str(), e.attr("type")), ("iq", Some("set")));
        assert_eq!(e.attr("to"), Some("network-control@contrailsystems.com/bgp-peer"));
        assert_eq!(e.attr("from"), Some("agent-a"));
        let pubsub = e.child("pubsub").unwrap();
        assert_eq!(pubsub.attr("xmlns"), Some("http://jabber.org/protocol/pubsub"));
        let publish = pubsub.child("publish").unwrap();
        assert!(publish.child("item").is_none() && publish.attr("node").is_none());
    }
    // Ours is not a route message: a control node's decoder would not take it for one.
    assert!(!matches!(Incoming::decode(&ours), Ok(Incoming::Routes(_))));
}

fn tls_session(now: Instant) -> Session {
    let config = SessionConfig {
        host: "node-1".into(),
        tls: true,
        ..SessionConfig::default()
    };
    Session::new(config, now)
}

const TLS_FEATURES: &str =
    "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required/></starttls></stream:features>";

#[test]
fn with_tls_the_session_asks_for_starttls_then_opens_the_stream_again_inside_it() {
    let t0 = Instant::now();
    let mut s = tls_session(t0);
    assert_eq!(s.poll_transmit().unwrap(), messages::stream_open("node-1").as_bytes());
    // The peer's open and its features (split anywhere) ask for STARTTLS.
    let answer = format!("{}{TLS_FEATURES}", messages::control_node_stream_open("node-1"));
    for b in answer.as_bytes().chunks(7) {
        s.handle_input(b, t0);
    }
    assert_eq!(s.state(), State::StartTlsSent);
    assert!(events(&mut s).is_empty(), "not up before TLS");
    assert_eq!(
        s.poll_transmit().unwrap(),
        b"<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>"
    );
    s.handle_input(b"<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>", t0);
    assert_eq!(events(&mut s), [Event::StartTls]);
    assert_eq!(s.state(), State::TlsHandshake);
    assert_eq!(s.poll_transmit(), None, "nothing in the clear after proceed");
    // The caller's handshake is done: the stream opens again, and the peer's open
    // brings the channel up.
    s.tls_established(t0);
    assert_eq!(s.poll_transmit().unwrap(), messages::stream_open("node-1").as_bytes());
    s.handle_input(messages::control_node_stream_open("node-1").as_bytes(), t0);
    assert_eq!(events(&mut s), [Event::Established]);
}

#[test]
fn with_tls_a_peer_that_does_not_offer_it_or_refuses_it_is_closed() {
    let t0 = Instant::now();
    let open = messages::control_node_stream_open("node-1");
    // No STARTTLS in the features.
    let mut s = tls_session(t0);
    s.handle_input(format!("{open}<stream:features/>").as_bytes(), t0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Closed(CloseReason::Tls(_))]
    ));
    // A route message instead of features: never taken in the clear.
    let mut s = tls_session(t0);
    let update = vector!("10_cn_route_update_inet_single_nh_2016.xml");
    s.handle_input(format!("{open}{update}").as_bytes(), t0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Closed(CloseReason::Tls(_))]
    ));
    // Refused.
    let mut s = tls_session(t0);
    s.handle_input(format!("{open}{TLS_FEATURES}").as_bytes(), t0);
    s.handle_input(b"<failure xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>", t0);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::Closed(CloseReason::Tls(_))]
    ));
    // The hold timer runs while it is negotiated.
    let mut s = tls_session(t0);
    s.handle_input(format!("{open}{TLS_FEATURES}").as_bytes(), t0);
    s.handle_timeout(t0 + Duration::from_secs(90));
    assert_eq!(s.state(), State::Closed);
}
