//! The validating reader: header, record framing, seed record bodies, and the checks that
//! span records (connections, transactions, duplicates, parents, `END`).

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::{ImageError, Reason, RecordRef};
use super::record::{
    rtype, ConnSpec, ConnectionData, DomainData, Endianness, GlobalData, GlobalQuotaData, Image,
    Layout, NodeData, NodePerm, PermKind, Quota, Record, TransactionData, WatchData, ACCESS_READ,
    ACCESS_WRITTEN, SOCKET_FLAG_RO,
};
use super::{xen, HEADER_LEN, IDENT, SEED_VERSION};
use crate::path;

/// Node paths allowed besides absolute ones (committed nodes only).
pub const SPECIAL_NODES: [&str; 2] = ["@releaseDomain", "@introduceDomain"];

/// Rounds up to a multiple of 8, or `None` on overflow.
pub(crate) fn round8(n: usize) -> Option<usize> {
    n.checked_add(7).map(|v| v & !7)
}

/// A cursor over one record body; offsets in errors are absolute stream offsets.
pub(crate) struct Body<'a> {
    bytes: &'a [u8],
    base: usize,
    pos: usize,
    endian: Endianness,
    rec: RecordRef,
}

impl<'a> Body<'a> {
    /// Absolute offset of the next unread octet.
    pub(crate) fn at(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// The record's `type`.
    pub(crate) fn rec_type(&self) -> u32 {
        self.rec.rtype
    }

    /// An error about this record at an absolute offset.
    #[cold]
    pub(crate) fn err_at(&self, offset: usize, reason: Reason) -> ImageError {
        ImageError {
            offset,
            record: Some(self.rec),
            reason,
        }
    }

    #[inline]
    fn take(&mut self, n: usize, reason: Reason) -> Result<&'a [u8], ImageError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err_at(self.at(), reason))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.err_at(self.at(), reason))?;
        self.pos = end;
        Ok(s)
    }

    /// Fixed-size fields: running out is [`Reason::BodyTooShort`].
    #[inline]
    pub(crate) fn fixed(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        self.take(n, Reason::BodyTooShort)
    }

