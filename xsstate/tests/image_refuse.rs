//! One test per refusal of the image reader, each checking the offset, record and reason.

mod image_sample;

use xsstate::image::{
    read, write, write_layout, ConnSpec, ConnectionData, Endianness, GlobalData, Image, ImageError,
    Layout, NodeData, NodePerm, PermKind, Reason, Record, RecordRef, TransactionData, WatchData,
    XenConnSpec, XenConnectionData, XenWatchExtData,
};

fn node(conn_id: u32, tx_id: u32, path: &str) -> Record {
    Record::Node(NodeData {
        conn_id,
        tx_id,
        access: if conn_id == 0 { 0 } else { 2 },
        perms: vec![NodePerm {
            kind: PermKind::Both,
            flags: 0,
            domid: 1,
        }],
        path: path.into(),
        value: b"v".to_vec(),
    })
}

fn ring(conn_id: u32) -> Record {
    Record::Connection(ConnectionData {
        conn_id,
        spec: ConnSpec::Ring {
            flags: 0,
            domid: 1,
            tdomid: 0x7ff4,
            evtchn: 9,
            mfn: !0,
        },
        data: b"ab".to_vec(),
    })
}

/// The golden sample (see image_golden.rs). Record offsets: #0 GLOBAL 16 (body 24),
/// #1 CONNECTION 32 (body 40..70), #2 TRANSACTION 72 (body 80), #3 WATCH 88 (body 96..109),
/// #4 NODE "/" 112 (body 120..142), #5 NODE "/a" 144 (body 152..176), #6 END 176..184.
fn sample() -> Vec<u8> {
    let bytes = write(&image_sample::sample(Endianness::Little)).unwrap();
    assert_eq!(bytes.len(), 184);
    assert!(read(&bytes, Layout::Seed).is_ok());
    bytes
}

fn patched(f: impl FnOnce(&mut Vec<u8>)) -> ImageError {
    let mut b = sample();
    f(&mut b);
    read(&b, Layout::Seed).unwrap_err()
}

/// The seed-layout bytes of an image of `records`.
fn image_bytes(records: Vec<Record>) -> Vec<u8> {
    let img = Image {
        endianness: Endianness::Little,
        version: 1,
        records,
    };
    write(&img).unwrap()
}

fn records(records: Vec<Record>) -> ImageError {
    read(&image_bytes(records), Layout::Seed).unwrap_err()
}

fn check(e: ImageError, offset: usize, rec: Option<(usize, u32)>, reason: Reason) {
    let want = ImageError {
        offset,
        record: rec.map(|(index, rtype)| RecordRef { index, rtype }),
        reason,
    };
    assert_eq!(e, want, "got: {e}");
    // The message names the offset and the reason.
    let msg = format!("{e}");
    assert!(msg.contains(&format!("offset {offset} ")), "{msg}");
    assert!(msg.contains(&reason.to_string()), "{msg}");
}

#[test]
fn bad_ident() {
    check(patched(|b| b[0] = b'X'), 0, None, Reason::BadIdent);
}

#[test]
fn unsupported_version() {
    check(
        patched(|b| b[11] = 2),
        8,
        None,
        Reason::UnsupportedVersion(2),
    );
    check(
        patched(|b| b[8] = 1),
        8,
        None,
        Reason::UnsupportedVersion(0x0100_0001),
    );
}

#[test]
fn reserved_flag_bits() {
    check(patched(|b| b[15] = 2), 12, None, Reason::ReservedFlags(2));
    check(
        patched(|b| b[12] = 0x80),
        12,
        None,
        Reason::ReservedFlags(0x8000_0000),
    );
}

#[test]
fn truncated_header() {
    check(
        patched(|b| b.truncate(10)),
        10,
        None,
        Reason::TruncatedHeader,
    );
}

#[test]
fn truncated_record_header() {
    // Only the type of record #0.
    check(
        patched(|b| b.truncate(20)),
        20,
        Some((0, 1)),
        Reason::TruncatedRecord,
    );
    // Only part of the type.
    check(
        patched(|b| b.truncate(18)),
        16,
        None,
        Reason::TruncatedRecord,
    );
}

