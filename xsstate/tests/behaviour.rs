//! Per-request behaviour of the node, permission, watch and transaction requests, as C
//! xenstored behaves (docs/misc/xenstore.txt); the others are in `behaviour_domain.rs`.
mod common;
use common::*;
use xsstate::wire::MsgType;
use xsstate::{TxId, XsError};

// ---------------------------------------------------------------- DIRECTORY / DIRECTORY_PART

#[test]
fn directory_lists_children_in_creation_order() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.dir(c, "/"), Got::Ok(b"tool\0".to_vec()));
    for n in ["z", "a", "m"] {
        assert_eq!(h.write(c, &format!("/d/{n}"), b""), okr());
    }
    assert_eq!(h.dir(c, "/d"), Got::Ok(b"z\0a\0m\0".to_vec()));
    assert_eq!(h.dir(c, "/d/z"), Got::Ok(vec![]));
    assert_eq!(h.dir(c, "/nope"), e(XsError::Enoent));
}

/// Parses a DIRECTORY_PART reply into (generation, names payload, complete).
fn part(reply: Got) -> (String, Vec<u8>, bool) {
    let Got::Ok(p) = reply else {
        panic!("error {reply:?}")
    };
    let nul = p.iter().position(|&b| b == 0).unwrap();
    let gen = String::from_utf8(p[..nul].to_vec()).unwrap();
    let rest = p[nul + 1..].to_vec();
    // The last chunk carries an extra NUL (an empty name).
    if rest == b"\0" {
        return (gen, vec![], true);
    }
    if rest.ends_with(b"\0\0") {
        return (gen, rest[..rest.len() - 1].to_vec(), true);
    }
    (gen, rest, false)
}

