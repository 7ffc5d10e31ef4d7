//! The Rust entry point `boot/pvh.S` calls in long mode: descriptor tables, then `kmain`.

/// Called by `boot/pvh.S` on the boot stack with interrupts disabled, the identity map of
/// 0..4 GiB loaded and SSE enabled; `start_info_paddr` is the physical address of the
/// `struct hvm_start_info` the loader passed in %ebx.
#[unsafe(no_mangle)]
pub extern "C" fn xs_rust_entry(start_info_paddr: u64) -> ! {
    super::gdt::init();
    super::idt::init();
    crate::kmain(start_info_paddr)
}
