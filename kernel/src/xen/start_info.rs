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

/// Runs `f` over the bytes of module `m` (`None` when it is not in identity-mapped RAM).
/// The module's memory must not be handed to the heap before `f` returns.
pub fn with_module_bytes<R>(m: &Module, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let end = m.paddr.checked_add(m.size)?;
    if m.paddr < 0x10_0000 || end > (1 << 32) {
        return None;
    }
    let len = usize::try_from(m.size).ok()?;
    // SAFETY: the module lies in our RAM below 4 GiB (identity mapped); the caller keeps it
    // out of the heap and nothing writes it while `f` runs; the slice does not outlive `f`.
    let bytes = unsafe { core::slice::from_raw_parts(m.paddr as usize as *const u8, len) };
    Some(f(bytes))
}
