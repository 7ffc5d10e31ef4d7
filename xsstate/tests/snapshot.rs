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
    let restored = Engine::restore(image, EngineConfig::default()).expect("restorable");
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

/// A store as C xenstored (Xen's layout, version 2) writes it imports into an engine.
#[test]
fn import_from_xen_layout() {
    use xsstate::image::{
        write_layout, NodeData, NodePerm, PermKind, Record, WatchData, XenConnSpec,
        XenConnectionData, XenGlobalData, XenWatchExtData,
    };
    use xsstate::wire::{Message, MsgType};
    let perm = |kind, domid| NodePerm {
        kind,
        flags: 0,
        domid,
    };
    let node = |path: &str, value: &[u8], perms: Vec<NodePerm>| {
        Record::Node(NodeData {
            conn_id: 0,
            tx_id: 0,
            access: 0,
            perms,
            path: path.into(),
            value: value.to_vec(),
        })
    };
    // Half a READ request from domain 5 is waiting in its input.
    let request = Message::new(MsgType::Read, 9, TxId(0), b"name\0".to_vec()).encode();
    let (first, second) = request.split_at(10);
    let image = xsstate::image::Image {
        endianness: Endianness::Little,
        version: 2,
        records: vec![
            Record::XenGlobal(XenGlobalData {
                socket_fd: -1,
                evtchn_fd: -1,
            }),
            Record::XenConnection(XenConnectionData {
                conn_id: 1,
                spec: XenConnSpec::Ring {
                    domid: 5,
                    tdomid: 0x7ff4,
                    evtchn: 12,
                },
                in_data: first.to_vec(),
                out_resp_len: 0,
                out_data: vec![],
                unique_id: Some(1),
            }),
            Record::XenWatchExt(XenWatchExtData {
                watch: WatchData {
                    conn_id: 1,
                    wpath: "data".into(),
                    token: "t".into(),
                },
                depth: 1,
            }),
            node("/", b"", vec![perm(PermKind::None, 0)]),
            node("/local", b"", vec![perm(PermKind::None, 0)]),
            node("/local/domain", b"", vec![perm(PermKind::None, 0)]),
            node("/local/domain/5", b"", vec![perm(PermKind::None, 5)]),
            node(
                "/local/domain/5/name",
                b"guest",
                vec![perm(PermKind::None, 5)],
            ),
            node("/local/domain/5/data", b"", vec![perm(PermKind::None, 5)]),
            Record::End,
        ],
    };
    let bytes = write_layout(&image, Layout::Xen).unwrap();
    let parsed = read(&bytes, Layout::Xen).unwrap();
    let engine = Engine::restore(parsed, EngineConfig::default()).unwrap();
    engine.store().check().unwrap();
    let mut h = Harness::around(engine);
    let g = h.engine.connections().find(|c| c.domid.0 == 5).unwrap().id;
    // The rest of the request completes it.
    h.engine.receive(g, second).unwrap();
    let out = h.engine.drain_output(g);
    let (msgs, _) = xsstate::wire::decode_all(&out).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].req_id, msgs[0].payload.as_slice()),
        (9, &b"guest"[..])
    );
    // The watch kept its depth: a child fires, a grandchild does not.
    let d0 = h.dom0();
    h.write(d0, "/local/domain/5/data/a", b"1");
    h.write(d0, "/local/domain/5/data/a/b", b"2");
    assert_eq!(h.events(g), vec![("data/a".to_string(), "t".to_string())]);
}
