//! The memory budget at the dispatch point, in a heap the test makes tight: what it must
//! still allow, and what it still refuses.
mod common;
use std::sync::Arc;

use common::*;
use xsstate::memory::{MemorySource, MemoryStats};
use xsstate::{MsgType, XsError};

/// A heap with a fixed amount free and no room to grow.
#[derive(Debug)]
struct Tight {
    free: usize,
}

impl MemorySource for Tight {
    fn stats(&self) -> MemoryStats {
        MemoryStats {
            used: 4 << 20,
            free: self.free,
            grown: 0,
            max: (4 << 20) + self.free,
        }
    }

    fn ensure_free(&self, bytes: usize) -> bool {
        bytes <= self.free
    }
}

/// `xenstore-rm` removes in a transaction. Its commit only frees, so it must go through in
/// a heap far too small to copy what the transaction holds (the lab's `lu-bench` cleanup of
/// 10,000 nodes in an 8 MiB stub domain was refused with `ENOMEM` when the commit was priced
/// at twice the transaction's bytes).
#[test]
fn a_transaction_that_removes_a_big_subtree_commits_in_a_tight_heap() {
    let mut h = Harness::new();
    let c = h.dom0();
    for i in 0..3000 {
        assert_eq!(
            h.write(c, &format!("/big/d{}/n{i}", i / 100), b"value"),
            okr()
        );
    }
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::Rm, tx, &z("/big")), okr());
    let held = h
        .engine
        .connections()
        .find_map(|k| k.transaction(tx).map(|t| t.bytes))
        .expect("the transaction");
    assert!(held > 600_000, "the removal holds {held} bytes");
    // As much free as the transaction holds: less than copying it would take, more than the
    // core reserve and the commit's list of changes.
    h.engine.set_memory(Arc::new(Tight { free: held }));
    assert_eq!(h.end(c, tx, true), okr());
    assert_eq!(h.read(c, "/big"), e(XsError::Enoent));
    h.check();

    // The same heap still refuses a commit that writes that much.
    h.engine.set_memory(Arc::new(xsstate::memory::Unlimited));
    let tx = h.start(c);
    for i in 0..3000 {
        assert_eq!(
            h.write_tx(c, tx, &format!("/big2/n{i}"), &[b'v'; 200]),
            okr()
        );
    }
    h.engine.set_memory(Arc::new(Tight { free: held }));
    assert_eq!(h.end(c, tx, true), e(XsError::Enomem));
    assert_eq!(h.read(c, "/big2"), e(XsError::Enoent));
    h.check();
}
