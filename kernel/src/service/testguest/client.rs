//! The test guest's xenstore client: raw messages (any type, any payload) over the domain's
//! own ring, replies matched by request id, watch events counted and set aside.

use alloc::vec::Vec;
use embedded_io::{BufRead, Write, WriteReady};
use xsstate::le;

use crate::xen::{events, ring::XsClientRing, time};

/// Bytes of a message header (`type`, `req_id`, `tx_id`, `len`, little endian).
const HEADER: usize = 16;
/// `XS_WATCH_EVENT`.
pub const WATCH_EVENT: u32 = 15;
/// `XS_ERROR`.
pub const ERROR: u32 = 16;

/// One message from xenstore.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Its type (`ERROR` for an error reply).
    pub ty: u32,
    /// Its request id (0 for watch events).
    pub req_id: u32,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Reply {
    /// `OK`, `ERROR EINVAL`, or `TYPE n LEN m` for other answers: how the lab's scenarios
    /// name an outcome.
    pub fn outcome(&self) -> heapless::String<64> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        let text = self.payload.strip_suffix(b"\0").unwrap_or(&self.payload);
        let text = core::str::from_utf8(text).unwrap_or("?");
        if self.ty == ERROR {
            let _ = write!(s, "ERROR {}", text.get(..40).unwrap_or(text));
        } else if text == "OK" {
            let _ = s.push_str("OK");
        } else {
            let _ = write!(s, "TYPE {} LEN {}", self.ty, self.payload.len());
        }
        s
    }

    /// The payload as text without its trailing NUL (`?` if not UTF-8).
    pub fn text(&self) -> &str {
        let t = self.payload.strip_suffix(b"\0").unwrap_or(&self.payload);
        core::str::from_utf8(t).unwrap_or("?")
    }
}

/// The client.
pub struct Client {
    ring: XsClientRing,
    input: Vec<u8>,
    next_req: u32,
    /// Watch events received so far.
    pub events: u64,
    /// The largest watch event payload received.
    pub largest_event: usize,
}

impl Client {
    /// The domain's own ring, if the toolstack gave it one.
    pub fn open() -> Option<Client> {
        Some(Client {
            ring: XsClientRing::own()?,
            input: Vec::new(),
            next_req: 1,
            events: 0,
            largest_event: 0,
        })
    }

    /// The ring's `error` field.
    pub fn ring_error(&self) -> u32 {
        self.ring.error()
    }

    /// The raw ring (the garbage-ring mode corrupts it).
    pub fn ring(&self) -> &XsClientRing {
        &self.ring
    }

    /// Blocks until the ring's event channel fires or `until_ns` (at most 5 ms).
    pub fn nap(&self, until_ns: u64) {
        let cap = time::now_ns().saturating_add(5_000_000);
        let _ = events::wait(&[self.ring.port], until_ns.min(cap));
    }

    /// Writes `bytes` into the request ring as room appears; false if not all of it went
    /// in before `timeout_ms`.
    pub fn send_bytes(&mut self, bytes: &[u8], timeout_ms: u64) -> bool {
        let deadline = time::now_ns().saturating_add(timeout_ms.saturating_mul(1_000_000));
        let mut rest = bytes;
        loop {
            let n = self.push(rest);
            if n > 0 {
                let _ = events::notify(self.ring.port);
            }
            rest = rest.get(n..).unwrap_or(&[]);
            if rest.is_empty() {
                return true;
            }
            if time::now_ns() >= deadline {
                return false;
            }
            let _ = events::take_pending();
            self.nap(deadline);
        }
    }

    /// Writes as much of `bytes` as the request ring has room for (notifying xenstore);
    /// returns how much.
    pub fn try_send(&mut self, bytes: &[u8]) -> usize {
        let n = self.push(bytes);
        if n > 0 {
            let _ = events::notify(self.ring.port);
        }
        n
    }

    /// Writes as much of `bytes` as the request ring takes now (the same `embedded-io`
    /// stream the server reads its requests from); 0 when it is full or broken.
    fn push(&self, bytes: &[u8]) -> usize {
        let mut tx = self.ring.requests();
        match tx.write_ready() {
            Ok(true) => tx.write(bytes).unwrap_or(0),
            _ => 0,
        }
    }

