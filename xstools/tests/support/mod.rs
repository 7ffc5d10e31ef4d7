//! Test fixture: a `xenstored-host` on a private socket, and finding the stock Xen clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running daemon; stopped with SIGTERM when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Daemon {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xsh-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("socket");
        let log = dir.join("log");
        let child = Command::new(env!("CARGO_BIN_EXE_xenstored-host"))
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn xenstored-host");
        let d = Daemon {
            child: Some(child),
            dir,
            socket,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&d.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not come up; log: {}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a stock client (or any program) against this daemon.
    pub fn run(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env("XENSTORED_PATH", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }

    /// Stops the daemon with `sig` and returns its exit status.
    pub fn stop(&mut self, sig: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(&pid)
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "daemon ignored signal {sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(15);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A stock client by name, or `None` when xenstore-utils is not installed. With
/// `XS_REQUIRE_STOCK=1` (set by `cargo xtask test`) a missing client fails the test.
pub fn stock(name: &str) -> Option<PathBuf> {
    // Xen's own directory first: /usr/bin/xenstore-control is a wrapper that needs a
    // running hypervisor to pick the version.
    let candidates = [
        PathBuf::from("/usr/lib/xen-4.17/bin").join(name),
        PathBuf::from("/usr/bin").join(name),
        PathBuf::from("/usr/sbin").join(name),
    ];
    let found = candidates.into_iter().find(|p| p.exists());
    if found.is_none() {
        if std::env::var_os("XS_REQUIRE_STOCK").is_some() {
            panic!("{name} is required (XS_REQUIRE_STOCK set) but not installed");
        }
        eprintln!("skipping: {name} not installed (cargo xtask test installs it)");
    }
    found
}

/// Sends one raw request and reads one reply (type, payload).
pub fn raw_call(s: &mut UnixStream, ty: u32, req: u32, tx: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    let mut msg = Vec::new();
    for w in [ty, req, tx, payload.len() as u32] {
        msg.extend_from_slice(&w.to_le_bytes());
    }
    msg.extend_from_slice(payload);
    s.write_all(&msg).unwrap();
    read_msg(s)
}

/// Reads one message.
pub fn read_msg(s: &mut UnixStream) -> (u32, Vec<u8>) {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).unwrap();
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let mut p = vec![0u8; word(12) as usize];
    s.read_exact(&mut p).unwrap();
    (word(0), p)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
