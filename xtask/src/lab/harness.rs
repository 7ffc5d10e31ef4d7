//! Boots the lab in QEMU, streams the serial console into a log and reads the verdicts.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::assets::{self, Item};
use super::Store;
use crate::util::root;

/// How long QEMU may take to exit after dom0 printed `XSLAB-END`.
const END_GRACE: Duration = Duration::from_secs(60);
/// How far the harness lets a scenario overrun dom0's own time limit before it gives up.
const SCENARIO_GRACE: u64 = 60;
/// Lines of serial log an error shows.
const TAIL_LINES: usize = 200;

/// One boot of the lab.
pub struct Boot<'a> {
    /// Which xenstore dom0 uses.
    pub store: Store,
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
    /// Keep the serial log and the run directory even on success.
    pub keep: bool,
    /// Print `XSLAB-DEMO` lines on stdout.
    pub demo: bool,
}

/// A scenario's verdict line.
pub struct Verdict {
    /// The scenario.
    pub name: String,
    /// PASS.
    pub pass: bool,
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
}

impl Outcome {
    /// Every reason this run failed: problems, FAIL verdicts and scenarios without a verdict.
    pub fn failures(&self, scenarios: &[String]) -> Vec<String> {
        let mut out = self.problems.clone();
        for v in self.verdicts.iter().filter(|v| !v.pass) {
            out.push(format!("{}: FAIL {}", v.name, v.detail));
        }
        for s in scenarios {
            if !self.verdicts.iter().any(|v| &v.name == s) {
                out.push(format!("{s}: no verdict"));
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
fn overlay(boot: &Boot, guest: &Path) -> Result<Vec<Item>, String> {
    let qt = root().join("qemu-tests");
    let mut items = vec![
        Item::Copy("init".into(), qt.join("init.sh"), Some(0o755)),
        Item::Copy("xslab/lib.sh".into(), qt.join("lib.sh"), Some(0o644)),
        Item::Copy("xslab/guest.cfg".into(), qt.join("guest.cfg"), Some(0o644)),
        Item::Copy("xslab/guest.cpio".into(), guest.to_path_buf(), Some(0o644)),
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
    let config = format!(
        "export XSLAB_STORE={}\nexport XSLAB_SCENARIOS='{}'\nexport XSLAB_SCENARIO_TIMEOUT={}\n{}",
        boot.store.name(),
        boot.scenarios.join(" "),
        boot.scenario_timeout.as_secs(),
        [
            "XSLAB_CYCLES",
            "XSLAB_STUB_MEMORY",
            "XSLAB_STUB_MAXMEM",
            "XSLAB_STUB_PARAM",
            "XSLAB_BENCH_NODES",
            "XSLAB_GROW_NODES",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| format!("export {k}={v}\n")))
        .collect::<String>(),
    );
    items.push(Item::Data(
        "xslab/config".into(),
        0o644,
        config.into_bytes(),
    ));
    Ok(items)
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
    let xen = assets::xen_elf()?;
    let kernel = assets::kernel()?;
    let base = assets::dom0_base(&kernel)?;
    let guest = assets::guest_initrd()?;
    prune(&assets::lab_dir().join("run"), 3);
    prune(&assets::lab_dir().join("logs"), 30);
    let tag = format!(
        "{}-{}-{}",
        boot.store.name(),
        unix_now(),
        std::process::id()
    );
    let run_dir = assets::lab_dir().join("run").join(&tag);
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let overlay_path = run_dir.join("overlay.cpio");
    assets::write_cpio(&overlay(boot, &guest)?, &overlay_path, 1 << 24)?;
    // Linux unpacks concatenated archives in order; the overlay comes last.
    let initrd = run_dir.join("initrd.cpio");
    concat(&[&base, &overlay_path], &initrd)?;
    let logs = assets::lab_dir().join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let log_path = logs.join(format!("{tag}.log"));
    eprintln!(
        "xtask: lab: images ready in {:.1} s; booting ({} store: {}), log {}",
        prep.elapsed().as_secs_f64(),
        boot.store.name(),
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
        no_comma(&kernel.vmlinux)?,
        dom0_args.trim(),
        no_comma(&initrd)?
    );
    if modules.matches(',').count() != 1 {
        return Err("XSLAB_EXTRA_DOM0_ARGS must not contain a comma".into());
    }
    let mut cmd = Command::new("qemu-system-x86_64");
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
    .arg(&xen)
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
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
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
    };
    let mut current: Option<(String, Instant)> = None;
    let mut last_event = start;
    let mut ended: Option<Instant> = None;
    loop {
        let now = Instant::now();
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
        let msg = match rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => Msg::Eof,
        };
        let t = start.elapsed().as_secs_f64();
        let line = match msg {
            Msg::Eof => break,
            Msg::Err(l) => format!("qemu: {l}"),
            Msg::Out(l) => l,
        };
        let _ = writeln!(log, "[{t:8.3}] {line}");
        if verbose {
            eprintln!("[{t:8.3}] {line}");
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
                let word = words.next();
                // SKIP (the scenario does not apply to this boot) is no failure.
                let pass = matches!(word, Some("PASS" | "SKIP"));
                let mut detail = words.next().unwrap_or_default().to_string();
                if word == Some("SKIP") {
                    detail.insert_str(0, "(skipped) ");
                }
                let began = match &current {
                    Some((s, at)) if *s == name => *at,
                    _ => last_event,
                };
                out.verdicts.push(Verdict {
                    name,
                    pass,
                    detail,
                    secs: began.elapsed().as_secs_f64(),
                });
                current = None;
            }
            "XSLAB-END" => ended = Some(Instant::now()),
            _ => {}
        }
        last_event = Instant::now();
        if !verbose && kind != "XSLAB-S|" {
            eprintln!("[{t:8.3}] {event}");
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
