//! The hypercall page: located by CPUID, filled by Xen through an MSR, called with up to 5 args.

use core::arch::{asm, global_asm};

// The page Xen fills with one 32-byte stub per hypercall. It lives in `.text` (the whole image
// is identity mapped and executable) and is named as `xen-sys` expects.
global_asm!(
    ".pushsection .text.hypercall_page, \"ax\", @progbits",
    ".balign 4096",
    ".globl HYPERCALL_PAGE",
    "HYPERCALL_PAGE:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
);

unsafe extern "C" {
    /// The first byte of the hypercall page (only its address is used from Rust).
    static HYPERCALL_PAGE: u8;
}

/// A hypercall failed; the value is Xen's negative errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenError(pub i64);

/// A hypercall's return value: negative is an errno, anything else the result.
pub fn check(rc: i64) -> Result<u64, XenError> {
    u64::try_from(rc).map_err(|_| XenError(rc))
}

/// Why the hypercall page could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// No Xen CPUID signature: we are not running under Xen.
    NotXen,
}

/// The CPUID leaf base of Xen's signature (0x40000000, or shifted by 0x100 steps when Xen
/// also exposes Viridian leaves first).
pub fn xen_cpuid_base() -> Option<u32> {
    crate::arch::cpu::running_on_xen()
}

/// Asks Xen to write its hypercall stubs into our page.
pub fn init() -> Result<(), SetupError> {
    let base = xen_cpuid_base().ok_or(SetupError::NotXen)?;
    let (_pages, msr, _, _) = crate::arch::cpu::cpuid(base + 2, 0);
    let page = core::ptr::addr_of!(HYPERCALL_PAGE) as u64;
    // SAFETY: the MSR Xen names in leaf base+2 takes the physical address of a page for Xen
    // to fill with hypercall stubs; `HYPERCALL_PAGE` is a 4 KiB, 4 KiB-aligned page of our
    // image reserved for exactly this, identity mapped (physical == virtual) and unused by
    // anything else.
    unsafe { crate::arch::cpu::wrmsr(msr, page) };
    Ok(())
}

/// Performs hypercall `op` with five arguments and returns Xen's result (negative errno).
///
/// # Safety
/// [`init`] must have succeeded, and the arguments must be valid for `op` as the Xen ABI
/// defines it: every pointer argument points to memory of the right layout that stays valid
/// (and is not otherwise accessed) for the duration of the call.
pub unsafe fn hypercall5(op: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let entry = core::ptr::addr_of!(HYPERCALL_PAGE) as u64 + u64::from(op) * 32;
    let ret: i64;
    // SAFETY: the caller guarantees the page is initialised and the arguments are valid for
    // `op`; the stub at `entry` follows the 64-bit hypercall convention (rdi, rsi, rdx, r10,
    // r8 in, rax out) and we mark every argument register clobbered, as a debug Xen scrubs
    // them. The stack is used by the `call` itself.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Hypercall with two arguments.
///
/// # Safety
/// As [`hypercall5`].
pub unsafe fn hypercall2(op: u32, a1: u64, a2: u64) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { hypercall5(op, a1, a2, 0, 0, 0) }
}

/// Hypercall with three arguments.
///
/// # Safety
/// As [`hypercall5`].
pub unsafe fn hypercall3(op: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { hypercall5(op, a1, a2, a3, 0, 0) }
}
