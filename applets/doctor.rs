//! Report the rescue situation: kernel, live medium, space, ZFS, network, ssh, mounts, tools

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{ArgMatches, Command};
use rtool::json::Json;
use rtool::report::{self, Finding, Status};
use rtool::sys::{self, fstab, mountinfo, net};
use rtool::units::human;
use rtool::{ctx, exit, kernel, Ctx, Result};

pub fn command() -> Command {
    Command::new("doctor")
        .long_about(
            "Looks at the running system (and the system under --root) and reports what stands \
             between you and a repaired machine. Each finding is OK, WARN or FAIL, with the next \
             step. Reads only; changes nothing.",
        )
        .arg(ctx::arg_root())
        .arg(ctx::arg_json())
        .after_help(
            "Examples:
  rtool doctor                    # the live system you booted
  rtool doctor --root /mnt        # and the installed system mounted at /mnt
  rtool doctor --json | jq '.findings[] | select(.status != \"OK\")'

Exit status: 0 nothing failed (warnings allowed); 1 at least one finding is FAIL; 2 usage
(a --root that is not an installed system); other codes when the system cannot be read
(e.g. /proc is not mounted).",
        )
}

pub fn run(ctx: &Ctx, _m: &ArgMatches) -> Result<u8> {
    let mounts = read_mounts(ctx)?;
    let kver = sys::kernel_release(&ctx.host).ok();
    // The root as the mount table names it: `/` for the running system, else canonical.
    let root = if ctx.root_is_host() {
        PathBuf::from("/")
    } else {
        std::fs::canonicalize(&ctx.root).unwrap_or_else(|_| ctx.root.clone())
    };

    let archiso = ctx.host_path("/run/archiso").is_dir();
    let findings = vec![
        kernel_finding(ctx, kver.as_deref()),
        live_finding(archiso),
        cowspace_finding(ctx, archiso),
        memory_finding(ctx),
        zfs_finding(ctx, kver.as_deref(), &mounts, &root),
        network_finding(ctx),
        ssh_finding(ctx),
        mounts_finding(&mounts, &root),
        boot_finding(ctx, &mounts, &root, archiso),
        tools_finding(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();

    let mut out = ctx.out();
    if ctx.json {
        let doc = Json::obj()
            .with("root", ctx.root.display().to_string())
            .with("kernel", kver)
            .with("archiso", archiso)
            .with("worst", report::worst(&findings).word())
            .with("findings", report::to_json(&findings));
        writeln!(out, "{doc:#}")?;
    } else {
        writeln!(
            out,
            "rtool doctor: {} (running kernel {})",
            ctx.root.display(),
            kver.as_deref().unwrap_or("unknown")
        )?;
        report::write_text(&mut out, &findings, ctx.color)?;
        let count = |s| findings.iter().filter(|f| f.status == s).count();
        writeln!(
            out,
            "{} OK, {} WARN, {} FAIL",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        )?;
    }
    if findings.iter().any(|f| f.status == Status::Fail) {
        return Ok(exit::PROBLEMS);
    }
    Ok(exit::OK)
}

fn read_mounts(ctx: &Ctx) -> Result<Vec<mountinfo::Mount>> {
    let path = ctx.host_path("/proc/self/mountinfo");
    mountinfo::read(&path).map_err(|e| {
        e.context("cannot read the mount table")
            .hint("is /proc mounted? `mount -t proc proc /proc`")
    })
}

fn kernel_finding(ctx: &Ctx, kver: Option<&str>) -> Option<Finding> {
    let Some(kver) = kver else {
        return Some(Finding::new("kernel", Status::Fail, "cannot tell the running kernel's release")
            .next("mount /proc: `mount -t proc proc /proc`"));
    };
    let dir = kernel::modules_dir(&ctx.host, kver);
    let f = if dir.is_dir() {
        Finding::new("kernel", Status::Ok, format!("running {kver}; its modules are in {}", dir.display()))
    } else {
        Finding::new(
            "kernel",
            Status::Fail,
            format!("running {kver}, but {} does not exist: no module can be loaded", dir.display()),
        )
        .next(format!("get the modules of {kver}: {}", kernel::package_from_archive(kver, &ctx.host, false)))
    };
    Some(f.data("release", kver).data("modules_dir", dir.display().to_string()).data("modules_present", dir.is_dir()))
}

fn live_finding(archiso: bool) -> Option<Finding> {
    Some(if archiso {
        Finding::new("live", Status::Info, "archiso live system (/run/archiso)").data("archiso", true)
    } else {
        Finding::new("live", Status::Info, "not an archiso live system").data("archiso", false)
    })
}

fn cowspace_finding(ctx: &Ctx, archiso: bool) -> Option<Finding> {
    if !archiso {
        return None;
    }
    let path = ctx.host_path("/run/archiso/cowspace");
    let space = match sys::space(&path) {
        Ok(s) => s,
        Err(e) => return Some(Finding::new("cowspace", Status::Warn, format!("cannot read the cowspace: {e}"))),
    };
    let summary = format!(
        "{} in all, {} used, {} free",
        human(space.total),
        human(space.used()),
        human(space.avail)
    );
    const SMALL: u64 = 1 << 30;
    const NEARLY_FULL: u64 = 64 << 20;
    let f = if space.avail < NEARLY_FULL {
        Finding::new("cowspace", Status::Fail, format!("{summary}: nearly full, installs and builds will fail"))
            .next("grow it: `rtool cowspace 4G`")
    } else if space.total < SMALL || space.used() > space.total / 5 * 4 {
        Finding::new(
            "cowspace",
            Status::Warn,
            format!("{summary}: too small for kernel headers and a ZFS build"),
        )
        .next("grow it: `rtool cowspace 4G`")
    } else {
        Finding::new("cowspace", Status::Ok, summary)
    };
    Some(f.data("size", space.total).data("used", space.used()).data("free", space.avail))
}

fn memory_finding(ctx: &Ctx) -> Option<Finding> {
    let m = match sys::meminfo(&ctx.host_path("/proc/meminfo")) {
        Ok(m) => m,
        Err(e) => return Some(Finding::new("memory", Status::Warn, format!("cannot read memory sizes: {e}"))),
    };
    let total = m.get("MemTotal").copied().unwrap_or(0);
    let avail = m.get("MemAvailable").copied().unwrap_or(0);
    let swap = m.get("SwapTotal").copied().unwrap_or(0);
    let summary = format!("{} in all, {} available, {} swap", human(total), human(avail), human(swap));
    let f = if avail < 1 << 30 {
        Finding::new("memory", Status::Warn, format!("{summary}: building ZFS needs about 1 GiB free"))
            .next("close what you can, or add swap")
    } else {
        Finding::new("memory", Status::Ok, summary)
    };
    Some(f.data("total", total).data("available", avail).data("swap", swap))
}

/// Whether the system under the root uses ZFS: its fstab names a zfs filesystem, or something
/// mounted under it is zfs.
fn uses_zfs(ctx: &Ctx, mounts: &[mountinfo::Mount], root: &Path) -> bool {
    let in_fstab = fstab::read(&ctx.root_path("/etc/fstab"))
        .map(|es| es.iter().any(|e| e.fstype == "zfs"))
        .unwrap_or(false);
    in_fstab
        || mounts.iter().any(|m| m.fstype == "zfs" && m.mount_point.starts_with(root))
        || ctx.root_path("/etc/zfs/zpool.cache").is_file()
}

/// What builds a zfs module for the running kernel: its headers from the archive, then the
/// zfs DKMS source found on the live system or the installed one, both as commands to paste.
fn zfs_build_steps(ctx: &Ctx, kver: Option<&str>) -> String {
    let source = [ctx.host_path("/usr/src"), ctx.root_path("/usr/src")].into_iter().find_map(|d| {
        let v: Vec<PathBuf> = std::fs::read_dir(&d)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("zfs-")) && p.join("dkms.conf").is_file())
            .collect();
        // The newest by version: zfs-2.1.10 before zfs-2.1.9.
        let version = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().trim_start_matches("zfs-").to_string()).unwrap_or_default();
        v.into_iter().max_by(|a, b| rtool::pkg::vercmp::vercmp(&version(a), &version(b)))
    });
    let k = kver.map(|k| format!(" -k {k}")).unwrap_or_default();
    let build = match source {
        Some(dir) => format!("`rtool dkms build {}{k}`", dir.display()),
        None => format!("with zfs-dkms's source in /usr/src, `rtool dkms build /usr/src/zfs-*{k}`"),
    };
    match kver {
        Some(kv) => format!("get the headers of {kv}: {}; then {build}", kernel::package_from_archive(kv, &ctx.host, true)),
        None => format!("install the headers of the running kernel, then {build}"),
    }
}

