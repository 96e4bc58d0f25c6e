//! `/proc/self/mountinfo`: what is mounted where, as the kernel sees it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent: u32,
    /// `major:minor`
    pub dev: String,
    /// The directory of the filesystem that is mounted (`/` unless a bind of a subdirectory).
    pub fs_root: PathBuf,
    pub mount_point: PathBuf,
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

/// Reads and parses a mountinfo file (normally `<host>/proc/self/mountinfo`).
pub fn read(path: &Path) -> Result<Vec<Mount>> {
    let text = std::fs::read(path).at(path)?;
    parse(&text).map_err(|e| e.context(path.display().to_string()))
}

pub fn parse(text: &[u8]) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = || Error::invalid(format!("line {}: not a mountinfo line", i + 1));
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        let sep = fields.iter().position(|f| *f == b"-").ok_or_else(bad)?;
        if sep < 6 || fields.len() < sep + 3 {
            return Err(bad());
        }
        let num = |f: &[u8]| -> Result<u32> {
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)
        };
        let text = |f: &[u8]| String::from_utf8_lossy(&unescape(f)).into_owned();
        mounts.push(Mount {
            id: num(fields[0])?,
            parent: num(fields[1])?,
            dev: text(fields[2]),
            fs_root: PathBuf::from(OsString::from_vec(unescape(fields[3]))),
            mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
            options: text(fields[5]),
            fstype: text(fields[sep + 1]),
            source: text(fields[sep + 2]),
            super_options: fields.get(sep + 3).map(|f| text(f)).unwrap_or_default(),
        });
    }
    Ok(mounts)
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\134` for a backslash).
pub fn unescape(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        if f[i] == b'\\'
            && i + 3 < f.len()
            && f[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (f[i + 1] - b'0') as u32 * 64
                + (f[i + 2] - b'0') as u32 * 8
                + (f[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(f[i]);
        i += 1;
    }
    out
}

/// The mount that is visible at exactly `dir` (the last one mounted there), if any.
pub fn at<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == dir)
}

/// The mount holding `path` (an absolute, canonical path): the longest mount point above it.
pub fn containing<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
}

/// Kernel and pseudo filesystems, which say nothing about the system's own disks.
pub fn is_pseudo(fstype: &str) -> bool {
    matches!(
        fstype,
        "proc"
            | "sysfs"
            | "devtmpfs"
            | "devpts"
            | "cgroup"
            | "cgroup2"
            | "securityfs"
            | "debugfs"
            | "tracefs"
            | "pstore"
            | "bpf"
            | "mqueue"
            | "hugetlbfs"
            | "configfs"
            | "fusectl"
            | "efivarfs"
            | "binfmt_misc"
            | "autofs"
            | "rpc_pipefs"
            | "nsfs"
            | "ramfs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] =
        b"22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 29 0:35 / /run/archiso/cow\\040space rw,relatime shared:20 - tmpfs cowspace rw,size=262144k
41 29 8:1 /sub /mnt/boot rw master:3 - vfat /dev/sda1 rw,fmask=0022
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse(SAMPLE).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].mount_point, Path::new("/run/archiso/cow space"));
        assert_eq!(m[2].fstype, "tmpfs");
        assert_eq!(m[2].super_options, "rw,size=262144k");
        assert_eq!(m[3].fs_root, Path::new("/sub"));
        assert_eq!(m[3].source, "/dev/sda1");
        assert_eq!(at(&m, Path::new("/mnt/boot")).map(|m| m.id), Some(41));
        assert!(at(&m, Path::new("/mnt")).is_none());
    }

    #[test]
    fn rejects_garbage_with_line_number() {
        let e = parse(b"22 1 0:21 / /proc rw - proc proc rw\nnonsense here\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: not a mountinfo line");
    }
}
