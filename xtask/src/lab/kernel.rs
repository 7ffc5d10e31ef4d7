//! The Linux kernel the lab boots, per Xen version: the Debian package fetched and unpacked
//! once, the plain ELF taken out of its bzImage, and the modules dom0 and the guest load
//! with their dependencies, decompressed.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::assets::{lab_dir, mkdir, remove_stale, short_hash, write, Tree, RECIPE};
use super::debian;

/// Kernel modules dom0 loads, in this order after their dependencies.
const DOM0_MODULES: [&str; 8] = [
    "xen-privcmd",
    "xenfs",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    // The backends of the devices scenario's vif and disk (a loop device).
    "xen-netback",
    "xen-blkback",
    "loop",
];

/// Kernel modules the lab guest loads: the network and disk frontends (the devices
/// scenario).
const GUEST_MODULES: [&str; 2] = ["xen-netfront", "xen-blkfront"];

/// The Debian kernel, as the plain ELF inside its vmlinuz (both a PV dom0 and a PVH guest
/// kernel), and the modules dom0 and the guest load, in load order.
pub struct Kernel {
    /// The same kernel as a plain ELF.
    pub vmlinux: PathBuf,
    /// Module files (uncompressed `.ko`), dependencies first.
    pub modules: Vec<PathBuf>,
    /// The guest's module files, the same way.
    pub guest_modules: Vec<PathBuf>,
}

