//! Transactions: an overlay of pending changes over the store, the generations of every node
//! accessed, and the commit-time conflict check that yields `EAGAIN`.
//!
//! Values and permissions are snapshots taken at first access (C xenstored's semantics).
//! Children lists are derived: the committed list without the children this transaction
//! deleted, followed by the children it created, in creation order. A transaction whose
//! committed lists changed under it is doomed anyway (it accessed the parent), and the
//! derivation needs nothing but the store and the transaction's own changes, so a restored
//! transaction sees exactly what the original saw.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XsError;
use crate::ids::TxId;
use crate::perms::Perms;
use crate::store::{Node, Store};

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
    pub changes: BTreeMap<String, Option<Node>>,
    /// The committed node as it was when first accessed: reads stay isolated from later
    /// commits by others (which then make this transaction's commit fail with `EAGAIN`).
    pub seen: BTreeMap<String, Option<Node>>,
    /// Watch events to fire when committed.
    pub events: Vec<PendingEvent>,
    /// Paths created by this transaction, in creation order (for children lists).
    pub created: Vec<String>,
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
        }
    }

    /// The node as this transaction sees it, with its derived children list.
    pub fn view<'a>(&'a self, store: &'a Store, path: &str) -> Option<Cow<'a, Node>> {
        let base = match self.changes.get(path) {
            Some(change) => change.as_ref()?,
            None => match self.seen.get(path) {
                Some(snapshot) => snapshot.as_ref()?,
                None => {
                    let n = store.get(path)?;
                    if !self.touches_children_of(path) {
                        return Some(Cow::Borrowed(n));
                    }
                    n
                }
            },
        };
        let mut node = base.clone();
        node.children = self.children_of(store, path);
        Some(Cow::Owned(node))
    }

    fn touches_children_of(&self, path: &str) -> bool {
        self.changes
            .keys()
            .any(|p| p != "/" && crate::path::parent(p) == path)
    }

    /// The derived children list of `path` (see the module docs).
    pub fn children_of(&self, store: &Store, path: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(committed) = store.get(path) {
            for name in &committed.children {
                let child = crate::path::join(path, name);
                if !matches!(self.changes.get(&child), Some(None)) {
                    out.push(name.clone());
                }
            }
        }
        for p in &self.created {
            if p != "/"
                && crate::path::parent(p) == path
                && matches!(self.changes.get(p), Some(Some(_)))
            {
                let name = crate::path::basename(p);
                if !out.iter().any(|c| c == name) {
                    out.push(String::from(name));
                }
            }
        }
        out
    }

    /// Records that this transaction created `path`.
    pub fn note_created(&mut self, path: &str) {
        if !self.created.iter().any(|p| p == path) {
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
        self.accessed.insert(
            String::from(path),
            NodeAccess {
                base_generation: store.generation_of(path),
                read: !written,
                written,
            },
        );
        self.seen
            .insert(String::from(path), store.get(path).cloned());
        Ok(())
    }

    /// Whether committing now would conflict: some accessed node changed since.
    pub fn conflicts(&self, store: &Store) -> bool {
        self.accessed
            .iter()
            .any(|(p, a)| store.generation_of(p) != a.base_generation)
    }

    /// Applies the pending changes to the store (after [`Transaction::conflicts`] said no).
    pub fn apply(self, store: &mut Store) -> Vec<PendingEvent> {
        // Derive every children list before the store changes under the derivation.
        let mut writes: Vec<(String, Option<Node>)> = Vec::new();
        for (path, change) in &self.changes {
            let node = change.as_ref().map(|n| {
                let mut n = n.clone();
                n.children = self.children_of(store, path);
                n
            });
            writes.push((path.clone(), node));
        }
        for (path, change) in writes {
            match change {
                Some(node) => store.put(path, node),
                None => {
                    store.remove(&path);
                }
            }
        }
        self.events
    }
}
