//! The xenstore service under Xen: bring the drivers up, connect dom0, then serve every ring.

mod cmdline;
mod conns;
mod handover;
mod layout;
mod liveupdate;
mod ownconn;
mod testguest;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::sync::Arc;

use xsstate::engine::{DomainState, Effect, Engine, EngineConfig};
use xsstate::ids::{ConnId, DomId, EvtchnPort};

use crate::kprintln;
use crate::xen::domctl::DomainQueries;
use crate::xen::domctl_abi::{Answer, Changed, Liveness, DOMID_FIRST_RESERVED, DOMID_INVALID};
use crate::xen::{self, events, time};
use conns::{GfnPool, XenConn};

/// A build flavour baked into the version (`XSSTUB_FLAVOR=b` builds the second image the
/// live-update tests switch between).
const FLAVOR: &str = match option_env!("XSSTUB_FLAVOR") {
    Some(f) => f,
    None => "",
};

/// Why the service could not start.
#[derive(Debug)]
enum BootError {
    /// A driver failed (which, and Xen's errno).
    Xen(&'static str, i64),
    /// The start info is missing or corrupt.
    StartInfo,
    /// The command line is unusable.
    Cmdline(cmdline::CmdlineError),
    /// No RAM above the image for the heap.
    NoHeap,
    /// The inherited state could not be restored.
    State(String),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Xen(what, rc) => write!(f, "{what} failed: Xen error {rc}"),
            BootError::StartInfo => write!(f, "no valid hvm_start_info"),
            BootError::Cmdline(e) => write!(f, "command line: {e}"),
            BootError::NoHeap => write!(f, "no RAM for the heap"),
            BootError::State(e) => write!(f, "inherited state: {e}"),
        }
    }
}

fn xen_err(what: &'static str) -> impl Fn(events::XenError) -> BootError {
    move |e| BootError::Xen(what, e.0)
}

/// The engine's settings on this hypervisor: on Xen 4.17 the path-max quota limits dom0 too,
/// as the C xenstored of that release does (dom0's tools there expect its rules).
fn engine_config(queries: &DomainQueries) -> EngineConfig {
    EngineConfig {
        path_max_for_privileged: queries.xen < xen::domctl_abi::XenVersion::new(4, 18),
        ..EngineConfig::default()
    }
}

/// Runs the xenstore service (or, when asked, the misbehaving test guest); never returns.
pub fn run(start_info_paddr: u64) -> ! {
    match start(start_info_paddr) {
        Ok(mut stub) => stub.serve(),
        Err(e) => {
            kprintln!("xsstub: cannot start: {e}");
            xen::sched::shutdown(true)
        }
    }
}

/// Brings up the hypercall page and events, then decides what this domain is.
fn start(start_info_paddr: u64) -> Result<Stub, BootError> {
    xen::hypercall::init().map_err(|_| BootError::Xen("hypercall page", -1))?;
    crate::arch::exit::set_shutdown_hook(xen::sched::shutdown);
    events::init(layout::SHARED_INFO_GFN).map_err(xen_err("shared info"))?;
    let boot_ns = time::now_ns();
    let info = xen::start_info::parse(start_info_paddr).ok_or(BootError::StartInfo)?;
    Stub::init_heap(&info)?;
    if testguest::wanted(&info.cmdline) {
        testguest::run()
    }
    Stub::boot(&info, boot_ns)
}

/// The running service: the engine plus the Xen side of every connection.
struct Stub {
    engine: Engine,
    conns: BTreeMap<ConnId, XenConn>,
    by_port: BTreeMap<u32, ConnId>,
    gfns: GfnPool,
    dom_exc_port: u32,
    timer_port: u32,
    timer_deadline_ms: Option<u64>,
    boot_ns: u64,
    first_served: bool,
    trace: bool,
    /// The command line this image booted with (passed on by a live update without `-c`).
    cmdline: String,
    /// Live-update protocol state.
    lu: liveupdate::LiveUpdate,
    /// Live updates since the domain started.
    live_updates: u64,
    /// TSC of the jump that started this image, until the first request is served.
    jump_tsc: Option<u64>,
    /// This domain's id.
    own_domid: DomId,
    /// How Xen is asked about domains (the engine's domain oracle too).
    queries: DomainQueries,
    /// Failed domain queries already logged, `(domain, errno)` (`DOMID_INVALID`: the
    /// changed-domain poll): each is logged once, until that domain's query works again.
    query_errors: BTreeSet<(u16, i64)>,
    /// Unique ids of introduced domains (Xen 4.21+): another id under the same domid means
    /// the domain we knew is gone and its id reused.
    unique_ids: BTreeMap<DomId, u64>,
    /// Our own connection restored by a live update, to check once serving again.
    own_check_due: Option<(ConnId, u32, xen::ring::OwnStore)>,
}

