//! End-to-end smoke test of the engine through its byte interface.
mod common;
use common::*;
use xsstate::{TxId, XsError};

#[test]
fn write_read_dir_rm() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "/a/b", b"v\0x"), okr());
    assert_eq!(h.read(c, "/a/b"), Got::Ok(b"v\0x".to_vec()));
    assert_eq!(h.read(c, "/a"), Got::Ok(vec![]));
    assert_eq!(h.dir(c, "/"), Got::Ok(b"tool\0a\0".to_vec()));
    assert_eq!(h.rm(c, "/a"), okr());
    assert_eq!(h.read(c, "/a/b"), Got::Err(XsError::Enoent));
    assert_eq!(h.rm(c, "/a"), okr());
    assert_eq!(h.rm(c, "/x/y"), Got::Err(XsError::Enoent));
    // Relative paths of a socket are dom0's.
    assert_eq!(h.write(c, "rel", b"1"), okr());
    assert_eq!(h.read(c, "/local/domain/0/rel"), Got::Ok(b"1".to_vec()));
    h.check();
}

#[test]
fn transactions_conflict() {
    let mut h = Harness::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "/t", b"a"), okr());
    let tx = h.start(c);
    assert_eq!(h.read_tx(c, tx, "/t"), Got::Ok(b"a".to_vec()));
    assert_eq!(h.write(c, "/t", b"b"), okr());
    assert_eq!(h.write_tx(c, tx, "/t", b"c"), okr());
    assert_eq!(h.read_tx(c, tx, "/t"), Got::Ok(b"c".to_vec()));
    assert_eq!(h.end(c, tx, true), Got::Err(XsError::Eagain));
    assert_eq!(h.read(c, "/t"), Got::Ok(b"b".to_vec()));
    let tx = h.start(c);
    assert_eq!(h.write_tx(c, tx, "/t/n", b"d"), okr());
    assert_eq!(h.read(c, "/t/n"), Got::Err(XsError::Enoent));
    assert_eq!(h.end(c, tx, true), okr());
    assert_eq!(h.read(c, "/t/n"), Got::Ok(b"d".to_vec()));
    assert_eq!(h.end(c, TxId(99), true), Got::Err(XsError::Enoent));
    h.check();
}

#[test]
fn watches_fire() {
    let mut h = Harness::new();
    let c = h.dom0();
    let w = h.dom0();
    assert_eq!(h.watch(w, "/w", "tok"), okr());
    assert_eq!(h.events(w), vec![("/w".into(), "tok".into())]);
    h.write(c, "/w/x/y", b"1");
    assert_eq!(h.events(w), vec![("/w/x/y".into(), "tok".into())]);
    h.rm(c, "/w");
    assert_eq!(h.events(w), vec![("/w".into(), "tok".into())]);
    let g = h.guest(c, 5);
    assert_eq!(h.watch(g, "rel", "t2"), okr());
    assert_eq!(h.events(g), vec![("rel".into(), "t2".into())]);
    h.write(c, "/local/domain/5/rel/k", b"1");
    // dom0 owns the node and gives no access: the guest must not see it.
    assert_eq!(h.events(g), vec![]);
    // Giving the guest the node fires (it can read it now), and so does the next write.
    assert_eq!(h.set_perms(c, "/local/domain/5/rel/k", &["n5"]), okr());
    assert_eq!(h.events(g), vec![("rel/k".into(), "t2".into())]);
    h.write(c, "/local/domain/5/rel/k", b"2");
    assert_eq!(h.events(g), vec![("rel/k".into(), "t2".into())]);
}
