//! The per-worker UMEM and its frame ownership table.

use std::ptr::NonNull;
use xdpilone::{Umem, UmemConfig};

/// Bytes per UMEM frame. Received packets start 256 bytes in (the kernel's
/// XDP_PACKET_HEADROOM), which leaves room for answers and encapsulation headers.
pub const FRAME_SIZE: u32 = 4096;
/// Bytes before a transmitted frame's address that hold its `struct xsk_tx_metadata`
/// (`tx_metadata_len`): the 24 bytes of Linux 6.14+'s layout (flags, then the
/// checksum request's start and offset, then a launch time). Linux 6.11-6.13's
/// 16-byte layout puts flags and the request at the same places.
pub const TX_METADATA_LEN: usize = 24;
/// `XDP_UMEM_TX_METADATA_LEN`: the kernel is to honour `tx_metadata_len`.
const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;
/// Descriptor option `XDP_TX_METADATA`: the frame's metadata is valid.
pub const XDP_TX_METADATA: u32 = 1 << 1;
/// `XDP_TXMD_FLAGS_CHECKSUM`: the kernel (or the device) completes a checksum.
const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;

/// Writes a checksum request into `room`, the [`TX_METADATA_LEN`] bytes right before
/// a frame: the kernel is to sum the frame from byte `start` to its end and store the
/// result at `start + offset` (the field holding the pseudo-header's sum, as for a
/// device's checksum offload: `CHECKSUM_PARTIAL`). Give the frame's descriptor
/// [`XDP_TX_METADATA`].
#[inline]
pub fn request_tx_checksum(room: &mut [u8; TX_METADATA_LEN], start: u16, offset: u16) {
    room[..8].copy_from_slice(&XDP_TXMD_FLAGS_CHECKSUM.to_ne_bytes());
    room[8..10].copy_from_slice(&start.to_ne_bytes());
    room[10..12].copy_from_slice(&offset.to_ne_bytes());
}

/// Owner value of a frame the worker holds (being processed, or being built).
const OWNER_NONE: u16 = u16::MAX;
/// Owner value of a frame in the free list. Socket slots are below both.
pub(super) const OWNER_FREE: u16 = u16::MAX - 1;

/// Anonymous memory mapped for a UMEM; unmapped on drop.
#[derive(Debug)]
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint touches no existing
        // memory; the result is checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped once. The
        // kernel keeps its own pin on pages still registered with a socket.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A worker's UMEM: frames, the free list and who holds each frame.
pub struct FramePool {
    // Field order is drop order: the UMEM socket closes before the memory is unmapped.
    umem: Umem,
    /// True if every frame sent has [`TX_METADATA_LEN`] bytes of room before it.
    tx_metadata: bool,
    area: Area,
    free: Vec<u64>,
    owner: Vec<u16>,
    /// Releases of a frame already free, ignored (each would have put it in the free
    /// list twice, to be handed out to two users at once).
    double_releases: u64,
}

impl std::fmt::Debug for FramePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePool")
            .field("frames", &self.owner.len())
            .field("free", &self.free.len())
            .field("tx_metadata", &self.tx_metadata)
            .field("double_releases", &self.double_releases)
            .finish()
    }
}

// SAFETY: the pool owns its mapping exclusively; moving it to the worker thread that
// will use it moves that ownership. It is never shared between threads.
unsafe impl Send for FramePool {}

impl FramePool {
    /// Maps `frames` frames and registers them as a UMEM with fill and completion
    /// rings of `ring_size` entries per device queue; with room for transmit
    /// metadata before every frame sent if `tx_metadata` and the kernel has it
    /// (Linux 6.11+; [`FramePool::tx_metadata`] tells).
    pub fn new(frames: u32, ring_size: u32, tx_metadata: bool) -> std::io::Result<Self> {
        let len = frames as usize * FRAME_SIZE as usize;
        let area = Area::new(len)?;
        let config = |metadata: bool| UmemConfig {
            fill_size: ring_size,
            complete_size: ring_size,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: if metadata { XDP_UMEM_TX_METADATA_LEN } else { 0 },
            tx_metadata_len: if metadata { TX_METADATA_LEN as u32 } else { 0 },
        };
        let slice = NonNull::slice_from_raw_parts(area.ptr, len);
        let register = |metadata: bool| {
            // SAFETY: `slice` is a page-aligned mapping of exactly `len` bytes that lives
            // in `self.area`, which is dropped after `self.umem`; a registration that
            // fails leaves no socket behind.
            unsafe { Umem::new(config(metadata), slice) }
        };
        // A kernel without the flag (before 6.11) refuses it: register without.
        let (umem, tx_metadata) = match register(tx_metadata) {
            Err(e) if tx_metadata && e.get_raw() == libc::EINVAL => (register(false), false),
            other => (other, tx_metadata),
        };
        let umem = umem.map_err(|e| std::io::Error::from_raw_os_error(e.get_raw()))?;
        Ok(Self {
            umem,
            tx_metadata,
            area,
            free: (0..u64::from(frames))
                .rev()
                .map(|i| i * u64::from(FRAME_SIZE))
                .collect(),
            owner: vec![OWNER_FREE; frames as usize],
            double_releases: 0,
        })
    }

