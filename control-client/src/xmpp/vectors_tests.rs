//! Every captured message and tf-controller fixture in `testdata/xmpp`, framed and
//! read as the vrouter reads them: each complete, well-formed file gives the
//! structure it holds; the broken ones (a redacted attribute, a capture cut
//! mid-stanza, a raw log) are refused or held, never a panic.

use super::*;
use std::path::Path;

/// The frames of a file, framed in one go.
fn frames_of(name: &str) -> Result<Vec<Frame>, FrameError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/xmpp").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut framer = Framer::new(1 << 20);
    framer.push(&bytes);
    let mut out = Vec::new();
    while let Some(frame) = framer.next_frame()? {
        out.push(frame);
    }
    Ok(out)
}

fn stanzas(name: &str) -> Vec<Element> {
    frames_of(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .map(|f| match f {
            Frame::Stanza(s) => Element::parse(&s).unwrap_or_else(|e| panic!("{name}: {e}")),
            other => panic!("{name}: {other:?}"),
        })
        .collect()
}

/// The `subscribe` or `unsubscribe` node an agent stanza names.
fn subscription(e: &Element) -> Option<(&str, &str)> {
    let op = e
        .child("pubsub")?
        .children
        .iter()
        .find(|c| c.name.ends_with("subscribe"))?;
    Some((op.name.as_str(), op.attr("node")?))
}

#[test]
fn stream_opens_frame_as_stream_opens() {
    for name in [
        "01_agent_stream_open_opensdn_2026.txt",
        "01b_stream_open_agent_style_2022.txt",
        "02_cn_stream_open_response_2013.txt",
        "02b_cn_stream_open_response_handcrafted_opensdn.txt",
    ] {
        let frames = frames_of(name).unwrap();
        assert!(
            matches!(&frames[..], [Frame::StreamOpen(tag)] if tag.contains("etherx.jabber.org/streams")),
            "{name}: {frames:?}"
        );
    }
}

#[test]
fn agent_subscriptions_name_their_node() {
    let expect = [
        (
            "03_agent_config_subscribe_oldformat_2013.xml",
            "subscribe",
            "default-global-system-config:nodea1.bng-contrail.englab.juniper.net",
        ),
        (
            "04b_agent_vrouter_config_subscribe_2022.xml",
            "subscribe",
            "virtual-router:default-global-system-config:worker-3",
        ),
        (
            "05_agent_vm_config_subscribe_2015.xml",
            "subscribe",
            "virtual-machine:213d8cec-c37d-44f0-809e-51493c9dff84",
        ),
        (
            "09_agent_vm_config_subscribe_2016.xml",
            "subscribe",
            "virtual-machine:5075756e-ae49-4ced-88f8-46af16bfce3f",
        ),
        (
            "12_agent_routing_instance_subscribe_instance_id_2013.xml",
            "subscribe",
            "default-domain:default-project:ip-fabric:__default__",
        ),
        (
            "12b_routing_instance_subscribe_no_options_2022.xml",
            "subscribe",
            "default-domain:default:ext-vn2:ext-vn2",
        ),
        ("tf-controller_src_bgp_testdata_pubsub_sub.xml", "subscribe", "blue"),
        ("tf-controller_src_bgp_testdata_pubsub_usub.xml", "unsubscribe", "blue"),
    ];
    for (name, op, node) in expect {
        let s = stanzas(name);
        assert_eq!(s.len(), 1, "{name}");
        assert_eq!(subscription(&s[0]), Some((op, node)), "{name}");
    }
    let sub3 = stanzas("tf-controller_src_bgp_testdata_pubsub_sub3.xml");
    assert!(subscription(&sub3[0]).is_some_and(|(op, _)| op == "subscribe"));
    // Ours for the same nodes, element by element.
    let ours = Element::parse(&messages::config_subscribe(
        "worker-3",
        &messages::virtual_router_node("worker-3"),
    ))
    .unwrap();
    let theirs = &stanzas("04b_agent_vrouter_config_subscribe_2022.xml")[0];
    assert_eq!(subscription(&ours), subscription(theirs));
    assert_eq!(ours.attr("to"), theirs.attr("to"));
    let vm = Element::parse(&messages::config_subscribe(
        "comp45",
        "virtual-machine:5075756e-ae49-4ced-88f8-46af16bfce3f",
    ))
    .unwrap();
    assert_eq!(
        subscription(&vm),
        subscription(&stanzas("09_agent_vm_config_subscribe_2016.xml")[0])
    );
}

#[test]
fn agent_publish_and_collection_streams_parse() {
    for name in [
        "07_agent_route_publish_inet_2015_elided.xml",
        "tf-controller_src_bgp_testdata_pubsub_pub.xml.stream",
        "tf-controller_src_bgp_testdata_pubsub_dis.xml.stream",
    ] {
        let ops: Vec<String> = stanzas(name)
            .iter()
            .map(|s| s.child("pubsub").unwrap().children[0].name.clone())
            .collect();
        assert!(
            ops.iter().all(|o| o == "publish" || o == "collection"),
            "{name}: {ops:?}"
        );
        assert!(ops.contains(&"publish".to_string()), "{name}: {ops:?}");
    }
}

#[test]
fn control_node_route_messages_decode() {
    for (name, items) in [
        ("10_cn_route_update_inet_single_nh_2016.xml", 1),
        ("11_cn_route_update_inet_2items_tags_2022.xml", 2),
    ] {
        let s = stanzas(name);
        let Ok(Incoming::Routes(update)) = Incoming::decode(&s[0]) else {
            panic!("{name}")
        };
        assert_eq!(update.items.len(), items, "{name}");
    }
    // The capture cut after its first item still reads up to the cut once closed:
    // the prefix (from the item id), the next hop and the label.
    let cut = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/xmpp/08_cn_route_update_inet_2015_elided.xml"),
    )
    .unwrap();
    let closed = format!(
        "{}</entry></item></items></event></message>",
        cut.trim_end().trim_end_matches("...")
    );
    let Ok(Incoming::Routes(update)) =
        Incoming::decode(&Element::parse(closed.trim_start_matches("<?xml version=\"1.0\"?>\n")).unwrap())
    else {
        panic!()
    };
    let item = &update.items[0];
    assert_eq!(item.prefix, Some("192.168.0.3/32".parse().unwrap()));
    assert_eq!(
        (item.next_hops[0].address, item.next_hops[0].label),
        (Some([10, 43, 91, 12].into()), 16)
    );
}

