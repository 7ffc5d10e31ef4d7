//! `cargo xtask bench`: engine and socket figures, then live-update downtime in the Xen lab.

use std::process::Command;
use std::time::Instant;

use crate::util::{cargo, root, run as run_cmd};

/// Store sizes (nodes) the lab part measures by default.
const LAB_NODES: [u64; 2] = [1_000, 100_000];

/// The lab scenario that measures one live update (`qemu-tests/scenarios/lu-bench.sh`).
const SCENARIO: &str = "lu-bench";

/// The verdict's figures, in table order: (key, column heading, unit divisor, decimals).
const COLUMNS: [(&str, &str, f64, usize); 12] = [
    ("state_bytes", "state KiB", 1024.0, 0),
    ("prepare_us", "prepare ms", 1000.0, 1),
    ("jump_copy_us", "jump+copy ms", 1000.0, 1),
    ("boot_us", "boot ms", 1000.0, 1),
    ("restore_us", "restore ms", 1000.0, 1),
    ("rings_us", "rings ms", 1000.0, 1),
    ("first_reply_us", "1st reply ms", 1000.0, 1),
    ("downtime_us", "downtime ms", 1000.0, 1),
    ("client_max_gap_us", "max gap ms", 1000.0, 1),
    ("client_p99_gap_us", "p99 gap ms", 1000.0, 2),
    ("update_s", "update s", 1.0, 2),
    ("fill_s", "fill s", 1.0, 1),
];

/// `cargo xtask bench [--no-lab] [--nodes N] [--quick] [--skip-socket]`.
struct Options {
    lab: bool,
    nodes: Option<u64>,
    /// Passed on to `xsbench`.
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        lab: true,
        nodes: None,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-lab" => o.lab = false,
            "--nodes" => {
                let v = it.next().ok_or("--nodes needs a number of nodes")?;
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| format!("--nodes {v}: a number from 1 to 1000000"))?;
                o.nodes = Some(n);
            }
            _ => o.extra.push(a.clone()),
        }
    }
    Ok(o)
}

/// Builds the host daemon and `xsbench` in release mode, then runs `xsbench`, whose table
/// goes straight to our stdout. Extra arguments (`--quick`, `--skip-socket`) are passed on.
/// If the daemon does not build, the engine figures are still produced and the socket
/// section says it was skipped. Then, unless `--no-lab`, one lab boot per store size
/// (`--nodes N`: that size only) measures a live update; their figures end the output.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let mut extra = o.extra.clone();
    let mut tools = true;
    if let Err(e) = run_cmd(cargo().args(["build", "--release", "-p", "xstools", "-p", "xtask"])) {
        eprintln!("xtask: {e}; benchmarking the engine only");
        run_cmd(cargo().args(["build", "--release", "-p", "xtask"]))?;
        extra.push("--no-daemon".into());
        tools = false;
    }
    let bin = root().join("target/release/xsbench");
    run_cmd(Command::new(&bin).args(&extra))?;
    if !o.lab {
        return Ok(());
    }
    println!();
    if !tools {
        println!("live update in the Xen lab: skipped: xstools (xsprobe) did not build");
        return Ok(());
    }
    let sizes: Vec<u64> = match o.nodes {
        Some(n) => vec![n],
        None => LAB_NODES.to_vec(),
    };
    let rows: Vec<Row> = sizes.iter().map(|&n| lab_run(n)).collect();
    print_table(&rows);
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.pass)
        .map(|r| format!("{} nodes", r.nodes))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "bench: the live-update run failed with {}",
            failed.join(", ")
        ))
    }
}

/// Stub-domain memory (MiB) for `nodes` nodes: the engine takes about 270 bytes a node, and
/// the old image refuses an update unless six times what its nodes account for (about 60
/// bytes a node here) plus 2 MiB are free for the dump, the image and the hand-over buffer;
/// besides, the image and the staged one (0.7 MB each). 700 bytes a node on 8 MiB, rounded
/// up to 16 MiB steps: 16 MiB for 1k nodes, 80 MiB for 100k (64 MiB is refused).
fn memory_mib(nodes: u64) -> u64 {
    let mib = 8 + (nodes * 700).div_ceil(1 << 20);
    mib.div_ceil(16).max(1) * 16
}

/// One lab boot's result.
struct Row {
    nodes: u64,
    memory: u64,
    pass: bool,
    /// `key=value` figures of the verdict (`?` where the scenario could not get one).
    figures: Vec<(String, String)>,
    /// Why it failed (empty on PASS).
    reason: String,
    /// Seconds for the whole run (build check, boot, scenario, power-off) and QEMU's part.
    wall: f64,
    qemu: Option<f64>,
}

