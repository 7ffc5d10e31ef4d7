//! The heap's region set: `linked_list_allocator` heaps with slabs of small blocks in front
//! (see the parent module for the design).

use core::alloc::Layout;
use core::ptr::NonNull;

use linked_list_allocator::Heap;

/// How many regions the heap can hold.
pub const MAX_REGIONS: usize = 16;

/// The smallest region accepted.
pub const MIN_REGION: usize = 4096;

/// Why a range was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// [`super::try_init`] was called when the heap already had a region.
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
/// How many small blocks can be out at once first fit from the regions, outside every
/// chunk (see [`Regions::allocate`]).
pub const MAX_LOOSE: usize = 1024;
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
pub(super) fn class_of(layout: Layout) -> Option<usize> {
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
    /// Small blocks served first fit from the regions because no chunk could be carved (the
    /// free bytes lie in holes smaller than a chunk); the first `loose_count` are live.
    /// `deallocate` looks a small block up here first: a chunk's magic alone could be
    /// mimicked by data a guest wrote into a large block.
    loose: [usize; MAX_LOOSE],
    loose_count: usize,
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
            loose: [0; MAX_LOOSE],
            loose_count: 0,
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
    /// `None` when there is no room. A small block for which no chunk can be carved (the
    /// free bytes lie in holes smaller than a chunk) comes first fit from the regions, at its
    /// class's size and alignment, up to [`MAX_LOOSE`] such blocks at once.
    pub fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        match class_of(layout) {
            Some(class) => self
                .allocate_small(class)
                .or_else(|| self.allocate_loose(class)),
            None => self.allocate_large(layout),
        }
    }

    /// Small blocks out first fit from the regions, outside every chunk.
    pub fn loose_blocks(&self) -> usize {
        self.loose_count
    }

    /// The layout a loose block of `class` is allocated with.
    fn loose_layout(class: usize) -> Option<Layout> {
        let size = *CLASSES.get(class)?;
        Layout::from_size_align(size, block_align(size)).ok()
    }

    fn allocate_loose(&mut self, class: usize) -> Option<NonNull<u8>> {
        if self.loose_count >= MAX_LOOSE {
            return None;
        }
        let p = self.allocate_large(Regions::loose_layout(class)?)?;
        match self.loose.get_mut(self.loose_count) {
            Some(slot) => {
                *slot = p.as_ptr() as usize;
                self.loose_count += 1;
                Some(p)
            }
            None => {
                // Unreachable (the count was checked); give the block back.
                // SAFETY: `p` came from `allocate_large` with this layout just above.
                unsafe { self.deallocate_large(p, Regions::loose_layout(class)?) };
                None
            }
        }
    }

    /// Frees `addr` if it is a loose block; whether it was.
    fn deallocate_loose(&mut self, addr: usize, class: usize) -> bool {
        let live = self.loose.get(..self.loose_count).unwrap_or(&[]);
        let Some(i) = live.iter().position(|&a| a == addr) else {
            return false;
        };
        let (Some(layout), Some(ptr)) =
            (Regions::loose_layout(class), NonNull::new(addr as *mut u8))
        else {
            return false;
        };
        let last = self.loose_count - 1;
        self.loose.swap(i, last);
        self.loose_count = last;
        // SAFETY: `addr` was listed as a live loose block: it came from `allocate_large`
        // with its class's loose layout (the caller frees it with a layout of the same
        // class) and it is freed once (it is off the list now).
        unsafe { self.deallocate_large(ptr, layout) };
        true
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
            return self.deallocate_loose(addr, class) || self.deallocate_small(addr, class);
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.deallocate_large(ptr, layout) }
    }

    /// Frees a block of a large layout into the region holding it; false when none does.
    ///
    /// # Safety
    /// `ptr` must come from [`Regions::allocate_large`] of this set with the same `layout`,
    /// and must not have been freed already.
    unsafe fn deallocate_large(&mut self, ptr: NonNull<u8>, layout: Layout) -> bool {
        let addr = ptr.as_ptr() as usize;
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
        unsafe { self.deallocate_large(ptr, layout) };
    }
}

impl Default for Regions {
    fn default() -> Self {
        Regions::new()
    }
}
