//! The live-update jump: copy a new PVH image over the running one and enter it, in place.
//!
//! [`jump`] writes a fresh `hvm_start_info` (with the command line, the module list and the
//! modules' command lines) and a trampoline (`boot/handover.S`) into [`AREA`], low memory
//! that neither the boot code nor the heap ever use, and jumps to the trampoline. That
//! leaves long mode and paging, copies the flattened image to its load address with a
//! forward `rep movsb` and enters it at its 32-bit PVH entry point with `%ebx` pointing at
//! the start info, exactly as a PVH loader would. [`check`] says beforehand whether a
//! hand-over is possible; Xen state (shared info, event channels, grant mappings, timers)
//! is the caller's business.
//!
//! Addresses are physical; the identity map makes a pointer's address its physical
//! address, so `slice.as_ptr() as u64` is what [`ModuleSpec::paddr`] wants.

use core::fmt;
use core::ops::Range;

use super::{cpu, exit};

core::arch::global_asm!(
    include_str!("../../../boot/handover.S"),
    options(att_syntax)
);

/// The low-memory pages the hand-over uses: trampoline (with its GDT and stack), start
/// info, module list and command lines. Below 1 MiB (RAM in every PVH domain), below the
/// image (loaded at 1 MiB) and so below every heap region (they start above the image).
pub const AREA: Range<u64> = 0x8000..0x1_0000;

/// Page tables identity-mapping the first GiB with 2 MiB pages (PML4, PDPT, PD), written by
/// [`jump`] for the trampoline's long-mode copy: below [`AREA`], in low memory nothing else
/// uses (the boot tables live in the old image's .bss, which the copy overwrites).
pub const TABLES: Range<u64> = 0x5000..0x8000;
/// What [`TABLES`] maps.
const TABLES_COVER: u64 = 1 << 30;

/// Where the trampoline is copied, and the room it has.
const TRAMPOLINE_AT: u64 = AREA.start;
const TRAMPOLINE_MAX: u64 = 0x1000;
/// The start info; the module list follows at [`MODLIST_AT`], then the command lines.
const START_INFO_AT: u64 = AREA.start + TRAMPOLINE_MAX;
const START_INFO_LEN: usize = 56;
const MODLIST_AT: u64 = START_INFO_AT + 64;
const MODULE_ENTRY_LEN: u64 = 32;
/// The last bytes of [`AREA`]: TSC stamps of the hand-over, written by the trampoline
/// (before and after its copy) and by the PVH entry of the image it enters (see
/// [`Stamps`]); the start info never reaches them.
pub const STAMPS_AT: u64 = AREA.end - STAMPS_LEN;
/// Bytes reserved for the stamps.
const STAMPS_LEN: u64 = 64;
/// The 1 MiB floor of load addresses.
const MIN_DEST: u64 = 1 << 20;
/// The identity map's (and the 32-bit copy's) limit.
const LIMIT_4G: u64 = 1 << 32;

unsafe extern "C" {
    static xs_handover_tramp_start: u8;
    static xs_handover_tramp_end: u8;
}

/// The trampoline's bytes (position independent; see `boot/handover.S`).
fn trampoline() -> &'static [u8] {
    let start = &raw const xs_handover_tramp_start;
    let end = &raw const xs_handover_tramp_end;
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: both symbols delimit the trampoline in `.rodata` (boot/handover.S), start
    // before end; the bytes are part of the loaded image and never written.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// One module for the new image's start info.
#[derive(Clone, Copy, Debug)]
pub struct ModuleSpec<'a> {
    /// Physical address of the module's bytes (they stay where they are).
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its command line, without NUL (copied into [`AREA`]; empty: none).
    pub cmdline: &'a [u8],
}

/// Everything a hand-over needs.
#[derive(Clone, Copy, Debug)]
pub struct Handover<'a> {
    /// The new image as it must lie in memory from `dest_paddr`
    /// (`xsstate::pvh::PvhImage::flatten`), up to its last byte from the file.
    pub blob: &'a [u8],
    /// Bytes to zero right after the copied ones (the image's .bss).
    pub zero_len: u64,
    /// Where the image goes (its `load_lo`).
    pub dest_paddr: u64,
    /// Its 32-bit PVH entry point.
    pub entry32: u32,
    /// Its 64-bit live-update entry point (`xsstate::compat::KIND_ENTRY64`; 0: none), taken
    /// when the copy runs in long mode.
    pub entry64: u32,
    /// The new image's command line, without NUL (copied into [`AREA`]; empty: none).
    pub cmdline: &'a [u8],
    /// The modules the new image finds in its start info, in this order.
    pub modules: &'a [ModuleSpec<'a>],
}

