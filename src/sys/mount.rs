//! Entering an installed system the way arch-chroot does: a stack of mounts (and other steps
//! to undo, such as `cryptsetup close` or `zpool export`) torn down in reverse order, the API
//! filesystems with arch-chroot's exact options, the host's resolv.conf, and running a command
//! chrooted with rtool's own SIGINT/SIGTERM/SIGHUP forwarded to it.
//!
//! Everything is meant to happen in a private mount namespace ([`crate::sys::ns::private_mounts`]),
//! so nothing reaches the host's mount table; the stack still unmounts explicitly, so that
//! every path out is clean and each step can be reported.
//!
//! resolv.conf: when the target's `/etc/resolv.conf` is a symlink, it is resolved *inside* the
//! target (absolute links and `..` stay below it, as in a chroot) and the host file is bound
//! over the file it leads to. A link that dangles even inside the target is left alone: a bind
//! mount needs an existing file to cover, and creating one could write into the host's `/run`
//! (bound at `<root>/run`). arch-chroot instead lets the kernel follow the link from the host's
//! point of view, which for an absolute link covers a host file.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};

/// A step to undo on the way out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    Unmount(PathBuf),
    /// An external command: `cryptsetup close NAME`, `zpool export POOL`.
    Run {
        program: PathBuf,
        args: Vec<OsString>,
    },
}

impl Undo {
    pub fn describe(&self) -> String {
        match self {
            Undo::Unmount(p) => format!("unmount {}", p.display()),
            Undo::Run { program, args } => {
                let mut s = program.display().to_string();
                for a in args {
                    s.push(' ');
                    s.push_str(&a.to_string_lossy());
                }
                s
            }
        }
    }
}

/// What became of one step during [`MountStack::teardown`].
#[derive(Debug)]
pub struct Outcome {
    pub undo: Undo,
    /// Left in place because of `--keep`.
    pub kept: bool,
    /// The mount was busy and was detached lazily instead.
    pub detached: bool,
    pub result: Result<()>,
}

struct Step {
    undo: Undo,
    keepable: bool,
}

/// Mounts and other steps, undone in reverse order by [`MountStack::teardown`] or on drop.
#[derive(Default)]
pub struct MountStack {
    steps: Vec<Step>,
    keep: bool,
}

impl MountStack {
    pub fn new() -> MountStack {
        MountStack::default()
    }

    /// Leave the steps pushed as keepable in place when tearing down.
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// mount(2), pushing the unmount when it succeeds.
    pub fn mount(
        &mut self,
        source: &OsStr,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        mount_raw(source, target, fstype, flags, data)?;
        self.push(Undo::Unmount(target.to_path_buf()), false);
        Ok(())
    }

    /// Pushes a step; `keepable` ones survive a teardown with `--keep`.
    pub fn push(&mut self, undo: Undo, keepable: bool) {
        self.steps.push(Step { undo, keepable });
    }

    /// Undoes every step, last first; `report` sees each outcome as it happens.
    pub fn teardown(&mut self, report: &mut dyn FnMut(&Outcome)) {
        while let Some(step) = self.steps.pop() {
            let kept = self.keep && step.keepable;
            let mut detached = false;
            let result = if kept {
                Ok(())
            } else {
                match &step.undo {
                    Undo::Unmount(p) => match nix::mount::umount2(p, MntFlags::empty()) {
                        Ok(()) => Ok(()),
                        Err(nix::errno::Errno::EBUSY) => {
                            detached = true;
                            nix::mount::umount2(p, MntFlags::MNT_DETACH)
                                .map_err(|e| sys_err(format!("cannot unmount {}", p.display()), e))
                        }
                        Err(e) => Err(sys_err(format!("cannot unmount {}", p.display()), e)),
                    },
                    Undo::Run { program, args } => run_quiet(program, args),
                }
            };
            report(&Outcome {
                undo: step.undo,
                kept,
                detached,
                result,
            });
        }
    }
}

impl Drop for MountStack {
    fn drop(&mut self) {
        self.teardown(&mut |_| {});
    }
}

fn sys_err(what: String, e: nix::errno::Errno) -> Error {
    Error::system(what).with_source(std::io::Error::from(e))
}

fn run_quiet(program: &Path, args: &[OsString]) -> Result<()> {
    let st = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| Error::io(e, program.display()))?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::new(
            crate::error::Kind::Failed,
            format!(
                "{} failed ({st})",
                Undo::Run {
                    program: program.to_path_buf(),
                    args: args.to_vec(),
                }
                .describe()
            ),
        ))
    }
}

fn mount_raw(
    source: &OsStr,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    nix::mount::mount(Some(source), target, fstype, flags, data).map_err(|e| {
        sys_err(
            format!(
                "cannot mount {} on {}{}",
                source.to_string_lossy(),
                target.display(),
                fstype.map(|t| format!(" ({t})")).unwrap_or_default()
            ),
            e,
        )
    })
}

