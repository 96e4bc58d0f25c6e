//! pacman's local database (`DBPath/local/NAME-VERSION/{desc,files,mtree,install}`), read in
//! full and written byte for byte as libalpm's `_alpm_local_db_write` writes it.
//!
//! Paths in `files` are raw bytes (a package may hold names that are not UTF-8); they are
//! relative to the root, directories end with `/`, and the list is sorted by bytes, as
//! `_alpm_filelist_sort` leaves it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pkg::db::fields;
use crate::pkg::mtree;
use crate::pkg::pkginfo::Info;

/// The version stamp of the local database format (`ALPM_LOCAL_DB_VERSION`).
pub const DB_VERSION: &str = "9";

/// An installed package, everything the transaction needs from its entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    /// `1` when installed as a dependency.
    pub reason: u8,
    pub depends: Vec<String>,
    pub provides: Vec<String>,
    pub conflicts: Vec<String>,
    pub replaces: Vec<String>,
    pub files: Vec<Vec<u8>>,
    /// Backup files and the md5 recorded when they were installed.
    pub backup: Vec<(Vec<u8>, String)>,
    /// Its directory (in `local/`, or where an interrupted transaction moved it).
    pub dir: PathBuf,
}

impl Installed {
    /// `NAME-VERSION`, the entry's directory name.
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// The md5 recorded for the backup file `path`.
    pub fn backup_hash(&self, path: &[u8]) -> Option<&str> {
        self.backup
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, h)| h.as_str())
    }

    /// Reads one entry directory (`desc` and `files`).
    pub fn read(dir: &Path) -> Result<Installed> {
        let desc_path = dir.join("desc");
        let text = std::fs::read_to_string(&desc_path).map_err(|e| Error::path(e, &desc_path))?;
        let mut p = Installed {
            dir: dir.to_path_buf(),
            ..Installed::default()
        };
        fields(&text, |k, v| match k {
            "%NAME%" => p.name = v.to_string(),
            "%VERSION%" => p.version = v.to_string(),
            "%REASON%" => p.reason = v.trim().parse().unwrap_or(0),
            "%DEPENDS%" => p.depends.push(v.to_string()),
            "%PROVIDES%" => p.provides.push(v.to_string()),
            "%CONFLICTS%" => p.conflicts.push(v.to_string()),
            "%REPLACES%" => p.replaces.push(v.to_string()),
            _ => {}
        });
        if p.name.is_empty() || p.version.is_empty() {
            return Err(Error::invalid(format!(
                "{}: no %NAME% or %VERSION%",
                desc_path.display()
            )));
        }
        let files_path = dir.join("files");
        let bytes = match std::fs::read(&files_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::path(e, &files_path)),
        };
        let mut section: &[u8] = b"";
        for line in bytes.split(|b| *b == b'\n') {
            if line.len() > 2 && line.starts_with(b"%") && line.ends_with(b"%") {
                section = line;
            } else if line.is_empty() {
                continue;
            } else if section == b"%FILES%" {
                p.files.push(line.to_vec());
            } else if section == b"%BACKUP%" {
                // pacman writes a tab; the specification's examples show a space.
                if let Some(at) = line.iter().rposition(|b| *b == b'\t' || *b == b' ') {
                    let hash = String::from_utf8_lossy(&line[at + 1..]).into_owned();
                    p.backup.push((line[..at].to_vec(), hash));
                }
            }
        }
        Ok(p)
    }
}

