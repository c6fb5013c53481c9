//! One AF_XDP socket on one interface queue, with its four rings.

use super::pool::FramePool;
use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::RawFd;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, User};

/// Kernel-side counters of a socket (XDP_STATISTICS).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames the kernel dropped because the RX ring was full or it had no buffer.
    pub rx_dropped: u64,
    /// Times the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub fill_ring_empty: u64,
    /// Times the kernel found the TX ring empty when woken.
    pub tx_ring_empty: u64,
}

/// An AF_XDP socket bound to `(ifindex, queue)`, sharing its worker's UMEM.
pub struct PortSocket {
    // Rings before the user handle: all hold the socket fd open.
    device: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    user: User,
    /// Slot of this socket in its worker (frame owner id).
    slot: u16,
    /// Interface queue it is bound to.
    pub queue: u32,
    fd: RawFd,
    tx_outstanding: u32,
    ring_size: u32,
}

impl std::fmt::Debug for PortSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortSocket")
            .field("slot", &self.slot)
            .field("queue", &self.queue)
            .field("fd", &self.fd)
            .finish()
    }
}

/// How long a bind waits for a queue's previous socket to be released.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

fn errno(what: &str, ifname: &str, queue: u32, e: xdpilone::Errno) -> std::io::Error {
    let io = std::io::Error::from_raw_os_error(e.get_raw());
    std::io::Error::new(io.kind(), format!("{what} on {ifname} queue {queue}: {io}"))
}

/// Received descriptors of one poll, to be processed and then given back or sent on.
pub type RxBatch = Vec<XdpDesc>;

impl PortSocket {
    /// Opens a socket on `ifname` queue `queue` in `pool`'s UMEM, its fill ring
    /// given `fill` frames. The first socket of a pool (`anchor`) uses the UMEM's own
    /// fd and must outlive the others.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        pool: &mut FramePool,
        ifname: &str,
        queue: u32,
        ring_size: u32,
        fill: u32,
        slot: u16,
        anchor: bool,
    ) -> std::io::Result<Self> {
        let cname = CString::new(ifname).map_err(|_| std::io::Error::other("interface name has a NUL byte"))?;
        let mut info = IfInfo::invalid();
        info.from_name(&cname)
            .map_err(|e| errno("if_nametoindex", ifname, queue, e))?;
        info.set_queue(queue);
        let umem = pool.umem();
        let sock = if anchor {
            Socket::with_shared(&info, umem)
        } else {
            Socket::new(&info)
        }
        .map_err(|e| errno("socket", ifname, queue, e))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(|e| errno("fill/completion rings", ifname, queue, e))?;
        let ring = NonZeroU32::new(ring_size);
        let config = SocketConfig {
            rx_size: ring,
            tx_size: ring,
            // Sockets sharing the UMEM inherit its mode; the kernel refuses flags on them.
            bind_flags: if anchor {
                SocketConfig::XDP_BIND_NEED_WAKEUP | SocketConfig::XDP_BIND_COPY
            } else {
                0
            },
        };
        let user = umem
            .rx_tx(&sock, &config)
            .map_err(|e| errno("rx/tx rings", ifname, queue, e))?;
        let rx = user.map_rx().map_err(|e| errno("mmap rx ring", ifname, queue, e))?;
        let tx = user.map_tx().map_err(|e| errno("mmap tx ring", ifname, queue, e))?;
        // A queue whose previous socket was closed a moment ago (a port detached and
        // attached again) answers EBUSY until the kernel has released that socket's
        // pool: wait for it, briefly, rather than fail the attach.
        let deadline = std::time::Instant::now() + BIND_BUSY_WAIT;
        loop {
            match umem.bind(&user) {
                Ok(()) => break,
                Err(e) if e.get_raw() == libc::EBUSY && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(errno("bind", ifname, queue, e)),
            }
        }
        let fd = rx.as_raw_fd();
        let mut socket = Self {
            device,
            rx,
            tx,
            user,
            slot,
            queue,
            fd,
            tx_outstanding: 0,
            ring_size,
        };
        socket.refill(pool, fill);
        Ok(socket)
    }

    /// The socket's fd, for the XSK map.
    pub fn raw_fd(&self) -> RawFd {
        self.fd
    }

    /// Frame-owner slot.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// Tops the fill ring up to `target` frames from the pool; the frames it holds
    /// then.
    #[inline]
    pub fn refill(&mut self, pool: &mut FramePool, target: u32) -> u32 {
        let pending = self.device.pending();
        let want = target.min(self.ring_size).saturating_sub(pending);
        if want == 0 {
            return pending;
        }
        let slot = self.slot;
        let mut writer = self.device.fill(want);
        let mut n = 0;
        while n < want {
            let Some(addr) = pool.take_for(slot) else {
                break;
            };
            if !writer.insert_once(addr) {
                pool.release(addr);
                break;
            }
            n += 1;
        }
        writer.commit();
        pending + n
    }

    /// Moves up to `max` received descriptors into `out`; the frames become held by
    /// the worker.
    #[inline]
    pub fn receive(&mut self, pool: &mut FramePool, max: u32, out: &mut RxBatch) {
        let mut reader = self.rx.receive(max);
        while let Some(desc) = reader.read() {
            pool.hold(desc.addr);
            out.push(desc);
        }
        reader.release();
    }

    /// Queues frames for transmission; returns how many were accepted. The caller
    /// frees the rest.
    #[inline]
    pub fn transmit(&mut self, pool: &mut FramePool, descs: &[XdpDesc]) -> usize {
        let mut writer = self.tx.transmit(descs.len() as u32);
        let mut n = 0;
        for d in descs {
            if !writer.insert_once(*d) {
                break;
            }
            pool.set_owner(d.addr, self.slot);
            n += 1;
        }
        writer.commit();
        drop(writer);
        self.tx_outstanding += n as u32;
        n
    }

    /// Kicks the kernel if it asked to be woken for TX (always, in copy mode). In
    /// copy mode one wake-up sends at most 32 frames (the kernel's TX_BATCH_SIZE), so
    /// it repeats until the kernel has taken everything queued, within a bound.
    #[inline]
    pub fn kick_tx(&self) {
        if self.tx_outstanding == 0 {
            return;
        }
        let mut rounds = self.ring_size / 32 + 1;
        while rounds > 0 && self.tx.needs_wakeup() && self.tx.pending() > 0 {
            self.tx.wake();
            rounds -= 1;
        }
    }

    /// Returns completed TX frames to the pool.
    #[inline]
    pub fn reap(&mut self, pool: &mut FramePool) {
        if self.tx_outstanding == 0 {
            return;
        }
        let mut reader = self.device.complete(self.ring_size);
        while let Some(addr) = reader.read() {
            pool.release(addr);
            self.tx_outstanding = self.tx_outstanding.saturating_sub(1);
        }
        reader.release();
    }

    /// Kernel counters (a getsockopt: not for the per-packet path).
    pub fn kernel_stats(&self) -> KernelStats {
        self.user
            .statistics_v2()
            .map(|s| KernelStats {
                rx_dropped: s.rx_dropped,
                rx_ring_full: s.rx_ring_full,
                fill_ring_empty: s.rx_fill_ring_empty_descs,
                tx_ring_empty: s.tx_ring_empty_descs,
            })
            .unwrap_or_default()
    }

    /// Closes the socket and returns every frame its rings held to the pool.
    pub fn close(self, pool: &mut FramePool) -> usize {
        let slot = self.slot;
        drop(self);
        pool.reclaim(slot)
    }
}
