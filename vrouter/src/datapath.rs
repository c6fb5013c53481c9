//! The forwarding workers and the interfaces attached to them, as the control thread
//! sees them: start, add and remove ports at run time, stop.

use crate::afxdp::{PortKind, XdpAttachment};
use crate::config::{Config, ResolvedCores, XdpMode};
use crate::stats::WorkerStats;
use crate::worker::{self, WorkerCommand, WorkerSettings};
use anyhow::{bail, Context};
use control_client::SnapshotPublisher;
use nexthop::Vif;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

struct WorkerHandle {
    thread: Option<std::thread::JoinHandle<()>>,
    commands: worker::CommandSender,
    stats: Arc<WorkerStats>,
}

/// Running workers plus the XDP attachment of every port.
pub struct Datapath {
    workers: Vec<WorkerHandle>,
    stop: Arc<AtomicBool>,
    attachments: BTreeMap<Vif, XdpAttachment>,
    fabric: Option<XdpAttachment>,
    /// The fabric program's claimed ports (node ports, external IPs).
    claims: Option<crate::afxdp::FabricClaims>,
    xdp_mode: XdpMode,
    captures: Arc<crate::capture::Captures>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("workers", &self.workers.len())
            .field("ports", &self.attachments.len())
            .finish()
    }
}

/// Number of usable queues of an interface: the smaller of its RX and TX queue counts.
pub fn queue_count(ifname: &str) -> anyhow::Result<u32> {
    let dir = format!("/sys/class/net/{ifname}/queues");
    let entries = std::fs::read_dir(&dir).with_context(|| format!("interface {ifname} not found ({dir})"))?;
    let (mut rx, mut tx) = (0u32, 0u32);
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("rx-") {
            rx += 1;
        } else if name.starts_with("tx-") {
            tx += 1;
        }
    }
    Ok(rx.min(tx))
}

