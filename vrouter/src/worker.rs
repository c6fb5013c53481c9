//! A forwarding worker: one pinned thread, its UMEM and its AF_XDP sockets.
//!
//! The loop runs to completion on batches: refill, receive, process each frame
//! against the snapshot loaded once per batch, queue transmissions per output socket,
//! flush, kick, reap completions. No locks, allocation or logging on that path; the
//! only system calls are the TX wake-ups AF_XDP asks for and, when idle in adaptive
//! mode, poll(2).

use crate::afxdp::{continues, FramePool, PortSocket, RxBatch, FRAME_SIZE, XDP_PKT_CONTD, XDP_TX_METADATA};
use crate::batch::{BatchProcessor, Desc, FrameStore, TxQueues};
use crate::config::PollMode;
use crate::fill::FillShares;
use crate::packet::{DropReason, PipelineContext};
use crate::stats::WorkerStats;
use control_client::SnapshotPublisher;
use crossbeam_channel::{Receiver, Sender};
use nexthop::{Snapshot, Vif};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdpilone::xdp::XdpDesc;

const NO_SOCKET: u16 = u16::MAX;
/// Empty polls before an adaptive worker sleeps.
const IDLE_SPINS: u32 = 2000;
/// Kick-and-retry rounds for a full TX ring before its frames are dropped.
const TX_RETRIES: u32 = 16;
/// How often kernel socket counters are mirrored.
const KERNEL_STATS_EVERY: Duration = Duration::from_millis(500);

/// The control thread's end of a worker's command channel: a command also wakes the
/// worker when it sleeps in poll(2) (adaptive mode), so a port is attached without
/// waiting out the worker's idle timeout.
#[derive(Debug)]
pub struct CommandSender {
    commands: Sender<WorkerCommand>,
    wake: std::os::unix::net::UnixDatagram,
}

impl CommandSender {
    /// Sends `cmd` and wakes the worker; false if the worker is gone.
    pub fn send(&self, cmd: WorkerCommand) -> bool {
        let sent = self.commands.send(cmd).is_ok();
        // Non-blocking: a full wake-up buffer means the worker is woken already.
        let _ = self.wake.send(&[1]);
        sent
    }
}

/// The worker's end of its command channel.
#[derive(Debug)]
pub struct CommandReceiver {
    commands: Receiver<WorkerCommand>,
    wake: std::os::unix::net::UnixDatagram,
}

/// A worker's command channel.
pub fn command_channel() -> std::io::Result<(CommandSender, CommandReceiver)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (wake_tx, wake_rx) = std::os::unix::net::UnixDatagram::pair()?;
    wake_tx.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    Ok((
        CommandSender {
            commands: tx,
            wake: wake_tx,
        },
        CommandReceiver {
            commands: rx,
            wake: wake_rx,
        },
    ))
}

/// Requests from the control thread.
#[derive(Debug)]
pub enum WorkerCommand {
    /// Open sockets on `queues` of `ifname` for `vif`; reply with `(queue, fd)` pairs
    /// for the XSK map.
    AddPort {
        /// The interface's vif.
        vif: Vif,
        /// Its name.
        ifname: String,
        /// Queues this worker receives from; the first is also its TX queue.
        queues: Vec<u32>,
        /// Where the result goes.
        reply: Sender<Result<Vec<(u32, RawFd)>, String>>,
    },
    /// Close the sockets of `vif` and reclaim their frames.
    RemovePort {
        /// The interface's vif.
        vif: Vif,
        /// Acknowledgement.
        reply: Sender<()>,
    },
}

/// What a worker needs to start.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Worker number (also its fabric queue).
    pub index: usize,
    /// Core to pin to.
    pub core: usize,
    /// Frames in the UMEM.
    pub umem_frames: u32,
    /// Ring entries.
    pub ring_size: u32,
    /// Frames each socket's fill ring holds.
    pub fill_frames: u32,
    /// Packets per receive batch.
    pub batch_size: u32,
    /// Idle behaviour.
    pub poll_mode: PollMode,
    /// The fabric interface (anchor of the UMEM).
    pub fabric: String,
    /// Exception packets per second per port (0: unpoliced).
    pub exception_rate: u32,
    /// Ask for transmit checksum offload where the kernel has it.
    pub tx_checksum_offload: bool,
}

struct Slot {
    vif: Vif,
    socket: PortSocket,
}