/// A part of a hand-over, as [`HandoverError`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Where the image goes: `[dest_paddr, dest_paddr + blob.len())`.
    Destination,
    /// The image bytes as they are now (`blob`).
    Blob,
    /// The command line.
    Cmdline,
    /// Module `i`.
    Module(usize),
    /// The command line of module `i`.
    ModuleCmdline(usize),
    /// [`AREA`].
    Area,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Destination => f.write_str("the image's destination"),
            Part::Blob => f.write_str("the image bytes"),
            Part::Cmdline => f.write_str("the command line"),
            Part::Module(i) => write!(f, "module {i}"),
            Part::ModuleCmdline(i) => write!(f, "the command line of module {i}"),
            Part::Area => write!(f, "the hand-over area {:#x}..{:#x}", AREA.start, AREA.end),
        }
    }
}

/// Why a hand-over is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverError {
    /// The image is empty.
    EmptyBlob,
    /// The destination is below 1 MiB.
    DestinationLow {
        /// The destination.
        dest: u64,
    },
    /// A range does not end at or below 4 GiB (or its end overflows).
    Above4G {
        /// Which range.
        part: Part,
        /// Its start.
        start: u64,
        /// Its length.
        len: u64,
    },
    /// Two ranges overlap that must not.
    Overlap {
        /// One range.
        part: Part,
        /// The range it overlaps.
        with: Part,
    },
    /// The image bytes lie below their destination and overlap it: a forward copy would
    /// overwrite bytes before reading them.
    SourceBelowDestination {
        /// The image bytes' address.
        src: u64,
        /// The destination.
        dest: u64,
    },
    /// An entry point (the 32-bit one, or the 64-bit one when declared) is outside the
    /// destination range.
    EntryOutside {
        /// The entry point.
        entry: u32,
    },
    /// A command line contains a NUL byte.
    CmdlineNul {
        /// Which one.
        part: Part,
    },
    /// The start info, module list and command lines need more room than [`AREA`] has.
    AreaFull {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        room: u64,
    },
    /// The trampoline is larger than its slot (a build problem).
    Trampoline {
        /// Its length.
        len: u64,
    },
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HandoverError::EmptyBlob => f.write_str("empty image"),
            HandoverError::DestinationLow { dest } => {
                write!(f, "destination {dest:#x} is below 1 MiB")
            }
            HandoverError::Above4G { part, start, len } => write!(
                f,
                "{part} ({start:#x}, {len:#x} bytes) does not end below 4 GiB"
            ),
            HandoverError::Overlap { part, with } => write!(f, "{part} overlaps {with}"),
            HandoverError::SourceBelowDestination { src, dest } => write!(
                f,
                "the image bytes at {src:#x} lie below their destination {dest:#x} and overlap it"
            ),
            HandoverError::EntryOutside { entry } => write!(
                f,
                "entry point {entry:#x} is outside the image's destination"
            ),
            HandoverError::CmdlineNul { part } => write!(f, "{part} contains a NUL byte"),
            HandoverError::AreaFull { need, room } => write!(
                f,
                "start info, module list and command lines need {need} bytes, {room} available"
            ),
            HandoverError::Trampoline { len } => write!(
                f,
                "the trampoline is {len} bytes, its slot {TRAMPOLINE_MAX}"
            ),
        }
    }
}

/// Whether `[a, a + alen)` and `[b, b + blen)` overlap (empty ranges overlap nothing).
fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    alen != 0 && blen != 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

/// The address and length of a slice (identity map: the address is physical).
fn range_of(s: &[u8]) -> (u64, u64) {
    (s.as_ptr() as u64, s.len() as u64)
}

/// `[start, start + len)` must end at or below 4 GiB.
fn below_4g(part: Part, start: u64, len: u64) -> Result<(), HandoverError> {
    match start.checked_add(len) {
        Some(end) if end <= LIMIT_4G => Ok(()),
        _ => Err(HandoverError::Above4G { part, start, len }),
    }
}

/// Bytes of [`AREA`] the start info, module list and command lines take from
/// [`START_INFO_AT`].
fn area_need(h: &Handover) -> u64 {
    let string = |s: &[u8]| if s.is_empty() { 0 } else { s.len() as u64 + 1 };
    let strings: u64 = h.modules.iter().map(|m| string(m.cmdline)).sum();
    (MODLIST_AT - START_INFO_AT)
        + h.modules.len() as u64 * MODULE_ENTRY_LEN
        + string(h.cmdline)
        + strings
}

