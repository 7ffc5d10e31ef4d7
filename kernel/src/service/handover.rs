//! The live-update hand-over, old image's side: the state written in place into granted pages
//! above the new image, the old image kept beside it for a rollback, teardown, jump.
//!
//! One walk: [`super::Stub::hand_over`] sizes everything and checks memory, grants and the jump
//! before anything is torn down ([`super::Stub::prepare`]); a failure there leaves this image
//! serving as if nothing happened. Then the rings and ports go and the trampoline enters
//! the new image with two modules: the state (`xsstub-state v2 ...`) and this image as it
//! lies in memory (`xsstub-rollback v1 ...`), which the new image jumps back into if it
//! cannot restore (`inherit`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xsstate::handover::{self, DeferredReply, Extras, Writer};
use xsstate::snapshot::DumpOptions;
use xsstate::{ConnId, TxId};

use super::tags::{RollbackTag, StateTag};
use crate::arch::handover::{Handover, ModuleSpec};
use crate::xen::domctl::DomainQueries;
use crate::xen::{events, gnttab};

/// First grant reference describing the state pages (0 and 1 are the toolstack's).
pub const STATE_GREF_BASE: u32 = 16;

/// The new image made ready before the update starts (when the last chunk arrived), so that
/// the downtime holds only the state: the image flattened as it must lie from its load
/// address, and this image copied for a rollback, both above where either image loads.
#[derive(Debug)]
pub struct Staged {
    /// The new image up to its last byte from the file.
    blob: Vec<u8>,
    /// Its .bss after that, zeroed by the trampoline.
    zero_len: u64,
    /// Its load address and entry points (`entry64` 0: none declared).
    dest: u64,
    entry32: u32,
    entry64: u32,
    /// Where it ends in memory, .bss included.
    load_hi: u64,
    /// This image as it lies in memory.
    rollback: Vec<u8>,
    /// Modules (the state) go at or above this.
    floor: u64,
    /// The hand-over buffer version the new image reads (3 and up: rings and ports are kept
    /// across the jump).
    version: u32,
}

/// Stages a complete, validated image: flattens it and copies this image beside it.
pub fn stage(elf: &[u8]) -> Result<Staged, String> {
    let pvh = xsstate::pvh::parse(elf).map_err(|e| format!("live-update: image refused: {e}"))?;
    let own_end = crate::arch::layout::image_end();
    // Modules must lie above both images: the new one's destination now, this one's on a
    // rollback.
    let floor = (pvh.load_hi.max(own_end) + 4095) & !4095;
    // Only the bytes from the file are kept; the .bss after them is zeroed in place.
    let span = pvh.file_span() as usize;
    let full = pvh.span() as usize;
    let mut blob = Vec::new();
    blob.try_reserve_exact(full)
        .map_err(|_| format!("live-update: no room to stage {full} bytes"))?;
    pvh.flatten(elf, &mut blob)
        .map_err(|e| format!("live-update: image refused: {e}"))?;
    blob.truncate(span);
    blob.shrink_to_fit();
    let rollback_len = crate::arch::layout::loaded_len() as usize;
    let mut rollback = alloc_above(rollback_len, floor).ok_or_else(|| {
        format!("live-update: no room for this image ({rollback_len} bytes) above {floor:#x}")
    })?;
    rollback.resize(rollback_len, 0);
    if !crate::arch::layout::copy_loaded_image(&mut rollback) {
        return Err(String::from("live-update: this image could not be copied"));
    }
    // An image without the note (taken with -F) gets the oldest buffer this image writes.
    let version = pvh
        .compat
        .and_then(|c| c.handover_version())
        .unwrap_or(handover::MIN_WRITE_VERSION);
    Ok(Staged {
        blob,
        zero_len: pvh.span().saturating_sub(pvh.file_span()),
        dest: pvh.load_lo,
        entry32: pvh.entry32,
        entry64: pvh.compat.and_then(|c| c.entry64).unwrap_or(0),
        load_hi: pvh.load_hi,
        rollback,
        floor,
        version,
    })
}

