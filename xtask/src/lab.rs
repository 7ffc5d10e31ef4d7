//! `cargo xtask lab`: Xen (Debian 12's 4.17 or Debian 13's 4.20) in QEMU with a Linux dom0
//! running `qemu-tests/` scenarios against C xenstored or the xenstore stub domain.

mod assets;
mod cpio;
mod debian;
mod elf;
mod harness;
mod kernel;
mod qemu;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{Boot, Outcome, Status};

/// Every scenario `cargo xtask lab` runs by default with the stub domain (packaged start
/// path), in order.
pub const ALL: [&str; 27] = [
    "ownconn",
    "xencommons",
    "tools",
    "session",
    "guest",
    "lifecycle",
    "devices",
    "guest-pv",
    "badring",
    "cycles",
    "lu-refuse",
    "lu-quiesce",
    "lu-incompatible",
    "liveupdate",
    "lu-cycle",
    "lu-rollback",
    "lu-load",
    "abuse-requests",
    "abuse-watches",
    "abuse-transactions",
    "abuse-malformed",
    "abuse-churn",
    "abuse-many-guests",
    "lu-10k",
    "memattack",
    "dom0-exhaust",
    // Last: it may leave dom0 without xenstore.
    "lu-corrupt-state",
];

/// The suite's settings for its main boot: two guest create/destroy cycles instead of ten
/// (each Linux guest boots in 40-100 s under TCG; `guest`, `liveupdate` and the attacks boot
/// more).
const SUITE_ENV: &[(&str, &str)] = &[("XSLAB_CYCLES", "2")];

/// Where the suite's main boot is cut in two boots that can run at once: from here on, the
/// attacks, the big stores and, last, the scenario that may leave dom0 without xenstore.
const SUITE_SECOND_BOOT: &str = "abuse-requests";

/// What the suite runs in a stub domain that may grow (`XENSTORE_MAX_DOMAIN_SIZE`).
pub const GROWN: [&str; 1] = ["grow"];
/// That boot's settings: 8 MiB, growing up to 64 MiB (`XENSTORE_MAX_DOMAIN_SIZE`), with the
/// scenario's 100,000 nodes (about 10 MiB of store: the heap grows six times; 7 minutes under
/// TCG, 5 of them filling).
const GROWN_ENV: &[(&str, &str)] = &[("XSLAB_STUB_MAXMEM", "64")];

/// What the boot with the direct start path (`--start direct`) runs: `options` first, while
/// the stub's boot lines are still in Xen's console ring.
pub const DIRECT: [&str; 2] = ["options", "direct"];
/// That boot's settings: C xenstored's limit options on the stub's command line
/// (`init-xenstore-domain --param`), as `qemu-tests/scenarios/options.sh` expects them.
const DIRECT_ENV: &[(&str, &str)] = &[(
    "XSLAB_STUB_PARAM",
    "-E 3000 --transaction=20 -W 256 -Q node-permissions=8 --quota-soft memory=3000000 \
     -w watch-event=30 --no-fork -K -S bogus",
)];

/// New boots after the emulated machine froze, per plan (each goes on where it stopped).
/// Clean-clone runs saw up to four freezes in one version's main boot.
const FREEZE_RETRIES: usize = 8;

/// Default limit for one boot, in seconds.
const DEFAULT_TIMEOUT: u64 = 5400;
/// Default limit for one scenario, in seconds (`XSLAB_SCENARIO_TIMEOUT` overrides it).
/// `memattack` boots four Linux guests one after the other and took 800 s in a clean-clone
/// run on this 2-core machine.
const SCENARIO_TIMEOUT: u64 = 1500;

