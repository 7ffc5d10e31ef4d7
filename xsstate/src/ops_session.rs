//! Per-connection requests: WATCH, UNWATCH, RESET_WATCHES, TRANSACTION_START/END.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::engine::{ok, Engine, HandlerResult};
use crate::error::XsError;
use crate::ids::{ConnId, DomId, TxId};
use crate::path;
use crate::perms::Requester;
use crate::quota::QuotaKind;
use crate::txn::Transaction;
use crate::util::split_strings;
use crate::watch::Watch;

impl Engine {
    /// Parses `path|token|[depth|]` into a watch for connection `who`.
    fn parse_watch(&self, who: &Requester, p: &[u8], with_depth: bool) -> Result<Watch, XsError> {
        let args = split_strings(p);
        let (Some(raw), Some(token)) = (args.first(), args.get(1)) else {
            return Err(XsError::Einval);
        };
        let depth = match (with_depth, args.get(2)) {
            (true, Some(d)) if !d.is_empty() => {
                let d = crate::util::parse_decimal(d).ok_or(XsError::Einval)?;
                Some(u32::try_from(d).map_err(|_| XsError::Einval)?)
            }
            _ => None,
        };
        let token = String::from(core::str::from_utf8(token).map_err(|_| XsError::Einval)?);
        let text = core::str::from_utf8(raw).map_err(|_| XsError::Einval)?;
        let full = path::canonicalize_watch(raw, who.domid, self.path_limit(who))?;
        Ok(Watch {
            relative: !text.starts_with('/') && !path::is_special(text),
            path: full,
            token,
            depth,
        })
    }

    pub(crate) fn op_watch(&mut self, id: ConnId, who: Requester, p: &[u8]) -> HandlerResult {
        // A depth is honoured only from a domain that has the WATCHDEPTH feature (others
        // may send anything after the token, as older C xenstored ignores it).
        let with_depth = self.features_of(who.domid) & crate::ring::FEATURE_WATCHDEPTH != 0;
        let watch = self.parse_watch(&who, p, with_depth)?;
        let quotas = self.quotas_for(who.domid);
        let Some(c) = self.conns.get_mut(&id) else {
            return Err(XsError::Eio);
        };
        if c.watches
            .iter()
            .any(|w| w.path == watch.path && w.token == watch.token)
        {
            return Err(XsError::Eexist);
        }
        if !who.privileged && quotas.reached(QuotaKind::Watches, c.watches.len()) {
            let held = c.watches.len();
            self.limit_hit(
                who.domid,
                crate::budget::Limit::Quota(QuotaKind::Watches),
                alloc::format!(
                    "WATCH refused with E2BIG: {held} watches set, quota {}",
                    quotas.get(QuotaKind::Watches)
                ),
            );
            return Err(XsError::E2big);
        }
        // The first event fires at once, after the reply, reporting the path as given.
        let reported = watch.reported_path(&watch.path, c.domid);
        let first = watch.event_payload(&reported);
        c.watches.push(watch);
        self.after_reply.push((id, first));
        ok()
    }

    pub(crate) fn op_unwatch(&mut self, id: ConnId, who: Requester, p: &[u8]) -> HandlerResult {
        let target = self.parse_watch(&who, p, false)?;
        let Some(c) = self.conns.get_mut(&id) else {
            return Err(XsError::Eio);
        };
        let pos = c
            .watches
            .iter()
            .position(|w| w.path == target.path && w.token == target.token)
            .ok_or(XsError::Enoent)?;
        c.watches.remove(pos);
        ok()
    }

    pub(crate) fn op_reset_watches(&mut self, id: ConnId, tx: TxId) -> HandlerResult {
        // Inside a transaction this would pull the transaction from under the request
        // (XSA-484): refuse it.
        if tx != TxId::NONE {
            return Err(XsError::Ebusy);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return Err(XsError::Eio);
        };
        c.reset_watches_and_transactions();
        ok()
    }