    /// Variable-size fields: running out is [`Reason::LengthOverrun`].
    #[inline]
    pub(crate) fn var(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        self.take(n, Reason::LengthOverrun)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ImageError> {
        let at = self.at();
        self.fixed(N)?
            .try_into()
            .map_err(|_| self.err_at(at, Reason::BodyTooShort))
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, ImageError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, ImageError> {
        let a = self.array::<2>()?;
        Ok(match self.endian {
            Endianness::Little => u16::from_le_bytes(a),
            Endianness::Big => u16::from_be_bytes(a),
        })
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, ImageError> {
        let a = self.array::<4>()?;
        Ok(match self.endian {
            Endianness::Little => u32::from_le_bytes(a),
            Endianness::Big => u32::from_be_bytes(a),
        })
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ImageError> {
        let a = self.array::<4>()?;
        Ok(match self.endian {
            Endianness::Little => i32::from_le_bytes(a),
            Endianness::Big => i32::from_be_bytes(a),
        })
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ImageError> {
        let a = self.array::<8>()?;
        Ok(match self.endian {
            Endianness::Little => u64::from_le_bytes(a),
            Endianness::Big => u64::from_be_bytes(a),
        })
    }

    /// Skips to the next 8-octet boundary of the body (Xen's inner padding).
    pub(crate) fn align8(&mut self) -> Result<(), ImageError> {
        let target =
            round8(self.pos).ok_or_else(|| self.err_at(self.at(), Reason::BodyTooShort))?;
        let n = target.saturating_sub(self.pos);
        self.fixed(n).map(|_| ())
    }

    /// A NUL-terminated string of `len` octets including the NUL, borrowed.
    pub(crate) fn cstr_ref(&mut self, len: usize) -> Result<&'a str, ImageError> {
        let at = self.at();
        let raw = self.var(len)?;
        let Some((&last, head)) = raw.split_last() else {
            return Err(self.err_at(at, Reason::MissingNul));
        };
        if last != 0 {
            return Err(self.err_at(at.saturating_add(head.len()), Reason::MissingNul));
        }
        if let Some(i) = head.iter().position(|&b| b == 0) {
            return Err(self.err_at(at.saturating_add(i), Reason::InteriorNul));
        }
        core::str::from_utf8(head)
            .map_err(|e| self.err_at(at.saturating_add(e.valid_up_to()), Reason::NotUtf8))
    }

    /// A NUL-terminated string of `len` octets including the NUL.
    pub(crate) fn cstr(&mut self, len: usize) -> Result<String, ImageError> {
        let at = self.at();
        let raw = self.var(len)?;
        let Some((&last, head)) = raw.split_last() else {
            return Err(self.err_at(at, Reason::MissingNul));
        };
        if last != 0 {
            return Err(self.err_at(at.saturating_add(head.len()), Reason::MissingNul));
        }
        if let Some(i) = head.iter().position(|&b| b == 0) {
            return Err(self.err_at(at.saturating_add(i), Reason::InteriorNul));
        }
        core::str::from_utf8(head)
            .map(String::from)
            .map_err(|e| self.err_at(at.saturating_add(e.valid_up_to()), Reason::NotUtf8))
    }

    /// The body must end here: exactly (seed) or up to the next 8-octet boundary (Xen).
    pub(crate) fn finish(&self, layout: Layout) -> Result<(), ImageError> {
        let allowed = match layout {
            Layout::Seed => self.pos,
            Layout::Xen => round8(self.pos).unwrap_or(self.pos),
        };
        if self.bytes.len() > allowed {
            return Err(self.err_at(self.at(), Reason::BodyTooLong));
        }
        Ok(())
    }
}

/// What the reader has seen so far, for the checks that span records.
#[derive(Default)]
pub(crate) struct State {
    /// Leave node parents and uniqueness to the consumer (a restore checks them against the
    /// tree it builds, without a second copy of every path).
    untracked_nodes: bool,
    conns: BTreeSet<u32>,
    txs: BTreeSet<(u32, u32)>,
    nodes: BTreeSet<(u32, u32, String)>,
    committed: BTreeSet<String>,
    global: bool,
    global_quota: bool,
    domains: BTreeSet<u16>,
}

impl State {
    /// A new connection id at `at`.
    pub(crate) fn add_conn(
        &mut self,
        b: &Body<'_>,
        at: usize,
        conn_id: u32,
    ) -> Result<(), ImageError> {
        if conn_id == 0 {
            return Err(b.err_at(at, Reason::ZeroConnId));
        }
        if !self.conns.insert(conn_id) {
            return Err(b.err_at(at, Reason::DuplicateConnection(conn_id)));
        }
        Ok(())
    }

    /// A reference to an existing connection at `at`.
    pub(crate) fn use_conn(&self, b: &Body<'_>, at: usize, conn_id: u32) -> Result<(), ImageError> {
        if conn_id == 0 {
            return Err(b.err_at(at, Reason::ZeroConnId));
        }
        if !self.conns.contains(&conn_id) {
            return Err(b.err_at(at, Reason::UnknownConnection(conn_id)));
        }
        Ok(())
    }

    /// The one global record.
    pub(crate) fn once_global(&mut self, b: &Body<'_>) -> Result<(), ImageError> {
        if core::mem::replace(&mut self.global, true) {
            return Err(b.err_at(b.at(), Reason::DuplicateRecord));
        }
        Ok(())
    }
}

/// Reads and validates an image in the given layout. Nothing is returned unless the whole
/// stream is valid.
pub fn read(bytes: &[u8], layout: Layout) -> Result<Image, ImageError> {
    let mut stream = Stream::new(bytes, layout)?;
    let mut records = Vec::new();
    while let Some(item) = stream.next_item()? {
        records.push(match item {
            Item::Node(n) => Record::Node(n.to_owned()),
            Item::Other(r) => r,
        });
    }
    Ok(Image {
        endianness: stream.endian,
        version: stream.version,
        records,
    })
}

/// One record of a [`Stream`].
#[derive(Debug)]
pub enum Item<'a> {
    /// A `NODE_DATA` record, borrowed from the stream.
    Node(NodeRecord<'a>),
    /// Any other record.
    Other(Record),
}

/// A `NODE_DATA` record borrowed from the stream (its perms are decoded on demand).
#[derive(Clone, Copy, Debug)]
pub struct NodeRecord<'a> {
    /// Connection (0: a committed node).
    pub conn_id: u32,
    /// Transaction.
    pub tx_id: u32,
    /// `ACCESS_*` bits (transaction nodes).
    pub access: u16,
    perms_raw: &'a [u8],
    endian: Endianness,
    layout: Layout,
    /// The path.
    pub path: &'a str,
    /// The value.
    pub value: &'a [u8],
}

impl<'a> NodeRecord<'a> {
    /// The permission entries as they lie in the stream (equal bytes: equal entries).
    pub fn perms_raw(&self) -> &'a [u8] {
        self.perms_raw
    }

    /// Number of permission entries.
    pub fn perm_count(&self) -> usize {
        self.perms_raw.len() / 4
    }

    /// The permission entries (validated by the reader).
    pub fn perms(&self) -> impl Iterator<Item = NodePerm> + 'a {
        let (endian, layout) = (self.endian, self.layout);
        self.perms_raw.chunks_exact(4).map(move |c| {
            let (letter, flags, d) = match c {
                [l, f, a, b] => (*l, *f, [*a, *b]),
                _ => (b'n', 0, [0, 0]),
            };
            NodePerm {
                kind: PermKind::from_letter(letter).unwrap_or(PermKind::None),
                flags: if layout == Layout::Seed { 0 } else { flags },
                domid: match endian {
                    Endianness::Little => u16::from_le_bytes(d),
                    Endianness::Big => u16::from_be_bytes(d),
                },
            }
        })
    }

    /// The owned form.
    pub fn to_owned(&self) -> NodeData {
        NodeData {
            conn_id: self.conn_id,
            tx_id: self.tx_id,
            access: self.access,
            perms: self.perms().collect(),
            path: String::from(self.path),
            value: self.value.to_vec(),
        }
    }
}

/// A validating reader that yields one record at a time; an error at any record ends it.
/// [`read`] collects it; a restore consumes it without copying node paths and values.
pub struct Stream<'a> {
    bytes: &'a [u8],
    layout: Layout,
    /// The records' byte order.
    pub endian: Endianness,
    /// The header's version.
    pub version: u32,
    pos: usize,
    index: usize,
    state: State,
    ended: bool,
}