#[test]
fn directory_part_splits_long_lists() {
    let mut h = Harness::new();
    let c = h.dom0();
    let mut expected = Vec::new();
    for i in 0..1000 {
        let name = format!("child-{i:06}");
        assert_eq!(h.mkdir(c, &format!("/big/{name}")), okr());
        expected.extend_from_slice(&z(&name));
    }
    assert!(expected.len() > 4096);
    let mut got = Vec::new();
    let mut calls = 0;
    let mut gen0 = None;
    loop {
        let off = got.len().to_string();
        let r = h.args(c, MsgType::DirectoryPart, &["/big", &off]);
        if let Got::Ok(p) = &r {
            assert!(p.len() <= 4096);
        }
        let (gen, names, done) = part(r);
        gen0.get_or_insert(gen.clone());
        assert_eq!(
            Some(&gen),
            gen0.as_ref(),
            "generation is stable while unchanged"
        );
        got.extend_from_slice(&names);
        calls += 1;
        if done {
            break;
        }
        assert!(!names.is_empty());
        assert!(names.ends_with(b"\0"), "chunks end at a name boundary");
    }
    assert!(calls >= 4, "{calls} calls");
    assert_eq!(got, expected);
    // The full DIRECTORY does not fit in one reply: E2BIG, as C's send_reply.
    assert_eq!(h.dir(c, "/big"), e(XsError::E2big));
    // Offset beyond the end: generation and an empty string.
    let (gen, names, done) = part(h.args(c, MsgType::DirectoryPart, &["/big", "999999"]));
    assert_eq!(Some(gen.clone()), gen0);
    assert!(names.is_empty() && done);
    // A change of the children list changes the generation.
    assert_eq!(h.mkdir(c, "/big/another"), okr());
    let (gen2, _, _) = part(h.args(c, MsgType::DirectoryPart, &["/big", "0"]));
    assert_ne!(gen2, gen);
    assert_eq!(
        h.args(c, MsgType::DirectoryPart, &["/big"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.args(c, MsgType::DirectoryPart, &["/big", "x"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.args(c, MsgType::DirectoryPart, &["/nope", "0"]),
        e(XsError::Enoent)
    );
}

#[test]
fn directory_part_small_list_is_complete() {
    let mut h = Harness::new();
    let c = h.dom0();
    h.write(c, "/s/a", b"1");
    h.write(c, "/s/bb", b"1");
    let (_, names, done) = part(h.args(c, MsgType::DirectoryPart, &["/s", "0"]));
    assert!(done);
    assert_eq!(names, b"a\0bb\0");
    let (_, names, done) = part(h.args(c, MsgType::DirectoryPart, &["/s", "2"]));
    assert!(done);
    assert_eq!(names, b"bb\0");
    let (_, names, done) = part(h.args(c, MsgType::DirectoryPart, &["/s/a", "0"]));
    assert!(done && names.is_empty());
}

// ---------------------------------------------------------------- READ / WRITE / MKDIR

#[test]
fn read_write_values_with_nuls() {
    let mut h = Harness::new();
    let c = h.dom0();
    let v = b"\0a\0\0b\0".to_vec();
    assert_eq!(h.write(c, "/v", &v), okr());
    assert_eq!(h.read(c, "/v"), Got::Ok(v));
    assert_eq!(h.write(c, "/v", b""), okr());
    assert_eq!(h.read(c, "/v"), Got::Ok(vec![]));
    assert_eq!(h.read(c, "/missing"), e(XsError::Enoent));
    // WRITE without the path's NUL is invalid.
    assert_eq!(
        h.call(c, MsgType::Write, TxId(0), b"/nonul"),
        e(XsError::Einval)
    );
    // READ of a node with no terminating NUL in the argument is invalid.
    assert_eq!(h.call(c, MsgType::Read, TxId(0), b"/v"), e(XsError::Einval));
    h.check();
}

#[test]
fn mkdir_creates_parents_and_keeps_existing_values() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.mkdir(c, "/m/a/b"), okr());
    assert_eq!(h.read(c, "/m/a/b"), Got::Ok(vec![]));
    assert_eq!(h.read(c, "/m/a"), Got::Ok(vec![]));
    h.write(c, "/m/a", b"keep");
    assert_eq!(h.mkdir(c, "/m/a"), okr());
    assert_eq!(h.read(c, "/m/a"), Got::Ok(b"keep".to_vec()));
    h.check();
}

#[test]
fn read_only_socket_cannot_write() {
    let mut h = Harness::new();
    let c = h.dom0();
    let ro = h.engine.connect_socket(true);
    h.write(c, "/ro", b"1");
    assert_eq!(h.read(ro, "/ro"), Got::Ok(b"1".to_vec()));
    assert_eq!(h.write(ro, "/ro", b"2"), e(XsError::Eacces));
    assert_eq!(h.rm(ro, "/ro"), e(XsError::Eacces));
    assert_eq!(h.read(c, "/ro"), Got::Ok(b"1".to_vec()));
}

// ---------------------------------------------------------------- RM

#[test]
fn rm_semantics() {
    let mut h = Harness::new();
    let c = h.dom0();
    h.write(c, "/r/a/b/c", b"1");
    h.write(c, "/r/a/d", b"1");
    h.write(c, "/r/keep", b"1");
    assert_eq!(h.rm(c, "/r/a"), okr());
    for p in ["/r/a", "/r/a/b", "/r/a/b/c", "/r/a/d"] {
        assert_eq!(h.read(c, p), e(XsError::Enoent), "{p}");
    }
    assert_eq!(h.dir(c, "/r"), Got::Ok(b"keep\0".to_vec()));
    assert_eq!(h.rm(c, "/"), e(XsError::Einval));
    // Missing node whose parent exists: fine. Missing parent: ENOENT.
    assert_eq!(h.rm(c, "/r/none"), okr());
    assert_eq!(h.rm(c, "/r/none/deeper"), e(XsError::Enoent));
    h.check();
}

// ---------------------------------------------------------------- GET_PERMS / SET_PERMS

#[test]
fn perms_owner_semantics() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.get_perms(c, "/"), Got::Ok(b"n0\0".to_vec()));
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.get_perms(c, "/local/domain/5"), Got::Ok(b"n5\0".to_vec()));
    assert_eq!(h.write(g, "node", b"x"), okr());
    assert_eq!(h.get_perms(g, "node"), Got::Ok(b"n5\0".to_vec()));
    // The owner may change the other entries and its default...
    assert_eq!(h.set_perms(g, "node", &["r5", "b7"]), okr());
    assert_eq!(h.get_perms(g, "node"), Got::Ok(b"r5\0b7\0".to_vec()));
    // ...but not the owner (XSA-352)...
    assert_eq!(h.set_perms(g, "node", &["n7"]), e(XsError::Eperm));
    // ...which dom0 can.
    assert_eq!(h.set_perms(c, "/local/domain/5/node", &["n7", "r5"]), okr());
    assert_eq!(h.get_perms(g, "node"), Got::Ok(b"n7\0r5\0".to_vec()));
    // Now the guest only reads.
    assert_eq!(h.write(g, "node", b"y"), e(XsError::Eacces));
    assert_eq!(h.set_perms(g, "node", &["n5"]), e(XsError::Eacces));
    assert_eq!(h.read(g, "node"), Got::Ok(b"x".to_vec()));
    h.check();
}