/// The worker's state; built on its own thread.
struct Worker {
    // Sockets before the pool: they close before the UMEM does.
    slots: Vec<Option<Slot>>,
    pool: FramePool,
    tx_slot_of_vif: Vec<u16>,
    pending: Vec<Vec<XdpDesc>>,
    settings: WorkerSettings,
    stats: Arc<WorkerStats>,
    publisher: SnapshotPublisher,
    commands: CommandReceiver,
    /// The batch routine (shared with the in-memory benchmark) and its state.
    engine: BatchProcessor,
    /// The received batch as the batch routine takes it.
    rx_descs: Vec<Desc>,
    /// How the UMEM's frames are shared among the sockets' fill rings.
    fill: FillShares,
    /// Per socket slot: true while the rest of a dropped, incomplete chain is to be
    /// skipped.
    chain_rest: Vec<bool>,
}

/// The worker's transmit queues, as the batch routine sees them.
struct WorkerTx<'a> {
    queue_of_vif: &'a [u16],
    pending: &'a mut [Vec<XdpDesc>],
}

impl TxQueues for WorkerTx<'_> {
    #[inline]
    fn queue_of(&self, vif: Vif) -> Option<u16> {
        self.queue_of_vif.get(vif.index()).copied().filter(|q| *q != NO_SOCKET)
    }

    #[inline]
    fn push(&mut self, queue: u16, desc: Desc, checksum: bool) {
        if let Some(p) = self.pending.get_mut(usize::from(queue)) {
            p.push(XdpDesc {
                addr: desc.addr,
                len: desc.len,
                options: if checksum { XDP_TX_METADATA } else { 0 },
            });
        }
    }

    fn push_chain(&mut self, queue: u16, descs: &[Desc], checksum: bool) {
        if let Some(p) = self.pending.get_mut(usize::from(queue)) {
            let last = descs.len().saturating_sub(1);
            p.extend(descs.iter().enumerate().map(|(i, d)| XdpDesc {
                addr: d.addr,
                len: d.len,
                options: if i < last { XDP_PKT_CONTD } else { 0 }
                    | if i == 0 && checksum { XDP_TX_METADATA } else { 0 },
            }));
        }
    }
}

impl FrameStore for FramePool {
    #[inline]
    fn chunk_size(&self) -> u64 {
        u64::from(FRAME_SIZE)
    }

    #[inline]
    fn chunk_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        self.frame_mut(addr)
    }

    #[inline]
    fn release(&mut self, addr: u64) {
        FramePool::release(self, addr)
    }

    #[inline]
    fn take(&mut self) -> Option<u64> {
        FramePool::take(self)
    }

    #[inline]
    fn tx_metadata(&self) -> bool {
        FramePool::tx_metadata(self)
    }
}

/// What a worker shares with the rest of the vrouter.
#[derive(Debug, Clone)]
pub struct WorkerShared {
    /// The published forwarding state.
    pub publisher: SnapshotPublisher,
    /// The flow table.
    pub flows: Arc<crate::flows::Flows>,
    /// Set to stop the worker.
    pub stop: Arc<AtomicBool>,
    /// Packet capture sessions.
    pub captures: Arc<crate::capture::Captures>,
}

/// Spawns a worker; returns once its UMEM and fabric anchor socket are ready, with
/// the anchor socket's fd (for the fabric's XSK map).
pub fn spawn(
    settings: WorkerSettings,
    shared: WorkerShared,
    stats: Arc<WorkerStats>,
    commands: CommandReceiver,
) -> anyhow::Result<(std::thread::JoinHandle<()>, RawFd)> {
    let WorkerShared {
        publisher,
        flows,
        stop,
        captures,
    } = shared;
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<RawFd, String>>(1);
    let name = format!("vrouter-fwd{}", settings.index);
    let handle = std::thread::Builder::new().name(name).spawn(move || {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: settings.core }) {
            tracing::warn!(core = settings.core, "could not pin worker");
        }
        match Worker::new(settings, publisher, flows, stats, commands) {
            Ok(mut w) => {
                let index = w.settings.index;
                w.engine.serve_captures(captures, index);
                let anchor = w.slots[0].as_ref().map_or(-1, |s| s.socket.raw_fd());
                let _ = ready_tx.send(Ok(anchor));
                w.run(&stop);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(format!("{e:#}")));
            }
        }
    })?;
    match ready_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(fd)) => Ok((handle, fd)),
        Ok(Err(e)) => {
            let _ = handle.join();
            anyhow::bail!(e)
        }
        Err(_) => anyhow::bail!("worker did not start within 20 s"),
    }
}

