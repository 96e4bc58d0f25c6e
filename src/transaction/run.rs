//! Carrying out a checked [`Plan`]: stage, commit, scriptlets, hooks, log.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::unistd::UnlinkatFlags;

use crate::archive::extract::{stage_name, EntryKind, Extractor, Package, Staged};
use crate::archive::rooted::{self, split, Existing, Root};
use crate::error::{Error, Kind, Result};
use crate::pkg::alpmhook::{Hook, When};
use crate::pkg::depend::Depend;
use crate::pkg::glob;
use crate::pkg::local::{self, Installed};
use crate::transaction::{
    backup_place, hooks_for, journal, scriptlet_calls, Events, Options, Paths, Place, Plan, Target,
};

/// How a transaction ended when it got as far as installing.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `name old -> new` lines, in order.
    pub done: Vec<String>,
    /// Paths installed as `.pacnew` (relative to the root).
    pub pacnew: Vec<String>,
    /// Old-version paths removed.
    pub removed: usize,
    /// Scriptlets and hooks that failed: the packages are installed, but something their
    /// install should have done did not happen.
    pub failures: Vec<String>,
}

/// Fault injection for the crash tests: `RTOOL_FAULT=NAME` kills this process with SIGKILL
/// when it reaches the point NAME (`staged`, `renamed`, `old-moved`, `committed`,
/// `finishing`), exactly as a power cut or `kill -9` there would.
fn fault_point(name: &str) {
    if std::env::var_os("RTOOL_FAULT").is_some_and(|v| v == name) {
        // SAFETY: raising a signal on ourselves.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

fn rel_of(f: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(f.strip_suffix(b"/").unwrap_or(f)))
}

/// Runs the plan. On a failure before the first package is committed the root is as it was.
pub fn execute(
    paths: &Paths,
    plan: &mut Plan,
    opts: &Options,
    ev: &mut dyn Events,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut log = Log::open(paths);
    log.line("RTOOL", &format!("Running '{}'", opts.command));

    for (hook, targets) in hooks_for(plan, When::Pre) {
        log.line("ALPM", &format!("running '{}'...", hook.name));
        if let Err(msg) = run_hook(paths, plan, hook, &targets, ev) {
            if hook.abort_on_fail {
                return Err(Error::new(
                    Kind::Failed,
                    format!("{msg}; the transaction was stopped before anything was installed"),
                ));
            }
            out.failures.push(msg);
        }
    }
    log.line("ALPM", "transaction started");

    let jdir = paths.journal();
    let mut staged: Vec<(Vec<Staged>, Vec<PathBuf>)> = Vec::new();
    // Everything that needs space happens here, before the first rename: the journal, the
    // staged files, the complete database entries. A failure undoes all of it.
    let stage_result = (|| -> Result<()> {
        journal::open(paths)?;
        for t in &plan.targets {
            // The file list first: a rerun after a kill knows these files are this run's.
            let entry = jdir.join(t.id());
            std::fs::create_dir_all(&entry).map_err(|e| Error::path(e, &entry))?;
            write_entry_file(&entry, "files", &local::files(&t.files, &[]))?;
            write_entry_file(&entry, "desc", desc_for(t, opts).as_bytes())?;
            staged.push((Vec::new(), Vec::new()));
            let slot = staged.len() - 1;
            stage(paths, t, opts, ev, &mut staged[slot])?;
            write_entry(&entry, t, &staged[slot].0, opts)?;
        }
        let local_dir = paths.local();
        std::fs::create_dir_all(&local_dir).map_err(|e| Error::path(e, &local_dir))?;
        let version_file = local_dir.join("ALPM_DB_VERSION");
        if !version_file.exists() {
            let v = format!("{}\n", local::DB_VERSION);
            crate::sys::write_atomic(&version_file, v.as_bytes(), 0o644)?;
        }
        syncfs(&paths.root)
    })();
    if let Err(e) = stage_result {
        ev.progress_done();
        undo_stage(paths, &staged);
        let _ = std::fs::remove_dir_all(&jdir);
        let _ = journal::close(paths);
        log.line("ALPM", "transaction failed");
        return Err(e.context("nothing was installed (the files written so far were removed)"));
    }

    fault_point("staged");
    let interrupted = |e: Error| {
        e.context("the transaction stopped in the middle: run the same command again to finish it")
    };
    for (i, t) in plan.targets.iter().enumerate() {
        let calls = if opts.no_scriptlets {
            Vec::new()
        } else {
            scriptlet_calls(t)
        };
        if let Some((f, args)) = calls.iter().find(|(f, _)| f.starts_with("pre_")) {
            if let Err(msg) = run_scriptlet(paths, t, f, args, ev) {
                out.failures.push(msg);
            }
        }
        commit(
            paths,
            t,
            &staged[i].0,
            &plan.removes[i],
            ev,
            &mut log,
            &mut out,
        )
        .map_err(interrupted)?;
        if let Some((f, args)) = calls.iter().find(|(f, _)| f.starts_with("post_")) {
            if let Err(msg) = run_scriptlet(paths, t, f, args, ev) {
                out.failures.push(msg);
            }
        }
    }
    fault_point("finishing");
    journal::close(paths).map_err(interrupted)?;
    syncfs(&paths.root)?;
    log.line("ALPM", "transaction completed");

    ldconfig(paths, ev);
    for (hook, targets) in hooks_for(plan, When::Post) {
        log.line("ALPM", &format!("running '{}'...", hook.name));
        if let Err(msg) = run_hook(paths, plan, hook, &targets, ev) {
            out.failures.push(msg);
        }
    }
    Ok(out)
}

fn desc_for(t: &Target, opts: &Options) -> String {
    let reason = match &t.old {
        Some(o) => o.reason,
        None => u8::from(opts.asdeps),
    };
    local::desc(&local::Entry {
        info: &t.info,
        install_date: now(),
        reason,
        validation: t.src.validation,
        xdata: true,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn write_entry_file(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    crate::sys::write_atomic(&dir.join(name), data, 0o644)
}

/// The complete database entry of `t`, in the journal: desc, files (with the md5 of each
/// backup file as the package brings it, which is what pacman records), mtree, install,
/// changelog.
fn write_entry(entry: &Path, t: &Target, staged: &[Staged], opts: &Options) -> Result<()> {
    let mut backup_hashes: Vec<(Vec<u8>, String)> = staged
        .iter()
        .filter_map(|s| {
            let key = s.rel.as_os_str().as_bytes();
            let hash = s.md5.clone()?;
            t.backup
                .iter()
                .any(|b| b == key)
                .then(|| (key.to_vec(), hash))
        })
        .collect();
    // In the package's own order.
    backup_hashes.sort_by_key(|(p, _)| t.backup.iter().position(|b| b == p));
    write_entry_file(entry, "desc", desc_for(t, opts).as_bytes())?;
    write_entry_file(entry, "files", &local::files(&t.files, &backup_hashes))?;
    if let Some(m) = &t.mtree_raw {
        write_entry_file(entry, "mtree", m)?;
    }
    for (name, data, time) in [
        ("install", &t.install, t.meta_times[0]),
        ("changelog", &t.changelog, t.meta_times[1]),
    ] {
        if let Some(d) = data {
            write_entry_file(entry, name, d)?;
            let ts = nix::sys::time::TimeSpec::new(time.0, time.1 as i64);
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &entry.join(name),
                &ts,
                &ts,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| Error::path(io(e), &entry.join(name)))?;
        }
    }
    Ok(())
}

/// Writes every member of `t` under its stage name.
fn stage(
    paths: &Paths,
    t: &Target,
    opts: &Options,
    ev: &mut dyn Events,
    slot: &mut (Vec<Staged>, Vec<PathBuf>),
) -> Result<()> {
    let root = Root::open(&paths.root)?;
    let mut ex = Extractor::new(
        root,
        crate::archive::extract::Options {
            stage: true,
            owners: opts.owners,
            ..Default::default()
        },
    );
    ex.md5_of = t.backup.iter().map(|b| rel_of(b).to_path_buf()).collect();
    let listed: HashSet<&[u8]> = t
        .files
        .iter()
        .map(|f| f.strip_suffix(b"/").unwrap_or(f))
        .collect();
    let pkg = Package::open(&t.src.file)?;
    let (total, read) = (pkg.size, pkg.read.clone());
    let label = t.id();
    let noextract = &paths.conf.noextract;
    let r = pkg.for_each(|m, data| {
        if m.is_metadata() {
            return Ok(true);
        }
        let Some(rel) = rooted::sanitize(&m.raw_name)? else {
            return Ok(true);
        };
        let key = rel.as_os_str().as_bytes();
        if !listed.contains(key) {
            ev.warn(&format!(
                "{}: {} is not in the package's file list: not extracted (as pacman)",
                t.name,
                rooted::shown(&rel)
            ));
            return Ok(true);
        }
        if glob::last_match(noextract.iter().map(String::as_str), key) == Some(true) {
            return Ok(true);
        }
        ex.entry(m, data)?;
        ev.progress(&label, read.load(Ordering::Relaxed), total);
        Ok(true)
    });
    let finished = ex.finish();
    slot.0 = std::mem::take(&mut ex.staged);
    slot.1 = std::mem::take(&mut ex.created_dirs);
    ev.progress_done();
    r.and(finished.map(|_| ()))
        .map_err(|e| e.context(t.src.file.display().to_string()))
}

/// Removes what staging wrote: the temporary files, then the directories it made.
fn undo_stage(paths: &Paths, staged: &[(Vec<Staged>, Vec<PathBuf>)]) {
    let Ok(mut root) = Root::open(&paths.root) else {
        return;
    };
    for (files, dirs) in staged {
        for s in files {
            let (parent, _) = split(&s.rel);
            if let Ok(d) = root.dir(parent, false) {
                let _ = nix::unistd::unlinkat(
                    d,
                    stage_name(&s.rel).as_str(),
                    UnlinkatFlags::NoRemoveDir,
                );
            }
        }
        for d in dirs.iter().rev() {
            let (parent, name) = split(d);
            if let Ok(p) = root.dir(parent, false) {
                let _ = nix::unistd::unlinkat(p, name, UnlinkatFlags::RemoveDir);
            }
            root.forget();
        }
    }
}

/// Makes `t` installed: backup files decided, staged files renamed into place, the database
/// entry moved into `local/`, the old version's leftovers removed.
#[allow(clippy::too_many_arguments)]
fn commit(
    paths: &Paths,
    t: &Target,
    staged: &[Staged],
    removes: &[Vec<u8>],
    ev: &mut dyn Events,
    log: &mut Log,
    out: &mut Outcome,
) -> Result<()> {
    let mut root = Root::open(&paths.root)?;
    let noupgrade = &paths.conf.noupgrade;
    let mut places = Vec::with_capacity(staged.len());
    for s in staged {
        let key = s.rel.as_os_str().as_bytes();
        let is_backup = t.backup.iter().any(|b| b == key);
        // Only a backup or NoUpgrade file's fate depends on what is there.
        let noupgraded =
            || glob::last_match(noupgrade.iter().map(String::as_str), key) == Some(true);
        let look = is_backup || (!noupgrade.is_empty() && noupgraded());
        let exists_file = look && root.existing(&s.rel).ok() == Some(Existing::File);
        let mut place = Place::Replace;
        if is_backup && s.kind == EntryKind::File && exists_file {
            let new = s.md5.clone().unwrap_or_default();
            let local = md5_of(&root, &s.rel)?;
            let orig = t.old.as_ref().and_then(|o| o.backup_hash(key));
            place = backup_place(&local, &new, orig);
        }
        if exists_file && noupgraded() {
            place = Place::Pacnew;
        }
        places.push(place);
    }
    let jentry = paths.journal().join(t.id());

    for (s, place) in staged.iter().zip(&places) {
        let (parent, name) = split(&s.rel);
        let tmp = stage_name(&s.rel);
        let dir = root
            .dir(parent, false)
            .map_err(|e| Error::path(e, &s.rel))?;
        match place {
            Place::Replace => nix::fcntl::renameat(dir, tmp.as_str(), dir, name),
            Place::Keep => nix::unistd::unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir),
            Place::Pacnew => {
                let mut pacnew = name.as_bytes().to_vec();
                pacnew.extend_from_slice(b".pacnew");
                let r = nix::fcntl::renameat(dir, tmp.as_str(), dir, OsStr::from_bytes(&pacnew));
                // As pacman -r logs it: the path below the root it works on.
                let shown = paths.root.join(&s.rel).display().to_string();
                ev.warn(&format!("{shown} installed as {shown}.pacnew"));
                log.line(
                    "ALPM",
                    &format!("warning: {shown} installed as {shown}.pacnew"),
                );
                out.pacnew.push(format!("{shown}.pacnew"));
                r
            }
        }
        .map_err(|e| Error::path(io(e), &paths.root.join(&s.rel)))?;
    }
    syncfs(&paths.root)?;
    fault_point("renamed");

    // The old entry leaves local/ (into the journal), the new one arrives: from here the
    // database says the new version is installed, and its files are all in place.
    let jold = paths.journal().join("old");
    let old_moved = match &t.old {
        Some(o) if o.dir.parent() == Some(paths.local().as_path()) => {
            let to = jold.join(o.id());
            std::fs::rename(&o.dir, &to).map_err(|e| Error::path(e, &o.dir))?;
            Some(to)
        }
        Some(o) => Some(o.dir.clone()),
        None => None,
    };
    fault_point("old-moved");
    let dest = paths.local().join(t.id());
    if dest.exists() {
        // A reinstall of the same version whose entry was not moved (it never is: the old
        // entry has this name and moved above), or a leftover: replace it.
        std::fs::remove_dir_all(&dest).map_err(|e| Error::path(e, &dest))?;
    }
    std::fs::rename(&jentry, &dest).map_err(|e| Error::path(e, &dest))?;
    sync_dir(&paths.local());
    fault_point("committed");

    if let Some(o) = &t.old {
        out.removed += remove_paths(&mut root, removes, o, ev);
    }
    if let Some(moved) = old_moved {
        std::fs::remove_dir_all(&moved).map_err(|e| Error::path(e, &moved))?;
    }
    let line = match &t.old {
        Some(o) if t.verb() != "reinstalled" => {
            format!("{} {} ({} -> {})", t.verb(), t.name, o.version, t.version)
        }
        _ => format!("{} {} ({})", t.verb(), t.name, t.version),
    };
    log.line("ALPM", &line);
    out.done.push(line);
    Ok(())
}

/// Removes old-version paths (files, then directories when empty), deepest first. A backup
/// file the user changed is kept as `.pacsave`. Returns how many went.
pub fn remove_paths(
    root: &mut Root,
    paths: &[Vec<u8>],
    old: &Installed,
    ev: &mut dyn Events,
) -> usize {
    let mut n = 0;
    let mut sorted: Vec<&Vec<u8>> = paths.iter().collect();
    sorted.sort_by(|a, b| b.cmp(a));
    for f in sorted {
        let is_dir = f.ends_with(b"/");
        let rel = rel_of(f);
        let (parent, name) = split(rel);
        if !is_dir {
            if let Some(h) = old.backup_hash(f) {
                if md5_of(root, rel).is_ok_and(|now| now != h) {
                    let mut save = name.as_bytes().to_vec();
                    save.extend_from_slice(b".pacsave");
                    if let Ok(d) = root.dir(parent, false) {
                        if nix::fcntl::renameat(d, name, d, OsStr::from_bytes(&save)).is_ok() {
                            ev.warn(&format!(
                                "/{} saved as /{}.pacsave",
                                rooted::shown(rel),
                                rooted::shown(rel)
                            ));
                        }
                    }
                    continue;
                }
            }
        }
        let Ok(d) = root.dir(parent, false) else {
            continue;
        };
        let flag = if is_dir {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        match nix::unistd::unlinkat(d, name, flag) {
            Ok(()) => n += 1,
            Err(Errno::ENOENT | Errno::ENOTEMPTY | Errno::EEXIST) => {}
            Err(e) => ev.warn(&format!("cannot remove /{}: {}", rooted::shown(rel), io(e))),
        }
        if is_dir {
            root.forget();
        }
    }
    n
}

fn md5_of(root: &Root, rel: &Path) -> Result<String> {
    use md5::Digest;
    let fd = root
        .open_in(
            rel,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW,
        )
        .map_err(|e| Error::path(e, rel))?;
    let mut f = std::fs::File::from(fd);
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::path(e, rel)),
        }
    }
    Ok(crate::hash::hex(&h.finalize()))
}

