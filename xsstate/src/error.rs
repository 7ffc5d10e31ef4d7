//! The two tiers of error: request errors (sent as `XS_ERROR` by name) and connection faults.

use core::fmt;

/// A request error, sent back to the client as an `XS_ERROR` reply carrying the errno name.
///
/// These are the names listed in `xs_wire.h`; the numeric values never cross the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XsError {
    /// Invalid argument: malformed payload, bad path, bad number.
    Einval,
    /// Permission denied by the node's permissions.
    Eacces,
    /// Already exists (duplicate watch).
    Eexist,
    /// Is a directory (unused by this engine, kept for completeness of the wire names).
    Eisdir,
    /// No such node, transaction, watch or domain.
    Enoent,
    /// Out of memory, or the memory quota of a domain is exhausted.
    Enomem,
    /// A quota (nodes, transactions, permissions, node size) is exhausted.
    Enospc,
    /// Internal inconsistency.
    Eio,
    /// Directory not empty (unused by this engine, kept for completeness).
    Enotempty,
    /// Unknown message type.
    Enosys,
    /// Read-only connection attempted a modification.
    Erofs,
    /// Busy: nested transaction, or a live update is being prepared.
    Ebusy,
    /// Transaction conflict: retry.
    Eagain,
    /// Already connected.
    Eisconn,
    /// Argument list too long / too many watches.
    E2big,
    /// Operation not permitted (owner change by an unprivileged domain).
    Eperm,
}

impl XsError {
    /// The errno name as it is sent on the wire (without the NUL).
    pub const fn name(self) -> &'static str {
        match self {
            XsError::Einval => "EINVAL",
            XsError::Eacces => "EACCES",
            XsError::Eexist => "EEXIST",
            XsError::Eisdir => "EISDIR",
            XsError::Enoent => "ENOENT",
            XsError::Enomem => "ENOMEM",
            XsError::Enospc => "ENOSPC",
            XsError::Eio => "EIO",
            XsError::Enotempty => "ENOTEMPTY",
            XsError::Enosys => "ENOSYS",
            XsError::Erofs => "EROFS",
            XsError::Ebusy => "EBUSY",
            XsError::Eagain => "EAGAIN",
            XsError::Eisconn => "EISCONN",
            XsError::E2big => "E2BIG",
            XsError::Eperm => "EPERM",
        }
    }

    /// Every error, in wire-table order.
    pub const ALL: [XsError; 16] = [
        XsError::Einval,
        XsError::Eacces,
        XsError::Eexist,
        XsError::Eisdir,
        XsError::Enoent,
        XsError::Enomem,
        XsError::Enospc,
        XsError::Eio,
        XsError::Enotempty,
        XsError::Enosys,
        XsError::Erofs,
        XsError::Ebusy,
        XsError::Eagain,
        XsError::Eisconn,
        XsError::E2big,
        XsError::Eperm,
    ];

    /// Parses an errno name as found in an `XS_ERROR` payload.
    pub fn from_name(name: &str) -> Option<XsError> {
        XsError::ALL.iter().copied().find(|e| e.name() == name)
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stream violation: the connection is faulted (its ring's error field set, or the socket
/// closed) and nothing else is affected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A header announced a payload longer than `XENSTORE_PAYLOAD_MAX`.
    OversizedMessage {
        /// The announced payload length.
        len: u32,
    },
    /// Ring indices are inconsistent (`prod - cons > size`).
    RingIndex,
    /// The connection does not exist (already gone).
    NoConnection,
    /// Watch events stayed undelivered past the watch-event timeout (XSA-326).
    EventTimeout,
}

impl Fault {
    /// The value to store in the ring's `error` field for this fault.
    pub const fn ring_error(self) -> u32 {
        match self {
            Fault::OversizedMessage { .. } => crate::ring::XENSTORE_ERROR_PROTO,
            Fault::RingIndex => crate::ring::XENSTORE_ERROR_RINGIDX,
            Fault::NoConnection | Fault::EventTimeout => crate::ring::XENSTORE_ERROR_COMM,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::OversizedMessage { len } => {
                write!(f, "message payload of {len} bytes exceeds 4096")
            }
            Fault::RingIndex => f.write_str("ring indices out of range"),
            Fault::NoConnection => f.write_str("no such connection"),
            Fault::EventTimeout => f.write_str("watch events left unread past the timeout"),
        }
    }
}
