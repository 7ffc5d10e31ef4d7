//! Property tests of engine snapshots: random engine states survive dump -> restore -> dump
//! byte-identical (both byte orders), and the restored engine answers a random request
//! sequence exactly as the original does.

use proptest::prelude::*;
use xsstate::image::{read, write, Endianness, Layout};
use xsstate::snapshot::DumpOptions;
use xsstate::wire::{Message, MsgType};
use xsstate::{ConnId, Engine, EngineConfig, TxId};

const PATHS: [&str; 10] = [
    "/a",
    "/a/b",
    "/a/b/c",
    "/t",
    "/local/domain/3/x",
    "/local/domain/4/y/z",
    "x",
    "x/y",
    "@releaseDomain",
    "@introduceDomain",
];
const PERMS: [&[u8]; 4] = [b"n0\0", b"r3\0", b"b4\0r3\0", b"n3\0b0\0"];

#[derive(Clone, Debug)]
enum Op {
    Write(usize, u8),
    Mkdir(usize),
    Rm(usize),
    Read(usize),
    Dir(usize),
    GetPerms(usize),
    SetPerms(usize, usize),
    Watch(usize, u8),
    Unwatch(usize, u8),
    Start,
    End(bool),
    Reset,
}

#[derive(Clone, Debug)]
struct Step {
    conn: usize,
    tx: u32,
    op: Op,
    drain: bool,
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        4 => (p.clone(), any::<u8>()).prop_map(|(p, v)| Op::Write(p, v)),
        1 => p.clone().prop_map(Op::Mkdir),
        2 => p.clone().prop_map(Op::Rm),
        2 => p.clone().prop_map(Op::Read),
        1 => p.clone().prop_map(Op::Dir),
        1 => p.clone().prop_map(Op::GetPerms),
        1 => (p.clone(), 0..PERMS.len()).prop_map(|(p, q)| Op::SetPerms(p, q)),
        2 => (p.clone(), 0u8..3).prop_map(|(p, t)| Op::Watch(p, t)),
        1 => (p, 0u8..3).prop_map(|(p, t)| Op::Unwatch(p, t)),
        2 => Just(Op::Start),
        2 => any::<bool>().prop_map(Op::End),
        1 => Just(Op::Reset),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (0usize..4, 0u32..3, op(), proptest::bool::weighted(0.6)).prop_map(|(conn, tx, op, drain)| {
        Step {
            conn,
            tx,
            op,
            drain,
        }
    })
}

fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn message(s: &Step, req: u32) -> Message {
    let (ty, payload) = match &s.op {
        Op::Write(p, v) => {
            let mut b = z(PATHS[*p]);
            b.extend_from_slice(&[*v, 0, *v]);
            (MsgType::Write, b)
        }
        Op::Mkdir(p) => (MsgType::Mkdir, z(PATHS[*p])),
        Op::Rm(p) => (MsgType::Rm, z(PATHS[*p])),
        Op::Read(p) => (MsgType::Read, z(PATHS[*p])),
        Op::Dir(p) => (MsgType::Directory, z(PATHS[*p])),
        Op::GetPerms(p) => (MsgType::GetPerms, z(PATHS[*p])),
        Op::SetPerms(p, q) => {
            let mut b = z(PATHS[*p]);
            b.extend_from_slice(PERMS[*q]);
            (MsgType::SetPerms, b)
        }
        Op::Watch(p, t) | Op::Unwatch(p, t) => {
            let mut b = z(PATHS[*p]);
            b.extend_from_slice(&z(&format!("tok{t}")));
            let ty = if matches!(s.op, Op::Watch(..)) {
                MsgType::Watch
            } else {
                MsgType::Unwatch
            };
            (ty, b)
        }
        Op::Start => (MsgType::TransactionStart, b"\0".to_vec()),
        Op::End(c) => (
            MsgType::TransactionEnd,
            if *c { b"T\0".to_vec() } else { b"F\0".to_vec() },
        ),
        Op::Reset => (MsgType::ResetWatches, b"\0".to_vec()),
    };
    Message::new(ty, req, TxId(s.tx), payload)
}

