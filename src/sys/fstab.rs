//! `/etc/fstab`: which filesystems the installed system expects, and where.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::sys::mountinfo::unescape;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `UUID=…`, `LABEL=…`, `PARTUUID=…`, `PARTLABEL=…`, a device path, or a dataset/pseudo name.
    pub spec: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub options: String,
    pub line: usize,
}

impl Entry {
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.split(',').any(|o| o == opt)
    }
}

pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read(path).at(path)?;
    parse(&text).map_err(|e| e.context(path.display().to_string()))
}

pub fn parse(text: &[u8]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            return Err(Error::invalid(format!(
                "line {}: an fstab entry needs at least a device and a mount point",
                i + 1
            )));
        }
        let field = |s: &str| String::from_utf8_lossy(&unescape(s.as_bytes())).into_owned();
        out.push(Entry {
            spec: field(f[0]),
            mount_point: PathBuf::from(field(f[1])),
            fstype: f.get(2).map(|s| field(s)).unwrap_or_else(|| "auto".into()),
            options: f
                .get(3)
                .map(|s| field(s))
                .unwrap_or_else(|| "defaults".into()),
            line: i + 1,
        });
    }
    Ok(out)
}

/// The entries for the boot filesystems: `/boot`, `/efi`, `/boot/efi` (in that order).
pub fn boot_entries(entries: &[Entry]) -> Vec<&Entry> {
    ["/boot", "/efi", "/boot/efi"]
        .iter()
        .filter_map(|p| entries.iter().find(|e| e.mount_point == Path::new(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_finds_boot() {
        let t = b"# /etc/fstab\nzroot/ROOT/default / zfs rw,noatime 0 0\n\nUUID=AB12-CD34 /boot vfat rw,relatime,fmask=0022 0 2\nLABEL=my\\040disk /data ext4\n";
        let e = parse(t).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].spec, "UUID=AB12-CD34");
        assert_eq!(e[1].line, 4);
        assert!(e[1].has_option("relatime"));
        assert_eq!(e[2].spec, "LABEL=my disk");
        assert_eq!(e[2].options, "defaults");
        let b = boot_entries(&e);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].mount_point, Path::new("/boot"));
    }

    #[test]
    fn rejects_a_lone_field() {
        assert_eq!(
            parse(b"/dev/sda1\n").unwrap_err().to_string(),
            "line 1: an fstab entry needs at least a device and a mount point"
        );
    }
}