impl Stub {
    fn boot(info: &xen::start_info::BootInfo, boot_ns: u64) -> Result<Stub, BootError> {
        if let Err(e) = xen::pvconsole::init() {
            kprintln!("xsstub: no PV console ({})", e.0);
        }
        kprintln!("xsstub: command line `{}`", info.cmdline);
        let opts = cmdline::parse(&info.cmdline).map_err(BootError::Cmdline)?;
        for t in &opts.ignored {
            kprintln!("xsstub: ignoring option `{t}`");
        }
        xen::gnttab::init_own(layout::GRANT_FRAMES_GFN, layout::GRANT_FRAMES)
            .map_err(xen_err("grant table"))?;
        let inherited = match handover::inherited(info) {
            Ok(i) => i,
            Err(e) => {
                kprintln!("xsstub: state module refused, starting empty: {e}");
                None
            }
        };
        let own_domid = events::own_domid().map_err(xen_err("own domain id"))?;
        let (queries, line) = DomainQueries::detect(own_domid);
        kprintln!("xsstub: domain {own_domid}; {line}");
        ownconn::log_boot_info(info);
        let dom_exc_port =
            events::bind_virq(xen_sys::VIRQ_DOM_EXC).map_err(xen_err("VIRQ_DOM_EXC"))?;
        let timer_port = events::bind_virq(xen_sys::VIRQ_TIMER).map_err(xen_err("VIRQ_TIMER"))?;
        let mut stub = Stub {
            engine: Engine::new(engine_config(&queries)),
            conns: BTreeMap::new(),
            by_port: BTreeMap::new(),
            gfns: GfnPool::new(layout::MAP_WINDOW_GFN, layout::MAP_WINDOW_PAGES),
            dom_exc_port,
            timer_port,
            timer_deadline_ms: None,
            boot_ns,
            first_served: false,
            trace: opts.trace,
            cmdline: String::from(info.cmdline.as_str()),
            lu: liveupdate::LiveUpdate::default(),
            live_updates: 0,
            jump_tsc: None,
            own_domid: DomId(own_domid),
            queries,
            query_errors: BTreeSet::new(),
            unique_ids: BTreeMap::new(),
            own_check_due: None,
        };
        stub.engine.set_time_ms(boot_ns / 1_000_000);
        // SET_PERMS asks Xen whether an owner exists, as C xenstored does.
        stub.engine.set_domain_oracle(Arc::new(queries));
        match inherited {
            Some(inh) => stub.restore(inh)?,
            None => {
                match opts.dom0_port {
                    Some(port) => stub.connect_dom0(port)?,
                    None => kprintln!("xsstub: no --event: not serving dom0"),
                }
                stub.connect_own(true);
            }
        }
        stub.set_version();
        kprintln!(
            "xsstub: serving ({} KiB heap free)",
            crate::arch::heap::stats().1 / 1024
        );
        Ok(stub)
    }

