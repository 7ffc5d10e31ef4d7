//! `xsprobe`'s load commands: fill a store, loop reads or writes on it, hold a transaction,
//! verify and remove what was written.

use super::*;

/// The permissions `fill` gives node `i` (`None`: leave the inherited ones).
pub(crate) fn fill_perms(i: u32) -> Option<[&'static str; 2]> {
    if i.is_multiple_of(3) {
        Some(["n0", "r1"])
    } else if i.is_multiple_of(5) {
        Some(["w0", "b3"])
    } else {
        None
    }
}

/// The value `fill` writes to node `i`: `v<i>`, padded with `.` to `size` bytes.
pub(crate) fn fill_value(i: u32, size: usize) -> Vec<u8> {
    let mut v = format!("v{i}").into_bytes();
    if v.len() < size {
        v.resize(size, b'.');
    }
    v
}

pub(crate) fn fill(
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

pub(crate) fn read_loop(
    endpoint: &Endpoint,
    path: &str,
    duration: Duration,
    until_file: Option<&Path>,
    interval: Duration,
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
        if !interval.is_zero() && requests > 0 {
            std::thread::sleep(interval);
        }
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

pub(crate) fn txn_hold(
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

/// `write-loop`'s options.
#[derive(clap::Args)]
pub(crate) struct WriteLoopOpts {
    /// Parent path of the nodes.
    #[arg(long)]
    pub(crate) prefix: String,
    /// Stop as soon as this file exists.
    #[arg(long, value_name = "F")]
    pub(crate) until_file: Option<PathBuf>,
    /// Stop as soon as this node exists (checked every 20 attempts).
    #[arg(long, value_name = "N")]
    pub(crate) until_node: Option<String>,
    /// Stop after this long.
    #[arg(long, default_value_t = 600_000)]
    pub(crate) duration_ms: u64,
    /// Append each acknowledged index to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,
    /// Write the summary line to this node at the end.
    #[arg(long, value_name = "N")]
    pub(crate) result_node: Option<String>,
    /// Pad each value to this many bytes (`v{i}` then `x`s).
    #[arg(long, default_value_t = 0)]
    pub(crate) value_size: usize,
    /// Stop at the first error reply (an expected refusal, reported as `refused=NAME`)
    /// instead of counting it as an error.
    #[arg(long)]
    pub(crate) until_refused: bool,
    /// Stop after this many acknowledged writes (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub(crate) count: u64,
    /// Write PREFIX/{i mod WRAP} instead (the same WRAP nodes over and over).
    #[arg(long, value_name = "WRAP", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) wrap: Option<u64>,
    /// Node i is PREFIX/{i / PER_DIR}/{i} (a domain's directory holds about 450 such
    /// names under the 2048-byte node-size quota).
    #[arg(long, value_name = "PER_DIR", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) per_dir: Option<u64>,
    /// Pause this long between writes.
    #[arg(long, default_value_t = 0)]
    pub(crate) interval_ms: u64,
}

/// Where write-loop puts node `idx`: `PREFIX/<idx>`, or `PREFIX/<idx / per_dir>/<idx>`.
pub(crate) fn node_path(prefix: &str, idx: u64, per_dir: Option<u64>) -> String {
    match per_dir {
        Some(n) => format!("{prefix}/{}/{idx}", idx / n),
        None => format!("{prefix}/{idx}"),
    }
}

/// `v<i>` padded with `x` to `size` bytes.
pub(crate) fn padded_value(i: u64, size: usize) -> Vec<u8> {
    let mut v = format!("v{i}").into_bytes();
    if v.len() < size {
        v.resize(size, b'x');
    }
    v
}

pub(crate) fn write_loop(endpoint: &Endpoint, o: &WriteLoopOpts) -> Result<(), Failure> {
    let start = Instant::now();
    let end = start + Duration::from_millis(o.duration_ms);
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
        if o.interval_ms > 0 && attempts > 1 {
            std::thread::sleep(Duration::from_millis(o.interval_ms));
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

pub(crate) fn rm(endpoint: &Endpoint, path: &str) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    c.call(MsgType::Rm, 0, payload0(&[path.as_bytes()]), REPLY_TIMEOUT)
        .map_err(|e| format!("rm: RM {path}: {e}"))?;
    println!("removed");
    Ok(())
}

pub(crate) fn control(endpoint: &Endpoint, args: &[String]) -> Result<(), Failure> {
    let mut c = open(endpoint)?;
    let parts: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let reply = c
        .call(MsgType::Control, 0, payload0(&parts), REPLY_TIMEOUT)
        .map_err(|e| format!("control: CONTROL {}: {e}", args.join(" ")))?;
    println!("{}", text0(&reply));
    Ok(())
}

pub(crate) fn verify(
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

#[cfg(test)]
mod tests {
    use super::*;

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