/// Everything the jump needs, built and checked before anything is torn down.
struct Prepared {
    /// The new image as it must lie from its load address, up to its last byte from the
    /// file.
    blob: Vec<u8>,
    /// Its .bss after that, zeroed by the trampoline.
    zero_len: u64,
    dest: u64,
    entry32: u32,
    entry64: u32,
    /// This image as it lies in memory (the rollback module).
    rollback: Vec<u8>,
    /// The hand-over buffer (the state module).
    state: Vec<u8>,
    tag: StateTag,
    rollback_tag: RollbackTag,
    /// The new image's command line.
    cmdline: Vec<u8>,
    /// Rings and ports stay as they are (the new image adopts them).
    keep: bool,
}

/// Allocates `len` bytes starting at or above `floor` (retrying past lower blocks).
fn alloc_above(len: usize, floor: u64) -> Option<Vec<u8>> {
    let mut rejects = Vec::new();
    for _ in 0..32 {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(len.max(1)).ok()?;
        if v.as_ptr() as u64 >= floor {
            return Some(v);
        }
        rejects.push(v);
    }
    None
}

/// This domain's id as the toolstack wrote it (`/tool/xenstored/domid`).
pub fn own_domid(engine: &xsstate::Engine) -> u16 {
    engine
        .store()
        .get("/tool/xenstored/domid")
        .and_then(|n| core::str::from_utf8(n.value()).ok())
        .and_then(|s| s.trim_end_matches('\0').parse().ok())
        .unwrap_or(crate::xen::abi::DOMID_SELF)
}

/// Pages `[paddr, paddr + len)` touches.
fn pages_of(paddr: u64, len: usize) -> u64 {
    ((paddr + len as u64 + 4095) >> 12) - (paddr >> 12)
}

/// Grants the state buffer's pages read-only to `domid` from [`STATE_GREF_BASE`], growing
/// the grant table if needed; every page is described, or none is.
fn grant_state(paddr: u64, len: usize, domid: u16) -> Result<u32, String> {
    let pages = pages_of(paddr, len);
    let need = u64::from(STATE_GREF_BASE) + pages;
    let per_frame = u64::from(gnttab::ENTRIES_PER_FRAME);
    if need > u64::from(gnttab::own_capacity()) {
        let frames = need.div_ceil(per_frame);
        let (_, max) = gnttab::query_size().map_err(|e| format!("grant table size: {}", e.0))?;
        let fits = u32::try_from(frames)
            .ok()
            .filter(|&f| f <= max)
            .ok_or_else(|| {
                format!(
                    "the state takes {pages} pages; the grant table holds at most {} entries \
                     ({max} frames) beyond the first {STATE_GREF_BASE}",
                    u64::from(max) * per_frame - u64::from(STATE_GREF_BASE)
                )
            })?;
        gnttab::grow_own(fits, super::layout::GRANT_FRAMES_MAX)
            .map_err(|e| format!("growing the grant table to {fits} frames: {}", e.0))?;
    }
    let first = paddr >> 12;
    for i in 0..pages {
        let frame = u32::try_from(first + i).map_err(|_| String::from("state above 16 TiB"))?;
        if let Err(e) = gnttab::grant(STATE_GREF_BASE + i as u32, domid, frame, true) {
            revoke(STATE_GREF_BASE, i as u32);
            return Err(format!(
                "grant entry {}: {}",
                STATE_GREF_BASE + i as u32,
                e.0
            ));
        }
    }
    Ok(pages as u32)
}

/// What the new image need not ask Xen again (see `tags::EarlyFacts`).
fn early_facts(domid: u16, queries: DomainQueries) -> super::tags::EarlyFacts {
    let (grant_gfn, grant_frames) = gnttab::own_frames();
    super::tags::EarlyFacts {
        shared_info_gfn: events::shared_info_paddr() >> 12,
        grant_gfn,
        grant_frames,
        mem: super::memory::handover_facts(),
        domid: Some(domid),
        queries: Some(queries.to_words()),
    }
}

/// Revokes `pages` grant entries from `gref`.
pub fn revoke(gref: u32, pages: u32) {
    for i in 0..pages {
        gnttab::revoke(gref + i);
    }
}

impl super::Stub {
    /// Hands over to the staged image; returns only when something failed before the point
    /// of no return (the running image then carries on as if nothing happened).
    pub(super) fn hand_over(&mut self, conn: ConnId, req_id: u32, tx_id: TxId) -> String {
        let t0 = crate::arch::cpu::rdtsc();
        // From here the console output is carried to the new image (each byte to port 0xE9
        // costs a VM exit inside the downtime), unless `--no-defer`.
        if !self.no_defer {
            crate::console::defer(true);
        }
        match self.prepare(conn, req_id, tx_id, t0) {
            Ok(p) => self.jump(p),
            Err(e) => {
                crate::console::flush_deferred();
                e
            }
        }
    }

