//! `xsprobe`: a xenstore client that fills, loops on, holds transactions on, watches, pings,
//! floods and churns a store (the lab's probe and its hostile guests' tool).
//!
//! It speaks the wire protocol over a Unix socket (`--socket`) or the Linux xenbus device
//! (`--device`, default `/dev/xen/xenbus`). Results are `key=value` lines on stdout; on
//! failure the exit status is 1 and the reason is on stderr.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use xsstate::MsgType;
use xstools::xsclient::{
    check_ok, check_reply, payload0, text0, Client, ClientError, Endpoint, XENBUS_DEVICE,
};

/// How long any single reply may take before it counts as lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often `loop` looks for its `--until-file`.
const UNTIL_FILE_CHECK: Duration = Duration::from_millis(5);
/// How many errors `loop` describes on stderr before only counting them.
const MAX_PRINTED_ERRORS: u64 = 100;

/// Command line.
#[derive(Parser)]
#[command(
    name = "xsprobe",
    about = "Probe a xenstore: fill it, loop on it, hold a transaction, watch it, ping an echo, \
             flood it, reach its limits",
    long_about = "Probe a xenstore over a Unix socket (--socket) or the Linux xenbus device \
                  (--device, default /dev/xen/xenbus). Results are key=value lines on stdout; \
                  exit status 0 on success, 1 on failure with the reason on stderr."
)]
struct Cli {
    /// Talk to xenstore on this Unix socket (as served by xenstored-host).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "device")]
    socket: Option<PathBuf>,
    /// Talk to xenstore through this xenbus device.
    #[arg(long, global = true, value_name = "PATH", default_value = XENBUS_DEVICE)]
    device: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create COUNT nodes PREFIX/<i> = v<i> (padded to --value-size), pipelined; prints
    /// `created=N ms=T`.
    ///
    /// Nodes with i % 3 == 0 get the permissions `n0 r1`, the others with i % 5 == 0 get
    /// `w0 b3`, the rest keep the inherited ones. The owner is dom0: like C xenstored, the
    /// stub refuses an owner Xen does not know (ENOENT); the other entries may name any id. Every reply is checked; any failure
    /// exits 1.
    Fill {
        /// Parent path of the nodes.
        #[arg(long)]
        prefix: String,
        /// How many nodes.
        #[arg(long, default_value_t = 1000)]
        count: u32,
        /// Most requests in flight at once.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
        window: u32,
        /// Pad every value to this many bytes (`v<i>` then `.`s; 0: just `v<i>`).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=2048))]
        value_size: u32,
    },
    /// READ PATH back to back; prints `requests=N max_gap_us=G p99_gap_us=P errors=E`.
    ///
    /// G and P are the largest and 99th-percentile gap between consecutive successful
    /// replies. A reply may take up to 60 s; error replies, I/O errors (the connection is
    /// then opened again) and lost replies count in E and are described on stderr. Exits 1
    /// if E > 0.
    Loop {
        /// The node to read.
        #[arg(long)]
        path: String,
        /// How long to loop.
        #[arg(long, default_value_t = 30_000)]
        duration_ms: u64,
        /// Stop as soon as this file exists.
        #[arg(long, value_name = "F")]
        until_file: Option<PathBuf>,
    },
    /// Hold a transaction with one write until told to commit; prints `commit=OK|EAGAIN|...`.
    ///
    /// TRANSACTION_START, WRITE PATH=VALUE in it, create READY_FILE, wait for GO_FILE, then
    /// TRANSACTION_END (commit). Prints `tx_id=N`, then `commit=OK`, `commit=<error name>`
    /// or `commit=TIMEOUT` (GO_FILE never came: aborted). Exits 0 only if committed.
    TxnHold {
        /// The node to write inside the transaction.
        #[arg(long)]
        path: String,
        /// The value to write.
        #[arg(long)]
        value: String,
        /// Created once the write is in the transaction.
        #[arg(long, value_name = "R")]
        ready_file: PathBuf,
        /// Commit once this file exists (polled every 50 ms).
        #[arg(long, value_name = "G")]
        go_file: PathBuf,
        /// Give up (abort the transaction) if GO_FILE has not appeared by then.
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
    /// WRITE PREFIX/<i> = v<i>, one request at a time, until told to stop; prints
    /// `acked=N errors=E max_gap_us=G`.
    ///
    /// Every acknowledged write's index is appended to LOG (when given). Stops when
    /// UNTIL_FILE exists, when UNTIL_NODE exists in the store, or after DURATION. Errors
    /// (error replies, I/O errors: the connection is opened again, lost replies) are counted
    /// and described on stderr; exits 1 if E > 0. With RESULT_NODE the summary line is also
    /// written there.
    WriteLoop {
        /// Parent path of the nodes.
        #[arg(long)]
        prefix: String,
        /// Stop as soon as this file exists.
        #[arg(long, value_name = "F")]
        until_file: Option<PathBuf>,
        /// Stop as soon as this node exists (checked every 20 attempts).
        #[arg(long, value_name = "N")]
        until_node: Option<String>,
        /// Stop after this long.
        #[arg(long, default_value_t = 600_000)]
        duration_ms: u64,
        /// Append each acknowledged index to this file.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Write the summary line to this node at the end.
        #[arg(long, value_name = "N")]
        result_node: Option<String>,
        /// Pad each value to this many bytes (`v<i>` then `x`s).
        #[arg(long, default_value_t = 0)]
        value_size: usize,
        /// Stop at the first error reply (an expected refusal, reported as `refused=NAME`)
        /// instead of counting it as an error.
        #[arg(long)]
        until_refused: bool,
        /// Stop after this many acknowledged writes (0: no limit).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Write PREFIX/<i mod WRAP> instead (the same WRAP nodes over and over).
        #[arg(long, value_name = "WRAP", value_parser = clap::value_parser!(u64).range(1..))]
        wrap: Option<u64>,
        /// Node i is PREFIX/<i / PER_DIR>/<i> (a domain's directory holds about 450 such
        /// names under the 2048-byte node-size quota).
        #[arg(long, value_name = "PER_DIR", value_parser = clap::value_parser!(u64).range(1..))]
        per_dir: Option<u64>,
        /// Pause this long between writes.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
    /// READ PREFIX/<i> for i in 0..COUNT and check each is v<i> (padded as `write-loop
    /// --value-size` pads it); prints `ok=N missing=M wrong=W`; exits 1 unless all are there.
    Verify {
        /// Parent path of the nodes.
        #[arg(long)]
        prefix: String,
        /// How many nodes.
        #[arg(long)]
        count: u32,
        /// The values' padded size.
        #[arg(long, default_value_t = 0)]
        value_size: usize,
        /// The nodes were written with `write-loop --per-dir PER_DIR`.
        #[arg(long, value_name = "PER_DIR", value_parser = clap::value_parser!(u64).range(1..))]
        per_dir: Option<u64>,
    },
    /// Watch PATH and append each event to a file; prints `events=N`.
    ///
    /// Each event is appended to OUT as a line `path token` (flushed at once). Stops after
    /// COUNT events (the initial one included), when UNTIL_FILE exists (then exits 0), or at
    /// the timeout; exits 0 if COUNT arrived.
    Watch {
        /// The path to watch.
        #[arg(long)]
        path: String,
        /// The watch token.
        #[arg(long)]
        token: String,
        /// How many events to wait for.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// The file the events are appended to.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Give up after this long.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
        /// Stop (successfully) as soon as this file exists.
        #[arg(long, value_name = "F")]
        until_file: Option<PathBuf>,
    },
    /// Flood xenstore from many connections at once; prints `reads=N writes=M errors=E
    /// reads_per_s=R writes_per_s=W max_latency_us=L`.
    ///
    /// Writes PATH/big (VALUE_SIZE bytes) once, then for DURATION: READERS connections read
    /// PATH/big back to back, WRITERS connections rewrite PATH/w<k> back to back (one request
    /// in flight per connection, as the Linux device allows). Errors are counted and
    /// described on stderr; exits 1 if E > 0. With RESULT_NODE the summary line is also
    /// written there.
    Flood {
        /// Parent path of the nodes.
        #[arg(long)]
        path: String,
        /// Connections reading.
        #[arg(long, default_value_t = 24)]
        readers: u32,
        /// Connections writing.
        #[arg(long, default_value_t = 4)]
        writers: u32,
        /// Size of the value the readers read.
        #[arg(long, default_value_t = 1900, value_parser = clap::value_parser!(u32).range(0..=4000))]
        value_size: u32,
        /// How long to flood.
        #[arg(long, default_value_t = 20_000)]
        duration_ms: u64,
        /// Write the summary line to this node at the end.
        #[arg(long, value_name = "N")]
        result_node: Option<String>,
    },
    /// RM PATH outside a transaction (the stock `xenstore-rm` always uses one, which
    /// holds a copy of every node it removes); prints `removed`.
    Rm {
        /// The node to remove with everything below it.
        path: String,
    },
    /// Copy every new value of PING to PONG, on one connection (a watch on PING), until
    /// UNTIL_NODE exists or forever; prints `echoed=N`.
    Echo {
        /// The node to watch.
        #[arg(long)]
        ping: String,
        /// The node the value is copied to.
        #[arg(long)]
        pong: String,
        /// Stop as soon as this node exists (checked every second and on every event).
        #[arg(long, value_name = "N")]
        until_node: Option<String>,
    },
    /// Ping an `echo`: write PING, wait until PONG has the value; prints `pings=N answered=A
    /// lost=L max_rtt_us=M p50_rtt_us=P p99_rtt_us=Q`.
    ///
    /// One ping every INTERVAL until UNTIL_FILE exists (or DURATION passed); a ping not
    /// answered within TIMEOUT counts as lost. Exits 1 if L > 0 or no ping was answered.
    Ping {
        /// The node to write.
        #[arg(long)]
        ping: String,
        /// The node the echo answers in.
        #[arg(long)]
        pong: String,
        /// Time between an answer and the next ping.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
        /// A ping unanswered after this long is lost.
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
        /// Stop as soon as this file exists.
        #[arg(long, value_name = "F")]
        until_file: Option<PathBuf>,
        /// Stop after this long.
        #[arg(long, default_value_t = 600_000)]
        duration_ms: u64,
    },
    /// Open transactions until one is refused, access nodes in the first until refused,
    /// then end them all; prints `transactions=N txn_refused=ERR nodes=K nodes_refused=ERR
    /// aborted=A commit=OK|ERR`.
    ///
    /// Transactions: TRANSACTION_START until an error (at most MAX_TRANSACTIONS). Nodes:
    /// READ PATH/n<i> in the first transaction until an answer other than the value or
    /// ENOENT (at most MAX_NODES); each read is an accessed node. Then every transaction
    /// but the last is aborted and the last commits one write of PATH/committed. `none`
    /// when nothing was refused. With RESULT_NODE the summary line is also written there.
    /// Exits 1 if a request failed otherwise.
    TxnLimits {
        /// Parent path of the nodes.
        #[arg(long)]
        path: String,
        /// Most transactions to open.
        #[arg(long, default_value_t = 64)]
        max_transactions: u32,
        /// Most nodes to access.
        #[arg(long, default_value_t = 4096)]
        max_nodes: u32,
        /// Write the summary line to this node at the end.
        #[arg(long, value_name = "N")]
        result_node: Option<String>,
    },
    /// Set watches and open transactions, then exit without ending them (the connection's
    /// owner must clean up); prints `watches=W transactions=T` and with --reset
    /// `reset_in_txn=ERR reset=OK|ERR`.
    ///
    /// WATCH PATH/w<i> (token t<i>) for i < WATCHES; TRANSACTION_START and a WRITE of
    /// PATH/t<i> in it for i < TRANSACTIONS. With --reset: RESET_WATCHES inside the first
    /// transaction (must be refused, XSA-484), then RESET_WATCHES outside (must be OK: the
    /// watches and transactions are gone, XSA-330). Exits 1 on any other outcome.
    Churn {
        /// Parent path of the watched and written nodes.
        #[arg(long)]
        path: String,
        /// Watches to set.
        #[arg(long, default_value_t = 5)]
        watches: u32,
        /// Transactions to open.
        #[arg(long, default_value_t = 3)]
        transactions: u32,
        /// End with RESET_WATCHES (inside a transaction, then outside).
        #[arg(long)]
        reset: bool,
    },
}

/// A failure: the message for stderr (stdout lines have been printed already).
type Failure = String;

fn main() -> ExitCode {
    // Usage errors exit with 1 like every other failure; --help and --version with 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let endpoint = match cli.socket {
        Some(p) => Endpoint::Socket(p),
        None => Endpoint::Device(cli.device),
    };
    let result = match cli.cmd {
        Cmd::Fill {
            prefix,
            count,
            window,
            value_size,
        } => fill(&endpoint, &prefix, count, window, value_size as usize),
        Cmd::Loop {
            path,
            duration_ms,
            until_file,
        } => read_loop(
            &endpoint,
            &path,
            Duration::from_millis(duration_ms),
            until_file.as_deref(),
        ),
        Cmd::TxnHold {
            path,
            value,
            ready_file,
            go_file,
            timeout_s,
        } => txn_hold(
            &endpoint,
            &path,
            &value,
            &ready_file,
            &go_file,
            Duration::from_secs(timeout_s),
        ),
        Cmd::Watch {
            path,
            token,
            count,
            out,
            timeout_s,
            until_file,
        } => watch(
            &endpoint,
            &path,
            &token,
            count,
            &out,
            Duration::from_secs(timeout_s),
            until_file.as_deref(),
        ),
        Cmd::WriteLoop {
            prefix,
            until_file,
            until_node,
            duration_ms,
            log,
            result_node,
            value_size,
            until_refused,
            count,
            wrap,
            per_dir,
            interval_ms,
        } => write_loop(
            &endpoint,
            &WriteLoopOpts {
                prefix,
                until_file,
                until_node,
                duration: Duration::from_millis(duration_ms),
                log,
                result_node,
                value_size,
                until_refused,
                count,
                wrap,
                per_dir,
                interval: Duration::from_millis(interval_ms),
            },
        ),
        Cmd::Verify {
            prefix,
            count,
            value_size,
            per_dir,
        } => verify(&endpoint, &prefix, count, value_size, per_dir),
        Cmd::Flood {
            path,
            readers,
            writers,
            value_size,
            duration_ms,
            result_node,
        } => flood(
            &endpoint,
            &FloodOpts {
                path,
                readers,
                writers,
                value_size: value_size as usize,
                duration: Duration::from_millis(duration_ms),
                result_node,
            },
        ),
        Cmd::Rm { path } => rm(&endpoint, &path),
        Cmd::Echo {
            ping,
            pong,
            until_node,
        } => echo(&endpoint, &ping, &pong, until_node.as_deref()),
        Cmd::Ping {
            ping,
            pong,
            interval_ms,
            timeout_s,
            until_file,
            duration_ms,
        } => ping_loop(
            &endpoint,
            &PingOpts {
                ping,
                pong,
                interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_secs(timeout_s),
                until_file,
                duration: Duration::from_millis(duration_ms),
            },
        ),
        Cmd::TxnLimits {
            path,
            max_transactions,
            max_nodes,
            result_node,
        } => txn_limits(
            &endpoint,
            &path,
            max_transactions,
            max_nodes,
            result_node.as_deref(),
        ),
        Cmd::Churn {
            path,
            watches,
            transactions,
            reset,
        } => churn(&endpoint, &path, watches, transactions, reset),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xsprobe: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn open(endpoint: &Endpoint) -> Result<Client, Failure> {
    Client::open(endpoint).map_err(|e| format!("cannot reach xenstore: {e}"))
}

/// The permissions `fill` gives node `i` (`None`: leave the inherited ones).
fn fill_perms(i: u32) -> Option<[&'static str; 2]> {
    if i.is_multiple_of(3) {
        Some(["n0", "r1"])
    } else if i.is_multiple_of(5) {
        Some(["w0", "b3"])
    } else {
        None
    }
}

/// The value `fill` writes to node `i`: `v<i>`, padded with `.` to `size` bytes.
fn fill_value(i: u32, size: usize) -> Vec<u8> {
    let mut v = format!("v{i}").into_bytes();
    if v.len() < size {
        v.resize(size, b'.');
    }
    v
}

fn fill(
    endpoint: &Endpoint,
    prefix: &str,
    count: u32,
    window: u32,
    value_size: usize,
) -> Result<(), Failure> {
    if !prefix.starts_with('/') {
        return Err(format!(
            "fill: --prefix must be an absolute path, not {prefix:?}"
        ));
    }
    // "/" and "/a/" give "/0" and "/a/0".
    let prefix = prefix.trim_end_matches('/');
    let mut c = open(endpoint)?;
    // Every request, in order: (type, node index, payload).
    let mut requests = Vec::new();
    for i in 0..count {
        let path = format!("{prefix}/{i}");
        let mut write = payload0(&[path.as_bytes()]);
        write.extend_from_slice(&fill_value(i, value_size));
        requests.push((MsgType::Write, i, write));
        if let Some(perms) = fill_perms(i) {
            let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
            parts.extend(perms.iter().map(|p| p.as_bytes()));
            requests.push((MsgType::SetPerms, i, payload0(&parts)));
        }
    }
    // Requests still needed before node i counts as created.
    let mut needed: Vec<u8> = (0..count)
        .map(|i| 1 + u8::from(fill_perms(i).is_some()))
        .collect();
    let mut in_flight: HashMap<u32, (MsgType, u32)> = HashMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut created = 0u32;
    let start = Instant::now();
    let mut next = requests.into_iter();
    let mut sending = true;
    loop {
        while sending && in_flight.len() < window as usize {
            let Some((ty, i, payload)) = next.next() else {
                sending = false;
                break;
            };
            match c.send(ty, 0, payload) {
                Ok(req_id) => {
                    in_flight.insert(req_id, (ty, i));
                }
                Err(e) => {
                    failures.push(format!("sending {} {prefix}/{i}: {e}", ty.name()));
                    sending = false;
                }
            }
        }
        if in_flight.is_empty() {
            break;
        }
        let msg = match c.next_reply(Instant::now() + REPLY_TIMEOUT) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("waiting for {} replies: {e}", in_flight.len()));
                break;
            }
        };
        let Some((ty, i)) = in_flight.remove(&msg.req_id) else {
            failures.push(format!(
                "reply with unknown req_id {} (type {})",
                msg.req_id, msg.msg_type
            ));
            continue;
        };
        match check_ok(ty, &msg) {
            Ok(()) => {
                if let Some(n) = needed.get_mut(i as usize) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        created += 1;
                    }
                }
            }
            Err(e) => failures.push(format!("{} {prefix}/{i}: {e}", ty.name())),
        }
    }
    let ms = start.elapsed().as_millis();
    println!("created={created} ms={ms}");
    if failures.is_empty() && created == count {
        return Ok(());
    }
    for f in failures.iter().take(MAX_PRINTED_ERRORS as usize) {
        eprintln!("xsprobe: fill: {f}");
    }
    Err(format!(
        "fill: {created} of {count} nodes created, {} failed requests",
        failures.len()
    ))
}

