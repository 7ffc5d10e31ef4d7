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
//! [`Engine::restore`] also imports what C xenstored writes (Xen's layout, read with
//! [`crate::image::Layout::Xen`]): its connections bring their partly received request
//! (`in-data`) and unsent output, and `WATCH_DATA_EXTENDED` watches keep their depth.
//!
//! Not carried in the seed layout: a partly received request (the seed layout has no field for it: the live-update
//! shell waits until no connection is mid-message), node generation counts (restored nodes get
//! fresh ones, so a `DIRECTORY_PART` reader restarts), watch-event deadlines and the fault
//! state of faulted connections, and watch depths (the seed's `WATCH_DATA` has no depth field:
//! a watch with a depth is dumped as `WATCH_DATA_EXTENDED` only in Xen's layout).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::conn::{ConnKind, Connection, Outgoing};
use crate::engine::{Engine, EngineConfig};
use crate::ids::{ConnId, DomId, EvtchnPort, TxId};
use crate::image::{
    ConnSpec, ConnectionData, DomainData, Endianness, GlobalData, GlobalQuotaData, Image, NodeData,
    NodePerm, PermKind, Quota, Record, TransactionData, WatchData, XenConnSpec, ACCESS_READ,
    ACCESS_WRITTEN, SOCKET_FLAG_RO,
};
use crate::path;
use crate::perms::{Perm, PermEntry, Perms};
use crate::quota::{QuotaKind, Quotas};
use crate::store::Node;
use crate::txn::{NodeAccess, PendingEvent, Transaction};
use crate::watch::{Watch, INTRODUCE_DOMAIN, RELEASE_DOMAIN};

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
    /// Index of the record at fault.
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

