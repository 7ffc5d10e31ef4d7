//! A view of the tree for one request: the committed store, or a transaction's overlay on
//! it with every access recorded for the commit-time conflict check.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::budget::Limit;
use crate::error::XsError;
use crate::path;
use crate::perms::Perms;
use crate::store::Store;
use crate::txn::{NodeView, PendingEvent, Transaction, TxNode};

/// The store as one request sees it.
pub(crate) struct View<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) txn: Option<&'a mut Transaction>,
    /// `transaction-nodes` quota (0: none), applied to unprivileged transactions.
    pub(crate) max_txn_nodes: u32,
    /// Changes made outside a transaction, to fire once the request is done.
    pub(crate) events: Vec<PendingEvent>,
    /// Paths some watch is set on exactly: below a removed subtree's root only those get an
    /// event (`None`: every removed node does).
    pub(crate) watched: Option<BTreeSet<String>>,
    /// Bytes the requesting domain holds beyond its nodes (transactions, watches, queued
    /// output), counted against its memory quota.
    pub(crate) extra_memory: usize,
    /// The limit a refusal ran into, for the operator's log.
    pub(crate) hit: Option<(Limit, String)>,
}

/// [`Transaction::note`], recording the `transaction-nodes` limit when it refuses.
fn note(
    t: &mut Transaction,
    store: &Store,
    path: &str,
    written: bool,
    max: u32,
    hit: &mut Option<(Limit, String)>,
) -> Result<(), XsError> {
    t.note(store, path, written, max).inspect_err(|_| {
        *hit = Some((
            Limit::Quota(crate::quota::QuotaKind::TransactionNodes),
            alloc::format!(
                "transaction {} accessed {} nodes: a request touching another was refused \
                 with ENOSPC (quota {max})",
                t.id.0,
                t.accessed.len()
            ),
        ));
    })
}

/// [`Transaction::note_removed`], recording the `transaction-nodes` limit when it refuses.
fn note_removal(
    t: &mut Transaction,
    store: &Store,
    path: &str,
    max: u32,
    hit: &mut Option<(Limit, String)>,
) -> Result<(), XsError> {
    t.note_removed(store, path, max).inspect_err(|_| {
        *hit = Some((
            Limit::Quota(crate::quota::QuotaKind::TransactionNodes),
            alloc::format!(
                "transaction {} accessed {} nodes: a request touching another was refused \
                 with ENOSPC (quota {max})",
                t.id.0,
                t.accessed.len()
            ),
        ));
    })
}

