//! The image's compatibility note: which hand-over buffer and migration image versions this
//! build reads (`xsstate::compat`), checked by a running image before it jumps into us.

use xsstate::compat::{NOTE_TYPE, THIS_DESC};

// A note in its own input section, kept by linker.ld in the `.note` output section (and so
// in the PT_NOTE segment with the Xen and build-id notes): name "XSSTUB\0" padded to 8,
// then the descriptor words.
core::arch::global_asm!(
    ".pushsection .note.xsstub, \"a\", @note",
    ".p2align 2",
    ".long 7",
    ".long 28",
    ".long {ty}",
    ".asciz \"XSSTUB\"",
    ".byte 0",
    ".long {d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}",
    ".popsection",
    ty = const NOTE_TYPE,
    d0 = const THIS_DESC[0],
    d1 = const THIS_DESC[1],
    d2 = const THIS_DESC[2],
    d3 = const THIS_DESC[3],
    d4 = const THIS_DESC[4],
    d5 = const THIS_DESC[5],
    d6 = const THIS_DESC[6],
    options(att_syntax)
);