    /// Sizes, allocates and writes everything the jump needs; checks the jump.
    fn prepare(
        &mut self,
        conn: ConnId,
        req_id: u32,
        tx_id: TxId,
        t0: u64,
    ) -> Result<Prepared, String> {
        let staged = match self.staged.take() {
            Some(s) => s,
            None => stage(self.lu.image())?,
        };
        let t_staged = crate::arch::cpu::rdtsc();
        let own_end = crate::arch::layout::image_end();
        let opts = DumpOptions::default();
        let image_len = self.engine.dump_len(&opts);
        let ids: Vec<ConnId> = self.engine.connections().map(|c| c.id).collect();
        let pending_input: Vec<(ConnId, Vec<u8>)> = ids
            .into_iter()
            .map(|id| (id, self.engine.pending_input(id)))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        let mut extras = Extras {
            live_updates: self.live_updates + 1,
            rollbacks: self.rollbacks,
            pending_input,
            reply: Some(DeferredReply {
                conn,
                req_id,
                tx_id,
                payload: b"OK\0".to_vec(),
            }),
            // What this image printed since the update started goes to the new one, which
            // prints it once it serves (output after this point is dropped: the jump is
            // silent).
            log: crate::console::take_deferred().to_vec(),
            // The start, the image staged, the state allocated, the state written (set below).
            tsc: alloc::vec![t0, 0, 0, 0],
            shell: Vec::new(),
        };
        // Version 3 and up: the rings stay mapped and the ports bound, listed for the new
        // image.
        let keep = staged.version >= 3;
        if keep {
            let kept = super::keep::Kept {
                dom_exc_port: self.dom_exc_port,
                timer_port: self.timer_port,
                rings: self
                    .conns
                    .iter()
                    .filter_map(|(id, x)| x.kept(*id))
                    .collect(),
            };
            extras.shell = kept.encode();
        }
        if !self.no_defer {
            crate::console::defer(true);
        }
        let state_len = handover::encoded_len(&extras, image_len, staged.version);
        self.check_room(
            staged.blob.capacity() + staged.rollback.capacity(),
            staged.rollback.len(),
            state_len,
            staged.load_hi,
            own_end,
        )?;
        let Staged {
            blob,
            zero_len,
            dest,
            entry32,
            entry64,
            rollback,
            floor,
            version,
            ..
        } = staged;
        let mut state = alloc_above(state_len, floor).ok_or_else(|| {
            format!("live-update: no room for {state_len} bytes of state above {floor:#x}")
        })?;
        let at = state.as_ptr();
        if let Some(t) = extras.tsc.get_mut(1) {
            *t = t_staged;
        }
        if let Some(t) = extras.tsc.get_mut(2) {
            *t = crate::arch::cpu::rdtsc();
        }
        let w = Writer::begin(&mut state, &extras, version);
        self.engine
            .dump_into(&opts, &mut state)
            .map_err(|e| format!("live-update: state image: {e}"))?;
        w.set_tsc(&mut state, 3, crate::arch::cpu::rdtsc());
        w.finish(&mut state);
        super::fault::after_state_written(&mut state);
        if state.as_ptr() != at {
            return Err(String::from(
                "live-update: the state buffer moved while written",
            ));
        }
        let paddr = state.as_ptr() as u64;
        let domid = own_domid(&self.engine);
        let pages = grant_state(paddr, state.len(), domid)
            .map_err(|e| format!("live-update: granting the state: {e}"))?;
        let sum = state
            .get(state.len() - 8..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes);
        let tag = StateTag {
            bytes: state.len() as u64,
            sum,
            gref: STATE_GREF_BASE,
            pages,
            domid,
            jump_tsc: 0,
            facts: Some(early_facts(self.own_domid.0, self.queries)),
            rollback: None,
        };
        let rollback_tag = RollbackTag {
            bytes: rollback.len() as u64,
            entry32: crate::arch::layout::entry32(),
            cmdline: self.cmdline.clone(),
        };
        let cmdline = self
            .lu
            .cmdline()
            .unwrap_or(&self.cmdline)
            .as_bytes()
            .to_vec();
        let p = Prepared {
            blob,
            zero_len,
            dest,
            entry32,
            entry64,
            rollback,
            state,
            tag,
            rollback_tag,
            cmdline,
            keep,
        };
        // Check everything the jump needs before tearing anything down.
        let (state_tag, rollback_text) = (p.tag.render(), p.rollback_tag.render());
        let modules = p.modules(&state_tag, &rollback_text);
        if let Err(e) = crate::arch::handover::check(&p.plan(&modules)) {
            revoke(STATE_GREF_BASE, pages);
            return Err(format!("live-update: hand-over refused: {e}"));
        }
        Ok(p)
    }

