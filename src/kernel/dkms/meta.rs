//! OpenZFS `META` and its kernel range.

use std::path::Path;

use crate::error::{Error, Result};

/// The fields of an OpenZFS-style `META` file that matter for a rebuild.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub license: Option<String>,
    pub linux_min: Option<String>,
    pub linux_max: Option<String>,
}

/// `dir/META`, or `None` when the source has none.
pub fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let path = dir.join("META");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::path(e, &path)),
    };
    parse_meta(&String::from_utf8_lossy(&bytes))
        .map(Some)
        .map_err(|e| e.context(format!("reading {}", path.display())))
}

/// Reads `META` as OpenZFS's `config/zfs-meta.m4` does: `^[ ]*KEY:[ \t]+VALUE`, keys
/// case-sensitive, the first occurrence wins, and the value ends at the next `:[ \t]`. Other
/// lines are ignored; that is how a line is commented out. A `Linux-Minimum` or
/// `Linux-Maximum` that is not a kernel version is an error: the range check would
/// otherwise be silently wrong.
pub fn parse_meta(text: &str) -> Result<Meta> {
    let mut meta = Meta::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start_matches(' ');
        let Some(sep) = field_separator(line) else {
            continue;
        };
        let key = line.get(..sep).unwrap_or_default();
        let rest = line
            .get(sep + 1..)
            .unwrap_or_default()
            .trim_start_matches([' ', '\t']);
        let value = match field_separator(rest) {
            Some(end) => rest.get(..end).unwrap_or_default(),
            None => rest,
        }
        .trim_end()
        .to_string();
        let slot = match key {
            "Name" | "Project" | "Package" => &mut meta.name,
            "Version" => &mut meta.version,
            "Release" => &mut meta.release,
            "License" => &mut meta.license,
            "Linux-Minimum" | "Linux-Maximum" => {
                if major_minor(&value).is_none() {
                    return Err(Error::invalid(format!(
                        "META line {}: {key} {value:?} is not a kernel version",
                        n + 1
                    )));
                }
                if key == "Linux-Minimum" {
                    &mut meta.linux_min
                } else {
                    &mut meta.linux_max
                }
            }
            _ => continue,
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
    Ok(meta)
}

/// The byte offset of the first `:` followed by a blank (awk's `-F ':[ \t]+'`).
fn field_separator(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b.get(i) == Some(&b':') && matches!(b.get(i + 1), Some(b' ' | b'\t')))
}

