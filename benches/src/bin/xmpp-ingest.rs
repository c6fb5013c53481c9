//! What a control node's routes cost the vrouter, from the bytes on the channel to
//! the published snapshot, on the code that runs in production (the XMPP session,
//! the decoder, the route mapping, the control side's apply and publication; no TCP):
//! - ingest: N routes over V VRFs, in messages of 32 items as a control node sends
//!   them, into a node with a pod in each VRF; routes per second and the latency of
//!   each message (received -> the workers see its routes), p50 / p99 / max;
//! - then, with the N routes installed, single-route messages at a time: latency;
//! - then through the control task, as the channel runner hands it messages:
//!   one-route messages paced at 10 and at 1000 a second, the latency from the
//!   message's bytes received to the snapshot the workers load next (an observer
//!   thread watches the publications), p50 / p99 / max;
//! - memory: RSS growth per route.
//!
//! `cargo run --release -p benches --bin xmpp-ingest -- [ROUTES] [VRFS]`
//! (default 100000 over 1000).

use control_client::xmpp::{Event, Incoming, Session, SessionConfig};
use control_client::{DesiredState, InterfaceSpec, PeerId};
use hdrhistogram::Histogram;
use nexthop::{FabricInfo, MacAddr};
use std::net::Ipv4Addr;
use std::time::Instant;
use vrouter::control::Control;
use vrouter::store::StateStore;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A control node's message for `vrf` with routes `from..to` (host routes in
/// 198.18.0.0/15, below [`MAX_ROUTES`], towards 16 remote nodes at the top of it).
/// Host routes that fit in 198.18.0.0/15 below the remote nodes' addresses.
const MAX_ROUTES: u32 = (1 << 17) - 256;

fn message(vrf: &str, from: u32, to: u32) -> String {
    message_salted(vrf, from, to, 0)
}

/// [`message`] with each route's label moved on by `salt` (a change of the route).
fn message_salted(vrf: &str, from: u32, to: u32, salt: u32) -> String {
    let mut items = String::new();
    for n in from..to {
        let prefix = Ipv4Addr::from(0xc612_0000 + n);
        let remote = Ipv4Addr::new(198, 19, 255, 1 + (n % 16) as u8);
        let label = 16 + (n + salt) % 4096;
        items.push_str(&format!(
            "<item id=\"{prefix}/32\"><entry><nlri><af>1</af><safi>1</safi><address>{prefix}/32</address></nlri><next-hops><next-hop><af>1</af><address>{remote}</address><mac></mac><label>{label}</label><vni>0</vni><tunnel-encapsulation-list><tunnel-encapsulation>gre</tunnel-encapsulation><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list><virtual-network>{vrf}</virtual-network></next-hop></next-hops><version>1</version><virtual-network>{vrf}</virtual-network><sequence-number>1</sequence-number><security-group-list /><local-preference>200</local-preference><med>100</med></entry></item>"
        ));
    }
    format!(
        "<message from=\"network-control@contrailsystems.com\" to=\"node-1/bgp-peer\"><event xmlns=\"http://jabber.org/protocol/pubsub\"><items node=\"1/1/{vrf}\">{items}</items></event></message>"
    )
}

