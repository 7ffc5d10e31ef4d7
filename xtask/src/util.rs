//! Build, test and demo steps, and the helpers they share.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd.current_dir(root()).status().map_err(|e| format!("{shown}: {e}"))?;
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

/// Builds the image and host tools; returns the image path.
pub fn build() -> Result<PathBuf, String> {
    run(cargo().args(["build", "--release", "--workspace"]))?;
    Ok(root().join("target/release/xsstub"))
}

/// Everything CI runs.
pub fn test() -> Result<(), String> {
    Err("not written yet".into())
}

/// The demo.
pub fn demo() -> Result<(), String> {
    Err("not written yet".into())
}
