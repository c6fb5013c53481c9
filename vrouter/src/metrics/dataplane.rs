//! The data plane's families: interfaces, workers, drops, the flow table and the
//! tunnels, read from the workers' single-writer counters at scrape time (nothing is
//! counted for the metrics on the forwarding path).

use super::families::{counter, gauge, none, Labels};
use crate::control::views::Views;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::fmt;
use vrouter_api::InterfaceView;

/// Writes the data plane's families.
pub fn encode(views: &Views, encoder: &mut DescriptorEncoder) -> fmt::Result {
    status(views, encoder)?;
    interfaces(&views.interfaces(), encoder)?;
    drops(views, encoder)?;
    workers(views, encoder)?;
    flows(views, encoder)?;
    tunnels(views, encoder)
}

fn status(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let status = views.status();
    gauge(
        e,
        "build_info",
        "The vrouter's version (always 1)",
        None,
        [(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1u64)],
    )?;
    gauge(
        e,
        "ready",
        "1 once the state directory is restored and changes are applied",
        None,
        [(none(), u64::from(status.ready))],
    )?;
    gauge(
        e,
        "snapshot_generation",
        "Generation of the forwarding snapshot the workers use",
        None,
        [(none(), status.generation)],
    )?;
    gauge(
        e,
        "interfaces",
        "Interfaces attached: pods, the fabric, the node's own",
        None,
        [(none(), status.interfaces)],
    )?;
    gauge(
        e,
        "vrfs",
        "VRFs (virtual networks) in the forwarding state",
        None,
        [(none(), status.vrfs)],
    )
}

fn interface_labels(i: &InterfaceView) -> Labels {
    vec![
        ("interface", i.name.clone()),
        ("vif", i.vif.to_string()),
        ("vrf", i.vrf.clone()),
        ("kind", format!("{:?}", i.kind).to_lowercase()),
    ]
}

fn interfaces(list: &[InterfaceView], e: &mut DescriptorEncoder) -> fmt::Result {
    type Field = fn(&vrouter_api::VifTotals) -> u64;
    let families: [(&str, &str, Option<Unit>, Field); 8] = [
        (
            "interface_receive_packets",
            "Frames received on the interface",
            None,
            |c| c.rx_packets,
        ),
        (
            "interface_receive",
            "Bytes received on the interface",
            Some(Unit::Bytes),
            |c| c.rx_bytes,
        ),
        (
            "interface_transmit_packets",
            "Frames sent on the interface",
            None,
            |c| c.tx_packets,
        ),
        (
            "interface_transmit",
            "Bytes sent on the interface",
            Some(Unit::Bytes),
            |c| c.tx_bytes,
        ),
        (
            "interface_transmit_ring_full",
            "Frames for the interface dropped because its transmit ring was full",
            None,
            |c| c.tx_ring_full,
        ),
        (
            "interface_kernel_receive_dropped",
            "Frames the kernel dropped before the interface's receive ring (no room in the UMEM)",
            None,
            |c| c.kernel_rx_dropped,
        ),
        (
            "interface_kernel_receive_ring_full",
            "Times the kernel found the interface's receive ring full",
            None,
            |c| c.kernel_rx_ring_full,
        ),
        (
            "interface_kernel_fill_ring_empty",
            "Times the kernel found the interface's fill ring empty",
            None,
            |c| c.kernel_fill_ring_empty,
        ),
    ];
    for (name, help, unit, field) in families {
        counter(
            e,
            name,
            help,
            unit,
            list.iter().map(|i| (interface_labels(i), field(&i.counters))),
        )?;
    }
    // Only the reasons an interface has seen: every reason for every pod would be
    // thousands of series that stay zero.
    counter(
        e,
        "interface_drops",
        "Frames received on the interface and dropped, by reason (reasons seen so far)",
        None,
        list.iter().flat_map(|i| {
            i.counters.drops_by_reason.iter().map(move |(reason, n)| {
                (
                    vec![
                        ("interface", i.name.clone()),
                        ("vif", i.vif.to_string()),
                        ("reason", reason.clone()),
                    ],
                    *n,
                )
            })
        }),
    )
}

fn drops(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let stats = views.drop_stats();
    counter(
        e,
        "drops",
        "Frames dropped, by reason (every reason, all interfaces)",
        None,
        stats.reasons.iter().map(|(r, n)| (vec![("reason", r.clone())], *n)),
    )?;
    counter(
        e,
        "icmp_errors_sent",
        "ICMP errors the vrouter sent (unreachable, time exceeded, too big)",
        None,
        [(none(), stats.icmp_errors_sent)],
    )?;
    counter(
        e,
        "icmp_errors_suppressed",
        "ICMP errors not sent because of the rate limit",
        None,
        [(none(), stats.icmp_errors_suppressed)],
    )
}