    /// Whether the update fits: now, the state beside the engine and what is staged (the
    /// new image and this one, allocated already: `staged` bytes); after the jump, the engine
    /// rebuilt beside the state and this image (the old engine's memory is free by then).
    fn check_room(
        &self,
        staged: usize,
        rollback_len: usize,
        state_len: usize,
        new_hi: u64,
        own_end: u64,
    ) -> Result<(), String> {
        use xsstate::memory::MemorySource;
        let mem = super::memory::KernelMemory;
        let now = state_len + (64 << 10);
        let ready = mem.ensure_free(now);
        let m = mem.stats();
        if !ready {
            return Err(format!(
                "live-update: the state needs {} KiB free now, {} KiB are (max {} KiB): \
                 give the xenstore domain more memory (XENSTORE_MAX_DOMAIN_SIZE)",
                now / 1024,
                m.available() / 1024,
                m.max / 1024
            ));
        }
        // The new engine needs about what this one uses (less what only the update holds).
        let engine = m
            .used
            .saturating_sub(self.lu.image().len() + staged + state_len);
        let after_need = engine + engine / 4 + (512 << 10);
        let lost_to_image = new_hi.saturating_sub(own_end) as usize;
        let total = m.used + m.available();
        let after_have = total.saturating_sub(lost_to_image + rollback_len + state_len);
        if after_need > after_have {
            return Err(format!(
                "live-update: after the jump the store needs about {} KiB beside {} KiB of \
                 state; the domain has {} KiB: give the xenstore domain more memory \
                 (XENSTORE_MAX_DOMAIN_SIZE)",
                after_need / 1024,
                state_len / 1024,
                after_have / 1024
            ));
        }
        Ok(())
    }

    /// Point of no return: jumps, leaving every ring mapped and port bound for the new image
    /// to adopt (or, for an image that reads only version-2 buffers, releasing them for it
    /// to take again).
    fn jump(&mut self, mut p: Prepared) -> ! {
        if !p.keep {
            for (_, x) in core::mem::take(&mut self.conns) {
                x.close(&mut self.gfns);
            }
            let _ = events::close(self.dom_exc_port);
            let _ = events::close(self.timer_port);
        } else {
            // Our own connection is not kept (no mapping to hand over): its port is closed
            // for the new image (or this one, after a rollback) to bind again.
            for x in self.conns.values().filter(|x| x.is_own()) {
                let _ = events::close(x.local_port);
            }
        }
        p.tag.jump_tsc = crate::arch::cpu::rdtsc();
        let (state_tag, rollback_text) = (p.tag.render(), p.rollback_tag.render());
        let modules = p.modules(&state_tag, &rollback_text);
        crate::arch::handover::jump(&p.plan(&modules))
    }
}

impl Prepared {
    /// The two modules: the state, then this image for a rollback.
    fn modules<'a>(&'a self, state_tag: &'a str, rollback_tag: &'a str) -> [ModuleSpec<'a>; 2] {
        [
            ModuleSpec {
                paddr: self.state.as_ptr() as u64,
                size: self.state.len() as u64,
                cmdline: state_tag.as_bytes(),
            },
            ModuleSpec {
                paddr: self.rollback.as_ptr() as u64,
                size: self.rollback.len() as u64,
                cmdline: rollback_tag.as_bytes(),
            },
        ]
    }

    /// The jump.
    fn plan<'a>(&'a self, modules: &'a [ModuleSpec<'a>]) -> Handover<'a> {
        Handover {
            blob: &self.blob,
            zero_len: self.zero_len,
            dest_paddr: self.dest,
            entry32: self.entry32,
            entry64: self.entry64,
            cmdline: &self.cmdline,
            modules,
        }
    }
}
