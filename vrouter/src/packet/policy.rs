//! The policy stage of flow setup (see [`nexthop::policy`]): a new connection's
//! verdict, once per connection, on the key as its client sent it and the key it is
//! routed by after translation. A denied connection is installed as a drop flow
//! (both directions), counted under `policy` per packet and per policy per
//! connection, and logged with the policy and rule that decided, rate limited per
//! worker.

use flow_table::FlowKey;
use nexthop::policy::{Connection, Verdict};
use nexthop::{Snapshot, VrfId};

/// Deny log lines one worker writes per second at most.
const DENY_LOGS_PER_SECOND: u32 = 20;

/// Per-worker rate limit of deny log lines.
#[derive(Debug)]
pub struct DenyLog(crate::log_limit::LogLimit);

impl Default for DenyLog {
    fn default() -> Self {
        Self(crate::log_limit::LogLimit::new(DENY_LOGS_PER_SECOND))
    }
}

impl DenyLog {
    /// True if a line may be written in second `now`.
    fn admit(&mut self, now: u32) -> bool {
        self.0.admit(u64::from(now), "policy deny")
    }
}

/// The connection `pre` (as sent) that is delivered as `post` (translated).
#[inline]
pub fn connection(pre: &FlowKey, post: &FlowKey) -> Connection {
    Connection {
        src_vrf: VrfId(pre.vrf()),
        src: pre.src_addr(),
        dst_vrf: VrfId(post.vrf()),
        dst: post.dst_addr(),
        proto: post.proto(),
        dst_port: post.dst_port(),
    }
}

/// True for a key that is no connection of its own but part of one judged by its
/// first packet: a later fragment (TCP, UDP or SCTP without ports), an IPv6 fragment
/// (its header hides the ports), an ICMP error (no identifier). Policy leaves
/// these alone, as conntrack-based data planes pass fragments after reassembly and
/// errors as related traffic: a pod's path MTU discovery and large UDP answers must
/// not break on an ingress policy.
#[inline]
pub(super) fn judged_elsewhere(key: &FlowKey) -> bool {
    let portless = key.src_port() == 0 && key.dst_port() == 0;
    match key.proto() {
        wire::ip_proto::TCP
        | wire::ip_proto::UDP
        | wire::ip_proto::SCTP
        | wire::ip_proto::ICMP
        | wire::ip_proto::ICMPV6 => portless,
        wire::ip_proto::IPV6_FRAGMENT => true,
        _ => false,
    }
}

/// The verdict on connection `pre` delivered as `post`.
pub fn verdict(snap: &Snapshot, pre: &FlowKey, post: &FlowKey) -> Verdict {
    if judged_elsewhere(pre) {
        return Verdict::OPEN;
    }
    snap.policies.check(&connection(pre, post))
}

/// True if policy denies a new connection `pre` delivered as `post`; a denial is
/// counted for its policy and logged. Call only with policies present
/// (`!snap.policies.is_empty()`): the common case pays that one branch.
#[cold]
#[inline(never)]
pub(super) fn denies(snap: &Snapshot, log: &mut DenyLog, now: u32, pre: &FlowKey, post: &FlowKey) -> bool {
    let v = verdict(snap, pre, post);
    let Some((direction, policy)) = v.denied_by() else {
        return false;
    };
    snap.policies.count_denied(policy);
    if log.admit(now) {
        tracing::warn!(
            policy = snap.policies.name(policy),
            rule = "default deny: no rule of the policies selecting the pod matches",
            direction = direction.label(),
            vrf = snap.vrf(VrfId(pre.vrf())).map_or("?", |v| v.name.as_str()),
            src = %pre.src_addr(),
            dst = %post.dst_addr(),
            proto = post.proto(),
            src_port = pre.src_port(),
            dst_port = post.dst_port(),
            "connection denied by network policy"
        );
    }
    true
}

/// True if policy denies the connection whose cached decision is being made again
/// (not counted or logged again: the connection was counted when it was set up):
/// entry `key` of a plain flow (a reverse entry stands for its connection's first
/// direction).
#[inline]
pub(super) fn denies_again(snap: &Snapshot, key: &FlowKey, reverse: bool) -> bool {
    if snap.policies.is_empty() {
        return false;
    }
    let connection = if reverse { key.reversed() } else { *key };
    !verdict(snap, &connection, &connection).allowed()
}
