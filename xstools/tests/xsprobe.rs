//! `xsprobe` against `xenstored-host` over `--socket`: every subcommand.
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;

const DIRECTORY: u32 = 1;
const READ: u32 = 2;
const GET_PERMS: u32 = 3;
const WRITE: u32 = 11;
const ERROR: u32 = 16;

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

fn xsprobe(d: &Daemon) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsprobe"));
    c.arg("--socket")
        .arg(&d.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn run(d: &Daemon, args: &[&str]) -> Output {
    xsprobe(d).args(args).output().expect("run xsprobe")
}

fn spawn(d: &Daemon, args: &[&str]) -> Child {
    xsprobe(d).args(args).spawn().expect("spawn xsprobe")
}

/// Waits for a spawned xsprobe, killing it (and failing) after `secs`.
fn finish(mut child: Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "xsprobe still running after {secs} s; stdout {} stderr {}",
                stdout(&o),
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `key=value` pairs of xsprobe's stdout.
fn kv(o: &Output) -> HashMap<String, String> {
    stdout(o)
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(o: &Output, key: &str) -> u64 {
    let map = kv(o);
    map.get(key)
        .unwrap_or_else(|| panic!("no {key}= in {:?} (stderr {})", stdout(o), stderr(o)))
        .parse()
        .unwrap()
}

fn read(d: &Daemon, path: &str) -> (u32, Vec<u8>) {
    let mut s = d.connect();
    raw_call(&mut s, READ, 1, 0, format!("{path}\0").as_bytes())
}

fn write(d: &Daemon, path: &str, value: &str) {
    let mut s = d.connect();
    let r = raw_call(&mut s, WRITE, 1, 0, format!("{path}\0{value}").as_bytes());
    assert_eq!(r, (WRITE, b"OK\0".to_vec()), "write {path}");
}

/// A fresh directory for files the daemon fixture does not own.
fn scratch() -> PathBuf {
    let n = SCRATCH.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("xsprobe-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn signal(d: &Daemon, sig: &str) {
    let pid = d.child.as_ref().expect("running").id().to_string();
    assert!(Command::new("kill")
        .arg(sig)
        .arg(pid)
        .status()
        .unwrap()
        .success());
}

#[test]
fn help_lists_the_subcommands_and_a_missing_device_fails_cleanly() {
    let o = Command::new(env!("CARGO_BIN_EXE_xsprobe"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    for word in [
        "fill",
        "loop",
        "txn-hold",
        "watch",
        "flood",
        "echo",
        "ping",
        "txn-limits",
        "churn",
        "--socket",
        "/dev/xen/xenbus",
    ] {
        assert!(text.contains(word), "{word} missing from {text}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_xsprobe"))
        .args(["--device", "/nonexistent/xenbus", "loop", "--path", "/tool"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/xenbus"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_xsprobe"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn fill_creates_every_node_with_its_value_and_permissions() {
    let d = Daemon::start();
    let o = run(&d, &["fill", "--prefix", "/lu/n", "--count", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(num(&o, "created"), 1000);
    num(&o, "ms");

    let mut s = d.connect();
    let (ty, list) = raw_call(&mut s, DIRECTORY, 1, 0, b"/lu/n\0");
    assert_eq!(ty, DIRECTORY);
    let mut names: Vec<u32> = list
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| std::str::from_utf8(n).unwrap().parse().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, (0..1000).collect::<Vec<_>>());
    for i in [0u32, 1, 5, 7, 15, 500, 998, 999] {
        let path = format!("/lu/n/{i}\0");
        assert_eq!(
            raw_call(&mut s, READ, 2, 0, path.as_bytes()),
            (READ, format!("v{i}").into_bytes()),
            "value of node {i}"
        );
        let want: &[u8] = if i % 3 == 0 {
            b"n0\0r1\0"
        } else if i % 5 == 0 {
            b"w0\0b3\0"
        } else {
            b"n0\0"
        };
        assert_eq!(
            raw_call(&mut s, GET_PERMS, 3, 0, path.as_bytes()),
            (GET_PERMS, want.to_vec()),
            "permissions of node {i}"
        );
    }
}

#[test]
fn fill_checks_every_reply() {
    // On the read-only socket every WRITE is refused: xsprobe must notice and fail.
    let dir = scratch();
    let ro = dir.join("ro");
    let d = Daemon::start_with(&["--ro-socket", ro.to_str().unwrap()]);
    let o = Command::new(env!("CARGO_BIN_EXE_xsprobe"))
        .arg("--socket")
        .arg(&ro)
        .args(["fill", "--prefix", "/ro/n", "--count", "20"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(num(&o, "created"), 0);
    let err = stderr(&o);
    assert!(err.contains("/ro/n/0") && err.contains("20 nodes"), "{err}");
    assert_eq!(read(&d, "/ro/n/0").0, ERROR);
    drop(d);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loop_reads_for_the_duration() {
    let d = Daemon::start();
    let start = Instant::now();
    let o = run(&d, &["loop", "--path", "/tool", "--duration-ms", "300"]);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(num(&o, "requests") > 10, "{}", stdout(&o));
    assert_eq!(num(&o, "errors"), 0);
    assert!(num(&o, "max_gap_us") >= num(&o, "p99_gap_us"));
}

#[test]
fn loop_stops_when_the_until_file_appears() {
    let d = Daemon::start();
    let stop = d.dir.join("stop");
    let start = Instant::now();
    let child = spawn(
        &d,
        &[
            "loop",
            "--path",
            "/tool",
            "--duration-ms",
            "60000",
            "--until-file",
            stop.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&stop, "").unwrap();
    let o = finish(child, 20);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(num(&o, "requests") > 0);
    assert_eq!(num(&o, "errors"), 0);
}

#[test]
fn loop_waits_out_a_stalled_daemon_and_reports_the_gap() {
    let d = Daemon::start();
    let child = spawn(&d, &["loop", "--path", "/tool", "--duration-ms", "2500"]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&d, "-STOP");
    std::thread::sleep(Duration::from_millis(1200));
    signal(&d, "-CONT");
    let o = finish(child, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(num(&o, "errors"), 0);
    let max = num(&o, "max_gap_us");
    assert!(max >= 1_100_000, "max_gap_us={max}");
    assert!(num(&o, "p99_gap_us") < max);
}

#[test]
fn loop_counts_and_prints_error_replies() {
    let d = Daemon::start();
    let o = run(&d, &["loop", "--path", "/missing", "--duration-ms", "100"]);
    assert_eq!(o.status.code(), Some(1));
    let requests = num(&o, "requests");
    assert!(requests > 0);
    assert_eq!(num(&o, "errors"), requests);
    assert!(stderr(&o).contains("ENOENT"), "{}", stderr(&o));
}

#[test]
fn loop_counts_a_lost_connection() {
    let mut d = Daemon::start();
    let child = spawn(&d, &["loop", "--path", "/tool", "--duration-ms", "1500"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.stop(15).success());
    let o = finish(child, 30);
    assert_eq!(o.status.code(), Some(1));
    assert!(num(&o, "errors") >= 1);
    assert!(num(&o, "requests") > 0);
    assert!(stderr(&o).contains("I/O error"), "{}", stderr(&o));
}

fn hold(d: &Daemon, path: &str, value: &str, timeout_s: &str) -> (Child, PathBuf, PathBuf) {
    let ready = d.dir.join(format!("ready-{value}"));
    let go = d.dir.join(format!("go-{value}"));
    let child = spawn(
        d,
        &[
            "txn-hold",
            "--path",
            path,
            "--value",
            value,
            "--ready-file",
            ready.to_str().unwrap(),
            "--go-file",
            go.to_str().unwrap(),
            "--timeout-s",
            timeout_s,
        ],
    );
    wait_for("the ready file", 20, || ready.exists());
    (child, ready, go)
}

fn go(go: &Path) {
    std::fs::write(go, "").unwrap();
}

#[test]
fn txn_hold_commits_without_conflict() {
    let d = Daemon::start();
    // Parents made beforehand: creating a child of "/" on each side would be a conflict.
    write(&d, "/t", "");
    write(&d, "/u", "");
    let (child, _, go_file) = hold(&d, "/t/a", "held", "60");
    // Not visible outside the transaction while it is held.
    assert_eq!(read(&d, "/t/a"), (ERROR, b"ENOENT\0".to_vec()));
    // Activity elsewhere in the store does not disturb it.
    write(&d, "/u/x", "x");
    go(&go_file);
    let o = finish(child, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(kv(&o).get("commit").map(String::as_str), Some("OK"));
    assert!(kv(&o).contains_key("tx_id"));
    assert_eq!(read(&d, "/t/a"), (READ, b"held".to_vec()));
}

#[test]
fn txn_hold_reports_eagain_after_a_conflicting_write() {
    let d = Daemon::start();
    write(&d, "/t", "");
    let (child, _, go_file) = hold(&d, "/t/a", "held", "60");
    // Another connection writes the same node while the transaction holds it.
    write(&d, "/t/a", "other");
    go(&go_file);
    let o = finish(child, 30);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(kv(&o).get("commit").map(String::as_str), Some("EAGAIN"));
    assert!(stderr(&o).contains("EAGAIN"));
    assert_eq!(read(&d, "/t/a"), (READ, b"other".to_vec()));
}

#[test]
fn txn_hold_aborts_when_the_go_file_never_comes() {
    let d = Daemon::start();
    let (child, _, _) = hold(&d, "/t/a", "held", "1");
    let o = finish(child, 30);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(kv(&o).get("commit").map(String::as_str), Some("TIMEOUT"));
    assert_eq!(read(&d, "/t/a"), (ERROR, b"ENOENT\0".to_vec()));
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn watch_appends_the_events_of_writes() {
    let d = Daemon::start();
    let out = d.dir.join("events");
    let child = spawn(
        &d,
        &[
            "watch",
            "--path",
            "/w",
            "--token",
            "tok",
            "--count",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    // The initial event is written once the watch is registered.
    wait_for("the initial event", 20, || lines(&out).len() == 1);
    write(&d, "/other", "x");
    write(&d, "/w/a", "1");
    write(&d, "/w/b", "2");
    let o = finish(child, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(num(&o, "events"), 3);
    assert_eq!(lines(&out), ["/w tok", "/w/a tok", "/w/b tok"]);
}

#[test]
fn watch_gives_up_at_the_timeout() {
    let d = Daemon::start();
    let out = d.dir.join("events");
    std::fs::write(&out, "earlier line\n").unwrap();
    let o = run(
        &d,
        &[
            "watch",
            "--path",
            "/quiet",
            "--token",
            "t",
            "--count",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--timeout-s",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(num(&o, "events"), 1);
    assert!(stderr(&o).contains("1 of 2 events"), "{}", stderr(&o));
    // Appended, not truncated.
    assert_eq!(lines(&out), ["earlier line", "/quiet t"]);
}

#[test]
fn flood_reads_and_writes_from_many_connections() {
    let d = Daemon::start();
    let o = run(
        &d,
        &[
            "flood",
            "--path",
            "/fl",
            "--readers",
            "6",
            "--writers",
            "2",
            "--duration-ms",
            "500",
            "--result-node",
            "/fl/result",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(num(&o, "reads") > 0 && num(&o, "writes") > 0);
    assert_eq!(num(&o, "errors"), 0);
    num(&o, "max_latency_us");
    let (ty, big) = read(&d, "/fl/big");
    assert_eq!((ty, big.len()), (READ, 1900));
    assert_eq!(read(&d, "/fl/w1"), (READ, b"x".to_vec()));
    let (ty, result) = read(&d, "/fl/result");
    assert_eq!(ty, READ);
    assert!(String::from_utf8(result).unwrap().starts_with("reads="));
}

#[test]
fn ping_is_answered_by_echo_until_it_stops() {
    let d = Daemon::start();
    let dir = scratch();
    let stop = dir.join("stop");
    let echo = spawn(
        &d,
        &[
            "echo",
            "--ping",
            "/e/ping",
            "--pong",
            "/e/pong",
            "--until-node",
            "/e/stop",
        ],
    );
    let ping = spawn(
        &d,
        &[
            "ping",
            "--ping",
            "/e/ping",
            "--pong",
            "/e/pong",
            "--interval-ms",
            "20",
            "--until-file",
            stop.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(&stop, "").unwrap();
    let o = finish(ping, 30);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    let pings = num(&o, "pings");
    assert!(pings >= 3, "{}", stdout(&o));
    assert_eq!(num(&o, "answered"), pings);
    assert_eq!(num(&o, "lost"), 0);
    assert!(num(&o, "max_rtt_us") >= num(&o, "p50_rtt_us"));
    write(&d, "/e/stop", "1");
    let o = finish(echo, 30);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(num(&o, "echoed") >= pings);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ping_without_an_echo_counts_the_ping_lost() {
    let d = Daemon::start();
    let o = run(
        &d,
        &[
            "ping",
            "--ping",
            "/q/ping",
            "--pong",
            "/q/pong",
            "--timeout-s",
            "1",
            "--duration-ms",
            "100",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(num(&o, "lost"), 1);
    assert_eq!(num(&o, "answered"), 0);
}

#[test]
fn txn_limits_opens_accesses_and_ends_everything() {
    // The socket acts as dom0, which has no transaction quotas: nothing is refused.
    let d = Daemon::start();
    let o = run(
        &d,
        &[
            "txn-limits",
            "--path",
            "/tl",
            "--max-transactions",
            "12",
            "--max-nodes",
            "50",
            "--result-node",
            "/tl-result",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.trim(),
        "transactions=12 txn_refused=none nodes=50 nodes_refused=none aborted=11 commit=OK"
    );
    assert_eq!(read(&d, "/tl/committed"), (READ, b"1".to_vec()));
    assert_eq!(
        read(&d, "/tl-result"),
        (READ, out.trim().as_bytes().to_vec())
    );
}

#[test]
fn churn_sets_watches_and_transactions_and_resets_them() {
    let d = Daemon::start();
    let o = run(
        &d,
        &[
            "churn",
            "--path",
            "/ch",
            "--watches",
            "4",
            "--transactions",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "watches=4 transactions=2");
    let o = run(&d, &["churn", "--path", "/ch", "--reset"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "watches=5 transactions=3 reset_in_txn=EBUSY reset=OK"
    );
    // Nothing was committed.
    assert_eq!(read(&d, "/ch/t0").0, ERROR);
}

#[test]
fn write_loop_wraps_over_the_same_nodes() {
    let d = Daemon::start();
    let o = run(
        &d,
        &[
            "write-loop",
            "--prefix",
            "/wr",
            "--wrap",
            "3",
            "--duration-ms",
            "300",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(num(&o, "acked") > 3, "{}", stdout(&o));
    let mut s = d.connect();
    let (ty, list) = raw_call(&mut s, DIRECTORY, 1, 0, b"/wr\0");
    assert_eq!((ty, list), (DIRECTORY, b"0\x001\x002\0".to_vec()));
}
