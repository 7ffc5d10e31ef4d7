//! What the server writes into a domain's ring page when it introduces the domain, and when it
//! stops serving it, as C xenstored does; pure code over [`RingWords`], so the host tests of
//! `kernel/abi-tests` run it on a plain array (this file is included there by path).

use core::sync::atomic::{fence, Ordering};

use xsstate::ring as layout;

/// 32-bit access to a ring page at byte offsets (the kernel's is a volatile `SharedPage`).
pub trait RingWords {
    /// The `u32` at `off`.
    fn read_u32(&self, off: usize) -> u32;
    /// Writes the `u32` at `off`.
    fn write_u32(&self, off: usize, value: u32);
}

/// An introduction of the domain's connection (`INTRODUCE`, the first or a later one), as C
/// xenstored: the request and response indices go to 0 (4.20's `domain_conn_reset`); at the
/// first introduction `server_features` gets the domain's features (`first`, 4.21+); then,
/// only if the guest asked to reconnect (`connection` is `XENSTORE_RECONNECT`), `connection`
/// becomes `XENSTORE_CONNECTED`. Returns whether to notify the domain (only in that case).
pub fn introduce<R: RingWords>(ring: &R, first: Option<u32>) -> bool {
    for off in [
        layout::REQ_CONS_OFFSET,
        layout::REQ_PROD_OFFSET,
        layout::RSP_CONS_OFFSET,
        layout::RSP_PROD_OFFSET,
    ] {
        ring.write_u32(off, 0);
    }
    if let Some(features) = first {
        ring.write_u32(layout::SERVER_FEATURES_OFFSET, features);
    }
    // The indices must be visible before the guest is told it may use the ring.
    fence(Ordering::SeqCst);
    if ring.read_u32(layout::CONNECTION_OFFSET) != layout::RECONNECT {
        return false;
    }
    ring.write_u32(layout::CONNECTION_OFFSET, layout::CONNECTED);
    fence(Ordering::SeqCst);
    true
}

/// Sets the ring's `error` field to `code` (`XENSTORE_ERROR_*`), only where the domain's
/// `features` include `XENSTORE_SERVER_FEATURE_ERROR` (C xenstored 4.21+); returns whether it
/// was written.
pub fn set_error<R: RingWords>(ring: &R, features: u32, code: u32) -> bool {
    if features & layout::FEATURE_ERROR == 0 {
        return false;
    }
    ring.write_u32(layout::ERROR_OFFSET, code);
    true
}
