//! The minimal AF_XDP forwarder: the ceiling of the AF_XDP path on a machine.
//!
//! It receives everything on one interface, rewrites the Ethernet addresses and sends
//! it out of another, with the same sockets, UMEM and batching as a vrouter worker but
//! no parsing, lookup or encapsulation. The benchmark runs it as a device under test
//! so that the vrouter's numbers can be read against what AF_XDP itself allows here.

use anyhow::Context;
use nexthop::MacAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use vrouter::config::XdpMode;
use xdpilone::xdp::XdpDesc;
use xsk::{FramePool, PortKind, PortSocket, XdpAttachment, FRAME_SIZE};

/// What the forwarder did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forwarded {
    /// Frames forwarded.
    pub packets: u64,
    /// Cycles spent in loop iterations that found packets (as the vrouter counts).
    pub busy_cycles: u64,
}

/// Forwards from `input` to `output` until `stop`, rewriting destination and source
/// MACs.
pub fn forward(
    input: &str,
    output: &str,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    stop: &AtomicBool,
) -> anyhow::Result<Forwarded> {
    let mut pool = FramePool::new(8192, 2048, false).context("UMEM")?;
    // The output socket anchors the UMEM; the input socket shares it.
    let mut out =
        PortSocket::open(&mut pool, output, 0, 2048, 1024, 0, true).with_context(|| format!("socket on {output}"))?;
    let mut inp =
        PortSocket::open(&mut pool, input, 0, 2048, 1024, 1, false).with_context(|| format!("socket on {input}"))?;
    let mut steer = XdpAttachment::attach(input, PortKind::Pod, XdpMode::Native)?;
    steer.register(0, inp.raw_fd())?;
    let mut rx: Vec<XdpDesc> = Vec::with_capacity(64);
    let mut forwarded = 0u64;
    let mut busy_cycles = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let started = vrouter::cycles::now();
        inp.refill(&mut pool, 2048);
        rx.clear();
        inp.receive(&mut pool, 64, &mut rx);
        for d in rx.iter() {
            if let Some(frame) = pool.frame_mut(d.addr) {
                let off = (d.addr % u64::from(FRAME_SIZE)) as usize;
                if let Some(eth) = frame.get_mut(off..off + 12) {
                    eth[0..6].copy_from_slice(&dst_mac.0);
                    eth[6..12].copy_from_slice(&src_mac.0);
                }
            }
        }
        let sent = out.transmit(&mut pool, &rx);
        for d in &rx[sent..] {
            pool.release(d.addr);
        }
        forwarded += sent as u64;
        out.kick_tx();
        out.reap(&mut pool);
        if rx.is_empty() {
            std::hint::spin_loop();
        } else {
            busy_cycles += vrouter::cycles::now().saturating_sub(started);
        }
    }
    drop(steer);
    Ok(Forwarded {
        packets: forwarded,
        busy_cycles,
    })
}
