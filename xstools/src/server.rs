//! The socket server behind `xenstored-host`: a single-threaded mio loop feeding the engine.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use xsstate::control::LiveUpdateCmd;
use xsstate::{ConnId, Effect, Engine, EngineConfig, MsgType};

const LISTEN_RW: Token = Token(0);
const LISTEN_RO: Token = Token(1);
const SIGNALS: Token = Token(2);
const FIRST_CLIENT: usize = 16;

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Path of the read-write socket.
    pub socket: PathBuf,
    /// Path of the optional read-only socket.
    pub ro_socket: Option<PathBuf>,
    /// Log every request (as `xenstore-control log on`).
    pub trace: bool,
    /// Engine settings.
    pub engine: EngineConfig,
}

/// Prints one log line on stderr with the time since start.
pub fn log_line(start: Instant, line: &str) {
    let t = start.elapsed();
    for l in line.lines() {
        eprintln!(
            "xenstored-host [{:>5}.{:03}] {l}",
            t.as_secs(),
            t.subsec_millis()
        );
    }
}

struct Client {
    stream: UnixStream,
    conn: ConnId,
    writable_interest: bool,
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    // Replace a stale socket left by an earlier run, but never another kind of file.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "path exists and is not a socket",
            ));
        }
    }
    UnixListener::bind(path)
}

/// Serves until SIGTERM or SIGINT; removes the socket files on the way out.
pub fn serve(cfg: ServerConfig) -> io::Result<()> {
    let start = Instant::now();
    let mut poll = Poll::new()?;
    let mut rw = bind(&cfg.socket)?;
    poll.registry()
        .register(&mut rw, LISTEN_RW, Interest::READABLE)?;
    let ro = match &cfg.ro_socket {
        Some(p) => {
            let mut l = bind(p)?;
            poll.registry()
                .register(&mut l, LISTEN_RO, Interest::READABLE)?;
            Some(l)
        }
        None => None,
    };
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;

    let mut engine = Engine::new(cfg.engine.clone());
    if cfg.trace {
        let c = engine.connect_socket(false);
        let msg =
            xsstate::Message::new(MsgType::Control, 0, xsstate::TxId(0), b"log\0on\0".to_vec());
        let _ = engine.handle_message(c, msg);
        engine.disconnect(c);
    }
    let mut clients: HashMap<Token, Client> = HashMap::new();
    let mut next_token = FIRST_CLIENT;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 64 * 1024];
    log_line(start, &format!("serving on {}", cfg.socket.display()));
    if let Some(p) = &cfg.ro_socket {
        log_line(start, &format!("read-only socket on {}", p.display()));
    }

    'outer: loop {
        // Sleep at most a second, less when the engine has something due (a watch event
        // to expire, a rate-limited domain to serve again).
        let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let wait_ms = engine
            .next_wakeup_ms()
            .map_or(1000, |w| w.saturating_sub(now_ms))
            .min(1000);
        match poll.poll(&mut events, Some(Duration::from_millis(wait_ms))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        engine.set_time_ms(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        let mut closed: Vec<Token> = Vec::new();
        for event in events.iter() {
            match event.token() {
                SIGNALS => {
                    if let Some(sig) = signals.pending().next() {
                        log_line(start, &format!("signal {sig}: shutting down"));
                        break 'outer;
                    }
                }
                t @ (LISTEN_RW | LISTEN_RO) => {
                    let listener = if t == LISTEN_RW {
                        Some(&rw)
                    } else {
                        ro.as_ref()
                    };
                    let Some(listener) = listener else { continue };
                    loop {
                        match listener.accept() {
                            Ok((mut stream, _)) => {
                                let token = Token(next_token);
                                next_token += 1;
                                poll.registry()
                                    .register(&mut stream, token, Interest::READABLE)?;
                                let conn = engine.connect_socket(t == LISTEN_RO);
                                log_line(
                                    start,
                                    &format!(
                                        "{conn}: connected{}",
                                        if t == LISTEN_RO { " (read-only)" } else { "" }
                                    ),
                                );
                                clients.insert(
                                    token,
                                    Client {
                                        stream,
                                        conn,
                                        writable_interest: false,
                                    },
                                );
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                log_line(start, &format!("accept failed: {e}"));
                                break;
                            }
                        }
                    }
                }
                token => {
                    let Some(client) = clients.get_mut(&token) else {
                        continue;
                    };
                    if event.is_readable() && !read_client(&mut engine, client, &mut buf, start) {
                        closed.push(token);
                    }
                }
            }
        }
        for effect in engine.take_effects() {
            handle_effect(&mut engine, effect, start);
        }
        // Replies and watch events may have been queued for any client: flush them all.
        for (token, client) in clients.iter_mut() {
            if closed.contains(token) {
                continue;
            }
            match flush_client(&mut engine, client) {
                Ok(blocked) => {
                    if blocked != client.writable_interest {
                        let interest = if blocked {
                            Interest::READABLE | Interest::WRITABLE
                        } else {
                            Interest::READABLE
                        };
                        poll.registry()
                            .reregister(&mut client.stream, *token, interest)?;
                        client.writable_interest = blocked;
                    }
                }
                Err(e) => {
                    log_line(start, &format!("{}: write failed: {e}", client.conn));
                    closed.push(*token);
                }
            }
        }
        for token in closed {
            if let Some(mut client) = clients.remove(&token) {
                let _ = poll.registry().deregister(&mut client.stream);
                engine.disconnect(client.conn);
                log_line(start, &format!("{}: disconnected", client.conn));
            }
        }
    }
    let _ = std::fs::remove_file(&cfg.socket);
    if let Some(p) = &cfg.ro_socket {
        let _ = std::fs::remove_file(p);
    }
    log_line(start, "stopped");
    Ok(())
}

