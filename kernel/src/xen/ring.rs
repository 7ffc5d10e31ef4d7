//! A xenstore ring page (`xenstore_domain_interface`): snapshot, validate, copy, publish.

use core::sync::atomic::{fence, Ordering};

use xsstate::ring as layout;

use super::page::SharedPage;

/// The other side broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingIndexError {
    /// The consumer index read.
    pub cons: u32,
    /// The producer index read.
    pub prod: u32,
}

/// Copies the bytes between `cons` and `prod` of the ring at byte `base` of `page` into
/// `buf` (at most its length); `None` when the indices are inconsistent.
fn copy_out(page: &SharedPage, base: usize, cons: u32, prod: u32, buf: &mut [u8]) -> Option<usize> {
    let mut copied = 0usize;
    let mut at = cons;
    while copied < buf.len() {
        let (start, len) = layout::readable_chunk(at, prod)?;
        let len = len.min(buf.len() - copied);
        if len == 0 {
            break;
        }
        if let Some(dst) = buf.get_mut(copied..copied + len) {
            page.read_bytes(base + start, dst);
        }
        copied += len;
        at = at.wrapping_add(len as u32);
    }
    Some(copied)
}

/// Copies as much of `data` as fits into the ring at byte `base` of `page`, from producer
/// `prod` with the reader at `cons`; `None` when the indices are inconsistent.
fn copy_in(page: &SharedPage, base: usize, cons: u32, prod: u32, data: &[u8]) -> Option<usize> {
    let mut written = 0usize;
    let mut at = prod;
    while written < data.len() {
        let (start, len) = layout::writable_chunk(cons, at)?;
        let len = len.min(data.len() - written);
        if len == 0 {
            break;
        }
        if let Some(src) = data.get(written..written + len) {
            page.write_bytes(base + start, src);
        }
        written += len;
        at = at.wrapping_add(len as u32);
    }
    Some(written)
}

/// One domain's xenstore ring page, seen from the server.
#[derive(Debug)]
pub struct XsRing {
    page: SharedPage,
}

impl XsRing {
    /// Wraps a mapped ring page.
    pub fn new(page: SharedPage) -> XsRing {
        XsRing { page }
    }

    /// Copies the request bytes available (at most `buf.len()`) without consuming them.
    /// Returns the consumer index the copy started at and the number of bytes copied.
    pub fn peek_requests(&self, buf: &mut [u8]) -> Result<(u32, usize), RingIndexError> {
        let cons = self.page.read_u32(layout::REQ_CONS_OFFSET);
        let prod = self.page.read_u32(layout::REQ_PROD_OFFSET);
        // Read the indices before the data they describe.
        fence(Ordering::Acquire);
        copy_out(&self.page, layout::REQ_OFFSET, cons, prod, buf)
            .map(|copied| (cons, copied))
            .ok_or(RingIndexError { cons, prod })
    }

    /// Publishes that `n` request bytes from `cons` were consumed.
    pub fn consume_requests(&self, cons: u32, n: usize) {
        // Finish reading the data before handing the space back.
        fence(Ordering::SeqCst);
        self.page
            .write_u32(layout::REQ_CONS_OFFSET, cons.wrapping_add(n as u32));
    }

    /// Copies as much of `data` into the response ring as fits; returns the bytes written.
    pub fn write_responses(&self, data: &[u8]) -> Result<usize, RingIndexError> {
        let cons = self.page.read_u32(layout::RSP_CONS_OFFSET);
        let prod = self.page.read_u32(layout::RSP_PROD_OFFSET);
        fence(Ordering::SeqCst);
        let written = copy_in(&self.page, layout::RSP_OFFSET, cons, prod, data)
            .ok_or(RingIndexError { cons, prod })?;
        if written > 0 {
            // The data must be visible before the index that publishes it.
            fence(Ordering::Release);
            self.page
                .write_u32(layout::RSP_PROD_OFFSET, prod.wrapping_add(written as u32));
        }
        Ok(written)
    }

