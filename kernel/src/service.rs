//! The xenstore service under Xen: bring the drivers up, connect dom0, then serve every ring.

mod cmdline;
mod conns;
mod fault;
mod handover;
pub mod inherit;
mod keep;
mod layout;
mod liveupdate;
pub(crate) mod memory;
mod ownconn;
mod tags;
mod testguest;
mod timeline;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::sync::Arc;

use xsstate::engine::{DomainState, Effect, Engine, EngineConfig};
use xsstate::ids::{ConnId, DomId, EvtchnPort};
use xsstate::memory::MemorySource;

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

/// Requests an unprivileged connection is served per round.
const GUEST_BUDGET: usize = 8;
/// Requests a privileged connection is served per turn (dom0's tools share one ring).
const PRIV_BUDGET: usize = 64;
/// Rounds `pump_all` runs before events are looked at again.
const PUMP_ROUNDS: usize = 64;

/// Why the service could not start.
#[derive(Debug)]
enum BootError {
    /// A driver failed (which, and Xen's errno).
    Xen(&'static str, i64),
    /// The start info is missing or corrupt.
    StartInfo,
    /// The command line is unusable.
    Cmdline(cmdline::CmdlineError),
    /// No usable RAM for the heap.
    Heap(memory::MemError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Xen(what, rc) => write!(f, "{what} failed: Xen error {rc}"),
            BootError::StartInfo => write!(f, "no valid hvm_start_info"),
            BootError::Cmdline(e) => write!(f, "command line: {e}"),
            BootError::Heap(e) => write!(f, "{e}"),
        }
    }
}

fn xen_err(what: &'static str) -> impl Fn(events::XenError) -> BootError {
    move |e| BootError::Xen(what, e.0)
}

/// The engine's settings on this hypervisor, then the command line's limits: on Xen 4.17 the
/// path-max quota limits dom0 too and `quota` lists 4.17's names; from 4.22 every domain may
/// read `@releaseDomain`; as the C xenstored of each release does (dom0's tools expect its
/// rules). A live update's state may still replace the quotas.
fn engine_config(queries: &DomainQueries, opts: &cmdline::Options) -> EngineConfig {
    let before_4_18 = queries.xen < xen::domctl_abi::XenVersion::new(4, 18);
    let mut config = EngineConfig {
        release_domain_for_all: queries.xen >= xen::domctl_abi::XenVersion::new(4, 22),
        path_max_for_privileged: before_4_18,
        quota_style: if before_4_18 {
            xsstate::quota::QuotaStyle::Xen417
        } else {
            xsstate::quota::QuotaStyle::Xen418
        },
        ..EngineConfig::default()
    };
    for (_, setting) in &opts.limits {
        setting.apply(&mut config);
    }
    config
}

/// Bytes the heap holds back for when its free memory is too fragmented (see
/// `arch::heap::arm_reserve`): eight slab chunks.
const EMERGENCY_RESERVE: usize = 128 * 1024;

/// Runs the xenstore service (or, when asked, the misbehaving test guest); never returns.
/// `rust_tsc` is the TSC when Rust code started (for a live update's timeline).
pub fn run(start_info_paddr: u64, rust_tsc: u64) -> ! {
    match start(start_info_paddr, rust_tsc) {
        Ok(mut stub) => stub.serve(),
        Err(e) => {
            // After a live update, a way back may be armed; otherwise stop loudly.
            let reason = alloc::format!("cannot start: {e}");
            if inherit::armed() {
                inherit::fail(&reason)
            }
            crate::console::flush_deferred();
            kprintln!("xsstub: {reason}");
            xen::sched::shutdown(true)
        }
    }
}

/// How the domain ends: a crash (a fatal CPU exception) while a live update is being taken
/// over rolls back to the old image instead.
fn shutdown_or_roll_back(crashed: bool) -> ! {
    if crashed && inherit::armed() {
        inherit::fail("a fatal CPU exception while taking over (see the console)")
    }
    xen::sched::shutdown(crashed)
}