impl Worker {
    fn new(
        settings: WorkerSettings,
        publisher: SnapshotPublisher,
        flows: Arc<crate::flows::Flows>,
        stats: Arc<WorkerStats>,
        commands: CommandReceiver,
    ) -> anyhow::Result<Self> {
        let mut pool =
            FramePool::new(settings.umem_frames, settings.ring_size, settings.tx_checksum_offload).map_err(|e| {
                anyhow::anyhow!(
                    "worker {}: UMEM of {} frames: {e}",
                    settings.index,
                    settings.umem_frames
                )
            })?;
        let anchor = PortSocket::open(&mut pool, &settings.fabric, settings.index as u32, settings.ring_size, settings.fill_frames, 0, true).map_err(|e| {
            anyhow::anyhow!(
                "worker {}: {e} (each forwarding worker binds one queue of the fabric interface; it needs at least as many queues as cores.forwarding has cores)",
                settings.index
            )
        })?;
        if settings.tx_checksum_offload && !pool.tx_metadata() {
            tracing::warn!(
                worker = settings.index,
                "transmit checksum offload unavailable (AF_XDP transmit metadata needs Linux 6.11+): pods must send complete checksums (their tx offload off)"
            );
        }
        stats.tx_checksum_offload.store(pool.tx_metadata(), Ordering::Relaxed);
        let max_vifs = stats.vifs.len();
        let mut tx_slot_of_vif = vec![NO_SOCKET; max_vifs];
        tx_slot_of_vif[0] = 0;
        let exception_rate = settings.exception_rate;
        let fill = FillShares::new(settings.umem_frames, settings.fill_frames, settings.ring_size);
        let engine_stats = Arc::clone(&stats);
        Ok(Self {
            slots: vec![Some(Slot {
                vif: Vif(0),
                socket: anchor,
            })],
            pool,
            tx_slot_of_vif,
            pending: vec![Vec::with_capacity(settings.batch_size as usize)],
            settings,
            stats,
            publisher,
            commands,
            engine: {
                let mut ctx = PipelineContext::new(flows);
                ctx.exceptions = crate::packet::ExceptionPolicer::new(ctx.flows.max_vifs(), exception_rate);
                BatchProcessor::new(ctx, engine_stats)
            },
            rx_descs: Vec::with_capacity(256),
            fill,
            chain_rest: Vec::new(),
        })
    }

