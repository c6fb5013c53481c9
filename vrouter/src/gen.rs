//! A pktgen-style traffic generator on AF_XDP (the kernel's pktgen module and
//! Debian's xdp-trafficgen are not available on these machines), and the counting
//! sink that goes with it.
//!
//! The generator builds UDP frames from a template into UMEM frames, varying the
//! source port (and the source address beyond 64K flows) to make `flows` distinct
//! flows, and sends them at a target rate or flat out for a count or a duration.

use crate::afxdp::{CountingSink, FramePool, PortSocket};
use crate::config::XdpMode;
use crate::packet::checksum;
use anyhow::Context;
use nexthop::MacAddr;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xdpilone::xdp::XdpDesc;

/// What to send.
#[derive(Debug, Clone, clap::Args)]
pub struct GenOptions {
    /// Interface to send on (in the current network namespace).
    #[arg(long)]
    pub interface: String,
    /// Source MAC.
    #[arg(long)]
    pub src_mac: MacAddr,
    /// Destination MAC (the next hop: the vrouter, a router).
    #[arg(long)]
    pub dst_mac: MacAddr,
    /// First source address (more are used past 64K flows).
    #[arg(long)]
    pub src_ip: Ipv4Addr,
    /// Destination address.
    #[arg(long)]
    pub dst_ip: Ipv4Addr,
    /// Distinct flows (source port, then source address, vary).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Frame size in bytes, Ethernet header included (64..=1500).
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// Packets per second; 0 sends flat out.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stop after this many packets (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
}

/// What was sent.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct GenReport {
    /// Packets handed to the kernel.
    pub packets: u64,
    /// Seconds spent sending.
    pub seconds: f64,
    /// Packets per second achieved.
    pub pps: f64,
}

const HEADROOM: usize = 256;
/// Marks a payload that carries a send timestamp (the next 8 bytes, ns since [`epoch`]).
pub const STAMP_MAGIC: [u8; 8] = *b"vRtStamp";
/// Where the marker sits in a generated frame (the UDP payload).
const STAMP_AT: usize = 42;

/// The clock both the generator and the latency sink read (one process).
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The template frame: Ethernet / IPv4 / UDP, payload zero-filled.
fn template(o: &GenOptions) -> Vec<u8> {
    let size = usize::from(o.size.clamp(64, 1500));
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&o.dst_mac.0);
    f[6..12].copy_from_slice(&o.src_mac.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[12..16].copy_from_slice(&o.src_ip.octets());
    ip[16..20].copy_from_slice(&o.dst_ip.octets());
    let udp = &mut f[34..42];
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[STAMP_AT..STAMP_AT + 8].copy_from_slice(&STAMP_MAGIC);
    f
}

/// Writes flow `n` into a copy of the template: source port, source address, IP
/// header checksum (the UDP checksum stays 0, as IPv4 allows).
fn stamp(frame: &mut [u8], base_ip: Ipv4Addr, n: u32) {
    let port = 1024 + (n % 60_000) as u16;
    let ip = u32::from(base_ip).wrapping_add(n / 60_000);
    frame[26..30].copy_from_slice(&ip.to_be_bytes());
    frame[34..36].copy_from_slice(&port.to_be_bytes());
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Sends as `o` says; returns what was sent.
pub fn generate(o: &GenOptions) -> anyhow::Result<GenReport> {
    let mut pool = FramePool::new(4096, 1024).context("generator UMEM")?;
    let mut socket = PortSocket::open(&mut pool, &o.interface, 0, 1024, 0, true)
        .with_context(|| format!("AF_XDP socket on {}", o.interface))?;
    let tpl = template(o);
    let flows = o.flows.max(1);
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds.max(0.001));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batch: Vec<XdpDesc> = Vec::with_capacity(64);
    while Instant::now() < deadline && (o.count == 0 || sent < o.count) {
        socket.reap(&mut pool);
        let mut budget = 64u64;
        if o.rate > 0 {
            let due = (start.elapsed().as_secs_f64() * o.rate as f64) as u64;
            budget = budget.min(due.saturating_sub(sent));
        }
        if o.count > 0 {
            budget = budget.min(o.count - sent);
        }
        batch.clear();
        for _ in 0..budget {
            let Some(addr) = pool.take() else { break };
            let Some(frame) = pool.frame_mut(addr) else { break };
            let f = &mut frame[HEADROOM..HEADROOM + tpl.len()];
            f.copy_from_slice(&tpl);
            stamp(f, o.src_ip, ((sent + batch.len() as u64) % u64::from(flows)) as u32);
            let now = epoch().elapsed().as_nanos() as u64;
            f[STAMP_AT + 8..STAMP_AT + 16].copy_from_slice(&now.to_be_bytes());
            batch.push(XdpDesc {
                addr: addr + HEADROOM as u64,
                len: tpl.len() as u32,
                options: 0,
            });
        }
        let n = socket.transmit(&mut pool, &batch);
        for d in &batch[n..] {
            pool.release(d.addr);
        }
        sent += n as u64;
        socket.kick_tx();
        if budget == 0 {
            if o.rate > 0 {
                // Ahead of schedule: give the core away (a sink may share it).
                std::thread::sleep(Duration::from_micros(20));
            } else {
                std::hint::spin_loop();
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(GenReport {
        packets: sent,
        seconds,
        pps: sent as f64 / seconds.max(1e-9),
    })
}

/// Counts what arrives on `interface` for `seconds` (or until `expect` packets
/// arrived and traffic stopped); returns packets, bytes and the rate over the time
/// packets were arriving.
pub fn sink(
    interface: &str,
    mode: XdpMode,
    seconds: f64,
    expect: u64,
    started: impl FnOnce(),
) -> anyhow::Result<SinkReport> {
    let sink = CountingSink::attach(interface, mode)?;
    started();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut first, mut last, mut seen) = (None, Instant::now(), 0u64);
    let mut first_count = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let (packets, _) = sink.counts()?;
        if packets > seen {
            if first.is_none() {
                first = Some(Instant::now());
                first_count = packets;
            }
            seen = packets;
            last = Instant::now();
        } else if (expect > 0 && seen >= expect) || (first.is_some() && last.elapsed() > Duration::from_millis(500)) {
            // Traffic stopped (or everything expected arrived).
            break;
        }
    }
    let (packets, bytes) = sink.counts()?;
    let window = first.map_or(0.0, |f| last.saturating_duration_since(f).as_secs_f64());
    let pps = if window > 0.0 {
        (seen - first_count) as f64 / window
    } else {
        0.0
    };
    Ok(SinkReport { packets, bytes, pps })
}

/// What a sink counted.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SinkReport {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Packets per second while traffic arrived.
    pub pps: f64,
}