fn engine_perms(perms: &[NodePerm]) -> Option<Perms> {
    Perms::from_entries(
        perms
            .iter()
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

fn node_record(conn_id: u32, tx_id: u32, access: u16, path: &str, node: Option<&Node>) -> Record {
    Record::Node(NodeData {
        conn_id,
        tx_id,
        access,
        perms: node.map(|n| image_perms(&n.perms)).unwrap_or_default(),
        path: String::from(path),
        value: node.map(|n| n.value.clone()).unwrap_or_default(),
    })
}

/// Every path of a tree in depth-first order, children in list order, without recursion.
fn dfs<'a>(root: &str, get: impl Fn(&str) -> Option<alloc::borrow::Cow<'a, Node>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = alloc::vec![String::from(root)];
    while let Some(p) = stack.pop() {
        if let Some(n) = get(&p) {
            for c in n.children.iter().rev() {
                stack.push(path::join(&p, c));
            }
            out.push(p);
        }
    }
    out
}

impl Engine {
    /// Writes the complete engine state as an image (see the module docs for what goes where).
    pub fn dump(&self, opts: &DumpOptions) -> Image {
        let mut records = Vec::new();
        records.push(Record::Global(GlobalData {
            rw_socket_fd: opts.rw_socket_fd,
            ro_socket_fd: opts.ro_socket_fd,
        }));
        records.push(Record::GlobalQuota(GlobalQuotaData {
            domain: quota_list(&self.config.quotas),
            global: Vec::new(),
        }));
        for d in self.domains.values() {
            records.push(Record::Domain(DomainData {
                domid: d.domid.0,
                features: d.features,
                quotas: quota_list(&d.quotas),
            }));
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
            records.push(Record::Connection(ConnectionData {
                conn_id: c.id.0,
                spec,
                data,
            }));
            for w in &c.watches {
                records.push(Record::Watch(WatchData {
                    conn_id: c.id.0,
                    wpath: w.reported_path(&w.path, c.domid),
                    token: w.token.clone(),
                }));
            }
            for t in c.transactions.values() {
                records.push(Record::Transaction(TransactionData {
                    conn_id: c.id.0,
                    tx_id: t.id.0,
                }));
            }
        }
        // Depth first, children in list order, one lookup per node, no recursion.
        let mut stack = alloc::vec![String::from("/")];
        while let Some(p) = stack.pop() {
            let Some(n) = self.store.get(&p) else {
                continue;
            };
            for c in n.children.iter().rev() {
                stack.push(path::join(&p, c));
            }
            records.push(Record::Node(NodeData {
                conn_id: 0,
                tx_id: 0,
                access: 0,
                perms: image_perms(&n.perms),
                path: p,
                value: n.value.clone(),
            }));
        }
        for (name, perms) in [INTRODUCE_DOMAIN, RELEASE_DOMAIN]
            .iter()
            .zip(self.special_perms.iter())
        {
            let node = Node::new(perms.clone());
            records.push(node_record(0, 0, 0, name, Some(&node)));
        }
        for c in self.conns.values() {
            for t in c.transactions.values() {
                self.dump_transaction(c.id, t, &mut records);
            }
        }
        records.push(Record::End);
        Image {
            endianness: opts.endianness,
            version: 1,
            records,
        }
    }

    /// Writes one transaction's records. The seed's `NODE_DATA` has no generation, so
    /// whether the transaction must fail at commit (something it used changed since) is
    /// carried in the access bits: a written node is marked read as well exactly when the
    /// transaction is doomed, and a node only read carries the value it saw, which differs
    /// from the committed one when it changed. A node that changed and changed back is
    /// written with the value it has, marked read (see [`Engine::restore`]).
    fn dump_transaction(&self, conn: ConnId, t: &Transaction, records: &mut Vec<Record>) {
        // The transaction's own tree first (so children keep their order), then whatever
        // else it touched: deleted nodes and reads of nodes that did not exist.
        let mut order = dfs("/", |p| t.view(&self.store, p));
        order.retain(|p| t.accessed.contains_key(p));
        let listed: alloc::collections::BTreeSet<String> = order.iter().cloned().collect();
        order.extend(t.accessed.keys().filter(|p| !listed.contains(*p)).cloned());
        let doomed = t.conflicts(&self.store);
        // Is the doom visible without help (a written node, or a read value that differs)?
        let visible = t.changes.values().any(Option::is_some)
            || t.accessed.iter().any(|(p, a)| {
                !t.changes.contains_key(p)
                    && a.base_generation != self.store.generation_of(p)
                    && !same_node(t.seen.get(p).and_then(Option::as_ref), self.store.get(p))
            });
        let mut need_marker = doomed && !visible;
        for p in order {
            let (access, node) = match t.changes.get(&p) {
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
            records.push(node_record(conn.0, t.id.0, access, &p, node));
        }
    }

    /// Rebuilds an engine from an image the reader accepted. The engine answers every request
    /// as the dumped one would; open transactions commit unless something they used changed.
    pub fn restore(image: Image, config: EngineConfig) -> Result<Engine, RestoreError> {
        let mut e = Engine::empty(config);
        let mut max_conn = 0u32;
        for (i, rec) in image.records.into_iter().enumerate() {
            let err = |reason: &str| RestoreError {
                record: i,
                reason: String::from(reason),
            };
            match rec {
                Record::End | Record::Global(_) => {}
                Record::GlobalQuota(q) => apply_quotas(&mut e.config.quotas, &q.domain),
                Record::Domain(d) => {
                    let domid = DomId(d.domid);
                    let dom = e.domain_entry(domid);
                    dom.features = d.features;
                    apply_quotas(&mut dom.quotas, &d.quotas);
                }
                Record::Connection(c) => {
                    max_conn = max_conn.max(c.conn_id);
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
                    e.restore_connection(c.conn_id, ring, read_only, &[], &c.data)
                        .map_err(&err)?;
                }
                Record::XenConnection(c) => {
                    max_conn = max_conn.max(c.conn_id);
                    let ring = match c.spec {
                        XenConnSpec::Ring {
                            domid,
                            tdomid,
                            evtchn,
                        } => Some((domid, tdomid, evtchn, u64::MAX)),
                        XenConnSpec::Socket { .. } => None,
                    };
                    e.restore_connection(c.conn_id, ring, false, &c.in_data, &c.out_data)
                        .map_err(&err)?;
                }
                Record::XenWatchExt(w) => {
                    let home = e
                        .conns
                        .get(&ConnId(w.watch.conn_id))
                        .map(|c| c.domid)
                        .ok_or_else(|| err("unknown connection"))?;
                    let mut watch =
                        restore_watch(home, &w.watch.wpath, &w.watch.token, &e.config.quotas)
                            .ok_or_else(|| err("invalid watch path"))?;
                    watch.depth = Some(u32::from(w.depth));
                    if let Some(c) = e.conns.get_mut(&ConnId(w.watch.conn_id)) {
                        c.watches.push(watch);
                    }
                }
                Record::XenGlobal(_) => {}
                Record::Watch(w) => {
                    let conn = e
                        .conns
                        .get(&ConnId(w.conn_id))
                        .ok_or_else(|| err("unknown connection"))?;
                    let watch = restore_watch(conn.domid, &w.wpath, &w.token, &e.config.quotas)
                        .ok_or_else(|| err("invalid watch path"))?;
                    if let Some(c) = e.conns.get_mut(&ConnId(w.conn_id)) {
                        c.watches.push(watch);
                    }
                }
                Record::Transaction(t) => {
                    let now = e.now_ms;
                    let c = e
                        .conns
                        .get_mut(&ConnId(t.conn_id))
                        .ok_or_else(|| err("unknown connection"))?;
                    if t.tx_id == 0
                        || c.transactions
                            .insert(t.tx_id, Transaction::new(TxId(t.tx_id), now))
                            .is_some()
                    {
                        return Err(err("invalid or duplicate transaction id"));
                    }
                }
                Record::Node(n) if n.conn_id == 0 => e.restore_committed(n).map_err(&err)?,
                Record::Node(n) => e.restore_pending(n).map_err(&err)?,
            }
        }
        e.finish_transactions();
        e.set_next_conn(max_conn.wrapping_add(1).max(1));
        Ok(e)
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
        if self.conns.insert(id, conn).is_some() {
            return Err("duplicate connection id");
        }
        Ok(())
    }

    fn restore_committed(&mut self, n: NodeData) -> Result<(), &'static str> {
        let perms = engine_perms(&n.perms).ok_or("a committed node without permissions")?;
        if n.path == INTRODUCE_DOMAIN || n.path == RELEASE_DOMAIN {
            let slot = usize::from(n.path == RELEASE_DOMAIN);
            if let Some(s) = self.special_perms.get_mut(slot) {
                *s = perms;
            }
            return Ok(());
        }
        let mut node = Node::new(perms);
        node.value = n.value;
        if n.path == "/" {
            if let Some(root) = self.store.get("/") {
                node.children = root.children.clone();
            }
            self.store.put(String::from("/"), node);
            return Ok(());
        }
        if self.store.contains(&n.path) {
            return Err("duplicate node");
        }
        if !self
            .store
            .link_new_child(path::parent(&n.path), path::basename(&n.path))
        {
            return Err("a node without its parent");
        }
        self.store.put(n.path, node);
        Ok(())
    }

    fn restore_pending(&mut self, n: NodeData) -> Result<(), &'static str> {
        let store = &self.store;
        let c = self
            .conns
            .get_mut(&ConnId(n.conn_id))
            .ok_or("unknown connection")?;
        let t = c
            .transactions
            .get_mut(&n.tx_id)
            .ok_or("unknown transaction")?;
        let committed = store.get(&n.path);
        let written = n.access & ACCESS_WRITTEN != 0;
        let read = n.access & ACCESS_READ != 0;
        let recorded = engine_perms(&n.perms).map(|perms| {
            let mut node = Node::new(perms);
            node.value = n.value.clone();
            node
        });
        let deleted = !written && !read;
        let same_as_committed = same_node(recorded.as_ref(), committed);
        // What the transaction saw when it first touched the node: for nodes only read that
        // is the record; for changed nodes, the committed node (the best knowledge left).
        let seen = if written || deleted {
            committed.cloned()
        } else {
            recorded.clone()
        };
        // A written node marked read means the transaction is doomed; a node only read
        // dooms it when what it saw is not what is committed (see `dump_transaction`).
        let doomed = if written {
            read
        } else {
            !deleted && !same_as_committed
        };
        let base_generation = if doomed {
            u64::MAX
        } else {
            store.generation_of(&n.path)
        };
        t.accessed.insert(
            n.path.clone(),
            NodeAccess {
                base_generation,
                read,
                written: written || deleted,
            },
        );
        t.seen.insert(n.path.clone(), seen);
        if written {
            // Children lists are derived (see `txn`): only creation order is needed.
            let node = recorded.ok_or("a written node without permissions")?;
            if committed.is_none() {
                t.note_created(&n.path);
            }
            t.changes.insert(n.path.clone(), Some(node));
        } else if deleted {
            t.changes.insert(n.path.clone(), None);
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
                    let old_perms = store.get(p).map(|n| n.perms.clone());
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
                            let own_change = match store.get(p) {
                                Some(old) => old.value != n.value || old.perms != n.perms,
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
                t.events = events;
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

/// Whether two optional nodes have the same value and permissions.
fn same_node(a: Option<&Node>, b: Option<&Node>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.value == b.value && a.perms == b.perms,
        (None, None) => true,
        _ => false,
    }
}

/// Whether some change lies strictly below `p`.
fn changed_below(changes: &BTreeMap<String, Option<Node>>, p: &str) -> bool {
    if p == "/" {
        return changes.keys().any(|k| k != "/");
    }
    let lo = alloc::format!("{p}/");
    let hi = alloc::format!("{p}0");
    changes.range(lo..hi).next().is_some()
}

fn restore_watch(home: DomId, wpath: &str, token: &str, quotas: &Quotas) -> Option<Watch> {
    if path::is_special(wpath) {
        return Some(Watch {
            path: String::from(wpath),
            token: String::from(token),
            relative: false,
            depth: None,
        });
    }
    let max = quotas.path_max();
    let full = path::canonicalize(wpath.as_bytes(), home, max).ok()?;
    Some(Watch {
        path: full,
        token: String::from(token),
        relative: !wpath.starts_with('/'),
        depth: None,
    })
}
