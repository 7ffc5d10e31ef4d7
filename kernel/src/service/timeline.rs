//! A live update's timeline from TSC stamps: the old image's (in the hand-over buffer and
//! the state tag), the trampoline's and the PVH entry's (in the hand-over area), and this
//! image's own, reported as phases once the first request is served; then named marks
//! inside this image's phases ([`mark`]), to see where their time goes.

use alloc::string::String;
use core::fmt::Write;

use crate::arch::handover::Stamps;
use crate::xen::time;

/// The stamps (0: not taken).
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Old image: the update started (`-s` accepted), the new image was staged (flattened),
    /// the state buffer was allocated (this image copied beside it), the state was written.
    pub old: [u64; 4],
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
    /// First output written to a ring (a reply the update held back, or the first answer),
    /// before the ring's notification.
    pub first_reply: u64,
    /// First request served.
    pub first_request: u64,
}

impl Timeline {
    /// Whether marks are wanted now: after a live update, until its first reply.
    pub fn marking(&self) -> bool {
        self.restore_start != 0 && self.first_reply == 0
    }

    /// Two lines (Xen's console cuts long ones): the old image's phases, then the new one's
    /// and the whole downtime, in microseconds.
    pub fn report(&self, update: u64) -> [String; 2] {
        let us = |a: u64, b: u64| -> Option<u64> {
            (a != 0 && b >= a).then(|| time::tsc_to_ns(b - a) / 1000)
        };
        let [start, staged, allocated, written] = self.old;
        let old: [(&str, u64, u64); 5] = [
            ("prepare", start, self.jump),
            ("stage", start, staged),
            ("copy-self", staged, allocated),
            ("dump", allocated, written),
            ("grant-and-check", written, self.jump),
        ];
        let new: [(&str, u64, u64); 9] = [
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
        let put = |s: &mut String, phases: &[(&str, u64, u64)]| {
            for &(name, a, b) in phases {
                match us(a, b) {
                    Some(v) => {
                        let _ = write!(s, " {name}={v}");
                    }
                    None => {
                        let _ = write!(s, " {name}=?");
                    }
                }
            }
        };
        let mut first = alloc::format!("live update {update} timeline (us) old image:");
        put(&mut first, &old);
        let mut second = alloc::format!("live update {update} timeline (us) new image:");
        put(&mut second, &new);
        // The downtime: from the update's start until this image answered (a reply held
        // back by the update, or the first request served).
        let end = match (self.first_reply, self.first_request) {
            (0, r) | (r, 0) => r,
            (a, b) => a.min(b),
        };
        let total = us(start, end).or(us(self.jump, end));
        let _ = write!(
            second,
            " downtime={}",
            total.map_or(String::from("?"), |t| alloc::format!("{t}"))
        );
        [first, second]
    }
}

/// Named TSC marks inside the new image's phases (at most [`MARKS_MAX`], the rest dropped),
/// reported after the timeline as microseconds since the previous mark: where a phase's
/// time goes.
static MARKS: spin::Mutex<heapless::Vec<(&'static str, u64), MARKS_MAX>> =
    spin::Mutex::new(heapless::Vec::new());
/// How many marks one update keeps.
const MARKS_MAX: usize = 32;

/// Records the TSC now under `name`.
pub fn mark(name: &'static str) {
    let now = crate::arch::cpu::rdtsc();
    if let Some(mut m) = MARKS.try_lock() {
        let _ = m.push((name, now));
    }
}

/// The marks as lines of at most eight (Xen's console cuts long lines), `name=us` since the
/// previous mark (the first since `from`), after the entry the image was entered at.
pub fn marks_report(from: u64, entry64: bool) -> alloc::vec::Vec<String> {
    let mut lines = alloc::vec::Vec::new();
    let mut prev = from;
    let bits = if entry64 { 64 } else { 32 };
    if let Some(m) = MARKS.try_lock() {
        for chunk in m.chunks(8) {
            let mut s =
                alloc::format!("marks (entered at the {bits}-bit entry; us since the previous):");
            for &(name, t) in chunk {
                let d = if prev != 0 && t >= prev {
                    time::tsc_to_ns(t - prev) / 1000
                } else {
                    0
                };
                let _ = write!(s, " {name}={d}");
                prev = t;
            }
            lines.push(s);
        }
    }
    lines
}
