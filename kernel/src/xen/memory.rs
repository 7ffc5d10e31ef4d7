//! The domain's memory: the E820 map from `XENMEM_memory_map` and the populated page count.

use xen_sys::__HYPERVISOR_memory_op;

use super::abi::{
    MemoryMap, DOMID_SELF, E820_ENTRY_BYTES, XENMEM_CURRENT_RESERVATION, XENMEM_MEMORY_MAP,
};
use super::events::XenError;
use super::hypercall::{check, hypercall2};
use crate::arch::startinfo::MemmapEntry;

/// Most E820 entries we ask for.
pub const MAX_ENTRIES: usize = 32;

/// The memory map Xen holds for us.
pub fn memory_map() -> Result<heapless::Vec<MemmapEntry, MAX_ENTRIES>, XenError> {
    let mut raw = [0u8; MAX_ENTRIES * E820_ENTRY_BYTES];
    let mut map = MemoryMap {
        nr_entries: MAX_ENTRIES as u32,
        pad: 0,
        buffer: raw.as_mut_ptr() as u64,
    };
    // SAFETY: XENMEM_memory_map writes at most `nr_entries` packed 20-byte entries into the
    // buffer we own, which is exactly that large, and updates `nr_entries`.
    let rc = unsafe {
        hypercall2(
            __HYPERVISOR_memory_op,
            XENMEM_MEMORY_MAP,
            &raw mut map as u64,
        )
    };
    check(rc)?;
    let n = (map.nr_entries as usize).min(MAX_ENTRIES);
    let mut out = heapless::Vec::new();
    for chunk in raw.chunks_exact(E820_ENTRY_BYTES).take(n) {
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk.get(o..o + 8).unwrap_or(&[0; 8]));
            u64::from_le_bytes(b)
        };
        let mut t = [0u8; 4];
        t.copy_from_slice(chunk.get(16..20).unwrap_or(&[0; 4]));
        let _ = out.push(MemmapEntry {
            addr: u64_at(0),
            size: u64_at(8),
            kind: u32::from_le_bytes(t),
        });
    }
    Ok(out)
}

/// Pages currently populated for this domain.
pub fn current_reservation_pages() -> Result<u64, XenError> {
    let mut domid: u16 = DOMID_SELF;
    // SAFETY: XENMEM_current_reservation reads the domid we own for the call.
    let rc = unsafe {
        hypercall2(
            __HYPERVISOR_memory_op,
            XENMEM_CURRENT_RESERVATION,
            &raw mut domid as u64,
        )
    };
    check(rc)
}
