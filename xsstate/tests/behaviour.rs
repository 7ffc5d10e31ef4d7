//! Per-request behaviour of every message type, as C xenstored behaves (docs/misc/xenstore.txt).
mod common;
use common::*;
use xsstate::wire::MsgType;
use xsstate::{DomId, Effect, EngineConfig, TxId, XsError};

fn e(err: XsError) -> Got {
    Got::Err(err)
}

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

// ---------------------------------------------------------------- DOMAIN REQUESTS

#[test]
fn domain_requests_privileged_only() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    for (ty, args) in [
        (MsgType::Introduce, vec!["6", "1", "2"]),
        (MsgType::Release, vec!["5"]),
        (MsgType::IsDomainIntroduced, vec!["5"]),
        (MsgType::Resume, vec!["5"]),
        (MsgType::SetTarget, vec!["5", "0"]),
        (MsgType::SetFeature, vec!["5", "1"]),
        (MsgType::GetQuota, vec![]),
        (MsgType::SetQuota, vec!["nodes", "1"]),
        (MsgType::Control, vec!["check"]),
    ] {
        assert_eq!(h.args(g, ty, &args), e(XsError::Eacces), "{ty:?}");
    }
    // GET_DOMAIN_PATH is for everyone.
    assert_eq!(
        h.args(g, MsgType::GetDomainPath, &["7"]),
        txt("/local/domain/7")
    );
}

