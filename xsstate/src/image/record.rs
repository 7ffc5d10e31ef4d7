//! The parsed form of an image: [`Image`], [`Record`] and the per-record data types.

use alloc::string::String;
use alloc::vec::Vec;

/// Byte order of the record fields (the header itself is always big-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endianness {
    /// Header flag bit 0 clear.
    Little,
    /// Header flag bit 0 set.
    Big,
}

impl Endianness {
    /// The header `flags` value announcing this byte order.
    pub const fn flags(self) -> u32 {
        match self {
            Endianness::Little => 0,
            Endianness::Big => 1,
        }
    }
}

/// Which record layout a stream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// The seed design document (`xenstore-migration.md`, patch v3): version 1, `len`
    /// excludes padding, plus records 6 and 7 in Xen's layout.
    #[default]
    Seed,
    /// The layout shipped Xen's `xenstored` writes (`xenstore_state.h`): versions 1 and 2,
    /// `len` includes padding.
    Xen,
}

/// A whole migration image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Byte order of the record fields.
    pub endianness: Endianness,
    /// The header `version` (always 1 for [`Layout::Seed`]; 1 or 2 for [`Layout::Xen`]).
    pub version: u32,
    /// The records in stream order, normally ending with [`Record::End`].
    pub records: Vec<Record>,
}

/// Record type numbers.
pub mod rtype {
    /// `END`.
    pub const END: u32 = 0;
    /// `GLOBAL_DATA`.
    pub const GLOBAL: u32 = 1;
    /// `CONNECTION_DATA`.
    pub const CONNECTION: u32 = 2;
    /// `WATCH_DATA`.
    pub const WATCH: u32 = 3;
    /// `TRANSACTION_DATA`.
    pub const TRANSACTION: u32 = 4;
    /// `NODE_DATA`.
    pub const NODE: u32 = 5;
    /// `GLOBAL_QUOTA_DATA` (Xen's layout).
    pub const GLOBAL_QUOTA: u32 = 6;
    /// `DOMAIN_DATA` (Xen's layout).
    pub const DOMAIN: u32 = 7;
    /// `WATCH_DATA_EXTENDED` (Xen, version 2 only).
    pub const WATCH_EXT: u32 = 8;

    /// The document's name of a record type, or `UNKNOWN`.
    pub const fn name(t: u32) -> &'static str {
        match t {
            END => "END",
            GLOBAL => "GLOBAL_DATA",
            CONNECTION => "CONNECTION_DATA",
            WATCH => "WATCH_DATA",
            TRANSACTION => "TRANSACTION_DATA",
            NODE => "NODE_DATA",
            GLOBAL_QUOTA => "GLOBAL_QUOTA_DATA",
            DOMAIN => "DOMAIN_DATA",
            WATCH_EXT => "WATCH_DATA_EXTENDED",
            _ => "UNKNOWN",
        }
    }
}

/// One record of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `END` (type 0): the last record.
    End,
    /// Seed `GLOBAL_DATA` (type 1).
    Global(GlobalData),
    /// Seed `CONNECTION_DATA` (type 2).
    Connection(ConnectionData),
    /// `WATCH_DATA` (type 3), the same in both layouts.
    Watch(WatchData),
    /// `TRANSACTION_DATA` (type 4), the same in both layouts.
    Transaction(TransactionData),
    /// `NODE_DATA` (type 5); the field order differs between layouts, the content does not.
    Node(NodeData),
    /// `GLOBAL_QUOTA_DATA` (type 6), Xen's layout in both.
    GlobalQuota(GlobalQuotaData),
    /// `DOMAIN_DATA` (type 7), Xen's layout in both.
    Domain(DomainData),
    /// Xen's `GLOBAL_DATA` (type 1): socket fd and event-channel fd.
    XenGlobal(XenGlobalData),
    /// Xen's `CONNECTION_DATA` (type 2): no mfn, split in/out data, optional unique id.
    XenConnection(XenConnectionData),
    /// Xen's `WATCH_DATA_EXTENDED` (type 8, version 2).
    XenWatchExt(XenWatchExtData),
}

impl Record {
    /// The record type number this record is written with.
    pub const fn type_number(&self) -> u32 {
        match self {
            Record::End => rtype::END,
            Record::Global(_) | Record::XenGlobal(_) => rtype::GLOBAL,
            Record::Connection(_) | Record::XenConnection(_) => rtype::CONNECTION,
            Record::Watch(_) => rtype::WATCH,
            Record::Transaction(_) => rtype::TRANSACTION,
            Record::Node(_) => rtype::NODE,
            Record::GlobalQuota(_) => rtype::GLOBAL_QUOTA,
            Record::Domain(_) => rtype::DOMAIN,
            Record::XenWatchExt(_) => rtype::WATCH_EXT,
        }
    }
}

/// Seed `GLOBAL_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalData {
    /// File descriptor of the socket accepting read-write connections.
    pub rw_socket_fd: u32,
    /// File descriptor of the socket accepting read-only connections.
    pub ro_socket_fd: u32,
}

/// Seed `CONNECTION_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionData {
    /// Non-zero connection id referred to by later records.
    pub conn_id: u32,
    /// The `conn-type`-dependent `conn-spec`.
    pub spec: ConnSpec,
    /// Pending data not yet written to the connection.
    pub data: Vec<u8>,
}