fn zfs_finding(ctx: &Ctx, kver: Option<&str>, mounts: &[mountinfo::Mount], root: &Path) -> Option<Finding> {
    let loaded = ctx.host_path("/sys/module/zfs").is_dir();
    let version = std::fs::read_to_string(ctx.host_path("/sys/module/zfs/version")).ok().map(|v| v.trim().to_string());
    let file = kver.and_then(|k| kernel::find_module(&kernel::modules_dir(&ctx.host, k), "zfs"));
    let zpool = sys::which("zpool");
    let needed = uses_zfs(ctx, mounts, root);
    let kv = kver.unwrap_or("the running kernel");

    let mut f = if loaded {
        let v = version.as_deref().map(|v| format!(" (version {v})")).unwrap_or_default();
        if zpool.is_some() {
            Finding::new("zfs", Status::Ok, format!("zfs module loaded{v}, zpool available"))
        } else {
            Finding::new("zfs", Status::Warn, format!("zfs module loaded{v}, but no zpool program"))
                .next("install zfs-utils (it provides zpool and zfs)")
        }
    } else if let Some(file) = &file {
        Finding::new("zfs", Status::Warn, format!("zfs module present but not loaded: {}", file.display()))
            .next("load it: `rtool modprobe zfs`")
    } else {
        Finding::new(
            "zfs",
            if needed { Status::Fail } else { Status::Warn },
            format!("no zfs module for {kv}: ZFS pools cannot be imported"),
        )
        .next(zfs_build_steps(ctx, kver))
    };
    if needed {
        f = f.detail("the system under the root uses ZFS");
    }
    Some(
        f.data("loaded", loaded)
            .data("version", version)
            .data("module", file.map(|p| p.display().to_string()))
            .data("zpool", zpool.map(|p| p.display().to_string()))
            .data("needed", needed),
    )
}