/// Fetches (`apt-get download`) and unpacks (`dpkg -x`) the version's kernel package once,
/// keeping only the kernel (as vmlinux) and the modules the lab loads (decompressed).
pub fn kernel(tree: &Tree) -> Result<Kernel, String> {
    let prefix = format!("kernel-{}-", tree.xen.name());
    let package = match tree.apt.kernel_package() {
        Ok(p) => p,
        Err(e) => {
            // Offline but cached: use what is there.
            let cached = std::fs::read_dir(lab_dir())
                .ok()
                .and_then(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .find(|n| n.starts_with(&prefix))
                })
                .ok_or(e)?;
            return load_kernel(&lab_dir().join(cached));
        }
    };
    let dir = lab_dir().join(format!(
        "{prefix}{package}-{}",
        short_hash(&(RECIPE, DOM0_MODULES, GUEST_MODULES))
    ));
    if dir.join("done").exists() {
        return load_kernel(&dir);
    }
    let tmp = lab_dir().join(format!(
        "tmp-kernel-{}-{}",
        tree.xen.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    mkdir(&tmp)?;
    let result = unpack_kernel(tree, &package, &tmp, &dir);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    remove_stale(&lab_dir(), &prefix, "", &dir);
    load_kernel(&dir)
}

fn unpack_kernel(tree: &Tree, package: &str, tmp: &Path, dir: &Path) -> Result<(), String> {
    eprintln!("xtask: lab: fetching {package} (Xen {})", tree.xen.name());
    let debs = tree
        .apt
        .download(&[package.to_string()], &tmp.join("debs"))?;
    let unpacked = tmp.join("tree");
    debian::unpack(&debs, &unpacked)?;
    let vmlinuz = find_file(&unpacked.join("boot"), &|n| n.starts_with("vmlinuz-"))
        .ok_or_else(|| format!("{package}: no boot/vmlinuz-*"))?;
    // Merged /usr (trixie) puts the modules under usr/lib/modules.
    let modules_root = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| unpacked.join(d))
        .find(|d| d.is_dir())
        .ok_or_else(|| format!("{package}: no lib/modules"))?;
    let staging = tmp.join("keep");
    mkdir(&staging.join("modules"))?;
    extract_vmlinux(&vmlinuz, &staging.join("vmlinux"))?;
    for (wanted, order_file) in [
        (&DOM0_MODULES[..], "modules.order"),
        (&GUEST_MODULES[..], "guest-modules.order"),
    ] {
        let mut list = String::new();
        for (name, path) in &module_closure(&modules_root, wanted)? {
            let file = format!("{name}.ko");
            write(&staging.join("modules").join(&file), &module_bytes(path)?)?;
            list.push_str(&file);
            list.push('\n');
        }
        write(&staging.join(order_file), list.as_bytes())?;
    }
    write(&staging.join("done"), package.as_bytes())?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs `prog args` with `input` on stdin; its stdout.
fn filter(prog: &str, args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or(format!("{prog}: no stdin"))?;
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data)
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{prog}: {e}"))?;
    let fed = feeder
        .join()
        .map_err(|_| format!("{prog}: feeder panicked"))?;
    if !out.status.success() {
        return Err(format!(
            "{prog} {} failed with {} ({fed:?}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// How a bzImage's payload (or a module) is compressed, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `fd 37 7a 58 5a 00`.
    Xz,
    /// `28 b5 2f fd`.
    Zstd,
    /// `1f 8b`.
    Gzip,
}

/// The compression of `data`, if one the lab decodes.
pub fn compression(data: &[u8]) -> Option<Compression> {
    if data.starts_with(b"\xfd7zXZ\0") {
        Some(Compression::Xz)
    } else if data.starts_with(b"\x28\xb5\x2f\xfd") {
        Some(Compression::Zstd)
    } else if data.starts_with(b"\x1f\x8b") {
        Some(Compression::Gzip)
    } else {
        None
    }
}

/// The ELF kernel inside a bzImage (its xz or zstd payload, decompressed on the host): a guest
/// loads it without decompressing megabytes under emulation, which takes seconds on TCG.
fn extract_vmlinux(bzimage: &Path, to: &Path) -> Result<(), String> {
    let shown = bzimage.display();
    let b = std::fs::read(bzimage).map_err(|e| format!("{shown}: {e}"))?;
    let payload = bzimage_payload(&b).ok_or_else(|| format!("{shown}: not a bzImage"))?;
    let elf = match compression(payload) {
        Some(Compression::Xz) => filter("xz", &["-dc", "--single-stream"], payload)?,
        // The build appends the uncompressed size (4 bytes, little endian) after the zstd
        // frame, which `zstd -d` rejects as trailing garbage.
        Some(Compression::Zstd) => {
            let frame = payload
                .get(..payload.len().saturating_sub(4))
                .unwrap_or_default();
            filter("zstd", &["-dcq"], frame)?
        }
        Some(Compression::Gzip) => filter("gzip", &["-dc"], payload)?,
        None => return Err(format!("{shown}: the payload is not xz, zstd or gzip")),
    };
    if !elf.starts_with(b"\x7fELF") {
        return Err(format!("{shown}: the decompressed payload is not an ELF"));
    }
    write(to, &elf)
}

/// The compressed kernel inside a bzImage (boot protocol 2.08+: `payload_offset` and
/// `payload_length` in the setup header).
pub fn bzimage_payload(b: &[u8]) -> Option<&[u8]> {
    let u32_at = |o: usize| xsstate::le::u32_at(b, o).map(|x| x as usize);
    if b.get(0x202..0x206) != Some(b"HdrS") {
        return None;
    }
    let setup_sects = match b.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return None,
    };
    let start = (setup_sects + 1)
        .checked_mul(512)?
        .checked_add(u32_at(0x248)?)?;
    b.get(start..start.checked_add(u32_at(0x24c)?)?)
}

fn load_kernel(dir: &Path) -> Result<Kernel, String> {
    let list = |order: &str| {
        let text = std::fs::read_to_string(dir.join(order))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok::<_, String>(
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|l| dir.join("modules").join(l))
                .collect(),
        )
    };
    Ok(Kernel {
        vmlinux: dir.join("vmlinux"),
        modules: list("modules.order")?,
        // A cache from before the guest had modules (used offline): none.
        guest_modules: list("guest-modules.order").unwrap_or_default(),
    })
}

/// The first file under `dir` (recursively) whose name passes `pred`.
fn find_file(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in &entries {
        let path = e.path();
        if path.is_file() && pred(&e.file_name().to_string_lossy()) {
            return Some(path);
        }
    }
    entries
        .iter()
        .filter(|e| e.path().is_dir())
        .find_map(|e| find_file(&e.path(), pred))
}

/// A module file's name as the kernel spells it (`-` and `_` are the same), without `.ko`
/// and its compression suffix; `None` for other files.
fn module_key(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|s| file.strip_suffix(s))?;
    Some(stem.replace('-', "_"))
}

