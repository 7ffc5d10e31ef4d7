//! The xenstore stub domain: a `no_std` PVH unikernel around the `xsstate` engine.
//!
//! This is the placeholder laid by the workspace issue: it links as a static PVH ELF with the
//! boot entry from `boot/pvh.S`. The drivers and the service loop come with the kernel issue.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod arch;
#[allow(unsafe_code)]
mod xen;

/// The engine the kernel will serve; linked now so the image build covers it.
pub use xsstate as engine;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    arch::halt()
}
