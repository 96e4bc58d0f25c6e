//! Enter an installed system like arch-chroot, with /boot checked and everything torn down on the way out

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::sys::mount::{self, MountStack, ResolvConf, Signals, Undo};
use rtool::sys::{blockdev, fstab, mountinfo, ns};
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("chroot")
        .long_about(
            "Mounts the API filesystems under DIR exactly as arch-chroot does (proc, sys, \
             efivarfs, dev, dev/pts, dev/shm, run, tmp, the host's resolv.conf), runs CMD (or \
             the target's shell) chrooted into DIR, and unmounts everything in reverse order \
             on every way out: a normal exit, a failed mount, the command killed, or rtool \
             receiving SIGINT, SIGTERM or SIGHUP (forwarded to the command first). All of it \
             happens in a private mount namespace, so nothing reaches the host's mount table. \
             Optionally it opens and mounts the root first (--mount, --luks, --zpool) and \
             mounts /boot and the ESP from the target's fstab (--mount-boot).\n\n\
             A symlinked /etc/resolv.conf in the target is resolved inside DIR and the host's \
             file is bound over what it leads to; a link dangling even inside DIR is left \
             alone (with a warning).\n\n\
             --zpool imports the pool with -N -R DIR (never over the live system), loads the \
             keys of its encrypted datasets (from --key-file, else by `zfs load-key`, which \
             asks on the terminal), mounts the dataset whose mountpoint is / on DIR, then the \
             rest (zfs mount -a); `zpool export` on the way out unmounts it and unloads the \
             keys. A pool still imported at DIR (an interrupted session) is used as it is; one \
             imported elsewhere is refused. A pool the installed system did not export (a \
             crash, a failed boot) needs --force-import.",
        )
        .arg(
            Arg::new("dir")
                .value_name("DIR")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The installed system's root directory (e.g. /mnt)"),
        )
        .arg(
            Arg::new("cmd")
                .value_name("CMD")
                .num_args(1..)
                // As arch-chroot and chroot(8) take it: everything after DIR is the command,
                // its own options included; `--` before it is accepted too.
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_parser(clap::value_parser!(OsString))
                .help("The command to run inside [default: $SHELL, else /bin/bash, else /bin/sh]"),
        )
        .arg(
            Arg::new("require_boot")
                .long("require-boot")
                .action(ArgAction::SetTrue)
                .help("Refuse to enter unless DIR/boot is a mounted filesystem"),
        )
        .arg(
            Arg::new("mount_boot")
                .long("mount-boot")
                .action(ArgAction::SetTrue)
                .help("Mount /boot, /efi and /boot/efi from DIR/etc/fstab first"),
        )
        .arg(
            Arg::new("mount")
                .long("mount")
                .value_name("DEV")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with_all(["luks", "zpool"])
                .help("Mount the root filesystem DEV on DIR first (type from its superblock)"),
        )
        .arg(
            Arg::new("luks")
                .long("luks")
                .value_name("DEV[:NAME]")
                .conflicts_with("zpool")
                .help("Open the LUKS device DEV as NAME (default rtool-root) and mount it on DIR"),
        )
        .arg(
            Arg::new("key_file")
                .long("key-file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .requires("unlock")
                .help(
                    "Read the LUKS passphrase, or the key of every encryption root of the pool, \
                     from FILE instead of the terminal",
                ),
        )
        .arg(Arg::new("zpool").long("zpool").value_name("POOL").help(
            "Import POOL with -N -R DIR, load its keys, mount its root dataset and the rest; \
             export it on exit",
        ))
        .arg(
            Arg::new("force_import")
                .long("force-import")
                .action(ArgAction::SetTrue)
                .requires("zpool")
                .help("Import with -f: for a pool the system using it did not export (a crash)"),
        )
        .group(
            clap::ArgGroup::new("unlock")
                .args(["luks", "zpool"])
                .multiple(true),
        )
        .arg(
            Arg::new("keep")
                .long("keep")
                .action(ArgAction::SetTrue)
                .help("Leave the LUKS mapping open and the pool imported on exit"),
        )
        .arg(ctx::arg_dry_run())
        .after_help(
            "Examples:
  rtool chroot /mnt                                # the target's shell
  rtool chroot /mnt mkinitcpio -P                  # as arch-chroot takes it
  rtool chroot --mount-boot /mnt -- pacman -Syu    # /boot and the ESP mounted from fstab
  rtool chroot --require-boot /mnt -- mkinitcpio -P
  rtool chroot --mount /dev/nvme0n1p2 --mount-boot /mnt
  rtool chroot --luks /dev/nvme0n1p2:cryptroot /mnt
  rtool chroot --zpool rpool --mount-boot /mnt -- zpool set cachefile=/etc/zfs/zpool.cache rpool
  rtool chroot --zpool zroot --key-file /root/zroot.key --mount-boot /mnt
  rtool chroot --zpool zroot --force-import /mnt   # not exported: the system crashed
  rtool chroot -n --zpool zroot --mount-boot /mnt  # the plan: nothing imported or mounted

Exit status: the command's own (128+N when it dies from signal N; 128+N too when rtool is
stopped by SIGTERM or SIGHUP); rtool's error codes when it cannot enter.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let dir = m.get_one::<PathBuf>("dir").cloned().unwrap_or_default();
    let argv: Vec<OsString> = m
        .get_many::<OsString>("cmd")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    ctx.require_root("it mounts filesystems")?;
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "cannot create a chroot on {}: not a directory",
            dir.display()
        )));
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| Error::path(e, &dir))?;
    // The device and the tools are checked before anything is changed.
    if let Some(dev) = m.get_one::<PathBuf>("mount") {
        mount::check_device(dev)?;
    }
    let luks = m
        .get_one::<String>("luks")
        .map(|s| match s.rsplit_once(':') {
            Some((d, n)) if !n.is_empty() && !n.contains('/') => (PathBuf::from(d), n.to_string()),
            _ => (PathBuf::from(s), "rtool-root".to_string()),
        });
    let cryptsetup = match luks {
        Some(_) => Some(tool("cryptsetup", "cryptsetup")?),
        None => None,
    };
    let pool = match m.get_one::<String>("zpool") {
        Some(name) => Some(Pool {
            name: pool_name(name)?,
            zpool: tool("zpool", "zfs-utils")?,
            zfs: tool("zfs", "zfs-utils")?,
            force: m.get_flag("force_import"),
            key_file: m
                .get_one::<PathBuf>("key_file")
                .map(|k| key_file(k))
                .transpose()?,
        }),
        None => None,
    };

    if ctx.dry_run {
        let plan = plan(m, &dir, &argv, luks.as_ref().zip(cryptsetup.as_deref()), pool.as_ref());
        let mut out = ctx.out();
        writeln!(out, "{}: plan for {} (nothing is changed):", ctx.applet, dir.display())?;
        for (i, step) in plan.iter().enumerate() {
            writeln!(out, "  {}. {step}", i + 1)?;
        }
        return Ok(exit::OK);
    }

    // Signals are blocked from here on and read from a signalfd: none can cut the setup
    // short without the teardown.
    let sigs = Signals::block()?;
    ns::private_mounts()?;
    let mut stack = MountStack::new();
    stack.set_keep(m.get_flag("keep"));

    let result = (|| -> Result<u8> {
        if let (Some((dev, name)), Some(cs)) = (&luks, &cryptsetup) {
            open_luks(
                ctx,
                &mut stack,
                cs,
                dev,
                name,
                m.get_one::<PathBuf>("key_file"),
                &dir,
            )?;
        } else if let Some(dev) = m.get_one::<PathBuf>("mount") {
            let t = mount::mount_device(&mut stack, dev, &dir, None, "defaults")?;
            ctx.debug(format!(
                "mounted {} ({t}) on {}",
                dev.display(),
                dir.display()
            ));
        } else if let Some(pool) = &pool {
            import_pool(ctx, &mut stack, pool, &dir)?;
        }
        let mounts = read_mounts()?;
        if mountinfo::at(&mounts, &dir).is_none() {
            ctx.warn(format!(
                "{} is not a mountpoint. This may have undesirable side effects (bind it on itself: `mount --bind {0} {0}`)",
                dir.display()
            ));
        }
        if m.get_flag("mount_boot") {
            mount_boot(ctx, &mut stack, &dir, &mounts)?;
        }
        check_boot(ctx, &dir, m.get_flag("require_boot"))?;
        mount::mount_api_filesystems(&mut stack, &dir)
            .map_err(|e| e.context("failed to set up the chroot"))?;
        match mount::bind_resolv_conf(&mut stack, &dir, Path::new("/etc/resolv.conf"))
            .map_err(|e| e.context("failed to set up resolv.conf"))?
        {
            ResolvConf::Bound(p) => ctx.debug(format!("bound the host's resolv.conf on {}", p.display())),
            ResolvConf::Dangling(p) => ctx.warn(format!(
                "{}/etc/resolv.conf leads to {}, which does not exist: name resolution may not work inside",
                dir.display(),
                p.display()
            )),
            ResolvConf::NoHostFile | ResolvConf::NoTargetFile => {}
        }
        if let Some(s) = sigs.take_pending() {
            ctx.note(format!(
                "{}: interrupted (signal {s}) before entering",
                ctx.applet
            ));
            return Ok(128 + s as u8);
        }
        let shells = shells();
        ctx.debug(format!("entering {}", dir.display()));
        let w = mount::run_chrooted(&dir, &argv, &shells, &sigs)?;
        Ok(match w.received {
            // SIGINT reaches the command from the terminal too; its own exit status tells.
            Some(s) if s != libc::SIGINT => 128 + s as u8,
            _ => w.child.status(),
        })
    })();

    let mut failures = 0;
    stack.teardown(&mut |o| match &o.result {
        _ if o.kept => ctx.note(format!("{}: kept: {}", ctx.applet, o.undo.describe())),
        Ok(()) => {
            let what = match &o.undo {
                Undo::Unmount(p) => format!("unmounted {}", p.display()),
                u => format!("ran {}", u.describe()),
            };
            if o.detached {
                ctx.warn(format!("{} was busy: detached lazily", o.undo.describe()));
            }
            ctx.debug(what);
        }
        Err(e) => {
            failures += 1;
            ctx.warn(format!("teardown: {e}"));
        }
    });
    drop(sigs);
    let code = result?;
    if failures > 0 && code == exit::OK {
        return Err(Error::system(format!(
            "{failures} teardown step(s) failed (see above)"
        )));
    }
    Ok(code)
}