/// Whether `h` can be carried out: destination at or above 1 MiB; the image's destination
/// and bytes, every module and the command lines' current copies below 4 GiB and outside
/// [`AREA`]; no module in the destination; the image bytes not below an overlapping
/// destination (the copy runs forwards); the entry point inside the destination; no NUL in
/// a command line; start info, module list and command lines fitting in [`AREA`].
pub fn check(h: &Handover) -> Result<(), HandoverError> {
    // AREA and the TABLES below it are one low range nothing handed in may touch.
    let (area, area_len) = (TABLES.start, AREA.end - TABLES.start);
    let (src, copy_len) = range_of(h.blob);
    let dest = h.dest_paddr;
    if copy_len == 0 {
        return Err(HandoverError::EmptyBlob);
    }
    // The destination takes the copied bytes and the zeroed ones after them.
    let len = copy_len.saturating_add(h.zero_len);
    if dest < MIN_DEST {
        return Err(HandoverError::DestinationLow { dest });
    }
    below_4g(Part::Destination, dest, len)?;
    below_4g(Part::Blob, src, copy_len)?;
    let outside = |e: u32| u64::from(e) < dest || u64::from(e) - dest >= len;
    if outside(h.entry32) {
        return Err(HandoverError::EntryOutside { entry: h.entry32 });
    }
    if h.entry64 != 0 && outside(h.entry64) {
        return Err(HandoverError::EntryOutside { entry: h.entry64 });
    }
    let overlap = |part, with| Err(HandoverError::Overlap { part, with });
    if overlaps(dest, len, area, area_len) {
        return overlap(Part::Destination, Part::Area);
    }
    if overlaps(src, copy_len, area, area_len) {
        return overlap(Part::Blob, Part::Area);
    }
    if src < dest && overlaps(src, copy_len, dest, len) {
        return Err(HandoverError::SourceBelowDestination { src, dest });
    }
    let (c, clen) = range_of(h.cmdline);
    if overlaps(c, clen, area, area_len) {
        return overlap(Part::Cmdline, Part::Area);
    }
    if h.cmdline.contains(&0) {
        return Err(HandoverError::CmdlineNul {
            part: Part::Cmdline,
        });
    }
    for (i, m) in h.modules.iter().enumerate() {
        below_4g(Part::Module(i), m.paddr, m.size)?;
        if overlaps(m.paddr, m.size, dest, len) {
            return overlap(Part::Module(i), Part::Destination);
        }
        if overlaps(m.paddr, m.size, area, area_len) {
            return overlap(Part::Module(i), Part::Area);
        }
        let (mc, mclen) = range_of(m.cmdline);
        if overlaps(mc, mclen, area, area_len) {
            return overlap(Part::ModuleCmdline(i), Part::Area);
        }
        if m.cmdline.contains(&0) {
            return Err(HandoverError::CmdlineNul {
                part: Part::ModuleCmdline(i),
            });
        }
    }
    let (need, room) = (area_need(h), STAMPS_AT - START_INFO_AT);
    if need > room {
        return Err(HandoverError::AreaFull { need, room });
    }
    let tlen = trampoline().len() as u64;
    if tlen > TRAMPOLINE_MAX {
        return Err(HandoverError::Trampoline { len: tlen });
    }
    Ok(())
}

/// Copies `bytes` to physical `paddr` inside [`AREA`]; false (nothing written) when the
/// range is not inside it.
fn area_write(paddr: u64, bytes: &[u8]) -> bool {
    let inside = paddr >= AREA.start
        && paddr
            .checked_add(bytes.len() as u64)
            .is_some_and(|end| end <= AREA.end);
    if !inside {
        return false;
    }
    // SAFETY: the destination lies inside AREA, which is identity-mapped RAM no Rust object,
    // stack, page table or heap region ever occupies (below the image, which starts at
    // 1 MiB, and the heap starts above the image); `check` made sure no source handed in
    // lies there either, so the ranges do not overlap.
    unsafe { super::mem::memcpy(paddr as *mut _, bytes.as_ptr().cast(), bytes.len()) };
    true
}

/// Zeroes [`AREA`].
fn area_clear() {
    let zeros = [0u8; 1024];
    let mut at = AREA.start;
    while at < AREA.end {
        area_write(at, &zeros);
        at += zeros.len() as u64;
    }
}

