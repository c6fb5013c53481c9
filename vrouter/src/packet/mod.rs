//! Packet processing: one frame in, a verdict out.
//!
//! [`process`] is pure: it reads the forwarding [`Snapshot`], rewrites the frame in
//! place (answers are built in the same buffer, using its headroom) and returns a
//! [`Verdict`]. It never allocates, logs or panics on any input; malformed frames are
//! dropped with a [`DropReason`]. The same code runs over AF_XDP and over the
//! in-memory port of the pipeline tests.

mod arp;
mod fabric;
mod floating;
mod flow;
mod forward;
mod gateway;
mod icmp;
mod icmp_both;
mod icmp_nat;
mod ipv4;
mod ipv6;
mod nat;
mod native;
mod ndp;
mod outer_cache;
mod police;
pub mod policy;
mod route_cache;
mod service_flow;
mod snat;
mod subinterface;
mod tunnel;
pub mod tx_checksum;

pub use crate::drops::DropReason;
pub use flow::{classify, prefetch_entry as prefetch_flow_entry, Classified};
pub use forward::{Outcome, TunnelUse};
pub use icmp::IcmpLimiter;
pub use outer_cache::OuterCache;
pub use police::{ExceptionPolicer, DEFAULT_EXCEPTION_RATE};
pub use route_cache::RouteCache;
pub use tunnel::{build_fragment, fragment_plan, FragmentPlan};

pub use wire::checksum;
pub use wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, HEADER_LEN as ETH_LEN};

use nexthop::{Interface, Snapshot, Vif};
use wire::ethernet;

/// A frame inside a larger buffer (a UMEM chunk): bytes `start..start + len` are the
/// packet, bytes before `start` are headroom that answers and encapsulations grow into.
#[derive(Debug)]
pub struct PacketBuf<'a> {
    buf: &'a mut [u8],
    start: usize,
    len: usize,
}

impl<'a> PacketBuf<'a> {
    /// Wraps `buf[start..start + len]`; `None` if that is out of bounds.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Option<Self> {
        (start.checked_add(len)? <= buf.len()).then_some(Self { buf, start, len })
    }

    /// The packet bytes. (Always inlined: every stage reads them.)
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The packet bytes, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// Offset of the packet in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Packet length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty packet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shortens the packet to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Moves the start `n` bytes earlier (into headroom), or shifts the data right if
    /// the headroom is too small. False if the buffer cannot hold `n` more bytes.
    pub fn grow_front(&mut self, n: usize) -> bool {
        if self.start >= n {
            self.start -= n;
            self.len += n;
            return true;
        }
        let need = n - self.start;
        if self.start + self.len + need > self.buf.len() {
            return false;
        }
        self.buf
            .copy_within(self.start..self.start + self.len, self.start + need);
        self.start = 0;
        self.len += n;
        true
    }

    /// Drops `n` bytes from the front (decapsulation); false if the packet is shorter.
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }

    /// Sets the packet length, growing at the tail; false if the buffer is too small.
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
}

/// What to do with a processed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame out of this interface.
    Transmit(Vif),
    /// Drop it, counting the reason.
    Drop(DropReason),
    /// The packet is dropped (count the reason), and the frame now holds an ICMP
    /// error for its sender: send it back out of the input interface.
    DropWithError(DropReason),
    /// The frame is too big for the tunnel of this next hop and may be fragmented:
    /// build the fragments of its [`fragment_plan`] with [`build_fragment`], send them
    /// on the fabric, and free the frame. (The plan is not carried here: a verdict
    /// stays two words, returned in registers, for every packet.)
    Fragment(nexthop::NextHopId),
}

impl Verdict {
    /// The drop reason, if the original packet was dropped.
    pub fn drop_reason(self) -> Option<DropReason> {
        match self {
            Verdict::Transmit(_) | Verdict::Fragment(_) => None,
            Verdict::Drop(r) | Verdict::DropWithError(r) => Some(r),
        }
    }
}

/// Per-worker state the pipeline needs besides the snapshot.
#[derive(Debug)]
pub struct PipelineContext {
    /// Rate limit for ICMP errors the vrouter generates.
    pub icmp: IcmpLimiter,
    /// Per-port policing of the packets the vrouter answers itself (ARP, ND, echo).
    pub exceptions: ExceptionPolicer,
    /// The flow table, shared with every worker and the control thread.
    pub flows: std::sync::Arc<crate::flows::Flows>,
    /// This worker's route lookups under the current snapshot.
    pub routes: RouteCache,
    /// This worker's outer headers per tunnel under the current snapshot.
    pub outer: OuterCache,
    /// Rate limit of this worker's policy deny log lines.
    pub deny_log: policy::DenyLog,
    /// True while every TCP or UDP frame the pipeline forwards leaves with its
    /// checksum set anew and finished by the kernel (the batch routine's, from a UMEM
    /// with transmit metadata: [`tx_checksum::prepare`], or [`tx_checksum::complete`]
    /// for a packet it fragments). An address or port translation then leaves the
    /// transport checksum alone: an update would be overwritten. False by default:
    /// every byte comes out of the pipeline as it will leave.
    pub transport_checksums_finished: bool,
}

impl PipelineContext {
    /// A context using `flows`.
    pub fn new(flows: std::sync::Arc<crate::flows::Flows>) -> Self {
        Self {
            icmp: IcmpLimiter::default(),
            exceptions: ExceptionPolicer::new(flows.max_vifs(), DEFAULT_EXCEPTION_RATE),
            flows,
            routes: RouteCache::default(),
            outer: OuterCache::default(),
            deny_log: policy::DenyLog::default(),
            transport_checksums_finished: false,
        }
    }
}