#[test]
fn introduce_release_is_introduced() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.args(c, MsgType::IsDomainIntroduced, &["5"]), txt("F"));
    assert_eq!(h.args(c, MsgType::IsDomainIntroduced, &["0"]), txt("T"));
    let g = h.guest(c, 5);
    let fx = h.engine.take_effects();
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Introduced { conn, domid: DomId(5), .. } if *conn == g)),
        "{fx:?}"
    );
    assert_eq!(h.args(c, MsgType::IsDomainIntroduced, &["5"]), txt("T"));
    // Introducing again resets the connection (reintroduction), no new connection.
    assert_eq!(h.args(c, MsgType::Introduce, &["5", "1005", "15"]), okr());
    assert!(h.engine.take_effects().iter().any(|f| matches!(
        f,
        Effect::Reintroduced {
            domid: DomId(5),
            ..
        }
    )));
    assert_eq!(
        h.engine
            .connections()
            .filter(|x| x.domid == DomId(5))
            .count(),
        1
    );
    assert_eq!(
        h.args(c, MsgType::Introduce, &["0", "1", "2"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.args(c, MsgType::Introduce, &["x", "1", "2"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.args(c, MsgType::Introduce, &["6", "1"]),
        e(XsError::Einval)
    );
    assert_eq!(h.args(c, MsgType::Release, &["5"]), okr());
    assert!(h.engine.take_effects().iter().any(|f| matches!(
        f,
        Effect::Released {
            domid: DomId(5),
            ..
        }
    )));
    assert!(h.engine.connection(g).is_none());
    assert_eq!(h.args(c, MsgType::IsDomainIntroduced, &["5"]), txt("F"));
    assert_eq!(h.args(c, MsgType::Release, &["5"]), e(XsError::Enoent));
    assert_eq!(h.args(c, MsgType::Release, &["0"]), e(XsError::Einval));
}

#[test]
fn get_domain_path_resume_set_target() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(
        h.args(c, MsgType::GetDomainPath, &["0"]),
        txt("/local/domain/0")
    );
    assert_eq!(
        h.args(c, MsgType::GetDomainPath, &["abc"]),
        e(XsError::Einval)
    );
    assert_eq!(h.args(c, MsgType::Resume, &["5"]), e(XsError::Enoent));
    let stub = h.guest(c, 5);
    let _g = h.guest(c, 6);
    h.home(c, 6);
    assert_eq!(h.args(c, MsgType::Resume, &["5"]), okr());
    // Before SET_TARGET the stub domain cannot touch domain 6's home.
    assert_eq!(h.write(stub, "/local/domain/6/x", b"1"), e(XsError::Eacces));
    assert_eq!(h.args(c, MsgType::SetTarget, &["5", "6"]), okr());
    assert_eq!(h.write(stub, "/local/domain/6/x", b"1"), okr());
    assert_eq!(
        h.args(c, MsgType::SetTarget, &["5", "9"]),
        e(XsError::Enoent)
    );
    assert_eq!(h.args(c, MsgType::SetTarget, &["5"]), e(XsError::Einval));
}

#[test]
fn features() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    let all = xsstate::ring::SUPPORTED_FEATURES.to_string();
    assert_eq!(h.args(g, MsgType::GetFeature, &[]), txt(&all));
    assert_eq!(h.args(c, MsgType::GetFeature, &["5"]), txt(&all));
    assert_eq!(h.args(g, MsgType::GetFeature, &["5"]), e(XsError::Eacces));
    assert_eq!(h.args(c, MsgType::SetFeature, &["9", "1"]), okr());
    assert_eq!(h.args(c, MsgType::GetFeature, &["9"]), txt("1"));
    assert_eq!(
        h.args(c, MsgType::SetFeature, &["9", "64"]),
        e(XsError::Einval)
    );
    assert_eq!(
        h.args(c, MsgType::SetFeature, &["5", "1"]),
        e(XsError::Ebusy)
    );
    assert_eq!(h.args(c, MsgType::GetFeature, &["11"]), e(XsError::Enoent));
    // Domain 9 set to RECONNECTION only: introduced with those features, it reads its own
    // features, and the depth of its watches is ignored (no WATCHDEPTH).
    h.engine.take_effects();
    let g9 = h.guest(c, 9);
    assert!(h.engine.take_effects().iter().any(|f| matches!(
        f,
        Effect::Introduced {
            domid: DomId(9),
            features: 1,
            ..
        }
    )));
    assert_eq!(h.args(g9, MsgType::GetFeature, &[]), txt("1"));
    h.home(c, 9);
    assert_eq!(h.args(g9, MsgType::Watch, &["w", "t", "0"]), okr());
    h.events(g9);
    assert_eq!(h.write(g9, "w/a/b", b"1"), okr());
    assert_eq!(
        h.events(g9).len(),
        1,
        "depth 0 was honoured without WATCHDEPTH"
    );
    // Domain 5 (all features): depth 0 means the watched node only.
    h.home(c, 5);
    assert_eq!(h.args(g, MsgType::Watch, &["w", "t", "0"]), okr());
    h.events(g);
    assert_eq!(h.write(g, "w/a/b", b"1"), okr());
    assert_eq!(
        h.events(g).len(),
        0,
        "depth 0 was not honoured with WATCHDEPTH"
    );
}

#[test]
fn quotas_get_set_and_enforced() {
    let mut h = Harness::new();
    let c = h.dom0();
    let Got::Ok(names) = h.args(c, MsgType::GetQuota, &[]) else {
        panic!()
    };
    let names = String::from_utf8(names).unwrap();
    assert!(
        names.contains("nodes") && names.contains("path-max"),
        "{names}"
    );
    assert_eq!(h.args(c, MsgType::GetQuota, &["nodes"]), txt("1000"));
    assert_eq!(h.args(c, MsgType::GetQuota, &["bogus"]), e(XsError::Einval));
    assert_eq!(h.args(c, MsgType::SetQuota, &["watches", "3"]), okr());
    assert_eq!(h.args(c, MsgType::GetQuota, &["watches"]), txt("3"));
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.args(c, MsgType::GetQuota, &["5", "watches"]), txt("3"));
    assert_eq!(
        h.args(c, MsgType::GetQuota, &["77", "watches"]),
        e(XsError::Enoent)
    );
    assert_eq!(h.args(c, MsgType::SetQuota, &["5", "nodes", "3"]), okr());
    assert_eq!(h.args(c, MsgType::GetQuota, &["5", "nodes"]), txt("3"));
    // The home node counts: two more.
    assert_eq!(h.write(g, "a", b""), okr());
    assert_eq!(h.write(g, "b", b""), okr());
    assert_eq!(h.write(g, "c", b""), e(XsError::Enospc));
    for i in 0..3 {
        assert_eq!(h.watch(g, &format!("w{i}"), "t"), okr());
    }
    assert_eq!(h.watch(g, "w9", "t"), e(XsError::E2big));
    h.check();
}

// ---------------------------------------------------------------- CONTROL

fn ctl(h: &mut Harness, c: xsstate::ConnId, args: &[&str]) -> Got {
    h.args(c, MsgType::Control, args)
}

fn text_of(g: Got) -> String {
    match g {
        Got::Ok(p) => String::from_utf8(p).unwrap(),
        Got::Err(e) => panic!("{e}"),
    }
}

