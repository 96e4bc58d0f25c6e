//! The running system: mounts, memory, filesystems, processes, network, programs.

pub mod blockdev;
pub mod chattr;
pub mod fstab;
pub mod mount;
pub mod mountinfo;
pub mod net;
pub mod ns;
pub mod passwd;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// `/proc/meminfo` in bytes: `MemTotal`, `MemAvailable`, `SwapTotal`, …
pub fn meminfo(path: &Path) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(path).at(path)?;
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(n)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let scale = if parts.next() == Some("kB") { 1024 } else { 1 };
        map.insert(key.trim().to_string(), n.saturating_mul(scale));
    }
    if !map.contains_key("MemTotal") {
        return Err(Error::invalid(format!(
            "{}: no MemTotal line",
            path.display()
        )));
    }
    Ok(map)
}

/// Size and use of the filesystem holding `path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    pub free: u64,
    /// Free for an unprivileged user (what `df` calls available).
    pub avail: u64,
}

impl Space {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }
}

pub fn space(path: &Path) -> Result<Space> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| Error::path(e.into(), path))?;
    Ok(space_of(&s))
}

/// [`space`] of the filesystem holding an open file.
pub fn space_fd(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Space> {
    let s = nix::sys::statvfs::fstatvfs(fd).map_err(std::io::Error::from)?;
    Ok(space_of(&s))
}

#[allow(clippy::useless_conversion)] // the field types differ between libc targets
fn space_of(s: &nix::sys::statvfs::Statvfs) -> Space {
    let frag = u64::from(s.fragment_size()).max(1);
    Space {
        total: u64::from(s.blocks()).saturating_mul(frag),
        free: u64::from(s.blocks_free()).saturating_mul(frag),
        avail: u64::from(s.blocks_available()).saturating_mul(frag),
    }
}

/// A failed write to `path`: a full filesystem is named, with its size, free space and the
/// fix; other errors name the path. `shown` is the name to use in the message, `then` what
/// became of the partial file.
pub fn write_error(e: std::io::Error, path: &Path, shown: &Path, then: &str) -> Error {
    if !matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
        return Error::path(e, shown);
    }
    use crate::units::human;
    let abs = path
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.join(path.file_name().unwrap_or_default()))
        .unwrap_or_else(|| path.to_path_buf());
    let mounts = mountinfo::read(Path::new("/proc/self/mountinfo")).unwrap_or_default();
    let mount = mountinfo::containing(&mounts, &abs);
    let fs = match mount {
        Some(m) => format!("{} ({} {})", m.mount_point.display(), m.fstype, m.source),
        None => "the target filesystem".to_string(),
    };
    let sizes = match space(abs.parent().unwrap_or(&abs)) {
        Ok(s) => format!(", {} in all, {} free", human(s.total), human(s.avail)),
        Err(_) => String::new(),
    };
    let live = mount.is_some_and(|m| {
        m.mount_point.starts_with("/run/archiso")
            || m.source == "airootfs"
            || m.source == "cowspace"
    }) || Path::new("/run/archiso/cowspace").is_dir();
    let hint = if live {
        "the live system's cowspace is full: make it bigger with `rtool cowspace 4G`, then run this again"
    } else {
        "free space on that filesystem, or write somewhere else"
    };
    Error::system(format!(
        "no space left on {fs}{sizes} while writing {}{then}",
        shown.display()
    ))
    .with_source(e)
    .hint(hint)
}

/// Replaces `path` with `data` atomically: a temporary file beside it is written, synced,
/// given `mode`, and renamed over it, so a reader sees the old content or the new, never a
/// part. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.rtool-{}", std::process::id()));
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            // The creation mode went through the umask; the file must have exactly `mode`.
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_error(e, &tmp, path, "; nothing was replaced"));
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Whether this process runs as root (numeric owners, mounts and modules need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Process ids whose command name (`/proc/PID/comm`) is `name`, below `proc_dir`.
pub fn processes_named(proc_dir: &Path, name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(proc_dir.join(pid.to_string()).join("comm"))
                .is_ok_and(|c| c.trim_end() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The first executable called `name` in `$PATH` (or the directories given).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    which_in(name, &path)
}

pub fn which_in(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The kernel release of the running system: `<host>/proc/sys/kernel/osrelease`, else uname.
pub fn kernel_release(host: &Path) -> Result<String> {
    let p = crate::ctx::below(host, Path::new("/proc/sys/kernel/osrelease"));
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ if host == Path::new("/") => Ok(nix::sys::utsname::uname()
            .map_err(|e| Error::system("uname failed").with_source(std::io::Error::from(e)))?
            .release()
            .to_string_lossy()
            .into_owned()),
        Err(e) => Err(Error::path(e, &p)),
        Ok(_) => Err(Error::invalid(format!("{}: empty", p.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_in_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("meminfo");
        std::fs::write(
            &p,
            "MemTotal:        2048 kB\nMemAvailable:    1024 kB\nHugePages_Total:       0\n",
        )
        .unwrap();
        let m = meminfo(&p).unwrap();
        assert_eq!(m["MemTotal"], 2 << 20);
        assert_eq!(m["MemAvailable"], 1 << 20);
        assert_eq!(m["HugePages_Total"], 0);
        std::fs::write(&p, "garbage\n").unwrap();
        assert!(meminfo(&p).is_err());
    }

    #[test]
    fn which_finds_only_executables() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = d.path().as_os_str();
        assert_eq!(which_in("tool", path), None);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which_in("tool", path), Some(exe));
    }
}
