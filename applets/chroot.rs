//! Enter an installed system like arch-chroot, with /boot checked and everything torn down on the way out

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::sys::mount::{self, MountStack, ResolvConf, Signals, Undo};
use rtool::sys::{blockdev, fstab, mountinfo, ns};
use rtool::{exit, Ctx, Error, Kind, Result};

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
             alone (with a warning).",
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
                .last(true)
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
                .requires("luks")
                .help("Read the LUKS passphrase from FILE instead of the terminal"),
        )
        .arg(Arg::new("zpool").long("zpool").value_name("POOL").help(
            "Import POOL with -N -R DIR, mount its root dataset and the rest; export it on exit",
        ))
        .arg(
            Arg::new("keep")
                .long("keep")
                .action(ArgAction::SetTrue)
                .help("Leave the LUKS mapping open and the pool imported on exit"),
        )
        .after_help(
            "Examples:
  rtool chroot /mnt                                # the target's shell
  rtool chroot --mount-boot /mnt -- pacman -Syu    # /boot and the ESP mounted from fstab
  rtool chroot --require-boot /mnt -- mkinitcpio -P
  rtool chroot --mount /dev/nvme0n1p2 --mount-boot /mnt
  rtool chroot --luks /dev/nvme0n1p2:cryptroot /mnt
  rtool chroot --zpool rpool --mount-boot /mnt -- zpool set cachefile=/etc/zfs/zpool.cache rpool

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
    if !rtool::sys::is_root() {
        return Err(
            Error::missing("rtool chroot must be run as root (it mounts filesystems)")
                .hint("run it with sudo, or as root"),
        );
    }
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "cannot create a chroot on {}: not a directory",
            dir.display()
        )));
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| Error::path(e, &dir))?;
    // The tools are checked before anything is changed.
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
    let zpool = m.get_one::<String>("zpool");
    let zfs_tools = match zpool {
        Some(_) => Some((tool("zpool", "zfs-utils")?, tool("zfs", "zfs-utils")?)),
        None => None,
    };

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
        } else if let (Some(pool), Some((zp, zfs))) = (zpool, &zfs_tools) {
            import_pool(ctx, &mut stack, zp, zfs, pool, &dir)?;
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

fn run_tool(program: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let st = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| Error::io(e, program.display()))?;
    if st.success() {
        return Ok(());
    }
    let line: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Err(Error::new(
        Kind::Failed,
        format!("{} {} failed ({st})", program.display(), line.join(" ")),
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
    let mut args: Vec<&std::ffi::OsStr> = vec!["open".as_ref()];
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

fn import_pool(
    ctx: &Ctx,
    stack: &mut MountStack,
    zpool: &Path,
    zfs: &Path,
    pool: &str,
    dir: &Path,
) -> Result<()> {
    // Never without -R: the pool's / and /usr would mount over the live system.
    run_tool(
        zpool,
        &[
            "import".as_ref(),
            "-N".as_ref(),
            "-R".as_ref(),
            dir.as_os_str(),
            pool.as_ref(),
        ],
    )?;
    stack.push(
        Undo::Run {
            program: zpool.to_path_buf(),
            args: vec!["export".into(), pool.into()],
        },
        true,
    );
    let out = std::process::Command::new(zfs)
        .args(["list", "-H", "-o", "name,mountpoint,canmount", "-r", pool])
        .output()
        .map_err(|e| Error::io(e, zfs.display()))?;
    if !out.status.success() {
        return Err(Error::new(
            Kind::Failed,
            format!("zfs list -r {pool} failed ({})", out.status),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
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
        return Err(Error::missing(format!(
            "no dataset of {pool} has the mountpoint / (zfs list -r {pool})"
        ))
        .hint(format!("set it: `zfs set mountpoint=/ {pool}/ROOT/<name>`")));
    };
    run_tool(zfs, &["mount".as_ref(), root_ds.as_ref()])?;
    run_tool(zfs, &["mount".as_ref(), "-a".as_ref()])?;
    ctx.debug(format!(
        "imported {pool} at {}, root dataset {root_ds}",
        dir.display()
    ));
    Ok(())
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
