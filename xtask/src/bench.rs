//! `cargo xtask bench`: engine and socket benchmark figures.

/// Runs every benchmark and prints its figures.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("not written yet".into())
}