impl<'a> Stream<'a> {
    /// Checks the header.
    pub fn new(bytes: &'a [u8], layout: Layout) -> Result<Stream<'a>, ImageError> {
        let header = |offset, reason| ImageError {
            offset,
            record: None,
            reason,
        };
        let h = bytes
            .get(..HEADER_LEN)
            .ok_or(header(bytes.len(), Reason::TruncatedHeader))?;
        if h.get(..8) != Some(&IDENT[..]) {
            return Err(header(0, Reason::BadIdent));
        }
        let be32 = |at: usize| {
            h.get(at..at.saturating_add(4))
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(u32::from_be_bytes)
                .ok_or(header(at, Reason::TruncatedHeader))
        };
        let version = be32(8)?;
        let version_ok = match layout {
            Layout::Seed => version == SEED_VERSION,
            Layout::Xen => version == 1 || version == 2,
        };
        if !version_ok {
            return Err(header(8, Reason::UnsupportedVersion(version)));
        }
        let flags = be32(12)?;
        if flags & !1 != 0 {
            return Err(header(12, Reason::ReservedFlags(flags)));
        }
        let endian = if flags & 1 == 1 {
            Endianness::Big
        } else {
            Endianness::Little
        };
        Ok(Stream {
            bytes,
            layout,
            endian,
            version,
            pos: HEADER_LEN,
            index: 0,
            state: State::default(),
            ended: false,
        })
    }

    /// Leaves the node checks that need every path (parents, duplicates) to the caller.
    pub fn without_node_tracking(mut self) -> Stream<'a> {
        self.state.untracked_nodes = true;
        self
    }

    /// The index of the record [`Stream::next_item`] returned last.
    pub fn index(&self) -> usize {
        self.index.saturating_sub(1)
    }

