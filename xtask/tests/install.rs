//! `cargo xtask install --destdir`: the documented tree, the image byte for byte, and a host's
//! own `/etc/default/xencommons` left alone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A minimal PVH ELF: one executable PT_LOAD at 1 MiB and the Xen PHYS32_ENTRY note (18).
fn pvh_image() -> Vec<u8> {
    const MIB: u64 = 1 << 20;
    let text: Vec<u8> = (0..256u32).map(|i| (i * 13) as u8).collect();
    let mut note = Vec::new();
    for w in [4u32, 4, 18] {
        note.extend_from_slice(&w.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&(MIB as u32 + 16).to_le_bytes());
    let mut f = vec![0u8; 64 + 2 * 56];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&(MIB + 16).to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    let mut ph = |i: usize, kind: u32, flags: u32, off: u64, paddr: u64, len: u64, align: u64| {
        let b = 64 + i * 56;
        f[b..b + 4].copy_from_slice(&kind.to_le_bytes());
        f[b + 4..b + 8].copy_from_slice(&flags.to_le_bytes());
        for (at, v) in [
            (8, off),
            (16, paddr),
            (24, paddr),
            (32, len),
            (40, len),
            (48, align),
        ] {
            f[b + at..b + at + 8].copy_from_slice(&v.to_le_bytes());
        }
    };
    let text_off = 0x1000u64;
    let note_off = text_off + text.len() as u64;
    ph(0, 1, 5, text_off, MIB, text.len() as u64, 0x1000);
    ph(1, 4, 4, note_off, 0, note.len() as u64, 4);
    f.resize(text_off as usize, 0);
    f.extend_from_slice(&text);
    f.extend_from_slice(&note);
    f
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xsstub-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("install")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn installs_the_documented_tree() {
    use std::os::unix::fs::PermissionsExt;
    let work = temp("tree");
    let image = work.join("xsstub-stripped");
    std::fs::write(&image, pvh_image()).unwrap();
    let dest = work.join("root");
    // A host's own xencommons must stay as it is.
    std::fs::create_dir_all(dest.join("etc/default")).unwrap();
    std::fs::write(dest.join("etc/default/xencommons"), "XENSTORETYPE=daemon\n").unwrap();
    let out = xtask(&[
        "--destdir",
        dest.to_str().unwrap(),
        "--xen",
        "4.17",
        "--xen",
        "4.20",
        "--image",
        image.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree(&dest),
        [
            "etc/default/xencommons",
            "usr/lib/xen-4.17/boot/xsstub",
            "usr/lib/xen-4.20/boot/xsstub",
            "usr/share/doc/xsstub/xencommons-4.17.example",
            "usr/share/doc/xsstub/xencommons-4.20.example",
        ]
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 4, "{printed}");
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/default/xencommons")).unwrap(),
        "XENSTORETYPE=daemon\n"
    );
    for v in ["4.17", "4.20"] {
        let img = dest.join(format!("usr/lib/xen-{v}/boot/xsstub"));
        assert_eq!(std::fs::read(&img).unwrap(), pvh_image());
        let mode = std::fs::metadata(&img).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let example = std::fs::read_to_string(
            dest.join(format!("usr/share/doc/xsstub/xencommons-{v}.example")),
        )
        .unwrap();
        // The example names the image it installed, where launch-xenstore will look.
        let kernel = example
            .lines()
            .find_map(|l| l.strip_prefix("XENSTORE_DOMAIN_KERNEL="))
            .unwrap();
        assert_eq!(kernel, format!("/usr/lib/xen-{v}/boot/xsstub"));
        assert!(dest.join(kernel.trim_start_matches('/')).is_file());
        assert!(example.lines().any(|l| l == "XENSTORETYPE=domain"));
        assert!(example.lines().any(|l| l == "XENSTORE_DOMAIN_SIZE=8"));
        assert!(example.contains("XENSTORE_MAX_DOMAIN_SIZE="));
    }
    // Installing again replaces the files and adds nothing.
    let again = xtask(&[
        "--destdir",
        dest.to_str().unwrap(),
        "--xen",
        "4.20",
        "--image",
        image.to_str().unwrap(),
    ]);
    assert!(again.status.success());
    assert_eq!(tree(&dest).len(), 5);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn refuses_what_is_not_a_pvh_image() {
    let work = temp("refuse");
    let junk = work.join("junk");
    std::fs::write(&junk, b"\x7fELF but not really").unwrap();
    let dest = work.join("root");
    let out = xtask(&[
        "--destdir",
        dest.to_str().unwrap(),
        "--xen",
        "4.20",
        "--image",
        junk.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a bootable PVH image"));
    assert!(!dest.exists(), "nothing is written for a refused image");
    let _ = std::fs::remove_dir_all(&work);
}