#[test]
fn truncated_record_body_and_padding() {
    // Body of record #0 cut: named at its len field.
    check(
        patched(|b| b.truncate(30)),
        20,
        Some((0, 1)),
        Reason::TruncatedRecord,
    );
    // Connection body complete but its padding missing.
    check(
        patched(|b| b.truncate(70)),
        70,
        Some((1, 2)),
        Reason::TruncatedRecord,
    );
    // A len that overruns the stream by far.
    check(
        patched(|b| b[20..24].copy_from_slice(&u32::MAX.to_le_bytes())),
        20,
        Some((0, 1)),
        Reason::TruncatedRecord,
    );
}

#[test]
fn body_shorter_than_fields() {
    // GLOBAL_DATA with len 4: ro-socket-fd missing.
    check(
        patched(|b| b[20] = 4),
        28,
        Some((0, 1)),
        Reason::BodyTooShort,
    );
    // CONNECTION_DATA with len 20: mfn cut.
    check(
        patched(|b| b[36] = 20),
        56,
        Some((1, 2)),
        Reason::BodyTooShort,
    );
}

#[test]
fn body_longer_than_fields() {
    // CONNECTION_DATA len 31 instead of 30: one octet after the data.
    check(
        patched(|b| b[36] = 31),
        70,
        Some((1, 2)),
        Reason::BodyTooLong,
    );
    // END with a body.
    let mut b = sample();
    b[180] = 8;
    b.extend_from_slice(&[0; 8]);
    check(
        read(&b, Layout::Seed).unwrap_err(),
        184,
        Some((6, 0)),
        Reason::BodyTooLong,
    );
}

#[test]
fn lengths_that_overrun() {
    // wpath-len 50 in a 13-octet watch body.
    check(
        patched(|b| b[100] = 50),
        104,
        Some((3, 3)),
        Reason::LengthOverrun,
    );
    // token-len overruns.
    check(
        patched(|b| b[102] = 9),
        107,
        Some((3, 3)),
        Reason::LengthOverrun,
    );
    // perm-count 0xffff: refused before allocating.
    check(
        patched(|b| b[130..132].copy_from_slice(&[0xff, 0xff])),
        132,
        Some((4, 5)),
        Reason::LengthOverrun,
    );
    // data-len 0xffffffff.
    check(
        patched(|b| b[64..68].copy_from_slice(&[0xff; 4])),
        68,
        Some((1, 2)),
        Reason::LengthOverrun,
    );
    // value-len 9 with one octet of value.
    check(
        patched(|b| b[170] = 9),
        175,
        Some((5, 5)),
        Reason::LengthOverrun,
    );
}

#[test]
fn unknown_record_types() {
    check(
        patched(|b| b[88] = 9),
        88,
        Some((3, 9)),
        Reason::UnknownRecordType(9),
    );
    // WATCH_DATA_EXTENDED is not a seed record.
    check(
        patched(|b| b[88] = 8),
        88,
        Some((3, 8)),
        Reason::UnknownRecordType(8),
    );
    check(
        patched(|b| b[91] = 0x80),
        88,
        Some((3, 0x8000_0003)),
        Reason::UnknownRecordType(0x8000_0003),
    );
}

#[test]
fn string_without_nul() {
    // Token "tu" with no NUL.
    check(
        patched(|b| b[108] = b'u'),
        108,
        Some((3, 3)),
        Reason::MissingNul,
    );
    // wpath-len 0.
    let e = patched(|b| {
        b[100] = 0;
        b[102] = 5; // keep the body length consistent: token takes the 5 octets
    });
    check(e, 104, Some((3, 3)), Reason::MissingNul);
    // Node path without NUL: "/av" read as the path (path-len 3 -> 4, value-len 1 -> 0).
    check(
        patched(|b| {
            b[168] = 4;
            b[170] = 0;
        }),
        175,
        Some((5, 5)),
        Reason::MissingNul,
    );
}

#[test]
fn string_with_interior_nul() {
    check(
        patched(|b| b[105] = 0),
        105,
        Some((3, 3)),
        Reason::InteriorNul,
    );
    check(
        patched(|b| b[173] = 0),
        173,
        Some((5, 5)),
        Reason::InteriorNul,
    );
}