/// The MTU of interface `ifname`, if it exists.
pub fn interface_mtu(ifname: &str) -> Option<u16> {
    if !crate::store::valid_port_name(ifname) {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu")).ok()?;
    text.trim()
        .parse::<u32>()
        .ok()
        .map(|m| m.min(u32::from(u16::MAX)) as u16)
}

/// The kernel's index of interface `ifname`, if it exists (a recreated interface of
/// the same name gets a new one).
pub fn interface_index(ifname: &str) -> Option<u32> {
    if !crate::store::valid_port_name(ifname) {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Datapath {
    /// Starts one pinned worker per forwarding core; each binds its UMEM to its queue
    /// of the fabric interface.
    pub fn start(
        config: &Config,
        cores: &ResolvedCores,
        publisher: &SnapshotPublisher,
        flows: &Arc<crate::flows::Flows>,
    ) -> anyhow::Result<Self> {
        let fabric = &config.fabric.interface;
        let queues = queue_count(fabric).context("fabric.interface")?;
        if (queues as usize) < cores.forwarding.len() {
            bail!(
                "fabric.interface {fabric} has {queues} queue(s) but cores.forwarding asks for {} workers; each worker needs its own queue",
                cores.forwarding.len()
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut dp = Self {
            workers: Vec::new(),
            stop: Arc::clone(&stop),
            attachments: BTreeMap::new(),
            fabric: None,
            claims: None,
            xdp_mode: config.dataplane.xdp_mode,
            captures: Arc::new(crate::capture::Captures::new(cores.forwarding.len())),
        };
        let mut anchors = Vec::new();
        for (index, &core) in cores.forwarding.iter().enumerate() {
            let settings = WorkerSettings {
                index,
                core,
                umem_frames: config.dataplane.umem_frames,
                ring_size: config.dataplane.ring_size,
                fill_frames: config.dataplane.fill_frames(),
                batch_size: config.dataplane.batch_size,
                poll_mode: config.dataplane.poll_mode,
                fabric: fabric.clone(),
                exception_rate: config.dataplane.exception_rate,
                tx_checksum_offload: config.dataplane.tx_checksum_offload,
            };
            let stats = Arc::new(WorkerStats::new(config.tables.interfaces as usize));
            let (tx, rx) = worker::command_channel().context("a worker's command channel")?;
            let shared = worker::WorkerShared {
                publisher: publisher.clone(),
                flows: Arc::clone(flows),
                stop: Arc::clone(&stop),
                captures: Arc::clone(&dp.captures),
            };
            let (thread, anchor) = worker::spawn(settings, shared, Arc::clone(&stats), rx)?;
            anchors.push(anchor);
            dp.workers.push(WorkerHandle {
                thread: Some(thread),
                commands: tx,
                stats,
            });
        }
        // The fabric program steers only tunnel packets to the workers' anchor sockets
        // (worker w owns fabric queue w); the node's own traffic goes to the kernel.
        let mut fabric_xdp =
            XdpAttachment::attach(fabric, PortKind::Fabric, dp.xdp_mode).context("fabric.interface")?;
        for (queue, fd) in anchors.into_iter().enumerate() {
            fabric_xdp.register(queue as u32, fd)?;
        }
        dp.claims = Some(fabric_xdp.take_claims()?);
        if let Some(host) = config.host.as_ref().filter(|h| h.snat) {
            let r = host.snat_ranges();
            let ranges = [r.tcp, r.udp, r.icmp].map(|p| (p.first, p.last));
            fabric_xdp.set_snat_ports(config.fabric.ip.addr(), ranges)?;
        }
        dp.fabric = Some(fabric_xdp);
        Ok(dp)
    }

    /// Makes the fabric program steer exactly `wanted` (besides tunnels) to the
    /// workers.
    pub fn set_fabric_claims(
        &mut self,
        wanted: &std::collections::BTreeSet<crate::afxdp::Claim>,
    ) -> anyhow::Result<()> {
        match &mut self.claims {
            Some(claims) => Ok(claims.set(wanted)?),
            None => anyhow::bail!("the fabric program is not attached"),
        }
    }

    /// The packet capture sessions the workers serve.
    pub fn captures(&self) -> Arc<crate::capture::Captures> {
        Arc::clone(&self.captures)
    }

    /// Counters of every worker.
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers.iter().map(|w| Arc::clone(&w.stats)).collect()
    }

    /// True if every worker asks the kernel to finish the checksums it sends (see
    /// [`crate::packet::tx_checksum`]).
    pub fn checksum_offload(&self) -> bool {
        !self.workers.is_empty()
            && self
                .workers
                .iter()
                .all(|w| w.stats.tx_checksum_offload.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Attaches `ifname` as `vif`: the steering program, then one socket per queue on
    /// the worker owning that queue. On error nothing stays attached.
    pub fn add_port(&mut self, vif: Vif, ifname: &str) -> anyhow::Result<()> {
        let queues = queue_count(ifname)?;
        let workers = self.workers.len() as u32;
        if queues < workers {
            bail!("interface {ifname} has {queues} queue(s), fewer than the {workers} forwarding workers; create it with numrxqueues/numtxqueues >= {workers}");
        }
        let mut attachment = XdpAttachment::attach(ifname, PortKind::Pod, self.xdp_mode)?;
        let mut fds = Vec::new();
        let mut failure = None;
        for (w, worker) in self.workers.iter().enumerate() {
            let mine: Vec<u32> = (0..queues).filter(|q| q % workers == w as u32).collect();
            let (reply, result) = crossbeam_channel::bounded(1);
            let sent = worker.commands.send(WorkerCommand::AddPort {
                vif,
                ifname: ifname.to_string(),
                queues: mine,
                reply,
            });
            match sent.then(|| result.recv_timeout(WORKER_REPLY_TIMEOUT).ok()).flatten() {
                Some(Ok(opened)) => fds.extend(opened),
                Some(Err(e)) => {
                    failure = Some(anyhow::anyhow!("worker {w}: {e}"));
                    break;
                }
                None => {
                    failure = Some(anyhow::anyhow!("worker {w} did not answer"));
                    break;
                }
            }
        }
        if failure.is_none() {
            for (queue, fd) in fds {
                if let Err(e) = attachment.register(queue, fd) {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        if let Some(e) = failure {
            drop(attachment);
            self.close_sockets(vif);
            return Err(e);
        }
        self.attachments.insert(vif, attachment);
        Ok(())
    }

    /// Detaches the program from the port, then closes its sockets.
    pub fn remove_port(&mut self, vif: Vif) {
        self.attachments.remove(&vif);
        self.close_sockets(vif);
    }

    fn close_sockets(&self, vif: Vif) {
        for worker in &self.workers {
            let (reply, done) = crossbeam_channel::bounded(1);
            if worker.commands.send(WorkerCommand::RemovePort { vif, reply }) {
                let _ = done.recv_timeout(WORKER_REPLY_TIMEOUT);
            }
        }
    }

    /// Detaches every program and stops the workers (idempotent).
    pub fn shutdown(&mut self) {
        self.attachments.clear();
        self.claims = None;
        self.fabric = None;
        self.stop.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}
