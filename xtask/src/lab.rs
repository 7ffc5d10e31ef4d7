//! `cargo xtask lab`: Xen 4.17 in QEMU with a Linux dom0 running `qemu-tests/` scenarios
//! against C xenstored or the xenstore stub domain.

mod assets;
mod cpio;
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{Boot, Outcome};

/// Every scenario `cargo xtask lab` runs by default, in order.
pub const ALL: [&str; 19] = [
    "tools",
    "session",
    "guest",
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
    // Last: it may leave dom0 without xenstore.
    "lu-corrupt-state",
];

/// Default limit for one boot, in seconds.
const DEFAULT_TIMEOUT: u64 = 900;
/// Default limit for one scenario, in seconds.
const SCENARIO_TIMEOUT: u64 = 360;

/// Debian packages the lab uses, with a file that shows each is installed.
const PACKAGES: [(&str, &str); 6] = [
    ("xz-utils", "/usr/bin/xz"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("xen-hypervisor-4.17-amd64", "/boot/xen-4.17-amd64.gz"),
    (
        "xen-utils-4.17",
        "/usr/lib/xen-4.17/bin/init-xenstore-domain",
    ),
    ("xenstore-utils", "/usr/bin/xenstore"),
    ("busybox-static", "/bin/busybox"),
];

const USAGE: &str = "usage: cargo xtask lab [--store c|stub] [--compare] [--demo] [--timeout SECS]
                       [--keep] [--image PATH] [--file NAME=PATH]... [SCENARIO...]

  --store c|stub   xenstore in dom0 (C xenstored) or the stub domain (default: stub)
  --compare        SCENARIOs and the session with the stub domain, the session with C
                   xenstored; the two session transcripts must be identical
  --demo           the demo scenario with the stub domain, its output on stdout
  --timeout SECS   limit for one boot (default 900)
  --keep           keep the serial log and the initramfs even on success
  --image PATH     the stub-domain image (default: what `cargo xtask build` builds)
  --file NAME=PATH also put PATH into dom0 as /xslab/NAME (repeatable)
  SCENARIO         names from qemu-tests/scenarios (default: tools session guest cycles)

environment: XSLAB_EXTRA_XEN_ARGS, XSLAB_EXTRA_DOM0_ARGS, XSLAB_SMP (default 1),
XSLAB_CYCLES (default 10), XSLAB_VERBOSE=1 (echo the whole console), XSLAB_STUB_MEMORY
(MiB, default 8) and XSLAB_STUB_MAXMEM (MiB: init-xenstore-domain --maxmem; `grow` needs it),
XSLAB_STUB_PARAM (the stub's --param, e.g. --memscan), XSLAB_GROW_NODES (default 30000)
";

/// Where xenstore runs in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// C xenstored (`/usr/lib/xen-4.17/bin/xenstored`) in dom0: the baseline.
    C,
    /// Our image, started by `init-xenstore-domain`.
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

/// Parsed `cargo xtask lab` arguments.
struct Options {
    store: Store,
    compare: bool,
    demo: bool,
    timeout: Duration,
    keep: bool,
    image: Option<PathBuf>,
    files: Vec<(String, PathBuf)>,
    scenarios: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        store: Store::Stub,
        compare: false,
        demo: false,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT),
        keep: false,
        image: None,
        files: Vec::new(),
        scenarios: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match a.as_str() {
            "--store" => {
                o.store = match value("--store")?.as_str() {
                    "c" => Store::C,
                    "stub" => Store::Stub,
                    other => return Err(format!("--store {other}: c or stub\n\n{USAGE}")),
                }
            }
            "--compare" => o.compare = true,
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

/// `cargo xtask lab ...`.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    if o.demo {
        return demo(&stub_image(o.image.as_deref())?);
    }
    prepare()?;
    if o.compare {
        let mut scenarios = o.scenarios.clone();
        if !scenarios.iter().any(|s| s == "session") {
            scenarios.push("session".into());
        }
        let image = stub_image(o.image.as_deref())?;
        return both(&scenarios, &o, &image);
    }
    let scenarios = if o.scenarios.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        o.scenarios.clone()
    };
    // C mode carries the image too: the misbehaving test guest is the same image.
    let image = Some(stub_image(o.image.as_deref())?);
    one(o.store, &scenarios, &o, image.as_deref()).1
}

/// The lab as `cargo xtask test` runs it: every scenario with the stub domain, then the
/// session with C xenstored, whose output must match the stub's.
pub fn run_for_test() -> Result<(), String> {
    prepare()?;
    let o = parse(&[])?;
    let image = stub_image(None)?;
    let all: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    both(&all, &o, &image)
}

