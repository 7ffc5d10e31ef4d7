//! A view of the tree for one request: the committed store, or a transaction's overlay on
//! it with every access recorded for the commit-time conflict check.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XsError;
use crate::store::{Node, Store};
use crate::txn::{PendingEvent, Transaction};

/// The store as one request sees it.
pub(crate) struct View<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) txn: Option<&'a mut Transaction>,
    /// `transaction-nodes` quota (0: none), applied to unprivileged transactions.
    pub(crate) max_txn_nodes: u32,
    /// Changes made outside a transaction, to fire once the request is done.
    pub(crate) events: Vec<PendingEvent>,
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
        }
    }

    /// The node without recording an access (error reporting, permission probes).
    pub(crate) fn peek(&self, path: &str) -> Option<Cow<'_, Node>> {
        match &self.txn {
            Some(t) => t.view(self.store, path),
            None => self.store.get(path).map(Cow::Borrowed),
        }
    }

    /// The node, recording a read in a transaction.
    pub(crate) fn read(&mut self, path: &str) -> Result<Option<Cow<'_, Node>>, XsError> {
        if let Some(t) = self.txn.as_deref_mut() {
            t.note(self.store, path, false, self.max_txn_nodes)?;
        }
        Ok(self.peek(path))
    }

    /// Writes a node (new generation on commit / now).
    pub(crate) fn write(&mut self, path: String, node: Node) -> Result<(), XsError> {
        match self.txn.as_deref_mut() {
            Some(t) => {
                let existed = t.view(self.store, &path).is_some();
                t.note(self.store, &path, true, self.max_txn_nodes)?;
                if !existed {
                    t.note_created(&path);
                }
                t.changes.insert(path, Some(node));
            }
            None => self.store.put(path, node),
        }
        Ok(())
    }

    /// Links a newly created `name` into `parent`'s children.
    pub(crate) fn link_new_child(&mut self, parent: &str, name: &str) -> Result<(), XsError> {
        if self.txn.is_none() {
            return if self.store.link_new_child(parent, name) {
                Ok(())
            } else {
                Err(XsError::Eio)
            };
        }
        let mut node = self
            .read(parent)?
            .map(Cow::into_owned)
            .ok_or(XsError::Eio)?;
        node.add_child(name);
        self.write(String::from(parent), node)
    }

    /// Unlinks `name` from `parent`'s children.
    pub(crate) fn unlink_child(&mut self, parent: &str, name: &str) -> Result<(), XsError> {
        if self.txn.is_none() {
            self.store.unlink_child(parent, name);
            return Ok(());
        }
        if let Some(mut node) = self.read(parent)?.map(Cow::into_owned) {
            node.remove_child(name);
            self.write(String::from(parent), node)?;
        }
        Ok(())
    }

    /// Deletes one node (children and the parent's list are the caller's business).
    pub(crate) fn delete(&mut self, path: &str) -> Result<(), XsError> {
        match self.txn.as_deref_mut() {
            Some(t) => {
                t.note(self.store, path, true, self.max_txn_nodes)?;
                t.changes.insert(String::from(path), None);
            }
            None => {
                self.store.remove(path);
            }
        }
        Ok(())
    }

    /// Records a watch event for the change of `path`.
    pub(crate) fn event(
        &mut self,
        path: &str,
        exact: bool,
        old_perms: Option<crate::perms::Perms>,
    ) {
        let ev = PendingEvent {
            path: String::from(path),
            exact,
            old_perms,
        };
        match self.txn.as_deref_mut() {
            Some(t) => t.events.push(ev),
            None => self.events.push(ev),
        }
    }

    /// Every path at or below `root` as this view sees it, children before parents
    /// (the order nodes are deleted in), found without recursion.
    pub(crate) fn subtree_postorder(&self, root: &str) -> Vec<String> {
        let mut pre = Vec::new();
        let mut stack = alloc::vec![String::from(root)];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.peek(&p) {
                for c in &n.children {
                    stack.push(crate::path::join(&p, c));
                }
                pre.push(p);
            }
        }
        pre.reverse();
        pre
    }
}
