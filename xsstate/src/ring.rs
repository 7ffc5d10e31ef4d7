//! Ring-page layout and index arithmetic of `xs_wire.h` (`xenstore_domain_interface`).
//!
//! The engine never touches shared memory; the kernel reads the indices once, asks these
//! functions what is safe to copy, copies, then publishes the new index.

/// Size of each of the request and response rings.
pub const RING_SIZE: u32 = 1024;
/// Byte offset of the request ring.
pub const REQ_OFFSET: usize = 0;
/// Byte offset of the response ring.
pub const RSP_OFFSET: usize = 1024;
/// Byte offset of `req_cons`.
pub const REQ_CONS_OFFSET: usize = 2048;
/// Byte offset of `req_prod`.
pub const REQ_PROD_OFFSET: usize = 2052;
/// Byte offset of `rsp_cons`.
pub const RSP_CONS_OFFSET: usize = 2056;
/// Byte offset of `rsp_prod`.
pub const RSP_PROD_OFFSET: usize = 2060;
/// Byte offset of `server_features`.
pub const SERVER_FEATURES_OFFSET: usize = 2064;
/// Byte offset of `connection`.
pub const CONNECTION_OFFSET: usize = 2068;
/// Byte offset of `error`.
pub const ERROR_OFFSET: usize = 2072;
/// Byte offset of `evtchn_port`.
pub const EVTCHN_PORT_OFFSET: usize = 2076;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
pub const FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`.
pub const FEATURE_ERROR: u32 = 2;
/// `XENSTORE_SERVER_FEATURE_WATCHDEPTH`.
pub const FEATURE_WATCHDEPTH: u32 = 4;
/// `XENSTORE_SERVER_FEATURE_DOMID_ANY` (Xen 4.22): permission entries may name `DOMID_ANY`.
pub const FEATURE_DOMID_ANY: u32 = 8;
/// Every feature this engine implements.
pub const SUPPORTED_FEATURES: u32 =
    FEATURE_RECONNECTION | FEATURE_ERROR | FEATURE_WATCHDEPTH | FEATURE_DOMID_ANY;

/// `XENSTORE_CONNECTED`.
pub const CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`.
pub const RECONNECT: u32 = 1;

/// `XENSTORE_ERROR_NONE`.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`.
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Masks a free-running index into the ring.
pub const fn mask(idx: u32) -> u32 {
    idx & (RING_SIZE - 1)
}

/// Validates a snapshot of `(cons, prod)` and returns how many bytes lie between them.
/// `None` when the producer is more than a ring ahead (XSA-38): fault the connection.
pub fn used(cons: u32, prod: u32) -> Option<u32> {
    let n = prod.wrapping_sub(cons);
    (n <= RING_SIZE).then_some(n)
}

/// The contiguous chunk readable at `cons`: `(offset in ring, length)`, given validated
/// indices. The chunk stops at the end of the ring; a second call reads the wrapped part.
pub fn readable_chunk(cons: u32, prod: u32) -> Option<(usize, usize)> {
    let avail = used(cons, prod)?;
    let start = mask(cons);
    let len = avail.min(RING_SIZE - start);
    Some((start as usize, len as usize))
}

/// The contiguous chunk writable at `prod` when the reader is at `cons`.
pub fn writable_chunk(cons: u32, prod: u32) -> Option<(usize, usize)> {
    let filled = used(cons, prod)?;
    let free = RING_SIZE - filled;
    let start = mask(prod);
    let len = free.min(RING_SIZE - start);
    Some((start as usize, len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices() {
        assert_eq!(used(0, 0), Some(0));
        assert_eq!(used(0, 1024), Some(1024));
        assert_eq!(used(0, 1025), None);
        assert_eq!(used(u32::MAX, 3), Some(4));
        assert_eq!(readable_chunk(1020, 1030), Some((1020, 4)));
        assert_eq!(readable_chunk(1024, 1030), Some((0, 6)));
        assert_eq!(writable_chunk(0, 1024), Some((0, 0)));
        assert_eq!(writable_chunk(10, 1020), Some((1020, 4)));
        assert_eq!(writable_chunk(5, 5000), None);
    }
}
