//! The memory policy of the dispatch point: what a request may cost, the floors it must
//! leave free, and the rate-limited log of every limit a domain hits.
//!
//! Policy. Before a request runs, its worst-case allocation is estimated (`Engine::cost`)
//! and the shell's [`crate::memory::MemorySource`] must make that much free (growing the heap
//! up to the domain's maximum if it can) on top of a floor:
//!
//! * the **core reserve** (`EngineConfig::core_reserve_bytes`) is never given to requests:
//!   it keeps replies, error replies, watch events already promised, `@releaseDomain`,
//!   RELEASE and domain death working when everything else is refused;
//! * unprivileged domains stop earlier, at the core reserve plus the **guest reserve**
//!   (`EngineConfig::guest_reserve_bytes`, or a sixteenth of the heap's maximum if larger),
//!   so that dom0 keeps headroom when guests fill the store;
//! * requests that only read stop at half the core reserve, so the store stays readable;
//! * requests that free (RELEASE, UNWATCH, RESET_WATCHES, aborting a transaction, RM outside
//!   a transaction) are never refused.
//!
//! A refused request gets `ENOMEM` and its connection stays. On top of that, each domain's
//! `memory` quota counts everything it holds: its nodes, its transactions, its watches and its
//! queued output.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::engine::Engine;
use crate::ids::{ConnId, DomId, TxId};
use crate::perms::Requester;
use crate::quota::QuotaKind;
use crate::wire::{Message, MsgType};

/// What a request does with memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Frees, or needs almost nothing: never refused.
    Frees,
    /// Reads: needs a reply buffer.
    Reads,
    /// Adds state that stays.
    Grows,
}

/// A limit a request ran into, for the operator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// A quota.
    Quota(QuotaKind),
    /// The heap floor (the stub domain's memory is short).
    Heap,
    /// The write rate limit.
    WriteRate,
    /// The watch-event queue of a connection.
    EventQueue,
}

impl Limit {
    /// The name used in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Quota(q) => q.name(),
            Limit::Heap => "heap",
            Limit::WriteRate => "write-rate",
            Limit::EventQueue => "event-queue",
        }
    }
}

/// How often one (domain, limit) pair is logged.
const LOG_INTERVAL_MS: u64 = 10_000;

/// Rate-limited log state per (domain, limit): when it was last logged and how many hits
/// went unlogged since.
#[derive(Clone, Debug, Default)]
pub(crate) struct LimitLog {
    seen: BTreeMap<(DomId, Limit), (u64, u64)>,
    /// Hits since the engine started, per limit.
    pub(crate) totals: BTreeMap<Limit, u64>,
}

impl LimitLog {
    /// Records a hit at `now_ms`; returns the number of earlier unlogged hits when this one
    /// should be logged.
    fn hit(&mut self, domid: DomId, limit: Limit, now_ms: u64) -> Option<u64> {
        *self.totals.entry(limit).or_default() += 1;
        match self.seen.get_mut(&(domid, limit)) {
            Some((last, skipped)) if now_ms.saturating_sub(*last) < LOG_INTERVAL_MS => {
                *skipped += 1;
                None
            }
            Some((last, skipped)) => {
                *last = now_ms;
                Some(core::mem::take(skipped))
            }
            None => {
                self.seen.insert((domid, limit), (now_ms, 0));
                Some(0)
            }
        }
    }

    /// Forgets a domain (it went away).
    pub(crate) fn forget(&mut self, domid: DomId) {
        self.seen.retain(|(d, _), _| *d != domid);
    }
}

/// Bytes a new node costs the heap beyond its path and value (slot, index, allocator).
const NODE_HEAP: usize = 128;
/// Heap bytes a commit spends per change while applying it (its entry in the list of
/// changes and in the map of new node data).
const CHANGE_HEAP: usize = 96;
/// Bytes any request may allocate beyond what its payload suggests.
const REQUEST_BASE: usize = 2048;

