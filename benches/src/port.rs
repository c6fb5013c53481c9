//! An in-memory port, as a NIC fills a UMEM ring, and the route churn the control
//! side publishes while it runs.

use crate::ROUTER;
use control_client::{DesiredState, RouteSpec, RouteTarget, SnapshotBuilder};
use nexthop::encap::Encap;
use nexthop::{Interface, MacAddr, Snapshot};
use std::hint::black_box;
use std::net::Ipv4Addr;
use vrouter::batch::{BatchProcessor, Desc, FrameStore, TxQueues};
use vrouter_lab::gen::{Endpoints, Proto, Template};

/// Frames in the ring.
pub const RING: usize = 512;
/// Bytes between frames (a UMEM frame).
pub const FRAME: usize = 2048;
const HEADROOM: usize = 256;
/// A route publication every this many packets: 1000 per second at 14.88 Mpps.
pub const PUBLISH_EVERY: usize = 14_880;

/// 512 frames 2 KB apart (1 MB: warm in L2/L3, as a NIC's DMA leaves them), filled by
/// the generator's template with consecutive flows of pod a (source port and address
/// vary) to 198.18.2.2, and the worker's own batch routine over them.
pub struct InMemoryPort {
    umem: Umem,
    template: Template,
    source: std::net::IpAddr,
    flows: u32,
    next: u32,
    iface: Interface,
    rx: Vec<Desc>,
    tx: Queues,
}

/// The port's memory as the batch routine sees a UMEM: 2 KB chunks, with room for
/// transmit metadata (checksum requests) or not.
struct Umem(Vec<u8>, bool);

impl FrameStore for Umem {
    fn chunk_size(&self) -> u64 {
        FRAME as u64
    }
    #[inline]
    fn chunk_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let start = (addr as usize / FRAME) * FRAME;
        self.0.get_mut(start..start + FRAME)
    }
    fn release(&mut self, _addr: u64) {}
    fn take(&mut self) -> Option<u64> {
        None
    }
    // As the worker's UMEM on a kernel with transmit metadata (Linux 6.11+) unless
    // turned off: the checksum requests are part of the measured path.
    fn tx_metadata(&self) -> bool {
        self.1
    }
}

/// Transmit queues that take everything (the worker's pending lists; "sent" when
/// the batch ends, as the worker's flush does).
struct Queues(Vec<Vec<Desc>>);

impl TxQueues for Queues {
    #[inline]
    fn queue_of(&self, vif: nexthop::Vif) -> Option<u16> {
        Some(vif.0.min(15) as u16)
    }
    #[inline]
    fn push(&mut self, queue: u16, desc: Desc, _checksum: bool) {
        self.0[usize::from(queue)].push(desc);
    }
    // In memory a chain is its chunks in order (the benchmark's frames fit one).
    fn push_chain(&mut self, queue: u16, descs: &[Desc], _checksum: bool) {
        self.0[usize::from(queue)].extend_from_slice(descs);
    }
}

impl std::fmt::Debug for InMemoryPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryPort")
            .field("flows", &self.flows)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl InMemoryPort {
    /// A port cycling through `flows` flows, received on `iface`.
    pub fn new(flows: u32, iface: Interface) -> Self {
        let endpoints = Endpoints {
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_mac: MacAddr(ROUTER),
            src_ip: "198.18.1.2".parse().expect("literal"),
            dst_ip: "198.18.2.2".parse().expect("literal"),
            dst_port: 5000,
        };
        Self {
            umem: Umem(vec![0u8; RING * FRAME], true),
            template: Template::new(&endpoints, Proto::Udp, 64).expect("template"),
            source: endpoints.src_ip,
            flows,
            next: 0,
            iface,
            rx: Vec::with_capacity(32),
            tx: Queues((0..16).map(|_| Vec::with_capacity(64)).collect()),
        }
    }

    /// Whether the frames ask for their checksums to be finished, as a worker with
    /// `dataplane.tx_checksum_offload` on a kernel that has it (the default: on).
    pub fn set_checksum_offload(&mut self, on: bool) {
        self.umem.1 = on;
    }

    /// The generator's part (not the vrouter's work): writes the next 512 frames.
    pub fn fill(&mut self) {
        let len = self.template.len();
        for frame in self.umem.0.chunks_exact_mut(FRAME) {
            self.template
                .write(&mut frame[HEADROOM..HEADROOM + len], self.source, self.next, 0);
            self.next = (self.next + 1) % self.flows;
        }
    }

    /// The worker's part: its batch routine ([`BatchProcessor::run`]) over each 32
    /// frames, as over a received batch, the transmit queues emptied after each.
    pub fn pass(&mut self, engine: &mut BatchProcessor, snap: &Snapshot) {
        let len = self.template.len() as u32;
        for batch in 0..RING / 32 {
            self.rx.clear();
            self.rx.extend((0..32).map(|i| Desc {
                addr: ((batch * 32 + i) * FRAME + HEADROOM) as u64,
                len,
            }));
            engine.run(snap, self.iface.vif, 0, &self.rx, &mut self.umem, &mut self.tx);
            for q in &mut self.tx.0 {
                black_box(q.len());
                q.clear();
            }
        }
    }

    /// Fills and passes until every flow has been seen (so all are established).
    pub fn establish(&mut self, engine: &mut BatchProcessor, snap: &Snapshot) {
        for _ in 0..(self.flows as usize).div_ceil(RING) {
            self.fill();
            self.pass(engine, snap);
        }
    }
}