/// Reads what the client sent; returns false when the connection must be closed.
fn read_client(engine: &mut Engine, client: &mut Client, buf: &mut [u8], start: Instant) -> bool {
    loop {
        match client.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                let data = buf.get(..n).unwrap_or(&[]);
                match engine.receive(client.conn, data) {
                    Ok(used) if used == n => {}
                    Ok(_) => {
                        // Socket clients are privileged and never held back; anything else
                        // is a bug worth a log line, and the connection cannot continue.
                        log_line(
                            start,
                            &format!("{}: input not consumed, closing", client.conn),
                        );
                        return false;
                    }
                    Err(fault) => {
                        log_line(
                            start,
                            &format!("{}: protocol violation: {fault}; closing", client.conn),
                        );
                        return false;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Writes queued output; returns whether the socket is full (wait for writability).
fn flush_client(engine: &mut Engine, client: &mut Client) -> io::Result<bool> {
    loop {
        let chunk = engine.pending_output(client.conn);
        if chunk.is_empty() {
            return Ok(false);
        }
        match client.stream.write(chunk) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(n) => engine.consume_output(client.conn, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn handle_effect(engine: &mut Engine, effect: Effect, start: Instant) {
    match effect {
        Effect::Log(line) => log_line(start, &line),
        Effect::Introduced { domid, port, .. } => log_line(
            start,
            &format!(
                "domain {domid} introduced (port {}); no rings on the host",
                port.0
            ),
        ),
        Effect::Reintroduced { domid, .. } => {
            log_line(start, &format!("domain {domid} re-introduced"))
        }
        Effect::Released { domid, .. } => log_line(start, &format!("domain {domid} released")),
        Effect::LiveUpdate {
            conn,
            req_id,
            tx_id,
            cmd,
        } => {
            let text = match cmd {
                LiveUpdateCmd::Abort => "OK",
                _ => "live update is done by the xenstore stub domain, not by xenstored-host",
            };
            log_line(start, &format!("{conn}: live-update request refused"));
            let mut payload = text.as_bytes().to_vec();
            payload.push(0);
            engine.reply(conn, MsgType::Control, req_id, tx_id, payload);
        }
    }
}