fn workers(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let status = views.status();
    let hz = (status.cycles_per_second.max(1)) as f64;
    let labels = |w: &vrouter_api::WorkerView| vec![("worker", w.index.to_string()), ("core", w.core.to_string())];
    let list = &status.workers;
    counter(
        e,
        "worker_busy",
        "Time the worker spent in polls that found packets",
        Some(Unit::Seconds),
        list.iter().map(|w| (labels(w), w.busy_cycles as f64 / hz)),
    )?;
    counter(
        e,
        "worker_idle",
        "Time the worker spent in polls that found none (spinning, or asleep in adaptive mode)",
        Some(Unit::Seconds),
        list.iter().map(|w| (labels(w), w.idle_cycles as f64 / hz)),
    )?;
    counter(
        e,
        "worker_polls",
        "The worker's poll iterations, by whether they found packets (busy) or not (idle)",
        None,
        list.iter().flat_map(|w| {
            let mut busy = labels(w);
            busy.push(("state", "busy".into()));
            let mut idle = labels(w);
            idle.push(("state", "idle".into()));
            [(busy, w.busy_loops), (idle, w.idle_loops)]
        }),
    )?;
    counter(
        e,
        "worker_multi_buffer_packets",
        "Packets larger than one UMEM chunk, carried as a chain of descriptors, by direction",
        None,
        list.iter().flat_map(|w| {
            let mut rx = labels(w);
            rx.push(("direction", "received".into()));
            let mut tx = labels(w);
            tx.push(("direction", "sent".into()));
            [(rx, w.chains_received), (tx, w.chains_sent)]
        }),
    )?;
    counter(
        e,
        "worker_checksum_offload_packets",
        "TCP and UDP packets sent with their checksum left for the kernel or the device to finish (AF_XDP transmit metadata)",
        None,
        list.iter().map(|w| (labels(w), w.checksum_offloads)),
    )?;
    counter(
        e,
        "worker_frame_double_releases",
        "UMEM frames given back to the free list while already in it, ignored so that no frame carries two packets: a vrouter bug if ever above 0",
        None,
        list.iter().map(|w| (labels(w), w.frame_double_releases)),
    )?;
    counter(
        e,
        "worker_receive_packets",
        "Frames the worker received, all its interfaces",
        None,
        list.iter().map(|w| (labels(w), w.rx_packets)),
    )?;
    counter(
        e,
        "worker_transmit_packets",
        "Frames the worker sent, all its interfaces",
        None,
        list.iter().map(|w| (labels(w), w.tx_packets)),
    )?;
    counter(
        e,
        "worker_drops",
        "Frames the worker dropped",
        None,
        list.iter().map(|w| (labels(w), w.drops)),
    )
}

fn flows(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let f = views.flow_totals();
    let (snat_exhausted, nat_clashes) = (views.snat_exhausted(), views.nat_clashes());
    gauge(
        e,
        "flow_table_capacity_entries",
        "Entries the flow table holds at most (each direction of a connection is one)",
        None,
        [(none(), f.capacity)],
    )?;
    gauge(
        e,
        "flow_table_active_entries",
        "Entries in the flow table now",
        None,
        [(none(), f.active_entries)],
    )?;
    gauge(
        e,
        "flow_table_memory",
        "Memory the flow table takes",
        Some(Unit::Bytes),
        [(none(), f.memory_bytes)],
    )?;
    counter(
        e,
        "flow_entries_created",
        "Flow entries created, one per direction (half the rate is the connection setup rate)",
        None,
        [(none(), f.created_entries)],
    )?;
    counter(
        e,
        "flow_entries_deleted",
        "Flow entries removed (aged, closed, re-decided or detached)",
        None,
        [(none(), f.deleted_entries)],
    )?;
    counter(
        e,
        "flows_aged",
        "Flows removed by aging (idle, closed TCP, drop decisions)",
        None,
        [(none(), f.aged_flows)],
    )?;
    counter(
        e,
        "flow_setups_refused",
        "Packets of new connections that got no flow entry, by reason",
        None,
        [
            (vec![("reason", "table_full".to_string())], f.refused_table_full),
            (
                vec![("reason", "interface_limit".to_string())],
                f.refused_interface_limit,
            ),
            (vec![("reason", "snat_exhausted".to_string())], snat_exhausted),
            (vec![("reason", "nat_clash".to_string())], nat_clashes),
        ],
    )?;
    gauge(
        e,
        "fragment_records",
        "Fragmented IPv4 datagrams whose later fragments the vrouter is waiting for",
        None,
        [(none(), f.fragment_records)],
    )?;
    let outcome = |o: &str| vec![("outcome", o.to_string())];
    counter(
        e,
        "fragments",
        "IPv4 fragments by outcome: a first fragment recorded, a later one that followed its first fragment's flow, a later one without a record (forwarded by its addresses), a first one not recorded (table full)",
        None,
        [
            (outcome("recorded"), f.fragments.recorded),
            (outcome("followed"), f.fragments.followed),
            (outcome("unmatched"), f.fragments.unmatched),
            (outcome("refused_full"), f.fragments.refused_full),
        ],
    )
}

fn tunnels(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    type Field = fn(&vrouter_api::TunnelTotals) -> u64;
    let list = views.tunnels();
    let families: [(&str, &str, Option<Unit>, Field); 4] = [
        (
            "tunnel_transmit_packets",
            "Packets encapsulated towards the remote node",
            None,
            |t| t.tx_packets,
        ),
        (
            "tunnel_transmit",
            "Bytes sent to the remote node, outer headers included",
            Some(Unit::Bytes),
            |t| t.tx_bytes,
        ),
        (
            "tunnel_receive_packets",
            "Packets from the remote node, decapsulated",
            None,
            |t| t.rx_packets,
        ),
        (
            "tunnel_receive",
            "Bytes from the remote node, outer headers included",
            Some(Unit::Bytes),
            |t| t.rx_bytes,
        ),
    ];
    for (name, help, unit, field) in families {
        counter(
            e,
            name,
            help,
            unit,
            list.iter().map(|t| (vec![("remote", t.remote.to_string())], field(t))),
        )?;
    }
    Ok(())
}
