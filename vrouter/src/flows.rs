//! The vrouter's use of the flow table: decisions cached per flow, per-interface
//! limits, aging on the control side.

use crate::drops::DropReason;
use flow_table::{FlowRef, FlowTable};
use nexthop::{NextHopId, RouteSlot, Vif, MAX_ROUTE_SLOTS};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `[flows]` settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// Flow entries (each direction of a connection is one entry, as in Tungsten).
    pub entries: u32,
    /// Flows one interface may have at once: 0 means no limit besides the table;
    /// unset, a quarter of the table's flows ([`FlowConfig::per_interface_limit`]), so
    /// that one pod cannot fill the table and block every other pod's connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_interface: Option<u32>,
    /// Seconds an idle flow lives.
    pub idle_timeout_secs: u32,
    /// Seconds a TCP flow lives after RST, or FIN in both directions.
    pub tcp_closed_timeout_secs: u32,
    /// Seconds a flow whose decision is a drop lives.
    pub drop_timeout_secs: u32,
    /// Entries of the session affinity table (two per client and service port with
    /// `sessionAffinity: ClientIP`).
    pub affinity_entries: u32,
    /// Entries of the fragment table (two per fragmented IPv4 datagram in flight:
    /// its later fragments follow its first fragment's flow).
    pub fragment_entries: u32,
}

impl FlowConfig {
    /// The per-interface limit in force (0: none): `max_per_interface`, or when unset
    /// a quarter of the flows the table holds (two entries per flow), at least 1024.
    pub fn per_interface_limit(&self) -> u32 {
        self.max_per_interface.unwrap_or((self.entries / 8).max(1024))
    }
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            entries: 2 * 1024 * 1024,
            max_per_interface: None,
            idle_timeout_secs: 180,
            tcp_closed_timeout_secs: 5,
            drop_timeout_secs: 5,
            affinity_entries: 128 * 1024,
            fragment_entries: 16 * 1024,
        }
    }
}

/// True if the flow `key` (in VRF `vrf`) matches `filter`.
pub fn flow_matches(filter: &vrouter_api::FlowFilter, key: &flow_table::FlowKey, vrf: Option<&str>) -> bool {
    let (src, dst) = (key.src_addr(), key.dst_addr());
    filter.vrf.as_deref().is_none_or(|v| Some(v) == vrf)
        && filter.ip.is_none_or(|a| a == src || a == dst)
        && filter.src.is_none_or(|a| a == src)
        && filter.dst.is_none_or(|a| a == dst)
        && filter.proto.is_none_or(|p| p == key.proto())
        && filter.port.is_none_or(|p| p == key.src_port() || p == key.dst_port())
}

/// A decision as cached in a flow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    /// Forward through this next hop.
    Forward(NextHopId),
    /// Drop, counting this reason.
    Drop(DropReason),
}

/// True if a TCP connection whose two directions saw `these` and `those` flags is
/// closed: FIN both ways, or a reset either way.
#[inline]
pub fn tcp_closed(these: u8, those: u8) -> bool {
    (these | those) & TCP_RST != 0 || (these & TCP_FIN != 0 && those & TCP_FIN != 0)
}

// The entry's word: bits 0-3 the action, bit 4 the reverse flag, bit 5 the NAT flag
// (the entry's transform holds a translation), bits 8-31 the route slot that decided
// it, bits 32-63 the next hop or the drop reason.
const ACTION_MASK: u64 = 0xf;
const ACTION_FORWARD: u64 = 1;
const ACTION_DROP: u64 = 2;
/// Set in the reverse entry of a pair.
const FLAG_REVERSE: u64 = 1 << 4;
/// Set when the entry's transform word holds a translation ([`nexthop::Nat`]).
pub const FLAG_NAT: u64 = 1 << 5;
const SLOT_SHIFT: u32 = 8;

impl FlowAction {
    /// Packs the action, the route slot whose stamp says how long it holds, and
    /// whether it is the reverse entry, into the entry's word.
    #[inline]
    pub fn encode(self, slot: RouteSlot, reverse: bool) -> u64 {
        debug_assert!(slot < MAX_ROUTE_SLOTS);
        let flags = if reverse { FLAG_REVERSE } else { 0 } | u64::from(slot % MAX_ROUTE_SLOTS) << SLOT_SHIFT;
        match self {
            FlowAction::Forward(nh) => ACTION_FORWARD | flags | u64::from(nh.0) << 32,
            FlowAction::Drop(r) => ACTION_DROP | flags | (r.index() as u64) << 32,
        }
    }

