//! `cargo xtask fuzz`: every fuzz target, time-boxed.

use std::process::Command;
use std::time::Instant;

use crate::util::{cargo, root, run as run_cmd};

/// Seconds per target when neither an argument nor `FUZZ_SECONDS` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// Runs every fuzz target for `SECONDS` (argument, else `FUZZ_SECONDS`, else 60) with
/// `cargo +nightly fuzz run`, installing cargo-fuzz first if it is missing.
pub fn run(args: &[String]) -> Result<(), String> {
    let seconds = match args.first() {
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| format!("fuzz: `{s}` is not a number of seconds"))?,
        None => match std::env::var("FUZZ_SECONDS") {
            Ok(s) => s
                .parse::<u64>()
                .map_err(|_| format!("FUZZ_SECONDS=`{s}` is not a number of seconds"))?,
            Err(_) => DEFAULT_SECONDS,
        },
    };
    ensure_cargo_fuzz()?;
    let dir = root().join("xsstate/fuzz");
    let targets = list_targets(&dir)?;
    if targets.is_empty() {
        return Err("no fuzz targets found".into());
    }
    eprintln!("xtask: running cargo +nightly fuzz build");
    let status = nightly_cargo()
        .args(["fuzz", "build"])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("cargo +nightly fuzz build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo +nightly fuzz build failed with {status}"));
    }
    let mut report = Vec::new();
    for target in &targets {
        // New inputs go to a scratch directory; the committed corpus is only read.
        let scratch = dir.join("target/corpus").join(target);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let seeds = dir.join("corpus").join(target);
        let started = Instant::now();
        let shown = format!("cargo +nightly fuzz run {target} -- -max_total_time={seconds}");
        eprintln!("xtask: running {shown}");
        let mut cmd = nightly_cargo();
        cmd.args(["fuzz", "run", target.as_str()]).arg(&scratch);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        let status = cmd
            .args(["--", &format!("-max_total_time={seconds}")])
            .current_dir(&dir)
            .status()
            .map_err(|e| format!("{shown}: {e}"))?;
        let took = started.elapsed().as_secs();
        if !status.success() {
            for (t, s) in &report {
                println!("{t}: ran clean for {s} s");
            }
            return Err(format!(
                "{target} failed after {took} s ({status}); the input is under xsstate/fuzz/artifacts/{target}/"
            ));
        }
        report.push((target.clone(), took));
    }
    println!("fuzz summary ({seconds} s per target):");
    for (t, s) in &report {
        println!("  {t:<20} ran clean for {s} s");
    }
    Ok(())
}

/// `cargo +nightly` without the stable toolchain's `RUSTUP_TOOLCHAIN` forcing it back.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .arg("+nightly");
    cmd
}

/// Installs cargo-fuzz unless `cargo +nightly fuzz --version` already works.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let ok = nightly_cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Ok(());
    }
    run_cmd(cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// The fuzz targets, as `cargo fuzz list` shows them.
fn list_targets(dir: &std::path::Path) -> Result<Vec<String>, String> {
    let out = nightly_cargo()
        .args(["fuzz", "list"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cargo +nightly fuzz list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo +nightly fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}