/// The limit for one scenario: `XSLAB_SCENARIO_TIMEOUT` or the default, at most the boot's.
fn scenario_timeout(boot: Duration) -> Duration {
    let secs = std::env::var("XSLAB_SCENARIO_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(SCENARIO_TIMEOUT);
    Duration::from_secs(secs.min(boot.as_secs()))
}

/// Debian packages the lab uses, with a file that shows each is installed. Xen 4.20's
/// packages are not installed: they are fetched into `.lab/` (see `debian`).
const PACKAGES: [(&str, &str); 8] = [
    ("xz-utils", "/usr/bin/xz"),
    ("zstd", "/usr/bin/zstd"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("xen-hypervisor-4.17-amd64", "/boot/xen-4.17-amd64.gz"),
    (
        "xen-utils-4.17",
        "/usr/lib/xen-4.17/bin/init-xenstore-domain",
    ),
    ("xen-utils-common", "/etc/xen/scripts/launch-xenstore"),
    ("xenstore-utils", "/usr/bin/xenstore"),
    ("busybox-static", "/bin/busybox"),
];

const USAGE: &str = "usage: cargo xtask lab [--xen 4.17|4.20|all] [--store c|stub]
                       [--start launch|direct] [--compare] [--suite] [--demo]
                       [--timeout SECS] [--keep] [--image PATH] [--file NAME=PATH]...
                       [SCENARIO...]

  --xen V          the Xen version: 4.17 (Debian 12, this machine's packages), 4.20
                   (Debian 13's packages and Linux 6.12, fetched into .lab/), or all (both,
                   two QEMUs at once, each taking the next boot); default 4.17
  --store c|stub   xenstore in dom0 (C xenstored) or the stub domain (default: stub)
  --start launch|direct
                   how dom0 starts the stub domain: the packaged launch-xenstore with
                   /etc/default/xencommons (default), or init-xenstore-domain directly
  --compare        SCENARIOs and the session with the stub domain, the session with C
                   xenstored of the same Xen version; the two transcripts must be identical
  --suite          what `cargo xtask test` runs (default --xen all): every scenario with
                   the packaged start (in two boots), `grow` (64 MiB), `options` and
                   `direct` with the direct start, the C comparison
  --demo           the demo scenario with the stub domain, its output on stdout
  --timeout SECS   limit for one boot (default 5400)
  --keep           keep the serial log and the initramfs even on success
  --image PATH     the stub-domain image (default: what `cargo xtask build` builds)
  --file NAME=PATH also put PATH into dom0 as /xslab/NAME (repeatable)
  SCENARIO         names from qemu-tests/scenarios (default: every one but demo,
                   lu-bench, fair-bench, grow (own boot), options and direct; those two
                   need --start direct, which runs them by default)

environment: XSLAB_EXTRA_XEN_ARGS, XSLAB_EXTRA_DOM0_ARGS, XSLAB_SMP (default 1),
XSLAB_CYCLES (default 10), XSLAB_SCENARIO_TIMEOUT (seconds, default 1500), XSLAB_STUB_MEMORY
(MiB, default 8) and XSLAB_STUB_MAXMEM (MiB: --maxmem; `grow` needs it), XSLAB_STUB_PARAM (the
stub's --param, e.g. --memscan), XSLAB_GROW_NODES (default 100000), XSLAB_FAIR_SCHED=control
(fair-bench: dom0 and the xenstore domain weighted 512, credit2's rate limit 0) or dedicated
(with XSLAB_SMP=2: the control plane pinned to CPU 0, the guest to CPU 1), XSLAB_FAIR_LOAD=hog
(fair-bench's control: the guest only spins the CPU),
XSLAB_VERBOSE=1 (echo the whole console), XSLAB_PARALLEL=0 (one boot at a time), XSLAB_DEBIAN_MIRROR,
XSLAB_DEBIAN_SECURITY (where Debian 13's packages come from), XSLAB_QEMU=trixie|system (Debian
13's QEMU, fetched into .lab/, or this machine's qemu-system-x86_64; default: Debian 13's for
Xen 4.20, this machine's for 4.17)
";

/// A Xen version the lab boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Xen {
    /// Debian 12 (bookworm): Xen 4.17 and Linux 6.1, this machine's packages.
    V417,
    /// Debian 13 (trixie): Xen 4.20 and Linux 6.12, fetched into `.lab/`.
    V420,
}

impl Xen {
    /// Every version, in the order runs report them.
    pub const ALL: [Xen; 2] = [Xen::V417, Xen::V420];

    /// `4.17`, `4.20`.
    pub fn name(self) -> &'static str {
        match self {
            Xen::V417 => "4.17",
            Xen::V420 => "4.20",
        }
    }

    /// Where the version's tools live, `/usr/lib/xen-X.Y/bin`.
    pub fn bin(self) -> String {
        format!("/usr/lib/xen-{}/bin", self.name())
    }

    fn parse(s: &str) -> Option<Xen> {
        Xen::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Where xenstore runs in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// C xenstored (the version's `xenstored`) in dom0: the baseline.
    C,
    /// Our image as the xenstore stub domain.
    Stub,
}

impl Store {
    /// The name used on the command line and in dom0.
    pub fn name(self) -> &'static str {
        match self {
            Store::C => "c",
            Store::Stub => "stub",
        }
    }
}

/// How dom0 starts the stub domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// `/etc/xen/scripts/launch-xenstore` with `/etc/default/xencommons`, as a host does.
    Launch,
    /// `init-xenstore-domain --kernel ... --memory ...` directly.
    Direct,
}

impl Start {
    /// The name used on the command line and in dom0 (`XSLAB_START`).
    pub fn name(self) -> &'static str {
        match self {
            Start::Launch => "launch",
            Start::Direct => "direct",
        }
    }
}

/// Parsed `cargo xtask lab` arguments.
struct Options {
    versions: Vec<Xen>,
    store: Store,
    start: Start,
    compare: bool,
    suite: bool,
    demo: bool,
    timeout: Duration,
    keep: bool,
    image: Option<PathBuf>,
    files: Vec<(String, PathBuf)>,
    scenarios: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        versions: Vec::new(),
        store: Store::Stub,
        start: Start::Launch,
        compare: false,
        suite: false,
        demo: false,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT),
        keep: false,
        image: None,
        files: Vec::new(),
        scenarios: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match a.as_str() {
            "--xen" => {
                let v = value("--xen")?;
                for name in v.split(',') {
                    let add: Vec<Xen> = match name {
                        "all" => Xen::ALL.to_vec(),
                        n => vec![Xen::parse(n)
                            .ok_or_else(|| format!("--xen {n}: 4.17, 4.20 or all\n\n{USAGE}"))?],
                    };
                    for x in add {
                        if !o.versions.contains(&x) {
                            o.versions.push(x);
                        }
                    }
                }
            }
            "--store" => {
                o.store = match value("--store")?.as_str() {
                    "c" => Store::C,
                    "stub" => Store::Stub,
                    other => return Err(format!("--store {other}: c or stub\n\n{USAGE}")),
                }
            }
            "--start" => {
                o.start = match value("--start")?.as_str() {
                    "launch" => Start::Launch,
                    "direct" => Start::Direct,
                    other => return Err(format!("--start {other}: launch or direct\n\n{USAGE}")),
                }
            }
            "--compare" => o.compare = true,
            "--suite" => o.suite = true,
            "--demo" => o.demo = true,
            "--keep" => o.keep = true,
            "--timeout" => {
                let v = value("--timeout")?;
                let secs = v
                    .parse::<u64>()
                    .map_err(|_| format!("--timeout {v}: not a number of seconds"))?;
                o.timeout = Duration::from_secs(secs);
            }
            "--image" => o.image = Some(PathBuf::from(value("--image")?)),
            "--file" => {
                let v = value("--file")?;
                let (name, path) = v
                    .split_once('=')
                    .filter(|(n, _)| !n.is_empty() && !n.contains('/'))
                    .ok_or_else(|| format!("--file {v}: NAME=PATH\n\n{USAGE}"))?;
                if !Path::new(path).is_file() {
                    return Err(format!("--file {v}: {path} is not a file"));
                }
                o.files.push((name.to_string(), PathBuf::from(path)));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n\n{USAGE}")),
            s => o.scenarios.push(s.to_string()),
        }
    }
    if o.versions.is_empty() {
        o.versions = if o.suite {
            Xen::ALL.to_vec()
        } else {
            vec![Xen::V417]
        };
    }
    for s in &o.scenarios {
        if !crate::util::root()
            .join(format!("qemu-tests/scenarios/{s}.sh"))
            .is_file()
        {
            return Err(format!("no scenario qemu-tests/scenarios/{s}.sh"));
        }
    }
    Ok(o)
}

/// One planned boot of one version.
#[derive(Clone)]
struct Plan {
    store: Store,
    start: Start,
    scenarios: Vec<String>,
    image: Option<PathBuf>,
    /// Settings of this boot (e.g. the stub domain's maximum memory).
    env: &'static [(&'static str, &'static str)],
}

/// What one version's boots gave.
struct VersionRun {
    xen: Xen,
    /// Seconds its boots took together (assets excluded; boots of both versions share the
    /// two QEMU slots, so this is the version's share, not a stretch of wall time).
    secs: f64,
    /// Passed, failed, skipped verdicts over its boots.
    counts: (usize, usize, usize),
    /// Every failure (empty: the version passed).
    errors: Vec<String>,
    /// Boots run again because the emulated machine froze.
    retried: Vec<String>,
}

/// `cargo xtask lab ...`.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if o.demo {
        let image = stub_image(o.image.as_deref())?;
        let xen = o.versions.first().copied().unwrap_or(Xen::V417);
        return demo_on(xen, &image);
    }
    prepare()?;
    let image = stub_image(o.image.as_deref())?;
    if o.suite {
        return run_versions(&o, &o.versions, &suite_plans(&image), true);
    }
    let scenarios: Vec<String> = if !o.scenarios.is_empty() {
        o.scenarios.clone()
    } else if o.start == Start::Direct {
        DIRECT.iter().map(|s| s.to_string()).collect()
    } else {
        ALL.iter().map(|s| s.to_string()).collect()
    };
    let mut plans = Vec::new();
    if o.compare {
        let mut with_session = scenarios.clone();
        if !with_session.iter().any(|s| s == "session") {
            with_session.push("session".into());
        }
        plans.push(Plan {
            store: Store::Stub,
            start: o.start,
            scenarios: with_session,
            image: Some(image.clone()),
            env: &[],
        });
        plans.push(c_session_plan());
    } else {
        // The direct start path takes the suite's command-line options unless the caller
        // gives others.
        let env = if o.start == Start::Direct && std::env::var_os("XSLAB_STUB_PARAM").is_none() {
            DIRECT_ENV
        } else {
            &[]
        };
        plans.push(Plan {
            store: o.store,
            start: o.start,
            scenarios,
            // C mode carries the image too: the misbehaving test guest is the same image.
            image: Some(image),
            env,
        });
    }
    run_versions(&o, &o.versions, &plans, o.compare)
}

