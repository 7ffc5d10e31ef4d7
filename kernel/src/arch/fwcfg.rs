//! QEMU's fw_cfg device through its legacy I/O ports: the `etc/e820` memory map.
//!
//! Used on bare QEMU when the start info carries no memory map (after a live-update
//! hand-over, whose start info has none, as under Xen).
#![deny(unsafe_code)]

use super::cpu;
use super::startinfo::MemmapEntry;

/// The selector port (16-bit writes).
const SELECTOR: u16 = 0x510;
/// The data port (byte reads).
const DATA: u16 = 0x511;
/// Selector of the signature, "QEMU".
const KEY_SIGNATURE: u16 = 0x0000;
/// Selector of the file directory.
const KEY_FILE_DIR: u16 = 0x0019;
/// Bytes of one `etc/e820` entry: address, length (u64 LE), type (u32 LE).
const E820_ENTRY_LEN: usize = 20;
/// Directory entries read at most (QEMU has a few dozen files).
const MAX_FILES: u32 = 1024;

/// The most memory map entries [`e820`] returns.
pub const MAX_ENTRIES: usize = 32;

fn select(key: u16) {
    cpu::outw(SELECTOR, key);
}

fn read(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b = cpu::inb(DATA);
    }
}

/// Whether a fw_cfg device answers (reads as all-ones where there is none, e.g. under Xen).
pub fn present() -> bool {
    select(KEY_SIGNATURE);
    let mut sig = [0u8; 4];
    read(&mut sig);
    &sig == b"QEMU"
}

/// The selector and size of the fw_cfg file `name`.
pub fn find_file(name: &[u8]) -> Option<(u16, u32)> {
    if !present() {
        return None;
    }
    select(KEY_FILE_DIR);
    let mut count = [0u8; 4];
    read(&mut count);
    let count = u32::from_be_bytes(count).min(MAX_FILES);
    let mut entry = [0u8; 64];
    for _ in 0..count {
        read(&mut entry);
        let [s0, s1, s2, s3, k0, k1, _, _, ..] = entry;
        let (size, key) = (
            u32::from_be_bytes([s0, s1, s2, s3]),
            u16::from_be_bytes([k0, k1]),
        );
        let file_name = entry.get(8..).unwrap_or(&[]);
        let len = file_name.iter().position(|&b| b == 0).unwrap_or(56);
        if file_name.get(..len) == Some(name) {
            return Some((key, size));
        }
    }
    None
}

/// QEMU's memory map (`etc/e820`), at most [`MAX_ENTRIES`] entries; `None` without fw_cfg.
pub fn e820() -> Option<heapless::Vec<MemmapEntry, MAX_ENTRIES>> {
    let (key, size) = find_file(b"etc/e820")?;
    select(key);
    let mut out = heapless::Vec::new();
    let mut raw = [0u8; E820_ENTRY_LEN];
    for _ in 0..(size as usize / E820_ENTRY_LEN).min(MAX_ENTRIES) {
        read(&mut raw);
        let e = MemmapEntry::parse(&raw)?;
        out.push(e).ok()?;
    }
    Some(out)
}
