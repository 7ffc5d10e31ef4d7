//! The kernel heap: RAM regions (`linked_list_allocator` heaps) with slabs for small blocks.
//!
//! Regions: the first comes from [`init`]/[`try_init`] at boot; [`add_region`] adds more (a
//! live update's restore gives the inherited state's pages back this way) and [`add_memory`]
//! extends the region that ends where the new memory starts (heap growth), or adds one.
//! Large blocks (over 2 KiB, or aligned to more than 64 bytes) come first fit from the
//! regions, in the order they were added; a block is freed into the region holding it.
//!
//! Small blocks come from slabs: [`CHUNK`]-byte chunks aligned to their size, taken from
//! the regions, each serving one size class of [`CLASSES`]. A chunk starts with a 64-byte
//! header (magic, class, free count, its free list, its links in the class's list of chunks
//! with a free block); a block finds its chunk by masking its address, and its class from
//! the layout `dealloc` is given. Blocks are carved lazily; a freed block goes to its chunk's
//! free list; when a chunk's last block is freed the chunk goes back to its region, so
//! memory one class freed serves any size again and a workload that frees everything leaves
//! the figures where they were. Small allocations and frees are O(1); a new chunk costs one
//! first-fit search.
//!
//! [`stats`]: `used` is every byte that cannot be allocated: blocks handed out (small ones
//! at their class size), chunk headers, chunk tails too short for a block, and the regions'
//! rounding; `free` is what can be: the regions' holes plus the free blocks of live chunks.
//! `used + free` is the regions' total size.
//!
//! Every region sits behind one spin lock: interrupt handlers must not allocate. When an
//! allocation finds no room, the global allocator releases the lock, asks the grow hook
//! ([`set_grow_hook`]) for memory and tries once more.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use spin::Mutex as Spinlock;

/// How many regions the heap can hold.
pub const MAX_REGIONS: usize = 16;

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

/// The small-block size classes, in bytes. A block of class `c` is aligned to the largest
/// power of two dividing `c`, at most 64 ([`block_align`]).
pub const CLASSES: [usize; 15] = [
    16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
];
/// Bytes of one slab chunk, which is also its alignment.
pub const CHUNK: usize = 16 * 1024;
/// Bytes at the start of a chunk kept for its header; blocks follow.
const HEADER: usize = 64;
/// The largest alignment a small block gets (the header's size: blocks start there).
const MAX_SMALL_ALIGN: usize = HEADER;
/// A live chunk's header starts with this.
const MAGIC: u32 = 0x5ab1_c0de;

/// The alignment of every block of a class of `size` bytes.
const fn block_align(size: usize) -> usize {
    let a = 1usize << size.trailing_zeros();
    if a > MAX_SMALL_ALIGN {
        MAX_SMALL_ALIGN
    } else {
        a
    }
}

/// Blocks of `size` bytes in one chunk.
const fn blocks_per_chunk(size: usize) -> usize {
    (CHUNK - HEADER) / size
}

/// The size class serving `layout` (the smallest class big and aligned enough), if small.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > MAX_SMALL_ALIGN {
        return None;
    }
    let size = layout.size().max(1);
    CLASSES
        .iter()
        .position(|&c| c >= size && block_align(c) >= layout.align())
}

/// The header at the start of every live chunk.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ChunkHeader {
    /// [`MAGIC`] while the chunk is live.
    magic: u32,
    /// Index in [`CLASSES`].
    class: u32,
    /// Free blocks, never-carved ones included.
    free: u32,
    /// Offset of the first block never handed out.
    carved: u32,
    /// The first block of the chunk's free list (0: empty); a free block's first word links
    /// on.
    free_head: usize,
    /// The previous chunk in the class's list of chunks with a free block (0: none).
    prev: usize,
    /// The next chunk in that list (0: none).
    next: usize,
}
const _: () = assert!(core::mem::size_of::<ChunkHeader>() <= HEADER);
const _: () = assert!(CHUNK.is_power_of_two() && CLASSES[CLASSES.len() - 1] <= CHUNK / 4);

/// Reads the header at `chunk`.
///
/// # Safety
/// `[chunk, chunk + HEADER)` must lie inside a region of the set calling this (RAM it owns,
/// identity mapped), and `chunk` must be aligned to [`CHUNK`]. Any bit pattern is a valid
/// header, so this holds even for memory that is not a chunk: callers check the magic.
unsafe fn read_header(chunk: usize) -> ChunkHeader {
    // SAFETY: the caller guarantees the bytes are owned, readable RAM and the address is
    // aligned (CHUNK is far above the header's alignment); every bit pattern is valid.
    unsafe { core::ptr::read(chunk as *const ChunkHeader) }
}

