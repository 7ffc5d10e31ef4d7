//! Boots the lab in QEMU, streams the serial console into a log and reads the verdicts.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::assets::{self, Assets, Item};
use super::{Start, Store};
use crate::util::root;

/// How long QEMU may take to exit after dom0 printed `XSLAB-END`.
const END_GRACE: Duration = Duration::from_secs(60);
/// How far the harness lets a scenario overrun dom0's own time limit before it gives up.
const SCENARIO_GRACE: u64 = 60;
/// Lines of serial log an error shows.
const TAIL_LINES: usize = 200;
/// How many of a failed scenario's own lines a failure report repeats.
const FAILED_LINES: usize = 25;
/// QEMU using no CPU time for this long means the emulated machine froze: even an idle Xen
/// wakes every second. (QEMU 7.2's TCG with nested SVM, right after a Linux guest set its
/// upcall vector: the vCPU sits in Xen's idle `hlt` with interrupts enabled and the LAPIC
/// timer's vector pending in IRR, never delivered, as QMP's `info registers` and `info lapic`
/// showed; an NMI injected over QMP did not revive it, with `nmi=ignore` nor `nmi=dom0`.)
const FROZEN: Duration = Duration::from_secs(60);
/// No console line for this long after dom0's `/init` started, whose heartbeat prints one
/// every 30 s, means the emulated machine hung however busy QEMU is (QEMU 7.2 with Xen 4.17,
/// `abuse-churn`: QEMU at 100% CPU, the console silent for 400 s and more).
const SILENT: Duration = Duration::from_secs(300);
/// How often QEMU's CPU time is sampled.
const CPU_SAMPLE: Duration = Duration::from_secs(10);

/// User plus system clock ticks process `pid` has used (`/proc/PID/stat`), if readable.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start with the state, field 3.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    utime.checked_add(stime)
}

/// One boot of the lab.
pub struct Boot<'a> {
    /// The version's hypervisor, kernel and initramfs images.
    pub assets: &'a Assets,
    /// Which xenstore dom0 uses.
    pub store: Store,
    /// How dom0 starts the stub domain.
    pub start: Start,
    /// Scenario names, in order.
    pub scenarios: &'a [String],
    /// The whole run's time limit.
    pub timeout: Duration,
    /// Each scenario's time limit (enforced in dom0, and by the harness with some grace).
    pub scenario_timeout: Duration,
    /// The stub-domain image (stub mode), `/xslab/xsstub` in dom0.
    pub image: Option<&'a Path>,
    /// More files for dom0: `/xslab/NAME` from a host path.
    pub files: &'a [(String, PathBuf)],
    /// Settings for dom0's scenarios beyond the caller's environment (`XSLAB_*`), which
    /// they override.
    pub env: &'a [(&'static str, &'static str)],
    /// Keep the serial log and the run directory even on success.
    pub keep: bool,
    /// Print `XSLAB-DEMO` lines on stdout.
    pub demo: bool,
}

impl Boot<'_> {
    /// `4.20 stub/launch`: the version, the store and (for the stub) the start path.
    pub fn label(&self) -> String {
        match self.store {
            Store::C => format!("{} c", self.assets.xen.name()),
            Store::Stub => format!("{} stub/{}", self.assets.xen.name(), self.start.name()),
        }
    }
}

/// What a scenario concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It checked what it is about.
    Pass,
    /// A check failed.
    Fail,
    /// It does not apply to this boot (the reason is the detail); not a failure.
    Skip,
}

impl Status {
    /// `PASS`, `FAIL`, `SKIP`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }

    /// The verdict word of a `XSLAB-VERDICT` line; anything else is a failure.
    pub fn parse(word: Option<&str>) -> Status {
        match word {
            Some("PASS") => Status::Pass,
            Some("SKIP") => Status::Skip,
            _ => Status::Fail,
        }
    }
}

/// A scenario's verdict line.
pub struct Verdict {
    /// The scenario.
    pub name: String,
    /// PASS, FAIL or SKIP.
    pub status: Status,
    /// The rest of the line (reason or detail).
    pub detail: String,
    /// Seconds from its `XSLAB-BEGIN` (else from the previous event) to its verdict.
    pub secs: f64,
}

