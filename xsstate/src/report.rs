//! `CONTROL memreport`: what the store, the connections and the heap hold, and per domain
//! what it uses of its quotas.

use alloc::string::String;
use core::fmt::Write;

use crate::engine::Engine;
use crate::quota::QuotaKind;

/// The memory report.
pub(crate) fn memreport(e: &Engine) -> String {
    let mut s = String::new();
    let store = e.store();
    let watches: usize = e.connections().map(|c| c.watches.len()).sum();
    let txns: usize = e.connections().map(|c| c.transactions.len()).sum();
    let out: usize = e.connections().map(|c| c.out_bytes).sum();
    let dropped: u64 = e.connections().map(|c| c.events_dropped).sum();
    let _ = writeln!(s, "nodes: {} ({} bytes)", store.len(), store.total_cost());
    let heap = store.heap_bytes();
    let _ = writeln!(
        s,
        "store: {heap} heap bytes, {} per node, {} permission lists",
        heap / store.len().max(1),
        store.perm_lists()
    );
    let _ = writeln!(s, "connections: {}", e.connections().count());
    let _ = writeln!(s, "domains: {}", e.domains().count());
    let _ = writeln!(s, "watches: {watches}");
    let _ = writeln!(s, "transactions: {txns}");
    let _ = writeln!(s, "queued output: {out} bytes");
    let _ = writeln!(s, "dropped watch events: {dropped}");
    let m = e.memory_stats();
    if let Some((used, free)) = e.reported_heap() {
        let _ = writeln!(s, "heap: {used} bytes used, {free} bytes free");
    } else if m.max < usize::MAX / 8 {
        let _ = writeln!(
            s,
            "heap: {} bytes used, {} bytes free, {} bytes grown, {} bytes max",
            m.used, m.free, m.grown, m.max
        );
    }
    let hits = e.limit_totals();
    if !hits.is_empty() {
        let _ = write!(s, "limits hit:");
        for (limit, n) in hits {
            let _ = write!(s, " {} {n};", limit.name());
        }
        s.push('\n');
    }
    for d in e.domains() {
        let usage = store.usage(d.domid);
        let (w, t, o) = e
            .connections()
            .filter(|c| c.domid == d.domid)
            .fold((0, 0, 0), |a, c| {
                (
                    a.0 + c.watches.len(),
                    a.1 + c.transactions.len(),
                    a.2 + c.replies_queued,
                )
            });
        let _ = writeln!(
            s,
            "domain {}: nodes {}/{} memory {}/{} watches {w}/{} transactions {t}/{} \
             outstanding {o}/{}",
            d.domid.0,
            usage.nodes,
            d.quotas.get(QuotaKind::Nodes),
            e.domain_memory(d.domid),
            d.quotas.get(QuotaKind::Memory),
            d.quotas.get(QuotaKind::Watches),
            d.quotas.get(QuotaKind::Transactions),
            d.quotas.get(QuotaKind::Outstanding),
        );
    }
    s
}
