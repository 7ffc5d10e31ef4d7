//! The domain's memory: the E820 map, the reservation (pages populated, the most allowed),
//! populating new frames, and what Xen has at a frame.

use xen_sys::{__HYPERVISOR_hvm_op, __HYPERVISOR_memory_op};

use super::abi::{
    HvmGetMemType, MemoryMap, MemoryReservation, DOMID_SELF, E820_ENTRY_BYTES, HVMOP_GET_MEM_TYPE,
    XENMEM_CURRENT_RESERVATION, XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP,
    XENMEM_POPULATE_PHYSMAP,
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

/// Pages currently populated for this domain (`XENMEM_current_reservation`).
pub fn current_reservation_pages() -> Result<u64, XenError> {
    reservation(XENMEM_CURRENT_RESERVATION)
}

/// The most pages this domain may have populated (`XENMEM_maximum_reservation`: what the
/// toolstack set with `XEN_DOMCTL_max_mem`, e.g. `init-xenstore-domain --maxmem`).
pub fn maximum_reservation_pages() -> Result<u64, XenError> {
    reservation(XENMEM_MAXIMUM_RESERVATION)
}

fn reservation(cmd: u64) -> Result<u64, XenError> {
    let mut domid: u16 = DOMID_SELF;
    // SAFETY: XENMEM_current_reservation and XENMEM_maximum_reservation only read the
    // `domid_t` we own for the call.
    let rc = unsafe { hypercall2(__HYPERVISOR_memory_op, cmd, &raw mut domid as u64) };
    check(rc)
}

/// GFNs passed to Xen per `XENMEM_populate_physmap` call (on the stack: 1 KiB).
const POPULATE_BATCH: usize = 128;

/// Backs `count` frames from `first_gfn` up with new memory (`XENMEM_populate_physmap`,
/// order-0 extents, `DOMID_SELF`). Returns how many frames from `first_gfn` on are now
/// populated: fewer than `count` when Xen stopped (the reservation's maximum, or no memory
/// left); an error only when not even the first batch could be asked. Allocates nothing
/// (the global allocator calls it when it runs short). Under HAP the frames are usable at
/// once through our identity map.
pub fn populate_physmap(first_gfn: u64, count: u64) -> Result<u64, XenError> {
    let mut done = 0u64;
    let mut gfns = [0u64; POPULATE_BATCH];
    while done < count {
        let n = (count - done).min(POPULATE_BATCH as u64);
        let base = first_gfn.checked_add(done).ok_or(XenError(-22))?;
        for (i, slot) in gfns.iter_mut().take(n as usize).enumerate() {
            *slot = base.saturating_add(i as u64);
        }
        let mut res = MemoryReservation {
            extent_start: gfns.as_mut_ptr() as u64,
            nr_extents: n,
            extent_order: 0,
            mem_flags: 0,
            domid: DOMID_SELF,
        };
        // SAFETY: XENMEM_populate_physmap reads the reservation we own and the first
        // `nr_extents` entries of `gfns` (a live stack array of at least that many `u64`
        // GFNs); for a translated guest it may write back into those entries only. Both
        // stay valid and untouched by us for the duration of the call.
        let rc = unsafe {
            hypercall2(
                __HYPERVISOR_memory_op,
                XENMEM_POPULATE_PHYSMAP,
                &raw mut res as u64,
            )
        };
        match check(rc) {
            Ok(k) => {
                done = done.saturating_add(k.min(n));
                if k < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// What Xen has at frame `gfn` of this domain (`HVMOP_get_mem_type`): `HVMMEM_ram_rw` for
/// populated RAM, `HVMMEM_mmio_dm` for a frame with nothing behind it.
pub fn mem_type(gfn: u64) -> Result<u16, XenError> {
    let mut arg = HvmGetMemType {
        domid: DOMID_SELF,
        mem_type: 0,
        pad: [0; 2],
        pfn: gfn,
    };
    // SAFETY: HVMOP_get_mem_type reads and writes the `xen_hvm_get_mem_type` we own for the
    // call.
    let rc = unsafe { hypercall2(__HYPERVISOR_hvm_op, HVMOP_GET_MEM_TYPE, &raw mut arg as u64) };
    check(rc)?;
    Ok(arg.mem_type)
}