/// The C xenstored baseline: the session, whose transcript the stub's must match.
fn c_session_plan() -> Plan {
    Plan {
        store: Store::C,
        start: Start::Launch,
        scenarios: vec!["session".into()],
        image: None,
        env: &[],
    }
}

/// The lab as `cargo xtask test` runs it, for Xen 4.17 and 4.20 at once (one QEMU each):
/// every scenario with the stub domain started by the packaged scripts, the direct start path,
/// then the session with the same version's C xenstored, whose output must match the stub's.
pub fn run_for_test() -> Result<(), String> {
    prepare()?;
    let o = parse(&[])?;
    let image = stub_image(None)?;
    run_versions(&o, &Xen::ALL, &suite_plans(&image), true)
}

/// The boots of the test suite, per version, longest first (the order the two QEMU slots
/// take them in): the main boot's scenarios in two boots, then `grow`, the direct start path,
/// and the session with C xenstored.
fn suite_plans(image: &Path) -> [Plan; 5] {
    let cut = ALL
        .iter()
        .position(|s| *s == SUITE_SECOND_BOOT)
        .unwrap_or(ALL.len());
    let (first, second) = ALL.split_at(cut);
    let stub = |scenarios: &[&str], start: Start, env| Plan {
        store: Store::Stub,
        start,
        scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
        image: Some(image.to_path_buf()),
        env,
    };
    [
        stub(second, Start::Launch, SUITE_ENV),
        stub(first, Start::Launch, SUITE_ENV),
        stub(&GROWN, Start::Launch, GROWN_ENV),
        stub(&DIRECT, Start::Direct, DIRECT_ENV),
        c_session_plan(),
    ]
}

