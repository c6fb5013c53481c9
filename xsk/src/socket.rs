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
    /// The rest of a chain whose start is in the TX ring.
    tx_partial: Vec<XdpDesc>,
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

/// `XDP_USE_SG`: frames larger than a chunk arrive (and may be sent) as chains of
/// descriptors (Linux 6.6+).
const XDP_USE_SG: u16 = 1 << 4;
/// Descriptor option: the packet continues in the next descriptor.
pub const XDP_PKT_CONTD: u32 = 1;

/// True if `desc` is followed by more of its packet.
#[inline]
pub fn continues(desc: &XdpDesc) -> bool {
    desc.options & XDP_PKT_CONTD != 0
}

/// Send-buffer bytes of a socket: in copy mode every frame sent is an skb charged
/// to the socket until the kernel frees it, a multi-buffer frame a page per chunk.
const SEND_BUFFER: libc::c_int = 16 << 20;

/// Raises the socket's send buffer (as root, beyond `wmem_max`): with the default a
/// few dozen chained frames in flight stall the ring. Best effort: the default
/// still works, slower.
fn raise_send_buffer(fd: RawFd) {
    let value = SEND_BUFFER;
    // SAFETY: `fd` is the socket's open descriptor; the option value is a c_int that
    // lives across the call, passed with its exact size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Binds `user`'s socket. A queue whose previous socket was closed a moment ago (a
/// port detached and attached again) answers EBUSY until the kernel has released
/// that socket's pool: wait for it, briefly, rather than fail the attach.
fn bind(umem: &xdpilone::Umem, user: &User) -> Result<(), xdpilone::Errno> {
    let deadline = std::time::Instant::now() + BIND_BUSY_WAIT;
    loop {
        match umem.bind(user) {
            Err(e) if e.get_raw() == libc::EBUSY && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

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
        if slot >= super::pool::OWNER_FREE {
            return Err(std::io::Error::other(format!("socket slot {slot} is reserved")));
        }
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
        // Sockets sharing the UMEM inherit its mode (scatter-gather included); the
        // kernel refuses flags on them. The anchor asks for scatter-gather and, on a
        // kernel without it (before 6.6: EINVAL), binds without: frames then must fit
        // one chunk.
        let flags = if anchor {
            SocketConfig::XDP_BIND_NEED_WAKEUP | SocketConfig::XDP_BIND_COPY | XDP_USE_SG
        } else {
            0
        };
        let config = SocketConfig {
            rx_size: ring,
            tx_size: ring,
            bind_flags: flags,
        };
        let user = umem
            .rx_tx(&sock, &config)
            .map_err(|e| errno("rx/tx rings", ifname, queue, e))?;
        let rx = user.map_rx().map_err(|e| errno("mmap rx ring", ifname, queue, e))?;
        let tx = user.map_tx().map_err(|e| errno("mmap tx ring", ifname, queue, e))?;
        match bind(umem, &user) {
            Err(e) if e.get_raw() == libc::EINVAL && flags & XDP_USE_SG != 0 => {
                // The rings exist already: only the bind is tried again.
                let without = SocketConfig {
                    rx_size: None,
                    tx_size: None,
                    bind_flags: flags & !XDP_USE_SG,
                };
                let again = umem
                    .rx_tx(&sock, &without)
                    .map_err(|e| errno("rx/tx rings", ifname, queue, e))?;
                bind(umem, &again).map_err(|e| errno("bind", ifname, queue, e))?;
            }
            other => other.map_err(|e| errno("bind", ifname, queue, e))?,
        }
        let fd = rx.as_raw_fd();
        raise_send_buffer(fd);
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
            tx_partial: Vec::new(),
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

    /// Moves up to `max` received descriptors into `out` (more if the last one's
    /// packet continues: a chain is never cut); the frames become held by the worker.
    #[inline]
    pub fn receive(&mut self, pool: &mut FramePool, max: u32, out: &mut RxBatch) {
        let mut want = max;
        loop {
            let before = out.len();
            let mut reader = self.rx.receive(want);
            while let Some(desc) = reader.read() {
                pool.hold(desc.addr);
                out.push(desc);
            }
            reader.release();
            // The kernel makes a chain's descriptors visible together.
            match out.last() {
                Some(last) if continues(last) && out.len() > before => want = 1,
                _ => return,
            }
        }
    }

    /// Queues frames for transmission (a chain's descriptors all but the last marked
    /// [`XDP_PKT_CONTD`]); returns how many descriptors were taken. The caller frees
    /// the rest, which start at a packet boundary: a chain the ring's end cuts is
    /// taken whole, its rest kept here and queued before anything else (the kernel
    /// holds its start until the rest comes).
    #[inline]
    pub fn transmit(&mut self, pool: &mut FramePool, descs: &[XdpDesc]) -> usize {
        if !self.push_partial() {
            return 0;
        }
        let take = self.insert(descs);
        let rest = match take.checked_sub(1).map(|last| continues(&descs[last])) {
            Some(true) => descs[take..]
                .iter()
                .position(|d| !continues(d))
                .map_or(descs.len(), |i| take + i + 1),
            _ => take,
        };
        self.tx_partial.extend_from_slice(&descs[take..rest]);
        for d in &descs[..rest] {
            pool.set_owner(d.addr, self.slot);
        }
        rest
    }

    /// Queues the rest of a cut chain; true once none is left.
    #[inline]
    fn push_partial(&mut self) -> bool {
        if self.tx_partial.is_empty() {
            return true;
        }
        let mut partial = std::mem::take(&mut self.tx_partial);
        let take = self.insert(&partial);
        partial.drain(..take);
        self.tx_partial = partial;
        self.tx_partial.is_empty()
    }

    /// Puts as many of `descs` in the TX ring as it has room for; how many.
    #[inline]
    fn insert(&mut self, descs: &[XdpDesc]) -> usize {
        let mut writer = self.tx.transmit(descs.len() as u32);
        let take = descs.len().min(writer.capacity() as usize);
        for d in &descs[..take] {
            // Within the reserved capacity: cannot fail.
            writer.insert_once(*d);
        }
        writer.commit();
        drop(writer);
        self.tx_outstanding += take as u32;
        take
    }

    /// Kicks the kernel if it asked to be woken for TX (always, in copy mode). In
    /// copy mode one wake-up sends at most 32 frames (the kernel's TX_BATCH_SIZE), so
    /// it repeats until the kernel has taken everything queued, within a bound; the
    /// rest of a cut chain goes in as room frees.
    #[inline]
    pub fn kick_tx(&mut self) {
        self.push_partial();
        if self.tx_outstanding == 0 {
            return;
        }
        let mut rounds = self.ring_size / 32 + 1;
        while rounds > 0 && self.tx.needs_wakeup() && (self.tx.pending() > 0 || !self.tx_partial.is_empty()) {
            self.tx.wake();
            self.push_partial();
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
