//! The live-update hand-over, new image's side: find the state and the old image in the
//! start info, check them, restore the engine and reconnect every ring, or else jump back
//! into the old image with the same state (rollback), or, when there is no way back, stop
//! loudly: a xenstore that serves an empty store is worse than a dead one.
//!
//! The rollback is armed as soon as the old image's module is found, and stays armed until
//! the restore is complete; a panic in between (an allocation failure included) rolls back
//! too ([`on_panic`]). Rolling back closes every port this image bound and unmaps every ring
//! it mapped, so the old image can take them again.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use xsstate::engine::DomainState;
use xsstate::handover;
use xsstate::ids::{ConnId, DomId};
use xsstate::image::Layout;
use xsstate::Engine;

use super::conns::XenConn;
use super::tags::{RollbackTag, StateTag};
use crate::arch::handover::{ModuleSpec, RawHandover};
use crate::kprintln;
use crate::xen::start_info::{self, BootInfo, ModuleMemory};
use crate::xen::{events, gnttab};

/// The modules a live update left in the start info.
pub struct Found {
    /// The hand-over buffer.
    pub state: ModuleMemory,
    /// What its command line says.
    pub tag: StateTag,
    /// The old image, when it can be jumped back into.
    pub rollback: Option<(ModuleMemory, RollbackTag)>,
}

/// What a rollback needs, kept without the heap so that a panic can use it.
struct Plan {
    blob_paddr: u64,
    blob_len: u64,
    entry32: u32,
    cmdline: heapless::String<1024>,
    state_paddr: u64,
    state_len: u64,
    tag: StateTag,
}

static PLAN: spin::Mutex<Option<Plan>> = spin::Mutex::new(None);

/// Finds the state module (and the rollback module) in the start info. `Ok(None)`: a fresh
/// boot. Arms the rollback as soon as the old image is found.
pub fn find(info: &BootInfo) -> Result<Option<Found>, String> {
    let mut state = None;
    let mut rollback = None;
    for (i, m) in info.modules.iter().enumerate() {
        let c = start_info::read_cstr(m.cmdline_paddr);
        if let Some(t) = RollbackTag::parse(&c) {
            let mem = ModuleMemory::claim(i, m)
                .ok_or_else(|| String::from("the old image's module is outside RAM"))?;
            rollback = Some((mem, t));
        } else if let Some(t) = StateTag::parse(&c) {
            let mem = ModuleMemory::claim(i, m)
                .ok_or_else(|| String::from("the state module is outside RAM"))?;
            state = Some((mem, t));
        } else if c.starts_with(super::tags::STATE_TAG) {
            return Err(format!("a state module this image cannot read: `{c}`"));
        }
    }
    let Some((state, tag)) = state else {
        return match rollback {
            Some(_) => Err(String::from("an old image's module but no state module")),
            None => Ok(None),
        };
    };
    if let Some((mem, t)) = &rollback {
        arm(mem, t, &state, &tag);
    }
    if state.is_empty() || tag.bytes != state.len() as u64 {
        return Err(format!(
            "state module is {} bytes, its tag says {}",
            state.len(),
            tag.bytes
        ));
    }
    Ok(Some(Found {
        state,
        tag,
        rollback,
    }))
}

fn arm(mem: &ModuleMemory, t: &RollbackTag, state: &ModuleMemory, tag: &StateTag) {
    let mut cmdline = heapless::String::new();
    let _ = cmdline.push_str(t.cmdline.get(..1024).unwrap_or(&t.cmdline));
    let plan = Plan {
        blob_paddr: mem.paddr(),
        blob_len: mem.len() as u64,
        entry32: t.entry32,
        cmdline,
        state_paddr: state.paddr(),
        state_len: state.len() as u64,
        tag: tag.clone(),
    };
    if let Some(mut p) = PLAN.try_lock() {
        *p = Some(plan);
    }
}

fn disarm() {
    if let Some(mut p) = PLAN.try_lock() {
        *p = None;
    }
}

