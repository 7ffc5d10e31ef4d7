//! What a hostile guest gets, as the lab's `abuse-*` scenarios check it on Xen: the exact
//! answers to malformed requests, and a log line naming the domain for every limit it hits.
mod common;
use common::*;
use xsstate::wire::{Message, MsgType};
use xsstate::{Effect, TxId, XsError};

/// The malformed but well-framed requests the lab's test guest sends (`abuse-malformed`,
/// `xsstub-test-guest=malformed`), from domain 5, with the answer each must get. Keep in
/// step with `kernel/src/service/testguest/modes.rs` and `qemu-tests/scenarios/abuse-malformed.sh`.
fn malformed_cases() -> Vec<(&'static str, u32, Vec<u8>, &'static str)> {
    let rd = MsgType::Read as u32;
    let long_rel = "p/".repeat(1100);
    vec![
        ("read-no-nul", rd, b"name".to_vec(), "EINVAL"),
        ("read-two-args", rd, b"name\0name\0".to_vec(), "EINVAL"),
        ("read-empty", rd, b"".to_vec(), "EINVAL"),
        ("read-bad-char", rd, b"na*me\0".to_vec(), "EINVAL"),
        ("read-not-utf8", rd, b"\xff\xfe\0".to_vec(), "EINVAL"),
        ("read-double-slash", rd, b"data//x\0".to_vec(), "EINVAL"),
        ("read-trailing-slash", rd, b"data/\0".to_vec(), "EINVAL"),
        ("read-special", rd, b"@releaseDomain\0".to_vec(), "EINVAL"),
        (
            "read-too-long",
            rd,
            z(long_rel.trim_end_matches('/')),
            "EINVAL",
        ),
        (
            "write-no-value-nul",
            MsgType::Write as u32,
            b"data/m".to_vec(),
            "EINVAL",
        ),
        (
            "mkdir-special",
            MsgType::Mkdir as u32,
            b"@x\0".to_vec(),
            "EINVAL",
        ),
        ("rm-root", MsgType::Rm as u32, b"/\0".to_vec(), "EACCES"),
        (
            "set-perms-bad-domid",
            MsgType::SetPerms as u32,
            b"data\0rx1\0".to_vec(),
            "EINVAL",
        ),
        (
            "set-perms-bad-letter",
            MsgType::SetPerms as u32,
            b"data\0q5\0".to_vec(),
            "EINVAL",
        ),
        (
            "set-perms-none",
            MsgType::SetPerms as u32,
            b"data\0".to_vec(),
            "EINVAL",
        ),
        (
            "get-domain-path-bad",
            MsgType::GetDomainPath as u32,
            b"5x\0".to_vec(),
            "EINVAL",
        ),
        (
            "get-domain-path-huge",
            MsgType::GetDomainPath as u32,
            b"99999999999999999999999\0".to_vec(),
            "EINVAL",
        ),
        (
            "directory-part-bad-offset",
            MsgType::DirectoryPart as u32,
            b"data\0x1\0".to_vec(),
            "EINVAL",
        ),
        (
            "watch-no-token",
            MsgType::Watch as u32,
            b"data\0".to_vec(),
            "EINVAL",
        ),
        (
            "watch-bad-path",
            MsgType::Watch as u32,
            b"a*b\0t\0".to_vec(),
            "EINVAL",
        ),
        (
            "unwatch-unknown",
            MsgType::Unwatch as u32,
            b"data\0nope\0".to_vec(),
            "ENOENT",
        ),
        (
            "txn-end-bad-arg",
            MsgType::TransactionEnd as u32,
            b"X\0".to_vec(),
            "EINVAL",
        ),
        ("type-99", 99, b"name\0".to_vec(), "ENOSYS"),
        ("type-20-restrict", 20, b"name\0".to_vec(), "ENOSYS"),
        ("type-15-watch-event", 15, b"a\0b\0".to_vec(), "ENOSYS"),
        ("type-16-error", 16, b"EINVAL\0".to_vec(), "ENOSYS"),
        ("type-max", u32::MAX, b"".to_vec(), "ENOSYS"),
        (
            "introduce-unpriv",
            MsgType::Introduce as u32,
            b"9\x0012\x003\0".to_vec(),
            "EACCES",
        ),
        (
            "control-unpriv",
            MsgType::Control as u32,
            b"print\0x\0".to_vec(),
            "EACCES",
        ),
        (
            "set-quota-unpriv",
            MsgType::SetQuota as u32,
            b"5\0nodes\x009\0".to_vec(),
            "EACCES",
        ),
    ]
}

