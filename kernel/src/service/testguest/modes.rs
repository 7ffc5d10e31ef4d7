//! The test guest's modes: what each sends and the `XSSTUB-TESTGUEST` lines it prints for
//! the lab's scenarios to check (`badring`, `abuse-watches`, `abuse-malformed`,
//! `abuse-many-guests`, `abuse-requests`), and the well-behaved guest of the `abuse-*`
//! scenarios (`echo`).

use alloc::string::String;
use alloc::vec::Vec;

use xsstate::wire::MsgType;

use super::client::{Client, Reply};
use crate::kprintln;
use crate::xen::time;

/// The mode [`choose`] noted.
static MODE: spin::Once<heapless::String<32>> = spin::Once::new();

/// How long one request may take.
const TIMEOUT_MS: u64 = 10_000;

/// Notes the mode named on the command line.
pub fn choose(mode: &str) {
    let mut s = heapless::String::new();
    let _ = s.push_str(mode.get(..32).unwrap_or(mode));
    MODE.call_once(|| s);
}

/// Prints a failure and shuts the domain down.
fn give_up(what: &str) -> ! {
    kprintln!("XSSTUB-TESTGUEST FAIL {what}");
    crate::xen::sched::shutdown(false)
}

/// Waits for interrupts until the domain is destroyed.
fn idle() -> ! {
    loop {
        crate::arch::cpu::disable_interrupts();
        crate::arch::cpu::wait_for_interrupt();
    }
}

/// `text` followed by a NUL.
fn z(text: &[u8]) -> Vec<u8> {
    let mut v = text.to_vec();
    v.push(0);
    v
}

/// A request with two NUL-terminated strings (`WATCH path|token|`).
fn z2(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = z(a);
    v.extend_from_slice(&z(b));
    v
}

/// Runs the chosen mode.
pub fn run() -> ! {
    let mode = MODE.get().map_or("", |m| m.as_str());
    let Some(mut c) = Client::open() else {
        give_up("no xenstore ring")
    };
    let name = read_name(&mut c);
    kprintln!("XSSTUB-TESTGUEST name {name}");
    match mode {
        "garbage-ring" => garbage_ring(&c),
        "watch-flood" => watch_flood(&mut c),
        "malformed" => malformed(&mut c, &name),
        "benign" => benign(&mut c, &name),
        "echo" => echo(&mut c),
        "flood" => flood(&mut c),
        other => give_up(&alloc::format!("unknown mode {other:?}")),
    }
}

/// READ `name` (the domain's name, relative to its home).
fn read_name(c: &mut Client) -> String {
    match c.call(MsgType::Read as u32, 0, b"name\0", TIMEOUT_MS) {
        Some(r) if r.ty == MsgType::Read as u32 => String::from(r.text()),
        Some(r) => give_up(&alloc::format!("READ name: {}", r.outcome())),
        None => give_up("no reply to READ name"),
    }
}

/// The outcome of a request as the scenarios name it (`OK`, `ERROR E2BIG`, `NO REPLY`).
fn outcome(r: Option<Reply>) -> heapless::String<64> {
    match r {
        Some(r) => r.outcome(),
        None => heapless::String::try_from("NO REPLY").unwrap_or_default(),
    }
}

/// Claims far more request bytes than a ring holds (XSA-38) and reports the ring's `error`
/// field.
fn garbage_ring(c: &Client) -> ! {
    let ring = c.ring();
    let cons = ring.req_cons();
    ring.corrupt_req_prod(cons.wrapping_add(5000));
    let _ = crate::xen::events::notify(ring.port);
    let deadline = time::now_ns() + 5_000_000_000;
    while ring.error() == 0 && time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    kprintln!("XSSTUB-TESTGUEST ring error field {}", ring.error());
    // Stay alive (so dom0 can check that only this connection is gone) until destroyed.
    idle()
}

/// Sets watches on `data/flood` until one is refused (the quota is 128), then never reads
/// its ring again (XSA-326): every event dom0 causes from now on must be queued or dropped
/// by xenstore.
fn watch_flood(c: &mut Client) -> ! {
    let mut set = 0u32;
    let refusal = loop {
        let token = alloc::format!("w{set}");
        let r = c.call(
            MsgType::Watch as u32,
            0,
            &z2(b"data/flood", token.as_bytes()),
            TIMEOUT_MS,
        );
        let o = outcome(r);
        if o != "OK" || set >= 1000 {
            break o;
        }
        set += 1;
    };
    kprintln!(
        "XSSTUB-TESTGUEST watches set {set}, watch {}: {refusal}",
        set + 1
    );
    // The initial events of the watches.
    c.drain(500);
    kprintln!(
        "XSSTUB-TESTGUEST not reading from now on ({} events read)",
        c.events
    );
    idle()
}

