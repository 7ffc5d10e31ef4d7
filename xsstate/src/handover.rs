//! The live-update hand-over buffer: a seed-format state image plus what the image cannot
//! carry (partly received input, the deferred `-s` reply, counters, the old image's log and
//! timeline), checksummed.
//!
//! Version 3 (written and read), little endian, every field 8-byte aligned:
//!
//! | offset | field |
//! |--------|-------|
//! | 0 | `"XSSTUBLU"` |
//! | 8 | `u32 version` (3), `u32 flags` (0) |
//! | 16 | `u64 live_updates` (this one included), `u64 rollbacks` |
//! | 32 | `u64 extras_len`, then the extras (below), padded |
//! | | `u64 image_len`, then the image bytes, padded |
//! | end | `u64 checksum` ([`checksum64`] of every byte before it) |
//!
//! Extras: `u32 n_inputs`, `u32 has_reply`, `u32 log_len`, `u32 n_tsc`; `n_tsc` × `u64` TSC
//! stamps of the old image's timeline; per input `u32 conn`, `u32 len`, bytes (padded); the
//! reply `u32 conn`, `u32 req_id`, `u32 tx_id`, `u32 len`, payload (padded); the log bytes
//! (padded); then `u32 shell_len`, `u32 0` and the shell's block (padded): what the shell
//! around the engine keeps across the jump (the kernel's mapped rings and bound ports), in a
//! format of its own. The image comes last so that the old image can dump its engine
//! straight into the buffer ([`Writer`]) and the new one can restore straight from it
//! ([`decode`]).
//!
//! Version 2 is version 3 without the shell block (read, and written for an image that
//! reads no newer one).
//!
//! Version 1 (the previous release's: no counters but the update count, the image first,
//! FNV-1a) is read too, so that the previous release can update to this one.

use alloc::vec::Vec;
use core::fmt;

use crate::ids::{ConnId, TxId};

/// The buffer's first bytes.
pub const MAGIC: [u8; 8] = *b"XSSTUBLU";
/// The newest version this code writes (and reads).
pub const VERSION: u32 = 3;
/// The oldest version this code writes (for an image that reads no newer one).
pub const MIN_WRITE_VERSION: u32 = 2;
/// Largest shell block accepted.
pub const MAX_SHELL: usize = 4 << 20;
/// The oldest version this code reads.
pub const MIN_VERSION: u32 = 1;
/// Largest buffer accepted (bounds every length before allocating).
pub const MAX_BYTES: usize = 256 << 20;
/// Most timeline stamps carried.
pub const MAX_TSC: usize = 16;

/// The answer to a `live-update -s` that the new image sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferredReply {
    /// The connection that asked.
    pub conn: ConnId,
    /// Its request id.
    pub req_id: u32,
    /// Its transaction id.
    pub tx_id: TxId,
    /// The reply payload (`OK\0`).
    pub payload: Vec<u8>,
}

/// Everything handed from one image to the next besides the state image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Live updates since the domain started, this one included.
    pub live_updates: u64,
    /// Updates rolled back since the domain started.
    pub rollbacks: u64,
    /// Input received but not processed, per connection (fed back with `Engine::receive`).
    pub pending_input: Vec<(ConnId, Vec<u8>)>,
    /// The reply the new image sends first.
    pub reply: Option<DeferredReply>,
    /// Log lines of the old image written after its last console output (the new image
    /// prints them once it serves).
    pub log: Vec<u8>,
    /// TSC stamps of the old image's part of the timeline.
    pub tsc: Vec<u64>,
    /// The shell's own block (version 3; empty in older buffers): what it keeps across the
    /// jump, opaque to the engine.
    pub shell: Vec<u8>,
}

/// A decoded buffer: the extras and the state image, borrowed from the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The buffer's version.
    pub version: u32,
    /// Counters, pending input, the reply, log and timeline.
    pub extras: Extras,
    /// The engine's state as a seed-layout migration image.
    pub image: &'a [u8],
}

