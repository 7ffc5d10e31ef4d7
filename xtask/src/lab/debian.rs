//! Debian packages for the lab: the machine's own apt (Xen 4.17 on bookworm), or a private apt
//! configuration under `.lab/` that fetches another suite's packages (Xen 4.20 and Linux 6.12
//! from trixie) without touching the machine's apt state: its own sources list, lists, cache
//! and an empty dpkg status; packages are unpacked with `dpkg -x` (no maintainer scripts).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The keyring that verifies Debian's archives (bookworm's already holds the trixie keys, and
/// trixie's `InRelease` files are signed by the bookworm keys too).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Where apt's state lives for one suite.
#[derive(Clone, Debug)]
pub struct Apt {
    /// `APT_CONFIG` of a private configuration; `None`: the machine's own apt.
    config: Option<PathBuf>,
}

/// The `apt.conf` of a private configuration rooted at `dir`: every path apt writes is under
/// `dir`; `/etc/apt/apt.conf.d` is still read (proxies keep working).
pub fn private_apt_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "APT::Architecture \"amd64\";
APT::Architectures {{ \"amd64\"; }};
Dir::State \"{d}\";
Dir::State::Lists \"{d}/lists\";
Dir::State::status \"{d}/status\";
Dir::Cache \"{d}/cache\";
Dir::Cache::archives \"{d}/cache/archives\";
Dir::Cache::pkgcache \"\";
Dir::Cache::srcpkgcache \"\";
Dir::Etc::SourceList \"{d}/sources.list\";
Dir::Etc::SourceParts \"{d}/sources.list.d\";
Dir::Etc::Preferences \"{d}/preferences\";
Dir::Etc::PreferencesParts \"{d}/prefs.d\";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled \"false\";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled \"false\";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled \"false\";
Acquire::Languages \"none\";
"
    )
}

