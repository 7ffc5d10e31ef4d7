//! The kernel heap: up to [`MAX_REGIONS`] ranges of RAM, each a `linked_list_allocator` heap.
//!
//! The first region comes from [`init`]/[`try_init`] at boot; [`add_region`] adds more later
//! (a live update's restore gives the pages of the inherited state back this way).
//! Allocation tries the regions in the order they were added; deallocation goes to the
//! region holding the pointer. Every region sits behind one spin lock: interrupt handlers
//! must not allocate.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spinning_top::Spinlock;

/// How many regions the heap can hold.
pub const MAX_REGIONS: usize = 4;

/// The smallest region accepted.
pub const MIN_REGION: usize = 4096;

/// Why a range was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// [`try_init`] was called when the heap already had a region.
    AlreadyInitialized,
    /// The range overlaps the image or leaves the identity map, or is too small.
    BadRange,
    /// The range overlaps a region the heap already has.
    Overlap,
    /// The heap already has [`MAX_REGIONS`] regions.
    TooManyRegions,
}

impl core::fmt::Display for HeapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            HeapError::AlreadyInitialized => "the heap is already initialised",
            HeapError::BadRange => "range below the image end, above 4 GiB or too small",
            HeapError::Overlap => "range overlaps a heap region",
            HeapError::TooManyRegions => "no free heap region slot",
        })
    }
}

/// Block sizes served from per-size free lists (a power of two each; a block is aligned to
/// its size). First fit over one long free list costs O(free blocks) per call, which made a
/// 100k-node restore quadratic; small blocks now cost O(1).
const CLASSES: [usize; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];
/// Bytes taken from the regions at a time to carve a size class's blocks from.
const CHUNK: usize = 16 * 1024;

/// The size class serving `layout`, if it is small.
fn class_of(layout: Layout) -> Option<usize> {
    let need = layout.size().max(layout.align()).max(8);
    CLASSES.iter().position(|&c| c >= need)
}

/// A set of up to [`MAX_REGIONS`] heaps, in the order they were added, with free lists of
/// small blocks in front.
pub struct Regions {
    heaps: [Heap; MAX_REGIONS],
    /// The ranges as given, `(base, len)`; the first `count` are in use.
    ranges: [(usize, usize); MAX_REGIONS],
    count: usize,
    /// Head of each size class's free list (0: empty); a free block's first word links on.
    free_lists: [usize; CLASSES.len()],
    /// Bytes sitting in the free lists (counted as free by [`Regions::stats`]).
    cached: usize,
}

impl Regions {
    /// No region.
    pub const fn new() -> Self {
        Regions {
            heaps: [const { Heap::empty() }; MAX_REGIONS],
            ranges: [(0, 0); MAX_REGIONS],
            count: 0,
            free_lists: [0; CLASSES.len()],
            cached: 0,
        }
    }

    /// Adds `[base, base + len)` as the next region. Refuses empty, tiny (below
    /// [`MIN_REGION`]), wrapping or overlapping ranges, and a fifth region.
    ///
    /// # Safety
    /// The range must be memory nobody else uses for as long as this set lives, valid for
    /// reads and writes (identity mapped RAM).
    pub unsafe fn add(&mut self, base: usize, len: usize) -> Result<(), HeapError> {
        let end = base.checked_add(len).ok_or(HeapError::BadRange)?;
        if base == 0 || len < MIN_REGION {
            return Err(HeapError::BadRange);
        }
        if self.ranges().iter().any(|&(b, l)| base < b + l && b < end) {
            return Err(HeapError::Overlap);
        }
        let (Some(heap), Some(range)) = (
            self.heaps.get_mut(self.count),
            self.ranges.get_mut(self.count),
        ) else {
            return Err(HeapError::TooManyRegions);
        };
        // SAFETY: the caller vouches for the range (exclusive, valid RAM); it is non-null,
        // at least MIN_REGION bytes (more than the allocator's metadata needs), overlaps no
        // other region, and this slot's heap was never initialised (slots are used once).
        unsafe { heap.init(base as *mut u8, len) };
        *range = (base, len);
        self.count += 1;
        Ok(())
    }