    /// The next record, `None` after `END` (which must end the stream).
    pub fn next_item(&mut self) -> Result<Option<Item<'a>>, ImageError> {
        if self.ended {
            return Ok(None);
        }
        let (bytes, endian, layout, pos) = (self.bytes, self.endian, self.layout, self.pos);
        let header = |offset, reason| ImageError {
            offset,
            record: None,
            reason,
        };
        if pos >= bytes.len() {
            return Err(header(pos, Reason::MissingEnd));
        }
        let field = |at: usize| {
            bytes
                .get(at..at.checked_add(4)?)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(|a| match endian {
                    Endianness::Little => u32::from_le_bytes(a),
                    Endianness::Big => u32::from_be_bytes(a),
                })
        };
        let t = field(pos).ok_or(header(pos, Reason::TruncatedRecord))?;
        let rec = RecordRef {
            index: self.index,
            rtype: t,
        };
        let rerr = |offset, reason| ImageError {
            offset,
            record: Some(rec),
            reason,
        };
        let known = match layout {
            Layout::Seed => t <= rtype::DOMAIN,
            Layout::Xen => t <= rtype::DOMAIN || (t == rtype::WATCH_EXT && self.version >= 2),
        };
        if !known {
            return Err(rerr(pos, Reason::UnknownRecordType(t)));
        }
        let len_at = pos.saturating_add(4);
        let len = field(len_at).ok_or(rerr(len_at, Reason::TruncatedRecord))?;
        let len = usize::try_from(len).map_err(|_| rerr(len_at, Reason::TruncatedRecord))?;
        let body_start = pos.saturating_add(8);
        let body_end = body_start
            .checked_add(len)
            .ok_or(rerr(len_at, Reason::TruncatedRecord))?;
        let body = bytes
            .get(body_start..body_end)
            .ok_or(rerr(len_at, Reason::TruncatedRecord))?;
        let mut b = Body {
            bytes: body,
            base: body_start,
            pos: 0,
            endian,
            rec,
        };
        let item = if t == rtype::NODE {
            Item::Node(node_ref(&mut b, &mut self.state, layout)?)
        } else {
            Item::Other(match layout {
                Layout::Seed => seed_body(&mut b, &mut self.state)?,
                Layout::Xen => xen::parse_body(&mut b, &mut self.state)?,
            })
        };
        b.finish(layout)?;
        let next = body_start
            .checked_add(round8(len).ok_or(rerr(len_at, Reason::TruncatedRecord))?)
            .ok_or(rerr(len_at, Reason::TruncatedRecord))?;
        if next > bytes.len() {
            return Err(rerr(body_end, Reason::TruncatedRecord));
        }
        if matches!(item, Item::Other(Record::End)) {
            if next != bytes.len() {
                return Err(rerr(next, Reason::DataAfterEnd));
            }
            self.ended = true;
        }
        self.pos = next;
        self.index = self.index.saturating_add(1);
        Ok(Some(item))
    }
}

/// One body in the seed layout (types 0 to 7; the caller has refused the others).
fn seed_body(b: &mut Body<'_>, st: &mut State) -> Result<Record, ImageError> {
    Ok(match b.rec.rtype {
        rtype::END => Record::End,
        rtype::GLOBAL => {
            st.once_global(b)?;
            Record::Global(GlobalData {
                rw_socket_fd: b.u32()?,
                ro_socket_fd: b.u32()?,
            })
        }
        rtype::CONNECTION => Record::Connection(seed_connection(b, st)?),
        rtype::WATCH => Record::Watch(watch(b, st)?),
        rtype::TRANSACTION => Record::Transaction(transaction(b, st)?),
        rtype::NODE => Record::Node(node(b, st, Layout::Seed)?),
        rtype::GLOBAL_QUOTA => Record::GlobalQuota(global_quota(b, st)?),
        rtype::DOMAIN => Record::Domain(domain(b, st)?),
        t => return Err(b.err_at(b.at(), Reason::UnknownRecordType(t))),
    })
}

fn seed_connection(b: &mut Body<'_>, st: &mut State) -> Result<ConnectionData, ImageError> {
    let at = b.at();
    let conn_id = b.u32()?;
    st.add_conn(b, at, conn_id)?;
    let type_at = b.at();
    let conn_type = b.u16()?;
    let flags_at = b.at();
    let flags = b.u16()?;
    let spec = match conn_type {
        0 => {
            if flags != 0 {
                return Err(b.err_at(flags_at, Reason::BadFlags(flags)));
            }
            let domid = b.u16()?;
            let tdomid = b.u16()?;
            let evtchn = b.u32()?;
            let mfn = b.u64()?;
            ConnSpec::Ring {
                flags,
                domid,
                tdomid,
                evtchn,
                mfn,
            }
        }
        1 => {
            if flags & !SOCKET_FLAG_RO != 0 {
                return Err(b.err_at(flags_at, Reason::BadFlags(flags)));
            }
            let socket_fd = b.u32()?;
            b.fixed(12)?; // pad u32, pad u64: ignored
            ConnSpec::Socket { flags, socket_fd }
        }
        t => return Err(b.err_at(type_at, Reason::BadConnType(t))),
    };
    let data_len = b.u32()?;
    let data_len =
        usize::try_from(data_len).map_err(|_| b.err_at(b.at(), Reason::LengthOverrun))?;
    let data = b.var(data_len)?.to_vec();
    Ok(ConnectionData {
        conn_id,
        spec,
        data,
    })
}