/// `--dry-run`: the steps a run would take, in order, as commands where it runs one. Nothing
/// is run to find them (not even `zpool list`), so a pool's current state is not known.
fn plan(
    m: &ArgMatches,
    dir: &Path,
    argv: &[OsString],
    luks: Option<(&(PathBuf, String), &Path)>,
    pool: Option<&Pool>,
) -> Vec<String> {
    let mut steps = Vec::new();
    let shown = dir.display();
    let key_file = m.get_one::<PathBuf>("key_file");
    let keep = m.get_flag("keep");
    let mut undo = Vec::new();
    if let Some(((dev, name), cryptsetup)) = luks {
        let mut args: Vec<&OsStr> = vec!["open".as_ref()];
        if let Some(k) = key_file {
            args.extend::<[&OsStr; 2]>(["--key-file".as_ref(), k.as_os_str()]);
        }
        args.extend::<[&OsStr; 2]>([dev.as_os_str(), name.as_ref()]);
        steps.push(command_line(cryptsetup, &args));
        steps.push(format!("mount /dev/mapper/{name} on {shown} (type from its superblock)"));
        undo.push(command_line(cryptsetup, &["close", name.as_str()]));
    } else if let Some(dev) = m.get_one::<PathBuf>("mount") {
        steps.push(format!("mount {} on {shown} (type from its superblock)", dev.display()));
    } else if let Some(pool) = pool {
        let env = udev_env()
            .iter()
            .map(|(k, v)| format!("{k}={v} "))
            .collect::<String>();
        steps.push(format!(
            "{env}{} (or use {} as it is if it is already imported at {shown})",
            command_line(&pool.zpool, &import_args(pool, dir)),
            pool.name
        ));
        steps.push(match &pool.key_file {
            Some(k) => format!(
                "load the key of each encryption root of {} from {} ({} load-key -L file://{})",
                pool.name,
                k.display(),
                pool.zfs.display(),
                rtool::text::glyph("…")
            ),
            None => format!(
                "load the key of each encryption root of {} ({} load-key, asking on the terminal)",
                pool.name,
                pool.zfs.display()
            ),
        });
        steps.push(format!(
            "mount the dataset of {} whose mountpoint is / on {shown}, then the rest ({} mount -a)",
            pool.name,
            pool.zfs.display()
        ));
        undo.push(command_line(&pool.zpool, &["export", pool.name.as_str()]));
    }
    if m.get_flag("mount_boot") {
        steps.push(format!("mount /boot, /efi and /boot/efi as {shown}/etc/fstab lists them"));
    }
    if m.get_flag("require_boot") {
        steps.push(format!("refuse to go on unless {shown}/boot is a mounted filesystem"));
    }
    steps.push(format!(
        "mount proc, sys, efivarfs, dev, dev/pts, dev/shm, run and tmp under {shown}, in a private mount namespace"
    ));
    steps.push(format!("bind the host's /etc/resolv.conf on {shown}/etc/resolv.conf"));
    steps.push(match argv.is_empty() {
        true => format!("chroot {shown} and run the target's shell ($SHELL, else /bin/bash, else /bin/sh)"),
        false => format!(
            "chroot {shown} {}",
            argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
        ),
    });
    let mut last = "on exit: unmount everything in reverse order".to_string();
    if !undo.is_empty() {
        if keep {
            last.push_str(&format!(", but keep (--keep): {}", undo.join(", ")));
        } else {
            last.push_str(&format!(", then {}", undo.join(", ")));
        }
    }
    steps.push(last);
    steps
}

