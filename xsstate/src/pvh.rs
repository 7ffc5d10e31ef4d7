//! A validator for PVH kernel ELF images: what a live update may jump into, and where.
//!
//! [`parse`] checks an ELF file (64-bit, little endian, x86-64, `ET_EXEC`) as a PVH loader
//! would: every program header and every loadable segment lies within the file, segments
//! neither overflow nor overlap, load at or above 1 MiB and end at or below 4 GiB within a
//! 64 MiB span, and the 32-bit entry point comes from the Xen ELF note
//! `XEN_ELFNOTE_PHYS32_ENTRY` and lies inside an executable segment. [`PvhImage::flatten`]
//! then lays the image out as the loader would place it in memory, from its lowest load
//! address. Every length is checked before anything is allocated, with checked arithmetic.
//! Addresses are physical (`p_paddr`), as the PVH loaders use them.

use crate::le;
use alloc::vec::Vec;
use core::fmt;

/// The lowest physical load address accepted (1 MiB; below lives the hand-over area).
pub const MIN_PADDR: u64 = 1 << 20;
/// Loaded images must end at or below 4 GiB (the entry runs in 32-bit mode, paging off).
pub const MAX_PADDR: u64 = 1 << 32;
/// The largest span `load_hi - load_lo` accepted.
pub const MAX_SPAN: u64 = 64 << 20;
/// At most this many program headers.
pub const MAX_PROGRAM_HEADERS: usize = 256;
/// At most this many (non-empty) `PT_LOAD` segments.
pub const MAX_LOAD_SEGMENTS: usize = 64;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the note holding the PVH 32-bit entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const NOTE_HEADER_LEN: usize = 12;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// One non-empty `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address.
    pub paddr: u64,
    /// Offset of its bytes in the file.
    pub file_offset: u64,
    /// Bytes taken from the file.
    pub file_bytes: u64,
    /// Bytes in memory (`>= file_bytes`; the rest is zeroed).
    pub mem_bytes: u64,
    /// Whether the segment is executable (`PF_X`).
    pub executable: bool,
}

impl Segment {
    /// The end of the segment in memory (cannot overflow once [`parse`] accepted it).
    fn mem_end(&self) -> u64 {
        self.paddr.saturating_add(self.mem_bytes)
    }
}

/// A validated PVH image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvhImage {
    /// The 32-bit protected-mode entry point (`XEN_ELFNOTE_PHYS32_ENTRY`).
    pub entry32: u32,
    /// The non-empty `PT_LOAD` segments, in program-header order.
    pub segments: Vec<Segment>,
    /// The lowest physical address loaded.
    pub load_lo: u64,
    /// One past the highest physical address loaded (`.bss` included).
    pub load_hi: u64,
    /// What it declares it reads (`crate::compat`'s note), when it declares it.
    pub compat: Option<crate::compat::Compat>,
}

/// Why an image was refused; file offsets say where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhError {
    /// `what` at file offset `offset`, `len` bytes long, does not fit in the `file_len`-byte
    /// file (or its end overflows).
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// Its length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// An ELF header field at file offset `offset` has a value this loader does not accept.
    BadHeader {
        /// The field.
        field: &'static str,
        /// Its file offset.
        offset: u64,
        /// Its value.
        value: u64,
    },
    /// The program header at file offset `offset` describes an unusable segment.
    BadSegment {
        /// The program header's file offset.
        offset: u64,
        /// The segment's physical address.
        paddr: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// The segments of the program headers at these file offsets overlap in memory.
    Overlap {
        /// The first program header's file offset.
        first: u64,
        /// The second program header's file offset.
        second: u64,
    },
    /// No non-empty `PT_LOAD` segment.
    NoLoadSegments,
    /// The loaded span exceeds [`MAX_SPAN`].
    TooLarge {
        /// `load_hi - load_lo`.
        span: u64,
    },
    /// A malformed note at file offset `offset`.
    BadNote {
        /// The note's file offset.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// No `XEN_ELFNOTE_PHYS32_ENTRY` note in any `PT_NOTE` segment: not a PVH image.
    NotPvh,
    /// The entry point is not inside an executable segment.
    EntryOutside {
        /// The entry point.
        entry32: u32,
    },
    /// [`PvhImage::flatten`] could not allocate the image.
    OutOfMemory {
        /// Bytes wanted.
        bytes: u64,
    },
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PvhError::Truncated {
                what,
                offset,
                len,
                file_len,
            } => write!(
                f,
                "truncated: {what} at file offset {offset:#x} ({len:#x} bytes) does not fit in \
                 the {file_len:#x}-byte file"
            ),
            PvhError::BadHeader {
                field,
                offset,
                value,
            } => write!(
                f,
                "unsupported ELF header: {field} at file offset {offset:#x} is {value:#x}"
            ),
            PvhError::BadSegment { offset, paddr, why } => write!(
                f,
                "bad segment (program header at file offset {offset:#x}, paddr {paddr:#x}): {why}"
            ),
            PvhError::Overlap { first, second } => write!(
                f,
                "segments overlap (program headers at file offsets {first:#x} and {second:#x})"
            ),
            PvhError::NoLoadSegments => f.write_str("no loadable segment"),
            PvhError::TooLarge { span } => write!(
                f,
                "image spans {span:#x} bytes in memory (at most {MAX_SPAN:#x})"
            ),
            PvhError::BadNote { offset, why } => {
                write!(f, "bad ELF note at file offset {offset:#x}: {why}")
            }
            PvhError::NotPvh => f.write_str(
                "not a PVH image: no XEN_ELFNOTE_PHYS32_ENTRY note in any PT_NOTE segment",
            ),
            PvhError::EntryOutside { entry32 } => write!(
                f,
                "entry point {entry32:#x} is not inside an executable segment"
            ),
            PvhError::OutOfMemory { bytes } => {
                write!(f, "no memory to lay out the {bytes:#x}-byte image")
            }
        }
    }
}

