//! What the shell can tell the engine about domains it was not introduced to (the stub domain
//! asks Xen; the host daemon cannot tell).

use alloc::sync::Arc;
use core::fmt::Debug;

use crate::ids::DomId;

/// The hypervisor's view of domains, as far as the shell can ask it.
pub trait DomainOracle: Send + Sync + Debug {
    /// Whether `domid` exists now (a dying domain still does); `None` when it cannot tell.
    fn exists(&self, domid: DomId) -> Option<bool>;
}

/// A shared handle on the oracle (the engine is `Clone`).
pub type SharedOracle = Arc<dyn DomainOracle>;