/// Prepares every version's assets (one after the other: they share the network and the
/// cache), then runs every plan on every version: two boots at a time when there are two
/// versions (unless `XSLAB_PARALLEL=0`), each slot taking the next boot in plan order, so
/// that one version's long boots do not leave the other slot idle. Prints one summary line
/// per version.
fn run_versions(
    o: &Options,
    versions: &[Xen],
    plans: &[Plan],
    compare: bool,
) -> Result<(), String> {
    let mut prepared = Vec::new();
    for &xen in versions {
        let t = Instant::now();
        let a = assets::prepare(xen)?;
        eprintln!(
            "xtask: lab {}: images ready in {:.1} s; {}",
            xen.name(),
            t.elapsed().as_secs_f64(),
            a.qemu.version
        );
        prepared.push(a);
    }
    let parallel = versions.len() > 1 && std::env::var("XSLAB_PARALLEL").map_or(true, |v| v != "0");
    let slots = if parallel { 2 } else { 1 };
    // (version, plan), plan by plan.
    let jobs: Vec<(usize, usize)> = (0..plans.len())
        .flat_map(|p| (0..prepared.len()).map(move |v| (v, p)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<(usize, usize, PlanRun)>> = std::sync::Mutex::new(Vec::new());
    // A slot that panicked leaves its boot without a result (reported below as a boot that
    // did not run); the other slot goes on.
    let panicked = std::thread::scope(|s| {
        let handles: Vec<_> = (0..slots)
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(v, p)) = jobs.get(i) else {
                        break;
                    };
                    let (Some(a), Some(plan)) = (prepared.get(v), plans.get(p)) else {
                        break;
                    };
                    let r = run_plan(o, a, plan);
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((v, p, r));
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().err()).count()
    });
    if panicked > 0 {
        eprintln!("xtask: lab: {panicked} QEMU slot(s) panicked");
    }
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_by_key(|&(v, p, _)| (v, p));
    let mut runs = Vec::new();
    for (v, a) in prepared.iter().enumerate() {
        let mut run = VersionRun {
            xen: a.xen,
            secs: 0.0,
            counts: (0, 0, 0),
            errors: Vec::new(),
            retried: Vec::new(),
        };
        let mut sessions = Vec::new();
        let mine: Vec<PlanRun> = done
            .iter_mut()
            .filter(|(dv, _, _)| *dv == v)
            .map(|(_, _, r)| std::mem::take(r))
            .collect();
        if mine.len() != plans.len() {
            run.errors
                .push(format!("{} of {} boots ran", mine.len(), plans.len()));
        }
        for r in mine {
            run.secs += r.secs;
            run.counts = (
                run.counts.0 + r.counts.0,
                run.counts.1 + r.counts.1,
                run.counts.2 + r.counts.2,
            );
            run.errors.extend(r.errors);
            run.retried.extend(r.retried);
            sessions.extend(r.sessions);
        }
        if compare {
            compare_version(a.xen, &sessions, &mut run.errors);
        }
        runs.push(run);
    }
    let mut errors = Vec::new();
    let mut status = Vec::new();
    for r in &runs {
        let (p, f, s) = r.counts;
        let retried = if r.retried.is_empty() {
            String::new()
        } else {
            format!("; booted again after QEMU froze: {}", r.retried.join(", "))
        };
        let line = format!(
            "xtask: lab Xen {}: {} in {:.0} s of boots: {p} passed, {f} failed, {s} skipped{retried}",
            r.xen.name(),
            if r.errors.is_empty() { "PASS" } else { "FAIL" },
            r.secs
        );
        eprintln!("{line}");
        status.push(line);
        for e in &r.errors {
            errors.push(format!("Xen {}: {e}", r.xen.name()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        // The versions' one-line results again, last, where a truncated CI log keeps them.
        Err(format!("{}\n\n{}", errors.join("\n\n"), status.join("\n")))
    }
}

/// What one plan's boots gave.
#[derive(Default)]
struct PlanRun {
    /// Seconds its boots took.
    secs: f64,
    /// Passed, failed, skipped verdicts.
    counts: (usize, usize, usize),
    /// Its failures.
    errors: Vec<String>,
    /// Boots run again because the emulated machine froze.
    retried: Vec<String>,
    /// Boots that printed a session transcript, with their store.
    sessions: Vec<(Store, Outcome)>,
}

/// One plan on one version: a boot whose emulated machine froze (a QEMU TCG fault, not the
/// store's) goes on in a new boot with the scenarios that have no verdict yet, at most
/// [`FREEZE_RETRIES`] times.
fn run_plan(o: &Options, a: &assets::Assets, plan: &Plan) -> PlanRun {
    let t = Instant::now();
    let mut run = PlanRun::default();
    let mut left = plan.scenarios.clone();
    let mut retries = 0;
    loop {
        let part = Plan {
            scenarios: left.clone(),
            ..plan.clone()
        };
        let (outcome, result) = one(o, a, &part);
        let froze = outcome.as_ref().is_some_and(|out| out.froze);
        if let Some(out) = &outcome {
            let (p, f, s) = out.counts();
            run.counts = (run.counts.0 + p, run.counts.1 + f, run.counts.2 + s);
            left.retain(|name| !out.verdicts.iter().any(|v| &v.name == name));
        }
        let again = froze && retries < FREEZE_RETRIES && !left.is_empty();
        if again {
            let what = format!(
                "{} ({} start) in {}",
                describe(plan.store),
                plan.start.name(),
                left.first().map_or("?", String::as_str)
            );
            eprintln!(
                "xtask: lab {}: the emulated machine froze {what}; a new boot goes on \
                 with the {} scenarios left",
                a.xen.name(),
                left.len()
            );
            run.retried.push(what);
            retries += 1;
        } else if let Err(e) = result {
            run.errors.push(format!(
                "{} ({} start): {e}",
                describe(plan.store),
                plan.start.name()
            ));
        }
        if let Some(out) = outcome {
            if !out.session.is_empty() {
                run.sessions.push((plan.store, out));
            }
        }
        if !again {
            break;
        }
    }
    run.secs = t.elapsed().as_secs_f64();
    run
}

/// The session comparison of a version's stub and C xenstored boots.
fn compare_version(xen: Xen, sessions: &[(Store, Outcome)], errors: &mut Vec<String>) {
    let find = |store| sessions.iter().find(|(s, _)| *s == store).map(|(_, o)| o);
    match (find(Store::C), find(Store::Stub)) {
        (Some(c), Some(stub)) => {
            if let Err(e) = compare_sessions(xen, c, stub) {
                errors.push(e);
            }
        }
        _ => errors.push("compare: a run printed no session transcript".into()),
    }
}

fn describe(store: Store) -> &'static str {
    match store {
        Store::C => "with C xenstored",
        Store::Stub => "with the stub domain",
    }
}

/// One boot with `store` running only `scenario` on Xen 4.17 (`cargo xtask bench`), with the
/// usual summary on stderr and the log kept on failure: returns whether its verdict was PASS,
/// the verdict's detail and the seconds QEMU ran. A boot without that verdict (set-up
/// failure, hang, time limit) is an error with the reasons and the log's tail.
pub fn run_one(store: Store, scenario: &str) -> Result<(bool, String, f64), String> {
    prepare()?;
    let o = parse(&[scenario.to_string()])?;
    let image = stub_image(None)?;
    let a = assets::prepare(Xen::V417)?;
    let plan = Plan {
        store,
        start: Start::Launch,
        scenarios: o.scenarios.clone(),
        image: Some(image),
        env: &[],
    };
    let (outcome, result) = one(&o, &a, &plan);
    let verdict = outcome.as_ref().and_then(|out| {
        out.verdicts
            .iter()
            .find(|v| v.name == scenario)
            .map(|v| (v, out))
    });
    match (verdict, result) {
        (Some((v, out)), _) => Ok((v.status == Status::Pass, v.detail.clone(), out.total)),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(format!("lab: no verdict for {scenario}")),
    }
}

/// The demo on Xen 4.17: boots the lab with `image` as the xenstore stub domain and runs the
/// `demo` scenario, printing what dom0 sees.
pub fn demo(image: &Path) -> Result<(), String> {
    demo_on(Xen::V417, image)
}

fn demo_on(xen: Xen, image: &Path) -> Result<(), String> {
    prepare()?;
    let o = parse(&[])?;
    let a = assets::prepare(xen)?;
    println!(
        "== Xen {} in QEMU, dom0 Linux, xenstore in the stub domain {}",
        xen.name(),
        image.display()
    );
    let scenarios = ["demo".to_string()];
    let boot = Boot {
        assets: &a,
        store: Store::Stub,
        start: Start::Launch,
        scenarios: &scenarios,
        timeout: o.timeout,
        scenario_timeout: scenario_timeout(o.timeout),
        image: Some(image),
        files: &[],
        env: &[],
        keep: false,
        demo: true,
    };
    let outcome = harness::boot(&boot)?;
    settle(&boot, &outcome)?;
    let _ = std::fs::remove_file(&outcome.log);
    println!("== demo done in {:.1} s", outcome.total);
    Ok(())
}

/// Installs what the lab needs (on a fresh machine) and checks busybox is the static one.
fn prepare() -> Result<(), String> {
    crate::util::ensure_packages(&PACKAGES)?;
    assets::check_busybox_static()
}

fn stub_image(given: Option<&Path>) -> Result<PathBuf, String> {
    let image = match given {
        Some(p) => p.to_path_buf(),
        None => crate::util::build()?,
    };
    // The live-update scenarios switch between this image and a second flavour, and test
    // rollbacks and refusals with the fault-injection flavour and altered notes.
    crate::util::build_flavor_b()?;
    crate::util::build_test_images(&image)?;
    if !image.is_file() {
        return Err(format!("stub image {} does not exist", image.display()));
    }
    Ok(image)
}

/// One boot: runs and prints the timings; returns what it saw (if the boot got that far)
/// and whether it passed.
fn one(o: &Options, a: &assets::Assets, plan: &Plan) -> (Option<Outcome>, Result<(), String>) {
    let boot = Boot {
        assets: a,
        store: plan.store,
        start: plan.start,
        scenarios: &plan.scenarios,
        timeout: o.timeout,
        scenario_timeout: scenario_timeout(o.timeout),
        image: plan.image.as_deref(),
        files: &o.files,
        env: plan.env,
        keep: o.keep,
        demo: false,
    };
    let outcome = match harness::boot(&boot) {
        Ok(outcome) => outcome,
        Err(e) => return (None, Err(e)),
    };
    let result = settle(&boot, &outcome);
    if result.is_ok() && !o.keep {
        let _ = std::fs::remove_file(&outcome.log);
    } else {
        eprintln!("xtask: lab: log kept: {}", outcome.log.display());
    }
    (Some(outcome), result)
}

/// Prints the summary; on failure returns the reasons, the log's tail and its path.
fn settle(boot: &Boot, outcome: &Outcome) -> Result<(), String> {
    let mut text = format!("xtask: lab summary ({}):\n", boot.label());
    if let Some(b) = outcome.booted {
        text.push_str(&format!(
            "  dom0 /init started         {b:7.1} s after QEMU started\n"
        ));
    }
    if let Some(r) = outcome.ready {
        text.push_str(&format!(
            "  xenstore ready             {r:7.1} s after QEMU started\n"
        ));
    }
    for v in &outcome.verdicts {
        text.push_str(&format!(
            "  {:<12} {}  {:7.1} s  {}\n",
            v.name,
            v.status.name(),
            v.secs,
            v.detail
        ));
    }
    let (p, f, s) = outcome.counts();
    text.push_str(&format!(
        "  {p} passed, {f} failed, {s} skipped; total {:7.1} s",
        outcome.total
    ));
    eprintln!("{text}");
    let failures = outcome.failures(boot.scenarios);
    if failures.is_empty() {
        return Ok(());
    }
    // The reasons come last: a CI log that keeps only the end of the output still shows them.
    Err(format!(
        "--- last lines of {}:\n{}\n--- end of the tail; full log: {}\n{}{}\nlab failed ({}):\n  {}",
        outcome.log.display(),
        outcome.tail(),
        outcome.log.display(),
        outcome.failed_lines(),
        text,
        boot.label(),
        failures.join("\n  "),
    ))
}

/// Requires the session transcripts of two runs on one version to be identical; shows a diff
/// otherwise.
fn compare_sessions(xen: Xen, c: &Outcome, stub: &Outcome) -> Result<(), String> {
    if c.session == stub.session {
        eprintln!(
            "xtask: lab {}: session output identical with C xenstored {} and the stub domain \
             ({} lines)",
            xen.name(),
            xen.name(),
            c.session.len()
        );
        return Ok(());
    }
    let dir = assets::lab_dir().join("logs");
    let (a, b) = (
        dir.join(format!("session-{}-c.txt", xen.name())),
        dir.join(format!("session-{}-stub.txt", xen.name())),
    );
    for (path, lines) in [(&a, &c.session), (&b, &stub.session)] {
        std::fs::write(path, lines.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let diff = Command::new("diff")
        .arg("-u")
        .arg(&a)
        .arg(&b)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("diff: {e}"));
    Err(format!(
        "compare: the session output differs between C xenstored {} and the stub domain:\n{diff}",
        xen.name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn versions_default_to_417_and_take_lists() {
        assert_eq!(parse(&[]).unwrap().versions, [Xen::V417]);
        assert_eq!(
            parse(&args(&["--xen", "4.20"])).unwrap().versions,
            [Xen::V420]
        );
        assert_eq!(
            parse(&args(&["--xen", "all"])).unwrap().versions,
            [Xen::V417, Xen::V420]
        );
        assert_eq!(
            parse(&args(&["--xen", "4.20,4.17,4.20"])).unwrap().versions,
            [Xen::V420, Xen::V417]
        );
        assert!(parse(&args(&["--xen", "4.18"])).is_err());
        assert_eq!(parse(&args(&["--suite"])).unwrap().versions, Xen::ALL);
        assert_eq!(
            parse(&args(&["--suite", "--xen", "4.20"]))
                .unwrap()
                .versions,
            [Xen::V420]
        );
        assert_eq!(Xen::V420.bin(), "/usr/lib/xen-4.20/bin");
    }

    #[test]
    fn start_paths() {
        assert_eq!(parse(&[]).unwrap().start, Start::Launch);
        let o = parse(&args(&["--start", "direct"])).unwrap();
        assert_eq!(o.start, Start::Direct);
        assert!(parse(&args(&["--start", "systemd"])).is_err());
    }

    #[test]
    fn every_default_scenario_exists() {
        for s in ALL.iter().chain(DIRECT.iter()) {
            assert!(
                crate::util::root()
                    .join(format!("qemu-tests/scenarios/{s}.sh"))
                    .is_file(),
                "{s}"
            );
        }
    }
}
