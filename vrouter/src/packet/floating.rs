//! Floating IPs in flow setup: a new flow to a floating address (in its VRF) is
//! translated to the pod's address and routed in the pod's VRF; a new flow from a
//! pod with floating IPs whose destination matches a longer prefix in a floating
//! address's VRF than in its own (Contrail's choice) leaves from that floating
//! address, routed in that VRF. Both directions are installed translated; ports are
//! never changed.

use super::service_flow::Target;
use super::DropReason;
use flow_table::FlowKey;
use nexthop::{FloatingEntry, Interface, Nat, NatSide, Snapshot, VrfId};
use std::net::IpAddr;

/// The translation of a new flow with `key` (received on `iface`) through a floating
/// IP, if one applies; `Err` refuses it (a connection to an egress-only floating
/// address: an isolated pod's, which no one outside its network may reach).
pub(super) fn target(snap: &Snapshot, iface: &Interface, key: &FlowKey) -> Option<Result<Target, DropReason>> {
    if let Some(entry) = snap.floating.get(VrfId(key.vrf()), key.dst_addr()) {
        let for_service = entry.service_ports.contains(&(key.proto(), key.dst_port()));
        // Later fragments and ICMP errors of the pod's own connections come to the
        // address too, without ports: let them through to the pod.
        let related = super::policy::judged_elsewhere(key);
        if entry.egress_only && !for_service && !related {
            return Some(Err(DropReason::OtherVrf));
        }
        return Some(Ok(inbound(key, entry)));
    }
    let own = snap.floating.of(iface.vif);
    if own.is_empty() || key.vrf() != iface.vrf.0 {
        return None;
    }
    let (src, dst) = (key.src_addr(), key.dst_addr());
    let home = snap.match_len(iface.vrf, dst);
    // The floating VRF with the longest match, if longer than the pod's own.
    let best = own
        .iter()
        .filter(|e| e.pod == src)
        .filter_map(|e| Some((snap.match_len(e.vrf, dst)?, e)))
        .filter(|(len, _)| home.is_none_or(|h| *len > h))
        .max_by_key(|(len, _)| *len)?;
    Some(Ok(outbound(key, best.1)))
}

/// A service of another VRF that a pod reaches through one of its floating IPs (the
/// seed's rule d: an isolated namespace's pods reach every service): the first of
/// the pod's floating entries whose VRF has a service at the destination.
pub(super) fn service_elsewhere<'s>(
    snap: &'s Snapshot,
    iface: &Interface,
    key: &FlowKey,
) -> Option<(&'s FloatingEntry, &'s nexthop::ServiceEntry)> {
    if key.vrf() != iface.vrf.0 {
        return None;
    }
    let (src, dst, proto, port) = (key.src_addr(), key.dst_addr(), key.proto(), key.dst_port());
    snap.floating
        .of(iface.vif)
        .iter()
        .filter(|e| e.pod == src)
        .find_map(|e| Some((e, snap.service(e.vrf, dst, proto, port)?)))
}

/// The key a floating reply entry (`key`, translated as `kept`, received on `iface`)
/// is routed by now: in the floating VRF from the floating address (the pod's
/// reply), or in the pod's VRF to the pod (a reply to the pod's own flow); `None`
/// when that floating IP no longer stands.
pub(super) fn reply_route(snap: &Snapshot, iface: &Interface, key: &FlowKey, kept: Nat) -> Option<FlowKey> {
    match kept.side {
        NatSide::FloatingSource => {
            let e = snap
                .floating
                .of(iface.vif)
                .iter()
                .find(|e| e.target == kept.target && e.pod == key.src_addr())?;
            rekeyed(key, e.vrf, e.address, key.dst_addr())
        }
        NatSide::FloatingDestination => {
            let e = snap
                .floating
                .get(VrfId(key.vrf()), key.dst_addr())
                .filter(|e| e.pod_target == kept.target)?;
            rekeyed(key, e.pod_vrf, key.src_addr(), e.pod)
        }
        _ => None,
    }
}

/// `key` with addresses `src` and `dst` in VRF `vrf` (the ports kept).
pub(super) fn rekeyed(key: &FlowKey, vrf: VrfId, src: IpAddr, dst: IpAddr) -> Option<FlowKey> {
    let (proto, sport, dport) = (key.proto(), key.src_port(), key.dst_port());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(FlowKey::v4(vrf.0, s, d, proto, sport, dport)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(FlowKey::v6(vrf.0, s, d, proto, sport, dport)),
        _ => None,
    }
}

/// To the floating address from its VRF: to the pod, in the pod's VRF; replies
/// leave from the floating address, routed in its VRF.
fn inbound(key: &FlowKey, e: &FloatingEntry) -> Target {
    let route = rekeyed(key, e.pod_vrf, key.src_addr(), e.pod).unwrap_or(*key);
    Target {
        nat: Nat {
            side: NatSide::FloatingDestination,
            target: e.pod_target,
            port: key.dst_port(),
        },
        route,
        reverse: route.reversed(),
        reverse_route: key.reversed(),
        reply: Nat {
            side: NatSide::FloatingSource,
            target: e.target,
            port: key.dst_port(),
        },
    }
}

/// From the pod out through the floating address's VRF; replies come to the
/// floating address and go to the pod.
fn outbound(key: &FlowKey, e: &FloatingEntry) -> Target {
    let route = rekeyed(key, e.vrf, e.address, key.dst_addr()).unwrap_or(*key);
    Target {
        nat: Nat {
            side: NatSide::FloatingSource,
            target: e.target,
            port: key.src_port(),
        },
        route,
        reverse: route.reversed(),
        reverse_route: key.reversed(),
        reply: Nat {
            side: NatSide::FloatingDestination,
            target: e.pod_target,
            port: key.src_port(),
        },
    }
}