/// dom0 socket, another dom0 socket, guest 3, guest 4 (with their homes).
fn world() -> (Engine, Vec<ConnId>) {
    let mut cfg = EngineConfig::default();
    // Write budgets are not part of an image (they restart full): keep them out of the way.
    cfg.write_rate.per_s = 0;
    let mut e = Engine::new(cfg);
    let d0 = e.connect_socket(false);
    e.connect_socket(false);
    for (i, domid) in [3u16, 4].iter().enumerate() {
        let intro = format!("{domid}\x00{}\x00{}\x00", 100 + i, 10 + i);
        e.receive(
            d0,
            &Message::new(MsgType::Introduce, 1, TxId(0), intro.into_bytes()).encode(),
        )
        .unwrap();
        let home = format!("/local/domain/{domid}\x00n{domid}\x00");
        e.receive(
            d0,
            &Message::new(
                MsgType::Mkdir,
                2,
                TxId(0),
                z(&format!("/local/domain/{domid}")),
            )
            .encode(),
        )
        .unwrap();
        e.receive(
            d0,
            &Message::new(MsgType::SetPerms, 3, TxId(0), home.into_bytes()).encode(),
        )
        .unwrap();
    }
    e.drain_output(d0);
    let conns: Vec<ConnId> = e.connections().map(|c| c.id).collect();
    assert_eq!(conns.len(), 4);
    (e, conns)
}

fn run(e: &mut Engine, conns: &[ConnId], s: &Step, req: u32) -> Vec<Vec<u8>> {
    let Some(&c) = conns.get(s.conn) else {
        return vec![];
    };
    let bytes = message(s, req).encode();
    let _ = e.receive(c, &bytes);
    e.store().check().expect("store consistent");
    if s.drain {
        conns.iter().map(|&c| e.drain_output(c)).collect()
    } else {
        vec![]
    }
}

/// The dump as bytes, checked to be the same through both paths: parsed records written by
/// the writer, and the stream straight from the tree into a buffer sized by `dump_len`.
fn dump_bytes(e: &Engine, endianness: Endianness) -> Vec<u8> {
    let opts = DumpOptions {
        endianness,
        ..DumpOptions::default()
    };
    let bytes = write(&e.dump(&opts)).expect("writable");
    let len = e.dump_len(&opts);
    let mut streamed = Vec::with_capacity(len);
    e.dump_into(&opts, &mut streamed).expect("streamed");
    assert_eq!(len, streamed.len(), "dump_len is not the streamed length");
    assert_eq!(
        bytes, streamed,
        "the streamed dump differs from the written records"
    );
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn dump_restore_dump_is_identical_and_behaviour_is_kept(
        before in prop::collection::vec(step(), 0..50),
        after in prop::collection::vec(step(), 0..40),
    ) {
        let (mut a, conns) = world();
        for (i, s) in before.iter().enumerate() {
            run(&mut a, &conns, s, i as u32 + 10);
        }
        let mut restored = None;
        for endianness in [Endianness::Little, Endianness::Big] {
            let bytes = dump_bytes(&a, endianness);
            let image = read(&bytes, Layout::Seed).expect("our own image reads back");
            let mut cfg = EngineConfig::default();
            cfg.write_rate.per_s = 0;
            let b = Engine::restore(image, cfg.clone()).expect("restorable");
            b.store().check().expect("restored store consistent");
            prop_assert_eq!(&bytes, &dump_bytes(&b, endianness));
            let c = Engine::restore_bytes(&bytes, Layout::Seed, cfg).expect("restorable");
            c.store().check().expect("stream-restored store consistent");
            prop_assert_eq!(&bytes, &dump_bytes(&c, endianness));
            restored = Some(b);
        }
        let mut b = restored.expect("restored");
        for (i, s) in after.iter().enumerate() {
            let mut s = s.clone();
            s.drain = true;
            let ra = run(&mut a, &conns, &s, i as u32 + 1000);
            let rb = run(&mut b, &conns, &s, i as u32 + 1000);
            prop_assert_eq!(ra, rb, "step {} {:?}", i, s);
        }
    }
}