fn read_loop(
    endpoint: &Endpoint,
    path: &str,
    duration: Duration,
    until_file: Option<&Path>,
) -> Result<(), Failure> {
    let start = Instant::now();
    let end = start + duration;
    let mut c = Some(open(endpoint)?);
    let payload = payload0(&[path.as_bytes()]);
    let mut requests = 0u64;
    let mut errors = 0u64;
    let mut gaps_us: Vec<u64> = Vec::new();
    let mut last_ok: Option<Instant> = None;
    let mut last_check = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Some(f) = until_file {
            if now.duration_since(last_check) >= UNTIL_FILE_CHECK || requests == 0 {
                last_check = now;
                if f.exists() {
                    break;
                }
            }
        }
        let Some(client) = c.as_mut() else {
            // The connection broke: try again to connect, without spinning.
            match Client::open(endpoint) {
                Ok(new) => c = Some(new),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            continue;
        };
        requests += 1;
        match client.call(MsgType::Read, 0, payload.clone(), REPLY_TIMEOUT) {
            Ok(_) => {
                let t = Instant::now();
                if let Some(prev) = last_ok {
                    gaps_us.push(
                        u64::try_from(t.duration_since(prev).as_micros()).unwrap_or(u64::MAX),
                    );
                }
                last_ok = Some(t);
            }
            Err(e) => {
                report(&mut errors, format!("request {requests}: READ {path}: {e}"));
                if matches!(e, ClientError::Io(_)) {
                    c = None;
                }
            }
        }
    }
    gaps_us.sort_unstable();
    let max = gaps_us.last().copied().unwrap_or(0);
    let p99 = percentile(&gaps_us, 99);
    println!("requests={requests} max_gap_us={max} p99_gap_us={p99} errors={errors}");
    if errors > 0 {
        return Err(format!("loop: {errors} of {requests} requests failed"));
    }
    Ok(())
}