/// Why a hand-over buffer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverError {
    /// Shorter than its fields say, at this offset.
    Truncated(usize),
    /// Not a hand-over buffer.
    BadMagic,
    /// A version this code does not read.
    BadVersion(u32),
    /// Flags this code does not know.
    BadFlags(u32),
    /// A length beyond [`MAX_BYTES`] (or a count beyond its limit) at this offset.
    TooLong(usize),
    /// The checksum does not match.
    BadChecksum {
        /// Stored.
        stored: u64,
        /// Computed.
        computed: u64,
    },
    /// Bytes after the checksum, or inside a block after its fields.
    TrailingBytes(usize),
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::Truncated(at) => write!(f, "truncated at offset {at}"),
            HandoverError::BadMagic => write!(f, "not a hand-over buffer (bad magic)"),
            HandoverError::BadVersion(v) => write!(f, "unknown hand-over version {v}"),
            HandoverError::BadFlags(v) => write!(f, "unknown hand-over flags {v:#x}"),
            HandoverError::TooLong(at) => write!(f, "length at offset {at} is too large"),
            HandoverError::BadChecksum { stored, computed } => {
                write!(f, "checksum {stored:#018x} does not match {computed:#018x}")
            }
            HandoverError::TrailingBytes(n) => write!(f, "{n} bytes after the checksum"),
        }
    }
}

/// FNV-1a, 64 bits (version 1's checksum).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A word-at-a-time 64-bit checksum (version 2's): every 8 bytes are mixed in with a
/// multiply and a shift, the tail byte-wise, then the length; any change of a byte, of the
/// order of words or of the length changes it (barring 2^-64 chances). About eight times
/// faster than FNV-1a, which matters inside a live update's downtime.
pub fn checksum64(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K);
        h ^= h >> 29;
    }
    h = (h ^ bytes.len() as u64).wrapping_mul(K);
    h ^ (h >> 32)
}

const fn padded(n: usize) -> usize {
    n.saturating_add(7) & !7
}

fn put_padded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len() + (padded(bytes.len()) - bytes.len()), 0);
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

impl Extras {
    /// The encoded size of the extras block in buffer version `version`.
    fn encoded_len(&self, version: u32) -> usize {
        let shell = if version >= 3 {
            8 + padded(self.shell.len())
        } else {
            0
        };
        let mut n = 16 + 8 * self.tsc.len().min(MAX_TSC) + shell;
        for (_, bytes) in &self.pending_input {
            n += 8 + padded(bytes.len());
        }
        if let Some(r) = &self.reply {
            n += 16 + padded(r.payload.len());
        }
        n + padded(self.log.len())
    }

    fn encode_into(&self, out: &mut Vec<u8>, version: u32) {
        let tsc = self.tsc.get(..self.tsc.len().min(MAX_TSC)).unwrap_or(&[]);
        put_u32(out, self.pending_input.len() as u32);
        put_u32(out, u32::from(self.reply.is_some()));
        put_u32(out, self.log.len() as u32);
        put_u32(out, tsc.len() as u32);
        for t in tsc {
            put_u64(out, *t);
        }
        for (conn, bytes) in &self.pending_input {
            put_u32(out, conn.0);
            put_u32(out, bytes.len() as u32);
            put_padded(out, bytes);
        }
        if let Some(r) = &self.reply {
            put_u32(out, r.conn.0);
            put_u32(out, r.req_id);
            put_u32(out, r.tx_id.0);
            put_u32(out, r.payload.len() as u32);
            put_padded(out, &r.payload);
        }
        put_padded(out, &self.log);
        if version >= 3 {
            put_u32(out, self.shell.len() as u32);
            put_u32(out, 0);
            put_padded(out, &self.shell);
        }
    }
}

/// The version to write for an image that reads buffer versions `min..=max`: the newest
/// both sides know, `None` when there is none.
pub fn version_for(min: u32, max: u32) -> Option<u32> {
    let v = max.min(VERSION);
    (v >= min && v >= MIN_WRITE_VERSION).then_some(v)
}

/// The size of a buffer of version `version` (see [`version_for`]) holding `extras` and an
/// image of `image_len` bytes.
pub fn encoded_len(extras: &Extras, image_len: usize, version: u32) -> usize {
    40 + extras.encoded_len(version) + 8 + padded(image_len) + 8
}

/// Writes a buffer in place: [`Writer::begin`] puts the header and the extras,
/// the caller appends the image (the engine's `dump_into`), [`Writer::finish`] records its
/// length and appends the checksum. Reserve [`encoded_len`] first and the buffer never
/// moves.
#[derive(Debug)]
pub struct Writer {
    start: usize,
    image_len_at: usize,
    n_tsc: usize,
}