#[test]
fn perms_quota_and_bad_letters() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    h.write(g, "p", b"");
    assert_eq!(h.set_perms(g, "p", &["n5", "r1", "r2", "r3", "r4"]), okr());
    assert_eq!(
        h.set_perms(g, "p", &["n5", "r1", "r2", "r3", "r4", "r6"]),
        e(XsError::Enospc)
    );
    // dom0 is not limited.
    assert_eq!(
        h.set_perms(
            c,
            "/local/domain/5/p",
            &["n5", "r1", "r2", "r3", "r4", "r6"]
        ),
        okr()
    );
    assert_eq!(
        h.set_perms(c, "/local/domain/5/p", &["x5"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.set_perms(c, "/local/domain/5/p", &["r"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.set_perms(c, "/local/domain/5/p", &["rabc"]),
        e(XsError::Einval)
    );
    assert_eq!(h.set_perms(c, "/local/domain/5/p", &[]), e(XsError::Einval));
    assert_eq!(h.set_perms(c, "/nope", &["n0"]), e(XsError::Enoent));
}

#[test]
fn perms_special_paths() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    assert_eq!(
        h.get_perms(c, "@introduceDomain"),
        Got::Ok(b"n0\0".to_vec())
    );
    assert_eq!(h.get_perms(c, "@releaseDomain"), Got::Ok(b"n0\0".to_vec()));
    assert_eq!(h.get_perms(c, "@other"), e(XsError::Enoent));
    assert_eq!(h.set_perms(c, "@releaseDomain", &["n0", "r5"]), okr());
    assert_eq!(
        h.get_perms(c, "@releaseDomain"),
        Got::Ok(b"n0\0r5\0".to_vec())
    );
    assert_eq!(
        h.get_perms(c, "@introduceDomain"),
        Got::Ok(b"n0\0".to_vec())
    );
    assert_eq!(
        h.set_perms(g, "@releaseDomain", &["n5"]),
        e(XsError::Eacces)
    );
    assert_eq!(h.set_perms(c, "@bogus", &["n0"]), e(XsError::Enoent));
}

// ---------------------------------------------------------------- WATCH / UNWATCH / RESET

#[test]
fn watch_registration_errors_and_first_event() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.watch(c, "/w", "t"), okr());
    assert_eq!(h.events(c), vec![("/w".into(), "t".into())]);
    assert_eq!(h.watch(c, "/w", "t"), e(XsError::Eexist));
    assert_eq!(h.watch(c, "/w", "t2"), okr());
    assert_eq!(h.events(c), vec![("/w".into(), "t2".into())]);
    assert_eq!(h.unwatch(c, "/w", "t"), okr());
    assert_eq!(h.unwatch(c, "/w", "t"), e(XsError::Enoent));
    assert_eq!(h.unwatch(c, "/x", "t2"), e(XsError::Enoent));
    assert_eq!(h.watch(c, "/bad//path", "t"), e(XsError::Einval));
    assert_eq!(
        h.call(c, MsgType::Watch, TxId(0), b"/w\0"),
        e(XsError::Einval)
    );
    h.write(c, "/w/k", b"1");
    assert_eq!(h.events(c), vec![("/w/k".into(), "t2".into())]);
    assert_eq!(h.unwatch(c, "/w", "t2"), okr());
    h.write(c, "/w/k", b"2");
    assert_eq!(h.events(c), vec![]);
}