#[test]
fn control_commands() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(ctl(&mut h, c, &["check"]), okr());
    assert_eq!(ctl(&mut h, c, &["log", "on"]), okr());
    h.engine.take_effects();
    h.write(c, "/logged", b"1");
    assert!(h
        .engine
        .take_effects()
        .iter()
        .any(|f| matches!(f, Effect::Log(l) if l.contains("WRITE"))));
    assert_eq!(ctl(&mut h, c, &["log", "off"]), okr());
    h.engine.take_effects();
    h.write(c, "/logged", b"2");
    assert!(h.engine.take_effects().is_empty());
    assert_eq!(ctl(&mut h, c, &["log", "maybe"]), e(XsError::Einval));
    assert_eq!(ctl(&mut h, c, &["print", "hello there"]), okr());
    assert!(h
        .engine
        .take_effects()
        .contains(&Effect::Log("hello there".into())));
    let mem = text_of(ctl(&mut h, c, &["memreport"]));
    assert!(mem.contains("nodes:"), "{mem}");
    let q = text_of(ctl(&mut h, c, &["quota"]));
    assert!(
        q.starts_with("Quota settings:\n") && q.contains("nodes            :     1000"),
        "{q}"
    );
    assert_eq!(ctl(&mut h, c, &["quota", "set", "nodes", "77"]), okr());
    assert_eq!(h.args(c, MsgType::GetQuota, &["nodes"]), txt("77"));
    assert_eq!(
        ctl(&mut h, c, &["quota", "set", "nodes", "0"]),
        e(XsError::Einval)
    );
    assert_eq!(
        ctl(&mut h, c, &["quota", "set", "nope", "3"]),
        e(XsError::Einval)
    );
    let d0 = text_of(ctl(&mut h, c, &["quota", "0"]));
    assert!(
        d0.starts_with("Domain 0:\n") && d0.contains("nodes"),
        "{d0}"
    );
    assert_eq!(ctl(&mut h, c, &["quota", "42"]), e(XsError::Enoent));
    let soft = text_of(ctl(&mut h, c, &["quota-soft"]));
    assert!(soft.contains("memory"), "{soft}");
    assert_eq!(
        ctl(&mut h, c, &["quota-soft", "set", "memory", "1234"]),
        okr()
    );
    assert!(text_of(ctl(&mut h, c, &["quota-soft"])).contains("1234"));
    let help = text_of(ctl(&mut h, c, &["help"]));
    assert!(
        help.contains("check") && help.contains("live-update"),
        "{help}"
    );
    assert_eq!(ctl(&mut h, c, &["frobnicate"]), e(XsError::Einval));
    assert_eq!(
        h.call(c, MsgType::Control, TxId(0), b""),
        e(XsError::Einval)
    );
}

#[test]
fn control_live_update_is_an_effect_without_reply() {
    let mut h = Harness::new();
    let c = h.dom0();
    h.engine.take_effects();
    let mut p = z("live-update");
    p.extend_from_slice(&z("-s"));
    p.extend_from_slice(&z("-t"));
    p.extend_from_slice(&z("5"));
    let used = h.send(c, MsgType::Control, TxId(0), &p);
    assert_eq!(used, 16 + p.len());
    assert!(
        h.engine.drain_output(c).is_empty(),
        "no reply from the engine"
    );
    let fx = h.engine.take_effects();
    assert!(
        fx.iter().any(|f| matches!(f, Effect::LiveUpdate { conn, cmd: xsstate::control::LiveUpdateCmd::Start { timeout_s: 5, force: false }, .. } if *conn == c)),
        "{fx:?}"
    );
    // A bad sub-command is an ordinary error reply.
    assert_eq!(ctl(&mut h, c, &["live-update", "-x"]), e(XsError::Einval));
}

// ---------------------------------------------------------------- UNKNOWN TYPES

#[test]
fn unknown_types_enosys() {
    let mut h = Harness::new();
    let c = h.dom0();
    for ty in [20u32, 27, 15, 16, 1000] {
        let (rt, payload) = h.call_raw(c, ty, TxId(0), b"/\0");
        assert_eq!(rt, MsgType::Error as u32, "type {ty}");
        assert_eq!(payload, z("ENOSYS"), "type {ty}");
    }
    // The connection still works.
    assert_eq!(h.read(c, "/tool"), Got::Ok(vec![]));
}

// ---------------------------------------------------------------- PATHS AND PERMISSIONS

