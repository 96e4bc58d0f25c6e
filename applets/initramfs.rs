//! List, check and extract initramfs images (early cpio + compressed main archive)

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::archive::extract::{EntryKind, Extractor, Options};
use rtool::archive::initramfs;
use rtool::archive::rooted::Root;
use rtool::json::Json;
use rtool::kernel::MODULE_SUFFIXES;
use rtool::{ctx, exit, Ctx, Error, Result};

pub fn command() -> Command {
    let image = || Arg::new("image").value_name("IMAGE").required(true).value_parser(clap::value_parser!(PathBuf));
    Command::new("initramfs")
        .long_about(
            "Reads every segment of an initramfs image the way the kernel does: uncompressed early \
             cpio archives (microcode, and since mkinitcpio v39 the already-compressed modules) \
             followed by the main archive compressed with zstd, gzip, xz, lz4 (legacy) or bzip2.",
        )
        .subcommand_required(true)
        .subcommand(
            Command::new("ls")
                .about("List the entries (-l: long form with the segment each came from)")
                .arg(image())
                .arg(Arg::new("long").short('l').action(ArgAction::SetTrue).help("Mode, owner, size, segment")),
        )
        .subcommand(
            Command::new("check")
                .about("Which kernel release(s) it is for, and whether the named modules are in it")
                .arg(image())
                .arg(Arg::new("module").long("module").value_name("NAME").action(ArgAction::Append).required(true)
                    .help("A module that must be present (zfs matches zfs.ko, zfs.ko.zst, …); repeatable"))
                .arg(Arg::new("kver").long("kver").value_name("KVER").help("Only count modules of this kernel release"))
                .arg(ctx::arg_json()),
        )
        .subcommand(
            Command::new("extract")
                .about("Unpack it safely into DIR (the same jail as `rtool extract`)")
                .arg(image())
                .arg(Arg::new("dir").short('C').value_name("DIR").required(true).value_parser(clap::value_parser!(PathBuf)))
                .arg(Arg::new("devices").long("devices").action(ArgAction::SetTrue).help("Create device nodes too")),
        )
        .after_help(
            "Examples:
  rtool initramfs ls -l /boot/initramfs-linux.img
  rtool initramfs check /mnt/boot/initramfs-linux.img --module zfs --module spl
  rtool initramfs extract /boot/initramfs-linux.img -C /tmp/ird

Exit status of check: 0 every module present, 1 one is missing.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    match m.subcommand() {
        Some(("ls", a)) => ls(ctx, a),
        Some(("check", a)) => check(ctx, a),
        Some(("extract", a)) => extract(ctx, a),
        _ => Err(Error::usage("expected ls, check or extract")),
    }
}

fn image(a: &ArgMatches) -> PathBuf {
    a.get_one::<PathBuf>("image").cloned().unwrap_or_default()
}

fn ls(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let long = a.get_flag("long");
    let mut out = ctx.out();
    initramfs::for_each(&image(a), |e, _| {
        let m = &e.member;
        if long {
            let t = match m.kind {
                EntryKind::Dir => 'd',
                EntryKind::Symlink => 'l',
                EntryKind::Char => 'c',
                EntryKind::Block => 'b',
                EntryKind::Fifo => 'p',
                _ => '-',
            };
            write!(out, "{t}{:04o} {:>5}/{:<5} {:>10} [{} {}] ", m.mode, m.uid, m.gid, m.size, e.segment, e.compression)?;
        }
        out.write_all(&m.raw_name)?;
        if long {
            if let Some(l) = &m.link {
                out.write_all(b" -> ")?;
                out.write_all(l)?;
            }
        }
        out.write_all(b"\n")?;
        Ok(())
    })?;
    Ok(exit::OK)
}

/// `usr/lib/modules/KVER/…` or `lib/modules/KVER/…` → KVER.
fn kver_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("usr/").unwrap_or(name).strip_prefix("lib/modules/")?;
    let k = rest.split('/').next()?;
    (!k.is_empty()).then_some(k)
}

fn module_name(file: &str) -> Option<String> {
    MODULE_SUFFIXES.iter().find_map(|s| file.strip_suffix(s)).map(|n| n.replace('-', "_"))
}

fn check(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let wanted: Vec<String> = a.get_many::<String>("module").into_iter().flatten().cloned().collect();
    let only = a.get_one::<String>("kver");
    let mut kvers = BTreeSet::new();
    let mut found: Vec<(String, String, usize)> = Vec::new(); // (module, path, segment)
    initramfs::for_each(&image(a), |e, _| {
        let name = String::from_utf8_lossy(&e.member.raw_name).into_owned();
        let name = name.trim_start_matches("./").to_string();
        let k = kver_of(&name).map(String::from);
        if let Some(k) = &k {
            kvers.insert(k.clone());
        }
        if e.member.kind == EntryKind::File && only.is_none_or(|o| k.as_deref() == Some(o)) {
            let file = name.rsplit('/').next().unwrap_or(&name);
            if let Some(mn) = module_name(file) {
                if wanted.iter().any(|w| w.replace('-', "_") == mn) {
                    found.push((mn, name.clone(), e.segment));
                }
            }
        }
        Ok(())
    })?;
    let missing: Vec<&String> = wanted.iter().filter(|w| !found.iter().any(|(m, _, _)| *m == w.replace('-', "_"))).collect();
    let mut out = ctx.out();
    if ctx.json || a.get_flag("json") {
        let j = Json::obj()
            .with("image", image(a).display().to_string())
            .with("kernels", kvers.iter().cloned().collect::<Vec<_>>())
            .with("found", Json::Arr(found.iter().map(|(m, p, s)| Json::obj().with("module", m).with("path", p).with("segment", *s)).collect()))
            .with("missing", missing.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .with("ok", missing.is_empty());
        writeln!(out, "{j:#}")?;
    } else {
        writeln!(
            out,
            "{}: kernel {}",
            image(a).display(),
            if kvers.is_empty() { "unknown (no lib/modules/KVER)".to_string() } else { kvers.iter().cloned().collect::<Vec<_>>().join(", ") }
        )?;
        for (m, p, s) in &found {
            writeln!(out, "  {m}: present ({p}, segment {s})")?;
        }
        for m in &missing {
            writeln!(out, "  {m}: MISSING")?;
        }
    }
    Ok(if missing.is_empty() { exit::OK } else { exit::PROBLEMS })
}

fn extract(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let dir = a.get_one::<PathBuf>("dir").cloned().unwrap_or_default();
    let opts = Options {
        all: true,
        force: false,
        devices: a.get_flag("devices"),
        owners: rtool::sys::is_root(),
    };
    let mut ex = Extractor::new(Root::open(&dir)?, opts);
    let r = initramfs::for_each(&image(a), |e, data| {
        let mut m = e.member.clone();
        // An early and a main archive may both hold a directory: not a conflict.
        m.raw_name = String::from_utf8_lossy(&m.raw_name).trim_start_matches("./").as_bytes().to_vec();
        ex.entry(&m, data)
    });
    let fin = ex.finish();
    r?;
    let stats = fin?;
    writeln!(ctx.out(), "{}: {} files, {} directories, {} symlinks into {}", image(a).display(), stats.files, stats.dirs, stats.symlinks, dir.display())?;
    Ok(exit::OK)
}
