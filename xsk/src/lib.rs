//! AF_XDP packet I/O for the vrouter: the one crate of the daemon with `unsafe` code
//! (every block with its `// SAFETY:` comment); the daemon itself forbids it.
//!
//! - [`FramePool`]: one UMEM per worker, shared by all of that worker's sockets, so a
//!   frame received on one port is transmitted on another without a copy. Every frame
//!   has a recorded owner (free, or the socket whose ring holds it), so removing a port
//!   returns its frames to the pool.
//! - [`PortSocket`]: one AF_XDP socket on one queue of one interface, with its own
//!   fill and completion rings (XDP_SHARED_UMEM across devices, Linux 5.10+).
//! - [`XdpAttachment`]: the steering program attached to an interface through a BPF
//!   link, so a crashed vrouter leaves nothing attached.
//!
//! The first socket of a worker (the anchor) must stay bound for the UMEM to be
//! shared; it is bound on the fabric interface, which lives as long as the vrouter.

#![deny(unsafe_op_in_unsafe_fn)]

mod pool;
mod sink;
mod socket;
mod xdp;

pub use pool::{request_tx_checksum, FramePool, FRAME_SIZE, TX_METADATA_LEN, XDP_TX_METADATA};
pub use sink::CountingSink;
pub use socket::{continues, KernelStats, PortSocket, RxBatch, XDP_PKT_CONTD};
pub use xdp::{steering_object, Claim, FabricClaims, PortKind, XdpAttachment, XdpError};

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (veth supports it).
    Native,
    /// In the generic (skb) path; works on every device, slower.
    Generic,
}

/// Sleeps until one of `fds` is readable or `timeout_ms` passes (the adaptive
/// worker's idle wait).
pub fn wait_readable(fds: &[std::os::fd::RawFd], timeout_ms: i32) {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid, exclusively borrowed array of `pfds.len()` entries for
    // the duration of the call; poll only writes their `revents`.
    unsafe {
        libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms);
    }
}
