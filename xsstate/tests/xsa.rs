//! One regression test per Xen security advisory class that concerns the engine.
mod common;
use common::*;
use xsstate::perms::{Perm, Perms};
use xsstate::store::{NodeId, Store};
use xsstate::wire::MsgType;
use xsstate::{DomId, DomainState, EngineConfig, Fault, TxId, XsError};

#[test]
fn xsa_38_ring_indices_more_than_a_ring_apart_are_refused() {
    use xsstate::ring::{readable_chunk, used, writable_chunk};
    assert_eq!(used(0, 1024), Some(1024));
    assert_eq!(used(0, 1025), None);
    assert_eq!(used(100, 99), None, "consumer ahead of producer");
    assert_eq!(used(u32::MAX - 10, 5), Some(16), "wrapping indices");
    assert_eq!(readable_chunk(0, 2000), None);
    assert_eq!(writable_chunk(0, 2000), None);
    assert_eq!(readable_chunk(7, 7 + 1025), None);
    assert_eq!(writable_chunk(u32::MAX, 1024), None);
    // Valid indices never give a chunk outside the ring.
    for cons in [0u32, 1, 500, 1023, 1024, u32::MAX - 3] {
        for n in [0u32, 1, 24, 1000, 1024] {
            let prod = cons.wrapping_add(n);
            let (off, len) = readable_chunk(cons, prod).unwrap();
            assert!(off + len <= 1024 && len as u32 <= n);
            let (off, len) = writable_chunk(cons, prod).unwrap();
            assert!(off + len <= 1024 && len as u32 <= 1024 - n);
        }
    }
}

#[test]
fn xsa_72_oversized_message_faults_only_that_connection() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    let g2 = h.guest(c, 6);
    let mut hdr = Vec::new();
    for v in [MsgType::Write as u32, 1, 0, 4097] {
        hdr.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(
        h.engine.receive(g, &hdr),
        Err(Fault::OversizedMessage { len: 4097 })
    );
    assert!(!h.engine.can_receive(g));
    assert_eq!(
        h.engine
            .receive(
                g,
                &xsstate::Message::new(MsgType::Read, 2, TxId(0), z("/")).encode()
            )
            .unwrap(),
        0
    );
    // Other connections are unaffected.
    assert_eq!(h.read(c, "/tool"), Got::Ok(vec![]));
    assert_eq!(
        h.args(g2, MsgType::GetDomainPath, &["6"]),
        txt("/local/domain/6")
    );
    // A payload of exactly 4096 bytes is fine.
    let mut p = z("/big");
    p.resize(4096, b'x');
    assert_eq!(h.call(c, MsgType::Write, TxId(0), &p), okr());
    h.check();
}

#[test]
fn xsa_115_watch_events_only_for_readable_nodes_and_permitted_special_watches() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.watch(g, "/", "root"), okr());
    assert_eq!(h.watch(g, "@introduceDomain", "intro"), okr());
    assert_eq!(h.watch(g, "@releaseDomain", "rel"), okr());
    h.events(g);
    h.write(c, "/hidden/x", b"secret");
    h.rm(c, "/hidden");
    assert_eq!(h.events(g), vec![], "nodes the guest cannot read");
    h.write(g, "mine", b"1");
    assert_eq!(
        h.events(g),
        vec![("/local/domain/5/mine".into(), "root".into())]
    );
    // Special events need permission.
    h.guest(c, 6);
    h.engine.domain_state(DomId(6), DomainState::Shutdown);
    assert_eq!(h.events(g), vec![]);
    assert_eq!(h.set_perms(c, "@introduceDomain", &["n0", "r5"]), okr());
    assert_eq!(h.set_perms(c, "@releaseDomain", &["n0", "r5"]), okr());
    h.guest(c, 7);
    assert_eq!(
        h.events(g),
        vec![("@introduceDomain".into(), "intro".into())]
    );
    h.engine.domain_state(DomId(7), DomainState::Shutdown);
    assert_eq!(h.events(g), vec![("@releaseDomain".into(), "rel".into())]);
    // dom0 always sees them.
    let w = h.dom0();
    h.watch(w, "@releaseDomain", "d0");
    h.events(w);
    h.engine.domain_state(DomId(6), DomainState::Dead);
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "d0".into())]);
}

