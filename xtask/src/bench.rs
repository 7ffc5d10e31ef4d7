//! `cargo xtask bench`: engine and socket figures, then live-update downtime in the Xen lab.

use std::process::Command;
use std::time::Instant;

use crate::lab::Store;
use crate::util::{cargo, root, run as run_cmd};

/// Store sizes (nodes) the lab part measures by default.
const LAB_NODES: [u64; 3] = [1_000, 10_000, 100_000];

/// The lab scenario that measures one live update (`qemu-tests/scenarios/lu-bench.sh`).
const SCENARIO: &str = "lu-bench";
/// The lab scenario that measures dom0's latency under a guest's write flood.
const FAIR_SCENARIO: &str = "fair-bench";

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

/// `cargo xtask bench [--no-lab | --fair-only] [--nodes N]... [--store c|stub|both] [--quick]
/// [--skip-socket]`.
struct Options {
    lab: bool,
    /// Only the lab's fairness runs (no host table, no live-update runs).
    fair_only: bool,
    nodes: Vec<u64>,
    /// Whose live update the lab measures: the stub domain's, C xenstored's, or both.
    stores: Vec<Store>,
    /// Passed on to `xsbench`.
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        lab: true,
        fair_only: false,
        nodes: Vec::new(),
        stores: vec![Store::Stub, Store::C],
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-lab" => o.lab = false,
            "--fair-only" => o.fair_only = true,
            "--nodes" => {
                let v = crate::util::flag_value(&mut it, "--nodes", "a number of nodes")?;
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| format!("--nodes {v}: a number from 1 to 1000000"))?;
                o.nodes.push(n);
            }
            "--store" => {
                o.stores = match crate::util::flag_value(&mut it, "--store", "c, stub or both")?
                    .as_str()
                {
                    "stub" => vec![Store::Stub],
                    "c" => vec![Store::C],
                    "both" => vec![Store::Stub, Store::C],
                    other => return Err(format!("--store {other}: c, stub or both")),
                };
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
    if !o.fair_only {
        run_cmd(Command::new(&bin).args(&extra))?;
    }
    if !o.lab {
        return Ok(());
    }
    println!();
    if !tools {
        println!("live update in the Xen lab: skipped: xstools (xsprobe) did not build");
        return Ok(());
    }
    let sizes: Vec<u64> = if o.fair_only {
        Vec::new()
    } else if o.nodes.is_empty() {
        LAB_NODES.to_vec()
    } else {
        o.nodes.clone()
    };
    let rows: Vec<Row> = sizes
        .iter()
        .flat_map(|&n| o.stores.iter().map(move |&store| (n, store)))
        .map(|(n, store)| lab_run(n, store))
        .collect();
    if !o.fair_only {
        print_table(&rows);
    }
    let fair: Vec<(FairSetup, Row)> = FAIR_SETUPS
        .iter()
        .flat_map(|&setup| {
            o.stores
                .iter()
                .map(move |&store| (setup, fair_run(store, setup)))
        })
        .collect();
    print_fairness(&fair);
    let failed: Vec<String> = rows
        .iter()
        .map(|r| format!("{} nodes ({})", r.nodes, r.store.name()))
        .zip(rows.iter().map(|r| r.pass))
        .chain(fair.iter().map(|(f, r)| {
            (
                format!("fairness ({}, {}, {})", r.store.name(), f.sched, f.load),
                r.pass,
            )
        }))
        .filter(|(_, pass)| !pass)
        .map(|(name, _)| name)
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

/// Stub-domain memory (MiB) for `nodes` nodes: (initial, maximum). The default 8 MiB holds
/// 10,000 nodes and their live update; a bigger store grows the domain up to 64 MiB
/// (`XENSTORE_MAX_DOMAIN_SIZE`), as a host would set it.
fn memory_mib(nodes: u64) -> (u64, Option<u64>) {
    if nodes <= 20_000 {
        (8, None)
    } else {
        (8, Some(64))
    }
}

/// One lab boot's result.
struct Row {
    nodes: u64,
    store: Store,
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

/// Boots the lab with `nodes` nodes (and, for the stub, the memory they need) and measures
/// `store`'s live update; never fails itself.
fn lab_run(nodes: u64, store: Store) -> Row {
    let (memory, max) = memory_mib(nodes);
    eprintln!(
        "xtask: bench: live update of {} with {nodes} nodes, stub memory {memory} MiB (max {})",
        store.name(),
        max.unwrap_or(memory)
    );
    // The harness passes these from our environment into dom0 (`/xslab/config`). C
    // xenstored runs without its trace file (it would write every request).
    std::env::set_var("XSLAB_BENCH_NODES", nodes.to_string());
    std::env::set_var("XSLAB_STUB_MEMORY", memory.to_string());
    match max {
        Some(m) => std::env::set_var("XSLAB_STUB_MAXMEM", m.to_string()),
        None => std::env::remove_var("XSLAB_STUB_MAXMEM"),
    }
    std::env::set_var("XSLAB_C_TRACE", "0");
    // 100,000 nodes take many minutes to fill and to list under TCG.
    std::env::set_var("XSLAB_SCENARIO_TIMEOUT", "3600");
    let mut row = scenario_row(store, SCENARIO);
    row.nodes = nodes;
    row.memory = max.unwrap_or(memory);
    row
}

/// One setting of `fair-bench`: the scheduling, what the guest does, and QEMU's CPUs.
#[derive(Clone, Copy)]
struct FairSetup {
    /// `default` (Xen's), `control` (dom0 and the xenstore domain weighted above guests,
    /// credit2 without its rate limit) or `dedicated` (the control plane pinned to CPU 0,
    /// the guest to CPU 1).
    sched: &'static str,
    /// `writers` (the flood) or `hog` (the control: spinning with no xenstore request).
    load: &'static str,
    /// QEMU's CPUs (XSLAB_SMP).
    cpus: u32,
}

/// The settings `fair-bench` runs under, in order: the flood under Xen's defaults, the
/// same CPU taken by a guest that sends no request (what CPU contention alone costs dom0),
/// the flood with the control plane weighted, and with the control plane on a CPU of its own.
const FAIR_SETUPS: [FairSetup; 4] = [
    FairSetup {
        sched: "default",
        load: "writers",
        cpus: 1,
    },
    FairSetup {
        sched: "default",
        load: "hog",
        cpus: 1,
    },
    FairSetup {
        sched: "control",
        load: "writers",
        cpus: 1,
    },
    FairSetup {
        sched: "dedicated",
        load: "writers",
        cpus: 2,
    },
];

/// Boots the lab with `store` and runs the fairness scenario (`fair-bench`) under `setup`.
fn fair_run(store: Store, setup: FairSetup) -> Row {
    eprintln!(
        "xtask: bench: fairness with {} ({} scheduling, guest {}, {} CPU)",
        store.name(),
        setup.sched,
        setup.load,
        setup.cpus
    );
    std::env::set_var("XSLAB_STUB_MEMORY", "8");
    std::env::remove_var("XSLAB_STUB_MAXMEM");
    std::env::set_var("XSLAB_C_TRACE", "0");
    std::env::set_var("XSLAB_FAIR_SCHED", setup.sched);
    std::env::set_var("XSLAB_FAIR_LOAD", setup.load);
    let smp = std::env::var("XSLAB_SMP").ok();
    std::env::set_var("XSLAB_SMP", setup.cpus.to_string());
    let row = scenario_row(store, FAIR_SCENARIO);
    match smp {
        Some(v) => std::env::set_var("XSLAB_SMP", v),
        None => std::env::remove_var("XSLAB_SMP"),
    }
    std::env::remove_var("XSLAB_FAIR_SCHED");
    std::env::remove_var("XSLAB_FAIR_LOAD");
    row
}

/// Runs `scenario` alone with `store` and parses its verdict's `key=value` figures.
fn scenario_row(store: Store, scenario: &str) -> Row {
    let t = Instant::now();
    let result = crate::lab::run_one(store, scenario);
    let wall = t.elapsed().as_secs_f64();
    let mut row = Row {
        nodes: 0,
        store,
        memory: 0,
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
         domain goes from image A to B, C xenstored"
    );
    println!(
        "(in dom0, started without -T) to a new process of its binary (its daemon live update); \
         MiB: the stub domain's (maximum) memory"
    );
    println!(
        "by `xenstore-control live-update` while a dom0 client reads /tool back to back \
         (qemu-tests/scenarios/lu-bench.sh)"
    );
    println!();
    let width = |name: &str| name.len().max(7);
    let mut head = format!("{:>7} {:>5} {:>4}", "nodes", "store", "MiB");
    for (_, name, _, _) in COLUMNS {
        head += &format!(" {name:>w$}", w = width(name));
    }
    head += &format!(" {:>6} {:>6}", "wall s", "result");
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for r in rows {
        let memory = match r.store {
            Store::Stub => r.memory.to_string(),
            Store::C => "-".into(),
        };
        let mut line = format!("{:>7} {:>5} {memory:>4}", r.nodes, r.store.name());
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
            "{} nodes ({}): wall {:.0} s{qemu}{}",
            r.nodes,
            r.store.name(),
            r.wall,
            if r.pass {
                String::new()
            } else {
                format!("; FAIL: {}", r.reason)
            }
        );
    }
}

/// The fairness table: dom0's read latency idle and under one guest's write flood (or, for
/// the control, one guest's spinning).
fn print_fairness(rows: &[(FairSetup, Row)]) {
    println!();
    for line in [
        "fairness in the Xen lab (Xen 4.17, QEMU TCG): dom0 reads a node back to back, idle,",
        "then while a PVH Linux guest runs two loops (qemu-tests/scenarios/fair-bench.sh);",
        "goal: p99 under the guest's load <= 1.5x idle",
        "guest: writers = the flood (each loop writes as fast as it can, one request at a time);",
        "  hog = the control (each loop only spins the CPU, no xenstore request: what the CPU",
        "  the guest takes costs dom0 by itself, whatever xenstore does)",
        "sched: default = Xen's (every domain weight 256, credit2's 1 ms rate limit), one CPU;",
        "  control = dom0 and the xenstore domain weight 512, rate limit 0, one CPU;",
        "  dedicated = two CPUs, dom0 and the xenstore domain pinned to CPU 0 (the xenstore",
        "  domain weight 512, rate limit 0), the guest to CPU 1",
    ] {
        println!("{line}");
    }
    println!();
    let cols: [(&str, &str, f64, usize); 7] = [
        ("idle_p99_us", "idle p99 us", 1.0, 0),
        ("flood_p99_us", "load p99 us", 1.0, 0),
        ("p99_ratio", "ratio", 1.0, 2),
        ("idle_max_us", "idle max us", 1.0, 0),
        ("flood_max_us", "load max us", 1.0, 0),
        ("flood_reads", "dom0 reads", 1.0, 0),
        ("guest_writes", "guest writes", 1.0, 0),
    ];
    let mut head = format!("{:>5} {:>9} {:>7}", "store", "sched", "guest");
    for (_, name, _, _) in cols {
        head += &format!(" {name:>12}");
    }
    head += &format!(" {:>6}", "result");
    println!("{head}");
    println!("{}", "-".repeat(head.len()));
    for (f, r) in rows {
        let mut line = format!("{:>5} {:>9} {:>7}", r.store.name(), f.sched, f.load);
        for (key, _, div, decimals) in cols {
            line += &format!(" {:>12}", cell(r, key, div, decimals));
        }
        line += &format!(" {:>6}", if r.pass { "PASS" } else { "FAIL" });
        println!("{line}");
        if !r.pass {
            println!("      FAIL: {}", r.reason);
        }
    }
    println!();
    println!("CPU seconds each domain ran during dom0's idle and loaded loops (xl list; xs: the");
    println!("xenstore domain):");
    for (f, r) in rows {
        println!(
            "{:>5} {:>9} {:>7}  idle {:<28} load {}",
            r.store.name(),
            f.sched,
            f.load,
            cell(r, "cpu_s_idle", 1.0, 0),
            cell(r, "cpu_s_flood", 1.0, 0)
        );
    }
}
