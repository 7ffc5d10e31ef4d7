//! The image's compatibility note: which hand-over buffer and migration image versions this
//! build reads (`xsstate::compat`), checked by a running image before it jumps into us.

use xsstate::compat::{KIND_ENTRY64, NOTE_DESC_BYTES, NOTE_TYPE, THIS_DESC};

// A note in its own input section, kept by linker.ld in the `.note` output section (and so
// in the PT_NOTE segment with the Xen and build-id notes): name "XSSTUB\0" padded to 8,
// then the descriptor words: three entries, the versions of `THIS_DESC` and the 64-bit
// live-update entry point (`boot/pvh.S`'s `pvh_start64_lu`, a link-time address).
core::arch::global_asm!(
    ".pushsection .note.xsstub, \"a\", @note",
    ".p2align 2",
    ".long 7",
    ".long {size}",
    ".long {ty}",
    ".asciz \"XSSTUB\"",
    ".byte 0",
    ".long {count}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}",
    ".long {k64}, pvh_start64_lu, pvh_start64_lu",
    ".popsection",
    size = const NOTE_DESC_BYTES,
    ty = const NOTE_TYPE,
    count = const THIS_DESC[0] + 1,
    d1 = const THIS_DESC[1],
    d2 = const THIS_DESC[2],
    d3 = const THIS_DESC[3],
    d4 = const THIS_DESC[4],
    d5 = const THIS_DESC[5],
    d6 = const THIS_DESC[6],
    k64 = const KIND_ENTRY64,
    options(att_syntax)
);