#[test]
fn watch_fires_for_ancestors_only_and_on_removal_of_descendants() {
    let mut h = Harness::new();
    let c = h.dom0();
    let w = h.dom0();
    h.write(c, "/a/b/c", b"1");
    h.watch(w, "/a/b/c", "deep");
    h.watch(w, "/a", "top");
    h.events(w);
    h.write(c, "/a/b", b"x");
    assert_eq!(h.events(w), vec![("/a/b".into(), "top".into())]);
    h.write(c, "/ab", b"x");
    assert_eq!(h.events(w), vec![]);
    h.rm(c, "/a/b");
    let mut ev = h.events(w);
    ev.sort();
    assert_eq!(
        ev,
        vec![
            ("/a/b".into(), "top".into()),
            ("/a/b/c".into(), "deep".into())
        ]
    );
}

#[test]
fn watch_relative_reporting() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.watch(g, "dev", "rel"), okr());
    assert_eq!(h.watch(g, "/local/domain/5/dev", "abs"), okr());
    assert_eq!(
        h.events(g),
        vec![
            ("dev".into(), "rel".into()),
            ("/local/domain/5/dev".into(), "abs".into())
        ]
    );
    h.write(g, "dev/vif", b"1");
    assert_eq!(
        h.events(g),
        vec![
            ("dev/vif".into(), "rel".into()),
            ("/local/domain/5/dev/vif".into(), "abs".into())
        ]
    );
}

#[test]
fn watch_depth_argument() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.call(c, MsgType::Watch, TxId(0), b"/d\0tok\x001\0"), okr());
    assert_eq!(h.events(c), vec![("/d".into(), "tok".into())]);
    h.write(c, "/d/a", b"1");
    assert_eq!(h.events(c), vec![("/d/a".into(), "tok".into())]);
    h.write(c, "/d/a/b", b"1");
    assert_eq!(h.events(c), vec![]);
    assert_eq!(h.call(c, MsgType::Watch, TxId(0), b"/e\0tok\x000\0"), okr());
    h.events(c);
    h.write(c, "/e", b"1");
    assert_eq!(h.events(c), vec![("/e".into(), "tok".into())]);
    h.write(c, "/e/x", b"1");
    assert_eq!(h.events(c), vec![]);
    assert_eq!(
        h.call(c, MsgType::Watch, TxId(0), b"/f\0tok\0zz\0"),
        e(XsError::Einval)
    );
}

#[test]
fn reset_watches_clears_watches_and_transactions() {
    let mut h = Harness::new();
    let c = h.dom0();
    h.watch(c, "/r", "t");
    h.events(c);
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::ResetWatches, TxId(0), b""), okr());
    h.write(c, "/r/x", b"1");
    assert_eq!(h.events(c), vec![]);
    assert_eq!(h.read_tx(c, tx, "/r/x"), e(XsError::Enoent));
    // The same watch can be set again.
    assert_eq!(h.watch(c, "/r", "t"), okr());
}

// ---------------------------------------------------------------- TRANSACTIONS