/// `6.2.8-arch1-1` → (6, 2).
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    // The separator after the major number must be a dot.
    let after = v.get(v.find(|c: char| !c.is_ascii_digit())?..)?;
    if !after.starts_with('.') {
        return None;
    }
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether kernel release `kver` ("6.2.8-arch1-1") is inside the `META` range, compared by
/// major.minor as OpenZFS means it: `Linux-Maximum: 6.1` allows every 6.1.x, and 6.2 is too
/// new. `None` inside (or with no limits), else one sentence for a person: "zfs 2.1.9
/// supports Linux 3.10 – 6.1; 6.2.8-arch1-1 is newer: keep a 6.1 kernel or use a zfs release
/// that supports 6.2".
pub fn meta_range_check(meta: &Meta, kver: &str) -> Result<Option<String>> {
    let Some((kmaj, kmin)) = major_minor(kver) else {
        return Err(Error::invalid(format!("{kver:?} is not a kernel release")));
    };
    let bound = |b: &Option<String>| -> Result<Option<(String, (u32, u32))>> {
        match b {
            None => Ok(None),
            Some(s) => match major_minor(s) {
                Some(mm) => Ok(Some((s.clone(), mm))),
                None => Err(Error::invalid(format!(
                    "META: {s:?} is not a kernel version"
                ))),
            },
        }
    };
    let min = bound(&meta.linux_min)?;
    let max = bound(&meta.linux_max)?;
    let name = meta.name.as_deref().unwrap_or("this module");
    let who = match &meta.version {
        Some(v) => format!("{name} {v}"),
        None => name.to_string(),
    };
    let release = match &meta.name {
        Some(n) => format!("a {n} release"),
        None => "a release of this module".to_string(),
    };
    let range = match (&min, &max) {
        (Some((lo, _)), Some((hi, _))) => {
            format!("Linux {lo} {} {hi}", crate::text::glyph("–"))
        }
        (Some((lo, _)), None) => format!("Linux {lo} and newer"),
        (None, Some((hi, _))) => format!("Linux up to {hi}"),
        (None, None) => return Ok(None),
    };
    let k = (kmaj, kmin);
    if let Some((hi, mm)) = &max {
        if k > *mm {
            return Ok(Some(format!(
                "{who} supports {range}; {kver} is newer: keep a {hi} kernel or use {release} that supports {kmaj}.{kmin}"
            )));
        }
    }
    if let Some((lo, mm)) = &min {
        if k < *mm {
            return Ok(Some(format!(
                "{who} supports {range}; {kver} is older: use a kernel of at least {lo} or {release} that supports {kmaj}.{kmin}"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZFS_219_META: &str = "Meta:          1\nName:          zfs\nBranch:        1.0\nVersion:       2.1.9\nRelease:       1\nRelease-Tags:  relext\nLicense:       CDDL\nAuthor:        OpenZFS\nLinux-Maximum: 6.1\nLinux-Minimum: 3.10\n";

    #[test]
    fn meta_parses_like_zfs_meta_m4() {
        let m = parse_meta(ZFS_219_META).unwrap();
        assert_eq!(
            m,
            Meta {
                name: Some("zfs".into()),
                version: Some("2.1.9".into()),
                release: Some("1".into()),
                license: Some("CDDL".into()),
                linux_min: Some("3.10".into()),
                linux_max: Some("6.1".into()),
            }
        );
        // First match wins, leading spaces are fine, a commented line and a key without a
        // blank after the colon do not count, and the value ends at the next ": ".
        let m = parse_meta(
            "#Version: 9\n  Version:\t2.2.0\nVersion: 3\nName:zfs\nProject: zfs: extra\n",
        )
        .unwrap();
        assert_eq!(m.version.as_deref(), Some("2.2.0"));
        assert_eq!(m.name.as_deref(), Some("zfs"));
        let e = parse_meta("Linux-Maximum: six\n").unwrap_err();
        assert!(
            e.to_string().contains("META line 1: Linux-Maximum \"six\""),
            "{e}"
        );
        assert_eq!(parse_meta("").unwrap(), Meta::default());
    }

    #[test]
    fn meta_range_by_major_minor() {
        let m = parse_meta(ZFS_219_META).unwrap();
        assert_eq!(meta_range_check(&m, "6.1.12-arch1-1").unwrap(), None);
        assert_eq!(meta_range_check(&m, "3.10.0").unwrap(), None);
        assert_eq!(
            meta_range_check(&m, "6.2.8-arch1-1").unwrap().unwrap(),
            "zfs 2.1.9 supports Linux 3.10 – 6.1; 6.2.8-arch1-1 is newer: keep a 6.1 kernel or use a zfs release that supports 6.2"
                .replace("–", crate::text::glyph("–"))
        );
        assert_eq!(
            meta_range_check(&m, "3.9.0").unwrap().unwrap(),
            "zfs 2.1.9 supports Linux 3.10 – 6.1; 3.9.0 is older: use a kernel of at least 3.10 or a zfs release that supports 3.9"
                .replace("–", crate::text::glyph("–"))
        );
        // 6.10 is newer than 6.1: numbers, not strings.
        assert!(meta_range_check(&m, "6.10.1-arch1-1")
            .unwrap()
            .unwrap()
            .contains("is newer"));
        assert!(meta_range_check(&m, "linux").is_err());
        assert_eq!(meta_range_check(&Meta::default(), "6.2.8").unwrap(), None);
        let only_max = Meta {
            linux_max: Some("6.1".into()),
            ..Meta::default()
        };
        assert_eq!(
            meta_range_check(&only_max, "6.2.1").unwrap().unwrap(),
            "this module supports Linux up to 6.1; 6.2.1 is newer: keep a 6.1 kernel or use a release of this module that supports 6.2"
        );
    }
}
