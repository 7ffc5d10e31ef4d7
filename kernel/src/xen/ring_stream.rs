//! The two byte streams of a xenstore ring page as `embedded-io` streams, one implementation
//! for both ends: the server reads requests ([`RingIn`]) and writes responses ([`RingOut`]);
//! a client (our own connection's self-test, the test guest) writes requests and reads
//! responses with the same two types.
//!
//! Every access is a volatile copy (`SharedPage`). The consumer snapshots both indices once,
//! checks them (`xsstate::ring::readable_chunk`), copies the bytes out, and publishes its new
//! consumer index only after the copy; the producer copies first and publishes the producer
//! index with release ordering. An index the other side set inconsistently is a
//! [`RingError::Index`], which faults the connection.
//!
//! A ring never blocks: the other side is another domain. Check [`ReadReady`] /
//! [`WriteReady`] first; an empty ring reads as nothing for now (`fill_buf` gives an empty
//! slice, `read` 0 bytes) and a full ring refuses a write with [`RingError::Full`], after
//! which the caller waits for the event channel.

use core::sync::atomic::{fence, Ordering};

use embedded_io::{BufRead, ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use xsstate::ring as layout;

use super::page::SharedPage;

/// Which of the page's two rings a stream moves bytes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Client to server.
    Requests,
    /// Server to client.
    Responses,
}

impl Side {
    /// Byte offsets of the ring's data, its consumer index and its producer index.
    fn offsets(self) -> (usize, usize, usize) {
        match self {
            Side::Requests => (
                layout::REQ_OFFSET,
                layout::REQ_CONS_OFFSET,
                layout::REQ_PROD_OFFSET,
            ),
            Side::Responses => (
                layout::RSP_OFFSET,
                layout::RSP_CONS_OFFSET,
                layout::RSP_PROD_OFFSET,
            ),
        }
    }
}

/// Why a ring stream refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The other side's indices are inconsistent (more than a ring apart): a stream violation.
    Index {
        /// The consumer index read.
        cons: u32,
        /// The producer index read.
        prod: u32,
    },
    /// No room for a byte: the reader has not caught up (wait for its event).
    Full,
}

impl embedded_io::Error for RingError {
    fn kind(&self) -> ErrorKind {
        match self {
            RingError::Index { .. } => ErrorKind::InvalidData,
            RingError::Full => ErrorKind::Other,
        }
    }
}

/// Reads both indices of `side` once, consumer first, then orders the data after them.
fn indices(page: &SharedPage, side: Side) -> (u32, u32) {
    let (_, cons_off, prod_off) = side.offsets();
    let cons = page.read_u32(cons_off);
    let prod = page.read_u32(prod_off);
    fence(Ordering::Acquire);
    (cons, prod)
}

/// The consumer end of one ring: what the other side produced, as `Read` and `BufRead`.
/// Bytes are copied out of the shared page into a private buffer before anyone looks at
/// them, and given back to the producer only by [`BufRead::consume`] (or `read`).
pub struct RingIn<'a> {
    page: &'a SharedPage,
    side: Side,
    /// The private copy.
    buf: [u8; layout::RING_SIZE as usize],
    /// The consumer index `buf[0]` was at.
    cons: u32,
    /// Bytes in `buf`.
    len: usize,
    /// Bytes of `buf` consumed (and published).
    pos: usize,
}

impl<'a> RingIn<'a> {
    /// The consumer end of `side` of `page`.
    pub fn new(page: &'a SharedPage, side: Side) -> RingIn<'a> {
        RingIn {
            page,
            side,
            buf: [0; layout::RING_SIZE as usize],
            cons: 0,
            len: 0,
            pos: 0,
        }
    }

    /// Copies what the producer published into the private buffer (which must be used up).
    fn refill(&mut self) -> Result<(), RingError> {
        let (cons, prod) = indices(self.page, self.side);
        let (base, _, _) = self.side.offsets();
        let mut copied = 0usize;
        let mut at = cons;
        while copied < self.buf.len() {
            let (start, len) =
                layout::readable_chunk(at, prod).ok_or(RingError::Index { cons, prod })?;
            let len = len.min(self.buf.len() - copied);
            if len == 0 {
                break;
            }
            if let Some(dst) = self.buf.get_mut(copied..copied + len) {
                self.page.read_bytes(base + start, dst);
            }
            copied += len;
            at = at.wrapping_add(len as u32);
        }
        self.cons = cons;
        self.len = copied;
        self.pos = 0;
        Ok(())
    }
}

impl ErrorType for RingIn<'_> {
    type Error = RingError;
}

impl ReadReady for RingIn<'_> {
    fn read_ready(&mut self) -> Result<bool, RingError> {
        if self.pos < self.len {
            return Ok(true);
        }
        let (cons, prod) = indices(self.page, self.side);
        match layout::readable_chunk(cons, prod) {
            Some((_, n)) => Ok(n > 0),
            None => Err(RingError::Index { cons, prod }),
        }
    }
}

impl BufRead for RingIn<'_> {
    /// The bytes copied and not yet consumed; an empty slice when the ring is empty now.
    fn fill_buf(&mut self) -> Result<&[u8], RingError> {
        if self.pos >= self.len {
            self.refill()?;
        }
        Ok(self.buf.get(self.pos..self.len).unwrap_or(&[]))
    }

    /// Hands `amt` bytes back to the producer (publishes the consumer index).
    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.len - self.pos);
        if amt == 0 {
            return;
        }
        self.pos += amt;
        let (_, cons_off, _) = self.side.offsets();
        // Finish reading the data before handing the space back.
        fence(Ordering::SeqCst);
        self.page
            .write_u32(cons_off, self.cons.wrapping_add(self.pos as u32));
    }
}