fn tool(name: &str, package: &str) -> Result<PathBuf> {
    rtool::sys::which(name).ok_or_else(|| {
        Error::missing(format!("{name} not found in PATH"))
            .hint(format!("install the {package} package"))
    })
}

fn read_mounts() -> Result<Vec<mountinfo::Mount>> {
    mountinfo::read(Path::new("/proc/self/mountinfo")).map_err(|e| {
        e.context("cannot read the mount table")
            .hint("is /proc mounted?")
    })
}

fn run_tool<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Result<()> {
    let st = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| Error::io(e, program.display()))?;
    if st.success() {
        return Ok(());
    }
    Err(Error::new(
        Kind::Failed,
        format!("{} failed ({st})", command_line(program, args)),
    ))
}

fn open_luks(
    ctx: &Ctx,
    stack: &mut MountStack,
    cryptsetup: &Path,
    dev: &Path,
    name: &str,
    key_file: Option<&PathBuf>,
    dir: &Path,
) -> Result<()> {
    let mut args: Vec<&OsStr> = vec!["open".as_ref()];
    if let Some(k) = key_file {
        args.push("--key-file".as_ref());
        args.push(k.as_os_str());
    }
    args.push(dev.as_os_str());
    args.push(name.as_ref());
    run_tool(cryptsetup, &args)?;
    stack.push(
        Undo::Run {
            program: cryptsetup.to_path_buf(),
            args: vec!["close".into(), name.into()],
        },
        true,
    );
    let mapped = Path::new("/dev/mapper").join(name);
    let t = mount::mount_device(stack, &mapped, dir, None, "defaults")?;
    ctx.debug(format!(
        "opened {} as {name}, mounted ({t}) on {}",
        dev.display(),
        dir.display()
    ));
    Ok(())
}

