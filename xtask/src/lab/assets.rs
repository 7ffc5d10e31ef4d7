//! What the lab boots, per Xen version, built once and cached under `.lab/`: Xen, the Linux
//! kernel package and the dom0 and guest initramfs images. Xen 4.17 comes from this
//! (bookworm) machine's packages; Xen 4.20 and Linux 6.12 from Debian 13 packages fetched with
//! a private apt configuration and unpacked under `.lab/xen-4.20/root`, with trixie's own
//! loader and libc shipped inside the initramfs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Cpio;
use super::debian::{self, output, Apt};
use super::kernel::{kernel, Kernel};
use super::Xen;
use crate::util::root;

/// Bumped whenever the recipe changes in a way the inputs' metadata does not show.
pub(super) const RECIPE: &str = "xslab-5";

/// The Xen tools every dom0 gets, from the version's `/usr/lib/xen-X.Y/bin`.
const XEN_TOOLS: [&str; 10] = [
    "xl",
    // xl save / restore (the lifecycle scenario).
    "libxl-save-helper",
    "xenstored",
    "init-xenstore-domain",
    "xen-init-dom0",
    "xenconsoled",
    "xenstore-control",
    "test-xenstore",
    "xenconsole",
    "xenctx",
];

/// Tools only some versions have: `xen-9pfsd` (4.19+), which 4.20's `init-xenstore-domain`
/// starts through libxl for the xenstore domain's 9pfs device.
const XEN_TOOLS_420: [&str; 1] = ["xen-9pfsd"];

/// The packaged scripts `launch-xenstore` needs (from the version's `xen-utils-common`).
const XEN_SCRIPTS: [&str; 2] = ["launch-xenstore", "hotplugpath.sh"];

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

/// Debian 13 packages of the Xen 4.20 tree: the hypervisor, the tools, the clients, the
/// packaged scripts and every library the tools need (the NEEDED closure is checked when the
/// initramfs is built). The kernel package is resolved at fetch time.
const TRIXIE_PACKAGES: [&str; 21] = [
    "xen-hypervisor-4.20-amd64",
    "xen-utils-4.20",
    "xen-utils-common",
    "xenstore-utils",
    "libxencall1",
    "libxendevicemodel1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenmisc4.20",
    "libxenstore4",
    "libxentoollog1",
    "libxentoolcore1",
    "libxenhypfs1",
    "libyajl2",
    "libc6",
    "libgcc-s1",
    "liblzma5",
    "libuuid1",
    "libzstd1",
    "zlib1g",
];

/// Directories of a tree searched for a soname, in the loader's order.
const LIB_DIRS: [&str; 6] = [
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
];

/// Where the initramfs puts every library (a directory both releases' loaders search).
const INITRD_LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

/// The cache directory, `.lab/` in the workspace root.
pub fn lab_dir() -> PathBuf {
    root().join(".lab")
}

pub(super) fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

