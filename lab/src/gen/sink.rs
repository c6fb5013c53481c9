//! The sinks: a counting XDP program that drops (cheap, so it leaves the CPU to the
//! device under test), and an AF_XDP sink that records one-way delay from the
//! generator's timestamps into an HdrHistogram.

use super::{epoch, STAMP_MAGIC};
use anyhow::Context;
use std::time::{Duration, Instant};
use vrouter::config::XdpMode;
use xsk::{CountingSink, FramePool, PortSocket};

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
    use xsk::{PortKind, XdpAttachment, FRAME_SIZE};
    let mut pool = FramePool::new(4096, 1024, false).context("sink UMEM")?;
    let mut socket = PortSocket::open(&mut pool, interface, 0, 1024, 512, 0, true)
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
            xsk::wait_readable(&[socket.raw_fd()], 1);
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
