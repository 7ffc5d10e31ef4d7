//! Node requests: READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART, GET_PERMS, SET_PERMS.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use crate::engine::{ok, Engine, HandlerResult};
use crate::error::XsError;
use crate::ids::{ConnId, TxId};
use crate::path;
use crate::perms::{Access, Perms, Requester};
use crate::quota::{QuotaKind, Quotas};
use crate::store::Node;
use crate::util::{one_arg, split_strings};
use crate::view::View;
use crate::wire::PAYLOAD_MAX;

/// Checks that `path` exists and `who` has `need` on it. Errors follow C xenstored's
/// `errno_from_parents`: when the nearest existing ancestor does not grant `need` the
/// answer is `EACCES`, so nothing is revealed about nodes one cannot see.
fn check_access(
    view: &mut View<'_>,
    who: &Requester,
    path: &str,
    need: Access,
) -> Result<(), XsError> {
    let err = match view.read(path)? {
        Some(n) if n.perms.access_for(who).contains(need) => return Ok(()),
        Some(_) => XsError::Eacces,
        None => XsError::Enoent,
    };
    let mut cur = path;
    let ancestor = loop {
        if cur == "/" {
            break None;
        }
        cur = path::parent(cur);
        if let Some(n) = view.peek(cur) {
            break Some(n.perms.access_for(who));
        }
    };
    match ancestor {
        Some(a) if a.intersects(need) => Err(err),
        _ => Err(XsError::Eacces),
    }
}

/// Bytes a node is checked against the `node-size` quota with.
fn node_size(node: &Node) -> usize {
    let children: usize = node.children.iter().map(|c| c.len() + 1).sum();
    node.value.len() + children + 4 * node.perms.entries().len()
}

