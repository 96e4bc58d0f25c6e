//! Block devices without udev: the partitions the kernel lists, the UUIDs and labels of their
//! filesystems (read from the superblocks), GPT partition UUIDs and names, and fstab's
//! `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=` resolved to device paths.
//!
//! The `/dev/disk/by-*` links are used when udev made them; on a bare live system without udev
//! every device in `/proc/partitions` is probed instead.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::ctx::below;
use crate::error::{Error, IoContext, Result};

/// What a superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The kernel's name for the filesystem type (`ext4`, `vfat`, `xfs`, `btrfs`, `crypto_LUKS`).
    pub fstype: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// Bytes read from the start of a device: enough for every superblock recognised here.
const PROBE_LEN: usize = 0x10000 + 0x1000;

/// Reads the start of `dev` and recognises its filesystem.
pub fn probe(dev: &Path) -> Result<Option<Probe>> {
    let f = File::open(dev).at(dev)?;
    let buf = read_start(&f, PROBE_LEN).at(dev)?;
    Ok(probe_bytes(&buf))
}

fn read_start(f: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Recognises ext2/3/4, vfat (FAT12/16/32), xfs, btrfs and LUKS from a device's first bytes.
pub fn probe_bytes(b: &[u8]) -> Option<Probe> {
    let at = |off: usize, len: usize| b.get(off..off + len);
    // ext2/3/4: the superblock at 1024, magic 0xEF53 at 0x38.
    if at(1024 + 0x38, 2) == Some(&[0x53, 0xEF]) {
        let le32 =
            |off: usize| at(off, 4).map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        let compat = le32(1024 + 0x5C);
        let incompat = le32(1024 + 0x60);
        // extents, 64bit, flex_bg → ext4; a journal → ext3.
        let fstype = if incompat & (0x40 | 0x80 | 0x200) != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        return Some(Probe {
            fstype: fstype.into(),
            uuid: at(1024 + 0x68, 16).map(uuid_string),
            label: at(1024 + 0x78, 16).and_then(text),
        });
    }
    // LUKS1 and LUKS2: magic at 0, the UUID as text at 168.
    if at(0, 6) == Some(b"LUKS\xba\xbe") {
        return Some(Probe {
            fstype: "crypto_LUKS".into(),
            uuid: at(168, 40).and_then(text),
            label: None,
        });
    }
    if at(0, 4) == Some(b"XFSB") {
        return Some(Probe {
            fstype: "xfs".into(),
            uuid: at(32, 16).map(uuid_string),
            label: at(108, 12).and_then(text),
        });
    }
    if at(0x10040, 8) == Some(b"_BHRfS_M") {
        return Some(Probe {
            fstype: "btrfs".into(),
            uuid: at(0x10020, 16).map(uuid_string),
            label: at(0x1012B, 256).and_then(text),
        });
    }
    // FAT: the boot sector signature, and the type string of the FAT32 or FAT12/16 layout.
    if at(510, 2) == Some(&[0x55, 0xAA]) {
        let (id_off, label_off) = if at(0x52, 5) == Some(b"FAT32") {
            (0x43, 0x47)
        } else if at(0x36, 3) == Some(b"FAT") {
            (0x27, 0x2B)
        } else {
            return None;
        };
        let uuid = at(id_off, 4).map(|s| {
            let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            format!("{:04X}-{:04X}", v >> 16, v & 0xFFFF)
        });
        let label = at(label_off, 11).and_then(text).filter(|l| l != "NO NAME");
        return Some(Probe {
            fstype: "vfat".into(),
            uuid,
            label,
        });
    }
    None
}

/// 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, in byte order (filesystem UUIDs).
fn uuid_string(b: &[u8]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    )
}

/// A GPT GUID: the first three fields little-endian, the rest in byte order.
fn guid_string(b: &[u8]) -> String {
    let mut v = Vec::with_capacity(16);
    v.extend(b[..4].iter().rev());
    v.extend(b[4..6].iter().rev());
    v.extend(b[6..8].iter().rev());
    v.extend(&b[8..16]);
    uuid_string(&v)
}

/// A NUL- or space-padded label; `None` when empty.
fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// The device names in `/proc/partitions` (`sda`, `sda1`, `loop0`, `nvme0n1p2`, …).
pub fn partitions(proc_partitions: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(proc_partitions).at(proc_partitions)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [maj, _, _, name] if maj.parse::<u32>().is_ok() => Some(name.to_string()),
                _ => None,
            }
        })
        .collect())
}

/// One GPT partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptEntry {
    /// 1-based, as in `/sys/class/block/*/partition`.
    pub number: u32,
    pub partuuid: String,
    pub name: String,
}

