//! The channels to control nodes (`[xmpp]`): one task per control node connects over
//! TCP, runs a [`Session`], tells the control node what this node has (a [`Speaker`]
//! over the published snapshot: subscriptions and local routes, checked every
//! `TELL_EVERY`), and hands each route message it receives to the control task,
//! which applies it as one publication. A lost channel is reconnected with the
//! agent's back-off. The routes a control node taught stay while its channel is down
//! (the data plane keeps forwarding, headless); when it comes back they are stale
//! until sent again, and what it has not sent again by its end-of-RIB (or within the
//! hold time, if it sends none) is swept (graceful restart).

use crate::control::task::{Change, ControlHandle};
use control_client::xmpp::agent::{Advertised, Speaker};
use control_client::xmpp::{reconnect_delay, Event, Incoming, Session, SessionConfig, State};
use control_client::{PeerId, SnapshotPublisher};
use nexthop::encap::Encap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How often a channel compares the published snapshot with what it told.
const TELL_EVERY: Duration = Duration::from_millis(100);
/// How long a connection attempt or a write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One channel's settings.
#[derive(Debug, Clone)]
pub struct ChannelSetup {
    /// Which control node (its place in `xmpp.servers`).
    pub peer: PeerId,
    /// Its address.
    pub server: SocketAddr,
    /// This node's name towards it.
    pub host: String,
    /// Hold time.
    pub hold_time: Duration,
    /// This node's fabric address (the next hop of its routes).
    pub fabric_ip: Ipv4Addr,
    /// The encapsulations this node accepts, most preferred first.
    pub encaps: Vec<Encap>,
}

/// A channel's state, for the views and the tests.
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Both streams are open now.
    pub up: AtomicBool,
    /// Times the channel came up.
    pub established: AtomicU64,
    /// Route messages received.
    pub route_messages: AtomicU64,
    /// Stanzas that could not be used.
    pub unusable: AtomicU64,
}

/// Runs the channel until `shutdown` turns true.
pub async fn run(
    setup: ChannelSetup,
    publisher: SnapshotPublisher,
    control: ControlHandle,
    stats: Arc<ChannelStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        let delay = reconnect_delay(failures, jitter());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => break,
        }
        let connected = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(setup.server)).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::warn!(peer = setup.peer.0, server = %setup.server, "control node unreachable: {e}");
                failures = failures.saturating_add(1);
                continue;
            }
            Err(_) => {
                tracing::warn!(peer = setup.peer.0, server = %setup.server, "control node: connection timed out");
                failures = failures.saturating_add(1);
                continue;
            }
        };
        let came_up = serve(&setup, stream, &publisher, &control, &stats, &mut shutdown).await;
        stats.up.store(false, Ordering::Relaxed);
        // A channel that came up starts the back-off over; one that did not backs off.
        failures = if came_up { 1 } else { failures.saturating_add(1) };
    }
}

/// A draw in -1..=1 for the back-off's jitter (no cryptographic quality needed).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() % 2001) as f64 / 1000.0 - 1.0
}

/// Runs one connection until it closes; true if it came up.
async fn serve(
    setup: &ChannelSetup,
    mut stream: TcpStream,
    publisher: &SnapshotPublisher,
    control: &ControlHandle,
    stats: &ChannelStats,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let config = SessionConfig {
        host: setup.host.clone(),
        hold_time: setup.hold_time,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, Instant::now());
    let mut speaker = Speaker::new(&setup.host, setup.fabric_ip, &setup.encaps);
    let mut came_up = false;
    // Graceful restart: when the control node's end-of-RIB is due at the latest.
    let mut end_of_rib: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tell = tokio::time::interval(TELL_EVERY);
    loop {
        if let Some(bytes) = session.poll_transmit() {
            match tokio::time::timeout(IO_TIMEOUT, stream.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                _ => {
                    tracing::warn!(peer = setup.peer.0, "control node: write failed or timed out");
                    return came_up;
                }
            }
        }
        if session.state() == State::Closed {
            return came_up;
        }
        let deadline = session
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + setup.hold_time);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    tracing::warn!(peer = setup.peer.0, "control node closed the connection");
                    return came_up;
                }
                Ok(n) => session.handle_input(&buf[..n], Instant::now()),
            },
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(Instant::now()),
            _ = tell.tick() => {
                if session.state() == State::Established {
                    let now = Advertised::of(&publisher.load());
                    for stanza in speaker.update(&now) {
                        session.send(&stanza, Instant::now());
                    }
                }
            }
            _ = until(end_of_rib) => {
                tracing::info!(peer = setup.peer.0, "control node sent no end-of-RIB within the hold time: taken as synced");
                end_of_rib = None;
                post(control, setup.peer, Change::PeerSynced(setup.peer));
            }
            _ = shutdown.changed() => session.close(Instant::now()),
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Established => {
                    came_up = true;
                    stats.up.store(true, Ordering::Relaxed);
                    stats.established.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = setup.peer.0, server = %setup.server, "control node channel up");
                    // What it taught before is stale until it sends it again.
                    post(control, setup.peer, Change::PeerUp(setup.peer));
                    end_of_rib = Some(Instant::now() + setup.hold_time);
                    speaker.reset();
                    for stanza in speaker.update(&Advertised::of(&publisher.load())) {
                        session.send(&stanza, Instant::now());
                    }
                }
                Event::Received(Incoming::Routes(update)) => {
                    stats.route_messages.fetch_add(1, Ordering::Relaxed);
                    let change = Change::RouteUpdate {
                        peer: setup.peer,
                        update,
                    };
                    post(control, setup.peer, change);
                }
                Event::Received(Incoming::EndOfRib) => {
                    tracing::info!(peer = setup.peer.0, "control node: end of its initial routes");
                    if end_of_rib.take().is_some() {
                        post(control, setup.peer, Change::PeerSynced(setup.peer));
                    }
                }
                Event::Received(_) => {}
                Event::Unusable(why) => {
                    stats.unusable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = setup.peer.0, "stanza from the control node skipped: {why}");
                }
                Event::Closed(reason) => {
                    tracing::warn!(peer = setup.peer.0, ?reason, "control node channel closed");
                }
            }
        }
    }
}

/// Hands a change to the control task; a full queue is logged (the change is lost:
/// the control node's next full sync repairs it).
fn post(control: &ControlHandle, peer: PeerId, change: Change) {
    if let Err(e) = control.post(change) {
        tracing::warn!(peer = peer.0, "change from the control node not applied: {}", e.message);
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
