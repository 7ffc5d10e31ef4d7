//! The live-update hand-over buffer: a seed-format state image plus what the image cannot
//! carry (partly received input, the deferred `-s` reply, the update count), checksummed.
//!
//! Layout, little endian, every field 8-byte aligned:
//! `"XSSTUBLU"`, `u32 version`, `u32 flags (0)`, `u64 live_updates`, `u64 image_len`,
//! image bytes (padded), `u32 n_inputs`, `u32 has_reply`, then per input `u32 conn`,
//! `u32 len`, bytes (padded); the reply `u32 conn`, `u32 req_id`, `u32 tx_id`, `u32 len`,
//! payload (padded); finally `u64 fnv1a64` of every byte before it.

use alloc::vec::Vec;
use core::fmt;

use crate::ids::{ConnId, TxId};

/// The buffer's first bytes.
pub const MAGIC: [u8; 8] = *b"XSSTUBLU";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;
/// Largest buffer accepted (bounds every length before allocating).
pub const MAX_BYTES: usize = 256 << 20;

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

/// Everything handed from one image to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandoverState {
    /// Live updates since the domain started, this one included.
    pub live_updates: u64,
    /// The engine's state as a seed-layout migration image.
    pub image: Vec<u8>,
    /// Input received but not processed, per connection (fed back with `Engine::receive`).
    pub pending_input: Vec<(ConnId, Vec<u8>)>,
    /// The reply the new image sends first.
    pub reply: Option<DeferredReply>,
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
    /// A length beyond [`MAX_BYTES`] at this offset.
    TooLong(usize),
    /// The checksum does not match.
    BadChecksum {
        /// Stored.
        stored: u64,
        /// Computed.
        computed: u64,
    },
    /// Bytes after the checksum.
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

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

const fn padded(n: usize) -> usize {
    n.saturating_add(7) & !7
}

impl HandoverState {
    /// The encoded size.
    pub fn encoded_len(&self) -> usize {
        let mut n = 8 + 4 + 4 + 8 + 8 + padded(self.image.len()) + 8;
        for (_, bytes) in &self.pending_input {
            n += 8 + padded(bytes.len());
        }
        if let Some(r) = &self.reply {
            n += 16 + padded(r.payload.len());
        }
        n + 8
    }

    /// Appends the encoding to `out` (reserve [`HandoverState::encoded_len`] first to place
    /// the buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.live_updates.to_le_bytes());
        out.extend_from_slice(&(self.image.len() as u64).to_le_bytes());
        put_padded(out, &self.image);
        out.extend_from_slice(&(self.pending_input.len() as u32).to_le_bytes());
        out.extend_from_slice(&u32::from(self.reply.is_some()).to_le_bytes());
        for (conn, bytes) in &self.pending_input {
            out.extend_from_slice(&conn.0.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            put_padded(out, bytes);
        }
        if let Some(r) = &self.reply {
            out.extend_from_slice(&r.conn.0.to_le_bytes());
            out.extend_from_slice(&r.req_id.to_le_bytes());
            out.extend_from_slice(&r.tx_id.0.to_le_bytes());
            out.extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
            put_padded(out, &r.payload);
        }
        let sum = fnv1a64(out.get(start..).unwrap_or(&[]));
        out.extend_from_slice(&sum.to_le_bytes());
    }

    /// Encodes into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Checks the checksum and every length, then decodes.
    pub fn decode(bytes: &[u8]) -> Result<HandoverState, HandoverError> {
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
        let stored = u64::from_le_bytes(
            sum.try_into()
                .map_err(|_| HandoverError::Truncated(body_len))?,
        );
        let computed = fnv1a64(body);
        if stored != computed {
            return Err(HandoverError::BadChecksum { stored, computed });
        }
        let version = c.u32()?;
        if version != VERSION {
            return Err(HandoverError::BadVersion(version));
        }
        let flags = c.u32()?;
        if flags != 0 {
            return Err(HandoverError::BadFlags(flags));
        }
        let live_updates = c.u64()?;
        let image_len = c.len64()?;
        let image = c.take_padded(image_len)?.to_vec();
        let n_inputs = c.u32()?;
        let has_reply = c.u32()?;
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
        if c.at != body.len() {
            return Err(HandoverError::TrailingBytes(body.len() - c.at));
        }
        Ok(HandoverState {
            live_updates,
            image,
            pending_input,
            reply,
        })
    }
}

fn put_padded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len() + (padded(bytes.len()) - bytes.len()), 0);
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

    fn sample() -> HandoverState {
        HandoverState {
            live_updates: 3,
            image: b"xenstore-migration image bytes".to_vec(),
            pending_input: vec![(ConnId(1), vec![1, 2, 3]), (ConnId(7), vec![])],
            reply: Some(DeferredReply {
                conn: ConnId(1),
                req_id: 42,
                tx_id: TxId(0),
                payload: b"OK\0".to_vec(),
            }),
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(bytes.len(), s.encoded_len());
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(HandoverState::decode(&bytes), Ok(s));
        let empty = HandoverState::default();
        assert_eq!(HandoverState::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            assert!(HandoverState::decode(&b).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(HandoverState::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn a_length_beyond_the_buffer_is_refused_before_allocating() {
        let mut s = sample();
        s.image.clear();
        let mut bytes = s.encode();
        // image_len at offset 24: claim 2^40 bytes, then fix the checksum.
        bytes[24..32].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let n = bytes.len() - 8;
        let sum = fnv1a64(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            HandoverState::decode(&bytes),
            Err(HandoverError::TooLong(24))
        );
    }
}