impl Read for RingIn<'_> {
    /// Copies and consumes up to `out.len()` bytes; 0 when the ring is empty now.
    fn read(&mut self, out: &mut [u8]) -> Result<usize, RingError> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

/// The producer end of one ring: `Write` into the other side's input.
pub struct RingOut<'a> {
    page: &'a SharedPage,
    side: Side,
}

impl<'a> RingOut<'a> {
    /// The producer end of `side` of `page`.
    pub fn new(page: &'a SharedPage, side: Side) -> RingOut<'a> {
        RingOut { page, side }
    }
}

impl ErrorType for RingOut<'_> {
    type Error = RingError;
}

impl WriteReady for RingOut<'_> {
    fn write_ready(&mut self) -> Result<bool, RingError> {
        let (cons, prod) = indices(self.page, self.side);
        match layout::writable_chunk(cons, prod) {
            Some((_, n)) => Ok(n > 0),
            None => Err(RingError::Index { cons, prod }),
        }
    }
}

impl Write for RingOut<'_> {
    /// Copies as much of `data` as fits, then publishes it; [`RingError::Full`] when not a
    /// byte fits.
    fn write(&mut self, data: &[u8]) -> Result<usize, RingError> {
        if data.is_empty() {
            return Ok(0);
        }
        let (cons, prod) = indices(self.page, self.side);
        let (base, _, prod_off) = self.side.offsets();
        let mut written = 0usize;
        let mut at = prod;
        while written < data.len() {
            let (start, len) =
                layout::writable_chunk(cons, at).ok_or(RingError::Index { cons, prod })?;
            let len = len.min(data.len() - written);
            if len == 0 {
                break;
            }
            if let Some(src) = data.get(written..written + len) {
                self.page.write_bytes(base + start, src);
            }
            written += len;
            at = at.wrapping_add(len as u32);
        }
        if written == 0 {
            return Err(RingError::Full);
        }
        // The data must be visible before the index that publishes it.
        fence(Ordering::Release);
        self.page
            .write_u32(prod_off, prod.wrapping_add(written as u32));
        Ok(written)
    }

    fn flush(&mut self) -> Result<(), RingError> {
        Ok(())
    }
}

/// The bare-QEMU self-test: a client and a server talk through a private page with these
/// streams, across the ring's wrap, and an inconsistent index is refused.
#[cfg(feature = "selftest")]
pub fn self_test() -> Result<(), alloc::string::String> {
    use alloc::format;
    let layout = core::alloc::Layout::from_size_align(super::page::PAGE_BYTES, 4096)
        .map_err(|_| "page layout")?;
    // SAFETY: a fresh, zeroed, page-aligned allocation of one page, freed below; nothing
    // else refers to it while the `SharedPage` (which only makes volatile copies) exists.
    let mem = unsafe { alloc::alloc::alloc_zeroed(layout) };
    if mem.is_null() {
        return Err("no memory for the test page".into());
    }
    let result = {
        // SAFETY: see above; the page is owned by this test and outlives `page`, which
        // ends with this block.
        let page = unsafe { SharedPage::new(mem as u64) };
        (|| -> Result<(), alloc::string::String> {
            let mut sent = alloc::vec::Vec::new();
            let mut got = alloc::vec::Vec::new();
            // 3 rounds of 700 bytes cross the 1024-byte ring's end twice.
            for round in 0..3u8 {
                let msg: alloc::vec::Vec<u8> = (0..700u32).map(|i| (i as u8) ^ round).collect();
                let mut client = RingOut::new(&page, Side::Requests);
                let mut server = RingIn::new(&page, Side::Requests);
                if !client.write_ready().map_err(|e| format!("{e:?}"))? {
                    return Err(format!("round {round}: an empty ring is not writable"));
                }
                let n = client.write(&msg).map_err(|e| format!("{e:?}"))?;
                sent.extend_from_slice(msg.get(..n).unwrap_or(&[]));
                let mut buf = [0u8; 1024];
                let r = server.read(&mut buf).map_err(|e| format!("{e:?}"))?;
                got.extend_from_slice(buf.get(..r).unwrap_or(&[]));
                if server.read_ready().map_err(|e| format!("{e:?}"))? {
                    return Err(format!("round {round}: bytes left after reading all"));
                }
            }
            if sent != got || sent.len() != 2100 {
                return Err(format!(
                    "{} bytes sent, {} read back differ",
                    sent.len(),
                    got.len()
                ));
            }
            // A full ring refuses a write; the reader frees it.
            let mut client = RingOut::new(&page, Side::Responses);
            let mut reader = RingIn::new(&page, Side::Responses);
            let full = client.write(&[7u8; 1024]).map_err(|e| format!("{e:?}"))?;
            if full != 1024 || client.write(&[1]) != Err(RingError::Full) {
                return Err(format!("a full ring took {full} bytes and then more"));
            }
            let first = reader.fill_buf().map_err(|e| format!("{e:?}"))?.len();
            reader.consume(10);
            if first != 1024 || client.write(&[1; 20]) != Ok(10) {
                return Err("consuming 10 bytes did not free 10".into());
            }
            // A producer index more than a ring ahead of the consumer is a violation.
            let (_, cons_off, prod_off) = Side::Requests.offsets();
            let cons = page.read_u32(cons_off);
            page.write_u32(prod_off, cons.wrapping_add(2000));
            let mut server = RingIn::new(&page, Side::Requests);
            match server.fill_buf() {
                Err(RingError::Index { .. }) => Ok(()),
                other => Err(format!(
                    "a bad producer index gave {:?}",
                    other.map(|b| b.len())
                )),
            }
        })()
    };
    // SAFETY: allocated above with the same layout; `page` is gone.
    unsafe { alloc::alloc::dealloc(mem, layout) };
    result
}
