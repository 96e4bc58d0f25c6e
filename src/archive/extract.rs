//! Reading pacman packages (tar in zstd, xz, gzip, bzip2 or nothing) and extracting them into
//! a jailed root with pacman's semantics: numeric owners, full modes, mtimes, extended
//! attributes; metadata members skipped; replaced files renamed into place atomically.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use crate::archive::rooted::{self, split, Existing, Root};
use crate::archive::Exact;
use crate::decompress::{self, Compression, Counting, Pipelined};
use crate::error::{Error, IoContext, Kind, Result};

/// The kinds of member a package can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

impl EntryKind {
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Hardlink => "hardlink",
            EntryKind::Char => "char device",
            EntryKind::Block => "block device",
            EntryKind::Fifo => "fifo",
        }
    }

    /// The kind in a sentence: "a directory", "a hard link".
    pub fn article(self) -> &'static str {
        match self {
            EntryKind::File => "a file",
            EntryKind::Dir => "a directory",
            EntryKind::Symlink => "a symlink",
            EntryKind::Hardlink => "a hard link",
            EntryKind::Char => "a character device",
            EntryKind::Block => "a block device",
            EntryKind::Fifo => "a fifo",
        }
    }
}

/// One member's header, with pax extensions applied.
#[derive(Clone, Debug)]
pub struct Member {
    /// The name as stored in the archive.
    pub raw_name: Vec<u8>,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub size: u64,
    pub link: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub dev: (u32, u32),
}

impl Member {
    /// pacman keeps top-level dot files (`.PKGINFO`, `.MTREE`, `.INSTALL`…) out of the root.
    pub fn is_metadata(&self) -> bool {
        let name = self.raw_name.strip_prefix(b"./").unwrap_or(&self.raw_name);
        name.first() == Some(&b'.') && !name[..name.len().saturating_sub(1)].contains(&b'/')
    }

    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.raw_name).into_owned()
    }
}

/// A member name as messages show it: whole when it is of a sane length, else its start and
/// end around the count of bytes left out, so a hostile name cannot flood the terminal.
pub fn shown_name(raw: &[u8]) -> String {
    const KEEP: usize = 120;
    if raw.len() <= KEEP * 2 {
        return String::from_utf8_lossy(raw).into_owned();
    }
    format!(
        "{}{e}[{} bytes]{e}{}",
        String::from_utf8_lossy(&raw[..KEEP]),
        raw.len() - KEEP - 40,
        String::from_utf8_lossy(&raw[raw.len() - 40..]),
        e = crate::text::glyph("…")
    )
}

/// The longest name a Linux file system takes for one path component (NAME_MAX).
const NAME_MAX: usize = 255;
/// The longest path the kernel takes, without its final NUL (PATH_MAX - 1).
const PATH_MAX: usize = 4095;

/// A member name or link target that no Linux file system could hold is the archive's fault,
/// found before anything is written.
fn check_name(what: &str, name: &[u8]) -> Result<()> {
    if name.len() > PATH_MAX {
        return Err(Error::invalid(format!(
            "{what} of {} bytes exceeds the kernel's limit ({PATH_MAX})",
            name.len()
        )));
    }
    if let Some(c) = name.split(|&b| b == b'/').find(|c| c.len() > NAME_MAX) {
        return Err(Error::invalid(format!(
            "{what} has a name component of {} bytes, beyond the file system's limit ({NAME_MAX}): {}",
            c.len(),
            shown_name(c)
        )));
    }
    Ok(())
}

/// A package opened for reading: a streaming tar over the right decompressor, on its own thread.
pub struct Package {
    pub path: PathBuf,
    pub size: u64,
    pub compression: Compression,
    /// Compressed bytes read so far (for progress and error offsets).
    pub read: Arc<AtomicU64>,
    /// Uncompressed (tar) bytes read so far.
    pub tar_read: Arc<AtomicU64>,
    archive: tar::Archive<Counting<Pipelined>>,
}

