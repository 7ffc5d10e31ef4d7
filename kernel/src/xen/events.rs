//! Event channels (2-level ABI): the shared-info page, polling for events, and the ops.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use xen_sys::{
    __HYPERVISOR_event_channel_op, __HYPERVISOR_hvm_op, __HYPERVISOR_memory_op,
    __HYPERVISOR_sched_op, evtchn_bind_interdomain, evtchn_bind_virq, evtchn_close, evtchn_send,
    sched_poll, shared_info, vcpu_info, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_virq,
    EVTCHNOP_close, EVTCHNOP_send, SCHEDOP_poll,
};

use super::abi::{
    AddToPhysmap, HvmParam, DOMID_SELF, HVMOP_SET_PARAM, HVM_CALLBACK_TYPE_VECTOR,
    HVM_PARAM_CALLBACK_IRQ, XENMAPSPACE_SHARED_INFO, XENMEM_ADD_TO_PHYSMAP,
};
use super::hypercall::{check, hypercall2};

/// Number of 64-bit words of pending/mask bits (4096 ports).
const WORDS: usize = 64;
/// Largest 2-level port number + 1.
pub const MAX_PORTS: u32 = (WORDS * 64) as u32;

/// Deliver events by the callback vector (`true`) or only poll for them (`false`).
const UPCALL_MODE: bool = false;

/// Physical address of the shared-info page once mapped (0 before).
static SHARED_INFO: AtomicU64 = AtomicU64::new(0);
/// Ports the upcall saw pending, waiting for the main loop.
static RECORDED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
/// Ports this image bound (and has not closed): a live update's rollback closes them all,
/// even from a panic, without any other bookkeeping.
static BOUND: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

fn note_bound(port: u32, bound: bool) {
    if let Some(w) = BOUND.get((port / 64) as usize) {
        let bit = 1u64 << (port % 64);
        if bound {
            w.fetch_or(bit, Ordering::SeqCst);
        } else {
            w.fetch_and(!bit, Ordering::SeqCst);
        }
    }
}

/// Records `port`, bound by a previous image and kept across a live update, as this image's
/// own (from now on a rollback closes it). Until then a rollback leaves it bound for the
/// image it returns to.
pub fn own_adopted(port: u32) {
    note_bound(port, true);
}

/// Closes every port this image bound; returns how many.
pub fn close_all_bound() -> usize {
    let mut n = 0;
    for (w, word) in BOUND.iter().enumerate() {
        let bits = word.swap(0, Ordering::SeqCst);
        for b in 0..64u32 {
            if bits & (1u64 << b) != 0 {
                let _ = close(w as u32 * 64 + b);
                n += 1;
            }
        }
    }
    n
}

pub use super::hypercall::XenError;

/// Maps the shared-info page at `gfn` and sets the event callback; or, with `mapped`, takes
/// over the shared-info page a previous image of this
/// domain mapped at `gfn` and the callback it set (none), without asking Xen again (a live
/// update: the caller checked the old image mapped it at this very frame).
pub fn init_with(gfn: u64, mapped: bool) -> Result<(), XenError> {
    if !mapped {
        map_shared_info(gfn)?;
    }
    SHARED_INFO.store(gfn << 12, Ordering::SeqCst);
    // Start from a clean slate: everything unmasked, nothing pending that we did not bind.
    for w in 0..WORDS {
        if let Some(mask) = word_ptr(core::mem::offset_of!(shared_info, evtchn_mask), w) {
            mask.store(0, Ordering::SeqCst);
        }
    }
    if let Some(m) = vcpu0_u8(core::mem::offset_of!(vcpu_info, evtchn_upcall_mask)) {
        m.store(0, Ordering::SeqCst);
    }
    crate::arch::idt::set_upcall_handler(upcall);
    if mapped && !UPCALL_MODE {
        return Ok(());
    }
    set_callback()
}