    /// Points the heap at the populated RAM above the image and the loader's data.
    fn init_heap(info: &xen::start_info::BootInfo) -> Result<(), BootError> {
        let map = xen::memory::memory_map().map_err(xen_err("memory map"))?;
        let populated =
            xen::memory::current_reservation_pages().map_err(xen_err("current reservation"))?;
        let image_end = crate::arch::image_end() as u64;
        let low = (image_end.max(info.end) + 0xfff) & !0xfff;
        // RAM from the E820 map, clipped to what is populated (the map covers maxmem), minus
        // the modules (a live update's state stays untouched until restored).
        let populated_top = populated.saturating_mul(4096);
        // No allocation here: the heap does not exist yet.
        let mut free: heapless::Vec<(u64, u64), 16> = heapless::Vec::new();
        for e in map.iter().filter(|e| e.kind == xen::abi::E820_RAM) {
            let start = e.addr.max(low);
            let end = e.addr.saturating_add(e.size).min(populated_top);
            if end > start {
                let _ = free.push((start, end));
            }
        }
        for m in &info.modules {
            let (ms, me) = (
                m.paddr & !0xfff,
                (m.paddr.saturating_add(m.size) + 0xfff) & !0xfff,
            );
            let mut cut: heapless::Vec<(u64, u64), 16> = heapless::Vec::new();
            for (s, e) in free.iter().copied() {
                for piece in [(s, e.min(ms)), (s.max(me), e)] {
                    if piece.1 > piece.0 {
                        let _ = cut.push(piece);
                    }
                }
            }
            free = cut;
        }
        free.sort_unstable_by_key(|(s, e)| core::cmp::Reverse(e - s));
        kprintln!(
            "xsstub: image ends {image_end:#x}, {} E820 entries, {populated} pages populated",
            map.len()
        );
        let mut regions = free.into_iter().filter(|(s, e)| e - s >= 64 * 1024);
        let (start, end) = regions.next().ok_or(BootError::NoHeap)?;
        crate::arch::heap::init(start as usize, (end - start) as usize);
        for (s, e) in regions.take(2) {
            if crate::arch::heap::add_region(s as usize, (e - s) as usize).is_err() {
                kprintln!("xsstub: heap region {s:#x}..{e:#x} not added");
            }
        }
        for (s, e) in crate::arch::heap::regions() {
            kprintln!("xsstub: heap {s:#x}..{:#x} ({} KiB)", s + e, e / 1024);
        }
        Ok(())
    }

    /// Restores the engine from a live update's state and reconnects every ring.
    fn restore(&mut self, inh: handover::Inherited) -> Result<(), BootError> {
        let t0 = crate::arch::cpu::rdtsc();
        let image = handover::image_of(&inh.state).map_err(BootError::State)?;
        let mut engine = Engine::restore(image, engine_config(&self.queries))
            .map_err(|e| BootError::State(alloc::format!("{e:?}")))?;
        engine.set_time_ms(self.engine_time_ms());
        engine.set_domain_oracle(Arc::new(self.queries));
        self.engine = engine;
        self.live_updates = inh.state.live_updates;
        self.jump_tsc = Some(inh.tag.jump_tsc);
        let rings: alloc::vec::Vec<(ConnId, DomId, u32)> = self
            .engine
            .connections()
            .filter_map(|c| match c.kind {
                xsstate::conn::ConnKind::Ring { port, .. } => Some((c.id, c.domid, port.0)),
                xsstate::conn::ConnKind::Socket { .. } => None,
            })
            .collect();
        for (id, domid, port) in rings {
            let features = self.features_of(domid);
            if domid == self.own_domid {
                self.restore_own(id, port, features);
                continue;
            }
            match XenConn::open(&mut self.gfns, domid, port, features) {
                Ok(x) => {
                    self.by_port.insert(x.local_port, id);
                    self.conns.insert(id, x);
                }
                Err((what, e)) => {
                    kprintln!(
                        "xsstub: domain {}: {what} failed after the update ({})",
                        domid.0,
                        e.0
                    );
                    if domid == DomId::DOM0 {
                        return Err(BootError::Xen(what, e.0));
                    }
                    self.engine.domain_state(domid, DomainState::Dead);
                }
            }
        }
        for (id, bytes) in &inh.state.pending_input {
            if let Err(f) = self.engine.receive(*id, bytes) {
                kprintln!("xsstub: pending input of {id}: {f}");
            }
        }
        if let Some(r) = &inh.state.reply {
            self.engine.reply(
                r.conn,
                handover::REPLY_TYPE,
                r.req_id,
                r.tx_id,
                r.payload.clone(),
            );
        }
        for x in self.conns.values() {
            x.notify();
        }
        if !self.conns.values().any(XenConn::is_own) {
            // The previous image did not serve our own connection: do it now.
            self.connect_own(false);
        }
        handover::revoke(&inh.tag);
        let (lo, len) = (inh.paddr, inh.len);
        drop(inh);
        let start = (lo + 4095) & !4095;
        let end = (lo + len) & !4095;
        if end > start {
            if let Err(e) = crate::arch::heap::add_region(start as usize, (end - start) as usize) {
                kprintln!("xsstub: state pages not returned to the heap: {e:?}");
            }
        }
        let restore_us = time::tsc_to_ns(crate::arch::cpu::rdtsc() - t0) / 1000;
        kprintln!(
            "xsstub: live update {} restored: {} nodes, {} connections in {restore_us} us",
            self.live_updates,
            self.engine.store().len(),
            self.conns.len()
        );
        self.check_domains();
        Ok(())
    }

