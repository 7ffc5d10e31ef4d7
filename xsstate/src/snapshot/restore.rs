//! The restore: an engine rebuilt from a parsed image or straight from a stream.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{apply_quotas, engine_perms, RestoreError};
use crate::conn::{ConnKind, Connection, Outgoing};
use crate::engine::{Engine, EngineConfig};
use crate::ids::{ConnId, DomId, EvtchnPort, TxId};
use crate::image::{
    ConnSpec, Image, Item, Layout, NodePerm, Record, Stream, XenConnSpec, ACCESS_READ,
    ACCESS_WRITTEN, SOCKET_FLAG_RO,
};
use crate::path;
use crate::perms::Perms;
use crate::store::{DeferredIndex, NodeId};
use crate::txn::{NodeAccess, PendingEvent, Transaction, TxNode};
use crate::watch::{Watch, INTRODUCE_DOMAIN, RELEASE_DOMAIN};

/// Nodes indexed at a time (the batch and the sort's scratch space: 512 KiB at most).
const INDEX_BATCH: usize = 1 << 15;

/// One node record, wherever it came from.
struct NodeIn<'a, P: Iterator<Item = NodePerm>> {
    conn_id: u32,
    tx_id: u32,
    access: u16,
    perms: P,
    /// The entries' bytes in the stream, when restoring from one (empty otherwise): equal
    /// bytes mean equal entries, so a repeat is found without decoding.
    perms_raw: &'a [u8],
    path: &'a str,
    value: &'a [u8],
}

/// The restore in progress.
struct Restorer {
    e: Engine,
    max_conn: u32,
    /// The committed nodes restored last, root first: `(path length, id)` of each ancestor
    /// of `prev` (nodes come parents first, mostly depth first).
    chain: Vec<(usize, NodeId)>,
    prev: String,
    /// The permissions of the previous node, reused while they repeat.
    last_perms: Option<(Vec<NodePerm>, Perms)>,
    /// The stream bytes `last_perms` came from (empty: not from a stream).
    last_raw: Vec<u8>,
    /// Committed nodes not yet in the store's name index: indexed in one pass before
    /// anything looks a path up, and at the end.
    deferred: DeferredIndex,
}

impl Restorer {
    fn new(config: EngineConfig) -> Restorer {
        Restorer {
            e: Engine::empty(config),
            max_conn: 0,
            chain: Vec::new(),
            prev: String::new(),
            last_perms: None,
            last_raw: Vec::new(),
            deferred: DeferredIndex::default(),
        }
    }

