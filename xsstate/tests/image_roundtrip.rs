//! Round trips through the image writer and reader, both layouts and byte orders, and a
//! fuzz check that the reader never panics on corrupted input.

use proptest::prelude::*;
use xsstate::image::{
    read, write, write_layout, ConnSpec, ConnectionData, DomainData, Endianness, GlobalData,
    GlobalQuotaData, Image, Layout, NodeData, NodePerm, PermKind, Quota, Record, TransactionData,
    WatchData, XenConnSpec, XenConnectionData, XenGlobalData, XenWatchExtData,
};

fn perms() -> Vec<NodePerm> {
    vec![
        NodePerm {
            kind: PermKind::Write,
            flags: 0,
            domid: 3,
        },
        NodePerm {
            kind: PermKind::Read,
            flags: 0,
            domid: 0,
        },
    ]
}

fn node(conn_id: u32, tx_id: u32, path: &str, value: &[u8]) -> Record {
    Record::Node(NodeData {
        conn_id,
        tx_id,
        access: 3,
        perms: perms(),
        path: path.into(),
        value: value.to_vec(),
    })
}

fn seed_image(endianness: Endianness) -> Image {
    Image {
        endianness,
        version: 1,
        records: vec![
            Record::Global(GlobalData {
                rw_socket_fd: 3,
                ro_socket_fd: u32::MAX,
            }),
            Record::GlobalQuota(GlobalQuotaData {
                domain: vec![
                    Quota {
                        name: "nodes".into(),
                        value: 1000,
                    },
                    Quota {
                        name: "watches".into(),
                        value: 128,
                    },
                ],
                global: vec![Quota {
                    name: "transaction".into(),
                    value: 0,
                }],
            }),
            Record::Connection(ConnectionData {
                conn_id: 1,
                spec: ConnSpec::Ring {
                    flags: 0,
                    domid: 3,
                    tdomid: 0x7ff4,
                    evtchn: 12,
                    mfn: 0x1234,
                },
                data: (0u8..=255).collect(),
            }),
            Record::Connection(ConnectionData {
                conn_id: 2,
                spec: ConnSpec::Socket {
                    flags: 1,
                    socket_fd: 9,
                },
                data: vec![],
            }),
            Record::Watch(WatchData {
                conn_id: 1,
                wpath: "@introduceDomain".into(),
                token: "tok en".into(),
            }),
            Record::Watch(WatchData {
                conn_id: 2,
                wpath: "device/vif".into(),
                token: "".into(),
            }),
            Record::Transaction(TransactionData {
                conn_id: 1,
                tx_id: 42,
            }),
            Record::Domain(DomainData {
                domid: 3,
                features: 7,
                quotas: vec![],
            }),
            node(0, 0, "/", b""),
            node(0, 99, "/local", b"\0\0"),
            node(0, 0, "/local/domain", b"x"),
            node(1, 42, "/local/domain", b"changed"),
            node(1, 42, "/new/deep/node", b""),
            Record::End,
        ],
    }
}

#[test]
fn seed_round_trip_both_endians() {
    for e in [Endianness::Little, Endianness::Big] {
        let img = seed_image(e);
        let bytes = write(&img).unwrap();
        assert_eq!(bytes.len() % 8, 0);
        let back = read(&bytes, Layout::Seed).unwrap();
        assert_eq!(back, img);
        assert_eq!(write(&back).unwrap(), bytes);
    }
    // The two byte orders differ only after the header.
    let le = write(&seed_image(Endianness::Little)).unwrap();
    let be = write(&seed_image(Endianness::Big)).unwrap();
    assert_eq!(le.len(), be.len());
    assert_eq!(le[..12], be[..12]);
}

fn xen_image(endianness: Endianness) -> Image {
    let mut perms = perms();
    perms[1].flags = 1;
    Image {
        endianness,
        version: 2,
        records: vec![
            Record::XenGlobal(XenGlobalData {
                socket_fd: -1,
                evtchn_fd: 7,
            }),
            Record::GlobalQuota(GlobalQuotaData {
                domain: vec![],
                global: vec![Quota {
                    name: "a".into(),
                    value: 1,
                }],
            }),
            Record::XenConnection(XenConnectionData {
                conn_id: 5,
                spec: XenConnSpec::Ring {
                    domid: 1,
                    tdomid: 0x7ff4,
                    evtchn: 4,
                },
                in_data: b"abc".to_vec(),
                out_resp_len: 1,
                out_data: b"d".to_vec(),
                unique_id: Some(77),
            }),
            Record::XenConnection(XenConnectionData {
                conn_id: 6,
                spec: XenConnSpec::Socket { socket_fd: 11 },
                in_data: vec![],
                out_resp_len: 0,
                out_data: vec![],
                unique_id: None,
            }),
            Record::Watch(WatchData {
                conn_id: 5,
                wpath: "/a".into(),
                token: "t1".into(),
            }),
            Record::XenWatchExt(XenWatchExtData {
                watch: WatchData {
                    conn_id: 6,
                    wpath: "/b".into(),
                    token: "t2".into(),
                },
                depth: 2,
            }),
            Record::Domain(DomainData {
                domid: 1,
                features: 3,
                quotas: vec![Quota {
                    name: "nodes".into(),
                    value: 5,
                }],
            }),
            Record::Transaction(TransactionData {
                conn_id: 6,
                tx_id: 1,
            }),
            Record::Node(NodeData {
                conn_id: 0,
                tx_id: 0,
                access: 0,
                perms,
                path: "/".into(),
                value: b"r".to_vec(),
            }),
            node(6, 1, "/a", b"zz"),
            Record::End,
        ],
    }
}

#[test]
fn xen_round_trip_both_endians() {
    for e in [Endianness::Little, Endianness::Big] {
        let img = xen_image(e);
        let bytes = write_layout(&img, Layout::Xen).unwrap();
        // Every Xen len counts the padding.
        let mut pos = 16;
        while pos < bytes.len() {
            let len = match e {
                Endianness::Little => {
                    u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap())
                }
                Endianness::Big => u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()),
            };
            assert_eq!(len % 8, 0);
            pos += 8 + len as usize;
        }
        assert_eq!(read(&bytes, Layout::Xen).unwrap(), img);
    }
}

proptest! {
    #[test]
    fn reader_never_panics_on_mutations(
        pos in 0usize..400, val in any::<u8>(), cut in 0usize..420, big in any::<bool>()
    ) {
        let img = seed_image(if big { Endianness::Big } else { Endianness::Little });
        let mut bytes = write(&img).unwrap();
        if let Some(b) = bytes.get_mut(pos) { *b = val; }
        let _ = read(&bytes, Layout::Seed);
        let _ = read(&bytes, Layout::Xen);
        bytes.truncate(cut);
        let _ = read(&bytes, Layout::Seed);
    }

    #[test]
    fn reader_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut with_header = b"xenstore\0\0\0\x01\0\0\0\0".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = read(&with_header, Layout::Seed);
        let _ = read(&with_header, Layout::Xen);
    }
}