/// `--zpool`: what to import, with which tools and how.
struct Pool {
    name: String,
    zpool: PathBuf,
    zfs: PathBuf,
    /// `--force-import`: `zpool import -f`.
    force: bool,
    /// `--key-file`, absolute and checked readable.
    key_file: Option<PathBuf>,
}

/// A pool name, not a dataset, and nothing zpool could take for an option.
fn pool_name(name: &str) -> Result<String> {
    if name.contains('/') {
        let pool = name.split('/').next().unwrap_or_default();
        return Err(
            Error::usage(format!("--zpool takes a pool, not a dataset: {name}")).hint(format!(
                "name the pool (`--zpool {pool}`): the root dataset is found by its mountpoint"
            )),
        );
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(Error::usage(format!(
            "--zpool {name:?}: a pool name begins with a letter"
        )));
    }
    Ok(name.to_string())
}

/// The `--key-file` for zfs: readable now, and absolute (`zfs load-key -L file://PATH`).
fn key_file(path: &Path) -> Result<PathBuf> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::path(e, path).context("cannot read the key file (--key-file)"))?;
    let meta = f.metadata().map_err(|e| Error::path(e, path))?;
    if meta.is_dir() {
        return Err(Error::usage(format!(
            "--key-file {}: is a directory, not a key file",
            path.display()
        )));
    }
    std::fs::canonicalize(path).map_err(|e| Error::path(e, path))
}