/// What one boot showed.
pub struct Outcome {
    /// The serial log.
    pub log: PathBuf,
    /// Verdicts in the order they came.
    pub verdicts: Vec<Verdict>,
    /// The session transcript (`XSLAB-S| ` lines), if the session scenario ran.
    pub session: Vec<String>,
    /// Seconds from QEMU's start to dom0's `/init` (`XSLAB-BOOTED`).
    pub booted: Option<f64>,
    /// Seconds from QEMU's start to xenstore answering dom0 (`XSLAB-READY`).
    pub ready: Option<f64>,
    /// Seconds QEMU ran.
    pub total: f64,
    /// Why the run failed, apart from FAIL verdicts (timeouts, EOF without `XSLAB-END`).
    pub problems: Vec<String>,
    /// The emulated machine froze or hung (QEMU used no CPU time, see [`FROZEN`]; or the
    /// console went silent, see [`SILENT`]): the harness boots again.
    pub froze: bool,
}

impl Outcome {
    /// Every reason this run failed: problems, FAIL verdicts and scenarios without a verdict.
    pub fn failures(&self, scenarios: &[String]) -> Vec<String> {
        let mut out = self.problems.clone();
        for v in self.verdicts.iter().filter(|v| v.status == Status::Fail) {
            out.push(format!("{}: FAIL {}", v.name, v.detail));
        }
        for s in scenarios {
            if !self.verdicts.iter().any(|v| &v.name == s) {
                out.push(format!("{s}: no verdict"));
            }
        }
        out
    }

    /// Passed, failed and skipped verdicts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s: Status| self.verdicts.iter().filter(|v| v.status == s).count();
        (n(Status::Pass), n(Status::Fail), n(Status::Skip))
    }

    /// The last lines the failed scenarios printed (their lines carry `[name]`), each
    /// scenario's under a heading.
    pub fn failed_lines(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::new();
        for v in self.verdicts.iter().filter(|v| v.status == Status::Fail) {
            let tag = format!("[{}]", v.name);
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(&tag)).collect();
            let from = lines.len().saturating_sub(FAILED_LINES);
            out.push_str(&format!("--- what {} printed last:\n", v.name));
            for l in lines.get(from..).unwrap_or_default() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The last lines of the serial log.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(TAIL_LINES);
        lines.get(from..).unwrap_or_default().join("\n")
    }
}

enum Msg {
    Out(String),
    Err(String),
    Eof,
}