#[test]
fn xsa_322_released_domain_permission_entries_are_removed() {
    let mut h = Harness::new();
    let c = h.dom0();
    h.guest(c, 5);
    assert_eq!(h.write(c, "/shared", b"data"), okr());
    assert_eq!(h.set_perms(c, "/shared", &["n0", "r5", "w6"]), okr());
    assert_eq!(h.set_perms(c, "@releaseDomain", &["n0", "r5"]), okr());
    assert_eq!(h.args(c, MsgType::Release, &["5"]), okr());
    assert_eq!(h.get_perms(c, "/shared"), Got::Ok(b"n0\0w6\0".to_vec()));
    assert_eq!(h.get_perms(c, "@releaseDomain"), Got::Ok(b"n0\0".to_vec()));
    // A new domain with the same id inherits nothing.
    let g = h.guest(c, 5);
    assert_eq!(h.read(g, "/shared"), e(XsError::Eacces));
    h.check();
}

#[test]
fn xsa_323_relative_path_too_long_after_prefixing() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    // (Short components: one name of 2048 bytes would overflow its parent's node size.)
    let ok_path = "ppppppp/".repeat(256);
    let ok_path = ok_path.trim_end_matches('/').to_string() + "p";
    assert_eq!(ok_path.len(), 2048);
    assert_eq!(h.write(g, &ok_path, b"1"), okr());
    let long = ok_path.clone() + "p";
    assert_eq!(h.write(g, &long, b"1"), e(XsError::Einval));
    assert_eq!(h.read(g, &long), e(XsError::Einval));
    assert_eq!(h.watch(g, &long, "t"), e(XsError::Einval));
    // Absolute paths outside a domain home are limited to path-max as a whole, for
    // unprivileged callers (C xenstored 4.18+ does not limit the privileged domain).
    let abs = format!("/{}", "q".repeat(2048));
    assert_eq!(h.write(g, &abs, b"1"), e(XsError::Einval));
    assert_eq!(h.write(c, &abs, b"1"), okr());
    h.check();
}

#[test]
fn xsa_324_oversized_watch_events_are_dropped() {
    let mut h = Harness::new();
    let c = h.dom0();
    let token = "T".repeat(4000);
    assert_eq!(h.watch(c, "/w", &token), okr());
    assert_eq!(h.events(c), vec![("/w".into(), token.clone())]);
    let child = format!("/w/{}", "c".repeat(100));
    assert_eq!(h.write(c, &child, b"1"), okr());
    assert_eq!(h.events(c), vec![], "payload over 4096 bytes is not sent");
    // A smaller event still gets through.
    assert_eq!(h.write(c, "/w/s", b"1"), okr());
    assert_eq!(h.events(c), vec![("/w/s".into(), token)]);
    assert!(h.engine.connection(c).unwrap().events_dropped >= 1);
}

#[test]
fn xsa_325_release_domain_fires_only_for_introduced_domains_once_per_shutdown() {
    let mut h = Harness::new();
    let c = h.dom0();
    let w = h.dom0();
    h.watch(w, "@releaseDomain", "r");
    h.events(w);
    // Never introduced: nothing.
    h.engine.domain_state(DomId(9), DomainState::Shutdown);
    h.engine.domain_state(DomId(9), DomainState::Dead);
    assert_eq!(h.events(w), vec![]);
    h.guest(c, 5);
    h.engine.domain_state(DomId(5), DomainState::Shutdown);
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "r".into())]);
    h.engine.domain_state(DomId(5), DomainState::Shutdown);
    assert_eq!(h.events(w), vec![], "once per shutdown");
    // RESUME re-arms it.
    assert_eq!(h.args(c, MsgType::Resume, &["5"]), okr());
    h.engine.domain_state(DomId(5), DomainState::Shutdown);
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "r".into())]);
    assert_eq!(h.args(c, MsgType::Release, &["5"]), okr());
    assert_eq!(h.events(w), vec![("@releaseDomain".into(), "r".into())]);
    // Gone: no more events.
    h.engine.domain_state(DomId(5), DomainState::Shutdown);
    h.engine.domain_state(DomId(5), DomainState::Dead);
    assert_eq!(h.events(w), vec![]);
}