/// Splits fstab-style options into mount flags and the filesystem's own data string; options
/// only fstab and mount(8) understand (`defaults`, `noauto`, `nofail`, `x-*`, …) are dropped.
pub fn parse_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        let (set, clear) = match o {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "defaults" | "auto" | "noauto" | "nofail" | "user" | "users" | "nouser" | "owner"
            | "group" | "_netdev" | "loud" => continue,
            o if o.starts_with("x-") || o.starts_with("comment=") => continue,
            o => {
                data.push(o);
                continue;
            }
        };
        flags.insert(set);
        flags.remove(clear);
    }
    (flags, data.join(","))
}

/// Filesystem types the kernel can mount from a block device (`/proc/filesystems` without
/// `nodev`), in its order.
pub fn block_filesystems(proc_filesystems: &Path) -> Vec<String> {
    std::fs::read_to_string(proc_filesystems)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Mounts the block device `dev` on `target`: with `fstype` when given (not `auto`), else with
/// the type its superblock names, else by trying each type in `/proc/filesystems`. Returns the
/// type that worked.
pub fn mount_device(
    stack: &mut MountStack,
    dev: &Path,
    target: &Path,
    fstype: Option<&str>,
    options: &str,
) -> Result<String> {
    let (flags, data) = parse_options(options);
    let data = (!data.is_empty()).then_some(data.as_str());
    let mut types: Vec<String> = Vec::new();
    match fstype {
        Some(t) if t != "auto" => types.push(t.to_string()),
        _ => {
            if let Ok(Some(p)) = crate::sys::blockdev::probe(dev) {
                types.push(p.fstype.clone());
                if p.fstype.starts_with("ext") {
                    types.push("ext4".into());
                }
            }
            types.extend(block_filesystems(Path::new("/proc/filesystems")));
        }
    }
    let mut last = None;
    for t in &types {
        match stack.mount(dev.as_os_str(), target, Some(t), flags, data) {
            Ok(()) => return Ok(t.clone()),
            Err(e) => {
                last = Some(e);
                if types.len() == 1 {
                    break;
                }
            }
        }
    }
    Err(last
        .unwrap_or_else(|| Error::system(format!("cannot mount {}", dev.display())))
        .context(format!("no filesystem type could mount {}", dev.display())))
}

/// A device named to be mounted must exist and be a block device: said so, rather than as
/// "no filesystem type could mount" after the kernel refused every type in turn.
pub fn check_device(dev: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    const HINT: &str = "`lsblk -f` lists the disks and partitions, with their filesystems";
    match std::fs::metadata(dev) {
        Ok(m) if m.file_type().is_block_device() => Ok(()),
        Ok(_) => Err(Error::usage(format!("{}: not a block device", dev.display())).hint(HINT)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::missing(format!("{}: no such device", dev.display())).hint(HINT))
        }
        Err(e) => Err(Error::path(e, dev)),
    }
}

/// Mounts the API filesystems under `root` exactly as arch-chroot does (`chroot_setup`):
/// proc, sysfs (read-only), efivarfs when present, devtmpfs, devpts, shm, `/run` bound
/// (private) and a tmpfs on `/tmp`. The first failure stops; the stack holds what was made.
pub fn mount_api_filesystems(stack: &mut MountStack, root: &Path) -> Result<()> {
    let f = |s: &[MsFlags]| s.iter().fold(MsFlags::empty(), |a, b| a | *b);
    use MsFlags as M;
    let o = OsStr::new;
    stack.mount(
        o("proc"),
        &root.join("proc"),
        Some("proc"),
        f(&[M::MS_NOSUID, M::MS_NOEXEC, M::MS_NODEV]),
        None,
    )?;
    stack.mount(
        o("sys"),
        &root.join("sys"),
        Some("sysfs"),
        f(&[M::MS_NOSUID, M::MS_NOEXEC, M::MS_NODEV, M::MS_RDONLY]),
        None,
    )?;
    let efivars = root.join("sys/firmware/efi/efivars");
    if efivars.is_dir() {
        // As in arch-chroot, a failure here is ignored.
        let _ = stack.mount(
            o("efivarfs"),
            &efivars,
            Some("efivarfs"),
            f(&[M::MS_NOSUID, M::MS_NOEXEC, M::MS_NODEV]),
            None,
        );
    }
    stack.mount(
        o("udev"),
        &root.join("dev"),
        Some("devtmpfs"),
        M::MS_NOSUID,
        Some("mode=0755"),
    )?;
    // devtmpfs holds device nodes only: /dev/pts and /dev/shm exist where an init made them,
    // not on a bare initramfs system.
    for d in ["dev/pts", "dev/shm"] {
        let p = root.join(d);
        if !p.exists() {
            std::fs::create_dir(&p)
                .map_err(|e| Error::path(e, &p).context("making a mount point"))?;
        }
    }
    stack.mount(
        o("devpts"),
        &root.join("dev/pts"),
        Some("devpts"),
        f(&[M::MS_NOSUID, M::MS_NOEXEC]),
        Some("mode=0620,gid=5"),
    )?;
    stack.mount(
        o("shm"),
        &root.join("dev/shm"),
        Some("tmpfs"),
        f(&[M::MS_NOSUID, M::MS_NODEV]),
        Some("mode=1777"),
    )?;
    let run = root.join("run");
    stack.mount(o("/run"), &run, None, M::MS_BIND, None)?;
    mount_raw(o(""), &run, None, M::MS_PRIVATE, None)?;
    stack.mount(
        o("tmp"),
        &root.join("tmp"),
        Some("tmpfs"),
        f(&[M::MS_STRICTATIME, M::MS_NODEV, M::MS_NOSUID]),
        Some("mode=1777"),
    )?;
    Ok(())
}