#[test]
fn path_validation() {
    let mut h = Harness::new();
    let c = h.dom0();
    for bad in ["/a b", "/a.b", "/a//b", "/a/", "", "/ä", "/a\tb"] {
        assert_eq!(h.write(c, bad, b"1"), e(XsError::Einval), "{bad:?}");
        assert_eq!(h.read(c, bad), e(XsError::Einval), "{bad:?}");
    }
    assert_eq!(h.write(c, "/ok-_@AZ09", b"1"), okr());
    // An unprivileged domain's relative path is limited after prefixing with its home
    // (XSA-323), by the path-max quota.
    let g = h.guest(c, 4);
    h.home(c, 4);
    // (Short components: a child name of 2048 bytes would overflow its parent's node-size.)
    let rel = "yyyyyyy/".repeat(256);
    let rel = rel.trim_end_matches('/').to_string() + "z";
    assert_eq!(rel.len(), 2048);
    assert_eq!(h.write(g, &rel, b"1"), okr());
    assert_eq!(
        h.read(c, &format!("/local/domain/4/{rel}")),
        Got::Ok(b"1".to_vec())
    );
    let rel = rel + "z";
    assert_eq!(h.write(g, &rel, b"1"), e(XsError::Einval));
    // The privileged domain is limited by the payload only (C xenstored 4.18 and later).
    let long = format!("/long/{}", "z".repeat(3500));
    assert_eq!(h.write(c, &long, b"1"), okr());
    assert_eq!(h.read(c, &long), Got::Ok(b"1".to_vec()));
    h.check();
}

#[test]
fn path_max_for_privileged_callers_as_c_4_17() {
    let cfg = EngineConfig {
        path_max_for_privileged: true,
        ..EngineConfig::default()
    };
    let mut h = Harness::with_config(cfg);
    let c = h.dom0();
    // 2048 bytes after the prefix (none here) pass, one more is EINVAL for dom0 too.
    let fits = format!("/{}", "p".repeat(2047));
    assert_eq!(h.write(c, &fits, b"x"), okr());
    let long = format!("/{}", "p".repeat(2048));
    assert_eq!(h.write(c, &long, b"x"), e(XsError::Einval));
    assert_eq!(h.read(c, &long), e(XsError::Einval));
    // After a /local/domain/<n>/ prefix the same 2048 bytes are allowed.
    let local = format!("/local/domain/7/{}", "q".repeat(2048));
    assert_eq!(h.write(c, &local, b"x"), okr());
    h.check();
}

#[test]
fn permission_errors_do_not_leak_existence() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    h.write(c, "/secret/present", b"s");
    assert_eq!(h.read(g, "/secret/present"), e(XsError::Eacces));
    assert_eq!(h.read(g, "/secret/absent"), e(XsError::Eacces));
    assert_eq!(h.read(g, "/secret/absent/deeper"), e(XsError::Eacces));
    assert_eq!(h.dir(g, "/secret"), e(XsError::Eacces));
    assert_eq!(h.get_perms(g, "/secret/absent"), e(XsError::Eacces));
    // In its own home a missing node is just missing.
    assert_eq!(h.read(g, "missing"), e(XsError::Enoent));
    assert_eq!(h.read(g, "missing/deeper"), e(XsError::Enoent));
    // Readable parent, unreadable node: EACCES; readable node: the value.
    assert_eq!(h.set_perms(c, "/secret", &["n0", "r5"]), okr());
    assert_eq!(h.read(g, "/secret/absent"), e(XsError::Enoent));
    assert_eq!(h.read(g, "/secret/present"), e(XsError::Eacces));
    assert_eq!(h.write(g, "/secret/new", b"x"), e(XsError::Eacces));
}

#[test]
fn implicit_parents_inherit_perms_and_creator_owns() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    assert_eq!(h.mkdir(c, "/shared"), okr());
    assert_eq!(h.set_perms(c, "/shared", &["n0", "b5", "r7"]), okr());
    assert_eq!(h.write(g, "/shared/a/b/c", b"v"), okr());
    for p in ["/shared/a", "/shared/a/b", "/shared/a/b/c"] {
        assert_eq!(h.get_perms(c, p), Got::Ok(b"n5\0b5\0r7\0".to_vec()), "{p}");
    }
    assert_eq!(h.read(c, "/shared/a"), Got::Ok(vec![]));
    // dom0's creations keep the parent's owner.
    assert_eq!(h.write(c, "/shared/d/e", b"v"), okr());
    assert_eq!(
        h.get_perms(c, "/shared/d"),
        Got::Ok(b"n0\0b5\0r7\0".to_vec())
    );
    h.check();
}

