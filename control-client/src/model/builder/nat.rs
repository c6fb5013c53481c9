//! The builder's side of services: the NAT address arena (it only grows, so a
//! translation a flow cached never names another address) and the service table of
//! the last full build (a change renews the flow epoch: every flow's decision is made
//! again on its next packet, and rendezvous hashing keeps each on its backend unless
//! that backend went).

use super::SnapshotBuilder;
use nexthop::{FastMap, NatAddr, Snapshot};
use std::net::IpAddr;
use std::sync::Arc;

/// Addresses translations name, by index.
#[derive(Debug, Clone, Default)]
pub(in crate::model) struct NatArena {
    addresses: Arc<Vec<IpAddr>>,
    index: FastMap<IpAddr, NatAddr>,
}

impl NatArena {
    /// The index of `ip`, appending it the first time.
    pub(in crate::model) fn intern(&mut self, ip: IpAddr) -> NatAddr {
        if let Some(a) = self.index.get(&ip) {
            return *a;
        }
        let addresses = Arc::make_mut(&mut self.addresses);
        let a = NatAddr(addresses.len() as u32);
        addresses.push(ip);
        self.index.insert(ip, a);
        a
    }

    /// The arena as the snapshot carries it.
    pub(in crate::model) fn shared(&self) -> Arc<Vec<IpAddr>> {
        Arc::clone(&self.addresses)
    }
}

/// A backend's rendezvous identity, from its address alone (so it is the same in
/// every build and on every node).
pub(in crate::model) fn backend_id(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => nexthop::ecmp::member_id(&[4, u64::from(u32::from(a))]),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            nexthop::ecmp::member_id(&[6, (v >> 64) as u64, v as u64])
        }
    }
}

impl SnapshotBuilder {
    /// Finishes a full build's services: a service table that differs from the last
    /// one goes out with the arena (which only grows when a service names a new
    /// address, so an unchanged table needs no new arena) and renews the flow epoch.
    pub(in crate::model) fn finish_services(
        &mut self,
        snap: &mut Snapshot,
        by_key: FastMap<nexthop::ServiceKey, nexthop::ServiceEntry>,
        floating: nexthop::FloatingIps,
        generation: u64,
    ) {
        // The arena goes out again when floating IPs added to it, too.
        let arena_grew = self.nat.shared().len() != self.services.nat_addresses.len();
        if by_key != self.services.by_key || arena_grew {
            self.flow_epoch = generation;
            snap.flow_epoch = generation;
            self.services = Arc::new(nexthop::Services {
                external: nexthop::Services::external_of(&by_key),
                by_key,
                nat_addresses: self.nat.shared(),
            });
        }
        snap.services = Arc::clone(&self.services);
        // Flows set up before a floating IP came (or after it went) were not
        // translated as it says: every decision is made again.
        if floating != *self.floating {
            self.flow_epoch = generation;
            snap.flow_epoch = generation;
            self.floating = Arc::new(floating);
        }
        snap.floating = Arc::clone(&self.floating);
    }

    /// The arena index of `ip` (appended the first time).
    pub(in crate::model) fn nat_address(&mut self, ip: IpAddr) -> NatAddr {
        self.nat.intern(ip)
    }
}
