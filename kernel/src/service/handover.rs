//! The live-update hand-over: state into a granted buffer, teardown, jump; and, in the new
//! image, finding that buffer, checking it and restoring the engine from it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xsstate::handover::{fnv1a64, DeferredReply, HandoverState};
use xsstate::image::Layout;
use xsstate::memory::MemorySource;
use xsstate::snapshot::DumpOptions;
use xsstate::wire::MsgType;
use xsstate::{ConnId, TxId};

use crate::arch::handover::{Handover, ModuleSpec};
use crate::kprintln;
use crate::xen::{events, gnttab, start_info};

/// Command-line prefix of the state module.
pub const STATE_TAG: &str = "xsstub-state";
/// First grant reference describing the state pages (0 and 1 are the toolstack's).
pub const STATE_GREF_BASE: u32 = 16;

/// What the state module's command line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateTag {
    /// Buffer length.
    pub bytes: u64,
    /// FNV-1a of the buffer.
    pub fnv: u64,
    /// First grant reference describing it (0: not granted).
    pub gref: u32,
    /// Pages granted.
    pub pages: u32,
    /// TSC just before the jump.
    pub jump_tsc: u64,
}

impl StateTag {
    /// Parses `xsstub-state v1 bytes=N fnv=HEX gref=N pages=N jump_tsc=N`.
    pub fn parse(cmdline: &str) -> Option<StateTag> {
        let mut words = cmdline.split_ascii_whitespace();
        if words.next()? != STATE_TAG || words.next()? != "v1" {
            return None;
        }
        let mut t = StateTag::default();
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "bytes" => t.bytes = v.parse().ok()?,
                "fnv" => t.fnv = u64::from_str_radix(v, 16).ok()?,
                "gref" => t.gref = v.parse().ok()?,
                "pages" => t.pages = v.parse().ok()?,
                "jump_tsc" => t.jump_tsc = v.parse().ok()?,
                _ => {}
            }
        }
        Some(t)
    }

    fn render(&self) -> String {
        format!(
            "{STATE_TAG} v1 bytes={} fnv={:016x} gref={} pages={} jump_tsc={}",
            self.bytes, self.fnv, self.gref, self.pages, self.jump_tsc
        )
    }
}

/// The jump into `pvh` (flattened into `blob`) with `cmdline` and `modules`.
fn plan<'a>(
    blob: &'a [u8],
    pvh: &xsstate::pvh::PvhImage,
    cmdline: &'a [u8],
    modules: &'a [ModuleSpec<'a>],
) -> Handover<'a> {
    Handover {
        blob,
        dest_paddr: pvh.load_lo,
        entry32: pvh.entry32,
        cmdline,
        modules,
    }
}

/// The start-info module describing the state buffer `buf` at `paddr`.
fn state_module<'a>(paddr: u64, buf: &[u8], cmdline: &'a [u8]) -> ModuleSpec<'a> {
    ModuleSpec {
        paddr,
        size: buf.len() as u64,
        cmdline,
    }
}

