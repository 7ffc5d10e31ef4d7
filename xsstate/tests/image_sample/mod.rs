//! The golden sample image shared by the golden-vector and refusal tests.
#![allow(dead_code)]

use xsstate::image::{
    ConnSpec, ConnectionData, Endianness, GlobalData, Image, NodeData, NodePerm, PermKind, Record,
    TransactionData, WatchData,
};

/// The sample the golden byte vectors were written from: a global record, a ring connection,
/// a transaction, a watch, the root node and a node pending in the transaction.
pub fn sample(endianness: Endianness) -> Image {
    Image {
        endianness,
        version: 1,
        records: vec![
            Record::Global(GlobalData {
                rw_socket_fd: 5,
                ro_socket_fd: 6,
            }),
            Record::Connection(ConnectionData {
                conn_id: 1,
                spec: ConnSpec::Ring {
                    flags: 0,
                    domid: 1,
                    tdomid: 0x7ff4,
                    evtchn: 9,
                    mfn: !0,
                },
                data: b"ab".to_vec(),
            }),
            Record::Transaction(TransactionData {
                conn_id: 1,
                tx_id: 7,
            }),
            Record::Watch(WatchData {
                conn_id: 1,
                wpath: "/a".into(),
                token: "t".into(),
            }),
            Record::Node(NodeData {
                conn_id: 0,
                tx_id: 0,
                access: 0,
                perms: vec![NodePerm {
                    kind: PermKind::None,
                    flags: 0,
                    domid: 0,
                }],
                path: "/".into(),
                value: vec![],
            }),
            Record::Node(NodeData {
                conn_id: 1,
                tx_id: 7,
                access: 2,
                perms: vec![NodePerm {
                    kind: PermKind::Both,
                    flags: 0,
                    domid: 1,
                }],
                path: "/a".into(),
                value: b"v".to_vec(),
            }),
            Record::End,
        ],
    }
}
