//! The stub domain's memory: the populated RAM at boot, the heap over it, growth on demand.
//!
//! `init-xenstore-domain --memory M [--maxmem X]` populates M MiB of RAM from address 0 up
//! (2 MiB extents), the start info right after the image, and the eight special pages at
//! 0xfeff8-0xfefff (console 0xfefff, xenstore 0xfeffc), and sets the maximum reservation to
//! X MiB (M without `--maxmem`) plus those eight pages. Its E820 map (`XENMEM_memory_map`)
//! has one RAM range from 0 and the special pages as reserved; in Xen 4.17 and 4.18 the RAM
//! range is M MiB without `--maxmem` but only X *bytes* with it (`MB(maxmem ? : memory)`
//! with an unparenthesised macro argument; fixed in 4.19, where it is X MiB). So the map
//! is trusted only when its RAM holds the image; the populated RAM comes from the page
//! counts and is confirmed frame by frame at its top (`HVMOP_get_mem_type`), and the room
//! to grow into is the map's RAM, or, with a broken map, what the reservation allows.
//!
//! At boot [`init_heap`] hands the populated RAM above the image and the loader's data to
//! the heap. Later [`grow`] populates frames right above it (`XENMEM_populate_physmap`),
//! within that room and the reservation, and gives them to the heap (extending its top
//! region); the global allocator calls it when an allocation would fail,
//! [`KernelMemory::ensure_free`] when the engine or a live update asks for room.
//! Nothing ever shrinks the domain.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xsstate::memory::{MemorySource, MemoryStats};

use crate::arch::heap;
use crate::arch::startinfo::MemmapEntry;
use crate::kprintln;
use crate::xen::abi::{E820_RAM, HVMMEM_MMIO_DM, HVMMEM_RAM_RO, HVMMEM_RAM_RW};
use crate::xen::events::XenError;
use crate::xen::{self, start_info::BootInfo};

/// A page.
pub const PAGE: u64 = 4096;
/// Growth never populates this frame or any above it (2.75 GiB): well below the hole at
/// [`super::layout::SHARED_INFO_GFN`] where Xen's pages and foreign rings are mapped.
pub const GROW_CEILING_GFN: u64 = 0xb0000;
/// The smallest growth step (a step is the need rounded up to pages, at least this).
pub const GROW_STEP: u64 = 1 << 20;
/// Reserved E820 ranges up to this many pages are checked frame by frame for populated
/// pages (the special pages); larger ones are assumed to hold none.
const RESERVED_SCAN_MAX_PAGES: u64 = 1024;
/// Heap pieces below this size are left unused at boot.
const MIN_PIECE: u64 = 64 * 1024;

/// Why the heap could not be set up.
#[derive(Clone, Copy, Debug)]
pub enum MemError {
    /// A hypercall failed: which one, and Xen's errno.
    Xen(&'static str, i64),
    /// The page counts do not add up (fewer populated pages than reserved ones).
    Counts(u64),
    /// No populated RAM above the image and the loader's data.
    NoHeap,
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::Xen(what, rc) => write!(f, "{what} failed: Xen error {rc}"),
            MemError::Counts(n) => write!(f, "only {n} pages populated"),
            MemError::NoHeap => f.write_str("no RAM for the heap"),
        }
    }
}

fn xen_err(what: &'static str) -> impl Fn(XenError) -> MemError {
    move |e| MemError::Xen(what, e.0)
}

/// The first frame growth would populate (the top of the populated RAM, as a frame number).
static NEXT_GFN: AtomicU64 = AtomicU64::new(0);
/// Growth stops below this frame ([`RamPlan::limit`]).
static LIMIT_GFN: AtomicU64 = AtomicU64::new(0);
/// Pages the reservation still allows (maximum minus current, as last seen).
static RESERVATION_LEFT: AtomicU64 = AtomicU64::new(0);
/// Bytes added to the heap by growing.
static GROWN: AtomicU64 = AtomicU64::new(0);
/// Pages populated as Xen counts them (at boot, plus every growth).
static POPULATED: AtomicU64 = AtomicU64::new(0);
/// Populated pages in reserved ranges (found at boot).
static SPECIAL: AtomicU64 = AtomicU64::new(0);