/// Checks the state's grant entries: every page granted read-only to the tag's domain, at
/// the frame where the module lies.
fn check_grants(mem: &ModuleMemory, tag: &StateTag) -> Result<(), String> {
    let first = mem.paddr() >> 12;
    let pages = ((mem.paddr() + mem.len() as u64 + 4095) >> 12) - first;
    if u64::from(tag.pages) != pages || tag.gref == 0 {
        return Err(format!(
            "the state covers {pages} pages, its tag grants {} from {}",
            tag.pages, tag.gref
        ));
    }
    let last = tag.gref.saturating_add(tag.pages);
    if last > gnttab::own_capacity() {
        let frames = last.div_ceil(gnttab::ENTRIES_PER_FRAME);
        gnttab::grow_own(frames, super::layout::GRANT_FRAMES_MAX)
            .map_err(|e| format!("mapping {frames} grant frames: {}", e.0))?;
    }
    for i in 0..tag.pages {
        let gref = tag.gref + i;
        let e = gnttab::entry_full(gref).ok_or_else(|| format!("grant entry {gref} unreadable"))?;
        let want = first + u64::from(i);
        if u64::from(e.frame) != want || e.flags != gnttab::READONLY_GRANT || e.domid != tag.domid {
            return Err(format!(
                "grant entry {gref} is frame {:#x} flags {:#x} domain {}, not frame {want:#x} \
                 read-only to domain {}",
                e.frame, e.flags, e.domid, tag.domid
            ));
        }
    }
    Ok(())
}

impl super::Stub {
    /// Restores the engine from the state module and reconnects every ring; on success the
    /// rollback is disarmed and the modules' memory goes to the heap. An error is the reason
    /// to roll back (or to stop).
    pub(super) fn inherit(&mut self, found: Found) -> Result<(), String> {
        self.timeline.restore_start = crate::arch::cpu::rdtsc();
        check_grants(&found.state, &found.tag)?;
        super::timeline::mark("check-grants");
        let d = handover::decode(found.state.bytes()).map_err(|e| format!("state buffer: {e}"))?;
        super::timeline::mark("decode");
        // A version-1 buffer (the previous release) has no stamps.
        for (slot, t) in self.timeline.old.iter_mut().zip(d.extras.tsc.iter()) {
            *slot = *t;
        }
        self.timeline.jump = found.tag.jump_tsc;
        super::fault::before_restore()?;
        // The boot's configuration (this Xen's rules, the command line's limits); the state's
        // quotas then replace those, so that a `xenstore-control quota set` survives.
        let config = self.engine.config().clone();
        let mut engine = Engine::restore_bytes(d.image, Layout::Seed, config)
            .map_err(|e| format!("state image: {e}"))?;
        engine.set_time_ms(self.engine_time_ms());
        engine.set_memory(alloc::sync::Arc::new(super::memory::KernelMemory));
        engine.set_domain_oracle(alloc::sync::Arc::new(self.queries));
        let own = super::handover::own_domid(&engine);
        if own != found.tag.domid && own != crate::xen::abi::DOMID_SELF {
            return Err(format!(
                "the state was granted to domain {}, this is domain {own}",
                found.tag.domid
            ));
        }
        self.engine = engine;
        self.timeline.restored = crate::arch::cpu::rdtsc();
        let rolled_back = found.tag.rollback.clone();
        match &rolled_back {
            Some(_) => {
                self.live_updates = d.extras.live_updates.saturating_sub(1);
                self.rollbacks = d.extras.rollbacks + 1;
            }
            None => {
                self.live_updates = d.extras.live_updates;
                self.rollbacks = d.extras.rollbacks;
            }
        }
        let kept = super::keep::Kept::decode(&d.extras.shell).map_err(|e| format!("{e}"))?;
        let adopted = self.reconnect(kept.as_ref())?;
        super::timeline::mark("reconnect");
        for (id, bytes) in &d.extras.pending_input {
            if let Err(f) = self.engine.receive(*id, bytes) {
                kprintln!("xsstub: pending input of {id}: {f}");
            }
        }
        if let Some(r) = &d.extras.reply {
            let payload = match &rolled_back {
                None => r.payload.clone(),
                Some(reason) => {
                    let mut p = format!(
                        "live-update: the new image could not take over ({reason}); rolled \
                         back, the previous image serves the same store"
                    )
                    .into_bytes();
                    p.push(0);
                    p
                }
            };
            self.engine.reply(
                r.conn,
                xsstate::wire::MsgType::Control,
                r.req_id,
                r.tx_id,
                payload,
            );
        }
        // A ring mapped again is news to its domain; an adopted one never went away (the
        // first pump writes and signals whatever is owed).
        let mut sorted = adopted.clone();
        sorted.sort_unstable();
        for (id, x) in &self.conns {
            if sorted.binary_search(id).is_err() {
                x.notify();
            }
        }
        if !self.conns.values().any(XenConn::is_own) {
            // The previous image did not serve our own connection: do it now.
            self.connect_own(false);
        }
        self.timeline.rings = crate::arch::cpu::rdtsc();
        // Done: no way back is needed any more; what was adopted is this image's own now.
        disarm();
        self.own_adopted(&adopted, kept.as_ref());
        super::timeline::mark("own-adopted");
        super::handover::revoke(found.tag.gref, found.tag.pages);
        super::timeline::mark("revoke");
        self.inherited_log = d.extras.log.clone();
        self.inherited_nodes = self.engine.store().len();
        self.inherited_bytes = found.state.len();
        self.rolled_back = rolled_back;
        drop(d);
        for mem in core::iter::once(found.state).chain(found.rollback.map(|(m, _)| m)) {
            let (at, len) = (mem.paddr(), mem.len());
            if let Err(e) = mem.into_heap() {
                kprintln!("xsstub: module {at:#x}+{len:#x} not returned to the heap: {e:?}");
            }
        }
        Ok(())
    }