    /// The engine clock: Xen system time in milliseconds.
    fn engine_time_ms(&self) -> u64 {
        time::now_ns() / 1_000_000
    }

    /// Sets the `CONTROL version` answer.
    fn set_version(&mut self) {
        let id: String = crate::arch::build_id()
            .iter()
            .map(|b| alloc::format!("{b:02x}"))
            .collect();
        self.engine.set_version_text(alloc::format!(
            "xsstub {}{} build-id {id}\nlive-updates {}\n",
            env!("CARGO_PKG_VERSION"),
            FLAVOR,
            self.live_updates
        ));
    }

    /// The features the engine keeps for `domid` (all supported for a domain it has no
    /// record of).
    fn features_of(&self, domid: DomId) -> u32 {
        self.engine
            .domains()
            .find(|d| d.domid == domid)
            .map_or(xsstate::ring::SUPPORTED_FEATURES, |d| d.features)
    }

    /// Maps dom0's ring (its grant ref 1) and binds to the port it allocated for us. The
    /// ring's indices stay (dom0's first requests wait in it); `server_features` is set.
    fn connect_dom0(&mut self, port: u32) -> Result<(), BootError> {
        let features = self.features_of(DomId::DOM0);
        let conn = XenConn::open(&mut self.gfns, DomId::DOM0, port, features)
            .map_err(|(what, e)| BootError::Xen(what, e.0))?;
        conn.advertise();
        let id = self
            .engine
            .connect_domain(DomId::DOM0, EvtchnPort(port), conn.gfn());
        self.by_port.insert(conn.local_port, id);
        conn.notify();
        self.conns.insert(id, conn);
        kprintln!("xsstub: dom0 connected on port {port}");
        Ok(())
    }

    fn serve(&mut self) -> ! {
        // Wake-ups in a row that found no event: a storm of spurious upcalls is reported once.
        let mut idle_wakeups = 0u64;
        loop {
            let pending = events::take_pending();
            if pending.iter().next().is_none() {
                idle_wakeups += 1;
                if idle_wakeups == 100_000 {
                    kprintln!(
                        "xsstub: 100000 wake-ups without an event: {}",
                        events::debug_state()
                    );
                }
            } else {
                idle_wakeups = 0;
            }
            self.engine.set_time_ms(time::now_ns() / 1_000_000);
            let (used, free) = crate::arch::heap::stats();
            self.engine.set_heap_usage(used, free);
            for port in pending.iter() {
                if port == self.dom_exc_port {
                    self.check_domains();
                } else if port == self.timer_port {
                    self.timer_deadline_ms = None;
                }
            }
            self.pump_all();
            self.own_check_after_update();
            self.arm_timer();
            if !events::any_pending() {
                self.wait();
            }
        }
    }

    /// Moves bytes between every ring and the engine until nothing moves.
    fn pump_all(&mut self) {
        loop {
            let mut moved = false;
            let ids: alloc::vec::Vec<ConnId> = self.conns.keys().copied().collect();
            for id in ids {
                let Some(conn) = self.conns.get_mut(&id) else {
                    continue;
                };
                let outcome = conn.pump(&mut self.engine, id, self.trace);
                moved |= outcome.moved;
                if outcome.served && !self.first_served {
                    self.first_served = true;
                    match self.jump_tsc.take() {
                        Some(jump) => {
                            let us = time::tsc_to_ns(crate::arch::cpu::rdtsc() - jump) / 1000;
                            kprintln!("xsstub: first request served {us} us after the jump");
                        }
                        None => {
                            let ms = time::now_ns().saturating_sub(self.boot_ns) / 1_000_000;
                            kprintln!("xsstub: first request served {ms} ms after start");
                        }
                    }
                }
            }
            moved |= self.apply_effects();
            if !moved {
                return;
            }
        }
    }

