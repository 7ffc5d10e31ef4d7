//! The PVH `struct hvm_start_info` (start_info.h): parsing from bytes (safe, testable) and
//! reading from physical memory, plus choosing the heap range from the memory map.
#![deny(unsafe_code)]

use super::mem::read_phys;
use xsstate::le::{u32_at, u64_at};

/// `hvm_start_info.magic`.
pub const MAGIC: u32 = 0x336e_c578;
/// Size of `struct hvm_start_info` (version 1; version 0 ends before `memmap_paddr`).
pub const START_INFO_LEN: usize = 56;
/// Size of version 0 of the structure.
pub const START_INFO_V0_LEN: usize = 40;
/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_LEN: usize = 24;
/// Size of `struct hvm_modlist_entry`.
pub const MODULE_ENTRY_LEN: usize = 32;
/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// Command lines are read up to this many bytes (Xen's limit is far below).
pub const CMDLINE_MAX: usize = 4096;
/// Page size.
pub const PAGE: u64 = 4096;

/// Why a start info could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// Fewer bytes than the structure needs.
    Short,
    /// Wrong magic value.
    BadMagic(u32),
    /// The address is not readable (0 or beyond the identity map).
    Unreadable,
    /// More loader ranges than the fixed-size range list holds.
    TooManyRanges,
    /// No RAM large enough for a heap.
    NoRam,
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartInfoError::Short => f.write_str("start info too short"),
            StartInfoError::BadMagic(m) => write!(f, "start info magic {m:#x}"),
            StartInfoError::Unreadable => f.write_str("start info address not readable"),
            StartInfoError::TooManyRanges => f.write_str("too many loader ranges"),
            StartInfoError::NoRam => f.write_str("no RAM for the heap"),
        }
    }
}

/// The fields of `struct hvm_start_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StartInfo {
    /// Structure version (0 has no memory map fields).
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of modules.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP (0: none).
    pub rsdp_paddr: u64,
    /// Physical address of the memory map (version 1).
    pub memmap_paddr: u64,
    /// Entries in the memory map (0: ask the hypervisor).
    pub memmap_entries: u32,
}

impl StartInfo {
    /// Parses the structure from its bytes (little endian).
    pub fn parse(bytes: &[u8]) -> Result<StartInfo, StartInfoError> {
        let magic = u32_at(bytes, 0).ok_or(StartInfoError::Short)?;
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let short = StartInfoError::Short;
        let version = u32_at(bytes, 4).ok_or(short)?;
        let mut si = StartInfo {
            version,
            flags: u32_at(bytes, 8).ok_or(short)?,
            nr_modules: u32_at(bytes, 12).ok_or(short)?,
            modlist_paddr: u64_at(bytes, 16).ok_or(short)?,
            cmdline_paddr: u64_at(bytes, 24).ok_or(short)?,
            rsdp_paddr: u64_at(bytes, 32).ok_or(short)?,
            ..StartInfo::default()
        };
        if version >= 1 {
            si.memmap_paddr = u64_at(bytes, 40).ok_or(short)?;
            si.memmap_entries = u32_at(bytes, 48).ok_or(short)?;
        }
        Ok(si)
    }

    /// Reads and parses the structure at physical address `paddr`.
    pub fn read(paddr: u64) -> Result<StartInfo, StartInfoError> {
        let mut buf = [0u8; START_INFO_LEN];
        if !read_phys(paddr, &mut buf[..START_INFO_V0_LEN]) {
            return Err(StartInfoError::Unreadable);
        }
        let version = u32_at(&buf, 4).unwrap_or(0);
        if version >= 1 && !read_phys(paddr, &mut buf) {
            return Err(StartInfoError::Unreadable);
        }
        StartInfo::parse(&buf)
    }

    /// Memory map entry `i`, read from physical memory.
    pub fn memmap_entry(&self, i: u32) -> Option<MemmapEntry> {
        if i >= self.memmap_entries {
            return None;
        }
        let at = self
            .memmap_paddr
            .checked_add(u64::from(i) * MEMMAP_ENTRY_LEN as u64)?;
        let mut buf = [0u8; MEMMAP_ENTRY_LEN];
        read_phys(at, &mut buf).then(|| MemmapEntry::parse(&buf))?
    }