/// `len` bytes at `offset` of `bytes`, or why not.
fn slice_at<'a>(
    bytes: &'a [u8],
    what: &'static str,
    offset: u64,
    len: u64,
) -> Result<&'a [u8], PvhError> {
    let truncated = PvhError::Truncated {
        what,
        offset,
        len,
        file_len: bytes.len() as u64,
    };
    let start = usize::try_from(offset).map_err(|_| truncated)?;
    let n = usize::try_from(len).map_err(|_| truncated)?;
    let end = start.checked_add(n).ok_or(truncated)?;
    bytes.get(start..end).ok_or(truncated)
}

/// One program header's fields that matter here.
#[derive(Clone, Copy)]
struct Phdr {
    /// The header's own file offset (for messages).
    at: u64,
    kind: u32,
    flags: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

/// Checks the ELF header; returns (phoff, phnum).
fn header(bytes: &[u8]) -> Result<(u64, usize), PvhError> {
    let ehdr = slice_at(bytes, "ELF header", 0, EHDR_LEN as u64)?;
    let bad = |field, offset: u64, value: u64| PvhError::BadHeader {
        field,
        offset,
        value,
    };
    let ident = ehdr.get(..4).unwrap_or(&[]);
    if ident != b"\x7fELF" {
        return Err(bad("magic", 0, u64::from(le::u32_at(ehdr, 0).unwrap_or(0))));
    }
    let byte = |at: usize| u64::from(ehdr.get(at).copied().unwrap_or(0));
    if byte(4) != 2 {
        return Err(bad("class (ELF64 wanted)", 4, byte(4)));
    }
    if byte(5) != 1 {
        return Err(bad("data encoding (little endian wanted)", 5, byte(5)));
    }
    if byte(6) != 1 {
        return Err(bad("ident version", 6, byte(6)));
    }
    if le::u16_at(ehdr, 16).unwrap_or(0) != ET_EXEC {
        return Err(bad(
            "type (ET_EXEC wanted)",
            16,
            u64::from(le::u16_at(ehdr, 16).unwrap_or(0)),
        ));
    }
    if le::u16_at(ehdr, 18).unwrap_or(0) != EM_X86_64 {
        return Err(bad(
            "machine (x86-64 wanted)",
            18,
            u64::from(le::u16_at(ehdr, 18).unwrap_or(0)),
        ));
    }
    let phoff = le::u64_at(ehdr, 32).unwrap_or(0);
    let phentsize = le::u16_at(ehdr, 54).unwrap_or(0);
    let phnum = usize::from(le::u16_at(ehdr, 56).unwrap_or(0));
    if usize::from(phentsize) != PHDR_LEN {
        return Err(bad("program header size", 54, u64::from(phentsize)));
    }
    if phnum == 0 || phnum > MAX_PROGRAM_HEADERS {
        return Err(bad("program header count", 56, phnum as u64));
    }
    // The whole table must lie within the file.
    slice_at(
        bytes,
        "program header table",
        phoff,
        (phnum * PHDR_LEN) as u64,
    )?;
    Ok((phoff, phnum))
}

/// Program header `i` (the table was checked to lie within the file).
fn phdr(bytes: &[u8], phoff: u64, i: usize) -> Result<Phdr, PvhError> {
    let at = phoff.saturating_add((i * PHDR_LEN) as u64);
    let p = slice_at(bytes, "program header", at, PHDR_LEN as u64)?;
    Ok(Phdr {
        at,
        kind: le::u32_at(p, 0).unwrap_or(0),
        flags: le::u32_at(p, 4).unwrap_or(0),
        offset: le::u64_at(p, 8).unwrap_or(0),
        paddr: le::u64_at(p, 24).unwrap_or(0),
        filesz: le::u64_at(p, 32).unwrap_or(0),
        memsz: le::u64_at(p, 40).unwrap_or(0),
        align: le::u64_at(p, 48).unwrap_or(0),
    })
}

/// Validates one `PT_LOAD` header; `None` for an empty segment (nothing to load).
fn load_segment(bytes: &[u8], p: &Phdr) -> Result<Option<Segment>, PvhError> {
    let bad = |why| PvhError::BadSegment {
        offset: p.at,
        paddr: p.paddr,
        why,
    };
    if p.memsz < p.filesz {
        return Err(bad("memory size below file size"));
    }
    // The file range must lie within the file, even when it is empty.
    slice_at(bytes, "segment contents", p.offset, p.filesz)?;
    if p.memsz == 0 {
        return Ok(None);
    }
    let end = p
        .paddr
        .checked_add(p.memsz)
        .ok_or(bad("memory range overflows"))?;
    if p.paddr < MIN_PADDR {
        return Err(bad("loads below 1 MiB"));
    }
    if end > MAX_PADDR {
        return Err(bad("ends above 4 GiB"));
    }
    if p.memsz > MAX_SPAN {
        return Err(PvhError::TooLarge { span: p.memsz });
    }
    Ok(Some(Segment {
        paddr: p.paddr,
        file_offset: p.offset,
        file_bytes: p.filesz,
        mem_bytes: p.memsz,
        executable: p.flags & PF_X != 0,
    }))
}

/// Rounds `x` up to a multiple of `align` (a power of two), or `None` on overflow.
fn align_up(x: usize, align: usize) -> Option<usize> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// What the notes of one `PT_NOTE` segment say.
#[derive(Default)]
struct Notes {
    entry: Option<u32>,
    compat: Option<crate::compat::Compat>,
}

/// The entry point and the compatibility note from the notes of one `PT_NOTE` segment.
/// Notes are 4-byte aligned (8 when the segment says so, as for `.note.gnu.property`).
fn entry_note(bytes: &[u8], p: &Phdr) -> Result<Notes, PvhError> {
    let notes = slice_at(bytes, "note segment", p.offset, p.filesz)?;
    let align = if p.align == 8 { 8 } else { 4 };
    let mut found: Option<u32> = None;
    let mut compat = None;
    let mut pos = 0usize;
    while pos < notes.len() {
        let at = p.offset.saturating_add(pos as u64);
        let bad = |why| PvhError::BadNote { offset: at, why };
        let head = notes
            .get(pos..pos.saturating_add(NOTE_HEADER_LEN))
            .ok_or(bad("note header runs past the segment"))?;
        let namesz =
            usize::try_from(le::u32_at(head, 0).unwrap_or(0)).map_err(|_| bad("name size"))?;
        let descsz = usize::try_from(le::u32_at(head, 4).unwrap_or(0))
            .map_err(|_| bad("descriptor size"))?;
        let kind = le::u32_at(head, 8).unwrap_or(0);
        let name_at = pos + NOTE_HEADER_LEN;
        let desc_at = name_at
            .checked_add(namesz)
            .and_then(|e| align_up(e, align))
            .ok_or(bad("name size overflows"))?;
        let next = desc_at
            .checked_add(descsz)
            .and_then(|e| align_up(e, align))
            .ok_or(bad("descriptor size overflows"))?;
        let name = notes
            .get(name_at..name_at + namesz)
            .ok_or(bad("note name runs past the segment"))?;
        let desc = notes
            .get(desc_at..desc_at + descsz)
            .ok_or(bad("note descriptor runs past the segment"))?;
        let is_xen = name.split(|&b| b == 0).next() == Some(b"Xen".as_slice())
            && name.iter().skip(3).all(|&b| b == 0);
        if is_xen && kind == XEN_ELFNOTE_PHYS32_ENTRY {
            let value = match desc.len() {
                4 => u64::from(le::u32_at(desc, 0).unwrap_or(0)),
                8 => le::u64_at(desc, 0).unwrap_or(0),
                _ => return Err(bad("PHYS32_ENTRY descriptor is neither 4 nor 8 bytes")),
            };
            let entry = u32::try_from(value).map_err(|_| bad("PHYS32_ENTRY is above 4 GiB"))?;
            if found.is_some_and(|f| f != entry) {
                return Err(bad("a second, different PHYS32_ENTRY"));
            }
            found = Some(entry);
        }
        if name == crate::compat::NOTE_NAME && kind == crate::compat::NOTE_TYPE {
            let c = crate::compat::Compat::parse(desc)
                .ok_or(bad("malformed XSSTUB compatibility note"))?;
            if compat.is_some_and(|old| old != c) {
                return Err(bad("a second, different XSSTUB compatibility note"));
            }
            compat = Some(c);
        }
        // The last note's padding may be cut off by the segment's end.
        pos = next;
    }
    Ok(Notes {
        entry: found,
        compat,
    })
}

/// Validates a PVH kernel ELF image; see the module documentation for the rules.
pub fn parse(bytes: &[u8]) -> Result<PvhImage, PvhError> {
    let (phoff, phnum) = header(bytes)?;
    let mut segments: Vec<Segment> = Vec::new();
    let mut headers_at: Vec<u64> = Vec::new();
    let mut entry: Option<u32> = None;
    let mut compat = None;
    for i in 0..phnum {
        let p = phdr(bytes, phoff, i)?;
        match p.kind {
            PT_LOAD => {
                let Some(seg) = load_segment(bytes, &p)? else {
                    continue;
                };
                if segments.len() >= MAX_LOAD_SEGMENTS {
                    return Err(PvhError::BadSegment {
                        offset: p.at,
                        paddr: p.paddr,
                        why: "too many loadable segments",
                    });
                }
                for (other, &other_at) in segments.iter().zip(headers_at.iter()) {
                    if seg.paddr < other.mem_end() && other.paddr < seg.mem_end() {
                        return Err(PvhError::Overlap {
                            first: other_at,
                            second: p.at,
                        });
                    }
                }
                segments.push(seg);
                headers_at.push(p.at);
            }
            PT_NOTE => {
                let notes = entry_note(bytes, &p)?;
                if notes.compat.is_some() {
                    compat = notes.compat;
                }
                if let Some(e) = notes.entry {
                    if entry.is_some_and(|old| old != e) {
                        return Err(PvhError::BadNote {
                            offset: p.offset,
                            why: "a second, different PHYS32_ENTRY",
                        });
                    }
                    entry = Some(e);
                }
            }
            _ => {}
        }
    }
    let load_lo = segments
        .iter()
        .map(|s| s.paddr)
        .min()
        .ok_or(PvhError::NoLoadSegments)?;
    let load_hi = segments.iter().map(Segment::mem_end).max().unwrap_or(0);
    let span = load_hi.saturating_sub(load_lo);
    if span > MAX_SPAN {
        return Err(PvhError::TooLarge { span });
    }
    let entry32 = entry.ok_or(PvhError::NotPvh)?;
    let inside = |e: u32| {
        segments
            .iter()
            .any(|s| s.executable && s.paddr <= u64::from(e) && u64::from(e) < s.mem_end())
    };
    if !inside(entry32) {
        return Err(PvhError::EntryOutside { entry32 });
    }
    if let Some(e) = compat.and_then(|c| c.entry64) {
        if !inside(e) {
            return Err(PvhError::BadNote {
                offset: 0,
                why: "the XSSTUB note's 64-bit entry is outside the executable segments",
            });
        }
    }
    Ok(PvhImage {
        entry32,
        segments,
        load_lo,
        load_hi,
        compat,
    })
}

impl PvhImage {
    /// The number of bytes [`PvhImage::flatten`] produces: `load_hi - load_lo`.
    pub fn span(&self) -> u64 {
        self.load_hi.saturating_sub(self.load_lo)
    }