/// Writes the header at `chunk`.
///
/// # Safety
/// `chunk` must be a chunk this set carved out of its regions and still holds (live, or
/// being created or released under the caller's exclusive access).
unsafe fn write_header(chunk: usize, h: ChunkHeader) {
    // SAFETY: the caller guarantees the chunk is ours: its first HEADER bytes are the
    // header, written by nobody else; CHUNK alignment suits the header.
    unsafe { core::ptr::write(chunk as *mut ChunkHeader, h) }
}

/// Reads the link word of a free block.
///
/// # Safety
/// `block` must be a free block of a live chunk of this set (at least 16 bytes, aligned to
/// 8, not handed out).
unsafe fn read_link(block: usize) -> usize {
    // SAFETY: the caller guarantees the block is a free block we own; its first word is
    // the link written when it was freed.
    unsafe { core::ptr::read(block as *const usize) }
}

/// Writes the link word of a block being freed.
///
/// # Safety
/// `block` must be a block of a live chunk of this set that its caller just gave back.
unsafe fn write_link(block: usize, next: usize) {
    // SAFETY: the caller guarantees the block is ours again (freed), at least 16 bytes and
    // 8-aligned (every class is a multiple of 8 from a 64-aligned start).
    unsafe { core::ptr::write(block as *mut usize, next) }
}

/// A set of up to [`MAX_REGIONS`] heaps, in the order they were added, with slabs of small
/// blocks in front.
pub struct Regions {
    heaps: [Heap; MAX_REGIONS],
    /// The ranges, `(base, len)` (grown by [`Regions::extend_or_add`]); the first `count`
    /// are in use.
    ranges: [(usize, usize); MAX_REGIONS],
    count: usize,
    /// Per class, the first chunk with a free block (0: none).
    partial: [usize; CLASSES.len()],
    /// Bytes of the free blocks of live chunks (counted as free by [`Regions::stats`]).
    slab_free: usize,
    /// Live chunks.
    chunks: usize,
}

impl Regions {
    /// No region.
    pub const fn new() -> Self {
        Regions {
            heaps: [const { Heap::empty() }; MAX_REGIONS],
            ranges: [(0, 0); MAX_REGIONS],
            count: 0,
            partial: [0; CLASSES.len()],
            slab_free: 0,
            chunks: 0,
        }
    }

