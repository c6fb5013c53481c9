//! A pktgen-style traffic generator on AF_XDP (the kernel's pktgen module and
//! Debian's xdp-trafficgen are not available on these machines), and the sinks that
//! go with it.
//!
//! The generator writes frames from templates ([`Template`]) into UMEM frames: UDP or
//! TCP SYN, IPv4 or IPv6, a fixed size or IMIX, varying the source port (and the
//! source address beyond 60K flows) to make `flows` distinct flows, at a target rate
//! or flat out, for a count or a duration. Every frame carries its send time, which
//! the latency sink reads back.

mod frames;
mod sink;

pub use frames::{Endpoints, FrameSize, Proto, Template, STAMP_MAGIC};
pub use sink::{latency_sink, sink, Latency, SinkReport};

use anyhow::Context;
use nexthop::MacAddr;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use xdpilone::xdp::XdpDesc;
use xsk::{FramePool, PortSocket};

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
    /// First source address, IPv4 or IPv6 (more are used past 60K flows).
    #[arg(long)]
    pub src_ip: IpAddr,
    /// Destination address (same family as the source).
    #[arg(long)]
    pub dst_ip: IpAddr,
    /// Transport.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// Distinct flows (source port, then source address, vary).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Frame size in bytes, Ethernet header included (64..=1500), or `imix`.
    #[arg(long, default_value = "64")]
    pub size: FrameSize,
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

impl GenOptions {
    /// A UDP stream of `flows` flows of `size` bytes from `src` to `dst` (the rest:
    /// flat out, no count, 5 seconds).
    pub fn udp(interface: &str, (src_mac, dst_mac): (MacAddr, MacAddr), src_ip: IpAddr, dst_ip: IpAddr) -> GenOptions {
        GenOptions {
            interface: interface.into(),
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            proto: Proto::Udp,
            flows: 1,
            size: FrameSize::Fixed(64),
            rate: 0,
            count: 0,
            seconds: 5.0,
        }
    }
}

/// What was sent.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct GenReport {
    /// Packets handed to the kernel.
    pub packets: u64,
    /// Bytes handed to the kernel.
    pub bytes: u64,
    /// Seconds spent sending.
    pub seconds: f64,
    /// Packets per second achieved.
    pub pps: f64,
}

const HEADROOM: usize = 256;
const DISCARD_PORT: u16 = 9;

/// The clock both the generator and the latency sink read (one process).
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Sends as `o` says; returns what was sent.
pub fn generate(o: &GenOptions) -> anyhow::Result<GenReport> {
    let endpoints = Endpoints {
        src_mac: o.src_mac,
        dst_mac: o.dst_mac,
        src_ip: o.src_ip,
        dst_ip: o.dst_ip,
        dst_port: DISCARD_PORT,
    };
    let templates = o
        .size
        .sizes()
        .into_iter()
        .map(|s| Template::new(&endpoints, o.proto, s).map(|t| (s, t)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let template_of = |size: u16| {
        &templates
            .iter()
            .find(|(s, _)| *s == size)
            .expect("a template per size")
            .1
    };
    let mut pool = FramePool::new(4096, 1024, false).context("generator UMEM")?;
    let mut socket = PortSocket::open(&mut pool, &o.interface, 0, 1024, 512, 0, true)
        .with_context(|| format!("AF_XDP socket on {}", o.interface))?;
    let flows = u64::from(o.flows.max(1));
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds.max(0.001));
    let start = Instant::now();
    let (mut sent, mut bytes) = (0u64, 0u64);
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
        let now = epoch().elapsed().as_nanos() as u64;
        for _ in 0..budget {
            let n = sent + batch.len() as u64;
            let t = template_of(o.size.nth(n));
            let Some(addr) = pool.take() else { break };
            let Some(frame) = pool.frame_mut(addr) else { break };
            t.write(
                &mut frame[HEADROOM..HEADROOM + t.len()],
                o.src_ip,
                (n % flows) as u32,
                now,
            );
            batch.push(XdpDesc {
                addr: addr + HEADROOM as u64,
                len: t.len() as u32,
                options: 0,
            });
        }
        let n = socket.transmit(&mut pool, &batch);
        for d in &batch[n..] {
            pool.release(d.addr);
        }
        sent += n as u64;
        bytes += batch[..n].iter().map(|d| u64::from(d.len)).sum::<u64>();
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
        bytes,
        seconds,
        pps: sent as f64 / seconds.max(1e-9),
    })
}
