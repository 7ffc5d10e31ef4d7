//! The C memory functions the prebuilt `core`/`alloc` leave to libc (`rep movsb`/`stosb`/
//! `cmpsb`, written in asm so the compiler cannot turn them into calls to themselves), and
//! safe, bounds-checked wrappers the self-tests use to exercise them.

use core::arch::asm;
use core::ffi::c_void;

/// Copies `n` bytes from `src` to `dest` (non-overlapping).
///
/// # Safety
/// `src` must be valid for `n` reads, `dest` for `n` writes, and the ranges must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: the caller guarantees both ranges; `rep movsb` copies exactly `n` bytes
    // forwards (the direction flag is clear by the ABI).
    unsafe {
        asm!(
            "rep movsb",
            inout("rdi") dest => _,
            inout("rsi") src => _,
            inout("rcx") n => _,
            options(nostack, preserves_flags)
        );
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// `src` must be valid for `n` reads and `dest` for `n` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    let (d, s) = (dest as usize, src as usize);
    if d <= s || d >= s.wrapping_add(n) {
        // Forward copy is safe: the destination starts before the source or past its end.
        // SAFETY: the caller guarantees both ranges; a forward copy never reads a byte it
        // already overwrote in this case.
        unsafe { memcpy(dest, src, n) }
    } else {
        // Backward copy: from the last byte down, with the direction flag set, then cleared.
        // SAFETY: the caller guarantees both ranges; n > 0 here (d > s and d < s + n), so
        // the last-byte pointers are inside them; DF is restored by `cld`.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rdi") d + n - 1 => _,
                inout("rsi") s + n - 1 => _,
                inout("rcx") n => _,
                options(nostack)
            );
        }
        dest
    }
}

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// `dest` must be valid for `n` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut c_void, c: i32, n: usize) -> *mut c_void {
    // SAFETY: the caller guarantees the range; `rep stosb` writes exactly `n` bytes.
    unsafe {
        asm!(
            "rep stosb",
            inout("rdi") dest => _,
            inout("rcx") n => _,
            in("al") c as u8,
            options(nostack, preserves_flags)
        );
    }
    dest
}

/// Compares `n` bytes: <0, 0 or >0 as the first differing byte (unsigned) of `a` is below,
/// equal to or above that of `b`.
///
/// # Safety
/// `a` and `b` must be valid for `n` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let (pa, pb): (usize, usize);
    // SAFETY: the caller guarantees both ranges; `repe cmpsb` reads at most `n` bytes of
    // each and stops after the first difference, leaving RSI/RDI one past it.
    unsafe {
        asm!(
            "repe cmpsb",
            inout("rsi") a => pa,
            inout("rdi") b => pb,
            inout("rcx") n => _,
            options(readonly, nostack)
        );
    }
    // SAFETY: n > 0, so at least one byte was compared and pa - 1, pb - 1 are inside the
    // ranges: the last pair compared (equal if no difference was found).
    let (x, y) = unsafe { (*((pa - 1) as *const u8), *((pb - 1) as *const u8)) };
    i32::from(x) - i32::from(y)
}

/// Compares `n` bytes for equality only (0 when equal).
///
/// # Safety
/// `a` and `b` must be valid for `n` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const c_void, b: *const c_void, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// `memcpy` of `src` into the start of `dest`; false (nothing copied) when `dest` is shorter.
pub fn copy(dest: &mut [u8], src: &[u8]) -> bool {
    if dest.len() < src.len() {
        return false;
    }
    // SAFETY: both ranges are inside live slices, and `&mut`/`&` cannot overlap.
    unsafe { memcpy(dest.as_mut_ptr().cast(), src.as_ptr().cast(), src.len()) };
    true
}

/// `memmove` of `buf[src..src + len]` to `buf[dst..dst + len]`; false (nothing moved) when a
/// range is outside `buf`.
pub fn move_within(buf: &mut [u8], src: usize, dst: usize, len: usize) -> bool {
    let fits = |at: usize| at.checked_add(len).is_some_and(|end| end <= buf.len());
    if !fits(src) || !fits(dst) {
        return false;
    }
    let base = buf.as_mut_ptr();
    // SAFETY: both ranges were checked to lie inside `buf`, which we borrow mutably.
    unsafe {
        memmove(
            base.wrapping_add(dst).cast(),
            base.wrapping_add(src).cast(),
            len,
        )
    };
    true
}

/// `memset` of the whole slice.
pub fn fill(buf: &mut [u8], value: u8) {
    // SAFETY: the range is the live, exclusively borrowed slice.
    unsafe { memset(buf.as_mut_ptr().cast(), i32::from(value), buf.len()) };
}

/// `memcmp` of the common prefix of `a` and `b`, as C returns it.
pub fn compare(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len().min(b.len());
    // SAFETY: both ranges are inside live slices.
    unsafe { memcmp(a.as_ptr().cast(), b.as_ptr().cast(), n) }
}

/// `bcmp` of the common prefix of `a` and `b`: 0 when equal.
pub fn equal_prefix(a: &[u8], b: &[u8]) -> i32 {
    let n = a.len().min(b.len());
    // SAFETY: both ranges are inside live slices.
    unsafe { bcmp(a.as_ptr().cast(), b.as_ptr().cast(), n) }
}

/// Copies `buf.len()` bytes of physical memory at `paddr` into `buf` (the identity map makes
/// physical addresses below 4 GiB directly readable); false, nothing copied, when the range
/// starts at 0 or does not end below 4 GiB. Meant for RAM the loader handed over (start
/// info, memory map, modules, command lines), not for MMIO.
pub fn read_phys(paddr: u64, buf: &mut [u8]) -> bool {
    let Some(end) = paddr.checked_add(buf.len() as u64) else {
        return false;
    };
    if paddr == 0 || end > super::layout::IDENTITY_MAP_END {
        return false;
    }
    // SAFETY: the source lies inside the identity map built by boot/pvh.S (every address
    // below 4 GiB is mapped), is not null, and is copied as raw bytes into a buffer we own
    // exclusively; the kernel is single-threaded, so nothing else writes it concurrently.
    unsafe {
        asm!(
            "rep movsb",
            inout("rdi") buf.as_mut_ptr() => _,
            inout("rsi") paddr => _,
            inout("rcx") buf.len() => _,
            options(nostack, preserves_flags)
        );
    }
    true
}