/// Counts an error of `loop` and describes it on stderr (the first few only).
fn report(errors: &mut u64, what: String) {
    *errors += 1;
    if *errors <= MAX_PRINTED_ERRORS {
        eprintln!("xsprobe: loop: {what}");
    } else if *errors == MAX_PRINTED_ERRORS + 1 {
        eprintln!("xsprobe: loop: further errors are only counted");
    }
}

/// The `pct`-th percentile (nearest rank) of sorted values; 0 for none.
fn percentile(sorted: &[u64], pct: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u64;
    let rank = (n * pct).div_ceil(100).max(1);
    sorted
        .get(usize::try_from(rank - 1).unwrap_or(0))
        .copied()
        .unwrap_or(0)
}

fn txn_hold(
    endpoint: &Endpoint,
    path: &str,
    value: &str,
    ready_file: &Path,
    go_file: &Path,
    timeout: Duration,
) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    let reply = c
        .call(MsgType::TransactionStart, 0, b"\0".to_vec(), REPLY_TIMEOUT)
        .map_err(|e| format!("txn-hold: TRANSACTION_START: {e}"))?;
    let tx: u32 = text0(&reply).parse().map_err(|_| {
        format!(
            "txn-hold: TRANSACTION_START answered {:?}, not a transaction id",
            String::from_utf8_lossy(&reply)
        )
    })?;
    println!("tx_id={tx}");
    let mut write = payload0(&[path.as_bytes()]);
    write.extend_from_slice(value.as_bytes());
    let req = c
        .send(MsgType::Write, tx, write)
        .map_err(|e| format!("txn-hold: WRITE {path}: {e}"))?;
    let msg = c
        .wait_reply(req, Instant::now() + REPLY_TIMEOUT)
        .map_err(|e| format!("txn-hold: WRITE {path}: {e}"))?;
    check_ok(MsgType::Write, &msg).map_err(|e| format!("txn-hold: WRITE {path}: {e}"))?;
    create_file(ready_file, &format!("tx_id={tx}\n"))
        .map_err(|e| format!("txn-hold: cannot create {}: {e}", ready_file.display()))?;
    let deadline = Instant::now() + timeout;
    while !go_file.exists() {
        if Instant::now() >= deadline {
            let _ = c.call(MsgType::TransactionEnd, tx, b"F\0".to_vec(), REPLY_TIMEOUT);
            println!("commit=TIMEOUT");
            return Err(format!(
                "txn-hold: {} did not appear within {} s; transaction aborted",
                go_file.display(),
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let req = c
        .send(MsgType::TransactionEnd, tx, b"T\0".to_vec())
        .map_err(|e| format!("txn-hold: TRANSACTION_END: {e}"))?;
    let msg = c
        .wait_reply(req, Instant::now() + REPLY_TIMEOUT)
        .map_err(|e| format!("txn-hold: TRANSACTION_END: {e}"))?;
    match check_ok(MsgType::TransactionEnd, &msg) {
        Ok(()) => {
            println!("commit=OK");
            Ok(())
        }
        Err(ClientError::Reply(name)) => {
            println!("commit={name}");
            Err(format!("txn-hold: commit failed with {name}"))
        }
        Err(e) => {
            println!("commit=ERROR");
            Err(format!("txn-hold: TRANSACTION_END: {e}"))
        }
    }
}

/// Creates `path` with `text` atomically (written aside, then renamed into place).
fn create_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `write-loop`'s options.
struct WriteLoopOpts {
    prefix: String,
    until_file: Option<PathBuf>,
    until_node: Option<String>,
    duration: Duration,
    log: Option<PathBuf>,
    result_node: Option<String>,
    value_size: usize,
    until_refused: bool,
    count: u64,
    wrap: Option<u64>,
    per_dir: Option<u64>,
    interval: Duration,
}

/// Where write-loop puts node `idx`: `PREFIX/<idx>`, or `PREFIX/<idx / per_dir>/<idx>`.
fn node_path(prefix: &str, idx: u64, per_dir: Option<u64>) -> String {
    match per_dir {
        Some(n) => format!("{prefix}/{}/{idx}", idx / n),
        None => format!("{prefix}/{idx}"),
    }
}

/// `v<i>` padded with `x` to `size` bytes.
fn padded_value(i: u64, size: usize) -> Vec<u8> {
    let mut v = format!("v{i}").into_bytes();
    if v.len() < size {
        v.resize(size, b'x');
    }
    v
}

fn write_loop(endpoint: &Endpoint, o: &WriteLoopOpts) -> Result<(), Failure> {
    let start = Instant::now();
    let end = start + o.duration;
    let mut log = match &o.log {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("write-loop: cannot open {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut c = Some(open(endpoint)?);
    let mut acked = 0u64;
    let mut errors = 0u64;
    let mut max_gap = Duration::ZERO;
    let mut last_ok = Instant::now();
    let mut i = 0u64;
    let mut attempts = 0u64;
    let mut refused: Option<String> = None;
    loop {
        if Instant::now() >= end
            || o.until_file.as_deref().is_some_and(Path::exists)
            || (o.count != 0 && acked >= o.count)
        {
            break;
        }
        let Some(client) = c.as_mut() else {
            match Client::open(endpoint) {
                Ok(new) => c = Some(new),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            continue;
        };
        attempts += 1;
        if let Some(stop) = &o.until_node {
            if attempts % 20 == 1 {
                let p = payload0(&[stop.as_bytes()]);
                if client.call(MsgType::Read, 0, p, REPLY_TIMEOUT).is_ok() {
                    break;
                }
            }
        }
        if !o.interval.is_zero() && attempts > 1 {
            std::thread::sleep(o.interval);
        }
        let path = node_path(&o.prefix, o.wrap.map_or(i, |w| i % w), o.per_dir);
        let value = padded_value(i, o.value_size);
        let mut p = path.clone().into_bytes();
        p.push(0);
        p.extend_from_slice(&value);
        match client.call(MsgType::Write, 0, p, REPLY_TIMEOUT) {
            Ok(_) => {
                acked += 1;
                let now = Instant::now();
                max_gap = max_gap.max(now.duration_since(last_ok));
                last_ok = now;
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{i}");
                }
                i += 1;
            }
            Err(ClientError::Reply(name)) if o.until_refused => {
                refused = Some(name);
                break;
            }
            Err(e) => {
                report(&mut errors, format!("WRITE {path}: {e}"));
                if matches!(e, ClientError::Io(_)) {
                    c = None;
                }
                // The same index again: an unacknowledged write may or may not have landed.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let mut line = format!(
        "acked={acked} errors={errors} max_gap_us={}",
        max_gap.as_micros()
    );
    if o.until_refused {
        line.push_str(&format!(
            " refused={}",
            refused.as_deref().unwrap_or("none")
        ));
    }
    println!("{line}");
    if let (Some(node), Some(client)) = (&o.result_node, c.as_mut()) {
        let mut p = node.clone().into_bytes();
        p.push(0);
        p.extend_from_slice(line.as_bytes());
        client
            .call(MsgType::Write, 0, p, REPLY_TIMEOUT)
            .map_err(|e| format!("write-loop: writing {node}: {e}"))?;
    }
    if errors > 0 {
        return Err(format!("write-loop: {errors} errors, {acked} acknowledged"));
    }
    Ok(())
}

fn rm(endpoint: &Endpoint, path: &str) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    c.call(MsgType::Rm, 0, payload0(&[path.as_bytes()]), REPLY_TIMEOUT)
        .map_err(|e| format!("rm: RM {path}: {e}"))?;
    println!("removed");
    Ok(())
}

fn verify(
    endpoint: &Endpoint,
    prefix: &str,
    count: u32,
    value_size: usize,
    per_dir: Option<u64>,
) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    let (mut ok, mut missing, mut wrong) = (0u32, 0u32, 0u32);
    for i in 0..count {
        let path = node_path(prefix, u64::from(i), per_dir);
        match c.call(
            MsgType::Read,
            0,
            payload0(&[path.as_bytes()]),
            REPLY_TIMEOUT,
        ) {
            Ok(value) => {
                if value == padded_value(u64::from(i), value_size) {
                    ok += 1;
                } else {
                    wrong += 1;
                    if wrong <= 5 {
                        eprintln!(
                            "xsprobe: verify: {path} = {:?}",
                            String::from_utf8_lossy(&value)
                        );
                    }
                }
            }
            Err(ClientError::Reply(name)) if name == "ENOENT" => {
                missing += 1;
                if missing <= 5 {
                    eprintln!("xsprobe: verify: {path} is missing");
                }
            }
            Err(e) => return Err(format!("verify: READ {path}: {e}")),
        }
    }
    println!("ok={ok} missing={missing} wrong={wrong}");
    if ok != count {
        return Err(format!("verify: {ok} of {count} nodes as written"));
    }
    Ok(())
}

fn watch(
    endpoint: &Endpoint,
    path: &str,
    token: &str,
    count: u64,
    out: &Path,
    timeout: Duration,
    until_file: Option<&Path>,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|e| format!("watch: cannot open {}: {e}", out.display()))?;
    let mut c = open(endpoint)?;
    let req = c
        .send(
            MsgType::Watch,
            0,
            payload0(&[path.as_bytes(), token.as_bytes()]),
        )
        .map_err(|e| format!("watch: WATCH {path}: {e}"))?;
    // Events may be queued before the reply (the Linux driver answers WATCH itself, racing
    // with the initial event); next_event hands them over in order afterwards.
    let msg = c
        .wait_reply(req, Instant::now() + REPLY_TIMEOUT)
        .map_err(|e| format!("watch: WATCH {path}: {e}"))?;
    check_reply(MsgType::Watch, &msg).map_err(|e| format!("watch: WATCH {path}: {e}"))?;
    let mut events = 0u64;
    let mut failure = None;
    while events < count {
        if until_file.is_some_and(Path::exists) {
            break;
        }
        let step = match until_file {
            Some(_) => (Instant::now() + Duration::from_millis(100)).min(deadline),
            None => deadline,
        };
        match c.next_event(step) {
            Ok(ev) => {
                let line = format!("{} {}\n", ev.path, ev.token);
                if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
                    failure = Some(format!("watch: writing {}: {e}", out.display()));
                    break;
                }
                events += 1;
            }
            Err(ClientError::Timeout) if Instant::now() < deadline => {}
            Err(ClientError::Timeout) => {
                failure = Some(format!(
                    "watch: {events} of {count} events within {} s",
                    timeout.as_secs()
                ));
                break;
            }
            Err(e) => {
                failure = Some(format!("watch: {e}"));
                break;
            }
        }
    }
    println!("events={events}");
    match failure {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

/// `flood`'s options.
struct FloodOpts {
    path: String,
    readers: u32,
    writers: u32,
    value_size: usize,
    duration: Duration,
    result_node: Option<String>,
}

/// What one flooding connection did.
#[derive(Default)]
struct FloodCount {
    requests: u64,
    errors: u64,
    max_latency: Duration,
}

/// One flooding connection: the same request back to back until `end`.
fn flood_worker(
    endpoint: &Endpoint,
    ty: MsgType,
    payload: &[u8],
    end: Instant,
    what: &str,
) -> FloodCount {
    let mut n = FloodCount::default();
    let mut c: Option<Client> = None;
    while Instant::now() < end {
        let Some(client) = c.as_mut() else {
            match Client::open(endpoint) {
                Ok(new) => c = Some(new),
                Err(e) => {
                    n.errors += 1;
                    if n.errors <= 5 {
                        eprintln!("xsprobe: flood: {what}: cannot reach xenstore: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            continue;
        };
        let t = Instant::now();
        match client.call(ty, 0, payload.to_vec(), REPLY_TIMEOUT) {
            Ok(_) => {
                n.requests += 1;
                n.max_latency = n.max_latency.max(t.elapsed());
            }
            Err(e) => {
                n.errors += 1;
                if n.errors <= 5 {
                    eprintln!("xsprobe: flood: {what}: {e}");
                }
                if matches!(e, ClientError::Io(_)) {
                    c = None;
                }
            }
        }
    }
    n
}

/// Writes `value` to `node` on a fresh connection.
fn write_node(endpoint: &Endpoint, node: &str, value: &[u8]) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    let mut p = payload0(&[node.as_bytes()]);
    p.extend_from_slice(value);
    c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
        .map(drop)
        .map_err(|e| format!("writing {node}: {e}"))
}

fn flood(endpoint: &Endpoint, o: &FloodOpts) -> Result<(), Failure> {
    let big = format!("{}/big", o.path);
    write_node(endpoint, &big, &fill_value(0, o.value_size)).map_err(|e| format!("flood: {e}"))?;
    let start = Instant::now();
    let end = start + o.duration;
    let read_payload = payload0(&[big.as_bytes()]);
    let (reads, writes) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..o.readers)
            .map(|k| {
                let p = &read_payload;
                s.spawn(move || {
                    flood_worker(endpoint, MsgType::Read, p, end, &format!("reader {k}"))
                })
            })
            .collect();
        let writers: Vec<_> = (0..o.writers)
            .map(|k| {
                let mut p = payload0(&[format!("{}/w{k}", o.path).as_bytes()]);
                p.push(b'x');
                s.spawn(move || {
                    flood_worker(endpoint, MsgType::Write, &p, end, &format!("writer {k}"))
                })
            })
            .collect();
        let join = |hs: Vec<std::thread::ScopedJoinHandle<'_, FloodCount>>| {
            hs.into_iter().map(|h| h.join().unwrap_or_default()).fold(
                FloodCount::default(),
                |a, b| FloodCount {
                    requests: a.requests + b.requests,
                    errors: a.errors + b.errors,
                    max_latency: a.max_latency.max(b.max_latency),
                },
            )
        };
        (join(readers), join(writers))
    });
    let secs = start.elapsed().as_secs_f64().max(0.001);
    let errors = reads.errors + writes.errors;
    let line = format!(
        "reads={} writes={} errors={errors} reads_per_s={:.0} writes_per_s={:.0} \
         max_latency_us={} secs={secs:.1}",
        reads.requests,
        writes.requests,
        reads.requests as f64 / secs,
        writes.requests as f64 / secs,
        reads.max_latency.max(writes.max_latency).as_micros()
    );
    println!("{line}");
    if let Some(node) = &o.result_node {
        write_node(endpoint, node, line.as_bytes()).map_err(|e| format!("flood: {e}"))?;
    }
    if errors > 0 {
        return Err(format!("flood: {errors} errors"));
    }
    Ok(())
}

/// READ of `path` on `c`: `Ok(None)` when it does not exist.
fn read_opt(c: &mut Client, path: &str) -> Result<Option<Vec<u8>>, ClientError> {
    match c.call(
        MsgType::Read,
        0,
        payload0(&[path.as_bytes()]),
        REPLY_TIMEOUT,
    ) {
        Ok(v) => Ok(Some(v)),
        Err(ClientError::Reply(name)) if name == "ENOENT" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets a watch on `c` and waits for its acknowledgement.
fn set_watch(c: &mut Client, path: &str, token: &str) -> Result<(), ClientError> {
    let req = c.send(
        MsgType::Watch,
        0,
        payload0(&[path.as_bytes(), token.as_bytes()]),
    )?;
    let msg = c.wait_reply(req, Instant::now() + REPLY_TIMEOUT)?;
    check_reply(MsgType::Watch, &msg)
}

fn echo(
    endpoint: &Endpoint,
    ping: &str,
    pong: &str,
    until_node: Option<&str>,
) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    set_watch(&mut c, ping, "echo").map_err(|e| format!("echo: WATCH {ping}: {e}"))?;
    let mut last: Option<Vec<u8>> = None;
    let mut echoed = 0u64;
    loop {
        // The current value (the watch's first event covers one written before it).
        match read_opt(&mut c, ping).map_err(|e| format!("echo: READ {ping}: {e}"))? {
            Some(v) if last.as_ref() != Some(&v) => {
                let mut p = payload0(&[pong.as_bytes()]);
                p.extend_from_slice(&v);
                c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
                    .map_err(|e| format!("echo: WRITE {pong}: {e}"))?;
                last = Some(v);
                echoed += 1;
            }
            _ => {}
        }
        if let Some(n) = until_node {
            if read_opt(&mut c, n)
                .map_err(|e| format!("echo: READ {n}: {e}"))?
                .is_some()
            {
                break;
            }
        }
        match c.next_event(Instant::now() + Duration::from_secs(1)) {
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(e) => return Err(format!("echo: {e}")),
        }
    }
    println!("echoed={echoed}");
    Ok(())
}

/// `ping`'s options.
struct PingOpts {
    ping: String,
    pong: String,
    interval: Duration,
    timeout: Duration,
    until_file: Option<PathBuf>,
    duration: Duration,
}

fn ping_loop(endpoint: &Endpoint, o: &PingOpts) -> Result<(), Failure> {
    let start = Instant::now();
    let mut c = open(endpoint)?;
    set_watch(&mut c, &o.pong, "ping").map_err(|e| format!("ping: WATCH {}: {e}", o.pong))?;
    let tag = std::process::id();
    let mut rtts_us: Vec<u64> = Vec::new();
    let mut lost = 0u64;
    let mut i = 0u64;
    while start.elapsed() < o.duration && !o.until_file.as_deref().is_some_and(Path::exists) {
        let value = format!("p{i}-{tag}");
        i += 1;
        let t0 = Instant::now();
        let mut p = payload0(&[o.ping.as_bytes()]);
        p.extend_from_slice(value.as_bytes());
        c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
            .map_err(|e| format!("ping: WRITE {}: {e}", o.ping))?;
        let deadline = t0 + o.timeout;
        let answered = loop {
            let now =
                read_opt(&mut c, &o.pong).map_err(|e| format!("ping: READ {}: {e}", o.pong))?;
            if now.as_deref() == Some(value.as_bytes()) {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            let step = (Instant::now() + Duration::from_millis(500)).min(deadline);
            match c.next_event(step) {
                Ok(_) | Err(ClientError::Timeout) => {}
                Err(e) => return Err(format!("ping: {e}")),
            }
        };
        if answered {
            rtts_us.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
        } else {
            lost += 1;
            eprintln!(
                "xsprobe: ping: {value} unanswered after {} s",
                o.timeout.as_secs()
            );
        }
        std::thread::sleep(o.interval);
    }
    let answered = rtts_us.len();
    rtts_us.sort_unstable();
    println!(
        "pings={i} answered={answered} lost={lost} max_rtt_us={} p50_rtt_us={} p99_rtt_us={}",
        rtts_us.last().copied().unwrap_or(0),
        percentile(&rtts_us, 50),
        percentile(&rtts_us, 99)
    );
    if lost > 0 || answered == 0 {
        return Err(format!("ping: {lost} of {i} pings lost"));
    }
    Ok(())
}

/// The transaction id of a `TRANSACTION_START` reply.
fn tx_id(reply: &[u8]) -> Result<u32, Failure> {
    text0(reply).parse().map_err(|_| {
        format!(
            "TRANSACTION_START answered {:?}, not a transaction id",
            String::from_utf8_lossy(reply)
        )
    })
}

fn txn_limits(
    endpoint: &Endpoint,
    path: &str,
    max_transactions: u32,
    max_nodes: u32,
    result_node: Option<&str>,
) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    let mut p = payload0(&[path.as_bytes()]);
    p.push(b'x');
    c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
        .map_err(|e| format!("txn-limits: WRITE {path}: {e}"))?;
    let mut txs = Vec::new();
    let mut txn_refused = String::from("none");
    while txs.len() < max_transactions as usize {
        match c.call(MsgType::TransactionStart, 0, b"\0".to_vec(), REPLY_TIMEOUT) {
            Ok(r) => txs.push(tx_id(&r).map_err(|e| format!("txn-limits: {e}"))?),
            Err(ClientError::Reply(name)) => {
                txn_refused = name;
                break;
            }
            Err(e) => return Err(format!("txn-limits: TRANSACTION_START: {e}")),
        }
    }
    let first = *txs
        .first()
        .ok_or_else(|| format!("txn-limits: no transaction opened ({txn_refused})"))?;
    let mut nodes = 0u32;
    let mut nodes_refused = String::from("none");
    for i in 0..max_nodes {
        let node = format!("{path}/n{i}");
        match c.call(
            MsgType::Read,
            first,
            payload0(&[node.as_bytes()]),
            REPLY_TIMEOUT,
        ) {
            Ok(_) => nodes += 1,
            Err(ClientError::Reply(name)) if name == "ENOENT" => nodes += 1,
            Err(ClientError::Reply(name)) => {
                nodes_refused = name;
                break;
            }
            Err(e) => return Err(format!("txn-limits: READ {node}: {e}")),
        }
    }
    let last = txs.pop();
    let mut aborted = 0u32;
    for tx in txs {
        c.call(MsgType::TransactionEnd, tx, b"F\0".to_vec(), REPLY_TIMEOUT)
            .map_err(|e| format!("txn-limits: TRANSACTION_END F of {tx}: {e}"))?;
        aborted += 1;
    }
    let commit = match last {
        None => String::from("none"),
        Some(tx) => {
            let mut p = payload0(&[format!("{path}/committed").as_bytes()]);
            p.push(b'1');
            c.call(MsgType::Write, tx, p, REPLY_TIMEOUT)
                .map_err(|e| format!("txn-limits: WRITE in {tx}: {e}"))?;
            match c.call(MsgType::TransactionEnd, tx, b"T\0".to_vec(), REPLY_TIMEOUT) {
                Ok(_) => String::from("OK"),
                Err(ClientError::Reply(name)) => name,
                Err(e) => return Err(format!("txn-limits: TRANSACTION_END T of {tx}: {e}")),
            }
        }
    };
    let line = format!(
        "transactions={} txn_refused={txn_refused} nodes={nodes} nodes_refused={nodes_refused} \
         aborted={aborted} commit={commit}",
        aborted + u32::from(last.is_some())
    );
    println!("{line}");
    if let Some(node) = result_node {
        let mut p = payload0(&[node.as_bytes()]);
        p.extend_from_slice(line.as_bytes());
        c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
            .map_err(|e| format!("txn-limits: writing {node}: {e}"))?;
    }
    Ok(())
}

fn churn(
    endpoint: &Endpoint,
    path: &str,
    watches: u32,
    transactions: u32,
    reset: bool,
) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    for i in 0..watches {
        let w = format!("{path}/w{i}");
        set_watch(&mut c, &w, &format!("t{i}")).map_err(|e| format!("churn: WATCH {w}: {e}"))?;
    }
    let mut txs = Vec::new();
    for i in 0..transactions {
        let r = c
            .call(MsgType::TransactionStart, 0, b"\0".to_vec(), REPLY_TIMEOUT)
            .map_err(|e| format!("churn: TRANSACTION_START: {e}"))?;
        let tx = tx_id(&r).map_err(|e| format!("churn: {e}"))?;
        let node = format!("{path}/t{i}");
        let mut p = payload0(&[node.as_bytes()]);
        p.push(b'1');
        c.call(MsgType::Write, tx, p, REPLY_TIMEOUT)
            .map_err(|e| format!("churn: WRITE {node} in {tx}: {e}"))?;
        txs.push(tx);
    }
    print!("watches={watches} transactions={transactions}");
    if reset {
        let outcome = |r: Result<Vec<u8>, ClientError>| match r {
            Ok(_) => Ok(String::from("OK")),
            Err(ClientError::Reply(name)) => Ok(name),
            Err(e) => Err(format!("churn: RESET_WATCHES: {e}")),
        };
        let in_txn = match txs.first() {
            Some(&tx) => outcome(c.call(MsgType::ResetWatches, tx, b"\0".to_vec(), REPLY_TIMEOUT))?,
            None => String::from("none"),
        };
        let out = outcome(c.call(MsgType::ResetWatches, 0, b"\0".to_vec(), REPLY_TIMEOUT))?;
        print!(" reset_in_txn={in_txn} reset={out}");
        if in_txn == "OK" || out != "OK" {
            println!();
            return Err(format!(
                "churn: RESET_WATCHES answered {in_txn} in a transaction and {out} outside"
            ));
        }
    }
    println!();
    // Exit without unwatching or ending anything: the connection's owner cleans up.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        assert_eq!(percentile(&[], 99), 0);
        assert_eq!(percentile(&[5], 99), 5);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&v, 100), 100);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99), 990);
    }

    #[test]
    fn fill_values() {
        assert_eq!(fill_value(7, 0), b"v7");
        assert_eq!(fill_value(7, 2), b"v7");
        assert_eq!(fill_value(12, 6), b"v12...");
    }

    #[test]
    fn fill_perm_pattern() {
        assert_eq!(fill_perms(0), Some(["n0", "r1"]));
        assert_eq!(fill_perms(15), Some(["n0", "r1"]));
        assert_eq!(fill_perms(5), Some(["w0", "b3"]));
        assert_eq!(fill_perms(7), None);
    }
}