/// Boots the lab with `nodes` nodes and the stub memory they need; never fails itself.
fn lab_run(nodes: u64) -> Row {
    let memory = memory_mib(nodes);
    eprintln!("xtask: bench: live update with {nodes} nodes, stub memory {memory} MiB");
    // The harness passes these from our environment into dom0 (`/xslab/config`).
    std::env::set_var("XSLAB_BENCH_NODES", nodes.to_string());
    std::env::set_var("XSLAB_STUB_MEMORY", memory.to_string());
    let t = Instant::now();
    let result = crate::lab::run_one_stub(SCENARIO);
    let wall = t.elapsed().as_secs_f64();
    let mut row = Row {
        nodes,
        memory,
        pass: false,
        figures: Vec::new(),
        reason: String::new(),
        wall,
        qemu: None,
    };
    match result {
        Ok((pass, detail, qemu)) => {
            // PASS: `figures (T s)`; FAIL: `figures -- reason (T s)`, or only a reason when
            // the scenario failed before it had figures.
            let detail = strip_duration(&detail);
            let (figures, reason) = match detail.split_once(" -- ") {
                Some((f, r)) => (f, r),
                None if pass => (detail, ""),
                None => ("", detail),
            };
            row.pass = pass;
            row.figures = figures
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            row.reason = reason.to_string();
            row.qemu = Some(qemu);
        }
        Err(e) => {
            eprintln!("xtask: bench: {e}");
            row.reason = e.lines().next().unwrap_or("the lab failed").to_string();
            if let Some(first) = e.lines().nth(1) {
                row.reason = format!("{} {}", row.reason, first.trim());
            }
        }
    }
    row
}

/// The detail without the runner's trailing ` (T s)`.
fn strip_duration(detail: &str) -> &str {
    match detail.rfind(" (") {
        Some(at) if detail.ends_with(" s)") => detail.get(..at).unwrap_or(detail),
        _ => detail,
    }
}

/// `value` (a number) divided by `div` with `decimals`, or `-` / `?`.
fn cell(row: &Row, key: &str, div: f64, decimals: usize) -> String {
    match row.figures.iter().find(|(k, _)| k == key) {
        None => "-".into(),
        Some((_, v)) => match v.parse::<f64>() {
            Ok(x) => format!("{:.*}", decimals, x / div),
            Err(_) => v.clone(),
        },
    }
}

fn print_table(rows: &[Row]) {
    let cpus = std::env::var("XSLAB_SMP").unwrap_or_else(|_| "1".into());
    println!(
        "live update in the Xen lab (Xen 4.17, Linux dom0, QEMU TCG with {cpus} CPU): the stub \
         domain goes from image A to B"
    );
    println!(
        "by `xenstore-control live-update` while a dom0 client reads /tool back to back \
         (qemu-tests/scenarios/lu-bench.sh)"
    );
    println!();
    let width = |name: &str| name.len().max(7);
    let mut head = format!("{:>7} {:>4}", "nodes", "MiB");
    for (_, name, _, _) in COLUMNS {
        head += &format!(" {name:>w$}", w = width(name));
    }
    head += &format!(" {:>6} {:>6}", "wall s", "result");
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in rows {
        let mut line = format!("{:>7} {:>4}", r.nodes, r.memory);
        for (key, name, div, decimals) in COLUMNS {
            line += &format!(" {:>w$}", cell(r, key, div, decimals), w = width(name));
        }
        line += &format!(
            " {:>6.0} {:>6}",
            r.wall,
            if r.pass { "PASS" } else { "FAIL" }
        );
        println!("{line}");
    }
    println!();
    println!(
        "state: the hand-over image; prepare: from the request to the jump (the stub's clock); \
         restore: the new image rebuilding"
    );
    println!(
        "the engine; 1st reply: from the jump to the first request served (the stub's \
         downtime); max / p99 gap: between the"
    );
    println!(
        "reading client's replies (its view of the downtime; it gives up on a reply after \
         60 s); update: xenstore-control's"
    );
    println!(
        "run time; fill: creating the nodes (8 clients, one request at a time, 1000 per \
         directory); wall: the whole lab run"
    );
    for r in rows {
        let qemu = r
            .qemu
            .map(|q| format!(", QEMU {q:.0} s"))
            .unwrap_or_default();
        println!(
            "{} nodes: wall {:.0} s{qemu}{}",
            r.nodes,
            r.wall,
            if r.pass {
                String::new()
            } else {
                format!("; FAIL: {}", r.reason)
            }
        );
    }
}
