//! Kernel output: `kprint!`/`kprintln!` format on the stack (no allocation) and write to the
//! debug console (port 0xE9) and to an optional extra sink (the PV console ring under Xen).
//!
//! Output can be *deferred*: kept in a fixed buffer and written later ([`defer`],
//! [`take_deferred`], [`flush_deferred`]). Every byte to port 0xE9 is a VM exit, which costs
//! milliseconds per line in a nested lab; a live update defers its console output until the
//! new image serves again.

use core::fmt::{self, Write};

use crate::arch::debugcon;

/// Bytes formatted before they are flushed to the outputs.
const CHUNK: usize = 256;

/// A second output (the PV console), read with `try_read` (never waits: interrupt and panic
/// output may come while it is being set, and then goes to port 0xE9 only).
static EXTRA_SINK: crate::arch::Hook<fn(&[u8])> = spin::RwLock::new(None);

/// Bytes of deferred output kept (more are counted and dropped).
const DEFERRED_MAX: usize = 8192;

/// Deferred output, when deferring.
struct Deferred {
    on: bool,
    buf: heapless::Vec<u8, DEFERRED_MAX>,
    dropped: usize,
}

static DEFERRED: spin::Mutex<Deferred> = spin::Mutex::new(Deferred {
    on: false,
    buf: heapless::Vec::new(),
    dropped: 0,
});

/// Starts (or stops, writing nothing) keeping output instead of writing it.
pub fn defer(on: bool) {
    if let Some(mut d) = DEFERRED.try_lock() {
        d.on = on;
    }
}

/// Stops deferring and returns what was kept (with a note of what was dropped).
pub fn take_deferred() -> heapless::Vec<u8, DEFERRED_MAX> {
    let Some(mut d) = DEFERRED.try_lock() else {
        return heapless::Vec::new();
    };
    d.on = false;
    let mut out = core::mem::take(&mut d.buf);
    if d.dropped > 0 {
        let mut note: heapless::String<64> = heapless::String::new();
        let _ = writeln!(note, "[{} bytes of output dropped]", d.dropped);
        let _ = out.extend_from_slice(note.as_bytes());
        d.dropped = 0;
    }
    out
}

/// Stops deferring and writes what was kept (in place: nothing of the buffer's size goes on
/// the stack, so a rollback or a panic can call it on a short stack).
pub fn flush_deferred() {
    let Some(mut d) = DEFERRED.try_lock() else {
        return;
    };
    d.on = false;
    // `write_bytes` finds the lock held and writes straight to the outputs.
    write_bytes(&d.buf);
    d.buf.clear();
    if d.dropped > 0 {
        let mut note: heapless::String<64> = heapless::String::new();
        let _ = writeln!(note, "[{} bytes of output dropped]", d.dropped);
        write_bytes(note.as_bytes());
        d.dropped = 0;
    }
}

/// Registers a second output that receives every byte the console writes. It may be called
/// from interrupt and panic context: it must not allocate or block on a lock.
pub fn set_extra_sink(f: fn(&[u8])) {
    *EXTRA_SINK.write() = Some(f);
}

/// Removes the extra sink.
pub fn clear_extra_sink() {
    *EXTRA_SINK.write() = None;
}

/// Writes raw bytes to every output (or keeps them, when deferring).
pub fn write_bytes(bytes: &[u8]) {
    if let Some(mut d) = DEFERRED.try_lock() {
        if d.on {
            let room = DEFERRED_MAX - d.buf.len();
            let keep = bytes.len().min(room);
            let _ = d.buf.extend_from_slice(bytes.get(..keep).unwrap_or(&[]));
            d.dropped += bytes.len() - keep;
            return;
        }
    }
    debugcon::write(bytes);
    let sink = EXTRA_SINK.try_read().and_then(|s| *s);
    if let Some(sink) = sink {
        sink(bytes);
    }
}

/// The kernel console as an `embedded-io` byte stream: port 0xE9, the extra sink (the PV
/// console) and the deferred buffer during a live update. Never blocks and never fails:
/// what an output cannot take is dropped (counted while deferring).
#[derive(Clone, Copy, Debug, Default)]
pub struct Console;

impl embedded_io::ErrorType for Console {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Console {
    fn write(&mut self, bytes: &[u8]) -> Result<usize, Self::Error> {
        write_bytes(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A fixed-size buffer that flushes to `out` when full and on `flush`.
pub struct ChunkWriter<F: FnMut(&[u8])> {
    buf: [u8; CHUNK],
    len: usize,
    out: F,
}

impl<F: FnMut(&[u8])> ChunkWriter<F> {
    /// An empty writer flushing into `out`.
    pub fn new(out: F) -> Self {
        ChunkWriter {
            buf: [0; CHUNK],
            len: 0,
            out,
        }
    }

    /// Hands the buffered bytes to the output.
    pub fn flush(&mut self) {
        if let Some(bytes) = self.buf.get(..self.len) {
            if !bytes.is_empty() {
                (self.out)(bytes);
            }
        }
        self.len = 0;
    }
}

impl<F: FnMut(&[u8])> Write for ChunkWriter<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            if self.len == CHUNK {
                self.flush();
            }
            let room = CHUNK - self.len;
            let (now, later) = rest.split_at(room.min(rest.len()));
            if let Some(dest) = self.buf.get_mut(self.len..self.len + now.len()) {
                dest.copy_from_slice(now);
            }
            self.len += now.len();
            rest = later;
        }
        Ok(())
    }
}

/// Formats `args` to every output (used by the macros).
pub fn print(args: fmt::Arguments<'_>) {
    let mut w = ChunkWriter::new(|b: &[u8]| {
        let _ = embedded_io::Write::write_all(&mut Console, b);
    });
    let _ = w.write_fmt(args);
    w.flush();
}

/// Prints to the kernel console (port 0xE9 and the extra sink).
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!($($arg)*))
    };
}

/// Prints a line to the kernel console (port 0xE9 and the extra sink).
#[macro_export]
macro_rules! kprintln {
    () => {
        $crate::console::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
