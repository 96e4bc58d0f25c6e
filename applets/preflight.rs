//! Check a system before rebooting it: every kernel has modules, an initramfs with what root needs, DKMS builds

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{ArgMatches, Command};
use rtool::json::Json;
use rtool::kernel::build::{self as dkms_build, State};
use rtool::kernel::initramfs;
use rtool::kernel::{bzimage, modules_dir};
use rtool::report::{self, Finding, Status};
use rtool::sys::{fstab, mountinfo};
use rtool::{ctx, exit, Ctx, Result};

pub fn command() -> Command {
    Command::new("preflight")
        .long_about(
            "The check that would have saved the incident's machine: for every kernel in /boot, \
             its modules directory exists, its initramfs exists, is newer than the kernel and \
             holds what the root filesystem needs (zfs for a root on ZFS, the AUTOINSTALL DKMS \
             modules), and the DKMS modules are built for it; /boot is mounted when fstab lists \
             it; a fallback kernel is kept. Any failure prints a banner that cannot be missed \
             and exits non-zero.",
        )
        .arg(ctx::arg_root())
        .arg(ctx::arg_json())
        .after_help(
            "Examples:
  rtool preflight                 # before rebooting this machine
  rtool preflight --root /mnt     # the installed system, from the live ISO
  rtool preflight --json

Exit status: 0 ready to boot (warnings allowed); 1 something will fail at boot.",
        )
}

/// A kernel image in /boot with what belongs to it.
struct Kernel {
    image: PathBuf,
    /// `linux` for `vmlinuz-linux` (Arch), the release for `vmlinuz-6.1.0-13-amd64` (Debian).
    base: String,
    release: Option<String>,
}

fn kernels(boot: &Path) -> Vec<Kernel> {
    let mut v: Vec<Kernel> = std::fs::read_dir(boot)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.to_string();
                    let base = n.strip_prefix("vmlinuz-")?.to_string();
                    Some(Kernel { release: bzimage::release(&e.path()).ok(), image: e.path(), base })
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.base.cmp(&b.base));
    v
}

/// The initramfs of a kernel: Arch's `initramfs-BASE.img`, or Debian's `initrd.img-BASE`.
fn initramfs_of(boot: &Path, k: &Kernel) -> Option<PathBuf> {
    [format!("initramfs-{}.img", k.base), format!("initrd.img-{}", k.base)]
        .iter()
        .map(|n| boot.join(n))
        .find(|p| p.is_file())
}

/// Whether the root filesystem is ZFS: fstab, mkinitcpio's HOOKS, or a boot entry's `zfs=`.
fn root_on_zfs(ctx: &Ctx) -> bool {
    let fstab = fstab::read(&ctx.root_path("/etc/fstab")).unwrap_or_default();
    if fstab.iter().any(|e| e.mount_point == Path::new("/") && e.fstype == "zfs") {
        return true;
    }
    let hooks = std::fs::read_to_string(ctx.root_path("/etc/mkinitcpio.conf")).unwrap_or_default();
    if hooks.lines().any(|l| l.trim_start().starts_with("HOOKS") && l.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-').any(|w| w == "zfs")) {
        return true;
    }
    let entries = ctx.root_path("/boot/loader/entries");
    std::fs::read_dir(entries)
        .map(|rd| rd.flatten().any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("zfs="))))
        .unwrap_or(false)
}

