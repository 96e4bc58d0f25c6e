//! Checks an extracted tree against its package's `.MTREE`: type, mode, owner, size, sha256
//! and link target of every entry, hashing files on every core.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use sha2::{Digest, Sha256};

use crate::archive::extract::Package;
use crate::archive::rooted::{existing_of, Existing, Root};
use crate::error::{Error, Result};
use crate::pkg::mtree::{self, Kind};

/// One difference between the package and the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub path: PathBuf,
    /// `missing`, `type`, `mode`, `uid`, `gid`, `size`, `sha256`, `link`, `unreadable`.
    pub field: &'static str,
    pub expected: String,
    pub found: String,
}

/// The outcome: how many entries were checked, and what differs.
#[derive(Debug, Default)]
pub struct Report {
    pub checked: usize,
    pub mismatches: Vec<Mismatch>,
}

/// Reads the package's `.MTREE` (gzip-compressed mtree text).
pub fn read_mtree(pkg: &Path) -> Result<Vec<mtree::Entry>> {
    // A .MTREE of a large package is a few hundred KiB compressed.
    let gz = Package::open(pkg)?
        .read_member(b".MTREE", 64 << 20)?
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: the package has no .MTREE to verify against",
                pkg.display()
            ))
        })?;
    mtree::parse_gz(&gz).map_err(|e| e.context(".MTREE"))
}

fn is_metadata(p: &Path) -> bool {
    let b = p.as_os_str().as_bytes();
    b.first() == Some(&b'.') && !b.contains(&b'/')
}

/// Compares `entries` with the tree under `dir`. Top-level dot files (`.PKGINFO`, …) are not
/// installed by pacman and are skipped.
pub fn verify(dir: &Path, entries: &[mtree::Entry]) -> Result<Report> {
    let mut root = Root::open(dir)?;
    let mut report = Report::default();
    let mut to_hash: Vec<&mtree::Entry> = Vec::new();
    for e in entries.iter().filter(|e| !is_metadata(&e.path)) {
        report.checked += 1;
        let mut miss = |field: &'static str, expected: String, found: String| {
            report.mismatches.push(Mismatch {
                path: e.path.clone(),
                field,
                expected,
                found,
            })
        };
        let st = match root.lstat(&e.path) {
            Ok(st) => st,
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                miss("missing", e.kind.as_str().to_string(), "nothing".into());
                continue;
            }
            Err(err) => {
                miss("unreadable", e.kind.as_str().to_string(), err.to_string());
                continue;
            }
        };
        let found = existing_of(&st);
        let want = match e.kind {
            Kind::File => Existing::File,
            Kind::Dir => Existing::Dir,
            Kind::Link => Existing::Symlink,
            _ => Existing::Other,
        };
        if found != want {
            miss(
                "type",
                e.kind.as_str().to_string(),
                format!("{found:?}").to_lowercase(),
            );
            continue;
        }
        if let Some(mode) = e.mode.filter(|_| e.kind != Kind::Link) {
            let have = st.st_mode & 0o7777;
            if have != mode {
                miss("mode", format!("{mode:04o}"), format!("{have:04o}"));
            }
        }
        if let Some(uid) = e.uid.filter(|u| *u != st.st_uid) {
            miss("uid", uid.to_string(), st.st_uid.to_string());
        }
        if let Some(gid) = e.gid.filter(|g| *g != st.st_gid) {
            miss("gid", gid.to_string(), st.st_gid.to_string());
        }
        match e.kind {
            Kind::File => {
                let have = st.st_size as u64;
                if let Some(size) = e.size.filter(|s| *s != have) {
                    miss("size", size.to_string(), have.to_string());
                } else if e.sha256.is_some() {
                    to_hash.push(e);
                }
            }
            Kind::Link => {
                if let Some(want) = &e.link {
                    let have = root
                        .readlink(&e.path)
                        .map(PathBuf::from)
                        .unwrap_or_default();
                    if &have != want {
                        miss(
                            "link",
                            want.display().to_string(),
                            have.display().to_string(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    report.mismatches.extend(hash_all(dir, &to_hash)?);
    report.mismatches.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Hashes the files on every core (each thread with its own handle on the root) and returns
/// the ones whose sha256 differs.
fn hash_all(dir: &Path, files: &[&mtree::Entry]) -> Result<Vec<Mismatch>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    // Spread large files: round-robin over the list sorted by size, largest first.
    let mut order: Vec<&mtree::Entry> = files.to_vec();
    order.sort_by_key(|e| std::cmp::Reverse(e.size.unwrap_or(0)));
    let results: Vec<Result<Vec<Mismatch>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<&mtree::Entry> =
                    order.iter().skip(t).step_by(threads).copied().collect();
                s.spawn(move || -> Result<Vec<Mismatch>> {
                    let root = Root::open(dir)?;
                    let mut buf = vec![0u8; 256 << 10];
                    let mut out = Vec::new();
                    for e in mine {
                        let want = e.sha256.as_deref().unwrap_or_default();
                        match hash_file(&root, &e.path, &mut buf) {
                            Ok(have) if have == want => {}
                            Ok(have) => out.push(Mismatch {
                                path: e.path.clone(),
                                field: "sha256",
                                expected: want.to_string(),
                                found: have,
                            }),
                            Err(err) => out.push(Mismatch {
                                path: e.path.clone(),
                                field: "unreadable",
                                expected: "a readable file".into(),
                                found: err.to_string(),
                            }),
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::system("a hashing thread failed")))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn hash_file(root: &Root, rel: &Path, buf: &mut [u8]) -> io::Result<String> {
    let fd = root.open_in(rel, OFlag::O_RDONLY | OFlag::O_NOFOLLOW)?;
    let mut h = Sha256::new();
    crate::hash::update_from(&mut h, std::fs::File::from(fd), buf)?;
    Ok(crate::hash::hex(&h.finalize()))
}