impl Writer {
    /// Appends the header and extras to `out`, as buffer version `version` (2 or 3; see
    /// [`version_for`]: version 2 drops the shell block).
    pub fn begin(out: &mut Vec<u8>, extras: &Extras, version: u32) -> Writer {
        let version = version.clamp(MIN_WRITE_VERSION, VERSION);
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        put_u32(out, version);
        put_u32(out, 0);
        put_u64(out, extras.live_updates);
        put_u64(out, extras.rollbacks);
        put_u64(out, extras.encoded_len(version) as u64);
        extras.encode_into(out, version);
        let image_len_at = out.len();
        put_u64(out, 0);
        Writer {
            start,
            image_len_at,
            n_tsc: extras.tsc.len().min(MAX_TSC),
        }
    }

    /// Overwrites timeline stamp `i` written by [`Writer::begin`] (before [`Writer::finish`],
    /// so the checksum covers it); false when there is no such stamp.
    pub fn set_tsc(&self, out: &mut [u8], i: usize, value: u64) -> bool {
        // Header 40 bytes, then the extras: four u32 counts, then the stamps.
        if i >= self.n_tsc {
            return false;
        }
        let at = self.start + 40 + 16 + 8 * i;
        match out.get_mut(at..at + 8) {
            Some(field) => {
                field.copy_from_slice(&value.to_le_bytes());
                true
            }
            None => false,
        }
    }

    /// Records the image's length (everything appended since [`Writer::begin`]), pads it and
    /// appends the checksum.
    pub fn finish(self, out: &mut Vec<u8>) {
        let image_len = out.len().saturating_sub(self.image_len_at + 8);
        if let Some(field) = out.get_mut(self.image_len_at..self.image_len_at + 8) {
            field.copy_from_slice(&(image_len as u64).to_le_bytes());
        }
        out.resize(out.len() + (padded(image_len) - image_len), 0);
        let sum = checksum64(out.get(self.start..).unwrap_or(&[]));
        put_u64(out, sum);
    }
}

/// Encodes a whole buffer of the newest version (the image given as bytes).
pub fn encode(extras: &Extras, image: &[u8]) -> Vec<u8> {
    encode_version(extras, image, VERSION)
}

/// Encodes a whole buffer of version `version` (2 or 3).
pub fn encode_version(extras: &Extras, image: &[u8], version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(extras, image.len(), version));
    let w = Writer::begin(&mut out, extras, version);
    out.extend_from_slice(image);
    w.finish(&mut out);
    out
}

/// Checks the checksum and every length, then decodes (versions 1 to 3).
pub fn decode(bytes: &[u8]) -> Result<Decoded<'_>, HandoverError> {
    if bytes.len() > MAX_BYTES {
        return Err(HandoverError::TooLong(0));
    }
    let body_len = bytes
        .len()
        .checked_sub(8)
        .ok_or(HandoverError::Truncated(bytes.len()))?;
    let (body, sum) = bytes.split_at(body_len);
    let mut c = Cursor { bytes: body, at: 0 };
    if c.take(8)? != MAGIC {
        return Err(HandoverError::BadMagic);
    }
    let version = c.u32()?;
    if !(MIN_VERSION..=VERSION).contains(&version) {
        return Err(HandoverError::BadVersion(version));
    }
    let stored = u64::from_le_bytes(
        sum.try_into()
            .map_err(|_| HandoverError::Truncated(body_len))?,
    );
    let computed = if version == 1 {
        fnv1a64(body)
    } else {
        checksum64(body)
    };
    if stored != computed {
        return Err(HandoverError::BadChecksum { stored, computed });
    }
    let flags = c.u32()?;
    if flags != 0 {
        return Err(HandoverError::BadFlags(flags));
    }
    let live_updates = c.u64()?;
    let (decoded, end) = if version == 1 {
        let image_len = c.len64()?;
        let image = c.take_padded(image_len)?;
        let mut extras = extras_v1(&mut c)?;
        extras.live_updates = live_updates;
        (
            Decoded {
                version,
                extras,
                image,
            },
            c.at,
        )
    } else {
        let rollbacks = c.u64()?;
        let extras_len = c.len64()?;
        let block = c.take(extras_len)?;
        let mut e = Cursor {
            bytes: block,
            at: 0,
        };
        let mut extras = extras_v2(&mut e, version)?;
        if e.at != block.len() {
            return Err(HandoverError::TrailingBytes(block.len() - e.at));
        }
        extras.live_updates = live_updates;
        extras.rollbacks = rollbacks;
        let image_len = c.len64()?;
        let image = c.take_padded(image_len)?;
        (
            Decoded {
                version,
                extras,
                image,
            },
            c.at,
        )
    };
    if end != body.len() {
        return Err(HandoverError::TrailingBytes(body.len() - end));
    }
    Ok(decoded)
}

