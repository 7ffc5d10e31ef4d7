//! `xenstored-host` as a process: help, signals, concurrent clients, hostile clients.
mod support;

use std::io::{Read, Write};
use std::process::Command;

use support::*;

const READ: u32 = 2;
const WRITE: u32 = 11;
const ERROR: u32 = 16;

#[test]
fn help_names_the_socket_option() {
    let o = Command::new(env!("CARGO_BIN_EXE_xenstored-host"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("--socket") && text.contains("/var/run/xenstored/socket"),
        "{text}"
    );
}

#[test]
fn sigterm_and_sigint_exit_cleanly_and_remove_the_socket() {
    for sig in [15, 2] {
        let mut d = Daemon::start();
        let st = d.stop(sig);
        assert!(st.success(), "signal {sig}: {st:?}");
        assert!(!d.socket.exists());
        assert!(d.log_text().contains("shutting down"));
    }
}

#[test]
fn initial_tree_is_c_xenstoreds() {
    let d = Daemon::start();
    let mut s = d.connect();
    assert_eq!(raw_call(&mut s, 1, 1, 0, b"/\0"), (1, b"tool\0".to_vec()));
    assert_eq!(
        raw_call(&mut s, 1, 2, 0, b"/tool\0"),
        (1, b"xenstored\0".to_vec())
    );
    assert_eq!(
        raw_call(&mut s, 3, 3, 0, b"/tool/xenstored\0"),
        (3, b"n0\0".to_vec())
    );
}

#[test]
fn oversized_message_loses_only_that_connection() {
    let d = Daemon::start();
    let mut good = d.connect();
    assert_eq!(raw_call(&mut good, WRITE, 1, 0, b"/k\0v").0, WRITE);
    let mut bad = d.connect();
    let mut h = Vec::new();
    for w in [READ, 1, 0, 5000] {
        h.extend_from_slice(&w.to_le_bytes());
    }
    bad.write_all(&h).unwrap();
    let mut buf = [0u8; 16];
    // The daemon closes the offender: EOF (or reset), no reply.
    let n = bad.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(
        raw_call(&mut good, READ, 2, 0, b"/k\0"),
        (READ, b"v".to_vec())
    );
    assert!(d.log_text().contains("protocol violation"));
}

#[test]
fn garbage_gets_errors_not_crashes() {
    let d = Daemon::start();
    let mut s = d.connect();
    // Unknown type: ENOSYS; malformed payload: EINVAL; the connection stays usable.
    assert_eq!(
        raw_call(&mut s, 99, 1, 0, b"x"),
        (ERROR, b"ENOSYS\0".to_vec())
    );
    assert_eq!(
        raw_call(&mut s, READ, 2, 0, b"no-nul"),
        (ERROR, b"EINVAL\0".to_vec())
    );
    assert_eq!(
        raw_call(&mut s, READ, 3, 77, b"/tool\0"),
        (ERROR, b"ENOENT\0".to_vec())
    );
    assert_eq!(
        raw_call(&mut s, READ, 4, 0, b"/tool\0"),
        (READ, b"".to_vec())
    );
    // Garbage bytes that happen to form a huge header: only this client goes.
    s.write_all(&[0xff; 64]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    let mut other = d.connect();
    assert_eq!(raw_call(&mut other, READ, 1, 0, b"/tool\0").0, READ);
}

#[test]
fn many_concurrent_clients() {
    let d = Daemon::start();
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                for i in 0..200u32 {
                    let path = format!("/c/{t}/{i}");
                    let mut p = path.clone().into_bytes();
                    p.push(0);
                    p.extend_from_slice(format!("{t}-{i}").as_bytes());
                    assert_eq!(raw_call(&mut s, WRITE, i, 0, &p).0, WRITE);
                    let mut q = path.into_bytes();
                    q.push(0);
                    assert_eq!(
                        raw_call(&mut s, READ, i, 0, &q),
                        (READ, format!("{t}-{i}").into_bytes())
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut s = d.connect();
    let (ty, list) = raw_call(&mut s, 1, 1, 0, b"/c\0");
    assert_eq!(ty, 1);
    assert_eq!(
        list.split(|&b| b == 0).filter(|x| !x.is_empty()).count(),
        16
    );
}
