//! Transactions: an overlay of pending changes over the store, the generations of every node
//! accessed, and the commit-time conflict check that yields `EAGAIN`.
//!
//! Values and permissions are snapshots taken at first access (C xenstored's semantics).
//! Children lists are derived: the committed list without the children this transaction
//! deleted, followed by the children it created, in creation order. A transaction whose
//! committed lists changed under it is doomed anyway (it accessed the parent), and the
//! derivation needs nothing but the store and the transaction's own changes, so a restored
//! transaction sees exactly what the original saw.
//!
//! Every byte a transaction holds is counted in [`Transaction::bytes`], which the engine
//! charges to the domain's memory quota.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XsError;
use crate::ids::TxId;
use crate::path;
use crate::perms::Perms;
use crate::store::{NodeRef, Packed, Store};

/// How a transaction used one node (the image format's `access` bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeAccess {
    /// Generation of the committed node when first accessed (0: it did not exist).
    pub base_generation: u64,
    /// The node was read.
    pub read: bool,
    /// The node was written or deleted.
    pub written: bool,
}

/// A node as a transaction holds it; its children are derived (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxNode {
    /// The value.
    pub value: Vec<u8>,
    /// The permissions, owner first.
    pub perms: Perms,
}

impl TxNode {
    /// A copy of a stored node.
    pub fn of(n: NodeRef<'_>) -> TxNode {
        TxNode {
            value: n.value().to_vec(),
            perms: n.perms().clone(),
        }
    }

    /// Bytes it holds, with a path of `path_len` bytes, as the transaction counts them.
    pub fn bytes(&self, path_len: usize) -> usize {
        path_len + self.value.len() + 4 * self.perms.entries().len() + ENTRY_OVERHEAD
    }
}

/// Bytes a transaction is charged per map entry beyond its path, value and permissions.
pub const ENTRY_OVERHEAD: usize = 96;

/// A node as a request sees it: committed, or the transaction's copy.
#[derive(Clone, Copy, Debug)]
pub enum NodeView<'a> {
    /// The committed node.
    Stored(NodeRef<'a>),
    /// The transaction's copy (written by it, or as it was when first read).
    Tx(&'a TxNode),
}

impl<'a> NodeView<'a> {
    /// The value.
    pub fn value(&self) -> &'a [u8] {
        match self {
            NodeView::Stored(n) => n.value(),
            NodeView::Tx(n) => &n.value,
        }
    }

    /// The permissions.
    pub fn perms(&self) -> &'a Perms {
        match self {
            NodeView::Stored(n) => n.perms(),
            NodeView::Tx(n) => &n.perms,
        }
    }
}

/// A watch event queued inside a transaction, fired on commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    /// The changed path.
    pub path: String,
    /// Only watches exactly on `path` fire (descendants of a removed subtree).
    pub exact: bool,
    /// Permissions the node had before the change, for the readability check.
    pub old_perms: Option<Perms>,
}

/// One open transaction of a connection.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// The id handed to the client.
    pub id: TxId,
    /// Engine time when it started.
    pub started_ms: u64,
    /// Every node accessed, with its base generation.
    pub accessed: BTreeMap<String, NodeAccess>,
    /// Pending changes: `Some` written, `None` deleted.
    pub changes: BTreeMap<String, Option<TxNode>>,
    /// The committed node as it was when first accessed: reads stay isolated from later
    /// commits by others (which then make this transaction's commit fail with `EAGAIN`).
    pub seen: BTreeMap<String, Option<TxNode>>,
    /// Watch events to fire when committed.
    pub events: Vec<PendingEvent>,
    /// Paths created by this transaction, in creation order (for children lists).
    pub created: Vec<String>,
    /// Bytes held by the maps above (an estimate that only grows until the end).
    pub bytes: usize,
}

impl Transaction {
    /// A new, empty transaction.
    pub fn new(id: TxId, started_ms: u64) -> Transaction {
        Transaction {
            id,
            started_ms,
            accessed: BTreeMap::new(),
            changes: BTreeMap::new(),
            seen: BTreeMap::new(),
            events: Vec::new(),
            created: Vec::new(),
            bytes: 256,
        }
    }

    /// The node as this transaction sees it (children: [`Transaction::children_of`]).
    pub fn view<'a>(&'a self, store: &'a Store, path: &str) -> Option<NodeView<'a>> {
        match self.changes.get(path) {
            Some(change) => change.as_ref().map(NodeView::Tx),
            None => match self.seen.get(path) {
                Some(snapshot) => snapshot.as_ref().map(NodeView::Tx),
                None => store.get(path).map(NodeView::Stored),
            },
        }
    }

    /// The derived children list of `path` (see the module docs).
    pub fn children_of(&self, store: &Store, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(committed) = store.get(path) {
            for c in committed.children() {
                let child = path::join(path, c.name());
                if !matches!(self.changes.get(&child), Some(None)) {
                    out.push(String::from(c.name()));
                }
            }
        }
        for p in &self.created {
            if p != "/" && path::parent(p) == path && matches!(self.changes.get(p), Some(Some(_))) {
                let name = path::basename(p);
                if !out.iter().any(|c| c == name) {
                    out.push(String::from(name));
                }
            }
        }
        out
    }

