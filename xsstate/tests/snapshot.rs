//! Engine snapshots: dump -> image bytes -> read -> restore -> dump gives the same bytes, and
//! the restored engine answers like the original.
mod common;
use common::*;
use xsstate::image::{read, write, Endianness, Layout};
use xsstate::snapshot::DumpOptions;
use xsstate::{Engine, EngineConfig, TxId};

fn roundtrip(e: &Engine, endianness: Endianness) -> Engine {
    let opts = DumpOptions {
        endianness,
        ..DumpOptions::default()
    };
    let bytes = write(&e.dump(&opts)).expect("writable");
    let image = read(&bytes, Layout::Seed).expect("readable");
    let restored = Engine::restore(&image, EngineConfig::default()).expect("restorable");
    let again = write(&restored.dump(&opts)).expect("writable");
    assert_eq!(bytes, again, "dump of the restored engine differs");
    restored
}

#[test]
fn state_survives() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let w = h.dom0();
    let g = h.guest(d0, 3);
    h.home(d0, 3);
    h.write(d0, "/a/b", b"1\0two");
    h.write(d0, "/a/c", b"");
    h.set_perms(d0, "/a/c", &["n3", "r0"]);
    h.watch(w, "/a", "tok");
    h.watch(g, "rel", "gt");
    h.events(w);
    h.events(g);
    let tx = h.start(g);
    assert_eq!(h.write_tx(g, tx, "rel/x", b"inside"), okr());
    assert_eq!(h.read_tx(g, tx, "/local/domain/3"), Got::Ok(vec![]));
    // Leave an unread reply queued on dom0's watcher.
    h.write(d0, "/a/b", b"changed");
    for endianness in [Endianness::Little, Endianness::Big] {
        let restored = roundtrip(&h.engine, endianness);
        assert_eq!(restored.store().len(), h.engine.store().len());
    }
    let restored = roundtrip(&h.engine, Endianness::Little);
    let mut h2 = Harness::around(restored);
    // The queued event is still there, then the transaction commits and the watches fire.
    assert_eq!(h2.events(w), vec![("/a/b".into(), "tok".into())]);
    assert_eq!(h2.read(d0, "/a/b"), Got::Ok(b"changed".to_vec()));
    assert_eq!(h2.dir(d0, "/a"), Got::Ok(b"b\0c\0".to_vec()));
    assert_eq!(h2.read_tx(g, tx, "rel/x"), Got::Ok(b"inside".to_vec()));
    assert_eq!(h2.end(g, tx, true), okr());
    assert_eq!(
        h2.read(d0, "/local/domain/3/rel/x"),
        Got::Ok(b"inside".to_vec())
    );
    assert_eq!(h2.events(g), vec![("rel/x".into(), "gt".into())]);
    let _ = TxId(0);
    h2.check();
}
