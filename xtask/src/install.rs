//! `cargo xtask install [--destdir D] [--xen X.Y]... [--image PATH]`: the stub-domain image
//! where Debian's Xen packages keep boot images (`/usr/lib/xen-X.Y/boot/`, the directory of
//! `launch-xenstore`'s default `XENSTORE_DOMAIN_KERNEL` and of `hotplugpath.sh`'s
//! `XENFIRMWAREDIR`), and a commented `/etc/default/xencommons` example per version beside the
//! documentation. A host's own `/etc/default/xencommons` is never written.

use std::path::{Path, PathBuf};

const USAGE: &str = "usage: cargo xtask install [--destdir D] [--xen X.Y]... [--image PATH]

  --destdir D   install under D instead of / (packaging, tests)
  --xen X.Y     the Xen version(s) to install for (repeatable); default: every
                /usr/lib/xen-X.Y/bin/init-xenstore-domain on this machine
  --image PATH  the image to install (default: build it with `cargo xtask build`)

installs:
  D/usr/lib/xen-X.Y/boot/xsstub                       the image (PVH ELF)
  D/usr/share/doc/xsstub/xencommons-X.Y.example       lines for /etc/default/xencommons
";

/// The installed image's file name in `/usr/lib/xen-X.Y/boot/`.
pub const IMAGE_NAME: &str = "xsstub";

/// Where a version's boot images live, e.g. `usr/lib/xen-4.20/boot` (relative to the root).
pub fn boot_dir(version: &str) -> String {
    format!("usr/lib/xen-{version}/boot")
}

/// Where a version's example xencommons goes (relative to the root).
pub fn example_path(version: &str) -> String {
    format!("usr/share/doc/xsstub/xencommons-{version}.example")
}

/// The example `/etc/default/xencommons` lines for `version`.
pub fn xencommons_example(version: &str) -> String {
    let kernel = format!("/{}/{IMAGE_NAME}", boot_dir(version));
    format!(
        "# /etc/default/xencommons lines that make Xen {version}'s packaged start script start
# xsstub as the xenstore domain. An example installed by `cargo xtask install`: copy what you
# need into /etc/default/xencommons (Debian ships no such file and never writes one).
#
# /etc/xen/scripts/launch-xenstore (package xen-utils-common) reads this file and, with
# XENSTORETYPE=domain, runs
#   /usr/lib/xen-{version}/bin/init-xenstore-domain --kernel $XENSTORE_DOMAIN_KERNEL \\
#       --memory $XENSTORE_DOMAIN_SIZE [--maxmem $XENSTORE_MAX_DOMAIN_SIZE]
# which builds the domain and writes /var/run/xen/xenstored.pid (domid:N); a second run does
# nothing while that file exists. Start xen-init-dom0 and xenconsoled after it, as upstream's
# xencommons does. Debian's own xen.service (/etc/init.d/xen) starts a xenstored in dom0 and
# has no stub-domain mode: use this sequence instead of it.
# Leave XENSTORED_TRACE unset: from 4.20 the script then passes -T, which init-xenstore-domain
# rejects. xsstub logs to Xen's console (xl dmesg) and to its PV console (xl console).

XENSTORETYPE=domain

# The image: a PVH ELF (init-xenstore-domain also takes it gzipped).
XENSTORE_DOMAIN_KERNEL={kernel}

# The domain's memory in MiB: the store, the connections and, during a live update, the new
# image staged before the switch (xenstore-control live-update). 8 serves a few hundred
# guests; `xenstore-control memreport` shows the heap.
XENSTORE_DOMAIN_SIZE=8

# The most memory the domain may be given (init-xenstore-domain --maxmem): MiB, a fraction
# of the host's memory (a/b), or both (MiB:a/b, the larger wins). Unset: the size above.
#XENSTORE_MAX_DOMAIN_SIZE=64
"
    )
}

/// Installs `image` for every version in `versions` under `destdir`; returns the files
/// written (absolute).
pub fn install(image: &Path, destdir: &Path, versions: &[String]) -> Result<Vec<PathBuf>, String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    if let Err(e) = xsstate::pvh::parse(&bytes) {
        return Err(format!(
            "{}: not a bootable PVH image ({e}); build it with `cargo xtask build`",
            image.display()
        ));
    }
    let mut written = Vec::new();
    for v in versions {
        if v.is_empty() || !v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!("--xen {v}: a version such as 4.20"));
        }
        for (rel, data) in [
            (format!("{}/{IMAGE_NAME}", boot_dir(v)), bytes.clone()),
            (example_path(v), xencommons_example(v).into_bytes()),
        ] {
            let path = destdir.join(&rel);
            write_file(&path, &data)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes `data` to `path` (mode 0644, parents created), through a temporary file.
fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| format!("{}: no parent", path.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".xsstub-install-{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Xen versions whose tools this machine has (`/usr/lib/xen-X.Y/bin/init-xenstore-domain`).
fn installed_versions() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("xen-")?.to_string();
            e.path()
                .join("bin/init-xenstore-domain")
                .is_file()
                .then_some(v)
        })
        .collect();
    found.sort();
    found
}

/// `cargo xtask install ...`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut destdir = PathBuf::from("/");
    let mut versions: Vec<String> = Vec::new();
    let mut image: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| crate::util::flag_value(&mut it, flag, USAGE);
        match a.as_str() {
            "--destdir" => destdir = PathBuf::from(value("--destdir")?),
            "--xen" => versions.push(value("--xen")?),
            "--image" => image = Some(PathBuf::from(value("--image")?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    if versions.is_empty() {
        versions = installed_versions();
    }
    if versions.is_empty() {
        return Err(format!(
            "no /usr/lib/xen-X.Y/bin/init-xenstore-domain here: name the version with --xen\n\n{USAGE}"
        ));
    }
    let image = match image {
        Some(p) => p,
        None => crate::util::build()?,
    };
    for path in install(&image, &destdir, &versions)? {
        println!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_sets_what_launch_xenstore_reads() {
        let text = xencommons_example("4.20");
        let settings: Vec<(&str, &str)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split_once('=').expect("KEY=VALUE"))
            .collect();
        assert_eq!(
            settings,
            [
                ("XENSTORETYPE", "domain"),
                ("XENSTORE_DOMAIN_KERNEL", "/usr/lib/xen-4.20/boot/xsstub"),
                ("XENSTORE_DOMAIN_SIZE", "8"),
            ]
        );
        assert!(text.lines().any(|l| l == "#XENSTORE_MAX_DOMAIN_SIZE=64"));
        assert!(
            !text.contains("XENSTORED_TRACE="),
            "never set the trace variable"
        );
    }
}
