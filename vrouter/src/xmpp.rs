//! The channels to control nodes (`[xmpp]`): one task per control node connects over
//! TCP, runs a [`Session`], tells the control node what this node has (a [`Speaker`]
//! over the published snapshot: subscriptions and local routes, checked every
//! `TELL_EVERY`), and hands each route message it receives to the control task,
//! which applies it as one publication. A lost channel is reconnected with the
//! agent's back-off. The routes a control node taught stay while its channel is down
//! (the data plane keeps forwarding, headless); when it comes back they are stale
//! until sent again, and what it has not sent again by its end-of-RIB (or within the
//! hold time, if it sends none) is swept (graceful restart).

use crate::control::config::ConfigInterest;
use crate::control::task::{Change, ControlHandle};
use control_client::contrail::Uuid;
use control_client::xmpp::agent::{Advertised, Speaker};
use control_client::xmpp::{reconnect_delay, Event, Incoming, Session, SessionConfig, State};
use control_client::{PeerId, SnapshotPublisher};
use nexthop::encap::Encap;
use std::collections::{BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::ServerName;
use vrouter_api::XmppChannelView;

/// How often a channel compares the published snapshot with what it told.
const TELL_EVERY: Duration = Duration::from_millis(100);
/// How long a connection attempt or a write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing channel waits for its last bytes to leave and the control
/// node to close its side.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

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
    /// Which channel serves configuration, and the virtual machines to subscribe.
    pub config: Arc<ConfigInterest>,
    /// TLS (`xmpp.tls`): the client settings and the name the control node's
    /// certificate must carry.
    pub tls: Option<(Arc<tokio_rustls::rustls::ClientConfig>, ServerName<'static>)>,
}

/// A channel's byte stream: TCP, or TLS over it once STARTTLS is through.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A channel's state, for the `xmpp` view and the tests.
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
    /// Config messages received while serving configuration.
    pub config_messages: AtomicU64,
    info: Mutex<ChannelInfo>,
}

/// What the view shows besides the counters.
#[derive(Debug, Default)]
struct ChannelInfo {
    peer: u8,
    server: String,
    hold_time: Duration,
    up_since: Option<Instant>,
    last_error: Option<String>,
    trace: VecDeque<String>,
}

/// Stanzas the trace keeps, and bytes of each.
const TRACE_ENTRIES: usize = 32;
const TRACE_BYTES: usize = 1024;

impl ChannelStats {
    /// The state of the channel `setup` describes, before it runs.
    pub fn new(setup: &ChannelSetup) -> Self {
        let stats = Self::default();
        if let Ok(mut info) = stats.info.lock() {
            info.peer = setup.peer.0;
            info.server = setup.server.to_string();
            info.hold_time = setup.hold_time;
        }
        stats
    }

    fn with_info(&self, f: impl FnOnce(&mut ChannelInfo)) {
        if let Ok(mut info) = self.info.lock() {
            f(&mut info);
        }
    }