#[test]
fn transaction_isolation_abort_and_errors() {
    let mut h = Harness::new();
    let c = h.dom0();
    let other = h.dom0();
    h.write(c, "/t/v", b"0");
    let tx = h.start(c);
    assert_eq!(h.write_tx(c, tx, "/t/v", b"1"), okr());
    assert_eq!(h.write_tx(c, tx, "/t/new", b"n"), okr());
    assert_eq!(h.read(other, "/t/v"), Got::Ok(b"0".to_vec()));
    assert_eq!(h.read(other, "/t/new"), e(XsError::Enoent));
    assert_eq!(
        h.call(c, MsgType::Directory, tx, &z("/t")),
        Got::Ok(b"v\0new\0".to_vec())
    );
    // A transaction id belongs to its connection.
    assert_eq!(h.read_tx(other, tx, "/t/v"), e(XsError::Enoent));
    // Nested start: EBUSY.
    assert_eq!(
        h.call(c, MsgType::TransactionStart, tx, b"\0"),
        e(XsError::Ebusy)
    );
    assert_eq!(h.end(c, tx, false), okr());
    assert_eq!(h.read(c, "/t/v"), Got::Ok(b"0".to_vec()));
    assert_eq!(h.read(c, "/t/new"), e(XsError::Enoent));
    assert_eq!(h.end(c, tx, true), e(XsError::Enoent));
    assert_eq!(h.read_tx(c, TxId(12345), "/t/v"), e(XsError::Enoent));
    let tx = h.start(c);
    assert_eq!(
        h.call(c, MsgType::TransactionEnd, tx, b"X\0"),
        e(XsError::Einval)
    );
    h.check();
}

#[test]
fn transaction_conflict_gives_eagain_and_applies_nothing() {
    let mut h = Harness::new();
    let a = h.dom0();
    let b = h.dom0();
    h.write(a, "/c/x", b"0");
    let t1 = h.start(a);
    let t2 = h.start(b);
    assert_eq!(h.read_tx(a, t1, "/c/x"), Got::Ok(b"0".to_vec()));
    assert_eq!(h.write_tx(a, t1, "/c/y", b"from1"), okr());
    assert_eq!(h.write_tx(b, t2, "/c/x", b"from2"), okr());
    assert_eq!(h.end(b, t2, true), okr());
    assert_eq!(h.end(a, t1, true), e(XsError::Eagain));
    assert_eq!(h.read(a, "/c/y"), e(XsError::Enoent));
    assert_eq!(h.read(a, "/c/x"), Got::Ok(b"from2".to_vec()));
    h.check();
}

#[test]
fn transaction_rm_and_watch_fire_on_commit() {
    let mut h = Harness::new();
    let c = h.dom0();
    let w = h.dom0();
    h.write(c, "/q/a", b"1");
    h.watch(w, "/q", "t");
    h.events(w);
    let tx = h.start(c);
    assert_eq!(h.call(c, MsgType::Rm, tx, &z("/q/a")), okr());
    assert_eq!(h.read_tx(c, tx, "/q/a"), e(XsError::Enoent));
    assert_eq!(h.read(c, "/q/a"), Got::Ok(b"1".to_vec()));
    assert_eq!(h.events(w), vec![]);
    assert_eq!(h.end(c, tx, true), okr());
    assert_eq!(h.events(w), vec![("/q/a".into(), "t".into())]);
    assert_eq!(h.read(c, "/q/a"), e(XsError::Enoent));
    h.check();
}

#[test]
fn transaction_quota_for_guest() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    let mut txs = Vec::new();
    for _ in 0..10 {
        txs.push(h.start(g));
    }
    assert_eq!(
        h.call(g, MsgType::TransactionStart, TxId(0), b"\0"),
        e(XsError::Enospc)
    );
    h.end(g, txs[0], false);
    assert_ne!(h.start(g), TxId(0));
    // dom0 has no transaction quota.
    for _ in 0..15 {
        h.start(c);
    }
}
