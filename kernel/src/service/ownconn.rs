//! Our own xenstore connection (Xen 4.19+) and its boot self-test, and the one line that says
//! what the start info and HVM parameters gave this domain.
//!
//! From Xen 4.19, `init-xenstore-domain` allocates the xenstore domain a xenstore event channel
//! whose remote end is itself (`HVM_PARAM_STORE_EVTCHN`) beside its store page
//! (`HVM_PARAM_STORE_PFN`, zeroed by the tool), so that it can be a xenstore client of itself
//! (C xenstored's Mini-OS build uses it for its 9pfs frontend). We serve it as any domain's
//! connection, but the ring is our own page (no grant map) and we bind the other end of our
//! own channel. Nothing in dom0 uses it; the self-test at boot proves it works: a request
//! written into the ring as a client does, the event on our server port, the reply read back
//! after the event on the client port.

use alloc::string::String;
use alloc::vec::Vec;

use xsstate::ids::{ConnId, DomId, EvtchnPort, TxId};
use xsstate::wire::{decode_all, Message, MsgType};

use super::conns::XenConn;
use super::Stub;
use crate::kprintln;
use crate::xen::abi::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use crate::xen::ring::OwnStore;
use crate::xen::start_info::BootInfo;
use crate::xen::{events, time};

/// The self-test's request id.
const SELFTEST_REQ_ID: u32 = 0x5e1f_7e57;
/// How long each step of the self-test may take.
const SELFTEST_STEP_NS: u64 = 1_000_000_000;

/// Logs what the start info and the HVM parameters give this domain.
pub fn log_boot_info(info: &BootInfo) {
    let p = |i| events::hvm_param(i).unwrap_or(u64::MAX);
    kprintln!(
        "xsstub: start info v{} flags {:#x}, {} modules, rsdp {:#x}, {} memory map entries; \
         HVM params: store pfn {:#x} evtchn {}, console pfn {:#x} evtchn {}",
        info.version,
        info.flags,
        info.modules.len(),
        info.rsdp_paddr,
        info.memmap_entries,
        p(HVM_PARAM_STORE_PFN),
        p(HVM_PARAM_STORE_EVTCHN),
        p(HVM_PARAM_CONSOLE_PFN),
        p(HVM_PARAM_CONSOLE_EVTCHN),
    );
}

/// Waits until `port` is pending (taking it from the record) or `deadline_ns` passes.
fn await_port(port: u32, deadline_ns: u64) -> bool {
    loop {
        if events::take_port(port) {
            return true;
        }
        if time::now_ns() >= deadline_ns {
            return false;
        }
        if events::wait(&[port], deadline_ns).is_err() {
            core::hint::spin_loop();
        }
    }
}

impl Stub {
    /// Serves our own connection if the toolstack gave us one; with `selftest`, proves it
    /// with one request. Logs one `own connection` line either way.
    pub(super) fn connect_own(&mut self, selftest: bool) {
        let own = self.own_domid;
        let store = match OwnStore::find() {
            Ok(s) => s,
            Err((pfn, port)) => {
                kprintln!(
                    "xsstub: own connection: none (HVM_PARAM_STORE_EVTCHN {port}, store pfn \
                     {pfn:#x}): this Xen gives the xenstore domain no xenstore channel of its own"
                );
                return;
            }
        };
        let features = self.features_of(own);
        let mut x = match XenConn::own(own, &store, features) {
            Ok(x) => x,
            Err(e) => {
                kprintln!(
                    "xsstub: own connection: binding port {} of domain {} failed ({})",
                    store.port,
                    own.0,
                    e.0
                );
                return;
            }
        };
        // Our first introduction: the tool zeroed the page; features as for any domain.
        x.introduce(Some(features));
        let local = x.local_port;
        let id = self
            .engine
            .connect_domain(own, EvtchnPort(store.port), store.pfn);
        self.by_port.insert(local, id);
        self.conns.insert(id, x);
        if selftest {
            self.own_check(id, local, &store, "connected");
        } else {
            kprintln!(
                "xsstub: own connection: domain {}, port {} <-> {local}: connected",
                own.0,
                store.port
            );
        }
    }