#[test]
fn control_node_config_streams_decode_as_config_updates() {
    let mut files = vec![
        "06_cn_config_update_vm_2015_elided.xml".to_string(),
        "tf-controller_src_ifmap_testdata_cli1_vn1_vm3_add.master_output.xml.stream".to_string(),
    ];
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/xmpp/opensdn_tutorial_config")).unwrap()
    {
        files.push(format!(
            "opensdn_tutorial_config/{}",
            entry.unwrap().file_name().to_string_lossy()
        ));
    }
    assert_eq!(files.len(), 8);
    for name in &files {
        let all = stanzas(name);
        assert!(!all.is_empty(), "{name}");
        for s in &all {
            let Ok(Incoming::Config(config)) = Incoming::decode(s) else {
                panic!("{name}: not a config update")
            };
            assert!(
                config.children.iter().all(|c| c.name == "update" || c.name == "delete"),
                "{name}"
            );
            let nodes = config.children.iter().flat_map(|u| u.children_named("node")).count();
            let links = config.children.iter().flat_map(|u| u.children_named("link")).count();
            assert!(nodes + links > 0, "{name}");
        }
    }
}

#[test]
fn broken_files_are_refused_without_a_panic() {
    // A redacted capture: `from="<HYPERVISOR>/dns"` is not well-formed XML.
    let dns = frames_of("20_agent_dns_update_port8093_2016.xml").unwrap();
    let [Frame::Stanza(text)] = &dns[..] else {
        panic!("{dns:?}")
    };
    let acted_on = Element::parse(text).ok().and_then(|e| Incoming::decode(&e).ok());
    assert!(matches!(acted_on, None | Some(Incoming::Other(_))), "{acted_on:?}");
    // A capture cut mid-stanza never completes: the framer waits, bounded.
    assert!(frames_of("08_cn_route_update_inet_2015_elided.xml").unwrap().is_empty());
    // A raw log is not a stream.
    assert!(frames_of("02_03_12_trace_2013_raw.log").is_err());
}
