//! Golden vectors for the seed image layout, written by hand from the design document's diagrams.

mod image_sample;
use image_sample::sample;

use xsstate::image::{
    read, write, write_layout, ConnSpec, ConnectionData, DomainData, Endianness, GlobalQuotaData,
    Image, Layout, NodeData, NodePerm, PermKind, Quota, Record, WatchData, XenConnSpec,
    XenConnectionData, XenGlobalData, XenWatchExtData,
};

#[rustfmt::skip]
const SAMPLE_LE: &[u8] = &[
    // header: ident, version 1 (BE), flags 0 (BE)
    b'x', b'e', b'n', b's', b't', b'o', b'r', b'e', 0, 0, 0, 1, 0, 0, 0, 0,
    // GLOBAL_DATA type 1 len 8
    1, 0, 0, 0, 8, 0, 0, 0,
    5, 0, 0, 0, 6, 0, 0, 0,
    // CONNECTION_DATA type 2 len 30
    2, 0, 0, 0, 30, 0, 0, 0,
    1, 0, 0, 0, 0, 0, 0, 0, // conn-id 1, conn-type 0, flags 0
    1, 0, 0xf4, 0x7f, 9, 0, 0, 0, // domid 1, tdomid 0x7ff4, evtchn 9
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // mfn ~0
    2, 0, 0, 0, b'a', b'b', 0, 0, // data-len 2, "ab", 2 pad
    // TRANSACTION_DATA type 4 len 8
    4, 0, 0, 0, 8, 0, 0, 0,
    1, 0, 0, 0, 7, 0, 0, 0,
    // WATCH_DATA type 3 len 13
    3, 0, 0, 0, 13, 0, 0, 0,
    1, 0, 0, 0, 3, 0, 2, 0,
    b'/', b'a', 0, b't', 0, 0, 0, 0,
    // NODE_DATA type 5 len 22: committed "/"
    5, 0, 0, 0, 22, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, // conn-id 0, tx-id 0
    0, 0, 1, 0, b'n', 0, 0, 0, // access 0, perm-count 1, perm n dom0
    2, 0, 0, 0, b'/', 0, 0, 0, // path-len 2, value-len 0, "/", 2 pad
    // NODE_DATA type 5 len 24: "/a" in tx 7 of conn 1
    5, 0, 0, 0, 24, 0, 0, 0,
    1, 0, 0, 0, 7, 0, 0, 0,
    2, 0, 1, 0, b'b', 0, 1, 0,
    3, 0, 1, 0, b'/', b'a', 0, b'v',
    // END
    0, 0, 0, 0, 0, 0, 0, 0,
];

