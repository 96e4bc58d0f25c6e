//! Keep the installed kernel bootable across an upgrade: image, initramfs and its modules

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::kernel::build::copy_tree_except;
use rtool::kernel::{bzimage, modules_dir};
use rtool::{ctx, exit, sys, Ctx, Error, Result};

pub fn command() -> Command {
    Command::new("kernel-keep")
        .long_about(
            "Before a kernel upgrade: copies each kernel in /boot and its initramfs to `-prev` \
             names, keeps a copy of its modules directory where pacman does not look \
             (/var/lib/rtool/kernel-keep), and writes a systemd-boot entry for it. After the \
             upgrade, --restore puts the kept modules directories back, so the old kernel boots \
             and loads its modules. A copy of vmlinuz alone would boot into a system whose \
             modules are gone.",
        )
        .arg(Arg::new("restore").long("restore").action(ArgAction::SetTrue)
            .help("Put kept modules directories back where the upgrade removed them"))
        .arg(Arg::new("list").long("list").action(ArgAction::SetTrue).help("List the kept kernels"))
        .arg(Arg::new("prune").long("prune").action(ArgAction::SetTrue)
            .help("Remove kept module copies of kernels no longer in /boot as -prev"))
        .arg(ctx::arg_root())
        .arg(ctx::arg_dry_run())
        .arg(ctx::arg_json().requires("list").help("With --list: print the kept kernels as JSON on stdout"))
        .group(clap::ArgGroup::new("mode").args(["restore", "list", "prune"]))
        .after_help(
            "Examples:
  rtool kernel-keep --root /mnt          # before `pacman -Syu` in the chroot
  rtool kernel-keep -n --root /mnt       # what it would copy and write, changing nothing
  rtool kernel-keep --restore --root /mnt   # after it (the pacman hook does this)
  rtool kernel-keep --list
  rtool kernel-keep --list --json

Without systemd-boot, add a GRUB entry for /boot/vmlinuz-BASE-prev yourself
(`grub-mkconfig -o /boot/grub/grub.cfg` finds it).",
        )
}

fn store(ctx: &Ctx) -> PathBuf {
    ctx.root_path("/var/lib/rtool/kernel-keep")
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    if m.get_flag("list") {
        return list(ctx);
    }
    ctx.require_root(&format!(
        "it writes to {} and {}",
        ctx.root_path("/boot").display(),
        store(ctx).display()
    ))?;
    if m.get_flag("restore") {
        return restore(ctx);
    }
    if m.get_flag("prune") {
        return prune(ctx);
    }
    keep(ctx)
}

/// Copies `from` to `to` through a temporary name, so `to` is whole or absent.
fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_file_name(format!(".{}.rtool-tmp", to.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()));
    let r = std::fs::copy(from, &tmp).map_err(|e| sys::write_error(e, &tmp, to, "; nothing was replaced")).and_then(|_| {
        std::fs::rename(&tmp, to).map_err(|e| Error::path(e, to))
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn keep(ctx: &Ctx) -> Result<u8> {
    let boot = ctx.root_path("/boot");
    let mut out = ctx.out();
    let mut kept = 0;
    let rd = std::fs::read_dir(&boot).map_err(|e| Error::path(e, &boot))?;
    let mut images: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|f| f.to_str()).is_some_and(|n| n.starts_with("vmlinuz-") && !n.ends_with("-prev"))
        })
        .collect();
    images.sort();
    for img in images {
        let base = img.file_name().and_then(|f| f.to_str()).and_then(|n| n.strip_prefix("vmlinuz-")).unwrap_or("").to_string();
        let kver = bzimage::release(&img)?;
        let moddir = modules_dir(&ctx.root, &kver);
        if !moddir.is_dir() {
            ctx.warn(format!("{}: its modules ({}) are already gone: keeping it would not give a bootable kernel; skipped", img.display(), moddir.display()));
            continue;
        }
        if ctx.dry_run {
            writeln!(out, "would keep {kver}:")?;
            writeln!(out, "  copy {} to {}", img.display(), boot.join(format!("vmlinuz-{base}-prev")).display())?;
            let initrd = boot.join(format!("initramfs-{base}.img"));
            if initrd.is_file() {
                writeln!(out, "  copy {} to {}", initrd.display(), boot.join(format!("initramfs-{base}-prev.img")).display())?;
            }
            writeln!(out, "  copy {} to {}", moddir.display(), store(ctx).join(&kver).display())?;
            let entries = ctx.root_path("/boot/loader/entries");
            if entries.is_dir() {
                writeln!(out, "  write the boot entry {}", entries.join(format!("rtool-{base}-prev.conf")).display())?;
            }
            kept += 1;
            continue;
        }
        copy_atomic(&img, &boot.join(format!("vmlinuz-{base}-prev")))?;
        let initrd = boot.join(format!("initramfs-{base}.img"));
        if initrd.is_file() {
            copy_atomic(&initrd, &boot.join(format!("initramfs-{base}-prev.img")))?;
        }
        // The modules, copied whole before they take the kept name.
        let dest = store(ctx).join(&kver);
        let tmp = store(ctx).join(format!(".{kver}.rtool-tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(store(ctx)).map_err(|e| Error::path(e, &store(ctx)))?;
        if let Err(e) = copy_modules(&moddir, &tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| Error::path(e, &dest))?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| Error::path(e, &dest))?;
        let entry = write_loader_entry(ctx, &base, &kver)?;
        writeln!(out, "kept {kver}: {}, modules in {}", boot.join(format!("vmlinuz-{base}-prev")).display(), dest.display())?;
        match entry {
            Some(p) => writeln!(out, "  boot entry: {}", p.display())?,
            None => writeln!(out, "  no systemd-boot here: add a boot entry for /boot/vmlinuz-{base}-prev (e.g. `grub-mkconfig -o /boot/grub/grub.cfg`)")?,
        }
        kept += 1;
    }
    if kept == 0 {
        writeln!(out, "no kernel with its modules in {}: nothing {}", boot.display(), if ctx.dry_run { "to keep" } else { "kept" })?;
    } else if ctx.dry_run {
        writeln!(out, "nothing was changed (--dry-run)")?;
    }
    Ok(exit::OK)
}

