//! Which keyring files go on the stick, and whether they are the ones their package
//! installed: Arch's local database records a SHA-256 per file (`mtree`), Debian's dpkg an
//! MD5 (`archlinux-keyring.md5sums`). A keyring that differs from its package's record is
//! damaged or tampered with, and is never copied.

use std::path::{Path, PathBuf};

use crate::error::{Error, Kind, Result};
use crate::pkg::{db, mtree};

/// The three files of the keyring loaded from `source` (a directory, or Debian's
/// `archlinux.gpg` with `archlinux-trusted` and `archlinux-revoked` beside it), each with the
/// name it gets on the stick.
pub fn files(source: &Path) -> Vec<(PathBuf, &'static str)> {
    crate::sig::Keyring::files(source)
        .into_iter()
        .zip(super::KEYRING_FILES)
        .collect()
}

/// What the package databases say about the keyring's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Every file matches the record of this package (`archlinux-keyring 20230320-1`).
    Package(String),
    /// No package database below the base records these files.
    Unrecorded,
}

/// Checks `files` (below `base`, a system root) against the package that installed them. A
/// file that differs from the record is a `Verify` error naming it.
pub fn provenance(base: &Path, files: &[PathBuf]) -> Result<Provenance> {
    let rel: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.strip_prefix(base).ok().map(Path::to_path_buf))
        .collect();
    if rel.len() != files.len() {
        return Ok(Provenance::Unrecorded);
    }
    if let Some(p) = from_pacman(base, files, &rel)? {
        return Ok(p);
    }
    if let Some(p) = from_dpkg(base, files, &rel)? {
        return Ok(p);
    }
    Ok(Provenance::Unrecorded)
}

fn differs(file: &Path, pkg: &str) -> Error {
    Error::new(
        Kind::Verify,
        format!(
            "{}: differs from what {pkg} installed: damaged or changed",
            file.display()
        ),
    )
    .hint("reinstall the keyring package, or give a good copy with --keyring")
}

fn from_pacman(base: &Path, files: &[PathBuf], rel: &[PathBuf]) -> Result<Option<Provenance>> {
    let conf = db::Conf::read(base)?;
    let dbdir = crate::ctx::below(base, &conf.dbpath);
    let Some(pkg) = db::installed(&dbdir, |n| n == "archlinux-keyring")?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let path = pkg.dir.join("mtree");
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(None);
    };
    let entries = mtree::parse_gz(&raw).map_err(|e| e.context(path.display().to_string()))?;
    let who = format!("{} {}", pkg.name, pkg.version);
    for (f, r) in files.iter().zip(rel) {
        let Some(want) = entries
            .iter()
            .find(|e| &e.path == r)
            .and_then(|e| e.sha256.clone())
        else {
            return Ok(None);
        };
        if super::sha256_file(f)? != want {
            return Err(differs(f, &who));
        }
    }
    Ok(Some(Provenance::Package(who)))
}

fn from_dpkg(base: &Path, files: &[PathBuf], rel: &[PathBuf]) -> Result<Option<Provenance>> {
    let list = crate::ctx::below(
        base,
        Path::new("/var/lib/dpkg/info/archlinux-keyring.md5sums"),
    );
    let Ok(text) = std::fs::read_to_string(&list) else {
        return Ok(None);
    };
    for (f, r) in files.iter().zip(rel) {
        let want = text.lines().find_map(|l| {
            let (h, p) = l.split_once("  ")?;
            (Path::new(p) == r.as_path()).then(|| h.to_string())
        });
        let Some(want) = want else { return Ok(None) };
        let data = std::fs::read(f).map_err(|e| Error::path(e, f))?;
        let got = crate::hash::hex(&<md5::Md5 as md5::Digest>::digest(&data));
        if got != want {
            return Err(differs(f, "the Debian package archlinux-keyring"));
        }
    }
    Ok(Some(Provenance::Package(
        "Debian's archlinux-keyring".into(),
    )))
}
