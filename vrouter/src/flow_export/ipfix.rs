//! IPFIX (RFC 7011) over UDP: one template per address family, re-sent every 30 s
//! (a collector that starts late learns it), data records packed into messages of at
//! most 1400 bytes (no fragmentation on any fabric), the sequence number counting
//! data records as the RFC asks.

use super::{FlowEvent, FlowExportConfig, FlowRecord};
use nexthop::Snapshot;
use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Largest message sent.
pub const MAX_MESSAGE: usize = 1400;
/// How often the templates go out again.
pub const TEMPLATE_REFRESH: Duration = Duration::from_secs(30);
/// Template ids of the IPv4 and IPv6 records.
pub const TEMPLATE_V4: u16 = 256;
/// Template id of IPv6 records.
pub const TEMPLATE_V6: u16 = 257;

/// (Information Element id, length) of a template's fields, in record order.
fn fields(v6: bool) -> [(u16, u16); 17] {
    let (src, dst, post_src, post_dst, len) = if v6 {
        (27, 28, 281, 282, 16)
    } else {
        (8, 12, 225, 226, 4)
    };
    [
        (src, len),
        (dst, len),
        (4, 1),   // protocolIdentifier
        (7, 2),   // sourceTransportPort
        (11, 2),  // destinationTransportPort
        (10, 4),  // ingressInterface (vif)
        (234, 4), // ingressVRFID
        (2, 8),   // packetDeltaCount
        (1, 8),   // octetDeltaCount
        (152, 8), // flowStartMilliseconds
        (153, 8), // flowEndMilliseconds
        (136, 1), // flowEndReason (0 in a created or denied record)
        (233, 1), // firewallEvent: 1 created, 2 deleted, 3 denied, 5 update
        (post_src, len),
        (post_dst, len),
        (227, 2), // postNAPTSourceTransportPort
        (228, 2), // postNAPTDestinationTransportPort
    ]
}

fn record_len(v6: bool) -> usize {
    fields(v6).iter().map(|(_, l)| usize::from(*l)).sum()
}