#[test]
fn guest_home_and_root() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    assert_eq!(h.write(g, "/x", b"1"), e(XsError::Eacces));
    assert_eq!(h.dir(g, "/"), e(XsError::Eacces));
    assert_eq!(h.write(g, "x", b"1"), e(XsError::Eacces));
    h.home(c, 5);
    assert_eq!(h.write(g, "x", b"1"), okr());
    assert_eq!(h.read(c, "/local/domain/5/x"), Got::Ok(b"1".to_vec()));
}

// ---------------------------------------------------------------- FLOW CONTROL

#[test]
fn outstanding_request_quota() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    let mut stream = Vec::new();
    for i in 0..30u32 {
        stream.extend_from_slice(
            &xsstate::Message::new(MsgType::Read, 100 + i, TxId(0), z("/local/domain/5")).encode(),
        );
    }
    let used = h.engine.receive(g, &stream).unwrap();
    let one = stream.len() / 30;
    assert_eq!(used, 20 * one, "stops after 20 queued replies");
    assert!(!h.engine.can_receive(g));
    assert_eq!(h.engine.receive(g, &stream[used..]).unwrap(), 0);
    // dom0 is not held back.
    assert!(h.engine.can_receive(c));
    // Reading the replies lets the rest in.
    let out = h.engine.drain_output(g);
    let (msgs, _) = xsstate::wire::decode_all(&out).unwrap();
    assert_eq!(msgs.len(), 20);
    assert!(h.engine.can_receive(g));
    assert_eq!(h.engine.receive(g, &stream[used..]).unwrap(), 10 * one);
    let (msgs, _) = xsstate::wire::decode_all(&h.engine.drain_output(g)).unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.req_id).collect::<Vec<_>>(),
        (120..130).collect::<Vec<_>>()
    );
}

#[test]
fn event_queue_is_bounded() {
    let cfg = EngineConfig {
        event_queue_limit_bytes: 1000,
        ..EngineConfig::default()
    };
    let mut h = Harness::with_config(cfg);
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.watch(g, "", "bad"), e(XsError::Einval));
    assert_eq!(h.watch(g, "/local/domain/5", "t"), okr());
    h.events(g);
    for i in 0..200 {
        h.write(c, &format!("/local/domain/5/k{i}"), b"");
        h.set_perms(c, &format!("/local/domain/5/k{i}"), &["n5"]);
    }
    let queued = h.engine.connection(g).unwrap().out_bytes;
    assert!(queued <= 1000, "{queued}");
    assert!(h.engine.connection(g).unwrap().events_dropped > 0);
    let ev = h.events(g);
    assert!(!ev.is_empty() && ev.len() < 200, "{}", ev.len());
    // Space again: events flow.
    h.write(c, "/local/domain/5/k0", b"again");
    assert_eq!(h.events(g), vec![("/local/domain/5/k0".into(), "t".into())]);
}

#[test]
fn limits_hit_are_logged_once_per_domain_and_limit() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    h.engine.take_effects();
    for _ in 0..10 {
        h.start(g);
    }
    let logs = |h: &mut Harness| -> Vec<String> {
        h.engine
            .take_effects()
            .into_iter()
            .filter_map(|f| match f {
                Effect::Log(l) => Some(l),
                _ => None,
            })
            .collect()
    };
    assert!(logs(&mut h).is_empty());
    assert_eq!(
        h.call(g, MsgType::TransactionStart, TxId(0), b"\0"),
        e(XsError::Enospc)
    );
    let l = logs(&mut h);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with(
            "domain 5: limit transactions hit: TRANSACTION_START refused with ENOSPC: 10 open, quota 10"
        ),
        "{l:?}"
    );
    // Rate-limited: the next refusals within 10 s are counted, not logged.
    for _ in 0..5 {
        h.call(g, MsgType::TransactionStart, TxId(0), b"\0");
    }
    assert!(logs(&mut h).is_empty());
    // Another limit of the same domain is logged.
    assert_eq!(h.write(g, "big", &vec![b'x'; 3000]), e(XsError::Enospc));
    let l = logs(&mut h);
    assert!(l.iter().any(|x| x.contains("limit node-size hit")), "{l:?}");
    // memreport counts the hits.
    let Got::Ok(report) = h.args(c, MsgType::Control, &["memreport"]) else {
        panic!()
    };
    let report = String::from_utf8(report).unwrap();
    assert!(report.contains("transactions 6;"), "{report}");
}
