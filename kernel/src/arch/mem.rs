//! The C memory functions the prebuilt `core`/`alloc` leave to libc (`rep movsq`/`stosq`
//! then bytes, and `cmpsq`/`cmpsb`, written in asm so the compiler cannot turn them into
//! calls to themselves), and safe, bounds-checked wrappers the self-tests use to exercise
//! them. Eight bytes per iteration matter under emulation (QEMU TCG runs `rep` string
//! instructions an iteration at a time).

use core::arch::asm;
use core::ffi::c_void;

/// Copies `n` bytes from `src` to `dest` (non-overlapping).
///
/// # Safety
/// `src` must be valid for `n` reads, `dest` for `n` writes, and the ranges must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    // SAFETY: the caller guarantees both ranges; `rep movsq` copies the first n / 8 words
    // and `rep movsb` the n % 8 bytes after them, forwards (the direction flag is clear by
    // the ABI): exactly `n` bytes in all.
    unsafe {
        asm!(
            "rep movsq",
            "mov rcx, {rest}",
            "rep movsb",
            rest = in(reg) n % 8,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            inout("rcx") n / 8 => _,
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
    let byte = u64::from(c as u8);
    // SAFETY: the caller guarantees the range; `rep stosq` writes the first n / 8 words with
    // the byte repeated and `rep stosb` the n % 8 bytes after them: exactly `n` bytes.
    unsafe {
        asm!(
            "rep stosq",
            "mov rcx, {rest}",
            "rep stosb",
            rest = in(reg) n % 8,
            inout("rdi") dest => _,
            inout("rcx") n / 8 => _,
            in("rax") byte.wrapping_mul(0x0101_0101_0101_0101),
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
    // Equal words first (`repe cmpsq` stops one word past the first difference), then the
    // bytes of the first word that differs, or of the tail.
    let words = n / 8;
    let (mut pa, mut pb, mut left) = (a as usize, b as usize, words);
    if words > 0 {
        // SAFETY: the caller guarantees both ranges; `repe cmpsq` reads at most `words` words
        // of each, leaving RSI/RDI one word past the last word compared and RCX the words not
        // compared.
        unsafe {
            asm!(
                "repe cmpsq",
                inout("rsi") pa,
                inout("rdi") pb,
                inout("rcx") left,
                options(readonly, nostack)
            );
        }
    }
    // RCX is 0 both when every word matched and when only the last one differs: look at the
    // last word compared again to tell.
    // SAFETY: with words > 0 at least one word was compared, so pa - 8 and pb - 8 lie inside
    // both ranges.
    let last_differs = words > 0
        && unsafe {
            core::ptr::read_unaligned((pa - 8) as *const u64)
                != core::ptr::read_unaligned((pb - 8) as *const u64)
        };
    let (a, b, n) = if left > 0 || last_differs {
        ((pa - 8) as *const c_void, (pb - 8) as *const c_void, 8)
    } else {
        (pa as *const c_void, pb as *const c_void, n % 8)
    };
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
    // exclusively (so the ranges do not overlap); the kernel is single-threaded, so nothing
    // else writes it concurrently.
    unsafe { memcpy(buf.as_mut_ptr().cast(), paddr as *const c_void, buf.len()) };
    true
}