    /// The regions as given, `(base, len)`, in the order they were added.
    pub fn ranges(&self) -> &[(usize, usize)] {
        self.ranges.get(..self.count).unwrap_or(&[])
    }

    /// Bytes in use and bytes free, over every region (blocks waiting in the small-block
    /// free lists count as free).
    pub fn stats(&self) -> (usize, usize) {
        let (used, free) = self
            .heaps
            .iter()
            .take(self.count)
            .fold((0, 0), |(u, f), h| (u + h.used(), f + h.free()));
        (used.saturating_sub(self.cached), free + self.cached)
    }

    /// Allocates: small blocks from their size class, others from the first region with
    /// room; `None` when none has.
    pub fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        match class_of(layout) {
            Some(i) => self.allocate_small(i),
            None => self.allocate_large(layout),
        }
    }

    fn allocate_large(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.heaps
            .iter_mut()
            .take(self.count)
            .find_map(|h| h.allocate_first_fit(layout).ok())
    }

    fn allocate_small(&mut self, class: usize) -> Option<NonNull<u8>> {
        let size = *CLASSES.get(class)?;
        if self.free_lists.get(class).copied().unwrap_or(0) == 0 {
            // Carve a chunk into blocks of this class (aligned: the chunk is 4 KiB-aligned
            // and every class divides 4 KiB).
            let chunk = self.allocate_large(Layout::from_size_align(CHUNK, 4096).ok()?)?;
            let base = chunk.as_ptr() as usize;
            for k in (0..CHUNK / size).rev() {
                let block = base + k * size;
                // SAFETY: `block` lies inside the chunk just allocated for this purpose, is
                // aligned to at least 8 and at least 16 bytes long; writing its link word is
                // how the free list is kept.
                unsafe { core::ptr::write(block as *mut usize, self.free_lists[class]) };
                self.free_lists[class] = block;
            }
            self.cached += CHUNK;
        }
        let head = self.free_lists.get(class).copied().filter(|&h| h != 0)?;
        // SAFETY: `head` is a free block of this class owned by the list; its first word is
        // the link to the next free block (written when it was pushed).
        let next = unsafe { core::ptr::read(head as *const usize) };
        self.free_lists[class] = next;
        self.cached -= size;
        NonNull::new(head as *mut u8)
    }

    /// Frees `ptr` into the region that holds it; false (nothing freed) when none does.
    ///
    /// # Safety
    /// `ptr` must come from [`Regions::allocate`] of this set with the same `layout`, and
    /// must not have been freed already.
    pub unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) -> bool {
        let addr = ptr.as_ptr() as usize;
        if let Some(class) = class_of(layout) {
            if !self
                .ranges()
                .iter()
                .any(|&(b, l)| b <= addr && addr < b + l)
            {
                return false;
            }
            // SAFETY: the caller guarantees the block came from `allocate` with this layout,
            // so from this size class: at least 16 bytes, 8-aligned, ours until reused.
            unsafe { core::ptr::write(addr as *mut usize, self.free_lists[class]) };
            self.free_lists[class] = addr;
            self.cached += CLASSES[class];
            return true;
        }
        let count = self.count;
        let Some(heap) = self
            .heaps
            .iter_mut()
            .take(count)
            .find(|h| (h.bottom() as usize) <= addr && addr < h.top() as usize)
        else {
            return false;
        };
        // SAFETY: the caller guarantees `ptr` came from `allocate` with `layout`; `allocate`
        // hands out memory inside the region that served it, which is the only region whose
        // range holds `ptr` (regions do not overlap).
        unsafe { heap.deallocate(ptr, layout) };
        true
    }
}

impl Default for Regions {
    fn default() -> Self {
        Regions::new()
    }
}

