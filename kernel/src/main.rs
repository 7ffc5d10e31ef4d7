//! The xenstore stub domain: a `no_std` PVH unikernel around the `xsstate` engine.
//!
//! Boot: `boot/pvh.S` -> `arch::entry::xs_rust_entry` (GDT/TSS, IDT) -> [`kmain`]. Under Xen
//! the service runs. On bare QEMU (no Xen CPUID leaves) the `selftest` build (`cargo xtask
//! smoke`) runs its in-image self-tests and the verdict ends QEMU through isa-debug-exit; the
//! shipped image carries no test code and just says it needs Xen.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
// Without the self-tests, helpers only they use are unused (the `selftest` build, which
// clippy also checks, sees dead code for real).
#![cfg_attr(not(feature = "selftest"), allow(dead_code))]

extern crate alloc;

#[allow(unsafe_code)]
mod arch;
mod console;
#[cfg(feature = "selftest")]
mod selftest;
#[cfg(feature = "selftest")]
mod selftest_handover;
mod service;
#[allow(unsafe_code)]
mod xen;

/// The kernel's main function, entered once per boot with the start info address.
pub fn kmain(start_info_paddr: u64) -> ! {
    let rust_tsc = arch::cpu::rdtsc();
    match arch::cpu::running_on_xen() {
        Some(_) => service::run(start_info_paddr, rust_tsc),
        None => bare_qemu(start_info_paddr),
    }
}

/// Bare QEMU without the self-tests: nothing to do.
#[cfg(not(feature = "selftest"))]
fn bare_qemu(_start_info_paddr: u64) -> ! {
    kprintln!(
        "xsstub {}: not running under Xen (the self-tests are in the selftest build: cargo \
         xtask smoke)",
        env!("CARGO_PKG_VERSION")
    );
    arch::exit::qemu_exit(1)
}

/// Bare QEMU: heap from the start info's memory map, self-tests, verdict, exit.
#[cfg(feature = "selftest")]
fn bare_qemu(start_info_paddr: u64) -> ! {
    kprintln!("xsstub {} starting", env!("CARGO_PKG_VERSION"));
    arch::cpu::mask_legacy_pic();
    match arch::heap::init_from_start_info(start_info_paddr) {
        Ok((lo, hi)) => kprintln!("xsstub: heap {lo:#x}..{hi:#x} ({} KiB)", (hi - lo) / 1024),
        Err(e) => {
            kprintln!("XSSTUB-SMOKE FAIL heap: {e}");
            arch::exit::qemu_exit(1)
        }
    }
    match selftest::run(start_info_paddr) {
        Ok(n) => {
            selftest_handover::run(start_info_paddr);
            selftest::inject_fault(start_info_paddr);
            kprintln!("XSSTUB-SMOKE PASS {n} tests");
            arch::exit::qemu_exit(0)
        }
        Err(what) => {
            kprintln!("XSSTUB-SMOKE FAIL {what}");
            arch::exit::qemu_exit(1)
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // While a live update is being taken over, a panic rolls back to the old image.
    service::inherit::on_panic(info);
    console::flush_deferred();
    kprintln!("xsstub: PANIC {info}");
    arch::exit::shutdown(true)
}