    /// Keeps `line` in the bounded trace (`>` sent, `<` received).
    fn trace(&self, direction: char, text: &str) {
        let mut end = text.len().min(TRACE_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let line = format!("{direction} {}", &text[..end]);
        self.with_info(|info| {
            if info.trace.len() == TRACE_ENTRIES {
                info.trace.pop_front();
            }
            info.trace.push_back(line);
        });
    }

    fn came_up(&self) {
        self.up.store(true, Ordering::Relaxed);
        self.established.fetch_add(1, Ordering::Relaxed);
        self.with_info(|info| info.up_since = Some(Instant::now()));
    }

    fn went_down(&self, why: String) {
        self.up.store(false, Ordering::Relaxed);
        self.with_info(|info| {
            info.up_since = None;
            info.last_error = Some(why);
        });
    }

    /// The `xmpp` view of this channel.
    pub fn view(&self) -> XmppChannelView {
        let info = self.info.lock().map(|i| {
            (
                i.peer,
                i.server.clone(),
                i.hold_time,
                i.up_since,
                i.last_error.clone(),
                i.trace.iter().cloned().collect(),
            )
        });
        let (peer, server, hold, up_since, last_error, trace) = info.unwrap_or_default();
        XmppChannelView {
            routes_per_vrf: Default::default(),
            peer,
            server,
            up: self.up.load(Ordering::Relaxed),
            up_for_secs: up_since.map(|t| t.elapsed().as_secs()),
            established: self.established.load(Ordering::Relaxed),
            route_messages: self.route_messages.load(Ordering::Relaxed),
            unusable: self.unusable.load(Ordering::Relaxed),
            hold_time_secs: hold.as_secs(),
            last_error,
            trace,
        }
    }
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
                stats.went_down(format!("unreachable: {e}"));
                failures = failures.saturating_add(1);
                continue;
            }
            Err(_) => {
                tracing::warn!(peer = setup.peer.0, server = %setup.server, "control node: connection timed out");
                stats.went_down("connection timed out".into());
                failures = failures.saturating_add(1);
                continue;
            }
        };
        let (came_up, why) = serve(&setup, stream, &publisher, &control, &stats, &mut shutdown).await;
        setup.config.release(setup.peer);
        stats.went_down(why);
        if came_up {
            let _ = post(&control, setup.peer, Change::PeerDown(setup.peer));
        }
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

