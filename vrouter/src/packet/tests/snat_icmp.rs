//! ICMP through fabric source NAT: a pod's ping leaves from the node's address with
//! an echo identifier of the range and its reply comes back to the pod; an echo
//! reply no pod awaits is the node's own, handed to its kernel; an error about a
//! pod's translated connection reaches the pod about the packet the pod sent. Exact
//! bytes.

use super::floating::ping4;
use super::node_ports::{with_node, CLIENT_MAC, FABRIC_IP, FABRIC_MAC, HOST_MAC, OUTSIDE};
use super::services::{port_unreachable4_quoting, udp4p};
use super::*;

/// The echo identifier of a frame.
fn ident(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[ETH_LEN + 24], frame[ETH_LEN + 25]])
}

#[test]
fn a_pods_ping_leaves_from_the_node_address_and_its_reply_comes_back() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &ping4(MAC_A, ROUTER, A4, OUTSIDE, 0x1234, 64, false),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    let id = ident(&out);
    assert!((63_000..=63_049).contains(&id), "{id}");
    assert_eq!(out, ping4(ROUTER, HOST_MAC, FABRIC_IP, OUTSIDE, id, 63, false));
    // The reply on the fabric, to the node's address and that identifier.
    let reply = ping4(CLIENT_MAC, FABRIC_MAC, OUTSIDE, FABRIC_IP, id, 64, true);
    let (v, out) = run_in(&snap, Vif(0), &reply, &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out, ping4(ROUTER, MAC_A, OUTSIDE, A4, 0x1234, 63, true));
    // Another pod's ping with the same identifier to the same host takes another.
    let (v, out) = run_in(
        &snap,
        Vif(2),
        &ping4(MAC_B, ROUTER, B4, OUTSIDE, 0x1234, 64, false),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    assert_ne!(ident(&out), id);
    let view = ctx.flows.table.stats();
    assert_eq!(view.active, 4, "two pings, each a translated pair");
}

#[test]
fn an_echo_reply_no_pod_awaits_goes_to_the_nodes_kernel() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    let reply = ping4(CLIENT_MAC, FABRIC_MAC, OUTSIDE, FABRIC_IP, 63_001, 64, true);
    let (v, out) = run_in(&snap, Vif(0), &reply, &mut ctx);
    assert_eq!(v, Verdict::Transmit(host), "to the node's interface");
    assert_eq!(
        out,
        ping4(ROUTER, HOST_MAC, OUTSIDE, FABRIC_IP, 63_001, 64, true),
        "as it came"
    );
    assert_eq!(ctx.flows.table.stats().active, 0, "no flow for it");
}

#[test]
fn an_error_about_a_translated_connection_reaches_the_pod_about_what_it_sent() {
    let (snap, _) = with_node();
    let mut ctx = PipelineContext::default();
    let (_, sent) = run_in(
        &snap,
        Vif(1),
        &udp4p(MAC_A, ROUTER, A4, OUTSIDE, (5000, 53), 64),
        &mut ctx,
    );
    let quote = |frame: &[u8]| frame[ETH_LEN..ETH_LEN + 28].to_vec();
    // The host outside answers with port unreachable about the translated datagram.
    let error = port_unreachable4_quoting((CLIENT_MAC, FABRIC_MAC), OUTSIDE, FABRIC_IP, 64, &quote(&sent));
    let (v, out) = run_in(&snap, Vif(0), &error, &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    // The pod's datagram as it left the pod (less the router's hop).
    let as_sent = quote(&udp4p(MAC_A, ROUTER, A4, OUTSIDE, (5000, 53), 63));
    assert_eq!(
        out,
        port_unreachable4_quoting((ROUTER, MAC_A), OUTSIDE, A4, 63, &as_sent)
    );
    // An error about nothing the vrouter translated is the node's own.
    let other = quote(&udp4p(HOST_MAC, CLIENT_MAC, FABRIC_IP, OUTSIDE, (40_000, 53), 63));
    let error = port_unreachable4_quoting((CLIENT_MAC, FABRIC_MAC), OUTSIDE, FABRIC_IP, 64, &other);
    let (v, _) = run_in(&snap, Vif(0), &error, &mut ctx);
    assert_eq!(v, Verdict::Transmit(snap.host.unwrap().vif));
}
