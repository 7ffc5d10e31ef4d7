//! Per-request behaviour of the domain, control and flow-control requests, and of paths and
//! permissions, as C xenstored behaves (docs/misc/xenstore.txt); node, watch and transaction
//! requests are in `behaviour.rs`.
mod common;
use common::*;
use xsstate::wire::MsgType;
use xsstate::{DomId, Effect, EngineConfig, TxId, XsError};

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
        fx.iter().any(|f| matches!(f, Effect::LiveUpdate { conn, cmd: xsstate::control::LiveUpdateCmd::Start { timeout_s: 5, force: false, .. }, .. } if *conn == c)),
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

#[test]
fn domid_any_permission_entries() {
    // Xen 4.22's DOMID_ANY (32757) in a permission entry names every domain.
    let mut h = Harness::new();
    let c = h.dom0();
    let g5 = h.guest(c, 5);
    let g6 = h.guest(c, 6);
    assert_eq!(h.write(c, "/shared", b"x"), okr());
    assert_eq!(h.set_perms(c, "/shared", &["n0", "r32757"]), okr());
    assert_eq!(h.read(g5, "/shared"), Got::Ok(b"x".to_vec()));
    assert_eq!(h.read(g6, "/shared"), Got::Ok(b"x".to_vec()));
    assert_eq!(h.write(g5, "/shared", b"y"), e(XsError::Eacces));
    // Its watch fires for any domain, as for one named in the list.
    assert_eq!(h.watch(g6, "/shared", "t"), okr());
    assert_eq!(h.events(g6), vec![("/shared".into(), "t".into())]);
    assert_eq!(h.write(c, "/shared", b"z"), okr());
    assert_eq!(h.events(g6), vec![("/shared".into(), "t".into())]);
    // An entry that names the domain itself comes first and wins.
    assert_eq!(h.set_perms(c, "/shared", &["n0", "n5", "b32757"]), okr());
    assert_eq!(h.read(g5, "/shared"), e(XsError::Eacces));
    assert_eq!(h.write(g6, "/shared", b"w"), okr());
    // A guest shares its own node with every domain.
    h.home(c, 5);
    assert_eq!(h.write(g5, "/local/domain/5/pub", b"p"), okr());
    assert_eq!(
        h.set_perms(g5, "/local/domain/5/pub", &["n5", "r32757"]),
        okr()
    );
    assert_eq!(h.read(g6, "/local/domain/5/pub"), Got::Ok(b"p".to_vec()));
    assert_eq!(
        h.get_perms(g5, "/local/domain/5/pub"),
        Got::Ok(b"n5\0r32757\0".to_vec())
    );
    // A domain whose features lack DOMID_ANY (8): its DOMID_ANY entries count for nothing.
    assert_eq!(h.args(c, MsgType::SetFeature, &["7", "7"]), okr());
    let g7 = h.guest(c, 7);
    h.home(c, 7);
    assert_eq!(h.write(g7, "/local/domain/7/pub", b"p"), okr());
    assert_eq!(
        h.set_perms(g7, "/local/domain/7/pub", &["n7", "r32757"]),
        okr()
    );
    assert_eq!(
        h.get_perms(g7, "/local/domain/7/pub"),
        Got::Ok(b"n7\0".to_vec())
    );
    assert_eq!(h.read(g6, "/local/domain/7/pub"), e(XsError::Eacces));
    // DOMID_ANY cannot own a node.
    assert_eq!(h.set_perms(c, "/shared", &["n32757"]), e(XsError::Enoent));
    h.check();
}
