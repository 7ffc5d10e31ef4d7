//! What the service keeps of the PVH `hvm_start_info`: command line and modules (parsed by
//! `arch::startinfo`), and access to a module's bytes.

use crate::arch::startinfo::{self, StartInfo};

pub use crate::arch::startinfo::Module;

/// Longest command line kept.
pub const CMDLINE_MAX: usize = 1024;
/// Most modules kept.
pub const MODULES_MAX: usize = 4;

/// What we keep of the start info.
#[derive(Clone, Debug, Default)]
pub struct BootInfo {
    /// The command line (non-ASCII bytes replaced by `?`).
    pub cmdline: heapless::String<CMDLINE_MAX>,
    /// The modules.
    pub modules: heapless::Vec<Module, MODULES_MAX>,
    /// The highest address used by the start info, command line or module list.
    pub end: u64,
    /// `hvm_start_info.version`.
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// The ACPI RSDP's address (0: none; the xenstore domain gets no ACPI tables).
    pub rsdp_paddr: u64,
    /// Memory map entries given (0: ask Xen, as `init-xenstore-domain` leaves it).
    pub memmap_entries: u32,
}

/// Reads a NUL-terminated string of at most `CMDLINE_MAX` bytes.
pub fn read_cstr(paddr: u64) -> heapless::String<CMDLINE_MAX> {
    let mut buf = [0u8; CMDLINE_MAX];
    let mut s = heapless::String::new();
    for &b in startinfo::read_cstr(paddr, &mut buf).unwrap_or(&[]) {
        if s.push(if b.is_ascii() { b as char } else { '?' }).is_err() {
            break;
        }
    }
    s
}

/// Parses the start info at `paddr`; `None` if it is unreadable or its magic is wrong.
pub fn parse(paddr: u64) -> Option<BootInfo> {
    let si = StartInfo::read(paddr).ok()?;
    let mut info = BootInfo {
        end: paddr + 56,
        version: si.version,
        flags: si.flags,
        rsdp_paddr: si.rsdp_paddr,
        memmap_entries: si.memmap_entries,
        ..BootInfo::default()
    };
    info.cmdline = read_cstr(si.cmdline_paddr);
    if si.cmdline_paddr != 0 {
        info.end = info
            .end
            .max(si.cmdline_paddr + info.cmdline.len() as u64 + 1);
    }
    for i in 0..si.nr_modules.min(MODULES_MAX as u32) {
        if let Some(m) = si.module(i) {
            let _ = info.modules.push(m);
        }
    }
    if si.modlist_paddr != 0 {
        info.end = info
            .end
            .max(si.modlist_paddr + u64::from(si.nr_modules) * 32);
    }
    Some(info)
}

/// Modules claimed by [`ModuleMemory::claim`] (bit i: module at index i of the start info).
static CLAIMED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// A module's memory, kept out of the heap for as long as this value lives: its bytes can be
/// read, and [`ModuleMemory::into_heap`] gives them to the allocator (consuming it, so no
/// borrow of the bytes outlives that).
#[derive(Debug)]
pub struct ModuleMemory {
    paddr: u64,
    len: usize,
}

impl ModuleMemory {
    /// Claims module number `index` of the start info: `None` when it is not in
    /// identity-mapped RAM above 1 MiB, or was claimed already this boot. The boot code keeps
    /// every module out of the heap (`Stub::init_heap`).
    pub fn claim(index: usize, m: &Module) -> Option<ModuleMemory> {
        let end = m.paddr.checked_add(m.size)?;
        if m.paddr < 0x10_0000 || end > (1 << 32) || index >= 32 {
            return None;
        }
        let bit = 1u32 << index;
        if CLAIMED.fetch_or(bit, core::sync::atomic::Ordering::SeqCst) & bit != 0 {
            return None;
        }
        Some(ModuleMemory {
            paddr: m.paddr,
            len: usize::try_from(m.size).ok()?,
        })
    }

    /// Physical address.
    pub fn paddr(&self) -> u64 {
        self.paddr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the module is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the range is identity-mapped RAM below 4 GiB (checked by `claim`); it was
        // kept out of the heap at boot and is handed to it only by `into_heap`, which
        // consumes `self`, so no allocation aliases it while this borrow lives; each module
        // is claimed once, and nothing writes module memory.
        unsafe { core::slice::from_raw_parts(self.paddr as usize as *const u8, self.len) }
    }

    /// Gives the module's whole pages to the heap.
    pub fn into_heap(self) -> Result<(), crate::arch::heap::HeapError> {
        let start = (self.paddr + 4095) & !4095;
        let end = (self.paddr + self.len as u64) & !4095;
        if end <= start {
            return Ok(());
        }
        crate::arch::heap::add_region(start as usize, (end - start) as usize)
    }
}