    /// Takes every ring and port of the restored connections: adopted as the old image kept
    /// them (version-3 buffers), or mapped and bound again. dom0's must work; a guest whose
    /// ring cannot be mapped again is taken as gone; a kept ring that cannot be adopted is a
    /// reason to roll back. Returns the connections adopted.
    fn reconnect(
        &mut self,
        kept: Option<&super::keep::Kept>,
    ) -> Result<alloc::vec::Vec<ConnId>, String> {
        match kept {
            Some(k) => {
                self.dom_exc_port = k.dom_exc_port;
                self.timer_port = k.timer_port;
            }
            None => {
                self.dom_exc_port = events::bind_virq(xen_sys::VIRQ_DOM_EXC)
                    .map_err(|e| format!("binding VIRQ_DOM_EXC: {}", e.0))?;
                self.timer_port = events::bind_virq(xen_sys::VIRQ_TIMER)
                    .map_err(|e| format!("binding VIRQ_TIMER: {}", e.0))?;
            }
        }
        let mut rings: alloc::vec::Vec<(ConnId, DomId, u32, Option<super::keep::KeptRing>)> = self
            .engine
            .connections()
            .filter_map(|c| match c.kind {
                xsstate::conn::ConnKind::Ring { port, .. } => Some((
                    c.id,
                    c.domid,
                    port.0,
                    kept.and_then(|k| k.ring(c.id.0)).copied(),
                )),
                xsstate::conn::ConnKind::Socket { .. } => None,
            })
            .collect();
        // Frames in increasing order: the pool takes them in one pass.
        rings.sort_unstable_by_key(|r| r.3.map_or(u64::MAX, |k| k.gfn));
        let mut adopted = alloc::vec::Vec::new();
        for (id, domid, port, k) in rings {
            let features = self.features_of(domid);
            if domid == self.own_domid {
                // Our own connection is never kept (its port was closed): bound again.
                self.restore_own(id, port, features);
                continue;
            }
            if let Some(k) = k {
                if k.domid != domid.0 || k.remote_port != port {
                    return Err(format!(
                        "kept ring of connection {id} is domain {} port {}, the state says                          domain {} port {port}",
                        k.domid, k.remote_port, domid.0
                    ));
                }
                let x = XenConn::adopt(&mut self.gfns, domid, &k, features).ok_or_else(|| {
                    format!(
                        "kept ring of domain {} at frame {:#x} is outside the mapping window                          or listed twice",
                        domid.0, k.gfn
                    )
                })?;
                self.by_port.insert(x.local_port, id);
                self.conns.insert(id, x);
                adopted.push(id);
                continue;
            }
            match XenConn::open(&mut self.gfns, domid, port, features) {
                Ok(x) => {
                    self.by_port.insert(x.local_port, id);
                    self.conns.insert(id, x);
                }
                Err((what, e)) if domid == DomId::DOM0 => {
                    return Err(format!("dom0's connection: {what} failed ({})", e.0));
                }
                Err((what, e)) => {
                    kprintln!(
                        "xsstub: domain {}: {what} failed after the update ({})",
                        domid.0,
                        e.0
                    );
                    self.engine.domain_state(domid, DomainState::Dead);
                }
            }
        }
        Ok(adopted)
    }