/// Brings up the hypercall page and events, then decides what this domain is.
fn start(start_info_paddr: u64, rust_tsc: u64) -> Result<Stub, BootError> {
    xen::hypercall::init().map_err(|_| BootError::Xen("hypercall page", -1))?;
    timeline::mark("hypercall-page");
    crate::arch::exit::set_shutdown_hook(shutdown_or_roll_back);
    let info = xen::start_info::parse(start_info_paddr).ok_or(BootError::StartInfo)?;
    timeline::mark("start-info");
    // A live update: keep the console quiet until the first request is served (every byte
    // to port 0xE9 is a VM exit inside the downtime).
    // (`--no-defer` keeps it talking, to see where a failing update stops.)
    let quiet = !info
        .cmdline
        .split_ascii_whitespace()
        .any(|t| t == "--no-defer");
    // A live update's state tag: what the old image knew (see `tags::EarlyFacts`).
    let facts = info.modules.iter().find_map(|m| {
        let c = xen::start_info::read_cstr(m.cmdline_paddr);
        c.starts_with(tags::STATE_TAG)
            .then(|| tags::EarlyFacts::parse(&c))
    });
    if quiet && facts.is_some() {
        crate::console::defer(true);
    }
    let si_mapped = facts.is_some_and(|f| f.shared_info_gfn == layout::SHARED_INFO_GFN);
    events::init_with(layout::SHARED_INFO_GFN, si_mapped).map_err(xen_err("shared info"))?;
    timeline::mark("events");
    let boot_ns = time::now_ns();
    kprintln!("xsstub {}{} starting", env!("CARGO_PKG_VERSION"), FLAVOR);
    let mem_facts = facts.map(|f| f.mem).filter(|m| m.populated != 0);
    memory::init_heap(&info, start_info_paddr, mem_facts).map_err(BootError::Heap)?;
    let heap_tsc = crate::arch::cpu::rdtsc();
    if testguest::wanted(&info.cmdline) {
        testguest::run()
    }
    Stub::boot(&info, boot_ns, rust_tsc, heap_tsc, facts)
}

/// Connects the PV console (xenconsoled's ring) as a second log output.
fn init_pv_console() {
    if let Err(e) = xen::pvconsole::init() {
        kprintln!("xsstub: no PV console ({})", e.0);
    }
}

