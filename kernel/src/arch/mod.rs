//! Boot glue and CPU primitives: the only place (with `xen/`) where the kernel uses `unsafe`.
//!
//! The PVH entry (`boot/pvh.S`) builds an identity map of 0..4 GiB with 2 MiB pages (4 KiB
//! pages around the unmapped guard page below the boot stack), a 64 KiB boot stack and long
//! mode, then calls [`entry`]'s `xs_rust_entry`, which loads the GDT/TSS and the IDT and
//! hands over to `crate::kmain`. See [`layout`] for the addresses. [`heap`] is the global
//! allocator (up to sixteen RAM regions, slabs for small blocks, growth through a hook);
//! [`handover`] jumps into a new image in place (live update) through the trampoline of
//! `boot/handover.S`.

pub mod cpu;
pub mod debugcon;
pub mod entry;
pub mod exit;
pub mod fwcfg;
pub mod gdt;
pub mod handover;
pub mod heap;
pub mod idt;
pub mod layout;
pub mod mem;
pub mod note;
pub mod startinfo;

core::arch::global_asm!(include_str!("../../../boot/pvh.S"), options(att_syntax));

pub use cpu::halt;
pub use layout::build_id;

/// The first free byte after the image (page aligned): see [`layout`].
pub fn image_end() -> usize {
    layout::image_end() as usize
}

/// The personality routine the prebuilt `core` expects; never called with `panic = "abort"`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// The unwinder entry the prebuilt `alloc`'s landing pads name; with `panic = "abort"`
/// nothing unwinds, so reaching it is a bug: end the kernel.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::kprintln!("xsstub: _Unwind_Resume called (unwinding is not supported)");
    exit::shutdown(true)
}

/// A function set at boot and called from anywhere, interrupt and panic context included:
/// callers read it with `try_read` (never waiting; while it is being set it is skipped).
pub type Hook<F> = spin::RwLock<Option<F>>;
