//! A directory used as a jail: every path is resolved by the kernel as if the directory were
//! `/` (openat2 with RESOLVE_IN_ROOT), so `..`, absolute paths and absolute symlinks inside it
//! — `/usr/lib/foo` in a package extracted into `/mnt` — never reach the host.
//!
//! Callers pass paths already split by [`sanitize`]; the last component is always acted on
//! with the `*at` calls relative to its parent's descriptor, never followed.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

use crate::error::{Error, Result};

/// Checks an archive member name and returns it relative to the root: a leading `/` is
/// dropped (absolute names are taken relative to the root), `.` components vanish, `..` is
/// refused. `None` is the root itself (`./`).
pub fn sanitize(raw: &[u8]) -> Result<Option<PathBuf>> {
    if raw.contains(&0) {
        return Err(Error::invalid("the name contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(Error::invalid(
                    "the name contains '..', which could escape the target directory",
                ))
            }
            Component::Prefix(_) => return Err(Error::invalid("unexpected path prefix")),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// What is at a path now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    Nothing,
    File,
    Dir,
    Symlink,
    Other,
}

pub fn existing_of(st: &FileStat) -> Existing {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => Existing::File,
        SFlag::S_IFDIR => Existing::Dir,
        SFlag::S_IFLNK => Existing::Symlink,
        _ => Existing::Other,
    }
}

pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// The last parent directory opened: archive members come sorted, so most share it.
    cache: Option<(PathBuf, OwnedFd)>,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // No mkdir hint: a mistyped target, made and filled, would land in the live
            // system (a kernel unpacked into an empty /mnt instead of the installed root).
            Errno::ENOENT => Error::missing(format!("{}: no such directory", path.display()))
                .hint("check the path; an installed system must be mounted there first"),
            Errno::ENOTDIR => Error::invalid(format!("{}: not a directory", path.display())),
            e => Error::path(errno_io(e), path),
        })?;
        // RESOLVE_IN_ROOT needs Linux 5.6; say so plainly rather than fail on the first entry.
        if let Err(Errno::ENOSYS) = openat2(&fd, ".", how(OFlag::O_PATH | OFlag::O_DIRECTORY)) {
            return Err(Error::missing(
                "this kernel has no openat2 (Linux 5.6 or later is needed to extract safely)",
            ));
        }
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            cache: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's own descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` inside the root with `flags`, resolving every component in the root.
    pub fn open_in(&self, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let rel: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        openat2(&self.fd, rel, how(flags)).map_err(errno_io)
    }

    /// The directory `rel` (a sanitized relative path, empty for the root), created with mode
    /// 0755 component by component when missing and `create` is set. The returned descriptor
    /// is an O_PATH handle valid for the `*at` calls.
    pub fn dir(&mut self, rel: &Path, create: bool) -> io::Result<BorrowedFd<'_>> {
        let hit = matches!(&self.cache, Some((p, _)) if p == rel);
        if !hit {
            let fd = match self.open_in(rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    self.make_dirs(rel)?
                }
                Err(e) => return Err(e),
            };
            self.cache = Some((rel.to_path_buf(), fd));
        }
        match &self.cache {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(io::Error::other("directory cache empty")),
        }
    }

    /// Forgets the cached parent (after the tree changed under a name it may refer to).
    pub fn forget(&mut self) {
        self.cache = None;
    }

    fn make_dirs(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut cur = self.open_in(Path::new(""), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let mut so_far = PathBuf::new();
        for c in rel.components() {
            so_far.push(c);
            match nix::sys::stat::mkdirat(&cur, c.as_os_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(errno_io(e)),
            }
            // Re-resolve from the root: the component may be a symlink (`lib -> usr/lib`).
            cur = self.open_in(&so_far, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        }
        Ok(cur)
    }

    /// lstat of `rel` inside the root (its last component not followed).
    pub fn lstat(&mut self, rel: &Path) -> io::Result<FileStat> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent, false)?;
        fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno_io)
    }

    /// What is at `rel`, without following a final symlink.
    pub fn existing(&mut self, rel: &Path) -> io::Result<Existing> {
        match self.lstat(rel) {
            Ok(st) => Ok(existing_of(&st)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Ok(Existing::Nothing)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `rel` resolves, inside the root, to a directory (following symlinks).
    pub fn is_dir_following(&self, rel: &Path) -> bool {
        self.open_in(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .is_ok()
    }

    /// The target of the symlink `rel`.
    pub fn readlink(&mut self, rel: &Path) -> io::Result<OsString> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent, false)?;
        nix::fcntl::readlinkat(dir, name).map_err(errno_io)
    }

    /// The contents of the file `rel` (symlinks resolved inside the root), `None` when absent.
    pub fn read(&self, rel: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.open_in(rel, OFlag::O_RDONLY) {
            Ok(fd) => {
                let mut v = Vec::new();
                io::Read::read_to_end(&mut std::fs::File::from(fd), &mut v)?;
                Ok(Some(v))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Puts `data` at `rel` with `mode`, whole or not at all: written under a temporary name
    /// beside it, then renamed over whatever was there. Missing directories are created.
    pub fn replace(&mut self, rel: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        let (parent, name) = split(rel);
        let tmp = format!(".{}.rtool-new", name.to_string_lossy());
        let dir = self.dir(parent, true)?;
        let _ = nix::unistd::unlinkat(dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let r = nix::fcntl::openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(mode))
            .map_err(errno_io)
            .and_then(|fd| {
                let mut f = std::fs::File::from(fd);
                io::Write::write_all(&mut f, data)?;
                // The umask may have taken bits away.
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                f.sync_all()
            })
            .and_then(|_| nix::fcntl::renameat(dir, tmp.as_str(), dir, name).map_err(errno_io));
        if r.is_err() {
            let _ =
                nix::unistd::unlinkat(dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        r
    }

    /// Removes the file (or symlink) `rel`.
    pub fn remove(&mut self, rel: &Path) -> io::Result<()> {
        let (parent, name) = split(rel);
        let dir = self.dir(parent, false)?;
        nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(errno_io)
    }
}

/// `usr/bin/x` → (`usr/bin`, `x`).
pub fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or(OsStr::new(".")),
    )
}

/// Sets one extended attribute on an open file.
pub fn set_xattr(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: fd is a valid open descriptor for the duration of the call, name is a
    // NUL-terminated C string and value points to value.len() readable bytes.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The extended attributes of an open file, as (name, value) pairs.
pub fn xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    // SAFETY: names is a writable buffer of names.len() bytes; fd is valid.
    let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(Vec::new())
        } else {
            Err(e)
        };
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut value = vec![0u8; 65536];
        // SAFETY: c is NUL-terminated, value is a writable buffer of value.len() bytes.
        let m = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                c.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        value.truncate(m as usize);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// A path for messages: the archive's own spelling.
pub fn shown(rel: &Path) -> String {
    rel.display().to_string()
}

/// Bytes of a path, for comparisons with archive link names.
pub fn bytes_of(p: &Path) -> Vec<u8> {
    p.as_os_str().to_owned().into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_rules() {
        assert_eq!(
            sanitize(b"./usr/bin/x").unwrap(),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(
            sanitize(b"/etc/passwd").unwrap(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(sanitize(b"usr/").unwrap(), Some(PathBuf::from("usr")));
        assert_eq!(sanitize(b"./").unwrap(), None);
        assert!(sanitize(b"../x").is_err());
        assert!(sanitize(b"usr/../../x").is_err());
        assert!(sanitize(b"a\0b").is_err());
    }

    #[test]
    fn files_are_replaced_whole_and_inside_the_root() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        // The link's target exists on the host and inside the root: only the latter is used.
        let inside = root
            .join(d.path().strip_prefix("/").unwrap())
            .join("host/hooks");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(d.path().join("host")).unwrap();
        std::os::unix::fs::symlink(d.path().join("host"), root.join("etc")).unwrap();
        let mut r = Root::open(&root).unwrap();
        let rel = Path::new("etc/hooks/a.hook");
        assert_eq!(r.read(rel).unwrap(), None);
        r.replace(rel, b"one", 0o755).unwrap();
        r.replace(rel, b"two", 0o755).unwrap();
        assert!(
            !d.path().join("host/hooks").exists(),
            "the absolute link resolved on the host"
        );
        assert_eq!(std::fs::read(inside.join("a.hook")).unwrap(), b"two");
        let mode = std::fs::metadata(inside.join("a.hook"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert_eq!(
            std::fs::read_dir(&inside).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert_eq!(r.read(rel).unwrap().as_deref(), Some(&b"two"[..]));
        r.remove(rel).unwrap();
        assert_eq!(r.read(rel).unwrap(), None);
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        // An absolute link to "/" inside the root points at the root, not the host.
        std::os::unix::fs::symlink("/", root.join("usr/lib/x")).unwrap();
        std::os::unix::fs::symlink("../../../../../../..", root.join("up")).unwrap();
        let mut r = Root::open(&root).unwrap();
        let fd = r.dir(Path::new("usr/lib/x/tmp"), true).unwrap();
        let _ = fd;
        assert!(root.join("tmp").is_dir(), "created inside the root");
        r.forget();
        r.dir(Path::new("up/escape"), true).unwrap();
        assert!(root.join("escape").is_dir());
        assert!(!d.path().join("escape").exists());
    }
}