/// Every entry of `local` (a `DBPath/local` directory), sorted by name. Files and directories
/// whose names are not `NAME-PKGVER-PKGREL` are not entries and are skipped.
pub fn read_all(local: &Path) -> Result<Vec<Installed>> {
    let rd = match std::fs::read_dir(local) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::path(e, local)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::path(e, local))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.rsplitn(3, '-').count() < 3 || !e.path().is_dir() {
            continue;
        }
        out.push(Installed::read(&e.path())?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The file list pacman records for a package: every `.MTREE` entry but the top-level dot
/// files, directories with a trailing `/`, sorted by bytes.
pub fn file_list(entries: &[mtree::Entry]) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out: Vec<Vec<u8>> = entries
        .iter()
        .filter_map(|e| {
            let p = e.path.as_os_str().as_bytes();
            if p.is_empty() || (p.starts_with(b".") && !p.contains(&b'/')) {
                return None;
            }
            let mut v = p.to_vec();
            if e.kind == mtree::Kind::Dir {
                v.push(b'/');
            }
            Some(v)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How the package was checked before it was installed (`%VALIDATION%`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    None,
    Pgp,
}

/// What goes into a new entry besides the package's own `.PKGINFO`.
pub struct Entry<'a> {
    pub info: &'a Info,
    pub install_date: i64,
    pub reason: u8,
    pub validation: Validation,
    /// Write `%XDATA%` (pacman 6.1 and later have it).
    pub xdata: bool,
}

/// `desc` as `_alpm_local_db_write` writes it: fixed section order, a blank line after each
/// section, empty sections left out.
pub fn desc(e: &Entry) -> String {
    let i = e.info;
    let mut s = String::with_capacity(512);
    let one = |s: &mut String, key: &str, v: Option<&str>| {
        if let Some(v) = v {
            s.push_str(key);
            s.push('\n');
            s.push_str(v);
            s.push_str("\n\n");
        }
    };
    let nonempty = |k: &str| i.get(k).filter(|v| !v.is_empty());
    one(&mut s, "%NAME%", i.get("pkgname"));
    one(&mut s, "%VERSION%", i.get("pkgver"));
    one(&mut s, "%BASE%", nonempty("pkgbase"));
    one(&mut s, "%DESC%", nonempty("pkgdesc"));
    one(&mut s, "%URL%", nonempty("url"));
    one(&mut s, "%ARCH%", nonempty("arch"));
    one(
        &mut s,
        "%BUILDDATE%",
        nonempty("builddate").filter(|v| *v != "0"),
    );
    let date = e.install_date.to_string();
    one(&mut s, "%INSTALLDATE%", Some(&date));
    one(&mut s, "%PACKAGER%", nonempty("packager"));
    one(&mut s, "%SIZE%", nonempty("size").filter(|v| *v != "0"));
    let reason = e.reason.to_string();
    one(
        &mut s,
        "%REASON%",
        (e.reason != 0).then_some(reason.as_str()),
    );
    let list = |s: &mut String, key: &str, v: Vec<&str>| {
        if !v.is_empty() {
            s.push_str(key);
            s.push('\n');
            for x in v {
                s.push_str(x);
                s.push('\n');
            }
            s.push('\n');
        }
    };
    let all = |k: &'static str| i.all(k).filter(|v| !v.is_empty()).collect::<Vec<_>>();
    list(&mut s, "%GROUPS%", all("group"));
    list(&mut s, "%LICENSE%", all("license"));
    let validation = match e.validation {
        Validation::None => "none",
        Validation::Pgp => "pgp",
    };
    list(&mut s, "%VALIDATION%", vec![validation]);
    list(&mut s, "%REPLACES%", all("replaces"));
    list(&mut s, "%DEPENDS%", all("depend"));
    list(&mut s, "%OPTDEPENDS%", all("optdepend"));
    list(&mut s, "%CONFLICTS%", all("conflict"));
    list(&mut s, "%PROVIDES%", all("provides"));
    if e.xdata {
        list(&mut s, "%XDATA%", all("xdata"));
    }
    s
}

/// `files`: `%FILES%` then `%BACKUP%` (path, a tab, the md5), each followed by a blank line.
pub fn files(list: &[Vec<u8>], backup: &[(Vec<u8>, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.iter().map(|f| f.len() + 1).sum::<usize>() + 32);
    if !list.is_empty() {
        out.extend_from_slice(b"%FILES%\n");
        for f in list {
            out.extend_from_slice(f);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    if !backup.is_empty() {
        out.extend_from_slice(b"%BACKUP%\n");
        for (p, h) in backup {
            out.extend_from_slice(p);
            out.push(b'\t');
            out.extend_from_slice(h.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg::pkginfo;

    #[test]
    fn desc_in_libalpm_order_without_empty_sections() {
        let info = pkginfo::parse(
            b"pkgname = cmatrix\npkgbase = cmatrix\nxdata = pkgtype=pkg\npkgver = 2.0-3\n\
              pkgdesc = A curses-based scrolling 'Matrix'-like screen\nurl = https://x\n\
              builddate = 1712094817\npackager = A <a@b>\nsize = 97097\narch = x86_64\n\
              license = GPL3\ndepend = ncurses\noptdepend = kbd: cmatrix-tty custom font\n\
              makedepend = cmake\n",
        )
        .unwrap();
        let d = desc(&Entry {
            info: &info,
            install_date: 1700000001,
            reason: 0,
            validation: Validation::Pgp,
            xdata: true,
        });
        assert_eq!(
            d,
            "%NAME%\ncmatrix\n\n%VERSION%\n2.0-3\n\n%BASE%\ncmatrix\n\n\
             %DESC%\nA curses-based scrolling 'Matrix'-like screen\n\n%URL%\nhttps://x\n\n\
             %ARCH%\nx86_64\n\n%BUILDDATE%\n1712094817\n\n%INSTALLDATE%\n1700000001\n\n\
             %PACKAGER%\nA <a@b>\n\n%SIZE%\n97097\n\n%LICENSE%\nGPL3\n\n%VALIDATION%\npgp\n\n\
             %DEPENDS%\nncurses\n\n%OPTDEPENDS%\nkbd: cmatrix-tty custom font\n\n\
             %XDATA%\npkgtype=pkg\n\n"
        );
    }

    #[test]
    fn entries_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("foo-1.0-1");
        std::fs::create_dir(&dir).unwrap();
        let info = pkginfo::parse(b"pkgname = foo\npkgver = 1.0-1\ndepend = bar>=2\n").unwrap();
        let text = desc(&Entry {
            info: &info,
            install_date: 1,
            reason: 1,
            validation: Validation::None,
            xdata: false,
        });
        std::fs::write(dir.join("desc"), text).unwrap();
        let list = vec![b"etc/".to_vec(), b"etc/foo.conf".to_vec(), b"usr/".to_vec()];
        let backup = vec![(
            b"etc/foo.conf".to_vec(),
            "d41d8cd98f00b204e9800998ecf8427e".into(),
        )];
        std::fs::write(dir.join("files"), files(&list, &backup)).unwrap();
        std::fs::write(d.path().join("ALPM_DB_VERSION"), "9\n").unwrap();
        std::fs::create_dir(d.path().join(".hidden-1-1")).unwrap();
        let all = read_all(d.path()).unwrap();
        assert_eq!(all.len(), 1);
        let p = &all[0];
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.reason),
            ("foo", "1.0-1", 1)
        );
        assert_eq!(p.depends, ["bar>=2"]);
        assert_eq!(p.files, list);
        assert_eq!(p.backup, backup);
        assert_eq!(
            p.backup_hash(b"etc/foo.conf"),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
    }
}