#[test]
fn invalid_paths() {
    check(
        patched(|b| b[173] = b'!'),
        172,
        Some((5, 5)),
        Reason::InvalidPath,
    );
    check(
        patched(|b| b[172] = b'a'),
        172,
        Some((5, 5)),
        Reason::InvalidPath,
    );
    check(
        patched(|b| b[105] = b' '),
        104,
        Some((3, 3)),
        Reason::InvalidPath,
    );
    // Too long for any request to have made (PATH_LIMIT: a payload after its home prefix;
    // C xenstored 4.18+ no longer applies ABS_PATH_MAX, so 3100 bytes are fine).
    let ok = format!("/{}", "x".repeat(3100));
    let img = Image {
        endianness: Endianness::Little,
        version: 1,
        records: vec![node(0, 0, "/"), node(0, 0, &ok), Record::End],
    };
    assert!(read(&write(&img).unwrap(), Layout::Seed).is_ok());
    let long = format!("/{}", "x".repeat(xsstate::path::PATH_LIMIT));
    let e = records(vec![node(0, 0, "/"), node(0, 0, &long), Record::End]);
    assert_eq!(e.reason, Reason::InvalidPath);
    assert_eq!(e.record, Some(RecordRef { index: 1, rtype: 5 }));
}

#[test]
fn special_nodes_only_committed_and_known() {
    let ok = records(vec![
        node(0, 0, "@releaseDomain"),
        node(0, 0, "@introduceDomain"),
        Record::End,
        Record::End,
    ]);
    assert_eq!(ok.reason, Reason::DataAfterEnd);
    let e = records(vec![node(0, 0, "@other"), Record::End]);
    check(e, 44, Some((0, 5)), Reason::InvalidPath);
    let e = records(vec![
        ring(1),
        Record::Transaction(TransactionData {
            conn_id: 1,
            tx_id: 7,
        }),
        node(1, 7, "@releaseDomain"),
        Record::End,
    ]);
    check(e, 100, Some((2, 5)), Reason::InvalidPath);
}

#[test]
fn invalid_permission_letter() {
    check(
        patched(|b| b[132] = b'x'),
        132,
        Some((4, 5)),
        Reason::InvalidPerm(b'x'),
    );
    check(
        patched(|b| b[164] = b'R'),
        164,
        Some((5, 5)),
        Reason::InvalidPerm(b'R'),
    );
}

#[test]
fn committed_node_without_permissions() {
    let e = records(vec![
        Record::Node(NodeData {
            conn_id: 0,
            tx_id: 0,
            access: 0,
            perms: vec![],
            path: "/".into(),
            value: vec![],
        }),
        Record::End,
    ]);
    check(e, 34, Some((0, 5)), Reason::NoPermissions);
}

#[test]
fn reference_to_undeclared_connection() {
    check(
        patched(|b| b[96] = 2),
        96,
        Some((3, 3)),
        Reason::UnknownConnection(2),
    );
    check(
        patched(|b| b[80] = 3),
        80,
        Some((2, 4)),
        Reason::UnknownConnection(3),
    );
    check(
        patched(|b| b[152] = 4),
        152,
        Some((5, 5)),
        Reason::UnknownConnection(4),
    );
    // Order matters: the watch before its connection.
    let e = records(vec![
        Record::Watch(WatchData {
            conn_id: 1,
            wpath: "/a".into(),
            token: "t".into(),
        }),
        ring(1),
        Record::End,
    ]);
    check(e, 24, Some((0, 3)), Reason::UnknownConnection(1));
}

#[test]
fn reference_to_undeclared_transaction() {
    check(
        patched(|b| b[156] = 8),
        156,
        Some((5, 5)),
        Reason::UnknownTransaction {
            conn_id: 1,
            tx_id: 8,
        },
    );
    let e = records(vec![
        ring(1),
        node(1, 7, "/a"),
        Record::Transaction(TransactionData {
            conn_id: 1,
            tx_id: 7,
        }),
        Record::End,
    ]);
    check(
        e,
        68,
        Some((1, 5)),
        Reason::UnknownTransaction {
            conn_id: 1,
            tx_id: 7,
        },
    );
}

#[test]
fn duplicate_nodes() {
    let e = records(vec![
        node(0, 0, "/"),
        node(0, 0, "/a"),
        node(0, 0, "/a"),
        Record::End,
    ]);
    // #0 at 16 (32 octets), #1 at 48 (32 octets), #2 at 80: path at 80 + 8 + 20.
    check(e, 108, Some((2, 5)), Reason::DuplicateNode);
    // The same path in a transaction is not a duplicate of the committed node.
    let ok = Image {
        endianness: Endianness::Big,
        version: 1,
        records: vec![
            node(0, 0, "/"),
            node(0, 0, "/a"),
            ring(1),
            Record::Transaction(TransactionData {
                conn_id: 1,
                tx_id: 7,
            }),
            node(1, 7, "/a"),
            Record::End,
        ],
    };
    assert!(read(&write(&ok).unwrap(), Layout::Seed).is_ok());
}

