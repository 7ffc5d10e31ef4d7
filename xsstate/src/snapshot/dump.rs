//! The dump: the engine's state as the record sequence of the module docs, emitted either as
//! parsed records or straight into a seed-layout byte stream.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use super::{image_of, image_perms, perm_kind, quota_list, DumpOptions};
use crate::conn::ConnKind;
use crate::engine::Engine;
use crate::ids::{ConnId, DomId};
use crate::image::{
    ConnSpec, ConnectionData, DomainData, GlobalData, GlobalQuotaData, Image, ImageError, NodeData,
    Record, SeedWriter, TransactionData, WatchData, ACCESS_READ, ACCESS_WRITTEN, SOCKET_FLAG_RO,
};
use crate::path;
use crate::perms::Perms;
use crate::store::NodeId;
use crate::txn::{Transaction, TxNode};
use crate::watch::{INTRODUCE_DOMAIN, RELEASE_DOMAIN};

/// Where the dump goes.
trait Emit {
    /// Whether the committed tree is to be walked.
    fn wants_committed(&self) -> bool {
        true
    }
    fn record(&mut self, rec: Record) -> Result<(), ImageError>;
    fn node(
        &mut self,
        conn_id: u32,
        tx_id: u32,
        access: u16,
        perms: Option<&Perms>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), ImageError>;
}

impl Emit for Vec<Record> {
    fn record(&mut self, rec: Record) -> Result<(), ImageError> {
        self.push(rec);
        Ok(())
    }

    fn node(
        &mut self,
        conn_id: u32,
        tx_id: u32,
        access: u16,
        perms: Option<&Perms>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), ImageError> {
        self.push(Record::Node(NodeData {
            conn_id,
            tx_id,
            access,
            perms: perms.map(image_perms).unwrap_or_default(),
            path: String::from_utf8_lossy(path).into_owned(),
            value: value.to_vec(),
        }));
        Ok(())
    }
}

impl Emit for SeedWriter<'_> {
    fn record(&mut self, rec: Record) -> Result<(), ImageError> {
        SeedWriter::record(self, &rec)
    }

    fn node(
        &mut self,
        conn_id: u32,
        tx_id: u32,
        access: u16,
        perms: Option<&Perms>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), ImageError> {
        let entries = perms.map_or(&[][..], |p| p.entries());
        SeedWriter::node(
            self,
            conn_id,
            tx_id,
            access,
            entries
                .iter()
                .map(|e| (perm_kind(e.perm).letter(), e.domid.0)),
            path,
            value,
        )
    }
}

/// Counts bytes as a seed stream would have them (for sizing a buffer before dumping); the
/// committed tree is counted from the store's slots, not walked.
struct Counter {
    bytes: usize,
    skip_committed: bool,
    /// Each record is written here to be measured (one buffer for all of them).
    scratch: Vec<u8>,
}

impl Emit for Counter {
    fn wants_committed(&self) -> bool {
        !self.skip_committed
    }

    fn record(&mut self, rec: Record) -> Result<(), ImageError> {
        self.scratch.clear();
        let mut w = SeedWriter::new(&mut self.scratch, crate::image::Endianness::Little);
        w.record(&rec)?;
        self.bytes += self.scratch.len() - crate::image::HEADER_LEN;
        Ok(())
    }

    fn node(
        &mut self,
        conn_id: u32,
        _tx_id: u32,
        _access: u16,
        perms: Option<&Perms>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), ImageError> {
        if conn_id == 0 && self.skip_committed && path.first() != Some(&b'@') {
            return Ok(());
        }
        let n = perms.map_or(0, |p| p.entries().len());
        self.bytes += crate::store::seed_record_len(path.len(), value.len(), n);
        Ok(())
    }
}

impl Engine {
    /// Writes the complete engine state as an image (see the module docs for what goes where).
    pub fn dump(&self, opts: &DumpOptions) -> Image {
        let mut records: Vec<Record> = Vec::new();
        // Emitting into records cannot fail.
        let _ = self.emit(opts, &mut records);
        image_of(opts, records)
    }

    /// Appends the state as a seed-layout stream to `out`, node by node from the tree, with
    /// the same bytes as `image::write(&self.dump(opts))`. Reserve [`Engine::dump_len`]
    /// first to place the buffer (it then never moves).
    pub fn dump_into(&self, opts: &DumpOptions, out: &mut Vec<u8>) -> Result<(), ImageError> {
        let mut w = SeedWriter::new(out, opts.endianness);
        self.emit(opts, &mut w)
    }

    /// The length of the stream [`Engine::dump_into`] writes.
    pub fn dump_len(&self, opts: &DumpOptions) -> usize {
        let mut c = Counter {
            bytes: self.store.seed_record_bytes(),
            skip_committed: true,
            scratch: Vec::new(),
        };
        let _ = self.emit(opts, &mut c);
        crate::image::HEADER_LEN + c.bytes
    }

