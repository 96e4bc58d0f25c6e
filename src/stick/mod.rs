//! A rescue stick: a directory (a mounted USB stick) holding rtool, Arch's keyring and the
//! verified packages one machine needs to be repaired offline, with its walkthrough.
//!
//! ```text
//! DIR/RESCUE.txt            the walkthrough, with this machine's pool, kernel, ESP and NIC
//! DIR/rtool/bin/rtool       the binary (and a symbolic link per applet, where the
//!                           filesystem has them; vfat has none)
//! DIR/rtool/keyring/        archlinux.gpg, archlinux-trusted, archlinux-revoked
//! DIR/rtool/gnupg/          pubring.gpg, trustdb.gpg: the target's pacman keyring, when it
//!                           has one (what trusts a third-party repository's key: archzfs)
//! DIR/rtool/cache/          package files, each with its .sig
//! DIR/rtool/TARGET          what the stick was made for (key=value lines)
//! DIR/rtool/SHA256SUMS      of every file above, `sha256sum -c` can read it from DIR
//! ```
//!
//! Every file is written beside its final name and renamed into place, so a full stick or a
//! pulled plug leaves the old file or none, never half of one.

pub mod facts;
pub mod keyring;
pub mod rescue;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Kind, Result};
use crate::hash::Digester;

/// The stick's own directory below DIR.
pub const TOP: &str = "rtool";
pub const RESCUE: &str = "RESCUE.txt";
pub const SUMS: &str = "rtool/SHA256SUMS";
pub const TARGET: &str = "rtool/TARGET";
pub const BIN: &str = "rtool/bin";
pub const EXE: &str = "rtool/bin/rtool";
pub const KEYRING: &str = "rtool/keyring";
/// The manual page, `man -l` reads it in place.
pub const MAN_DIR: &str = "rtool/man";
pub const MAN: &str = "rtool/man/rtool.1";
pub const CACHE: &str = "rtool/cache";
/// The target's pacman keyring (its `GPGDir`), `--keyring` reads it as pacman's GnuPG home.
pub const GNUPG: &str = "rtool/gnupg";
/// What of pacman's GnuPG home is copied: the keys and the ownertrust.
pub const GNUPG_FILES: [&str; 2] = ["pubring.gpg", "trustdb.gpg"];
/// The keyring's files, as Arch names them in `/usr/share/pacman/keyrings`.
pub const KEYRING_FILES: [&str; 3] = ["archlinux.gpg", "archlinux-trusted", "archlinux-revoked"];

/// Where each file of the stick at `dir` goes.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }
    /// `rel` (e.g. [`EXE`]) below the stick.
    pub fn at(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.join(rel)
    }
}

/// The name a file is written under before it is renamed into place.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.rtool-part"))
}

/// Whether a file name is one of ours in the middle of being written.
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".rtool-part")
}

/// A writer that feeds every byte it writes to a digest.
struct Tee<'a, W> {
    inner: W,
    digest: &'a mut dyn Digester,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.consume(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `from` to the temporary name of `to`, every byte through `digest`, synced, with
/// `mode`. The caller checks the digest and then calls [`commit`] (or [`discard`]). On failure
/// nothing is left behind, and a full filesystem is named with its size.
pub fn copy_to_temp(from: &Path, to: &Path, mode: u32, digest: &mut dyn Digester) -> Result<()> {
    let tmp = temp_name(to);
    let src = File::open(from).at(from)?;
    let r = (|| -> std::result::Result<(), Copy> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        let mut tee = Tee { inner: f, digest };
        copy_reading(src, &mut tee)?;
        // vfat keeps no modes (its mount options decide them): chmod there may fail.
        let _ = tee
            .inner
            .set_permissions(std::fs::Permissions::from_mode(mode));
        tee.inner.sync_all()?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(match e {
            Copy::Read(e) => Error::path(e, from),
            Copy::Write(e) => {
                crate::sys::write_error(e, &tmp, to, "; nothing was left half-written")
            }
        });
    }
    Ok(())
}

/// A failed copy: reading the source, or writing the copy.
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

impl From<io::Error> for Copy {
    fn from(e: io::Error) -> Copy {
        Copy::Write(e)
    }
}

fn copy_reading(mut src: File, to: &mut impl Write) -> std::result::Result<(), Copy> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        to.write_all(&buf[..n])?;
    }
}