#[test]
fn duplicate_connections_and_transactions() {
    let e = records(vec![ring(1), ring(1), Record::End]);
    check(e, 64, Some((1, 2)), Reason::DuplicateConnection(1));
    let tx = Record::Transaction(TransactionData {
        conn_id: 1,
        tx_id: 7,
    });
    let e = records(vec![ring(1), tx.clone(), tx, Record::End]);
    check(e, 84, Some((2, 4)), Reason::DuplicateTransaction);
    let g = Record::Global(GlobalData {
        rw_socket_fd: 1,
        ro_socket_fd: 2,
    });
    let e = records(vec![g.clone(), g, Record::End]);
    check(e, 40, Some((1, 1)), Reason::DuplicateRecord);
}

#[test]
fn committed_node_without_parent() {
    let e = records(vec![node(0, 0, "/"), node(0, 0, "/a/b"), Record::End]);
    check(e, 76, Some((1, 5)), Reason::MissingParent);
    // No root at all.
    let e = records(vec![node(0, 0, "/a"), Record::End]);
    check(e, 44, Some((0, 5)), Reason::MissingParent);
    // A parent only inside a transaction does not count for a committed node.
    let e = records(vec![
        node(0, 0, "/"),
        ring(1),
        Record::Transaction(TransactionData {
            conn_id: 1,
            tx_id: 7,
        }),
        node(1, 7, "/a"),
        node(0, 0, "/a/b"),
        Record::End,
    ]);
    assert_eq!(e.reason, Reason::MissingParent);
    assert_eq!(e.record, Some(RecordRef { index: 4, rtype: 5 }));
}

#[test]
fn missing_end() {
    check(patched(|b| b.truncate(176)), 176, None, Reason::MissingEnd);
    check(patched(|b| b.truncate(16)), 16, None, Reason::MissingEnd);
}

#[test]
fn data_after_end() {
    check(
        patched(|b| b.extend_from_slice(&[0; 8])),
        184,
        Some((6, 0)),
        Reason::DataAfterEnd,
    );
    check(
        patched(|b| b.push(1)),
        184,
        Some((6, 0)),
        Reason::DataAfterEnd,
    );
}

#[test]
fn conn_id_zero() {
    check(patched(|b| b[40] = 0), 40, Some((1, 2)), Reason::ZeroConnId);
    check(patched(|b| b[96] = 0), 96, Some((3, 3)), Reason::ZeroConnId);
    check(patched(|b| b[80] = 0), 80, Some((2, 4)), Reason::ZeroConnId);
}

#[test]
fn connection_type_and_flags() {
    check(
        patched(|b| b[44] = 2),
        44,
        Some((1, 2)),
        Reason::BadConnType(2),
    );
    check(
        patched(|b| b[46] = 1),
        46,
        Some((1, 2)),
        Reason::BadFlags(1),
    );
    let sock = |flags| {
        records(vec![
            Record::Connection(ConnectionData {
                conn_id: 1,
                spec: ConnSpec::Socket {
                    flags,
                    socket_fd: 3,
                },
                data: vec![],
            }),
            Record::End,
            Record::End,
        ])
    };
    check(sock(2), 30, Some((0, 2)), Reason::BadFlags(2));
    // Read-only is fine (the error is then the second END).
    assert_eq!(sock(1).reason, Reason::DataAfterEnd);
}

#[test]
fn transaction_access_bits() {
    check(
        patched(|b| b[160] = 4),
        160,
        Some((5, 5)),
        Reason::BadFlags(4),
    );
}

#[test]
fn non_utf8_strings() {
    check(
        patched(|b| b[107] = 0xff),
        107,
        Some((3, 3)),
        Reason::NotUtf8,
    );
}

