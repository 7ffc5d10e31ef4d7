//! `cargo xtask smoke`: boot the stub-domain image on bare QEMU (PVH, TCG), where it runs its
//! in-image self-tests and exits through isa-debug-exit, and check its verdict; then check
//! that a deliberate exception, a stack overflow and a panic end it as a crash, that the
//! live-update hand-over jumps into the image passed as module 0 (`-initrd`) and hands it
//! its state, and that a corrupt module 0 is refused.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util;

/// The QEMU binary and the package that brings it.
const QEMU: (&str, &str) = ("qemu-system-x86", "/usr/bin/qemu-system-x86_64");

/// How long one boot may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// isa-debug-exit makes QEMU exit with `(code << 1) | 1`.
const EXIT_PASS: i32 = 1;
const EXIT_CRASH: i32 = 3;

/// What QEMU passes as PVH module 0 (`-initrd`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Initrd {
    /// No module.
    None,
    /// The image itself (its ELF file, as a live update sends it).
    Image,
    /// The first half of the image: a corrupt ELF file.
    Truncated,
}

/// One QEMU run and what it must show.
struct Case {
    name: &'static str,
    /// Kernel command line (`-append`).
    cmdline: &'static str,
    /// Module 0.
    initrd: Initrd,
    /// A line starting with this must appear.
    expect: &'static str,
    /// The QEMU exit status.
    status: i32,
    /// How many times the kernel must start (`xsstub <version> starting` lines): 2 when it
    /// hands over to a new instance of itself.
    boots: usize,
}

const CASES: [Case; 6] = [
    Case {
        name: "self-tests",
        cmdline: "",
        initrd: Initrd::None,
        expect: "XSSTUB-SMOKE PASS ",
        status: EXIT_PASS,
        boots: 1,
    },
    Case {
        name: "fatal exception",
        cmdline: "xsstub.fault=ud2",
        initrd: Initrd::None,
        expect: "xsstub: FATAL exception 6 (invalid opcode)",
        status: EXIT_CRASH,
        boots: 1,
    },
    Case {
        name: "stack overflow",
        cmdline: "xsstub.fault=stack-overflow",
        initrd: Initrd::None,
        expect: "  stack overflow: the fault is in the boot stack's guard page",
        status: EXIT_CRASH,
        boots: 1,
    },
    Case {
        name: "panic",
        cmdline: "xsstub.fault=panic",
        initrd: Initrd::None,
        expect: "xsstub: PANIC ",
        status: EXIT_CRASH,
        boots: 1,
    },
    Case {
        name: "live-update hand-over",
        cmdline: "xsstub.handover-test",
        initrd: Initrd::Image,
        expect: "XSSTUB-SMOKE PASS handover (",
        status: EXIT_PASS,
        boots: 2,
    },
    Case {
        name: "hand-over of a corrupt image",
        cmdline: "xsstub.handover-test",
        initrd: Initrd::Truncated,
        expect: "XSSTUB-SMOKE PASS handover-refused: ",
        status: EXIT_PASS,
        boots: 1,
    },
];

/// Writes the first half of `image` to a scratch file (removed by the caller).
fn truncated_copy(image: &Path) -> Result<PathBuf, String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let dir = std::env::temp_dir().join(format!("xsstub-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("truncated.elf");
    std::fs::write(&path, bytes.get(..bytes.len() / 2).unwrap_or_default())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Boots `image` on bare QEMU for each case; on failure the error holds the whole console
/// log of the failing run.
pub fn run(image: &Path) -> Result<(), String> {
    util::ensure_packages(&[QEMU])?;
    let truncated = truncated_copy(image)?;
    let result = run_cases(image, &truncated);
    if let Some(dir) = truncated.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn run_cases(image: &Path, truncated: &Path) -> Result<(), String> {
    for case in &CASES {
        let started = Instant::now();
        let initrd = match case.initrd {
            Initrd::None => None,
            Initrd::Image => Some(image),
            Initrd::Truncated => Some(truncated),
        };
        let (log, status) = boot(image, case.cmdline, initrd)?;
        let seconds = started.elapsed().as_secs_f64();
        let fail = |why: String| {
            Err(format!(
                "smoke `{}`: {why}\n== console log ({} bytes)\n{log}== end of log",
                case.name,
                log.len()
            ))
        };
        let Some(status) = status else {
            return fail(format!("QEMU did not exit within {}s", TIMEOUT.as_secs()));
        };
        if case.status == EXIT_PASS {
            print!("{log}");
        }
        let found = log.lines().find(|l| l.starts_with(case.expect));
        if found.is_none() {
            return fail(format!("no line starting with `{}`", case.expect));
        }
        if case.status != EXIT_PASS && log.contains("XSSTUB-SMOKE PASS") {
            return fail("the deliberate fault did not stop the kernel".into());
        }
        if log.contains("XSSTUB-SMOKE FAIL") {
            return fail("a FAIL verdict".into());
        }
        let starts: Vec<usize> = log
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("xsstub ") && l.ends_with(" starting"))
            .map(|(i, _)| i)
            .collect();
        if starts.len() != case.boots {
            return fail(format!(
                "the kernel started {} times, expected {}",
                starts.len(),
                case.boots
            ));
        }
        // The verdict must come from the last instance.
        let verdict = log.lines().position(|l| l.starts_with(case.expect));
        if verdict < starts.last().copied() {
            return fail("the verdict came before the last start".into());
        }
        if status != case.status {
            return fail(format!(
                "QEMU exit status {status}, expected {}",
                case.status
            ));
        }
        eprintln!(
            "xtask: smoke `{}` ok in {seconds:.1}s (exit {status}): {}",
            case.name,
            found.unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs QEMU on `image` (with `initrd` as module 0) and returns its console log (debugcon,
/// then QEMU's own stderr) and exit status (`None` after a timeout, when QEMU is killed).
fn boot(
    image: &Path,
    cmdline: &str,
    initrd: Option<&Path>,
) -> Result<(String, Option<i32>), String> {
    let mut cmd = Command::new(QEMU.1);
    cmd.args([
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        "qemu64",
        "-m",
        "64",
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-debugcon",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-kernel",
    ])
    .arg(image);
    if !cmdline.is_empty() {
        cmd.args(["-append", cmdline]);
    }
    if let Some(initrd) = initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    eprintln!("xtask: running {cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", QEMU.1))?;
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status.code()),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for QEMU: {e}"));
            }
        }
    };
    let mut log = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = err.join().unwrap_or_default();
    if !stderr.is_empty() {
        log.push_str("== QEMU stderr\n");
        log.push_str(&String::from_utf8_lossy(&stderr));
    }
    Ok((log, status.map(|s| s.unwrap_or(-1))))
}
