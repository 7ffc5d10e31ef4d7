//! Reading the PVH `hvm_start_info` the loader left us: command line and modules.

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const START_MAGIC: u32 = 0x336e_c578;
/// Longest command line kept.
pub const CMDLINE_MAX: usize = 1024;
/// Most modules kept.
pub const MODULES_MAX: usize = 4;

/// A module the loader placed in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// Physical address.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its command line (0: none).
    pub cmdline_paddr: u64,
}

/// What we keep of the start info.
#[derive(Clone, Debug, Default)]
pub struct BootInfo {
    /// The command line (lossy: invalid UTF-8 replaced).
    pub cmdline: heapless::String<CMDLINE_MAX>,
    /// The modules.
    pub modules: heapless::Vec<Module, MODULES_MAX>,
    /// The highest address used by the start info, command line or module list.
    pub end: u64,
}

/// Copies `N` bytes from physical address `paddr`.
fn read<const N: usize>(paddr: u64) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the loader placed the start info and what it points to in our RAM below
        // 4 GiB, identity mapped; we only copy bytes out of it.
        *b = unsafe { core::ptr::read_volatile((paddr as usize + i) as *const u8) };
    }
    out
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(o..o + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(o..o + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Reads a NUL-terminated string of at most `CMDLINE_MAX` bytes.
pub fn read_cstr(paddr: u64) -> heapless::String<CMDLINE_MAX> {
    let mut s = heapless::String::new();
    if paddr == 0 || paddr >= (1 << 32) {
        return s;
    }
    for i in 0..CMDLINE_MAX as u64 {
        let [b] = read::<1>(paddr + i);
        if b == 0 {
            break;
        }
        let c = if b.is_ascii() { b as char } else { '?' };
        if s.push(c).is_err() {
            break;
        }
    }
    s
}

/// Parses the start info at `paddr`; `None` if the magic is wrong.
pub fn parse(paddr: u64) -> Option<BootInfo> {
    if paddr == 0 || paddr >= (1 << 32) {
        return None;
    }
    let raw = read::<56>(paddr);
    if u32_at(&raw, 0) != START_MAGIC {
        return None;
    }
    let nr_modules = u32_at(&raw, 12);
    let modlist = u64_at(&raw, 16);
    let cmdline_paddr = u64_at(&raw, 24);
    let mut info = BootInfo {
        end: paddr + 56,
        ..BootInfo::default()
    };
    info.cmdline = read_cstr(cmdline_paddr);
    if cmdline_paddr != 0 {
        info.end = info.end.max(cmdline_paddr + info.cmdline.len() as u64 + 1);
    }
    if modlist != 0 && modlist < (1 << 32) {
        for i in 0..u64::from(nr_modules.min(MODULES_MAX as u32)) {
            let m = read::<32>(modlist + i * 32);
            let _ = info.modules.push(Module {
                paddr: u64_at(&m, 0),
                size: u64_at(&m, 8),
                cmdline_paddr: u64_at(&m, 16),
            });
        }
        info.end = info.end.max(modlist + u64::from(nr_modules) * 32);
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
