//! The PVH image validator against hand-built, real and mutated ELF files.
//!
//! Hand-built files (valid and broken), the real kernel image when it was built, and mutated
//! files that must never make `parse` or `flatten` panic.

use proptest::prelude::*;
use xsstate::pvh::{parse, PvhError, PvhImage, MAX_SPAN};

const MIB: u64 = 1 << 20;

/// One program header of a built file.
#[derive(Clone)]
struct Ph {
    kind: u32,
    flags: u32,
    paddr: u64,
    /// Contents (file bytes).
    data: Vec<u8>,
    mem: u64,
    align: u64,
    /// Overrides of the computed file offset / size, to build broken files.
    offset: Option<u64>,
    filesz: Option<u64>,
}

fn load(paddr: u64, data: Vec<u8>, mem: u64, exec: bool) -> Ph {
    Ph {
        kind: 1,
        flags: if exec { 5 } else { 6 },
        paddr,
        data,
        mem,
        align: 0x1000,
        offset: None,
        filesz: None,
    }
}

fn note_bytes(name: &[u8], kind: u32, desc: &[u8], align: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(name);
    while !v.len().is_multiple_of(align) {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while !v.len().is_multiple_of(align) {
        v.push(0);
    }
    v
}

fn note(data: Vec<u8>, align: u64) -> Ph {
    let mem = data.len() as u64;
    Ph {
        kind: 4,
        flags: 4,
        paddr: 0,
        data,
        mem,
        align,
        offset: None,
        filesz: None,
    }
}

fn entry_note(entry: u32) -> Ph {
    note(note_bytes(b"Xen\0", 18, &entry.to_le_bytes(), 4), 4)
}

/// An ELF64 x86-64 ET_EXEC file with these program headers, contents after the table.
fn elf(phs: &[Ph]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    let table = f.len();
    f.resize(table + 56 * phs.len(), 0);
    for (i, p) in phs.iter().enumerate() {
        while !f.len().is_multiple_of(8) {
            f.push(0);
        }
        let off = f.len() as u64;
        f.extend_from_slice(&p.data);
        let b = table + i * 56;
        let put = |f: &mut Vec<u8>, at: usize, v: u64| {
            f[b + at..b + at + 8].copy_from_slice(&v.to_le_bytes());
        };
        f[b..b + 4].copy_from_slice(&p.kind.to_le_bytes());
        f[b + 4..b + 8].copy_from_slice(&p.flags.to_le_bytes());
        put(&mut f, 8, p.offset.unwrap_or(off));
        put(&mut f, 16, p.paddr);
        put(&mut f, 24, p.paddr);
        put(&mut f, 32, p.filesz.unwrap_or(p.data.len() as u64));
        put(&mut f, 40, p.mem);
        put(&mut f, 48, p.align);
    }
    f
}

/// A valid image like ours: text, rodata with the notes, data + bss, a non-loaded note.
fn sample() -> Vec<u8> {
    let text: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
    let rodata = vec![0xAB; 64];
    let data = vec![0xCD; 48];
    elf(&[
        load(MIB, text, 200, true),
        load(MIB + 0x1000, rodata, 64, false),
        load(MIB + 0x2000, data, 48 + 4096, false),
        Ph {
            kind: 0x6474_e551, // PT_GNU_STACK
            flags: 6,
            paddr: 0,
            data: vec![],
            mem: 0,
            align: 0,
            offset: Some(0),
            filesz: Some(0),
        },
        note(
            [
                note_bytes(b"GNU\0", 3, &[0x11; 20], 4),
                note_bytes(b"Xen\0", 18, &(MIB as u32 + 16).to_le_bytes(), 4),
            ]
            .concat(),
            4,
        ),
    ])
}

fn refused(f: &[u8]) -> PvhError {
    match parse(f) {
        Ok(img) => panic!("accepted: {img:?}"),
        Err(e) => {
            // Every refusal can be displayed.
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

#[test]
fn sample_parses_and_flattens() {
    let f = sample();
    let img = parse(&f).unwrap();
    assert_eq!(img.entry32, MIB as u32 + 16);
    assert_eq!(img.load_lo, MIB);
    assert_eq!(img.load_hi, MIB + 0x2000 + 48 + 4096);
    assert_eq!(img.segments.len(), 3);
    assert!(img.segments[0].executable && !img.segments[1].executable);
    let mut out = Vec::new();
    img.flatten(&f, &mut out).unwrap();
    assert_eq!(out.len() as u64, img.span());
    assert_eq!(out[..200], f[img.segments[0].file_offset as usize..][..200]);
    assert!(out[200..0x1000].iter().all(|&b| b == 0), "gap not zero");
    assert!(out[0x1000..0x1040].iter().all(|&b| b == 0xAB));
    assert!(out[0x2000..0x2030].iter().all(|&b| b == 0xCD));
    assert!(out[0x2030..].iter().all(|&b| b == 0), "bss not zero");
}

#[test]
fn eight_byte_entry_and_eight_aligned_notes() {
    let text = vec![0x90; 64];
    let f = elf(&[
        load(2 * MIB, text, 64, true),
        note(note_bytes(b"GNU\0", 5, &[1; 12], 8), 8),
        note(note_bytes(b"Xen\0", 18, &(2 * MIB + 8).to_le_bytes(), 4), 4),
    ]);
    assert_eq!(parse(&f).unwrap().entry32, 2 * MIB as u32 + 8);
    // The same entry in two notes is fine, two different ones are not.
    let f = elf(&[
        load(2 * MIB, vec![0x90; 64], 64, true),
        entry_note(2 * MIB as u32),
        entry_note(2 * MIB as u32 + 1),
    ]);
    assert!(matches!(refused(&f), PvhError::BadNote { .. }));
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn compatibility_note() {
    use xsstate::compat::{Compat, NOTE_NAME, NOTE_TYPE, THIS, THIS_DESC};
    let with = |desc: &[u8]| {
        elf(&[
            load(MIB, vec![0x90; 64], 64, true),
            note(
                [
                    note_bytes(b"Xen\0", 18, &(MIB as u32).to_le_bytes(), 4),
                    note_bytes(NOTE_NAME, NOTE_TYPE, desc, 4),
                ]
                .concat(),
                4,
            ),
        ])
    };
    // Without the note: parsed, nothing declared.
    assert_eq!(parse(&sample()).unwrap().compat, None);
    let img = parse(&with(&words(&THIS_DESC))).unwrap();
    assert_eq!(img.compat, Some(THIS));
    assert!(img.compat.unwrap().reads_ours());
    // A newer image that reads only newer buffers: parsed, and it does not read ours.
    let newer = parse(&with(&words(&[2, 1, 90, 99, 2, 1, 1]))).unwrap();
    assert!(!newer.compat.unwrap().reads_ours());
    assert_eq!(
        newer.compat,
        Compat::parse(&words(&[2, 1, 90, 99, 2, 1, 1]))
    );
    // A malformed note is refused.
    assert!(matches!(
        refused(&with(&words(&[2, 1, 1]))),
        PvhError::BadNote { .. }
    ));
    // A 64-bit live-update entry: kept when inside the code, refused outside it.
    let entry = MIB as u32 + 16;
    let img = parse(&with(&words(&[3, 1, 1, 3, 2, 1, 1, 3, entry, entry]))).unwrap();
    assert_eq!(img.compat.unwrap().entry64, Some(entry));
    let far = MIB as u32 + 0x1000;
    assert!(matches!(
        refused(&with(&words(&[3, 1, 1, 3, 2, 1, 1, 3, far, far]))),
        PvhError::BadNote { .. }
    ));
}

#[test]
fn real_image_when_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    for p in [
        "target/kernel/release/xsstub",
        "target/kernel/release/xsstub-stripped",
    ] {
        let Ok(bytes) = std::fs::read(root.join(p)) else {
            continue;
        };
        seen += 1;
        let img = parse(&bytes).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(img.load_lo, MIB, "{p}");
        let c = img
            .compat
            .unwrap_or_else(|| panic!("{p}: no compatibility note"));
        let t = xsstate::compat::THIS;
        assert_eq!((c.handover, c.image), (t.handover, t.image), "{p}");
        assert!(c.entry64.is_some(), "{p}: no 64-bit live-update entry");
        assert!(img.span() < 8 * MIB, "{p}: {img:?}");
        let mut out = Vec::new();
        img.flatten(&bytes, &mut out).unwrap();
        assert_eq!(out.len() as u64, img.span());
        // Any prefix short of the last segment's end is refused.
        let cut = bytes.len().min(64 * 1024);
        assert!(parse(&bytes[..cut]).is_err(), "{p}: a 64 KiB prefix parsed");
    }
    eprintln!("real images checked: {seen}");
}

#[test]
fn truncated_files() {
    let f = sample();
    for n in [0, 3, 4, 63, 64, 100, 64 + 5 * 56 - 1] {
        assert!(
            matches!(refused(&f[..n]), PvhError::Truncated { .. }),
            "{n} bytes"
        );
    }
    for n in 0..f.len() {
        assert!(parse(&f[..n]).is_err(), "{n} bytes parsed");
    }
}

#[test]
fn bad_headers() {
    let cases: [(usize, u8, &str); 6] = [
        (0, 0x7e, "magic"),
        (4, 1, "class"),
        (5, 2, "data"),
        (16, 3, "type"),
        (18, 3, "machine"),
        (54, 55, "program header size"),
    ];
    for (at, value, field) in cases {
        let mut f = sample();
        f[at] = value;
        match refused(&f) {
            PvhError::BadHeader {
                field: got, offset, ..
            } => {
                assert!(got.starts_with(field), "{got} for {field}");
                assert_eq!(offset, at as u64);
            }
            e => panic!("{field}: {e}"),
        }
    }
    // No program headers, or a table beyond the end of the file.
    let mut f = sample();
    f[56..58].copy_from_slice(&0u16.to_le_bytes());
    assert!(matches!(refused(&f), PvhError::BadHeader { .. }));
    let mut f = sample();
    f[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(refused(&f), PvhError::Truncated { .. }));
}

#[test]
fn no_note_is_not_pvh() {
    let f = elf(&[load(MIB, vec![0x90; 16], 16, true)]);
    assert_eq!(refused(&f), PvhError::NotPvh);
    // A note of another owner with type 18 does not count.
    let f = elf(&[
        load(MIB, vec![0x90; 16], 16, true),
        note(note_bytes(b"Xe\0\0", 18, &(MIB as u32).to_le_bytes(), 4), 4),
    ]);
    assert_eq!(refused(&f), PvhError::NotPvh);
    assert!(refused(&f).to_string().contains("not a PVH image"));
}

#[test]
fn bad_notes() {
    // Descriptor of 2 bytes, value above 4 GiB, sizes running past the segment.
    let f = elf(&[
        load(MIB, vec![0x90; 16], 16, true),
        note(note_bytes(b"Xen\0", 18, &[0, 0], 4), 4),
    ]);
    assert!(matches!(refused(&f), PvhError::BadNote { .. }));
    let f = elf(&[
        load(MIB, vec![0x90; 16], 16, true),
        note(note_bytes(b"Xen\0", 18, &(1u64 << 32).to_le_bytes(), 4), 4),
    ]);
    assert!(matches!(refused(&f), PvhError::BadNote { .. }));
    let mut n = note_bytes(b"Xen\0", 18, &(MIB as u32).to_le_bytes(), 4);
    n[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let f = elf(&[load(MIB, vec![0x90; 16], 16, true), note(n, 4)]);
    assert!(matches!(refused(&f), PvhError::BadNote { .. }));
    let f = elf(&[load(MIB, vec![0x90; 16], 16, true), note(vec![1, 2, 3], 4)]);
    assert!(matches!(refused(&f), PvhError::BadNote { .. }));
}

#[test]
fn entry_outside_executable_segments() {
    // In a data segment, past the end, before the start.
    for entry in [MIB as u32 + 0x1000, MIB as u32 + 16, MIB as u32 - 1] {
        let f = elf(&[
            load(MIB, vec![0x90; 16], 16, true),
            load(MIB + 0x1000, vec![0; 16], 16, false),
            entry_note(entry),
        ]);
        assert_eq!(
            refused(&f),
            PvhError::EntryOutside { entry32: entry },
            "{entry:#x}"
        );
    }
    // Inside the executable segment's bss is inside its memory range.
    let f = elf(&[
        load(MIB, vec![0x90; 16], 64, true),
        entry_note(MIB as u32 + 40),
    ]);
    assert!(parse(&f).is_ok());
}

#[test]
fn overlapping_segments() {
    let f = elf(&[
        load(MIB, vec![0x90; 16], 0x2000, true),
        load(MIB + 0x1000, vec![0; 16], 16, false),
        entry_note(MIB as u32),
    ]);
    match refused(&f) {
        PvhError::Overlap { first, second } => assert_eq!((first, second), (64, 120)),
        e => panic!("{e}"),
    }
    // Touching is not overlapping.
    let f = elf(&[
        load(MIB, vec![0x90; 16], 0x1000, true),
        load(MIB + 0x1000, vec![0; 16], 16, false),
        entry_note(MIB as u32),
    ]);
    assert!(parse(&f).is_ok());
}

#[test]
fn bad_segments_and_huge_sizes() {
    let e = entry_note(MIB as u32);
    // Below 1 MiB.
    let f = elf(&[load(0x8000, vec![0x90; 16], 16, true), e.clone()]);
    assert!(matches!(
        refused(&f),
        PvhError::BadSegment { paddr: 0x8000, .. }
    ));
    // Memory smaller than the file part.
    let f = elf(&[load(MIB, vec![0x90; 16], 8, true), e.clone()]);
    assert!(matches!(refused(&f), PvhError::BadSegment { .. }));
    // Memory range overflowing, or ending above 4 GiB.
    let f = elf(&[load(MIB, vec![0x90; 16], u64::MAX, true), e.clone()]);
    assert!(matches!(refused(&f), PvhError::BadSegment { .. }));
    let f = elf(&[load((4 << 30) - 16, vec![0x90; 16], 32, true), e.clone()]);
    assert!(matches!(refused(&f), PvhError::BadSegment { .. }));
    // One huge segment, or a huge span between two small ones.
    let f = elf(&[load(MIB, vec![0x90; 16], MAX_SPAN + 1, true), e.clone()]);
    assert!(matches!(refused(&f), PvhError::TooLarge { .. }));
    let f = elf(&[
        load(MIB, vec![0x90; 16], 16, true),
        load(MIB + MAX_SPAN, vec![0; 16], 16, false),
        e.clone(),
    ]);
    assert_eq!(
        refused(&f),
        PvhError::TooLarge {
            span: MAX_SPAN + 16
        }
    );
    // Exactly MAX_SPAN is fine (and flattens to that many bytes).
    let f = elf(&[
        load(MIB, vec![0x90; 16], 16, true),
        load(MIB + MAX_SPAN - 16, vec![0; 16], 16, false),
        e.clone(),
    ]);
    let img = parse(&f).unwrap();
    let mut out = Vec::new();
    img.flatten(&f, &mut out).unwrap();
    assert_eq!(out.len() as u64, MAX_SPAN);
    // File ranges beyond the end of the file, or overflowing.
    for (offset, filesz) in [(1 << 40, 16), (u64::MAX - 3, 16), (64, 1 << 40)] {
        let mut p = load(MIB, vec![0x90; 16], 1 << 41, true);
        p.offset = Some(offset);
        p.filesz = Some(filesz);
        let f = elf(&[p, e.clone()]);
        assert!(
            matches!(refused(&f), PvhError::Truncated { .. }),
            "{offset:#x}+{filesz:#x}"
        );
    }
    // No loadable segment at all; empty PT_LOADs are skipped.
    let f = elf(&[load(0, vec![], 0, true), e.clone()]);
    assert_eq!(refused(&f), PvhError::NoLoadSegments);
    // Too many program headers.
    let mut many = vec![e.clone(); 257];
    many[0] = load(MIB, vec![0x90; 16], 16, true);
    assert!(matches!(refused(&elf(&many)), PvhError::BadHeader { .. }));
}

#[test]
fn flatten_replaces_old_contents_and_rechecks() {
    let f = sample();
    let img = parse(&f).unwrap();
    let mut out = vec![0xFF; 1 << 20];
    img.flatten(&f, &mut out).unwrap();
    assert_eq!(out.len() as u64, img.span());
    // A forged image whose segment lies outside its own range is refused, not a panic.
    let forged = PvhImage {
        load_hi: img.load_lo + 8,
        ..img.clone()
    };
    assert!(forged.flatten(&f, &mut out).is_err());
    assert!(img.flatten(&f[..300], &mut out).is_err());
}

/// What `parse` promises about an accepted image, checked on arbitrary input.
fn check_invariants(bytes: &[u8]) {
    let Ok(img) = parse(bytes) else {
        return;
    };
    assert!(img.load_lo >= MIB && img.load_hi <= 1 << 32);
    assert!(img.load_hi > img.load_lo && img.span() <= MAX_SPAN);
    assert!(img.segments.iter().any(|s| s.executable
        && s.paddr <= u64::from(img.entry32)
        && u64::from(img.entry32) < s.paddr + s.mem_bytes));
    if img.span() <= 4 * MIB {
        let mut out = Vec::new();
        img.flatten(bytes, &mut out).unwrap();
        assert_eq!(out.len() as u64, img.span());
    }
}

#[test]
fn byte_flips_never_panic() {
    let f = sample();
    for at in 0..f.len() {
        for bit in 0..8 {
            let mut g = f.clone();
            g[at] ^= 1 << bit;
            check_invariants(&g);
        }
        for v in [0u8, 0xff, 0x7f, 0x80] {
            let mut g = f.clone();
            g[at] = v;
            check_invariants(&g);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutations_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..12),
        cut in any::<usize>(),
    ) {
        let mut f = sample();
        for (at, v) in edits {
            let i = at % f.len();
            f[i] = v;
        }
        let len = f.len();
        f.truncate(len - cut % 16);
        check_invariants(&f);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_invariants(&bytes);
    }
}