    /// Appends the response bytes that arrived to the input buffer.
    fn pull(&mut self) {
        let mut rx = self.ring.responses();
        while let Ok(bytes) = rx.fill_buf() {
            if bytes.is_empty() {
                break;
            }
            let n = bytes.len();
            self.input.extend_from_slice(bytes);
            rx.consume(n);
        }
    }

    /// A whole message if one has arrived (without waiting).
    pub fn poll(&mut self) -> Option<Reply> {
        if let Some(m) = self.pop() {
            return Some(m);
        }
        let _ = events::take_pending();
        self.pull();
        self.pop()
    }

    /// An encoded request of raw type `ty` with a fresh request id: (id, bytes).
    pub fn encode(&mut self, ty: u32, tx: u32, payload: &[u8]) -> (u32, Vec<u8>) {
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        for w in [ty, req_id, tx, len] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.extend_from_slice(payload);
        (req_id, bytes)
    }

    /// Sends one request of raw type `ty`; returns its request id.
    pub fn send(&mut self, ty: u32, tx: u32, payload: &[u8], timeout_ms: u64) -> Option<u32> {
        let (req_id, bytes) = self.encode(ty, tx, payload);
        self.send_bytes(&bytes, timeout_ms).then_some(req_id)
    }

    /// A whole message from what was received, if there is one.
    fn pop(&mut self) -> Option<Reply> {
        if self.input.len() < HEADER {
            return None;
        }
        let len = le::u32_at(&self.input, 12).unwrap_or(0) as usize;
        if self.input.len() < HEADER + len {
            return None;
        }
        let msg = Reply {
            ty: le::u32_at(&self.input, 0).unwrap_or(0),
            req_id: le::u32_at(&self.input, 4).unwrap_or(0),
            payload: self.input.get(HEADER..HEADER + len)?.to_vec(),
        };
        self.input.drain(..HEADER + len);
        Some(msg)
    }

    /// The next message, waiting until `deadline_ns`.
    fn next(&mut self, deadline_ns: u64) -> Option<Reply> {
        loop {
            if let Some(m) = self.pop() {
                return Some(m);
            }
            let _ = events::take_pending();
            self.pull();
            if let Some(m) = self.pop() {
                return Some(m);
            }
            if time::now_ns() >= deadline_ns {
                return None;
            }
            self.nap(deadline_ns);
        }
    }

    /// Counts a watch event.
    fn note_event(&mut self, m: &Reply) {
        self.events += 1;
        self.largest_event = self.largest_event.max(m.payload.len());
    }

    /// The reply to `req_id` within `timeout_ms` (events meanwhile are counted).
    pub fn reply(&mut self, req_id: u32, timeout_ms: u64) -> Option<Reply> {
        let deadline = time::now_ns().saturating_add(timeout_ms.saturating_mul(1_000_000));
        loop {
            let m = self.next(deadline)?;
            if m.ty == WATCH_EVENT && m.req_id == 0 {
                self.note_event(&m);
                continue;
            }
            if m.req_id == req_id {
                return Some(m);
            }
        }
    }

    /// Sends a request and waits up to `timeout_ms` for its reply.
    pub fn call(&mut self, ty: u32, tx: u32, payload: &[u8], timeout_ms: u64) -> Option<Reply> {
        let req = self.send(ty, tx, payload, timeout_ms)?;
        self.reply(req, timeout_ms)
    }

    /// Waits up to `timeout_ms` for a watch event (replies to abandoned requests are
    /// dropped); true if one came.
    pub fn wait_event(&mut self, timeout_ms: u64) -> bool {
        let deadline = time::now_ns().saturating_add(timeout_ms.saturating_mul(1_000_000));
        while let Some(m) = self.next(deadline) {
            if m.ty == WATCH_EVENT {
                self.note_event(&m);
                return true;
            }
        }
        false
    }

    /// Takes whatever arrives for `ms` milliseconds, counting watch events.
    pub fn drain(&mut self, ms: u64) {
        let deadline = time::now_ns().saturating_add(ms.saturating_mul(1_000_000));
        while let Some(m) = self.next(deadline) {
            if m.ty == WATCH_EVENT {
                self.note_event(&m);
            }
        }
    }
}