/// Allocates `len` bytes starting at or above `floor` (retrying past lower blocks).
fn alloc_above(len: usize, floor: u64) -> Option<Vec<u8>> {
    let mut rejects = Vec::new();
    for _ in 0..16 {
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
fn own_domid(engine: &xsstate::Engine) -> u16 {
    engine
        .store()
        .get("/tool/xenstored/domid")
        .and_then(|n| core::str::from_utf8(&n.value).ok())
        .and_then(|s| s.trim_end_matches('\0').parse().ok())
        .unwrap_or(crate::xen::abi::DOMID_SELF)
}

impl super::Stub {
    /// Hands over to the staged image; returns only when something failed before the point
    /// of no return (the running image then carries on as if nothing happened).
    pub(super) fn hand_over(&mut self, conn: ConnId, req_id: u32, tx_id: TxId) -> String {
        let t0 = crate::arch::cpu::rdtsc();
        // The dump, the image bytes and the hand-over buffer exist at once (with allocator
        // growth, about six times what the nodes account for), beside the flattened kernel:
        // refuse rather than run out of memory half-way.
        let need = self
            .engine
            .node_bytes()
            .saturating_mul(6)
            .saturating_add(2 << 20);
        // Grows the heap when the domain may have more memory.
        if !super::memory::KernelMemory.ensure_free(need) {
            return format!(
                "live-update: the state needs about {} KiB free, {} KiB are; give the \
                 xenstore domain more memory",
                need / 1024,
                crate::arch::heap::stats().1 / 1024
            );
        }
        let elf = self.lu.image();
        let pvh = match xsstate::pvh::parse(elf) {
            Ok(p) => p,
            Err(e) => return format!("live-update: image refused: {e}"),
        };
        let mut blob = Vec::new();
        let span = (pvh.load_hi - pvh.load_lo) as usize;
        if blob.try_reserve_exact(span).is_err() {
            return format!("live-update: no room to stage {span} bytes");
        }
        if let Err(e) = pvh.flatten(elf, &mut blob) {
            return format!("live-update: image refused: {e}");
        }
        let image = match xsstate::image::write(&self.engine.dump(&DumpOptions::default())) {
            Ok(i) => i,
            Err(e) => return format!("live-update: state image: {e}"),
        };
        let ids: Vec<ConnId> = self.engine.connections().map(|c| c.id).collect();
        let pending_input = ids
            .into_iter()
            .map(|id| (id, self.engine.pending_input(id)))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        let state = HandoverState {
            live_updates: self.live_updates + 1,
            image,
            pending_input,
            reply: Some(DeferredReply {
                conn,
                req_id,
                tx_id,
                payload: b"OK\0".to_vec(),
            }),
        };
        let len = state.encoded_len();
        let Some(mut buf) = alloc_above(len, pvh.load_hi) else {
            return format!("live-update: no room for {len} bytes of state above the image");
        };
        state.encode_into(&mut buf);
        drop(state);
        let paddr = buf.as_ptr() as u64;
        let first_page = paddr >> 12;
        let pages = ((paddr + buf.len() as u64 + 4095) >> 12) - first_page;
        let mut tag = StateTag {
            bytes: buf.len() as u64,
            fnv: fnv1a64(&buf),
            gref: 0,
            pages: pages as u32,
            jump_tsc: 0,
        };
        let domid = own_domid(&self.engine);
        if u64::from(STATE_GREF_BASE) + pages <= u64::from(gnttab::own_capacity()) {
            tag.gref = STATE_GREF_BASE;
            for i in 0..pages {
                if gnttab::grant(
                    STATE_GREF_BASE + i as u32,
                    domid,
                    (first_page + i) as u32,
                    true,
                )
                .is_err()
                {
                    revoke(&tag);
                    tag.gref = 0;
                    break;
                }
            }
        }
        let cmdline = self
            .lu
            .cmdline()
            .unwrap_or(&self.cmdline)
            .as_bytes()
            .to_vec();
        // Check everything the jump needs before tearing anything down.
        let module_cmdline = tag.render();
        let modules = [state_module(paddr, &buf, module_cmdline.as_bytes())];
        if let Err(e) = crate::arch::handover::check(&plan(&blob, &pvh, &cmdline, &modules)) {
            revoke(&tag);
            return format!("live-update: hand-over refused: {e}");
        }
        let prep_us = crate::xen::time::tsc_to_ns(crate::arch::cpu::rdtsc() - t0) / 1000;
        kprintln!(
            "xsstub: live update {}: state {} bytes at {paddr:#x}, image {:#x}..{:#x}, \
             prepared in {prep_us} us; jumping",
            self.live_updates + 1,
            buf.len(),
            pvh.load_lo,
            pvh.load_hi
        );
        // Point of no return: release every ring and port; the new image takes them again.
        for (_, x) in core::mem::take(&mut self.conns) {
            x.close(&mut self.gfns);
        }
        let _ = events::close(self.dom_exc_port);
        let _ = events::close(self.timer_port);
        // The module's command line again, now carrying the TSC of the jump.
        tag.jump_tsc = crate::arch::cpu::rdtsc();
        let module_cmdline = tag.render();
        let modules = [state_module(paddr, &buf, module_cmdline.as_bytes())];
        crate::arch::handover::jump(&plan(&blob, &pvh, &cmdline, &modules))
    }
}

/// A state module found at boot, checked and decoded.
pub struct Inherited {
    /// The decoded hand-over.
    pub state: HandoverState,
    /// What its command line said.
    pub tag: StateTag,
    /// Where it lies (returned to the heap after the restore).
    pub paddr: u64,
    /// Its length.
    pub len: u64,
}

/// Finds the state module in the start info, checks it (length, checksum, grant entries)
/// and decodes it. `Ok(None)`: a fresh boot.
pub fn inherited(info: &start_info::BootInfo) -> Result<Option<Inherited>, String> {
    let Some((m, tag)) = info.modules.iter().find_map(|m| {
        let c = start_info::read_cstr(m.cmdline_paddr);
        StateTag::parse(&c).map(|t| (*m, t))
    }) else {
        return Ok(None);
    };
    if tag.bytes != m.size {
        return Err(format!(
            "state module is {} bytes, its tag says {}",
            m.size, tag.bytes
        ));
    }
    if tag.gref != 0 {
        let first_page = m.paddr >> 12;
        for i in 0..tag.pages {
            let Some((frame, _)) = gnttab::entry(tag.gref + i) else {
                return Err(format!("grant entry {} unreadable", tag.gref + i));
            };
            if u64::from(frame) != first_page + u64::from(i) {
                return Err(format!(
                    "grant entry {} names frame {frame:#x}, not {:#x}",
                    tag.gref + i,
                    first_page + u64::from(i)
                ));
            }
        }
    }
    let state = start_info::with_module_bytes(&m, |bytes| {
        let sum = fnv1a64(bytes);
        if sum != tag.fnv {
            return Err(format!(
                "state checksum {sum:016x} does not match the tag's {:016x}",
                tag.fnv
            ));
        }
        HandoverState::decode(bytes).map_err(|e| format!("state buffer: {e}"))
    })
    .ok_or_else(|| String::from("state module outside RAM"))??;
    Ok(Some(Inherited {
        state,
        tag,
        paddr: m.paddr,
        len: m.size,
    }))
}

/// Reads the seed image out of an inherited state.
pub fn image_of(state: &HandoverState) -> Result<xsstate::image::Image, String> {
    xsstate::image::read(&state.image, Layout::Seed).map_err(|e| format!("{e}"))
}

/// Gives the state pages back: revoke their grant entries.
pub fn revoke(tag: &StateTag) {
    if tag.gref != 0 {
        for i in 0..tag.pages {
            gnttab::revoke(tag.gref + i);
        }
    }
}

/// The deferred reply's message type.
pub const REPLY_TYPE: MsgType = MsgType::Control;