/// What a live update hands over so that the new image need not ask Xen again (five
/// hypercalls and more inside the downtime): the memory exactly as this image leaves it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemFacts {
    /// Pages populated (Xen's count).
    pub populated: u64,
    /// The populated RAM's top (bytes): the heap ends there, growth starts there.
    pub top: u64,
    /// Populated pages in reserved ranges.
    pub special: u64,
    /// Growth stays below this (bytes).
    pub limit: u64,
    /// Pages the reservation still allows.
    pub left: u64,
}

/// This image's memory, for the next one.
pub fn handover_facts() -> MemFacts {
    MemFacts {
        populated: POPULATED.load(Ordering::SeqCst),
        top: NEXT_GFN.load(Ordering::SeqCst).saturating_mul(PAGE),
        special: SPECIAL.load(Ordering::SeqCst),
        limit: LIMIT_GFN.load(Ordering::SeqCst).saturating_mul(PAGE),
        left: RESERVATION_LEFT.load(Ordering::SeqCst),
    }
}
/// Set while [`grow`] runs (it must not re-enter through an allocation).
static GROWING: AtomicBool = AtomicBool::new(false);

/// What the page counts and the E820 map say about the RAM from address 0 (bytes, page
/// aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamPlan {
    /// The top of the populated RAM (before checking it with Xen).
    pub top: u64,
    /// Growth stays below this.
    pub limit: u64,
    /// Whether the map's RAM range was used (it holds `floor`); else it was ignored.
    pub map_used: bool,
}

/// Plans the RAM from address 0: the domain builder populates RAM from the bottom, so of
/// the `populated` pages, those not in reserved ranges (`reserved_populated`) lie from 0 up.
/// When the map's RAM range at 0 holds `floor` (the image end) it bounds both the top and
/// the room to grow; otherwise (Xen 4.17's map with `--maxmem`) the room is what the
/// `max` pages of the reservation allow. Growth also stays below the next non-RAM range of
/// the map and below [`GROW_CEILING_GFN`]. `None` when the counts do not add up.
pub fn plan_ram(
    map: &[MemmapEntry],
    populated: u64,
    reserved_populated: u64,
    max: u64,
    floor: u64,
) -> Option<RamPlan> {
    let ram_pages = populated.checked_sub(reserved_populated)?;
    let mut top = ram_pages.checked_mul(PAGE)?;
    let map_end = map
        .iter()
        .find(|e| e.kind == E820_RAM && e.addr == 0)
        .map(|e| e.size & !(PAGE - 1))
        .filter(|&end| end >= floor);
    let mut limit = match map_end {
        Some(end) => {
            top = top.min(end);
            end
        }
        None => max.saturating_sub(reserved_populated).saturating_mul(PAGE),
    };
    let next_reserved = map
        .iter()
        .filter(|e| e.kind != E820_RAM && e.addr >= top)
        .map(|e| e.addr & !(PAGE - 1))
        .min();
    if let Some(r) = next_reserved {
        limit = limit.min(r);
    }
    limit = limit.min(GROW_CEILING_GFN * PAGE).max(top);
    Some(RamPlan {
        top,
        limit,
        map_used: map_end.is_some(),
    })
}

/// Cuts `[lo, hi)` around every `(start, end)` in `holes`; pieces of at least
/// [`MIN_PIECE`] bytes, largest first. No allocation (the heap does not exist yet).
pub fn heap_pieces(lo: u64, hi: u64, holes: &[(u64, u64)]) -> heapless::Vec<(u64, u64), 16> {
    let mut free: heapless::Vec<(u64, u64), 16> = heapless::Vec::new();
    if hi > lo {
        let _ = free.push((lo, hi));
    }
    for &(hs, he) in holes {
        let (hs, he) = (hs & !(PAGE - 1), he.saturating_add(PAGE - 1) & !(PAGE - 1));
        let mut cut: heapless::Vec<(u64, u64), 16> = heapless::Vec::new();
        for (s, e) in free.iter().copied() {
            for piece in [(s, e.min(hs)), (s.max(he), e)] {
                if piece.1 > piece.0 {
                    let _ = cut.push(piece);
                }
            }
        }
        free = cut;
    }
    free.retain(|&(s, e)| e - s >= MIN_PIECE);
    free.sort_unstable_by_key(|&(s, e)| core::cmp::Reverse(e - s));
    free
}

