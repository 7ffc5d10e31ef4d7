//! Typed identifiers: domains, connections, transactions, event-channel ports.

use core::fmt;

/// A Xen domain id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomId(pub u16);

impl DomId {
    /// Domain 0, the default privileged domain.
    pub const DOM0: DomId = DomId(0);
    /// `DOMID_INVALID` from xen.h.
    pub const INVALID: DomId = DomId(0x7ff4);
    /// `DOMID_ANY` from xen.h (Xen 4.22): in a node's permission entry, every domain.
    pub const ANY: DomId = DomId(0x7ff5);
    /// The first special domid (`DOMID_FIRST_RESERVED`); real domains are below it.
    pub const FIRST_RESERVED: u16 = 0x7ff0;

    /// Whether this is a real domain id rather than a reserved `DOMID_*` value.
    pub const fn is_real(self) -> bool {
        self.0 < Self::FIRST_RESERVED
    }

    /// Parses a decimal domid as sent in payloads (`0..=65535`, digits only).
    pub fn parse(text: &[u8]) -> Option<DomId> {
        crate::util::parse_decimal(text)
            .and_then(|v| u16::try_from(v).ok())
            .map(DomId)
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A connection id, unique for the engine's lifetime and never zero (the image format's
/// `conn-id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn{}", self.0)
    }
}

/// A transaction id as carried in the message header; 0 means "no transaction".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u32);

impl TxId {
    /// The "no transaction" id (`XBT_NULL`).
    pub const NONE: TxId = TxId(0);
}

/// An event-channel port number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvtchnPort(pub u32);
