//! List, check and extract initramfs images (early cpio + compressed main archive)

use std::io::Write;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::progress::{Mode, Progress};
use rtool::archive::extract::{EntryKind, Extractor, Options};
use rtool::archive::initramfs;
use rtool::archive::rooted::Root;
use rtool::json::Json;
use rtool::kernel;
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
                .arg(Arg::new("long").short('l').action(ArgAction::SetTrue).help("Mode, owner, size, segment"))
                .arg(ctx::arg_json()),
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
                .arg(Arg::new("devices").long("devices").action(ArgAction::SetTrue).help("Create device nodes too"))
                .arg(ctx::arg_dry_run()),
        )
        .after_help(
            "Examples:
  rtool initramfs ls -l /boot/initramfs-linux.img
  rtool initramfs ls --json /boot/initramfs-linux.img | jq '.entries | length'
  rtool initramfs check /mnt/boot/initramfs-linux.img --module zfs --module spl
  rtool initramfs extract /boot/initramfs-linux.img -C /tmp/ird
  rtool initramfs extract -n /boot/initramfs-linux.img -C /tmp/ird   # counts only

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
    let img = image(a);
    let mut out = ctx.out();
    // Progress only for a long scan (gigabytes of zeros): a listing is otherwise instant.
    let start = std::time::Instant::now();
    let mut progress: Option<Progress> = None;
    let mut tick = |skipped: u64| {
        if progress.is_none() && start.elapsed() > std::time::Duration::from_secs(2) {
            let label = format!("{}: skipping padding", img.display());
            progress = Some(Progress::bytes(label, None, Mode::detect(ctx.verbosity < 0)));
        }
        if let Some(p) = &mut progress {
            p.set(skipped);
        }
    };
    let mut entries: Vec<Json> = Vec::new();
    let r = initramfs::for_each_with_progress(&img, &mut tick, |e, _| {
        let m = &e.member;
        let t = match m.kind {
            EntryKind::Dir => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::Char => 'c',
            EntryKind::Block => 'b',
            EntryKind::Fifo => 'p',
            _ => '-',
        };
        if ctx.json {
            entries.push(
                Json::obj()
                    .with("name", m.name())
                    .with("type", kind_word(t))
                    .with("mode", u64::from(m.mode))
                    .with("uid", u64::from(m.uid))
                    .with("gid", u64::from(m.gid))
                    .with("size", m.size)
                    .with("link", m.link.as_ref().map(|l| String::from_utf8_lossy(l).into_owned()))
                    .with("segment", e.segment)
                    .with("compression", e.compression),
            );
            return Ok(());
        }
        if long {
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
    });
    if let Some(p) = &mut progress {
        if r.is_ok() { p.finish() } else { p.abandon() }
    }
    r?;
    if ctx.json {
        let j = Json::obj().with("image", img.display().to_string()).with("entries", Json::Arr(entries));
        writeln!(out, "{j:#}")?;
    }
    Ok(exit::OK)
}

/// The type letter of `ls -l`, as a word for JSON.
fn kind_word(t: char) -> &'static str {
    match t {
        'd' => "dir",
        'l' => "symlink",
        'c' => "char",
        'b' => "block",
        'p' => "fifo",
        _ => "file",
    }
}

fn check(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let wanted: Vec<String> = a.get_many::<String>("module").into_iter().flatten().cloned().collect();
    let only = a.get_one::<String>("kver").map(String::as_str);
    let c = kernel::initramfs::contents(&image(a))?;
    let found: Vec<&kernel::initramfs::ModuleFile> = wanted.iter().filter_map(|w| c.has(w, only)).collect();
    let missing: Vec<&String> = wanted.iter().filter(|w| c.has(w, only).is_none()).collect();
    let mut out = ctx.out();
    if ctx.json {
        let j = Json::obj()
            .with("image", image(a).display().to_string())
            .with("kernels", c.releases.clone())
            .with(
                "found",
                Json::Arr(found.iter().map(|m| Json::obj().with("module", &m.name).with("path", &m.path).with("segment", m.segment)).collect()),
            )
            .with("missing", missing.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .with("ok", missing.is_empty());
        writeln!(out, "{j:#}")?;
    } else {
        writeln!(
            out,
            "{}: kernel {}",
            image(a).display(),
            if c.releases.is_empty() { "unknown (no lib/modules/KVER)".to_string() } else { c.releases.join(", ") }
        )?;
        for m in &found {
            writeln!(out, "  {}: present ({}, segment {})", m.name, m.path, m.segment)?;
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
        ..Options::default()
    };
    if ctx.dry_run {
        return extract_plan(ctx, a, &dir);
    }
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

/// `extract -n`: what the image holds and where it would go; nothing is created.
fn extract_plan(ctx: &Ctx, a: &ArgMatches, dir: &std::path::Path) -> Result<u8> {
    let (mut files, mut dirs, mut symlinks, mut other, mut bytes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    initramfs::for_each(&image(a), |e, _| {
        match e.member.kind {
            EntryKind::Dir => dirs += 1,
            EntryKind::Symlink => symlinks += 1,
            EntryKind::Char | EntryKind::Block | EntryKind::Fifo => other += 1,
            _ => {
                files += 1;
                bytes += e.member.size;
            }
        }
        Ok(())
    })?;
    writeln!(
        ctx.out(),
        "{}: would unpack {files} files ({bytes} bytes), {dirs} directories, {symlinks} symlinks{} into {}; nothing was written (--dry-run)",
        image(a).display(),
        if other > 0 { format!(", {other} special files{}", if a.get_flag("devices") { "" } else { " (skipped without --devices)" }) } else { String::new() },
        dir.display()
    )?;
    Ok(exit::OK)
}
