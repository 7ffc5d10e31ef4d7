//! The engine's side of a live update: held transaction starts, pending input, version.

mod common;

use common::{Got, Harness};
use xsstate::wire::{decode_all, Message, MsgType};
use xsstate::{DomId, Engine, EngineConfig, TxId};

#[test]
fn transaction_start_waits_while_held_and_runs_on_release() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let g = h.guest(d0, 5);
    assert!(h.engine.domains_with_transactions().is_empty());
    let Got::Ok(tx) = h.call(g, MsgType::TransactionStart, TxId(0), b"\0") else {
        panic!("transaction start");
    };
    assert_eq!(h.engine.domains_with_transactions(), vec![DomId(5)]);

    h.engine.hold_transactions(true);
    assert!(h.engine.transactions_held());
    // dom0's new transaction waits; the bytes are taken, nothing is answered.
    let start = Message::new(MsgType::TransactionStart, 77, TxId(0), b"\0".to_vec()).encode();
    let read = Message::new(MsgType::Read, 78, TxId(0), b"/tool\0".to_vec()).encode();
    let mut both = start.clone();
    both.extend_from_slice(&read);
    let used = h.engine.receive(d0, &both).unwrap();
    assert_eq!(used, both.len());
    // The READ behind it is answered (dom0's tools share one ring connection); the start
    // waits.
    let (msgs, _) = decode_all(&h.engine.drain_output(d0)).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].req_id, 78);
    assert!(h.engine.can_receive(d0));
    assert_eq!(h.engine.pending_input(d0), start);
    // The guest's open transaction still works and ends.
    let mut end = tx.clone();
    end.pop();
    let tx_id = TxId(std::str::from_utf8(&end).unwrap().parse().unwrap());
    assert_eq!(
        h.call(g, MsgType::TransactionEnd, tx_id, b"T\0"),
        Got::Ok(b"OK\0".to_vec())
    );
    assert!(h.engine.domains_with_transactions().is_empty());

    h.engine.hold_transactions(false);
    let out = h.engine.drain_output(d0);
    let (msgs, _) = decode_all(&out).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].req_id, 77);
    assert_eq!(msgs[0].msg_type, MsgType::TransactionStart as u32);
    assert!(h.engine.pending_input(d0).is_empty());
    assert_eq!(h.engine.domains_with_transactions(), vec![DomId(0)]);
}

#[test]
fn pending_input_carries_a_partial_request_into_a_restored_engine() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    assert_eq!(h.write(d0, "/a", b"1"), Got::Ok(b"OK\0".to_vec()));
    let req = Message::new(MsgType::Read, 9, TxId(0), b"/a\0".to_vec()).encode();
    let (head, tail) = req.split_at(7);
    assert_eq!(h.engine.receive(d0, head).unwrap(), head.len());
    let pending = h.engine.pending_input(d0);
    assert_eq!(pending, head);

    let image = h.engine.dump(&Default::default());
    let mut restored = Engine::restore(image, EngineConfig::default()).unwrap();
    assert!(
        restored.pending_input(d0).is_empty(),
        "the image cannot carry it"
    );
    let mut whole = pending;
    whole.extend_from_slice(tail);
    assert_eq!(restored.receive(d0, &whole).unwrap(), whole.len());
    let (msgs, _) = decode_all(&restored.drain_output(d0)).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].req_id, 9);
    assert_eq!(msgs[0].payload, b"1");
}

#[test]
fn control_version_answers_what_the_shell_set() {
    let mut h = Harness::new();
    let d0 = h.dom0();
    let Got::Ok(default) = h.call(d0, MsgType::Control, TxId(0), b"version\0") else {
        panic!("version");
    };
    assert!(default.starts_with(b"xsstate "));
    h.engine
        .set_version_text("xsstub 1 build abc\nlive-updates 3\n".into());
    assert_eq!(
        h.call(d0, MsgType::Control, TxId(0), b"version\0"),
        Got::Ok(b"xsstub 1 build abc\nlive-updates 3\n\0".to_vec())
    );
    let g = h.guest(d0, 3);
    assert_eq!(
        h.call(g, MsgType::Control, TxId(0), b"version\0"),
        Got::Err(xsstate::XsError::Eacces)
    );
}
