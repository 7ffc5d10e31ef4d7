//! The stock Debian xenstore clients and Xen's test-xenstore against `xenstored-host`.
//!
//! Expected outputs and exit codes are those the same client commands give against
//! C xenstored (the lab compares both daemons side by side under Xen).
mod support;

use std::process::{Command, Stdio};

use support::*;

macro_rules! need {
    ($name:expr) => {
        match stock($name) {
            Some(p) => p,
            None => return,
        }
    };
}

#[test]
fn write_read_exists_rm() {
    let (write, read, exists, rm) = (
        need!("xenstore-write"),
        need!("xenstore-read"),
        need!("xenstore-exists"),
        need!("xenstore-rm"),
    );
    let d = Daemon::start();
    let o = d.run(&write, &["/vm/a", "hello", "/vm/b/c", "two words"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.run(&read, &["/vm/a", "/vm/b/c"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "hello\ntwo words\n");
    // A parent created implicitly reads as empty.
    assert_eq!(stdout(&d.run(&read, &["/vm/b"])), "\n");
    let o = d.run(&read, &["/nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("couldn't read path /nope"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.run(&exists, &["/vm/b/c"]).status.code(), Some(0));
    assert_eq!(d.run(&exists, &["/vm/zz"]).status.code(), Some(1));
    assert_eq!(d.run(&rm, &["/vm/b"]).status.code(), Some(0));
    assert_eq!(d.run(&exists, &["/vm/b/c"]).status.code(), Some(1));
    assert_eq!(d.run(&exists, &["/vm/a"]).status.code(), Some(0));
    // Removing a node whose parent is missing fails; an absent node under a present one is fine.
    assert_eq!(d.run(&rm, &["/vm/none"]).status.code(), Some(0));
    let o = d.run(&rm, &["/none/none"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Relative paths of a socket client are dom0's home.
    assert!(d.run(&write, &["rel/x", "r"]).status.success());
    assert_eq!(stdout(&d.run(&read, &["/local/domain/0/rel/x"])), "r\n");
    // Invalid characters are refused.
    let o = d.run(&write, &["/bad path", "x"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn ls_list_and_chmod() {
    let (write, ls, list, chmod) = (
        need!("xenstore-write"),
        need!("xenstore-ls"),
        need!("xenstore-list"),
        need!("xenstore-chmod"),
    );
    let d = Daemon::start();
    assert!(d
        .run(&write, &["/vm/a", "1", "/vm/b", "2", "/vm/b/c", "3"])
        .status
        .success());
    assert_eq!(stdout(&d.run(&list, &["/"])), "tool\nvm\n");
    assert_eq!(stdout(&d.run(&list, &["/vm"])), "a\nb\n");
    assert_eq!(stdout(&d.run(&list, &["/vm/a"])), "");
    let o = d.run(&list, &["/nope"]);
    assert_eq!(o.status.code(), Some(1));
    // ls: children in creation order, nested with one space per level.
    let o = d.run(&ls, &["/vm"]);
    assert_eq!(stdout(&o), "a = \"1\"\nb = \"2\"\n c = \"3\"\n");
    let o = d.run(&ls, &[]);
    assert_eq!(
        stdout(&o),
        "tool = \"\"\n xenstored = \"\"\nvm = \"\"\n a = \"1\"\n b = \"2\"\n  c = \"3\"\n"
    );
    // chmod then ls -p shows the permissions.
    let o = d.run(&chmod, &["/vm/a", "n0", "r5", "b7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.run(&ls, &["-p", "/vm"]);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("a = \"1\"") && lines[0].ends_with("(n0,r5,b7)"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("b = \"2\"") && lines[1].ends_with("(n0)"),
        "{lines:?}"
    );
    // chmod -r applies to the subtree.
    assert!(d.run(&chmod, &["-r", "/vm/b", "b3"]).status.success());
    let o = d.run(&ls, &["-p", "/vm/b"]);
    assert!(stdout(&o).trim_end().ends_with("(b3)"), "{}", stdout(&o));
    let o = d.run(&chmod, &["/vm/a", "x1"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn watch_events() {
    let (write, rm, chmod) = (
        need!("xenstore-write"),
        need!("xenstore-rm"),
        need!("xenstore-chmod"),
    );
    let watch = need!("xenstore-watch");
    let d = Daemon::start();
    assert!(d.run(&write, &["/w/x", "0"]).status.success());
    // Initial event, then a write below, a chmod, a removal of the watched node.
    let mut child = Command::new(&watch)
        .args(["-n", "5", "/w"])
        .env("XENSTORED_PATH", &d.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The watch is registered once its first event (the watched path) is printed.
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut lines, &mut first).unwrap();
    assert_eq!(first, "/w\n");
    assert!(d.run(&write, &["/w/x/y", "1"]).status.success());
    assert!(d.run(&write, &["/other", "1"]).status.success());
    assert!(d.run(&chmod, &["/w/x", "n0", "r1"]).status.success());
    assert!(d.run(&rm, &["/w/x"]).status.success());
    assert!(d.run(&rm, &["/w"]).status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(rest, "/w/x/y\n/w/x\n/w/x\n/w\n");
}

#[test]
fn xenstore_control_commands() {
    let control = need!("xenstore-control");
    let d = Daemon::start();
    let o = d.run(&control, &["check"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "OK\n".into()));
    let o = d.run(&control, &["help"]);
    assert!(
        stdout(&o).starts_with("check\t\nlog\ton|off\nlive-update\t"),
        "{}",
        stdout(&o)
    );
    let o = d.run(&control, &["quota"]);
    assert!(
        stdout(&o).contains("nodes            :     1000 Nodes per domain"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        d.run(&control, &["quota", "set", "nodes", "2000"])
            .status
            .code(),
        Some(0)
    );
    assert!(stdout(&d.run(&control, &["quota"])).contains("nodes            :     2000"));
    assert_eq!(
        d.run(&control, &["quota", "set", "nodes", "0"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        d.run(&control, &["quota", "set", "bogus", "1"])
            .status
            .code(),
        Some(3)
    );
    assert!(stdout(&d.run(&control, &["quota-soft"])).contains("memory           :  2097152"));
    let o = d.run(&control, &["print", "hello-from-test"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(d.log_text().contains("hello-from-test"));
    // Unknown command: EINVAL, the client lists the valid ones and exits 3.
    let o = d.run(&control, &["bogus"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("Command not supported"),
        "{}",
        stderr(&o)
    );
    let o = d.run(&control, &["memreport"]);
    assert!(stdout(&o).contains("nodes: "), "{}", stdout(&o));
}

#[test]
fn test_xenstore_passes() {
    let t = need!("test-xenstore");
    let d = Daemon::start();
    let o = d.run(&t, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    for name in ["read 1", "write 2000", "dir", "rm dir", "ta rmw", "ta err"] {
        let line = stdout(&o)
            .lines()
            .find(|l| l.starts_with(name))
            .map(str::to_owned);
        let line = line.unwrap_or_else(|| panic!("{name} missing:\n{}", stdout(&o)));
        assert!(!line.contains("failed"), "{line}");
    }
    // Repeated iterations, as a soak.
    let o = d.run(&t, &["-i", "50"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // The test leaves nothing behind.
    let ls = need!("xenstore-ls");
    assert_eq!(stdout(&d.run(&ls, &["/local/domain/0"])), "");
}