    /// Unpacks a word made by [`FlowAction::encode`]; `None` for anything else.
    #[inline]
    pub fn decode(word: u64) -> Option<Self> {
        match word & ACTION_MASK {
            ACTION_FORWARD => Some(FlowAction::Forward(NextHopId((word >> 32) as u32))),
            ACTION_DROP => DropReason::ALL.get((word >> 32) as usize).map(|r| FlowAction::Drop(*r)),
            _ => None,
        }
    }

    /// The route slot a word was decided by.
    #[inline]
    pub fn slot(word: u64) -> RouteSlot {
        ((word >> SLOT_SHIFT) as u32) % MAX_ROUTE_SLOTS
    }

    /// True for the reverse entry of a pair.
    pub fn is_reverse(word: u64) -> bool {
        word & FLAG_REVERSE != 0
    }

    /// True if the entry's packets are translated (its transform holds how).
    #[inline(always)]
    pub fn is_translated(word: u64) -> bool {
        word & FLAG_NAT != 0
    }
}

/// The flow table plus the vrouter's accounting around it, shared by workers and
/// the control thread.
#[derive(Debug)]
pub struct Flows {
    /// The table.
    pub table: FlowTable,
    per_vif: Box<[AtomicU32]>,
    limit: u32,
    /// Flows refused because the table was full.
    pub refused_full: AtomicU64,
    /// Flows refused by the per-interface limit.
    pub refused_limit: AtomicU64,
    /// Flow pairs removed by aging.
    pub aged: AtomicU64,
    /// Reverse entries removed by aging because their forward entry was gone.
    pub orphans_removed: AtomicU64,
    /// New connections refused because no fabric source NAT port was free.
    pub snat_exhausted: AtomicU64,
    /// New connections to a service refused because a live connection holds their
    /// replies' key (`nat_clash`).
    pub nat_clashes: AtomicU64,
    /// Client-address affinity records of services that ask for it.
    pub affinity: crate::affinity::Affinity,
    /// The first fragments' ports, for the later fragments of their datagrams.
    pub fragments: crate::fragments::Fragments,
    /// Idle timeouts by protocol and destination port (0: any port of it) in place
    /// of `idle_timeout_secs` (the global vrouter config's flow aging list).
    aging_overrides: std::sync::RwLock<Vec<AgingOverride>>,
}

/// An idle timeout for the flows of one protocol and destination port (0: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgingOverride {
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port of the flow's first packet; 0: any.
    pub port: u16,
    /// Seconds idle.
    pub timeout_secs: u32,
}

impl Flows {
    /// A table of `config.entries` entries for `max_vifs` interfaces.
    pub fn new(config: &FlowConfig, max_vifs: usize) -> Self {
        Self {
            table: FlowTable::new(config.entries),
            per_vif: (0..max_vifs).map(|_| AtomicU32::new(0)).collect(),
            limit: config.per_interface_limit(),
            refused_full: AtomicU64::new(0),
            refused_limit: AtomicU64::new(0),
            aged: AtomicU64::new(0),
            snat_exhausted: AtomicU64::new(0),
            nat_clashes: AtomicU64::new(0),
            orphans_removed: AtomicU64::new(0),
            affinity: crate::affinity::Affinity::new(config.affinity_entries),
            fragments: crate::fragments::Fragments::new(config.fragment_entries),
            aging_overrides: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// Sets the idle timeouts by protocol and port (the next aging pass uses them).
    pub fn set_aging_overrides(&self, overrides: Vec<AgingOverride>) {
        if let Ok(mut current) = self.aging_overrides.write() {
            *current = overrides;
        }
    }

    /// The idle timeouts by protocol and port in force.
    pub fn aging_overrides(&self) -> Vec<AgingOverride> {
        self.aging_overrides.read().map(|o| o.clone()).unwrap_or_default()
    }

    /// Reserves room for one more flow set up on `iface`: a pod's are limited, the
    /// fabric's and the node interface's (every remote pod's flows; the node's own
    /// and those from outside the cluster) only by the table.
    #[inline]
    pub fn reserve_for(&self, iface: &nexthop::Interface) -> bool {
        self.reserve_as(iface.vif, iface.kind == nexthop::InterfaceKind::Pod)
    }

    /// Reserves room for one more flow of `vif`; false (and counted) at the limit.
    #[inline]
    pub fn reserve(&self, vif: Vif) -> bool {
        self.reserve_as(vif, vif != Vif(0))
    }

    #[inline]
    fn reserve_as(&self, vif: Vif, limited: bool) -> bool {
        let Some(count) = self.per_vif.get(vif.index()) else {
            return false;
        };
        if self.limit == 0 || !limited {
            count.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let ok = count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c < self.limit).then_some(c + 1)
            })
            .is_ok();
        if !ok {
            self.refused_limit.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Gives back a reservation (flow not created, or removed).
    #[inline]
    pub fn unreserve(&self, vif: Vif) {
        if let Some(count) = self.per_vif.get(vif.index()) {
            let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1));
        }
    }