    fn run(&mut self, stop: &AtomicBool) {
        let batch = self.settings.batch_size;
        let mut rx: RxBatch = Vec::with_capacity(batch as usize);
        let mut idle_spins = 0u32;
        let mut last_kernel_stats = Instant::now();
        let mut loops = 0u32;
        let mut last_work = 0usize;
        let mut iteration_start = crate::cycles::now();
        while !stop.load(Ordering::Relaxed) {
            // Busy and idle cycles, as Open vSwitch's pmd-stats-show reports them: one
            // counter read per iteration, charged to busy when it found packets.
            let now = crate::cycles::now();
            let spent = now.saturating_sub(iteration_start);
            iteration_start = now;
            if last_work > 0 {
                self.stats.busy_cycles.add(spent);
            } else {
                self.stats.idle_cycles.add(spent);
            }
            while let Ok(cmd) = self.commands.commands.try_recv() {
                self.handle(cmd);
            }
            let snap = self.publisher.load();
            let mut work = 0usize;
            for slot in 0..self.slots.len() {
                let Some(Slot { vif, socket }) = self.slots[slot].as_mut() else {
                    continue;
                };
                let in_vif = *vif;
                let held = socket.refill(&mut self.pool, self.fill.target(slot));
                self.fill.record(slot, held);
                rx.clear();
                socket.receive(&mut self.pool, batch, &mut rx);
                self.fill.set_active(slot, !rx.is_empty());
                if rx.is_empty() {
                    continue;
                }
                work += rx.len();
                self.forward_received(&snap, in_vif, slot, &rx);
                self.flush();
            }
            // Not held while idle: the control side patches the previous snapshot in
            // place once no worker reads it.
            drop(snap);
            for s in self.slots.iter_mut().flatten() {
                s.socket.kick_tx();
                s.socket.reap(&mut self.pool);
            }
            loops = loops.wrapping_add(1);
            if loops.is_multiple_of(4096) && last_kernel_stats.elapsed() >= KERNEL_STATS_EVERY {
                self.mirror_kernel_stats();
                last_kernel_stats = Instant::now();
            }
            last_work = work;
            if work > 0 {
                idle_spins = 0;
                self.stats.busy_loops.add(1);
                let now = Instant::now();
                self.engine.ctx.icmp.refill(now);
                self.engine.ctx.exceptions.refill(now);
                continue;
            }
            self.stats.idle_loops.add(1);
            idle_spins += 1;
            if idle_spins >= IDLE_SPINS {
                idle_spins = 0;
                if self.settings.poll_mode == PollMode::Adaptive {
                    let wake = std::os::fd::AsRawFd::as_raw_fd(&self.commands.wake);
                    let fds: Vec<RawFd> = std::iter::once(wake)
                        .chain(self.slots.iter().flatten().map(|s| s.socket.raw_fd()))
                        .collect();
                    crate::afxdp::wait_readable(&fds, 5);
                    let mut drained = [0u8; 16];
                    while self.commands.wake.recv(&mut drained).is_ok() {}
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Runs a received batch: runs of one-chunk packets through the batch routine, a
    /// packet larger than a chunk (a chain) on its own, in order. A chain the poll
    /// ended in the middle of (the kernel publishes a chain's descriptors together,
    /// so only a misbehaving ring would) is dropped as truncated, and its rest
    /// skipped when the next poll brings it.
    fn forward_received(&mut self, snap: &Snapshot, in_vif: Vif, slot: usize, rx: &[XdpDesc]) {
        let mut tx = WorkerTx {
            queue_of_vif: &self.tx_slot_of_vif,
            pending: &mut self.pending,
        };
        let mut rest = rx;
        if self.chain_rest.get(slot).copied().unwrap_or(false) {
            let end = rest.iter().position(|d| !continues(d));
            let skipped = end.map_or(rest.len(), |i| i + 1);
            for d in &rest[..skipped] {
                self.pool.release(d.addr);
            }
            self.chain_rest[slot] = end.is_none();
            rest = &rest[skipped..];
        }
        while !rest.is_empty() {
            // The run of one-chunk packets, converted in the pass that finds its end.
            self.rx_descs.clear();
            for d in rest.iter().take_while(|d| !continues(d)) {
                self.rx_descs.push(Desc {
                    addr: d.addr,
                    len: d.len,
                });
            }
            let singles = self.rx_descs.len();
            if singles > 0 {
                self.engine
                    .run(snap, in_vif, slot as u16, &self.rx_descs, &mut self.pool, &mut tx);
                rest = &rest[singles..];
                continue;
            }
            let Some(last) = rest.iter().position(|d| !continues(d)) else {
                for d in rest {
                    self.pool.release(d.addr);
                }
                self.engine.stats.drop_packet(in_vif, DropReason::Truncated);
                if self.chain_rest.len() <= slot {
                    self.chain_rest.resize(slot + 1, false);
                }
                self.chain_rest[slot] = true;
                return;
            };
            self.rx_descs.clear();
            self.rx_descs.extend(rest[..=last].iter().map(|d| Desc {
                addr: d.addr,
                len: d.len,
            }));
            self.engine
                .forward_chain(snap, in_vif, slot as u16, &self.rx_descs, &mut self.pool, &mut tx);
            rest = &rest[last + 1..];
        }
    }

    fn flush(&mut self) {
        for (slot, pending) in self.pending.iter_mut().enumerate() {
            if pending.is_empty() {
                continue;
            }
            let Some(Slot { vif, socket }) = self.slots[slot].as_mut() else {
                for d in pending.drain(..) {
                    self.pool.release(d.addr);
                }
                continue;
            };
            // A full ring is usually a kernel that has not been kicked enough yet:
            // kick, reap and retry a few times before counting drops.
            let mut sent = socket.transmit(&mut self.pool, pending);
            let mut retries = TX_RETRIES;
            while sent < pending.len() && retries > 0 {
                socket.kick_tx();
                socket.reap(&mut self.pool);
                sent += socket.transmit(&mut self.pool, &pending[sent..]);
                retries -= 1;
            }
            // Packets, not descriptors: a chain's last descriptor ends its packet
            // (counted in the pass that sums the bytes).
            let (bytes, packets) = pending[..sent].iter().fold((0u64, 0u64), |(b, p), d| {
                (b + u64::from(d.len), p + u64::from(!continues(d)))
            });
            let dropped = pending[sent..].iter().filter(|d| !continues(d)).count() as u64;
            if let Some(c) = self.stats.vifs.get(vif.index()) {
                c.tx_packets.add(packets);
                c.tx_bytes.add(bytes);
                c.tx_ring_full.add(dropped);
            }
            self.stats.drops[DropReason::TxRingFull.index()].add(dropped);
            for d in &pending[sent..] {
                self.pool.release(d.addr);
            }
            pending.clear();
        }
    }

    fn mirror_kernel_stats(&self) {
        for s in self.slots.iter().flatten() {
            let k = s.socket.kernel_stats();
            if let Some(c) = self.stats.vifs.get(s.vif.index()) {
                c.kernel_rx_dropped.set(k.rx_dropped);
                c.kernel_rx_ring_full.set(k.rx_ring_full);
                c.kernel_fill_ring_empty.set(k.fill_ring_empty);
            }
        }
        self.stats.icmp_errors_suppressed.set(self.engine.ctx.icmp.suppressed);
        self.stats.frame_double_releases.set(self.pool.double_releases());
    }

    fn handle(&mut self, cmd: WorkerCommand) {
        match cmd {
            WorkerCommand::AddPort {
                vif,
                ifname,
                queues,
                reply,
            } => {
                let result = self.add_port(vif, &ifname, &queues);
                let _ = reply.send(result);
            }
            WorkerCommand::RemovePort { vif, reply } => {
                self.remove_port(vif);
                let _ = reply.send(());
            }
        }
    }

    fn add_port(&mut self, vif: Vif, ifname: &str, queues: &[u32]) -> Result<Vec<(u32, RawFd)>, String> {
        if vif.index() >= self.tx_slot_of_vif.len() || vif == Vif(0) {
            return Err(format!("vif {vif} out of range"));
        }
        self.remove_port(vif);
        if let Some(c) = self.stats.vifs.get(vif.index()) {
            for counter in [
                &c.rx_packets,
                &c.rx_bytes,
                &c.tx_packets,
                &c.tx_bytes,
                &c.drops,
                &c.tx_ring_full,
            ]
            .into_iter()
            .chain(c.drop_reasons.iter())
            {
                counter.set(0);
            }
        }
        let live = self.slots.iter().flatten().count();
        let capacity = self.fill.capacity();
        if live + queues.len() > capacity {
            return Err(format!(
                "worker's UMEM is full: it guarantees the fill rings of {capacity} sockets (dataplane.umem_frames {} / (4 x dataplane.fill_frames {})) and {live} are open; raise dataplane.umem_frames",
                self.settings.umem_frames, self.settings.fill_frames
            ));
        }
        let mut opened = Vec::new();
        for &queue in queues {
            let slot = match self.slots.iter().position(Option::is_none) {
                Some(s) => s,
                None if self.slots.len() < NO_SOCKET as usize => {
                    self.slots.push(None);
                    self.pending.push(Vec::with_capacity(self.settings.batch_size as usize));
                    self.slots.len() - 1
                }
                None => return Err("worker socket table full".into()),
            };
            match PortSocket::open(
                &mut self.pool,
                ifname,
                queue,
                self.settings.ring_size,
                self.settings.fill_frames,
                slot as u16,
                false,
            ) {
                Ok(socket) => {
                    if let Some(rest) = self.chain_rest.get_mut(slot) {
                        *rest = false;
                    }
                    opened.push((queue, socket.raw_fd()));
                    self.slots[slot] = Some(Slot { vif, socket });
                    if self.tx_slot_of_vif[vif.index()] == NO_SOCKET {
                        self.tx_slot_of_vif[vif.index()] = slot as u16;
                    }
                }
                Err(e) => {
                    self.remove_port(vif);
                    return Err(e.to_string());
                }
            }
        }
        Ok(opened)
    }

    fn remove_port(&mut self, vif: Vif) {
        if vif == Vif(0) {
            return;
        }
        if let Some(s) = self.tx_slot_of_vif.get_mut(vif.index()) {
            *s = NO_SOCKET;
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].as_ref().is_some_and(|s| s.vif == vif) {
                let s = self.slots[slot].take().expect("checked");
                self.fill.release(slot);
                for d in self.pending[slot].drain(..) {
                    self.pool.release(d.addr);
                }
                s.socket.close(&mut self.pool);
            }
        }
    }
}