#[test]
fn writer_refuses_unrepresentable() {
    let img = Image {
        endianness: Endianness::Little,
        version: 1,
        records: vec![node(0, 0, &"x".repeat(70000)), Record::End],
    };
    let e = write(&img).unwrap_err();
    assert_eq!((e.offset, e.reason), (16, Reason::TooLong));
    let img = Image {
        endianness: Endianness::Little,
        version: 1,
        records: vec![Record::XenWatchExt(XenWatchExtData {
            watch: WatchData {
                conn_id: 1,
                wpath: "/".into(),
                token: "t".into(),
            },
            depth: 0,
        })],
    };
    assert_eq!(write(&img).unwrap_err().reason, Reason::NotInLayout);
    assert_eq!(
        write_layout(
            &Image {
                records: vec![ring(1)],
                ..img
            },
            Layout::Xen
        )
        .unwrap_err()
        .reason,
        Reason::NotInLayout
    );
}

fn xen_conn(out_resp_len: u16) -> Record {
    Record::XenConnection(XenConnectionData {
        conn_id: 1,
        spec: XenConnSpec::Socket { socket_fd: 3 },
        in_data: vec![],
        out_resp_len,
        out_data: b"xy".to_vec(),
        unique_id: None,
    })
}

#[test]
fn xen_refusals() {
    let xen = |version, records| {
        let img = Image {
            endianness: Endianness::Little,
            version,
            records,
        };
        read(&write_layout(&img, Layout::Xen).unwrap(), Layout::Xen)
    };
    assert!(xen(1, vec![xen_conn(2), Record::End]).is_ok());
    assert!(xen(2, vec![xen_conn(2), Record::End]).is_ok());
    check(
        xen(1, vec![xen_conn(3), Record::End]).unwrap_err(),
        42,
        Some((0, 2)),
        Reason::LengthOverrun,
    );
    // WATCH_DATA_EXTENDED only in version 2.
    let w = Record::XenWatchExt(XenWatchExtData {
        watch: WatchData {
            conn_id: 1,
            wpath: "@releaseDomain".into(),
            token: "t".into(),
        },
        depth: 0xffff,
    });
    check(
        xen(1, vec![xen_conn(0), w.clone(), Record::End]).unwrap_err(),
        56,
        Some((1, 8)),
        Reason::UnknownRecordType(8),
    );
    assert!(xen(2, vec![xen_conn(0), w, Record::End]).is_ok());
    // Version 3 is unknown.
    check(
        xen(3, vec![Record::End]).unwrap_err(),
        8,
        None,
        Reason::UnsupportedVersion(3),
    );
    // More than the padding after the fields.
    let mut b = write_layout(
        &Image {
            endianness: Endianness::Little,
            version: 1,
            records: vec![xen_conn(0), Record::End],
        },
        Layout::Xen,
    )
    .unwrap();
    // conn record len 32 -> 40: 14 octets after the fields (which end at body offset 26).
    b[20] = 40;
    b.splice(56..56, [0u8; 8]);
    check(
        read(&b, Layout::Xen).unwrap_err(),
        50,
        Some((0, 2)),
        Reason::BodyTooLong,
    );
}

#[test]
fn restore_refuses_duplicate_nodes() {
    use xsstate::{Engine, EngineConfig};
    // The live update's restore skips the reader's path tracking and finds duplicates in its
    // name index: in one batch of nodes, and against nodes indexed before another record.
    let batches = [
        vec![
            node(0, 0, "/"),
            node(0, 0, "/a"),
            node(0, 0, "/a"),
            Record::End,
        ],
        vec![
            node(0, 0, "/"),
            node(0, 0, "/a"),
            ring(1),
            node(0, 0, "/a/b"),
            node(0, 0, "/a"),
            Record::End,
        ],
    ];
    let restore = |records| {
        Engine::restore_bytes(&image_bytes(records), Layout::Seed, EngineConfig::default())
    };
    for records in batches {
        let e = restore(records).unwrap_err();
        assert_eq!(e.reason, "duplicate node", "{e}");
    }
    // Siblings, cousins and the same name under different parents are not duplicates.
    let e = restore(vec![
        node(0, 0, "/"),
        node(0, 0, "/a"),
        node(0, 0, "/b"),
        node(0, 0, "/a/x"),
        node(0, 0, "/b/x"),
        ring(1),
        node(0, 0, "/a/y"),
        Record::End,
    ])
    .unwrap();
    for p in ["/a", "/b", "/a/x", "/b/x", "/a/y"] {
        assert!(e.store().contains(p), "{p}");
    }
    e.store().check().unwrap();
}