fn reader(stream: impl Read + Send + 'static, tx: mpsc::Sender<Msg>, stdout: bool) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .replace('\r', "");
                    let msg = if stdout {
                        Msg::Out(line)
                    } else {
                        Msg::Err(line)
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
        }
        if stdout {
            let _ = tx.send(Msg::Eof);
        }
    });
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn no_comma(path: &Path) -> Result<String, String> {
    let s = path.display().to_string();
    if s.contains(',') || s.contains(' ') {
        return Err(format!(
            "{s}: QEMU's -initrd cannot take a path with a comma or space"
        ));
    }
    Ok(s)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The per-run part of dom0's initramfs: /init, the scripts, the configuration, the guest's
/// initramfs and (stub mode) the image.
fn overlay(boot: &Boot) -> Result<Vec<Item>, String> {
    let qt = root().join("qemu-tests");
    let mut items = vec![
        Item::Copy("init".into(), qt.join("init.sh"), Some(0o755)),
        Item::Copy("xslab/lib.sh".into(), qt.join("lib.sh"), Some(0o644)),
        Item::Copy("xslab/guest.cfg".into(), qt.join("guest.cfg"), Some(0o644)),
        Item::Copy(
            "xslab/guest.cpio".into(),
            boot.assets.guest.clone(),
            Some(0o644),
        ),
    ];
    for s in boot.scenarios {
        items.push(Item::Copy(
            format!("xslab/scenarios/{s}.sh"),
            qt.join(format!("scenarios/{s}.sh")),
            Some(0o755),
        ));
    }
    if let Some(image) = boot.image {
        items.push(Item::Copy("xslab/xsstub".into(), image.into(), Some(0o644)));
    }
    for (name, path) in boot.files {
        items.push(Item::Copy(format!("xslab/{name}"), path.clone(), None));
    }
    // The live-update scenarios' second image and the probe client, when built.
    let extras = [
        (
            "xslab/xsstub-b",
            root().join("target/kernel-b/release/xsstub-stripped"),
            0o644,
        ),
        (
            "xslab/xsprobe",
            root().join("target/release/xsprobe"),
            0o755,
        ),
        (
            "xslab/xsstub-fault",
            root().join("target/kernel-fault/release/xsstub-stripped"),
            0o644,
        ),
        (
            "xslab/xsstub-nonote",
            root().join("target/kernel-test/xsstub-nonote"),
            0o644,
        ),
        (
            "xslab/xsstub-future",
            root().join("target/kernel-test/xsstub-future"),
            0o644,
        ),
    ];
    for (name, path, mode) in extras {
        if path.is_file() {
            items.push(Item::Copy(name.into(), path, Some(mode)));
        }
    }
    let xen = boot.assets.xen;
    let config = format!(
        "export XSLAB_XEN={}\nexport XSLAB_XEN_BIN={}\nexport XSLAB_STORE={}\n\
         export XSLAB_START={}\nexport XSLAB_SCENARIOS='{}'\nexport XSLAB_SCENARIO_TIMEOUT={}\n{}",
        xen.name(),
        xen.bin(),
        boot.store.name(),
        boot.start.name(),
        boot.scenarios.join(" "),
        boot.scenario_timeout.as_secs(),
        [
            "XSLAB_CYCLES",
            "XSLAB_STUB_MEMORY",
            "XSLAB_STUB_MAXMEM",
            "XSLAB_STUB_PARAM",
            "XSLAB_BENCH_NODES",
            "XSLAB_GROW_NODES",
            "XSLAB_GROW_VALUE",
            "XSLAB_C_TRACE",
            "XSLAB_FAIR_SCHED",
            "XSLAB_FAIR_LOAD",
        ]
        .iter()
        .filter(|k| !boot.env.iter().any(|(name, _)| name == *k))
        .filter_map(|k| std::env::var(k).ok().map(|v| export(k, &v)))
        .chain(boot.env.iter().map(|(k, v)| export(k, v)))
        .collect::<String>(),
    );
    items.push(Item::Data(
        "xslab/config".into(),
        0o644,
        config.into_bytes(),
    ));
    Ok(items)
}

/// `export K='V'` for the lab's shell, V quoted whole (it may hold spaces).
fn export(k: &str, v: &str) -> String {
    format!("export {k}='{}'\n", v.replace('\'', "'\\''"))
}

/// Removes run directories and logs of earlier runs: all but the newest `keep`, and only those
/// untouched for 20 minutes (longer than any run, so a concurrent run keeps its own).
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p.extension().is_none_or(|x| x == "log"))
        .collect();
    found.sort();
    let old = std::time::SystemTime::now() - Duration::from_secs(20 * 60);
    let excess = found.len().saturating_sub(keep);
    for (modified, path) in found.into_iter().take(excess) {
        if modified < old {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Builds (or reuses) everything, boots QEMU and watches the serial console until dom0
/// powers off, a time limit passes or QEMU ends.
pub fn boot(boot: &Boot) -> Result<Outcome, String> {
    let prep = Instant::now();
    let a = boot.assets;
    prune(&assets::lab_dir().join("run"), 6);
    prune(&assets::lab_dir().join("logs"), 30);
    // Unique among boots of this process, which may run two of one version at once.
    static BOOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let tag = format!(
        "{}-{}-{}-{}-{}-{}",
        a.xen.name(),
        boot.store.name(),
        boot.start.name(),
        unix_now(),
        std::process::id(),
        BOOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let run_dir = assets::lab_dir().join("run").join(&tag);
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let overlay_path = run_dir.join("overlay.cpio");
    assets::write_cpio(&overlay(boot)?, &overlay_path, 1 << 24)?;
    // Linux unpacks concatenated archives in order; the overlay comes last.
    let initrd = run_dir.join("initrd.cpio");
    concat(&[&a.dom0_base, &overlay_path], &initrd)?;
    let logs = assets::lab_dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let log_path = logs.join(format!("{tag}.log"));
    eprintln!(
        "xtask: lab: overlay ready in {:.1} s; booting Xen {} ({}: {}), log {}",
        prep.elapsed().as_secs_f64(),
        a.xen.name(),
        boot.label(),
        boot.scenarios.join(" "),
        log_path.display()
    );

    let xen_args = format!(
        "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=1024M,max:1024M \
         dom0_max_vcpus=1 bootscrub=0 {}",
        env_or("XSLAB_EXTRA_XEN_ARGS", "")
    );
    let dom0_args = format!(
        "console=hvc0 earlyprintk=xen loglevel=4 random.trust_cpu=on {}",
        env_or("XSLAB_EXTRA_DOM0_ARGS", "")
    );
    let modules = format!(
        "{} {},{}",
        no_comma(&a.kernel.vmlinux)?,
        dom0_args.trim(),
        no_comma(&initrd)?
    );
    if modules.matches(',').count() != 1 {
        return Err("XSLAB_EXTRA_DOM0_ARGS must not contain a comma".into());
    }
    let mut cmd = a.qemu.command();
    cmd.args([
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "qemu64,+svm,+npt,+rdrand",
        "-m",
        "2048",
    ])
    .args(["-smp", &env_or("XSLAB_SMP", "1")])
    .args([
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "stdio",
    ])
    .arg("-kernel")
    .arg(&a.xen_elf)
    .args(["-append", xen_args.trim()])
    .args(["-initrd", &modules])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if boot.keep {
        eprintln!("xtask: lab: {cmd:?}");
    }
    let mut log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let _ = writeln!(log, "# {cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", a.qemu.version))?;
    let outcome = watch(boot, &mut child, &mut log, &log_path);
    let _ = child.kill();
    let _ = child.wait();
    if !boot.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    outcome
}

fn concat(parts: &[&Path], to: &Path) -> Result<(), String> {
    let mut out = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for p in parts {
        let mut f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        std::io::copy(&mut f, &mut out).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    Ok(())
}

/// Reads the console until the end, a time limit or EOF.
fn watch(
    boot: &Boot,
    child: &mut Child,
    log: &mut std::fs::File,
    log_path: &Path,
) -> Result<Outcome, String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().ok_or("qemu: no stdout")?;
    let stderr = child.stderr.take().ok_or("qemu: no stderr")?;
    reader(stdout, tx.clone(), true);
    reader(stderr, tx, false);
    let verbose = std::env::var("XSLAB_VERBOSE").is_ok_and(|v| v == "1");
    let label = boot.label();
    let start = Instant::now();
    let deadline = start + boot.timeout;
    let per_scenario = boot.scenario_timeout + Duration::from_secs(SCENARIO_GRACE);
    let mut out = Outcome {
        log: log_path.to_path_buf(),
        verdicts: Vec::new(),
        session: Vec::new(),
        booted: None,
        ready: None,
        total: 0.0,
        problems: Vec::new(),
        froze: false,
    };
    let mut current: Option<(String, Instant)> = None;
    let mut last_event = start;
    let mut ended: Option<Instant> = None;
    let pid = child.id();
    let mut cpu = (cpu_ticks(pid), start, start);
    let mut last_line = start;
    loop {
        let now = Instant::now();
        if ended.is_none() && out.booted.is_some() && now.duration_since(last_line) >= SILENT {
            let what = current.as_ref().map(|(s, _)| format!(" in scenario {s}"));
            out.problems.push(format!(
                "the emulated machine hung{}: no console line for {} s, not even dom0's \
                 heartbeat (after {:.0} s)",
                what.unwrap_or_default(),
                SILENT.as_secs(),
                start.elapsed().as_secs_f64()
            ));
            out.froze = true;
            break;
        }
        if now.duration_since(cpu.2) >= CPU_SAMPLE {
            let ticks = cpu_ticks(pid);
            if ticks != cpu.0 {
                cpu.0 = ticks;
                cpu.1 = now;
            }
            cpu.2 = now;
            if ended.is_none() && ticks.is_some() && now.duration_since(cpu.1) >= FROZEN {
                let what = current.as_ref().map(|(s, _)| format!(" in scenario {s}"));
                out.problems.push(format!(
                    "the emulated machine froze{}: QEMU used no CPU for {} s (after {:.0} s)",
                    what.unwrap_or_default(),
                    FROZEN.as_secs(),
                    start.elapsed().as_secs_f64()
                ));
                out.froze = true;
                break;
            }
        }
        let mut limit = (deadline, "the run's time limit");
        if let Some((_, began)) = &current {
            if *began + per_scenario < limit.0 {
                limit = (*began + per_scenario, "the scenario's time limit");
            }
        }
        if let Some(at) = ended {
            limit = (at + END_GRACE, "QEMU's exit after XSLAB-END");
        }
        let Some(wait) = limit.0.checked_duration_since(now) else {
            if ended.is_none() {
                let what = current.as_ref().map(|(s, _)| format!(" in scenario {s}"));
                out.problems.push(format!(
                    "timed out ({}){} after {:.0} s",
                    limit.1,
                    what.unwrap_or_default(),
                    start.elapsed().as_secs_f64()
                ));
            } else {
                eprintln!("xtask: lab: QEMU still running after XSLAB-END; killed");
            }
            break;
        };
        let msg = match rx.recv_timeout(wait.min(CPU_SAMPLE)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => Msg::Eof,
        };
        let t = start.elapsed().as_secs_f64();
        let line = match msg {
            Msg::Eof => break,
            Msg::Err(l) => format!("qemu: {l}"),
            Msg::Out(l) => {
                last_line = Instant::now();
                l
            }
        };
        let _ = writeln!(log, "[{t:8.3}] {line}");
        if verbose {
            eprintln!("[{label} {t:8.3}] {line}");
        }
        if let Some(at) = line.find("XSLAB-S| ") {
            out.session
                .push(line.get(at + 9..).unwrap_or_default().to_string());
            continue;
        }
        let Some(at) = line.find("XSLAB-") else {
            continue;
        };
        let event = line.get(at..).unwrap_or_default();
        let mut words = event.splitn(4, ' ');
        let kind = words.next().unwrap_or_default();
        match kind {
            "XSLAB-DEMO" => {
                if boot.demo {
                    println!("{}", event.get(11..).unwrap_or_default());
                }
                continue;
            }
            "XSLAB-BOOTED" => out.booted = Some(t),
            "XSLAB-READY" => out.ready = Some(t),
            "XSLAB-BEGIN" => {
                current = words.next().map(|s| (s.to_string(), Instant::now()));
            }
            "XSLAB-VERDICT" => {
                let name = words.next().unwrap_or_default().to_string();
                let status = Status::parse(words.next());
                let detail = words.next().unwrap_or_default().to_string();
                let began = match &current {
                    Some((s, at)) if *s == name => *at,
                    _ => last_event,
                };
                out.verdicts.push(Verdict {
                    name,
                    status,
                    detail,
                    secs: began.elapsed().as_secs_f64(),
                });
                current = None;
            }
            "XSLAB-END" => ended = Some(Instant::now()),
            // In the log only.
            "XSLAB-ALIVE" => continue,
            _ => {}
        }
        last_event = Instant::now();
        if !verbose && kind != "XSLAB-S|" {
            eprintln!("[{label} {t:8.3}] {event}");
        }
    }
    out.total = start.elapsed().as_secs_f64();
    if ended.is_none() && out.problems.is_empty() {
        out.problems.push(format!(
            "QEMU ended after {:.0} s without XSLAB-END",
            out.total
        ));
    }
    let _ = log.flush();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_process() {
        let mine = cpu_ticks(std::process::id());
        assert!(mine.is_some());
        // Burn some CPU: the count does not go down.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_ticks(std::process::id()) >= mine);
        assert_eq!(cpu_ticks(u32::MAX), None);
    }

    #[test]
    fn verdict_words() {
        assert_eq!(Status::parse(Some("PASS")), Status::Pass);
        assert_eq!(Status::parse(Some("SKIP")), Status::Skip);
        assert_eq!(Status::parse(Some("FAIL")), Status::Fail);
        // Anything unexpected counts against the run.
        assert_eq!(Status::parse(Some("pass")), Status::Fail);
        assert_eq!(Status::parse(None), Status::Fail);
    }

    #[test]
    fn skips_are_counted_apart_and_are_not_failures() {
        let v = |name: &str, status| Verdict {
            name: name.into(),
            status,
            detail: String::new(),
            secs: 0.0,
        };
        let out = Outcome {
            log: PathBuf::new(),
            verdicts: vec![
                v("a", Status::Pass),
                v("b", Status::Skip),
                v("c", Status::Fail),
            ],
            session: Vec::new(),
            booted: None,
            ready: None,
            total: 0.0,
            problems: Vec::new(),
            froze: false,
        };
        assert_eq!(out.counts(), (1, 1, 1));
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(out.failures(&names), ["c: FAIL ", "d: no verdict"]);
    }
}
