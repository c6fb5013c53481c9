//! Open vSwitch as a device under test: its userspace datapath (`netdev`) with AF_XDP
//! ports and a VXLAN tunnel, the setup the field compares DPDK-style vrouters with.
//!
//! Each instance has its own database, sockets and logs in a private directory and
//! runs inside the node's namespace, so that it never meets the machine's own Open
//! vSwitch (if any) or another run; dropping it stops both daemons.

use crate::netns::{run_checked, Netns};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// A running ovsdb-server + ovs-vswitchd pair.
#[derive(Debug)]
pub struct OpenVswitch {
    dir: PathBuf,
}

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Whether Debian's openvswitch-switch is installed.
pub fn installed() -> bool {
    Path::new(SCHEMA).exists() && Path::new("/usr/sbin/ovs-vswitchd").exists()
}

impl OpenVswitch {
    /// Starts the daemons in `ns`, with their polling (PMD) thread on `core`.
    pub fn start(ns: &Netns, core: usize) -> anyhow::Result<OpenVswitch> {
        let dir = std::env::temp_dir().join(format!("{}-ovs", ns.name()));
        std::fs::create_dir_all(&dir)?;
        let ovs = OpenVswitch { dir };
        let path = |f: &str| ovs.dir.join(f).display().to_string();
        run_checked("ovsdb-tool", &["create", &path("conf.db"), SCHEMA])?;
        ovs.daemon(
            ns,
            "ovsdb-server",
            &[
                &path("conf.db"),
                &format!("--remote=punix:{}", path("db.sock")),
                &format!("--pidfile={}", path("ovsdb.pid")),
                &format!("--log-file={}", path("ovsdb.log")),
                "--detach",
                "--no-chdir",
            ],
        )?;
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("other_config:pmd-cpu-mask={:#x}", 1u64 << core),
        ])?;
        ovs.daemon(
            ns,
            "ovs-vswitchd",
            &[
                &format!("unix:{}", path("db.sock")),
                &format!("--pidfile={}", path("vswitchd.pid")),
                &format!("--log-file={}", path("vswitchd.log")),
                "--detach",
                "--no-chdir",
            ],
        )?;
        Ok(ovs)
    }

    fn daemon(&self, ns: &Netns, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = ns
            .command(program)
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_SYSCONFDIR", &self.dir)
            .output()
            .with_context(|| format!("starting {program}"))?;
        anyhow::ensure!(
            out.status.success(),
            "{program} did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Runs `ovs-vsctl` against this instance.
    pub fn vsctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let db = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let mut all = vec![db.as_str(), "--timeout=20"];
        all.extend_from_slice(args);
        Ok(String::from_utf8_lossy(&run_checked("ovs-vsctl", &all)?.stdout).into_owned())
    }

    /// Adds `port` (a Linux interface) to `bridge` as an AF_XDP port in native mode
    /// with one receive queue.
    pub fn add_afxdp_port(&self, bridge: &str, port: &str) -> anyhow::Result<()> {
        self.vsctl(&[
            "add-port",
            bridge,
            port,
            "--",
            "set",
            "interface",
            port,
            "type=afxdp",
            "options:xdp-mode=native",
            "options:n_rxq=1",
        ])?;
        Ok(())
    }

    /// Runs `ovs-ofctl` on `bridge` (OpenFlow 1.5, for select groups).
    pub fn ofctl(&self, command: &str, bridge: &str, args: &[&str]) -> anyhow::Result<String> {
        let target = self.dir.join(format!("{bridge}.mgmt")).display().to_string();
        let mut all = vec!["-O", "OpenFlow15", command, target.as_str()];
        all.extend_from_slice(args);
        Ok(String::from_utf8_lossy(&run_checked("ovs-ofctl", &all)?.stdout).into_owned())
    }

    /// Runs `ovs-appctl` against the switch daemon.
    pub fn appctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let pid = std::fs::read_to_string(self.dir.join("vswitchd.pid"))?;
        let target = self
            .dir
            .join(format!("ovs-vswitchd.{}.ctl", pid.trim()))
            .display()
            .to_string();
        let mut all = vec!["-t", target.as_str()];
        all.extend_from_slice(args);
        Ok(String::from_utf8_lossy(&run_checked("ovs-appctl", &all)?.stdout).into_owned())
    }

    /// "avg processing cycles per packet" of the first PMD thread since the last
    /// `dpif-netdev/pmd-stats-clear`.
    pub fn processing_cycles_per_packet(&self) -> anyhow::Result<Option<f64>> {
        let stats = self.appctl(&["dpif-netdev/pmd-stats-show"])?;
        Ok(parse_processing_cycles(&stats))
    }
}

/// Reads the PMD thread's "avg processing cycles per packet" from `pmd-stats-show`.
fn parse_processing_cycles(stats: &str) -> Option<f64> {
    let pmd = &stats[stats.find("pmd thread")?..];
    let line = pmd
        .lines()
        .find(|l| l.trim_start().starts_with("avg processing cycles per packet:"))?;
    line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
}

impl Drop for OpenVswitch {
    fn drop(&mut self) {
        for pidfile in ["vswitchd.pid", "ovsdb.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(pidfile)) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    let pid = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                    // Wait (bounded) so that its XDP programs and sockets are gone
                    // before the namespace goes.
                    for _ in 0..100 {
                        if nix::sys::signal::kill(pid, None).is_err() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_processing_cycles_of_the_pmd_thread() {
        let stats = "pmd thread numa_id 0 core_id 1:\n  packets received: 21\n  idle cycles: 5 (99.99%)\n  \
                     avg cycles per packet: 2641113530.10 (55463384132/21)\n  \
                     avg processing cycles per packet: 220751.14 (4635774/21)\nmain thread:\n  \
                     avg processing cycles per packet: 9.00 (9/1)\n";
        assert_eq!(super::parse_processing_cycles(stats), Some(220751.14));
        assert_eq!(super::parse_processing_cycles("main thread:\n"), None);
    }
}
