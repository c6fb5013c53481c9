//! The table's arrays, backed by transparent huge pages where the kernel offers them.
//!
//! A table of millions of entries spans hundreds of megabytes, and every packet
//! touches a random bucket and entry: with 4 KiB pages nearly every access also
//! misses the TLB and walks page tables (twice over in a virtual machine). 2 MiB
//! pages cut the walks by 512; DPDK gets the same from hugetlbfs, this needs no setup
//! beyond `transparent_hugepage` in `madvise` or `always` mode (Debian's default).

/// A boxed slice of `len` values from `make`, its memory advised as huge pages
/// before the values are written (so the first touch faults in huge pages).
pub(crate) fn boxed_slice<T>(len: usize, make: impl FnMut() -> T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(v.as_ptr().cast(), len * std::mem::size_of::<T>());
    v.extend(std::iter::repeat_with(make).take(len));
    v.into_boxed_slice()
}

#[cfg(all(target_os = "linux", not(loom)))]
#[allow(unsafe_code)]
fn advise_huge_pages(start: *const u8, len: usize) {
    const PAGE: usize = 4096;
    let begin = (start as usize).div_ceil(PAGE) * PAGE;
    let end = (start as usize + len) / PAGE * PAGE;
    if end > begin {
        // SAFETY: [begin, end) lies inside the vector's allocation (rounded inwards to
        // whole pages), which this process owns and which outlives the call.
        // MADV_HUGEPAGE changes only how the kernel backs those pages, never their
        // contents; a failure (huge pages disabled) leaves normal pages, so the result
        // is ignored.
        let _ = unsafe { libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
fn advise_huge_pages(_start: *const u8, _len: usize) {}
