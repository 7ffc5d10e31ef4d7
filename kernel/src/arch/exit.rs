//! Ending the kernel: QEMU's isa-debug-exit and the registrable shutdown hook the fatal and
//! panic paths call (the Xen layer registers `SCHEDOP_shutdown`).

use super::cpu;

/// The isa-debug-exit port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const QEMU_EXIT_PORT: u16 = 0xF4;

/// The function that ends the domain, set once per boot (read with `try_read`: a panic
/// inside `set_shutdown_hook` falls back to the QEMU exit).
static SHUTDOWN_HOOK: super::Hook<fn(bool) -> !> = spin::RwLock::new(None);

/// Exits QEMU with status `(code << 1) | 1` through isa-debug-exit; halts if there is no
/// such device (e.g. under Xen, where the write is ignored).
pub fn qemu_exit(code: u8) -> ! {
    cpu::outl(QEMU_EXIT_PORT, u32::from(code));
    cpu::halt()
}

/// Registers the function that ends the domain (`crashed`: after a panic or a fatal
/// exception). It must not return and should not allocate (the heap lock may be held).
pub fn set_shutdown_hook(f: fn(crashed: bool) -> !) {
    *SHUTDOWN_HOOK.write() = Some(f);
}

/// Ends the kernel through the registered hook; without one, `qemu_exit(1)` on a crash and
/// `qemu_exit(0)` otherwise.
pub fn shutdown(crashed: bool) -> ! {
    let hook = SHUTDOWN_HOOK.try_read().and_then(|h| *h);
    match hook {
        Some(hook) => hook(crashed),
        None => qemu_exit(u8::from(crashed)),
    }
}