impl Package {
    pub fn open(path: &Path) -> Result<Package> {
        let file = File::open(path).at(path)?;
        let size = file.metadata().at(path)?.len();
        let (counting, read) = Counting::new(file);
        let (compression, dec) =
            decompress::decoder(counting).map_err(|e| e.context(path.display().to_string()))?;
        let (tar_stream, tar_read) = Counting::new(Pipelined::new(dec));
        Ok(Package {
            path: path.to_path_buf(),
            size,
            compression,
            read,
            tar_read,
            archive: tar::Archive::new(tar_stream),
        })
    }

    /// The data of the top-level member `name` (`.PKGINFO`, `.MTREE`), read up to `limit`
    /// bytes; `None` when the package has no such member. Stops reading at that member.
    pub fn read_member(self, name: &[u8], limit: u64) -> Result<Option<Vec<u8>>> {
        let mut found = None;
        self.for_each(|m, data| {
            if m.raw_name.strip_prefix(b"./").unwrap_or(&m.raw_name) != name {
                return Ok(true);
            }
            let mut bytes = Vec::new();
            data.take(limit).read_to_end(&mut bytes).map_err(|e| {
                Error::invalid(format!("{} cannot be read", m.name())).with_source(e)
            })?;
            found = Some(bytes);
            Ok(false)
        })?;
        Ok(found)
    }

    /// Calls `f` for every member, in archive order, with the member's data as a reader;
    /// `f` returns false to stop early. Corrupt or truncated input ends with an error naming
    /// the last good member and the offsets.
    pub fn for_each(self, mut f: impl FnMut(&Member, &mut dyn Read) -> Result<bool>) -> Result<()> {
        self.each(&mut f)
    }

    /// [`Package::for_each`]'s work, compiled once rather than once per caller.
    fn each(self, f: &mut dyn FnMut(&Member, &mut dyn Read) -> Result<bool>) -> Result<()> {
        let Package {
            path,
            read,
            tar_read,
            mut archive,
            ..
        } = self;
        let pkg = path.display().to_string();
        let mut last: Option<String> = None;
        let mut end_of_data = 0u64;
        let corrupt = |e: io::Error, last: &Option<String>| -> Error {
            let after = match last {
                Some(n) if n.starts_with("inside ") => n.clone(),
                Some(n) => format!("after member {n}"),
                None => "before the first member".into(),
            };
            Error::new(
                Kind::Invalid,
                format!(
                    "{pkg}: corrupt or truncated package {after} (at byte {} of the file, byte {} of the tar stream)",
                    read.load(Ordering::Relaxed),
                    tar_read.load(Ordering::Relaxed)
                ),
            )
            .with_source(e)
        };
        {
            let entries = archive.entries().map_err(|e| corrupt(e, &last))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| corrupt(e, &last))?;
                let member = member_of(&mut entry).map_err(|e| {
                    e.context(format!("{pkg}: member {}", shown_name(&entry.path_bytes())))
                })?;
                end_of_data = entry.raw_file_position() + member.size.div_ceil(512) * 512;
                let name = member.name();
                let mut data = Exact {
                    inner: &mut entry,
                    left: member.size,
                    failed: false,
                };
                let go = match f(&member, &mut data) {
                    Ok(go) => go,
                    // The data could not be read: say where, as for any corrupt input.
                    Err(e) if data.failed => {
                        let within = Some(format!("inside member {name}"));
                        return Err(corrupt(io::Error::other(e.to_string()), &within));
                    }
                    Err(e) => return Err(e),
                };
                if data.left > 0 && go {
                    // Skip what the callback did not read, checking it is really there.
                    io::copy(&mut data, &mut io::sink()).map_err(|e| corrupt(e, &last))?;
                }
                last = Some(name);
                if !go {
                    return Ok(());
                }
            }
        }
        // A tar ends with two zero blocks; without them (a plain .pkg.tar cut at a block
        // boundary) members would silently be missing. Drain the rest: the decompressor
        // checks its own end of stream there too.
        let mut inner = archive.into_inner();
        io::copy(&mut inner, &mut io::sink()).map_err(|e| corrupt(e, &last))?;
        if tar_read.load(Ordering::Relaxed) < end_of_data + 1024 {
            return Err(corrupt(
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the end-of-archive marker is missing",
                ),
                &last,
            ));
        }
        Ok(())
    }
}