#[test]
fn xsa_326_guest_that_never_reads() {
    let cfg = EngineConfig {
        event_queue_limit_bytes: 2048,
        watch_event_timeout_ms: 1000,
        ..EngineConfig::default()
    };
    let mut h = Harness::with_config(cfg);
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    h.watch(g, "/local/domain/5", "t");
    h.events(g);
    // Bounded event queue.
    for i in 0..500 {
        h.write(c, &format!("/local/domain/5/n{i}"), b"");
    }
    let conn = h.engine.connection(g).unwrap();
    assert!(conn.out_bytes <= 2048, "{}", conn.out_bytes);
    assert!(conn.events_dropped > 0);
    // Events older than the timeout are dropped.
    h.engine.set_time_ms(999);
    assert!(h.engine.connection(g).unwrap().out_bytes > 0);
    h.engine.set_time_ms(1000);
    assert_eq!(h.engine.connection(g).unwrap().out_bytes, 0);
    assert_eq!(h.events(g), vec![]);
    // dom0's events are not timed out.
    let w = h.dom0();
    h.watch(w, "/d0", "t");
    h.events(w);
    h.write(c, "/d0/x", b"");
    h.engine.set_time_ms(1_000_000);
    assert_eq!(h.events(w), vec![("/d0/x".into(), "t".into())]);
    // Outstanding-request quota.
    let mut stream = Vec::new();
    for i in 0..25u32 {
        stream.extend_from_slice(
            &xsstate::Message::new(MsgType::GetDomainPath, i + 1, TxId(0), z("5")).encode(),
        );
    }
    let used = h.engine.receive(g, &stream).unwrap();
    assert!(used < stream.len());
    assert!(!h.engine.can_receive(g));
    assert_eq!(h.engine.connection(g).unwrap().replies_queued, 20);
    h.engine.drain_output(g);
    // Transaction-nodes quota.
    assert_eq!(
        h.args(c, MsgType::SetQuota, &["5", "transaction-nodes", "4"]),
        okr()
    );
    let tx = h.start(g);
    for i in 0..4 {
        assert_eq!(h.read_tx(g, tx, &format!("n{i}")), Got::Ok(vec![]));
    }
    assert_eq!(h.read_tx(g, tx, "n4"), e(XsError::Enospc));
    assert_eq!(h.end(g, tx, false), okr());
    h.check();
}

#[test]
fn xsa_330_484_reset_watches() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    for i in 0..10 {
        assert_eq!(h.watch(g, &format!("w{i}"), "t"), okr());
    }
    let tx = h.start(g);
    assert_eq!(h.call(g, MsgType::ResetWatches, tx, b""), e(XsError::Ebusy));
    // Refused: the transaction and the watches are still there.
    assert_eq!(h.write_tx(g, tx, "in-tx", b"1"), okr());
    assert_eq!(h.engine.connection(g).unwrap().watches.len(), 10);
    assert_eq!(h.call(g, MsgType::ResetWatches, TxId(0), b""), okr());
    assert!(h.engine.connection(g).unwrap().watches.is_empty());
    assert!(h.engine.connection(g).unwrap().transactions.is_empty());
    assert_eq!(h.end(g, tx, true), e(XsError::Enoent));
    h.events(g);
    h.write(g, "w1", b"x");
    assert_eq!(h.events(g), vec![]);
    h.check();
}

#[test]
fn xsa_352_unprivileged_owner_change_is_refused() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    h.write(g, "n", b"");
    assert_eq!(h.set_perms(g, "n", &["n0"]), e(XsError::Eperm));
    assert_eq!(h.set_perms(g, "n", &["n6", "b5"]), e(XsError::Eperm));
    assert_eq!(h.get_perms(g, "n"), Got::Ok(b"n5\0".to_vec()));
    // Inside a transaction too.
    let tx = h.start(g);
    let mut p = z("n");
    p.extend_from_slice(&z("n6"));
    assert_eq!(h.call(g, MsgType::SetPerms, tx, &p), e(XsError::Eperm));
    assert_eq!(h.end(g, tx, true), okr());
    assert_eq!(h.get_perms(g, "n"), Got::Ok(b"n5\0".to_vec()));
}