impl Default for PipelineContext {
    /// A context with a small flow table of its own (for tests and tools).
    fn default() -> Self {
        let config = crate::flows::FlowConfig {
            entries: 4096,
            affinity_entries: 1024,
            fragment_entries: 1024,
            // One interface makes every flow here: no per-interface share.
            max_per_interface: Some(0),
            ..Default::default()
        };
        Self::new(std::sync::Arc::new(crate::flows::Flows::new(&config, 64)))
    }
}

/// Processes one frame received on `in_vif`; the verdict alone (for tests and tools).
#[inline]
pub fn process(snap: &Snapshot, in_vif: Vif, pkt: &mut PacketBuf<'_>, ctx: &mut PipelineContext) -> Verdict {
    process_classified(snap, in_vif, pkt, ctx, None).verdict
}

/// Processes one frame received on `in_vif`, reusing the flow hash of a batch's first
/// pass ([`classify`]): the parse stage of its kind (the fabric's decapsulation, a
/// VLAN sub-interface's untagging, or a pod's ARP, IPv4 or IPv6), then for IP the
/// shared stages (`forward.rs`); a frame for a VLAN sub-interface leaves tagged on
/// its parent.
#[inline]
pub fn process_classified(
    snap: &Snapshot,
    in_vif: Vif,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    hint: Option<&Classified>,
) -> Outcome {
    let Some(iface) = snap.interface(in_vif) else {
        return Verdict::Drop(DropReason::InvalidInterface).into();
    };
    let mut outcome = if iface.kind == nexthop::InterfaceKind::Fabric {
        fabric::handle(snap, iface, pkt, ctx)
    } else {
        pod_frame(snap, iface, pkt, ctx, hint)
    };
    // Nested mode only: one length test per packet otherwise.
    if !snap.subinterfaces.is_empty() {
        subinterface::leave_tagged(snap, pkt, &mut outcome);
    }
    outcome
}

/// A frame from a pod (or, untagged, from a VLAN sub-interface's pod).
#[inline(always)]
fn pod_frame(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    hint: Option<&Classified>,
) -> Outcome {
    let Ok(eth) = ethernet::Frame::new_checked(pkt.data()) else {
        return Verdict::Drop(DropReason::Truncated).into();
    };
    let to_group = eth.is_group_dst();
    if !to_group && eth.dst_addr() != snap.router_mac.0 {
        return Verdict::Drop(DropReason::WrongDestMac).into();
    }
    // A tagged frame is its sub-interface's, checked as sent by that pod (a tag
    // inside a sub-interface's frame names nothing).
    if eth.ethertype() == ETHERTYPE_VLAN {
        return match iface.vlan {
            None => subinterface::receive(snap, iface, pkt, ctx),
            Some(_) => Verdict::Drop(DropReason::UnknownVlan).into(),
        };
    }
    // Anti-spoofing: a pod sends from its own MAC only.
    if eth.src_addr() != iface.mac.0 {
        return Verdict::Drop(DropReason::SourceMismatch).into();
    }
    match eth.ethertype() {
        ETHERTYPE_ARP if !ctx.exceptions.allow(iface.vif) => Verdict::Drop(DropReason::ExceptionRate).into(),
        ETHERTYPE_ARP => arp::handle(snap, iface, pkt).into(),
        ETHERTYPE_IPV4 => ipv4::handle(snap, iface, pkt, to_group, ctx, hint),
        ETHERTYPE_IPV6 => ipv6::handle(snap, iface, pkt, ctx, hint),
        _ => Verdict::Drop(DropReason::UnsupportedEtherType).into(),
    }
}

/// Writes the Ethernet header at the start of `frame` (at least its 14 bytes).
#[inline]
fn write_eth(frame: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    ethernet::Repr { dst, src, ethertype }.emit(&mut ethernet::Frame::new_unchecked(frame));
}

/// The MTU of local interface `vif` if an IP packet of `ip_len` bytes exceeds it.
#[inline]
fn too_big_for(snap: &Snapshot, vif: Vif, ip_len: usize) -> Option<u16> {
    let mtu = snap.interface(vif)?.mtu;
    (mtu != 0 && ip_len > usize::from(mtu)).then_some(mtu)
}

/// Anti-spoofing for a source that is not the pod's own address (a cold path): never a
/// martian or the pod's gateway; otherwise an allowed address pair, or a prefix the
/// VRF routes back to this interface (reverse-path check, as Contrail's RPF).
#[cold]
fn other_source_allowed(snap: &Snapshot, iface: &Interface, src: std::net::IpAddr) -> bool {
    let gateway = match src {
        std::net::IpAddr::V4(a) => iface.gateway4 == Some(a),
        std::net::IpAddr::V6(a) => iface.gateway6 == Some(a),
    };
    !gateway
        && !control_client::is_martian(src)
        && (iface.in_allowed_pairs(src) || snap.routes_back_to(iface.vrf, src, iface.vif))
}

/// True if `dst` belongs to another VRF than `iface`'s: an isolation drop, not a
/// missing route.
fn in_other_vrf(iface: &Interface, owner: Option<&nexthop::VrfId>) -> bool {
    owner.is_some_and(|v| *v != iface.vrf)
}

#[cfg(test)]
mod tests;