/// Whether the image `p` reads what this one hands over (its `XSSTUB` note): one without the
/// note is refused unless `force` (`live-update -F`); one that declares other versions always.
fn compatible(p: &xsstate::pvh::PvhImage, force: bool) -> Result<(), String> {
    use xsstate::compat::{IMAGE_VERSION, THIS};
    match p.compat {
        Some(c) if c.reads_ours() => Ok(()),
        Some(c) => Err(alloc::format!(
            "it reads hand-over buffers v{}..v{} and state images v{}..v{}; this image hands \
             over a v{} buffer with a v{IMAGE_VERSION} image",
            c.handover.min,
            c.handover.max,
            c.image.min,
            c.image.max,
            THIS.handover.max
        )),
        None if force => Ok(()),
        None => Err(String::from(
            "it does not declare what state it reads (no XSSTUB compatibility note); \
             add -F to update into it anyway",
        )),
    }
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
    /// The new image made ready as soon as it was complete.
    staged: Option<handover::Staged>,
    /// `--no-defer`: the console is not kept back during a live update.
    no_defer: bool,
    /// Live updates since the domain started.
    live_updates: u64,
    /// Live updates rolled back since the domain started.
    rollbacks: u64,
    /// The live update that started this image, stamp by stamp (reported once it serves).
    timeline: timeline::Timeline,
    /// The old image's output, printed once this one serves.
    inherited_log: alloc::vec::Vec<u8>,
    /// Nodes restored (for the report).
    inherited_nodes: usize,
    /// Bytes of the state they came from.
    inherited_bytes: usize,
    /// Set when this image was jumped back into: why the update failed.
    rolled_back: Option<String>,
    /// The update's log and timeline were printed.
    update_reported: bool,
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
    fn boot(
        info: &xen::start_info::BootInfo,
        boot_ns: u64,
        rust_tsc: u64,
        heap_tsc: u64,
        facts: Option<tags::EarlyFacts>,
    ) -> Result<Stub, BootError> {
        // After a live update the console waits until the service answers (two hypercalls
        // fewer inside the downtime): see `Stub::after_update_served`.
        if facts.is_none() {
            init_pv_console();
        }
        kprintln!("xsstub: command line `{}`", info.cmdline);
        let opts = cmdline::parse(&info.cmdline).map_err(BootError::Cmdline)?;
        for (written, setting) in &opts.limits {
            kprintln!("xsstub: option `{written}`: {}", setting.describe());
        }
        for written in &opts.inert {
            kprintln!("xsstub: option `{written}`: nothing to do in a stub domain");
        }
        for e in &opts.bad {
            kprintln!("xsstub: option `{}` ignored: {}", e.option, e.reason);
        }
        for t in &opts.ignored {
            kprintln!("xsstub: ignoring option `{t}`");
        }
        // The grant frames an old image mapped where this one maps them stay mapped.
        match facts {
            Some(f) if f.grant_gfn == layout::GRANT_FRAMES_GFN && f.grant_frames >= 1 => {
                xen::gnttab::adopt_own(f.grant_gfn, f.grant_frames.min(layout::GRANT_FRAMES_MAX))
            }
            _ => xen::gnttab::init_own(layout::GRANT_FRAMES_GFN, layout::GRANT_FRAMES)
                .map_err(xen_err("grant table"))?,
        }
        timeline::mark("grant-table");
        fault::from_cmdline(&info.cmdline);
        // A live update's state (and the image to roll back to): from here until it is
        // restored, any failure rolls back, or stops the domain loudly.
        let found = match inherit::find(info) {
            Ok(f) => f,
            Err(reason) => inherit::fail(&reason),
        };
        timeline::mark("find");
        if found.is_some() && !opts.no_defer {
            crate::console::defer(true);
        }
        // After a live update the ports may be kept ones: `inherit` takes them.
        let (dom_exc_port, timer_port) = if found.is_some() {
            (0, 0)
        } else {
            (
                events::bind_virq(xen_sys::VIRQ_DOM_EXC).map_err(xen_err("VIRQ_DOM_EXC"))?,
                events::bind_virq(xen_sys::VIRQ_TIMER).map_err(xen_err("VIRQ_TIMER"))?,
            )
        };
        // After a live update, what the old image learnt of this domain and this hypervisor
        // (the same ones) spares the hypercalls that would ask again.
        let carried = facts.filter(|_| found.is_some());
        let own_domid = match carried.and_then(|f| f.domid) {
            Some(d) => d,
            None => events::own_domid().map_err(xen_err("own domain id"))?,
        };
        timeline::mark("domid");
        let (queries, how) = match carried
            .and_then(|f| f.queries)
            .and_then(DomainQueries::from_words)
        {
            Some(q) => (q, " (as the previous image found)"),
            None => (DomainQueries::detect(own_domid), ""),
        };
        kprintln!("xsstub: domain {own_domid}; {}{how}", queries.describe());
        timeline::mark("queries");
        if found.is_none() {
            ownconn::log_boot_info(info);
        }
        let mut stub = Stub {
            engine: Engine::new(engine_config(&queries, &opts)),
            conns: BTreeMap::new(),
            by_port: BTreeMap::new(),
            gfns: GfnPool::new(layout::MAP_WINDOW_GFN, layout::MAP_WINDOW_PAGES),
            dom_exc_port,
            timer_port,
            timer_deadline_ms: None,
            boot_ns,
            first_served: false,
            trace: opts.trace,
            no_defer: opts.no_defer,
            cmdline: String::from(info.cmdline.as_str()),
            lu: liveupdate::LiveUpdate::default(),
            staged: None,
            live_updates: 0,
            rollbacks: 0,
            timeline: timeline::Timeline::default(),
            inherited_log: alloc::vec::Vec::new(),
            inherited_nodes: 0,
            inherited_bytes: 0,
            rolled_back: None,
            update_reported: false,
            own_domid: DomId(own_domid),
            queries,
            query_errors: BTreeSet::new(),
            unique_ids: BTreeMap::new(),
            own_check_due: None,
        };
        stub.timeline.entry = crate::arch::handover::stamps();
        stub.timeline.rust = rust_tsc;
        stub.timeline.heap = heap_tsc;
        stub.engine.set_time_ms(boot_ns / 1_000_000);
        // SET_PERMS asks Xen whether an owner exists, as C xenstored does.
        stub.engine.set_domain_oracle(Arc::new(queries));
        stub.engine
            .set_memory(alloc::sync::Arc::new(memory::KernelMemory));
        match found {
            Some(f) => {
                if let Err(reason) = stub.inherit(f) {
                    inherit::fail(&reason)
                }
            }
            None => {
                match opts.dom0_port {
                    Some(port) => stub.connect_dom0(port)?,
                    None => kprintln!("xsstub: no --event: not serving dom0"),
                }
                stub.connect_own(true);
            }
        }
        timeline::mark("inherited");
        stub.set_version();
        timeline::mark("version");
        if stub.timeline.restore_start == 0 {
            kprintln!(
                "xsstub: serving ({} KiB heap free)",
                crate::arch::heap::stats().1 / 1024
            );
        }
        Ok(stub)
    }

    /// Holds the heap's emergency reserve ([`EMERGENCY_RESERVE`]) whenever the heap has
    /// room for it four times over, and logs when it was used.
    fn keep_reserve(&mut self, free: usize) {
        if crate::arch::heap::take_reserve_used() {
            kprintln!(
                "xsstub: heap: the emergency reserve ({} KiB) was used: the free memory lies \
                 in holes too small for new blocks",
                EMERGENCY_RESERVE / 1024
            );
        }
        if free > 4 * EMERGENCY_RESERVE && !crate::arch::heap::reserve_armed() {
            crate::arch::heap::arm_reserve(EMERGENCY_RESERVE);
        }
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
            "xsstub {}{} build-id {id}\nlive-updates {}\nrollbacks {}\n",
            env!("CARGO_PKG_VERSION"),
            FLAVOR,
            self.live_updates,
            self.rollbacks
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
            let marking = self.timeline.marking();
            if marking {
                timeline::mark("loop");
            }
            self.engine.set_time_ms(time::now_ns() / 1_000_000);
            let (used, free) = crate::arch::heap::stats();
            self.engine.set_heap_usage(used, free);
            self.keep_reserve(free);
            if marking {
                timeline::mark("reserve");
            }
            for port in pending.iter() {
                if port == self.dom_exc_port {
                    self.check_domains();
                } else if port == self.timer_port {
                    self.timer_deadline_ms = None;
                }
            }
            let more = self.pump_all();
            self.own_check_after_update();
            if self.lu.deadline_ms().is_some() {
                let now_ms = self.engine_time_ms();
                if let Some(what) = self.lu.abandon_if_idle(&mut self.engine, now_ms) {
                    kprintln!("xsstub: {what}");
                    self.staged = None;
                }
            }
            self.arm_timer();
            if !more && !events::any_pending() {
                if self.timeline.restore_start != 0 {
                    self.after_update_served();
                }
                self.wait();
            }
        }
    }

    /// Moves bytes between every ring and the engine until nothing moves (or for a bounded
    /// number of rounds, so that events are looked at again). Fair: each round serves every
    /// unprivileged connection at most [`GUEST_BUDGET`] requests, round-robin, and the
    /// privileged domain's connections before and after each of them, so dom0 never waits
    /// behind a guest's backlog.
    /// Returns whether work is left (the rounds ran out).
    fn pump_all(&mut self) -> bool {
        for _ in 0..PUMP_ROUNDS {
            let mut moved = false;
            let (privileged, others): (alloc::vec::Vec<ConnId>, alloc::vec::Vec<ConnId>) = self
                .conns
                .keys()
                .copied()
                .partition(|id| self.engine.is_privileged(*id));
            moved |= self.pump_some(&privileged, PRIV_BUDGET);
            for id in others {
                moved |= self.pump_some(&[id], GUEST_BUDGET);
                moved |= self.pump_some(&privileged, PRIV_BUDGET);
            }
            moved |= self.apply_effects();
            if self.timeline.marking() {
                timeline::mark("effects");
            }
            if !moved {
                return false;
            }
        }
        true
    }

    /// One pump of each of `ids` with `budget` requests; whether anything moved (or more
    /// waits).
    fn pump_some(&mut self, ids: &[ConnId], budget: usize) -> bool {
        let mut moved = false;
        for &id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            let marking = self.timeline.marking();
            if marking {
                timeline::mark("pump");
            }
            let outcome = conn.pump(&mut self.engine, id, self.trace, budget);
            if marking {
                timeline::mark("pumped");
            }
            moved |= outcome.moved || outcome.more;
            if outcome.replied && self.timeline.first_reply == 0 {
                self.timeline.first_reply = outcome.replied_tsc;
            }
            if outcome.served && !self.first_served {
                self.first_served = true;
                self.first_request();
            }
        }
        moved
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
        // What the heap can give, growth included (the staged image is allocated).
        let free = memory::KernelMemory.stats().available();
        let ram_top = crate::arch::heap::regions()
            .iter()
            .map(|(base, len)| (base + len) as u64)
            .max()
            .unwrap_or(0);
        let decision = self
            .lu
            .handle(cmd, &mut self.engine, now, free, |elf, force| {
                let p = xsstate::pvh::parse(elf).map_err(|e| alloc::format!("{e}"))?;
                if p.load_hi > ram_top {
                    return Err(alloc::format!(
                        "it loads up to {:#x} but this domain's RAM ends at {ram_top:#x}",
                        p.load_hi
                    ));
                }
                compatible(&p, force)
            });
        self.lu.note_command(now);
        let text = match decision {
            liveupdate::Decision::Reply(t) => {
                // The image just became complete (or an abort dropped it): stage it now,
                // while serving, not inside the update's downtime.
                if !self.lu.complete() {
                    self.staged = None;
                } else if self.staged.is_none() {
                    match handover::stage(self.lu.image()) {
                        Ok(s) => self.staged = Some(s),
                        Err(e) => kprintln!("xsstub: {e} (at staging; -s will say why)"),
                    }
                }
                if t == "BUSY" {
                    let open: alloc::vec::Vec<String> = self
                        .engine
                        .domains_with_transactions()
                        .iter()
                        .map(|d| alloc::format!("{}", d.0))
                        .collect();
                    kprintln!(
                        "xsstub: live-update: BUSY: transactions open by domain(s) {}",
                        open.join(", ")
                    );
                }
                t
            }
            liveupdate::Decision::Go => {
                let err = self.hand_over(conn, req_id, tx_id);
                kprintln!("xsstub: {err}");
                self.lu.reset(&mut self.engine);
                self.staged = None;
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

    /// The first request after boot was served: after a live update, everything the update
    /// kept back (the old image's output, this image's own, the timeline).
    fn first_request(&mut self) {
        if self.timeline.restore_start == 0 {
            let ms = time::now_ns().saturating_sub(self.boot_ns) / 1_000_000;
            kprintln!("xsstub: first request served {ms} ms after start");
            return;
        }
        self.timeline.first_request = crate::arch::cpu::rdtsc();
        self.after_update_served();
    }

    /// Once the updated service has answered (or has nothing to do): the console comes back,
    /// with what the old image and this one logged meanwhile, and the timeline.
    fn after_update_served(&mut self) {
        if self.update_reported {
            return;
        }
        self.update_reported = true;
        init_pv_console();
        crate::console::write_bytes(&self.inherited_log);
        self.inherited_log = alloc::vec::Vec::new();
        crate::console::flush_deferred();
        match &self.rolled_back {
            Some(reason) => kprintln!(
                "xsstub: live update rolled back ({reason}); {} nodes, {} connections \
                 restored; rollbacks {}",
                self.inherited_nodes,
                self.conns.len(),
                self.rollbacks
            ),
            None => kprintln!(
                "xsstub: live update {} restored: {} nodes, {} connections from a {}-byte state",
                self.live_updates,
                self.inherited_nodes,
                self.conns.len(),
                self.inherited_bytes
            ),
        }
        for line in self.timeline.report(self.live_updates) {
            kprintln!("xsstub: {line}");
        }
        for line in timeline::marks_report(self.timeline.rust, self.timeline.entry.entry64) {
            kprintln!("xsstub: live update {} {line}", self.live_updates);
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
        let next = match (self.engine.next_wakeup_ms(), self.lu.deadline_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at_ms) = next else {
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
