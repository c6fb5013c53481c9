//! Interfaces changing under the vrouter, as the kernel announces them: a thread
//! listens to rtnetlink's link group (`RTNLGRP_LINK`: every interface created,
//! changed or deleted) and wakes the control task, which checks its attached ports
//! against the kernel at once (a pod's veth deleted without `vif delete` is detached
//! within milliseconds, not at the next periodic check).
//!
//! A message is only a wake-up: what is true is read from the kernel by the control
//! task (each port's interface index), so a lost or overflowed message (`ENOBUFS`)
//! costs nothing but latency, and the periodic check still runs behind it.

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use nix::sys::time::TimeVal;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// rtnetlink's link multicast group as a bind mask (`RTMGRP_LINK`).
const RTMGRP_LINK: u32 = 1;
/// How often the thread looks at its stop flag while no message arrives.
const STOP_POLL: Duration = Duration::from_millis(250);

/// The running watcher; dropping it stops the thread (within a quarter second).
#[derive(Debug)]
pub struct LinkWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the watcher: `changed` runs on its thread after each batch of link
/// messages (it should be cheap and non-blocking: post a wake-up).
pub fn spawn(changed: impl Fn() + Send + 'static) -> anyhow::Result<LinkWatch> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .context("rtnetlink socket")?;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, RTMGRP_LINK)).context("rtnetlink: joining the link group")?;
    let timeout = TimeVal::new(0, STOP_POLL.as_micros() as i64);
    socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &timeout).context("rtnetlink receive timeout")?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("vrouter-links".into())
        .spawn(move || {
            // Large enough for a burst of link messages (each well under 2 KiB).
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(Ordering::Relaxed) {
                match socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                    // Overflowed: messages were lost, which a check covers all the same.
                    Ok(_) | Err(Errno::ENOBUFS) => changed(),
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(e) => {
                        tracing::warn!(
                            "rtnetlink link watch stopped ({e}); vanished ports are found by the periodic check"
                        );
                        return;
                    }
                }
            }
        })
        .context("link watch thread")?;
    Ok(LinkWatch { stop })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Needs root (a veth pair is created and deleted); skipped otherwise.
    #[test]
    fn a_deleted_interface_wakes_the_watcher() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let (tx, rx) = mpsc::channel();
        let _watch = spawn(move || {
            let _ = tx.send(());
        })
        .unwrap();
        let ip = |args: &[&str]| std::process::Command::new("ip").args(args).status().unwrap().success();
        /// Deletes the link even when the test fails.
        struct Link(String);
        impl Drop for Link {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
            }
        }
        let link = Link(format!("vrlw{}", std::process::id() % 100_000));
        let name = link.0.clone();
        let peer = format!("{name}p");
        assert!(ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a wake-up for the new link");
        while rx.try_recv().is_ok() {}
        assert!(ip(&["link", "del", &name]));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a wake-up for the deleted link");
    }
}