fn map_shared_info(gfn: u64) -> Result<(), XenError> {
    let mut xatp = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: gfn,
    };
    // SAFETY: XENMEM_add_to_physmap reads a `xen_add_to_physmap` we own for the call; the
    // target gfn is in a hole of our physical map reserved for Xen pages (see `layout`).
    check(unsafe {
        hypercall2(
            __HYPERVISOR_memory_op,
            XENMEM_ADD_TO_PHYSMAP,
            &raw mut xatp as u64,
        )
    })?;
    Ok(())
}

/// Sets the event callback. No upcall: under Xen 4.17 on QEMU's nested SVM the callback
/// vector was seen to be injected forever with `evtchn_upcall_pending` clear (an interrupt
/// storm that starved the service). The main loop waits with SCHEDOP_poll instead
/// ([`wait`]), which checks the pending bits itself, so no event can be lost. A previous
/// image's callback is turned off here (value 0).
fn set_callback() -> Result<(), XenError> {
    let mut param = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index: HVM_PARAM_CALLBACK_IRQ,
        value: if UPCALL_MODE {
            (HVM_CALLBACK_TYPE_VECTOR << 56) | u64::from(crate::arch::idt::UPCALL_VECTOR)
        } else {
            0
        },
    };
    // SAFETY: HVMOP_set_param reads the `xen_hvm_param` we own for the call.
    check(unsafe { hypercall2(__HYPERVISOR_hvm_op, HVMOP_SET_PARAM, &raw mut param as u64) })?;
    Ok(())
}

/// The physical address of the shared-info page (0 before [`init_with`]).
pub fn shared_info_paddr() -> u64 {
    SHARED_INFO.load(Ordering::Relaxed)
}

/// The atomic word `index` of the u64 array at byte `offset` in the shared-info page.
fn word_ptr(offset: usize, index: usize) -> Option<&'static AtomicU64> {
    let base = SHARED_INFO.load(Ordering::Relaxed);
    if base == 0 || index >= WORDS {
        return None;
    }
    let addr = base as usize + offset + index * 8;
    // SAFETY: the shared-info page is mapped at `base` for the rest of the domain's life
    // (it is never unmapped); `offset` is one of the two bitmap arrays of `shared_info` and
    // `index < 64`, so the 8-byte-aligned word lies inside the page. Xen updates these words
    // with atomic operations, so accessing them through `AtomicU64` is the required protocol.
    Some(unsafe { AtomicU64::from_ptr(addr as *mut u64) })
}

/// A byte of vCPU 0's `vcpu_info` at `offset`.
fn vcpu0_u8(offset: usize) -> Option<&'static AtomicU8> {
    let base = SHARED_INFO.load(Ordering::Relaxed);
    if base == 0 || offset >= core::mem::size_of::<vcpu_info>() {
        return None;
    }
    // SAFETY: vCPU 0's `vcpu_info` is the first entry of the mapped shared-info page and
    // `offset` is inside it; Xen writes these bytes concurrently, hence atomics.
    Some(unsafe { AtomicU8::from_ptr((base as usize + offset) as *mut u8) })
}

/// vCPU 0's `evtchn_pending_sel`.
fn pending_sel() -> Option<&'static AtomicU64> {
    let base = SHARED_INFO.load(Ordering::Relaxed);
    if base == 0 {
        return None;
    }
    let addr = base as usize + core::mem::offset_of!(vcpu_info, evtchn_pending_sel);
    // SAFETY: inside vCPU 0's `vcpu_info` in the mapped page, 8-byte aligned (offset 8).
    Some(unsafe { AtomicU64::from_ptr(addr as *mut u64) })
}

/// Moves every pending, unmasked port from the shared-info page into our record. Runs in the
/// upcall (interrupts off) and from the main loop.
pub fn collect() {
    let Some(sel) = pending_sel() else {
        return;
    };
    if let Some(p) = vcpu0_u8(core::mem::offset_of!(vcpu_info, evtchn_upcall_pending)) {
        p.store(0, Ordering::SeqCst);
    }
    let mut words = sel.swap(0, Ordering::SeqCst);
    while words != 0 {
        let w = words.trailing_zeros() as usize;
        words &= words - 1;
        let (Some(pending), Some(mask)) = (
            word_ptr(core::mem::offset_of!(shared_info, evtchn_pending), w),
            word_ptr(core::mem::offset_of!(shared_info, evtchn_mask), w),
        ) else {
            continue;
        };
        let ready = pending.load(Ordering::SeqCst) & !mask.load(Ordering::SeqCst);
        if ready != 0 {
            pending.fetch_and(!ready, Ordering::SeqCst);
            if let Some(r) = RECORDED.get(w) {
                r.fetch_or(ready, Ordering::SeqCst);
            }
        }
    }
}

