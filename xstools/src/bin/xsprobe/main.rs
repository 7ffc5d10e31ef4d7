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

mod hostile;
mod load;

use hostile::*;
use load::*;

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
    /// Create COUNT nodes PREFIX/{i} = v{i} (padded to --value-size), pipelined; prints
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
        /// Pad every value to this many bytes (`v{i}` then `.`s; 0: just `v{i}`).
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
        /// Pause this long before each read after the first (the gaps include it): a
        /// witness that dom0 is served, without taking the emulated CPU from the guests.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
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
    /// WRITE PREFIX/{i} = v{i}, one request at a time, until told to stop; prints
    /// `acked=N errors=E max_gap_us=G`.
    ///
    /// Every acknowledged write's index is appended to LOG (when given). Stops when
    /// UNTIL_FILE exists, when UNTIL_NODE exists in the store, or after DURATION. Errors
    /// (error replies, I/O errors: the connection is opened again, lost replies) are counted
    /// and described on stderr; exits 1 if E > 0. With RESULT_NODE the summary line is also
    /// written there.
    WriteLoop(WriteLoopOpts),
    /// READ PREFIX/{i} for i in 0..COUNT and check each is v{i} (padded as `write-loop
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
    /// PATH/big back to back, WRITERS connections rewrite PATH/w{k} back to back (one request
    /// in flight per connection, as the Linux device allows). Errors are counted and
    /// described on stderr; exits 1 if E > 0. With RESULT_NODE the summary line is also
    /// written there.
    Flood(FloodOpts),
    /// Wait, asleep in a watch on one connection, until PATH exists; prints `waited_ms=T`;
    /// exits 1 at the timeout.
    ///
    /// The node is read after the watch is set and after every event, so a node created
    /// before or while the watch is set is seen (unlike a `xenstore-exists` check followed by
    /// `xenstore-watch`, which can miss it).
    Wait {
        /// The node to wait for.
        #[arg(long)]
        path: String,
        /// Give up after this long.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
    /// Send one XS_CONTROL with ARGS (each NUL-terminated, as `xenstore-control` joins
    /// them) and print the reply's text: for the commands a client newer than the lab's
    /// sends (Xen 4.21's `live-update -s -t T -v N`). An error reply exits 1 with its name.
    Control {
        /// The command and its arguments.
        #[arg(required = true, allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
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
    Ping(PingOpts),
    /// Open transactions until one is refused, access nodes in the first until refused,
    /// then end them all; prints `transactions=N txn_refused=ERR nodes=K nodes_refused=ERR
    /// aborted=A commit=OK|ERR`.
    ///
    /// Transactions: TRANSACTION_START until an error (at most MAX_TRANSACTIONS). Nodes:
    /// READ PATH/n{i} in the first transaction until an answer other than the value or
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
    /// WATCH PATH/w{i} (token t{i}) for i < WATCHES; TRANSACTION_START and a WRITE of
    /// PATH/t{i} in it for i < TRANSACTIONS. With --reset: RESET_WATCHES inside the first
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
            interval_ms,
        } => read_loop(
            &endpoint,
            &path,
            Duration::from_millis(duration_ms),
            until_file.as_deref(),
            Duration::from_millis(interval_ms),
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
        Cmd::WriteLoop(o) => write_loop(&endpoint, &o),
        Cmd::Verify {
            prefix,
            count,
            value_size,
            per_dir,
        } => verify(&endpoint, &prefix, count, value_size, per_dir),
        Cmd::Flood(o) => flood(&endpoint, &o),
        Cmd::Wait { path, timeout_s } => wait(&endpoint, &path, timeout_s),
        Cmd::Rm { path } => rm(&endpoint, &path),
        Cmd::Control { args } => control(&endpoint, &args),
        Cmd::Echo {
            ping,
            pong,
            until_node,
        } => echo(&endpoint, &ping, &pong, until_node.as_deref()),
        Cmd::Ping(o) => ping_loop(&endpoint, &o),
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

/// Counts an error of `loop` and describes it on stderr (the first few only).
pub(crate) fn report(errors: &mut u64, what: String) {
    *errors += 1;
    if *errors <= MAX_PRINTED_ERRORS {
        eprintln!("xsprobe: loop: {what}");
    } else if *errors == MAX_PRINTED_ERRORS + 1 {
        eprintln!("xsprobe: loop: further errors are only counted");
    }
}

/// The `pct`-th percentile (nearest rank) of sorted values; 0 for none.
pub(crate) fn percentile(sorted: &[u64], pct: u64) -> u64 {
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

/// Creates `path` with `text` atomically (written aside, then renamed into place).
pub(crate) fn create_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Writes `value` to `node` on a fresh connection.
pub(crate) fn write_node(endpoint: &Endpoint, node: &str, value: &[u8]) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    let mut p = payload0(&[node.as_bytes()]);
    p.extend_from_slice(value);
    c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
        .map(drop)
        .map_err(|e| format!("writing {node}: {e}"))
}

/// READ of `path` on `c`: `Ok(None)` when it does not exist.
/// `wait`: until `path` exists, or `timeout_s` passed.
fn wait(endpoint: &Endpoint, path: &str, timeout_s: u64) -> Result<(), Failure> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(timeout_s);
    let mut c = open(endpoint)?;
    set_watch(&mut c, path, "wait").map_err(|e| format!("wait: WATCH {path}: {e}"))?;
    loop {
        if read_opt(&mut c, path)
            .map_err(|e| format!("wait: READ {path}: {e}"))?
            .is_some()
        {
            println!("waited_ms={}", start.elapsed().as_millis());
            return Ok(());
        }
        match c.next_event(deadline) {
            Ok(_) => {}
            Err(ClientError::Timeout) => {
                return Err(format!("wait: {path} did not appear within {timeout_s} s"))
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

pub(crate) fn read_opt(c: &mut Client, path: &str) -> Result<Option<Vec<u8>>, ClientError> {
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
pub(crate) fn set_watch(c: &mut Client, path: &str, token: &str) -> Result<(), ClientError> {
    let req = c.send(
        MsgType::Watch,
        0,
        payload0(&[path.as_bytes(), token.as_bytes()]),
    )?;
    let msg = c.wait_reply(req, Instant::now() + REPLY_TIMEOUT)?;
    check_reply(MsgType::Watch, &msg)
}

/// The transaction id of a `TRANSACTION_START` reply.
pub(crate) fn tx_id(reply: &[u8]) -> Result<u32, Failure> {
    text0(reply).parse().map_err(|_| {
        format!(
            "TRANSACTION_START answered {:?}, not a transaction id",
            String::from_utf8_lossy(reply)
        )
    })
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
}