/// What [`bind_resolv_conf`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvConf {
    /// The host's file is bound over this path (below the root).
    Bound(PathBuf),
    /// The host has no resolv.conf: nothing done.
    NoHostFile,
    /// The target has no `/etc/resolv.conf` at all: nothing done, as in arch-chroot.
    NoTargetFile,
    /// The target's resolv.conf is a symlink leading to nothing, even inside the target.
    Dangling(PathBuf),
}

/// Binds the host's resolv.conf (`host_file`, symlinks followed) over the target's
/// `/etc/resolv.conf`, resolving a symlink there inside `root` (see the module notes).
pub fn bind_resolv_conf(
    stack: &mut MountStack,
    root: &Path,
    host_file: &Path,
) -> Result<ResolvConf> {
    let Ok(src) = std::fs::canonicalize(host_file) else {
        return Ok(ResolvConf::NoHostFile);
    };
    let dest = root.join("etc/resolv.conf");
    if std::fs::symlink_metadata(&dest).is_err() {
        return Ok(ResolvConf::NoTargetFile);
    }
    let resolved = resolve_in_root(root, Path::new("/etc/resolv.conf"));
    if !std::fs::metadata(&resolved).is_ok_and(|m| m.is_file()) {
        return Ok(ResolvConf::Dangling(resolved));
    }
    stack.mount(src.as_os_str(), &resolved, None, MsFlags::MS_BIND, None)?;
    Ok(ResolvConf::Bound(resolved))
}

/// `p` (absolute, as the target sees it) resolved with every symlink followed inside `root`:
/// absolute links and `..` never leave it. The last components may not exist.
pub fn resolve_in_root(root: &Path, p: &Path) -> PathBuf {
    fn parts(p: &Path) -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .rev()
            .collect()
    }
    let mut todo = parts(p);
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let cand = cur.join(&c);
        match std::fs::read_link(root.join(&cand)) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                todo.extend(parts(&target));
            }
            _ => cur = cand,
        }
    }
    root.join(cur)
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell's convention: the code, or 128 + the signal number.
    pub fn status(self) -> u8 {
        match self {
            Exit::Code(c) => (c & 0xff) as u8,
            Exit::Signal(s) => (128 + s).clamp(0, 255) as u8,
        }
    }
}

/// The signals rtool forwards to the chrooted command.
pub const FORWARDED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// SIGINT, SIGTERM, SIGHUP and SIGCHLD blocked and read from a signalfd, so no handler ever
/// runs: a signal arriving during setup waits until it is read. Dropping restores the mask.
pub struct Signals {
    fd: OwnedFd,
    old: libc::sigset_t,
}

impl Signals {
    pub fn block() -> Result<Signals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above, a zeroed sigset_t to be overwritten by sigprocmask.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t we own; the signal numbers are valid.
        unsafe {
            libc::sigemptyset(&mut set);
            for s in FORWARDED.iter().chain([libc::SIGCHLD].iter()) {
                libc::sigaddset(&mut set, *s);
            }
        }
        // SAFETY: both pointers are valid sigset_t; this process is single-threaded here.
        if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) } != 0 {
            return Err(
                Error::system("cannot block signals").with_source(std::io::Error::last_os_error())
            );
        }
        // SAFETY: `set` is valid; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: restores the mask saved above.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(Error::system("cannot create a signalfd").with_source(e));
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Signals { fd, old })
    }

    /// A forwarded signal that arrived and has not been read yet (consumed).
    pub fn take_pending(&self) -> Option<i32> {
        // SAFETY: a zeroed sigset_t filled by sigpending.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t.
        if unsafe { libc::sigpending(&mut set) } != 0 {
            return None;
        }
        // SAFETY: `set` was filled by sigpending.
        let sig = FORWARDED
            .into_iter()
            .find(|s| unsafe { libc::sigismember(&set, *s) } == 1)?;
        // Read it off the signalfd; it is pending, so this does not block.
        while let Some(s) = self.read() {
            if s == sig {
                break;
            }
        }
        Some(sig)
    }

    fn read(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: reads at most `size` bytes into `info`, which is that big.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n == size as isize {
                return Some(info.ssi_signo as i32);
            }
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `block`.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// How the chrooted command ended, and the signal rtool itself received meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waited {
    pub child: Exit,
    pub received: Option<i32>,
}