    /// Carries out what the engine asked of the shell; returns whether anything changed.
    fn apply_effects(&mut self) -> bool {
        let effects = self.engine.take_effects();
        let any = !effects.is_empty();
        for effect in effects {
            match effect {
                Effect::Introduced {
                    conn,
                    domid,
                    port,
                    features,
                    ..
                } => match XenConn::open(&mut self.gfns, domid, port.0, features) {
                    Ok(mut x) => {
                        kprintln!("xsstub: domain {} introduced (port {})", domid.0, port.0);
                        // As C xenstored: indices to 0, server_features, and a reconnection
                        // the guest asked for completed (and notified).
                        x.introduce(Some(features));
                        // One more event than C sends: harmless to a guest (Linux's xenbus
                        // takes it for a spurious wake-up), and without it Linux guests booting
                        // under QEMU TCG's nested SVM froze the whole lab machine about once in
                        // ten boots, on Xen 4.17 and 4.20 alike (none in 60 boots with it).
                        x.notify();
                        self.by_port.insert(x.local_port, conn);
                        self.conns.insert(conn, x);
                        self.remember_unique_id(domid);
                    }
                    Err((what, e)) => {
                        kprintln!("xsstub: domain {}: {what} failed ({})", domid.0, e.0);
                        self.engine.disconnect(conn);
                    }
                },
                Effect::Reintroduced { conn, domid, port } => {
                    if let Some(x) = self.conns.get_mut(&conn) {
                        self.by_port.remove(&x.local_port);
                        match x.rebind(domid, port.0) {
                            Ok(()) => {
                                self.by_port.insert(x.local_port, conn);
                            }
                            Err(e) => {
                                kprintln!("xsstub: domain {}: rebind failed ({})", domid.0, e.0)
                            }
                        }
                    }
                }
                Effect::Released { conn, domid } => {
                    kprintln!("xsstub: domain {} released", domid.0);
                    self.unique_ids.remove(&domid);
                    if let Some(x) = conn.and_then(|c| self.conns.remove(&c)) {
                        self.by_port.remove(&x.local_port);
                        x.close(&mut self.gfns);
                    }
                }
                Effect::LiveUpdate {
                    conn,
                    req_id,
                    tx_id,
                    cmd,
                } => self.live_update(conn, req_id, tx_id, cmd),
                Effect::Log(line) => kprintln!("xsstub: {line}"),
            }
        }
        any
    }

    /// One `live-update` sub-command; a quiesced `-s` hands over and does not come back.
    fn live_update(
        &mut self,
        conn: ConnId,
        req_id: u32,
        tx_id: xsstate::TxId,
        cmd: xsstate::control::LiveUpdateCmd,
    ) {
        let now = self.engine_time_ms();
        let free = crate::arch::heap::stats().1;
        let ram_top = crate::arch::heap::regions()
            .iter()
            .map(|(base, len)| (base + len) as u64)
            .max()
            .unwrap_or(0);
        let decision = self.lu.handle(cmd, &mut self.engine, now, free, |elf| {
            let p = xsstate::pvh::parse(elf).map_err(|e| alloc::format!("{e}"))?;
            if p.load_hi > ram_top {
                return Err(alloc::format!(
                    "it loads up to {:#x} but this domain's RAM ends at {ram_top:#x}",
                    p.load_hi
                ));
            }
            Ok(())
        });
        let text = match decision {
            liveupdate::Decision::Reply(t) => t,
            liveupdate::Decision::Go => {
                let err = self.hand_over(conn, req_id, tx_id);
                kprintln!("xsstub: {err}");
                self.lu.reset(&mut self.engine);
                err
            }
        };
        let mut payload = text.into_bytes();
        payload.push(0);
        self.engine.reply(
            conn,
            xsstate::wire::MsgType::Control,
            req_id,
            tx_id,
            payload,
        );
    }

    /// Asks Xen about the introduced domains after `VIRQ_DOM_EXC`: on Xen 4.21+ the domains
    /// whose state changed (`get_domain_state` for `DOMID_INVALID`), else (or when that poll
    /// is refused) each introduced domain. A failed or refused query never counts as a
    /// death: the domain is kept and asked about again at the next `VIRQ_DOM_EXC`.
    fn check_domains(&mut self) {
        if self.queries.polls_changes() && self.poll_changed_domains() {
            return;
        }
        for domid in self.engine.introduced_domains() {
            if domid == DomId::DOM0 || domid == self.own_domid {
                continue;
            }
            let answer = self.queries.query(domid.0);
            self.apply_answer(domid, answer);
        }
    }