/// `program arg arg…`, as shown in messages.
fn command_line<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.as_ref().to_string_lossy());
    }
    s
}

/// Runs `program` with no input, `env` added to its environment and its stderr captured
/// (stdout stays ours); returns the status and what it said on stderr.
fn run_capturing_stderr<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    env: &[(&str, &str)],
) -> Result<(ExitStatus, String)> {
    let out = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io(e, program.display()))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs `program` for its standard output (stderr captured too, no input).
fn run_for_output<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Result<Output> {
    std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(e, program.display()))
}

/// What `program args` prints, or an error in its own words.
fn stdout_of<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Result<String> {
    let out = run_for_output(program, args)?;
    if !out.status.success() {
        return Err(tool_failed(
            program,
            args,
            out.status,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What a tool said on stderr, to follow a message: `: LINE`, or one indented line each.
fn said(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => None,
        [one] => Some(format!(": {one}")),
        many => Some(format!(":\n  {}", many.join("\n  "))),
    }
}

/// `program args` failed: its own words when it gave some, else its exit status.
fn tool_failed<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    status: ExitStatus,
    stderr: &str,
) -> Error {
    let line = command_line(program, args);
    let msg = match said(stderr) {
        Some(words) => format!("{line} failed{words}"),
        None => format!("{line} failed ({status})"),
    };
    Error::new(Kind::Failed, msg)
}

/// The altroot (`-` for none) of `pool` when it is imported already.
fn imported_altroot(pool: &Pool) -> Result<Option<String>> {
    let args = ["list", "-H", "-o", "name,altroot", &pool.name];
    // Not imported: "cannot open 'POOL': no such pool", status 1. Any other failure shows
    // again, in zpool's words, when the import is tried.
    let out = run_for_output(&pool.zpool, &args)?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (name, altroot) = l.split_once('\t')?;
        (name == pool.name).then(|| altroot.to_string())
    }))
}

/// The arguments of `zpool import [-f] -N -R DIR POOL`.
fn import_args<'a>(pool: &'a Pool, dir: &'a Path) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = vec!["import".as_ref()];
    if pool.force {
        args.push("-f".as_ref());
    }
    args.extend::<[&OsStr; 4]>([
        "-N".as_ref(),
        "-R".as_ref(),
        dir.as_os_str(),
        pool.name.as_ref(),
    ]);
    args
}

/// zpool waits up to 30 s per disk for udev to settle its links; with no udev running (a
/// bare initramfs or busybox rescue system) that wait is for nothing, as initramfs scripts
/// know (ZPOOL_IMPORT_UDEV_TIMEOUT_MS=0).
fn udev_env() -> &'static [(&'static str, &'static str)] {
    let no_udev = !Path::new("/run/udev/control").exists()
        && std::env::var_os("ZPOOL_IMPORT_UDEV_TIMEOUT_MS").is_none();
    if no_udev {
        &[("ZPOOL_IMPORT_UDEV_TIMEOUT_MS", "0")]
    } else {
        &[]
    }
}

