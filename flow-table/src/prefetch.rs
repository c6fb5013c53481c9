//! Cache prefetch hints (the one unsafe operation of this crate).

/// Asks the CPU to start loading the cache line holding `value`.
#[inline(always)]
pub(crate) fn read<T>(value: &T) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: prefetch is a hint with no architectural effect; the pointer comes from a
    // live reference, so it is valid and aligned anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>((value as *const T).cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = value;
}
