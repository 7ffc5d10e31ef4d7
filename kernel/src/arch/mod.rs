//! Boot glue: the PVH entry assembly and the few CPU primitives the kernel needs.

core::arch::global_asm!(include_str!("../../../boot/pvh.S"), options(att_syntax));

/// Stops this CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops the CPU; it touches no memory.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The personality routine the prebuilt `core` expects; never called with `panic = "abort"`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// The kernel heap; the kernel issue points it at the populated RAM during boot.
#[global_allocator]
static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();