/// The sources list of `suite` (with its `-updates` and `-security` suites).
pub fn sources_list(suite: &str, mirror: &str, security: &str) -> String {
    format!(
        "deb [signed-by={KEYRING}] {mirror} {suite} main
deb [signed-by={KEYRING}] {mirror} {suite}-updates main
deb [signed-by={KEYRING}] {security} {suite}-security main
"
    )
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs a command quietly; its stdout, or an error with its stderr.
pub fn output(cmd: &mut Command) -> Result<String, String> {
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

impl Apt {
    /// The machine's own apt.
    pub fn system() -> Apt {
        Apt { config: None }
    }

    /// A private configuration for `suite` in `dir` (created or refreshed; the lists stay).
    /// `XSLAB_DEBIAN_MIRROR` and `XSLAB_DEBIAN_SECURITY` override the archive addresses.
    pub fn private(dir: &Path, suite: &str) -> Result<Apt, String> {
        for d in [
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "prefs.d",
        ] {
            mkdir(&dir.join(d))?;
        }
        if !dir.join("status").exists() {
            write(&dir.join("status"), b"")?;
        }
        let mirror = std::env::var("XSLAB_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        let security = std::env::var("XSLAB_DEBIAN_SECURITY")
            .unwrap_or_else(|_| "http://deb.debian.org/debian-security".into());
        write(
            &dir.join("sources.list"),
            sources_list(suite, &mirror, &security).as_bytes(),
        )?;
        let conf = dir.join("apt.conf");
        write(&conf, private_apt_conf(dir).as_bytes())?;
        Ok(Apt { config: Some(conf) })
    }

    /// `prog` (apt-get, apt-cache) with this configuration.
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        if let Some(conf) = &self.config {
            c.env("APT_CONFIG", conf);
        }
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `packages` with everything they depend on (no recommends), as apt would install them
    /// on a machine that has nothing yet (the private status file is empty): the names only.
    pub fn closure(&self, packages: &[&str]) -> Result<Vec<String>, String> {
        let plan = || {
            output(
                self.cmd("apt-get")
                    .args(["install", "-s", "-qq", "--no-install-recommends"])
                    .args(packages),
            )
        };
        let text = plan().or_else(|_| {
            self.update()?;
            plan()
        })?;
        let names: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        if names.len() < packages.len() {
            return Err(format!(
                "apt plans {} packages for {packages:?}",
                names.len()
            ));
        }
        Ok(names)
    }

    /// `apt-get update`.
    pub fn update(&self) -> Result<(), String> {
        output(self.cmd("apt-get").args(["update", "-qq"])).map(drop)
    }

    /// The concrete kernel package `linux-image-amd64` depends on, e.g.
    /// `linux-image-6.12.118+deb13-amd64`; runs `apt-get update` once if the lists lack it.
    pub fn kernel_package(&self) -> Result<String, String> {
        let find = || -> Option<String> {
            let out = output(self.cmd("apt-cache").args(["depends", "linux-image-amd64"])).ok()?;
            out.lines()
                .filter_map(|l| l.trim().strip_prefix("Depends:"))
                .map(str::trim)
                .find(|p| p.starts_with("linux-image-"))
                .map(str::to_string)
        };
        if let Some(p) = find() {
            return Ok(p);
        }
        self.update()?;
        find().ok_or_else(|| "apt-cache depends linux-image-amd64 names no linux-image-*".into())
    }

    /// `apt-get download PACKAGES` into `dir` (emptied first); returns the `.deb` files. Lists
    /// gone stale (a superseded version, an expired `Valid-Until`) are refreshed once.
    pub fn download(&self, packages: &[String], dir: &Path) -> Result<Vec<PathBuf>, String> {
        let _ = std::fs::remove_dir_all(dir);
        mkdir(dir)?;
        // apt drops privileges to _apt for downloads; let it write here.
        let _ = Command::new("chown")
            .arg("_apt")
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status();
        let download = || {
            output(
                self.cmd("apt-get")
                    .args(["download", "-qq"])
                    .args(packages)
                    .current_dir(dir),
            )
        };
        download().or_else(|_| {
            self.update()?;
            download()
        })?;
        let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        if debs.len() < packages.len() {
            return Err(format!(
                "apt-get download of {} packages left {} .deb files in {}",
                packages.len(),
                debs.len(),
                dir.display()
            ));
        }
        Ok(debs)
    }
}

/// `Package Version` of a `.deb`.
pub fn deb_identity(deb: &Path) -> Result<String, String> {
    let out = output(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(deb)
            .args(["Package", "Version"]),
    )?;
    let mut fields = out
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, v)| v));
    let (Some(p), Some(v)) = (fields.next(), fields.next()) else {
        return Err(format!("dpkg-deb -f {}: no Package/Version", deb.display()));
    };
    Ok(format!("{p} {v}"))
}

/// `dpkg -x` of every `.deb` into `root`.
pub fn unpack(debs: &[PathBuf], root: &Path) -> Result<(), String> {
    mkdir(root)?;
    for deb in debs {
        output(Command::new("dpkg").arg("-x").arg(deb).arg(root))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_configuration_keeps_every_apt_path_in_its_directory() {
        let conf = private_apt_conf(Path::new("/x/apt"));
        for key in [
            "Dir::State ",
            "Dir::State::Lists ",
            "Dir::State::status ",
            "Dir::Cache ",
            "Dir::Cache::archives ",
            "Dir::Etc::SourceList ",
            "Dir::Etc::SourceParts ",
            "Dir::Etc::Preferences ",
            "Dir::Etc::PreferencesParts ",
        ] {
            let line = conf
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("{key} missing"));
            assert!(line.contains("\"/x/apt"), "{line}");
        }
        assert!(conf.contains("Dir::Cache::pkgcache \"\";"));
    }

    #[test]
    fn sources_name_the_suite_its_updates_and_security() {
        let s = sources_list("trixie", "http://m/debian", "http://m/debian-security");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("http://m/debian trixie main"));
        assert!(lines[1].ends_with("http://m/debian trixie-updates main"));
        assert!(lines[2].ends_with("http://m/debian-security trixie-security main"));
        assert!(lines.iter().all(|l| l.contains(KEYRING)));
    }
}
