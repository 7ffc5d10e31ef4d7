//! `cargo xtask bench`: engine and socket benchmark figures.

use std::process::Command;

use crate::util::{cargo, root, run as run_cmd};

/// Builds the host daemon and `xsbench` in release mode, then runs `xsbench`, whose table
/// goes straight to our stdout. Extra arguments (`--quick`, `--skip-socket`) are passed on.
/// If the daemon does not build, the engine figures are still produced and the socket
/// section says it was skipped.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut extra: Vec<String> = args.to_vec();
    if let Err(e) = run_cmd(cargo().args(["build", "--release", "-p", "xstools", "-p", "xtask"])) {
        eprintln!("xtask: {e}; benchmarking the engine only");
        run_cmd(cargo().args(["build", "--release", "-p", "xtask"]))?;
        extra.push("--no-daemon".into());
    }
    let bin = root().join("target/release/xsbench");
    run_cmd(Command::new(&bin).args(&extra))
}