impl Engine {
    /// Logs that `domid` hit `limit` (rate-limited per domain and limit), with the figures.
    pub(crate) fn limit_hit(&mut self, domid: DomId, limit: Limit, detail: String) {
        let now = self.now_ms;
        if let Some(skipped) = self.limits.hit(domid, limit, now) {
            let more = if skipped > 0 {
                alloc::format!(" ({skipped} more since the last report)")
            } else {
                String::new()
            };
            self.log(alloc::format!(
                "domain {}: limit {} hit: {detail}{more}",
                domid.0,
                limit.name()
            ));
        }
    }

    /// Logs why an unprivileged connection is no longer read after its last request: its
    /// domain spent its write budget (XSA-206), or it leaves its replies unread (the
    /// `outstanding` quota). Called once per request that causes the hold.
    pub(crate) fn note_held_back(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        if c.faulted.is_some() || c.domid == self.config.priv_domid {
            return;
        }
        let (domid, queued) = (c.domid, c.replies_queued);
        let rate = self.config.write_rate;
        let spent = rate.per_s != 0
            && self
                .domains
                .get(&domid)
                .is_some_and(|d| d.writes.exhausted());
        if spent {
            self.limit_hit(
                domid,
                Limit::WriteRate,
                alloc::format!(
                    "requests held back: more than {} writes/s (bursts of {})",
                    rate.per_s,
                    rate.burst
                ),
            );
        } else {
            let quota = self.quotas_for(domid).get(QuotaKind::Outstanding);
            self.limit_hit(
                domid,
                Limit::Quota(QuotaKind::Outstanding),
                alloc::format!("ring no longer read: {queued} replies unread, quota {quota}"),
            );
        }
    }

    /// The class of a request.
    pub(crate) fn class(ty: MsgType, msg: &Message) -> Class {
        use MsgType::*;
        let in_txn = msg.tx_id != TxId::NONE;
        match ty {
            Release | Unwatch | ResetWatches | Resume => Class::Frees,
            TransactionEnd if msg.payload.first() != Some(&b'T') => Class::Frees,
            Rm if !in_txn => Class::Frees,
            Read | Directory | DirectoryPart | GetPerms if !in_txn => Class::Reads,
            GetDomainPath | IsDomainIntroduced | GetFeature | GetQuota => Class::Reads,
            _ => Class::Grows,
        }
    }

    /// The worst case a request allocates, in bytes (see the module docs).
    pub(crate) fn cost(&self, id: ConnId, ty: MsgType, msg: &Message) -> usize {
        use MsgType::*;
        let payload = msg.payload.len();
        let base = REQUEST_BASE + 3 * payload;
        let depth = msg.payload.iter().filter(|&&b| b == b'/').count() + 2;
        match ty {
            Write | Mkdir => {
                base + depth * (NODE_HEAP + 64)
                    + self.store.growth_bytes(depth)
                    + self.event_bytes(payload)
            }
            SetPerms => base + self.event_bytes(payload),
            TransactionEnd => {
                // A commit stores a copy of each node the transaction wrote (twice while the
                // change is built) and lists every change once; a removal only frees, so a
                // transaction that removes a big subtree (`xenstore-rm` makes one) commits
                // in a tight heap.
                let txn = self.conns.get(&id).and_then(|c| c.transaction(msg.tx_id));
                let (written_bytes, written, changes) = txn.map_or((0, 0, 0), |t| {
                    t.changes.iter().fold(
                        (0usize, 0usize, t.changes.len()),
                        |(b, n, all), (p, change)| match change {
                            Some(node) => (b.saturating_add(node.bytes(p.len())), n + 1, all),
                            None => (b, n, all),
                        },
                    )
                });
                let bytes = txn.map_or(0, |t| t.bytes);
                base + 2 * written_bytes
                    + changes * CHANGE_HEAP
                    + written * NODE_HEAP
                    + self.store.growth_bytes(written)
                    + self.event_bytes(bytes)
            }
            Rm => {
                // In a transaction: per node removed, its path in the list of the subtree,
                // in the accessed and changed maps and in a queued event (nothing of the
                // node is copied); the event list is reserved whole.
                let root_len = payload + 24;
                let nodes = self
                    .conns
                    .get(&id)
                    .and_then(|_| crate::util::one_arg(&msg.payload))
                    .and_then(|raw| core::str::from_utf8(raw).ok())
                    .and_then(|p| self.store.lookup(p))
                    .map_or(1, |n| self.store.subtree_size(n).0);
                let per_node = 4 * (root_len + 16) + 2 * crate::txn::ENTRY_OVERHEAD + 2 * 64;
                base + nodes.saturating_mul(per_node)
            }
            Watch => base + payload * 2,
            Introduce => base + 8192,
            Control => base + payload,
            _ => base,
        }
    }