    /// Adds `[base, base + len)` as the next region. Refuses empty, tiny (below
    /// [`MIN_REGION`]), wrapping or overlapping ranges, and more than [`MAX_REGIONS`].
    ///
    /// # Safety
    /// The range must be memory nobody else uses for as long as this set lives, valid for
    /// reads and writes (identity mapped RAM).
    pub unsafe fn add(&mut self, base: usize, len: usize) -> Result<(), HeapError> {
        self.check_new(base, len)?;
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

    /// Gives `[base, base + len)` to the set: it extends the region ending at `base` when
    /// there is one (heap growth above the top), else it becomes a new region. Refuses what
    /// [`Regions::add`] refuses.
    ///
    /// # Safety
    /// As [`Regions::add`].
    pub unsafe fn extend_or_add(&mut self, base: usize, len: usize) -> Result<(), HeapError> {
        self.check_new(base, len)?;
        let count = self.count;
        let below = self
            .heaps
            .iter_mut()
            .zip(self.ranges.iter_mut())
            .take(count)
            .find(|(h, r)| h.top() as usize == base && r.0.checked_add(r.1) == Some(base));
        match below {
            Some((heap, range)) => {
                // SAFETY: the caller vouches for [base, base + len) (exclusive, valid RAM);
                // it starts exactly at this heap's top (checked), as `extend` requires, and
                // overlaps no region (checked); the heap is initialised (index < count).
                unsafe { heap.extend(len) };
                range.1 += len;
                Ok(())
            }
            // SAFETY: forwarded from the caller.
            None => unsafe { self.add(base, len) },
        }
    }

    /// Refuses empty, tiny, wrapping and overlapping ranges.
    fn check_new(&self, base: usize, len: usize) -> Result<(), HeapError> {
        let end = base.checked_add(len).ok_or(HeapError::BadRange)?;
        if base == 0 || len < MIN_REGION {
            return Err(HeapError::BadRange);
        }
        if self
            .ranges()
            .iter()
            .any(|&(b, l)| base < b.saturating_add(l) && b < end)
        {
            return Err(HeapError::Overlap);
        }
        Ok(())
    }

    /// The regions, `(base, len)`, in the order they were added.
    pub fn ranges(&self) -> &[(usize, usize)] {
        self.ranges.get(..self.count).unwrap_or(&[])
    }

    /// Whether `[addr, addr + len)` lies inside one region.
    fn holds(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.ranges()
            .iter()
            .any(|&(b, l)| b <= addr && end <= b.saturating_add(l))
    }

    /// Bytes in use and bytes free over every region (see the module documentation).
    pub fn stats(&self) -> (usize, usize) {
        let (used, free) = self
            .heaps
            .iter()
            .take(self.count)
            .fold((0usize, 0usize), |(u, f), h| {
                (u.saturating_add(h.used()), f.saturating_add(h.free()))
            });
        (
            used.saturating_sub(self.slab_free),
            free.saturating_add(self.slab_free),
        )
    }

    /// Live slab chunks.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Allocates: small blocks from their class's slabs, others first fit from the regions;
    /// `None` when there is no room.
    pub fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        match class_of(layout) {
            Some(class) => self.allocate_small(class),
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
        let mut chunk = self.partial.get(class).copied().unwrap_or(0);
        if chunk == 0 {
            chunk = self.new_chunk(class)?;
        }
        // SAFETY: chunks on a class's list are live chunks of this set.
        let mut h = unsafe { read_header(chunk) };
        let free = h.free.checked_sub(1)?;
        let block = if h.free_head != 0 {
            let block = h.free_head;
            // SAFETY: the head of a live chunk's free list is a free block of that chunk.
            h.free_head = unsafe { read_link(block) };
            block
        } else {
            // Nothing freed to reuse: the next never-used block (there is one, as the free
            // count says).
            let block = chunk.checked_add(h.carved as usize)?;
            h.carved = h.carved.checked_add(u32::try_from(size).ok()?)?;
            block
        };
        h.free = free;
        self.slab_free = self.slab_free.saturating_sub(size);
        if free == 0 {
            self.unlink(class, chunk, &mut h);
        }
        // SAFETY: `chunk` is a live chunk of this set.
        unsafe { write_header(chunk, h) };
        NonNull::new(block as *mut u8)
    }

    /// Carves a new chunk for `class` from the regions and puts it first on the class's
    /// list; returns its address.
    fn new_chunk(&mut self, class: usize) -> Option<usize> {
        let size = *CLASSES.get(class)?;
        let layout = Layout::from_size_align(CHUNK, CHUNK).ok()?;
        let chunk = self.allocate_large(layout)?.as_ptr() as usize;
        let total = blocks_per_chunk(size);
        let mut h = ChunkHeader {
            magic: MAGIC,
            class: u32::try_from(class).ok()?,
            free: u32::try_from(total).ok()?,
            carved: HEADER as u32,
            free_head: 0,
            prev: 0,
            next: 0,
        };
        self.push_front(class, chunk, &mut h);
        // SAFETY: the chunk was just allocated from our regions for this purpose.
        unsafe { write_header(chunk, h) };
        self.slab_free = self.slab_free.saturating_add(total * size);
        self.chunks += 1;
        Some(chunk)
    }

    /// Puts `chunk` (header `h`, written back by the caller) first on its class's list.
    fn push_front(&mut self, class: usize, chunk: usize, h: &mut ChunkHeader) {
        let Some(head) = self.partial.get_mut(class) else {
            return;
        };
        h.prev = 0;
        h.next = *head;
        if *head != 0 {
            // SAFETY: a class list holds live chunks of this set only; `head` is not
            // `chunk` (a chunk is pushed only when it is on no list).
            let mut n = unsafe { read_header(*head) };
            n.prev = chunk;
            // SAFETY: as above.
            unsafe { write_header(*head, n) };
        }
        *head = chunk;
    }

    /// Takes `chunk` (header `h`, written back by the caller) off its class's list.
    fn unlink(&mut self, class: usize, chunk: usize, h: &mut ChunkHeader) {
        if h.prev != 0 {
            // SAFETY: list neighbours are live chunks of this set, other than `chunk`.
            let mut p = unsafe { read_header(h.prev) };
            p.next = h.next;
            // SAFETY: as above.
            unsafe { write_header(h.prev, p) };
        } else if let Some(head) = self.partial.get_mut(class) {
            if *head == chunk {
                *head = h.next;
            }
        }
        if h.next != 0 {
            // SAFETY: as above.
            let mut n = unsafe { read_header(h.next) };
            n.prev = h.prev;
            // SAFETY: as above.
            unsafe { write_header(h.next, n) };
        }
        h.prev = 0;
        h.next = 0;
    }

    /// Frees `ptr` into its chunk or region; false (nothing freed) when it is not one of
    /// ours (outside every region, or not a block of a live chunk of its class).
    ///
    /// # Safety
    /// `ptr` must come from [`Regions::allocate`] of this set with the same `layout`, and
    /// must not have been freed already.
    pub unsafe fn deallocate(&mut self, ptr: NonNull<u8>, layout: Layout) -> bool {
        let addr = ptr.as_ptr() as usize;
        if let Some(class) = class_of(layout) {
            return self.deallocate_small(addr, class);
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
        // SAFETY: the caller guarantees `ptr` came from `allocate` with `layout`, which for
        // a large layout hands out memory of the region that served it: the only region
        // whose range holds `ptr` (regions do not overlap).
        unsafe { heap.deallocate(ptr, layout) };
        true
    }

    fn deallocate_small(&mut self, addr: usize, class: usize) -> bool {
        let Some(&size) = CLASSES.get(class) else {
            return false;
        };
        let chunk = addr & !(CHUNK - 1);
        if !self.holds(chunk, CHUNK) {
            return false;
        }
        // SAFETY: the chunk-sized range at `chunk` lies inside one of our regions (checked)
        // and is CHUNK-aligned; whether it is a live chunk is checked below.
        let mut h = unsafe { read_header(chunk) };
        let total = blocks_per_chunk(size);
        let offset = addr - chunk;
        let ours = h.magic == MAGIC
            && h.class as usize == class
            && offset >= HEADER
            && offset < h.carved as usize
            && (offset - HEADER).is_multiple_of(size)
            && (h.free as usize) < total;
        if !ours {
            return false;
        }
        // SAFETY: `addr` is a block of this live chunk (checked: magic, class, a carved
        // block boundary), handed out (the caller frees it once).
        unsafe { write_link(addr, h.free_head) };
        h.free_head = addr;
        h.free += 1;
        self.slab_free = self.slab_free.saturating_add(size);
        if h.free as usize == total {
            // Empty: off the list (it is on it: it had a free block before this one, as a
            // chunk holds at least two blocks) and back to its region.
            self.unlink(class, chunk, &mut h);
            self.release_chunk(chunk, h, total * size);
        } else {
            if h.free == 1 {
                // It was full, so on no list.
                self.push_front(class, chunk, &mut h);
            }
            // SAFETY: `chunk` is a live chunk of this set.
            unsafe { write_header(chunk, h) };
        }
        true
    }

    /// Returns an empty chunk (already off its list) to its region.
    fn release_chunk(&mut self, chunk: usize, mut h: ChunkHeader, block_bytes: usize) {
        h.magic = 0;
        // SAFETY: `chunk` is still ours until it is freed below.
        unsafe { write_header(chunk, h) };
        self.slab_free = self.slab_free.saturating_sub(block_bytes);
        self.chunks = self.chunks.saturating_sub(1);
        let (Ok(layout), Some(ptr)) = (
            Layout::from_size_align(CHUNK, CHUNK),
            NonNull::new(chunk as *mut u8),
        ) else {
            return;
        };
        // SAFETY: the chunk came from `allocate_large` with this very layout in
        // `new_chunk` and is freed once (it was live until now; no block of it is out).
        unsafe { self.deallocate(ptr, layout) };
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
/// Set when the reserve went back to the heap; cleared by [`take_reserve_used`].
static RESERVE_USED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Takes `len` bytes (CHUNK-aligned) from the heap as the emergency reserve, unless one is
/// held; returns whether one is held now. Never grows the heap.
pub fn arm_reserve(len: usize) -> bool {
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

/// Leaks a zeroed block of `len` bytes from the global heap and returns a `CHUNK`-aligned
/// address inside it with `len - CHUNK` bytes after it (for a test's own [`Regions`]).
fn leaked_block(len: usize) -> usize {
    let block = alloc::boxed::Box::leak(alloc::vec![0u8; len].into_boxed_slice());
    (block.as_mut_ptr() as usize).next_multiple_of(CHUNK)
}

/// Exercises [`Regions`] on blocks leaked from the global heap (a self-test): order of
/// allocation, deallocation into the right region, refusals, growth by extension, and the
/// slabs. Returns what failed.
pub fn self_test() -> Result<(), &'static str> {
    const BLOCK: usize = 64 * 1024;
    // Two blocks the global heap will never see again (leaked).
    let (a, b) = (leaked_block(BLOCK + CHUNK), leaked_block(BLOCK + CHUNK));
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
    let big = Layout::from_size_align(4096, 8).map_err(|_| "layout")?;
    // The first region serves until it is full, then the second.
    let mut got: heapless::Vec<NonNull<u8>, 64> = heapless::Vec::new();
    while let Some(p) = r.allocate(big) {
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
        // SAFETY: each pointer came from `r.allocate(big)` and is freed once.
        if !unsafe { r.deallocate(*p, big) } {
            return Err("a block was not returned to its region");
        }
    }
    if r.stats().0 != 0 {
        return Err("stats after freeing everything");
    }
    let outside = NonNull::dangling();
    // SAFETY: `deallocate` finds no region for this pointer and touches nothing.
    if unsafe { r.deallocate(outside, big) } {
        return Err("a pointer outside every region was freed");
    }
    extend_test()?;
    slab_test()
}

/// Growth: memory right above a region extends it (a block larger than the old region then
/// fits); memory elsewhere becomes a new region.
fn extend_test() -> Result<(), &'static str> {
    const HALF: usize = 64 * 1024;
    let a = leaked_block(4 * HALF + CHUNK);
    let mut r = Regions::new();
    // SAFETY: [a, a + 4 * HALF) lies inside a leaked allocation nobody else references; `r`
    // lives only in this function.
    unsafe {
        r.add(a, HALF).map_err(|_| "region refused")?;
        r.extend_or_add(a + HALF, HALF)
            .map_err(|_| "extension refused")?;
        if r.extend_or_add(a + HALF, HALF) != Err(HeapError::Overlap) {
            return Err("an extension over the region was accepted");
        }
        r.extend_or_add(a + 3 * HALF, HALF)
            .map_err(|_| "a detached range refused")?;
    }
    if r.ranges() != [(a, 2 * HALF), (a + 3 * HALF, HALF)] {
        return Err("ranges after extension");
    }
    if r.stats() != (0, 3 * HALF) {
        return Err("stats after extension");
    }
    let wide = Layout::from_size_align(HALF + HALF / 2, 8).map_err(|_| "layout")?;
    let p = r.allocate(wide).ok_or("no block across the extension")?;
    // SAFETY: `p` came from `r.allocate(wide)` and is freed once.
    if !unsafe { r.deallocate(p, wide) } || r.stats() != (0, 3 * HALF) {
        return Err("stats after the block across the extension");
    }
    Ok(())
}

/// Layouts the slab test cycles through: sizes around every class, alignments up to 64.
const SLAB_SIZES: [(usize, usize); 18] = [
    (1, 1),
    (8, 8),
    (17, 1),
    (24, 8),
    (20, 16),
    (40, 8),
    (48, 16),
    (64, 64),
    (100, 4),
    (128, 8),
    (200, 8),
    (256, 32),
    (300, 8),
    (512, 64),
    (700, 4),
    (1024, 8),
    (1500, 4),
    (2048, 64),
];

/// The slabs: alignment, no overlap (every block keeps its own pattern), chunk release once
/// a chunk's blocks are all free, figures back to the start, freed memory reusable by any
/// size, refusal of a block freed with the wrong layout.
fn slab_test() -> Result<(), &'static str> {
    const LEN: usize = 512 * 1024;
    let base = leaked_block(LEN + CHUNK);
    let mut r = Regions::new();
    // SAFETY: [base, base + LEN) lies inside a leaked allocation nobody else references; `r`
    // lives only in this function.
    unsafe { r.add(base, LEN).map_err(|_| "slab region refused")? };
    let start = r.stats();
    let mut live: heapless::Vec<(NonNull<u8>, Layout, u8), 600> = heapless::Vec::new();
    for i in 0..600usize {
        let &(size, align) = SLAB_SIZES.get(i % SLAB_SIZES.len()).ok_or("sizes")?;
        let layout = Layout::from_size_align(size, align).map_err(|_| "layout")?;
        let p = r.allocate(layout).ok_or("slab allocation failed")?;
        let addr = p.as_ptr() as usize;
        if !addr.is_multiple_of(align) || !(base..base + LEN).contains(&addr) {
            return Err("slab block misaligned or outside its region");
        }
        let tag = (i % 251) as u8;
        // SAFETY: `p` is a fresh block of at least `size` bytes, ours until freed.
        unsafe { core::ptr::write_bytes(p.as_ptr(), tag, size) };
        live.push((p, layout, tag)).map_err(|_| "live list")?;
    }
    let check = |live: &[(NonNull<u8>, Layout, u8)]| {
        live.iter().all(|&(p, layout, tag)| {
            // SAFETY: every listed block is live and was filled with its tag.
            let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), layout.size()) };
            bytes.iter().all(|&x| x == tag)
        })
    };
    if !check(&live) {
        return Err("slab blocks overlap");
    }
    if r.chunks() < CLASSES.len() || r.stats().0 <= start.0 {
        return Err("slab chunks or figures after allocating");
    }
    // Wrong layout: refused, nothing changes.
    let &(p0, _, _) = live.first().ok_or("live")?;
    let wrong = Layout::from_size_align(512, 8).map_err(|_| "layout")?;
    // SAFETY: deliberately the wrong layout: `deallocate` must detect it and touch nothing.
    if unsafe { r.deallocate(p0, wrong) } {
        return Err("a block freed with the wrong class was accepted");
    }
    // Free every other block, check the rest, then free the rest backwards.
    let mut kept: heapless::Vec<(NonNull<u8>, Layout, u8), 600> = heapless::Vec::new();
    for (i, &(p, layout, tag)) in live.iter().enumerate() {
        if i % 2 == 0 {
            // SAFETY: each block came from `r.allocate(layout)` and is freed once.
            if !unsafe { r.deallocate(p, layout) } {
                return Err("a slab block was refused");
            }
        } else {
            kept.push((p, layout, tag)).map_err(|_| "kept list")?;
        }
    }
    if !check(&kept) {
        return Err("freeing blocks damaged their neighbours");
    }
    for &(p, layout, _) in kept.iter().rev() {
        // SAFETY: each block came from `r.allocate(layout)` and is freed once.
        if !unsafe { r.deallocate(p, layout) } {
            return Err("a slab block was refused");
        }
    }
    if r.chunks() != 0 || r.stats() != start {
        return Err("chunks not released or figures not back after freeing everything");
    }
    // Fill the region with 40-byte blocks, free them all: the memory serves one big block.
    let node = Layout::from_size_align(40, 8).map_err(|_| "layout")?;
    let mut first: Option<NonNull<u8>> = None;
    let mut n = 0usize;
    // Too many blocks for a list: chain them through their first words.
    while let Some(p) = r.allocate(node) {
        // SAFETY: `p` is a fresh 48-byte block, ours until freed; its first word links to
        // the previous one.
        unsafe {
            core::ptr::write(
                p.as_ptr() as *mut usize,
                first.map_or(0, |f| f.as_ptr() as usize),
            )
        };
        first = Some(p);
        n += 1;
    }
    if n < LEN / 2 / 48 {
        return Err("40-byte blocks did not fill the region");
    }
    let mut at = first;
    while let Some(p) = at {
        // SAFETY: the chain links blocks allocated above, each freed once after its link is
        // read.
        let next = unsafe { core::ptr::read(p.as_ptr() as *const usize) };
        // SAFETY: as above.
        if !unsafe { r.deallocate(p, node) } {
            return Err("a 40-byte block was refused");
        }
        at = NonNull::new(next as *mut u8);
    }
    if r.chunks() != 0 || r.stats() != start {
        return Err("figures not back after the 40-byte fill");
    }
    let whole = Layout::from_size_align(LEN - 2 * CHUNK, 8).map_err(|_| "layout")?;
    let p = r
        .allocate(whole)
        .ok_or("memory freed by small blocks does not serve a big one")?;
    // SAFETY: `p` came from `r.allocate(whole)` and is freed once.
    if !unsafe { r.deallocate(p, whole) } || r.stats() != start {
        return Err("figures after the big block");
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