#[test]
fn xsa_353_root_permissions() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    assert_eq!(h.write(g, "/evil", b"1"), e(XsError::Eacces));
    assert_eq!(h.mkdir(g, "/evil"), e(XsError::Eacces));
    assert_eq!(h.rm(g, "/tool"), e(XsError::Eacces));
    assert_eq!(h.set_perms(g, "/", &["n5"]), e(XsError::Eacces));
    assert_eq!(h.read(g, "/tool/xenstored"), e(XsError::Eacces));
    assert_eq!(h.dir(g, "/"), e(XsError::Eacces));
    assert_eq!(h.read(c, "/evil"), e(XsError::Enoent));
    assert_eq!(h.get_perms(c, "/"), Got::Ok(b"n0\0".to_vec()));
}

#[test]
fn xsa_414_415_refused_creation_leaves_no_half_created_parents() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.args(c, MsgType::SetQuota, &["5", "nodes", "3"]), okr());
    assert_eq!(h.write(g, "a/b/c/d", b"1"), e(XsError::Enospc));
    assert_eq!(h.read(g, "a"), e(XsError::Enoent));
    h.check();
    assert_eq!(h.write(g, "a/b", b"1"), okr());
    h.check();
    // Memory quota.
    assert_eq!(h.args(c, MsgType::SetQuota, &["5", "nodes", "1000"]), okr());
    assert_eq!(h.args(c, MsgType::SetQuota, &["5", "memory", "600"]), okr());
    let deep = (0..20)
        .map(|i| format!("level{i}"))
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(h.write(g, &format!("m/{deep}"), b"1"), e(XsError::Enomem));
    assert_eq!(h.read(g, "m"), e(XsError::Enoent));
    h.check();
    // Node size.
    assert_eq!(h.write(g, "big", &vec![b'x'; 3000]), e(XsError::Enospc));
    assert_eq!(h.read(g, "big"), e(XsError::Enoent));
    h.check();
}

#[test]
fn xsa_418_deep_trees_are_handled_iteratively() {
    let mut h = Harness::new();
    let c = h.dom0();
    // Levels of "/d" up to the path limit: about 1000 levels.
    let mut path = String::new();
    while path.len() + 2 <= 2048 {
        path.push_str("/d");
    }
    assert_eq!(h.write(c, &path, b"leaf"), okr());
    assert_eq!(h.read(c, &path), Got::Ok(b"leaf".to_vec()));
    h.check();
    assert_eq!(h.rm(c, "/d"), okr());
    assert_eq!(h.read(c, "/d"), e(XsError::Enoent));
    h.check();
    // Store-level: a much deeper tree with short names, within the absolute path limit, and
    // its removal: neither the check nor the walk nor the removal recurses.
    let mut s = Store::new(DomId(0));
    let mut cur = NodeId::ROOT;
    let perms = Perms::owner_only(DomId(0), Perm::None);
    for _ in 0..1500 {
        cur = s.create(cur, "x", &perms, b"").unwrap();
    }
    assert_eq!(s.check(), Ok(()));
    assert_eq!(s.subtree_len(s.lookup("/x").unwrap()), 1500);
    let victim = "/x".repeat(700);
    let id = s.lookup(&victim).unwrap();
    let mut removed = 0;
    s.remove(id, |_, _| removed += 1);
    assert_eq!(removed, 801);
    assert_eq!(s.check(), Ok(()));
    assert_eq!(s.len(), 1 + 699);
}