    /// Puts the nodes created since the last call into the name index.
    fn index_nodes(&mut self) -> Result<(), &'static str> {
        self.e
            .store
            .index_deferred(&mut self.deferred)
            .map_err(|e| match e {
                crate::error::XsError::Eexist => "duplicate node",
                _ => "out of memory",
            })
    }

    /// The permissions of a record: the previous record's when they repeat (no allocation).
    fn perms(&mut self, raw: impl Iterator<Item = NodePerm>, bytes: &[u8]) -> Option<&Perms> {
        if !bytes.is_empty() && self.last_perms.is_some() && bytes == self.last_raw.as_slice() {
            return self.last_perms.as_ref().map(|(_, p)| p);
        }
        self.last_raw.clear();
        self.last_raw.extend_from_slice(bytes);
        let list = heapless_perms::Small::collect(raw);
        let same = self
            .last_perms
            .as_ref()
            .is_some_and(|(prev, _)| list.as_slice() == prev.as_slice());
        if !same {
            let perms = engine_perms(list.as_slice().iter().copied())?;
            self.last_perms = Some((list.as_slice().to_vec(), perms));
        }
        self.last_perms.as_ref().map(|(_, p)| p)
    }

    fn record(&mut self, rec: Record) -> Result<(), &'static str> {
        if let Record::Node(n) = rec {
            let node = NodeIn {
                conn_id: n.conn_id,
                tx_id: n.tx_id,
                access: n.access,
                perms: n.perms.iter().copied(),
                perms_raw: &[],
                path: &n.path,
                value: &n.value,
            };
            return self.node(node);
        }
        self.index_nodes()?;
        let e = &mut self.e;
        match rec {
            Record::End | Record::Global(_) | Record::XenGlobal(_) => {}
            Record::GlobalQuota(q) => apply_quotas(&mut e.config.quotas, &q.domain),
            Record::Domain(d) => {
                let dom = e.domain_entry(DomId(d.domid));
                dom.features = d.features;
                apply_quotas(&mut dom.quotas, &d.quotas);
            }
            Record::Connection(c) => {
                self.max_conn = self.max_conn.max(c.conn_id);
                let (ring, read_only) = match c.spec {
                    ConnSpec::Ring {
                        domid,
                        tdomid,
                        evtchn,
                        mfn,
                        ..
                    } => (Some((domid, tdomid, evtchn, mfn)), false),
                    ConnSpec::Socket { flags, .. } => (None, flags & SOCKET_FLAG_RO != 0),
                };
                e.restore_connection(c.conn_id, ring, read_only, &[], &c.data)?;
            }
            Record::XenConnection(c) => {
                self.max_conn = self.max_conn.max(c.conn_id);
                let ring = match c.spec {
                    XenConnSpec::Ring {
                        domid,
                        tdomid,
                        evtchn,
                    } => Some((domid, tdomid, evtchn, u64::MAX)),
                    XenConnSpec::Socket { .. } => None,
                };
                e.restore_connection(c.conn_id, ring, false, &c.in_data, &c.out_data)?;
            }
            Record::XenWatchExt(w) => {
                let home = e
                    .conns
                    .get(&ConnId(w.watch.conn_id))
                    .map(|c| c.domid)
                    .ok_or("unknown connection")?;
                let mut watch = restore_watch(home, &w.watch.wpath, &w.watch.token)
                    .ok_or("invalid watch path")?;
                watch.depth = Some(u32::from(w.depth));
                if let Some(c) = e.conns.get_mut(&ConnId(w.watch.conn_id)) {
                    c.watches.push(watch);
                }
            }
            Record::Watch(w) => {
                let conn = e
                    .conns
                    .get(&ConnId(w.conn_id))
                    .ok_or("unknown connection")?;
                let watch =
                    restore_watch(conn.domid, &w.wpath, &w.token).ok_or("invalid watch path")?;
                if let Some(c) = e.conns.get_mut(&ConnId(w.conn_id)) {
                    c.watches.push(watch);
                }
            }
            Record::Transaction(t) => {
                let now = e.now_ms;
                let c = e
                    .conns
                    .get_mut(&ConnId(t.conn_id))
                    .ok_or("unknown connection")?;
                if t.tx_id == 0
                    || c.transactions
                        .insert(t.tx_id, Transaction::new(TxId(t.tx_id), now))
                        .is_some()
                {
                    return Err("invalid or duplicate transaction id");
                }
            }
            Record::Node(_) => {}
        }
        Ok(())
    }

    fn node<P: Iterator<Item = NodePerm>>(&mut self, n: NodeIn<'_, P>) -> Result<(), &'static str> {
        if n.conn_id != 0 {
            self.index_nodes()?;
            let perms = self.perms(n.perms, n.perms_raw).cloned();
            return self
                .e
                .restore_pending(n.conn_id, n.tx_id, n.access, perms, n.path, n.value);
        }
        if self.perms(n.perms, n.perms_raw).is_none() {
            return Err("a committed node without permissions");
        }
        // The permissions stay in `last_perms` (a field apart from the engine) while the
        // store changes.
        let Some((_, perms)) = self.last_perms.as_ref() else {
            return Err("a committed node without permissions");
        };
        if n.path == INTRODUCE_DOMAIN || n.path == RELEASE_DOMAIN {
            let slot = usize::from(n.path == RELEASE_DOMAIN);
            if let Some(s) = self.e.special_perms.get_mut(slot) {
                *s = perms.clone();
            }
            return Ok(());
        }
        let store = &mut self.e.store;
        if n.path == "/" {
            store
                .set(NodeId::ROOT, Some(n.value), Some(perms))
                .map_err(|_| "out of memory")?;
            self.chain.clear();
            self.chain.push((1, NodeId::ROOT));
            self.prev.clear();
            self.prev.push('/');
            return Ok(());
        }
        let (parent_path, name) = path::split(n.path);
        // The chain holds the previous node and its ancestors: with nodes coming depth
        // first, the parent is on it; otherwise it is looked up.
        let want = parent_path.len();
        while self.chain.last().is_some_and(|&(len, _)| len > want) {
            self.chain.pop();
        }
        let on_chain = match self.chain.last() {
            Some(&(len, id)) if len == want && self.prev.get(..len) == Some(parent_path) => {
                Some(id)
            }
            _ => None,
        };
        let parent = match on_chain {
            Some(id) => id,
            None => {
                self.index_nodes()?;
                let store = &mut self.e.store;
                let id = store
                    .lookup(parent_path)
                    .ok_or("a node without its parent")?;
                self.chain.clear();
                self.chain.push((want, id));
                id
            }
        };
        let Some((_, perms)) = self.last_perms.as_ref() else {
            return Err("a committed node without permissions");
        };
        let id = self
            .e
            .store
            .create_deferred(parent, name, perms, n.value, &mut self.deferred)
            .map_err(|e| match e {
                crate::error::XsError::Eexist => "duplicate node",
                crate::error::XsError::Enomem => "out of memory",
                _ => "a node the store cannot hold",
            })?;
        self.chain.push((n.path.len(), id));
        self.prev.clear();
        self.prev.push_str(n.path);
        if self.deferred.len() >= INDEX_BATCH {
            self.index_nodes()?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Engine, &'static str> {
        self.index_nodes()?;
        self.e.finish_transactions();
        self.e.set_next_conn(self.max_conn.wrapping_add(1).max(1));
        Ok(self.e)
    }
}

/// Up to a few permission entries without allocating (more fall back to the heap).
mod heapless_perms {
    use crate::image::NodePerm;
    use alloc::vec::Vec;

    pub(super) enum Small {
        Inline([NodePerm; 4], usize),
        Heap(Vec<NodePerm>),
    }

    impl Small {
        pub(super) fn collect(it: impl Iterator<Item = NodePerm>) -> Small {
            let none = NodePerm {
                kind: crate::image::PermKind::None,
                flags: 0,
                domid: 0,
            };
            let mut inline = [none; 4];
            let mut n = 0usize;
            let mut heap: Option<Vec<NodePerm>> = None;
            for p in it {
                match &mut heap {
                    Some(v) => v.push(p),
                    None => match inline.get_mut(n) {
                        Some(slot) => {
                            *slot = p;
                            n += 1;
                        }
                        None => {
                            let mut v: Vec<NodePerm> = inline.to_vec();
                            v.push(p);
                            heap = Some(v);
                        }
                    },
                }
            }
            match heap {
                Some(v) => Small::Heap(v),
                None => Small::Inline(inline, n),
            }
        }

        pub(super) fn as_slice(&self) -> &[NodePerm] {
            match self {
                Small::Inline(a, n) => a.get(..*n).unwrap_or(&[]),
                Small::Heap(v) => v,
            }
        }
    }
}

impl Engine {
    /// Rebuilds an engine from an image the reader accepted. The engine answers every request
    /// as the dumped one would; open transactions commit unless something they used changed.
    pub fn restore(image: Image, config: EngineConfig) -> Result<Engine, RestoreError> {
        let mut r = Restorer::new(config);
        let mut end = 0;
        for (i, rec) in image.records.into_iter().enumerate() {
            r.record(rec).map_err(|reason| RestoreError {
                record: i,
                reason: String::from(reason),
            })?;
            end = i;
        }
        r.finish().map_err(|reason| RestoreError {
            record: end,
            reason: String::from(reason),
        })
    }

    /// Rebuilds an engine straight from image bytes, validating as it goes (the reader's
    /// checks, with node parents and duplicates checked against the tree being built):
    /// nothing is returned unless the whole stream is valid. Node paths and values are
    /// copied once, into the store.
    pub fn restore_bytes(
        bytes: &[u8],
        layout: Layout,
        config: EngineConfig,
    ) -> Result<Engine, RestoreError> {
        let err = |record: usize, reason: String| RestoreError { record, reason };
        let mut stream = Stream::new(bytes, layout)
            .map_err(|e| err(0, alloc::format!("{e}")))?
            .without_node_tracking();
        let mut r = Restorer::new(config);
        // Most records are nodes of some 40 bytes and more: size the index once.
        let _ = r.e.store.reserve_index(bytes.len() / 48);
        loop {
            let item = match stream.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return Err(err(stream.index(), alloc::format!("{e}"))),
            };
            let index = stream.index();
            let done = match item {
                Item::Node(n) => r.node(NodeIn {
                    conn_id: n.conn_id,
                    tx_id: n.tx_id,
                    access: n.access,
                    perms: n.perms(),
                    perms_raw: n.perms_raw(),
                    path: n.path,
                    value: n.value,
                }),
                Item::Other(rec) => r.record(rec),
            };
            done.map_err(|reason| err(index, String::from(reason)))?;
        }
        r.finish()
            .map_err(|reason| err(stream.index(), String::from(reason)))
    }

    /// Rebuilds one connection: a ring `(domid, tdomid, evtchn, mfn)` or a socket, its
    /// partly received request (Xen's layout only) and its unsent output.
    fn restore_connection(
        &mut self,
        conn_id: u32,
        ring: Option<(u16, u16, u32, u64)>,
        read_only: bool,
        input: &[u8],
        output: &[u8],
    ) -> Result<(), &'static str> {
        let id = ConnId(conn_id);
        if self.conns.contains_key(&id) {
            return Err("duplicate connection id");
        }
        let (kind, domid) = match ring {
            Some((domid, tdomid, evtchn, mfn)) => {
                let domid = DomId(domid);
                let dom = self.domain_entry(domid);
                if dom.conn.is_some() {
                    return Err("a second ring connection for the same domain");
                }
                dom.conn = Some(id);
                dom.introduced = true;
                dom.target = (tdomid != DomId::INVALID.0).then_some(DomId(tdomid));
                (
                    ConnKind::Ring {
                        port: EvtchnPort(evtchn),
                        gfn: mfn,
                    },
                    domid,
                )
            }
            None => (ConnKind::Socket { read_only }, self.config.priv_domid),
        };
        let mut conn = Connection::new(id, kind, domid);
        for out in split_output(output) {
            conn.push(out);
        }
        // A partly received request goes back into the decoder; it cannot be complete.
        match conn.decoder.feed(input) {
            Ok(crate::wire::Decoded::NeedMore) => {}
            _ => return Err("the pending input is not a partial request"),
        }
        self.conns.insert(id, conn);
        Ok(())
    }

    fn restore_pending(
        &mut self,
        conn_id: u32,
        tx_id: u32,
        access: u16,
        perms: Option<Perms>,
        path: &str,
        value: &[u8],
    ) -> Result<(), &'static str> {
        let store = &self.store;
        let c = self
            .conns
            .get_mut(&ConnId(conn_id))
            .ok_or("unknown connection")?;
        let t = c
            .transactions
            .get_mut(&tx_id)
            .ok_or("unknown transaction")?;
        if t.accessed.contains_key(path) {
            return Err("duplicate node");
        }
        let committed = store.get(path);
        let written = access & ACCESS_WRITTEN != 0;
        let read = access & ACCESS_READ != 0;
        let recorded = perms.map(|perms| TxNode {
            value: value.to_vec(),
            perms,
        });
        let deleted = !written && !read;
        let same_as_committed = match (&recorded, committed) {
            (Some(a), Some(b)) => a.value == b.value() && &a.perms == b.perms(),
            (None, None) => true,
            _ => false,
        };
        // What the transaction saw when it first touched the node: for nodes only read that
        // is the record; for changed nodes, the committed node (the best knowledge left).
        let seen = if written || deleted {
            committed.map(TxNode::of)
        } else {
            recorded.clone()
        };
        // A written node marked read means the transaction is doomed; a node only read
        // dooms it when what it saw is not what is committed (see `emit_transaction`).
        let doomed = if written {
            read
        } else {
            !deleted && !same_as_committed
        };
        let base_generation = if doomed {
            u64::MAX
        } else {
            committed.map_or(0, |n| n.generation())
        };
        let exists = committed.is_some();
        t.accessed.insert(
            String::from(path),
            NodeAccess {
                base_generation,
                read,
                written: written || deleted,
            },
        );
        t.bytes += path.len() + 48;
        t.seen.insert(String::from(path), seen);
        if written {
            // Children lists are derived (see `txn`): only creation order is needed.
            let node = recorded.ok_or("a written node without permissions")?;
            if !exists {
                t.note_created(path);
            }
            t.change(String::from(path), Some(node));
        } else if deleted {
            t.change(String::from(path), None);
        }
        Ok(())
    }

    /// Queues the watch events the commit of each restored transaction will fire, as the
    /// requests that made the changes did: one per deleted node (exact below a deleted
    /// subtree's root), and one per written node unless it only gained or lost children.
    fn finish_transactions(&mut self) {
        let store = &self.store;
        for c in self.conns.values_mut() {
            for t in c.transactions.values_mut() {
                let mut events = Vec::new();
                for (p, change) in &t.changes {
                    let old = store.get(p);
                    let old_perms = old.map(|n| n.perms().clone());
                    match change {
                        None => {
                            let parent_deleted =
                                p != "/" && matches!(t.changes.get(path::parent(p)), Some(None));
                            events.push(PendingEvent {
                                path: p.clone(),
                                exact: parent_deleted,
                                old_perms,
                            });
                        }
                        Some(n) => {
                            let own_change = match old {
                                Some(old) => old.value() != n.value || old.perms() != &n.perms,
                                None => !n.value.is_empty() || !changed_below(&t.changes, p),
                            };
                            if own_change {
                                events.push(PendingEvent {
                                    path: p.clone(),
                                    exact: false,
                                    old_perms,
                                });
                            }
                        }
                    }
                }
                for ev in events {
                    t.queue_event(ev);
                }
            }
        }
    }
}