    /// Bytes from `load_lo` to the end of the last byte taken from the file: what a loader
    /// must copy (everything after is zero, `.bss`, which the image's entry clears itself).
    pub fn file_span(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.paddr.saturating_add(s.file_bytes))
            .max()
            .unwrap_or(self.load_lo)
            .saturating_sub(self.load_lo)
    }

    /// Lays the image out as it sits in memory from `load_lo`: `out` becomes
    /// `load_hi - load_lo` bytes with each segment's file bytes at `paddr - load_lo` and
    /// zeros everywhere else (gaps and `.bss`). `bytes` must be the file `self` was parsed
    /// from; each range is checked again. `out`'s old contents are discarded; an allocation
    /// failure is reported, not fatal.
    pub fn flatten(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), PvhError> {
        let span = self.span();
        if span > MAX_SPAN {
            return Err(PvhError::TooLarge { span });
        }
        let len = usize::try_from(span).map_err(|_| PvhError::TooLarge { span })?;
        out.clear();
        out.try_reserve_exact(len)
            .map_err(|_| PvhError::OutOfMemory { bytes: span })?;
        out.resize(len, 0);
        for seg in &self.segments {
            let src = slice_at(bytes, "segment contents", seg.file_offset, seg.file_bytes)?;
            let bad = |why| PvhError::BadSegment {
                offset: seg.file_offset,
                paddr: seg.paddr,
                why,
            };
            let at = seg
                .paddr
                .checked_sub(self.load_lo)
                .and_then(|a| usize::try_from(a).ok())
                .ok_or(bad("below the image's load address"))?;
            let dest = at
                .checked_add(src.len())
                .and_then(|end| out.get_mut(at..end))
                .ok_or(bad("beyond the image's end"))?;
            dest.copy_from_slice(src);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A minimal PVH ELF: one executable PT_LOAD at 1 MiB (code bytes 0x90.., with `bss`
    /// extra bytes in memory), one PT_NOTE with the entry note.
    fn tiny(entry: u32, bss: u64) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 2 * 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&u64::from(entry).to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let code_at = f.len() as u64;
        f.extend_from_slice(&[0x90; 32]);
        let note_at = f.len() as u64;
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&18u32.to_le_bytes());
        f.extend_from_slice(b"Xen\0");
        f.extend_from_slice(&entry.to_le_bytes());
        let ph = |f: &mut Vec<u8>,
                  i: usize,
                  kind: u32,
                  flags: u32,
                  off: u64,
                  pa: u64,
                  fs: u64,
                  ms: u64| {
            let b = 64 + i * 56;
            f[b..b + 4].copy_from_slice(&kind.to_le_bytes());
            f[b + 4..b + 8].copy_from_slice(&flags.to_le_bytes());
            f[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
            f[b + 16..b + 24].copy_from_slice(&pa.to_le_bytes());
            f[b + 24..b + 32].copy_from_slice(&pa.to_le_bytes());
            f[b + 32..b + 40].copy_from_slice(&fs.to_le_bytes());
            f[b + 40..b + 48].copy_from_slice(&ms.to_le_bytes());
            f[b + 48..b + 56].copy_from_slice(&4u64.to_le_bytes());
        };
        ph(&mut f, 0, 1, 5, code_at, 0x10_0000, 32, 32 + bss);
        ph(&mut f, 1, 4, 4, note_at, 0, 20, 20);
        f
    }

    #[test]
    fn tiny_image_parses_and_flattens() {
        let f = tiny(0x10_0000, 100);
        let img = parse(&f).unwrap();
        assert_eq!(img.entry32, 0x10_0000);
        assert_eq!((img.load_lo, img.load_hi), (0x10_0000, 0x10_0000 + 132));
        assert_eq!(img.segments.len(), 1);
        let mut out = vec![7u8; 3];
        img.flatten(&f, &mut out).unwrap();
        assert_eq!(out.len(), 132);
        assert!(out[..32].iter().all(|&b| b == 0x90));
        assert!(out[32..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse(b"\x7fELF"), Err(PvhError::Truncated { .. })));
        let mut f = tiny(0x10_0000, 0);
        f[0] = 0;
        assert!(matches!(
            parse(&f),
            Err(PvhError::BadHeader { field: "magic", .. })
        ));
        let f = tiny(0x20_0000, 0);
        assert_eq!(
            parse(&f),
            Err(PvhError::EntryOutside { entry32: 0x20_0000 })
        );
        let mut f = tiny(0x10_0000, 0);
        // Turn the note's type into something else: no entry.
        let note_type_at = 64 + 2 * 56 + 32 + 8;
        f[note_type_at] = 17;
        assert_eq!(parse(&f), Err(PvhError::NotPvh));
    }

    #[test]
    fn flatten_rechecks_the_file() {
        let f = tiny(0x10_0000, 0);
        let img = parse(&f).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            img.flatten(&f[..100], &mut out),
            Err(PvhError::Truncated { .. })
        ));
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let f = tiny(0x10_0000, 8);
        for n in 0..f.len() {
            assert!(parse(&f[..n]).is_err(), "{n} bytes parsed");
        }
    }
}
