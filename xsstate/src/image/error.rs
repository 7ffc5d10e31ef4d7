//! Why an image was refused (or could not be written), and where.

use core::fmt;

use super::record::rtype;

/// Which record an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// Position of the record in the stream, 0 for the first record after the header.
    pub index: usize,
    /// The record's `type` field.
    pub rtype: u32,
}

/// The reason an image is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Fewer than 16 octets: no complete header.
    TruncatedHeader,
    /// `ident` is not `xenstore`.
    BadIdent,
    /// `version` is not one this layout supports.
    UnsupportedVersion(u32),
    /// Header flag bits 1-31 are not zero.
    ReservedFlags(u32),
    /// A record header, body or padding runs past the end of the stream.
    TruncatedRecord,
    /// The body ends before its fixed fields do.
    BodyTooShort,
    /// Octets left in the body after all its fields.
    BodyTooLong,
    /// A length or count field claims more octets than the body has left.
    LengthOverrun,
    /// A record `type` not defined for this layout and version.
    UnknownRecordType(u32),
    /// A string whose last octet is not NUL (or of length 0).
    MissingNul,
    /// A NUL inside a string.
    InteriorNul,
    /// A string that is not UTF-8.
    NotUtf8,
    /// A node path or watch path that is not valid.
    InvalidPath,
    /// A permission letter other than `w`, `r`, `b`, `n`.
    InvalidPerm(u8),
    /// A committed node with no permission (no owner).
    NoPermissions,
    /// A `conn-type` other than 0 (ring) or 1 (socket).
    BadConnType(u16),
    /// Flags with bits set that must be zero.
    BadFlags(u16),
    /// A `conn-id` of 0 where a connection is required.
    ZeroConnId,
    /// A record referring to a connection with no earlier `CONNECTION_DATA`.
    UnknownConnection(u32),
    /// A node referring to a transaction with no earlier `TRANSACTION_DATA`.
    UnknownTransaction {
        /// The connection.
        conn_id: u32,
        /// The transaction.
        tx_id: u32,
    },
    /// A second `CONNECTION_DATA` with the same `conn-id`.
    DuplicateConnection(u32),
    /// A second `TRANSACTION_DATA` for the same connection and transaction.
    DuplicateTransaction,
    /// A second node with the same connection, transaction and path.
    DuplicateNode,
    /// A second record of a type that may appear once (global data, global quota, a
    /// domain's data).
    DuplicateRecord,
    /// A committed node whose parent has not appeared earlier as a committed node.
    MissingParent,
    /// A quota name that is empty (or the names do not match the values' count).
    BadQuotaName,
    /// The stream ends without an `END` record.
    MissingEnd,
    /// Octets after the `END` record.
    DataAfterEnd,
    /// Writer only: a field too long for its length field.
    TooLong,
    /// Writer only: the record cannot be written in the requested layout.
    NotInLayout,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TruncatedHeader => write!(f, "truncated header"),
            Reason::BadIdent => write!(f, "bad ident (not \"xenstore\")"),
            Reason::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            Reason::ReservedFlags(v) => write!(f, "reserved header flag bits set ({v:#x})"),
            Reason::TruncatedRecord => write!(f, "truncated record"),
            Reason::BodyTooShort => write!(f, "body shorter than its fields"),
            Reason::BodyTooLong => write!(f, "body longer than its fields"),
            Reason::LengthOverrun => write!(f, "length overruns the body"),
            Reason::UnknownRecordType(t) => write!(f, "unknown record type {t}"),
            Reason::MissingNul => write!(f, "string without its NUL"),
            Reason::InteriorNul => write!(f, "NUL inside a string"),
            Reason::NotUtf8 => write!(f, "string is not UTF-8"),
            Reason::InvalidPath => write!(f, "invalid path"),
            Reason::InvalidPerm(b) => write!(f, "invalid permission letter {b:#04x}"),
            Reason::NoPermissions => write!(f, "committed node without permissions"),
            Reason::BadConnType(t) => write!(f, "unknown conn-type {t}"),
            Reason::BadFlags(v) => write!(f, "flags {v:#x} have reserved bits set"),
            Reason::ZeroConnId => write!(f, "conn-id 0"),
            Reason::UnknownConnection(c) => write!(f, "conn-id {c} not declared earlier"),
            Reason::UnknownTransaction { conn_id, tx_id } => {
                write!(
                    f,
                    "transaction {tx_id} of conn-id {conn_id} not declared earlier"
                )
            }
            Reason::DuplicateConnection(c) => write!(f, "duplicate conn-id {c}"),
            Reason::DuplicateTransaction => write!(f, "duplicate transaction"),
            Reason::DuplicateNode => write!(f, "duplicate node"),
            Reason::DuplicateRecord => write!(f, "record may appear only once"),
            Reason::MissingParent => write!(f, "committed node without an earlier parent"),
            Reason::BadQuotaName => write!(f, "bad quota name list"),
            Reason::MissingEnd => write!(f, "missing END record"),
            Reason::DataAfterEnd => write!(f, "data after END record"),
            Reason::TooLong => write!(f, "field too long for its length field"),
            Reason::NotInLayout => write!(f, "record not representable in this layout"),
        }
    }
}

/// An image refused by the reader (or a record the writer cannot encode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageError {
    /// Byte offset in the stream of the offending field (see the module docs).
    pub offset: usize,
    /// The record concerned, if the error is not in the header.
    pub record: Option<RecordRef>,
    /// What is wrong.
    pub reason: Reason,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {} ({:#x})", self.offset, self.offset)?;
        match self.record {
            Some(r) => write!(
                f,
                ", record #{} ({} type {})",
                r.index,
                rtype::name(r.rtype),
                r.rtype
            )?,
            None => write!(f, ", header")?,
        }
        write!(f, ": {}", self.reason)
    }
}

impl core::error::Error for ImageError {}