    /// Module `i`, read from physical memory.
    pub fn module(&self, i: u32) -> Option<Module> {
        if i >= self.nr_modules {
            return None;
        }
        let at = self
            .modlist_paddr
            .checked_add(u64::from(i) * MODULE_ENTRY_LEN as u64)?;
        let mut buf = [0u8; MODULE_ENTRY_LEN];
        read_phys(at, &mut buf).then(|| Module::parse(&buf))?
    }

    /// The command line (without its NUL) copied into `buf`, or `None` when there is none
    /// or it is unreadable; cut at `buf.len()` bytes.
    pub fn cmdline<'a>(&self, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        read_cstr(self.cmdline_paddr, buf)
    }

    /// Every physical range the loader handed over with the start info (the structure at
    /// `paddr` itself, its command line, memory map, module list, modules and their command
    /// lines): none of it may become heap.
    pub fn loader_ranges(&self, paddr: u64) -> Result<Ranges<128>, StartInfoError> {
        let mut r = Ranges::new();
        let too_many = StartInfoError::TooManyRanges;
        let len = if self.version >= 1 {
            START_INFO_LEN
        } else {
            START_INFO_V0_LEN
        };
        r.push_len(paddr, len as u64).ok_or(too_many)?;
        r.push_len(self.cmdline_paddr, cstr_extent(self.cmdline_paddr))
            .ok_or(too_many)?;
        r.push_len(
            self.memmap_paddr,
            u64::from(self.memmap_entries) * MEMMAP_ENTRY_LEN as u64,
        )
        .ok_or(too_many)?;
        r.push_len(
            self.modlist_paddr,
            u64::from(self.nr_modules) * MODULE_ENTRY_LEN as u64,
        )
        .ok_or(too_many)?;
        for i in 0..self.nr_modules {
            let m = self.module(i).ok_or(StartInfoError::Unreadable)?;
            r.push_len(m.paddr, m.size).ok_or(too_many)?;
            r.push_len(m.cmdline_paddr, cstr_extent(m.cmdline_paddr))
                .ok_or(too_many)?;
        }
        Ok(r)
    }

    /// The heap range for bare QEMU: the largest piece of RAM (from the start info's memory
    /// map) above `floor` and below the identity map's end that holds none of the loader's
    /// ranges; page aligned.
    pub fn heap_region(&self, paddr: u64, floor: u64) -> Result<(u64, u64), StartInfoError> {
        let ram = (0..self.memmap_entries)
            .filter_map(|i| self.memmap_entry(i))
            .filter(|e| e.kind == E820_RAM)
            .map(|e| (e.addr, e.addr.saturating_add(e.size)));
        self.heap_region_in(ram, paddr, floor)
    }

    /// As [`StartInfo::heap_region`], with the RAM ranges `[start, end)` given (when the
    /// start info has no memory map, e.g. after a live-update hand-over).
    pub fn heap_region_in(
        &self,
        ram: impl Iterator<Item = (u64, u64)>,
        paddr: u64,
        floor: u64,
    ) -> Result<(u64, u64), StartInfoError> {
        let reserved = self.loader_ranges(paddr)?;
        choose_heap(
            ram,
            floor,
            super::layout::IDENTITY_MAP_END,
            reserved.as_slice(),
        )
        .ok_or(StartInfoError::NoRam)
    }
}

/// How many bytes the NUL-terminated string at `paddr` covers, NUL included (at most
/// [`CMDLINE_MAX`]; 0 for a null or unreadable address).
fn cstr_extent(paddr: u64) -> u64 {
    if paddr == 0 {
        return 0;
    }
    let mut chunk = [0u8; 64];
    let mut at = 0u64;
    while at < CMDLINE_MAX as u64 {
        let Some(addr) = paddr.checked_add(at) else {
            return at;
        };
        if !read_phys(addr, &mut chunk) {
            // Near the end of the map: be conservative and cover what remains.
            return CMDLINE_MAX as u64;
        }
        if let Some(nul) = chunk.iter().position(|&b| b == 0) {
            return at + nul as u64 + 1;
        }
        at += chunk.len() as u64;
    }
    CMDLINE_MAX as u64
}

