//! `cargo xtask`: the one entry point to build, demo, test, benchmark and fuzz the project.

mod bench;
mod fuzz;
mod install;
mod lab;
mod smoke;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  build   build the stub-domain image and the host tools; prints the image path last
  demo    boot Xen in QEMU with the stub domain: dom0 tools, a guest, a live update
          (--host: the engine behind xenstored-host with the stock clients instead)
  test    install what is missing, then fmt --check, clippy -D warnings and every test
  bench   engine and socket figures, then live-update downtime and fairness in the Xen lab,
          the stub beside C xenstored (--no-lab: host figures only; --fair-only: the
          fairness runs only; --nodes N...: these store sizes, default 1k 10k 100k;
          --store c|stub|both)
  fuzz    run every fuzz target time-boxed (FUZZ_SECONDS per target, default 60)
  smoke   build the self-test flavour and boot it on bare QEMU: its self-tests must pass
  lab     Xen 4.17 or 4.20 in QEMU: qemu-tests scenarios against C xenstored or the stub
          domain (cargo xtask lab --help)
  install the image into /usr/lib/xen-X.Y/boot and an example /etc/default/xencommons
          (cargo xtask install --help)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => util::build().map(|image| println!("{}", image.display())),
        Some("test") => util::test(),
        Some("demo") => util::demo(args.get(1..).unwrap_or(&[])),
        Some("bench") => bench::run(args.get(1..).unwrap_or(&[])),
        Some("fuzz") => fuzz::run(args.get(1..).unwrap_or(&[])),
        Some("lab") => lab::run(args.get(1..).unwrap_or(&[])),
        Some("install") => install::run(args.get(1..).unwrap_or(&[])),
        Some("smoke") => util::build_selftest().and_then(|image| smoke::run(&image)),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
