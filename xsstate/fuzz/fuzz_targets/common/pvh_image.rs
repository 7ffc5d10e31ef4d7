//! Shared logic of the `pvh_image` fuzz target: the PVH ELF validator on arbitrary bytes.
//!
//! Used by the `cargo fuzz` target and, through `#[path]`, by the `fuzz_corpus` replay test.

use xsstate::pvh::{parse, MAX_SPAN};

/// Parses `data` as a PVH kernel image; when accepted, checks what `parse` promises and
/// that `flatten` lays it out (both must refuse, never panic, on anything else).
pub fn pvh_image(data: &[u8]) {
    let Ok(img) = parse(data) else {
        return;
    };
    assert!(img.load_lo >= 1 << 20, "loads below 1 MiB: {img:?}");
    assert!(img.load_hi <= 1 << 32, "ends above 4 GiB: {img:?}");
    assert!(
        img.load_hi > img.load_lo && img.span() <= MAX_SPAN,
        "{img:?}"
    );
    let entry = u64::from(img.entry32);
    assert!(
        img.segments
            .iter()
            .any(|s| s.executable && s.paddr <= entry && entry < s.paddr + s.mem_bytes),
        "entry outside: {img:?}"
    );
    for (i, a) in img.segments.iter().enumerate() {
        assert!(a.file_bytes <= a.mem_bytes);
        for b in img.segments.iter().skip(i + 1) {
            assert!(
                a.paddr + a.mem_bytes <= b.paddr || b.paddr + b.mem_bytes <= a.paddr,
                "overlap: {img:?}"
            );
        }
    }
    let mut out = Vec::new();
    img.flatten(data, &mut out)
        .expect("an accepted image flattens");
    assert_eq!(out.len() as u64, img.span());
    for s in &img.segments {
        let at = (s.paddr - img.load_lo) as usize;
        let from = s.file_offset as usize;
        let n = s.file_bytes as usize;
        assert_eq!(out[at..at + n], data[from..from + n]);
    }
}