/// `zpool import [-f] -N -R DIR POOL`, with zpool's own words and a next step on failure.
fn import(pool: &Pool, dir: &Path) -> Result<()> {
    // Never without -R: the pool's / and /usr would mount over the live system.
    let args = import_args(pool, dir);
    let (status, stderr) = run_capturing_stderr(&pool.zpool, &args, udev_env())?;
    if status.success() {
        // Warnings (an unsupported feature, a degraded vdev) still reach the person.
        let _ = std::io::stderr().write_all(stderr.as_bytes());
        return Ok(());
    }
    let name = &pool.name;
    let e = tool_failed(&pool.zpool, &args, status, &stderr);
    Err(if stderr.contains("previously in use") {
        e.hint(format!(
            "the system that used {name} last did not export it before it went down: normal \
             after a crash or a failed boot (a root pool is never exported at shutdown). If no \
             other machine has it imported, import it anyway with --force-import"
        ))
    } else if stderr.contains("no such pool") {
        e.hint(format!(
            "check that `zpool import` lists {name}: the zfs module must be loaded (`modprobe \
             zfs`) and the pool's disks attached"
        ))
    } else {
        e
    })
}

fn import_pool(ctx: &Ctx, stack: &mut MountStack, pool: &Pool, dir: &Path) -> Result<()> {
    let (zfs, name) = (pool.zfs.as_path(), pool.name.as_str());
    let export = Undo::Run {
        program: pool.zpool.clone(),
        args: vec!["export".into(), name.into()],
    };
    // A pool imported already is used only when it is at DIR, as a killed session leaves it.
    let mut in_use = Vec::new();
    match imported_altroot(pool)? {
        None => {
            import(pool, dir)?;
            stack.push(export, true);
        }
        Some(altroot) if altroot != "-" && same_dir(Path::new(&altroot), dir) => {
            in_use = read_mounts()?
                .into_iter()
                .filter(|m| {
                    m.fstype == "zfs"
                        && (m.source == name || m.source.starts_with(&format!("{name}/")))
                })
                .collect();
            if in_use.is_empty() {
                ctx.note(format!(
                    "{}: {name} is already imported with altroot {} (left by an interrupted \
                     session?): using it",
                    ctx.applet,
                    dir.display()
                ));
                stack.push(export, true);
            } else {
                // Mounted by whoever imported it: theirs to export.
                ctx.note(format!(
                    "{}: {name} is already imported with altroot {} and mounted: using it as \
                     it is, and leaving it imported",
                    ctx.applet,
                    dir.display()
                ));
            }
        }
        Some(altroot) => {
            let at = match altroot.as_str() {
                "-" => "no altroot".to_string(),
                a => format!("altroot {a}"),
            };
            return Err(Error::system(format!("{name} is already imported ({at})"))
                .hint(format!("`zpool export {name}` first, if nothing uses it")));
        }
    }
    load_keys(ctx, pool)?;
    let text = stdout_of(zfs, &["list", "-H", "-o", "name,mountpoint,canmount", "-r", name])?;
    // With an altroot, a mountpoint of / is shown as the altroot itself.
    let root_ds = text.lines().find_map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        match f.as_slice() {
            [name, mp, can, ..] if (*mp == "/" || Path::new(mp) == dir) && *can != "off" => {
                Some(name.to_string())
            }
            _ => None,
        }
    });
    let Some(root_ds) = root_ds else {
        // The one boot environment under ROOT (Arch's layout) is the dataset to name; with
        // none or several, the list to choose from.
        let envs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|ds| {
                ds.strip_prefix(name)
                    .and_then(|r| r.strip_prefix("/ROOT/"))
                    .is_some_and(|r| !r.is_empty() && !r.contains('/'))
            })
            .collect();
        let hint = match envs.as_slice() {
            [one] => format!("set it: `zfs set mountpoint=/ {one}`"),
            _ => format!(
                "`zfs list -r -o name,mountpoint {name}` shows the datasets; set the root's: \
                 `zfs set mountpoint=/` and its name"
            ),
        };
        return Err(Error::missing(format!(
            "no dataset of {name} has the mountpoint / (zfs list -r {name})"
        ))
        .hint(hint));
    };
    if in_use
        .iter()
        .any(|m| m.source == root_ds && m.mount_point == dir)
    {
        ctx.debug(format!("{root_ds} is already mounted on {}", dir.display()));
    } else {
        run_tool(zfs, &["mount", &root_ds])?;
    }
    run_tool(zfs, &["mount", "-a"])?;
    ctx.debug(format!(
        "imported {name} at {}, root dataset {root_ds}",
        dir.display()
    ));
    Ok(())
}

