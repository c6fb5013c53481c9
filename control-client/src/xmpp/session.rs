//! One XMPP channel to a control node, without I/O: fed received bytes and the
//! current time, it returns events and the bytes to send. It never reads a clock or
//! touches a socket, so tests drive it with simulated time (the quinn-proto pattern).
//!
//! It writes the stream open at once, takes the peer's open as the channel being up
//! (with TLS configured: the peer's features must offer STARTTLS; the session asks
//! for it, and on `<proceed/>` tells the caller to run the TLS handshake on the
//! socket, then opens the stream again inside TLS, as the agent does),
//! sends the U+0200 keepalive when nothing was sent for a third of the hold time,
//! and closes the channel when nothing was received for the hold time (any byte
//! counts). A stanza that cannot be framed closes the channel; one that cannot be
//! parsed or decoded is reported and skipped, as the agent skips it.

use super::element::Element;
use super::framer::{Frame, FrameError, Framer};
use super::messages::{self, DecodeError, Incoming};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The keepalive character U+0200.
const KEEPALIVE: &str = "\u{200}";

/// A channel's settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// This node's name (the agent's `from`).
    pub host: String,
    /// Hold time: the channel closes when nothing arrives for this long (the
    /// agent's default is 90 s; keepalives go out every third of it).
    pub hold_time: Duration,
    /// Longest stanza accepted, in bytes.
    pub max_stanza: usize,
    /// Require TLS (STARTTLS after the first stream open).
    pub tls: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            hold_time: Duration::from_secs(90),
            max_stanza: 4 << 20,
            tls: false,
        }
    }
}

/// The STARTTLS namespace (RFC 6120).
const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

/// Where the channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Our stream open is sent; the peer's has not arrived.
    OpenSent,
    /// TLS: the peer's stream is open; its features (STARTTLS) have not arrived.
    FeaturesAwaited,
    /// TLS: `<starttls/>` is sent; the peer's `<proceed/>` has not arrived.
    StartTlsSent,
    /// TLS: the caller runs the handshake ([`Event::StartTls`]) and then calls
    /// [`Session::tls_established`].
    TlsHandshake,
    /// Both streams are open.
    Established,
    /// Closed; the caller reconnects with a new session.
    Closed,
}

/// Why a channel closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Nothing arrived for the hold time.
    HoldTimerExpired,
    /// The peer closed its stream.
    PeerClosed,
    /// The stream could not be framed.
    Framing(FrameError),
    /// TLS is configured and the peer did not offer it, refused it, or the
    /// handshake failed.
    Tls(String),
    /// Closed by the vrouter.
    Local,
}

/// What the caller learns from a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened its stream: subscribe and publish now.
    Established,
    /// The peer proceeds with TLS: run the handshake on the socket now (every byte
    /// from here on is TLS), then call [`Session::tls_established`].
    StartTls,
    /// A stanza from the control node.
    Received(Incoming),
    /// A stanza that could not be used (kept for the views and the log).
    Unusable(String),
    /// The channel is closed.
    Closed(CloseReason),
}

/// One channel; see the module doc.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    framer: Framer,
    out: Vec<u8>,
    events: VecDeque<Event>,
    last_received: Instant,
    last_sent: Instant,
}