    /// Sets the ring's `error` field (`XENSTORE_ERROR_*`).
    pub fn set_error(&self, code: u32) {
        self.page.write_u32(layout::ERROR_OFFSET, code);
    }

    /// Advertises the server's features.
    pub fn set_server_features(&self, features: u32) {
        self.page
            .write_u32(layout::SERVER_FEATURES_OFFSET, features);
    }

    /// Resets every index to 0 (a re-introduce), then completes a guest-requested
    /// reconnection.
    pub fn reset(&self) {
        for off in [
            layout::REQ_CONS_OFFSET,
            layout::REQ_PROD_OFFSET,
            layout::RSP_CONS_OFFSET,
            layout::RSP_PROD_OFFSET,
        ] {
            self.page.write_u32(off, 0);
        }
        fence(Ordering::SeqCst);
        if self.page.read_u32(layout::CONNECTION_OFFSET) == layout::RECONNECT {
            self.page
                .write_u32(layout::CONNECTION_OFFSET, layout::CONNECTED);
        }
    }
}

/// The client side of a xenstore ring: a domain's own page (the test guest uses it).
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
pub struct XsClientRing {
    page: SharedPage,
    /// The port to notify xenstored on.
    pub port: u32,
}

#[cfg(feature = "fault-injection")]
impl XsClientRing {
    /// This domain's own xenstore ring, from `HVM_PARAM_STORE_PFN`/`_EVTCHN`; `None` when the
    /// toolstack gave us none.
    pub fn own() -> Option<XsClientRing> {
        let pfn = super::events::hvm_param(super::abi::HVM_PARAM_STORE_PFN).ok()?;
        let port = super::events::hvm_param(super::abi::HVM_PARAM_STORE_EVTCHN).ok()?;
        if pfn == 0 || pfn >= (1 << 20) || port == 0 {
            return None;
        }
        // SAFETY: the store page is a special page of this domain below 4 GiB (identity
        // mapped), shared with xenstored for the domain's life; only volatile copies touch it.
        let page = unsafe { SharedPage::new(pfn << 12) };
        Some(XsClientRing {
            page,
            port: port as u32,
        })
    }

    /// Writes a request (as far as it fits); returns the bytes written.
    pub fn send(&self, data: &[u8]) -> usize {
        let cons = self.page.read_u32(layout::REQ_CONS_OFFSET);
        let prod = self.page.read_u32(layout::REQ_PROD_OFFSET);
        fence(Ordering::SeqCst);
        let written = copy_in(&self.page, layout::REQ_OFFSET, cons, prod, data).unwrap_or(0);
        fence(Ordering::Release);
        self.page
            .write_u32(layout::REQ_PROD_OFFSET, prod.wrapping_add(written as u32));
        written
    }

    /// Takes the response bytes available into `out`.
    pub fn receive(&self, out: &mut alloc::vec::Vec<u8>) {
        let cons = self.page.read_u32(layout::RSP_CONS_OFFSET);
        let prod = self.page.read_u32(layout::RSP_PROD_OFFSET);
        fence(Ordering::Acquire);
        let mut buf = [0u8; layout::RING_SIZE as usize];
        let n = copy_out(&self.page, layout::RSP_OFFSET, cons, prod, &mut buf).unwrap_or(0);
        out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
        fence(Ordering::SeqCst);
        self.page
            .write_u32(layout::RSP_CONS_OFFSET, cons.wrapping_add(n as u32));
    }

    /// Overwrites the request producer index (the misbehaving-guest test).
    pub fn corrupt_req_prod(&self, value: u32) {
        self.page.write_u32(layout::REQ_PROD_OFFSET, value);
    }

    /// The current request consumer index.
    pub fn req_cons(&self) -> u32 {
        self.page.read_u32(layout::REQ_CONS_OFFSET)
    }

    /// The ring's `error` field.
    pub fn error(&self) -> u32 {
        self.page.read_u32(layout::ERROR_OFFSET)
    }
}