fn is_ram(mem_type: u16) -> bool {
    mem_type == HVMMEM_RAM_RW || mem_type == HVMMEM_RAM_RO
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "RAM",
        2 => "reserved",
        3 => "ACPI",
        4 => "NVS",
        5 => "unusable",
        _ => "other",
    }
}

/// Pages of the reserved ranges below 4 GiB that Xen has populated (small ranges only).
fn reserved_populated(map: &[MemmapEntry]) -> u64 {
    let mut n = 0u64;
    for e in map.iter().filter(|e| e.kind != E820_RAM) {
        let first = e.addr / PAGE;
        let pages = e.size / PAGE;
        if pages > RESERVED_SCAN_MAX_PAGES || e.addr.saturating_add(e.size) > 1 << 32 {
            continue;
        }
        for gfn in first..first.saturating_add(pages) {
            if xen::memory::mem_type(gfn).is_ok_and(is_ram) {
                n += 1;
            }
        }
    }
    n
}

/// How the populated top was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// Xen confirmed the frame below is RAM and the one at the top is not.
    Verified,
    /// `HVMOP_get_mem_type` failed: the page counts alone.
    Unverified,
    /// The counts were wrong: the first frame that is not RAM, found frame by frame.
    Scanned,
}

/// Confirms `top` with Xen (the frame below is RAM, the one at `top` is not), or finds the
/// real top: the first frame from 1 MiB up that is not RAM, looking up to `scan_end`.
fn check_top(top: u64, scan_end: u64) -> (u64, Checked) {
    let below = (top / PAGE).checked_sub(1).map(xen::memory::mem_type);
    let at = xen::memory::mem_type(top / PAGE);
    match (below, at) {
        (Some(Ok(b)), Ok(a)) if is_ram(b) && !is_ram(a) => return (top, Checked::Verified),
        (Some(Err(_)), _) | (_, Err(_)) => return (top, Checked::Unverified),
        _ => {}
    }
    let first = crate::arch::layout::IMAGE_BASE / PAGE;
    let end = scan_end.max(top) / PAGE;
    let real = (first..end)
        .find(|&g| !xen::memory::mem_type(g).is_ok_and(is_ram))
        .unwrap_or(end);
    (real.saturating_mul(PAGE), Checked::Scanned)
}

/// Logs the frame types from `first` to `end` as runs (`--memscan`).
fn scan_log(first: u64, end: u64) {
    let mut run: Option<(u64, Result<u16, i64>)> = None;
    for gfn in first..=end {
        let t = if gfn == end {
            Err(i64::MIN)
        } else {
            xen::memory::mem_type(gfn).map_err(|e| e.0)
        };
        match run {
            Some((_, rt)) if rt == t => {}
            Some((start, rt)) => {
                let what = match rt {
                    Ok(m) if is_ram(m) => "RAM",
                    Ok(HVMMEM_MMIO_DM) => "not RAM (mmio_dm: unpopulated)",
                    Ok(_) => "not RAM",
                    Err(_) => "error",
                };
                kprintln!("xsstub: memscan frames {start:#x}..{gfn:#x}: {what} ({rt:?})");
                run = Some((gfn, t));
            }
            None => run = Some((gfn, t)),
        }
    }
}