/// The partition entries of the GPT on `disk` (512- or 4096-byte sectors), if it has one.
pub fn gpt_entries(disk: &Path) -> Result<Vec<GptEntry>> {
    let f = File::open(disk).at(disk)?;
    for sector in [512u64, 4096] {
        let mut hdr = [0u8; 92];
        if f.read_exact_at(&mut hdr, sector).is_err() || &hdr[..8] != b"EFI PART" {
            continue;
        }
        let le64 = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&hdr[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let le32 = |o: usize| u32::from_le_bytes([hdr[o], hdr[o + 1], hdr[o + 2], hdr[o + 3]]);
        let (start, count, size) = (le64(72), le32(80).min(1024), le32(84) as usize);
        if !(128..=4096).contains(&size) {
            continue;
        }
        let mut table = vec![0u8; count as usize * size];
        f.read_exact_at(&mut table, start.saturating_mul(sector))
            .at(disk)?;
        let mut out = Vec::new();
        for (i, e) in table.chunks(size).enumerate() {
            if e[..16].iter().all(|b| *b == 0) {
                continue;
            }
            let units: Vec<u16> = e[56..128]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            out.push(GptEntry {
                number: i as u32 + 1,
                partuuid: guid_string(&e[16..32]),
                name: String::from_utf16_lossy(&units),
            });
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// Resolves an fstab device spec (`UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`, or a path)
/// to a device path. `host` is where `/dev`, `/proc` and `/sys` are read (normally `/`).
pub fn resolve(spec: &str, host: &Path) -> Result<PathBuf> {
    let Some((key, value)) = spec.split_once('=') else {
        return Ok(PathBuf::from(spec));
    };
    let value = value.trim_matches('"');
    let dir = match key {
        "UUID" => "by-uuid",
        "LABEL" => "by-label",
        "PARTUUID" => "by-partuuid",
        "PARTLABEL" => "by-partlabel",
        _ => {
            return Err(Error::invalid(format!(
                "{spec}: unknown kind of device name"
            )))
        }
    };
    let link = below(host, &Path::new("/dev/disk").join(dir).join(value));
    if link.exists() {
        return Ok(link);
    }
    let names = partitions(&below(host, Path::new("/proc/partitions")))?;
    let dev = |n: &str| below(host, &Path::new("/dev").join(n));
    let found = match key {
        "UUID" | "LABEL" => names.iter().find(|n| {
            let Ok(Some(p)) = probe(&dev(n)) else {
                return false;
            };
            if key == "UUID" {
                p.uuid.is_some_and(|u| u.eq_ignore_ascii_case(value))
            } else {
                p.label.as_deref() == Some(value)
            }
        }),
        _ => find_partition(&names, host, |e| {
            if key == "PARTUUID" {
                e.partuuid.eq_ignore_ascii_case(value)
            } else {
                e.name == value
            }
        }),
    };
    found.map(|n| dev(n)).ok_or_else(|| {
        Error::missing(format!(
            "{spec}: no such device (no /dev/disk/{dir} link, and no block device in /proc/partitions has it)"
        ))
    })
}

/// The partition (by name) whose GPT entry on its disk matches `want`.
fn find_partition<'a>(
    names: &'a [String],
    host: &Path,
    want: impl Fn(&GptEntry) -> bool,
) -> Option<&'a String> {
    let sys = |n: &str| below(host, &Path::new("/sys/class/block").join(n));
    for disk in names.iter().filter(|n| !sys(n).join("partition").exists()) {
        let Ok(entries) = gpt_entries(&below(host, &Path::new("/dev").join(disk))) else {
            continue;
        };
        for e in entries.iter().filter(|e| want(e)) {
            let part = names.iter().find(|p| {
                sys(disk).join(p.as_str()).exists()
                    && std::fs::read_to_string(sys(p).join("partition"))
                        .is_ok_and(|s| s.trim() == e.number.to_string())
            });
            if part.is_some() {
                return part;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_uuid_and_label() {
        let mut b = vec![0u8; 4096];
        b[1024 + 0x38] = 0x53;
        b[1024 + 0x39] = 0xEF;
        b[1024 + 0x60] = 0x40;
        for i in 0..16 {
            b[1024 + 0x68 + i] = i as u8 * 17;
        }
        b[1024 + 0x78..1024 + 0x78 + 4].copy_from_slice(b"root");
        let p = probe_bytes(&b).unwrap();
        assert_eq!(p.fstype, "ext4");
        assert_eq!(
            p.uuid.as_deref(),
            Some("00112233-4455-6677-8899-aabbccddeeff")
        );
        assert_eq!(p.label.as_deref(), Some("root"));
    }

    #[test]
    fn fat32_and_fat16_volume_ids() {
        let mut b = vec![0u8; 4096];
        b[510] = 0x55;
        b[511] = 0xAA;
        b[0x52..0x57].copy_from_slice(b"FAT32");
        b[0x43..0x47].copy_from_slice(&0x1234ABCDu32.to_le_bytes());
        b[0x47..0x52].copy_from_slice(b"EFI        ");
        let p = probe_bytes(&b).unwrap();
        assert_eq!(
            (p.fstype.as_str(), p.uuid.as_deref(), p.label.as_deref()),
            ("vfat", Some("1234-ABCD"), Some("EFI"))
        );
        let mut b = vec![0u8; 4096];
        b[510] = 0x55;
        b[511] = 0xAA;
        b[0x36..0x3B].copy_from_slice(b"FAT16");
        b[0x27..0x2B].copy_from_slice(&0xDEADBEEFu32.to_le_bytes());
        b[0x2B..0x36].copy_from_slice(b"NO NAME    ");
        let p = probe_bytes(&b).unwrap();
        assert_eq!(p.uuid.as_deref(), Some("DEAD-BEEF"));
        assert_eq!(p.label, None);
    }

    #[test]
    fn gpt_guid_is_mixed_endian() {
        let b = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(guid_string(&b), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }

    #[test]
    fn unknown_bytes_are_nothing() {
        assert_eq!(probe_bytes(&[0u8; 8192]), None);
    }
}
