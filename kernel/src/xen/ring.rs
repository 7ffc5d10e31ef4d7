//! A xenstore ring page (`xenstore_domain_interface`): its two byte streams (`ring_stream`)
//! and its control fields, from the server's side and from a client's.

use embedded_io::{BufRead, Write};
use xsstate::ring as layout;

use super::page::SharedPage;
use super::ring_stream::{RingIn, RingOut, Side};

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

    /// The requests the domain wrote (the server reads them).
    pub fn requests(&self) -> RingIn<'_> {
        RingIn::new(&self.page, Side::Requests)
    }

    /// The responses to the domain (the server writes them).
    pub fn responses(&self) -> RingOut<'_> {
        RingOut::new(&self.page, Side::Responses)
    }

    /// Sets the ring's `error` field (`XENSTORE_ERROR_*`) if the domain's `features` include
    /// the error feature; returns whether it was written.
    pub fn set_error(&self, features: u32, code: u32) -> bool {
        super::ring_intro::set_error(self, features, code)
    }

    /// Advertises the server's features (`server_features`) without touching the indices.
    pub fn set_server_features(&self, features: u32) {
        self.page
            .write_u32(layout::SERVER_FEATURES_OFFSET, features);
    }

    /// An introduction (see [`super::ring_intro::introduce`]): indices to 0, the features at
    /// the first one, a requested reconnection completed; returns whether to notify.
    pub fn introduce(&self, first: Option<u32>) -> bool {
        super::ring_intro::introduce(self, first)
    }
}

impl super::ring_intro::RingWords for XsRing {
    fn read_u32(&self, off: usize) -> u32 {
        self.page.read_u32(off)
    }

    fn write_u32(&self, off: usize, value: u32) {
        self.page.write_u32(off, value)
    }
}

/// This domain's own xenstore page and event channel (`HVM_PARAM_STORE_PFN`,
/// `HVM_PARAM_STORE_EVTCHN`): from Xen 4.19, `init-xenstore-domain` gives the xenstore domain a
/// connection to itself (the port's remote end is this domain; the page is zeroed by the tool
/// and granted at ref 1 to this domain). Xen 4.17 leaves the channel 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnStore {
    /// The page's frame (identity mapped below 4 GiB).
    pub pfn: u64,
    /// The client's port (allocated unbound for this domain, remote = this domain).
    pub port: u32,
}

impl OwnStore {
    /// The store page and channel the toolstack gave this domain, if any: `Err` carries the
    /// raw `(pfn, port)` when they are absent or unusable.
    pub fn find() -> Result<OwnStore, (u64, u64)> {
        let pfn = super::events::hvm_param(super::abi::HVM_PARAM_STORE_PFN).unwrap_or(0);
        let port = super::events::hvm_param(super::abi::HVM_PARAM_STORE_EVTCHN).unwrap_or(0);
        if pfn == 0 || pfn >= (1 << 20) || port == 0 || port >= u64::from(super::events::MAX_PORTS)
        {
            return Err((pfn, port));
        }
        Ok(OwnStore {
            pfn,
            port: port as u32,
        })
    }

    fn page(&self) -> SharedPage {
        // SAFETY: the store page is a special page of this domain below 4 GiB (identity
        // mapped, checked by `find`), reserved in the memory map and never part of the heap;
        // it stays ours for the domain's life and only volatile copies touch it.
        unsafe { SharedPage::new(self.pfn << 12) }
    }

    /// The server's view of the page.
    pub fn server(&self) -> XsRing {
        XsRing::new(self.page())
    }

    /// The client's view of the page.
    pub fn client(&self) -> XsClientRing {
        XsClientRing {
            page: self.page(),
            port: self.port,
        }
    }
}

/// The client side of a xenstore ring: a domain's own page (the test guest uses it).
#[derive(Debug)]
pub struct XsClientRing {
    page: SharedPage,
    /// The port to notify xenstored on.
    pub port: u32,
}

impl XsClientRing {
    #[cfg(feature = "fault-injection")]
    /// This domain's own xenstore ring, from `HVM_PARAM_STORE_PFN`/`_EVTCHN`; `None` when the
    /// toolstack gave us none.
    pub fn own() -> Option<XsClientRing> {
        OwnStore::find().ok().map(|s| s.client())
    }

    /// Our requests (a client writes them).
    pub fn requests(&self) -> RingOut<'_> {
        RingOut::new(&self.page, Side::Requests)
    }

    /// The server's responses (a client reads them).
    pub fn responses(&self) -> RingIn<'_> {
        RingIn::new(&self.page, Side::Responses)
    }

    /// Writes a request (as far as it fits); returns the bytes written (0 when the ring is
    /// full or broken).
    pub fn send(&self, data: &[u8]) -> usize {
        self.requests().write(data).unwrap_or(0)
    }

    /// Takes the response bytes available into `out`.
    pub fn receive(&self, out: &mut alloc::vec::Vec<u8>) {
        let mut rx = self.responses();
        if let Ok(bytes) = rx.fill_buf() {
            let n = bytes.len();
            out.extend_from_slice(bytes);
            rx.consume(n);
        }
    }

    #[cfg(feature = "fault-injection")]
    /// Overwrites the request producer index (the misbehaving-guest test).
    pub fn corrupt_req_prod(&self, value: u32) {
        self.page.write_u32(layout::REQ_PROD_OFFSET, value);
    }

    #[cfg(feature = "fault-injection")]
    /// The current request consumer index.
    pub fn req_cons(&self) -> u32 {
        self.page.read_u32(layout::REQ_CONS_OFFSET)
    }

    #[cfg(feature = "fault-injection")]
    /// The ring's `error` field.
    pub fn error(&self) -> u32 {
        self.page.read_u32(layout::ERROR_OFFSET)
    }
}