    /// True if the UMEM was registered with room for transmit metadata: every frame
    /// sent then starts at least [`TX_METADATA_LEN`] bytes into its chunk, and one
    /// may carry a checksum request ([`request_tx_checksum`]).
    pub fn tx_metadata(&self) -> bool {
        self.tx_metadata
    }

    pub(super) fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Frames in the free list.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Total frames.
    pub fn frame_count(&self) -> usize {
        self.owner.len()
    }

    /// Takes a free frame (its base address), marking it held by socket `slot`.
    #[inline]
    pub(super) fn take_for(&mut self, slot: u16) -> Option<u64> {
        let addr = self.free.pop()?;
        self.owner[(addr / u64::from(FRAME_SIZE)) as usize] = slot;
        Some(addr)
    }

    /// Takes a free frame for the worker's own use (building a packet); its base
    /// address.
    #[inline]
    pub fn take(&mut self) -> Option<u64> {
        self.take_for(OWNER_NONE)
    }

    /// Records that the frame containing `addr` is now held by socket `slot`.
    #[inline]
    pub(super) fn set_owner(&mut self, addr: u64, slot: u16) {
        if let Some(o) = self.owner.get_mut((addr / u64::from(FRAME_SIZE)) as usize) {
            *o = slot;
        }
    }

    /// Returns the frame containing `addr` to the free list. A frame already free
    /// stays there once (counted: [`FramePool::double_releases`]); an address
    /// outside the UMEM is ignored.
    #[inline]
    pub fn release(&mut self, addr: u64) {
        let idx = (addr / u64::from(FRAME_SIZE)) as usize;
        match self.owner.get_mut(idx) {
            Some(o) if *o == OWNER_FREE => self.double_releases += 1,
            Some(o) => {
                *o = OWNER_FREE;
                self.free.push(idx as u64 * u64::from(FRAME_SIZE));
            }
            None => {}
        }
    }

    /// Releases of a frame that was already free, which [`FramePool::release`]
    /// ignored: a caller's bug, which would otherwise have had one frame in two
    /// packets at once.
    pub fn double_releases(&self) -> u64 {
        self.double_releases
    }

    /// Marks a frame just taken from a ring as held by the worker.
    #[inline]
    pub(super) fn hold(&mut self, addr: u64) {
        self.set_owner(addr, OWNER_NONE);
    }

    /// Returns every frame socket `slot` held (its rings are gone) to the free list.
    pub(super) fn reclaim(&mut self, slot: u16) -> usize {
        let mut n = 0;
        for (idx, o) in self.owner.iter_mut().enumerate() {
            if *o == slot {
                *o = OWNER_FREE;
                self.free.push(idx as u64 * u64::from(FRAME_SIZE));
                n += 1;
            }
        }
        n
    }

    /// The whole frame containing `addr`, writable, if the worker holds it (taken
    /// from an RX ring or the free list, not given to a ring or back to the free
    /// list); `None` otherwise.
    #[inline]
    pub fn frame_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let idx = (addr / u64::from(FRAME_SIZE)) as usize;
        if idx >= self.owner.len() || self.owner[idx] != OWNER_NONE {
            return None;
        }
        let base = idx * FRAME_SIZE as usize;
        // SAFETY: `base + FRAME_SIZE <= area.len` because `idx < frames`. The owner table
        // says no ring holds this frame, so the kernel does not touch it, and `&mut self`
        // makes this the only reference the worker has into the area.
        // SAFETY: `base < area.len`, so the offset stays inside the mapping.
        let start = unsafe { self.area.ptr.as_ptr().add(base) };
        // SAFETY: see above; the slice ends at `base + FRAME_SIZE <= area.len`.
        Some(unsafe { std::slice::from_raw_parts_mut(start, FRAME_SIZE as usize) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_released_twice_is_free_once_and_a_free_frame_is_not_writable() {
        // Needs AF_XDP (root): the UMEM is registered with the kernel.
        let mut pool = FramePool::new(4, 4, false).expect("a UMEM");
        let a = pool.take().unwrap();
        assert!(pool.frame_mut(a).is_some(), "a frame taken is the worker's");
        assert_eq!(pool.free_count(), 3);
        pool.release(a + 100);
        pool.release(a);
        assert_eq!((pool.free_count(), pool.double_releases()), (4, 1));
        assert!(pool.frame_mut(a).is_none(), "a free frame is no one's to write");
        // Four different frames come out, none twice.
        let taken: std::collections::HashSet<u64> = (0..4).map(|_| pool.take().unwrap()).collect();
        assert_eq!(taken.len(), 4);
        assert_eq!(pool.take(), None);
        pool.release(u64::from(FRAME_SIZE) * 100);
        assert_eq!(pool.free_count(), 0, "an address outside the UMEM is ignored");
    }
}
