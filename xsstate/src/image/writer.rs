//! The writer: [`Image`] to bytes, in either byte order and either layout.
//!
//! The writer encodes exactly the records it is given (it does not append `END` or check
//! the cross-record rules, so tests can build refused images with it); it fails only when a
//! record cannot be represented: a string or data too long for its length field, a seed
//! permission with non-zero flags, or a record of the other layout.

use alloc::vec::Vec;

use super::error::{ImageError, Reason, RecordRef};
use super::reader::round8;
use super::record::{
    ConnSpec, ConnectionData, DomainData, Endianness, GlobalQuotaData, Image, Layout, NodeData,
    Quota, Record, WatchData,
};
use super::{xen, IDENT, SEED_VERSION};

/// A growing body or stream in one byte order.
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    endian: Endianness,
}

impl Out {
    pub(crate) fn new(endian: Endianness) -> Out {
        Out {
            buf: Vec::new(),
            endian,
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        match self.endian {
            Endianness::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endianness::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }

    pub(crate) fn u32(&mut self, v: u32) {
        match self.endian {
            Endianness::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endianness::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }

    pub(crate) fn i32(&mut self, v: i32) {
        match self.endian {
            Endianness::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endianness::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }

    pub(crate) fn u64(&mut self, v: u64) {
        match self.endian {
            Endianness::Little => self.buf.extend_from_slice(&v.to_le_bytes()),
            Endianness::Big => self.buf.extend_from_slice(&v.to_be_bytes()),
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Zero octets up to the next multiple of 8.
    pub(crate) fn pad8(&mut self) {
        let len = self.buf.len();
        let target = round8(len).unwrap_or(len);
        self.buf.resize(target, 0);
    }

    /// A string and its NUL.
    pub(crate) fn cstr(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
}

/// Length of a string with its NUL, as a `u16` length field.
pub(crate) fn cstr_len(s: &str) -> Result<u16, Reason> {
    u16::try_from(s.len().saturating_add(1)).map_err(|_| Reason::TooLong)
}

/// Writes an image in the seed layout.
pub fn write(image: &Image) -> Result<Vec<u8>, ImageError> {
    write_layout(image, Layout::Seed)
}

/// Writes an image in the given layout (`len` without padding for the seed, with padding
/// for Xen).
pub fn write_layout(image: &Image, layout: Layout) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    out.extend_from_slice(&IDENT);
    out.extend_from_slice(&image.version.to_be_bytes());
    out.extend_from_slice(&image.endianness.flags().to_be_bytes());
    let mut framing = Out::new(image.endianness);
    // One body buffer for every record: it grows to the largest body once.
    let mut body = Out::new(image.endianness);
    for (index, rec) in image.records.iter().enumerate() {
        let rtype = rec.type_number();
        let start = out.len();
        let werr = |reason| ImageError {
            offset: start,
            record: Some(RecordRef { index, rtype }),
            reason,
        };
        body.buf.clear();
        match layout {
            Layout::Seed => seed_body(rec, &mut body),
            Layout::Xen => xen::write_body(rec, &mut body),
        }
        .map_err(werr)?;
        let len = body.buf.len();
        if layout == Layout::Xen {
            body.pad8();
        }
        let len_field = match layout {
            Layout::Seed => len,
            Layout::Xen => body.buf.len(),
        };
        let len_field = u32::try_from(len_field).map_err(|_| werr(Reason::TooLong))?;
        framing.buf.clear();
        framing.u32(rtype);
        framing.u32(len_field);
        out.extend_from_slice(&framing.buf);
        out.extend_from_slice(&body.buf);
        let target = round8(out.len()).ok_or(werr(Reason::TooLong))?;
        out.resize(target, 0);
    }
    Ok(out)
}

fn seed_body(rec: &Record, o: &mut Out) -> Result<(), Reason> {
    match rec {
        Record::End => {}
        Record::Global(g) => {
            o.u32(g.rw_socket_fd);
            o.u32(g.ro_socket_fd);
        }
        Record::Connection(c) => seed_connection(c, o)?,
        Record::Watch(w) => watch(w, o, None)?,
        Record::Transaction(t) => {
            o.u32(t.conn_id);
            o.u32(t.tx_id);
        }
        Record::Node(n) => node(n, o, Layout::Seed)?,
        Record::GlobalQuota(q) => global_quota(q, o)?,
        Record::Domain(d) => domain(d, o)?,
        Record::XenGlobal(_) | Record::XenConnection(_) | Record::XenWatchExt(_) => {
            return Err(Reason::NotInLayout)
        }
    }
    Ok(())
}

fn seed_connection(c: &ConnectionData, o: &mut Out) -> Result<(), Reason> {
    o.u32(c.conn_id);
    match c.spec {
        ConnSpec::Ring {
            flags,
            domid,
            tdomid,
            evtchn,
            mfn,
        } => {
            o.u16(0);
            o.u16(flags);
            o.u16(domid);
            o.u16(tdomid);
            o.u32(evtchn);
            o.u64(mfn);
        }
        ConnSpec::Socket { flags, socket_fd } => {
            o.u16(1);
            o.u16(flags);
            o.u32(socket_fd);
            o.u32(0);
            o.u64(0);
        }
    }
    o.u32(u32::try_from(c.data.len()).map_err(|_| Reason::TooLong)?);
    o.bytes(&c.data);
    Ok(())
}

/// `WATCH_DATA`, or with `depth` Xen's `WATCH_DATA_EXTENDED`.
pub(crate) fn watch(w: &WatchData, o: &mut Out, depth: Option<u16>) -> Result<(), Reason> {
    o.u32(w.conn_id);
    o.u16(cstr_len(&w.wpath)?);
    o.u16(cstr_len(&w.token)?);
    if let Some(d) = depth {
        o.u16(d);
    }
    o.cstr(&w.wpath);
    o.cstr(&w.token);
    Ok(())
}

/// `NODE_DATA` in either layout.
pub(crate) fn node(n: &NodeData, o: &mut Out, layout: Layout) -> Result<(), Reason> {
    let path_len = cstr_len(&n.path)?;
    let value_len = u16::try_from(n.value.len()).map_err(|_| Reason::TooLong)?;
    let count = u16::try_from(n.perms.len()).map_err(|_| Reason::TooLong)?;
    o.u32(n.conn_id);
    o.u32(n.tx_id);
    if layout == Layout::Xen {
        o.u16(path_len);
        o.u16(value_len);
    }
    o.u16(n.access);
    o.u16(count);
    for p in &n.perms {
        if layout == Layout::Seed && p.flags != 0 {
            return Err(Reason::NotInLayout);
        }
        o.u8(p.kind.letter());
        o.u8(p.flags);
        o.u16(p.domid);
    }
    if layout == Layout::Seed {
        o.u16(path_len);
        o.u16(value_len);
    }
    o.cstr(&n.path);
    o.bytes(&n.value);
    Ok(())
}

fn quotas(qs: &[&Quota], o: &mut Out) {
    for q in qs {
        o.u32(q.value);
    }
    for q in qs {
        o.cstr(&q.name);
    }
}

/// `GLOBAL_QUOTA_DATA` (Xen's layout).
pub(crate) fn global_quota(g: &GlobalQuotaData, o: &mut Out) -> Result<(), Reason> {
    o.u16(u16::try_from(g.domain.len()).map_err(|_| Reason::TooLong)?);
    o.u16(u16::try_from(g.global.len()).map_err(|_| Reason::TooLong)?);
    let all: Vec<&Quota> = g.domain.iter().chain(g.global.iter()).collect();
    quotas(&all, o);
    Ok(())
}

/// `DOMAIN_DATA` (Xen's layout).
pub(crate) fn domain(d: &DomainData, o: &mut Out) -> Result<(), Reason> {
    o.u16(d.domid);
    o.u16(u16::try_from(d.quotas.len()).map_err(|_| Reason::TooLong)?);
    o.u32(d.features);
    let all: Vec<&Quota> = d.quotas.iter().collect();
    quotas(&all, o);
    Ok(())
}

/// A seed-layout stream written record by record into a growing buffer (the engine's dump:
/// committed nodes go straight from the tree into the buffer, with no record in between).
pub struct SeedWriter<'o> {
    out: &'o mut Vec<u8>,
    endian: Endianness,
    body: Out,
    index: usize,
}

impl<'o> SeedWriter<'o> {
    /// Appends the header (version [`SEED_VERSION`]) to `out`.
    pub fn new(out: &'o mut Vec<u8>, endian: Endianness) -> SeedWriter<'o> {
        out.extend_from_slice(&IDENT);
        out.extend_from_slice(&SEED_VERSION.to_be_bytes());
        out.extend_from_slice(&endian.flags().to_be_bytes());
        SeedWriter {
            out,
            endian,
            body: Out::new(endian),
            index: 0,
        }
    }

    fn err(&self, reason: Reason, rtype: u32) -> ImageError {
        ImageError {
            offset: self.out.len(),
            record: Some(RecordRef {
                index: self.index,
                rtype,
            }),
            reason,
        }
    }

    /// Frames the body written so far as a record of type `rtype`.
    fn frame(&mut self, rtype: u32, body_len: usize) -> Result<(), ImageError> {
        let len = u32::try_from(body_len).map_err(|_| self.err(Reason::TooLong, rtype))?;
        let (t, l) = match self.endian {
            Endianness::Little => (rtype.to_le_bytes(), len.to_le_bytes()),
            Endianness::Big => (rtype.to_be_bytes(), len.to_be_bytes()),
        };
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        Ok(())
    }

    fn pad(&mut self) {
        let len = self.out.len();
        self.out.resize(round8(len).unwrap_or(len), 0);
        self.index += 1;
    }

    /// One record.
    pub fn record(&mut self, rec: &Record) -> Result<(), ImageError> {
        let rtype = rec.type_number();
        self.body.buf.clear();
        let mut body = core::mem::replace(&mut self.body, Out::new(self.endian));
        let r = seed_body(rec, &mut body);
        self.body = body;
        r.map_err(|reason| self.err(reason, rtype))?;
        self.frame(rtype, self.body.buf.len())?;
        self.out.extend_from_slice(&self.body.buf);
        self.pad();
        Ok(())
    }

    /// One `NODE_DATA` record from its parts; `perms` yields `(letter, domid)`.
    pub fn node(
        &mut self,
        conn_id: u32,
        tx_id: u32,
        access: u16,
        perms: impl ExactSizeIterator<Item = (u8, u16)>,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), ImageError> {
        let rt = super::record::rtype::NODE;
        let path_len = u16::try_from(path.len().saturating_add(1))
            .map_err(|_| self.err(Reason::TooLong, rt))?;
        let value_len = u16::try_from(value.len()).map_err(|_| self.err(Reason::TooLong, rt))?;
        let count = u16::try_from(perms.len()).map_err(|_| self.err(Reason::TooLong, rt))?;
        let body_len = 12 + 4 * usize::from(count) + 4 + usize::from(path_len) + value.len();
        let len = u32::try_from(body_len).map_err(|_| self.err(Reason::TooLong, rt))?;
        let total = round8(8 + body_len).ok_or_else(|| self.err(Reason::TooLong, rt))?;
        self.out.reserve(total);
        let start = self.out.len();
        let little = self.endian == Endianness::Little;
        let w16 = |v: u16| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let w32 = |v: u32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        // Type, length, connection, transaction, access, count: 20 bytes in one copy.
        let mut head = [0u8; 20];
        for (dst, src) in head.chunks_exact_mut(4).zip([rt, len, conn_id, tx_id]) {
            dst.copy_from_slice(&w32(src));
        }
        if let Some(d) = head.get_mut(16..18) {
            d.copy_from_slice(&w16(access));
        }
        if let Some(d) = head.get_mut(18..20) {
            d.copy_from_slice(&w16(count));
        }
        self.out.extend_from_slice(&head);
        for (letter, domid) in perms {
            let d = w16(domid);
            self.out.extend_from_slice(&[letter, 0, d[0], d[1]]);
        }
        let (p, v) = (w16(path_len), w16(value_len));
        self.out.extend_from_slice(&[p[0], p[1], v[0], v[1]]);
        self.out.extend_from_slice(path);
        self.out.push(0);
        self.out.extend_from_slice(value);
        // Zero padding to the record's 8-byte end.
        self.out.resize(start + total, 0);
        self.index += 1;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing was written (never: the header is).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}
