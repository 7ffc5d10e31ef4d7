//! What an image can read, declared in an ELF note of its own (`XSSTUB`, type
//! [`NOTE_TYPE`]) and checked before a live update jumps into it.
//!
//! The note's descriptor, little endian: `u32 count`, then `count` entries of
//! `u32 kind, u32 min, u32 max`: the range of versions the image reads of the hand-over
//! buffer ([`KIND_HANDOVER`], `crate::handover`) and of the migration image inside it
//! ([`KIND_IMAGE`], the seed layout's header version), and optionally ([`KIND_ENTRY64`]) a
//! 64-bit entry point for a live update, with `min == max` its address. Unknown kinds are
//! ignored.

use crate::handover;

/// The note's name (with its NUL).
pub const NOTE_NAME: &[u8] = b"XSSTUB\0";
/// The note's type.
pub const NOTE_TYPE: u32 = 0x5853_0001;
/// Entry kind: hand-over buffer versions.
pub const KIND_HANDOVER: u32 = 1;
/// Entry kind: migration image versions.
pub const KIND_IMAGE: u32 = 2;
/// Entry kind: the 64-bit live-update entry point. The image is entered there in long mode,
/// interrupts off, on page tables identity-mapping (at least) the first GiB, with its whole
/// image in place (.bss zeroed) and `%rbx` the physical address of its `hvm_start_info`: the
/// mode switches of the 32-bit PVH entry (each a VM exit) are spared.
pub const KIND_ENTRY64: u32 = 3;
/// The migration image version written (the seed layout's header version).
pub const IMAGE_VERSION: u32 = 1;
/// Most entries a note may have.
const MAX_ENTRIES: u32 = 16;

/// An inclusive range of versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// The oldest.
    pub min: u32,
    /// The newest.
    pub max: u32,
}

impl Versions {
    /// Whether `v` is in the range.
    pub fn contains(self, v: u32) -> bool {
        self.min <= v && v <= self.max
    }
}

/// What an image reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compat {
    /// Hand-over buffer versions.
    pub handover: Versions,
    /// Migration image versions.
    pub image: Versions,
    /// The 64-bit live-update entry point ([`KIND_ENTRY64`]), when declared.
    pub entry64: Option<u32>,
}

/// What this build reads.
pub const THIS: Compat = Compat {
    handover: Versions {
        min: handover::MIN_VERSION,
        max: handover::VERSION,
    },
    image: Versions {
        min: IMAGE_VERSION,
        max: IMAGE_VERSION,
    },
    // A link-time address: the kernel's note adds it after [`THIS_DESC`].
    entry64: None,
};

/// The descriptor of this build's note without its entry point: `count` (two entries),
/// then the two version entries. The kernel writes count 3 and appends its
/// [`KIND_ENTRY64`] entry ([`NOTE_DESC_BYTES`] in all).
pub const THIS_DESC: [u32; 7] = [
    2,
    KIND_HANDOVER,
    THIS.handover.min,
    THIS.handover.max,
    KIND_IMAGE,
    THIS.image.min,
    THIS.image.max,
];

/// The size of the kernel's note descriptor: [`THIS_DESC`] and one more entry.
pub const NOTE_DESC_BYTES: u32 = (THIS_DESC.len() as u32 + 3) * 4;

impl Compat {
    /// Whether an image declaring this reads what this build writes (a hand-over buffer of
    /// a version both know, with this build's image version).
    pub fn reads_ours(&self) -> bool {
        self.handover_version().is_some() && self.image.contains(IMAGE_VERSION)
    }

    /// The hand-over buffer version to write for an image declaring this: the newest both
    /// know.
    pub fn handover_version(&self) -> Option<u32> {
        handover::version_for(self.handover.min, self.handover.max)
    }

    /// Parses a note descriptor; `None` when malformed or without both kinds.
    pub fn parse(desc: &[u8]) -> Option<Compat> {
        let word = |i: usize| crate::le::u32_at(desc, i.checked_mul(4)?);
        let count = word(0)?;
        if count > MAX_ENTRIES || desc.len() != 4 + 12 * count as usize {
            return None;
        }
        let (mut hand, mut image, mut entry64) = (None, None, None);
        for i in 0..count as usize {
            let (kind, min, max) = (word(1 + 3 * i)?, word(2 + 3 * i)?, word(3 + 3 * i)?);
            if min > max {
                return None;
            }
            let v = Versions { min, max };
            match kind {
                KIND_HANDOVER => hand = Some(v),
                KIND_IMAGE => image = Some(v),
                KIND_ENTRY64 if min == max && entry64.is_none() => entry64 = Some(min),
                KIND_ENTRY64 => return None,
                _ => {}
            }
        }
        Some(Compat {
            handover: hand?,
            image: image?,
            entry64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn this_build_reads_itself() {
        let c = Compat::parse(&bytes(&THIS_DESC)).unwrap();
        assert_eq!(c, THIS);
        assert!(c.reads_ours());
        // As the kernel writes it: count 3, the entry point last.
        let mut desc = THIS_DESC.to_vec();
        desc[0] = 3;
        desc.extend([KIND_ENTRY64, 0x10_2000, 0x10_2000]);
        assert_eq!(desc.len() * 4, NOTE_DESC_BYTES as usize);
        let k = Compat::parse(&bytes(&desc)).unwrap();
        assert_eq!(k.entry64, Some(0x10_2000));
        assert_eq!((k.handover, k.image), (THIS.handover, THIS.image));
        // An entry point is one address, declared once.
        assert!(Compat::parse(&bytes(&[3, 1, 1, 3, 2, 1, 1, 3, 8, 9])).is_none());
        assert!(Compat::parse(&bytes(&[4, 1, 1, 3, 2, 1, 1, 3, 8, 8, 3, 8, 8])).is_none());
    }

    #[test]
    fn refusals() {
        assert!(Compat::parse(&[]).is_none());
        assert!(Compat::parse(&bytes(&[1, KIND_HANDOVER, 1, 2])).is_none());
        assert!(Compat::parse(&bytes(&[2, 1, 3, 2, 2, 1, 1])).is_none());
        assert!(Compat::parse(&bytes(&[2, 1, 1, 2, 2, 1, 1, 0])).is_none());
        let future = Compat::parse(&bytes(&[3, 1, 7, 9, 2, 1, 1, 99, 0, 0])).unwrap();
        assert!(!future.reads_ours());
        // The previous release (buffers v1..v2) gets a version-2 buffer.
        let previous = Compat::parse(&bytes(&[2, 1, 1, 2, 2, 1, 1])).unwrap();
        assert!(previous.reads_ours());
        assert_eq!(previous.handover_version(), Some(2));
        assert_eq!(THIS.handover_version(), Some(handover::VERSION));
    }
}