/// Feeds one message's bytes through the session and applies what it carries.
fn deliver(session: &mut Session, control: &mut Control, bytes: &[u8]) {
    session.handle_input(bytes, Instant::now());
    while let Some(event) = session.poll_event() {
        if let Event::Received(Incoming::Routes(update)) = event {
            control.apply_route_update(PeerId(0), &update);
        }
    }
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: p50 {:.1} us, p99 {:.1} us, max {:.1} us ({} messages)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u32> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let routes = args.first().copied().unwrap_or(100_000);
    let vrfs = args.get(1).copied().unwrap_or(1000).max(1);
    anyhow::ensure!(routes <= MAX_ROUTES, "at most {MAX_ROUTES} routes (198.18.0.0/15)");
    let dir = tempfile::tempdir()?;
    let mut model = DesiredState::new(vrfs as usize + 1);
    model.set_fabric("fabric0");
    model.set_fabric_info(FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        mtu: 1500,
    });
    // No data plane: the control side is what is measured.
    let (mut control, publisher) = Control::detached(model, StateStore::open(dir.path())?, 1 << 22);
    for v in 0..vrfs {
        let pod = InterfaceSpec {
            name: format!("p{v}"),
            vrf: format!("vrf-{v}"),
            mac: MacAddr([2, 0, 0, (v >> 16) as u8, (v >> 8) as u8, v as u8 | 2]),
            mtu: Some(1500),
            ..InterfaceSpec::default()
        };
        control.add_interface(pod)?;
    }
    let mut session = Session::new(SessionConfig::default(), Instant::now());
    session.handle_input(
        b"<stream:stream from='network-control@contrailsystems.com'>",
        Instant::now(),
    );
    let _ = session.poll_event();
    // Ingest: messages of 32 items, VRF after VRF, as a control node's initial burst.
    let per_vrf = routes.div_ceil(vrfs);
    let mut messages = Vec::new();
    for v in 0..vrfs {
        let (from, to) = (v * per_vrf, ((v + 1) * per_vrf).min(routes));
        let mut at = from;
        while at < to {
            let end = (at + 32).min(to);
            messages.push(message(&format!("vrf-{v}"), at, end));
            at = end;
        }
    }
    let rss_before = rss_bytes();
    let mut ingest = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for m in &messages {
        let t = Instant::now();
        deliver(&mut session, &mut control, m.as_bytes());
        ingest.record(t.elapsed().as_nanos() as u64)?;
    }
    let took = started.elapsed();
    // The pods have no address: every IPv4 entry is a route from the control node.
    let installed: usize = publisher.load().vrfs.iter().map(|v| v.v4.len()).sum();
    let rss_after = rss_bytes();
    println!(
        "ingest: {installed} routes over {vrfs} VRFs in {} messages: {:.2} s, {:.0} routes/s",
        messages.len(),
        took.as_secs_f64(),
        installed as f64 / took.as_secs_f64()
    );
    report("ingest message latency (received -> published)", &ingest);
    println!(
        "memory: {:.0} bytes per route (RSS {} MiB -> {} MiB; two snapshot copies and the model included)",
        (rss_after.saturating_sub(rss_before)) as f64 / installed.max(1) as f64,
        rss_before >> 20,
        rss_after >> 20
    );
    // With the table full: one route per message, replacing routes in place.
    let mut single = Histogram::<u64>::new(3)?;
    for i in 0..1000u32 {
        let n = (i * 7919) % routes;
        let m = message(&format!("vrf-{}", n / per_vrf), n, n + 1);
        let t = Instant::now();
        deliver(&mut session, &mut control, m.as_bytes());
        single.record(t.elapsed().as_nanos() as u64)?;
    }
    report(
        &format!("one-route message latency with {installed} routes installed"),
        &single,
    );
    // Through the control task, at a steady rate.
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = vrouter::control::task::spawn(
        control,
        std::time::Duration::from_secs(3600),
        std::sync::Arc::clone(&ready),
    )?;
    // The task restores the state directory first (and publishes once): wait for it.
    while !ready.load(std::sync::atomic::Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let handle = task.handle();
    for (rate, count) in [(10u32, 50u32), (1000, 3000)] {
        // Each message changes its route (a new label): one publication each.
        let h = paced(&mut session, &handle, &publisher, rate, count, |i| {
            let n = (i * 7919 + rate) % routes;
            message_salted(&format!("vrf-{}", n / per_vrf), n, n + 1, 1 + i % 4000)
        })?;
        report(
            &format!("paced at {rate}/s, {installed} routes installed: received -> published through the control task"),
            &h,
        );
    }
    task.shutdown();
    Ok(())
}

/// Sends `count` messages at `rate` a second through the session and the control task
/// (as the channel runner does); each message's latency is from its bytes received to
/// the publication that carries it, seen by an observer thread.
fn paced(
    session: &mut Session,
    handle: &vrouter::control::task::ControlHandle,
    publisher: &control_client::SnapshotPublisher,
    rate: u32,
    count: u32,
    message_of: impl Fn(u32) -> String,
) -> anyhow::Result<Histogram<u64>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    let first = publisher.load().generation;
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let observer = {
        let (publisher, done) = (publisher.clone(), std::sync::Arc::clone(&done));
        std::thread::spawn(move || {
            // When each generation after `first` appeared.
            let mut seen: Vec<Instant> = Vec::with_capacity(count as usize);
            let mut last = first;
            while seen.len() < count as usize && !done.load(Ordering::Relaxed) {
                let g = publisher.load().generation;
                if g != last {
                    let now = Instant::now();
                    seen.extend((last..g).map(|_| now));
                    last = g;
                } else {
                    std::hint::spin_loop();
                }
            }
            seen
        })
    };
    let interval = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let mut received = Vec::with_capacity(count as usize);
    for i in 0..count {
        let due = start + interval * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let bytes = message_of(i);
        received.push(Instant::now());
        session.handle_input(bytes.as_bytes(), Instant::now());
        while let Some(event) = session.poll_event() {
            if let Event::Received(Incoming::Routes(update)) = event {
                handle
                    .post(vrouter::control::task::Change::RouteUpdate {
                        peer: PeerId(0),
                        update,
                    })
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            }
        }
    }
    // Bounded: every message makes one publication.
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.load().generation < first + u64::from(count) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    done.store(true, Ordering::Relaxed);
    let seen = observer.join().map_err(|_| anyhow::anyhow!("observer panicked"))?;
    anyhow::ensure!(
        seen.len() == count as usize,
        "{} of {count} publications seen",
        seen.len()
    );
    let mut h = Histogram::<u64>::new(3)?;
    for (sent, published) in received.iter().zip(&seen) {
        h.record(published.saturating_duration_since(*sent).as_nanos() as u64)?;
    }
    Ok(h)
}