/// `a` and `b` name the same directory (`b` canonical).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).is_ok_and(|c| c == b)
}

/// An encryption root whose key is not loaded, and where zfs looks for it.
struct Locked {
    root: String,
    /// `prompt`, `file:///…`, `https://…`
    keylocation: String,
}

/// The encryption roots of `pool` whose keys are not loaded, in `zfs get`'s order.
fn locked_roots(pool: &Pool) -> Result<Vec<Locked>> {
    let args = [
        "get",
        "-H",
        "-p",
        "-o",
        "name,property,value",
        "-r",
        "-t",
        "filesystem",
        "keystatus,encryptionroot,keylocation",
        &pool.name,
    ];
    let text = stdout_of(&pool.zfs, &args)?;
    // name → (keystatus, encryptionroot, keylocation), in the order zfs lists them.
    let mut props: Vec<(&str, [&str; 3])> = Vec::new();
    for l in text.lines() {
        let mut f = l.splitn(3, '\t');
        let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let i = match prop {
            "keystatus" => 0,
            "encryptionroot" => 1,
            "keylocation" => 2,
            _ => continue,
        };
        match props.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v[i] = value,
            None => {
                let mut v = ["-"; 3];
                v[i] = value;
                props.push((name, v));
            }
        }
    }
    let mut locked: Vec<Locked> = Vec::new();
    for (name, [keystatus, encroot, _]) in &props {
        if *keystatus != "unavailable" {
            continue;
        }
        let root = if *encroot == "-" || encroot.is_empty() {
            name
        } else {
            encroot
        };
        if locked.iter().any(|l| l.root == *root) {
            continue;
        }
        let keylocation = props
            .iter()
            .find(|(n, _)| n == root)
            .map_or("prompt", |(_, v)| v[2]);
        locked.push(Locked {
            root: root.to_string(),
            keylocation: keylocation.to_string(),
        });
    }
    Ok(locked)
}

/// Loads the key of every encryption root that needs one, before anything is mounted: from
/// `--key-file`, else from where zfs keeps it, else typed at the terminal.
fn load_keys(ctx: &Ctx, pool: &Pool) -> Result<()> {
    let locked = locked_roots(pool)?;
    if locked.is_empty() {
        return Ok(());
    }
    let prompt: Vec<&str> = locked
        .iter()
        .filter(|l| l.keylocation == "prompt")
        .map(|l| l.root.as_str())
        .collect();
    // Refused before the first key is tried: nothing is half done.
    if pool.key_file.is_none() && !prompt.is_empty() && !std::io::stdin().is_terminal() {
        let msg = match prompt.as_slice() {
            [one] => format!("{one} is encrypted and its key is not loaded"),
            many => format!(
                "{} are encrypted and their keys are not loaded",
                many.join(", ")
            ),
        };
        return Err(Error::missing(msg).hint(
            "give the passphrase file with --key-file FILE, or run from a terminal to type it",
        ));
    }
    for l in &locked {
        let root = l.root.as_str();
        let zfs = pool.zfs.as_path();
        if let Some(file) = &pool.key_file {
            let url = format!("file://{}", file.display());
            let (status, stderr) =
                run_capturing_stderr(zfs, &["load-key", "-L", &url, root], &[])?;
            if !status.success() {
                return Err(key_refused(root, status, Some(&stderr)).hint(format!(
                    "check that {} holds the passphrase (or key) of {root}",
                    file.display()
                )));
            }
        } else if l.keylocation == "prompt" {
            // zfs asks on the terminal (and asks again after a typo) and says why it refuses.
            ctx.debug(format!("{root} is encrypted: zfs load-key {root}"));
            let status = std::process::Command::new(zfs)
                .args(["load-key", root])
                .status()
                .map_err(|e| Error::io(e, zfs.display()))?;
            if !status.success() {
                return Err(key_refused(root, status, None).hint(
                    "run it again to retype the passphrase, or give it with --key-file FILE",
                ));
            }
        } else {
            let (status, stderr) = run_capturing_stderr(zfs, &["load-key", root], &[])?;
            if !status.success() {
                return Err(key_refused(root, status, Some(&stderr)).hint(format!(
                    "{root} reads its key from {}: give it with --key-file FILE",
                    l.keylocation
                )));
            }
        }
        ctx.debug(format!("loaded the key for {root}"));
    }
    Ok(())
}