    pub(crate) fn op_transaction_start(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
    ) -> HandlerResult {
        if tx != TxId::NONE {
            return Err(XsError::Ebusy);
        }
        let quotas = self.quotas_for(who.domid);
        let now = self.now_ms;
        let Some(c) = self.conns.get_mut(&id) else {
            return Err(XsError::Eio);
        };
        if !who.privileged && quotas.reached(QuotaKind::Transactions, c.transactions.len()) {
            let open = c.transactions.len();
            self.limit_hit(
                who.domid,
                crate::budget::Limit::Quota(QuotaKind::Transactions),
                alloc::format!(
                    "TRANSACTION_START refused with ENOSPC: {open} open, quota {}",
                    quotas.get(QuotaKind::Transactions)
                ),
            );
            return Err(XsError::Enospc);
        }
        // The smallest id not in use: ids are opaque to clients, and a restored engine
        // (which cannot know the ids handed out before) picks the same one.
        let mut txid = 1u32;
        while c.transactions.contains_key(&txid) {
            txid = txid.wrapping_add(1);
        }
        c.transactions
            .insert(txid, Transaction::new(TxId(txid), now));
        let mut out = alloc::format!("{txid}").into_bytes();
        out.push(0);
        Ok(Some(out))
    }

    pub(crate) fn op_transaction_end(
        &mut self,
        id: ConnId,
        who: Requester,
        tx: TxId,
        p: &[u8],
    ) -> HandlerResult {
        let commit = match crate::util::one_arg(p) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(XsError::Einval),
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return Err(XsError::Eio);
        };
        let txn = c.transactions.remove(&tx.0).ok_or(XsError::Enoent)?;
        if !commit {
            return ok();
        }
        if txn.conflicts(&self.store) {
            return Err(XsError::Eagain);
        }
        if !who.privileged {
            if let Err((domid, kind, detail, e)) = self.check_commit_quotas(&txn) {
                let q = self.quotas_for(domid).get(kind);
                self.limit_hit(
                    domid,
                    crate::budget::Limit::Quota(kind),
                    alloc::format!("{detail}; quota {q}"),
                );
                return Err(e);
            }
        }
        let events = txn.apply(&mut self.store)?;
        self.fire(&events);
        ok()
    }

    /// Node and memory quotas of every domain whose ownership a commit changes; a refusal
    /// names the domain, the quota and why.
    fn check_commit_quotas(
        &self,
        txn: &Transaction,
    ) -> Result<(), (DomId, QuotaKind, alloc::string::String, XsError)> {
        let mut delta: BTreeMap<DomId, (isize, isize)> = BTreeMap::new();
        for (p, change) in &txn.changes {
            let old = self.store.get(p);
            let children = old.map_or(0, |n| n.children_bytes());
            if let Some(old) = old {
                let d = delta.entry(old.perms().owner()).or_default();
                d.0 -= 1;
                d.1 -= old.cost() as isize;
            }
            if let Some(new) = change {
                let d = delta.entry(new.perms.owner()).or_default();
                d.0 += 1;
                d.1 += crate::store::cost_of(
                    p.len(),
                    new.value.len(),
                    new.perms.entries().len(),
                    children,
                ) as isize;
            }
        }
        for (domid, (nodes, mem)) in delta {
            if domid == self.config.priv_domid {
                continue;
            }
            let quotas = self.quotas_for(domid);
            let usage = self.store.usage(domid);
            let n = usage.nodes.saturating_add_signed(nodes);
            let m = usage.memory.saturating_add_signed(mem);
            if nodes > 0 && quotas.exceeded(QuotaKind::Nodes, n) {
                return Err((
                    domid,
                    QuotaKind::Nodes,
                    alloc::format!("the commit would make it own {n} nodes"),
                    XsError::Enospc,
                ));
            }
            if mem > 0 && quotas.exceeded(QuotaKind::Memory, m) {
                return Err((
                    domid,
                    QuotaKind::Memory,
                    alloc::format!("the commit would make it hold {m} bytes"),
                    XsError::Enomem,
                ));
            }
        }
        Ok(())
    }
}