/// Writes [`TABLES`]: PML4, PDPT and one page directory of 2 MiB pages over the first GiB
/// (present, writable); returns the PML4's address (0 if they could not be written).
fn write_tables() -> u64 {
    let (pml4, pdpt, pd) = (TABLES.start, TABLES.start + 0x1000, TABLES.start + 0x2000);
    let mut page = [0u8; 4096];
    page.iter_mut().for_each(|b| *b = 0);
    if let Some(e) = page.get_mut(..8) {
        e.copy_from_slice(&(pdpt | 3).to_le_bytes());
    }
    let ok1 = tables_write(pml4, &page);
    if let Some(e) = page.get_mut(..8) {
        e.copy_from_slice(&(pd | 3).to_le_bytes());
    }
    let ok2 = tables_write(pdpt, &page);
    for (i, e) in page.chunks_exact_mut(8).enumerate() {
        e.copy_from_slice(&(((i as u64) << 21) | 0x83).to_le_bytes());
    }
    let ok3 = tables_write(pd, &page);
    if ok1 && ok2 && ok3 {
        pml4
    } else {
        0
    }
}

/// Copies `bytes` to physical `paddr` inside [`TABLES`]; false (nothing written) otherwise.
fn tables_write(paddr: u64, bytes: &[u8]) -> bool {
    let inside = paddr >= TABLES.start
        && paddr
            .checked_add(bytes.len() as u64)
            .is_some_and(|end| end <= TABLES.end);
    if !inside {
        return false;
    }
    // SAFETY: the destination lies inside TABLES, identity-mapped low RAM below AREA that no
    // Rust object, stack, page table in use or heap region occupies (the image starts at
    // 1 MiB and the heap above it); `check` made sure no module or source lies there.
    unsafe { super::mem::memcpy(paddr as *mut _, bytes.as_ptr().cast(), bytes.len()) };
    true
}

/// TSC stamps of the last hand-over into this image, as the trampoline and the PVH entry
/// left them in [`AREA`] (meaningful only when a hand-over started this image: the caller
/// knows from its start info, and compares with the jump's own stamp).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    /// The trampoline, before its copy.
    pub copy_start: u64,
    /// The trampoline, after its copy.
    pub copy_end: u64,
    /// The PVH entry of this image (`boot/pvh.S`, first instructions).
    pub entry: u64,
    /// The image was entered at its 64-bit live-update entry (`pvh_start64_lu`), not at
    /// the 32-bit PVH one.
    pub entry64: bool,
}

/// Reads the [`Stamps`].
pub fn stamps() -> Stamps {
    let mut raw = [0u8; 32];
    // The slots are written by 32-bit code with paging off; read them as bytes.
    if !super::mem::read_phys(STAMPS_AT, &mut raw) {
        return Stamps::default();
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(raw.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(b)
    };
    Stamps {
        copy_start: word(0),
        copy_end: word(1),
        entry: word(2),
        // The entries write 0 (32-bit) or 1 (64-bit) after their stamp.
        entry64: word(3) == 1,
    }
}

/// Writes the start info, module list and command lines into [`AREA`]; returns the start
/// info's address. `h` passed [`check`], so everything fits.
fn write_start_info(h: &Handover) -> u64 {
    let mut strings_at = MODLIST_AT + h.modules.len() as u64 * MODULE_ENTRY_LEN;
    let mut put_string = |s: &[u8]| -> u64 {
        if s.is_empty() {
            return 0;
        }
        let at = strings_at;
        area_write(at, s);
        area_write(at + s.len() as u64, &[0]);
        strings_at += s.len() as u64 + 1;
        at
    };
    let cmdline_paddr = put_string(h.cmdline);
    for (i, m) in h.modules.iter().enumerate() {
        let mut entry = [0u8; MODULE_ENTRY_LEN as usize];
        let fields = [m.paddr, m.size, put_string(m.cmdline), 0];
        for (chunk, v) in entry.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        area_write(MODLIST_AT + i as u64 * MODULE_ENTRY_LEN, &entry);
    }
    let mut si = [0u8; START_INFO_LEN];
    let nr_modules = u32::try_from(h.modules.len()).unwrap_or(0);
    let modlist = if nr_modules == 0 { 0 } else { MODLIST_AT };
    let words: [(usize, &[u8]); 9] = [
        (0, &super::startinfo::MAGIC.to_le_bytes()),
        (4, &1u32.to_le_bytes()),           // version
        (8, &0u32.to_le_bytes()),           // flags
        (12, &nr_modules.to_le_bytes()),    // nr_modules
        (16, &modlist.to_le_bytes()),       // modlist_paddr
        (24, &cmdline_paddr.to_le_bytes()), // cmdline_paddr
        (32, &0u64.to_le_bytes()),          // rsdp_paddr
        (40, &0u64.to_le_bytes()),          // memmap_paddr
        (48, &0u32.to_le_bytes()),          // memmap_entries
    ];
    for (at, bytes) in words {
        if let Some(d) = si.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
    }
    area_write(START_INFO_AT, &si);
    START_INFO_AT
}

/// A hand-over whose image lies in memory we do not hold as a slice (a rollback from the
/// new image back to the old one, possibly from a panic): the blob at `blob_paddr`.
#[derive(Clone, Copy, Debug)]
pub struct RawHandover<'a> {
    /// Where the image bytes lie (a start-info module, outside the heap).
    pub blob_paddr: u64,
    /// Their length.
    pub blob_len: u64,
    /// Where they go.
    pub dest_paddr: u64,
    /// The entry point.
    pub entry32: u32,
    /// The command line.
    pub cmdline: &'a [u8],
    /// The modules.
    pub modules: &'a [ModuleSpec<'a>],
}