#[test]
fn xsa_419_released_domain_nodes_deleted_and_quota_not_bypassed() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g5 = h.guest(c, 5);
    let g6 = h.guest(c, 6);
    h.home(c, 5);
    h.home(c, 6);
    // Domain 5 opens a directory to domain 6.
    assert_eq!(h.write(g5, "shared", b""), okr());
    assert_eq!(h.set_perms(g5, "shared", &["n5", "b6"]), okr());
    assert_eq!(h.args(c, MsgType::SetQuota, &["6", "nodes", "3"]), okr());
    // Nodes 6 creates there count against 6 (home + 2), not 5 or dom0.
    assert_eq!(h.write(g6, "/local/domain/5/shared/a", b""), okr());
    assert_eq!(h.write(g6, "/local/domain/5/shared/b", b""), okr());
    assert_eq!(
        h.write(g6, "/local/domain/5/shared/c", b""),
        e(XsError::Enospc)
    );
    assert_eq!(
        h.get_perms(c, "/local/domain/5/shared/a"),
        Got::Ok(b"n6\0b6\0".to_vec())
    );
    // Handing the node to dom0 (so it no longer counts) is refused.
    assert_eq!(
        h.set_perms(g6, "/local/domain/5/shared/a", &["n0", "b6"]),
        e(XsError::Eperm)
    );
    assert_eq!(h.set_perms(g5, "shared", &["n0", "b6"]), e(XsError::Eperm));
    // A transaction cannot collect more nodes than the quota either: each write checks the
    // committed usage, the commit checks the sum.
    assert_eq!(h.rm(g6, "/local/domain/5/shared/b"), okr());
    let tx = h.start(g6);
    assert_eq!(h.write_tx(g6, tx, "/local/domain/5/shared/t1", b""), okr());
    assert_eq!(h.write_tx(g6, tx, "/local/domain/5/shared/t2", b""), okr());
    assert_eq!(h.end(g6, tx, true), e(XsError::Enospc));
    assert_eq!(h.read(c, "/local/domain/5/shared/t1"), e(XsError::Enoent));
    h.check();
    // Releasing 6 deletes every node it owns, wherever it is.
    assert_eq!(h.args(c, MsgType::Release, &["6"]), okr());
    assert_eq!(h.read(c, "/local/domain/6"), e(XsError::Enoent));
    assert_eq!(h.read(c, "/local/domain/5/shared/a"), e(XsError::Enoent));
    assert_eq!(h.dir(c, "/local/domain/5/shared"), Got::Ok(vec![]));
    assert_eq!(
        h.get_perms(c, "/local/domain/5/shared"),
        Got::Ok(b"n5\0".to_vec())
    );
    assert_eq!(h.engine.store().usage(DomId(6)).nodes, 0);
    h.check();
    let _ = g5;
}

#[test]
fn xsa_421_create_and_delete_in_one_transaction() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    for conn in [c, g] {
        let base = if conn == c { "/t421" } else { "t421" };
        let tx = h.start(conn);
        assert_eq!(h.write_tx(conn, tx, &format!("{base}/a/b"), b"1"), okr());
        assert_eq!(
            h.call(conn, MsgType::Rm, tx, &z(&format!("{base}/a"))),
            okr()
        );
        assert_eq!(h.write_tx(conn, tx, &format!("{base}/a"), b"2"), okr());
        assert_eq!(
            h.call(conn, MsgType::Rm, tx, &z(&format!("{base}/a"))),
            okr()
        );
        assert_eq!(h.end(conn, tx, true), okr());
        h.check();
        assert_eq!(h.read(conn, &format!("{base}/a")), e(XsError::Enoent));
        assert_eq!(h.dir(conn, base), Got::Ok(vec![]));
    }
    assert_eq!(h.engine.store().usage(DomId(5)).nodes, 2);
}

#[test]
fn xsa_425_release_twice() {
    let mut h = Harness::new();
    let c = h.dom0();
    h.guest(c, 5);
    assert_eq!(h.args(c, MsgType::Release, &["5"]), okr());
    assert_eq!(h.args(c, MsgType::Release, &["5"]), e(XsError::Enoent));
    assert_eq!(h.args(c, MsgType::Release, &["77"]), e(XsError::Enoent));
    h.engine.domain_state(DomId(5), DomainState::Dead);
    assert_eq!(h.read(c, "/tool"), Got::Ok(vec![]));
    // The id can be used again.
    h.guest(c, 5);
    assert_eq!(h.args(c, MsgType::IsDomainIntroduced, &["5"]), txt("T"));
    h.check();
}

#[test]
fn xsa_206_write_floods_are_rate_limited() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let g = h.guest(d0, 7);
    h.home(d0, 7);
    // The guest may burst 10 writes; the 11th drives its credit negative.
    for i in 0..11 {
        assert_eq!(h.write(g, &format!("w{i}"), b"x"), okr(), "write {i}");
    }
    assert!(!h.engine.can_receive(g));
    // Its next request is not taken while it has no credit...
    let msg = xsstate::wire::Message::new(MsgType::Read, 99, TxId(0), z("w0")).encode();
    assert_eq!(h.engine.receive(g, &msg), Ok(0));
    // ...dom0 is never held back...
    assert_eq!(h.write(d0, "/dom0-still-writes", b"1"), okr());
    // ...and the guest is served again once the credit has come back (200 writes/s).
    let wake = h.engine.next_wakeup_ms().expect("a wake-up time");
    assert!(wake > 0 && wake <= 10, "{wake}");
    h.engine.set_time_ms(wake);
    assert!(h.engine.can_receive(g));
    assert_eq!(h.read(g, "w0"), Got::Ok(b"x".to_vec()));
    // A disabled limit never holds anyone back.
    let mut cfg = EngineConfig::default();
    cfg.write_rate.per_s = 0;
    let mut h = Harness::with_config(cfg);
    let d0 = h.dom0();
    let g = h.guest(d0, 7);
    h.home(d0, 7);
    for i in 0..50 {
        assert_eq!(h.write(g, &format!("w{i}"), b"x"), okr());
    }
    assert!(h.engine.can_receive(g));
}

