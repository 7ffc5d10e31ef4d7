//! Build, test and demo steps, and the helpers they share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
/// The value after `flag` on a command line (`--flag VALUE`), or an error naming the flag
/// with `usage` after it.
pub fn flag_value<'a>(
    it: &mut impl Iterator<Item = &'a String>,
    flag: &str,
    usage: &str,
) -> Result<String, String> {
    it.next()
        .cloned()
        .ok_or_else(|| format!("{flag} needs a value\n\n{usage}"))
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// `cargo`, as the one that runs us.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds the host tools, then the image (package `xsstub`) with the kernel's code-generation
/// flags in its own target dir, then a copy without debug info (symbols and notes kept):
/// returns that stripped image's path, the one to boot and to send in a live update. The
/// unstripped ELF stays next to it for debuggers.
pub fn build() -> Result<PathBuf, String> {
    run(cargo().args(["build", "--release", "--workspace", "--exclude", "xsstub"]))?;
    build_image(KERNEL_TARGET_DIR, None)
}

/// Builds the second image the live-update tests switch between: the same sources with
/// `XSSTUB_FLAVOR=+b`, so its version text and build id differ. Returns its path.
pub fn build_flavor_b() -> Result<PathBuf, String> {
    build_image("target/kernel-b", Some("+b"))
}

/// Builds what the live-update tests need beside the two images: the fault-injection flavour
/// (`target/kernel-fault`: refuses, panics or corrupts its state as its command line asks;
/// never shipped) and two copies of the shipped image with its compatibility note altered
/// (`target/kernel-test/xsstub-nonote`: no note; `xsstub-future`: reads only hand-over
/// versions 90 to 99). Returns their paths in that order.
pub fn build_test_images(image: &Path) -> Result<[PathBuf; 3], String> {
    let fault = build_image_with("target/kernel-fault", Some("+fault"), &["fault-injection"])?;
    let dir = root().join("target/kernel-test");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let (nonote, future) = (dir.join("xsstub-nonote"), dir.join("xsstub-future"));
    let write = |path: &Path, b: &[u8]| {
        std::fs::write(path, b).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(&nonote, &patch_note(&bytes, None)?)?;
    write(&future, &patch_note(&bytes, Some((90, 99)))?)?;
    Ok([fault, nonote, future])
}

/// The image with its `XSSTUB` note renamed (`None`: it no longer counts as one) or claiming
/// to read hand-over versions `min..=max`.
fn patch_note(elf: &[u8], handover: Option<(u32, u32)>) -> Result<Vec<u8>, String> {
    use xsstate::compat::{NOTE_DESC_BYTES, NOTE_NAME, NOTE_TYPE};
    let mut head = Vec::new();
    head.extend_from_slice(&(NOTE_NAME.len() as u32).to_le_bytes());
    head.extend_from_slice(&NOTE_DESC_BYTES.to_le_bytes());
    head.extend_from_slice(&NOTE_TYPE.to_le_bytes());
    head.extend_from_slice(NOTE_NAME);
    let at = elf
        .windows(head.len())
        .position(|w| w == head)
        .ok_or("the image has no XSSTUB note to patch")?;
    let mut out = elf.to_vec();
    match handover {
        None => {
            // "XSSTUB" -> "XSSTUX": a note of nobody's.
            if let Some(b) = out.get_mut(at + 12 + 5) {
                *b = b'X';
            }
        }
        Some((min, max)) => {
            // Descriptor after the name padded to 8: count, kind, min, max, ...
            let desc = at + 12 + 8;
            for (i, v) in [(2usize, min), (3, max)] {
                if let Some(w) = out.get_mut(desc + 4 * i..desc + 4 * i + 4) {
                    w.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    Ok(out)
}

/// Builds the kernel image into `target_dir` and strips its debug info; returns the path.
fn build_image(target_dir: &str, flavor: Option<&str>) -> Result<PathBuf, String> {
    build_image_with(target_dir, flavor, &[])
}

/// Builds the self-test flavour `cargo xtask smoke` boots on bare QEMU.
pub fn build_selftest() -> Result<PathBuf, String> {
    build_image_with("target/kernel-smoke", Some("+selftest"), &["selftest"])
}

/// [`build_image`] with cargo features.
fn build_image_with(
    target_dir: &str,
    flavor: Option<&str>,
    features: &[&str],
) -> Result<PathBuf, String> {
    // Every crate of the kernel gets no-redzone (interrupts must not clobber the stack below
    // RSP) and static relocation (a non-PIE image at 1 MiB).
    let flags = [
        "-C",
        "no-redzone=yes",
        "-C",
        "relocation-model=static",
        "-C",
        "target-cpu=x86-64",
    ];
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "xsstub"]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    // Chosen by measurement: opt-level "s" with fat LTO and one codegen unit keeps the
    // image near 400 KiB (3 makes it 680 KiB), and under QEMU's TCG the live update's dump
    // runs 3-5 times faster than with "z" (which calls out for every small copy and push).
    // `XSSTUB_OPT_LEVEL` overrides it for experiments; the host tools keep the workspace's
    // release profile.
    let opt = std::env::var("XSSTUB_OPT_LEVEL").unwrap_or_else(|_| String::from("s"));
    cmd.env("CARGO_TARGET_DIR", root().join(target_dir))
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", opt)
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env_remove("RUSTFLAGS")
        .env_remove("XSSTUB_FLAVOR");
    if let Some(f) = flavor {
        cmd.env("XSSTUB_FLAVOR", f);
    }
    run(&mut cmd)?;
    let full = root().join(target_dir).join("release/xsstub");
    let stripped = root().join(target_dir).join("release/xsstub-stripped");
    // The shipped file: no debug info and no symbol table (the unstripped ELF beside it is
    // for debuggers); the allocated sections, notes included, stay.
    run(Command::new("objcopy")
        .arg("--strip-all")
        .arg(&full)
        .arg(&stripped))?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "xtask: image {} ({} bytes; {} with debug info)",
        stripped.display(),
        size(&stripped),
        size(&full)
    );
    Ok(stripped)
}

/// The kernel image's own target dir (its flags differ from the host tools').
pub const KERNEL_TARGET_DIR: &str = "target/kernel";

/// Debian packages the tests use, with a file that shows each is installed.
const PACKAGES: [(&str, &str); 2] = [
    ("xenstore-utils", "/usr/bin/xenstore-read"),
    ("xen-utils-4.17", "/usr/lib/xen-4.17/bin/test-xenstore"),
];

/// Installs the missing Debian packages with apt-get (the machines start fresh).
pub fn ensure_packages(wanted: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, f)| !Path::new(f).exists())
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    for (pkg, file) in wanted {
        if !Path::new(file).exists() {
            return Err(format!("{pkg} installed but {file} is missing"));
        }
    }
    Ok(())
}

/// Everything CI runs: packages, formatting, lints, the image build and every test.
pub fn test() -> Result<(), String> {
    ensure_packages(&PACKAGES)?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel's test flavours have their own code paths: lint them too.
    run(cargo().args([
        "clippy",
        "-p",
        "xsstub",
        "--features",
        "selftest,fault-injection",
        "--",
        "-D",
        "warnings",
    ]))?;
    let image = build()?;
    eprintln!("xtask: image {}", image.display());
    crate::smoke::run(&build_selftest()?)?;
    // Stock clients are required here: a missing one is a failure, not a skip.
    run(cargo()
        .args(["test", "--workspace"])
        .env("XS_REQUIRE_STOCK", "1"))?;
    // The Xen-in-QEMU lab: every scenario with the stub domain (live update included), and
    // its session compared with C xenstored's. `XS_LAB=0` skips it for a quick local run.
    if std::env::var("XS_LAB").is_ok_and(|v| v == "0") {
        eprintln!("xtask: XS_LAB=0: the Xen lab was skipped");
    } else {
        crate::lab::run_for_test()?;
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// The demo: the stub domain under Xen in QEMU (`--host`: the engine behind
/// `xenstored-host` on this machine instead).
pub fn demo(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--host") {
        return host_demo();
    }
    let image = build()?;
    build_flavor_b()?;
    crate::lab::demo(&image)
}

/// The host demo: the engine behind `xenstored-host`, driven by the stock clients.
fn host_demo() -> Result<(), String> {
    ensure_packages(&PACKAGES)?;
    run(cargo().args(["build", "--release", "-p", "xstools"]))?;
    let dir = std::env::temp_dir().join(format!("xs-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let socket = dir.join("socket");
    let log = dir.join("log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut daemon = Command::new(root().join("target/release/xenstored-host"))
        .arg("--socket")
        .arg(&socket)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("xenstored-host: {e}"))?;
    let result = demo_session(&socket);
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    println!("== xenstored-host log");
    print!("{}", std::fs::read_to_string(&log).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn demo_session(socket: &Path) -> Result<(), String> {
    for _ in 0..100 {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let steps: [(&str, &[&str]); 9] = [
        (
            "/usr/bin/xenstore-write",
            &[
                "/local/domain/0/name",
                "Domain-0",
                "/vm/demo/state",
                "running",
            ],
        ),
        ("/usr/bin/xenstore-read", &["/vm/demo/state"]),
        ("/usr/bin/xenstore-chmod", &["/vm/demo", "n0", "r1"]),
        ("/usr/bin/xenstore-ls", &["-p", "/vm"]),
        ("/usr/bin/xenstore-list", &["/"]),
        ("/usr/bin/xenstore-rm", &["/vm/demo/state"]),
        ("/usr/bin/xenstore-exists", &["/vm/demo/state"]),
        ("/usr/lib/xen-4.17/bin/xenstore-control", &["quota"]),
        ("/usr/lib/xen-4.17/bin/test-xenstore", &[]),
    ];
    println!("== xenstored-host serving on {}", socket.display());
    for (prog, args) in steps {
        let name = Path::new(prog)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(prog);
        println!("$ {name} {}", args.join(" "));
        let out = Command::new(prog)
            .args(args)
            .env("XENSTORED_PATH", socket)
            .output()
            .map_err(|e| format!("{prog}: {e}"))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        println!("(exit {})", out.status.code().unwrap_or(-1));
    }
    println!("== the stub domain under Xen in QEMU joins this demo with the kernel issue");
    Ok(())
}