/// Finds the populated RAM, logs the memory layout, gives the heap what lies above the image
/// and the loader's data (the modules stay out), and prepares growth. `start_info_paddr`
/// is logged only.
/// `facts`: the memory as a live update's old image left it (nothing to ask Xen).
pub fn init_heap(
    info: &BootInfo,
    start_info_paddr: u64,
    facts: Option<MemFacts>,
) -> Result<(), MemError> {
    let image_end = crate::arch::image_end() as u64;
    let (top, limit, populated, special, left) = match facts.filter(|f| f.top > image_end) {
        Some(f) => {
            kprintln!(
                "xsstub: memory as the previous image left it: {} pages populated ({} in \
                 reserved ranges), RAM populated 0..{:#x}, room to grow to {:#x}, {} pages \
                 more allowed",
                f.populated,
                f.special,
                f.top,
                f.limit,
                f.left
            );
            (f.top, f.limit, f.populated, f.special, f.left)
        }
        None => ask_xen(info)?,
    };
    kprintln!(
        "xsstub: image {:#x}..{image_end:#x}, start info at {start_info_paddr:#x}, loader \
         data to {:#x}",
        crate::arch::layout::IMAGE_BASE,
        info.end
    );
    for m in &info.modules {
        kprintln!(
            "xsstub: module {:#x}..{:#x}",
            m.paddr,
            m.paddr.saturating_add(m.size)
        );
    }
    let low = image_end.max(info.end).saturating_add(PAGE - 1) & !(PAGE - 1);
    let holes: heapless::Vec<(u64, u64), 4> = info
        .modules
        .iter()
        .map(|m| (m.paddr, m.paddr.saturating_add(m.size)))
        .collect();
    let pieces = heap_pieces(low, top, &holes);
    let mut it = pieces.iter();
    let &(start, end) = it.next().ok_or(MemError::NoHeap)?;
    heap::init(start as usize, (end - start) as usize);
    for &(s, e) in it {
        if let Err(err) = heap::add_region(s as usize, (e - s) as usize) {
            kprintln!("xsstub: heap region {s:#x}..{e:#x} not added: {err}");
        }
    }
    for (s, len) in heap::regions() {
        kprintln!(
            "xsstub: heap {s:#x}..{:#x} ({} KiB)",
            s.saturating_add(len),
            len / 1024
        );
    }
    NEXT_GFN.store(top / PAGE, Ordering::SeqCst);
    POPULATED.store(populated, Ordering::SeqCst);
    SPECIAL.store(special, Ordering::SeqCst);
    LIMIT_GFN.store((limit / PAGE).max(top / PAGE), Ordering::SeqCst);
    RESERVATION_LEFT.store(left, Ordering::SeqCst);
    let room = growable_bytes();
    if room > 0 {
        heap::set_grow_hook(grow);
        kprintln!(
            "xsstub: heap can grow by {} KiB from {top:#x} (reservation allows {left} pages)",
            room / 1024
        );
    }
    Ok(())
}

/// `--memscan`: the special pages' frames, and the frame types of the RAM, the room to grow
/// and every reserved range below 4 GiB, each a little past its end to see where the
/// populated frames stop.
fn memscan(map: &[MemmapEntry], limit: u64) {
    for (p, name) in [
        (xen::abi::HVM_PARAM_CONSOLE_PFN, "console"),
        (xen::abi::HVM_PARAM_STORE_PFN, "store"),
    ] {
        kprintln!("xsstub: memscan {name} pfn {:?}", xen::events::hvm_param(p));
    }
    scan_log(0, (limit / PAGE).saturating_add(256));
    for e in map
        .iter()
        .filter(|e| e.kind != E820_RAM && e.addr < 1 << 32)
    {
        let first = e.addr / PAGE;
        let end = e.addr.saturating_add(e.size).min(1 << 32) / PAGE;
        scan_log(first, end.saturating_add(256).min(1 << 20));
    }
}

/// Asks Xen for the memory map and the reservation, and finds the populated RAM: `(top,
/// limit, populated, special, pages left)`.
fn ask_xen(info: &BootInfo) -> Result<(u64, u64, u64, u64, u64), MemError> {
    let map = xen::memory::memory_map().map_err(xen_err("XENMEM_memory_map"))?;
    let populated =
        xen::memory::current_reservation_pages().map_err(xen_err("current reservation"))?;
    let max = xen::memory::maximum_reservation_pages().map_err(xen_err("maximum reservation"))?;
    for e in &map {
        kprintln!(
            "xsstub: e820 {:#x}..{:#x} {} ({} KiB)",
            e.addr,
            e.addr.saturating_add(e.size),
            kind_name(e.kind),
            e.size / 1024
        );
    }
    let special = reserved_populated(&map);
    let image_end = crate::arch::image_end() as u64;
    let plan =
        plan_ram(&map, populated, special, max, image_end).ok_or(MemError::Counts(populated))?;
    if !plan.map_used {
        kprintln!(
            "xsstub: the E820 RAM at 0 does not even hold the image (Xen 4.17's \
             init-xenstore-domain --maxmem): RAM and growth room from the reservation"
        );
    }
    let (top, checked) = check_top(plan.top, plan.limit);
    kprintln!(
        "xsstub: reservation {populated} pages populated ({special} in reserved ranges), \
         maximum {max}; RAM populated 0..{top:#x} ({checked:?}), room to grow to {:#x}",
        plan.limit
    );
    if info
        .cmdline
        .split_ascii_whitespace()
        .any(|t| t == "--memscan")
    {
        memscan(&map, plan.limit);
    }
    Ok((
        top,
        plan.limit,
        populated,
        special,
        max.saturating_sub(populated),
    ))
}