/// Runs `f` on a thread with the stub domain's stack size (64 KiB): a recursion per tree
/// level (1000 levels) overflows it, even though debug builds take more per frame.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no overflow, no panic");
}

#[test]
fn a_guests_deep_tree_needs_no_deep_stack() {
    on_small_stack(|| {
        let mut cfg = EngineConfig::default();
        cfg.quotas.set(xsstate::quota::QuotaKind::Nodes, 5000);
        let mut h = Harness::with_config(cfg);
        let c = h.dom0();
        let g = h.guest(c, 5);
        h.home(c, 5);
        assert_eq!(h.watch(c, "/local/domain/5", "deep"), okr());
        // About 1000 levels of "d/" within the relative path limit.
        let mut rel = String::from("d");
        while rel.len() + 2 <= 2000 {
            rel.push_str("/d");
        }
        assert_eq!(h.write(g, &rel, b"leaf"), okr());
        let tx = h.start(g);
        assert_eq!(
            h.write_tx(g, tx, &format!("{rel}/t"), b"in a transaction"),
            okr()
        );
        assert_eq!(h.end(g, tx, true), okr());
        assert_eq!(h.set_perms(g, "d", &["n5", "r0"]), okr());
        assert!(h.events(c).len() >= 3);
        h.check();
        // Through a live update's image and back.
        let bytes = xsstate::image::write(&h.engine.dump(&Default::default())).expect("dump");
        let image = xsstate::image::read(&bytes, xsstate::image::Layout::Seed).expect("read");
        let restored = xsstate::Engine::restore(image, EngineConfig::default()).expect("restore");
        let mut h = Harness::around(restored);
        let c = h.dom0();
        assert_eq!(
            h.read(c, &format!("/local/domain/5/{rel}/t")),
            Got::Ok(b"in a transaction".to_vec())
        );
        h.check();
        // The domain's release removes the whole tree.
        assert_eq!(h.args(c, MsgType::Release, &["5"]), okr());
        assert_eq!(h.read(c, "/local/domain/5/d"), e(XsError::Enoent));
        h.check();
    });
}

#[test]
fn release_domain_readable_by_all_as_xen_4_22() {
    // C xenstored 4.22 starts @releaseDomain as `n0 r<DOMID_ANY>`: a guest learns that a
    // domain went (not that one exists), so that it can drop what it granted to it.
    let cfg = EngineConfig {
        release_domain_for_all: true,
        ..EngineConfig::default()
    };
    let mut h = Harness::with_config(cfg);
    let c = h.dom0();
    assert_eq!(
        h.get_perms(c, "@releaseDomain"),
        Got::Ok(b"n0\0r32757\0".to_vec())
    );
    assert_eq!(
        h.get_perms(c, "@introduceDomain"),
        Got::Ok(b"n0\0".to_vec())
    );
    let g = h.guest(c, 5);
    assert_eq!(h.watch(g, "@releaseDomain", "rel"), okr());
    assert_eq!(h.watch(g, "@introduceDomain", "intro"), okr());
    h.events(g);
    h.guest(c, 6);
    assert_eq!(h.events(g), vec![], "@introduceDomain stays dom0's");
    h.engine.domain_state(DomId(6), DomainState::Shutdown);
    assert_eq!(h.events(g), vec![("@releaseDomain".into(), "rel".into())]);
    // A guest cannot change it (it is dom0's).
    assert_eq!(
        h.set_perms(g, "@releaseDomain", &["n0"]),
        e(XsError::Eacces)
    );
}