    /// Makes what was adopted this image's own (a later rollback would release it), and
    /// releases what was kept for a connection the state no longer has.
    fn own_adopted(&mut self, adopted: &[ConnId], kept: Option<&super::keep::Kept>) {
        let Some(k) = kept else {
            return;
        };
        events::own_adopted(k.dom_exc_port);
        events::own_adopted(k.timer_port);
        for id in adopted {
            if let Some(x) = self.conns.get(id) {
                x.take_ownership();
            }
        }
        let mut sorted = adopted.to_vec();
        sorted.sort_unstable();
        for r in &k.rings {
            if sorted.binary_search(&ConnId(r.conn)).is_err() {
                kprintln!(
                    "xsstub: kept ring of domain {} (connection {}) has no connection:                      released",
                    r.domid,
                    r.conn
                );
                if let Some(x) = XenConn::adopt(&mut self.gfns, DomId(r.domid), r, 0) {
                    x.take_ownership();
                    x.close(&mut self.gfns);
                }
            }
        }
    }
}

/// Whether a rollback is armed (a live update is being taken over).
pub fn armed() -> bool {
    PLAN.try_lock().is_some_and(|p| p.is_some())
}

/// The update cannot be taken over: roll back when the old image is there, else stop.
pub fn fail(reason: &str) -> ! {
    if armed() {
        rollback(reason)
    }
    fatal(reason)
}

/// Stops the domain with the reason on the console: the toolstack sees a dead xenstore, not
/// one serving a wrong store.
pub fn fatal(reason: &str) -> ! {
    crate::console::flush_deferred();
    kprintln!(
        "xsstub: FATAL: the state handed over by a live update cannot be used, and there is \
         no image to roll back to: {reason}. Stopping rather than serving an empty store."
    );
    crate::xen::sched::shutdown(true)
}

/// Jumps back into the old image with the same state and the reason in its tag.
fn rollback(reason: &str) -> ! {
    let plan = PLAN.try_lock().and_then(|mut p| p.take());
    let Some(plan) = plan else { fatal(reason) };
    crate::console::flush_deferred();
    kprintln!("xsstub: live update failed: {reason}; rolling back to the previous image");
    let ports = events::close_all_bound();
    let maps = gnttab::unmap_all();
    kprintln!("xsstub: released {ports} ports and {maps} ring mappings");
    let mut tag: heapless::String<768> = heapless::String::new();
    let t = &plan.tag;
    let _ = write!(
        tag,
        "{} v2 bytes={} sum={:016x} gref={} pages={} domid={} jump_tsc={} rollback=1 reason=",
        super::tags::STATE_TAG,
        t.bytes,
        t.sum,
        t.gref,
        t.pages,
        t.domid,
        crate::arch::cpu::rdtsc()
    );
    for c in reason.chars() {
        let c = if c.is_ascii_graphic() || c == ' ' {
            c
        } else {
            '?'
        };
        if tag.push(c).is_err() {
            break;
        }
    }
    let modules = [ModuleSpec {
        paddr: plan.state_paddr,
        size: plan.state_len,
        cmdline: tag.as_bytes(),
    }];
    let e = crate::arch::handover::jump_raw(&RawHandover {
        blob_paddr: plan.blob_paddr,
        blob_len: plan.blob_len,
        dest_paddr: crate::arch::layout::IMAGE_BASE,
        entry32: plan.entry32,
        cmdline: plan.cmdline.as_bytes(),
        modules: &modules,
    });
    let mut why: heapless::String<256> = heapless::String::new();
    let _ = write!(why, "{reason}; and the rollback was refused: {e}");
    fatal(&why)
}

/// From the panic handler: if a rollback is armed, take it with the panic as the reason.
pub fn on_panic(info: &core::panic::PanicInfo<'_>) {
    if !armed() {
        return;
    }
    let mut why: heapless::String<300> = heapless::String::new();
    let _ = write!(why, "panic while taking over: {info}");
    rollback(&why)
}