    /// Takes every changed domain from Xen until none is left; `false` if the poll failed.
    fn poll_changed_domains(&mut self) -> bool {
        for _ in 0..=DOMID_FIRST_RESERVED {
            match self.queries.next_changed() {
                Changed::Done => {
                    self.query_worked(DOMID_INVALID);
                    return true;
                }
                Changed::Failed(e) => {
                    self.query_failed(DOMID_INVALID, e);
                    return false;
                }
                Changed::Domain(d, answer) => {
                    let domid = DomId(d);
                    let known = self.engine.introduced_domains().contains(&domid);
                    if known && domid != DomId::DOM0 && domid != self.own_domid {
                        self.apply_answer(domid, answer);
                    }
                }
            }
        }
        true
    }

    /// Acts on what Xen said about an introduced domain.
    fn apply_answer(&mut self, domid: DomId, answer: Answer) {
        let mut liveness = answer.liveness();
        if let Answer::Exists {
            unique_id: Some(id),
            ..
        } = answer
        {
            match self.unique_ids.get(&domid) {
                // The domid was reused: the domain we knew is gone.
                Some(&known) if known != id => liveness = Liveness::Gone,
                Some(_) => {}
                None => {
                    self.unique_ids.insert(domid, id);
                }
            }
        }
        let state = match liveness {
            Liveness::Running => DomainState::Running,
            Liveness::Shutdown => DomainState::Shutdown,
            Liveness::Gone => DomainState::Dead,
            Liveness::Unknown(e) => {
                self.query_failed(domid.0, e);
                return;
            }
        };
        self.query_worked(domid.0);
        if state != DomainState::Running {
            kprintln!("xsstub: domain {} is {state:?}", domid.0);
        }
        self.engine.domain_state(domid, state);
    }

    /// Records the unique id of a newly introduced domain (Xen 4.21+).
    fn remember_unique_id(&mut self, domid: DomId) {
        if !self.queries.polls_changes() {
            return;
        }
        if let Answer::Exists {
            unique_id: Some(id),
            ..
        } = self.queries.query(domid.0)
        {
            self.unique_ids.insert(domid, id);
        }
    }

    /// A query about `domid` failed with `errno`: logged the first time only.
    fn query_failed(&mut self, domid: u16, errno: i64) {
        if self.query_errors.insert((domid, errno)) {
            if domid == DOMID_INVALID {
                kprintln!(
                    "xsstub: Xen refused the changed-domain query ({errno}); asking per domain"
                );
            } else {
                kprintln!(
                    "xsstub: Xen did not say whether domain {domid} lives ({errno}); kept, \
                     asked again at the next domain event"
                );
            }
        }
    }

    /// A query about `domid` worked: its next failure is logged again.
    fn query_worked(&mut self, domid: u16) {
        if !self.query_errors.is_empty() {
            self.query_errors.retain(|(d, _)| *d != domid);
        }
    }

    /// Sleeps until an event on one of our ports (the timer's included).
    fn wait(&mut self) {
        let mut ports: alloc::vec::Vec<u32> =
            alloc::vec::Vec::with_capacity(self.by_port.len() + 2);
        ports.push(self.dom_exc_port);
        ports.push(self.timer_port);
        ports.extend(self.by_port.keys().copied());
        // The engine's deadlines come by the single-shot timer (VIRQ_TIMER, polled below).
        let mut deadline_ns = 0;
        if ports.len() > events::POLL_MAX_PORTS {
            // Ports beyond the poll list still wake us, but one that was already pending
            // would not: look again within 10 ms.
            deadline_ns = time::now_ns() + 10_000_000;
        }
        if let Err(e) = events::wait(&ports, deadline_ns) {
            kprintln!("xsstub: SCHEDOP_poll failed ({}); spinning once", e.0);
        }
    }

    /// Arms the single-shot timer for the engine's next deadline.
    fn arm_timer(&mut self) {
        let Some(at_ms) = self.engine.next_wakeup_ms() else {
            return;
        };
        if self.timer_deadline_ms == Some(at_ms) {
            return;
        }
        self.timer_deadline_ms = Some(at_ms);
        if let Err(e) = time::set_timer(at_ms.saturating_mul(1_000_000)) {
            kprintln!("xsstub: timer: {}", e.0);
        }
    }
}