/// Forks; the child chroots into `root`, changes to `/` and execs `argv` (looked up in the
/// target's PATH), or with an empty `argv` the first of `shells` that exists inside the
/// target. The parent forwards SIGINT/SIGTERM/SIGHUP to it and waits.
pub fn run_chrooted(
    root: &Path,
    argv: &[OsString],
    shells: &[PathBuf],
    sigs: &Signals,
) -> Result<Waited> {
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes())
            .map_err(|_| Error::usage(format!("{}: contains a NUL byte", s.to_string_lossy())))
    };
    let root_c = cstr(root.as_os_str())?;
    let args: Vec<CString> = argv.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    let shells_c: Vec<CString> = shells
        .iter()
        .map(|s| cstr(s.as_os_str()))
        .collect::<Result<_>>()?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let what = match argv.first() {
        Some(a) => a.to_string_lossy().into_owned(),
        None => "a shell (none of $SHELL, /bin/bash, /bin/sh)".to_string(),
    };
    let msg_missing = format!(
        "rtool chroot: {what}: not found inside {}\n",
        root.display()
    );
    let msg_exec = format!(
        "rtool chroot: cannot run {what} inside {}\n",
        root.display()
    );
    let msg_chroot = format!("rtool chroot: cannot chroot into {}\n", root.display());

    // SAFETY: fork in a single-threaded process; the child only calls async-signal-safe
    // functions (sigprocmask, chroot, chdir, execv/execvp, write, _exit) on memory prepared above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::system("cannot fork").with_source(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; every pointer refers to a live CString or the saved mask.
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &sigs.old, std::ptr::null_mut());
            let fail = |m: &str, code: i32| -> ! {
                libc::write(2, m.as_ptr().cast(), m.len());
                libc::_exit(code)
            };
            if libc::chroot(root_c.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                fail(&msg_chroot, 126);
            }
            if args.is_empty() {
                for sh in &shells_c {
                    let a = [sh.as_ptr(), std::ptr::null()];
                    libc::execv(sh.as_ptr(), a.as_ptr());
                }
            } else {
                libc::execvp(arg_ptrs[0], arg_ptrs.as_ptr());
            }
            let e = *libc::__errno_location();
            if e == libc::ENOENT || args.is_empty() {
                fail(&msg_missing, 127);
            }
            fail(&msg_exec, 126);
        }
    }
    let mut received = None;
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child without blocking; `status` is a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            let child = if libc::WIFSIGNALED(status) {
                Exit::Signal(libc::WTERMSIG(status))
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            };
            return Ok(Waited { child, received });
        }
        if r < 0 {
            return Err(Error::system("waiting for the chrooted command failed")
                .with_source(std::io::Error::last_os_error()));
        }
        match sigs.read() {
            Some(s) if FORWARDED.contains(&s) => {
                received = Some(s);
                // SAFETY: signals our own child, which has not been reaped yet.
                unsafe { libc::kill(pid, s) };
            }
            Some(_) => {}
            None => {
                return Err(Error::system("reading signals failed")
                    .with_source(std::io::Error::last_os_error()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) =
            parse_options("rw,relatime,fmask=0022,dmask=0022,noauto,x-systemd.automount,ro");
        assert!(f.contains(MsFlags::MS_RELATIME | MsFlags::MS_RDONLY));
        assert_eq!(d, "fmask=0022,dmask=0022");
        let (f, d) = parse_options("defaults");
        assert!(f.is_empty());
        assert_eq!(d, "");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("run/systemd/resolve")).unwrap();
        std::os::unix::fs::symlink(
            "../../../run/systemd/resolve/stub",
            r.join("etc/resolv.conf"),
        )
        .unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/etc/resolv.conf")),
            r.join("run/systemd/resolve/stub")
        );
        std::fs::remove_file(r.join("etc/resolv.conf")).unwrap();
        std::os::unix::fs::symlink("/etc/real", r.join("etc/resolv.conf")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/etc/resolv.conf")),
            r.join("etc/real")
        );
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(Exit::Code(7).status(), 7);
        assert_eq!(Exit::Signal(9).status(), 137);
    }
}