/// Checks a watch path: special (`@name`), absolute, or relative to the connection's home.
pub(crate) fn check_wpath(b: &Body<'_>, at: usize, wpath: &str) -> Result<(), ImageError> {
    let ok = if let Some(name) = wpath.strip_prefix('@') {
        !name.is_empty() && path::validate(&format!("/{name}"), path::PATH_LIMIT).is_ok()
    } else if wpath.starts_with('/') {
        path::validate(wpath, path::PATH_LIMIT).is_ok()
    } else {
        !wpath.is_empty() && path::validate(&format!("/{wpath}"), path::PATH_LIMIT).is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err(b.err_at(at, Reason::InvalidPath))
    }
}

/// `conn-id`, `wpath-len`, `token-len`, then (after `skip` octets) `wpath`, `token`.
pub(crate) fn watch_fields(
    b: &mut Body<'_>,
    st: &State,
    depth: bool,
) -> Result<(WatchData, u16), ImageError> {
    let at = b.at();
    let conn_id = b.u32()?;
    st.use_conn(b, at, conn_id)?;
    let wpath_len = b.u16()?;
    let token_len = b.u16()?;
    let depth = if depth { b.u16()? } else { 0 };
    let wpath_at = b.at();
    let wpath = b.cstr(usize::from(wpath_len))?;
    check_wpath(b, wpath_at, &wpath)?;
    let token = b.cstr(usize::from(token_len))?;
    Ok((
        WatchData {
            conn_id,
            wpath,
            token,
        },
        depth,
    ))
}

fn watch(b: &mut Body<'_>, st: &State) -> Result<WatchData, ImageError> {
    watch_fields(b, st, false).map(|(w, _)| w)
}

pub(crate) fn transaction(b: &mut Body<'_>, st: &mut State) -> Result<TransactionData, ImageError> {
    let at = b.at();
    let conn_id = b.u32()?;
    st.use_conn(b, at, conn_id)?;
    let tx_at = b.at();
    let tx_id = b.u32()?;
    if !st.txs.insert((conn_id, tx_id)) {
        return Err(b.err_at(tx_at, Reason::DuplicateTransaction));
    }
    Ok(TransactionData { conn_id, tx_id })
}

/// `NODE_DATA` in either layout (they differ only in field order), owned.
pub(crate) fn node(
    b: &mut Body<'_>,
    st: &mut State,
    layout: Layout,
) -> Result<NodeData, ImageError> {
    node_ref(b, st, layout).map(|n| n.to_owned())
}

