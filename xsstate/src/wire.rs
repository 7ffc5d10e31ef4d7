//! The xenstore wire protocol: message types, the 16-byte header, framing and encoding.

use alloc::vec::Vec;

use crate::error::{Fault, XsError};
use crate::ids::TxId;

/// Largest payload a message may carry (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Size of the message header in bytes.
pub const HEADER_LEN: usize = 16;

/// Message types 0-26 of `xs_wire.h` (20, the removed `RESTRICT`, is invalid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT` (server to client only).
    WatchEvent = 15,
    /// `XS_ERROR` (server to client only).
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES`.
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
    /// `XS_GET_FEATURE`.
    GetFeature = 23,
    /// `XS_SET_FEATURE`.
    SetFeature = 24,
    /// `XS_GET_QUOTA`.
    GetQuota = 25,
    /// `XS_SET_QUOTA`.
    SetQuota = 26,
}

impl MsgType {
    /// Maps a raw header type to a known message type.
    pub fn from_u32(raw: u32) -> Option<MsgType> {
        use MsgType::*;
        Some(match raw {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            23 => GetFeature,
            24 => SetFeature,
            25 => GetQuota,
            26 => SetQuota,
            _ => return None,
        })
    }

    /// The `XS_*` name without the prefix, for logs.
    pub const fn name(self) -> &'static str {
        use MsgType::*;
        match self {
            Control => "CONTROL",
            Directory => "DIRECTORY",
            Read => "READ",
            GetPerms => "GET_PERMS",
            Watch => "WATCH",
            Unwatch => "UNWATCH",
            TransactionStart => "TRANSACTION_START",
            TransactionEnd => "TRANSACTION_END",
            Introduce => "INTRODUCE",
            Release => "RELEASE",
            GetDomainPath => "GET_DOMAIN_PATH",
            Write => "WRITE",
            Mkdir => "MKDIR",
            Rm => "RM",
            SetPerms => "SET_PERMS",
            WatchEvent => "WATCH_EVENT",
            Error => "ERROR",
            IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            Resume => "RESUME",
            SetTarget => "SET_TARGET",
            ResetWatches => "RESET_WATCHES",
            DirectoryPart => "DIRECTORY_PART",
            GetFeature => "GET_FEATURE",
            SetFeature => "SET_FEATURE",
            GetQuota => "GET_QUOTA",
            SetQuota => "SET_QUOTA",
        }
    }
}

/// The message header `{type, req_id, tx_id, len}`, in host (little-endian) byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Raw message type (validated later: unknown types get `ENOSYS`).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, echoed in the reply.
    pub tx_id: TxId,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// Decodes a header from its 16 bytes (x86 is little-endian; the ring ABI is host order).
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            for (k, slot) in w.iter_mut().enumerate() {
                *slot = bytes.get(i * 4 + k).copied().unwrap_or(0);
            }
            u32::from_le_bytes(w)
        };
        Header {
            msg_type: word(0),
            req_id: word(1),
            tx_id: TxId(word(2)),
            len: word(3),
        }
    }

    /// Encodes this header into 16 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let words = [self.msg_type, self.req_id, self.tx_id.0, self.len];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

/// A complete message: header fields plus payload (`payload.len() == len`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Raw message type.
    pub msg_type: u32,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: TxId,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// Builds a message of a known type.
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: TxId, payload: Vec<u8>) -> Message {
        Message {
            msg_type: msg_type as u32,
            req_id,
            tx_id,
            payload,
        }
    }

    /// Encodes header and payload into one buffer. Payloads are bounded by the engine, so the
    /// length always fits in `u32`.
    pub fn encode(&self) -> Vec<u8> {
        let len = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        let header = Header {
            msg_type: self.msg_type,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Encodes an error reply for a request.
    pub fn error(req_id: u32, tx_id: TxId, err: XsError) -> Message {
        let mut payload = Vec::with_capacity(12);
        crate::util::push_str0(&mut payload, err.name().as_bytes());
        Message::new(MsgType::Error, req_id, tx_id, payload)
    }
}

/// Incremental decoder: feed bytes as they arrive, take whole messages out.
///
/// The payload buffer is allocated only after the header has been checked against
/// `PAYLOAD_MAX`, so a hostile length cannot make us allocate.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    header: [u8; HEADER_LEN],
    header_fill: usize,
    parsed: Option<Header>,
    payload: Vec<u8>,
}

/// What one call to [`Decoder::feed`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete message; `consumed` bytes of the input were used.
    Message {
        /// The message.
        msg: Message,
        /// Input bytes used.
        consumed: usize,
    },
    /// All input was used and no message is complete yet.
    NeedMore,
}

impl Decoder {
    /// A fresh decoder at a message boundary.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Whether part of a message has been received.
    pub fn is_partial(&self) -> bool {
        self.header_fill > 0
    }

    /// The bytes of a partly received message (header and payload so far), for state images.
    pub fn partial_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.header.get(..self.header_fill).unwrap_or(&[]));
        out.extend_from_slice(&self.payload);
        out
    }

    /// Feeds input; stops after the first complete message.
    pub fn feed(&mut self, input: &[u8]) -> Result<Decoded, Fault> {
        let mut used = 0usize;
        if self.parsed.is_none() {
            let want = HEADER_LEN - self.header_fill;
            let take = want.min(input.len());
            if let (Some(dst), Some(src)) = (
                self.header
                    .get_mut(self.header_fill..self.header_fill + take),
                input.get(..take),
            ) {
                dst.copy_from_slice(src);
            }
            self.header_fill += take;
            used += take;
            if self.header_fill < HEADER_LEN {
                return Ok(Decoded::NeedMore);
            }
            let header = Header::decode(&self.header);
            if header.len as usize > PAYLOAD_MAX {
                return Err(Fault::OversizedMessage { len: header.len });
            }
            self.payload = Vec::with_capacity(header.len as usize);
            self.parsed = Some(header);
        }
        let Some(header) = self.parsed else {
            return Ok(Decoded::NeedMore);
        };
        let want = header.len as usize - self.payload.len();
        let rest = input.get(used..).unwrap_or(&[]);
        let take = want.min(rest.len());
        self.payload
            .extend_from_slice(rest.get(..take).unwrap_or(&[]));
        used += take;
        if self.payload.len() < header.len as usize {
            return Ok(Decoded::NeedMore);
        }
        let msg = Message {
            msg_type: header.msg_type,
            req_id: header.req_id,
            tx_id: header.tx_id,
            payload: core::mem::take(&mut self.payload),
        };
        self.parsed = None;
        self.header_fill = 0;
        Ok(Decoded::Message {
            msg,
            consumed: used,
        })
    }
}

/// Decodes every complete message in `input` (test and fuzz helper).
pub fn decode_all(input: &[u8]) -> Result<(Vec<Message>, usize), Fault> {
    let mut dec = Decoder::new();
    let mut msgs = Vec::new();
    let mut off = 0usize;
    while off < input.len() {
        match dec.feed(input.get(off..).unwrap_or(&[]))? {
            Decoded::Message { msg, consumed } => {
                msgs.push(msg);
                off += consumed;
            }
            Decoded::NeedMore => return Ok((msgs, input.len())),
        }
    }
    Ok((msgs, off))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn header_roundtrip() {
        let h = Header {
            msg_type: 2,
            req_id: 7,
            tx_id: TxId(3),
            len: 5,
        };
        assert_eq!(Header::decode(&h.encode()), h);
        assert_eq!(h.encode()[..4], [2, 0, 0, 0]);
    }

    #[test]
    fn decode_split_and_joined() {
        let a = Message::new(MsgType::Read, 1, TxId(0), b"/a\0".to_vec()).encode();
        let b = Message::new(MsgType::Write, 2, TxId(0), b"/a\0xy".to_vec()).encode();
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let (msgs, used) = decode_all(&all).unwrap();
        assert_eq!(used, all.len());
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].payload, b"/a\0xy");
        // Byte by byte.
        let mut dec = Decoder::new();
        let mut got = vec![];
        for byte in &all {
            if let Decoded::Message { msg, consumed } =
                dec.feed(core::slice::from_ref(byte)).unwrap()
            {
                assert_eq!(consumed, 1);
                got.push(msg);
            }
        }
        assert_eq!(got, msgs);
    }

    #[test]
    fn oversized_is_a_fault() {
        let h = Header {
            msg_type: 2,
            req_id: 1,
            tx_id: TxId(0),
            len: 4097,
        };
        let mut dec = Decoder::new();
        assert_eq!(
            dec.feed(&h.encode()),
            Err(Fault::OversizedMessage { len: 4097 })
        );
        let h = Header {
            msg_type: 2,
            req_id: 1,
            tx_id: TxId(0),
            len: 4096,
        };
        let mut dec = Decoder::new();
        assert_eq!(dec.feed(&h.encode()), Ok(Decoded::NeedMore));
    }

    #[test]
    fn types() {
        for raw in 0..40u32 {
            match MsgType::from_u32(raw) {
                Some(t) => assert_eq!(t as u32, raw),
                None => assert!(raw == 20 || raw > 26),
            }
        }
    }
}