/// Runs one connection until it closes: whether it came up, and why it ended.
async fn serve(
    setup: &ChannelSetup,
    tcp: TcpStream,
    publisher: &SnapshotPublisher,
    control: &ControlHandle,
    stats: &ChannelStats,
    shutdown: &mut watch::Receiver<bool>,
) -> (bool, String) {
    let mut stream: Box<dyn Io> = Box::new(tcp);
    let config = SessionConfig {
        host: setup.host.clone(),
        hold_time: setup.hold_time,
        tls: setup.tls.is_some(),
        ..SessionConfig::default()
    };
    let mut session = Session::new(config, Instant::now());
    let mut speaker = Speaker::new(&setup.host, setup.fabric_ip, &setup.encaps);
    let mut config = ConfigRole::default();
    let mut came_up = false;
    let mut closed_why: Option<String> = None;
    // Graceful restart: when the control node's end-of-RIB is due at the latest.
    let mut end_of_rib: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tell = tokio::time::interval(TELL_EVERY);
    // The snapshot generation the control node was last told about: what is
    // advertised changes only with a new snapshot, so a tick without one computes
    // nothing (with a service chain, every prefix of its networks is advertised).
    let mut told: Option<u64> = None;
    loop {
        if let Some(bytes) = session.poll_transmit() {
            match tokio::time::timeout(IO_TIMEOUT, stream.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                _ => {
                    tracing::warn!(peer = setup.peer.0, "control node: write failed or timed out");
                    return (came_up, "write failed or timed out".into());
                }
            }
        }
        if session.state() == State::Closed {
            // What was written reaches the control node before the socket goes (a
            // close with unread input would reset the connection and lose it): flush,
            // end the write side, then read what it still sends, bounded.
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                stream.flush().await?;
                stream.shutdown().await?;
                while stream.read(&mut buf).await? > 0 {}
                Ok::<(), std::io::Error>(())
            })
            .await;
            return (came_up, closed_why.unwrap_or_else(|| "closed".into()));
        }
        let deadline = session
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + setup.hold_time);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) => {
                    tracing::warn!(peer = setup.peer.0, "control node closed the connection");
                    return (came_up, "the control node closed the connection".into());
                }
                // With TLS this carries the peer's alert (a refused certificate).
                Err(e) => {
                    tracing::warn!(peer = setup.peer.0, "connection to the control node failed: {e}");
                    return (came_up, format!("the connection failed: {e}"));
                }
                Ok(n) => session.handle_input(&buf[..n], Instant::now()),
            },
            _ = tokio::time::sleep_until(deadline.into()) => session.handle_timeout(Instant::now()),
            _ = tell.tick() => {
                if session.state() == State::Established {
                    let snap = publisher.load();
                    if told != Some(snap.generation) {
                        told = Some(snap.generation);
                        for stanza in speaker.update(&Advertised::of(&snap)) {
                            stats.trace('>', &stanza);
                            session.send(&stanza, Instant::now());
                        }
                    }
                    for stanza in config.update(setup, control) {
                        stats.trace('>', &stanza);
                        session.send(&stanza, Instant::now());
                    }
                }
            }
            _ = until(end_of_rib) => {
                tracing::info!(peer = setup.peer.0, "control node sent no end-of-RIB within the hold time: taken as synced");
                end_of_rib = None;
                let _ = post(control, setup.peer, Change::PeerSynced(setup.peer));
            }
            _ = shutdown.changed() => {
                // What changed since the last tick goes out before the stream closes
                // (the ingress instances' VIPs withdrawn at shutdown: a control node
                // that keeps a closed channel's routes would keep them otherwise).
                if session.state() == State::Established {
                    for stanza in speaker.update(&Advertised::of(&publisher.load())) {
                        stats.trace('>', &stanza);
                        session.send(&stanza, Instant::now());
                    }
                }
                session.close(Instant::now())
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Established => {
                    came_up = true;
                    stats.came_up();
                    stats.trace('<', "stream open");
                    tracing::info!(peer = setup.peer.0, server = %setup.server, "control node channel up");
                    // What it taught before is stale until it sends it again.
                    if !post(control, setup.peer, Change::PeerUp(setup.peer)) {
                        session.close(Instant::now());
                    }
                    end_of_rib = Some(Instant::now() + setup.hold_time);
                    speaker.reset();
                    let snap = publisher.load();
                    told = Some(snap.generation);
                    for stanza in speaker.update(&Advertised::of(&snap)) {
                        stats.trace('>', &stanza);
                        session.send(&stanza, Instant::now());
                    }
                    // Every local route is told (they come from the snapshot at once,
                    // not from a config stream still arriving): the end of this node's
                    // routes, so the control node sweeps what it held from before.
                    let end = control_client::xmpp::messages::end_of_rib(&setup.host);
                    stats.trace('>', &end);
                    session.send(&end, Instant::now());
                    // The first channel up serves configuration, as the agent elects it.
                    for stanza in config.update(setup, control) {
                        stats.trace('>', &stanza);
                        session.send(&stanza, Instant::now());
                    }
                }
                Event::Received(Incoming::Config(element)) => {
                    if config.serving {
                        stats.config_messages.fetch_add(1, Ordering::Relaxed);
                        stats.trace('<', &format!("config: {} blocks", element.children.len()));
                        let change = Change::Config {
                            peer: setup.peer,
                            config: element,
                        };
                        if !post(control, setup.peer, change) {
                            // Lost config cannot be asked for again: reconnect (the
                            // new session sends everything again).
                            session.close(Instant::now());
                        }
                    } else {
                        stats.trace('<', "config ignored: this channel does not serve it");
                    }
                }
                Event::StartTls => {
                    let Some((config, name)) = &setup.tls else {
                        session.tls_failed("STARTTLS without TLS settings".into());
                        continue;
                    };
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                    let plain = std::mem::replace(&mut stream, Box::new(tokio::io::duplex(1).0));
                    match tokio::time::timeout(IO_TIMEOUT, connector.connect(name.clone(), plain)).await {
                        Ok(Ok(tls)) => {
                            stream = Box::new(tls);
                            stats.trace('<', "TLS established");
                            session.tls_established(Instant::now());
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(peer = setup.peer.0, "TLS handshake with the control node failed: {e}");
                            session.tls_failed(format!("TLS handshake failed: {e}"));
                        }
                        Err(_) => session.tls_failed("TLS handshake timed out".into()),
                    }
                }
                Event::Received(Incoming::Routes(update)) => {
                    stats.route_messages.fetch_add(1, Ordering::Relaxed);
                    let summary = format!(
                        "routes {:?} {}: {} items, {} retracts",
                        update.family,
                        update.vrf,
                        update.items.len(),
                        update.retracts.len()
                    );
                    stats.trace('<', &summary);
                    let change = Change::RouteUpdate {
                        peer: setup.peer,
                        update,
                    };
                    if !post(control, setup.peer, change) {
                        // A lost message cannot be asked for again: drop the channel,
                        // and the node's full re-sync (graceful restart) repairs it.
                        session.close(Instant::now());
                    }
                }
                Event::Received(Incoming::EndOfRib) => {
                    tracing::info!(peer = setup.peer.0, "control node: end of its initial routes");
                    stats.trace('<', "end-of-RIB");
                    if end_of_rib.take().is_some() {
                        let _ = post(control, setup.peer, Change::PeerSynced(setup.peer));
                    }
                }
                Event::Received(_) => {}
                Event::Unusable(why) => {
                    stats.unusable.fetch_add(1, Ordering::Relaxed);
                    stats.trace('<', &format!("unusable: {why}"));
                    if limit_of(&UNUSABLE_LOG, setup.peer).admit("stanzas from a control node skipped") {
                        tracing::warn!(peer = setup.peer.0, server = %setup.server, reason = %why, "stanza from the control node skipped");
                    }
                }
                Event::Closed(reason) => {
                    tracing::warn!(peer = setup.peer.0, ?reason, "control node channel closed");
                    closed_why = Some(format!("{reason:?}"));
                }
            }
        }
    }
}