/// Pending input per connection.
type Inputs = Vec<(ConnId, Vec<u8>)>;

fn inputs_and_reply(
    c: &mut Cursor<'_>,
    n_inputs: u32,
    has_reply: u32,
) -> Result<(Inputs, Option<DeferredReply>), HandoverError> {
    let mut pending_input = Vec::new();
    for _ in 0..n_inputs {
        let conn = ConnId(c.u32()?);
        let len = c.len32()?;
        pending_input.push((conn, c.take_padded(len)?.to_vec()));
    }
    let reply = match has_reply {
        0 => None,
        _ => {
            let conn = ConnId(c.u32()?);
            let req_id = c.u32()?;
            let tx_id = TxId(c.u32()?);
            let len = c.len32()?;
            Some(DeferredReply {
                conn,
                req_id,
                tx_id,
                payload: c.take_padded(len)?.to_vec(),
            })
        }
    };
    Ok((pending_input, reply))
}

fn extras_v1(c: &mut Cursor<'_>) -> Result<Extras, HandoverError> {
    let at = c.at;
    let n_inputs = c.u32()?;
    let has_reply = c.u32()?;
    if n_inputs as usize > MAX_BYTES / 8 {
        return Err(HandoverError::TooLong(at));
    }
    let (pending_input, reply) = inputs_and_reply(c, n_inputs, has_reply)?;
    Ok(Extras {
        pending_input,
        reply,
        ..Extras::default()
    })
}