/// Renames the temporary file of `to` into place.
pub fn commit(to: &Path) -> Result<()> {
    let tmp = temp_name(to);
    std::fs::rename(&tmp, to).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::path(e, to)
    })?;
    if let Some(d) = to.parent().and_then(|p| File::open(p).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporary file of `to`.
pub fn discard(to: &Path) {
    let _ = std::fs::remove_file(temp_name(to));
}

/// Copies `from` to `to` atomically; the SHA-256 of what was copied, in hex.
pub fn copy_atomic(from: &Path, to: &Path, mode: u32) -> Result<String> {
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    copy_to_temp(from, to, mode, &mut h)?;
    commit(to)?;
    Ok(crate::hash::hex(&sha2::Digest::finalize(h)))
}

/// Puts a copy of `from` at `to` unless the same bytes are already there; the SHA-256 of the
/// file now at `to`, and whether it was copied. A file of another size is not read at all.
pub fn ensure_copy(from: &Path, to: &Path, mode: u32) -> Result<(String, bool)> {
    let same_size = match (std::fs::metadata(from), std::fs::metadata(to)) {
        (Ok(a), Ok(b)) => b.is_file() && a.len() == b.len(),
        _ => false,
    };
    if same_size {
        let want = sha256_file(from)?;
        if sha256_file(to)? == want {
            return Ok((want, false));
        }
    }
    Ok((copy_atomic(from, to, mode)?, true))
}

/// Writes `data` to `to` atomically (temporary file, sync, rename); its SHA-256 in hex.
pub fn write_atomic(to: &Path, data: &[u8], mode: u32) -> Result<String> {
    let tmp = temp_name(to);
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        });
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(crate::sys::write_error(
            e,
            &tmp,
            to,
            "; nothing was left half-written",
        ));
    }
    commit(to)?;
    Ok(crate::hash::hex(&<sha2::Sha256 as sha2::Digest>::digest(
        data,
    )))
}

pub use crate::hash::sha256_file;

/// `SHA256SUMS`: path (relative to the stick, `/`-separated) → hex digest.
pub type Sums = BTreeMap<String, String>;

/// The text of `SHA256SUMS`, as `sha256sum` writes it (two spaces, text mode).
pub fn sums_text(sums: &Sums) -> String {
    sums.iter().map(|(p, h)| format!("{h}  {p}\n")).collect()
}

/// Reads `SHA256SUMS`. A line that is not `HEX  PATH`, or a path that leaves the stick, is
/// an error naming its line.
pub fn parse_sums(text: &str) -> Result<Sums> {
    let mut out = Sums::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || Error::invalid(format!("{SUMS}: line {}: not `SHA256  PATH`", i + 1));
        let (h, p) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(bad)?;
        let ok_hash = h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        let ok_path = !p.is_empty()
            && !p.starts_with('/')
            && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if !ok_hash || !ok_path {
            return Err(bad());
        }
        out.insert(p.to_string(), h.to_ascii_lowercase());
    }
    Ok(out)
}

/// Whether an error is a network failure worth keeping a partial download for (to resume).
pub fn keeps_partial(e: &Error) -> bool {
    e.kind() == Kind::Network
}

/// `TARGET`: what the stick was made for, as `key=value` lines (one key may repeat).
pub fn target_text(f: &facts::Facts, prepared: &str) -> String {
    let mut t =
        String::from("# Written by `rtool stick prepare`: the system this stick rescues.\n");
    t.push_str(&format!("prepared={prepared}\n"));
    if let Some(h) = &f.hostname {
        t.push_str(&format!("hostname={h}\n"));
    }
    for k in &f.kernels {
        t.push_str(&format!("kernel={} {}\n", k.name, k.version));
    }
    for z in &f.zfs {
        t.push_str(&format!("zfs={} {}\n", z.name, z.version));
    }
    if let Some(p) = &f.pool {
        t.push_str(&format!("pool={}\n", p.value));
    }
    t
}

/// The `kernel=NAME VERSION` lines of `TARGET`: the kernels the target had installed.
pub fn target_kernels(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("kernel="))
        .filter_map(|v| v.split_once(' '))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_round_trip_and_refuse_escapes() {
        let mut s = Sums::new();
        s.insert("rtool/bin/rtool".into(), "a".repeat(64));
        s.insert("RESCUE.txt".into(), "b".repeat(64));
        assert_eq!(parse_sums(&sums_text(&s)).unwrap(), s);
        let evil = format!("{}  ../etc/passwd\n", "a".repeat(64));
        assert!(parse_sums(&evil).is_err());
        assert!(parse_sums("zz  x\n").is_err());
    }

    #[test]
    fn copy_leaves_no_temp_on_a_missing_source() {
        let d = tempfile::tempdir().unwrap();
        let to = d.path().join("x");
        assert!(copy_atomic(&d.path().join("nope"), &to, 0o644).is_err());
        assert!(!temp_name(&to).exists() && !to.exists());
        std::fs::write(d.path().join("src"), b"abc").unwrap();
        let h = copy_atomic(&d.path().join("src"), &to, 0o644).unwrap();
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(std::fs::read(&to).unwrap(), b"abc");
    }
}