    fn emit(&self, opts: &DumpOptions, e: &mut impl Emit) -> Result<(), ImageError> {
        e.record(Record::Global(GlobalData {
            rw_socket_fd: opts.rw_socket_fd,
            ro_socket_fd: opts.ro_socket_fd,
        }))?;
        e.record(Record::GlobalQuota(GlobalQuotaData {
            domain: quota_list(&self.config.quotas),
            global: Vec::new(),
        }))?;
        for d in self.domains.values() {
            e.record(Record::Domain(DomainData {
                domid: d.domid.0,
                features: d.features,
                quotas: quota_list(&d.quotas),
            }))?;
        }
        for c in self.conns.values() {
            let spec = match c.kind {
                ConnKind::Ring { port, gfn } => ConnSpec::Ring {
                    flags: 0,
                    domid: c.domid.0,
                    tdomid: self
                        .domains
                        .get(&c.domid)
                        .and_then(|d| d.target)
                        .unwrap_or(DomId::INVALID)
                        .0,
                    evtchn: port.0,
                    mfn: gfn,
                },
                ConnKind::Socket { read_only } => ConnSpec::Socket {
                    flags: if read_only { SOCKET_FLAG_RO } else { 0 },
                    socket_fd: opts.socket_fds.get(&c.id).copied().unwrap_or(u32::MAX),
                },
            };
            let mut data = Vec::with_capacity(c.out_bytes);
            for (i, m) in c.out.iter().enumerate() {
                let skip = if i == 0 { c.out_sent } else { 0 };
                data.extend_from_slice(m.bytes.get(skip..).unwrap_or(&[]));
            }
            e.record(Record::Connection(ConnectionData {
                conn_id: c.id.0,
                spec,
                data,
            }))?;
            for w in &c.watches {
                e.record(Record::Watch(WatchData {
                    conn_id: c.id.0,
                    wpath: w.reported_path(&w.path, c.domid),
                    token: w.token.clone(),
                }))?;
            }
            for t in c.transactions.values() {
                e.record(Record::Transaction(TransactionData {
                    conn_id: c.id.0,
                    tx_id: t.id.0,
                }))?;
            }
        }
        // Depth first, children in creation order, no recursion, one path buffer.
        if e.wants_committed() {
            let mut result = Ok(());
            self.store.walk_bytes(NodeId::ROOT, |p, n| {
                if result.is_ok() {
                    result = e.node(0, 0, 0, Some(n.perms()), p, n.value());
                }
            });
            result?;
        }
        for (name, perms) in [INTRODUCE_DOMAIN, RELEASE_DOMAIN]
            .iter()
            .zip(self.special_perms.iter())
        {
            e.node(0, 0, 0, Some(perms), name.as_bytes(), &[])?;
        }
        for c in self.conns.values() {
            for t in c.transactions.values() {
                self.emit_transaction(c.id, t, e)?;
            }
        }
        e.record(Record::End)
    }

    /// Writes one transaction's records. The seed's `NODE_DATA` has no generation, so
    /// whether the transaction must fail at commit (something it used changed since) is
    /// carried in the access bits: a written node is marked read as well exactly when the
    /// transaction is doomed, and a node only read carries the value it saw, which differs
    /// from the committed one when it changed. A node that changed and changed back is
    /// written with the value it has, marked read (see [`Engine::restore`]).
    fn emit_transaction(
        &self,
        conn: ConnId,
        t: &Transaction,
        e: &mut impl Emit,
    ) -> Result<(), ImageError> {
        // The transaction's own tree first (so children keep their order), then whatever
        // else it touched: deleted nodes and reads of nodes that did not exist.
        let mut order = txn_dfs(self, t);
        order.retain(|p| t.accessed.contains_key(p));
        let listed: BTreeSet<String> = order.iter().cloned().collect();
        order.extend(t.accessed.keys().filter(|p| !listed.contains(*p)).cloned());
        let doomed = t.conflicts(&self.store);
        // Is the doom visible without help (a written node, or a read value that differs)?
        let visible = t.changes.values().any(Option::is_some)
            || t.accessed.iter().any(|(p, a)| {
                !t.changes.contains_key(p)
                    && a.base_generation != self.store.generation_of(p)
                    && !same_as_store(self, t.seen.get(p).and_then(Option::as_ref), p)
            });
        let mut need_marker = doomed && !visible;
        for p in order {
            let (access, node): (u16, Option<&TxNode>) = match t.changes.get(&p) {
                Some(Some(n)) => (
                    ACCESS_WRITTEN | if doomed { ACCESS_READ } else { 0 },
                    Some(n),
                ),
                Some(None) => (0, None),
                None => {
                    let seen = t.seen.get(&p).and_then(Option::as_ref);
                    let changed = t
                        .accessed
                        .get(&p)
                        .is_some_and(|a| a.base_generation != self.store.generation_of(&p));
                    match seen {
                        Some(n) if need_marker && changed => {
                            need_marker = false;
                            (ACCESS_READ | ACCESS_WRITTEN, Some(n))
                        }
                        _ => (ACCESS_READ, seen),
                    }
                }
            };
            e.node(
                conn.0,
                t.id.0,
                access,
                node.map(|n| &n.perms),
                p.as_bytes(),
                node.map_or(&[][..], |n| &n.value),
            )?;
        }
        Ok(())
    }
}

/// Every path of a transaction's view of the tree, depth first, children in list order,
/// without recursion.
fn txn_dfs(e: &Engine, t: &Transaction) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = alloc::vec![String::from("/")];
    while let Some(p) = stack.pop() {
        if t.view(&e.store, &p).is_some() {
            for c in t.children_of(&e.store, &p).iter().rev() {
                stack.push(path::join(&p, c));
            }
            out.push(p);
        }
    }
    out
}

/// Whether a transaction's copy equals the committed node at `p` (value and permissions).
pub(super) fn same_as_store(e: &Engine, a: Option<&TxNode>, p: &str) -> bool {
    match (a, e.store.get(p)) {
        (Some(a), Some(b)) => a.value == b.value() && &a.perms == b.perms(),
        (None, None) => true,
        _ => false,
    }
}
