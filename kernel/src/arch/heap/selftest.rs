//! Self-tests of the heap's region set, run by the smoke self-test on blocks leaked from the
//! global heap.

use core::alloc::Layout;
use core::ptr::NonNull;

use super::regions::{HeapError, Regions, CHUNK, CLASSES, MAX_LOOSE};

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
    slab_test()?;
    loose_test()
}

/// Fragmentation: when the free bytes lie in holes smaller than a chunk, small blocks still
/// come (first fit, outside every chunk), go back to their holes, and stop at [`MAX_LOOSE`].
fn loose_test() -> Result<(), &'static str> {
    const LEN: usize = 256 * 1024;
    const PIECE: usize = 3000;
    let base = leaked_block(LEN + CHUNK);
    let mut r = Regions::new();
    // SAFETY: [base, base + LEN) lies inside a leaked allocation nobody else references; `r`
    // lives only in this function.
    unsafe { r.add(base, LEN).map_err(|_| "loose region refused")? };
    let start = r.stats();
    let piece = Layout::from_size_align(PIECE, 8).map_err(|_| "layout")?;
    let mut pieces: heapless::Vec<NonNull<u8>, 128> = heapless::Vec::new();
    while let Some(p) = r.allocate(piece) {
        pieces
            .push(p)
            .map_err(|_| "more 3000-byte pieces than the region holds")?;
    }
    // Every other piece freed: holes of 3000 bytes, none a chunk wide.
    let mut kept: heapless::Vec<NonNull<u8>, 128> = heapless::Vec::new();
    for (i, &p) in pieces.iter().enumerate() {
        if i % 2 == 0 {
            // SAFETY: each piece came from `r.allocate(piece)` and is freed once.
            if !unsafe { r.deallocate(p, piece) } {
                return Err("a piece was refused");
            }
        } else {
            kept.push(p).map_err(|_| "kept list")?;
        }
    }
    let reply = Layout::from_size_align(2016, 1).map_err(|_| "layout")?;
    let small = Layout::from_size_align(40, 8).map_err(|_| "layout")?;
    let a = r
        .allocate(reply)
        .ok_or("no 2016-byte block although 3000-byte holes are free")?;
    let b = r
        .allocate(small)
        .ok_or("no 40-byte block although 3000-byte holes are free")?;
    if r.chunks() != 0 || r.loose_blocks() != 2 {
        return Err("the blocks did not come from outside every chunk");
    }
    // SAFETY: `a` and `b` came from `r.allocate` with these layouts; each is freed once.
    if !unsafe { r.deallocate(a, reply) } || !unsafe { r.deallocate(b, small) } {
        return Err("a loose block was refused");
    }
    if r.loose_blocks() != 0 {
        return Err("a loose block stayed listed after its free");
    }
    // The list is bounded: at most MAX_LOOSE loose blocks at once.
    let tiny = Layout::from_size_align(16, 8).map_err(|_| "layout")?;
    let (first, n) = fill_chain(&mut r, tiny);
    if n != MAX_LOOSE || r.loose_blocks() != MAX_LOOSE {
        return Err("the loose blocks were not bounded by MAX_LOOSE");
    }
    free_chain(&mut r, first, tiny, "a 16-byte loose block was refused")?;
    for &p in &kept {
        // SAFETY: each piece came from `r.allocate(piece)` and is freed once.
        if !unsafe { r.deallocate(p, piece) } {
            return Err("a piece was refused");
        }
    }
    if r.loose_blocks() != 0 || r.stats() != start {
        return Err("figures not back after the loose blocks");
    }
    Ok(())
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
    let (first, n) = fill_chain(&mut r, node);
    if n < LEN / 2 / 48 {
        return Err("40-byte blocks did not fill the region");
    }
    free_chain(&mut r, first, node, "a 40-byte block was refused")?;
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

/// Allocates `layout` blocks from `r` until it refuses, chaining them through their first
/// words (too many for a list); returns the last block allocated (the chain's head) and the
/// count.
fn fill_chain(r: &mut Regions, layout: Layout) -> (Option<NonNull<u8>>, usize) {
    let mut first: Option<NonNull<u8>> = None;
    let mut n = 0usize;
    while let Some(p) = r.allocate(layout) {
        // SAFETY: `p` is a fresh block of at least 16 bytes (the smallest class), ours until
        // freed; its first word links to the previous one.
        unsafe {
            core::ptr::write(
                p.as_ptr() as *mut usize,
                first.map_or(0, |f| f.as_ptr() as usize),
            )
        };
        first = Some(p);
        n += 1;
    }
    (first, n)
}

/// Frees a chain built by [`fill_chain`] with the same `layout`; `refused` when a block is
/// not taken back.
fn free_chain(
    r: &mut Regions,
    first: Option<NonNull<u8>>,
    layout: Layout,
    refused: &'static str,
) -> Result<(), &'static str> {
    let mut at = first;
    while let Some(p) = at {
        // SAFETY: the chain links blocks `fill_chain` allocated, each freed once after its
        // link is read.
        let next = unsafe { core::ptr::read(p.as_ptr() as *const usize) };
        // SAFETY: as above.
        if !unsafe { r.deallocate(p, layout) } {
            return Err(refused);
        }
        at = NonNull::new(next as *mut u8);
    }
    Ok(())
}