pub(super) fn short_hash(h: &impl Hash) -> String {
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

/// Removes `<prefix>*<suffix>` entries in `dir` other than `keep`.
pub(super) fn remove_stale(dir: &Path, prefix: &str, suffix: &str, keep: &Path) {
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

/// Removes cache entries of the layout before versions were part of the names
/// (`xen-<hash>.elf`, `kernel-linux-image-*`, `dom0-base-<hash>.cpio`, `guest-<hash>.cpio`).
fn remove_unversioned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let hashed = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        if hashed("xen-", ".elf")
            || hashed("dom0-base-", ".cpio")
            || hashed("guest-", ".cpio")
            || name.starts_with("kernel-linux-image-")
        {
            let path = e.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// A Debian root the lab takes one Xen version's files from.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The version.
    pub xen: Xen,
    /// `/` (this machine's packages) or an unpacked package set.
    pub root: PathBuf,
    /// The apt that fetches this version's kernel package.
    pub apt: Apt,
}

impl Tree {
    /// `path` (absolute, as the version's packages name it) inside the tree, with every
    /// symbolic link resolved inside the tree.
    pub fn file(&self, path: &str) -> Result<PathBuf, String> {
        resolve_in_tree(&self.root, path)
    }

    /// The version's tool directory, `/usr/lib/xen-X.Y/bin`.
    pub fn xen_bin(&self) -> String {
        self.xen.bin()
    }
}

/// The tree of `xen`: this machine for 4.17, the fetched Debian 13 packages for 4.20.
pub fn tree(xen: Xen) -> Result<Tree, String> {
    remove_unversioned(&lab_dir());
    match xen {
        Xen::V417 => Ok(Tree {
            xen,
            root: PathBuf::from("/"),
            apt: Apt::system(),
        }),
        Xen::V420 => trixie_tree(),
    }
}

/// Fetches and unpacks the Debian 13 package set once (`.lab/xen-4.20/`), with a private apt
/// configuration; later runs use the unpacked tree without the network. Delete the directory
/// to refresh it.
fn trixie_tree() -> Result<Tree, String> {
    let dir = lab_dir().join("xen-4.20");
    let apt = Apt::private(&dir.join("apt"), "trixie")?;
    let tree = Tree {
        xen: Xen::V420,
        root: dir.join("root"),
        apt: apt.clone(),
    };
    let key = format!("{RECIPE} {}", TRIXIE_PACKAGES.join(" "));
    let done = dir.join("done");
    if std::fs::read_to_string(&done).is_ok_and(|s| s.lines().next() == Some(key.as_str())) {
        merged_usr_links(&tree.root)?;
        return Ok(tree);
    }
    eprintln!(
        "xtask: lab: fetching Debian 13 (trixie) packages for Xen 4.20 into {}",
        dir.display()
    );
    apt.update()?;
    let packages: Vec<String> = TRIXIE_PACKAGES.iter().map(|s| s.to_string()).collect();
    let debs = apt.download(&packages, &dir.join("debs"))?;
    let tmp = dir.join("root.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    debian::unpack(&debs, &tmp)?;
    let mut list = String::new();
    for deb in &debs {
        list.push_str(&debian::deb_identity(deb)?);
        list.push('\n');
    }
    merged_usr_links(&tmp)?;
    let _ = std::fs::remove_dir_all(&tree.root);
    std::fs::rename(&tmp, &tree.root).map_err(|e| format!("{}: {e}", tree.root.display()))?;
    write(&dir.join("packages.txt"), list.as_bytes())?;
    write(&done, format!("{key}\n{list}").as_bytes())?;
    eprint!("xtask: lab: unpacked:\n{list}");
    Ok(tree)
}

/// The links a merged-/usr Debian root has at its top (trixie's `base-files` makes them; the
/// lab does not unpack it): `lib -> usr/lib`, `lib64 -> usr/lib64`, `bin`, `sbin`. The tools'
/// loader is `/lib64/ld-linux-x86-64.so.2`.
pub(super) fn merged_usr_links(root: &Path) -> Result<(), String> {
    for name in ["lib", "lib64", "bin", "sbin"] {
        let link = root.join(name);
        if std::fs::symlink_metadata(&link).is_err() && root.join("usr").join(name).is_dir() {
            std::os::unix::fs::symlink(format!("usr/{name}"), &link)
                .map_err(|e| format!("{}: {e}", link.display()))?;
        }
    }
    Ok(())
}

/// `path` (absolute, as seen from inside the tree) resolved under `root`, following symbolic
/// links inside the tree: an absolute link target starts again at `root`, never at this
/// machine's `/`.
pub fn resolve_in_tree(root: &Path, path: &str) -> Result<PathBuf, String> {
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&cur);
        candidate.push(&c);
        let meta = std::fs::symlink_metadata(&candidate)
            .map_err(|e| format!("{path} in {}: {e}", root.display()))?;
        if !meta.file_type().is_symlink() {
            cur.push(c);
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(format!("{path} in {}: too many links", root.display()));
        }
        let target =
            std::fs::read_link(&candidate).map_err(|e| format!("{}: {e}", candidate.display()))?;
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            cur.clear();
        }
        todo.extend(target.split('/').rev().map(str::to_string));
    }
    let mut out = root.to_path_buf();
    out.extend(&cur);
    Ok(out)
}

/// The file providing `soname` in the tree's library directories.
fn find_library(tree: &Tree, soname: &str) -> Option<PathBuf> {
    LIB_DIRS.iter().find_map(|d| {
        tree.file(&format!("/{d}/{soname}"))
            .ok()
            .filter(|p| p.is_file())
    })
}