    /// Whether this transaction changed the children of `path` (else the committed list is
    /// what it sees).
    pub fn touches_children_of(&self, path: &str) -> bool {
        let lo = if path == "/" {
            String::from("/")
        } else {
            alloc::format!("{path}/")
        };
        self.changes
            .range::<str, _>((
                core::ops::Bound::Included(lo.as_str()),
                core::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(lo.as_str()))
            .any(|(k, _)| k != "/" && path::parent(k) == path)
    }

    /// Records that this transaction created `path`.
    pub fn note_created(&mut self, path: &str) {
        if !self.created.iter().any(|p| p == path) {
            self.bytes += path.len() + 32;
            self.created.push(String::from(path));
        }
    }

    /// Records an access, failing with `ENOSPC` past `max_nodes` accessed nodes (0: no limit).
    pub fn note(
        &mut self,
        store: &Store,
        path: &str,
        written: bool,
        max_nodes: u32,
    ) -> Result<(), XsError> {
        if let Some(a) = self.accessed.get_mut(path) {
            a.read |= !written;
            a.written |= written;
            return Ok(());
        }
        if max_nodes != 0 && self.accessed.len() >= max_nodes as usize {
            return Err(XsError::Enospc);
        }
        let committed = store.get(path);
        self.accessed.insert(
            String::from(path),
            NodeAccess {
                base_generation: committed.map_or(0, |n| n.generation()),
                read: !written,
                written,
            },
        );
        let snapshot = committed.map(TxNode::of);
        self.bytes += snapshot
            .as_ref()
            .map_or(path.len() + ENTRY_OVERHEAD, |n| n.bytes(path.len()))
            + path.len()
            + 48;
        self.seen.insert(String::from(path), snapshot);
        Ok(())
    }

    /// Records the access of a node this transaction is about to remove (see
    /// [`Transaction::note`]): nothing of the node is copied, since the removal's change hides
    /// it from every later read in the transaction.
    pub fn note_removed(
        &mut self,
        store: &Store,
        path: &str,
        max_nodes: u32,
    ) -> Result<(), XsError> {
        if let Some(a) = self.accessed.get_mut(path) {
            a.written = true;
            return Ok(());
        }
        if max_nodes != 0 && self.accessed.len() >= max_nodes as usize {
            return Err(XsError::Enospc);
        }
        let generation = store.get(path).map_or(0, |n| n.generation());
        self.accessed.insert(
            String::from(path),
            NodeAccess {
                base_generation: generation,
                read: false,
                written: true,
            },
        );
        self.bytes += path.len() + 48;
        Ok(())
    }

    /// Stores a pending change of `path`.
    pub fn change(&mut self, path: String, node: Option<TxNode>) {
        self.bytes += node
            .as_ref()
            .map_or(path.len() + ENTRY_OVERHEAD, |n| n.bytes(path.len()));
        self.changes.insert(path, node);
    }

    /// Queues a watch event for the commit.
    pub fn queue_event(&mut self, ev: PendingEvent) {
        self.bytes += ev.path.len() + 64;
        self.events.push(ev);
    }

    /// Whether committing now would conflict: some accessed node changed since.
    pub fn conflicts(&self, store: &Store) -> bool {
        self.accessed
            .iter()
            .any(|(p, a)| store.generation_of(p) != a.base_generation)
    }

    /// Applies the pending changes to the store (after [`Transaction::conflicts`] said no).
    /// Everything that can fail (memory) is done before the store changes, so `ENOMEM`
    /// leaves the store as it was.
    pub fn apply(self, store: &mut Store) -> Result<Vec<PendingEvent>, XsError> {
        // Names and values first, fallibly.
        let mut writes: Vec<(&str, Packed, &Perms)> = Vec::new();
        writes
            .try_reserve_exact(self.changes.len())
            .map_err(|_| XsError::Enomem)?;
        let mut creations = 0usize;
        for (p, change) in &self.changes {
            if let Some(n) = change {
                writes.push((
                    p.as_str(),
                    Packed::new(path::basename(p), &n.value)?,
                    &n.perms,
                ));
                if !store.contains(p) {
                    creations += 1;
                }
            }
        }
        store.reserve(creations)?;
        // Creations in creation order (parents before children, children in the order the
        // transaction made them), then the other writes, then deletions.
        let mut packed: BTreeMap<&str, (Packed, &Perms)> = writes
            .into_iter()
            .map(|(p, d, perms)| (p, (d, perms)))
            .collect();
        for p in &self.created {
            if store.contains(p) {
                continue;
            }
            let Some((data, perms)) = packed.remove(p.as_str()) else {
                continue;
            };
            let parent = store.lookup(path::parent(p)).ok_or(XsError::Eio)?;
            store.create_packed(parent, data, perms)?;
        }
        for (p, (data, perms)) in packed {
            match store.lookup(p) {
                Some(id) => store.set_packed(id, Some(data), Some(perms))?,
                None => {
                    let parent = store.lookup(path::parent(p)).ok_or(XsError::Eio)?;
                    store.create_packed(parent, data, perms)?;
                }
            }
        }
        for (p, change) in &self.changes {
            if change.is_none() {
                if let Some(id) = store.lookup(p) {
                    store.remove(id, |_, _| {});
                }
            }
        }
        Ok(self.events)
    }
}
