//! `xsprobe`'s hostile commands: watch, flood, echo and ping, reach the transaction limits,
//! churn connections.

use super::*;

pub(crate) fn watch(
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
#[derive(clap::Args)]
pub(crate) struct FloodOpts {
    /// Parent path of the nodes.
    #[arg(long)]
    pub(crate) path: String,
    /// Connections reading.
    #[arg(long, default_value_t = 24)]
    pub(crate) readers: u32,
    /// Connections writing.
    #[arg(long, default_value_t = 4)]
    pub(crate) writers: u32,
    /// Size of the value the readers read.
    #[arg(long, default_value_t = 1900, value_parser = clap::value_parser!(u32).range(0..=4000))]
    pub(crate) value_size: u32,
    /// How long to flood.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) duration_ms: u64,
    /// Write the summary line to this node at the end.
    #[arg(long, value_name = "N")]
    pub(crate) result_node: Option<String>,
}

/// What one flooding connection did.
#[derive(Default)]
pub(crate) struct FloodCount {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) max_latency: Duration,
}

/// One flooding connection: the same request back to back until `end`.
pub(crate) fn flood_worker(
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

pub(crate) fn flood(endpoint: &Endpoint, o: &FloodOpts) -> Result<(), Failure> {
    let big = format!("{}/big", o.path);
    write_node(endpoint, &big, &fill_value(0, o.value_size as usize))
        .map_err(|e| format!("flood: {e}"))?;
    let start = Instant::now();
    let end = start + Duration::from_millis(o.duration_ms);
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

pub(crate) fn echo(
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
#[derive(clap::Args)]
pub(crate) struct PingOpts {
    /// The node to write.
    #[arg(long)]
    pub(crate) ping: String,
    /// The node the echo answers in.
    #[arg(long)]
    pub(crate) pong: String,
    /// Time between an answer and the next ping.
    #[arg(long, default_value_t = 200)]
    pub(crate) interval_ms: u64,
    /// A ping unanswered after this long is lost.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout_s: u64,
    /// Stop as soon as this file exists.
    #[arg(long, value_name = "F")]
    pub(crate) until_file: Option<PathBuf>,
    /// Stop after this long.
    #[arg(long, default_value_t = 600_000)]
    pub(crate) duration_ms: u64,
}

pub(crate) fn ping_loop(endpoint: &Endpoint, o: &PingOpts) -> Result<(), Failure> {
    let start = Instant::now();
    let mut c = open(endpoint)?;
    set_watch(&mut c, &o.pong, "ping").map_err(|e| format!("ping: WATCH {}: {e}", o.pong))?;
    let tag = std::process::id();
    let mut rtts_us: Vec<u64> = Vec::new();
    let mut lost = 0u64;
    let mut i = 0u64;
    while start.elapsed() < Duration::from_millis(o.duration_ms)
        && !o.until_file.as_deref().is_some_and(Path::exists)
    {
        let value = format!("p{i}-{tag}");
        i += 1;
        let t0 = Instant::now();
        let mut p = payload0(&[o.ping.as_bytes()]);
        p.extend_from_slice(value.as_bytes());
        c.call(MsgType::Write, 0, p, REPLY_TIMEOUT)
            .map_err(|e| format!("ping: WRITE {}: {e}", o.ping))?;
        let deadline = t0 + Duration::from_secs(o.timeout_s);
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
            eprintln!("xsprobe: ping: {value} unanswered after {} s", o.timeout_s);
        }
        std::thread::sleep(Duration::from_millis(o.interval_ms));
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

pub(crate) fn txn_limits(
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

pub(crate) fn churn(
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
