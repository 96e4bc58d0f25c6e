//! A user's `~/.ssh/authorized_keys` on the system being repaired: the user and home come
//! from that system's `/etc/passwd`, every path is resolved inside its root (an absolute
//! symlink such as `/home -> /var/home` stays in it), and the file is replaced atomically
//! (temporary file beside it, fsync, rename), with the modes and owner sshd insists on.
//!
//! `.ssh` and `authorized_keys` themselves must not be symlinks when writing: a home is the
//! user's to arrange, and a link there could turn a write as root into a write to `/etc`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};
use nix::unistd::{Gid, Uid};

use super::key::{self, PublicKey};
use crate::archive::rooted::{self, existing_of, Existing, Root};
use crate::error::{Error, IoContext, Kind, Result};
use crate::sys::passwd::{self, User};

/// The largest authorized_keys (and passwd) read: thousands of keys.
pub const FILE_MAX: u64 = 4 << 20;

const SSH_DIR: &str = ".ssh";
const KEYS: &str = "authorized_keys";

pub struct KeysFile {
    root: Root,
    pub user: User,
    /// The home directory relative to the root.
    home: PathBuf,
    /// Where the file is, as a path on this machine (for messages).
    pub path: PathBuf,
    /// The file's bytes now; empty when there is no file yet.
    pub content: Vec<u8>,
    pub exists: bool,
}

/// One line of the file that holds (or tried to hold) a key.
pub struct Entry {
    /// From 1.
    pub line: usize,
    pub key: std::result::Result<PublicKey, String>,
}

