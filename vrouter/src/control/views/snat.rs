//! The `snat` view: fabric source NAT's address, ranges and their use, counted from
//! the flow table (off the forwarding cores).

use super::Views;
use crate::flows::FlowAction;
use nexthop::{Nat, NatSide};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use vrouter_api::{SnatPortsView, SnatView};

impl Views {
    /// The `snat` view.
    pub fn snat(&self) -> SnatView {
        let snap = self.snapshot();
        let Some(snat) = snap.snat else {
            return SnatView::default();
        };
        // Per protocol: connections, ports, connections per destination.
        let mut connections: HashMap<u8, u64> = HashMap::new();
        let mut ports: HashSet<(u8, u16)> = HashSet::new();
        let mut per_destination: HashMap<(u8, std::net::IpAddr, u16), u64> = HashMap::new();
        let table = &self.flows.table;
        table.scan(0, |r, _| {
            if FlowAction::is_reverse(r.value.data) || !FlowAction::is_translated(r.value.data) {
                return ControlFlow::Continue(());
            }
            if let Some(nat) = Nat::decode(table.transform(r.index)).filter(|n| n.side == NatSide::FabricSource) {
                let proto = r.key.proto();
                *connections.entry(proto).or_default() += 1;
                ports.insert((proto, nat.port));
                // A ping's identifier is its "port" on both ends: one per destination.
                let dst_port = if proto == wire::ip_proto::ICMP {
                    0
                } else {
                    r.key.dst_port()
                };
                *per_destination.entry((proto, r.key.dst_addr(), dst_port)).or_default() += 1;
            }
            ControlFlow::Continue(())
        });
        let usage = |proto: u8, range: nexthop::PortRange| SnatPortsView {
            first: range.first,
            last: range.last,
            connections: connections.get(&proto).copied().unwrap_or(0),
            ports_in_use: ports.iter().filter(|(p, _)| *p == proto).count() as u64,
            busiest_destination: per_destination
                .iter()
                .filter(|((p, _, _), _)| *p == proto)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0),
        };
        SnatView {
            address: Some(snat.addr),
            vrf: snap.vrf(snat.vrf).map(|v| v.name.clone()),
            tcp: Some(usage(6, snat.tcp)),
            udp: Some(usage(17, snat.udp)),
            icmp: Some(usage(1, snat.icmp)),
            exhausted: self.flows.snat_exhausted.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}