#[rustfmt::skip]
const SAMPLE_BE: &[u8] = &[
    b'x', b'e', b'n', b's', b't', b'o', b'r', b'e', 0, 0, 0, 1, 0, 0, 0, 1,
    0, 0, 0, 1, 0, 0, 0, 8,
    0, 0, 0, 5, 0, 0, 0, 6,
    0, 0, 0, 2, 0, 0, 0, 30,
    0, 0, 0, 1, 0, 0, 0, 0,
    0, 1, 0x7f, 0xf4, 0, 0, 0, 9,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 0, 0, 2, b'a', b'b', 0, 0,
    0, 0, 0, 4, 0, 0, 0, 8,
    0, 0, 0, 1, 0, 0, 0, 7,
    0, 0, 0, 3, 0, 0, 0, 13,
    0, 0, 0, 1, 0, 3, 0, 2,
    b'/', b'a', 0, b't', 0, 0, 0, 0,
    0, 0, 0, 5, 0, 0, 0, 22,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 1, b'n', 0, 0, 0,
    0, 2, 0, 0, b'/', 0, 0, 0,
    0, 0, 0, 5, 0, 0, 0, 24,
    0, 0, 0, 1, 0, 0, 0, 7,
    0, 2, 0, 1, b'b', 0, 0, 1,
    0, 3, 0, 1, b'/', b'a', 0, b'v',
    0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn golden_little_endian() {
    let img = sample(Endianness::Little);
    assert_eq!(write(&img).unwrap(), SAMPLE_LE);
    assert_eq!(read(SAMPLE_LE, Layout::Seed).unwrap(), img);
}

#[test]
fn golden_big_endian() {
    let img = sample(Endianness::Big);
    assert_eq!(write(&img).unwrap(), SAMPLE_BE);
    assert_eq!(read(SAMPLE_BE, Layout::Seed).unwrap(), img);
}

fn socket_and_domain(endianness: Endianness) -> Image {
    Image {
        endianness,
        version: 1,
        records: vec![
            Record::Connection(ConnectionData {
                conn_id: 2,
                spec: ConnSpec::Socket {
                    flags: 1,
                    socket_fd: 17,
                },
                data: vec![],
            }),
            Record::GlobalQuota(GlobalQuotaData {
                domain: vec![Quota {
                    name: "nodes".into(),
                    value: 1000,
                }],
                global: vec![],
            }),
            Record::Domain(DomainData {
                domid: 1,
                features: 1,
                quotas: vec![Quota {
                    name: "nodes".into(),
                    value: 1000,
                }],
            }),
            Record::End,
        ],
    }
}

#[rustfmt::skip]
const SOCKET_DOMAIN_LE: &[u8] = &[
    b'x', b'e', b'n', b's', b't', b'o', b'r', b'e', 0, 0, 0, 1, 0, 0, 0, 0,
    // CONNECTION_DATA len 28: conn-id 2, socket, flags 1 (read-only), fd 17, pads, data-len 0
    2, 0, 0, 0, 28, 0, 0, 0,
    2, 0, 0, 0, 1, 0, 1, 0,
    17, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    // GLOBAL_QUOTA_DATA len 14: n-dom 1, n-glob 0, 1000, "nodes"
    6, 0, 0, 0, 14, 0, 0, 0,
    1, 0, 0, 0, 0xe8, 3, 0, 0,
    b'n', b'o', b'd', b'e', b's', 0, 0, 0,
    // DOMAIN_DATA len 18: domid 1, n-quota 1, features 1, 1000, "nodes"
    7, 0, 0, 0, 18, 0, 0, 0,
    1, 0, 1, 0, 1, 0, 0, 0,
    0xe8, 3, 0, 0, b'n', b'o', b'd', b'e',
    b's', 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
];

#[rustfmt::skip]
const SOCKET_DOMAIN_BE: &[u8] = &[
    b'x', b'e', b'n', b's', b't', b'o', b'r', b'e', 0, 0, 0, 1, 0, 0, 0, 1,
    0, 0, 0, 2, 0, 0, 0, 28,
    0, 0, 0, 2, 0, 1, 0, 1,
    0, 0, 0, 17, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 6, 0, 0, 0, 14,
    0, 1, 0, 0, 0, 0, 3, 0xe8,
    b'n', b'o', b'd', b'e', b's', 0, 0, 0,
    0, 0, 0, 7, 0, 0, 0, 18,
    0, 1, 0, 1, 0, 0, 0, 1,
    0, 0, 3, 0xe8, b'n', b'o', b'd', b'e',
    b's', 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn golden_socket_quota_domain_both_endians() {
    for (e, bytes) in [
        (Endianness::Little, SOCKET_DOMAIN_LE),
        (Endianness::Big, SOCKET_DOMAIN_BE),
    ] {
        let img = socket_and_domain(e);
        assert_eq!(write(&img).unwrap(), bytes, "{e:?}");
        assert_eq!(read(bytes, Layout::Seed).unwrap(), img, "{e:?}");
    }
}

#[test]
fn padding_octets_are_ignored() {
    let mut bytes = SAMPLE_LE.to_vec();
    // The two padding octets after the connection data.
    bytes[16 + 16 + 8 + 30] = 0xaa;
    bytes[16 + 16 + 8 + 31] = 0x55;
    assert_eq!(
        read(&bytes, Layout::Seed).unwrap(),
        sample(Endianness::Little)
    );
}

/// A Xen-layout stream written by hand from `xenstore_state.h` (version 2, little-endian).
#[rustfmt::skip]
const XEN_LE: &[u8] = &[
    b'x', b'e', b'n', b's', b't', b'o', b'r', b'e', 0, 0, 0, 2, 0, 0, 0, 0,
    // GLOBAL_DATA: socket-fd -1, evtchn-fd 4
    1, 0, 0, 0, 8, 0, 0, 0,
    0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0,
    // CONNECTION_DATA len 40 (padding counted): conn 1, ring, fields 1 (unique-id)
    2, 0, 0, 0, 40, 0, 0, 0,
    1, 0, 0, 0, 0, 0, 1, 0,
    5, 0, 0xf4, 0x7f, 3, 0, 0, 0, // domid 5, tdomid 0x7ff4, evtchn 3
    1, 0, 2, 0, 2, 0, 0, 0, // in 1, resp 2, out 2
    b'i', b'o', b'k', 0, 0, 0, 0, 0, // in "i", out "ok", pad
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // unique-id
    // WATCH_DATA_EXTENDED len 16: conn 1, wpath-len 3, token-len 2, depth 1, "/a", "t"
    8, 0, 0, 0, 16, 0, 0, 0,
    1, 0, 0, 0, 3, 0, 2, 0,
    1, 0, b'/', b'a', 0, b't', 0, 0,
    // NODE_DATA len 24: committed "/", path-len 2, value-len 1, access 0, 1 perm (r, stale, dom0)
    5, 0, 0, 0, 24, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 1, 0, 0, 0, 1, 0,
    b'r', 1, 0, 0, b'/', 0, b'x', 0,
    0, 0, 0, 0, 0, 0, 0, 0,
];

fn xen_sample() -> Image {
    Image {
        endianness: Endianness::Little,
        version: 2,
        records: vec![
            Record::XenGlobal(XenGlobalData {
                socket_fd: -1,
                evtchn_fd: 4,
            }),
            Record::XenConnection(XenConnectionData {
                conn_id: 1,
                spec: XenConnSpec::Ring {
                    domid: 5,
                    tdomid: 0x7ff4,
                    evtchn: 3,
                },
                in_data: b"i".to_vec(),
                out_resp_len: 2,
                out_data: b"ok".to_vec(),
                unique_id: Some(0x1122_3344_5566_7788),
            }),
            Record::XenWatchExt(XenWatchExtData {
                watch: WatchData {
                    conn_id: 1,
                    wpath: "/a".into(),
                    token: "t".into(),
                },
                depth: 1,
            }),
            Record::Node(NodeData {
                conn_id: 0,
                tx_id: 0,
                access: 0,
                perms: vec![NodePerm {
                    kind: PermKind::Read,
                    flags: 1,
                    domid: 0,
                }],
                path: "/".into(),
                value: b"x".to_vec(),
            }),
            Record::End,
        ],
    }
}

#[test]
fn golden_xen_layout() {
    assert_eq!(read(XEN_LE, Layout::Xen).unwrap(), xen_sample());
    assert_eq!(write_layout(&xen_sample(), Layout::Xen).unwrap(), XEN_LE);
}

#[test]
fn xen_layout_is_not_seed() {
    // The same bytes are refused as seed (version 2).
    assert!(read(XEN_LE, Layout::Seed).is_err());
    // And a seed image with a connection is refused as Xen (different connection layout).
    assert!(read(SAMPLE_LE, Layout::Xen).is_err());
}