    /// Interfaces the per-interface accounting has room for.
    pub fn max_vifs(&self) -> usize {
        self.per_vif.len()
    }

    /// Flows counted against `vif`.
    pub fn count_of(&self, vif: Vif) -> u32 {
        self.per_vif.get(vif.index()).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Removes the flow whose forward entry is `f`, with its reverse entry, and gives
    /// its interface's reservation back; false if it changed or was gone.
    pub fn remove_pair(&self, f: &FlowRef) -> bool {
        let reverse = f
            .reverse
            .and_then(|i| self.table.get(i))
            .filter(|r| r.reverse == Some(f.index));
        if !self.table.remove(f) {
            return false;
        }
        self.unreserve(Vif(f.value.owner));
        // The reverse entry may have changed since it was read (a decision made again
        // in place): read it again while it still names this forward entry. What is
        // left anyway, aging removes as an orphan.
        let mut reverse = reverse;
        for _ in 0..3 {
            let Some(r) = reverse else { break };
            if self.table.remove(&r) {
                break;
            }
            reverse = self.table.get(r.index).filter(|again| again.reverse == Some(f.index));
        }
        true
    }

    /// True if reverse entry `r` lost its forward entry (removed, or linked to
    /// another): nothing removes it with a pair any more.
    fn orphaned(&self, r: &FlowRef) -> bool {
        r.reverse
            .and_then(|i| self.table.get(i))
            .is_none_or(|f| f.reverse != Some(r.index) || FlowAction::is_reverse(f.value.data))
    }

    /// Entry `r`'s translation, if translated (both ends: with its pair's key, while
    /// the pair links back).
    pub fn translation(&self, r: &FlowRef) -> Option<crate::flow_export::Translation> {
        if !FlowAction::is_translated(r.value.data) {
            return None;
        }
        let nat = self.table.transform(r.index);
        let both = nexthop::Nat::decode(nat).is_some_and(|n| n.side == nexthop::NatSide::Both);
        let pair = r
            .reverse
            .filter(|_| both)
            .and_then(|i| self.table.get(i))
            .filter(|p| p.reverse == Some(r.index))
            .map(|p| p.key);
        Some(crate::flow_export::Translation { nat, pair })
    }

    /// Shows every entry to `tracker` without removing any (the last look before the
    /// vrouter stops).
    pub fn observe(&self, tracker: &mut crate::flow_export::tracker::FlowTracker) {
        tracker.begin_pass(self.table.now());
        self.table.for_each(|r, activity| {
            tracker.visit(r, activity, || self.translation(r));
        });
    }

    /// Removes expired flow pairs; `now` is the coarse clock in seconds. Returns the
    /// number of pairs removed.
    pub fn age(&self, now: u32, config: &FlowConfig) -> usize {
        self.age_observed(now, config, None)
    }

    /// [`Flows::age`], showing every entry visited and every pair removed to
    /// `tracker` (flow records).
    pub fn age_observed(
        &self,
        now: u32,
        config: &FlowConfig,
        mut tracker: Option<&mut crate::flow_export::tracker::FlowTracker>,
    ) -> usize {
        use crate::flow_export::tracker::EndReason;
        self.table.set_now(now);
        if let Some(t) = tracker.as_deref_mut() {
            t.begin_pass(now);
        }
        self.affinity.age(now);
        self.fragments.age(now);
        let overrides = self.aging_overrides();
        // The exact port's timeout, else the protocol's, else the configured one.
        let idle_timeout = |key: &flow_table::FlowKey| {
            overrides
                .iter()
                .filter(|o| o.protocol == key.proto() && (o.port == 0 || o.port == key.dst_port()))
                .max_by_key(|o| o.port)
                .map_or(config.idle_timeout_secs, |o| o.timeout_secs)
        };
        let mut expired: Vec<(FlowRef, EndReason)> = Vec::new();
        let mut orphans: Vec<FlowRef> = Vec::new();
        self.table.for_each(|r, activity| {
            if let Some(t) = tracker.as_deref_mut() {
                t.visit(r, activity, || self.translation(r));
            }
            if FlowAction::is_reverse(r.value.data) {
                // An orphan idle a while (not a pair being made this instant) goes:
                // it would hold its key (a source NAT port) for good.
                if now.saturating_sub(activity.last_seen) >= config.drop_timeout_secs && self.orphaned(r) {
                    orphans.push(*r);
                }
                return;
            }
            let rev = r.reverse.map(|i| self.table.activity(i)).unwrap_or_default();
            let last = activity.last_seen.max(rev.last_seen);
            let (flags_fwd, flags_rev) = (activity.tcp_flags, rev.tcp_flags);
            let idle = now.saturating_sub(last);
            let closed = r.key.proto() == wire::ip_proto::TCP && tcp_closed(flags_fwd, flags_rev);
            let timeout = match FlowAction::decode(r.value.data) {
                Some(FlowAction::Drop(_)) => config.drop_timeout_secs,
                _ if closed => config.tcp_closed_timeout_secs,
                _ if overrides.is_empty() => config.idle_timeout_secs,
                _ => idle_timeout(&r.key),
            };
            if idle >= timeout {
                let why = if closed { EndReason::EndOfFlow } else { EndReason::Idle };
                expired.push((*r, why));
            }
        });
        let mut removed = 0;
        for (f, why) in expired {
            if self.remove_pair(&f) {
                removed += 1;
                if let Some(t) = tracker.as_deref_mut() {
                    t.removed(f.index, why);
                    // The reply entry, unless it is still there (it changed under
                    // remove_pair; aging removes it later as an orphan).
                    let reverse = f
                        .reverse
                        .filter(|r| self.table.get(*r).is_none_or(|e| e.reverse != Some(f.index)));
                    if let Some(r) = reverse {
                        t.removed(r, why);
                    }
                }
            }
        }
        for r in orphans {
            if self.orphaned(&r) && self.table.remove(&r) {
                self.orphans_removed.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = tracker.as_deref_mut() {
                    t.removed(r.index, EndReason::Idle);
                }
            }
        }
        self.aged.fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }
}

/// TCP FIN flag.
pub const TCP_FIN: u8 = 0x01;
/// TCP SYN flag.
pub const TCP_SYN: u8 = 0x02;
/// TCP RST flag.
pub const TCP_RST: u8 = 0x04;

#[cfg(test)]
mod tests {
    use super::*;
    use flow_table::{FlowKey, FlowValue, Insert};
    use std::net::Ipv4Addr;