fn errno(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// Reads at most `FILE_MAX` bytes of `fd`.
fn read_capped(fd: OwnedFd, shown: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    File::from(fd)
        .take(FILE_MAX + 1)
        .read_to_end(&mut data)
        .at(shown)?;
    if data.len() as u64 > FILE_MAX {
        return Err(Error::invalid(format!(
            "{}: larger than {} MiB: not touching it",
            shown.display(),
            FILE_MAX >> 20
        )));
    }
    Ok(data)
}

impl KeysFile {
    /// Finds `user`'s authorized_keys below `root_dir` and reads it. With `for_writing`, a
    /// symlinked `.ssh` or `authorized_keys` is refused before anything is changed.
    pub fn open(root_dir: &Path, user: &str, for_writing: bool) -> Result<KeysFile> {
        let root = Root::open(root_dir)?;
        let passwd_path = root_dir.join("etc/passwd");
        let fd = root
            .open_in(Path::new("etc/passwd"), OFlag::O_RDONLY | OFlag::O_NONBLOCK)
            .at(&passwd_path)?;
        let text = String::from_utf8_lossy(&read_capped(fd, &passwd_path)?).into_owned();
        let user = passwd::find(&text, user).ok_or_else(|| {
            Error::missing(format!("no user {user:?} in {}", passwd_path.display()))
                .hint("name a user of that system with --user")
        })?;
        let home = rooted::sanitize(user.home.as_os_str().as_bytes())
            .map_err(|e| e.context(format!("{}'s home {}", user.name, user.home.display())))?
            .unwrap_or_default();
        let shown_home = root_dir.join(&home);
        let home_fd = root
            .open_in(&home, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => Error::missing(format!(
                    "{}'s home directory {} does not exist",
                    user.name,
                    shown_home.display()
                ))
                .hint(format!(
                    "create it: mkdir -m 700 {0} && chown {1}:{2} {0}",
                    shown_home.display(),
                    user.uid,
                    user.gid
                )),
                _ => Error::path(e, &shown_home),
            })?;
        let ssh_rel = home.join(SSH_DIR);
        let rel = ssh_rel.join(KEYS);
        let path = root_dir.join(&rel);
        let ssh_shown = root_dir.join(&ssh_rel);
        let mut exists = false;
        let mut content = Vec::new();
        let ssh = lstat_at(&home_fd, SSH_DIR, &ssh_shown)?;
        if for_writing {
            refuse_link(&home_fd, SSH_DIR, ssh.as_ref(), &ssh_shown)?;
        }
        if ssh.is_some() && root.is_dir_following(&ssh_rel) {
            let ssh_fd = root
                .open_in(&ssh_rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .at(&ssh_shown)?;
            let keys = lstat_at(&ssh_fd, KEYS, &path)?;
            if for_writing {
                refuse_link(&ssh_fd, KEYS, keys.as_ref(), &path)?;
            }
            if keys.is_some() {
                // Non-blocking: a FIFO planted there must not hang the rescue.
                let fd = root
                    .open_in(&rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
                    .at(&path)?;
                if existing_of(&fstat(fd.as_fd()).map_err(|e| Error::path(errno(e), &path))?)
                    != Existing::File
                {
                    return Err(Error::invalid(format!(
                        "{}: not a regular file",
                        path.display()
                    )));
                }
                content = read_capped(fd, &path)?;
                exists = true;
            }
        } else if ssh.is_some() {
            return Err(Error::invalid(format!(
                "{}: not a directory",
                ssh_shown.display()
            )));
        }
        Ok(KeysFile {
            root,
            user,
            home,
            path,
            content,
            exists,
        })
    }

    /// The lines that hold keys, parsed; blank and comment lines are left out.
    pub fn entries(&self) -> Vec<Entry> {
        self.content
            .split(|b| *b == b'\n')
            .enumerate()
            .filter_map(|(i, l)| {
                let key = match key::parse_line(&String::from_utf8_lossy(l)) {
                    Ok(None) => return None,
                    Ok(Some(k)) => Ok(k),
                    Err(key::Bad::Line(m) | key::Bad::Input(m)) => Err(m),
                };
                Some(Entry { line: i + 1, key })
            })
            .collect()
    }

    /// The content with `lines` appended, each on its own line; what is there stays as it
    /// is, byte for byte (a missing final newline is supplied).
    pub fn appended<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
        let mut out = self.content.clone();
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The content without the lines whose key `drop` selects, and those keys.
    pub fn without(&self, mut drop: impl FnMut(&PublicKey) -> bool) -> (Vec<u8>, Vec<PublicKey>) {
        let mut out = Vec::with_capacity(self.content.len());
        let mut gone = Vec::new();
        for l in self.content.split_inclusive(|b| *b == b'\n') {
            if let Ok(Some(k)) = key::parse_line(&String::from_utf8_lossy(l)) {
                if drop(&k) {
                    gone.push(k);
                    continue;
                }
            }
            out.extend_from_slice(l);
        }
        (out, gone)
    }

    /// Why sshd (StrictModes, its default) would ignore the file whatever it holds: a home
    /// that others can write to, or that belongs to someone else.
    pub fn home_problem(&self) -> Option<String> {
        let fd = self
            .root
            .open_in(&self.home, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .ok()?;
        let st = fstat(fd.as_fd()).ok()?;
        let shown = self.root.path().join(&self.home);
        if st.st_uid != self.user.uid && st.st_uid != 0 {
            Some(format!(
                "{} belongs to uid {}, not {} ({}): sshd will ignore the keys",
                shown.display(),
                st.st_uid,
                self.user.name,
                self.user.uid
            ))
        } else if st.st_mode & 0o022 != 0 {
            Some(format!(
                "{} is writable by group or others (mode {:o}): sshd will ignore the keys \
                 (chmod go-w {})",
                shown.display(),
                st.st_mode & 0o7777,
                shown.display()
            ))
        } else {
            None
        }
    }

    /// Replaces the file with `content`: `.ssh` created or set to 0700 and the file to 0600,
    /// both owned by the user. Returns what was fixed on the way, for the report.
    pub fn replace(&self, content: &[u8]) -> Result<Vec<String>> {
        let mut fixed = Vec::new();
        let ssh_shown = self.root.path().join(&self.home).join(SSH_DIR);
        let home_fd = self
            .root
            .open_in(&self.home, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .at(&self.root.path().join(&self.home))?;
        match nix::sys::stat::mkdirat(&home_fd, SSH_DIR, Mode::from_bits_truncate(0o700)) {
            Ok(()) => fixed.push(format!("created {}", ssh_shown.display())),
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::path(errno(e), &ssh_shown)),
        }
        let ssh_fd = nix::fcntl::openat(
            &home_fd,
            SSH_DIR,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::path(errno(e), &ssh_shown))?;
        self.own(ssh_fd.as_fd(), 0o700, &ssh_shown, &mut fixed)?;
        // Fetching may have taken a while: if someone changed the file meanwhile, their
        // change must not be lost under ours. (No symlink may have appeared there either.)
        let now = match nix::fcntl::openat(
            &ssh_fd,
            KEYS,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Some(read_capped(fd, &self.path)?),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(Error::path(errno(e), &self.path)),
        };
        if now.as_deref() != self.exists.then_some(&self.content[..]) {
            return Err(Error::system(format!(
                "{} changed while rtool was working: nothing written",
                self.path.display()
            ))
            .hint("run the command again"));
        }

        // Ok, enough checks: write beside the file, then rename over it.
        let tmp = format!(".{KEYS}.rtool-{}", std::process::id());
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let open_tmp = || {
            nix::fcntl::openat(
                &ssh_fd,
                tmp.as_str(),
                flags,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = match open_tmp() {
            // Left behind by a run that was killed: ours to remove.
            Err(Errno::EEXIST) => {
                let _ = nix::unistd::unlinkat(
                    &ssh_fd,
                    tmp.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                open_tmp()
            }
            r => r,
        }
        .map_err(|e| Error::path(errno(e), &ssh_shown.join(&tmp)))?;
        let result = (|| {
            let mut f = File::from(fd);
            f.write_all(content)
                .map_err(|e| crate::sys::write_error(e, &self.path, &self.path, ""))?;
            self.own(f.as_fd(), 0o600, &self.path, &mut Vec::new())?;
            f.sync_all()
                .map_err(|e| crate::sys::write_error(e, &self.path, &self.path, ""))?;
            nix::fcntl::renameat(&ssh_fd, tmp.as_str(), &ssh_fd, KEYS)
                .map_err(|e| Error::path(errno(e), &self.path))
        })();
        if let Err(e) = result {
            let _ = nix::unistd::unlinkat(
                &ssh_fd,
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(e);
        }
        // The rename is durable once the directory is.
        nix::unistd::fsync(&ssh_fd).map_err(|e| Error::path(errno(e), &ssh_shown))?;
        Ok(fixed)
    }

    /// Gives `fd` the user's uid and gid and `mode`, noting what changed.
    fn own(
        &self,
        fd: BorrowedFd<'_>,
        mode: u32,
        shown: &Path,
        fixed: &mut Vec<String>,
    ) -> Result<()> {
        let st = fstat(fd).map_err(|e| Error::path(errno(e), shown))?;
        let (uid, gid) = (self.user.uid, self.user.gid);
        if (st.st_uid, st.st_gid) != (uid, gid) {
            nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(
                |e| {
                    let e = Error::path(errno(e), shown)
                        .context(format!("giving it to {} ({uid}:{gid})", self.user.name));
                    if e.kind() == Kind::System && !crate::sys::is_root() {
                        e.hint("run as root")
                    } else {
                        e
                    }
                },
            )?;
            fixed.push(format!(
                "owner of {} {}:{} {} {uid}:{gid}",
                shown.display(),
                st.st_uid,
                st.st_gid,
                crate::text::glyph("→")
            ));
        }
        if st.st_mode & 0o7777 != mode {
            nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))
                .map_err(|e| Error::path(errno(e), shown))?;
            fixed.push(format!(
                "mode of {} {:o} {} {mode:o}",
                shown.display(),
                st.st_mode & 0o7777,
                crate::text::glyph("→")
            ));
        }
        Ok(())
    }
}

/// lstat of `name` in the directory `dir`; `None` when it does not exist.
fn lstat_at(dir: &OwnedFd, name: &str, shown: &Path) -> Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::path(errno(e), shown)),
    }
}

/// Refuses a symlink at `name`, saying where it points.
fn refuse_link(dir: &OwnedFd, name: &str, st: Option<&FileStat>, shown: &Path) -> Result<()> {
    if !st.is_some_and(|st| existing_of(st) == Existing::Symlink) {
        return Ok(());
    }
    let target = nix::fcntl::readlinkat(dir, name)
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into());
    Err(Error::new(
        Kind::Invalid,
        format!(
            "{} is a symlink (to {target}): refusing to write through it",
            shown.display()
        ),
    )
    .hint("make it a plain file or directory, or add the key where the link points"))
}
