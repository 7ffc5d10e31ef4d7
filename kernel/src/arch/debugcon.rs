//! The debug console: bytes to I/O port 0xE9 (Xen prints them as `(dN) ...` lines with
//! `guest_loglvl=all`; QEMU shows them with `-debugcon`).

/// The debug console port.
pub const PORT: u16 = 0xE9;

/// Writes bytes to the debug console.
pub fn write(bytes: &[u8]) {
    super::cpu::outsb(PORT, bytes);
}
