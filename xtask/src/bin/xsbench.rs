//! `xsbench`: engine throughput, memory per node, and socket round trips against `xenstored-host`.
//!
//! Everything is driven the way a shell drives the engine: encoded request bytes go into
//! [`Engine::receive`], replies and events come out of [`Engine::drain_output`].
//!
//! Options: `--skip-socket` (no daemon section), `--no-daemon` (the daemon did not build),
//! `--quick` (shorter runs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use xsstate::wire::{decode_all, Message, MsgType};
use xsstate::{ConnId, Engine, EngineConfig, TxId};

/// A `System` wrapper that keeps a count of live heap bytes.
struct Counting;

/// Bytes currently allocated through [`Counting`].
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds bookkeeping on an atomic counter, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size layout),
        // which is exactly what `System.alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `alloc`, forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence from `System`)
        // with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr`/`layout` describe a live block of ours (from
        // `System`) and that `new_size` is valid for `layout.align()`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes right now.
fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// How long each repeatable engine benchmark runs.
struct Budget {
    engine: Duration,
    socket: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let skip_socket = args.iter().any(|a| a == "--skip-socket");
    let no_daemon = args.iter().any(|a| a == "--no-daemon");
    let budget = if quick {
        Budget {
            engine: Duration::from_millis(200),
            socket: Duration::from_millis(300),
        }
    } else {
        Budget {
            engine: Duration::from_secs(1),
            socket: Duration::from_secs(2),
        }
    };

    if let Some(i) = args.iter().position(|a| a == "--lu-profile") {
        let nodes = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(1000);
        let only = args.get(i + 2).map(String::as_str);
        lu_profile(nodes, only);
        return;
    }
    if args.iter().any(|a| a == "--image-only") {
        image_section(quick);
        return;
    }
    println!("xsbench: engine driven through Engine::receive / drain_output (one thread)");
    println!();
    println!("{:<48} {:>14} {:>12}", "engine benchmark", "ops/s", "us/op");
    println!("{}", "-".repeat(76));
    row("READ (existing node, 5-byte value)", bench_read(&budget));
    row(
        "WRITE create (100k new nodes, 100 per dir)",
        bench_write_create(),
    );
    row(
        "WRITE overwrite (same node)",
        bench_write_overwrite(&budget),
    );
    row(
        "DIRECTORY (1000 children named 0..999)",
        bench_directory(&budget),
    );
    row(
        "transaction: start + 10 WRITEs + commit",
        bench_transaction(&budget),
    );
    row(
        "WRITE firing 100 watches (100 conns)",
        bench_watches(&budget, 100, 1),
    );
    row(
        "WRITE firing 100 watches (1 conn)",
        bench_watches(&budget, 1, 100),
    );
    println!();
    memory_per_node();
    println!();
    image_section(quick);
    println!();
    if skip_socket {
        println!("socket round trips: skipped (--skip-socket)");
    } else if no_daemon {
        println!("socket round trips: skipped: xenstored-host not built");
    } else {
        socket_section(&budget);
    }
}

