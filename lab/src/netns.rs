//! Network namespaces and commands run in them, removed when dropped (also when a
//! test fails and unwinds).

use anyhow::{bail, Context};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// A name no other run uses: prefix, process id, sequence number.
pub fn unique_name(role: &str) -> String {
    format!(
        "vrlab{}-{}-{role}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command, failing with its stderr if it exits non-zero.
pub fn run_checked(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (is it installed? scripts/setup.sh installs it)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `unique_name(role)` with loopback up.
    pub fn create(role: &str) -> anyhow::Result<Self> {
        let name = unique_name(role);
        run_checked("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `program args` inside the namespace; fails on a non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run_checked("ip", &full)
    }

    /// Runs `program args` inside the namespace; returns whether it exited 0.
    pub fn succeeds(&self, program: &str, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.exec("ip", args)
    }

    /// A command prepared to run in the namespace (for long-running children).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// True if `ifname` in this namespace has an XDP program attached.
    pub fn has_xdp_program(&self, ifname: &str) -> bool {
        self.ip(&["-d", "link", "show", "dev", ifname])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("prog/xdp"))
            .unwrap_or(false)
    }

    /// Moves the calling thread into this namespace (for sockets opened afterwards).
    /// Use it on a thread made for that purpose.
    pub fn enter(&self) -> anyhow::Result<()> {
        enter_by_name(&self.name)
    }
}

/// Moves the calling thread into the named namespace.
pub fn enter_by_name(name: &str) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(format!("/var/run/netns/{name}")).with_context(|| format!("opening netns {name}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).with_context(|| format!("setns into {name}"))?;
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Its resolv.conf, if a runtime wrote one (`ip netns exec` reads it there).
        let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&self.name));
        // Killing what still runs inside lets the namespace (and its veths) go away.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse::<i32>() {
                        let _ =
                            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
                    }
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