fn template_set() -> Vec<u8> {
    let mut set = vec![0, 2, 0, 0];
    for (id, v6) in [(TEMPLATE_V4, false), (TEMPLATE_V6, true)] {
        let f = fields(v6);
        set.extend_from_slice(&id.to_be_bytes());
        set.extend_from_slice(&(f.len() as u16).to_be_bytes());
        for (ie, len) in f {
            set.extend_from_slice(&ie.to_be_bytes());
            set.extend_from_slice(&len.to_be_bytes());
        }
    }
    let len = set.len() as u16;
    set[2..4].copy_from_slice(&len.to_be_bytes());
    set
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Appends `r`'s data record; the post-NAT fields are the translated ends, or the
/// record's own where not translated.
fn put_record(out: &mut Vec<u8>, r: &FlowRecord, snap: &Snapshot) {
    let k = &r.key;
    let (post_src, post_dst) = super::post_nat(r, snap);
    put_addr(out, k.src_addr());
    put_addr(out, k.dst_addr());
    out.push(k.proto());
    out.extend_from_slice(&k.src_port().to_be_bytes());
    out.extend_from_slice(&k.dst_port().to_be_bytes());
    // A reply entry's owner is the connection's first interface, where the replies
    // go, not where they come from: unknown (0) for IPFIX.
    let ingress = if crate::flows::FlowAction::is_reverse(r.data) {
        0
    } else {
        r.owner
    };
    out.extend_from_slice(&ingress.to_be_bytes());
    out.extend_from_slice(&u32::from(k.vrf()).to_be_bytes());
    out.extend_from_slice(&r.packets.to_be_bytes());
    out.extend_from_slice(&r.bytes.to_be_bytes());
    out.extend_from_slice(&r.start_ms.to_be_bytes());
    out.extend_from_slice(&r.end_ms.to_be_bytes());
    let (reason, event) = match r.event {
        FlowEvent::Created => (0, 1),
        FlowEvent::Denied => (0, 3),
        FlowEvent::Updated => (2, 5),
        FlowEvent::Ended(why) => (why as u8, 2),
    };
    out.push(reason);
    out.push(event);
    put_addr(out, post_src.0);
    put_addr(out, post_dst.0);
    out.extend_from_slice(&post_src.1.to_be_bytes());
    out.extend_from_slice(&post_dst.1.to_be_bytes());
}

/// The messages carrying `records`; `sequence` counts data records sent before and
/// is advanced; the templates lead the first message if `templates`.
pub fn encode(
    records: &[FlowRecord],
    snap: &Snapshot,
    domain: u32,
    export_secs: u32,
    sequence: &mut u32,
    templates: bool,
) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut pending = templates;
    let by_family = [
        (
            TEMPLATE_V4,
            false,
            records
                .iter()
                .filter(|r| !r.key.src_addr().is_ipv6())
                .collect::<Vec<_>>(),
        ),
        (
            TEMPLATE_V6,
            true,
            records.iter().filter(|r| r.key.src_addr().is_ipv6()).collect(),
        ),
    ];
    let mut message: Option<Vec<u8>> = None;
    let finish = |mut bytes: Vec<u8>, messages: &mut Vec<Vec<u8>>| {
        let len = bytes.len() as u16;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        messages.push(bytes);
    };
    let start = |sequence: u32, pending: &mut bool| {
        let mut m = Vec::with_capacity(MAX_MESSAGE);
        m.extend_from_slice(&10u16.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        m.extend_from_slice(&export_secs.to_be_bytes());
        m.extend_from_slice(&sequence.to_be_bytes());
        m.extend_from_slice(&domain.to_be_bytes());
        if std::mem::take(pending) {
            m.extend_from_slice(&template_set());
        }
        m
    };
    for (template, v6, list) in by_family {
        let size = record_len(v6);
        let mut set_at: Option<usize> = None;
        for r in list {
            let header = if set_at.is_none() { 4 } else { 0 };
            if message.as_ref().is_none_or(|m| m.len() + header + size > MAX_MESSAGE) {
                if let Some(mut m) = message.take() {
                    close_set(&mut m, set_at);
                    finish(m, &mut messages);
                }
                message = Some(start(*sequence, &mut pending));
                set_at = None;
            }
            let m = message.as_mut().expect("started above");
            if set_at.is_none() {
                set_at = Some(m.len());
                m.extend_from_slice(&template.to_be_bytes());
                m.extend_from_slice(&0u16.to_be_bytes());
            }
            put_record(m, r, snap);
            *sequence = sequence.wrapping_add(1);
        }
        if let Some(m) = message.as_mut() {
            close_set(m, set_at);
        }
    }
    if let Some(m) = message.take() {
        finish(m, &mut messages);
    } else if pending {
        // Nothing to send but the templates are due: send them alone.
        let m = start(*sequence, &mut pending);
        finish(m, &mut messages);
    }
    messages
}

/// Writes the length of the set that starts at `at`, if any.
fn close_set(message: &mut [u8], at: Option<usize>) {
    if let Some(at) = at {
        let len = (message.len() - at) as u16;
        message[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Sends records to the configured collector.
#[derive(Debug)]
pub struct IpfixExporter {
    socket: UdpSocket,
    domain: u32,
    sequence: u32,
    templates_sent: Option<Instant>,
    /// Records sent.
    pub records: u64,
    /// Messages the kernel refused (the collector's port closed, no route).
    pub send_errors: u64,
}

impl IpfixExporter {
    /// An exporter to `config.ipfix_collector`; `None` without one.
    pub fn connect(config: &FlowExportConfig) -> std::io::Result<Option<Self>> {
        let Some(collector) = config.ipfix_collector else {
            return Ok(None);
        };
        let local: std::net::SocketAddr = if collector.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(collector)?;
        // A burst (the first pass over a full table) waits for room in the socket
        // buffer rather than losing records; a stuck one gives up after a second.
        socket.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok(Some(Self {
            socket,
            domain: config.observation_domain,
            sequence: 0,
            templates_sent: None,
            records: 0,
            send_errors: 0,
        }))
    }

    /// Sends `records` (and the templates when due).
    pub fn export(&mut self, records: &[FlowRecord], snap: &Snapshot) {
        let due = self.templates_sent.is_none_or(|t| t.elapsed() >= TEMPLATE_REFRESH);
        if records.is_empty() && !due {
            return;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        for message in encode(records, snap, self.domain, secs, &mut self.sequence, due) {
            match self.socket.send(&message) {
                Ok(_) => {}
                Err(e) => {
                    self.send_errors += 1;
                    tracing::debug!("IPFIX message not sent: {e}");
                }
            }
        }
        if due {
            self.templates_sent = Some(Instant::now());
        }
        self.records += records.len() as u64;
    }
}