impl Engine {
    /// Runs `f` on the view of connection `id` / transaction `tx`, then fires the watches of
    /// non-transactional changes.
    fn with_view<R>(
        &mut self,
        id: ConnId,
        tx: TxId,
        who: &Requester,
        f: impl FnOnce(&mut View<'_>) -> R,
    ) -> R {
        let max = if who.privileged {
            0
        } else {
            self.quotas_for(who.domid).get(QuotaKind::TransactionNodes)
        };
        let txn = if tx == TxId::NONE {
            None
        } else {
            self.conns
                .get_mut(&id)
                .and_then(|c| c.transactions.get_mut(&tx.0))
        };
        let mut view = View::new(&mut self.store, txn, max);
        let r = f(&mut view);
        let events = core::mem::take(&mut view.events);
        drop(view);
        if !events.is_empty() {
            self.fire(&events);
        }
        r
    }

    fn canonical(&self, who: &Requester, raw: &[u8]) -> Result<String, XsError> {
        path::canonicalize(raw, who.domid, self.quotas_for(who.domid).path_max())
    }

    pub(crate) fn op_read(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let name = self.canonical(&who, one_arg(p).ok_or(XsError::Einval)?)?;
        self.with_view(id, tx, &who, |v| {
            check_access(v, &who, &name, Access::READ)?;
            Ok(v.peek(&name).map(|n| n.value.clone()))
        })
    }

    pub(crate) fn op_directory(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let name = self.canonical(&who, one_arg(p).ok_or(XsError::Einval)?)?;
        self.with_view(id, tx, &who, |v| {
            check_access(v, &who, &name, Access::READ)?;
            Ok(v.peek(&name).map(|n| n.children_payload()))
        })
    }

    pub(crate) fn op_directory_part(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let args = split_strings(p);
        let (Some(raw), Some(off), 2) = (args.first(), args.get(1), args.len()) else {
            return Err(XsError::Einval);
        };
        let name = self.canonical(&who, raw)?;
        let off = crate::util::parse_decimal(off).ok_or(XsError::Einval)?;
        let off = usize::try_from(off).map_err(|_| XsError::Einval)?;
        self.with_view(id, tx, &who, |v| {
            check_access(v, &who, &name, Access::READ)?;
            let node = v.peek(&name).ok_or(XsError::Enoent)?;
            let children = node.children_payload();
            let mut out = Vec::new();
            crate::util::push_str0(&mut out, alloc::format!("{}", node.generation).as_bytes());
            let Some(rest) = children.get(off..).filter(|r| !r.is_empty()) else {
                // Offset behind the list: the generation and an empty string.
                out.push(0);
                return Ok(Some(out));
            };
            let maxlen = PAYLOAD_MAX - out.len() - 1;
            let mut len = 0usize;
            for name in rest.split_inclusive(|&b| b == 0) {
                if len + name.len() > maxlen {
                    break;
                }
                len += name.len();
            }
            out.extend_from_slice(rest.get(..len).unwrap_or(&[]));
            if len == rest.len() {
                out.push(0);
            }
            Ok(Some(out))
        })
    }

    pub(crate) fn op_get_perms(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let raw = one_arg(p).ok_or(XsError::Einval)?;
        if raw.first() == Some(&b'@') {
            return Ok(Some(self.special_perms(raw)?.to_payload()));
        }
        let name = self.canonical(&who, raw)?;
        self.with_view(id, tx, &who, |v| {
            check_access(v, &who, &name, Access::READ)?;
            Ok(v.peek(&name).map(|n| n.perms.to_payload()))
        })
    }

    fn special_perms(&self, raw: &[u8]) -> Result<&Perms, XsError> {
        match raw {
            b"@introduceDomain" => Ok(&self.special_perms[0]),
            b"@releaseDomain" => Ok(&self.special_perms[1]),
            _ => Err(XsError::Enoent),
        }
    }

    pub(crate) fn op_write(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let nul = p.iter().position(|&b| b == 0).ok_or(XsError::Einval)?;
        let (raw, rest) = p.split_at(nul);
        let value = rest.get(1..).unwrap_or(&[]).to_vec();
        let name = self.canonical(&who, raw)?;
        let quotas = self.quotas_for(who.domid);
        self.with_view(id, tx, &who, |v| {
            match check_access(v, &who, &name, Access::WRITE) {
                Ok(()) => {
                    let mut node = v.peek(&name).map(Cow::into_owned).ok_or(XsError::Eio)?;
                    let old_cost = node.cost(&name);
                    node.value = value;
                    check_node_quotas(v, &who, &quotas, &name, &node, old_cost)?;
                    v.write(name.clone(), node)?;
                }
                Err(XsError::Enoent) => create_node(v, &who, &quotas, &name, value)?,
                Err(e) => return Err(e),
            }
            v.event(&name, false, None);
            ok()
        })
    }

    pub(crate) fn op_mkdir(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let name = self.canonical(&who, one_arg(p).ok_or(XsError::Einval)?)?;
        let quotas = self.quotas_for(who.domid);
        self.with_view(id, tx, &who, |v| {
            match check_access(v, &who, &name, Access::WRITE) {
                Ok(()) => {}
                Err(XsError::Enoent) => {
                    create_node(v, &who, &quotas, &name, Vec::new())?;
                    v.event(&name, false, None);
                }
                Err(e) => return Err(e),
            }
            ok()
        })
    }

    pub(crate) fn op_rm(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let name = self.canonical(&who, one_arg(p).ok_or(XsError::Einval)?)?;
        self.with_view(id, tx, &who, |v| {
            match check_access(v, &who, &name, Access::WRITE) {
                Ok(()) => {}
                Err(XsError::Enoent) => {
                    // Not there: fine if the parent exists.
                    return if v.peek(path::parent(&name)).is_some() {
                        ok()
                    } else {
                        Err(XsError::Enoent)
                    };
                }
                Err(e) => return Err(e),
            }
            if name == "/" {
                return Err(XsError::Einval);
            }
            remove_subtree(v, &name)?;
            ok()
        })
    }

    pub(crate) fn op_set_perms(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let args = split_strings(p);
        let (Some(raw), Some(items)) = (args.first(), args.get(1..)) else {
            return Err(XsError::Einval);
        };
        if items.is_empty() {
            return Err(XsError::Einval);
        }
        let quotas = self.quotas_for(who.domid);
        if !who.privileged && quotas.exceeded(QuotaKind::Permissions, items.len()) {
            return Err(XsError::Enospc);
        }
        let perms = Perms::parse_list(items.iter().copied())?;
        if raw.first() == Some(&b'@') {
            let slot = match *raw {
                b"@introduceDomain" => 0,
                b"@releaseDomain" => 1,
                _ => return Err(XsError::Enoent),
            };
            let current = self.special_perms.get(slot).ok_or(XsError::Eio)?;
            if !current
                .access_for(&who)
                .contains(Access::WRITE.union(Access::OWNER))
            {
                return Err(XsError::Eacces);
            }
            if let Some(s) = self.special_perms.get_mut(slot) {
                *s = perms;
            }
            return ok();
        }
        let name = self.canonical(&who, raw)?;
        self.with_view(id, tx, &who, |v| {
            check_access(v, &who, &name, Access::WRITE.union(Access::OWNER))?;
            let mut node = v.peek(&name).map(Cow::into_owned).ok_or(XsError::Eio)?;
            if !who.privileged && perms.owner() != node.perms.owner() {
                return Err(XsError::Eperm);
            }
            let old = core::mem::replace(&mut node.perms, perms);
            v.write(name.clone(), node)?;
            v.event(&name, false, Some(old));
            ok()
        })
    }

    /// Deletes every node owned by `domid` and removes its permission entries elsewhere.
    /// Returns the watch events of the deletions.
    pub(crate) fn purge_domain_nodes(
        &mut self,
        domid: crate::ids::DomId,
    ) -> Vec<crate::txn::PendingEvent> {
        let owned: Vec<String> = self
            .store
            .iter()
            .filter(|(p, n)| p.as_str() != "/" && n.perms.owner() == domid)
            .map(|(p, _)| p.clone())
            .collect();
        let mut view = View::new(&mut self.store, None, 0);
        for p in owned {
            // An ancestor may have taken it already.
            if view.peek(&p).is_some() {
                let _ = remove_subtree(&mut view, &p);
            }
        }
        let events = core::mem::take(&mut view.events);
        drop(view);
        let stale: Vec<String> = self
            .store
            .iter()
            .filter(|(_, n)| n.perms.entries().iter().skip(1).any(|e| e.domid == domid))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            if let Some(mut n) = self.store.get(&p).cloned() {
                n.perms.forget_domain(domid);
                self.store.put(p, n);
            }
        }
        for s in self.special_perms.iter_mut() {
            s.forget_domain(domid);
        }
        events
    }
}