    /// Runs the self-test of a restored own connection once the service is back.
    pub(super) fn own_check_after_update(&mut self) {
        if !self.first_served {
            return;
        }
        if let Some((id, local, store)) = self.own_check_due.take() {
            self.own_check(id, local, &store, "restored");
        }
    }

    /// Runs the self-test on our own connection and logs its one line.
    fn own_check(&mut self, id: ConnId, local: u32, store: &OwnStore, how: &str) {
        let what = alloc::format!(
            "domain {}, port {} <-> {local}, ring pfn {:#x}",
            self.own_domid.0,
            store.port,
            store.pfn
        );
        let t0 = time::now_ns();
        match self.own_selftest(id, local, store) {
            Ok(reply) => kprintln!(
                "xsstub: own connection: {what}: {how}: GET_DOMAIN_PATH {} -> {reply} in {} us ok",
                self.own_domid.0,
                time::now_ns().saturating_sub(t0) / 1000
            ),
            Err(e) => kprintln!("xsstub: own connection: {what}: {how}: self-test FAILED: {e}"),
        }
    }

    /// One request to ourselves through the ring, as a client sends it; the reply's text.
    fn own_selftest(&mut self, id: ConnId, local: u32, store: &OwnStore) -> Result<String, String> {
        let client = store.client();
        let mut payload = alloc::format!("{}", self.own_domid.0).into_bytes();
        payload.push(0);
        let request =
            Message::new(MsgType::GetDomainPath, SELFTEST_REQ_ID, TxId::NONE, payload).encode();
        if client.send(&request) != request.len() {
            return Err("the request did not fit in the ring".into());
        }
        events::notify(client.port).map_err(|e| alloc::format!("notify failed ({})", e.0))?;
        if !await_port(local, time::now_ns() + SELFTEST_STEP_NS) {
            return Err(alloc::format!("no event on our server port {local}"));
        }
        let conn = self.conns.get_mut(&id).ok_or("the connection vanished")?;
        let outcome = conn.pump(&mut self.engine, id, self.trace, super::GUEST_BUDGET);
        if !outcome.served {
            return Err("the server took no request from the ring".into());
        }
        if !await_port(client.port, time::now_ns() + SELFTEST_STEP_NS) {
            return Err(alloc::format!(
                "no reply event on our client port {}",
                client.port
            ));
        }
        let mut got = Vec::new();
        client.receive(&mut got);
        let (msgs, _) = decode_all(&got).map_err(|e| alloc::format!("reply: {e}"))?;
        let reply = match msgs.as_slice() {
            [m] => m,
            other => return Err(alloc::format!("{} replies", other.len())),
        };
        let text =
            String::from_utf8_lossy(reply.payload.strip_suffix(b"\0").unwrap_or(&[])).into_owned();
        let want = alloc::format!("/local/domain/{}", self.own_domid.0);
        if reply.msg_type != MsgType::GetDomainPath as u32
            || reply.req_id != SELFTEST_REQ_ID
            || text != want
        {
            return Err(alloc::format!(
                "reply type {} id {:#x} `{text}`, expected `{want}`",
                reply.msg_type,
                reply.req_id
            ));
        }
        Ok(text)
    }

    /// Our own connection carried over by a live update: the ring is our own page again and
    /// the other end of our channel is bound again.
    pub(super) fn restore_own(&mut self, id: ConnId, port: u32, features: u32) {
        let own: DomId = self.own_domid;
        let store = match OwnStore::find() {
            Ok(s) if s.port == port => s,
            Ok(s) => {
                kprintln!(
                    "xsstub: own connection: the state names port {port}, Xen port {}; dropped",
                    s.port
                );
                self.engine.disconnect(id);
                return;
            }
            Err(_) => {
                kprintln!("xsstub: own connection: in the state but not in Xen's; dropped");
                self.engine.disconnect(id);
                return;
            }
        };
        match XenConn::own(own, &store, features) {
            Ok(x) => {
                let local = x.local_port;
                self.by_port.insert(local, id);
                self.conns.insert(id, x);
                // Checked once the first request after the jump is served (the check must
                // not add to the update's downtime).
                self.own_check_due = Some((id, local, store));
            }
            Err(e) => {
                kprintln!(
                    "xsstub: own connection: rebinding failed after the update ({})",
                    e.0
                );
                self.engine.disconnect(id);
            }
        }
    }
}