/// The global allocator: [`Regions`] behind a spin lock.
struct KernelHeap(Spinlock<Regions>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(Spinlock::new(Regions::new()));

// SAFETY: `alloc` returns memory from a region only this allocator hands out (each region
// was given to it exclusively), aligned and sized as `layout` asks (linked_list_allocator's
// first fit does that), or null; `dealloc` returns it to the region it came from. The spin
// lock serialises every access to the region set.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
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
            crate::kprintln!("xsstub: heap: free of {ptr:p} outside every region ignored");
        }
    }
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
    if regions.count != 0 {
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

/// The regions `(base, len)`, in the order they were added.
pub fn regions() -> heapless::Vec<(usize, usize), MAX_REGIONS> {
    let regions = HEAP.0.lock();
    regions.ranges().iter().copied().collect()
}

/// Bytes in use and bytes free, summed over every region.
pub fn stats() -> (usize, usize) {
    HEAP.0.lock().stats()
}

/// The first region `(base, len)`, `(0, 0)` before [`init`].
pub fn range() -> (usize, usize) {
    let regions = HEAP.0.lock();
    regions.ranges().first().copied().unwrap_or((0, 0))
}

/// Exercises [`Regions`] on two blocks leaked from the global heap (a self-test): order of
/// allocation, deallocation into the right region, refusals. Returns what failed.
pub fn self_test() -> Result<(), &'static str> {
    const BLOCK: usize = 64 * 1024;
    // Two page-aligned blocks the global heap will never see again (leaked).
    let a = alloc::boxed::Box::leak(alloc::vec![0u8; BLOCK + 4096].into_boxed_slice());
    let b = alloc::boxed::Box::leak(alloc::vec![0u8; BLOCK + 4096].into_boxed_slice());
    let page = |s: &mut [u8]| (s.as_mut_ptr() as usize + 4095) & !4095;
    let (a, b) = (page(a), page(b));
    let mut r = Regions::new();
    // SAFETY: for every `add` below: [a, a + BLOCK) and [b, b + BLOCK) lie inside leaked
    // allocations nobody else references; `r` lives only in this function.
    unsafe {
        if r.add(a, 100) != Err(HeapError::BadRange) {
            return Err("a tiny region was accepted");
        }
        r.add(a, BLOCK).map_err(|_| "first region refused")?;
        if r.add(a + 4096, BLOCK) != Err(HeapError::Overlap) {
            return Err("an overlapping region was accepted");
        }
        r.add(b, BLOCK).map_err(|_| "second region refused")?;
    }
    if r.ranges() != [(a, BLOCK), (b, BLOCK)] {
        return Err("ranges");
    }
    let small = Layout::from_size_align(4096, 8).map_err(|_| "layout")?;
    // The first region serves until it is full, then the second.
    let mut got: heapless::Vec<NonNull<u8>, 64> = heapless::Vec::new();
    while let Some(p) = r.allocate(small) {
        if got.push(p).is_err() {
            return Err("more 4 KiB blocks than two 64 KiB regions hold");
        }
    }
    let in_a = got
        .iter()
        .filter(|p| (a..a + BLOCK).contains(&(p.as_ptr() as usize)))
        .count();
    let in_b = got
        .iter()
        .filter(|p| (b..b + BLOCK).contains(&(p.as_ptr() as usize)))
        .count();
    if in_a == 0 || in_b == 0 || in_a + in_b != got.len() {
        return Err("allocations not spread over both regions");
    }
    if got
        .first()
        .is_none_or(|p| !(a..a + BLOCK).contains(&(p.as_ptr() as usize)))
    {
        return Err("the first allocation did not come from the first region");
    }
    let (used, _) = r.stats();
    if used != got.len() * 4096 {
        return Err("stats: used");
    }
    for p in &got {
        // SAFETY: each pointer came from `r.allocate(small)` and is freed once.
        if !unsafe { r.deallocate(*p, small) } {
            return Err("a block was not returned to its region");
        }
    }
    if r.stats().0 != 0 {
        return Err("stats after freeing everything");
    }
    let outside = NonNull::dangling();
    // SAFETY: `deallocate` finds no region for this pointer and touches nothing.
    if unsafe { r.deallocate(outside, small) } {
        return Err("a pointer outside every region was freed");
    }
    Ok(())
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