/// Dump and restore of a large engine (100k nodes, 1000 connections, 10k watches) through
/// the seed image format, against a plain copy of the image's bytes in the same run.
fn image_section(quick: bool) {
    use xsstate::image::{read, write, Endianness, Layout};
    use xsstate::snapshot::DumpOptions;

    let (nodes, conns, watches_per_conn) = if quick {
        (10_000, 100, 10)
    } else {
        (100_000, 1000, 10)
    };
    let mut cfg = EngineConfig::default();
    cfg.write_rate.per_s = 0;
    let mut e = Engine::new(cfg.clone());
    let d0 = e.connect_socket(false);
    for i in 0..nodes {
        let path = format!("/local/domain/{}/data/n{i}", i % conns + 1);
        send_ok(
            &mut e,
            d0,
            &msg(MsgType::Write, 1, &write_payload(&path, b"value-12")),
        );
    }
    for d in 1..=conns {
        let intro = format!("{d}\0{}\0{}\0", 1000 + d, 10 + d);
        send_ok(&mut e, d0, &msg(MsgType::Introduce, 1, intro.as_bytes()));
    }
    let guests: Vec<ConnId> = e
        .connections()
        .filter(|c| c.domid.0 != 0)
        .map(|c| c.id)
        .collect();
    for &g in &guests {
        for w in 0..watches_per_conn {
            let mut p = format!("data/w{w}").into_bytes();
            p.push(0);
            p.extend_from_slice(format!("tok{w}").as_bytes());
            p.push(0);
            send(&mut e, g, &msg(MsgType::Watch, 1, &p));
        }
    }
    let opts = DumpOptions {
        endianness: Endianness::Little,
        ..DumpOptions::default()
    };
    let best = |f: &mut dyn FnMut() -> Duration| (0..3).map(|_| f()).min().unwrap_or_default();
    // The live update's path: the stream straight from the tree into a buffer sized first
    // (memory already in place, as the stub's hand-over buffer is: the first round touches
    // its pages), and straight back into a store.
    let mut bytes = Vec::new();
    let dump = best(&mut || {
        let t = Instant::now();
        bytes.clear();
        bytes.reserve(e.dump_len(&opts));
        e.dump_into(&opts, &mut bytes).expect("image writes");
        t.elapsed()
    });
    let mut restored_nodes = 0;
    let restore = best(&mut || {
        let t = Instant::now();
        let r = Engine::restore_bytes(&bytes, Layout::Seed, cfg.clone()).expect("image restores");
        let took = t.elapsed();
        restored_nodes = r.store().len();
        took
    });
    // The tools' path: parsed records in between.
    let records = best(&mut || {
        let t = Instant::now();
        let b = write(&e.dump(&opts)).expect("image writes");
        let image = read(&b, Layout::Seed).expect("image reads");
        let r = Engine::restore(image, cfg.clone()).expect("image restores");
        std::hint::black_box(r.store().len());
        t.elapsed()
    });
    let mut dst = vec![0u8; bytes.len()];
    let copy = best(&mut || {
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&bytes));
        std::hint::black_box(&dst);
        t.elapsed()
    })
    .max(Duration::from_nanos(1));
    let watches: usize = e.connections().map(|c| c.watches.len()).sum();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "image: {} nodes, {} connections, {} watches -> {} bytes (seed layout)",
        group(e.store().len() as u64),
        group(e.connections().count() as u64),
        group(watches as u64),
        group(bytes.len() as u64)
    );
    println!(
        "  dump (engine -> bytes)      {:>10.2} ms   {:>8.1}x memcpy",
        ms(dump),
        ms(dump) / ms(copy)
    );
    println!(
        "  restore (bytes -> engine)   {:>10.2} ms   {:>8.1}x memcpy",
        ms(restore),
        ms(restore) / ms(copy)
    );
    println!(
        "  via parsed records (both)   {:>10.2} ms   {:>8.1}x memcpy",
        ms(records),
        ms(records) / ms(copy)
    );
    println!("  memcpy of the image         {:>10.3} ms", ms(copy));
    assert_eq!(restored_nodes, e.store().len(), "restore lost nodes");
}

/// The live update's engine work on a store shaped like the lab's `lu-bench` (nodes
/// `/bench/c<k>/<i>` = `v<i>`, one dom0 connection with a few watches), dump and restore 20
/// times each, for profiles (`valgrind --tool=callgrind xsbench --lu-profile 1000`). A third
/// argument, `dump` or `restore`, runs that half 100 times and the other once
/// (`perf record xsbench --lu-profile 100000 restore`).
fn lu_profile(nodes: u32, only: Option<&str>) {
    use xsstate::image::Layout;
    use xsstate::snapshot::DumpOptions;
    let mut cfg = EngineConfig::default();
    cfg.write_rate.per_s = 0;
    let mut e = Engine::new(cfg.clone());
    let d0 = e.connect_socket(false);
    for w in 0..9 {
        let p = format!("/w{w}\0t{w}\0");
        send(&mut e, d0, &msg(MsgType::Watch, 1, p.as_bytes()));
    }
    for i in 0..nodes {
        let path = format!("/bench/c{}/{i}", i / 1000);
        send_ok(
            &mut e,
            d0,
            &msg(
                MsgType::Write,
                1,
                &write_payload(&path, format!("v{i}").as_bytes()),
            ),
        );
    }
    let opts = DumpOptions::default();
    let dump = || {
        let mut out = Vec::with_capacity(e.dump_len(&opts));
        e.dump_into(&opts, &mut out).expect("image writes");
        out
    };
    let restore = |out: &[u8]| {
        Engine::restore_bytes(out, Layout::Seed, cfg.clone())
            .expect("image restores")
            .store()
            .len()
    };
    let (dumps, restores) = match only {
        Some("dump") => (100, 1),
        Some("restore") => (1, 100),
        _ => (20, 20),
    };
    let mut out = Vec::new();
    let t = Instant::now();
    for _ in 0..dumps {
        out = std::hint::black_box(dump());
    }
    let dump_took = t.elapsed() / dumps;
    let mut total = 0;
    let t = Instant::now();
    for _ in 0..restores {
        total += restore(&out);
    }
    let restore_took = t.elapsed() / restores;
    println!(
        "{} bytes; dump {:.3} ms, restore {:.3} ms (each); restored {total} nodes",
        out.len(),
        dump_took.as_secs_f64() * 1000.0,
        restore_took.as_secs_f64() * 1000.0
    );
}