/// [`jump`] for a [`RawHandover`]; refuses (returns the reason) when the blob is not in the
/// identity map above 1 MiB.
pub fn jump_raw(h: &RawHandover) -> HandoverError {
    let ok = h.blob_paddr >= MIN_DEST
        && h.blob_paddr
            .checked_add(h.blob_len)
            .is_some_and(|end| end <= LIMIT_4G);
    let Ok(len) = usize::try_from(h.blob_len) else {
        return HandoverError::EmptyBlob;
    };
    if !ok || len == 0 {
        return HandoverError::Above4G {
            part: Part::Blob,
            start: h.blob_paddr,
            len: h.blob_len,
        };
    }
    // SAFETY: the blob lies in identity-mapped RAM above 1 MiB and below 4 GiB (checked); the
    // caller passes a start-info module's range, which the boot kept out of the heap, so no
    // Rust object aliases it; the slice lives only until the jump, which does not return.
    let blob = unsafe { core::slice::from_raw_parts(h.blob_paddr as usize as *const u8, len) };
    let full = Handover {
        blob,
        zero_len: 0,
        dest_paddr: h.dest_paddr,
        entry32: h.entry32,
        entry64: 0,
        cmdline: h.cmdline,
        modules: h.modules,
    };
    if let Err(e) = check(&full) {
        return e;
    }
    jump(&full)
}

/// Hands the domain over to the image `h` describes; never returns. `h` must have passed
/// [`check`]: `jump` checks again and, should that fail, prints why and shuts down
/// ([`exit::shutdown`]) rather than jump into a bad state.
///
/// With interrupts disabled for good, it clears [`AREA`], writes the start info (version 1,
/// flags 0, no memory map, no RSDP), the module list and the NUL-terminated command lines
/// there, copies the trampoline to the start of [`AREA`] and jumps to it. From then on
/// nothing of the running image (stack, data, page tables, IDT) is used; see
/// `boot/handover.S` for the CPU state the new image is entered with. Only the destination
/// range and [`AREA`] are written; modules and all other memory are left as they are.
pub fn jump(h: &Handover) -> ! {
    cpu::disable_interrupts();
    if let Err(e) = check(h) {
        crate::kprintln!("xsstub: hand-over refused at the jump: {e}");
        exit::shutdown(true)
    }
    area_clear();
    let start_info = write_start_info(h);
    if !area_write(TRAMPOLINE_AT, trampoline()) {
        crate::kprintln!("xsstub: hand-over: the trampoline does not fit");
        exit::shutdown(true)
    }
    let (src, len) = range_of(h.blob);
    // The long-mode copy, when everything it touches lies in the first GiB.
    let end = h.dest_paddr.saturating_add(len).saturating_add(h.zero_len);
    let tables = if end <= TABLES_COVER && src.saturating_add(len) <= TABLES_COVER {
        write_tables()
    } else {
        0
    };
    // SAFETY: `check` passed: source and destination lie below 4 GiB (the copy runs with
    // paging off in 32-bit mode, or on TABLES, which map the first GiB where both then lie),
    // the destination is at or above 1 MiB and misses AREA, TABLES and every module, the
    // source misses AREA and does not lie below an overlapping destination, and the entry
    // point is inside the destination. The trampoline at TRAMPOLINE_AT is position
    // independent and uses only AREA (and TABLES); it never returns. Nothing after this point
    // relies on the old image's memory, which the copy overwrites.
    unsafe {
        core::arch::asm!(
            "jmp {tramp}",
            tramp = in(reg) TRAMPOLINE_AT,
            in("rdi") h.dest_paddr,
            in("rsi") src,
            in("rcx") len,
            in("rdx") u64::from(h.entry32),
            in("r8") start_info,
            in("r9") tables,
            in("r10") h.zero_len,
            in("r12") if tables != 0 { u64::from(h.entry64) } else { 0 },
            options(noreturn)
        )
    }
}
