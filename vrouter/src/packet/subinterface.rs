//! VLAN sub-interfaces (nested mode: a pod in a VM, its frames tagged with its own
//! 802.1Q VLAN on the VM's port). A tagged frame on a port is its sub-interface's
//! frame: untagged, it goes through the pipeline as received there (its MAC, its
//! addresses, its VRF, its flows); a frame for a sub-interface, from anywhere, leaves
//! tagged on its parent.

use super::forward::Outcome;
use super::{write_eth, DropReason, PacketBuf, PipelineContext, Verdict, ETHERTYPE_VLAN, ETH_LEN};
use nexthop::{Interface, Snapshot, VlanTag};
use wire::{ethernet, vlan};

/// A tagged frame received on `parent`: untagged and processed as its
/// sub-interface's; an error sent back to it is tagged again.
#[inline(never)]
pub(super) fn receive(
    snap: &Snapshot,
    parent: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
) -> Outcome {
    let sub = match untag(snap, parent, pkt) {
        Ok(sub) => sub,
        Err(reason) => return Verdict::Drop(reason).into(),
    };
    let mut outcome = super::pod_frame(snap, sub, pkt, ctx, None);
    if let (Verdict::DropWithError(reason), Some(tag)) = (outcome.verdict, sub.vlan) {
        // The error goes out of the port the frame came in by: tagged, or not at all.
        if !push_tag(pkt, tag.id) {
            outcome.verdict = Verdict::Drop(reason);
        }
    }
    outcome
}

/// Takes the tag off a frame received on `parent`; the sub-interface it names.
#[inline]
fn untag<'s>(snap: &'s Snapshot, parent: &Interface, pkt: &mut PacketBuf<'_>) -> Result<&'s Interface, DropReason> {
    let eth = ethernet::Frame::new_checked(pkt.data()).map_err(|_| DropReason::Truncated)?;
    let tag = vlan::Tag::new_checked(eth.payload()).map_err(|_| DropReason::Truncated)?;
    let key = VlanTag {
        parent: parent.vif,
        id: tag.vid(),
    };
    let sub = snap
        .subinterfaces
        .get(&key)
        .and_then(|vif| snap.interface(*vif))
        .ok_or(DropReason::UnknownVlan)?;
    let (dst, src, ethertype) = (eth.dst_addr(), eth.src_addr(), tag.ethertype());
    if !pkt.pull_front(vlan::HEADER_LEN) {
        return Err(DropReason::Truncated);
    }
    write_eth(pkt.data_mut(), dst, src, ethertype);
    Ok(sub)
}

/// The egress of a frame for a sub-interface: tagged, out of its parent.
#[inline]
pub(super) fn leave_tagged(snap: &Snapshot, pkt: &mut PacketBuf<'_>, outcome: &mut Outcome) {
    let Verdict::Transmit(vif) = outcome.verdict else {
        return;
    };
    let Some(tag) = snap.interface(vif).and_then(|i| i.vlan) else {
        return;
    };
    outcome.verdict = if push_tag(pkt, tag.id) {
        Verdict::Transmit(tag.parent)
    } else {
        Verdict::Drop(DropReason::NoFrame)
    };
}

/// Puts an 802.1Q tag with VLAN `id` after the frame's MACs.
fn push_tag(pkt: &mut PacketBuf<'_>, id: u16) -> bool {
    let eth = ethernet::Repr::parse(&ethernet::Frame::new_unchecked(pkt.data()));
    if !pkt.grow_front(vlan::HEADER_LEN) {
        return false;
    }
    let frame = pkt.data_mut();
    write_eth(frame, eth.dst, eth.src, ETHERTYPE_VLAN);
    let tag = vlan::Repr {
        vid: id,
        pcp: 0,
        ethertype: eth.ethertype,
    };
    tag.emit(&mut vlan::Tag::new_unchecked(&mut frame[ETH_LEN..]));
    true
}
