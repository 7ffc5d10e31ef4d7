//! The memory budget: what the shell's heap can still give, and the reserves the engine keeps.
//!
//! The engine cannot see its allocator; the shell lends it a [`MemorySource`]. Before a
//! request runs, the single dispatch point asks the source to make the request's worst case
//! free (growing the heap where the shell can) on top of a reserve: requests that would eat
//! into it fail with `ENOMEM` instead of exhausting the heap. Unprivileged domains stop at a
//! higher floor than the privileged domain, so dom0 and the store's own bookkeeping (replies,
//! error replies, promised watch events, `@releaseDomain`, RELEASE, domain death) always have
//! room left.

use alloc::sync::Arc;

/// The heap as the shell sees it, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Allocated now.
    pub used: usize,
    /// Free now (allocatable without growing).
    pub free: usize,
    /// Added by growing since boot.
    pub grown: usize,
    /// The most the heap can ever have (`used + free` once fully grown).
    pub max: usize,
}

impl MemoryStats {
    /// What can still be allocated: free now plus what growing can add.
    pub fn available(&self) -> usize {
        let total = self.used.saturating_add(self.free);
        self.free.saturating_add(self.max.saturating_sub(total))
    }
}

/// The shell's heap, lent to the engine.
pub trait MemorySource: Send + Sync + core::fmt::Debug {
    /// The heap's figures now.
    fn stats(&self) -> MemoryStats;
    /// Makes at least `bytes` free, growing the heap if it can; returns whether they are.
    fn ensure_free(&self, bytes: usize) -> bool;
}

/// A source without limits (the host daemon, tests): the host's allocator is the limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

impl MemorySource for Unlimited {
    fn stats(&self) -> MemoryStats {
        MemoryStats {
            used: 0,
            free: usize::MAX / 4,
            grown: 0,
            max: usize::MAX / 4,
        }
    }

    fn ensure_free(&self, _bytes: usize) -> bool {
        true
    }
}

/// A shared handle on the source (the engine is `Clone`).
pub type SharedMemory = Arc<dyn MemorySource>;