fn member_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Member> {
    let h = entry.header();
    let et = h.entry_type();
    let kind = match et {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Directory => EntryKind::Dir,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Link => EntryKind::Hardlink,
        tar::EntryType::Char => EntryKind::Char,
        tar::EntryType::Block => EntryKind::Block,
        tar::EntryType::Fifo => EntryKind::Fifo,
        other => {
            return Err(Error::invalid(format!(
                "unsupported member type {:?} (tar type '{}')",
                other,
                other.as_byte() as char
            )))
        }
    };
    let bad = |what: &str, e: io::Error| Error::invalid(format!("bad {what} field")).with_source(e);
    let mode = h.mode().map_err(|e| bad("mode", e))? & 0o7777;
    let uid = u32::try_from(h.uid().map_err(|e| bad("uid", e))?)
        .map_err(|_| Error::invalid("uid out of range"))?;
    let gid = u32::try_from(h.gid().map_err(|e| bad("gid", e))?)
        .map_err(|_| Error::invalid("gid out of range"))?;
    let mut mtime = (h.mtime().map_err(|e| bad("mtime", e))? as i64, 0u32);
    let dev = match kind {
        EntryKind::Char | EntryKind::Block => (
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        ),
        _ => (0, 0),
    };
    let size = entry.size();
    let raw_name = entry.path_bytes().into_owned();
    let link = entry.link_name_bytes().map(|l| l.into_owned());
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(|e| bad("pax header", e))? {
        for ext in pax {
            let ext = ext.map_err(|e| bad("pax header", e))?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            } else if key == b"size" {
                // A size record that is not a plain decimal the header reader took would
                // leave the data's end to the ustar field: the archive is lying somewhere.
                let v = ext.value_bytes();
                let parsed = std::str::from_utf8(v)
                    .ok()
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<u64>().ok());
                if parsed != Some(size) {
                    return Err(Error::invalid(format!(
                        "bad pax size record {:?}",
                        shown_name(v)
                    )));
                }
            }
        }
    }
    check_name("the name", &raw_name)?;
    if let Some(l) = &link {
        check_name("the link target", l)?;
    }
    if matches!(kind, EntryKind::Symlink | EntryKind::Hardlink)
        && link.as_ref().is_none_or(|l| l.is_empty())
    {
        return Err(Error::invalid("a link without a target"));
    }
    Ok(Member {
        raw_name,
        kind,
        mode,
        uid,
        gid,
        mtime,
        size,
        link,
        xattrs,
        dev,
    })
}

/// pax `mtime`: decimal seconds with an optional fraction (`1712094817.5`).
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += c.to_digit(10)? * 10u32.pow(8 - i as u32);
    }
    Some((secs, nanos))
}

/// How extraction treats what it finds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Extract the metadata members (`.PKGINFO`, `.MTREE`, …) too.
    pub all: bool,
    /// Replace existing paths of another type (a file by a symlink, an empty directory by a file).
    pub force: bool,
    /// Create device nodes and FIFOs.
    pub devices: bool,
    /// Set numeric owners (when running as root).
    pub owners: bool,
    /// Write files, symlinks and hard links under a temporary name beside their place
    /// ([`stage_name`]) and leave them there: the caller renames them into place
    /// ([`Extractor::staged`]). A new directory is made under that name too, given its
    /// owner and mode, and renamed to its own name at once: a kill never leaves one half made.
    pub stage: bool,
}

/// The temporary name a staged member waits under: fixed for a path, so a rerun after an
/// interruption finds and replaces what the interrupted run left.
pub fn stage_name(rel: &Path) -> String {
    // FNV-1a, 64 bits: short, stable across versions, collisions irrelevant within a directory.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in rel.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!(".rtool-new.{h:016x}")
}

/// A member written under its [`stage_name`].
#[derive(Clone, Debug)]
pub struct Staged {
    pub rel: PathBuf,
    pub kind: EntryKind,
    /// The md5 of a regular file's data, when it was asked for ([`Extractor::md5_of`]).
    pub md5: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub devices: u64,
    pub bytes: u64,
    pub replaced: u64,
    pub skipped: u64,
}