#[test]
fn malformed_requests_get_errors_and_the_connection_keeps_working() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    assert_eq!(h.write(c, "/local/domain/5/name", b"bad"), okr());
    assert_eq!(h.write(c, "/local/domain/5/data", b""), okr());
    assert_eq!(h.set_perms(c, "/local/domain/5/data", &["b5"]), okr());
    for (name, ty, payload, want) in malformed_cases() {
        let (rty, rp) = h.call_raw(g, ty, TxId(0), &payload);
        let got = if rty == MsgType::Error as u32 {
            String::from_utf8_lossy(rp.strip_suffix(b"\0").unwrap_or(&rp)).into_owned()
        } else {
            format!("type {rty}")
        };
        assert_eq!(got, want, "{name}");
    }
    // A transaction that is not this connection's.
    assert_eq!(h.read_tx(g, TxId(4242), "name"), Got::Err(XsError::Enoent));
    // RESET_WATCHES inside a transaction (XSA-484).
    let tx = h.start(g);
    assert_eq!(
        h.call(g, MsgType::ResetWatches, tx, b""),
        Got::Err(XsError::Ebusy)
    );
    assert_eq!(h.end(g, tx, false), okr());
    // XSA-324: a token that makes later events too big; they are dropped, nothing else.
    let token = "T".repeat(4000);
    assert_eq!(h.watch(g, "data", &token), okr());
    assert_eq!(h.events(g), vec![("data".to_string(), token.clone())]);
    let child = format!("data/{}", "c".repeat(100));
    assert_eq!(h.write(g, &child, b"1"), okr());
    assert_eq!(h.events(g), vec![]);
    assert!(h.engine.connection(g).unwrap().events_dropped >= 1);
    // Still served.
    assert_eq!(h.read(g, "name"), Got::Ok(b"bad".to_vec()));
    h.check();
}

/// The `domain N: limit NAME hit: ...` lines logged so far.
fn limit_lines(h: &mut Harness) -> Vec<String> {
    h.engine
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Log(l) if l.contains(": limit ") => Some(l),
            _ => None,
        })
        .collect()
}

#[test]
fn every_limit_a_guest_hits_is_logged_with_its_domain() {
    let mut h = Harness::new();
    let c = h.dom0();
    let g = h.guest(c, 5);
    h.home(c, 5);
    limit_lines(&mut h);
    // Watches: the 129th is refused with E2BIG.
    for i in 0..128 {
        assert_eq!(h.watch(g, "w", &format!("t{i}")), okr(), "watch {i}");
    }
    assert_eq!(h.watch(g, "w", "t128"), Got::Err(XsError::E2big));
    let lines = limit_lines(&mut h);
    assert_eq!(
        lines,
        ["domain 5: limit watches hit: WATCH refused with E2BIG: 128 watches set, quota 128"]
    );
    // Logged at most once per 10 s per domain and limit; counted every time.
    assert_eq!(h.watch(g, "w", "t129"), Got::Err(XsError::E2big));
    assert_eq!(limit_lines(&mut h), Vec::<String>::new());
    assert!(h.engine.memreport().contains("limits hit: watches 2;"));
    h.engine.set_time_ms(10_000);
    assert_eq!(h.watch(g, "w", "t130"), Got::Err(XsError::E2big));
    assert_eq!(
        limit_lines(&mut h),
        [
            "domain 5: limit watches hit: WATCH refused with E2BIG: 128 watches set, quota 128 \
             (1 more since the last report)"
        ]
    );
    // Transactions: the 11th is refused with ENOSPC.
    let txs: Vec<TxId> = (0..10).map(|_| h.start(g)).collect();
    assert_eq!(
        h.call(g, MsgType::TransactionStart, TxId(0), b"\0"),
        Got::Err(XsError::Enospc)
    );
    assert_eq!(
        limit_lines(&mut h),
        ["domain 5: limit transactions hit: TRANSACTION_START refused with ENOSPC: 10 open, quota 10"]
    );
    // Transaction nodes: 1024 accessed nodes, then ENOSPC.
    let tx = txs[0];
    for i in 0..1024 {
        assert_eq!(
            h.read_tx(g, tx, &format!("n{i}")),
            Got::Err(XsError::Enoent),
            "read {i}"
        );
    }
    assert_eq!(h.read_tx(g, tx, "n1024"), Got::Err(XsError::Enospc));
    assert_eq!(
        limit_lines(&mut h),
        [format!(
            "domain 5: limit transaction-nodes hit: transaction {} accessed 1024 nodes: a \
             request touching another was refused with ENOSPC (quota 1024)",
            tx.0
        )]
    );
    for tx in txs {
        assert_eq!(h.end(g, tx, false), okr());
    }
    // The write rate: the 11th write in a burst holds the connection back.
    for i in 0..11 {
        assert_eq!(h.write(g, &format!("x{i}"), b"1"), okr());
    }
    assert_eq!(
        limit_lines(&mut h),
        ["domain 5: limit write-rate hit: requests held back: more than 200 writes/s (bursts of 10)"]
    );
    h.engine.set_time_ms(20_000);
    // Outstanding replies: 20 unread replies stop the ring being read.
    let stream: Vec<u8> = (0..25u32)
        .flat_map(|i| Message::new(MsgType::Read, i + 1, TxId(0), z("x0")).encode())
        .collect();
    let used = h.engine.receive(g, &stream).unwrap();
    assert!(used < stream.len());
    assert_eq!(
        limit_lines(&mut h),
        ["domain 5: limit outstanding hit: ring no longer read: 20 replies unread, quota 20"]
    );
    h.engine.drain_output(g);
    // dom0 hits nothing.
    for i in 0..200 {
        assert_eq!(h.watch(c, "/d0", &format!("t{i}")), okr());
    }
    assert_eq!(limit_lines(&mut h), Vec::<String>::new());
}