    #[test]
    fn actions_round_trip() {
        for a in [
            FlowAction::Forward(NextHopId(0)),
            FlowAction::Forward(NextHopId(u32::MAX)),
            FlowAction::Drop(DropReason::OtherVrf),
        ] {
            for rev in [false, true] {
                for slot in [0, 1, MAX_ROUTE_SLOTS - 1] {
                    let w = a.encode(slot, rev);
                    assert_eq!(FlowAction::decode(w), Some(a));
                    assert_eq!(FlowAction::is_reverse(w), rev);
                    assert_eq!(FlowAction::slot(w), slot);
                }
            }
        }
        assert_eq!(FlowAction::decode(0), None);
    }

    #[test]
    fn a_reverse_entry_whose_forward_entry_went_is_aged_as_an_orphan() {
        let config = FlowConfig {
            entries: 64,
            ..FlowConfig::default()
        };
        let flows = Flows::new(&config, 4);
        flows.table.set_now(0);
        let kept = insert(&flows, 1, FlowAction::Forward(NextHopId(2)));
        let orphaned = insert(&flows, 2, FlowAction::Forward(NextHopId(2)));
        // The forward entry alone goes (as a failed removal of its pair would leave it).
        let f = flows.table.lookup(&orphaned, orphaned.hash()).unwrap();
        assert!(flows.table.remove(&f));
        let reverse = orphaned.reversed();
        assert!(flows.table.lookup(&reverse, reverse.hash()).is_some());
        // Young, it stays (a pair may be in the making); idle past the drop timeout it
        // goes, and the other pair is untouched.
        assert_eq!(flows.age(1, &config), 0);
        assert!(flows.table.lookup(&reverse, reverse.hash()).is_some());
        flows.age(config.drop_timeout_secs, &config);
        assert!(flows.table.lookup(&reverse, reverse.hash()).is_none());
        assert_eq!(flows.orphans_removed.load(Ordering::Relaxed), 1);
        assert!(flows.table.lookup(&kept, kept.hash()).is_some());
        assert!(flows.table.lookup(&kept.reversed(), kept.reversed().hash()).is_some());
    }