/// Initramfs items for the loader and every library `binaries` (files of the tree) need,
/// resolved inside the tree only (a library missing from it is an error, never taken from
/// this machine), plus `extra` sonames loaded at run time (glibc dlopens `libgcc_s.so.1`).
fn library_items(
    items: &mut Vec<Item>,
    tree: &Tree,
    binaries: &[PathBuf],
    extra: &[&str],
) -> Result<(), String> {
    let mut queue: Vec<(String, PathBuf)> = binaries
        .iter()
        .map(|b| (b.display().to_string(), b.clone()))
        .collect();
    let mut sonames: Vec<String> = Vec::new();
    let mut interps: Vec<String> = Vec::new();
    let mut wanted: Vec<(String, String)> = extra
        .iter()
        .map(|s| ("(loaded at run time)".to_string(), s.to_string()))
        .collect();
    loop {
        while let Some((who, file)) = queue.pop() {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let needs = super::elf::needs(&bytes).map_err(|e| format!("{who}: {e}"))?;
            if let Some(interp) = needs.interp {
                if !interps.contains(&interp) {
                    let real = tree
                        .file(&interp)
                        .map_err(|e| format!("{who}: loader {interp}: {e}"))?;
                    items.push(Item::Copy(
                        interp.trim_start_matches('/').into(),
                        real,
                        None,
                    ));
                    interps.push(interp);
                }
            }
            wanted.extend(needs.needed.into_iter().map(|n| (who.clone(), n)));
        }
        let Some((who, soname)) = wanted.pop() else {
            break;
        };
        if sonames.contains(&soname) {
            continue;
        }
        let real = find_library(tree, &soname).ok_or_else(|| {
            format!(
                "{who} needs {soname}, which is not in {} (Xen {})",
                tree.root.display(),
                tree.xen.name()
            )
        })?;
        items.push(Item::Copy(
            format!("{INITRD_LIB_DIR}/{soname}"),
            real.clone(),
            None,
        ));
        sonames.push(soname.clone());
        queue.push((soname, real));
    }
    if interps.is_empty() {
        return Err("no binary names a loader (PT_INTERP)".into());
    }
    Ok(())
}

