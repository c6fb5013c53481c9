//! The commands that talk to a running vrouter: changes and views, printed as tables
//! or JSON.

use super::*;

pub(super) fn print<T: serde::Serialize>(json: bool, value: &T, table: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table(value);
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// Runs an API command against the vrouter at `socket`.
pub fn api_command(socket: &std::path::Path, json: bool, command: Command) -> anyhow::Result<()> {
    let api = ApiClient::new(socket);
    match command {
        Command::Vif {
            action: VifAction::List,
        } => {
            let list: Vec<InterfaceView> = api.call(&Request::Interfaces)?;
            print(json, &list, |list| {
                println!(
                    "{:<5} {:<15} {:<6} {:<12} {:<17} {:<15} {:>10} {:>10} {:>8}",
                    "vif", "name", "kind", "vrf", "mac", "ipv4", "rx_pkts", "tx_pkts", "drops"
                );
                for i in list {
                    println!(
                        "{:<5} {:<15} {:<6} {:<12} {:<17} {:<15} {:>10} {:>10} {:>8}",
                        i.vif,
                        i.name,
                        format!("{:?}", i.kind).to_lowercase(),
                        i.vrf,
                        i.mac.to_string(),
                        opt(&i.ipv4),
                        i.counters.rx_packets,
                        i.counters.tx_packets,
                        i.counters.drops
                    );
                    if !i.counters.drops_by_reason.is_empty() {
                        let reasons: Vec<String> = i
                            .counters
                            .drops_by_reason
                            .iter()
                            .map(|(r, n)| format!("{r} {n}"))
                            .collect();
                        println!("{:<5} {:<15} drops: {}", "", "", reasons.join(", "));
                    }
                    if let Some(v6) = i.ipv6 {
                        println!("{:<5} {:<15} ipv6 {v6} gateway6 {}", "", "", opt(&i.gateway6));
                    }
                    if let Some(tag) = i.vlan {
                        println!("{:<5} {:<15} vlan {} on vif {}", "", "", tag.id, tag.parent.0);
                    }
                }
            })
        }
        Command::Vif {
            action:
                VifAction::Add {
                    name,
                    vrf,
                    mac,
                    ip,
                    ip6,
                    gateway,
                    gateway6,
                    allow_source,
                    mtu,
                    parent,
                    vlan,
                    local_preference,
                },
        } => {
            let spec = InterfaceSpec {
                name: name.clone(),
                vrf,
                mac,
                ipv4: ip,
                ipv6: ip6,
                gateway4: gateway,
                gateway6,
                allowed_address_pairs: allow_source,
                security_groups: Vec::new(),
                local_preference,
                mtu,
                vlan: parent
                    .zip(vlan)
                    .map(|(parent, id)| control_client::VlanSpec { parent, id }),
            };
            let answer: serde_json::Value = api.call(&Request::AddInterface { spec })?;
            print(json, &answer, |a| {
                println!("{name} attached as vif {} with MPLS label {}", a["vif"], a["label"])
            })
        }
        Command::Vif {
            action: VifAction::Delete { name },
        } => {
            let _: serde_json::Value = api.call(&Request::RemoveInterface { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| println!("{name} detached"))
        }
        Command::Rt {
            action: RtAction::List { vrf },
        } => {
            let routes: Vec<RouteView> = api.all_routes(vrf.as_deref(), vrouter_api::MAX_ROUTES_PER_ANSWER)?;
            print(json, &routes, |routes| {
                println!("{:<16} {:<44} {:>4}", "vrf", "prefix", "nh");
                for r in routes {
                    println!("{:<16} {:<44} {:>4}", r.vrf, r.prefix.to_string(), r.nh);
                }
            })
        }
        Command::Rt {
            action:
                RtAction::Add {
                    vrf,
                    prefix,
                    interface,
                    discard,
                    tunnel,
                    label,
                    encap,
                    remote_mac,
                    ecmp,
                },
        } => {
            let target = if let Some(name) = interface {
                RouteTarget::Interface { name }
            } else if let Some(remote) = tunnel {
                let encaps = if encap.is_empty() {
                    Encap::DEFAULT_PRIORITY.to_vec()
                } else {
                    encap
                };
                RouteTarget::Tunnel {
                    remote,
                    label: label.unwrap_or_default(),
                    encaps,
                    mac: remote_mac,
                }
            } else if !ecmp.is_empty() {
                RouteTarget::Ecmp { members: ecmp }
            } else if discard {
                RouteTarget::Discard
            } else {
                anyhow::bail!("give one of --interface, --discard, --tunnel or --ecmp");
            };
            let _: serde_json::Value = api.call(&Request::AddRoute {
                route: RouteSpec { vrf, prefix, target },
            })?;
            print(json, &serde_json::Value::Null, |_| println!("route {prefix} added"))
        }
        Command::Rt {
            action: RtAction::Delete { vrf, prefix },
        } => {
            let _: serde_json::Value = api.call(&Request::RemoveRoute { vrf, prefix })?;
            print(json, &serde_json::Value::Null, |_| println!("route {prefix} removed"))
        }
        Command::Nh => {
            let nhs: Vec<NextHopView> = api.call(&Request::NextHops)?;
            print(json, &nhs, |nhs| {
                println!("{:>4} {:<8} {:>6}  detail", "id", "type", "routes");
                for n in nhs {
                    let detail = match n.nexthop {
                        NextHop::Interface { vif, dst_mac } => {
                            format!("vif {vif} dst_mac {dst_mac}")
                        }
                        _ => String::new(),
                    };
                    println!("{:>4} {:<8} {:>6}  {detail}", n.id, n.nexthop.kind(), n.routes);
                }
            })
        }
        Command::Flow {
            action:
                FlowCommand::List {
                    filter,
                    limit,
                    from_index,
                },
        } => {
            let flows: Vec<FlowView> = api.call(&Request::Flows {
                filter: filter.into(),
                limit,
                from_index,
            })?;
            print(json, &flows, |flows| {
                println!(
                    "{:>8} {:>8} {:<10} {:<40} {:>5} {:<26} {:>10} {:>12} {:>6}",
                    "index", "reverse", "vrf", "flow", "proto", "action", "packets", "bytes", "idle"
                );
                for f in flows {
                    let tuple = format!("{}:{} > {}:{}", f.src, f.src_port, f.dst, f.dst_port);
                    let reverse = f.reverse.map_or_else(|| "-".into(), |r| r.to_string());
                    let stale = if f.stale { " (stale)" } else { "" };
                    let policy = f
                        .policy
                        .as_ref()
                        .map_or_else(String::new, |p| format!("  egress {}, ingress {}", p.egress, p.ingress));
                    println!(
                        "{:>8} {:>8} {:<10} {:<40} {:>5} {:<26} {:>10} {:>12} {:>5}s{policy}",
                        f.index,
                        reverse,
                        f.vrf,
                        tuple,
                        f.proto,
                        format!("{}{stale}", f.action),
                        f.packets,
                        f.bytes,
                        f.idle_secs
                    );
                }
            })
        }
        Command::Flow {
            action: FlowCommand::Stats,
        } => {
            let s: FlowStatsView = api.call(&Request::FlowStats)?;
            print(json, &s, |s| {
                println!("capacity (entries)        {}", s.capacity);
                println!("active entries            {}", s.active_entries);
                println!("created entries           {}", s.created_entries);
                println!("deleted entries           {}", s.deleted_entries);
                println!("aged flows                {}", s.aged_flows);
                println!("refused: table full       {}", s.refused_table_full);
                println!("refused: interface limit  {}", s.refused_interface_limit);
                let f = &s.fragments;
                println!(
                    "fragments                 {} datagrams held; {} first recorded, {} later followed, {} later unmatched, {} refused (table full)",
                    s.fragment_records, f.recorded, f.followed, f.unmatched, f.refused_full
                );
                println!(
                    "memory                    {} MiB ({} B per entry)",
                    s.memory_bytes >> 20,
                    s.memory_bytes / s.capacity.max(1)
                );
            })
        }
        Command::Flow {
            action: FlowCommand::Rate { seconds },
        } => {
            let _: FlowStatsView = api.call(&Request::FlowStats)?;
            for _ in 0..seconds {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let s: FlowStatsView = api.call(&Request::FlowStats)?;
                print(json, &s, |s| {
                    println!(
                        "{:>10.0} flows/s set up, {} entries active",
                        s.setup_rate_per_sec, s.active_entries
                    )
                })?;
            }
            Ok(())
        }
        Command::Flow {
            action: FlowCommand::Watch { from_start, count },
        } => watch_flows(&api, from_start, count),
        Command::Vif {
            action: VifAction::Bind { name, vmi, vm, mtu },
        } => {
            let binding = control_client::contrail::PortBinding { name, vmi, vm, mtu };
            let view: vrouter_api::PortBindingView = api.call(&Request::BindPort { binding })?;
            print(json, &view, |v| match (&v.vrf, &v.waiting_for) {
                (Some(vrf), _) => println!("{} bound to {} and attached in VRF {vrf}", v.name, v.vmi),
                (None, Some(what)) => println!("{} bound to {}, waiting for {what}", v.name, v.vmi),
                (None, None) => println!("{} bound to {}", v.name, v.vmi),
            })
        }
        Command::Snat => {
            let view: vrouter_api::SnatView = api.call(&Request::Snat)?;
            print(json, &view, |v| {
                let Some(address) = v.address else {
                    println!("no fabric source NAT ([host] snat)");
                    return;
                };
                println!(
                    "from {address} for VRF {}; {} connections refused for want of a port",
                    v.vrf.as_deref().unwrap_or("?"),
                    v.exhausted
                );
                println!(
                    "{:<5} {:>13} {:>11} {:>13} {:>20}",
                    "proto", "ports", "connections", "ports in use", "busiest destination"
                );
                for (proto, ports) in [("tcp", &v.tcp), ("udp", &v.udp), ("icmp", &v.icmp)] {
                    if let Some(p) = ports {
                        println!(
                            "{proto:<5} {:>13} {:>11} {:>13} {:>20}",
                            format!("{}-{}", p.first, p.last),
                            p.connections,
                            p.ports_in_use,
                            format!("{} of {}", p.busiest_destination, u32::from(p.last - p.first) + 1)
                        );
                    }
                }
            })
        }
        Command::Config => {
            let config: vrouter_api::ConfigView = api.call(&Request::Config)?;
            print(json, &config, |c| {
                let server = c.server.map_or("none".to_string(), |s| format!("control node {s}"));
                let synced = if c.synced { "synced" } else { "not synced yet" };
                println!(
                    "config server: {server} ({synced}); {} objects, {} links; {} entries skipped, {} updates refused",
                    c.objects, c.links, c.skipped_entries, c.refused_updates
                );
                println!("{:<15} {:<36} {:<9} {:<24} config", "port", "vmi", "state", "vrf");
                for p in &c.ports {
                    let state = if p.attached { "attached" } else { "waiting" };
                    let detail = p.waiting_for.as_deref().map(|w| format!("waiting for {w}"));
                    println!(
                        "{:<15} {:<36} {:<9} {:<24} {}",
                        p.name,
                        p.vmi,
                        state,
                        p.vrf.as_deref().unwrap_or("-"),
                        detail.or_else(|| p.config_name.clone()).unwrap_or_default()
                    );
                }
            })
        }
        Command::Xmpp => {
            let channels: Vec<vrouter_api::XmppChannelView> = api.call(&Request::Xmpp)?;
            print(json, &channels, |channels| {
                if channels.is_empty() {
                    println!("no control nodes configured ([xmpp] servers)");
                }
                for c in channels {
                    let state = match c.up_for_secs {
                        Some(s) if c.up => format!("up for {s} s"),
                        _ => "down".to_string(),
                    };
                    println!(
                        "control node {} {}: {state}, came up {} times, {} route messages, {} unusable, hold {} s",
                        c.peer, c.server, c.established, c.route_messages, c.unusable, c.hold_time_secs
                    );
                    if let Some(e) = &c.last_error {
                        println!("  last error: {e}");
                    }
                    let total: usize = c.routes_per_vrf.values().sum();
                    println!("  routes: {total} in {} VRFs", c.routes_per_vrf.len());
                    for (vrf, n) in &c.routes_per_vrf {
                        println!("    {vrf:<40} {n:>8}");
                    }
                    for line in &c.trace {
                        println!("  {line}");
                    }
                }
            })
        }
        Command::Tunnel => {
            let t: Vec<crate::stats::TunnelTotals> = api.call(&Request::Tunnels)?;
            print(json, &t, |t| {
                println!(
                    "{:<16} {:>12} {:>14} {:>12} {:>14}",
                    "remote", "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes"
                );
                for r in t {
                    println!(
                        "{:<16} {:>12} {:>14} {:>12} {:>14}",
                        r.remote.to_string(),
                        r.tx_packets,
                        r.tx_bytes,
                        r.rx_packets,
                        r.rx_bytes
                    );
                }
            })
        }
        Command::Mpls => {
            let table: Vec<(u32, u32)> = api.call(&Request::Mpls)?;
            print(json, &table, |t| {
                println!("{:>8} {:>6}", "label", "nh");
                for (l, nh) in t {
                    println!("{l:>8} {nh:>6}");
                }
            })
        }
        Command::Vxlan {
            vrf: Some(vrf),
            vni: Some(vni),
        } => {
            let _: serde_json::Value = api.call(&Request::SetVrfVni { vrf: vrf.clone(), vni })?;
            print(json, &serde_json::Value::Null, |_| println!("VRF {vrf} has VNI {vni}"))
        }
        Command::Vxlan { .. } => {
            let table: Vec<(u32, String)> = api.call(&Request::Vxlan)?;
            print(json, &table, |t| {
                println!("{:>10} vrf", "vni");
                for (n, v) in t {
                    println!("{n:>10} {v}");
                }
            })
        }
        Command::Service {
            action: ServiceAction::List,
        } => {
            let list: Vec<ServiceView> = api.call(&Request::Services)?;
            print(json, &list, |list| {
                println!(
                    "{:<24} {:<12} {:<28} {:<5} {:>5} {:>6} {:>8} {:>7} {:>10} {:>12}  backends",
                    "name", "vrf", "ip", "proto", "port", "target", "affinity", "flows", "packets", "bytes"
                );
                for s in list {
                    let proto = match s.proto {
                        6 => "tcp".to_string(),
                        17 => "udp".to_string(),
                        n => n.to_string(),
                    };
                    // Backends the health check took out are listed marked.
                    let backends: Vec<String> = s
                        .backends
                        .iter()
                        .map(|b| b.to_string())
                        .chain(s.down.iter().map(|b| format!("{b}(down)")))
                        .collect();
                    println!(
                        "{:<24} {:<12} {:<28} {:<5} {:>5} {:>6} {:>8} {:>7} {:>10} {:>12}  {}",
                        s.name,
                        s.vrf,
                        s.ip.to_string(),
                        proto,
                        s.port,
                        s.target_port,
                        s.affinity_timeout_secs.map_or("-".to_string(), |t| format!("{t}s")),
                        s.flows,
                        s.packets,
                        s.bytes,
                        if backends.is_empty() {
                            "(none: refused)".to_string()
                        } else {
                            backends.join(" ")
                        }
                    );
                }
            })
        }
        Command::Service {
            action:
                ServiceAction::Add {
                    name,
                    vrf,
                    ip,
                    ports,
                    backends,
                    external_ips,
                    load_balancer,
                    affinity_timeout,
                    health_check,
                    health_path,
                    health_port,
                    health_interval,
                    health_timeout,
                    health_retries,
                },
        } => {
            let spec = control_client::ServiceSpec {
                name: name.clone(),
                vrf,
                ip,
                ports: ports.into_iter().map(|p| p.0).collect(),
                backends,
                affinity_timeout_secs: affinity_timeout,
                external_ips,
                load_balancer,
                health_check: health_check.map(|kind| control_client::HealthCheck {
                    kind: match kind.as_str() {
                        "http" => control_client::HealthCheckKind::Http,
                        "icmp" => control_client::HealthCheckKind::Icmp,
                        _ => control_client::HealthCheckKind::Tcp,
                    },
                    port: health_port,
                    http_path: (kind == "http").then_some(health_path),
                    interval_secs: health_interval,
                    timeout_secs: health_timeout,
                    retries: health_retries,
                }),
            };
            let _: serde_json::Value = api.call(&Request::AddService { spec })?;
            print(json, &serde_json::Value::Null, |_| println!("service {name} set"))
        }
        Command::Service {
            action: ServiceAction::Delete { name },
        } => {
            let _: serde_json::Value = api.call(&Request::RemoveService { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| println!("service {name} removed"))
        }
        Command::Fip {
            action: FipAction::List,
        } => {
            let list: Vec<vrouter_api::FloatingIpView> = api.call(&Request::FloatingIps)?;
            print(json, &list, |list| {
                println!(
                    "{:<24} {:<16} {:<28} {:<15} {:<16} pod address",
                    "name", "vrf", "ip", "interface", "pod vrf"
                );
                for f in list {
                    println!(
                        "{:<24} {:<16} {:<28} {:<15} {:<16} {}",
                        f.name,
                        f.vrf,
                        f.ip.to_string(),
                        f.interface,
                        f.pod_vrf,
                        f.pod_ip
                    );
                }
            })
        }
        Command::Fip {
            action:
                FipAction::Add {
                    name,
                    vrf,
                    ip,
                    interface,
                    egress_only,
                },
        } => {
            let spec = control_client::FloatingIpSpec {
                name: name.clone(),
                vrf,
                ip,
                interface,
                egress_only,
            };
            let _: serde_json::Value = api.call(&Request::AddFloatingIp { spec })?;
            print(json, &serde_json::Value::Null, |_| println!("floating IP {name} added"))
        }
        Command::Fip {
            action: FipAction::Delete { name },
        } => {
            let _: serde_json::Value = api.call(&Request::RemoveFloatingIp { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| {
                println!("floating IP {name} removed")
            })
        }
        Command::Dropstats => {
            let d: DropStatsView = api.call(&Request::DropStats)?;
            print(json, &d, |d| {
                for (label, n) in &d.reasons {
                    println!("{label:<24} {n:>12}");
                }
                println!("{:<24} {:>12}", "icmp_errors_sent", d.icmp_errors_sent);
                println!("{:<24} {:>12}", "icmp_errors_suppressed", d.icmp_errors_suppressed);
            })
        }
        Command::Policy { action } => super::policy::run(&api, json, action),
        Command::Chain { action } => super::chain::run(&api, json, action),
        Command::Ingress { action } => super::ingress::run(&api, json, action),
        Command::Apply {
            manifests,
            prune,
            dry_run,
            dns_hosts,
        } => super::apply::apply(&api, json, &manifests, prune, dry_run, dns_hosts.as_deref()),
        Command::Delete { manifests } => super::apply::delete(&api, json, &manifests),
        Command::Status => {
            let s: StatusView = api.call(&Request::Status)?;
            print(json, &s, |s| {
                println!("generation        {}", s.generation);
                println!("forwarding cores  {:?}", s.forwarding_cores);
                println!("interfaces        {}", s.interfaces);
                println!("vrfs              {}", s.vrfs);
                println!(
                    "{:>6} {:>5} {:>12} {:>12} {:>12} {:>12} {:>10} {:>8} {:>12} {:>13}",
                    "worker",
                    "core",
                    "busy_loops",
                    "idle_loops",
                    "rx_pkts",
                    "tx_pkts",
                    "drops",
                    "busy %",
                    "busy ns/pkt",
                    "busy cyc/pkt"
                );
                for w in &s.workers {
                    let busy = 100.0 * w.busy_cycles as f64 / (w.busy_cycles + w.idle_cycles).max(1) as f64;
                    let ns_per_cycle = 1e9 / s.cycles_per_second.max(1) as f64;
                    println!(
                        "{:>6} {:>5} {:>12} {:>12} {:>12} {:>12} {:>10} {:>8.1} {:>12.0} {:>13.0}",
                        w.index,
                        w.core,
                        w.busy_loops,
                        w.idle_loops,
                        w.rx_packets,
                        w.tx_packets,
                        w.drops,
                        busy,
                        w.busy_cycles_per_packet() * ns_per_cycle,
                        w.busy_cycles_per_packet()
                    );
                    if !w.drops_by_reason.is_empty() {
                        let reasons: Vec<String> = w.drops_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
                        println!("{:>6} drops: {}", "", reasons.join(", "));
                    }
                    if w.chains_received + w.chains_sent > 0 {
                        println!(
                            "{:>6} multi-buffer packets: {} received, {} sent",
                            "", w.chains_received, w.chains_sent
                        );
                    }
                    if w.tx_checksum_offload {
                        println!(
                            "{:>6} checksum offload: on, {} packets' checksums finished by the kernel",
                            "", w.checksum_offloads
                        );
                    }
                    if w.frame_double_releases > 0 {
                        println!(
                            "{:>6} frames released twice: {} (ignored; a vrouter bug, please report it)",
                            "", w.frame_double_releases
                        );
                    }
                }
            })
        }
        Command::Capture(args) => super::capture::run(&api, &args),
        Command::Top { interval, iterations } => {
            let interval = std::time::Duration::try_from_secs_f64(interval)
                .map_err(|e| anyhow::anyhow!("--interval {interval}: {e}"))?;
            super::top::run(&api, interval, iterations)
        }
        Command::Run { .. } | Command::CheckConfig { .. } => anyhow::bail!("not an API command"),
    }
}

/// `flow watch`: polls the records after the last one printed and prints each as a
/// JSON line, until `count` are printed or stdout is closed.
fn watch_flows(api: &ApiClient, from_start: bool, count: Option<u64>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut after = if from_start { 0 } else { u64::MAX };
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let answer: vrouter_api::FlowRecordsView = api.call(&Request::FlowRecords {
            after,
            limit: vrouter_api::MAX_FLOWS_PER_ANSWER,
        })?;
        if !answer.enabled {
            anyhow::bail!("this vrouter keeps no flow records (flow_export.recent_records = 0)");
        }
        if answer.lost > 0 {
            eprintln!(
                "vrouter: {} flow records were made faster than read and are gone",
                answer.lost
            );
        }
        let mut out = stdout.lock();
        for r in &answer.records {
            if count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
            // A closed pipe (`| head`) ends the watch, not an error.
            if writeln!(out, "{}", serde_json::to_string(r)?).is_err() {
                return Ok(());
            }
            printed += 1;
        }
        if out.flush().is_err() || count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        drop(out);
        after = answer.last;
        if answer.records.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}