fn extras_v2(c: &mut Cursor<'_>, version: u32) -> Result<Extras, HandoverError> {
    let at = c.at;
    let n_inputs = c.u32()?;
    let has_reply = c.u32()?;
    let log_len = c.len32()?;
    let n_tsc = c.u32()? as usize;
    if n_tsc > MAX_TSC || n_inputs as usize > MAX_BYTES / 8 {
        return Err(HandoverError::TooLong(at));
    }
    let mut tsc = Vec::with_capacity(n_tsc);
    for _ in 0..n_tsc {
        tsc.push(c.u64()?);
    }
    let (pending_input, reply) = inputs_and_reply(c, n_inputs, has_reply)?;
    let log = c.take_padded(log_len)?.to_vec();
    let shell = if version >= 3 {
        let at = c.at;
        let len = c.len32()?;
        if len > MAX_SHELL || c.u32()? != 0 {
            return Err(HandoverError::TooLong(at));
        }
        c.take_padded(len)?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Extras {
        pending_input,
        reply,
        log,
        tsc,
        shell,
        ..Extras::default()
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HandoverError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(HandoverError::TooLong(self.at))?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or(HandoverError::Truncated(self.at))?;
        self.at = end;
        Ok(s)
    }

    fn take_padded(&mut self, n: usize) -> Result<&'a [u8], HandoverError> {
        let at = self.at;
        let s = self.take(padded(n))?;
        s.get(..n).ok_or(HandoverError::Truncated(at))
    }

    fn u32(&mut self) -> Result<u32, HandoverError> {
        let at = self.at;
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(
            b.try_into().map_err(|_| HandoverError::Truncated(at))?,
        ))
    }

    fn u64(&mut self) -> Result<u64, HandoverError> {
        let at = self.at;
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| HandoverError::Truncated(at))?,
        ))
    }

    fn len64(&mut self) -> Result<usize, HandoverError> {
        let at = self.at;
        let v = self.u64()?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= MAX_BYTES)
            .ok_or(HandoverError::TooLong(at))
    }

    fn len32(&mut self) -> Result<usize, HandoverError> {
        let at = self.at;
        let v = self.u32()? as usize;
        if v > MAX_BYTES {
            return Err(HandoverError::TooLong(at));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> Extras {
        Extras {
            live_updates: 3,
            rollbacks: 1,
            pending_input: vec![(ConnId(1), vec![1, 2, 3]), (ConnId(7), vec![])],
            reply: Some(DeferredReply {
                conn: ConnId(1),
                req_id: 42,
                tx_id: TxId(0),
                payload: b"OK\0".to_vec(),
            }),
            log: b"xsstub: a line\n".to_vec(),
            tsc: vec![10, 20, 30],
            shell: b"kept rings".to_vec(),
        }
    }

    const IMAGE: &[u8] = b"xenstore-migration image bytes";

    #[test]
    fn round_trip() {
        let e = sample();
        let bytes = encode(&e, IMAGE);
        assert_eq!(bytes.len(), encoded_len(&e, IMAGE.len(), VERSION));
        assert_eq!(bytes.len() % 8, 0);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.extras, e);
        assert_eq!(d.image, IMAGE);
        assert_eq!(d.version, 3);
        // Version 2 for an image that reads no newer one: everything but the shell block.
        let bytes = encode_version(&e, IMAGE, 2);
        assert_eq!(bytes.len(), encoded_len(&e, IMAGE.len(), 2));
        let d = decode(&bytes).unwrap();
        assert_eq!(d.version, 2);
        assert_eq!(
            d.extras,
            Extras {
                shell: Vec::new(),
                ..e.clone()
            }
        );
        let empty = Extras::default();
        let bytes = encode(&empty, &[]);
        let d = decode(&bytes).unwrap();
        assert_eq!((d.extras, d.image), (empty, &[][..]));
    }

    #[test]
    fn the_writer_builds_the_image_in_place() {
        let e = sample();
        let mut out = Vec::with_capacity(encoded_len(&e, IMAGE.len(), VERSION));
        let before = out.as_ptr();
        let w = Writer::begin(&mut out, &e, VERSION);
        out.extend_from_slice(IMAGE);
        assert!(w.set_tsc(&mut out, 2, 99));
        assert!(!w.set_tsc(&mut out, 3, 1));
        w.finish(&mut out);
        assert_eq!(out.as_ptr(), before, "the buffer moved");
        let mut e2 = e.clone();
        e2.tsc[2] = 99;
        assert_eq!(out, encode(&e2, IMAGE));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_refused() {
        let bytes = encode(&sample(), IMAGE);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn a_length_beyond_the_buffer_is_refused_before_allocating() {
        let mut bytes = encode(&Extras::default(), &[]);
        // extras_len at offset 32: claim 2^40 bytes, then fix the checksum.
        bytes[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let n = bytes.len() - 8;
        let sum = checksum64(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(decode(&bytes), Err(HandoverError::TooLong(32)));
    }

    /// Version 1, as the previous release wrote it.
    fn v1(live_updates: u64, image: &[u8], inputs: &[(u32, &[u8])], reply: bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        put_u32(&mut out, 1);
        put_u32(&mut out, 0);
        put_u64(&mut out, live_updates);
        put_u64(&mut out, image.len() as u64);
        put_padded(&mut out, image);
        put_u32(&mut out, inputs.len() as u32);
        put_u32(&mut out, u32::from(reply));
        for (c, b) in inputs {
            put_u32(&mut out, *c);
            put_u32(&mut out, b.len() as u32);
            put_padded(&mut out, b);
        }
        if reply {
            put_u32(&mut out, 1);
            put_u32(&mut out, 9);
            put_u32(&mut out, 0);
            put_u32(&mut out, 3);
            put_padded(&mut out, b"OK\0");
        }
        let sum = fnv1a64(&out);
        put_u64(&mut out, sum);
        out
    }

    #[test]
    fn version_1_is_read() {
        let bytes = v1(5, IMAGE, &[(2, b"abc")], true);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.version, 1);
        assert_eq!(d.image, IMAGE);
        assert_eq!(d.extras.live_updates, 5);
        assert_eq!(d.extras.pending_input, vec![(ConnId(2), b"abc".to_vec())]);
        assert_eq!(d.extras.reply.unwrap().req_id, 9);
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(
            decode(&bad),
            Err(HandoverError::BadChecksum { .. })
        ));
    }

    #[test]
    fn the_version_written_is_the_newest_both_read() {
        assert_eq!(version_for(1, 2), Some(2));
        assert_eq!(version_for(1, 3), Some(3));
        assert_eq!(version_for(2, 9), Some(3));
        assert_eq!(version_for(1, 1), None);
        assert_eq!(version_for(4, 9), None);
    }

    #[test]
    fn checksum_sees_order_and_length() {
        assert_ne!(
            checksum64(b"abcdefgh12345678"),
            checksum64(b"12345678abcdefgh")
        );
        assert_ne!(checksum64(b""), checksum64(b"\0"));
        assert_ne!(checksum64(&[0; 8]), checksum64(&[0; 16]));
    }
}
