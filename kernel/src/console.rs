//! Kernel output: `kprint!`/`kprintln!` format on the stack (no allocation) and write to the
//! debug console (port 0xE9) and to an optional extra sink (the PV console ring under Xen).

use core::fmt::{self, Write};

use crate::arch::debugcon;
use crate::arch::slot::FnSlot;

/// Bytes formatted before they are flushed to the outputs.
const CHUNK: usize = 256;

static EXTRA_SINK: FnSlot<fn(&[u8])> = FnSlot::empty();

/// Registers a second output that receives every byte the console writes. It may be called
/// from interrupt and panic context: it must not allocate or block on a lock.
pub fn set_extra_sink(f: fn(&[u8])) {
    EXTRA_SINK.set(f);
}

/// Removes the extra sink.
pub fn clear_extra_sink() {
    EXTRA_SINK.clear();
}

/// Writes raw bytes to every output.
pub fn write_bytes(bytes: &[u8]) {
    debugcon::write(bytes);
    if let Some(sink) = EXTRA_SINK.get() {
        sink(bytes);
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
    let mut w = ChunkWriter::new(write_bytes);
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
