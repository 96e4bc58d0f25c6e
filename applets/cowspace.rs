//! Show or resize the archiso live system's writable space (cowspace)

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::sys::{self, mountinfo};
use rtool::text::glyph;
use rtool::units::{human, parse_size};
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("cowspace")
        .long_about(
            "The Arch ISO keeps every change in a tmpfs, /run/archiso/cowspace, sized 256 MiB by \
             default: too small for kernel headers and a ZFS build. With no argument this shows \
             its size, use and free space; with a size it remounts it bigger (or smaller). \
             Units are powers of 1024. Refuses a size below what is in use or above RAM + swap, \
             and warns above the memory available now, unless --force.",
        )
        .arg(Arg::new("size").value_name("SIZE|+DELTA|N%")
            .help("New size: 4G, 512M, +2G (grow by), 50% (of RAM)"))
        .arg(Arg::new("path").long("path").value_name("P").value_parser(clap::value_parser!(PathBuf))
            .help("The tmpfs to work on [default: /run/archiso/cowspace]"))
        .arg(Arg::new("force").long("force").action(ArgAction::SetTrue)
            .help("Skip the safety checks on the new size"))
        .arg(ctx::arg_dry_run())
        .arg(ctx::arg_json())
        .after_help(
            "Examples:
  rtool cowspace            # size, used, free
  rtool cowspace 4G         # room for headers and a ZFS build
  rtool cowspace +2G
  rtool cowspace 50%        # half of the RAM",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let path = match m.get_one::<PathBuf>("path") {
        Some(p) => std::path::absolute(p).map_err(|e| Error::path(e, p))?,
        None => ctx.host_path("/run/archiso/cowspace"),
    };
    if m.contains_id("size") {
        ctx.require_root(&format!("it remounts {} with a new size", path.display()))?;
    }
    check_tmpfs(ctx, &path)?;
    let before = sys::space(&path)?;
    let Some(want) = m.get_one::<String>("size") else {
        let mut out = ctx.out();
        if ctx.json {
            let j = Json::obj()
                .with("path", path.display().to_string())
                .with("size", before.total)
                .with("used", before.used())
                .with("free", before.avail);
            writeln!(out, "{j:#}")?;
        } else {
            writeln!(
                out,
                "{}: {} in all, {} used, {} free",
                path.display(),
                human(before.total),
                human(before.used()),
                human(before.avail)
            )?;
        }
        return Ok(exit::OK);
    };

    let mem = sys::meminfo(&ctx.host_path("/proc/meminfo"))?;
    let ram = mem.get("MemTotal").copied().unwrap_or(0);
    let swap = mem.get("SwapTotal").copied().unwrap_or(0);
    let avail = mem.get("MemAvailable").copied().unwrap_or(0);
    let new = target_size(want, before.total, ram)?;
    // tmpfs counts whole pages.
    let new = new.div_ceil(4096) * 4096;
    if !m.get_flag("force") {
        if new < before.used() {
            return Err(Error::new(
                Kind::Usage,
                format!("{} is less than the {} already in use on {}", human(new), human(before.used()), path.display()),
            )
            .hint("free some space first, or choose a larger size"));
        }
        if new > ram + swap {
            return Err(Error::new(
                Kind::Usage,
                format!("{} is more than RAM and swap together ({} + {})", human(new), human(ram), human(swap)),
            )
            .hint("a tmpfs lives in memory: choose a smaller size, or add swap (--force to do it anyway)"));
        }
    }
    if new > before.total && new - before.total > avail {
        ctx.warn(format!(
            "growing by {} while only {} of memory is available: filling it would push the system into swap or the OOM killer",
            human(new - before.total),
            human(avail)
        ));
    }
    if ctx.dry_run {
        writeln!(ctx.out(), "would remount {} with size={} ({} {} {})", path.display(), new, human(before.total), glyph("→"), human(new))?;
        return Ok(exit::OK);
    }
    nix::mount::mount(None::<&str>, &path, None::<&str>, nix::mount::MsFlags::MS_REMOUNT, Some(format!("size={new}").as_str()))
        .map_err(|e| {
            Error::system(format!("remounting {} with size={new} failed", path.display()))
                .with_source(std::io::Error::from(e))
        })?;
    let after = sys::space(&path)?;
    writeln!(
        ctx.out(),
        "{}: {} {} {} (read back from the kernel), {} free",
        path.display(),
        human(before.total),
        glyph("→"),
        human(after.total),
        human(after.avail)
    )?;
    Ok(exit::OK)
}

/// `4G`, `+2G` (relative to `current`), `50%` (of `ram`).
fn target_size(s: &str, current: u64, ram: u64) -> Result<u64> {
    let bad = || Error::usage(format!("'{s}': expected a size such as 4G, 512M, +2G or 50%"));
    if let Some(p) = s.strip_suffix('%') {
        let pct: u64 = p.trim().parse().map_err(|_| bad())?;
        if pct == 0 || pct > 1000 {
            return Err(bad());
        }
        return Ok(ram / 100 * pct);
    }
    if let Some(d) = s.strip_prefix('+') {
        return current.checked_add(parse_size(d).ok_or_else(bad)?).ok_or_else(bad);
    }
    let v = parse_size(s).ok_or_else(bad)?;
    if v == 0 {
        return Err(bad());
    }
    Ok(v)
}

/// The path must be a tmpfs mountpoint: anything else is not a cowspace.
fn check_tmpfs(ctx: &Ctx, path: &Path) -> Result<()> {
    let mounts = mountinfo::read(&ctx.host_path("/proc/self/mountinfo"))?;
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match mountinfo::at(&mounts, &canon) {
        Some(mnt) if mnt.fstype == "tmpfs" => Ok(()),
        Some(mnt) => Err(Error::usage(format!("{} is a {} mount, not a tmpfs: its size is not a mount option", path.display(), mnt.fstype))),
        None if path.starts_with(ctx.host_path("/run/archiso")) || !path.exists() => Err(Error::missing(format!(
            "{}: no cowspace here: this is not an archiso live system",
            path.display()
        ))
        .hint("on another live system, give the tmpfs to grow with --path")),
        None => Err(Error::usage(format!("{} is not a mountpoint", path.display()))),
    }
}