/// The modules directory, without `build`/`source` (the headers: large, and not needed to boot).
fn copy_modules(from: &Path, to: &Path) -> Result<()> {
    copy_tree_except(from, to, &["build", "source"])
}

/// A systemd-boot entry for the kept kernel, with the options of the current one.
fn write_loader_entry(ctx: &Ctx, base: &str, kver: &str) -> Result<Option<PathBuf>> {
    let dir = ctx.root_path("/boot/loader/entries");
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut options = String::new();
    for e in std::fs::read_dir(&dir).map_err(|e| Error::path(e, &dir))?.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["linux", &format!("/vmlinuz-{base}")]) {
            options = text.lines().filter(|l| l.starts_with("options")).collect::<Vec<_>>().join("\n");
            break;
        }
    }
    let entry = dir.join(format!("rtool-{base}-prev.conf"));
    let mut text = format!("title   Arch Linux ({kver}, kept by rtool)\nlinux   /vmlinuz-{base}-prev\ninitrd  /initramfs-{base}-prev.img\n");
    if !options.is_empty() {
        text.push_str(&options);
        text.push('\n');
    }
    let tmp = dir.join(format!(".rtool-{base}-prev.conf.tmp"));
    std::fs::write(&tmp, text).map_err(|e| sys::write_error(e, &tmp, &entry, ""))?;
    std::fs::rename(&tmp, &entry).map_err(|e| Error::path(e, &entry))?;
    Ok(Some(entry))
}

fn kept(ctx: &Ctx) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store(ctx))
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().filter(|n| !n.starts_with('.')).map(String::from)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn restore(ctx: &Ctx) -> Result<u8> {
    let mut out = ctx.out();
    for kver in kept(ctx) {
        let moddir = modules_dir(&ctx.root, &kver);
        if moddir.join("modules.dep").is_file() || moddir.join("kernel").is_dir() {
            continue; // still installed: nothing to put back
        }
        if ctx.dry_run {
            writeln!(out, "would restore {}", moddir.display())?;
            continue;
        }
        copy_modules(&store(ctx).join(&kver), &moddir)?;
        writeln!(out, "restored {}: the kept kernel can load its modules", moddir.display())?;
    }
    Ok(exit::OK)
}

fn list(ctx: &Ctx) -> Result<u8> {
    let mut out = ctx.out();
    let boot = ctx.root_path("/boot");
    let mut rows = Vec::new();
    for kver in kept(ctx) {
        let prev: Vec<String> = std::fs::read_dir(&boot)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-prev")))
                    .filter(|e| bzimage::release(&e.path()).is_ok_and(|r| r == kver))
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if ctx.json {
            rows.push(
                Json::obj()
                    .with("kernel", &kver)
                    .with("modules", store(ctx).join(&kver).display().to_string())
                    .with("images", prev.iter().map(|p| boot.join(p).display().to_string()).collect::<Vec<_>>()),
            );
            continue;
        }
        writeln!(out, "{kver}: modules kept; {}", if prev.is_empty() { "no -prev image in /boot".to_string() } else { format!("boots from {}", prev.iter().map(|p| boot.join(p).display().to_string()).collect::<Vec<_>>().join(", ")) })?;
    }
    if ctx.json {
        let j = Json::obj().with("store", store(ctx).display().to_string()).with("kept", Json::Arr(rows));
        writeln!(out, "{j:#}")?;
    }
    Ok(exit::OK)
}

/// Drops kept modules whose kernel no `-prev` image in /boot refers to any more.
fn prune(ctx: &Ctx) -> Result<u8> {
    let boot = ctx.root_path("/boot");
    let referenced: Vec<String> = std::fs::read_dir(&boot)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("vmlinuz-")))
                .filter_map(|e| bzimage::release(&e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut out = ctx.out();
    for kver in kept(ctx) {
        if referenced.contains(&kver) {
            continue;
        }
        let d = store(ctx).join(&kver);
        if ctx.dry_run {
            writeln!(out, "would remove {}", d.display())?;
        } else {
            std::fs::remove_dir_all(&d).map_err(|e| Error::path(e, &d))?;
            writeln!(out, "removed {}", d.display())?;
        }
    }
    Ok(exit::OK)
}