    /// Watch events one change may queue: every watch could match.
    fn event_bytes(&self, path_len: usize) -> usize {
        let watches: usize = self.conns.values().map(|c| c.watches.len()).sum();
        watches.saturating_mul(path_len.min(4096) + 96)
    }

    /// The floor a request must leave free.
    pub(crate) fn floor(&self, who: &Requester, class: Class) -> usize {
        let core = self.config.core_reserve_bytes;
        match class {
            Class::Frees => 0,
            Class::Reads if who.privileged => core / 2,
            Class::Reads => core,
            Class::Grows if who.privileged => core,
            Class::Grows => {
                let max = self.memory.stats().max;
                core + self.config.guest_reserve_bytes.max(max / 16)
            }
        }
    }

    /// Whether memory allows the request: its cost above its floor is free (or can be made
    /// free). Logs a refusal.
    pub(crate) fn memory_allows(
        &mut self,
        id: ConnId,
        who: &Requester,
        ty: MsgType,
        msg: &Message,
    ) -> bool {
        let class = Engine::class(ty, msg);
        if class == Class::Frees {
            return true;
        }
        let need = self.cost(id, ty, msg);
        let floor = self.floor(who, class);
        if self.memory.ensure_free(need.saturating_add(floor)) {
            return true;
        }
        let s = self.memory.stats();
        self.limit_hit(
            who.domid,
            Limit::Heap,
            alloc::format!(
                "{} refused with ENOMEM: needs up to {need} bytes above a floor of {floor}; \
                 heap {} KiB used, {} KiB free, {} KiB grown, {} KiB max",
                ty.name(),
                s.used / 1024,
                s.free / 1024,
                s.grown / 1024,
                s.max / 1024
            ),
        );
        false
    }

    /// Bytes a domain holds beyond its nodes: transactions, watches and queued output of its
    /// connections.
    pub fn domain_extra_memory(&self, domid: DomId) -> usize {
        self.conns
            .values()
            .filter(|c| c.domid == domid)
            .map(|c| {
                c.out_bytes
                    + c.transactions.values().map(|t| t.bytes).sum::<usize>()
                    + c.watches.iter().map(|w| w.cost()).sum::<usize>()
            })
            .sum()
    }

    /// Everything a domain holds, as its `memory` quota counts it.
    pub fn domain_memory(&self, domid: DomId) -> usize {
        self.store.usage(domid).memory + self.domain_extra_memory(domid)
    }

    /// Whether an unprivileged domain's `memory` quota allows `more` bytes (logs a refusal).
    pub(crate) fn memory_quota_allows(&mut self, who: &Requester, more: usize) -> bool {
        if who.privileged {
            return true;
        }
        let quotas = self.quotas_for(who.domid);
        let held = self.domain_memory(who.domid);
        let after = held.saturating_add(more);
        if !quotas.exceeded(QuotaKind::Memory, after) {
            return true;
        }
        self.limit_hit(
            who.domid,
            Limit::Quota(QuotaKind::Memory),
            alloc::format!(
                "holds {held} bytes, a request would add up to {more}; quota {}",
                quotas.get(QuotaKind::Memory)
            ),
        );
        false
    }
}
