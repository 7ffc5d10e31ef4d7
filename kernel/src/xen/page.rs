//! `SharedPage`: a 4 KiB page shared with Xen or another domain, touched only by volatile copies.

use core::ptr;

/// Bytes in a page.
pub const PAGE_BYTES: usize = 4096;

/// A page of memory that someone else may write at any time. It is never turned into a Rust
/// reference: every access is a volatile copy of a value, bounds-checked against the page.
#[derive(Debug)]
pub struct SharedPage {
    addr: usize,
}

impl SharedPage {
    /// Wraps the page at `paddr` (identity mapped).
    ///
    /// # Safety
    /// `paddr` must be 4 KiB-aligned, mapped (RAM, a special page or a grant mapping) for as
    /// long as the returned value exists, and not used as Rust-owned memory by anything else.
    pub unsafe fn new(paddr: u64) -> SharedPage {
        SharedPage {
            addr: paddr as usize,
        }
    }

    /// Whether `len` bytes at `off` lie inside the page (and `align` divides `off`).
    fn fits(off: usize, len: usize, align: usize) -> bool {
        off.is_multiple_of(align) && off.checked_add(len).is_some_and(|end| end <= PAGE_BYTES)
    }

    /// Reads the `u32` at byte offset `off` (0 when out of the page or misaligned).
    pub fn read_u32(&self, off: usize) -> u32 {
        if !Self::fits(off, 4, 4) {
            return 0;
        }
        // SAFETY: `new`'s contract keeps the page mapped; `off` is in bounds and aligned.
        unsafe { ptr::read_volatile((self.addr + off) as *const u32) }
    }

    /// Writes the `u32` at byte offset `off` (ignored when out of the page or misaligned).
    pub fn write_u32(&self, off: usize, value: u32) {
        if !Self::fits(off, 4, 4) {
            return;
        }
        // SAFETY: as in `read_u32`; the page is writable shared memory.
        unsafe { ptr::write_volatile((self.addr + off) as *mut u32, value) }
    }

    /// Copies `buf.len()` bytes from offset `off` (nothing when out of the page).
    pub fn read_bytes(&self, off: usize, buf: &mut [u8]) {
        if !Self::fits(off, buf.len(), 1) {
            return;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `off + i` is inside the mapped page (checked above).
            *b = unsafe { ptr::read_volatile((self.addr + off + i) as *const u8) };
        }
    }

    /// Copies `data` to offset `off` (nothing when out of the page).
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        if !Self::fits(off, data.len(), 1) {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: `off + i` is inside the mapped page (checked above).
            unsafe { ptr::write_volatile((self.addr + off + i) as *mut u8, *b) };
        }
    }
}
