//! Make the directory under /boot unusable, so nothing installs into an unmounted /boot

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::sys::{chattr, mountinfo, ns};
use rtool::text::glyph;
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("boot-guard")
        .long_about(
            "When /boot is a separate filesystem, the directory it is mounted on is an ordinary \
             empty directory of the root filesystem. If /boot is not mounted when a kernel is \
             installed (in a chroot, say), the kernel and initramfs land there and the boot \
             loader never sees them. boot-guard makes that directory unusable: mode 000 and the \
             immutable flag, which stops root too. It works while /boot is mounted, by reaching \
             the directory underneath through a private bind mount. It refuses a directory that \
             is not empty, listing what is there, unless --move-to.",
        )
        .arg(Arg::new("dir").value_name("DIR").value_parser(clap::value_parser!(PathBuf))
            .help("The mountpoint to guard [default: <root>/boot]"))
        .arg(Arg::new("status").long("status").action(ArgAction::SetTrue)
            .help("Show both layers: the mounted filesystem and the directory under it"))
        .arg(Arg::new("undo").long("undo").action(ArgAction::SetTrue)
            .help("Remove the guard (mode 0755, immutable flag cleared)"))
        .arg(Arg::new("move_to").long("move-to").value_name("DEST").value_parser(clap::value_parser!(PathBuf))
            .help("Move what is in the directory to DEST first (the stray kernel of an unmounted /boot)"))
        .arg(ctx::arg_root())
        .arg(ctx::arg_dry_run())
        .arg(ctx::arg_json())
        .group(clap::ArgGroup::new("mode").args(["status", "undo"]))
        .after_help(
            "Examples:
  rtool boot-guard --root /mnt            # guard /mnt/boot (mounted or not)
  rtool boot-guard -n --root /mnt         # what it would change, changing nothing
  rtool boot-guard --status --root /mnt
  rtool boot-guard --status --json --root /mnt
  rtool boot-guard --move-to /root/stray-boot --root /mnt   # it holds a stray kernel
  rtool boot-guard --undo --root /mnt",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let dir = match m.get_one::<PathBuf>("dir") {
        Some(d) => d.clone(),
        None => ctx.root_path("/boot"),
    };
    if !m.get_flag("status") {
        let shown = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
        ctx.require_root(&format!("it changes the directory under {} and its immutable flag", shown.display()))?;
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| Error::path(e, &dir))?;
    if !dir.is_dir() {
        return Err(Error::usage(format!("{} is not a directory", dir.display())));
    }
    let mounts = mountinfo::read(&ctx.host_path("/proc/self/mountinfo"))?;
    let mounted = mountinfo::at(&mounts, &dir).cloned();
    let mut out = ctx.out();

    // The directory under the mountpoint: itself when nothing is mounted on it, else seen
    // through a shallow bind of the filesystem that holds it, in a namespace of our own.
    let mut scratch: Option<PathBuf> = None;
    let under = match &mounted {
        None => dir.clone(),
        Some(_) => {
            // Even to look (--status, -n): the bind needs a mount namespace of its own.
            ctx.require_root_always(&format!(
                "a filesystem is mounted on {}, and the directory under it is reached through a private bind mount",
                dir.display()
            ))?;
            let parent = dir.parent().unwrap_or(Path::new("/"));
            let holder = mountinfo::containing(&mounts, parent)
                .ok_or_else(|| Error::system(format!("no filesystem holds {}", parent.display())))?;
            ns::private_mounts()?;
            let t = tempdir()?;
            ns::bind_shallow(&holder.mount_point, &t)?;
            let rel = dir.strip_prefix(&holder.mount_point).unwrap_or(Path::new(""));
            scratch = Some(t.clone());
            t.join(rel)
        }
    };
    let result = act(ctx, m, &dir, &under, mounted.as_ref(), &mut out);
    // The bind lives in our own namespace and dies with us; the directory does not.
    if let Some(t) = scratch {
        let _ = ns::unmount(&t);
        let _ = std::fs::remove_dir(&t);
    }
    result
}

fn tempdir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("rtool-boot-guard-{}", std::process::id()));
    std::fs::create_dir_all(&p).map_err(|e| Error::path(e, &p))?;
    Ok(p)
}

struct Layer {
    mode: u32,
    immutable: Option<bool>,
    entries: Vec<String>,
}

fn inspect(under: &Path) -> Result<(std::fs::File, Layer)> {
    let f = std::fs::File::open(under).map_err(|e| Error::path(e, under))?;
    let mode = f.metadata().map_err(|e| Error::path(e, under))?.permissions().mode() & 0o7777;
    let immutable = match chattr::get(f.as_fd()) {
        Ok(fl) => Some(fl & chattr::IMMUTABLE != 0),
        Err(e) if chattr::unsupported(&e) => None,
        Err(e) => return Err(Error::path(e, under)),
    };
    let mut entries: Vec<String> = std::fs::read_dir(under)
        .map_err(|e| Error::path(e, under))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    Ok((f, Layer { mode, immutable, entries }))
}