/// Copies the NUL-terminated string at `paddr` into `buf` and returns it without the NUL.
pub fn read_cstr(paddr: u64, buf: &mut [u8]) -> Option<&[u8]> {
    if paddr == 0 {
        return None;
    }
    let n = usize::try_from(cstr_extent(paddr)).ok()?.min(buf.len());
    let dest = buf.get_mut(..n)?;
    if !read_phys(paddr, dest) {
        return None;
    }
    let end = dest.iter().position(|&b| b == 0).unwrap_or(n);
    buf.get(..end)
}

/// One `struct hvm_memmap_table_entry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapEntry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type ([`E820_RAM`] for RAM).
    pub kind: u32,
}

impl MemmapEntry {
    /// Parses one entry.
    pub fn parse(bytes: &[u8]) -> Option<MemmapEntry> {
        Some(MemmapEntry {
            addr: u64_at(bytes, 0)?,
            size: u64_at(bytes, 8)?,
            kind: u32_at(bytes, 16)?,
        })
    }
}

/// One `struct hvm_modlist_entry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// Physical address of the module.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its command line (0: none).
    pub cmdline_paddr: u64,
}

impl Module {
    /// Parses one entry.
    pub fn parse(bytes: &[u8]) -> Option<Module> {
        Some(Module {
            paddr: u64_at(bytes, 0)?,
            size: u64_at(bytes, 8)?,
            cmdline_paddr: u64_at(bytes, 16)?,
        })
    }
}

/// A fixed-capacity list of half-open physical ranges `[start, end)` (no allocation: used
/// before the heap exists).
#[derive(Clone, Copy, Debug)]
pub struct Ranges<const N: usize> {
    items: [(u64, u64); N],
    len: usize,
}

impl<const N: usize> Default for Ranges<N> {
    fn default() -> Self {
        Ranges::new()
    }
}

impl<const N: usize> Ranges<N> {
    /// An empty list.
    pub const fn new() -> Self {
        Ranges {
            items: [(0, 0); N],
            len: 0,
        }
    }

    /// Adds `[start, end)`; empty ranges are skipped. `None` when full.
    pub fn push(&mut self, start: u64, end: u64) -> Option<()> {
        if end <= start {
            return Some(());
        }
        let slot = self.items.get_mut(self.len)?;
        *slot = (start, end);
        self.len += 1;
        Some(())
    }

    /// Adds `[start, start + len)` (saturating); a zero `start` or `len` adds nothing.
    pub fn push_len(&mut self, start: u64, len: u64) -> Option<()> {
        if start == 0 || len == 0 {
            return Some(());
        }
        self.push(start, start.saturating_add(len))
    }

    /// The ranges.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        self.items.get(..self.len).unwrap_or(&[])
    }
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    Some(x.checked_add(a - 1)? & !(a - 1))
}

/// The largest page-aligned piece of `[start, end)` that overlaps none of `reserved`.
pub fn largest_free(start: u64, end: u64, reserved: &[(u64, u64)]) -> Option<(u64, u64)> {
    let mut best: Option<(u64, u64)> = None;
    let candidates = core::iter::once(start).chain(
        reserved
            .iter()
            .map(|&(_, e)| e)
            .filter(|&e| e > start && e < end),
    );
    for c in candidates {
        if reserved.iter().any(|&(s, e)| s <= c && c < e) {
            continue;
        }
        // c is free: the piece runs to the next reserved start at or after c.
        let stop = reserved
            .iter()
            .map(|&(s, _)| s)
            .filter(|&s| s >= c)
            .fold(end, u64::min);
        let (Some(lo), hi) = (align_up(c, PAGE), stop & !(PAGE - 1)) else {
            continue;
        };
        if hi > lo && best.is_none_or(|(bl, bh)| hi - lo > bh - bl) {
            best = Some((lo, hi));
        }
    }
    best
}

/// The largest free piece over every RAM region, clipped to `[floor, ceiling)`.
pub fn choose_heap(
    ram: impl Iterator<Item = (u64, u64)>,
    floor: u64,
    ceiling: u64,
    reserved: &[(u64, u64)],
) -> Option<(u64, u64)> {
    ram.filter_map(|(s, e)| {
        let (s, e) = (s.max(floor), e.min(ceiling));
        (e > s).then(|| largest_free(s, e, reserved)).flatten()
    })
    .max_by_key(|&(s, e)| e - s)
}
