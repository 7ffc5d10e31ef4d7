//! Drives the built `xsimage` binary: dump/build/verify round trips and refused images.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

fn xsimage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xsimage"))
        .args(args)
        .output()
        .unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xsimage-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

const SEED_JSON: &str = r#"{
  "endianness": "big",
  "version": 1,
  "records": [
    {"type": "global", "rw_socket_fd": 5, "ro_socket_fd": 6},
    {"type": "global_quota", "domain": [{"name": "nodes", "value": 1000}], "global": []},
    {"type": "connection", "conn_id": 1, "conn_type": "ring", "flags": 0, "domid": 1,
     "tdomid": 32756, "evtchn": 9, "mfn": 18446744073709551615, "data": "6162"},
    {"type": "connection", "conn_id": 2, "conn_type": "socket", "flags": 1, "socket_fd": 17, "data": ""},
    {"type": "watch", "conn_id": 1, "wpath": "/a", "token": "t"},
    {"type": "transaction", "conn_id": 1, "tx_id": 7},
    {"type": "domain", "domid": 1, "features": 1, "quotas": [{"name": "nodes", "value": 10}]},
    {"type": "node", "conn_id": 0, "tx_id": 0, "access": 0, "perms": [{"perm": "n", "domid": 0}], "path": "/", "value": ""},
    {"type": "node", "conn_id": 1, "tx_id": 7, "access": 2, "perms": [{"perm": "b", "domid": 1}, {"perm": "r", "domid": 0}], "path": "/a", "value": "7600ff"},
    {"type": "end"}
  ]
}"#;