/// Prints one table row from (operations, elapsed).
fn row(name: &str, (ops, took): (u64, Duration)) {
    let secs = took.as_secs_f64().max(1e-9);
    let per_s = ops as f64 / secs;
    let us = secs * 1e6 / (ops.max(1) as f64);
    println!("{name:<48} {:>14} {us:>12.2}", group(per_s as u64));
}

/// `1234567` as `1 234 567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

/// An encoded request outside any transaction.
fn msg(ty: MsgType, req: u32, payload: &[u8]) -> Vec<u8> {
    Message::new(ty, req, TxId(0), payload.to_vec()).encode()
}

/// `path\0value`.
fn write_payload(path: &str, value: &[u8]) -> Vec<u8> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(value);
    p
}

/// `path\0`.
fn path0(path: &str) -> Vec<u8> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p
}

/// Sends encoded bytes and takes the replies, as a shell does; panics on a fault or an error
/// reply where none is expected (benchmarks must measure the success path).
fn send(e: &mut Engine, conn: ConnId, bytes: &[u8]) -> Vec<u8> {
    match e.receive(conn, bytes) {
        Ok(n) if n == bytes.len() => {}
        other => panic!("engine did not take the request: {other:?}"),
    }
    e.drain_output(conn)
}

/// Like [`send`], but checks the reply is not an `XS_ERROR`.
fn send_ok(e: &mut Engine, conn: ConnId, bytes: &[u8]) -> Vec<u8> {
    let out = send(e, conn, bytes);
    if out.get(..4) == Some(&(MsgType::Error as u32).to_le_bytes()) {
        panic!(
            "error reply: {:?}",
            String::from_utf8_lossy(out.get(16..).unwrap_or(&[]))
        );
    }
    out
}

/// A fresh engine and a dom0 socket connection.
fn engine() -> (Engine, ConnId) {
    let mut e = Engine::new(EngineConfig::default());
    let c = e.connect_socket(false);
    (e, c)
}

/// Runs `step` repeatedly (in batches of `batch`) until `budget` has passed.
fn timed(budget: Duration, batch: u64, mut step: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            step();
        }
        ops += batch;
    }
    (ops, start.elapsed())
}

fn bench_read(b: &Budget) -> (u64, Duration) {
    let (mut e, c) = engine();
    send_ok(
        &mut e,
        c,
        &msg(MsgType::Write, 1, &write_payload("/bench/read", b"value")),
    );
    let req = msg(MsgType::Read, 2, &path0("/bench/read"));
    assert!(
        send_ok(&mut e, c, &req).ends_with(b"value"),
        "READ does not return the value"
    );
    timed(b.engine, 1000, || {
        let out = send(&mut e, c, &req);
        std::hint::black_box(out);
    })
}

fn bench_write_create() -> (u64, Duration) {
    const N: u32 = 100_000;
    let (mut e, c) = engine();
    let reqs: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            msg(
                MsgType::Write,
                i,
                &write_payload(&format!("/bench/create/d{}/n{}", i / 100, i % 100), b"v"),
            )
        })
        .collect();
    let start = Instant::now();
    for r in &reqs {
        std::hint::black_box(send(&mut e, c, r));
    }
    let took = start.elapsed();
    assert!(e.store().len() >= N as usize, "creates failed");
    (u64::from(N), took)
}

fn bench_write_overwrite(b: &Budget) -> (u64, Duration) {
    let (mut e, c) = engine();
    let reqs = [
        msg(MsgType::Write, 1, &write_payload("/bench/over", b"value-a")),
        msg(MsgType::Write, 2, &write_payload("/bench/over", b"value-b")),
    ];
    send_ok(&mut e, c, &reqs[0]);
    let mut i = 0usize;
    timed(b.engine, 1000, || {
        i += 1;
        std::hint::black_box(send_ok(&mut e, c, &reqs[i % 2]));
    })
}

