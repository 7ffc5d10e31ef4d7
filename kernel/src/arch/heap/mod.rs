//! The kernel heap: RAM regions (`linked_list_allocator` heaps) with slabs for small blocks.
//!
//! Regions: the first comes from [`init`]/[`try_init`] at boot; [`add_region`] adds more (a
//! live update's restore gives the inherited state's pages back this way) and [`add_memory`]
//! extends the region that ends where the new memory starts (heap growth), or adds one.
//! Large blocks (over 2 KiB, or aligned to more than 64 bytes) come first fit from the
//! regions, in the order they were added; a block is freed into the region holding it.
//!
//! Small blocks come from slabs: [`CHUNK`]-byte chunks aligned to their size, taken from
//! the regions, each serving one size class of [`regions::CLASSES`]. A chunk starts with a 64-byte
//! header (magic, class, free count, its free list, its links in the class's list of chunks
//! with a free block); a block finds its chunk by masking its address, and its class from
//! the layout `dealloc` is given. Blocks are carved lazily; a freed block goes to its chunk's
//! free list; when a chunk's last block is freed the chunk goes back to its region, so
//! memory one class freed serves any size again and a workload that frees everything leaves
//! the figures where they were. Small allocations and frees are O(1); a new chunk costs one
//! first-fit search. When no chunk can be carved (the free bytes lie in holes smaller than a
//! chunk), a small block comes first fit from the regions and is listed (a loose block, up
//! to [`regions::MAX_LOOSE`]) so that its free finds it.
//!
//! [`stats`]: `used` is every byte that cannot be allocated: blocks handed out (small ones
//! at their class size), chunk headers, chunk tails too short for a block, and the regions'
//! rounding; `free` is what can be: the regions' holes plus the free blocks of live chunks.
//! `used + free` is the regions' total size.
//!
//! Every region sits behind one spin lock: interrupt handlers must not allocate. When an
//! allocation finds no room, the global allocator releases the lock, asks the grow hook
//! ([`set_grow_hook`]) for memory and tries once more.

mod regions;
#[cfg(feature = "selftest")]
mod selftest;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use spin::Mutex as Spinlock;

use regions::class_of;
pub use regions::{HeapError, Regions, CHUNK, MAX_REGIONS, MIN_REGION};
#[cfg(feature = "selftest")]
pub use selftest::self_test;

/// The global allocator: [`Regions`] behind a spin lock.
struct KernelHeap(Spinlock<Regions>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Spinlock::new(Regions::new()));

/// Asked for at least N more bytes when an allocation finds no room; returns what it added.
static GROW_HOOK: super::Hook<fn(usize) -> usize> = spin::RwLock::new(None);

/// Bytes to ask the grow hook for so that `layout` fits afterwards (a chunk may need twice
/// its size to find an aligned place; a large block its alignment on top).
fn growth_for(layout: Layout) -> usize {
    match class_of(layout) {
        Some(_) => 2 * CHUNK,
        None => layout
            .size()
            .saturating_add(layout.align())
            .saturating_add(4096),
    }
}

// SAFETY: `alloc` returns memory from a region only this allocator hands out (each region
// was given to it exclusively), aligned and sized as `layout` asks (first fit does that for
// large blocks; small blocks are class-sized and class-aligned, see `class_of`), or null;
// `dealloc` returns it to the chunk or region it came from. The spin lock serialises every
// access to the region set; it is not held while the grow hook runs.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let first = self.0.lock().allocate(layout);
        if let Some(p) = first {
            return p.as_ptr();
        }
        let hook = GROW_HOOK.try_read().and_then(|g| *g);
        if let Some(grow) = hook {
            if grow(growth_for(layout)) > 0 {
                if let Some(p) = self.0.lock().allocate(layout) {
                    return p.as_ptr();
                }
            }
        }
        // The bytes may be there but in holes too small: the emergency reserve goes back.
        if !release_reserve() {
            return core::ptr::null_mut();
        }
        self.0
            .lock()
            .allocate(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(ptr) = NonNull::new(ptr) else {
            return;
        };
        // SAFETY: GlobalAlloc's contract: `ptr` was returned by `alloc` with this layout.
        let freed = unsafe { self.0.lock().deallocate(ptr, layout) };
        if !freed {
            crate::kprintln!("xsstub: heap: free of {ptr:p} ({layout:?}) not ours; ignored");
        }
    }
}

