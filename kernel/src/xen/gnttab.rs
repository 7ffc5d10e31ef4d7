//! Grant table v1: our own frames (to grant pages) and mapping other domains' grants.
//!
//! Granting our own pages serves the live-update hand-over (the state buffer).
#![allow(dead_code)]

use core::sync::atomic::{fence, AtomicU64, Ordering};

use xen_sys::{__HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op};

use super::abi::{
    AddToPhysmap, GnttabMapGrantRef, GnttabUnmapGrantRef, DOMID_SELF, GNTMAP_HOST_MAP,
    GNTTABOP_MAP_GRANT_REF, GNTTABOP_UNMAP_GRANT_REF, GTF_PERMIT_ACCESS, GTF_READONLY,
    XENMAPSPACE_GRANT_TABLE, XENMEM_ADD_TO_PHYSMAP,
};
use super::events::XenError;
use super::hypercall::{check, hypercall3};
use super::page::SharedPage;

/// Grant entries per 4 KiB frame (8 bytes each).
pub const ENTRIES_PER_FRAME: u32 = 512;

/// Physical address of our grant table's first frame (0 before [`init_own`]).
static TABLE: AtomicU64 = AtomicU64::new(0);
/// Number of our grant frames mapped.
static FRAMES: AtomicU64 = AtomicU64::new(0);

/// Maps our own grant table's first `frames` frames at consecutive gfns from `gfn`.
pub fn init_own(gfn: u64, frames: u32) -> Result<(), XenError> {
    for i in 0..frames {
        let mut xatp = AddToPhysmap {
            domid: DOMID_SELF,
            size: 0,
            space: XENMAPSPACE_GRANT_TABLE,
            idx: u64::from(i),
            gpfn: gfn + u64::from(i),
        };
        // SAFETY: XENMEM_add_to_physmap reads the structure we own; the gfns are in the hole
        // reserved for Xen pages.
        let rc = unsafe {
            super::hypercall::hypercall2(
                __HYPERVISOR_memory_op,
                XENMEM_ADD_TO_PHYSMAP,
                &raw mut xatp as u64,
            )
        };
        check(rc)?;
    }
    TABLE.store(gfn << 12, Ordering::SeqCst);
    FRAMES.store(u64::from(frames), Ordering::SeqCst);
    Ok(())
}

/// Number of grant entries we can write.
pub fn own_capacity() -> u32 {
    FRAMES.load(Ordering::Relaxed) as u32 * ENTRIES_PER_FRAME
}

fn entry_page(gref: u32) -> Option<(SharedPage, usize)> {
    let base = TABLE.load(Ordering::Relaxed);
    if base == 0 || gref >= own_capacity() {
        return None;
    }
    let frame = u64::from(gref / ENTRIES_PER_FRAME);
    let off = (gref % ENTRIES_PER_FRAME) as usize * 8;
    // SAFETY: our grant frames stay mapped at `base` for the domain's life and `frame` is
    // below the number mapped.
    Some((unsafe { SharedPage::new(base + frame * 4096) }, off))
}

/// Grants `domid` access to our frame `gfn` through entry `gref`.
pub fn grant(gref: u32, domid: u16, gfn: u32, readonly: bool) -> Result<(), XenError> {
    let (page, off) = entry_page(gref).ok_or(XenError(-22))?;
    page.write_u32(off + 4, gfn);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    // Frame and domain must be visible before the flags make the entry valid.
    page.write_u32(off, u32::from(domid) << 16);
    fence(Ordering::Release);
    page.write_u32(off, (u32::from(domid) << 16) | u32::from(flags));
    Ok(())
}

/// Revokes entry `gref` (the caller knows the grantee has unmapped it).
pub fn revoke(gref: u32) {
    if let Some((page, off)) = entry_page(gref) {
        page.write_u32(off, 0);
        fence(Ordering::SeqCst);
        page.write_u32(off + 4, 0);
    }
}

/// A foreign grant mapped into our physical address space.
#[derive(Debug)]
pub struct Mapping {
    /// Where it is mapped.
    pub gfn: u64,
    /// Xen's handle for the unmap.
    handle: u32,
}

impl Mapping {
    /// The mapped page, for volatile access.
    pub fn page(&self) -> SharedPage {
        // SAFETY: the grant stays mapped at `gfn` until `unmap` consumes this mapping, and
        // only `SharedPage` accesses touch it.
        unsafe { SharedPage::new(self.gfn << 12) }
    }
}

/// Maps grant `gref` of `domid` read-write at `gfn` (an unpopulated frame of ours).
pub fn map(domid: u16, gref: u32, gfn: u64) -> Result<Mapping, XenError> {
    let mut op = GnttabMapGrantRef {
        host_addr: gfn << 12,
        flags: GNTMAP_HOST_MAP,
        gref,
        dom: domid,
        ..GnttabMapGrantRef::default()
    };
    // SAFETY: GNTTABOP_map_grant_ref with count 1 reads and writes the one structure we own;
    // `host_addr` is a frame in the hole reserved for grant mappings, unused by anything.
    let rc = unsafe {
        hypercall3(
            __HYPERVISOR_grant_table_op,
            GNTTABOP_MAP_GRANT_REF,
            &raw mut op as u64,
            1,
        )
    };
    check(rc)?;
    if op.status != 0 {
        return Err(XenError(i64::from(op.status)));
    }
    Ok(Mapping {
        gfn,
        handle: op.handle,
    })
}

/// Unmaps a foreign grant.
pub fn unmap(m: Mapping) -> Result<(), XenError> {
    let mut op = GnttabUnmapGrantRef {
        host_addr: m.gfn << 12,
        dev_bus_addr: 0,
        handle: m.handle,
        status: 0,
        pad: 0,
    };
    // SAFETY: GNTTABOP_unmap_grant_ref with count 1 on the structure we own; the mapping is
    // consumed, so nothing refers to the page afterwards.
    let rc = unsafe {
        hypercall3(
            __HYPERVISOR_grant_table_op,
            GNTTABOP_UNMAP_GRANT_REF,
            &raw mut op as u64,
            1,
        )
    };
    check(rc)?;
    if op.status != 0 {
        return Err(XenError(i64::from(op.status)));
    }
    Ok(())
}

/// Reads our grant entry `gref`: `(frame, flags)`.
pub fn entry(gref: u32) -> Option<(u32, u16)> {
    let (page, off) = entry_page(gref)?;
    let head = page.read_u32(off);
    Some((page.read_u32(off + 4), (head & 0xffff) as u16))
}
