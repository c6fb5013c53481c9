//! The lab: a compute node of network namespaces with pods in two VRFs, attached to
//! a real vrouter over AF_XDP; traffic between every pair; a printed report. The same
//! building blocks serve the system tests.

pub mod netns;
pub mod node;
pub mod traffic;

use crate::config::{PollMode, XdpMode};
use node::{LabNode, NodeOptions};
use std::net::IpAddr;

/// `vrouter lab` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LabOptions {
    /// Pods per VRF (two VRFs: red and blue).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub pods_per_vrf: u8,
    /// Megabytes sent in each TCP transfer.
    #[arg(long, default_value_t = 10)]
    pub tcp_mb: u64,
    /// Datagrams in each UDP burst.
    #[arg(long, default_value_t = 20000)]
    pub udp_count: u64,
    /// XDP mode for the pod ports.
    #[arg(long, value_enum, default_value = "native")]
    pub xdp_mode: XdpMode,
    /// Worker idle behaviour.
    #[arg(long, value_enum, default_value = "adaptive")]
    pub poll_mode: PollMode,
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "--"
    }
}

/// Builds the lab, runs the traffic, prints the report, removes everything. Fails if
/// any reachability differs from what VRF isolation says it should be.
pub fn run(options: &LabOptions) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?;
    let mut node = LabNode::new(NodeOptions {
        binary,
        workers: 1,
        xdp_mode: options.xdp_mode,
        poll_mode: options.poll_mode,
        flows: crate::flows::FlowConfig {
            entries: 1 << 20,
            ..Default::default()
        },
        fabric_ip: std::net::Ipv4Addr::new(198, 18, 0, 1),
    })?;
    println!("== vrouter lab: node namespace {}", node.ns.name());
    node.start_vrouter()?;
    for (vrf_index, vrf) in ["red", "blue"].iter().enumerate() {
        for i in 1..=options.pods_per_vrf {
            let pod = node.add_pod(vrf, vrf_index as u8, i, true)?;
            println!(
                "   pod {:<8} vrf {:<5} {} / {} on {}",
                pod.name, pod.vrf, pod.ipv4, pod.ipv6, pod.host_if
            );
        }
    }
    let mut wrong = Vec::new();
    for family in ["IPv4", "IPv6"] {
        println!("\n== {family} reachability (ping; rows ping columns; ok = reply, -- = none)");
        print!("{:>10}", "");
        for p in &node.pods {
            print!(" {:>8}", p.name);
        }
        println!();
        for from in &node.pods {
            print!("{:>10}", from.name);
            for to in &node.pods {
                if std::ptr::eq(from, to) {
                    print!(" {:>8}", "");
                    continue;
                }
                let dst: IpAddr = if family == "IPv4" {
                    to.ipv4.into()
                } else {
                    to.ipv6.into()
                };
                let expected = from.vrf == to.vrf;
                let got = traffic::ping(from, dst, if expected { 3 } else { 1 });
                if got != expected {
                    wrong.push(format!(
                        "{family} {} -> {}: expected {}, got {}",
                        from.name,
                        to.name,
                        mark(expected),
                        mark(got)
                    ));
                }
                print!(" {:>8}", mark(got));
            }
            println!();
        }
        let gw_ok = node.pods.iter().all(|p| {
            traffic::ping(
                p,
                if family == "IPv4" {
                    p.gateway4.into()
                } else {
                    p.gateway6.into()
                },
                3,
            )
        });
        println!("   every pod pings its gateway: {}", mark(gw_ok));
        if !gw_ok {
            wrong.push(format!("{family}: a pod cannot ping its gateway"));
        }
    }
    println!("\n== transfers (same VRF)");
    let bytes = options.tcp_mb * 1_000_000;
    let pairs: Vec<(usize, usize)> = if options.pods_per_vrf >= 2 {
        vec![
            (0, 1),
            (options.pods_per_vrf as usize, options.pods_per_vrf as usize + 1),
        ]
    } else {
        Vec::new()
    };
    for (a, b) in pairs {
        let (from, to) = (&node.pods[a], &node.pods[b]);
        for dst in [IpAddr::from(to.ipv4), IpAddr::from(to.ipv6)] {
            let t = traffic::tcp_transfer(from, to, dst, bytes)?;
            println!(
                "   TCP {} -> {} [{dst}]: {} bytes, intact: {}, {:.0} Mbit/s",
                from.name, to.name, t.bytes, t.intact, t.mbit_per_s
            );
            if !t.intact {
                wrong.push(format!(
                    "TCP {} -> {} [{dst}] data damaged or short",
                    from.name, to.name
                ));
            }
        }
        let u = traffic::udp_burst(from, to, to.ipv4.into(), options.udp_count, 512)?;
        println!(
            "   UDP {} -> {}: {}/{} datagrams of 512 B, {:.0} pps",
            from.name, to.name, u.received, u.sent, u.pps
        );
    }
    println!("\n== vif");
    for i in node.interfaces()? {
        println!(
            "   vif {:<3} {:<6} {:<6} rx {:>9} pkts  tx {:>9} pkts  drops {:>6}",
            i.vif, i.name, i.vrf, i.counters.rx_packets, i.counters.tx_packets, i.counters.drops
        );
    }
    println!("\n== dropstats (non-zero)");
    let drops = node.drop_stats()?;
    for (label, n) in drops.reasons.iter().filter(|(_, n)| *n > 0) {
        println!("   {label:<22} {n:>8}");
    }
    println!("   icmp_errors_sent       {:>8}", drops.icmp_errors_sent);
    node.stop_vrouter()?;
    let left = node.interfaces_with_xdp();
    println!(
        "\n== shutdown: XDP programs left attached: {}",
        if left.is_empty() {
            "none".to_string()
        } else {
            left.join(", ")
        }
    );
    drop(node);
    println!("== lab removed");
    if wrong.is_empty() {
        println!("RESULT: every pod reaches exactly the pods of its own VRF");
        Ok(())
    } else {
        anyhow::bail!("unexpected results:\n  {}", wrong.join("\n  "))
    }
}