/// One boot with the stub domain running only `scenario` (`cargo xtask bench`), with the
/// usual summary on stderr and the log kept on failure: returns whether its verdict was PASS,
/// the verdict's detail and the seconds QEMU ran. A boot without that verdict (set-up
/// failure, hang, time limit) is an error with the reasons and the log's tail.
pub fn run_one_stub(scenario: &str) -> Result<(bool, String, f64), String> {
    prepare()?;
    let o = parse(&[scenario.to_string()])?;
    let image = stub_image(None)?;
    let (outcome, result) = one(Store::Stub, &o.scenarios, &o, Some(&image));
    let verdict = outcome.as_ref().and_then(|out| {
        out.verdicts
            .iter()
            .find(|v| v.name == scenario)
            .map(|v| (v, out))
    });
    match (verdict, result) {
        (Some((v, out)), _) => Ok((v.pass, v.detail.clone(), out.total)),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Err(format!("lab: no verdict for {scenario}")),
    }
}

/// The stub domain with `scenarios`, C xenstored with the session only, then the comparison
/// of their session transcripts; every failure is reported.
fn both(scenarios: &[String], o: &Options, image: &Path) -> Result<(), String> {
    let (stub, stub_result) = one(Store::Stub, scenarios, o, Some(image));
    let (c, c_result) = one(Store::C, &["session".to_string()], o, None);
    let mut errors = Vec::new();
    if let Err(e) = stub_result {
        errors.push(format!("with the stub domain: {e}"));
    }
    if let Err(e) = c_result {
        errors.push(format!("with C xenstored: {e}"));
    }
    if let (Some(c), Some(stub)) = (&c, &stub) {
        if let Err(e) = compare(c, stub) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n\n"))
    }
}

/// The demo: boots the lab with `image` as the xenstore stub domain and runs the `demo`
/// scenario, printing what dom0 sees.
pub fn demo(image: &Path) -> Result<(), String> {
    prepare()?;
    let o = parse(&[])?;
    println!(
        "== Xen 4.17 in QEMU, dom0 Linux, xenstore in the stub domain {}",
        image.display()
    );
    let boot = Boot {
        store: Store::Stub,
        scenarios: &["demo".to_string()],
        timeout: o.timeout,
        scenario_timeout: Duration::from_secs(SCENARIO_TIMEOUT),
        image: Some(image),
        files: &[],
        keep: false,
        demo: true,
    };
    let outcome = harness::boot(&boot)?;
    settle(&outcome, boot.scenarios)?;
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
fn one(
    store: Store,
    scenarios: &[String],
    o: &Options,
    image: Option<&Path>,
) -> (Option<Outcome>, Result<(), String>) {
    let boot = Boot {
        store,
        scenarios,
        timeout: o.timeout,
        scenario_timeout: Duration::from_secs(SCENARIO_TIMEOUT.min(o.timeout.as_secs())),
        image,
        files: &o.files,
        keep: o.keep,
        demo: false,
    };
    let outcome = match harness::boot(&boot) {
        Ok(outcome) => outcome,
        Err(e) => return (None, Err(e)),
    };
    let result = settle(&outcome, scenarios);
    if result.is_ok() && !o.keep {
        let _ = std::fs::remove_file(&outcome.log);
    } else {
        eprintln!("xtask: lab: log kept: {}", outcome.log.display());
    }
    (Some(outcome), result)
}

/// Prints the summary; on failure returns the reasons, the log's tail and its path.
fn settle(outcome: &Outcome, scenarios: &[String]) -> Result<(), String> {
    eprintln!("xtask: lab summary:");
    if let Some(b) = outcome.booted {
        eprintln!("  dom0 /init started         {b:7.1} s after QEMU started");
    }
    if let Some(r) = outcome.ready {
        eprintln!("  xenstore ready             {r:7.1} s after QEMU started");
    }
    for v in &outcome.verdicts {
        eprintln!(
            "  {:<12} {}  {:7.1} s  {}",
            v.name,
            if v.pass { "PASS" } else { "FAIL" },
            v.secs,
            v.detail
        );
    }
    eprintln!("  total                      {:7.1} s", outcome.total);
    let failures = outcome.failures(scenarios);
    if failures.is_empty() {
        return Ok(());
    }
    Err(format!(
        "lab failed:\n  {}\n--- last lines of {}:\n{}\n--- end of the tail; full log: {}",
        failures.join("\n  "),
        outcome.log.display(),
        outcome.tail(),
        outcome.log.display()
    ))
}

/// Requires the session transcripts of two runs to be identical; shows a diff otherwise.
fn compare(c: &Outcome, stub: &Outcome) -> Result<(), String> {
    if c.session.is_empty() || stub.session.is_empty() {
        return Err("compare: a run printed no session transcript".into());
    }
    if c.session == stub.session {
        eprintln!(
            "xtask: lab: session output identical with C xenstored and the stub domain ({} lines)",
            c.session.len()
        );
        return Ok(());
    }
    let dir = assets::lab_dir().join("logs");
    let (a, b) = (dir.join("session-c.txt"), dir.join("session-stub.txt"));
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
        "compare: the session output differs between C xenstored and the stub domain:\n{diff}"
    ))
}
