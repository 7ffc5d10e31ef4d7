//! What a dynamically linked x86-64 ELF needs: its loader (`PT_INTERP`) and libraries
//! (`DT_NEEDED`), read from the file itself so that binaries of another Debian release are
//! never resolved against this machine's libraries (`ldd` would do exactly that).

/// The dynamic-linking needs of one ELF file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The program interpreter, e.g. `/lib64/ld-linux-x86-64.so.2` (none for a library or a
    /// static binary).
    pub interp: Option<String>,
    /// `DT_NEEDED` sonames, in order.
    pub needed: Vec<String>,
}

use xsstate::le::{u16_at, u32_at, u64_at};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

/// The NUL-terminated string at `o`.
fn cstr_at(b: &[u8], o: usize) -> Option<String> {
    let rest = b.get(o..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest.get(..end)?.to_vec()).ok()
}

struct Phdr {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Reads the loader and `DT_NEEDED` entries of a 64-bit little-endian ELF image.
pub fn needs(b: &[u8]) -> Result<Needs, String> {
    if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let bad = || "truncated ELF headers".to_string();
    let phoff = usize::try_from(u64_at(b, 0x20).ok_or_else(bad)?).map_err(|_| bad())?;
    let phentsize = usize::from(u16_at(b, 0x36).ok_or_else(bad)?);
    let phnum = usize::from(u16_at(b, 0x38).ok_or_else(bad)?);
    if phentsize < 56 {
        return Err(format!("program header entries of {phentsize} bytes"));
    }
    let mut phdrs = Vec::with_capacity(phnum);
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|x| x.checked_add(phoff))
            .ok_or_else(bad)?;
        let word = |off: usize| at.checked_add(off).and_then(|o| u64_at(b, o));
        phdrs.push(Phdr {
            kind: u32_at(b, at).ok_or_else(bad)?,
            offset: word(8).ok_or_else(bad)?,
            vaddr: word(16).ok_or_else(bad)?,
            filesz: word(32).ok_or_else(bad)?,
        });
    }
    let mut out = Needs::default();
    if let Some(p) = phdrs.iter().find(|p| p.kind == PT_INTERP) {
        let o = usize::try_from(p.offset).map_err(|_| bad())?;
        out.interp = Some(cstr_at(b, o).ok_or("PT_INTERP is not a string")?);
    }
    let Some(dynamic) = phdrs.iter().find(|p| p.kind == PT_DYNAMIC) else {
        return Ok(out);
    };
    // The dynamic section: (tag, value) pairs up to DT_NULL.
    let mut entries = Vec::new();
    let start = usize::try_from(dynamic.offset).map_err(|_| bad())?;
    let count = usize::try_from(dynamic.filesz / 16).map_err(|_| bad())?;
    for i in 0..count {
        let at = i
            .checked_mul(16)
            .and_then(|x| x.checked_add(start))
            .ok_or_else(bad)?;
        let tag = u64_at(b, at).ok_or_else(bad)?;
        let val = at
            .checked_add(8)
            .and_then(|o| u64_at(b, o))
            .ok_or_else(bad)?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, val));
    }
    let strtab = entries
        .iter()
        .find(|(t, _)| *t == DT_STRTAB)
        .map(|(_, v)| *v)
        .ok_or("no DT_STRTAB")?;
    // DT_STRTAB is an address: find the file offset through the segment that loads it.
    let load = phdrs
        .iter()
        .find(|p| p.kind == PT_LOAD && p.vaddr <= strtab && strtab - p.vaddr < p.filesz)
        .ok_or("DT_STRTAB outside every PT_LOAD")?;
    let strtab_off = (strtab - load.vaddr)
        .checked_add(load.offset)
        .and_then(|o| usize::try_from(o).ok())
        .ok_or_else(bad)?;
    for (_, v) in entries.iter().filter(|(t, _)| *t == DT_NEEDED) {
        let o = usize::try_from(*v)
            .ok()
            .and_then(|v| v.checked_add(strtab_off))
            .ok_or_else(bad)?;
        out.needed
            .push(cstr_at(b, o).ok_or("DT_NEEDED is not a string")?);
    }
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal ELF: one PT_LOAD covering the file at vaddr 0x400000, an optional PT_INTERP,
    /// and a PT_DYNAMIC with the given DT_NEEDED names.
    pub fn synthetic(interp: Option<&str>, needed: &[&str]) -> Vec<u8> {
        let phnum = 3u16;
        let phoff = 64usize;
        let data = phoff + usize::from(phnum) * 56;
        // Layout after the headers: interp string, string table, dynamic section.
        let mut strtab = vec![0u8];
        let mut offs = Vec::new();
        for n in needed {
            offs.push(strtab.len() as u64);
            strtab.extend_from_slice(n.as_bytes());
            strtab.push(0);
        }
        let interp_bytes: Vec<u8> = interp
            .map(|s| {
                let mut v = s.as_bytes().to_vec();
                v.push(0);
                v
            })
            .unwrap_or_default();
        let interp_off = data;
        let strtab_off = interp_off + interp_bytes.len();
        let dyn_off = (strtab_off + strtab.len() + 7) & !7;
        let mut dynamic = Vec::new();
        for o in &offs {
            dynamic.extend_from_slice(&DT_NEEDED.to_le_bytes());
            dynamic.extend_from_slice(&o.to_le_bytes());
        }
        dynamic.extend_from_slice(&DT_STRTAB.to_le_bytes());
        dynamic.extend_from_slice(&(0x40_0000u64 + strtab_off as u64).to_le_bytes());
        dynamic.extend_from_slice(&[0u8; 16]);
        let total = dyn_off + dynamic.len();
        let mut b = vec![0u8; total];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        let mut ph = |i: usize, kind: u32, off: usize, len: usize, vaddr: u64| {
            let at = phoff + i * 56;
            b[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&(off as u64).to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&(len as u64).to_le_bytes());
        };
        ph(0, PT_LOAD, 0, total, 0x40_0000);
        let interp_kind = if interp.is_some() { PT_INTERP } else { 0 };
        ph(1, interp_kind, interp_off, interp_bytes.len(), 0);
        ph(
            2,
            PT_DYNAMIC,
            dyn_off,
            dynamic.len(),
            0x40_0000 + dyn_off as u64,
        );
        b[interp_off..strtab_off].copy_from_slice(&interp_bytes);
        b[strtab_off..strtab_off + strtab.len()].copy_from_slice(&strtab);
        b[dyn_off..].copy_from_slice(&dynamic);
        b
    }

    #[test]
    fn reads_the_loader_and_needed_libraries() {
        let b = synthetic(
            Some("/lib64/ld-linux-x86-64.so.2"),
            &["libxenctrl.so.4.20", "libc.so.6"],
        );
        let n = needs(&b).unwrap();
        assert_eq!(n.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(n.needed, ["libxenctrl.so.4.20", "libc.so.6"]);
    }

    #[test]
    fn a_library_has_no_loader() {
        let n = needs(&synthetic(None, &["libc.so.6"])).unwrap();
        assert_eq!(n.interp, None);
        assert_eq!(n.needed, ["libc.so.6"]);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(needs(b"not an elf").is_err());
        let b = synthetic(Some("/lib64/ld.so"), &["libc.so.6"]);
        for cut in [0x30, 64 + 56, b.len() - 20] {
            assert!(needs(&b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
