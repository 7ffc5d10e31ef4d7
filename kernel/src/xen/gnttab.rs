//! Grant table v1: our own frames (to grant pages) and mapping other domains' grants.
//!
//! Granting our own pages serves the live-update hand-over (the state buffer). Every foreign
//! mapping is also recorded in a fixed table, so that a live update's rollback can undo them
//! all, even from a panic.
#![allow(dead_code)]

use core::sync::atomic::{fence, AtomicU64, Ordering};

use xen_sys::{__HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op};

use super::abi::{
    AddToPhysmap, GnttabMapGrantRef, GnttabQuerySize, GnttabUnmapGrantRef, DOMID_SELF,
    GNTMAP_HOST_MAP, GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_UNMAP_GRANT_REF,
    GTF_PERMIT_ACCESS, GTF_READONLY, XENMAPSPACE_GRANT_TABLE, XENMEM_ADD_TO_PHYSMAP,
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

/// Foreign mappings recorded for [`unmap_all`]: `(gfn, handle + 1)` (0: free slot).
const RECORD_SLOTS: usize = 4096;
static MAPPED: spin::Mutex<[(u32, u32); RECORD_SLOTS]> = spin::Mutex::new([(0, 0); RECORD_SLOTS]);

fn record(gfn: u64, handle: Option<u32>) {
    let Some(mut t) = MAPPED.try_lock() else {
        return;
    };
    let gfn = gfn as u32;
    match handle {
        Some(h) => {
            if let Some(slot) = t.iter_mut().find(|(_, h1)| *h1 == 0) {
                *slot = (gfn, h.wrapping_add(1));
            }
        }
        None => {
            if let Some(slot) = t.iter_mut().find(|(g, h1)| *g == gfn && *h1 != 0) {
                *slot = (0, 0);
            }
        }
    }
}

/// Unmaps every foreign grant this image mapped (a rollback's teardown); returns how many.
/// Works on the table in place: nothing of its size goes on the stack.
pub fn unmap_all() -> usize {
    let Some(mut t) = MAPPED.try_lock() else {
        return 0;
    };
    let mut n = 0;
    for slot in t.iter_mut() {
        let (gfn, h1) = core::mem::take(slot);
        // `unmap` would update the table itself; it is locked here, so it leaves it alone.
        if h1 != 0
            && unmap(Mapping {
                gfn: u64::from(gfn),
                handle: h1 - 1,
            })
            .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Our grant table's size: `(frames in use, most frames allowed)`.
pub fn query_size() -> Result<(u32, u32), XenError> {
    let mut op = GnttabQuerySize {
        dom: DOMID_SELF,
        ..GnttabQuerySize::default()
    };
    // SAFETY: GNTTABOP_query_size with count 1 reads and writes the one structure we own.
    let rc = unsafe {
        hypercall3(
            __HYPERVISOR_grant_table_op,
            GNTTABOP_QUERY_SIZE,
            &raw mut op as u64,
            1,
        )
    };
    check(rc)?;
    if op.status != 0 {
        return Err(XenError(i64::from(op.status)));
    }
    Ok((op.nr_frames, op.max_nr_frames))
}

/// Maps more of our own grant table (Xen grows it) so that `frames` frames are mapped, at
/// the gfns following the first frame's; `frames` is capped by `max_gfns`.
pub fn grow_own(frames: u32, max_gfns: u32) -> Result<(), XenError> {
    let base = TABLE.load(Ordering::Relaxed) >> 12;
    let have = FRAMES.load(Ordering::Relaxed) as u32;
    if base == 0 || frames > max_gfns {
        return Err(XenError(-22));
    }
    for i in have..frames {
        map_own_frame(i, base + u64::from(i))?;
        FRAMES.store(u64::from(i) + 1, Ordering::SeqCst);
    }
    Ok(())
}

fn map_own_frame(i: u32, gfn: u64) -> Result<(), XenError> {
    let mut xatp = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_GRANT_TABLE,
        idx: u64::from(i),
        gpfn: gfn,
    };
    // SAFETY: XENMEM_add_to_physmap reads the structure we own; the gfn is in the hole
    // reserved for our grant frames (service::layout).
    let rc = unsafe {
        super::hypercall::hypercall2(
            __HYPERVISOR_memory_op,
            XENMEM_ADD_TO_PHYSMAP,
            &raw mut xatp as u64,
        )
    };
    check(rc).map(drop)
}

/// Maps our own grant table's first `frames` frames at consecutive gfns from `gfn`.
pub fn init_own(gfn: u64, frames: u32) -> Result<(), XenError> {
    for i in 0..frames {
        map_own_frame(i, gfn + u64::from(i))?;
    }
    TABLE.store(gfn << 12, Ordering::SeqCst);
    FRAMES.store(u64::from(frames), Ordering::SeqCst);
    Ok(())
}

/// Our grant table's first frame and the number of frames mapped (a live update hands
/// them over: they stay mapped).
pub fn own_frames() -> (u64, u32) {
    (
        TABLE.load(Ordering::Relaxed) >> 12,
        FRAMES.load(Ordering::Relaxed) as u32,
    )
}

/// Takes over a grant table a previous image of this domain mapped at `gfn` (`frames`
/// frames, a live update's hand-over), without asking Xen again. The caller checked that
/// `gfn` is where this image maps its table ([`init_own`]'s frame), so the frames lie in the
/// hole reserved for them.
pub fn adopt_own(gfn: u64, frames: u32) {
    TABLE.store(gfn << 12, Ordering::SeqCst);
    FRAMES.store(u64::from(frames), Ordering::SeqCst);
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
    /// Xen's handle of the mapping (a live update hands it over with the frame).
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Takes over a mapping a previous image of this domain made and handed over (a live
    /// update keeps rings mapped): `gfn` must lie in `window`, the hole reserved for foreign
    /// mappings, so that a wrong hand-over can never make this alias our own RAM (at worst the
    /// frame is a hole, and touching it stops the domain). Not recorded for [`unmap_all`]
    /// until [`Mapping::own`]: a rollback leaves it mapped for the image it returns to.
    pub fn adopt(gfn: u64, handle: u32, window: core::ops::Range<u64>) -> Option<Mapping> {
        window.contains(&gfn).then_some(Mapping { gfn, handle })
    }

    /// Records an adopted mapping as this image's own (from now on a rollback unmaps it).
    pub fn own(&self) {
        record(self.gfn, Some(self.handle));
    }

    /// The mapped page, for volatile access.
    pub fn page(&self) -> SharedPage {
        // SAFETY: `gfn` is a frame of the hole reserved for foreign mappings (mapped there by
        // `map`, or adopted from a live update's hand-over after checking it lies in the
        // hole), never Rust-owned memory; the grant stays mapped until `unmap` consumes this
        // mapping, and only `SharedPage` accesses touch it.
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
    record(gfn, Some(op.handle));
    Ok(Mapping {
        gfn,
        handle: op.handle,
    })
}

/// Unmaps a foreign grant.
pub fn unmap(m: Mapping) -> Result<(), XenError> {
    record(m.gfn, None);
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
    entry_full(gref).map(|e| (e.frame, e.flags))
}

/// Reads our grant entry `gref` whole.
pub fn entry_full(gref: u32) -> Option<super::abi::GrantEntryV1> {
    let (page, off) = entry_page(gref)?;
    let head = page.read_u32(off);
    Some(super::abi::GrantEntryV1 {
        flags: (head & 0xffff) as u16,
        domid: (head >> 16) as u16,
        frame: page.read_u32(off + 4),
    })
}

/// The flags of a read-only grant.
pub const READONLY_GRANT: u16 = GTF_PERMIT_ACCESS | GTF_READONLY;