fn network_finding(ctx: &Ctx) -> Option<Finding> {
    let ifs = net::interfaces(&ctx.host_path("/sys/class/net"));
    let real: Vec<&net::Interface> = ifs.iter().filter(|i| !i.loopback).collect();
    let usable = real.iter().filter(|i| i.usable()).count();
    let mut f = if usable > 0 {
        Finding::new("network", Status::Ok, format!("{usable} interface(s) up with an address"))
    } else if real.is_empty() {
        Finding::new("network", Status::Warn, "no network interface besides loopback")
            .next("load the NIC's driver: `lspci -k` names it, `rtool modprobe` with that name loads it; an Intel X520 with an unsupported SFP: `rtool sfp-unlock`")
    } else {
        Finding::new("network", Status::Warn, "no interface has both a link and an address")
            .next(format!(
                "check the cable; get an address: {}; an SFP the driver refuses: `rtool sfp-unlock`",
                real.iter().map(|i| format!("`dhcpcd {}`", i.name)).collect::<Vec<_>>().join(" or ")
            ))
    };
    let ixgbe_loaded = ctx.host_path("/sys/module/ixgbe").is_dir();
    let ixgbe_ifs = real.iter().filter(|i| i.driver.as_deref() == Some("ixgbe")).count();
    if ixgbe_loaded && ixgbe_ifs == 0 && usable == 0 {
        f = f
            .detail("ixgbe is loaded but drives no interface: the SFP module may be refused")
            .next("`rtool sfp-unlock` reloads ixgbe with allow_unsupported_sfp=1");
    }
    let mut list = Vec::new();
    for i in &real {
        let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
        f = f.detail(format!(
            "{} ({}) {}{}{}",
            i.name,
            i.driver.as_deref().unwrap_or("virtual"),
            i.operstate,
            match i.carrier {
                Some(true) => ", link",
                Some(false) => ", no link",
                None => "",
            },
            if addrs.is_empty() { String::new() } else { format!(", {}", addrs.join(" ")) }
        ));
        list.push(i.to_json());
    }
    Some(f.data("interfaces", Json::Arr(list)))
}

fn ssh_finding(ctx: &Ctx) -> Option<Finding> {
    let sshd = !sys::processes_named(&ctx.host_path("/proc"), "sshd").is_empty();
    let keys_path = ctx.host_path("/root/.ssh/authorized_keys");
    let keys = std::fs::read_to_string(&keys_path)
        .map(|t| t.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).count())
        .unwrap_or(0);
    let f = match (sshd, keys) {
        (true, k) if k > 0 => Finding::new("ssh", Status::Ok, format!("sshd is running; root has {k} authorized key(s)")),
        (true, _) => Finding::new("ssh", Status::Warn, "sshd is running, but root has no authorized key")
            .next("add yours: `rtool pubkey add` with github: and your GitHub name, an https:// URL or a .pub file"),
        (false, k) if k > 0 => Finding::new("ssh", Status::Warn, format!("root has {k} authorized key(s), but sshd is not running"))
            .next("start it: `systemctl start sshd`"),
        (false, _) => Finding::new("ssh", Status::Warn, "sshd is not running and root has no authorized key")
            .next("add your keys (`rtool pubkey add` with github: and your GitHub name, an https:// URL or a .pub file), then `systemctl start sshd`"),
    };
    Some(f.data("sshd", sshd).data("authorized_keys", keys))
}