/// `zfs load-key` failed for `root`; `stderr` is what it said, when captured (else the person
/// saw it already).
fn key_refused(root: &str, status: ExitStatus, stderr: Option<&str>) -> Error {
    if status.signal().is_some() {
        return Error::new(
            Kind::Interrupted,
            format!("interrupted while loading the key for {root}"),
        );
    }
    let msg = match stderr
        .filter(|s| !s.contains("Incorrect key"))
        .and_then(said)
    {
        Some(words) => format!("the key for {root} was refused{words}"),
        None => format!("the key for {root} was refused: wrong passphrase?"),
    };
    Error::new(Kind::Failed, msg)
}

fn mount_boot(
    ctx: &Ctx,
    stack: &mut MountStack,
    dir: &Path,
    mounts: &[mountinfo::Mount],
) -> Result<()> {
    let fstab_path = dir.join("etc/fstab");
    let entries =
        fstab::read(&fstab_path).map_err(|e| e.context("--mount-boot needs the target's fstab"))?;
    let boots = fstab::boot_entries(&entries);
    if boots.is_empty() {
        ctx.note(format!(
            "{}: no /boot, /efi or /boot/efi in {}: nothing to mount",
            ctx.applet,
            fstab_path.display()
        ));
    }
    for e in boots {
        let at = rtool::ctx::below(dir, &e.mount_point);
        if mountinfo::at(mounts, &at).is_some() {
            ctx.debug(format!("{} is already mounted", at.display()));
            continue;
        }
        let dev = blockdev::resolve(&e.spec, Path::new("/"))
            .map_err(|err| err.context(format!("{} line {}", fstab_path.display(), e.line)))?;
        let t =
            mount::mount_device(stack, &dev, &at, Some(&e.fstype), &e.options).map_err(|err| {
                err.context(format!("mounting {} from fstab", e.mount_point.display()))
            })?;
        ctx.note(format!(
            "{}: mounted {} ({}, {t}) on {}",
            ctx.applet,
            e.spec,
            dev.display(),
            at.display()
        ));
    }
    Ok(())
}

/// Warns loudly about kernels in an unmounted /boot; with `require`, refuses to go on.
fn check_boot(ctx: &Ctx, dir: &Path, require: bool) -> Result<()> {
    let boot = dir.join("boot");
    let mounts = read_mounts()?;
    if mountinfo::at(&mounts, &boot).is_some() {
        return Ok(());
    }
    let mut stray: Vec<String> = std::fs::read_dir(&boot)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.starts_with("vmlinuz") || n.starts_with("initramfs"))
                .collect()
        })
        .unwrap_or_default();
    stray.sort();
    if !stray.is_empty() {
        ctx.warn(format!(
            "{} is NOT a mounted filesystem, but holds kernel images: {}\n  a kernel installed now lands in the root filesystem, not where the boot loader looks; mount /boot first (`--mount-boot`)",
            boot.display(),
            stray.join(", ")
        ));
    }
    if require {
        return Err(Error::missing(format!(
            "{} is not a mounted filesystem (--require-boot)",
            boot.display()
        ))
        .hint(format!(
            "mount it from the target's fstab: `rtool chroot --mount-boot {}`",
            dir.display()
        )));
    }
    Ok(())
}

/// The shells to try inside the target: `$SHELL`, /bin/bash, /bin/sh.
fn shells() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(s) = std::env::var_os("SHELL").filter(|s| Path::new(s).is_absolute()) {
        v.push(PathBuf::from(s));
    }
    for s in ["/bin/bash", "/bin/sh"] {
        if !v.iter().any(|p| p == Path::new(s)) {
            v.push(PathBuf::from(s));
        }
    }
    v
}