/// The emergency reserve: one block, `(address, length)`, held back from the heap. The
/// engine's memory floors count free bytes, not holes: after many blocks of one size come
/// and go, the free bytes can lie in holes smaller than a slab chunk, and a small reply would
/// find no room. When an allocation finds none even after growth, the reserve goes back to
/// the heap and the allocation is tried again; the service takes it again once there is
/// room ([`arm_reserve`]) and logs its use ([`take_reserve_used`]).
static RESERVE: Spinlock<Option<(usize, usize)>> = Spinlock::new(None);
/// Bytes the reserve holds when it is held (the last length [`arm_reserve`] was given).
static RESERVE_WANTED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
/// Set when the reserve went back to the heap; cleared by [`take_reserve_used`].
static RESERVE_USED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Takes `len` bytes (CHUNK-aligned) from the heap as the emergency reserve, unless one is
/// held; returns whether one is held now. Never grows the heap.
pub fn arm_reserve(len: usize) -> bool {
    RESERVE_WANTED.store(len, core::sync::atomic::Ordering::Relaxed);
    let Some(mut reserve) = RESERVE.try_lock() else {
        return false;
    };
    if reserve.is_some() {
        return true;
    }
    let Ok(layout) = Layout::from_size_align(len, CHUNK) else {
        return false;
    };
    let Some(p) = HEAP.0.lock().allocate(layout) else {
        return false;
    };
    *reserve = Some((p.as_ptr() as usize, len));
    true
}

/// Gives the reserve back to the heap; whether there was one.
fn release_reserve() -> bool {
    let Some(mut reserve) = RESERVE.try_lock() else {
        return false;
    };
    let Some((addr, len)) = reserve.take() else {
        return false;
    };
    let (Ok(layout), Some(ptr)) = (
        Layout::from_size_align(len, CHUNK),
        NonNull::new(addr as *mut u8),
    ) else {
        return false;
    };
    // SAFETY: the block came from `allocate` with this very layout in `arm_reserve` and is
    // freed once: it was taken out of `RESERVE` above, under its lock.
    let freed = unsafe { HEAP.0.lock().deallocate(ptr, layout) };
    RESERVE_USED.store(true, core::sync::atomic::Ordering::Relaxed);
    freed
}

/// Whether the reserve went back to the heap since the last call.
pub fn take_reserve_used() -> bool {
    RESERVE_USED.swap(false, core::sync::atomic::Ordering::Relaxed)
}

/// Bytes requests may spend: [`stats`]' free bytes, less the emergency reserve while it is
/// back in the heap (those bytes are for allocations of last resort until the reserve is
/// taken again, not for the requests the memory floors admit).
pub fn free_for_requests() -> usize {
    let free = stats().1;
    if reserve_armed() {
        free
    } else {
        free.saturating_sub(RESERVE_WANTED.load(core::sync::atomic::Ordering::Relaxed))
    }
}

/// Whether the reserve is held.
pub fn reserve_armed() -> bool {
    RESERVE.try_lock().is_some_and(|r| r.is_some())
}

/// Checks what the global heap accepts: above the image, inside the identity map.
fn check_range(base: usize, len: usize) -> Result<(), HeapError> {
    let end = base.checked_add(len).ok_or(HeapError::BadRange)?;
    if (base as u64) < super::layout::image_end()
        || end as u64 > super::layout::IDENTITY_MAP_END
        || len < MIN_REGION
    {
        return Err(HeapError::BadRange);
    }
    Ok(())
}

/// Hands `[base, base + len)` to the allocator as its first region, or prints why not (the
/// heap then stays empty and the first allocation fails). See [`try_init`].
pub fn init(base: usize, len: usize) {
    if let Err(e) = try_init(base, len) {
        crate::kprintln!("xsstub: heap {base:#x}+{len:#x} refused: {e:?}");
    }
}

/// Hands `[base, base + len)` to the allocator as its first region. The range must be RAM
/// the kernel owns exclusively: above the image end and below 4 GiB (checked), not holding
/// loader data such as start info, modules or command lines (the caller's duty).
pub fn try_init(base: usize, len: usize) -> Result<(), HeapError> {
    check_range(base, len)?;
    let mut regions = HEAP.0.lock();
    if !regions.ranges().is_empty() {
        return Err(HeapError::AlreadyInitialized);
    }
    // SAFETY: the range lies above the image (no static, stack or page table in it) and
    // inside the identity map (checked); the caller vouches that nothing else uses it.
    unsafe { regions.add(base, len) }
}

