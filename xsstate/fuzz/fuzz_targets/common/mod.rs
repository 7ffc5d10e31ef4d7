//! Shared fuzz logic: turns input bytes into decoder feeds or engine request sequences.
//!
//! Used by the `cargo fuzz` targets and, through `#[path]`, by the `fuzz_corpus` replay test,
//! so the committed corpus is checked with exactly the fuzzers' logic on every `cargo test`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use xsstate::wire::{
    decode_all, Decoded, Decoder, Header, Message, MsgType, HEADER_LEN, PAYLOAD_MAX,
};
use xsstate::{ConnId, DomId, DomainState, Effect, Engine, EngineConfig, Fault, TxId};

/// A byte cursor that yields zeros once the input is used up.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data, pos: 0 }
    }

    /// Whether every byte was used.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// One of `items`.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[usize::from(self.byte()) % items.len()]
    }
}

// ---------------------------------------------------------------------------------------
// wire_decoder
// ---------------------------------------------------------------------------------------

/// What a straightforward header walk predicts for a stream: the message spans, and the
/// oversized length that must stop decoding, if any.
fn predict(stream: &[u8]) -> (Vec<(usize, usize)>, Option<u32>) {
    let mut spans = Vec::new();
    let mut off = 0usize;
    while stream.len() - off >= HEADER_LEN {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&stream[off..off + HEADER_LEN]);
        let header = Header::decode(&h);
        if header.len as usize > PAYLOAD_MAX {
            return (spans, Some(header.len));
        }
        let end = off + HEADER_LEN + header.len as usize;
        if end > stream.len() {
            break;
        }
        spans.push((off, end));
        off = end;
    }
    (spans, None)
}

