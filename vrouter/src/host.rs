//! The node's own interface (Tungsten's vhost0): a veth pair the vrouter creates at
//! start and removes when it stops. The kernel's end (`vhost0`) gets routes to the
//! pod and service ranges with the node's fabric address as source; the vrouter's
//! end (`vhost0-vr`) is a port in the configured VRF whose address is the fabric
//! address, so the node reaches pods and services, pods reach the node, and what
//! leaves the cluster (replies to node ports and external IPs) goes to the kernel,
//! which routes it as it routes everything of its own.
//!
//! The kernel's end accepts packets from its own address (`accept_local`: replies
//! from a node port carry the fabric address as source) without a reverse-path
//! check, forwarding is on (the replies leave through the fabric), and its
//! segmentation offloads are off (copy-mode AF_XDP sees frames as written); its
//! checksum offload stays on only if the workers finish checksums themselves
//! (`dataplane.tx_checksum_offload` on a kernel with AF_XDP transmit metadata).

use crate::config::HostConfig;
use anyhow::{bail, Context};
use control_client::InterfaceSpec;
use nexthop::MacAddr;
use std::net::Ipv4Addr;
use std::process::Command;

/// The gateway the node's kernel routes through (link-local: it is no address of
/// any network; the vrouter answers for it on the node's interface only).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

/// The node's interface while the vrouter runs; dropping it removes the veth pair.
#[derive(Debug)]
pub struct HostInterface {
    kernel: String,
    /// The kernel's reserved local ports before the vrouter reserved the fabric
    /// source NAT ranges (given back at exit).
    reserved_before: Option<String>,
    /// IP forwarding before the vrouter turned it on (given back at exit).
    forwarding_before: Option<String>,
    /// The strict reverse-path filter the vrouter loosened (given back at exit).
    rp_filter_before: Option<String>,
}

const RESERVED_PORTS: &str = "net.ipv4.ip_local_reserved_ports";

/// The vrouter's end of kernel interface `kernel`.
pub fn vrouter_end(kernel: &str) -> String {
    format!("{kernel}-vr")
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// True if the kernel's reserved range `range` (`A-B` or `A`) lies within `ours`
/// (two ranges, merged when they touch, as the kernel shows them).
fn inside(range: &str, ours: [[u16; 2]; 2]) -> bool {
    let mut bounds = range.split('-').map(|p| p.trim().parse::<u16>());
    let (Some(Ok(first)), last) = (bounds.next(), bounds.next()) else {
        return false;
    };
    let last = match last {
        None => first,
        Some(Ok(l)) => l,
        Some(Err(_)) => return false,
    };
    let [mut a, mut b] = ours;
    if a[0] > b[0] {
        std::mem::swap(&mut a, &mut b);
    }
    let within = |[lo, hi]: [u16; 2]| lo <= first && last <= hi;
    let merged = (u32::from(a[1]) + 1 >= u32::from(b[0])).then(|| [a[0], a[1].max(b[1])]);
    within(a) || within(b) || merged.is_some_and(within)
}

fn read_sysctl(key: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path).ok().map(|v| v.trim().to_string())
}

fn sysctl(key: &str, value: &str) -> anyhow::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("setting {key} = {value}"))
}