impl<'a> View<'a> {
    /// Builds a view.
    pub(crate) fn new(
        store: &'a mut Store,
        txn: Option<&'a mut Transaction>,
        max_txn_nodes: u32,
    ) -> View<'a> {
        View {
            store,
            txn,
            max_txn_nodes,
            events: Vec::new(),
            watched: None,
            extra_memory: 0,
            hit: None,
        }
    }

    /// The node without recording an access (error reporting, permission probes).
    pub(crate) fn peek(&self, path: &str) -> Option<NodeView<'_>> {
        match &self.txn {
            Some(t) => t.view(self.store, path),
            None => self.store.get(path).map(NodeView::Stored),
        }
    }

    /// Whether the node exists as this view sees it.
    pub(crate) fn exists(&self, path: &str) -> bool {
        self.peek(path).is_some()
    }

    /// Records a read of `path` in a transaction (`ENOSPC` past its node quota).
    pub(crate) fn note_read(&mut self, path: &str) -> Result<(), XsError> {
        if let Some(t) = self.txn.as_deref_mut() {
            note(
                t,
                self.store,
                path,
                false,
                self.max_txn_nodes,
                &mut self.hit,
            )?;
        }
        Ok(())
    }

    /// The node, recording a read in a transaction.
    pub(crate) fn read(&mut self, path: &str) -> Result<Option<NodeView<'_>>, XsError> {
        self.note_read(path)?;
        Ok(self.peek(path))
    }

    /// The names of the children of `path`, in order.
    pub(crate) fn children_names(&self, path: &str) -> Vec<String> {
        match &self.txn {
            Some(t) if t.touches_children_of(path) => t.children_of(self.store, path),
            _ => self.store.get(path).map_or_else(Vec::new, |n| {
                n.children().map(|c| String::from(c.name())).collect()
            }),
        }
    }

    /// Size of the children list (`DIRECTORY` payload) of `path`.
    pub(crate) fn children_bytes(&self, path: &str) -> usize {
        match &self.txn {
            Some(t) if t.touches_children_of(path) => t
                .children_of(self.store, path)
                .iter()
                .map(|c| c.len() + 1)
                .sum(),
            _ => self.store.get(path).map_or(0, |n| n.children_bytes()),
        }
    }

    /// The `DIRECTORY` payload of `path`: `E2BIG` when it exceeds `limit` bytes (checked
    /// before it is built when the committed list is what the view sees).
    pub(crate) fn children_payload(&self, path: &str, limit: usize) -> Result<Vec<u8>, XsError> {
        let names = match &self.txn {
            Some(t) if t.touches_children_of(path) => t.children_of(self.store, path),
            _ => {
                let Some(n) = self.store.get(path) else {
                    return Ok(Vec::new());
                };
                if n.children_bytes() > limit {
                    return Err(XsError::E2big);
                }
                return Ok(n.children_payload());
            }
        };
        let size: usize = names.iter().map(|c| c.len() + 1).sum();
        if size > limit {
            return Err(XsError::E2big);
        }
        let mut out = Vec::with_capacity(size);
        for c in names {
            crate::util::push_str0(&mut out, c.as_bytes());
        }
        Ok(out)
    }

    /// The generation of `path` as this view sees it (0 for a node a transaction created).
    pub(crate) fn generation(&self, path: &str) -> u64 {
        match &self.txn {
            Some(t)
                if matches!(t.changes.get(path), Some(Some(_))) && !self.store.contains(path) =>
            {
                0
            }
            _ => self.store.generation_of(path),
        }
    }

    /// Makes sure `n` nodes can be created (outside a transaction; inside one the overlay
    /// grows instead).
    pub(crate) fn reserve(&mut self, n: usize) -> Result<(), XsError> {
        if self.txn.is_none() {
            self.store.reserve(n)?;
        }
        Ok(())
    }

    /// Replaces the value and/or permissions of an existing node.
    pub(crate) fn set(
        &mut self,
        path: &str,
        value: Option<Vec<u8>>,
        perms: Option<Perms>,
    ) -> Result<(), XsError> {
        match self.txn.as_deref_mut() {
            Some(t) => {
                note(t, self.store, path, true, self.max_txn_nodes, &mut self.hit)?;
                let mut node = match t.view(self.store, path) {
                    Some(NodeView::Tx(n)) => n.clone(),
                    Some(NodeView::Stored(n)) => TxNode::of(n),
                    None => return Err(XsError::Eio),
                };
                if let Some(v) = value {
                    node.value = v;
                }
                if let Some(p) = perms {
                    node.perms = p;
                }
                t.change(String::from(path), Some(node));
                Ok(())
            }
            None => {
                let id = self.store.lookup(path).ok_or(XsError::Eio)?;
                self.store.set(id, value.as_deref(), perms.as_ref())
            }
        }
    }

    /// Creates `path` (its parent exists in this view) with `perms` and `value`.
    pub(crate) fn create(
        &mut self,
        path: &str,
        perms: &Perms,
        value: &[u8],
    ) -> Result<(), XsError> {
        let parent = path::parent(path);
        match self.txn.as_deref_mut() {
            Some(t) => {
                note(t, self.store, path, true, self.max_txn_nodes, &mut self.hit)?;
                t.note_created(path);
                t.change(
                    String::from(path),
                    Some(TxNode {
                        value: value.to_vec(),
                        perms: perms.clone(),
                    }),
                );
                self.touch_parent(parent)
            }
            None => {
                let pid = self.store.lookup(parent).ok_or(XsError::Eio)?;
                self.store
                    .create(pid, path::basename(path), perms, value)
                    .map(|_| ())
            }
        }
    }

    /// In a transaction: the parent's children list changed, so the parent is written.
    fn touch_parent(&mut self, parent: &str) -> Result<(), XsError> {
        let Some(t) = self.txn.as_deref_mut() else {
            return Ok(());
        };
        note(
            t,
            self.store,
            parent,
            true,
            self.max_txn_nodes,
            &mut self.hit,
        )?;
        if matches!(t.changes.get(parent), Some(Some(_))) {
            return Ok(());
        }
        let node = match t.view(self.store, parent) {
            Some(NodeView::Tx(n)) => n.clone(),
            Some(NodeView::Stored(n)) => TxNode::of(n),
            None => return Err(XsError::Eio),
        };
        t.change(String::from(parent), Some(node));
        Ok(())
    }

    /// Removes `path` and everything below it, children first, with an event for each (the
    /// root's fires watches at and above it, the others only watches set exactly on them),
    /// and unlinks it from its parent. `/` is refused.
    pub(crate) fn remove_subtree(&mut self, root: &str) -> Result<(), XsError> {
        if root == "/" {
            return Err(XsError::Einval);
        }
        match self.txn.as_deref_mut() {
            None => {
                let id = self.store.lookup(root).ok_or(XsError::Eio)?;
                // Removing frees memory and must work when it is short: an event that finds
                // no room is dropped (counted, logged) rather than failing the removal; the
                // removed root's own event is queued once the memory is back.
                let watched = self.watched.as_ref();
                let events = &mut self.events;
                let mut dropped = 0usize;
                let mut root_event = None;
                self.store.remove(id, |p, perms| {
                    let is_root = p == root;
                    if !(is_root || watched.is_none_or(|w| w.contains(p))) {
                        return;
                    }
                    let ev = PendingEvent {
                        path: String::from(p),
                        exact: !is_root,
                        old_perms: Some(perms.clone()),
                    };
                    if is_root {
                        root_event = Some(ev);
                    } else if events.try_reserve(1).is_ok() {
                        events.push(ev);
                    } else {
                        dropped += 1;
                    }
                });
                if let Some(ev) = root_event {
                    if self.events.try_reserve(1).is_ok() {
                        self.events.push(ev);
                    } else {
                        dropped += 1;
                    }
                }
                if dropped > 0 {
                    self.hit = Some((
                        Limit::Heap,
                        alloc::format!(
                            "removing {root}: {dropped} watch events dropped for want of memory"
                        ),
                    ));
                }
                Ok(())
            }
            Some(_) => {
                // The big allocations up front, fallibly: a failure leaves the transaction
                // as it was (the budget estimated the rest, which comes in small pieces).
                let all = self.subtree_postorder(root)?;
                if let Some(t) = self.txn.as_deref_mut() {
                    t.events
                        .try_reserve_exact(all.len())
                        .map_err(|_| XsError::Enomem)?;
                }
                for p in all {
                    let Some(t) = self.txn.as_deref_mut() else {
                        return Err(XsError::Eio);
                    };
                    let old = t.view(self.store, &p).map(|n| n.perms().clone());
                    note_removal(t, self.store, &p, self.max_txn_nodes, &mut self.hit)?;
                    let exact = p != root;
                    t.change(p.clone(), None);
                    t.queue_event(PendingEvent {
                        path: p,
                        exact,
                        old_perms: old,
                    });
                }
                self.touch_parent(path::parent(root))
            }
        }
    }

    /// Records a watch event for the change of `path`.
    pub(crate) fn event(&mut self, path: &str, exact: bool, old_perms: Option<Perms>) {
        let ev = PendingEvent {
            path: String::from(path),
            exact,
            old_perms,
        };
        match self.txn.as_deref_mut() {
            Some(t) => t.queue_event(ev),
            None => self.events.push(ev),
        }
    }

    /// Every path at or below `root` as this view sees it, children before parents
    /// (the order nodes are deleted in), found without recursion; `ENOMEM` when the list
    /// cannot grow.
    pub(crate) fn subtree_postorder(&self, root: &str) -> Result<Vec<String>, XsError> {
        let mut pre: Vec<String> = Vec::new();
        let mut stack = alloc::vec![String::from(root)];
        while let Some(p) = stack.pop() {
            if self.exists(&p) {
                // Children pushed in order, so the reversed pre-order lists them in order.
                let children = self.children_names(&p);
                stack
                    .try_reserve(children.len())
                    .map_err(|_| XsError::Enomem)?;
                for c in children {
                    stack.push(path::join(&p, &c));
                }
                pre.try_reserve(1).map_err(|_| XsError::Enomem)?;
                pre.push(p);
            }
        }
        pre.reverse();
        Ok(pre)
    }
}