/// Malformed but well-framed requests (each answer printed as `case NAME: OUTCOME`), a
/// request in an unknown transaction, RESET_WATCHES in a transaction (XSA-484), a watch
/// token that makes events oversized (XSA-324), a check that the connection still works,
/// then an oversized message (XSA-72) and the ring's `error` field.
fn malformed(c: &mut Client, name: &str) -> ! {
    for (case, ty, payload) in cases() {
        let o = outcome(c.call(ty, 0, &payload, TIMEOUT_MS));
        kprintln!("XSSTUB-TESTGUEST case {case}: {o}");
    }
    let o = outcome(c.call(MsgType::Read as u32, 4242, b"name\0", TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST case read-unknown-tx: {o}");
    // XSA-484: RESET_WATCHES inside a transaction.
    let start = c.call(MsgType::TransactionStart as u32, 0, b"\0", TIMEOUT_MS);
    let tx = match &start {
        Some(r) if r.ty == MsgType::TransactionStart as u32 => r.text().parse::<u32>().ok(),
        _ => None,
    };
    let Some(tx) = tx else {
        give_up(&alloc::format!(
            "TRANSACTION_START: {}",
            outcome(start.clone())
        ))
    };
    let o = outcome(c.call(MsgType::ResetWatches as u32, tx, b"", TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST case reset-watches-in-txn: {o}");
    let o = outcome(c.call(MsgType::TransactionEnd as u32, tx, b"F\0", TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST case txn-abort-after: {o}");
    // XSA-324: a 4000-byte token; the first event fits, one for a long child would not.
    let token = "T".repeat(4000);
    let o = outcome(c.call(
        MsgType::Watch as u32,
        0,
        &z2(b"data", token.as_bytes()),
        TIMEOUT_MS,
    ));
    kprintln!("XSSTUB-TESTGUEST case watch-huge-token: {o}");
    c.drain(300);
    let before = c.events;
    let mut long = String::from("data/");
    long.push_str(&"c".repeat(100));
    let mut w = z(long.as_bytes());
    w.push(b'1');
    let o = outcome(c.call(MsgType::Write as u32, 0, &w, TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST case write-long-child: {o}");
    let o = outcome(c.call(MsgType::Write as u32, 0, b"data/s\x001", TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST case write-short-child: {o}");
    c.drain(500);
    kprintln!(
        "XSSTUB-TESTGUEST xsa324 events after the writes {} largest {}",
        c.events - before,
        c.largest_event
    );
    let o = outcome(c.call(
        MsgType::Unwatch as u32,
        0,
        &z2(b"data", token.as_bytes()),
        TIMEOUT_MS,
    ));
    kprintln!("XSSTUB-TESTGUEST case unwatch-huge-token: {o}");
    let again = read_name(c);
    kprintln!("XSSTUB-TESTGUEST alive name {again} (was {name})");
    // XSA-72: a header announcing 5000 payload bytes.
    let mut msg = Vec::new();
    for w in [MsgType::Read as u32, 99, 0, 5000] {
        msg.extend_from_slice(&w.to_le_bytes());
    }
    msg.extend_from_slice(&[b'x'; 100]);
    if !c.send_bytes(&msg, TIMEOUT_MS) {
        give_up("the oversized message did not fit in the ring");
    }
    let deadline = time::now_ns() + 5_000_000_000;
    while c.ring_error() == 0 && time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    kprintln!("XSSTUB-TESTGUEST ring error field {}", c.ring_error());
    // Nothing is served on a faulted ring.
    let after = c.call(MsgType::Read as u32, 0, b"name\0", 2_000);
    kprintln!(
        "XSSTUB-TESTGUEST after the fault READ name: {}",
        outcome(after)
    );
    idle()
}

/// The malformed requests: (case, raw type, payload). Their answers are in
/// `qemu-tests/scenarios/abuse-malformed.sh` and `xsstate/tests/abuse.rs`.
fn cases() -> Vec<(&'static str, u32, Vec<u8>)> {
    let rd = MsgType::Read as u32;
    let mut long_rel = "p/".repeat(1100);
    long_rel.pop();
    alloc::vec![
        ("read-no-nul", rd, b"name".to_vec()),
        ("read-two-args", rd, b"name\0name\0".to_vec()),
        ("read-empty", rd, Vec::new()),
        ("read-bad-char", rd, b"na*me\0".to_vec()),
        ("read-not-utf8", rd, b"\xff\xfe\0".to_vec()),
        ("read-double-slash", rd, b"data//x\0".to_vec()),
        ("read-trailing-slash", rd, b"data/\0".to_vec()),
        ("read-special", rd, b"@releaseDomain\0".to_vec()),
        ("read-too-long", rd, z(long_rel.as_bytes())),
        (
            "write-no-value-nul",
            MsgType::Write as u32,
            b"data/m".to_vec()
        ),
        ("mkdir-special", MsgType::Mkdir as u32, b"@x\0".to_vec()),
        ("rm-root", MsgType::Rm as u32, b"/\0".to_vec()),
        (
            "set-perms-bad-domid",
            MsgType::SetPerms as u32,
            b"data\0rx1\0".to_vec()
        ),
        (
            "set-perms-bad-letter",
            MsgType::SetPerms as u32,
            b"data\0q5\0".to_vec()
        ),
        (
            "set-perms-none",
            MsgType::SetPerms as u32,
            b"data\0".to_vec()
        ),
        (
            "get-domain-path-bad",
            MsgType::GetDomainPath as u32,
            b"5x\0".to_vec()
        ),
        (
            "get-domain-path-huge",
            MsgType::GetDomainPath as u32,
            b"99999999999999999999999\0".to_vec()
        ),
        (
            "directory-part-bad-offset",
            MsgType::DirectoryPart as u32,
            b"data\0x1\0".to_vec()
        ),
        ("watch-no-token", MsgType::Watch as u32, b"data\0".to_vec()),
        (
            "watch-bad-path",
            MsgType::Watch as u32,
            b"a*b\0t\0".to_vec()
        ),
        (
            "unwatch-unknown",
            MsgType::Unwatch as u32,
            b"data\0nope\0".to_vec()
        ),
        (
            "txn-end-bad-arg",
            MsgType::TransactionEnd as u32,
            b"X\0".to_vec()
        ),
        ("type-99", 99, b"name\0".to_vec()),
        ("type-20-restrict", 20, b"name\0".to_vec()),
        ("type-15-watch-event", 15, b"a\0b\0".to_vec()),
        ("type-16-error", 16, b"EINVAL\0".to_vec()),
        ("type-max", u32::MAX, Vec::new()),
        (
            "introduce-unpriv",
            MsgType::Introduce as u32,
            b"9\x0012\x003\0".to_vec()
        ),
        (
            "control-unpriv",
            MsgType::Control as u32,
            b"print\0x\0".to_vec()
        ),
        (
            "set-quota-unpriv",
            MsgType::SetQuota as u32,
            b"5\0nodes\x009\0".to_vec()
        ),
    ]
}

/// Reads its name, writes `data/result` = `name=NAME`, then idles: the many-guests
/// scenario's small guest.
fn benign(c: &mut Client, name: &str) -> ! {
    let mut w = z(b"data/result");
    w.extend_from_slice(b"name=");
    w.extend_from_slice(name.as_bytes());
    let o = outcome(c.call(MsgType::Write as u32, 0, &w, TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST benign wrote data/result: {o}");
    idle()
}

/// The well-behaved guest of the hostile-guest scenarios: watches `data/ping` and copies
/// each new value to `data/pong` through its one connection, after writing `data/ready`.
fn echo(c: &mut Client) -> ! {
    let o = outcome(c.call(
        MsgType::Watch as u32,
        0,
        &z2(b"data/ping", b"echo"),
        TIMEOUT_MS,
    ));
    if o != "OK" {
        give_up(&alloc::format!("WATCH data/ping: {o}"));
    }
    let o = outcome(c.call(MsgType::Write as u32, 0, b"data/ready\x001", TIMEOUT_MS));
    kprintln!("XSSTUB-TESTGUEST echo ready: {o}");
    let mut last: Vec<u8> = Vec::new();
    let mut echoed = 0u64;
    loop {
        // Every event (the first one included) may carry a new value.
        let r = c.call(MsgType::Read as u32, 0, b"data/ping\0", TIMEOUT_MS);
        if let Some(r) = r.filter(|r| r.ty == MsgType::Read as u32) {
            if r.payload != last {
                let mut w = z(b"data/pong");
                w.extend_from_slice(&r.payload);
                let o = outcome(c.call(MsgType::Write as u32, 0, &w, TIMEOUT_MS));
                if o != "OK" {
                    kprintln!("XSSTUB-TESTGUEST echo: WRITE data/pong: {o}");
                }
                last = r.payload;
                echoed += 1;
                if echoed.is_power_of_two() {
                    kprintln!("XSSTUB-TESTGUEST echoed {echoed}");
                }
            }
        }
        c.wait_event(60_000);
    }
}

/// Requests the flood keeps in flight.
const FLOOD_IN_FLIGHT: usize = 64;

/// The pipelined flood of `abuse-requests`: after `data/ready`, waits for `data/go` (a
/// duration in ms), then for that long keeps 64 READs of a 1900-byte node in flight, then
/// for that long 64 WRITEs of 16 small nodes, as fast as the ring takes them; it reads every
/// reply. After each phase it prints and writes `data/flood-raw-read` (`-write`):
/// `reads=N writes=M errors=E reads_per_s=R writes_per_s=W max_latency_us=L secs=S`.
fn flood(c: &mut Client) -> ! {
    let mut big = z(b"data/big");
    big.extend_from_slice(&[b'.'; 1900]);
    for (what, payload) in [
        ("data/big", big),
        ("data/ready", b"data/ready\x001".to_vec()),
    ] {
        let o = outcome(c.call(MsgType::Write as u32, 0, &payload, TIMEOUT_MS));
        if o != "OK" {
            give_up(&alloc::format!("WRITE {what}: {o}"));
        }
    }
    let ms = loop {
        let r = c.call(MsgType::Read as u32, 0, b"data/go\0", TIMEOUT_MS);
        if let Some(v) = r.filter(|r| r.ty == MsgType::Read as u32) {
            break v.text().parse::<u64>().unwrap_or(10_000);
        }
        let until = time::now_ns() + 200_000_000;
        while time::now_ns() < until {
            c.nap(until);
        }
    };
    for (phase, read) in [("read", true), ("write", false)] {
        kprintln!("XSSTUB-TESTGUEST flood {phase} for {ms} ms");
        let line = flood_phase(c, read, ms);
        kprintln!("XSSTUB-TESTGUEST flood {phase} {line}");
        let mut w = z(alloc::format!("data/flood-raw-{phase}").as_bytes());
        w.extend_from_slice(line.as_bytes());
        let o = outcome(c.call(MsgType::Write as u32, 0, &w, TIMEOUT_MS));
        if o != "OK" {
            kprintln!("XSSTUB-TESTGUEST flood: writing the result: {o}");
        }
    }
    idle()
}

/// One phase of [`flood`]: READs (`read`) or WRITEs for `ms`, 64 in flight; the summary.
fn flood_phase(c: &mut Client, read: bool, ms: u64) -> String {
    // In flight: request id -> sent at.
    let mut flight: alloc::collections::BTreeMap<u32, u64> = Default::default();
    let mut out: Vec<u8> = Vec::new();
    let (mut done, mut errors, mut max_ns) = (0u64, 0u64, 0u64);
    let start = time::now_ns();
    let end = start + ms * 1_000_000;
    let want = if read { MsgType::Read } else { MsgType::Write } as u32;
    let mut k = 0u32;
    loop {
        let now = time::now_ns();
        let sending = now < end;
        if !sending && flight.is_empty() {
            break;
        }
        if now > end + 60_000_000_000 {
            kprintln!(
                "XSSTUB-TESTGUEST flood: {} replies never came",
                flight.len()
            );
            errors += flight.len() as u64;
            break;
        }
        // Queue requests up to the limit in flight, then push what the ring takes.
        while sending && flight.len() < FLOOD_IN_FLIGHT && out.len() < 4096 {
            let (id, bytes) = if read {
                c.encode(want, 0, b"data/big\0")
            } else {
                let w = alloc::format!("data/w{}\0x", k % 16);
                c.encode(want, 0, w.as_bytes())
            };
            flight.insert(id, now);
            out.extend_from_slice(&bytes);
            k = k.wrapping_add(1);
        }
        let n = c.try_send(&out);
        out.drain(..n.min(out.len()));
        let mut got = false;
        while let Some(m) = c.poll() {
            got = true;
            let Some(at) = flight.remove(&m.req_id) else {
                continue;
            };
            max_ns = max_ns.max(time::now_ns().saturating_sub(at));
            if m.ty == want {
                done += 1;
            } else {
                errors += 1;
            }
        }
        if !got && n == 0 {
            c.nap(end.max(now + 1_000_000));
        }
    }
    let secs = (time::now_ns() - start) as f64 / 1e9;
    let (reads, writes) = if read { (done, 0) } else { (0, done) };
    alloc::format!(
        "reads={reads} writes={writes} errors={errors} reads_per_s={:.0} writes_per_s={:.0} \
         max_latency_us={} secs={secs:.1}",
        reads as f64 / secs,
        writes as f64 / secs,
        max_ns / 1000
    )
}
