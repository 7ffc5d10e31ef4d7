//! What the lab boots, built once and cached under `.lab/`: Xen, the Linux kernel package and
//! the dom0 and guest initramfs images.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Cpio;
use crate::util::root;

/// Bumped whenever the recipe changes in a way the inputs' metadata does not show.
const RECIPE: &str = "xslab-4";

/// Where Debian's Xen tools live.
pub const XEN_BIN: &str = "/usr/lib/xen-4.17/bin";

/// The Xen tools dom0 gets, from [`XEN_BIN`].
const XEN_TOOLS: [&str; 9] = [
    "xl",
    "xenstored",
    "init-xenstore-domain",
    "xen-init-dom0",
    "xenconsoled",
    "xenstore-control",
    "test-xenstore",
    "xenconsole",
    "xenctx",
];

/// The names the multi-call `xenstore` client (xenstore-utils) answers to.
const XENSTORE_NAMES: [&str; 8] = [
    "xenstore-read",
    "xenstore-write",
    "xenstore-ls",
    "xenstore-list",
    "xenstore-rm",
    "xenstore-exists",
    "xenstore-chmod",
    "xenstore-watch",
];

/// Kernel modules dom0 loads, in this order after their dependencies.
const DOM0_MODULES: [&str; 5] = [
    "xen-privcmd",
    "xenfs",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
];

/// The cache directory, `.lab/` in the workspace root.
pub fn lab_dir() -> PathBuf {
    root().join(".lab")
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn short_hash(h: &impl Hash) -> String {
    let mut s = DefaultHasher::new();
    h.hash(&mut s);
    format!("{:016x}", s.finish())
}

/// Size and modification time of a file, for cache keys.
fn stamp(path: &Path) -> Result<(u64, i64, i64), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((m.len(), m.mtime(), m.mtime_nsec()))
}

