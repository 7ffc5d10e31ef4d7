//! Engine snapshots: the complete engine state as a migration image, and back.
//!
//! What each record carries (seed layout, records 6 and 7 in Xen's layout):
//!
//! * `GLOBAL_DATA`: the shell's socket fds (all ones when it has none, as in the stub domain).
//! * `GLOBAL_QUOTA_DATA`: the global quotas (the defaults of new domains) by their
//!   `xenstore-control quota` names, plus `memory-soft`.
//! * `DOMAIN_DATA`: every known domain's ring features and quotas.
//! * `CONNECTION_DATA`: every connection, with its unsent output as `data`; ring
//!   connections carry the domain, the `SET_TARGET` domain (`tdomid`), the port and the frame
//!   number given at `INTRODUCE`.
//! * `WATCH_DATA`: every watch as the client registered it (relative paths stay relative).
//! * `TRANSACTION_DATA` and pending `NODE_DATA`: every open transaction with every node it
//!   accessed: written nodes with their new value and permissions (`access` written, plus read
//!   when read first), deleted nodes with `access` 0 and no permissions, nodes only read with
//!   the value the transaction saw (`access` read; no permissions when the node did not
//!   exist).
//! * Committed `NODE_DATA`: every node, parents before children and children in creation
//!   order, so `DIRECTORY` answers in the same order after a restore; `@introduceDomain` and
//!   `@releaseDomain` with their permissions, as C xenstored writes them.
//!
//! [`Engine::restore`](crate::engine::Engine::restore) also imports what C xenstored writes (Xen's layout, read with
//! [`crate::image::Layout::Xen`]): its connections bring their partly received request
//! (`in-data`) and unsent output, and `WATCH_DATA_EXTENDED` watches keep their depth.
//!
//! Not carried in the seed layout: a partly received request (the seed layout has no field
//! for it: the live-update shell carries it beside the image), node generation counts (restored nodes get
//! fresh ones, so a `DIRECTORY_PART` reader restarts), watch-event deadlines and the fault
//! state of faulted connections, and watch depths (the seed's `WATCH_DATA` has no depth field:
//! a watch with a depth is dumped as `WATCH_DATA_EXTENDED` only in Xen's layout).

//!
//! Two forms: [`Engine::dump`](crate::engine::Engine::dump) / [`Engine::restore`](crate::engine::Engine::restore) work on parsed [`Image`]s (tools, tests,
//! Xen's layout); [`Engine::dump_into`](crate::engine::Engine::dump_into) / [`Engine::restore_bytes`](crate::engine::Engine::restore_bytes) stream the seed layout
//! straight between the tree and a byte buffer, with no record per node in between (the
//! live update). Both share the record sequence below and give the same bytes.

mod dump;
mod restore;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::ids::{ConnId, DomId};
use crate::image::{Endianness, Image, NodePerm, PermKind, Quota};
use crate::perms::{Perm, PermEntry, Perms};
use crate::quota::{QuotaKind, Quotas};

/// How to dump.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Byte order of the records.
    pub endianness: Endianness,
    /// The shell's read-write listening socket fd (`u32::MAX`: none).
    pub rw_socket_fd: u32,
    /// The shell's read-only listening socket fd (`u32::MAX`: none).
    pub ro_socket_fd: u32,
    /// The fd of each socket connection, where the shell has one.
    pub socket_fds: BTreeMap<ConnId, u32>,
}

impl Default for DumpOptions {
    fn default() -> DumpOptions {
        DumpOptions {
            endianness: Endianness::Little,
            rw_socket_fd: u32::MAX,
            ro_socket_fd: u32::MAX,
            socket_fds: BTreeMap::new(),
        }
    }
}

/// Why an image could not become an engine (beyond what the reader validates).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError {
    /// Index of the record at fault (for two nodes of the same path: where the nodes read so
    /// far were indexed, at or after the second).
    pub record: usize,
    /// What is wrong.
    pub reason: String,
}

impl core::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "record {}: {}", self.record, self.reason)
    }
}

fn perm_kind(p: Perm) -> PermKind {
    match p {
        Perm::None => PermKind::None,
        Perm::Read => PermKind::Read,
        Perm::Write => PermKind::Write,
        Perm::Both => PermKind::Both,
    }
}

fn perm_of(k: PermKind) -> Perm {
    match k {
        PermKind::None => Perm::None,
        PermKind::Read => Perm::Read,
        PermKind::Write => Perm::Write,
        PermKind::Both => Perm::Both,
    }
}

fn image_perms(perms: &Perms) -> Vec<NodePerm> {
    perms
        .entries()
        .iter()
        .map(|e| NodePerm {
            kind: perm_kind(e.perm),
            flags: 0,
            domid: e.domid.0,
        })
        .collect()
}

fn engine_perms(perms: impl Iterator<Item = NodePerm>) -> Option<Perms> {
    Perms::from_entries(
        perms
            .map(|p| PermEntry {
                domid: DomId(p.domid),
                perm: perm_of(p.kind),
            })
            .collect(),
    )
}

fn quota_list(q: &Quotas) -> Vec<Quota> {
    let mut out: Vec<Quota> = QuotaKind::ALL
        .iter()
        .map(|k| Quota {
            name: String::from(k.name()),
            value: q.get(*k),
        })
        .collect();
    out.push(Quota {
        name: String::from("memory-soft"),
        value: q.memory_soft,
    });
    out
}

fn apply_quotas(q: &mut Quotas, list: &[Quota]) {
    for item in list {
        if item.name == "memory-soft" {
            q.memory_soft = item.value;
        } else if let Some(kind) = QuotaKind::from_name(item.name.as_bytes()) {
            q.set(kind, item.value);
        }
    }
}

/// An image of the given records in the dump's byte order.
fn image_of(opts: &DumpOptions, records: Vec<crate::image::Record>) -> Image {
    Image {
        endianness: opts.endianness,
        version: 1,
        records,
    }
}
