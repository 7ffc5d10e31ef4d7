//! Where things are in physical memory (identity mapped): the image, its .bss, the boot
//! page tables and the boot stack, from the symbols of `linker.ld` and `boot/pvh.S`; and
//! the image's GNU build-id note.

/// Physical addresses up to here are identity mapped (2 MiB pages, present + writable).
pub const IDENTITY_MAP_END: u64 = 1 << 32;

/// The image's load address (`. = 1M` in linker.ld).
pub const IMAGE_BASE: u64 = 0x10_0000;

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static boot_pml4: u8;
    static boot_stack_guard: u8;
    static boot_stack: u8;
    static boot_stack_top: u8;
    static __build_id_note_start: u8;
    static __build_id_note_end: u8;
    static pvh_start32: u8;
}

/// The image's 32-bit PVH entry point (`boot/pvh.S`), as its ELF note gives it.
pub fn entry32() -> u32 {
    (&raw const pvh_start32) as u64 as u32
}

/// The first byte of the image.
pub fn image_start() -> u64 {
    (&raw const __image_start) as u64
}

/// The first free byte after the image, page aligned (.bss included).
pub fn image_end() -> u64 {
    (&raw const __image_end) as u64
}

/// Bytes of the image as loaded, up to .bss (which every entry zeroes): what a rollback
/// re-enters.
pub fn loaded_len() -> u64 {
    bss().0.saturating_sub(image_start())
}

/// Copies the image as it lies in memory, `[image_start, bss start)`, into `dst` (which must
/// be exactly [`loaded_len`] bytes); false (nothing copied) otherwise. Only .data has changed
/// since the load, and every entry rewrites what it holds there (GDT and TSS).
pub fn copy_loaded_image(dst: &mut [u8]) -> bool {
    if dst.len() as u64 != loaded_len() {
        return false;
    }
    super::mem::read_phys(image_start(), dst)
}

/// The .bss range (zeroed on every entry).
pub fn bss() -> (u64, u64) {
    (
        (&raw const __bss_start) as u64,
        (&raw const __bss_end) as u64,
    )
}

/// The boot page tables: PML4, PDPT, four page directories and one page table (for the
/// 2 MiB region holding the stack guard page), 7 pages from here.
pub fn page_tables() -> u64 {
    (&raw const boot_pml4) as u64
}

/// The unmapped 4 KiB guard page right below the boot stack.
pub fn stack_guard() -> u64 {
    (&raw const boot_stack_guard) as u64
}

/// The boot stack (the kernel's main stack): bottom and top.
pub fn boot_stack_range() -> (u64, u64) {
    (
        (&raw const boot_stack) as u64,
        (&raw const boot_stack_top) as u64,
    )
}

/// `NT_GNU_BUILD_ID`.
const NT_GNU_BUILD_ID: u32 = 3;

/// The GNU build-id of the running image (the descriptor of its `NT_GNU_BUILD_ID` note, 20
/// bytes with `--build-id=sha1`); empty if the image has none.
pub fn build_id() -> &'static [u8] {
    let start = &raw const __build_id_note_start;
    let end = &raw const __build_id_note_end;
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: linker.ld puts both symbols around the `.note.gnu.build-id` input sections of
    // the loaded, read-only `.note` output section, start <= end: the bytes between them
    // are part of the image and never written.
    let notes: &'static [u8] = unsafe { core::slice::from_raw_parts(start, len) };
    let u32_at = |at: usize| xsstate::le::u32_at(notes, at);
    let mut at = 0usize;
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (u32_at(at), u32_at(at + 4), u32_at(at + 8))
    {
        let name_at = at + 12;
        let desc_at = name_at + (namesz as usize).next_multiple_of(4);
        let next = desc_at + (descsz as usize).next_multiple_of(4);
        let name = notes.get(name_at..name_at + namesz as usize);
        if kind == NT_GNU_BUILD_ID && name == Some(b"GNU\0".as_slice()) {
            return notes.get(desc_at..desc_at + descsz as usize).unwrap_or(&[]);
        }
        at = next;
    }
    &[]
}

/// The physical address `vaddr` maps to in the page tables CR3 points at, or `None` when it
/// is not mapped (walks 4-level tables with 2 MiB/1 GiB pages; reads them with `read_phys`).
pub fn translate(vaddr: u64) -> Option<u64> {
    const PRESENT: u64 = 1;
    const HUGE: u64 = 1 << 7;
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    if vaddr >> 47 != 0 {
        return None;
    }
    let mut table = super::cpu::read_cr3() & ADDR;
    for (level, shift) in [(4u32, 39u32), (3, 30), (2, 21), (1, 12)] {
        let index = (vaddr >> shift) & 511;
        let mut raw = [0u8; 8];
        if !super::mem::read_phys(table + index * 8, &mut raw) {
            return None;
        }
        let entry = u64::from_le_bytes(raw);
        if entry & PRESENT == 0 {
            return None;
        }
        let page_mask = (1u64 << shift) - 1;
        if level == 1 || (entry & HUGE != 0 && (level == 2 || level == 3)) {
            return Some((entry & ADDR & !page_mask) | (vaddr & page_mask));
        }
        table = entry & ADDR;
    }
    None
}