/// Xen as a multiboot ELF that `qemu-system-x86_64 -kernel` loads.
pub fn xen_elf(tree: &Tree) -> Result<PathBuf, String> {
    let v = tree.xen.name();
    let gz = tree.file(&format!("/boot/xen-{v}-amd64.gz"))?;
    let dir = lab_dir();
    mkdir(&dir)?;
    let elf = dir.join(format!(
        "xen-{v}-{}.elf",
        short_hash(&(RECIPE, stamp(&gz)?))
    ));
    if elf.exists() {
        return Ok(elf);
    }
    let tmp = dir.join(format!("xen-{v}.elf.tmp{}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let status = Command::new("zcat")
        .arg(&gz)
        .stdout(file)
        .status()
        .map_err(|e| format!("zcat: {e}"))?;
    if !status.success() {
        return Err(format!("zcat {} failed with {status}", gz.display()));
    }
    std::fs::rename(&tmp, &elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    remove_stale(&dir, &format!("xen-{v}-"), ".elf", &elf);
    Ok(elf)
}

/// Writes `data` to `path`.
pub(super) fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
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

/// Busybox-static (this machine's: static, so independent of the version's libc) as
/// `/bin/busybox` with every applet linked to it, and `/bin/bash` as a shim to busybox's sh:
/// the packaged `launch-xenstore` is a `#!/bin/bash` script.
fn busybox_items(items: &mut Vec<Item>) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    items.push(Item::Copy(
        "bin/busybox".into(),
        busybox.into(),
        Some(0o755),
    ));
    let list = output(Command::new(busybox).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if applet != "bin/busybox" {
            items.push(Item::Link(applet.into(), "/bin/busybox".into()));
        }
    }
    if !list.lines().any(|l| l.trim().ends_with("/bash")) {
        items.push(Item::Data(
            "bin/bash".into(),
            0o755,
            b"#!/bin/sh\n# The lab's bash: busybox sh (launch-xenstore needs no more).\nexec /bin/sh \"$@\"\n"
                .to_vec(),
        ));
    }
    Ok(())
}

/// The version's `xenstore` client with its names; returns the client's file in the tree.
fn client_items(items: &mut Vec<Item>, tree: &Tree) -> Result<PathBuf, String> {
    let client = tree.file("/usr/bin/xenstore")?;
    items.push(Item::Copy("usr/bin/xenstore".into(), client.clone(), None));
    for name in XENSTORE_NAMES {
        items.push(Item::Link(format!("usr/bin/{name}"), "xenstore".into()));
    }
    Ok(client)
}

/// The dom0 initramfs without the per-run part: busybox, the version's Xen tools, clients
/// and packaged start scripts with their libraries (and loader), the kernel modules and the
/// guest kernel.
pub fn dom0_base(tree: &Tree, kernel: &Kernel) -> Result<PathBuf, String> {
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
        "var/lib/xen/xenstore",
        "var/log/xen/console",
        "etc/xen",
        "etc/default",
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
    busybox_items(&mut items)?;
    let bin = tree.xen_bin();
    let mut binaries = Vec::new();
    let extra: &[&str] = match tree.xen {
        Xen::V417 => &[],
        Xen::V420 => &XEN_TOOLS_420,
    };
    for tool in XEN_TOOLS.iter().chain(extra) {
        let src = tree.file(&format!("{bin}/{tool}"))?;
        items.push(Item::Copy(format!("{bin}/{tool}"), src.clone(), None));
        binaries.push(src);
    }
    items.push(Item::Link("usr/sbin/xl".into(), format!("{bin}/xl")));
    items.push(Item::Link(
        "usr/bin/xenstore-control".into(),
        format!("{bin}/xenstore-control"),
    ));
    for script in XEN_SCRIPTS {
        let path = format!("/etc/xen/scripts/{script}");
        items.push(Item::Copy(
            path.trim_start_matches('/').into(),
            tree.file(&path)?,
            None,
        ));
    }
    binaries.push(client_items(&mut items, tree)?);
    library_items(&mut items, tree, &binaries, &["libgcc_s.so.1"])?;
    module_items(&mut items, &kernel.modules);
    items.push(Item::Copy(
        "boot/vmlinux".into(),
        kernel.vmlinux.clone(),
        Some(0o644),
    ));
    cached_cpio(&format!("dom0-base-{}", tree.xen.name()), &items, 1)
}

/// `modules` under `/lib/modules`, and their paths in load order in `/etc/xslab-modules`
/// (the init scripts load them).
fn module_items(items: &mut Vec<Item>, modules: &[PathBuf]) {
    let mut order = String::new();
    for m in modules {
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
}

/// The guest's initramfs: busybox, the version's xenstore clients, the guest's kernel
/// modules (listed in load order in `/etc/xslab-modules`) and `qemu-tests/guest/init.sh`.
pub fn guest_initrd(tree: &Tree, kernel: &Kernel) -> Result<PathBuf, String> {
    let mut items = Vec::new();
    for d in ["proc", "sys", "dev", "tmp", "proc/xen"] {
        items.push(Item::Dir(d.into()));
    }
    busybox_items(&mut items)?;
    let client = client_items(&mut items, tree)?;
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
    library_items(&mut items, tree, &binaries, &[])?;
    module_items(&mut items, &kernel.guest_modules);
    items.push(Item::Copy(
        "init".into(),
        root().join("qemu-tests/guest/init.sh"),
        Some(0o755),
    ));
    cached_cpio(&format!("guest-{}", tree.xen.name()), &items, 1)
}

/// Everything one version's boots share.
pub struct Assets {
    /// The version.
    pub xen: Xen,
    /// The hypervisor as a multiboot ELF.
    pub xen_elf: PathBuf,
    /// The dom0 (and guest) kernel.
    pub kernel: Kernel,
    /// The dom0 initramfs without the per-run overlay.
    pub dom0_base: PathBuf,
    /// The guest's initramfs.
    pub guest: PathBuf,
    /// The QEMU that boots it.
    pub qemu: super::qemu::Qemu,
}

/// Fetches, unpacks and builds (or reuses) what boots of `xen` need.
pub fn prepare(xen: Xen) -> Result<Assets, String> {
    let tree = tree(xen)?;
    let xen_elf = xen_elf(&tree)?;
    let kernel = kernel(&tree)?;
    let dom0_base = dom0_base(&tree, &kernel)?;
    let guest = guest_initrd(&tree, &kernel)?;
    let qemu = super::qemu::choose(xen)?;
    Ok(Assets {
        xen,
        xen_elf,
        kernel,
        dom0_base,
        guest,
        qemu,
    })
}

/// Checks that `/bin/busybox` is the static build (busybox-static): an ELF without a
/// `PT_INTERP` program header, which runs without a loader in both initramfs images.
pub fn check_busybox_static() -> Result<(), String> {
    let bytes = std::fs::read("/bin/busybox").map_err(|e| format!("/bin/busybox: {e}"))?;
    let needs = super::elf::needs(&bytes).map_err(|e| format!("/bin/busybox: {e}"))?;
    if needs.interp.is_some() || !needs.needed.is_empty() {
        return Err("/bin/busybox is not a static ELF: install busybox-static".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_tree(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xslab-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn links_resolve_inside_the_tree_never_on_this_machine() {
        use std::os::unix::fs::symlink;
        let root = temp_tree("resolve");
        let libdir = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&libdir).unwrap();
        std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
        std::fs::write(libdir.join("ld-linux-x86-64.so.2"), b"loader").unwrap();
        std::fs::write(libdir.join("libc.so.6"), b"libc").unwrap();
        // A merged-/usr tree: relative links, and an absolute one that would name this
        // machine's file if followed on the host.
        symlink(
            "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            root.join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        symlink("usr/lib64", root.join("lib64")).unwrap();
        symlink(
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            libdir.join("libc-abs.so"),
        )
        .unwrap();
        let loader = resolve_in_tree(&root, "/lib64/ld-linux-x86-64.so.2").unwrap();
        assert_eq!(loader, libdir.join("ld-linux-x86-64.so.2"));
        assert_eq!(std::fs::read(&loader).unwrap(), b"loader");
        let libc = resolve_in_tree(&root, "/usr/lib/x86_64-linux-gnu/libc-abs.so").unwrap();
        assert_eq!(libc, libdir.join("libc.so.6"));
        assert!(resolve_in_tree(&root, "/lib/x86_64-linux-gnu/libc.so.6").is_err());
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_tree(&root, "/loop").is_err());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn libraries_come_from_the_tree_and_a_missing_one_is_an_error() {
        let root = temp_tree("closure");
        let libdir = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&libdir).unwrap();
        std::fs::create_dir_all(root.join("lib64")).unwrap();
        let elf = super::super::elf::tests::synthetic;
        std::fs::write(root.join("lib64/ld.so"), elf(None, &[])).unwrap();
        std::fs::write(libdir.join("libc.so.6"), elf(None, &[])).unwrap();
        std::fs::write(libdir.join("libxs.so.4"), elf(None, &["libc.so.6"])).unwrap();
        std::fs::write(
            root.join("tool"),
            elf(Some("/lib64/ld.so"), &["libxs.so.4"]),
        )
        .unwrap();
        let tree = Tree {
            xen: Xen::V420,
            root: root.clone(),
            apt: Apt::system(),
        };
        let mut items = Vec::new();
        library_items(&mut items, &tree, &[root.join("tool")], &[]).unwrap();
        let mut got: Vec<(String, PathBuf)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Copy(d, s, _) => Some((d.clone(), s.clone())),
                _ => None,
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("lib64/ld.so".to_string(), root.join("lib64/ld.so")),
                (
                    "usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                    libdir.join("libc.so.6")
                ),
                (
                    "usr/lib/x86_64-linux-gnu/libxs.so.4".to_string(),
                    libdir.join("libxs.so.4")
                ),
            ]
        );
        // libgcc_s.so.1 exists on this machine but not in the tree: refused, not borrowed.
        let err = library_items(
            &mut Vec::new(),
            &tree,
            &[root.join("tool")],
            &["libgcc_s.so.1"],
        )
        .unwrap_err();
        assert!(err.contains("libgcc_s.so.1"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