/// Bytes growing can still add: room above the populated RAM, within the reservation.
pub fn growable_bytes() -> u64 {
    let space = LIMIT_GFN
        .load(Ordering::SeqCst)
        .saturating_sub(NEXT_GFN.load(Ordering::SeqCst));
    space
        .min(RESERVATION_LEFT.load(Ordering::SeqCst))
        .saturating_mul(PAGE)
}

/// Bytes added to the heap by growing since this image booted.
pub fn grown_bytes() -> u64 {
    GROWN.load(Ordering::SeqCst)
}

/// Grows the heap by at least `need` bytes (at least [`GROW_STEP`], page rounded, capped at
/// what is left); returns the bytes added (0: nothing more to give, or Xen refused).
/// Allocates nothing: the global allocator calls it (outside its lock) when an allocation
/// finds no room. Logs one line per growth.
pub fn grow(need: usize) -> usize {
    if GROWING.swap(true, Ordering::SeqCst) {
        return 0;
    }
    let added = grow_once(need as u64);
    GROWING.store(false, Ordering::SeqCst);
    usize::try_from(added).unwrap_or(0)
}

fn grow_once(need: u64) -> u64 {
    if growable_bytes() == 0 {
        return 0;
    }
    // The reservation as Xen sees it now (the toolstack may have changed the maximum).
    if let (Ok(cur), Ok(max)) = (
        xen::memory::current_reservation_pages(),
        xen::memory::maximum_reservation_pages(),
    ) {
        RESERVATION_LEFT.store(max.saturating_sub(cur), Ordering::SeqCst);
        POPULATED.store(cur, Ordering::SeqCst);
    }
    let room = growable_bytes() / PAGE;
    let want = need.max(GROW_STEP).div_ceil(PAGE).min(room);
    if want == 0 {
        return 0;
    }
    let next = NEXT_GFN.load(Ordering::SeqCst);
    let got = match xen::memory::populate_physmap(next, want) {
        Ok(n) => n,
        Err(e) => {
            kprintln!(
                "xsstub: heap cannot grow: XENMEM_populate_physmap failed ({})",
                e.0
            );
            0
        }
    };
    if got == 0 {
        // Xen gives nothing (no free memory on the host): stop asking.
        RESERVATION_LEFT.store(0, Ordering::SeqCst);
        kprintln!("xsstub: heap cannot grow: Xen populated no frame at {next:#x}");
        return 0;
    }
    NEXT_GFN.store(next.saturating_add(got), Ordering::SeqCst);
    POPULATED.fetch_add(got, Ordering::SeqCst);
    let _ = RESERVATION_LEFT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
        Some(left.saturating_sub(got))
    });
    let (base, len) = (next.saturating_mul(PAGE), got.saturating_mul(PAGE));
    if let Err(e) = heap::add_memory(base as usize, len as usize) {
        kprintln!("xsstub: heap cannot use {base:#x}+{len:#x}: {e}");
        return 0;
    }
    GROWN.fetch_add(len, Ordering::SeqCst);
    let (used, free) = heap::stats();
    let size = (used as u64).saturating_add(free as u64);
    kprintln!(
        "xsstub: heap grew by {} KiB to {} KiB (max {} KiB)",
        len / 1024,
        size / 1024,
        size.saturating_add(growable_bytes()) / 1024
    );
    len
}

/// The kernel heap as the engine's [`MemorySource`]: its figures, and growth on request.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelMemory;

impl MemorySource for KernelMemory {
    /// The figures, with `free` as requests may spend it ([`heap::free_for_requests`]).
    fn stats(&self) -> MemoryStats {
        let (used, raw_free) = heap::stats();
        let size = used.saturating_add(raw_free);
        let free = heap::free_for_requests();
        let room = usize::try_from(growable_bytes()).unwrap_or(usize::MAX);
        MemoryStats {
            used,
            free,
            grown: usize::try_from(grown_bytes()).unwrap_or(usize::MAX),
            max: size.saturating_add(room),
        }
    }

    fn ensure_free(&self, bytes: usize) -> bool {
        for _ in 0..2 {
            let free = heap::free_for_requests();
            if free >= bytes {
                return true;
            }
            if grow(bytes - free) == 0 {
                break;
            }
        }
        heap::free_for_requests() >= bytes
    }
}
