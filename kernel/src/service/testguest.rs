//! A misbehaving guest for the lab: the same image, booted by `xl create` with
//! `xsstub-test-guest=garbage-ring`, reads its name, then corrupts its ring indices.

use alloc::vec::Vec;

use xsstate::ids::TxId;
use xsstate::wire::{Message, MsgType};

use crate::kprintln;
use crate::xen::{events, ring::XsClientRing, time};

/// Whether the command line asks for the test guest.
pub fn wanted(cmdline: &str) -> bool {
    cmdline
        .split_ascii_whitespace()
        .any(|t| t == "xsstub-test-guest=garbage-ring")
}

/// Sends one request and waits (up to `timeout_ms`) for its reply's payload.
fn call(ring: &XsClientRing, msg: MsgType, payload: &[u8], timeout_ms: u64) -> Option<Vec<u8>> {
    let bytes = Message::new(msg, 7, TxId::NONE, payload.to_vec()).encode();
    if ring.send(&bytes) != bytes.len() {
        return None;
    }
    let _ = events::notify(ring.port);
    let deadline = time::now_ns() + timeout_ms * 1_000_000;
    let mut got = Vec::new();
    while time::now_ns() < deadline {
        ring.receive(&mut got);
        if got.len() >= 16 {
            let len = got
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| u32::from_le_bytes(b) as usize)
                .unwrap_or(0);
            if got.len() >= 16 + len {
                return got.get(16..16 + len).map(<[u8]>::to_vec);
            }
        }
        core::hint::spin_loop();
    }
    None
}

/// Runs the test and shuts the domain down; prints `XSSTUB-TESTGUEST ...` lines on 0xE9
/// (`xl dmesg` shows them).
pub fn run() -> ! {
    let Some(ring) = XsClientRing::own() else {
        kprintln!("XSSTUB-TESTGUEST FAIL no xenstore ring");
        crate::xen::sched::shutdown(false)
    };
    match call(&ring, MsgType::Read, b"name\0", 5_000) {
        Some(name) => kprintln!(
            "XSSTUB-TESTGUEST name {}",
            core::str::from_utf8(name.strip_suffix(b"\0").unwrap_or(&name)).unwrap_or("?")
        ),
        None => {
            kprintln!("XSSTUB-TESTGUEST FAIL no reply to READ name");
            crate::xen::sched::shutdown(false)
        }
    }
    // Claim far more bytes than a ring holds (XSA-38).
    let cons = ring.req_cons();
    ring.corrupt_req_prod(cons.wrapping_add(5000));
    let _ = events::notify(ring.port);
    let deadline = time::now_ns() + 5_000_000_000;
    while ring.error() == 0 && time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    kprintln!("XSSTUB-TESTGUEST ring error field {}", ring.error());
    // Stay alive (so dom0 can check that only this connection is gone) until destroyed.
    loop {
        crate::arch::cpu::disable_interrupts();
        crate::arch::cpu::wait_for_interrupt();
    }
}
