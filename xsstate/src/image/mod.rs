//! The xenstore migration-stream image format: a validating reader and a writer.
//!
//! Two layouts are understood ([`Layout`]): the **seed** design document
//! (`xenstore-migration.md` as posted in patch v3), which this project writes, and the layout
//! **shipped Xen** `xenstored` writes (`tools/xenstored/xenstore_state.h`), which is read
//! (and can be written, for tests). Records 6 (`GLOBAL_QUOTA_DATA`) and 7 (`DOMAIN_DATA`)
//! are not in the seed; for the state the seed has no record for, both layouts use these
//! records **in Xen's layout**. Anything else the seed does not define is refused.
//!
//! # Header (16 octets, always big-endian)
//!
//! | offset | size | field                                                         |
//! |--------|------|---------------------------------------------------------------|
//! | 0      | 8    | `ident` = `xenstore` (0x78656e73746f7265)                     |
//! | 8      | 4    | `version`: 1 (seed); 1 or 2 (Xen)                              |
//! | 12     | 4    | `flags`: bit 0 endianness of the records (0 little, 1 big); bits 1-31 must be 0 |
//!
//! # Records
//!
//! Each record is `type` u32 at +0, `len` u32 at +4, the body from +8, then zero padding to
//! the next multiple of 8. In the seed layout `len` is the body length without padding; Xen
//! counts the padding inside `len`. The reader skips to the next 8-octet boundary after `len`
//! octets, which suits both; padding octets are never checked. Body offsets below are from
//! the start of the body (add 8 for the record, plus the record's stream offset).
//!
//! ## Seed layout
//!
//! * `END` (0): empty body; must be the last record (nothing may follow it).
//! * `GLOBAL_DATA` (1): 0 `rw-socket-fd` u32, 4 `ro-socket-fd` u32 (8 octets).
//! * `CONNECTION_DATA` (2): 0 `conn-id` u32 (non-zero), 4 `conn-type` u16, 6 `flags` u16
//!   (the first field of `conn-spec`, which starts inside the first 8-octet word), then for a
//!   ring (`conn-type` 0): 8 `domid` u16, 10 `tdomid` u16, 12 `evtchn` u32, 16 `mfn` u64,
//!   with `flags` zero; for a socket (`conn-type` 1): 8 `socket-fd` u32, 12 pad u32,
//!   16 pad u64, with `flags` bit 0 = read-only; then 24 `data-len` u32, 28 `data`.
//! * `WATCH_DATA` (3): 0 `conn-id` u32, 4 `wpath-len` u16, 6 `token-len` u16, 8 `wpath`
//!   (with NUL), 8+`wpath-len` `token` (with NUL).
//! * `TRANSACTION_DATA` (4): 0 `conn-id` u32, 4 `tx-id` u32.
//! * `NODE_DATA` (5): 0 `conn-id` u32 (0 = committed node), 4 `tx-id` u32, 8 `access` u16,
//!   10 `perm-count` u16, 12 perms (4 octets each: `perm` u8 ASCII `w`/`r`/`b`/`n`, pad u8,
//!   `domid` u16), then at P = 12 + 4 x `perm-count`: P `path-len` u16, P+2 `value-len` u16,
//!   P+4 `path` (with NUL), P+4+`path-len` `value`.
//! * `GLOBAL_QUOTA_DATA` (6, Xen's layout): 0 `n-dom-quota` u16, 2 `n-glob-quota` u16,
//!   4 `quota-val` u32 x (`n-dom-quota` + `n-glob-quota`), then as many NUL-terminated names.
//! * `DOMAIN_DATA` (7, Xen's layout): 0 `domain-id` u16, 2 `n-quota` u16, 4 `features` u32,
//!   8 `quota-val` u32 x `n-quota`, then as many NUL-terminated names.
//!
//! ## Xen layout (differences)
//!
//! * `GLOBAL_DATA` (1): 0 `socket-fd` i32, 4 `evtchn-fd` i32 ([`Record::XenGlobal`]).
//! * `CONNECTION_DATA` (2): 0 `conn-id` u32, 4 `conn-type` u16, 6 `fields` u16 (bit 0:
//!   `unique-id` present), 8 `conn-spec` (ring: 8 `domid` u16, 10 `tdomid` u16, 12 `evtchn`
//!   u32; socket: 8 `socket-fd` i32, 12 pad u32), 16 `in-data-len` u16, 18 `out-resp-len`
//!   u16, 20 `out-data-len` u32, 24 in data then out data, then (if `fields` bit 0) zero
//!   padding to a multiple of 8 and `unique-id` u64 ([`Record::XenConnection`]).
//! * `NODE_DATA` (5): 0 `conn-id`, 4 `tx-id`, 8 `path-len` u16, 10 `value-len` u16,
//!   12 `access` u16, 14 `perm-count` u16, 16 perms (`perm` u8, `flags` u8 (bit 0: stale),
//!   `domid` u16), then `path`, `value`.
//! * `WATCH_DATA_EXTENDED` (8, version 2 only): 0 `conn-id` u32, 4 `wpath-len` u16,
//!   6 `token-len` u16, 8 `depth` u16, 10 `wpath`, then `token` — `data[]` follows `depth`
//!   directly in `struct xs_state_watch_ext`, which is what Xen's reader uses (the design
//!   document draws a pad u16 and puts `wpath` at 12; Xen's writer omits `depth` altogether).
//! * Types 0, 3, 4, 6, 7 as in the seed layout.
//!
//! # Validation
//!
//! [`read`] checks the whole stream before returning anything. Errors ([`ImageError`])
//! carry the stream offset of the offending field (the header field; a record's `type` for an
//! unknown type, its `len` for a record that does not fit; the field itself for bad values;
//! the string's start for an invalid path; the missing or extra octet for NULs and overlong
//! bodies), the record index and type, and a [`Reason`]. Rules beyond the framing:
//!
//! * `CONNECTION_DATA` ids are non-zero and unique; a `WATCH_DATA`, `TRANSACTION_DATA` or
//!   transaction `NODE_DATA` names a connection declared earlier; a transaction node names a
//!   transaction declared earlier; transactions are unique per connection.
//! * Nodes are unique per (connection, transaction, path) (`tx-id` is ignored for committed
//!   nodes); a committed node other than `/` needs its parent as an earlier committed node
//!   (so a stream of part of a tree is refused); a committed node has at least one
//!   permission; transaction `access` has only bits 0 and 1.
//! * Node paths pass [`crate::path::validate`] with [`crate::path::PATH_LIMIT`], except the
//!   committed special nodes `@releaseDomain` and `@introduceDomain` ([`SPECIAL_NODES`],
//!   which C xenstored also writes and which need no parent); watch
//!   paths are `@name`, absolute (same check) or relative (checked below `/` with
//!   [`crate::path::REL_PATH_MAX`]). Strings end with their NUL, have no other NUL and are
//!   UTF-8 (tokens and quota names too; quota names are non-empty).
//! * One `GLOBAL_DATA`, one `GLOBAL_QUOTA_DATA`, one `DOMAIN_DATA` per domain.
//! * Seed: ring `flags` zero, socket `flags` only bit 0; Xen: `fields` only bit 0, perm
//!   `flags` only bit 0, `out-resp-len` <= `out-data-len`.
//! * Every length is checked against what remains of the body before anything is copied.

mod error;
mod reader;
mod record;
mod writer;
mod xen;

pub use error::{ImageError, Reason, RecordRef};
pub use reader::{read, Item, NodeRecord, Stream, SPECIAL_NODES};
pub use record::{
    rtype, ConnSpec, ConnectionData, DomainData, Endianness, GlobalData, GlobalQuotaData, Image,
    Layout, NodeData, NodePerm, PermKind, Quota, Record, TransactionData, WatchData, XenConnSpec,
    XenConnectionData, XenGlobalData, XenWatchExtData, ACCESS_READ, ACCESS_WRITTEN, SOCKET_FLAG_RO,
    XEN_CONN_FIELD_UNIQUE_ID,
};
pub use writer::{write, write_layout, SeedWriter};

/// Length of the header.
pub const HEADER_LEN: usize = 16;
/// The header `ident`.
pub const IDENT: [u8; 8] = *b"xenstore";
/// The version a live update's own (seed-layout) stream carries, and the only one it writes.
pub const SEED_VERSION: u32 = 1;