/// Writes members into a jailed root.
pub struct Extractor {
    root: Root,
    opts: Options,
    /// Regular files written in this run: the only allowed hard-link targets.
    files: HashSet<PathBuf>,
    /// Symlinks created in this run: never passed through by later members.
    symlinks: HashSet<PathBuf>,
    /// Directories created in this run: their modes, owners and times are set last, so a
    /// read-only directory can still be filled.
    dirs: Vec<(PathBuf, Member)>,
    buf: Vec<u8>,
    tmp_seq: u64,
    pub stats: Stats,
    /// Members written under temporary names, in archive order (stage mode).
    pub staged: Vec<Staged>,
    /// Regular files whose md5 is computed while they are written (backup files).
    pub md5_of: HashSet<PathBuf>,
    /// Directories this run created, in creation order (for undoing a failed stage).
    pub created_dirs: Vec<PathBuf>,
    /// Every path a member of this run named, with the member's type.
    made: HashMap<PathBuf, EntryKind>,
}

const BUF: usize = 256 << 10;

/// `renameat2(RENAME_NOREPLACE)` within one directory: EEXIST when `to` is taken. Called as
/// a raw system call, since not every C library the binary links has a wrapper.
fn rename_noreplace(dir: BorrowedFd<'_>, from: &str, to: &std::ffi::OsStr) -> nix::Result<()> {
    let from = std::ffi::CString::new(from).map_err(|_| Errno::EINVAL)?;
    let to = std::ffi::CString::new(to.as_bytes()).map_err(|_| Errno::EINVAL)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    // SAFETY: both names are NUL-terminated strings that live across the call, and `fd` is a
    // directory descriptor borrowed for its duration; the kernel reads nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            fd,
            from.as_ptr(),
            fd,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    Errno::result(r).map(drop)
}

