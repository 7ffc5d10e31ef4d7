//! The introduction of a domain's ring as C xenstored does it (4.20's reset and reconnection,
//! 4.21's `server_features` at the first introduction, the error field only with the error
//! feature), on a plain page.

use std::cell::Cell;

use xsstate::ring as layout;
use xsstub_abi_tests::ring_intro::{introduce, set_error, RingWords};

struct Page(Vec<Cell<u32>>);

impl Page {
    fn new() -> Page {
        Page((0..1024).map(|_| Cell::new(0)).collect())
    }
    fn get(&self, off: usize) -> u32 {
        self.0[off / 4].get()
    }
    fn set(&self, off: usize, v: u32) {
        self.0[off / 4].set(v)
    }
}

impl RingWords for Page {
    fn read_u32(&self, off: usize) -> u32 {
        self.get(off)
    }
    fn write_u32(&self, off: usize, value: u32) {
        self.set(off, value)
    }
}

const INDICES: [usize; 4] = [
    layout::REQ_CONS_OFFSET,
    layout::REQ_PROD_OFFSET,
    layout::RSP_CONS_OFFSET,
    layout::RSP_PROD_OFFSET,
];

fn dirty() -> Page {
    let p = Page::new();
    for (i, off) in INDICES.iter().enumerate() {
        p.set(*off, 100 + i as u32);
    }
    p.set(layout::REQ_OFFSET, 0x4141_4141);
    p
}

#[test]
fn first_introduction_resets_indices_and_writes_the_features() {
    let p = dirty();
    p.set(layout::ERROR_OFFSET, 2);
    let notify = introduce(
        &p,
        Some(layout::FEATURE_RECONNECTION | layout::FEATURE_ERROR),
    );
    assert!(!notify, "a connected ring is not notified");
    for off in INDICES {
        assert_eq!(p.get(off), 0, "index at {off}");
    }
    assert_eq!(p.get(layout::SERVER_FEATURES_OFFSET), 3);
    assert_eq!(p.get(layout::CONNECTION_OFFSET), layout::CONNECTED);
    assert_eq!(
        p.get(layout::ERROR_OFFSET),
        2,
        "the error field is not the reset's"
    );
    assert_eq!(p.get(layout::REQ_OFFSET), 0x4141_4141, "data untouched");
}

#[test]
fn a_requested_reconnection_is_completed_and_notified() {
    let p = dirty();
    p.set(layout::CONNECTION_OFFSET, layout::RECONNECT);
    assert!(introduce(&p, Some(layout::SUPPORTED_FEATURES)));
    assert_eq!(p.get(layout::CONNECTION_OFFSET), layout::CONNECTED);
    // Any other value is left alone.
    let p = dirty();
    p.set(layout::CONNECTION_OFFSET, 7);
    assert!(!introduce(&p, None));
    assert_eq!(p.get(layout::CONNECTION_OFFSET), 7);
}

#[test]
fn a_later_introduction_keeps_the_features() {
    let p = dirty();
    p.set(layout::SERVER_FEATURES_OFFSET, 1);
    p.set(layout::CONNECTION_OFFSET, layout::RECONNECT);
    assert!(introduce(&p, None));
    assert_eq!(p.get(layout::SERVER_FEATURES_OFFSET), 1);
    for off in INDICES {
        assert_eq!(p.get(off), 0);
    }
}

#[test]
fn the_error_field_needs_the_error_feature() {
    let p = Page::new();
    assert!(!set_error(&p, layout::FEATURE_RECONNECTION, 2));
    assert_eq!(p.get(layout::ERROR_OFFSET), 0);
    assert!(set_error(&p, layout::FEATURE_ERROR, 2));
    assert_eq!(p.get(layout::ERROR_OFFSET), 2);
    assert!(set_error(&p, layout::SUPPORTED_FEATURES, 0));
    assert_eq!(p.get(layout::ERROR_OFFSET), 0);
}
