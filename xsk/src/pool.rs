//! The per-worker UMEM and its frame ownership table.

use std::ptr::NonNull;
use xdpilone::{Umem, UmemConfig};

/// Bytes per UMEM frame. Received packets start 256 bytes in (the kernel's
/// XDP_PACKET_HEADROOM), which leaves room for answers and encapsulation headers.
pub const FRAME_SIZE: u32 = 4096;
/// Owner value of a frame held by the worker (free list, or being processed).
const OWNER_NONE: u16 = u16::MAX;

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
    area: Area,
    free: Vec<u64>,
    owner: Vec<u16>,
}

impl std::fmt::Debug for FramePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePool")
            .field("frames", &self.owner.len())
            .field("free", &self.free.len())
            .finish()
    }
}

// SAFETY: the pool owns its mapping exclusively; moving it to the worker thread that
// will use it moves that ownership. It is never shared between threads.
unsafe impl Send for FramePool {}

impl FramePool {
    /// Maps `frames` frames and registers them as a UMEM with fill and completion
    /// rings of `ring_size` entries per device queue.
    pub fn new(frames: u32, ring_size: u32) -> std::io::Result<Self> {
        let len = frames as usize * FRAME_SIZE as usize;
        let area = Area::new(len)?;
        let config = UmemConfig {
            fill_size: ring_size,
            complete_size: ring_size,
            frame_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
        };
        let slice = NonNull::slice_from_raw_parts(area.ptr, len);
        // SAFETY: `slice` is a page-aligned mapping of exactly `len` bytes that lives in
        // `self.area`, which is dropped after `self.umem`.
        let umem = unsafe { Umem::new(config, slice) }.map_err(|e| std::io::Error::from_raw_os_error(e.get_raw()))?;
        Ok(Self {
            umem,
            area,
            free: (0..u64::from(frames))
                .rev()
                .map(|i| i * u64::from(FRAME_SIZE))
                .collect(),
            owner: vec![OWNER_NONE; frames as usize],
        })
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

    /// Returns the frame containing `addr` to the free list.
    #[inline]
    pub fn release(&mut self, addr: u64) {
        let idx = (addr / u64::from(FRAME_SIZE)) as usize;
        if let Some(o) = self.owner.get_mut(idx) {
            *o = OWNER_NONE;
            self.free.push(idx as u64 * u64::from(FRAME_SIZE));
        }
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
                *o = OWNER_NONE;
                self.free.push(idx as u64 * u64::from(FRAME_SIZE));
                n += 1;
            }
        }
        n
    }

    /// The whole frame containing `addr`, writable. The worker calls this only for
    /// frames it holds (taken from an RX ring, not yet given back to the kernel).
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