fn io_errno(e: io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn ts(t: (i64, u32)) -> TimeSpec {
    TimeSpec::new(t.0, t.1 as i64)
}

impl Extractor {
    pub fn new(root: Root, opts: Options) -> Extractor {
        Extractor {
            root,
            opts,
            files: HashSet::new(),
            symlinks: HashSet::new(),
            dirs: Vec::new(),
            buf: vec![0; BUF],
            tmp_seq: 0,
            stats: Stats::default(),
            staged: Vec::new(),
            md5_of: HashSet::new(),
            created_dirs: Vec::new(),
            made: HashMap::new(),
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Writes one member (its data read from `data`).
    pub fn entry(&mut self, m: &Member, data: &mut dyn Read) -> Result<()> {
        if m.is_metadata() && !self.opts.all {
            self.stats.skipped += 1;
            return Ok(());
        }
        let name = m.name();
        let Some(rel) =
            rooted::sanitize(&m.raw_name).map_err(|e| e.context(format!("member {name}")))?
        else {
            return Ok(()); // `./`: the root itself keeps its mode and owner
        };
        // The same path twice as different types: the archive contradicts itself, whatever
        // is on disk (the second member would meet the first and look like a conflict).
        match self.made.get(&rel) {
            Some(&k) if k != m.kind => {
                return Err(Error::invalid(format!(
                    "{} is in the archive twice, first as {}, then as {}",
                    shown_name(&m.raw_name),
                    k.article(),
                    m.kind.article()
                )));
            }
            Some(_) => {}
            None => {
                self.made.insert(rel.clone(), m.kind);
            }
        }
        if let Some(link) = self.through_own_symlink(&rel) {
            return Err(Error::invalid(format!(
                "{name} lies beyond the symlink {} that this package created: refused (a package never writes through its own symlinks)",
                link.display()
            )));
        }
        let r = match m.kind {
            EntryKind::File => self.file(&rel, m, data),
            EntryKind::Dir => self.dir(&rel, m),
            EntryKind::Symlink => self.symlink(&rel, m),
            EntryKind::Hardlink => self.hardlink(&rel, m),
            EntryKind::Char | EntryKind::Block | EntryKind::Fifo => self.special(&rel, m),
        };
        r.map_err(|e| e.context(name))
    }

    /// The symlink made by this run that `rel` would pass through, if any. Symlinks already in
    /// the target (`lib -> usr/lib`) are followed, inside the root; the package's own are not,
    /// or a package could point `etc` anywhere and then write into it.
    fn through_own_symlink(&self, rel: &Path) -> Option<PathBuf> {
        if self.symlinks.is_empty() {
            return None;
        }
        rel.ancestors()
            .skip(1)
            .find(|a| self.symlinks.contains(*a))
            .map(Path::to_path_buf)
    }

    fn tmp_name(&mut self) -> String {
        self.tmp_seq += 1;
        format!(".rtool-{}-{}.tmp", std::process::id(), self.tmp_seq)
    }

    fn conflict(&self, rel: &Path, found: Existing, want: &str) -> Error {
        let found = match found {
            Existing::File => "a file",
            Existing::Dir => "a directory",
            Existing::Symlink => "a symlink",
            Existing::Other => "a special file",
            Existing::Nothing => "nothing",
        };
        let _ = rel;
        Error::system(format!(
            "{found} is on disk where the package has {want}: not replaced"
        ))
        .hint("--force replaces paths of another type (never a non-empty directory)")
    }

    /// Clears `name` in `dir` for a member of another type, when allowed.
    fn clear_for(&mut self, rel: &Path, found: Existing, want: &str) -> Result<()> {
        if !self.opts.force {
            return Err(self.conflict(rel, found, want));
        }
        let (parent, name) = split(rel);
        let flag = if found == Existing::Dir {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        let dir = self.root.dir(parent, true)?;
        nix::unistd::unlinkat(dir, name, flag).map_err(|e| {
            if e == Errno::ENOTEMPTY || e == Errno::EEXIST {
                Error::system(
                    "a non-empty directory is in the way: not replaced, even with --force",
                )
            } else {
                Error::from(errno_io(e))
            }
        })?;
        self.root.forget();
        self.stats.replaced += 1;
        Ok(())
    }

    fn file(&mut self, rel: &Path, m: &Member, data: &mut dyn Read) -> Result<()> {
        let (parent, name) = split(rel);
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o600);
        if self.opts.stage {
            return self.stage_file(rel, m, data);
        }
        let dir = self.root.dir(parent, true)?;
        let (fd, tmp) = match nix::fcntl::openat(dir, name, flags, mode) {
            Ok(fd) => (fd, None),
            Err(Errno::EEXIST) => {
                let found = self.root.existing(rel)?;
                if found != Existing::File {
                    self.clear_for(rel, found, "a file")?;
                    return self.file(rel, m, data);
                }
                // Replacing a file: write beside it, rename over it when complete.
                let tmp = self.tmp_name();
                let dir = self.root.dir(parent, true)?;
                let fd = nix::fcntl::openat(dir, tmp.as_str(), flags, mode)
                    .map_err(|e| Error::from(errno_io(e)))?;
                (fd, Some(tmp))
            }
            Err(e) => return Err(Error::from(errno_io(e))),
        };
        let written_name: &std::ffi::OsStr =
            tmp.as_deref().map(std::ffi::OsStr::new).unwrap_or(name);
        let result = self.fill(fd, m, data, rel);
        let dir = self.root.dir(parent, true)?;
        if let Err(e) = result {
            // Leave nothing half-written behind: the old file, if any, is untouched.
            let _ = nix::unistd::unlinkat(dir, written_name, UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        if let Some(tmp) = &tmp {
            if let Err(e) = nix::fcntl::renameat(dir, tmp.as_str(), dir, name) {
                let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(Error::from(errno_io(e)));
            }
            self.stats.replaced += 1;
        }
        self.files.insert(rel.to_path_buf());
        self.stats.files += 1;
        self.stats.bytes += m.size;
        Ok(())
    }

    /// A file written under its stage name (a leftover of that name is replaced).
    fn stage_file(&mut self, rel: &Path, m: &Member, data: &mut dyn Read) -> Result<()> {
        let (parent, _) = split(rel);
        let tmp = stage_name(rel);
        let flags =
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = self.root.dir(parent, true)?;
        let mode = Mode::from_bits_truncate(0o600);
        // A leftover of an interrupted run is removed only when there is one.
        let fd = match nix::fcntl::openat(dir, tmp.as_str(), flags, mode) {
            Err(Errno::EEXIST) => {
                let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                nix::fcntl::openat(dir, tmp.as_str(), flags, mode)
            }
            r => r,
        }
        .map_err(|e| Error::from(errno_io(e)))?;
        let mut md5 = self
            .md5_of
            .contains(rel)
            .then(<md5::Md5 as md5::Digest>::new);
        let result = self.fill_hashing(fd, m, data, rel, md5.as_mut());
        if let Err(e) = result {
            let dir = self.root.dir(parent, true)?;
            let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        self.files.insert(rel.to_path_buf());
        self.stats.files += 1;
        self.stats.bytes += m.size;
        self.staged.push(Staged {
            rel: rel.to_path_buf(),
            kind: EntryKind::File,
            md5: md5.map(|h| crate::hash::hex(&md5::Digest::finalize(h))),
        });
        Ok(())
    }

    /// Copies the data into `fd`, then sets owner, mode, extended attributes and times.
    fn fill(&mut self, fd: OwnedFd, m: &Member, data: &mut dyn Read, rel: &Path) -> Result<()> {
        self.fill_hashing(fd, m, data, rel, None)
    }

    fn fill_hashing(
        &mut self,
        fd: OwnedFd,
        m: &Member,
        data: &mut dyn Read,
        rel: &Path,
        mut md5: Option<&mut md5::Md5>,
    ) -> Result<()> {
        let mut f = File::from(fd);
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::invalid("the package data cannot be read").with_source(e))
                }
            };
            if let Some(h) = md5.as_deref_mut() {
                md5::Digest::update(h, &self.buf[..n]);
            }
            f.write_all(&self.buf[..n])
                .map_err(|e| write_error(e, self.root.path(), rel, m.size))?;
        }
        self.meta_fd(f.as_fd(), m).at(rel)
    }

    /// Owner, mode and times of the directory `rel`, from its member.
    fn dir_meta(&self, rel: &Path, m: &Member) -> io::Result<()> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
        let fd = self.root.open_in(rel, flags)?;
        self.meta_fd(fd.as_fd(), m)
    }

    fn meta_fd(&self, fd: BorrowedFd<'_>, m: &Member) -> io::Result<()> {
        if self.opts.owners {
            nix::unistd::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))
                .map_err(errno_io)?;
        }
        // After chown, which clears setuid/setgid bits.
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(m.mode)).map_err(errno_io)?;
        // After chown too: the kernel drops security.capability on chown.
        for (k, v) in &m.xattrs {
            rooted::set_xattr(fd, k, v)?;
        }
        nix::sys::stat::futimens(fd, &ts(m.mtime), &ts(m.mtime)).map_err(errno_io)
    }

    fn dir(&mut self, rel: &Path, m: &Member) -> Result<()> {
        let (parent, name) = split(rel);
        let made = if self.opts.stage {
            self.stage_dir(rel, m)
        } else {
            let dir = self.root.dir(parent, true)?;
            nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700))
        };
        match made {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                // An existing directory, or a symlink to one inside the root (`lib -> usr/lib`),
                // keeps its own mode and owner, as with pacman.
                if self.root.is_dir_following(rel) {
                    return Ok(());
                }
                let found = self.root.existing(rel)?;
                self.clear_for(rel, found, "a directory")?;
                return self.dir(rel, m);
            }
            Err(e) => return Err(Error::from(errno_io(e))),
        }
        self.created_dirs.push(rel.to_path_buf());
        self.dirs.push((rel.to_path_buf(), m.clone()));
        self.stats.dirs += 1;
        Ok(())
    }

    /// A staged install may be killed at any point, and a rerun keeps the directories it
    /// finds: so a new directory is made under its staging name, given its owner and mode,
    /// and only then renamed to its name (never over anything). EEXIST: something is there.
    fn stage_dir(&mut self, rel: &Path, m: &Member) -> std::result::Result<(), Errno> {
        let (parent, name) = split(rel);
        let tmp = stage_name(rel);
        let dir = self.root.dir(parent, true).map_err(io_errno)?;
        // Left by a killed run: always empty, as nothing is made inside before the rename.
        let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::RemoveDir);
        nix::sys::stat::mkdirat(dir, tmp.as_str(), Mode::from_bits_truncate(0o700))?;
        let remove_tmp = |root: &mut Root| {
            if let Ok(d) = root.dir(parent, false) {
                let _ = nix::unistd::unlinkat(d, tmp.as_str(), UnlinkatFlags::RemoveDir);
            }
        };
        if let Err(e) = self.dir_meta(&parent.join(&tmp), m) {
            remove_tmp(&mut self.root);
            return Err(io_errno(e));
        }
        let dir = self.root.dir(parent, false).map_err(io_errno)?;
        let r = rename_noreplace(dir, tmp.as_str(), name);
        if r.is_err() {
            remove_tmp(&mut self.root);
        }
        r
    }

    fn symlink(&mut self, rel: &Path, m: &Member) -> Result<()> {
        let target = std::ffi::OsStr::from_bytes(m.link.as_deref().unwrap_or_default());
        let (parent, name) = split(rel);
        let staged = self.opts.stage.then(|| stage_name(rel));
        let dir = self.root.dir(parent, true)?;
        if let Some(tmp) = &staged {
            let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        let made = match &staged {
            Some(tmp) => nix::unistd::symlinkat(target, dir, tmp.as_str()),
            None => nix::unistd::symlinkat(target, dir, name),
        };
        let placed: String = match made {
            Ok(()) if staged.is_some() => staged.clone().unwrap_or_default(),
            Ok(()) => String::new(),
            Err(Errno::EEXIST) => {
                let found = self.root.existing(rel)?;
                if found == Existing::Dir || (found != Existing::Symlink && !self.opts.force) {
                    self.clear_for(rel, found, "a symlink")?;
                    return self.symlink(rel, m);
                }
                let tmp = self.tmp_name();
                let dir = self.root.dir(parent, true)?;
                nix::unistd::symlinkat(target, dir, tmp.as_str())
                    .map_err(|e| Error::from(errno_io(e)))?;
                self.stats.replaced += 1;
                tmp
            }
            Err(e) => return Err(Error::from(errno_io(e))),
        };
        let dir = self.root.dir(parent, true)?;
        let at: &std::ffi::OsStr = if placed.is_empty() {
            name
        } else {
            std::ffi::OsStr::new(&placed)
        };
        let owners = self.opts.owners;
        let r = (|| -> io::Result<()> {
            if owners {
                nix::unistd::fchownat(
                    dir,
                    at,
                    Some(Uid::from_raw(m.uid)),
                    Some(Gid::from_raw(m.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(errno_io)?;
            }
            nix::sys::stat::utimensat(
                dir,
                at,
                &ts(m.mtime),
                &ts(m.mtime),
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(errno_io)?;
            if !placed.is_empty() && staged.is_none() {
                nix::fcntl::renameat(dir, at, dir, name).map_err(errno_io)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            if !placed.is_empty() {
                let _ = nix::unistd::unlinkat(dir, placed.as_str(), UnlinkatFlags::NoRemoveDir);
            }
            return Err(Error::from(e));
        }
        self.symlinks.insert(rel.to_path_buf());
        self.stats.symlinks += 1;
        if staged.is_some() {
            self.staged.push(Staged {
                rel: rel.to_path_buf(),
                kind: EntryKind::Symlink,
                md5: None,
            });
        }
        Ok(())
    }

    fn hardlink(&mut self, rel: &Path, m: &Member) -> Result<()> {
        let raw = m.link.as_deref().unwrap_or_default();
        let shown = String::from_utf8_lossy(raw).into_owned();
        let target = rooted::sanitize(raw)
            .map_err(|e| e.context(format!("hard link target {shown}")))?
            .filter(|t| self.files.contains(t))
            .ok_or_else(|| {
                Error::invalid(format!("hard link to {shown}, which is not a file extracted from this package: refused"))
            })?;
        if self.opts.stage {
            return self.stage_hardlink(rel, &target);
        }
        let (tparent, tname) = split(&target);
        let tdir = self
            .root
            .open_in(tparent, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .at(&target)?;
        let (parent, name) = split(rel);
        let dir = self.root.dir(parent, true)?;
        match nix::unistd::linkat(&tdir, tname, dir, name, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let same = match (self.root.lstat(rel), self.root.lstat(&target)) {
                    (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
                    _ => false,
                };
                if !same {
                    let found = self.root.existing(rel)?;
                    if found != Existing::File {
                        self.clear_for(rel, found, "a hard link")?;
                        return self.hardlink(rel, m);
                    }
                    let tmp = self.tmp_name();
                    let dir = self.root.dir(parent, true)?;
                    nix::unistd::linkat(&tdir, tname, dir, tmp.as_str(), AtFlags::empty())
                        .map_err(|e| Error::from(errno_io(e)))?;
                    if let Err(e) = nix::fcntl::renameat(dir, tmp.as_str(), dir, name) {
                        let _ =
                            nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                        return Err(Error::from(errno_io(e)));
                    }
                    self.stats.replaced += 1;
                }
            }
            Err(e) => return Err(Error::from(errno_io(e))),
        }
        self.stats.hardlinks += 1;
        Ok(())
    }

    /// A hard link to the staged file `target`, itself under its stage name.
    fn stage_hardlink(&mut self, rel: &Path, target: &Path) -> Result<()> {
        let (tparent, _) = split(target);
        let ttmp = stage_name(target);
        let tdir = self
            .root
            .open_in(tparent, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .at(target)?;
        let (parent, _) = split(rel);
        let tmp = stage_name(rel);
        let dir = self.root.dir(parent, true)?;
        let _ = nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        nix::unistd::linkat(&tdir, ttmp.as_str(), dir, tmp.as_str(), AtFlags::empty())
            .map_err(|e| Error::from(errno_io(e)))?;
        self.stats.hardlinks += 1;
        self.staged.push(Staged {
            rel: rel.to_path_buf(),
            kind: EntryKind::Hardlink,
            md5: None,
        });
        Ok(())
    }

    fn special(&mut self, rel: &Path, m: &Member) -> Result<()> {
        if !self.opts.devices {
            return Err(Error::invalid(format!(
                "a {}: refused (packages install none; --devices allows it)",
                m.kind.word()
            )));
        }
        let kind = match m.kind {
            EntryKind::Char => SFlag::S_IFCHR,
            EntryKind::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        let (parent, name) = split(rel);
        let found = self.root.existing(rel)?;
        if found != Existing::Nothing {
            self.clear_for(rel, found, "a special file")?;
        }
        let dir = self.root.dir(parent, true)?;
        let dev = nix::sys::stat::makedev(m.dev.0.into(), m.dev.1.into());
        nix::sys::stat::mknodat(dir, name, kind, Mode::from_bits_truncate(m.mode), dev)
            .map_err(|e| Error::from(errno_io(e)))?;
        if self.opts.owners {
            nix::unistd::fchownat(
                dir,
                name,
                Some(Uid::from_raw(m.uid)),
                Some(Gid::from_raw(m.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Error::from(errno_io(e)))?;
        }
        nix::sys::stat::fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(m.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| Error::from(errno_io(e)))?;
        nix::sys::stat::utimensat(
            dir,
            name,
            &ts(m.mtime),
            &ts(m.mtime),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| Error::from(errno_io(e)))?;
        self.stats.devices += 1;
        Ok(())
    }

    /// Sets the directories' modes, owners and times, deepest first. Called on success and
    /// on failure alike, so directories are never left at their temporary mode.
    pub fn finish(&mut self) -> Result<Stats> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        let mut first_err = None;
        for (rel, m) in &dirs {
            if let Err(e) = self.dir_meta(rel, m) {
                first_err.get_or_insert(Error::path(e, rel));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(self.stats),
        }
    }
}

/// A failed write; a full filesystem is named with its size and free space.
fn write_error(e: io::Error, root: &Path, rel: &Path, size: u64) -> Error {
    let abs = root.join(rel);
    let then = format!(
        " ({}); the partial file was removed",
        crate::units::human(size)
    );
    crate::sys::write_error(e, &abs, rel, &then)
}