    fn insert(flows: &Flows, n: u8, action: FlowAction) -> FlowKey {
        let k = FlowKey::v4(
            1,
            Ipv4Addr::new(198, 18, 0, n),
            Ipv4Addr::new(198, 18, 1, 1),
            6,
            1000,
            80,
        );
        assert!(flows.reserve(Vif(1)));
        let v = |rev| FlowValue {
            data: action.encode(0, rev),
            generation: 1,
            owner: 1,
        };
        assert!(matches!(
            flows.table.insert_pair((&k, v(false)), (&k.reversed(), v(true))),
            Insert::Inserted { .. }
        ));
        k
    }

    #[test]
    fn by_default_one_interface_gets_a_quarter_of_the_table() {
        let auto = FlowConfig {
            entries: 1 << 16,
            ..Default::default()
        };
        assert_eq!(auto.per_interface_limit(), 8192, "a quarter of 32768 flows");
        let flows = Flows::new(&auto, 4);
        assert!((0..8192).all(|_| flows.reserve(Vif(1))));
        assert!(!flows.reserve(Vif(1)), "the interface's share is used up");
        assert!(flows.reserve(Vif(2)), "another interface still sets up flows");
        let unlimited = FlowConfig {
            max_per_interface: Some(0),
            ..auto
        };
        assert_eq!(unlimited.per_interface_limit(), 0);
        assert_eq!(
            FlowConfig {
                entries: 64,
                ..Default::default()
            }
            .per_interface_limit(),
            1024
        );
    }

    #[test]
    fn aging_uses_the_right_timeout_and_frees_the_interface_quota() {
        let config = FlowConfig {
            entries: 64,
            max_per_interface: Some(3),
            idle_timeout_secs: 100,
            tcp_closed_timeout_secs: 5,
            affinity_entries: 64,
            drop_timeout_secs: 2,
            fragment_entries: 64,
        };
        let flows = Flows::new(&config, 4);
        flows.table.set_now(0);
        let idle = insert(&flows, 1, FlowAction::Forward(NextHopId(2)));
        let dropped = insert(&flows, 2, FlowAction::Drop(DropReason::OtherVrf));
        let closed = insert(&flows, 3, FlowAction::Forward(NextHopId(2)));
        assert!(!flows.reserve(Vif(1)), "limit of 3 flows per interface");
        let c = flows.table.lookup(&closed, closed.hash()).unwrap();
        flows.table.mark_tcp_flags(c.index, TCP_RST);
        assert_eq!(flows.age(3, &config), 1, "the drop flow goes after 2 s");
        assert_eq!(flows.age(6, &config), 1, "the reset TCP flow goes after 5 s");
        assert!(flows.table.lookup(&idle, idle.hash()).is_some());
        assert!(
            flows
                .table
                .lookup(&dropped.reversed(), dropped.reversed().hash())
                .is_none(),
            "reverse removed too"
        );
        assert_eq!(flows.count_of(Vif(1)), 1);
        let i = flows.table.lookup(&idle, idle.hash()).unwrap();
        flows.table.set_now(50);
        flows.table.touch(i.index, 60);
        assert_eq!(flows.age(120, &config), 0, "touched at 50, idle 70 < 100");
        assert_eq!(flows.age(151, &config), 1);
        assert_eq!(flows.table.stats().active, 0);
        assert_eq!(flows.count_of(Vif(1)), 0);
    }

    #[test]
    fn idle_timeouts_by_protocol_and_port_replace_the_configured_one() {
        let config = FlowConfig {
            entries: 64,
            idle_timeout_secs: 100,
            ..Default::default()
        };
        let flows = Flows::new(&config, 4);
        flows.table.set_now(0);
        let o = |protocol, port, timeout_secs| AgingOverride {
            protocol,
            port,
            timeout_secs,
        };
        // TCP to port 80: its own timeout wins over the protocol's.
        flows.set_aging_overrides(vec![o(6, 0, 30), o(6, 80, 10), o(17, 0, 5)]);
        insert(&flows, 1, FlowAction::Forward(NextHopId(2)));
        insert(&flows, 2, FlowAction::Forward(NextHopId(2)));
        assert_eq!(flows.age(9, &config), 0);
        assert_eq!(flows.age(10, &config), 2);
        // Another port's timeout does not apply; the protocol's does.
        flows.set_aging_overrides(vec![o(6, 443, 1), o(6, 0, 30)]);
        flows.table.set_now(10);
        insert(&flows, 3, FlowAction::Forward(NextHopId(2)));
        assert_eq!(flows.age(39, &config), 0);
        assert_eq!(flows.age(40, &config), 1);
        // None: the configured timeout.
        flows.set_aging_overrides(Vec::new());
        flows.table.set_now(40);
        insert(&flows, 4, FlowAction::Forward(NextHopId(2)));
        assert_eq!(flows.age(139, &config), 0);
        assert_eq!(flows.age(140, &config), 1);
    }
}