fn bench_directory(b: &Budget) -> (u64, Duration) {
    let (mut e, c) = engine();
    for i in 0..1000u32 {
        send_ok(
            &mut e,
            c,
            &msg(
                MsgType::Write,
                i,
                &write_payload(&format!("/bench/dir/{i}"), b""),
            ),
        );
    }
    let req = msg(MsgType::Directory, 1, &path0("/bench/dir"));
    let out = send_ok(&mut e, c, &req);
    assert!(out.len() > 3800, "directory reply too short");
    timed(b.engine, 100, || {
        std::hint::black_box(send(&mut e, c, &req));
    })
}

fn bench_transaction(b: &Budget) -> (u64, Duration) {
    let (mut e, c) = engine();
    let start_req = msg(MsgType::TransactionStart, 1, b"\0");
    let paths: Vec<String> = (0..10).map(|k| format!("/bench/tx/key{k}")).collect();
    let mut n = 0u32;
    timed(b.engine, 100, || {
        n = n.wrapping_add(1);
        let out = send_ok(&mut e, c, &start_req);
        let (msgs, _) = decode_all(&out).unwrap_or_default();
        let id = msgs
            .first()
            .and_then(|m| {
                std::str::from_utf8(m.payload.strip_suffix(b"\0")?)
                    .ok()?
                    .parse::<u32>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no transaction id in {out:?}"));
        let tx = TxId(id);
        for (k, p) in paths.iter().enumerate() {
            let w = Message::new(
                MsgType::Write,
                k as u32,
                tx,
                write_payload(p, n.to_string().as_bytes()),
            )
            .encode();
            send_ok(&mut e, c, &w);
        }
        let end = Message::new(MsgType::TransactionEnd, 99, tx, b"T\0".to_vec()).encode();
        let out = send_ok(&mut e, c, &end);
        std::hint::black_box(out);
    })
}

/// One writer; `conns` watching connections with `per_conn` watches each, all matching the
/// written node. Every event is drained, as a shell delivers them.
fn bench_watches(b: &Budget, conns: usize, per_conn: usize) -> (u64, Duration) {
    let (mut e, writer) = engine();
    send_ok(
        &mut e,
        writer,
        &msg(MsgType::Write, 1, &write_payload("/bench/w/node", b"0")),
    );
    let mut watchers = Vec::new();
    for i in 0..conns {
        let w = e.connect_socket(false);
        for j in 0..per_conn {
            let mut p = path0("/bench/w");
            p.extend_from_slice(format!("tok{i}-{j}\0").as_bytes());
            send_ok(&mut e, w, &msg(MsgType::Watch, 1, &p));
        }
        e.drain_output(w); // the initial events
        watchers.push(w);
    }
    let reqs = [
        msg(MsgType::Write, 2, &write_payload("/bench/w/node", b"a")),
        msg(MsgType::Write, 3, &write_payload("/bench/w/node", b"b")),
    ];
    let mut events = 0usize;
    let mut i = 0usize;
    let r = timed(b.engine, 50, || {
        i += 1;
        send_ok(&mut e, writer, &reqs[i % 2]);
        for &w in &watchers {
            let out = e.drain_output(w);
            events += out.len();
        }
    });
    assert!(events > 0, "no watch events fired");
    r
}

fn memory_per_node() {
    println!("heap bytes per node (counting global allocator, live heap bytes):");
    // Hierarchical: 100k leaves in directories of 100 under a guest's home.
    let (n, per) = nodes_bytes(100_000, |i| {
        format!("/local/domain/1/data/d{}/n{}", i / 100, i % 100)
    });
    println!(
        "  hierarchical: {} nodes (100k leaves of 8-byte values, ~35-byte paths, in \
         directories of 100)   {per} bytes per node",
        group(n as u64)
    );
    // Flat: one directory of 10k children.
    let (n, per) = nodes_bytes(10_000, |i| format!("/local/domain/1/flat/n{i}"));
    println!(
        "  flat: {} nodes (one directory of 10k children, 8-byte values)              \
         {per} bytes per node",
        group(n as u64)
    );
}

/// Writes `count` nodes named by `path` (value `value123`); returns the nodes created and the
/// live heap bytes per node they added.
fn nodes_bytes(count: u32, path: impl Fn(u32) -> String) -> (usize, usize) {
    let (mut e, c) = engine();
    let reqs: Vec<Vec<u8>> = (0..count)
        .map(|i| msg(MsgType::Write, i, &write_payload(&path(i), b"value123")))
        .collect();
    let nodes_before = e.store().len();
    let before = live_bytes();
    for r in &reqs {
        let out = send(&mut e, c, r);
        drop(out);
    }
    let after = live_bytes();
    let nodes = e.store().len() - nodes_before;
    std::hint::black_box(&e);
    (nodes, after.saturating_sub(before) / nodes.max(1))
}

// ---------------------------------------------------------------------------------------
// Socket round trips against xenstored-host
// ---------------------------------------------------------------------------------------

/// The workspace root (xsbench lives in the xtask package).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Kills the daemon we started when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn socket_section(b: &Budget) {
    let bin = root().join("target/release/xenstored-host");
    println!("socket round trips (READ of an existing node, dom0 socket, xenstored-host):");
    if !bin.exists() {
        println!("  skipped: xenstored-host not built");
        return;
    }
    match socket_bench(&bin, b) {
        Ok(lines) => {
            for l in lines {
                println!("  {l}");
            }
        }
        Err(e) => println!("  skipped: {e}"),
    }
}

fn socket_bench(bin: &Path, b: &Budget) -> Result<Vec<String>, String> {
    let socket = std::env::temp_dir().join(format!("xsbench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let child = Command::new(bin)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut daemon = Daemon {
        child,
        socket: socket.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut first = loop {
        if let Ok(s) = UnixStream::connect(&socket) {
            break s;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return Err(format!("xenstored-host exited early ({status})"));
        }
        if Instant::now() > deadline {
            return Err("xenstored-host did not open its socket within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let (ty, _) = round_trip(
        &mut first,
        &msg(MsgType::Write, 1, &write_payload("/bench/rt", b"value")),
    )?;
    if ty != MsgType::Write as u32 {
        return Err(format!("WRITE /bench/rt answered with type {ty}"));
    }
    let mut lines = Vec::new();
    for clients in [1usize, 8] {
        let (ops, took) = socket_clients(&socket, clients, b.socket)?;
        let secs = took.as_secs_f64().max(1e-9);
        lines.push(format!(
            "{clients} client{:<2} {:>12} round trips/s   ({:.1} us/round trip per client)",
            if clients == 1 { "" } else { "s" },
            group((ops as f64 / secs) as u64),
            secs * 1e6 * clients as f64 / ops.max(1) as f64
        ));
    }
    drop(first);
    drop(daemon);
    Ok(lines)
}

/// Runs `n` clients in parallel, each doing READ round trips for `budget`.
fn socket_clients(socket: &Path, n: usize, budget: Duration) -> Result<(u64, Duration), String> {
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut s = UnixStream::connect(&socket).map_err(|e| format!("connect: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| e.to_string())?;
                let req = msg(MsgType::Read, 7, &path0("/bench/rt"));
                let t0 = Instant::now();
                let mut ops = 0u64;
                while t0.elapsed() < budget {
                    for _ in 0..100 {
                        let (ty, payload) = round_trip(&mut s, &req)?;
                        if ty != MsgType::Read as u32 || payload != b"value" {
                            return Err(format!("unexpected READ reply type {ty}: {payload:?}"));
                        }
                    }
                    ops += 100;
                }
                Ok(ops)
            })
        })
        .collect();
    let mut total = 0u64;
    for h in handles {
        total += h
            .join()
            .map_err(|_| "client thread panicked".to_string())??;
    }
    Ok((total, start.elapsed()))
}

/// Writes one request and reads replies until a non-event one arrives; returns its type and
/// payload.
fn round_trip(s: &mut UnixStream, req: &[u8]) -> Result<(u32, Vec<u8>), String> {
    s.write_all(req).map_err(|e| format!("write: {e}"))?;
    loop {
        let mut h = [0u8; 16];
        s.read_exact(&mut h)
            .map_err(|e| format!("read header: {e}"))?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (ty, len) = (word(0), word(12) as usize);
        if len > 4096 {
            return Err(format!("reply announces {len} bytes"));
        }
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload)
            .map_err(|e| format!("read payload: {e}"))?;
        if ty != MsgType::WatchEvent as u32 {
            return Ok((ty, payload));
        }
    }
}