/// Removes `<prefix>*<suffix>` files in `dir` other than `keep`.
fn remove_stale(dir: &Path, prefix: &str, suffix: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with(prefix) && name.ends_with(suffix) && path != keep {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Xen as a multiboot ELF that `qemu-system-x86_64 -kernel` loads.
pub fn xen_elf() -> Result<PathBuf, String> {
    let gz = Path::new("/boot/xen-4.17-amd64.gz");
    let dir = lab_dir();
    mkdir(&dir)?;
    let elf = dir.join(format!("xen-{}.elf", short_hash(&(RECIPE, stamp(gz)?))));
    if elf.exists() {
        return Ok(elf);
    }
    let tmp = dir.join(format!("xen.elf.tmp{}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let status = Command::new("zcat")
        .arg(gz)
        .stdout(file)
        .status()
        .map_err(|e| format!("zcat: {e}"))?;
    if !status.success() {
        return Err(format!("zcat {} failed with {status}", gz.display()));
    }
    std::fs::rename(&tmp, &elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    remove_stale(&dir, "xen-", ".elf", &elf);
    Ok(elf)
}

/// The Debian kernel, as the plain ELF inside its vmlinuz (both a PV dom0 and a PVH guest
/// kernel), and the modules dom0 loads, in load order.
pub struct Kernel {
    /// The same kernel as a plain ELF.
    pub vmlinux: PathBuf,
    /// Module files, dependencies first.
    pub modules: Vec<PathBuf>,
}

/// The package `linux-image-amd64` depends on, e.g. `linux-image-6.1.0-56-amd64`.
fn kernel_package() -> Result<String, String> {
    let find = || -> Option<String> {
        let out = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"])).ok()?;
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends:"))
            .map(str::trim)
            .find(|p| p.starts_with("linux-image-"))
            .map(str::to_string)
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    // A fresh machine may have no package lists yet.
    crate::util::run(Command::new("apt-get").args(["update", "-qq"]))?;
    find().ok_or_else(|| "apt-cache depends linux-image-amd64 names no linux-image-*".into())
}

/// Fetches (`apt-get download`) and unpacks (`dpkg -x`) the kernel package once, keeping
/// only the kernel (as vmlinux) and the modules the lab loads.
pub fn kernel() -> Result<Kernel, String> {
    let package = match kernel_package() {
        Ok(p) => p,
        Err(e) => {
            // Offline but cached: use what is there.
            let cached = std::fs::read_dir(lab_dir())
                .ok()
                .and_then(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .find(|n| n.starts_with("kernel-linux-image-"))
                })
                .ok_or(e)?;
            return load_kernel(&lab_dir().join(cached));
        }
    };
    let dir = lab_dir().join(format!(
        "kernel-{package}-{}",
        short_hash(&(RECIPE, DOM0_MODULES))
    ));
    if dir.join("done").exists() {
        return load_kernel(&dir);
    }
    let tmp = lab_dir().join(format!("tmp-kernel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    mkdir(&tmp)?;
    let result = unpack_kernel(&package, &tmp, &dir);
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    remove_stale(&lab_dir(), "kernel-", "", &dir);
    load_kernel(&dir)
}

fn unpack_kernel(package: &str, tmp: &Path, dir: &Path) -> Result<(), String> {
    eprintln!("xtask: lab: fetching {package}");
    let download = || {
        output(
            Command::new("apt-get")
                .args(["download", "-qq", package])
                .current_dir(tmp),
        )
    };
    download().or_else(|_| {
        crate::util::run(Command::new("apt-get").args(["update", "-qq"]))?;
        download()
    })?;
    let deb = std::fs::read_dir(tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {package} left no .deb"))?;
    let tree = tmp.join("tree");
    crate::util::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree))?;
    let vmlinuz = find_file(&tree.join("boot"), &|n| n.starts_with("vmlinuz-"))
        .ok_or_else(|| format!("{package}: no boot/vmlinuz-*"))?;
    let modules_root = tree.join("lib/modules");
    let order = module_closure(&modules_root, &DOM0_MODULES)?;
    let staging = tmp.join("keep");
    mkdir(&staging.join("modules"))?;
    extract_vmlinux(&vmlinuz, &staging.join("vmlinux"))?;
    let mut list = String::new();
    for m in &order {
        let name = m.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        copy(m, &staging.join("modules").join(&name))?;
        list.push_str(&name);
        list.push('\n');
    }
    write(&staging.join("modules.order"), list.as_bytes())?;
    write(&staging.join("done"), package.as_bytes())?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The ELF kernel inside a bzImage (its xz payload, decompressed on the host): a guest loads
/// it without decompressing 8 MB of xz under emulation, which takes seconds on TCG.
fn extract_vmlinux(bzimage: &Path, to: &Path) -> Result<(), String> {
    let shown = bzimage.display();
    let b = std::fs::read(bzimage).map_err(|e| format!("{shown}: {e}"))?;
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .and_then(|x| <[u8; 4]>::try_from(x).ok())
            .map(|x| u32::from_le_bytes(x) as usize)
    };
    let setup_sects = match b.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(format!("{shown}: not a bzImage")),
    };
    let (Some(offset), Some(len)) = (u32_at(0x248), u32_at(0x24c)) else {
        return Err(format!("{shown}: not a bzImage"));
    };
    let start = (setup_sects + 1) * 512 + offset;
    let payload = b
        .get(start..start + len)
        .ok_or_else(|| format!("{shown}: payload out of range"))?;
    if !payload.starts_with(b"\xfd7zXZ\0") {
        return Err(format!("{shown}: the payload is not xz"));
    }
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("xz: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("xz: no stdin")?;
    let data = payload.to_vec();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data)
    });
    let out = child.wait_with_output().map_err(|e| format!("xz: {e}"))?;
    let fed = feeder
        .join()
        .map_err(|_| "xz: feeder panicked".to_string())?;
    if !out.status.success() || !out.stdout.starts_with(b"\x7fELF") {
        return Err(format!(
            "xz -d of {shown} failed with {} ({fed:?})",
            out.status
        ));
    }
    write(to, &out.stdout)
}

fn load_kernel(dir: &Path) -> Result<Kernel, String> {
    let list = std::fs::read_to_string(dir.join("modules.order"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Kernel {
        vmlinux: dir.join("vmlinux"),
        modules: list
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| dir.join("modules").join(l))
            .collect(),
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
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

/// A module's name as the kernel spells it (`-` and `_` are the same).
fn module_key(name: &str) -> String {
    name.trim_end_matches(".ko").replace('-', "_")
}

/// The `depends=` entry of a module's `.modinfo`.
fn module_depends(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let needle = b"\0depends=";
    let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
        return Ok(Vec::new());
    };
    let rest = bytes.get(at + needle.len()..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let list = String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned();
    Ok(list
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// The wanted modules with their dependencies, dependencies first.
fn module_closure(modules_root: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, String> {
    fn visit(
        root: &Path,
        name: &str,
        order: &mut Vec<PathBuf>,
        seen: &mut Vec<String>,
    ) -> Result<(), String> {
        let key = module_key(name);
        if seen.contains(&key) {
            return Ok(());
        }
        seen.push(key.clone());
        let path = find_file(root, &|n| n.ends_with(".ko") && module_key(n) == key)
            .ok_or_else(|| format!("kernel module {name} not found"))?;
        for dep in module_depends(&path)? {
            visit(root, &dep, order, seen)?;
        }
        order.push(path);
        Ok(())
    }
    let mut order = Vec::new();
    let mut seen = Vec::new();
    for name in wanted {
        visit(modules_root, name, &mut order, &mut seen)?;
    }
    Ok(order)
}

/// One entry of an initramfs image.
pub enum Item {
    /// A directory.
    Dir(String),
    /// A host file copied in; `Some(perm)` overrides its permission bits.
    Copy(String, PathBuf, Option<u32>),
    /// A file with the given permission bits and contents.
    Data(String, u32, Vec<u8>),
    /// A symbolic link to the given target.
    Link(String, String),
}

/// Writes `items` as a newc archive.
pub fn write_cpio(items: &[Item], path: &Path, first_ino: u32) -> Result<(), String> {
    let mut cpio = Cpio::create(path, first_ino)?;
    for item in items {
        match item {
            Item::Dir(d) => cpio.dir(d)?,
            Item::Copy(dest, src, None) => cpio.copy(dest, src)?,
            Item::Copy(dest, src, Some(perm)) => {
                let data = std::fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
                cpio.file(dest, *perm, &data)?
            }
            Item::Data(dest, perm, data) => cpio.file(dest, *perm, data)?,
            Item::Link(dest, target) => cpio.symlink(dest, target)?,
        }
    }
    cpio.finish()
}

/// Returns `.lab/<name>-<key>.cpio`, writing it first unless an image of the same inputs is
/// there; the key covers every item and the size and time stamp of every copied file.
fn cached_cpio(name: &str, items: &[Item], first_ino: u32) -> Result<PathBuf, String> {
    let mut h = DefaultHasher::new();
    RECIPE.hash(&mut h);
    for item in items {
        match item {
            Item::Dir(d) => (0, d).hash(&mut h),
            Item::Copy(dest, src, perm) => (1, dest, src, perm, stamp(src)?).hash(&mut h),
            Item::Data(dest, perm, data) => (2, dest, perm, data).hash(&mut h),
            Item::Link(dest, target) => (3, dest, target).hash(&mut h),
        }
    }
    let dir = lab_dir();
    mkdir(&dir)?;
    let path = dir.join(format!("{name}-{:016x}.cpio", h.finish()));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("xtask: lab: writing {}", path.display());
    let tmp = dir.join(format!("{name}.cpio.tmp{}", std::process::id()));
    write_cpio(items, &tmp, first_ino)?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    remove_stale(&dir, &format!("{name}-"), ".cpio", &path);
    Ok(path)
}

/// The shared libraries `ldd` names for `binary`, with the dynamic loader.
fn libraries(binary: &Path) -> Result<Vec<String>, String> {
    let out = output(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libs.push(path.to_string());
        } else if line.contains("not found") {
            return Err(format!("{}: {line}", binary.display()));
        }
    }
    Ok(libs)
}

/// Busybox-static as `/bin/busybox` with every applet linked to it, minus `skip`.
fn busybox_items(items: &mut Vec<Item>, skip: &[&str]) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    items.push(Item::Copy(
        "bin/busybox".into(),
        busybox.into(),
        Some(0o755),
    ));
    let list = output(Command::new(busybox).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = applet.rsplit('/').next().unwrap_or(applet);
        if applet != "bin/busybox" && !skip.contains(&name) {
            items.push(Item::Link(applet.into(), "/bin/busybox".into()));
        }
    }
    Ok(())
}

/// Each library of `binaries` once, at the path `ldd` names, as a copy of the file.
fn library_items(items: &mut Vec<Item>, binaries: &[PathBuf]) -> Result<(), String> {
    let mut libs: Vec<String> = Vec::new();
    for b in binaries {
        for lib in libraries(b)? {
            if !libs.contains(&lib) {
                libs.push(lib);
            }
        }
    }
    libs.sort();
    for lib in libs {
        let real = std::fs::canonicalize(&lib).map_err(|e| format!("{lib}: {e}"))?;
        items.push(Item::Copy(lib, real, None));
    }
    Ok(())
}

/// The dom0 initramfs without the per-run part: busybox, the Xen tools and the clients
/// with their libraries, the kernel modules and the guest kernel.
pub fn dom0_base(kernel: &Kernel) -> Result<PathBuf, String> {
    let mut items = Vec::new();
    for d in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "run/xen",
        "run/xenstored",
        "run/lock",
        "var/lib/xen",
        "var/log/xen/console",
        "etc/xen",
    ] {
        items.push(Item::Dir(d.into()));
    }
    items.push(Item::Link("var/run".into(), "../run".into()));
    items.push(Item::Link("var/lock".into(), "../run/lock".into()));
    items.push(Item::Data("etc/xen/xl.conf".into(), 0o644, Vec::new()));
    items.push(Item::Data(
        "etc/passwd".into(),
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
    ));
    busybox_items(&mut items, &[])?;
    let mut binaries = Vec::new();
    for tool in XEN_TOOLS {
        let src = Path::new(XEN_BIN).join(tool);
        items.push(Item::Copy(format!("{XEN_BIN}/{tool}"), src.clone(), None));
        binaries.push(src);
    }
    items.push(Item::Link("usr/sbin/xl".into(), format!("{XEN_BIN}/xl")));
    items.push(Item::Link(
        "usr/bin/xenstore-control".into(),
        format!("{XEN_BIN}/xenstore-control"),
    ));
    let client = PathBuf::from("/usr/bin/xenstore");
    items.push(Item::Copy("usr/bin/xenstore".into(), client.clone(), None));
    for name in XENSTORE_NAMES {
        items.push(Item::Link(format!("usr/bin/{name}"), "xenstore".into()));
    }
    binaries.push(client);
    library_items(&mut items, &binaries)?;
    let libgcc = gcc_s()?;
    items.push(Item::Copy(
        "lib/x86_64-linux-gnu/libgcc_s.so.1".into(),
        libgcc,
        None,
    ));
    let mut order = String::new();
    for m in &kernel.modules {
        let name = m.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        items.push(Item::Copy(format!("lib/modules/{name}"), m.clone(), None));
        order.push_str(&format!("/lib/modules/{name}\n"));
    }
    items.push(Item::Data(
        "etc/xslab-modules".into(),
        0o644,
        order.into_bytes(),
    ));
    items.push(Item::Copy(
        "boot/vmlinux".into(),
        kernel.vmlinux.clone(),
        Some(0o644),
    ));
    cached_cpio("dom0-base", &items, 1)
}

fn gcc_s() -> Result<PathBuf, String> {
    [
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .ok_or_else(|| "libgcc_s.so.1 not found (package libgcc-s1)".into())
}

/// The guest's initramfs: busybox, the xenstore clients and `qemu-tests/guest/init.sh`.
pub fn guest_initrd() -> Result<PathBuf, String> {
    let mut items = Vec::new();
    for d in ["proc", "sys", "dev", "tmp", "proc/xen"] {
        items.push(Item::Dir(d.into()));
    }
    busybox_items(&mut items, &[])?;
    let client = PathBuf::from("/usr/bin/xenstore");
    items.push(Item::Copy("usr/bin/xenstore".into(), client.clone(), None));
    for name in XENSTORE_NAMES {
        items.push(Item::Link(format!("usr/bin/{name}"), "xenstore".into()));
    }
    // The probe client, for the load mode (built by `cargo xtask build` before the lab).
    let probe = root().join("target/release/xsprobe");
    let mut binaries = vec![client];
    if probe.is_file() {
        items.push(Item::Copy(
            "usr/bin/xsprobe".into(),
            probe.clone(),
            Some(0o755),
        ));
        binaries.push(probe);
    }
    library_items(&mut items, &binaries)?;
    items.push(Item::Copy(
        "init".into(),
        root().join("qemu-tests/guest/init.sh"),
        Some(0o755),
    ));
    cached_cpio("guest", &items, 1)
}

/// Checks that `/bin/busybox` is the static build (busybox-static): an ELF without a
/// `PT_INTERP` program header, which runs without a loader in both initramfs images.
pub fn check_busybox_static() -> Result<(), String> {
    let bytes = std::fs::read("/bin/busybox").map_err(|e| format!("/bin/busybox: {e}"))?;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| u64::from_le_bytes(b) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err("/bin/busybox is not a 64-bit ELF".into());
    };
    let interp = (0..phnum).any(|i| {
        bytes.get(phoff + i * phentsize..phoff + i * phentsize + 4) == Some(&3u32.to_le_bytes())
    });
    if interp || bytes.get(..4) != Some(b"\x7fELF") {
        return Err("/bin/busybox is not a static ELF: install busybox-static".into());
    }
    Ok(())
}