/// This channel's part in configuration: whether it serves it, and the virtual
/// machines it subscribed.
#[derive(Debug, Default)]
struct ConfigRole {
    serving: bool,
    vms_version: Option<u64>,
    subscribed: BTreeSet<Uuid>,
}

impl ConfigRole {
    /// Takes configuration over when no channel serves it, and keeps the virtual
    /// machine subscriptions in step with the bound ports: the stanzas to send.
    fn update(&mut self, setup: &ChannelSetup, control: &ControlHandle) -> Vec<String> {
        use control_client::xmpp::messages::{config_subscribe, config_unsubscribe, virtual_router_node};
        let mut out = Vec::new();
        if !self.serving {
            if !setup.config.claim(setup.peer) {
                return out;
            }
            if !post(control, setup.peer, Change::ConfigServer(setup.peer)) {
                setup.config.release(setup.peer);
                return out;
            }
            tracing::info!(peer = setup.peer.0, "this channel serves configuration");
            self.serving = true;
            out.push(config_subscribe(&setup.host, &virtual_router_node(&setup.host)));
        }
        let (version, vms) = setup.config.vms();
        if self.vms_version == Some(version) {
            return out;
        }
        self.vms_version = Some(version);
        let wanted: BTreeSet<Uuid> = vms.into_iter().collect();
        for vm in wanted.difference(&self.subscribed) {
            out.push(config_subscribe(&setup.host, &format!("virtual-machine:{vm}")));
        }
        for vm in self.subscribed.difference(&wanted) {
            out.push(config_unsubscribe(&setup.host, &format!("virtual-machine:{vm}")));
        }
        self.subscribed = wanted;
        out
    }
}

/// Log lines a control node's bad stanzas, and its changes the queue cannot take,
/// write per second at most, per control node (a broken or hostile one floods
/// neither the log nor the other's lines).
static UNUSABLE_LOG: [crate::log_limit::SharedLogLimit; 2] = [
    crate::log_limit::SharedLogLimit::new(10),
    crate::log_limit::SharedLogLimit::new(10),
];
static NOT_APPLIED_LOG: [crate::log_limit::SharedLogLimit; 2] = [
    crate::log_limit::SharedLogLimit::new(10),
    crate::log_limit::SharedLogLimit::new(10),
];

/// The log limit of control node `peer` among `limits`.
fn limit_of(limits: &[crate::log_limit::SharedLogLimit; 2], peer: PeerId) -> &crate::log_limit::SharedLogLimit {
    &limits[usize::from(peer.0) % limits.len()]
}

/// Hands a change to the control task; false (logged) when its queue is full.
fn post(control: &ControlHandle, peer: PeerId, change: Change) -> bool {
    match control.post(change) {
        Ok(()) => true,
        Err(e) => {
            if limit_of(&NOT_APPLIED_LOG, peer).admit("changes from a control node not applied") {
                tracing::warn!(peer = peer.0, reason = %e.message, "change from the control node not applied");
            }
            false
        }
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