/// `NODE_DATA` in either layout, borrowed from the body.
pub(crate) fn node_ref<'a>(
    b: &mut Body<'a>,
    st: &mut State,
    layout: Layout,
) -> Result<NodeRecord<'a>, ImageError> {
    let conn_at = b.at();
    let conn_id = b.u32()?;
    if conn_id != 0 {
        st.use_conn(b, conn_at, conn_id)?;
    }
    let tx_at = b.at();
    let tx_id = b.u32()?;
    if conn_id != 0 && !st.txs.contains(&(conn_id, tx_id)) {
        return Err(b.err_at(tx_at, Reason::UnknownTransaction { conn_id, tx_id }));
    }
    let (path_len, value_len) = match layout {
        Layout::Seed => (0, 0),
        Layout::Xen => (b.u16()?, b.u16()?),
    };
    let access_at = b.at();
    let access = b.u16()?;
    if conn_id != 0 && access & !(ACCESS_READ | ACCESS_WRITTEN) != 0 {
        return Err(b.err_at(access_at, Reason::BadFlags(access)));
    }
    let count_at = b.at();
    let perm_count = usize::from(b.u16()?);
    if conn_id == 0 && perm_count == 0 {
        return Err(b.err_at(count_at, Reason::NoPermissions));
    }
    let start = b.pos;
    let perms_raw = b.var(perm_count.saturating_mul(4))?;
    b.pos = start;
    for _ in 0..perm_count {
        let p_at = b.at();
        let letter = b.u8()?;
        if PermKind::from_letter(letter).is_none() {
            return Err(b.err_at(p_at, Reason::InvalidPerm(letter)));
        }
        let flags_at = b.at();
        let flags = b.u8()?;
        // Seed: padding, ignored. Xen: bit 0 (stale) only.
        if layout == Layout::Xen && flags & !1 != 0 {
            return Err(b.err_at(flags_at, Reason::BadFlags(u16::from(flags))));
        }
        b.u16()?;
    }
    let (path_len, value_len) = match layout {
        Layout::Seed => (b.u16()?, b.u16()?),
        Layout::Xen => (path_len, value_len),
    };
    let path_at = b.at();
    let path_start = b.pos;
    let raw = b.var(usize::from(path_len))?;
    // The common case in one pass: a valid node path is ASCII without a NUL, so it is text.
    let fast = match raw.split_last() {
        Some((0, head)) if path::validate_bytes(head, path::PATH_LIMIT).is_ok() => {
            core::str::from_utf8(head).ok()
        }
        _ => None,
    };
    let (path, special) = match fast {
        Some(p) => (p, false),
        None => {
            // Anything else is read again for the precise reason.
            b.pos = path_start;
            let path = b.cstr_ref(usize::from(path_len))?;
            // The special nodes carry the permissions of the special watches; C xenstored
            // writes them as committed nodes after the tree.
            let special = SPECIAL_NODES.contains(&path);
            if (special && conn_id != 0)
                || (!special && path::validate(path, path::PATH_LIMIT).is_err())
            {
                return Err(b.err_at(path_at, Reason::InvalidPath));
            }
            (path, special)
        }
    };
    let value = b.var(usize::from(value_len))?;
    // Committed nodes are unique by path (and need their parent); transaction nodes by
    // (connection, transaction, path).
    if !st.untracked_nodes {
        if conn_id == 0 {
            if path != "/" && !special && !st.committed.contains(path::parent(path)) {
                return Err(b.err_at(path_at, Reason::MissingParent));
            }
            if !st.committed.insert(String::from(path)) {
                return Err(b.err_at(path_at, Reason::DuplicateNode));
            }
        } else if !st.nodes.insert((conn_id, tx_id, String::from(path))) {
            return Err(b.err_at(path_at, Reason::DuplicateNode));
        }
    }
    Ok(NodeRecord {
        conn_id,
        tx_id,
        access,
        perms_raw,
        endian: b.endian,
        layout,
        path,
        value,
    })
}

/// `n` values then `n` NUL-terminated names.
fn quotas(b: &mut Body<'_>, n: usize) -> Result<Vec<Quota>, ImageError> {
    let start = b.pos;
    b.var(n.saturating_mul(4))?;
    b.pos = start;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(b.u32()?);
    }
    let mut out = Vec::with_capacity(n);
    for value in values {
        let at = b.at();
        let rest = b.bytes.get(b.pos..).unwrap_or(&[]);
        let nul = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| b.err_at(at, Reason::MissingNul))?;
        let name = b.cstr(nul.saturating_add(1))?;
        if name.is_empty() {
            return Err(b.err_at(at, Reason::BadQuotaName));
        }
        out.push(Quota { name, value });
    }
    Ok(out)
}

pub(crate) fn global_quota(
    b: &mut Body<'_>,
    st: &mut State,
) -> Result<GlobalQuotaData, ImageError> {
    if core::mem::replace(&mut st.global_quota, true) {
        return Err(b.err_at(b.at(), Reason::DuplicateRecord));
    }
    let n_dom = usize::from(b.u16()?);
    let n_glob = usize::from(b.u16()?);
    let mut all = quotas(b, n_dom.saturating_add(n_glob))?;
    let global = all.split_off(n_dom.min(all.len()));
    Ok(GlobalQuotaData {
        domain: all,
        global,
    })
}

pub(crate) fn domain(b: &mut Body<'_>, st: &mut State) -> Result<DomainData, ImageError> {
    let at = b.at();
    let domid = b.u16()?;
    if !st.domains.insert(domid) {
        return Err(b.err_at(at, Reason::DuplicateRecord));
    }
    let n = usize::from(b.u16()?);
    let features = b.u32()?;
    let quotas = quotas(b, n)?;
    Ok(DomainData {
        domid,
        features,
        quotas,
    })
}