/// Upcalls since the main loop last took the record (a storm detector).
static UPCALLS_SINCE_TAKE: AtomicU64 = AtomicU64::new(0);

/// The upcall: record, nothing else (the main loop does the work).
fn upcall() {
    collect();
    let n = UPCALLS_SINCE_TAKE.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() && n >= 1 << 16 {
        crate::kprintln!(
            "xsstub: {n} upcalls without the main loop running: {}",
            debug_state()
        );
    }
}

/// A set of ports taken from the record.
#[derive(Clone, Debug)]
pub struct PendingPorts {
    words: [u64; WORDS],
}

impl PendingPorts {
    /// The ports, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64u32)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| i as u32 * 64 + b)
        })
    }
}

/// A one-line dump of the event state (for storms and hangs).
pub fn debug_state() -> heapless::String<256> {
    use core::fmt::Write;
    let mut out = heapless::String::new();
    let pending = vcpu0_u8(core::mem::offset_of!(vcpu_info, evtchn_upcall_pending))
        .map_or(0, |p| p.load(Ordering::SeqCst));
    let sel = pending_sel().map_or(0, |s| s.load(Ordering::SeqCst));
    let _ = write!(out, "upcall_pending={pending} sel={sel:#x}");
    for w in 0..2 {
        let p = word_ptr(core::mem::offset_of!(shared_info, evtchn_pending), w)
            .map_or(0, |a| a.load(Ordering::SeqCst));
        let m = word_ptr(core::mem::offset_of!(shared_info, evtchn_mask), w)
            .map_or(0, |a| a.load(Ordering::SeqCst));
        let r = RECORDED.get(w).map_or(0, |a| a.load(Ordering::SeqCst));
        let _ = write!(out, " w{w}: pending={p:#x} mask={m:#x} recorded={r:#x}");
    }
    out
}

/// Takes every recorded port.
pub fn take_pending() -> PendingPorts {
    UPCALLS_SINCE_TAKE.store(0, Ordering::Relaxed);
    collect();
    let mut words = [0u64; WORDS];
    for (dst, src) in words.iter_mut().zip(RECORDED.iter()) {
        *dst = src.swap(0, Ordering::SeqCst);
    }
    PendingPorts { words }
}

/// Whether any port is recorded (checked with interrupts off before sleeping).
pub fn any_pending() -> bool {
    RECORDED.iter().any(|w| w.load(Ordering::SeqCst) != 0)
        || pending_sel().is_some_and(|s| s.load(Ordering::SeqCst) != 0)
}

fn evtchn_op<T>(cmd: u32, arg: &mut T) -> Result<(), XenError> {
    // SAFETY: every caller passes the `evtchn_*` structure `cmd` expects, which we own for
    // the duration of the call.
    check(unsafe {
        hypercall2(
            __HYPERVISOR_event_channel_op,
            u64::from(cmd),
            arg as *mut T as u64,
        )
    })
    .map(drop)
}

/// Most ports one `SCHEDOP_poll` may name.
pub const POLL_MAX_PORTS: usize = 128;