#[test]
fn build_verify_dump_round_trip() {
    let d = tmpdir("seed");
    let json = d.join("in.json");
    let img = d.join("out.img");
    fs::write(&json, SEED_JSON).unwrap();
    let out = xsimage(&["build", json.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = fs::read(&img).unwrap();
    assert_eq!(&bytes[..16], b"xenstore\0\0\0\x01\0\0\0\x01");

    let out = xsimage(&["verify", img.to_str().unwrap()]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1);
    assert!(line.starts_with("OK: seed layout v1 big-endian"), "{line}");
    assert!(line.contains(&format!("{} bytes", bytes.len())), "{line}");
    assert!(line.contains("10 records"), "{line}");
    assert!(line.contains("CONNECTION_DATA 2"), "{line}");
    assert!(line.contains("NODE_DATA 2"), "{line}");
    assert!(
        line.contains("2 nodes (1 committed, 1 in transactions)"),
        "{line}"
    );

    let out = xsimage(&["dump", img.to_str().unwrap()]);
    assert!(out.status.success());
    let dumped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let original: serde_json::Value = serde_json::from_str(SEED_JSON).unwrap();
    assert_eq!(dumped, original);

    // build(dump(image)) gives back the same bytes.
    let json2 = d.join("dumped.json");
    let img2 = d.join("again.img");
    fs::write(&json2, &out.stdout).unwrap();
    let out = xsimage(&[
        "build",
        json2.to_str().unwrap(),
        "-o",
        img2.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(fs::read(&img2).unwrap(), bytes);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn xen_layout_round_trip() {
    let d = tmpdir("xen");
    let json = d.join("in.json");
    let img = d.join("out.img");
    let text = r#"{"endianness": "little", "version": 2, "records": [
      {"type": "xen_global", "socket_fd": -1, "evtchn_fd": 4},
      {"type": "xen_connection", "conn_type": "ring", "conn_id": 1, "domid": 5, "tdomid": 32756,
       "evtchn": 3, "in_data": "69", "out_resp_len": 2, "out_data": "6f6b", "unique_id": 77},
      {"type": "watch_ext", "conn_id": 1, "wpath": "/a", "token": "t", "depth": 1},
      {"type": "node", "conn_id": 0, "tx_id": 0, "access": 0, "perms": [{"perm": "r", "flags": 1, "domid": 0}], "path": "/", "value": "78"},
      {"type": "end"}]}"#;
    fs::write(&json, text).unwrap();
    let out = xsimage(&[
        "build",
        "--layout",
        "xen",
        json.to_str().unwrap(),
        "-o",
        img.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = xsimage(&["verify", "--layout", "xen", img.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("OK: xen layout v2 little-endian"));
    let out = xsimage(&["dump", "--layout", "xen", img.to_str().unwrap()]);
    assert!(out.status.success());
    let dumped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dumped,
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
    // The same file is refused in the seed layout.
    let out = xsimage(&["verify", img.to_str().unwrap()]);
    assert!(!out.status.success());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn corrupt_image_is_refused() {
    let d = tmpdir("corrupt");
    let json = d.join("in.json");
    let img = d.join("out.img");
    fs::write(&json, SEED_JSON).unwrap();
    assert!(
        xsimage(&["build", json.to_str().unwrap(), "-o", img.to_str().unwrap()])
            .status
            .success()
    );
    let mut bytes = fs::read(&img).unwrap();
    // Record #0 (GLOBAL_DATA at 16): make its type unknown.
    bytes[16..20].copy_from_slice(&[0, 0, 0, 0x42]);
    fs::write(&img, &bytes).unwrap();
    for cmd in ["verify", "dump"] {
        let out = xsimage(&[cmd, img.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("offset 16 (0x10), record #0"), "{err}");
        assert!(err.contains("unknown record type 66"), "{err}");
    }
    // Truncated file.
    fs::write(&img, &bytes[..10]).unwrap();
    let out = xsimage(&["verify", img.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("truncated header"));
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn build_refuses_invalid_images_unless_asked() {
    let d = tmpdir("invalid");
    let json = d.join("in.json");
    let img = d.join("out.img");
    // A watch on an undeclared connection, and no END.
    fs::write(
        &json,
        r#"{"endianness": "little", "version": 1, "records": [
        {"type": "watch", "conn_id": 3, "wpath": "/a", "token": "t"}]}"#,
    )
    .unwrap();
    let out = xsimage(&["build", json.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("conn-id 3 not declared earlier"));
    assert!(!img.exists());
    let out = xsimage(&[
        "build",
        "--no-verify",
        json.to_str().unwrap(),
        "-o",
        img.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = xsimage(&["verify", img.to_str().unwrap()]);
    assert!(!out.status.success());
    // Bad JSON: non-lowercase hex.
    fs::write(&json, r#"{"endianness": "little", "version": 1, "records": [
        {"type": "connection", "conn_id": 1, "conn_type": "socket", "flags": 0, "socket_fd": 3, "data": "AB"},
        {"type": "end"}]}"#)
    .unwrap();
    let out = xsimage(&["build", json.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert!(!out.status.success());
    let _ = fs::remove_dir_all(&d);
}

/// An image the engine wrote (every kind of state) survives `xsimage dump` then
/// `xsimage build` byte for byte, in both byte orders.
#[test]
fn engine_images_round_trip_through_json() {
    use xsstate::image::{write, Endianness};
    use xsstate::snapshot::DumpOptions;
    use xsstate::wire::{Message, MsgType};
    use xsstate::{Engine, EngineConfig, TxId};

    let mut e = Engine::new(EngineConfig::default());
    let d0 = e.connect_socket(false);
    let send = |e: &mut Engine, c, ty, tx, p: &[u8]| {
        e.receive(c, &Message::new(ty, 1, TxId(tx), p.to_vec()).encode())
            .unwrap();
    };
    send(&mut e, d0, MsgType::Introduce, 0, b"4\x0077\x0012\x00");
    send(&mut e, d0, MsgType::Mkdir, 0, b"/local/domain/4\x00");
    send(
        &mut e,
        d0,
        MsgType::SetPerms,
        0,
        b"/local/domain/4\x00n4\x00r0\x00",
    );
    send(
        &mut e,
        d0,
        MsgType::Write,
        0,
        b"/vm/bin\x00\x00\x01\x02\xff",
    );
    send(&mut e, d0, MsgType::Watch, 0, b"/vm\x00tok\x00");
    let g = e.connections().find(|c| c.domid.0 == 4).unwrap().id;
    send(&mut e, g, MsgType::Watch, 0, b"rel\x00gtok\x00");
    send(&mut e, g, MsgType::TransactionStart, 0, b"\x00");
    send(&mut e, g, MsgType::Write, 1, b"rel/x\x00pending");
    let d = tmpdir("engine");
    for (name, endianness) in [("le", Endianness::Little), ("be", Endianness::Big)] {
        let bytes = write(&e.dump(&DumpOptions {
            endianness,
            ..DumpOptions::default()
        }))
        .unwrap();
        let img = d.join(format!("{name}.img"));
        fs::write(&img, &bytes).unwrap();
        let o = xsimage(&["verify", img.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = xsimage(&["dump", img.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let json = d.join(format!("{name}.json"));
        fs::write(&json, &o.stdout).unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("\"conn_type\": \"ring\"") || text.contains("\"conn_type\":\"ring\""),
            "{text}"
        );
        let out = d.join(format!("{name}.out"));
        let o = xsimage(&["build", json.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(fs::read(&out).unwrap(), bytes);
    }
    let _ = fs::remove_dir_all(&d);
}