/// Adds `[base, base + len)` as a further region (the first one when the heap has none).
/// Same contract as [`try_init`]; refuses a range overlapping an existing region, a tiny
/// one (below [`MIN_REGION`]) and more than [`MAX_REGIONS`] regions.
pub fn add_region(base: usize, len: usize) -> Result<(), HeapError> {
    check_range(base, len)?;
    // SAFETY: as in `try_init`: above the image, identity mapped, vouched for by the caller.
    unsafe { HEAP.0.lock().add(base, len) }
}

/// Gives `[base, base + len)` to the heap: extends the region that ends at `base` (memory
/// populated right above the heap's top), else adds a region. Same contract as
/// [`try_init`].
pub fn add_memory(base: usize, len: usize) -> Result<(), HeapError> {
    check_range(base, len)?;
    // SAFETY: as in `try_init`: above the image, identity mapped, vouched for by the caller.
    unsafe { HEAP.0.lock().extend_or_add(base, len) }
}

/// Sets the function the global allocator calls, without its lock held, when an
/// allocation finds no room: it gets the bytes wanted and returns the bytes it added with
/// [`add_memory`] (0: none). It must not allocate (an allocation inside would find the
/// heap still full).
pub fn set_grow_hook(f: fn(usize) -> usize) {
    *GROW_HOOK.write() = Some(f);
}

/// The regions `(base, len)`, in the order they were added.
pub fn regions() -> heapless::Vec<(usize, usize), MAX_REGIONS> {
    let regions = HEAP.0.lock();
    regions.ranges().iter().copied().collect()
}

/// Bytes in use and bytes free, summed over every region (see the module documentation).
pub fn stats() -> (usize, usize) {
    HEAP.0.lock().stats()
}

/// Live slab chunks of the global heap.
pub fn chunks() -> usize {
    HEAP.0.lock().chunks()
}

/// The first region `(base, len)`, `(0, 0)` before [`init`].
pub fn range() -> (usize, usize) {
    let regions = HEAP.0.lock();
    regions.ranges().first().copied().unwrap_or((0, 0))
}

/// Why [`init_from_start_info`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapSetupError {
    /// The start info or its memory map could not be used.
    StartInfo(super::startinfo::StartInfoError),
    /// The chosen range was refused.
    Heap(HeapError, u64, u64),
}

impl core::fmt::Display for HeapSetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeapSetupError::StartInfo(e) => write!(f, "{e}"),
            HeapSetupError::Heap(e, lo, hi) => write!(f, "{e:?} for {lo:#x}..{hi:#x}"),
        }
    }
}

/// Initialises the heap over the largest RAM range above the image that holds no loader
/// data (bare QEMU; under Xen the memory map comes from `XENMEM_memory_map` instead). The
/// RAM comes from the start info's memory map, or, when it has none (a live-update
/// hand-over's start info), from QEMU's fw_cfg `etc/e820`. Returns the range.
pub fn init_from_start_info(start_info_paddr: u64) -> Result<(u64, u64), HeapSetupError> {
    let si =
        super::startinfo::StartInfo::read(start_info_paddr).map_err(HeapSetupError::StartInfo)?;
    let floor = super::layout::image_end();
    let (lo, hi) = if si.memmap_entries > 0 {
        si.heap_region(start_info_paddr, floor)
    } else {
        let map = super::fwcfg::e820().ok_or(HeapSetupError::StartInfo(
            super::startinfo::StartInfoError::NoRam,
        ))?;
        let ram = map
            .iter()
            .filter(|e| e.kind == super::startinfo::E820_RAM)
            .map(|e| (e.addr, e.addr.saturating_add(e.size)));
        si.heap_region_in(ram, start_info_paddr, floor)
    }
    .map_err(HeapSetupError::StartInfo)?;
    let refused = |e| HeapSetupError::Heap(e, lo, hi);
    let base = usize::try_from(lo).map_err(|_| refused(HeapError::BadRange))?;
    let len = usize::try_from(hi - lo).map_err(|_| refused(HeapError::BadRange))?;
    try_init(base, len).map_err(refused)?;
    Ok((lo, hi))
}