pub fn run(ctx: &Ctx, _m: &ArgMatches) -> Result<u8> {
    let boot = ctx.root_path("/boot");
    let mut findings = Vec::new();
    // The next steps as commands to paste at this prompt: run inside the system through
    // `rtool chroot` when it is mounted elsewhere, rtool's own applets given its --root.
    let root_arg = ctx.root_arg();
    let inside = |cmd: String| {
        if ctx.root_is_host() {
            format!("`{cmd}`")
        } else {
            format!("`rtool chroot {} -- {cmd}`", ctx.root.display())
        }
    };

    // /boot mounted?
    let mounts = mountinfo::read(&ctx.host_path("/proc/self/mountinfo")).unwrap_or_default();
    let root_mp = if ctx.root_is_host() { PathBuf::from("/") } else { std::fs::canonicalize(&ctx.root).unwrap_or_else(|_| ctx.root.clone()) };
    let fstab = fstab::read(&ctx.root_path("/etc/fstab")).unwrap_or_default();
    if let Some(e) = fstab::boot_entries(&fstab).into_iter().find(|e| e.mount_point == Path::new("/boot")) {
        let at = ctx::below(&root_mp, Path::new("/boot"));
        if mountinfo::at(&mounts, &at).is_some() {
            findings.push(Finding::new("boot-mounted", Status::Ok, format!("/boot ({}) is mounted", e.spec)));
        } else {
            findings.push(
                Finding::new("boot-mounted", Status::Fail, format!("/boot is in fstab ({}) but not mounted: the kernels below are not the ones the boot loader will load", e.spec))
                    .next(format!("`rtool chroot --mount-boot {}`, or mount it, then check again", root_mp.display())),
            );
        }
    }

    let ks = kernels(&boot);
    let zfs_root = root_on_zfs(ctx);
    let (dkms_rows, dkms_warnings) = dkms_build::status(&ctx.root).unwrap_or_default();
    // A module source that cannot be read leaves its kernels unchecked: say so.
    for w in dkms_warnings {
        findings.push(Finding::new("dkms", Status::Warn, w).next(format!("`rtool dkms status{root_arg}` says more")));
    }
    if ks.is_empty() {
        findings.push(Finding::new("kernels", Status::Fail, format!("no kernel (vmlinuz-*) in {}", boot.display())).next("reinstall the kernel package with /boot mounted"));
    }
    for k in &ks {
        let name = k.image.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(rel) = &k.release else {
            findings.push(Finding::new("kernel", Status::Fail, format!("{name}: not a readable kernel image")));
            continue;
        };
        let moddir = modules_dir(&ctx.root, rel);
        if moddir.is_dir() {
            findings.push(Finding::new("modules", Status::Ok, format!("{name} ({rel}): modules in {}", moddir.display())).data("kernel", rel.as_str()));
        } else {
            findings.push(
                Finding::new("modules", Status::Fail, format!("{name} is {rel}, but {} does not exist: it boots without any module", moddir.display()))
                    .next(format!("reinstall the package of {rel}, or {}", rtool::kernel::package_from_archive(rel, &ctx.root, false)))
                    .data("kernel", rel.as_str()),
            );
        }
        // The initramfs and what it holds.
        match initramfs_of(&boot, k) {
            None => findings.push(Finding::new("initramfs", Status::Fail, format!("{name}: no initramfs beside it")).next(inside(format!("mkinitcpio -p {}", k.base))).data("kernel", rel.as_str())),
            Some(img) => {
                let newer = match (img.metadata().and_then(|m| m.modified()), k.image.metadata().and_then(|m| m.modified())) {
                    (Ok(i), Ok(v)) => i >= v,
                    _ => true,
                };
                let iname = img.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                if !newer {
                    findings.push(Finding::new("initramfs", Status::Fail, format!("{iname} is older than {name}: it was not rebuilt for this kernel")).next(inside(format!("mkinitcpio -p {}", k.base))).data("kernel", rel.as_str()));
                }
                match initramfs::contents(&img) {
                    Err(e) => findings.push(Finding::new("initramfs", Status::Fail, format!("{iname}: unreadable: {e}")).data("kernel", rel.as_str())),
                    Ok(c) => {
                        let rels = &c.releases;
                        let mut need: Vec<String> = Vec::new();
                        if zfs_root {
                            need.push("zfs".into());
                        }
                        let missing: Vec<&String> = need.iter().filter(|n| c.has(n, None).is_none()).collect();
                        if !rels.is_empty() && !rels.contains(rel) {
                            findings.push(Finding::new("initramfs", Status::Fail, format!("{iname} holds modules of {} but the kernel is {rel}", rels.join(", "))).next(inside(format!("mkinitcpio -p {}", k.base))).data("kernel", rel.as_str()));
                        } else if missing.is_empty() {
                            if newer {
                                findings.push(Finding::new("initramfs", Status::Ok, format!("{iname}: current{}", if need.is_empty() { String::new() } else { format!(", holds {}", need.join(", ")) })).data("kernel", rel.as_str()));
                            }
                        } else {
                            findings.push(
                                Finding::new("initramfs", Status::Fail, format!("{iname} lacks {}: the root filesystem cannot be mounted at boot", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
                                    .next(match dkms_rows.iter().find(|r| r.kernel == *rel && missing.iter().any(|m| **m == r.module)) {
                                        Some(r) => format!("`rtool dkms build {}/{} -k {rel}{root_arg}`, then {}", r.module, r.version, inside(format!("mkinitcpio -p {}", k.base))),
                                        None => format!("build it for {rel} (`rtool dkms status{root_arg}` lists the sources), then {}", inside(format!("mkinitcpio -p {}", k.base))),
                                    })
                                    .data("kernel", rel.as_str()),
                            );
                        }
                    }
                }
            }
        }
        // DKMS modules for this kernel.
        for r in dkms_rows.iter().filter(|r| r.kernel == *rel && r.autoinstall && r.state != State::Installed) {
            let mut f = Finding::new("dkms", Status::Fail, format!("{}/{} is not built for {rel}", r.module, r.version))
                .data("kernel", rel.as_str())
                .data("module", r.module.as_str());
            if let Some(d) = &r.detail {
                f = f.detail(d.clone());
            }
            findings.push(f.next(format!("`rtool dkms build {}/{} -k {rel}{root_arg}`, or keep a kernel it supports", r.module, r.version)));
        }
    }
    if ks.len() == 1 {
        findings.push(Finding::new("fallback", Status::Warn, "only one kernel is installed: nothing to fall back to if it fails").next(format!("`rtool kernel-keep{root_arg}` keeps the current kernel bootable across an upgrade, or install linux-lts")));
    } else if ks.len() > 1 {
        findings.push(Finding::new("fallback", Status::Ok, format!("{} kernels installed", ks.len())));
    }

    let worst = report::worst(&findings);
    let mut out = ctx.out();
    if ctx.json {
        let j = Json::obj().with("root", ctx.root.display().to_string()).with("ok", worst != Status::Fail).with("root_on_zfs", zfs_root).with("findings", report::to_json(&findings));
        writeln!(out, "{j:#}")?;
    } else {
        writeln!(out, "rtool preflight: {}", ctx.root.display())?;
        report::write_text(&mut out, &findings, ctx.color)?;
        if worst == Status::Fail {
            let (on, off) = if ctx.color { ("\x1b[1;41;97m", "\x1b[0m") } else { ("", "") };
            let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
            let line = "!".repeat(72);
            writeln!(out, "{on}{line}{off}")?;
            writeln!(out, "{on}!!  DO NOT REBOOT: {fails} problem(s) above will stop this system from booting.{off}")?;
            writeln!(out, "{on}{line}{off}")?;
        }
    }
    Ok(if worst == Status::Fail { exit::PROBLEMS } else { exit::OK })
}