fn mounts_finding(mounts: &[mountinfo::Mount], root: &Path) -> Option<Finding> {
    let under: Vec<&mountinfo::Mount> = mounts
        .iter()
        .filter(|m| m.mount_point.starts_with(root) && !mountinfo::is_pseudo(&m.fstype))
        .filter(|m| !(root == Path::new("/") && (m.mount_point.starts_with("/proc") || m.mount_point.starts_with("/sys") || m.mount_point.starts_with("/dev"))))
        .collect();
    let root_mounted = mountinfo::at(mounts, root).is_some();
    let mut f = if root != Path::new("/") && !root_mounted {
        Finding::new("mounts", Status::Warn, format!("{} is not a mountpoint", root.display()))
            .next(format!(
                "mount the installed system on {} first: `rtool chroot --zpool` with a pool \
                 `zpool import` lists, or `mount` with a partition `lsblk -f` shows",
                root.display()
            ))
    } else {
        Finding::new("mounts", Status::Info, format!("{} filesystem(s) mounted under {}", under.len(), root.display()))
    };
    let mut list = Vec::new();
    for m in &under {
        f = f.detail(format!("{} {} ({})", m.mount_point.display(), m.fstype, m.source));
        list.push(
            Json::obj()
                .with("mount_point", m.mount_point.display().to_string())
                .with("fstype", &m.fstype)
                .with("source", &m.source),
        );
    }
    Some(f.data("root_is_mountpoint", root_mounted).data("mounts", Json::Arr(list)))
}

/// Kernels and initramfs images in a directory: what lands in an unmounted /boot.
fn boot_images(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.starts_with("vmlinuz") || n.starts_with("initramfs") || n.starts_with("initrd"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn boot_finding(ctx: &Ctx, mounts: &[mountinfo::Mount], root: &Path, archiso: bool) -> Option<Finding> {
    let fstab_path = ctx.root_path("/etc/fstab");
    let entries = match fstab::read(&fstab_path) {
        Ok(e) => e,
        Err(_) if archiso && ctx.root_is_host() => return None,
        Err(e) => {
            return Some(Finding::new("boot", Status::Warn, format!("cannot read the fstab: {e}"))
                .next("mount the installed system's root on /mnt, then run `rtool doctor --root /mnt`"))
        }
    };
    let boots = fstab::boot_entries(&entries);
    let boot_dir = ctx.root_path("/boot");
    if boots.is_empty() {
        return Some(Finding::new("boot", Status::Ok, "/boot is part of the root filesystem (not in fstab)"));
    }
    let mut missing: Vec<&fstab::Entry> = Vec::new();
    let mut data = Vec::new();
    for e in &boots {
        let at: PathBuf = ctx::below(root, &e.mount_point);
        let mounted = mountinfo::at(mounts, &at).is_some();
        data.push(
            Json::obj()
                .with("mount_point", e.mount_point.display().to_string())
                .with("spec", &e.spec)
                .with("mounted", mounted),
        );
        if !mounted && !e.has_option("noauto") {
            missing.push(e);
        }
    }
    let boot_mounted = mountinfo::at(mounts, &ctx::below(root, Path::new("/boot"))).is_some();
    let stray = if boot_mounted { Vec::new() } else { boot_images(&boot_dir) };
    let mut f = if missing.is_empty() {
        Finding::new("boot", Status::Ok, "the boot filesystems in fstab are mounted")
    } else {
        let names: Vec<String> = missing.iter().map(|e| format!("{} ({})", e.mount_point.display(), e.spec)).collect();
        Finding::new(
            "boot",
            Status::Fail,
            format!("not mounted: {}: a kernel installed now lands in the root filesystem, not where the boot loader looks", names.join(", ")),
        )
        .next(format!("`rtool chroot --mount-boot {}` mounts them from fstab", root.display()))
    };
    if !stray.is_empty() {
        f = f.detail(format!(
            "the directory under the /boot mountpoint holds {}: installed while /boot was not mounted?",
            stray.join(", ")
        ));
    }
    Some(f.data("entries", Json::Arr(data)).data("stray_images", stray))
}

fn tools_finding() -> Option<Finding> {
    const TOOLS: [&str; 6] = ["modprobe", "cryptsetup", "zpool", "pacman", "make", "gcc"];
    let (found, missing): (Vec<&str>, Vec<&str>) = TOOLS.iter().partition(|t| sys::which(t).is_some());
    let build_missing: Vec<&str> = missing.iter().copied().filter(|t| matches!(*t, "make" | "gcc")).collect();
    let mut f = if build_missing.is_empty() {
        Finding::new("tools", Status::Ok, format!("found: {}", found.join(" ")))
    } else {
        Finding::new("tools", Status::Warn, format!("missing {}: modules cannot be built here", build_missing.join(" and ")))
            .next("install base-devel (make, gcc) before `rtool dkms build`")
    };
    if !missing.is_empty() {
        f = f.detail(format!("not found: {}", missing.join(" ")));
    }
    if missing.contains(&"modprobe") {
        f = f.detail("no modprobe: `rtool modprobe` loads modules without it");
    }
    Some(f.data("found", found).data("missing", missing))
}