impl Session {
    /// A new channel at `now`: its stream open is queued for sending.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut session = Self {
            framer: Framer::new(config.max_stanza),
            config,
            state: State::OpenSent,
            out: Vec::new(),
            events: VecDeque::new(),
            last_received: now,
            last_sent: now,
        };
        let open = messages::stream_open(&session.config.host);
        session.queue(&open, now);
        session
    }

    /// Where the channel is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Queues a stanza to send (dropped once the channel is closed).
    pub fn send(&mut self, stanza: &str, now: Instant) {
        if self.state != State::Closed {
            self.queue(stanza, now);
        }
    }

    fn queue(&mut self, text: &str, now: Instant) {
        self.out.extend_from_slice(text.as_bytes());
        self.last_sent = now;
    }

    /// Closes the channel: our stream close is queued.
    pub fn close(&mut self, now: Instant) {
        if self.state != State::Closed {
            self.queue(messages::STREAM_CLOSE, now);
            self.closed(CloseReason::Local);
        }
    }

    fn closed(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.events.push_back(Event::Closed(reason));
    }

    /// Takes bytes received at `now`.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.state == State::Closed || bytes.is_empty() {
            return;
        }
        self.last_received = now;
        self.framer.push(bytes);
        loop {
            match self.framer.next_frame() {
                Ok(None) => return,
                Ok(Some(Frame::StreamOpen(_))) => {
                    if self.state == State::OpenSent {
                        if self.config.tls {
                            self.state = State::FeaturesAwaited;
                        } else {
                            self.state = State::Established;
                            self.events.push_back(Event::Established);
                        }
                    }
                }
                Ok(Some(Frame::Stanza(text))) if matches!(self.state, State::FeaturesAwaited | State::StartTlsSent) => {
                    self.negotiate_tls(&text, now);
                    if self.state != State::StartTlsSent && self.state != State::FeaturesAwaited {
                        // Proceeding (the rest is TLS) or closed.
                        return;
                    }
                }
                Ok(Some(Frame::StreamClose)) => {
                    self.queue(messages::STREAM_CLOSE, now);
                    return self.closed(CloseReason::PeerClosed);
                }
                Ok(Some(Frame::Stanza(text))) => {
                    let event = match Element::parse(&text) {
                        Ok(element) => match Incoming::decode(&element) {
                            Ok(incoming) => Event::Received(incoming),
                            Err(DecodeError { what, why }) => Event::Unusable(format!("{what}: {why}")),
                        },
                        Err(e) => Event::Unusable(e.to_string()),
                    };
                    self.events.push_back(event);
                }
                Err(e) => return self.closed(CloseReason::Framing(e)),
            }
        }
    }

    /// One stanza while TLS is negotiated: the features must offer STARTTLS, the
    /// answer to ours must be `<proceed/>`.
    fn negotiate_tls(&mut self, text: &str, now: Instant) {
        let element = match Element::parse(text) {
            Ok(e) => e,
            Err(e) => return self.closed(CloseReason::Tls(format!("during STARTTLS: {e}"))),
        };
        let offers = |e: &Element| {
            e.children
                .iter()
                .any(|c| c.name == "starttls" && c.attr("xmlns") == Some(TLS_NS))
        };
        match (self.state, element.name.as_str()) {
            (State::FeaturesAwaited, "stream:features") if offers(&element) => {
                self.queue(&format!("<starttls xmlns=\"{TLS_NS}\"/>"), now);
                self.state = State::StartTlsSent;
            }
            (State::FeaturesAwaited, "stream:features") => {
                self.closed(CloseReason::Tls("the control node does not offer STARTTLS".into()));
            }
            (State::StartTlsSent, "proceed") => {
                self.state = State::TlsHandshake;
                self.events.push_back(Event::StartTls);
            }
            (State::StartTlsSent, "failure") => {
                self.closed(CloseReason::Tls("the control node refused STARTTLS".into()));
            }
            (_, other) => {
                self.closed(CloseReason::Tls(format!("<{other}> while STARTTLS was negotiated")));
            }
        }
    }

    /// The TLS handshake finished: the stream is opened again inside TLS (the framer
    /// starts over; the channel is up when the peer opens its stream again).
    pub fn tls_established(&mut self, now: Instant) {
        if self.state != State::TlsHandshake {
            return;
        }
        self.framer = Framer::new(self.config.max_stanza);
        self.state = State::OpenSent;
        // TLS is up: the next stream open establishes the channel.
        self.config.tls = false;
        self.last_received = now;
        let open = messages::stream_open(&self.config.host);
        self.queue(&open, now);
    }

    /// The TLS handshake failed.
    pub fn tls_failed(&mut self, why: String) {
        if self.state != State::Closed {
            self.closed(CloseReason::Tls(why));
        }
    }

    /// Runs the timers at `now`: a keepalive when one is due, the hold timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now.saturating_duration_since(self.last_received) >= self.config.hold_time {
            return self.closed(CloseReason::HoldTimerExpired);
        }
        if self.state == State::Established && now.saturating_duration_since(self.last_sent) >= self.keepalive_every() {
            self.queue(KEEPALIVE, now);
        }
    }

    fn keepalive_every(&self) -> Duration {
        self.config.hold_time / 3
    }

    /// When [`Session::handle_timeout`] must run next (`None` once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let hold = self.last_received + self.config.hold_time;
        match self.state {
            State::Established => Some(hold.min(self.last_sent + self.keepalive_every())),
            _ => Some(hold),
        }
    }

    /// Bytes to send now, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// How long to wait before connecting again after `failures` failed or lost
/// channels in a row: the agent's 0, 1, 2, 4, 8, 16 s, then 30 s, each within ±10 %
/// by `jitter` (in -1..=1; the caller draws it).
pub fn reconnect_delay(failures: u32, jitter: f64) -> Duration {
    let base = match failures {
        0 => return Duration::ZERO,
        n if n <= 5 => Duration::from_secs(1 << (n - 1)),
        _ => Duration::from_secs(30),
    };
    base.mul_f64(1.0 + 0.1 * jitter.clamp(-1.0, 1.0))
}
