//! Which QEMU runs the lab: this machine's (`qemu-system-x86_64` on the PATH) or Debian 13's,
//! fetched with a private apt configuration into `.lab/qemu-trixie/` and run with its own
//! loader and libraries, touching nothing on the machine (`XSLAB_QEMU=system|trixie`; by
//! default Debian 13's for Xen 4.20 and this machine's for Xen 4.17).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::assets::{lab_dir, merged_usr_links};
use super::debian::{self, output, Apt};
use super::Xen;

/// The package whose dependency closure is fetched.
const PACKAGE: &str = "qemu-system-x86";

/// Bumped when the way the tree is built changes.
const RECIPE: &str = "qemu-1";

/// Where the lab's QEMU comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `qemu-system-x86_64` as installed on this machine.
    System,
    /// Debian 13's package, unpacked under `.lab/qemu-trixie/`.
    Trixie,
}

impl Source {
    /// `XSLAB_QEMU`, or `None` when it is not set.
    pub fn from_env() -> Result<Option<Source>, String> {
        match std::env::var("XSLAB_QEMU").ok().as_deref() {
            None | Some("") => Ok(None),
            Some("trixie") => Ok(Some(Source::Trixie)),
            Some("system") => Ok(Some(Source::System)),
            Some(other) => Err(format!("XSLAB_QEMU={other}: expected `system` or `trixie`")),
        }
    }
}

/// The QEMU `XSLAB_QEMU` names; when it names none, the version's own: Debian 13's for Xen
/// 4.20 (this machine's QEMU 7.2 froze its boots; falls back to that one with a warning if
/// Debian 13's cannot be fetched), this machine's for Xen 4.17 (under QEMU 10, Xen 4.17's PVH
/// guests stop within a second of `xl create`, before printing anything).
pub fn choose(xen: Xen) -> Result<Qemu, String> {
    match Source::from_env()? {
        Some(source) => prepare(source),
        None if xen == Xen::V417 => prepare(Source::System),
        None => prepare(Source::Trixie).or_else(|e| {
            eprintln!(
                "xtask: lab: WARNING: Debian 13's QEMU is not available ({e}); using this \
                 machine's, whose TCG may freeze the emulated machine (see the README)"
            );
            prepare(Source::System)
        }),
    }
}

/// A runnable QEMU: the program and the arguments that come before the lab's own.
#[derive(Clone, Debug)]
pub struct Qemu {
    program: PathBuf,
    leading: Vec<OsString>,
    /// The first line of `--version`.
    pub version: String,
}

impl Qemu {
    /// A command that runs this QEMU; the caller adds the machine's arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.leading);
        c
    }
}

/// The QEMU `source` names, fetched and unpacked once for `Trixie`.
pub fn prepare(source: Source) -> Result<Qemu, String> {
    let mut q = match source {
        Source::System => Qemu {
            program: PathBuf::from("qemu-system-x86_64"),
            leading: Vec::new(),
            version: String::new(),
        },
        Source::Trixie => trixie()?,
    };
    let text = output(q.command().arg("--version"))?;
    q.version = text.lines().next().unwrap_or_default().to_string();
    Ok(q)
}

fn trixie() -> Result<Qemu, String> {
    let dir = lab_dir().join("qemu-trixie");
    let root = dir.join("root");
    let done = dir.join("done");
    let key = format!("{RECIPE} {PACKAGE}");
    let fetched = std::fs::read_to_string(&done)
        .is_ok_and(|s| s.lines().next() == Some(key.as_str()))
        && root.join("usr/bin/qemu-system-x86_64").is_file();
    if !fetched {
        eprintln!(
            "xtask: lab: fetching Debian 13 (trixie) {PACKAGE} and its libraries into {}",
            dir.display()
        );
        let apt = Apt::private(&dir.join("apt"), "trixie")?;
        let packages = apt.closure(&[PACKAGE])?;
        let debs = apt.download(&packages, &dir.join("debs"))?;
        let tmp = dir.join("root.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        debian::unpack(&debs, &tmp)?;
        merged_usr_links(&tmp)?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&tmp, &root).map_err(|e| format!("{}: {e}", root.display()))?;
        let _ = std::fs::remove_dir_all(dir.join("debs"));
        std::fs::write(&done, format!("{key}\n{}\n", packages.join("\n")))
            .map_err(|e| format!("{}: {e}", done.display()))?;
    }
    run_in(&root)
}

/// QEMU of the unpacked tree at `root`, started by the tree's own loader with the tree's
/// libraries and firmware.
fn run_in(root: &Path) -> Result<Qemu, String> {
    let usr = root.join("usr");
    let loader = usr.join("lib64/ld-linux-x86-64.so.2");
    let binary = usr.join("bin/qemu-system-x86_64");
    for p in [&loader, &binary] {
        if !p.is_file() {
            return Err(format!(
                "{} is missing: delete {} and run again",
                p.display(),
                root.display()
            ));
        }
    }
    let libs = format!(
        "{}:{}",
        usr.join("lib/x86_64-linux-gnu").display(),
        usr.join("lib").display()
    );
    let leading = vec![
        OsString::from("--library-path"),
        OsString::from(libs),
        binary.into_os_string(),
        OsString::from("-L"),
        usr.join("share/qemu").into_os_string(),
        OsString::from("-L"),
        usr.join("share/seabios").into_os_string(),
    ];
    Ok(Qemu {
        program: loader,
        leading,
        version: String::new(),
    })
}
