//! The kernel heap as the engine's memory source (placeholder until heap growth lands).

use xsstate::memory::{MemorySource, MemoryStats};

use crate::arch::heap;

/// The kernel heap as the engine's [`MemorySource`].
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelMemory;

impl MemorySource for KernelMemory {
    fn stats(&self) -> MemoryStats {
        let (used, free) = heap::stats();
        MemoryStats {
            used,
            free,
            grown: 0,
            max: used.saturating_add(free),
        }
    }

    fn ensure_free(&self, bytes: usize) -> bool {
        heap::stats().1 >= bytes
    }
}