/// Seed `conn-spec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnSpec {
    /// `conn-type` 0, a shared ring.
    Ring {
        /// Must be zero.
        flags: u16,
        /// Domain owning the ring page.
        domid: u16,
        /// Target domain (`SET_TARGET`) or `DOMID_INVALID` (0x7ff4).
        tdomid: u16,
        /// Interdomain event channel port.
        evtchn: u32,
        /// MFN of the ring page, or `!0`.
        mfn: u64,
    },
    /// `conn-type` 1, a socket.
    Socket {
        /// Bit 0: read-only; other bits must be zero.
        flags: u16,
        /// File descriptor of the connected socket.
        socket_fd: u32,
    },
}

/// Seed socket `flags` bit: read-only connection.
pub const SOCKET_FLAG_RO: u16 = 0x0001;

/// `WATCH_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchData {
    /// Connection that issued the `WATCH`.
    pub conn_id: u32,
    /// Watched path (without its NUL): absolute, relative, or special (`@...`).
    pub wpath: String,
    /// Watch token (without its NUL).
    pub token: String,
}

/// `TRANSACTION_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionData {
    /// Connection that started the transaction.
    pub conn_id: u32,
    /// Transaction id given to the client.
    pub tx_id: u32,
}

/// A node permission letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermKind {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both.
    Both,
}

impl PermKind {
    /// The ASCII letter written in the stream.
    pub const fn letter(self) -> u8 {
        match self {
            PermKind::None => b'n',
            PermKind::Read => b'r',
            PermKind::Write => b'w',
            PermKind::Both => b'b',
        }
    }

    /// Parses an ASCII letter.
    pub const fn from_letter(b: u8) -> Option<PermKind> {
        match b {
            b'n' => Some(PermKind::None),
            b'r' => Some(PermKind::Read),
            b'w' => Some(PermKind::Write),
            b'b' => Some(PermKind::Both),
            _ => None,
        }
    }
}

/// A node permission specifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePerm {
    /// The permission letter.
    pub kind: PermKind,
    /// Xen's per-permission flags (bit 0: stale, ignore); always 0 in the seed layout,
    /// whose octet here is padding.
    pub flags: u8,
    /// The domain the permission applies to.
    pub domid: u16,
}

/// `NODE_DATA` access bit: the node was read in the transaction.
pub const ACCESS_READ: u16 = 0x0001;
/// `NODE_DATA` access bit: the node was written in the transaction.
pub const ACCESS_WRITTEN: u16 = 0x0002;

/// `NODE_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeData {
    /// 0 for a committed node, else the connection of the pending transaction.
    pub conn_id: u32,
    /// The pending transaction (ignored, but kept, when `conn_id` is 0).
    pub tx_id: u32,
    /// Accesses in the transaction ([`ACCESS_READ`] | [`ACCESS_WRITTEN`]).
    pub access: u16,
    /// Permissions, owner first (empty for a node deleted in a transaction).
    pub perms: Vec<NodePerm>,
    /// Absolute node path, without its NUL.
    pub path: String,
    /// Node value (may contain NULs).
    pub value: Vec<u8>,
}

/// A named quota value (records 6 and 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Quota name as `GET_QUOTA`/`SET_QUOTA` know it (non-empty, no NUL).
    pub name: String,
    /// Value; 0 means unlimited.
    pub value: u32,
}

/// `GLOBAL_QUOTA_DATA` (Xen's layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalQuotaData {
    /// Quotas applying per domain by default.
    pub domain: Vec<Quota>,
    /// Quotas applying globally only.
    pub global: Vec<Quota>,
}

/// `DOMAIN_DATA` (Xen's layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainData {
    /// The domain.
    pub domid: u16,
    /// Server features visible to the guest (ring offset 2064).
    pub features: u32,
    /// The domain's own quota values.
    pub quotas: Vec<Quota>,
}

/// Xen's `GLOBAL_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenGlobalData {
    /// Socket accepting connections, or -1.
    pub socket_fd: i32,
    /// File descriptor of the event channel driver.
    pub evtchn_fd: i32,
}

/// Xen's `conn-spec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenConnSpec {
    /// `conn-type` 0, a shared ring.
    Ring {
        /// Domain owning the ring.
        domid: u16,
        /// Target domain or `DOMID_INVALID`.
        tdomid: u16,
        /// Event channel port.
        evtchn: u32,
    },
    /// `conn-type` 1, a socket.
    Socket {
        /// File descriptor of the connected socket.
        socket_fd: i32,
    },
}

/// Xen `CONNECTION_DATA` `fields` bit: a `unique-id` follows the data.
pub const XEN_CONN_FIELD_UNIQUE_ID: u16 = 0x0001;

/// Xen's `CONNECTION_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenConnectionData {
    /// Non-zero connection id.
    pub conn_id: u32,
    /// The `conn-spec`.
    pub spec: XenConnSpec,
    /// Data read from the connection and not yet processed.
    pub in_data: Vec<u8>,
    /// Length of a partial response at the start of `out_data`.
    pub out_resp_len: u16,
    /// Data not yet written to the connection.
    pub out_data: Vec<u8>,
    /// The domain's unique id, when `fields` bit 0 is set.
    pub unique_id: Option<u64>,
}

/// Xen's `WATCH_DATA_EXTENDED`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenWatchExtData {
    /// The watch.
    pub watch: WatchData,
    /// Directory levels below the path that match (0xffff: unlimited).
    pub depth: u16,
}