fn syncfs(root: &Path) -> Result<()> {
    let f = std::fs::File::open(root).map_err(|e| Error::path(e, root))?;
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(Error::path(std::io::Error::last_os_error(), root).context("syncfs"));
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The scriptlet shell: Arch's pacman is built with `/usr/bin/bash`, upstream's default is
/// `/bin/sh`.
fn shell(root: &Path) -> &'static str {
    if root.join("usr/bin/bash").is_file() {
        "/usr/bin/bash"
    } else {
        "/bin/sh"
    }
}

/// Runs `f args` from the target's `.INSTALL`, as `_alpm_runscriptlet`: the script copied to
/// `/tmp/alpm_XXXXXX/.INSTALL` inside the root, then `SHELL -c ". FILE; f args"` chrooted.
fn run_scriptlet(
    paths: &Paths,
    t: &Target,
    f: &str,
    args: &[String],
    ev: &mut dyn Events,
) -> std::result::Result<(), String> {
    let script = t.install.as_deref().unwrap_or_default();
    let what = format!("{}'s {f} scriptlet", t.name);
    let tmp_root = paths.root.join("tmp");
    let dir = (0..100)
        .map(|i| {
            tmp_root.join(format!(
                "alpm_{:06x}",
                (std::process::id() as usize * 977 + i) & 0xffffff
            ))
        })
        .find(|d| std::fs::create_dir(d).is_ok())
        .ok_or_else(|| format!("{what}: cannot make a directory in {}", tmp_root.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let r = std::fs::write(dir.join(".INSTALL"), script)
        .map_err(|e| format!("{what}: {e}"))
        .and_then(|_| {
            let cmd = format!(". /tmp/{name}/.INSTALL; {f} {}", args.join(" "));
            ev.note(&format!("running {what}"));
            let argv = [shell(&paths.root).to_string(), "-c".into(), cmd];
            match run_in_root(&paths.root, &argv, None) {
                Ok(0) => Ok(()),
                Ok(c) => Err(format!("{what} failed (exit {c})")),
                Err(e) => Err(format!("{what} could not run: {e}")),
            }
        });
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_hook(
    paths: &Paths,
    plan: &Plan,
    hook: &Hook,
    targets: &[Vec<u8>],
    ev: &mut dyn Events,
) -> std::result::Result<(), String> {
    let label = hook
        .description
        .clone()
        .unwrap_or_else(|| hook.name.clone());
    // Depends: the hook runs only when what it needs is installed after the transaction.
    for d in &hook.depends {
        let dep = Depend::parse(d);
        let ok = plan
            .targets
            .iter()
            .any(|t| dep.satisfied_by(&t.name, &t.version, t.info.all("provides")))
            || plan.installed.iter().any(|i| {
                !plan.targets.iter().any(|t| t.name == i.name)
                    && dep.satisfied_by(&i.name, &i.version, i.provides.iter().map(String::as_str))
            });
        if !ok {
            return Err(format!(
                "hook {}: needs {d}, which is not installed: not run",
                hook.name
            ));
        }
    }
    ev.note(&format!("running hook {} ({label})", hook.name));
    let stdin = hook.needs_targets.then(|| {
        let mut v = Vec::new();
        for t in targets {
            v.extend_from_slice(t);
            v.push(b'\n');
        }
        v
    });
    match run_in_root(&paths.root, &hook.exec, stdin) {
        Ok(0) => Ok(()),
        Ok(c) => Err(format!("hook {} ({label}) failed (exit {c})", hook.name)),
        Err(e) => Err(format!("hook {} ({label}) could not run: {e}", hook.name)),
    }
}

/// `ldconfig` inside the root when it has `/etc/ld.so.conf` and an ldconfig, as libalpm.
fn ldconfig(paths: &Paths, ev: &mut dyn Events) {
    if !paths.root.join("etc/ld.so.conf").exists() {
        return;
    }
    let Some(prog) = ["usr/bin/ldconfig", "usr/sbin/ldconfig", "sbin/ldconfig"]
        .into_iter()
        .find(|p| paths.root.join(p).is_file())
    else {
        return;
    };
    if let Ok(c) = run_in_root(&paths.root, &[format!("/{prog}")], None) {
        if c != 0 {
            ev.warn(&format!("ldconfig exited {c}"));
        }
    }
}

/// Runs `argv` inside `root` as pacman runs hooks and scriptlets there (chroot, working
/// directory `/`), in a private mount namespace with `/proc`, `/sys` and `/dev` mounted as
/// arch-chroot mounts them, so tools such as mkinitcpio and depmod work. Returns the exit
/// code (128+N for signal N).
pub fn run_in_root<S: AsRef<OsStr>>(
    root: &Path,
    argv: &[S],
    stdin: Option<Vec<u8>>,
) -> Result<i32> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::usage("nothing to run"));
    };
    let mut cmd = Command::new(prog.as_ref());
    cmd.args(args);
    let is_host = std::fs::canonicalize(root).is_ok_and(|r| r == Path::new("/"));
    if !is_host {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| Error::usage(format!("{}: contains a NUL byte", p.display())))
        };
        let root_c = c(root)?;
        let mounts: Vec<(CString, CString, CString, libc::c_ulong, CString)> = [
            (
                "proc",
                "proc",
                "proc",
                libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV,
                "",
            ),
            (
                "sys",
                "sys",
                "sysfs",
                libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV | libc::MS_RDONLY,
                "",
            ),
            ("udev", "dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
            (
                "devpts",
                "dev/pts",
                "devpts",
                libc::MS_NOSUID | libc::MS_NOEXEC,
                "mode=0620,gid=5",
            ),
            (
                "shm",
                "dev/shm",
                "tmpfs",
                libc::MS_NOSUID | libc::MS_NODEV,
                "mode=1777",
            ),
        ]
        .into_iter()
        .filter_map(|(src, dst, fs, flags, data)| {
            Some((
                CString::new(src).ok()?,
                c(&root.join(dst)).ok()?,
                CString::new(fs).ok()?,
                flags,
                CString::new(data).ok()?,
            ))
        })
        .collect();
        let slash = CString::new("/").map_err(|_| Error::usage("NUL"))?;
        // SAFETY: the closure runs in the forked child before exec and only makes system
        // calls (unshare, mount, mkdir, chroot, chdir) on memory prepared above; nothing
        // allocates or takes a lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::mount(
                    std::ptr::null(),
                    slash.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                for (i, (src, dst, fs, flags, data)) in mounts.iter().enumerate() {
                    // dev/pts and dev/shm live in the devtmpfs just mounted; nothing is made
                    // in the root itself. A mount that fails (a bare root without /proc) is
                    // skipped: pacman mounts nothing at all.
                    if i >= 3 {
                        libc::mkdir(dst.as_ptr(), 0o755);
                    }
                    libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        fs.as_ptr(),
                        *flags,
                        data.as_ptr().cast(),
                    );
                }
                if libc::chroot(root_c.as_ptr()) != 0 || libc::chdir(slash.as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    } else {
        cmd.current_dir("/");
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|e| {
        Error::io(
            e,
            format!(
                "{} (inside {})",
                Path::new(prog.as_ref()).display(),
                root.display()
            ),
        )
    })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(&data);
    }
    let status = child
        .wait()
        .map_err(|e| Error::io(e, "waiting for a child"))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// pacman's log (`LogFile`), appended to as pacman does; nothing when it cannot be opened.
struct Log {
    file: Option<std::fs::File>,
}

impl Log {
    fn open(paths: &Paths) -> Log {
        let p = crate::ctx::below(&paths.root, &paths.conf.logfile);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok();
        Log { file }
    }

    fn line(&mut self, who: &str, msg: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "[{}] [{who}] {msg}", timestamp());
        }
    }
}

/// Local time as pacman logs it (`%FT%T%z`).
fn timestamp() -> String {
    let t: i64 = now();
    crate::units::local_time(t, c"%FT%T%z").unwrap_or_else(|| t.to_string())
}