/// Blocks until one of `ports` is pending (any event of the domain also wakes us) or Xen
/// system time reaches `deadline_ns` (0: no deadline). Returns at once when one is already
/// pending, so an event that arrived since the last [`take_pending`] is never slept through.
/// Give at most [`POLL_MAX_PORTS`] ports; with more, pass a short deadline.
pub fn wait(ports: &[u32], deadline_ns: u64) -> Result<(), XenError> {
    let n = ports.len().min(POLL_MAX_PORTS);
    let mut list = [0u32; POLL_MAX_PORTS];
    if let (Some(dst), Some(src)) = (list.get_mut(..n), ports.get(..n)) {
        dst.copy_from_slice(src);
    }
    let mut op = sched_poll {
        ports: list.as_mut_ptr(),
        nr_ports: n as u32,
        timeout: deadline_ns,
    };
    // SAFETY: SCHEDOP_poll reads the `sched_poll` we own and the `n` ports of `list`, which
    // outlives the call.
    check(unsafe {
        hypercall2(
            __HYPERVISOR_sched_op,
            u64::from(SCHEDOP_poll),
            &raw mut op as u64,
        )
    })
    .map(drop)
}

/// Binds to `remote_port` of `domid`; returns our local port.
pub fn bind_interdomain(domid: u16, remote_port: u32) -> Result<u32, XenError> {
    let mut op = evtchn_bind_interdomain {
        remote_dom: domid,
        remote_port,
        local_port: 0,
    };
    evtchn_op(EVTCHNOP_bind_interdomain, &mut op)?;
    note_bound(op.local_port, true);
    Ok(op.local_port)
}

/// This domain's id, as Mini-OS finds it: the remote end of a port allocated for ourselves,
/// read back with `EVTCHNOP_status`, then closed.
pub fn own_domid() -> Result<u16, XenError> {
    let mut op = super::abi::EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    evtchn_op(super::abi::EVTCHNOP_ALLOC_UNBOUND, &mut op)?;
    let port = op.port;
    let st = status(port);
    let _ = close(port);
    let st = st?;
    if st.status != super::abi::EVTCHNSTAT_UNBOUND {
        return Err(XenError(-22));
    }
    Ok((st.u[0] & 0xffff) as u16)
}

/// `EVTCHNOP_status` of our `port`.
pub fn status(port: u32) -> Result<super::abi::EvtchnStatus, XenError> {
    let mut op = super::abi::EvtchnStatus {
        dom: DOMID_SELF,
        port,
        ..Default::default()
    };
    evtchn_op(super::abi::EVTCHNOP_STATUS, &mut op)?;
    Ok(op)
}

/// Takes `port` alone out of the record (after collecting what Xen marked pending): whether
/// it was pending. Other ports stay recorded for the main loop.
pub fn take_port(port: u32) -> bool {
    collect();
    let Some(word) = RECORDED.get((port / 64) as usize) else {
        return false;
    };
    let bit = 1u64 << (port % 64);
    word.fetch_and(!bit, Ordering::SeqCst) & bit != 0
}

/// Binds a virtual IRQ on vCPU 0; returns the local port.
pub fn bind_virq(virq: u32) -> Result<u32, XenError> {
    let mut op = evtchn_bind_virq {
        virq,
        vcpu: 0,
        port: 0,
    };
    evtchn_op(EVTCHNOP_bind_virq, &mut op)?;
    note_bound(op.port, true);
    Ok(op.port)
}

/// Signals the other end of `port`.
pub fn notify(port: u32) -> Result<(), XenError> {
    let mut op = evtchn_send { port };
    evtchn_op(EVTCHNOP_send, &mut op)
}

/// Closes `port`, dropping anything recorded for it.
pub fn close(port: u32) -> Result<(), XenError> {
    let mut op = evtchn_close { port };
    let rc = evtchn_op(EVTCHNOP_close, &mut op);
    note_bound(port, false);
    if let Some(r) = RECORDED.get((port / 64) as usize) {
        r.fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
    }
    rc
}

/// `HVMOP_get_param` for this domain.
pub fn hvm_param(index: u32) -> Result<u64, XenError> {
    let mut param = HvmParam {
        domid: DOMID_SELF,
        pad: 0,
        index,
        value: 0,
    };
    // SAFETY: HVMOP_get_param reads and writes the `xen_hvm_param` we own for the call.
    check(unsafe {
        hypercall2(
            __HYPERVISOR_hvm_op,
            super::abi::HVMOP_GET_PARAM,
            &raw mut param as u64,
        )
    })?;
    Ok(param.value)
}
