//! The Xen side of a connection: its mapped ring, its event channel, and moving bytes.

use alloc::vec::Vec;

use xsstate::engine::Engine;
use xsstate::error::Fault;
use xsstate::ids::{ConnId, DomId};

use crate::kprintln;
use crate::xen::events::{self, XenError};
use crate::xen::gnttab::{self, Mapping};
use embedded_io::{BufRead, ReadReady, Write, WriteReady};

use crate::xen::ring::{OwnStore, XsRing};

/// Frames of the hole that hold foreign mappings, handed out and taken back.
#[derive(Debug)]
pub struct GfnPool {
    next: u64,
    end: u64,
    capacity: u64,
    free: Vec<u64>,
}

impl GfnPool {
    /// A pool of `pages` frames from `first`.
    pub fn new(first: u64, pages: u64) -> GfnPool {
        GfnPool {
            next: first,
            end: first + pages,
            capacity: pages,
            free: Vec::new(),
        }
    }

    /// A free frame, if any is left.
    pub fn take(&mut self) -> Option<u64> {
        if let Some(g) = self.free.pop() {
            return Some(g);
        }
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Returns a frame.
    pub fn give(&mut self, gfn: u64) {
        self.free.push(gfn);
    }

    /// The pool's frames.
    pub fn window(&self) -> core::ops::Range<u64> {
        let first = self.end - self.capacity;
        first..self.end
    }

    /// Takes frame `gfn` out of the pool (a mapping kept across a live update); false when
    /// it is outside the pool or taken already. Cheapest in increasing order.
    pub fn claim(&mut self, gfn: u64) -> bool {
        if !self.window().contains(&gfn) {
            return false;
        }
        if gfn >= self.next {
            self.free.extend(self.next..gfn);
            self.next = gfn + 1;
            return true;
        }
        match self.free.iter().rposition(|&g| g == gfn) {
            Some(i) => {
                self.free.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

/// What one pump of a connection did.
#[derive(Clone, Copy, Debug, Default)]
pub struct PumpOutcome {
    /// Bytes moved in either direction.
    pub moved: bool,
    /// At least one request was taken in.
    pub served: bool,
    /// Output was written to the ring.
    pub replied: bool,
    /// The TSC once the output was in the ring, before its notification (a notification
    /// may run the woken domain at once: what follows is not ours to time). 0: none.
    pub replied_tsc: u64,
    /// The budget ran out with requests still waiting in the ring.
    pub more: bool,
}

/// A domain's ring connection.
#[derive(Debug)]
pub struct XenConn {
    /// The domain.
    pub domid: DomId,
    /// Our port.
    pub local_port: u32,
    /// The domain's port.
    pub remote_port: u32,
    ring: XsRing,
    /// The grant mapping of the domain's ring; `None` for our own store page.
    mapping: Option<Mapping>,
    /// The frame of our own store page (with no mapping).
    own_pfn: Option<u64>,
    /// The domain's features (`XENSTORE_SERVER_FEATURE_*`): the ring's `error` field is
    /// written only if they include the error feature.
    features: u32,
    /// A stream violation stopped this connection; it is ignored from now on.
    broken: bool,
}

impl XenConn {
    /// Maps the domain's grant ref 1 and binds to its port; the ring is left as it is (dom0's
    /// requests may already wait in it; an introduction resets it with [`XenConn::introduce`]).
    pub fn open(
        gfns: &mut GfnPool,
        domid: DomId,
        remote_port: u32,
        features: u32,
    ) -> Result<XenConn, (&'static str, XenError)> {
        let gfn = gfns.take().ok_or(("frame for the ring", XenError(-12)))?;
        let mapping = match gnttab::map(domid.0, crate::xen::abi::GNTTAB_RESERVED_XENSTORE, gfn) {
            Ok(m) => m,
            Err(e) => {
                gfns.give(gfn);
                return Err(("mapping the ring", e));
            }
        };
        let local_port = match events::bind_interdomain(domid.0, remote_port) {
            Ok(p) => p,
            Err(e) => {
                if gnttab::unmap(mapping).is_ok() {
                    gfns.give(gfn);
                }
                return Err(("binding the event channel", e));
            }
        };
        Ok(XenConn {
            domid,
            local_port,
            remote_port,
            ring: XsRing::new(mapping.page()),
            mapping: Some(mapping),
            own_pfn: None,
            features,
            broken: false,
        })
    }

    /// Takes over a ring a previous image kept mapped, with its bound port (a live update);
    /// `None` when the frame is not a free one of the pool.
    pub fn adopt(
        gfns: &mut GfnPool,
        domid: DomId,
        k: &super::keep::KeptRing,
        features: u32,
    ) -> Option<XenConn> {
        let mapping = Mapping::adopt(k.gfn, k.handle, gfns.window())?;
        if !gfns.claim(k.gfn) {
            return None;
        }
        let ring = XsRing::new(mapping.page());
        Some(XenConn {
            domid,
            local_port: k.local_port,
            remote_port: k.remote_port,
            ring,
            mapping: Some(mapping),
            own_pfn: None,
            features,
            broken: false,
        })
    }

    /// Our own connection (Xen 4.19+): the server side of our own store page, bound to the
    /// other end of our store channel (`own` is this domain's id).
    pub fn own(own: DomId, store: &OwnStore, features: u32) -> Result<XenConn, XenError> {
        let local_port = events::bind_interdomain(own.0, store.port)?;
        Ok(XenConn {
            domid: own,
            local_port,
            remote_port: store.port,
            ring: store.server(),
            mapping: None,
            own_pfn: Some(store.pfn),
            features,
            broken: false,
        })
    }

    /// Records an adopted ring and port as this image's own (the update is complete: from
    /// now on a rollback would release them).
    pub fn take_ownership(&self) {
        if let Some(m) = &self.mapping {
            m.own();
        }
        events::own_adopted(self.local_port);
    }

    /// What a live update keeps of this connection (it stays mapped and bound).
    pub fn kept(&self, conn: ConnId) -> Option<super::keep::KeptRing> {
        let m = self.mapping.as_ref()?;
        Some(super::keep::KeptRing {
            conn: conn.0,
            domid: self.domid.0,
            local_port: self.local_port,
            remote_port: self.remote_port,
            handle: m.handle(),
            gfn: m.gfn,
        })
    }

    /// The frame the ring is at (the mapping's, or our own store page's).
    pub fn gfn(&self) -> u64 {
        self.mapping
            .as_ref()
            .map(|m| m.gfn)
            .or(self.own_pfn)
            .unwrap_or(0)
    }

    /// Writes `server_features` only (dom0's ring, whose waiting requests must stay).
    pub fn advertise(&self) {
        self.ring.set_server_features(self.features);
    }

    /// Whether this is our own connection (no grant mapping).
    pub fn is_own(&self) -> bool {
        self.own_pfn.is_some()
    }

    /// An introduction as C xenstored does it: ring indices to 0, at the first one
    /// (`first`: the domain's features) `server_features`, and a reconnection the guest asked
    /// for completed and notified.
    pub fn introduce(&mut self, first: Option<u32>) {
        if let Some(f) = first {
            self.features = f;
        }
        if self.ring.introduce(first) {
            self.notify();
        }
    }

    /// Signals the domain.
    pub fn notify(&self) {
        let _ = events::notify(self.local_port);
    }

    /// Re-introduce: bind the (possibly new) port and reset the ring as an introduction
    /// does; a connection stopped by an error is served again (its `error` field cleared where
    /// the domain has the error feature).
    pub fn rebind(&mut self, domid: DomId, remote_port: u32) -> Result<(), XenError> {
        let _ = events::close(self.local_port);
        self.local_port = events::bind_interdomain(domid.0, remote_port)?;
        self.remote_port = remote_port;
        self.broken = false;
        self.ring
            .set_error(self.features, xsstate::ring::XENSTORE_ERROR_NONE);
        self.introduce(None);
        Ok(())
    }

    /// Unbinds and unmaps (release or death).
    pub fn close(mut self, gfns: &mut GfnPool) {
        let _ = events::close(self.local_port);
        if let Some(m) = self.mapping.take() {
            let gfn = m.gfn;
            match gnttab::unmap(m) {
                Ok(()) => gfns.give(gfn),
                Err(e) => kprintln!("xsstub: unmap of frame {gfn:#x} failed ({})", e.0),
            }
        }
    }

    /// Stops serving this ring after a stream violation: the error field tells the guest.
    fn fail(&mut self, engine: &mut Engine, id: ConnId, fault: Fault, already_faulted: bool) {
        self.broken = true;
        self.ring.set_error(self.features, fault.ring_error());
        if !already_faulted {
            engine.fault(id, fault);
        }
        kprintln!(
            "xsstub: domain {}: connection faulted: {fault}",
            self.domid.0
        );
        self.notify();
    }

    /// Moves at most `budget` requests into the engine and every reply out, as far as both
    /// sides allow.
    pub fn pump(
        &mut self,
        engine: &mut Engine,
        id: ConnId,
        trace: bool,
        budget: usize,
    ) -> PumpOutcome {
        let mut outcome = PumpOutcome::default();
        if self.broken {
            return outcome;
        }
        let mut notify = false;
        // Requests: at most `budget` messages, as far as the engine takes them.
        let mut rx = self.ring.requests();
        let mut left = budget;
        let mut fault = None;
        while engine.can_receive(id) {
            if left == 0 {
                outcome.more = rx.read_ready().unwrap_or(false);
                break;
            }
            let bytes = match rx.fill_buf() {
                Ok([]) => break,
                Ok(b) => b,
                Err(_) => {
                    fault = Some((Fault::RingIndex, false));
                    break;
                }
            };
            let n = bytes.len();
            match engine.receive_at_most(id, bytes, left) {
                Ok((0, _)) => break,
                Ok((used, messages)) => {
                    left = left.saturating_sub(messages);
                    if trace {
                        kprintln!("xsstub: domain {}: {used} request bytes", self.domid.0);
                    }
                    rx.consume(used);
                    outcome.moved = true;
                    outcome.served = true;
                    notify = true;
                    if used < n && left > 0 {
                        break;
                    }
                }
                Err(f) => {
                    fault = Some((f, true));
                    break;
                }
            }
        }
        // Replies: as much as the ring takes.
        let mut tx = self.ring.responses();
        while fault.is_none() {
            let out = engine.pending_output(id);
            if out.is_empty() {
                break;
            }
            match tx
                .write_ready()
                .and_then(|ready| if ready { tx.write(out) } else { Ok(0) })
            {
                Ok(0) => break,
                Ok(n) => {
                    engine.consume_output(id, n);
                    outcome.moved = true;
                    outcome.replied = true;
                    notify = true;
                }
                Err(_) => fault = Some((Fault::RingIndex, false)),
            }
        }
        if let Some((f, already_faulted)) = fault {
            self.fail(engine, id, f, already_faulted);
            return outcome;
        }
        if notify {
            if outcome.replied {
                outcome.replied_tsc = crate::arch::cpu::rdtsc();
            }
            self.notify();
        }
        outcome
    }
}