/// Feeds `data` (a chunking prefix, then the stream) to [`Decoder`] in chunks and to
/// [`decode_all`]; both must agree with a plain header walk and never panic.
pub fn wire_decoder(data: &[u8]) {
    let mut input = Input::new(data);
    let nchunks = usize::from(input.byte() % 16);
    let sizes: Vec<usize> = (0..nchunks).map(|_| usize::from(input.byte())).collect();
    let stream = data.get(input.pos.min(data.len())..).unwrap_or(&[]);
    let (spans, oversized) = predict(stream);

    // Whole-buffer decoding.
    match decode_all(stream) {
        Ok((msgs, used)) => {
            assert!(
                oversized.is_none(),
                "oversized header accepted by decode_all"
            );
            assert_eq!(msgs.len(), spans.len());
            assert!(used <= stream.len());
            for (m, &(s, e)) in msgs.iter().zip(&spans) {
                assert_eq!(m.encode(), &stream[s..e], "re-encoding differs");
            }
        }
        Err(f) => {
            let len = oversized.expect("decode_all failed without an oversized header");
            assert_eq!(f, Fault::OversizedMessage { len });
        }
    }

    // Chunked decoding (chunk sizes cycle; 0 means "one byte").
    let mut dec = Decoder::new();
    let mut got: Vec<Message> = Vec::new();
    let mut fault = None;
    let mut off = 0usize;
    let mut i = 0usize;
    'outer: while off < stream.len() {
        let size = if sizes.is_empty() {
            stream.len()
        } else {
            sizes[i % sizes.len()].max(1)
        };
        i += 1;
        let chunk = &stream[off..(off + size).min(stream.len())];
        off += chunk.len();
        let mut used = 0usize;
        while used < chunk.len() {
            match dec.feed(&chunk[used..]) {
                Ok(Decoded::Message { msg, consumed }) => {
                    assert!(consumed > 0 || msg.payload.is_empty());
                    assert!(consumed <= chunk.len() - used);
                    used += consumed;
                    got.push(msg);
                }
                Ok(Decoded::NeedMore) => break,
                Err(f) => {
                    fault = Some(f);
                    break 'outer;
                }
            }
        }
        if !dec.is_partial() {
            assert!(dec.partial_bytes().is_empty(), "idle decoder holds bytes");
        }
    }
    assert_eq!(
        got.len(),
        spans.len(),
        "chunked decoding found a different number of messages"
    );
    for (m, &(s, e)) in got.iter().zip(&spans) {
        assert_eq!(m.encode(), &stream[s..e]);
    }
    match (fault, oversized) {
        (None, None) => {}
        (Some(f), Some(len)) => assert_eq!(f, Fault::OversizedMessage { len }),
        (f, o) => panic!("chunked decoder fault {f:?}, expected oversized {o:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// engine_requests
// ---------------------------------------------------------------------------------------

const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "c",
    "local",
    "domain",
    "1",
    "2",
    "3",
    "tool",
    "xenstored",
    "data",
    "x-y_z",
    "vm",
    "@a",
];
const SPECIAL: &[&str] = &[
    "@introduceDomain",
    "@releaseDomain",
    "@introduceDomain/1",
    "@releaseDomain/2",
    "@",
];
const CONTROL: &[&[u8]] = &[
    b"check\0",
    b"memreport\0",
    b"print\0hello\0",
    b"log\0on\0",
    b"log\0off\0",
    b"quota\0",
    b"quota\0set\0nodes\x00100\0",
    b"quota\0set\0outstanding\x003\0",
    b"quota\0set\0node-size\x0064\0",
    b"quota\x001\0",
    b"quota-soft\0",
    b"quota-soft\0set\0memory\x001000\0",
    b"help\0",
    b"live-update\0-s\0",
    b"live-update\0-a\0",
    b"live-update\0-b\x00100\0",
    b"nonsense\0",
];
const QUOTA_NAMES: &[&str] = &[
    "nodes",
    "watches",
    "transactions",
    "outstanding",
    "transaction-nodes",
    "memory",
    "node-size",
    "path-max",
    "permissions",
    "bogus",
];

/// Builds a path: absolute, relative or malformed.
fn path(input: &mut Input<'_>) -> Vec<u8> {
    let kind = input.byte();
    match kind % 16 {
        0 => input.pick(SPECIAL).as_bytes().to_vec(),
        1 => b"/".to_vec(),
        2 => {
            // Malformed: empty components, trailing slash, odd characters, raw bytes.
            let bad: &[&[u8]] = &[
                b"", b"//", b"/a/", b"/a//b", b"/a b", b"a/", b"/\xff", b"/a\0b", b"..",
            ];
            input.pick(bad).to_vec()
        }
        3 => {
            // Long path.
            let n = usize::from(input.byte()) * 16;
            let mut p = b"/".to_vec();
            p.extend(std::iter::repeat_n(b'a', n));
            p
        }
        4 => {
            let n = usize::from(input.byte() % 32);
            input.bytes(n).to_vec()
        }
        k => {
            let absolute = k < 12;
            let depth = 1 + usize::from(input.byte() % 4);
            let mut p = Vec::new();
            for i in 0..depth {
                if absolute || i > 0 {
                    p.push(b'/');
                }
                p.extend_from_slice(input.pick(COMPONENTS).as_bytes());
            }
            p
        }
    }
}

fn domid_text(input: &mut Input<'_>) -> Vec<u8> {
    let choices: &[&[u8]] = &[
        b"1", b"2", b"3", b"4", b"0", b"65535", b"32753", b"x", b"", b"-1", b"01",
    ];
    input.pick(choices).to_vec()
}

fn value(input: &mut Input<'_>) -> Vec<u8> {
    let k = input.byte();
    match k % 8 {
        0 => Vec::new(),
        1 => vec![b'v'; usize::from(input.u16() % 4200)],
        _ => {
            let n = usize::from(k / 8);
            input.bytes(n).to_vec()
        }
    }
}

fn perms_list(input: &mut Input<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = usize::from(input.byte() % 6);
    for _ in 0..n {
        out.push(*input.pick(b"nrwbx"));
        out.extend_from_slice(&domid_text(input));
        out.push(0);
    }
    if input.byte().is_multiple_of(8) {
        out.pop();
    }
    out
}

fn str0(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

/// The payload for a request of raw type `ty`.
fn payload(input: &mut Input<'_>, ty: u32) -> Vec<u8> {
    let mut p = match MsgType::from_u32(ty) {
        Some(MsgType::Control) => input.pick(CONTROL).to_vec(),
        Some(
            MsgType::Directory | MsgType::Read | MsgType::GetPerms | MsgType::Mkdir | MsgType::Rm,
        ) => str0(&[&path(input)]),
        Some(MsgType::Watch | MsgType::Unwatch) => {
            let p = path(input);
            let tok: &[&[u8]] = &[b"t", b"u", b"tok", b""];
            let t = input.pick(tok).to_vec();
            str0(&[&p, &t])
        }
        Some(MsgType::TransactionStart) => b"\0".to_vec(),
        Some(MsgType::TransactionEnd) => {
            let c: &[&[u8]] = &[b"T\0", b"F\0", b"T\0", b"X\0", b"T"];
            input.pick(c).to_vec()
        }
        Some(MsgType::Introduce) => {
            let d = domid_text(input);
            let gfn: &[&[u8]] = &[b"1000", b"-1", b"x"];
            let g = input.pick(gfn).to_vec();
            let port: &[&[u8]] = &[b"10", b"11", b"0", b"4294967296"];
            let pt = input.pick(port).to_vec();
            str0(&[&d, &g, &pt])
        }
        Some(
            MsgType::Release
            | MsgType::GetDomainPath
            | MsgType::IsDomainIntroduced
            | MsgType::Resume,
        ) => str0(&[&domid_text(input)]),
        Some(MsgType::Write) => {
            let mut p = path(input);
            p.push(0);
            p.extend_from_slice(&value(input));
            p
        }
        Some(MsgType::SetPerms) => {
            let mut p = str0(&[&path(input)]);
            p.extend_from_slice(&perms_list(input));
            p
        }
        Some(MsgType::SetTarget) => {
            let a = domid_text(input);
            let b = domid_text(input);
            str0(&[&a, &b])
        }
        Some(MsgType::ResetWatches) => Vec::new(),
        Some(MsgType::DirectoryPart) => {
            let p = path(input);
            let off = format!("{}", input.byte() % 40);
            str0(&[&p, off.as_bytes()])
        }
        Some(MsgType::GetFeature) => match input.byte() % 2 {
            0 => Vec::new(),
            _ => str0(&[&domid_text(input)]),
        },
        Some(MsgType::SetFeature) => {
            let d = domid_text(input);
            let v = format!("{}", input.byte() % 4);
            str0(&[&d, v.as_bytes()])
        }
        Some(MsgType::GetQuota) => match input.byte() % 3 {
            0 => Vec::new(),
            1 => str0(&[input.pick(QUOTA_NAMES).as_bytes()]),
            _ => {
                let d = domid_text(input);
                str0(&[&d, input.pick(QUOTA_NAMES).as_bytes()])
            }
        },
        Some(MsgType::SetQuota) => {
            let q = input.pick(QUOTA_NAMES).as_bytes().to_vec();
            let v = format!("{}", input.u16() % 2000);
            match input.byte() % 2 {
                0 => str0(&[&q, v.as_bytes()]),
                _ => {
                    let d = domid_text(input);
                    str0(&[&d, &q, v.as_bytes()])
                }
            }
        }
        Some(MsgType::WatchEvent | MsgType::Error) | None => {
            let n = usize::from(input.byte() % 32);
            input.bytes(n).to_vec()
        }
    };
    // Occasionally damage the payload.
    match input.byte() % 32 {
        0 => {
            p.pop();
        }
        1 => p.push(0),
        2 => p.truncate(p.len() / 2),
        _ => {}
    }
    p
}

/// Fuzz-side view of the test run: which transaction ids the engine handed out.
struct State {
    engine: Engine,
    tx_ids: Vec<u32>,
    partial: BTreeMap<ConnId, Vec<u8>>,
    req_id: u32,
    steps: usize,
    now_ms: u64,
}

impl State {
    /// Drains a connection's output and checks it is a sequence of whole, sane messages
    /// (after any bytes a partial read took earlier).
    fn drain(&mut self, conn: ConnId) {
        let out = self.engine.drain_output(conn);
        let mut buf = self.partial.remove(&conn).unwrap_or_default();
        buf.extend_from_slice(&out);
        let (msgs, used) = match decode_all(&buf) {
            Ok(x) => x,
            Err(f) => panic!("engine output does not decode: {f:?}"),
        };
        let faulted = self
            .engine
            .connection(conn)
            .is_some_and(|c| c.faulted.is_some());
        if !faulted {
            assert_eq!(used, buf.len(), "engine output ends in a partial message");
        }
        for m in msgs {
            assert!(
                m.payload.len() <= PAYLOAD_MAX,
                "engine sent a {}-byte payload",
                m.payload.len()
            );
            if m.msg_type == MsgType::TransactionStart as u32 {
                let text = m.payload.strip_suffix(b"\0").unwrap_or(&m.payload);
                if let Some(id) = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<u32>().ok())
                {
                    if self.tx_ids.len() < 64 {
                        self.tx_ids.push(id);
                    }
                }
            }
        }
    }

    /// Reads up to `n` output bytes of a connection, as a transport with little room would.
    fn read_some(&mut self, conn: ConnId, mut n: usize) {
        let buf = self.partial.entry(conn).or_default();
        while n > 0 {
            let chunk = self.engine.pending_output(conn);
            if chunk.is_empty() {
                break;
            }
            let take = chunk.len().min(n);
            buf.extend_from_slice(&chunk[..take]);
            self.engine.consume_output(conn, take);
            n -= take;
        }
    }

    fn conn_ids(&self) -> Vec<ConnId> {
        self.engine.connections().map(|c| c.id).collect()
    }

    /// Carries out effects as a shell would (answering live-update requests).
    fn effects(&mut self) {
        for e in self.engine.take_effects() {
            match e {
                Effect::LiveUpdate {
                    conn,
                    req_id,
                    tx_id,
                    ..
                } => {
                    self.engine
                        .reply(conn, MsgType::Control, req_id, tx_id, b"OK\0".to_vec());
                }
                // The ring is reset: a half-read message is gone with it.
                Effect::Reintroduced { conn, .. }
                | Effect::Released {
                    conn: Some(conn), ..
                } => {
                    self.partial.remove(&conn);
                }
                _ => {}
            }
        }
    }

    /// The invariants checked after every step.
    fn check(&self) {
        if let Err(e) = self.engine.store().check() {
            panic!("store check failed: {e:?}");
        }
        let cfg = self.engine.config();
        for c in self.engine.connections() {
            let sum: usize = c.out.iter().map(|o| o.bytes.len()).sum();
            assert_eq!(
                c.out_bytes, sum,
                "{}: out_bytes out of step with the queue",
                c.id
            );
            let replies = c.out.iter().filter(|o| !o.is_event).count();
            assert_eq!(
                c.replies_queued, replies,
                "{}: replies_queued out of step",
                c.id
            );
            for o in &c.out {
                assert!(
                    o.bytes.len() <= HEADER_LEN + PAYLOAD_MAX,
                    "{}: oversized queued message",
                    c.id
                );
            }
            let limit = if c.domid == cfg.priv_domid {
                cfg.privileged_event_queue_limit_bytes
            } else {
                cfg.event_queue_limit_bytes
            };
            let events: usize = c
                .out
                .iter()
                .filter(|o| o.is_event)
                .map(|o| o.bytes.len())
                .sum();
            assert!(
                events <= limit,
                "{}: {events} bytes of events queued, limit {limit}",
                c.id
            );
            let bound = limit + (HEADER_LEN + PAYLOAD_MAX) * (self.steps + 1);
            assert!(
                c.out_bytes <= bound,
                "{}: {} bytes queued (bound {bound})",
                c.id,
                c.out_bytes
            );
        }
    }
}

/// Interprets `data` as a sequence of requests from dom0 sockets and guest domains and checks
/// the engine's invariants after every step.
pub fn engine_requests(data: &[u8]) {
    let mut input = Input::new(data);
    let mut st = State {
        engine: Engine::new(EngineConfig::default()),
        tx_ids: Vec::new(),
        partial: BTreeMap::new(),
        req_id: 1,
        steps: 0,
        now_ms: 0,
    };
    let dom0 = st.engine.connect_socket(false);
    st.engine.connect_socket(true);
    let guests = 2 + u16::from(input.byte() % 2);
    for d in 1..=guests {
        let p = format!(
            "{d}\x00{}\x00{}\x00",
            1000 + u32::from(d),
            10 + u32::from(d)
        );
        let bytes = Message::new(MsgType::Introduce, 0, TxId(0), p.into_bytes()).encode();
        assert_eq!(st.engine.receive(dom0, &bytes), Ok(bytes.len()));
        st.drain(dom0);
    }
    st.effects();
    st.check();

    while !input.is_empty() && st.steps < 2000 {
        st.steps += 1;
        let op = input.byte();
        let conns = st.conn_ids();
        match op {
            // A request (most of the time).
            0..=219 => {
                if conns.is_empty() {
                    continue;
                }
                let conn = *input.pick(&conns);
                let ty = u32::from(input.byte() % 31);
                let txsel = input.byte();
                let tx = match txsel % 8 {
                    0..=3 => 0,
                    4..=6 if !st.tx_ids.is_empty() => *input.pick(&st.tx_ids),
                    _ => u32::from(input.byte() % 8),
                };
                let req = if op.is_multiple_of(16) {
                    input.u32()
                } else {
                    st.req_id
                };
                st.req_id = st.req_id.wrapping_add(1);
                let p = payload(&mut input, ty);
                let msg = Message {
                    msg_type: ty,
                    req_id: req,
                    tx_id: TxId(tx),
                    payload: p,
                };
                let mode = input.byte();
                if mode.is_multiple_of(16) {
                    let _ = st.engine.handle_message(conn, msg);
                } else {
                    let bytes = msg.encode();
                    // Deliver in one or two pieces.
                    let cut = if mode % 4 == 1 {
                        usize::from(input.byte()) % (bytes.len() + 1)
                    } else {
                        bytes.len()
                    };
                    for piece in [&bytes[..cut], &bytes[cut..]] {
                        if piece.is_empty() {
                            continue;
                        }
                        match st.engine.receive(conn, piece) {
                            Ok(n) => assert!(n <= piece.len()),
                            Err(_) => break,
                        }
                    }
                }
                if mode & 0x80 == 0 {
                    st.drain(conn);
                }
            }
            // Raw bytes, possibly a bad header.
            220..=223 => {
                if let Some(&conn) = conns.first() {
                    let n = usize::from(input.byte() % 40);
                    let raw = input.bytes(n).to_vec();
                    let _ = st.engine.receive(conn, &raw);
                    st.drain(conn);
                }
            }
            // Drain everyone.
            224..=231 => {
                for c in conns {
                    st.drain(c);
                }
            }
            // Partial drain of one connection.
            232..=235 => {
                if !conns.is_empty() {
                    let conn = *input.pick(&conns);
                    let n = usize::from(input.byte());
                    st.read_some(conn, n);
                }
            }
            // The hypervisor reports a domain state.
            236..=243 => {
                let domid = DomId(u16::from(input.byte() % 5));
                let state = *input.pick(&[
                    DomainState::Running,
                    DomainState::Shutdown,
                    DomainState::Dead,
                ]);
                st.engine.domain_state(domid, state);
            }
            // Time passes.
            244..=249 => {
                let dt = match input.byte() % 4 {
                    0 => 30_000,
                    1 => 0,
                    _ => u64::from(input.u16()),
                };
                st.now_ms = st.now_ms.saturating_add(dt);
                st.engine.set_time_ms(st.now_ms);
            }
            // A new socket, or one goes away.
            250..=252 => {
                let ro = input.byte().is_multiple_of(4);
                if conns.len() < 12 {
                    st.engine.connect_socket(ro);
                }
            }
            _ => {
                if !conns.is_empty() {
                    let conn = *input.pick(&conns);
                    if conn != dom0 {
                        st.engine.disconnect(conn);
                        st.partial.remove(&conn);
                    }
                }
            }
        }
        st.effects();
        st.check();
    }
    for c in st.conn_ids() {
        st.drain(c);
    }
    st.check();
}

/// The image reader on arbitrary bytes: the first byte picks the layout (even: seed, odd:
/// Xen). It must never panic; what it builds is bounded by the input (every record costs at
/// least 8 input octets, every string or value byte one); an accepted image writes back to
/// an image that reads as the same; a seed image restores into a consistent engine whose own
/// dump reads back.
pub fn image_decoder(data: &[u8]) {
    use xsstate::image::{read, write_layout, Layout, Record};
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    if sel == 0xa5 {
        // A live-update hand-over buffer: refused, or (version 2) it re-encodes byte for
        // byte; its image goes through the streaming restore, which must not panic either.
        if let Ok(d) = xsstate::handover::decode(bytes) {
            if d.version == xsstate::handover::VERSION {
                assert_eq!(
                    xsstate::handover::encode(&d.extras, d.image),
                    bytes,
                    "hand-over buffers re-encode exactly"
                );
            }
            let _ = xsstate::Engine::restore_bytes(
                d.image,
                Layout::Seed,
                xsstate::EngineConfig::default(),
            );
        }
        return;
    }
    let layout = if sel & 1 == 0 {
        Layout::Seed
    } else {
        Layout::Xen
    };
    let Ok(image) = read(bytes, layout) else {
        return;
    };
    assert!(
        image.records.len() <= bytes.len() / 8,
        "more records than input allows"
    );
    let payload: usize = image
        .records
        .iter()
        .map(|r| match r {
            Record::Node(n) => n.path.len() + n.value.len() + 4 * n.perms.len(),
            Record::Connection(c) => c.data.len(),
            Record::XenConnection(c) => c.in_data.len() + c.out_data.len(),
            Record::Watch(w) => w.wpath.len() + w.token.len(),
            Record::XenWatchExt(w) => w.watch.wpath.len() + w.watch.token.len(),
            Record::GlobalQuota(q) => q
                .domain
                .iter()
                .chain(&q.global)
                .map(|x| x.name.len() + 4)
                .sum(),
            Record::Domain(d) => d.quotas.iter().map(|x| x.name.len() + 4).sum(),
            _ => 0,
        })
        .sum();
    assert!(payload <= bytes.len(), "parsed data larger than the input");
    let again = write_layout(&image, layout).expect("an accepted image writes back");
    assert_eq!(read(&again, layout).expect("and reads back"), image);
    if let Ok(engine) = Engine::restore(image, EngineConfig::default()) {
        engine
            .store()
            .check()
            .expect("a restored store is consistent");
        let dump = engine.dump(&xsstate::snapshot::DumpOptions::default());
        let bytes = xsstate::image::write(&dump).expect("our dump writes");
        read(&bytes, Layout::Seed).expect("our dump reads back");
    }
}