fn act(ctx: &Ctx, m: &ArgMatches, dir: &Path, under: &Path, mounted: Option<&mountinfo::Mount>, out: &mut dyn Write) -> Result<u8> {
    let (f, layer) = inspect(under)?;
    let guarded = layer.mode == 0 && layer.immutable != Some(false);
    if m.get_flag("status") {
        if ctx.json {
            let j = Json::obj()
                .with("dir", dir.display().to_string())
                .with(
                    "mounted",
                    mounted.map(|mnt| Json::obj().with("source", &mnt.source).with("fstype", &mnt.fstype)),
                )
                .with(
                    "under",
                    Json::obj()
                        .with("mode", u64::from(layer.mode))
                        .with("mode_octal", format!("{:04o}", layer.mode))
                        .with("immutable", layer.immutable)
                        .with("entries", layer.entries.clone()),
                )
                .with("guarded", guarded);
            writeln!(out, "{j:#}")?;
            return Ok(if guarded { exit::OK } else { exit::PROBLEMS });
        }
        match mounted {
            Some(mnt) => writeln!(out, "{}: mounted: {} ({})", dir.display(), mnt.source, mnt.fstype)?,
            None => writeln!(out, "{}: not mounted", dir.display())?,
        }
        writeln!(
            out,
            "directory under it: mode {:04o}, immutable {}, {} {} {}",
            layer.mode,
            match layer.immutable {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not supported here",
            },
            if layer.entries.is_empty() { "empty".to_string() } else { format!("holds {}", layer.entries.join(", ")) },
            glyph("—"),
            if guarded { "guarded" } else { "NOT guarded" }
        )?;
        return Ok(if guarded { exit::OK } else { exit::PROBLEMS });
    }
    let done = |out: &mut dyn Write, action: &str, steps: &[String], text: &str| -> Result<u8> {
        if ctx.json {
            let j = Json::obj()
                .with("dir", dir.display().to_string())
                .with("action", action)
                .with("dry_run", ctx.dry_run)
                .with("steps", steps.to_vec());
            writeln!(out, "{j:#}")?;
        } else if ctx.dry_run && !steps.is_empty() {
            for step in steps {
                writeln!(out, "would {step}")?;
            }
            writeln!(out, "{}: nothing was changed (--dry-run)", dir.display())?;
        } else {
            writeln!(out, "{text}")?;
        }
        Ok(exit::OK)
    };
    if m.get_flag("undo") {
        let mut steps = Vec::new();
        if layer.immutable == Some(true) {
            steps.push(format!("clear the immutable flag of the directory under {}", dir.display()));
        }
        steps.push(format!("set the mode of the directory under {} to 0755", dir.display()));
        if !ctx.dry_run {
            if layer.immutable == Some(true) {
                let fl = chattr::get(f.as_fd()).map_err(|e| Error::path(e, under))?;
                chattr::set(f.as_fd(), fl & !chattr::IMMUTABLE).map_err(|e| Error::path(e, under))?;
            }
            f.set_permissions(std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::path(e, under))?;
        }
        return done(out, "undo", &steps, &format!("{}: guard removed (mode 0755, not immutable)", dir.display()));
    }
    if guarded {
        return done(out, "none", &[], &format!("{}: already guarded", dir.display()));
    }
    let mut steps = Vec::new();
    if !layer.entries.is_empty() {
        let Some(dest) = m.get_one::<PathBuf>("move_to") else {
            return Err(Error::new(
                Kind::System,
                format!(
                    "the directory under {} is not empty: it holds {} (installed while /boot was not mounted?); nothing was changed",
                    dir.display(),
                    layer.entries.join(", ")
                ),
            )
            .hint("--move-to DEST moves them away first; check whether the mounted /boot needs them"));
        };
        for name in &layer.entries {
            let to = dest.join(name);
            if to.exists() {
                return Err(Error::system(format!("{} already exists: not overwritten; nothing was changed", to.display())));
            }
            steps.push(format!("move {name} to {}", dest.display()));
        }
    }
    steps.push(format!("set the mode of the directory under {} to 000", dir.display()));
    steps.push(format!("set the immutable flag of the directory under {}", dir.display()));
    if ctx.dry_run {
        return done(out, "guard", &steps, "");
    }
    if let Some(dest) = m.get_one::<PathBuf>("move_to").filter(|_| !layer.entries.is_empty()) {
        std::fs::create_dir_all(dest).map_err(|e| Error::path(e, dest))?;
        for name in &layer.entries {
            let (from, to) = (under.join(name), dest.join(name));
            if to.exists() {
                return Err(Error::system(format!("{} already exists: not overwritten", to.display())));
            }
            if let Err(e) = std::fs::rename(&from, &to) {
                if e.raw_os_error() != Some(libc::EXDEV) || !from.is_file() {
                    return Err(Error::path(e, &to).hint("choose a DEST on the same filesystem as the root"));
                }
                std::fs::copy(&from, &to).map_err(|e| rtool::sys::write_error(e, &to, &to, ""))?;
                std::fs::remove_file(&from).map_err(|e| Error::path(e, &from))?;
            }
            ctx.note(format!("moved {name} to {}", dest.display()));
        }
    }
    f.set_permissions(std::fs::Permissions::from_mode(0o000)).map_err(|e| Error::path(e, under))?;
    match chattr::get(f.as_fd()) {
        Ok(fl) => chattr::set(f.as_fd(), fl | chattr::IMMUTABLE).map_err(|e| Error::path(e, under))?,
        Err(e) if chattr::unsupported(&e) => {
            ctx.warn(format!(
                "{}: this filesystem has no immutable flag; mode 000 alone does not stop root",
                dir.display()
            ));
        }
        Err(e) => return Err(Error::path(e, under)),
    }
    let text = format!(
        "{}: the directory {}is now mode 000 and immutable: nothing can be installed into it{}",
        dir.display(),
        if mounted.is_some() { "under the mounted /boot " } else { "" },
        if mounted.is_some() { "" } else { " (mount /boot on it as usual)" }
    );
    done(out, "guard", &steps, &text)
}