/// The control side of a benchmark: the desired state, the builder that publishes
/// it, and the snapshot the worker uses.
#[derive(Debug)]
pub struct Publisher {
    model: DesiredState,
    builder: SnapshotBuilder,
    /// The published snapshot.
    pub snapshot: Snapshot,
    publications: u64,
    since_publication: usize,
}

impl Publisher {
    /// Publishes [`crate::tunnel_state`], generation 1.
    pub fn new() -> Self {
        let model = crate::tunnel_state();
        let mut builder = SnapshotBuilder::new(1);
        let snapshot = builder.build(&model, MacAddr(ROUTER));
        Self {
            model,
            builder,
            snapshot,
            publications: 0,
            since_publication: 0,
        }
    }

    /// `passes` of the port's ring, only the worker's part timed; with `churn`, a
    /// publication every [`PUBLISH_EVERY`] packets.
    pub fn timed_passes(
        &mut self,
        port: &mut InMemoryPort,
        engine: &mut BatchProcessor,
        churn: Option<Churn>,
        passes: u64,
    ) -> std::time::Duration {
        let mut timed = std::time::Duration::ZERO;
        for _ in 0..passes {
            port.fill();
            let start = std::time::Instant::now();
            port.pass(engine, &self.snapshot);
            timed += start.elapsed();
            self.since_publication += RING;
            if let Some(churn) = churn.filter(|_| self.since_publication >= PUBLISH_EVERY) {
                self.since_publication -= PUBLISH_EVERY;
                self.publications += 1;
                churn.apply(&mut self.model, self.publications);
                self.snapshot = self.builder.build(&self.model, self.snapshot.router_mac);
            }
        }
        timed
    }
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

/// What a benchmark's route publications change in [`crate::tunnel_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Churn {
    /// A /32 discard route elsewhere is added and removed in turn: the flows'
    /// decisions stand.
    Unrelated,
    /// The flows' 198.18.2.0/24 moves between two remote nodes in turn: every flow
    /// re-resolves once per publication.
    TheirRoute,
}

impl Churn {
    /// Makes the `n`-th change.
    pub fn apply(self, model: &mut DesiredState, n: u64) {
        let (prefix, target) = match self {
            Churn::Unrelated => ("198.19.255.1/32", (n % 2 == 1).then_some(RouteTarget::Discard)),
            Churn::TheirRoute => {
                let remote = Ipv4Addr::new(198, 18, 0, 2 + (n % 2) as u8);
                model.set_neighbor(remote, MacAddr([2, 0, 0, 0, 0, 0xf2 + (n % 2) as u8]));
                let tunnel = RouteTarget::Tunnel {
                    remote,
                    label: 40,
                    encaps: vec![Encap::MplsOverUdp],
                    mac: None,
                };
                ("198.18.2.0/24", Some(tunnel))
            }
        };
        let prefix: ipnet::IpNet = prefix.parse().expect("literal");
        let _ = model.remove_route("red", prefix);
        if let Some(target) = target {
            let route = RouteSpec {
                vrf: "red".into(),
                prefix,
                target,
            };
            model.add_route(route).expect("valid route");
        }
    }
}
