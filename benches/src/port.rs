//! An in-memory port, as a NIC fills a UMEM ring, and the route churn the control
//! side publishes while it runs.

use crate::ROUTER;
use control_client::{DesiredState, RouteSpec, RouteTarget, SnapshotBuilder};
use nexthop::encap::Encap;
use nexthop::{Interface, MacAddr, Snapshot};
use std::hint::black_box;
use std::net::Ipv4Addr;
use vrouter::gen::{Endpoints, Proto, Template};
use vrouter::packet::{process_classified, PacketBuf, PipelineContext};

/// Frames in the ring.
pub const RING: usize = 512;
/// Bytes between frames (a UMEM frame).
pub const FRAME: usize = 2048;
const HEADROOM: usize = 256;
/// A route publication every this many packets: 1000 per second at 14.88 Mpps.
pub const PUBLISH_EVERY: usize = 14_880;

/// 512 frames 2 KB apart (1 MB: warm in L2/L3, as a NIC's DMA leaves them), filled by
/// the generator's template with consecutive flows of pod a (source port and address
/// vary) to 198.18.2.2, and the worker's passes over them.
pub struct InMemoryPort {
    umem: Vec<u8>,
    template: Template,
    source: std::net::IpAddr,
    flows: u32,
    next: u32,
    iface: Interface,
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
            umem: vec![0u8; RING * FRAME],
            template: Template::new(&endpoints, Proto::Udp, 64).expect("template"),
            source: endpoints.src_ip,
            flows,
            next: 0,
            iface,
        }
    }

    /// The generator's part (not the vrouter's work): writes the next 512 frames.
    pub fn fill(&mut self) {
        let len = self.template.len();
        for frame in self.umem.chunks_exact_mut(FRAME) {
            self.template
                .write(&mut frame[HEADROOM..HEADROOM + len], self.source, self.next, 0);
            self.next = (self.next + 1) % self.flows;
        }
    }

    /// The worker's part, as it runs over a received batch: per 32 frames, a pass
    /// that classifies and prefetches buckets, one that prefetches entries, then the
    /// pipeline.
    pub fn pass(&mut self, ctx: &mut PipelineContext, snap: &Snapshot) {
        let len = self.template.len();
        for batch in self.umem.chunks_exact_mut(FRAME * 32) {
            let mut classified = [None; 32];
            for (frame, c) in batch.chunks_exact(FRAME).zip(classified.iter_mut()) {
                *c = vrouter::packet::classify(&ctx.flows, &self.iface, &frame[HEADROOM..HEADROOM + len]);
            }
            for c in classified.iter().flatten() {
                vrouter::packet::prefetch_flow_entry(&ctx.flows, c);
            }
            for (frame, c) in batch.chunks_exact_mut(FRAME).zip(&classified) {
                let mut pkt = PacketBuf::new(frame, HEADROOM, len).expect("fits");
                black_box(process_classified(snap, self.iface.vif, &mut pkt, ctx, c.as_ref()));
            }
        }
    }

    /// Fills and passes until every flow has been seen (so all are established).
    pub fn establish(&mut self, ctx: &mut PipelineContext, snap: &Snapshot) {
        for _ in 0..(self.flows as usize).div_ceil(RING) {
            self.fill();
            self.pass(ctx, snap);
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
        ctx: &mut PipelineContext,
        churn: Option<Churn>,
        passes: u64,
    ) -> std::time::Duration {
        let mut timed = std::time::Duration::ZERO;
        for _ in 0..passes {
            port.fill();
            let start = std::time::Instant::now();
            port.pass(ctx, &self.snapshot);
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
