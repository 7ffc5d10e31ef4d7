//! A live update's timeline from TSC stamps: the old image's (in the hand-over buffer and
//! the state tag), the trampoline's and the PVH entry's (in the hand-over area), and this
//! image's own, reported as phases once the first request is served.

use alloc::string::String;
use core::fmt::Write;

use crate::arch::handover::Stamps;
use crate::xen::time;

/// The stamps (0: not taken).
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Old image: the update started (`-s` accepted), the state began to be written.
    pub old: [u64; 2],
    /// Old image: the jump.
    pub jump: u64,
    /// Trampoline copy and PVH entry.
    pub entry: Stamps,
    /// Rust code started.
    pub rust: u64,
    /// Heap ready.
    pub heap: u64,
    /// Restore started (state found and claimed).
    pub restore_start: u64,
    /// Engine restored.
    pub restored: u64,
    /// Rings mapped and ports bound.
    pub rings: u64,
    /// First output written to a ring (a reply the update held back, or the first answer).
    pub first_reply: u64,
    /// First request served.
    pub first_request: u64,
}

impl Timeline {
    /// One line: each phase in microseconds and the whole downtime.
    pub fn report(&self, update: u64) -> String {
        let us = |a: u64, b: u64| -> Option<u64> {
            (a != 0 && b >= a).then(|| time::tsc_to_ns(b - a) / 1000)
        };
        let phases: [(&str, u64, u64); 10] = [
            ("prepare", self.old[0], self.jump),
            ("jump", self.jump, self.entry.copy_start),
            ("copy", self.entry.copy_start, self.entry.copy_end),
            ("entry", self.entry.copy_end, self.entry.entry),
            ("early-boot", self.entry.entry, self.heap),
            ("heap", self.rust, self.heap),
            ("restore", self.restore_start, self.restored),
            ("rings-and-ports", self.restored, self.rings),
            ("first-reply", self.rings, self.first_reply),
            ("first-request", self.rings, self.first_request),
        ];
        let mut s = String::new();
        let _ = write!(s, "live update {update} timeline (us):");
        for (name, a, b) in phases {
            match us(a, b) {
                Some(v) => {
                    let _ = write!(s, " {name}={v}");
                }
                None => {
                    let _ = write!(s, " {name}=?");
                }
            }
        }
        // The downtime: from the update's start until this image answered (a reply held
        // back by the update, or the first request served).
        let end = match (self.first_reply, self.first_request) {
            (0, r) | (r, 0) => r,
            (a, b) => a.min(b),
        };
        let total = us(self.old[0], end).or(us(self.jump, end));
        let _ = write!(
            s,
            " downtime={}",
            total.map_or(String::from("?"), |t| alloc::format!("{t}"))
        );
        s
    }
}