/// One-way delay percentiles, in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Packets measured.
    pub packets: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// An AF_XDP sink on `interface` that takes every frame, finds the generator's
/// timestamp behind whatever encapsulation precedes it, and records the delay, until
/// `stop`. The XDP program stays attached while it runs.
pub fn latency_sink(
    interface: &str,
    stop: &std::sync::atomic::AtomicBool,
    started: impl FnOnce(),
) -> anyhow::Result<Latency> {
    use crate::afxdp::{PortKind, XdpAttachment, FRAME_SIZE};
    let mut pool = FramePool::new(4096, 1024).context("sink UMEM")?;
    let mut socket = PortSocket::open(&mut pool, interface, 0, 1024, 0, true)
        .with_context(|| format!("AF_XDP socket on {interface}"))?;
    let mut steer = XdpAttachment::attach(interface, PortKind::Pod, XdpMode::Native)?;
    steer.register(0, socket.raw_fd())?;
    started();
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).context("histogram")?;
    let mut rx = Vec::with_capacity(64);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        socket.refill(&mut pool, 1024);
        rx.clear();
        socket.receive(&mut pool, 64, &mut rx);
        let now = epoch().elapsed().as_nanos() as u64;
        for d in &rx {
            if let Some(frame) = pool.frame_mut(d.addr) {
                let off = (d.addr % u64::from(FRAME_SIZE)) as usize;
                let data = &frame[off..off + d.len as usize];
                if let Some(at) = data.windows(8).position(|w| w == STAMP_MAGIC) {
                    if let Some(ts) = data.get(at + 8..at + 16) {
                        let sent = u64::from_be_bytes(ts.try_into().expect("8 bytes"));
                        let _ = histogram.record(now.saturating_sub(sent).max(1));
                    }
                }
            }
            pool.release(d.addr);
        }
        if rx.is_empty() {
            // Sleep until a frame arrives rather than spin: the sink shares a core
            // with the generator on small machines.
            crate::afxdp::wait_readable(&[socket.raw_fd()], 1);
        }
    }
    drop(steer);
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Latency {
        packets: histogram.len(),
        p50: us(0.5),
        p90: us(0.9),
        p99: us(0.99),
        p999: us(0.999),
        max: histogram.max() as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_frames_are_valid_distinct_flows() {
        let o = GenOptions {
            interface: "x".into(),
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(198, 18, 1, 2),
            dst_ip: Ipv4Addr::new(198, 18, 2, 2),
            flows: 100_000,
            size: 64,
            rate: 0,
            count: 0,
            seconds: 1.0,
        };
        let mut a = template(&o);
        let mut b = a.clone();
        stamp(&mut a, o.src_ip, 7);
        stamp(&mut b, o.src_ip, 60_007);
        for f in [&a, &b] {
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
                panic!()
            };
            assert_eq!(checksum::checksum(ip.header().slice()), 0);
            assert_eq!(ip.header().destination_addr(), o.dst_ip);
        }
        assert_eq!(&a[34..36], &b[34..36], "same port, next source address");
        assert_ne!(&a[26..30], &b[26..30]);
        assert_eq!(a.len(), 64);
    }
}