impl HostInterface {
    /// Creates the pair (replacing one a crashed vrouter left) with `queues` queues
    /// per end, configures the kernel's end, and returns the port spec of the
    /// vrouter's end.
    pub fn create(
        config: &HostConfig,
        fabric_ip: Ipv4Addr,
        queues: usize,
        checksum_offload: bool,
    ) -> anyhow::Result<(Self, InterfaceSpec)> {
        let kernel = config.interface.clone();
        let ours = vrouter_end(&kernel);
        // A pair a crashed vrouter left is replaced; an interface of that name that
        // is no such pair (a real Tungsten vhost0, say) is not ours to delete.
        let exists = |name: &str| std::path::Path::new(&format!("/sys/class/net/{name}")).exists();
        if exists(&kernel) {
            if !exists(&ours) {
                bail!("{kernel} exists and is not the vrouter's (no {ours} beside it): set host.interface to another name");
            }
            let _ = Command::new("ip").args(["link", "del", &kernel]).output();
        }
        let q = queues.max(1).to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                &kernel,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &ours,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ],
        )?;
        let mut host = Self {
            kernel: kernel.clone(),
            reserved_before: None,
            forwarding_before: None,
            rp_filter_before: None,
        };
        sysctl(&format!("net.ipv4.conf.{kernel}.accept_local"), "1")?;
        sysctl(&format!("net.ipv4.conf.{kernel}.rp_filter"), "0")?;
        // The kernel takes the larger of "all" and the interface's: strict on "all"
        // would drop the replies from node ports; loose keeps the node's checks.
        if read_sysctl("net.ipv4.conf.all.rp_filter").as_deref() == Some("1") {
            tracing::warn!("net.ipv4.conf.all.rp_filter 1 (strict) set to 2 (loose): replies from node ports enter through {kernel}");
            sysctl("net.ipv4.conf.all.rp_filter", "2")?;
            host.rp_filter_before = Some("1".into());
        }
        host.forwarding_before = read_sysctl("net.ipv4.ip_forward");
        sysctl("net.ipv4.ip_forward", "1")?;
        for end in [&kernel, &ours] {
            sysctl(&format!("net.ipv6.conf.{end}.disable_ipv6"), "1")?;
        }
        let tx = if checksum_offload { "on" } else { "off" };
        run("ethtool", &["-K", &kernel, "tx", tx, "tso", "off", "gso", tx])?;
        for end in [&kernel, &ours] {
            run("ip", &["link", "set", end, "up"])?;
        }
        // Through a gateway the vrouter answers for, as pods route: the kernel then
        // resolves one neighbour, not every pod and service address.
        let (source, gateway) = (fabric_ip.to_string(), GATEWAY.to_string());
        for prefix in &config.routes {
            let prefix = prefix.trunc().to_string();
            let route = [
                "route", "replace", &prefix, "via", &gateway, "dev", &kernel, "onlink", "src", &source,
            ];
            run("ip", &route)?;
        }
        if config.snat {
            // The kernel's own connections must not take a port whose replies the
            // fabric program sends to the vrouter.
            let before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
                .context("reading the kernel's reserved ports")?;
            // Ranges a crashed vrouter left (the kernel may have merged them) are not
            // the node's own: they are not kept as what to give back.
            let ours = [config.snat_tcp_ports, config.snat_udp_ports];
            let before: Vec<&str> = before
                .trim()
                .split(',')
                .filter(|r| !r.is_empty() && !inside(r, ours))
                .collect();
            let before = before.join(",");
            let ranges = ours.map(|[a, b]| format!("{a}-{b}"));
            let all: Vec<&str> = before
                .split(',')
                .filter(|r| !r.is_empty())
                .chain(ranges.iter().map(String::as_str))
                .collect();
            sysctl(RESERVED_PORTS, &all.join(","))?;
            host.reserved_before = Some(before);
        }
        let mac: MacAddr = std::fs::read_to_string(format!("/sys/class/net/{kernel}/address"))
            .with_context(|| format!("reading {kernel}'s MAC"))?
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{kernel}'s MAC: {e}"))?;
        let spec = InterfaceSpec {
            name: ours,
            vrf: config.vrf.clone(),
            mac,
            ipv4: Some(fabric_ip),
            gateway4: Some(GATEWAY),
            ..InterfaceSpec::default()
        };
        Ok((host, spec))
    }
}

impl Drop for HostInterface {
    fn drop(&mut self) {
        // The routes go with the interface.
        let _ = Command::new("ip").args(["link", "del", &self.kernel]).output();
        if let Some(before) = &self.rp_filter_before {
            let _ = sysctl("net.ipv4.conf.all.rp_filter", before);
        }
        if let Some(before) = &self.forwarding_before {
            let _ = sysctl("net.ipv4.ip_forward", before);
        }
        if let Some(before) = &self.reserved_before {
            let _ = sysctl(RESERVED_PORTS, if before.is_empty() { "\n" } else { before });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn ranges_a_crashed_vrouter_left_are_recognised_merged_or_not() {
        let ours = [[57_000, 60_999], [61_000, 64_999]];
        assert!(inside("57000-60999", ours));
        assert!(inside("61000-64999", ours));
        assert!(inside("57000-64999", ours), "the kernel merges touching ranges");
        assert!(inside("58000", ours));
        assert!(!inside("56000-57500", ours));
        assert!(!inside("8080", ours));
        assert!(!inside("x-1", ours));
        assert!(
            !inside("57000-64999", [[57_000, 58_000], [61_000, 64_999]]),
            "a gap is not ours"
        );
    }
}
