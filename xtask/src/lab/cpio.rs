//! A writer for the `newc` cpio format that Linux unpacks as an initramfs.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// An archive being written; parents of every entry are created on the way.
pub struct Cpio {
    out: BufWriter<File>,
    shown: String,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    /// Starts an archive at `path`; inode numbers start at `first_ino` (keep them distinct
    /// between archives that are concatenated).
    pub fn create(path: &Path, first_ino: u32) -> Result<Cpio, String> {
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Cpio {
            out: BufWriter::new(file),
            shown: path.display().to_string(),
            next_ino: first_ino,
            dirs: BTreeSet::new(),
        })
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        let size = u32::try_from(data.len()).map_err(|_| format!("{name}: too large"))?;
        let namesize = u32::try_from(name.len() + 1).map_err(|_| format!("{name}: name"))?;
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
            0, 0, 1, 0, 0, 0, 0, 0, 0
        );
        let mut buf = Vec::with_capacity(header.len() + name.len() + 8);
        buf.extend_from_slice(header.as_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.push(0);
        while buf.len() % 4 != 0 {
            buf.push(0);
        }
        self.write(&buf)?;
        self.write(data)?;
        let pad = (4 - data.len() % 4) % 4;
        self.write(&[0u8; 3][..pad])
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.out
            .write_all(bytes)
            .map_err(|e| format!("{}: {e}", self.shown))
    }

    fn parents(&mut self, path: &str) -> Result<(), String> {
        let mut end = 0;
        while let Some(i) = path.get(end..).and_then(|rest| rest.find('/')) {
            let dir = path.get(..end + i).unwrap_or_default().to_string();
            end += i + 1;
            if !dir.is_empty() && self.dirs.insert(dir.clone()) {
                self.entry(&dir, 0o040_755, &[])?;
            }
        }
        Ok(())
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, path: &str) -> Result<(), String> {
        let path = path.trim_matches('/');
        self.parents(path)?;
        if self.dirs.insert(path.to_string()) {
            self.entry(path, 0o040_755, &[])?;
        }
        Ok(())
    }

    /// A regular file with the given contents and permission bits.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), String> {
        let path = path.trim_start_matches('/');
        self.parents(path)?;
        self.entry(path, 0o100_000 | (perm & 0o7777), data)
    }

    /// A regular file copied from the host (following symlinks), keeping its permission bits.
    pub fn copy(&mut self, path: &str, src: &Path) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let data = std::fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
        let perm = std::fs::metadata(src)
            .map_err(|e| format!("{}: {e}", src.display()))?
            .permissions()
            .mode();
        self.file(path, perm, &data)
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), String> {
        let path = path.trim_start_matches('/');
        self.parents(path)?;
        self.entry(path, 0o120_777, target.as_bytes())
    }

    /// Writes the trailer and flushes.
    pub fn finish(mut self) -> Result<(), String> {
        self.entry("TRAILER!!!", 0, &[])?;
        self.out.flush().map_err(|e| format!("{}: {e}", self.shown))
    }
}