/// The unsent output of a connection as messages again, when it splits cleanly into whole
/// messages (watch events are then recognised for de-duplication); otherwise (the first one
/// was partly sent) as one opaque block.
fn split_output(data: &[u8]) -> Vec<Outgoing> {
    if data.is_empty() {
        return Vec::new();
    }
    let blob = || {
        alloc::vec![Outgoing {
            bytes: data.to_vec(),
            is_event: false,
            deadline_ms: None
        }]
    };
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(head) = rest
            .get(..crate::wire::HEADER_LEN)
            .and_then(|h| <&[u8; 16]>::try_from(h).ok())
        else {
            return blob();
        };
        let h = crate::wire::Header::decode(head);
        let total = crate::wire::HEADER_LEN + h.len as usize;
        if h.len as usize > crate::wire::PAYLOAD_MAX || total > rest.len() {
            return blob();
        }
        let (msg, tail) = rest.split_at(total);
        let is_event = h.msg_type == crate::wire::MsgType::WatchEvent as u32 && h.req_id == 0;
        out.push(Outgoing {
            bytes: msg.to_vec(),
            is_event,
            deadline_ms: None,
        });
        rest = tail;
    }
    out
}

/// Whether some change lies strictly below `p`.
fn changed_below(changes: &BTreeMap<String, Option<TxNode>>, p: &str) -> bool {
    if p == "/" {
        return changes.keys().any(|k| k != "/");
    }
    let lo = alloc::format!("{p}/");
    let hi = alloc::format!("{p}0");
    changes.range(lo..hi).next().is_some()
}

fn restore_watch(home: DomId, wpath: &str, token: &str) -> Option<Watch> {
    let full = path::canonicalize_watch(wpath.as_bytes(), home, None).ok()?;
    Some(Watch {
        relative: !wpath.starts_with('/') && !path::is_special(wpath),
        path: full,
        token: String::from(token),
        depth: None,
    })
}
