//! Node requests: READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART, GET_PERMS, SET_PERMS.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::engine::{ok, Engine, HandlerResult};
use crate::error::XsError;
use crate::ids::{ConnId, DomId, TxId};
use crate::path;
use crate::perms::{Access, Perms, Requester};
use crate::quota::{QuotaKind, Quotas};
use crate::store::{cost_of, NodeId};
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
        Some(n) if n.perms().access_for(who).contains(need) => return Ok(()),
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
            break Some(n.perms().access_for(who));
        }
    };
    match ancestor {
        Some(a) if a.intersects(need) => Err(err),
        _ => Err(XsError::Eacces),
    }
}

/// The `node-size` quota's measure (C 4.20's `calc_node_acc_size` without its header): value,
/// children list and 8 bytes per permission, plus 16.
fn node_size(value_len: usize, children_bytes: usize, n_perms: usize) -> usize {
    16 + 8 * n_perms + value_len + children_bytes
}

impl Engine {
    /// Runs `f` on the view of connection `id` / transaction `tx`, then fires the watches of
    /// non-transactional changes.
    pub(crate) fn with_view<R>(
        &mut self,
        id: ConnId,
        tx: TxId,
        who: &Requester,
        watched: Option<BTreeSet<String>>,
        f: impl FnOnce(&mut View<'_>) -> R,
    ) -> R {
        let max = if who.privileged {
            0
        } else {
            self.quotas_for(who.domid).get(QuotaKind::TransactionNodes)
        };
        let extra = if who.privileged {
            0
        } else {
            self.domain_extra_memory(who.domid)
        };
        let txn = if tx == TxId::NONE {
            None
        } else {
            self.conns
                .get_mut(&id)
                .and_then(|c| c.transactions.get_mut(&tx.0))
        };
        let mut view = View::new(&mut self.store, txn, max);
        view.watched = watched;
        view.extra_memory = extra;
        let r = f(&mut view);
        let events = core::mem::take(&mut view.events);
        let hit = view.hit.take();
        drop(view);
        if let Some((limit, detail)) = hit {
            self.limit_hit(who.domid, limit, detail);
        }
        if !events.is_empty() {
            self.fire(&events);
        }
        r
    }

    /// A client's path made absolute and checked (C 4.20's `canonicalize`): the `path-max`
    /// quota limits unprivileged callers only (all callers with
    /// [`crate::engine::EngineConfig::path_max_for_privileged`], as C 4.17).
    pub(crate) fn canonical(&self, who: &Requester, raw: &[u8]) -> Result<String, XsError> {
        path::canonicalize(raw, who.domid, self.path_limit(who))
    }

    /// The `path-max` limit for `who` (`None`: privileged, only the payload limits it).
    pub(crate) fn path_limit(&self, who: &Requester) -> Option<usize> {
        (!who.privileged || self.config.path_max_for_privileged)
            .then(|| self.quotas_for(who.domid).path_max())
    }

    /// Every path a watch is set on exactly (for the events of a removed subtree).
    pub(crate) fn watched_paths(&self) -> BTreeSet<String> {
        self.conns
            .values()
            .flat_map(|c| c.watches.iter())
            .filter(|w| !path::is_special(&w.path))
            .map(|w| w.path.clone())
            .collect()
    }

    pub(crate) fn op_read(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let name = self.canonical(&who, one_arg(p).ok_or(XsError::Einval)?)?;
        self.with_view(id, tx, &who, None, |v| {
            check_access(v, &who, &name, Access::READ)?;
            Ok(v.peek(&name).map(|n| n.value().to_vec()))
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
        self.with_view(id, tx, &who, None, |v| {
            check_access(v, &who, &name, Access::READ)?;
            v.children_payload(&name, PAYLOAD_MAX).map(Some)
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
        self.with_view(id, tx, &who, None, |v| {
            check_access(v, &who, &name, Access::READ)?;
            if !v.exists(&name) {
                return Err(XsError::Enoent);
            }
            let mut out = Vec::new();
            crate::util::push_str0(
                &mut out,
                alloc::format!("{}", v.generation(&name)).as_bytes(),
            );
            let maxlen = PAYLOAD_MAX - out.len() - 1;
            // Whole names from byte offset `off` of the list, as many as fit.
            let mut at = 0usize;
            let mut len = 0usize;
            let mut ended = true;
            for c in v.children_names(&name) {
                let size = c.len() + 1;
                if at >= off {
                    if len + size > maxlen {
                        ended = false;
                        break;
                    }
                    crate::util::push_str0(&mut out, c.as_bytes());
                    len += size;
                }
                at += size;
            }
            if ended {
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
            return Ok(Some(self.special_perms(&who, raw)?.to_payload()));
        }
        let name = self.canonical(&who, raw)?;
        self.with_view(id, tx, &who, None, |v| {
            check_access(v, &who, &name, Access::READ)?;
            Ok(v.peek(&name).map(|n| n.perms().to_payload()))
        })
    }

    /// The permissions of a special node (since C 4.18 they are nodes below `/`: an unknown
    /// `@name` is a missing node, `EACCES` for those who may not read `/`).
    fn special_perms(&self, who: &Requester, raw: &[u8]) -> Result<&Perms, XsError> {
        path::validate_chars(raw)?;
        match raw {
            b"@introduceDomain" => Ok(&self.special_perms[0]),
            b"@releaseDomain" => Ok(&self.special_perms[1]),
            _ => Err(self.missing_below_root(who)),
        }
    }

    /// The error for a missing node whose parent is `/`.
    fn missing_below_root(&self, who: &Requester) -> XsError {
        match self.store.root() {
            Some(r) if r.perms().access_for(who).intersects(Access::READ) => XsError::Enoent,
            _ => XsError::Eacces,
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
        let value = rest.get(1..).unwrap_or(&[]);
        let name = self.canonical(&who, raw)?;
        let quotas = self.quotas_for(who.domid);
        self.with_view(id, tx, &who, None, |v| {
            match check_access(v, &who, &name, Access::WRITE) {
                Ok(()) => {
                    let node = v.peek(&name).ok_or(XsError::Eio)?;
                    let n_perms = node.perms().entries().len();
                    let old_value = node.value().len();
                    let children = v.children_bytes(&name);
                    check_node_quotas(
                        v,
                        &who,
                        &quotas,
                        name.len(),
                        value.len(),
                        n_perms,
                        children,
                        old_value,
                    )?;
                    v.set(&name, Some(value.to_vec()), None)?;
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
        self.with_view(id, tx, &who, None, |v| {
            match check_access(v, &who, &name, Access::WRITE) {
                Ok(()) => {}
                Err(XsError::Enoent) => {
                    create_node(v, &who, &quotas, &name, &[])?;
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
        let watched = (tx == TxId::NONE).then(|| self.watched_paths());
        self.with_view(id, tx, &who, watched, |v| {
            match check_access(v, &who, &name, Access::WRITE) {
                Ok(()) => {}
                Err(XsError::Enoent) => {
                    // Not there: fine if the parent exists.
                    return if v.exists(path::parent(&name)) {
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
            v.remove_subtree(&name)?;
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
            self.limit_hit(
                who.domid,
                crate::budget::Limit::Quota(QuotaKind::Permissions),
                alloc::format!(
                    "{} permissions asked; quota {}",
                    items.len(),
                    quotas.get(QuotaKind::Permissions)
                ),
            );
            return Err(XsError::Enospc);
        }
        let mut perms = Perms::parse_list(items.iter().copied())?;
        // As C xenstored 4.22: DOMID_ANY entries count only from a domain with the feature.
        if self.features_of(who.domid) & crate::ring::FEATURE_DOMID_ANY == 0 {
            perms.drop_any();
        }
        // As C xenstored: the owner must be a domain that exists (checked before the node).
        if !self.domain_exists(perms.owner()) {
            return Err(XsError::Enoent);
        }
        if raw.first() == Some(&b'@') {
            path::validate_chars(raw)?;
            let slot = match *raw {
                b"@introduceDomain" => 0,
                b"@releaseDomain" => 1,
                _ => return Err(self.missing_below_root(&who)),
            };
            let current = self.special_perms.get(slot).ok_or(XsError::Eio)?;
            if !current
                .access_for(&who)
                .contains(Access::WRITE.union(Access::OWNER))
            {
                return Err(XsError::Eacces);
            }
            if !who.privileged && perms.owner() != current.owner() {
                return Err(XsError::Eperm);
            }
            if let Some(s) = self.special_perms.get_mut(slot) {
                *s = perms;
            }
            return ok();
        }
        let name = self.canonical(&who, raw)?;
        self.with_view(id, tx, &who, None, |v| {
            check_access(v, &who, &name, Access::WRITE.union(Access::OWNER))?;
            let node = v.peek(&name).ok_or(XsError::Eio)?;
            if !who.privileged && perms.owner() != node.perms().owner() {
                return Err(XsError::Eperm);
            }
            let old = node.perms().clone();
            v.set(&name, None, Some(perms))?;
            v.event(&name, false, Some(old));
            ok()
        })
    }

    /// Deletes every node owned by `domid` and removes its permission entries elsewhere.
    /// Returns the watch events of the deletions.
    pub(crate) fn purge_domain_nodes(&mut self, domid: DomId) -> Vec<crate::txn::PendingEvent> {
        // Owned nodes in tree order (ancestors first): removing an ancestor takes the rest.
        let mut owned: Vec<String> = Vec::new();
        self.store.walk(NodeId::ROOT, |p, n| {
            if p != "/" && n.perms().owner() == domid {
                owned.push(String::from(p));
            }
        });
        let watched = self.watched_paths();
        let mut view = View::new(&mut self.store, None, 0);
        view.watched = Some(watched);
        for p in owned {
            // An ancestor may have taken it already.
            if view.exists(&p) {
                let _ = view.remove_subtree(&p);
            }
        }
        let events = core::mem::take(&mut view.events);
        drop(view);
        let stale: Vec<NodeId> = self
            .store
            .nodes()
            .filter(|n| n.perms().entries().iter().skip(1).any(|e| e.domid == domid))
            .map(|n| n.id())
            .collect();
        for id in stale {
            let Some(mut perms) = self.store.node(id).map(|n| n.perms().clone()) else {
                continue;
            };
            perms.forget_domain(domid);
            // Permissions only shrink: the node keeps its allocation, this cannot fail.
            let _ = self.store.set(id, None, Some(&perms));
        }
        for s in self.special_perms.iter_mut() {
            s.forget_domain(domid);
        }
        events
    }
}

/// The `node-size` and `memory` checks for unprivileged writers of a node at a path of
/// `path_len` bytes getting a value of `value_len` bytes (it had `old_value_len`).
#[allow(clippy::too_many_arguments)]
fn check_node_quotas(
    v: &mut View<'_>,
    who: &Requester,
    quotas: &Quotas,
    path_len: usize,
    value_len: usize,
    n_perms: usize,
    children_bytes: usize,
    old_value_len: usize,
) -> Result<(), XsError> {
    if who.privileged {
        return Ok(());
    }
    let size = node_size(value_len, children_bytes, n_perms);
    if quotas.exceeded(QuotaKind::NodeSize, size) {
        return Err(refused(
            v,
            QuotaKind::NodeSize,
            quotas,
            alloc::format!("a node of {size} bytes"),
            XsError::Enospc,
        ));
    }
    let used = v.store.usage(who.domid).memory + v.extra_memory;
    let old = cost_of(path_len, old_value_len, n_perms, children_bytes);
    let new = cost_of(path_len, value_len, n_perms, children_bytes);
    let after = used.saturating_sub(old).saturating_add(new);
    if after > used && quotas.exceeded(QuotaKind::Memory, after) {
        return Err(refused(
            v,
            QuotaKind::Memory,
            quotas,
            alloc::format!("holds {used} bytes, the write would make it {after}"),
            XsError::Enomem,
        ));
    }
    Ok(())
}

/// Records a quota refusal for the log and returns its error.
fn refused(
    v: &mut View<'_>,
    kind: QuotaKind,
    quotas: &Quotas,
    detail: String,
    e: XsError,
) -> XsError {
    v.hit = Some((
        crate::budget::Limit::Quota(kind),
        alloc::format!("{detail}; quota {}", quotas.get(kind)),
    ));
    e
}

/// Creates `name` and any missing parents. New nodes inherit their parent's permissions;
/// an unprivileged creator becomes the owner (C xenstored's `construct_node`).
fn create_node(
    v: &mut View<'_>,
    who: &Requester,
    quotas: &Quotas,
    name: &str,
    value: &[u8],
) -> Result<(), XsError> {
    let mut missing: Vec<&str> = alloc::vec![name];
    let mut cur = path::parent(name);
    while !v.exists(cur) {
        if cur == "/" {
            return Err(XsError::Eio);
        }
        missing.push(cur);
        cur = path::parent(cur);
    }
    // Everything is checked, and room made, before anything is written, so a refused
    // request leaves no half-created parents behind (XSA-414/415).
    let parent = v.peek(cur).ok_or(XsError::Eio)?;
    let mut perms = parent.perms().clone();
    if !who.privileged {
        perms.set_owner(who.domid);
        let owned = v.store.usage(who.domid).nodes;
        if quotas.exceeded(QuotaKind::Nodes, owned.saturating_add(missing.len())) {
            return Err(refused(
                v,
                QuotaKind::Nodes,
                quotas,
                alloc::format!("owns {owned} nodes, {} more asked", missing.len()),
                XsError::Enospc,
            ));
        }
        let n_perms = perms.entries().len();
        // The existing parent's children list grows: it must stay within the node size.
        let parent_size = node_size(
            parent.value().len(),
            v.children_bytes(cur)
                + path::basename(missing.last().copied().unwrap_or(name)).len()
                + 1,
            parent.perms().entries().len(),
        );
        if quotas.exceeded(QuotaKind::NodeSize, parent_size) {
            return Err(refused(
                v,
                QuotaKind::NodeSize,
                quotas,
                alloc::format!("the parent's node would grow to {parent_size} bytes"),
                XsError::Enospc,
            ));
        }
        check_node_quotas(v, who, quotas, name.len(), value.len(), n_perms, 0, 0)?;
        let extra: usize = missing
            .iter()
            .skip(1)
            .map(|p| cost_of(p.len(), 0, n_perms, 0))
            .sum();
        let used = v.store.usage(who.domid).memory + v.extra_memory;
        let after = used
            .saturating_add(cost_of(name.len(), value.len(), n_perms, 0))
            .saturating_add(extra);
        if quotas.exceeded(QuotaKind::Memory, after) {
            return Err(refused(
                v,
                QuotaKind::Memory,
                quotas,
                alloc::format!("holds {used} bytes, the write would make it {after}"),
                XsError::Enomem,
            ));
        }
    }
    v.reserve(missing.len())?;
    for &p in missing.iter().rev() {
        let val = if p == name { value } else { &[] };
        v.create(p, &perms, val)?;
    }
    Ok(())
}