/// A module's contents, decompressed (`.ko.xz` with xz, `.ko.zst` with zstd, `.ko.gz`):
/// busybox's insmod passes the file to the kernel as it is.
fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match compression(&bytes) {
        Some(Compression::Xz) => filter("xz", &["-dc"], &bytes),
        Some(Compression::Zstd) => filter("zstd", &["-dcq"], &bytes),
        Some(Compression::Gzip) => filter("gzip", &["-dc"], &bytes),
        None => Ok(bytes),
    }
}

/// The `depends=` entry of a module's `.modinfo`.
fn module_depends(bytes: &[u8]) -> Vec<String> {
    let needle = b"\0depends=";
    let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
        return Vec::new();
    };
    let rest = bytes.get(at + needle.len()..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let list = String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned();
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the kernel's `modules.builtin` (under `root/<release>/`) lists the module `key`.
fn builtin(root: &Path, key: &str) -> bool {
    let Some(list) = find_file(root, &|n| n == "modules.builtin") else {
        return false;
    };
    std::fs::read_to_string(list).is_ok_and(|text| {
        text.lines().any(|l| {
            l.rsplit('/')
                .next()
                .and_then(module_key)
                .is_some_and(|k| k == key)
        })
    })
}

/// The wanted modules with their dependencies, dependencies first (built-in ones left
/// out): `(name, file)`.
fn module_closure(modules_root: &Path, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    fn visit(
        root: &Path,
        name: &str,
        order: &mut Vec<(String, PathBuf)>,
        seen: &mut Vec<String>,
    ) -> Result<(), String> {
        let key = name.replace('-', "_");
        if seen.contains(&key) {
            return Ok(());
        }
        seen.push(key.clone());
        let Some(path) = find_file(root, &|n| module_key(n).as_deref() == Some(key.as_str()))
        else {
            // Built into this kernel: nothing to load.
            if builtin(root, &key) {
                return Ok(());
            }
            return Err(format!("kernel module {name} not found"));
        };
        for dep in module_depends(&module_bytes(&path)?) {
            visit(root, &dep, order, seen)?;
        }
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let file = file.unwrap_or_default();
        let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
            .iter()
            .find_map(|s| file.strip_suffix(s))
            .unwrap_or(&file)
            .to_string();
        order.push((stem, path));
        Ok(())
    }
    let mut order = Vec::new();
    let mut seen = Vec::new();
    for name in wanted {
        visit(modules_root, name, &mut order, &mut seen)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_modules_are_found_in_modules_builtin() {
        let root = std::env::temp_dir().join(format!("xslab-builtin-{}", std::process::id()));
        let release = root.join("6.1.0-test");
        std::fs::create_dir_all(&release).expect("temp dir");
        std::fs::write(
            release.join("modules.builtin"),
            "kernel/drivers/block/loop.ko\nkernel/drivers/xen/xen-evtchn.ko\n",
        )
        .expect("modules.builtin");
        assert!(builtin(&root, "loop"));
        assert!(builtin(&root, "xen_evtchn"));
        assert!(!builtin(&root, "xen_blkback"));
        assert!(module_closure(&root, &["loop"]).is_ok_and(|m| m.is_empty()));
        assert!(module_closure(&root, &["xen-netback"]).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn payloads_and_modules_are_recognised() {
        assert_eq!(compression(b"\xfd7zXZ\0rest"), Some(Compression::Xz));
        assert_eq!(
            compression(b"\x28\xb5\x2f\xfdrest"),
            Some(Compression::Zstd)
        );
        assert_eq!(compression(b"\x1f\x8brest"), Some(Compression::Gzip));
        assert_eq!(compression(b"\x7fELF"), None);
        assert_eq!(
            module_key("xen-privcmd.ko.xz").as_deref(),
            Some("xen_privcmd")
        );
        assert_eq!(module_key("xenfs.ko").as_deref(), Some("xenfs"));
        assert_eq!(module_key("modules.dep"), None);
        let mut b = vec![0u8; 2048];
        b[0x1f1] = 1;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&4u32.to_le_bytes());
        b[1024 + 16..1024 + 20].copy_from_slice(b"\x28\xb5\x2f\xfd");
        assert_eq!(bzimage_payload(&b), Some(&b"\x28\xb5\x2f\xfd"[..]));
        b[0x24c..0x250].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(bzimage_payload(&b), None);
        assert_eq!(
            module_depends(b"x\0depends=xen-privcmd,foo\0y"),
            ["xen-privcmd", "foo"]
        );
    }
}