/// Removes `name` and everything below it, children first, and unlinks it from its parent.
fn remove_subtree(v: &mut View<'_>, name: &str) -> Result<(), XsError> {
    for p in v.subtree_postorder(name) {
        let old = v.peek(&p).map(|n| n.perms.clone());
        v.delete(&p)?;
        v.event(&p, p != name, old);
    }
    v.unlink_child(path::parent(name), path::basename(name))
}

/// The `node-size` and `memory` checks for unprivileged writers.
fn check_node_quotas(
    v: &View<'_>,
    who: &Requester,
    quotas: &Quotas,
    name: &str,
    node: &Node,
    old_cost: usize,
) -> Result<(), XsError> {
    if who.privileged {
        return Ok(());
    }
    if quotas.exceeded(QuotaKind::NodeSize, node_size(node)) {
        return Err(XsError::Enospc);
    }
    let used = v.store.usage(who.domid).memory;
    let after = used
        .saturating_sub(old_cost)
        .saturating_add(node.cost(name));
    if after > used && quotas.exceeded(QuotaKind::Memory, after) {
        return Err(XsError::Enomem);
    }
    Ok(())
}

/// Creates `name` and any missing parents. New nodes inherit their parent's permissions;
/// an unprivileged creator becomes the owner (C xenstored's `construct_node`).
fn create_node(
    v: &mut View<'_>,
    who: &Requester,
    quotas: &Quotas,
    name: &str,
    value: Vec<u8>,
) -> Result<(), XsError> {
    let mut missing: Vec<&str> = alloc::vec![name];
    let mut cur = path::parent(name);
    while v.peek(cur).is_none() {
        if cur == "/" {
            return Err(XsError::Eio);
        }
        missing.push(cur);
        cur = path::parent(cur);
    }
    // Everything is checked before anything is written, so a refused request leaves no
    // half-created parents behind (XSA-414/415).
    let mut perms = v.peek(cur).ok_or(XsError::Eio)?.perms.clone();
    if !who.privileged {
        perms.set_owner(who.domid);
        let owned = v.store.usage(who.domid).nodes;
        if quotas.exceeded(QuotaKind::Nodes, owned.saturating_add(missing.len())) {
            return Err(XsError::Enospc);
        }
        let mut node = Node::new(perms.clone());
        node.value = value.clone();
        check_node_quotas(v, who, quotas, name, &node, 0)?;
        let extra: usize = missing
            .iter()
            .skip(1)
            .map(|p| Node::new(perms.clone()).cost(p))
            .sum();
        let used = v.store.usage(who.domid).memory;
        if quotas.exceeded(
            QuotaKind::Memory,
            used.saturating_add(node.cost(name)).saturating_add(extra),
        ) {
            return Err(XsError::Enomem);
        }
    }
    let mut value = Some(value);
    let mut parent_path = String::from(cur);
    for &p in missing.iter().rev() {
        v.link_new_child(&parent_path, path::basename(p))?;
        let mut node = Node::new(perms.clone());
        if p == name {
            node.value = value.take().unwrap_or_default();
        }
        v.write(String::from(p), node)?;
        parent_path = String::from(p);
    }
    Ok(())
}
