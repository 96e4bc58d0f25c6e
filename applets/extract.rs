//! Unpack pacman packages safely into a root, list them, show their info, verify them

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::archive::extract::{EntryKind, Extractor, Options, Package};
use rtool::archive::rooted::{self, Existing, Root};
use rtool::archive::verify;
use rtool::json::Json;
use rtool::pkg::pkginfo;
use rtool::progress::{Mode, Progress};
use rtool::units::{human, pacman_date, pacman_size};
use rtool::{ctx, exit, Ctx, Error, Result};

pub fn command() -> Command {
    Command::new("extract")
        .long_about(
            "Unpacks pacman packages (.pkg.tar.zst, .xz, .gz, .bz2 or plain; the compression is \
             read from the file, not its name) the way pacman does: numeric owners, full modes \
             with setuid bits, mtimes, extended attributes; .PKGINFO, .MTREE and the other \
             metadata stay out unless --all. The target directory is a jail: no member can \
             write outside it, whatever its name or the symlinks it meets, and absolute \
             symlinks resolve inside it. A file that replaces another is written beside it \
             and renamed into place, so an interrupted run never leaves a truncated file \
             where a good one was.",
        )
        .arg(Arg::new("packages").value_name("PKG").required(true).num_args(1..).value_parser(clap::value_parser!(PathBuf)))
        .arg(Arg::new("dir").short('C').long("directory").value_name("DIR").value_parser(clap::value_parser!(PathBuf))
            .help("Extract into (list, verify against) DIR [default: --root, else the current directory]"))
        .arg(ctx::arg_root())
        .arg(Arg::new("list").short('t').long("list").action(ArgAction::SetTrue)
            .help("List the members instead of extracting (-v: long form)"))
        .arg(Arg::new("info").long("info").action(ArgAction::SetTrue)
            .help("Show the package's .PKGINFO (with --json: as JSON)"))
        .arg(Arg::new("verify").long("verify").action(ArgAction::SetTrue)
            .help("Check the files under DIR against the package's .MTREE (type, mode, owner, size, sha256, link target)"))
        .arg(ctx::arg_json())
        .arg(Arg::new("all").long("all").action(ArgAction::SetTrue)
            .help("Also extract the metadata members (.PKGINFO, .MTREE, .INSTALL, …)"))
        .arg(Arg::new("force").long("force").action(ArgAction::SetTrue)
            .help("Replace existing paths of another type (never a non-empty directory)"))
        .arg(Arg::new("devices").long("devices").action(ArgAction::SetTrue)
            .help("Create device nodes and FIFOs (refused by default)"))
        .arg(Arg::new("raw").long("raw").action(ArgAction::SetTrue)
            .help("Unpack a tar that is not a pacman package (no .PKGINFO before its files)"))
        .arg(ctx::arg_dry_run())
        .group(clap::ArgGroup::new("mode").args(["list", "info", "verify", "dry_run"]))
        .after_help(
            "Examples:
  rtool extract -C /mnt linux-6.2.7.arch1-1-x86_64.pkg.tar.zst     # into the mounted system
  rtool extract --root /mnt zfs-utils-*.pkg.tar.zst zfs-dkms-*.pkg.tar.zst
  rtool extract -t linux-headers-*.pkg.tar.zst | grep Makefile
  rtool extract --info --json cmatrix-2.0-3-x86_64.pkg.tar.zst
  rtool extract --verify -C /mnt linux-6.2.7.arch1-1-x86_64.pkg.tar.zst  # did it land intact?
  rtool extract -n -C /mnt linux-*.pkg.tar.zst                     # what would be written
  rtool extract --raw -C /tmp/x some-archive.tar.gz                  # any tar, same jail

Exit status: 0 done; 1 --verify found differences; 3 corrupt or hostile package;
4 the system refused (permission, disk full, a path of another type in the way).",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let pkgs: Vec<PathBuf> = m.get_many::<PathBuf>("packages").into_iter().flatten().cloned().collect();
    let dir = match m.get_one::<PathBuf>("dir") {
        Some(d) => d.clone(),
        None if m.contains_id("root") && m.get_one::<PathBuf>("root").is_some() => ctx.root.clone(),
        None => PathBuf::from("."),
    };
    let flag = |id: &str| m.get_flag(id);
    if flag("list") {
        return list(ctx, &pkgs);
    }
    if flag("info") {
        return info(ctx, &pkgs);
    }
    if flag("verify") {
        return verify(ctx, &pkgs, &dir);
    }
    if ctx.dry_run {
        return plan(ctx, &pkgs, &dir, flag("all"));
    }
    let opts = Options {
        all: flag("all"),
        force: flag("force"),
        devices: flag("devices"),
        owners: rtool::sys::is_root(),
        ..Options::default()
    };
    for pkg in &pkgs {
        extract_one(ctx, pkg, &dir, opts, flag("raw"))?;
    }
    Ok(exit::OK)
}

/// A pacman package names itself (`.PKGINFO`) before its first file: anything else (a bare
/// tar, a stream of zeros) is refused before it writes, unless `--raw`.
fn not_a_package(pkg: &Path, why: String) -> Error {
    Error::invalid(format!("{}: not a pacman package: {why}", pkg.display()))
        .hint("--raw unpacks any tar")
}

fn label(pkg: &Path) -> String {
    pkg.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| pkg.display().to_string())
}

fn extract_one(ctx: &Ctx, pkg: &Path, dir: &Path, opts: Options, raw: bool) -> Result<()> {
    let root = Root::open(dir)?;
    let package = Package::open(pkg)?;
    let (size, read, compression) = (package.size, package.read.clone(), package.compression);
    let mut progress = Progress::bytes(format!("extract {}", label(pkg)), Some(size), Mode::detect(ctx.verbosity < 0));
    let mut ex = Extractor::new(root, opts);
    let mut named = raw;
    let result = package.for_each(|member, data| {
        if !named {
            if member.raw_name.strip_prefix(b"./").unwrap_or(&member.raw_name) == b".PKGINFO" {
                named = true;
            } else if !member.is_metadata() {
                return Err(not_a_package(pkg, format!("{} comes before any .PKGINFO", rtool::archive::extract::shown_name(&member.raw_name))));
            }
        }
        ex.entry(member, data)?;
        progress.set(read.load(std::sync::atomic::Ordering::Relaxed));
        Ok(true)
    });
    // Directory modes and times are set whether or not every member made it.
    let finished = ex.finish();
    let stats = match (result, finished) {
        (Err(e), _) | (Ok(()), Err(e)) => {
            progress.abandon();
            return Err(e);
        }
        (Ok(()), Ok(s)) => s,
    };
    if !named {
        progress.abandon();
        return Err(not_a_package(pkg, "it has no .PKGINFO".into()));
    }
    progress.finish();
    if ctx.verbosity >= 0 {
        let mut out = ctx.out();
        writeln!(
            out,
            "{}: {} files ({}), {} directories, {} symlinks, {} hard links{}{} into {} [{}]",
            label(pkg),
            stats.files,
            human(stats.bytes),
            stats.dirs,
            stats.symlinks,
            stats.hardlinks,
            if stats.devices > 0 { format!(", {} special files", stats.devices) } else { String::new() },
            if stats.replaced > 0 { format!(", {} replaced", stats.replaced) } else { String::new() },
            dir.display(),
            compression
        )?;
    }
    Ok(())
}

fn list(ctx: &Ctx, pkgs: &[PathBuf]) -> Result<u8> {
    let mut out = ctx.out();
    for pkg in pkgs {
        let package = Package::open(pkg)?;
        package.for_each(|m, _| {
            if ctx.verbosity > 0 {
                let kind = match m.kind {
                    EntryKind::Dir => 'd',
                    EntryKind::Symlink => 'l',
                    EntryKind::Hardlink => 'h',
                    EntryKind::Char => 'c',
                    EntryKind::Block => 'b',
                    EntryKind::Fifo => 'p',
                    EntryKind::File => '-',
                };
                write!(out, "{kind}{:04o} {:>5}/{:<5} {:>10} ", m.mode, m.uid, m.gid, m.size)?;
            }
            out.write_all(&m.raw_name)?;
            if ctx.verbosity > 0 {
                if let Some(l) = &m.link {
                    out.write_all(if m.kind == EntryKind::Symlink { b" -> " } else { b" link to " })?;
                    out.write_all(l)?;
                }
            }
            out.write_all(b"\n")?;
            Ok(true)
        })?;
    }
    Ok(exit::OK)
}

/// The .PKGINFO of a package, read without unpacking anything else.
fn read_pkginfo(pkg: &Path) -> Result<(pkginfo::Info, rtool::decompress::Compression)> {
    let package = Package::open(pkg)?;
    let compression = package.compression;
    // .PKGINFO is small; libalpm caps its lines at 512 KiB, a whole file at 16 MiB is absurd.
    let text = package
        .read_member(b".PKGINFO", 16 << 20)?
        .ok_or_else(|| Error::invalid(format!("{}: no .PKGINFO: not a pacman package", pkg.display())))?;
    let info = pkginfo::parse(&text).map_err(|e| e.context(".PKGINFO"))?;
    Ok((info, compression))
}

fn info(ctx: &Ctx, pkgs: &[PathBuf]) -> Result<u8> {
    let mut out = ctx.out();
    let mut docs = Vec::new();
    for pkg in pkgs {
        let (info, compression) = read_pkginfo(pkg)?;
        if ctx.json {
            let mut j = info.to_json();
            j.push("file", pkg.display().to_string());
            j.push("compression", compression.to_string());
            docs.push(j);
            continue;
        }
        // The fields of `pacman -Qip`, in its order and its formats.
        let list = |key: &str| {
            let vals: Vec<&str> = info.all(key).collect();
            if vals.is_empty() { "None".to_string() } else { vals.join("  ") }
        };
        let optional = {
            let vals: Vec<&str> = info.all("optdepend").collect();
            if vals.is_empty() { "None".to_string() } else { vals.join(&format!("\n{:18}", "")) }
        };
        let number = |key: &str| info.get(key).and_then(|s| s.parse::<u64>().ok());
        let compressed = std::fs::metadata(pkg).map(|m| pacman_size(m.len())).map_err(|e| Error::path(e, pkg))?;
        let rows = [
            ("Name", list("pkgname")),
            ("Version", list("pkgver")),
            ("Description", list("pkgdesc")),
            ("Architecture", list("arch")),
            ("URL", list("url")),
            ("Licenses", list("license")),
            ("Groups", list("group")),
            ("Provides", list("provides")),
            ("Depends On", list("depend")),
            ("Optional Deps", optional),
            ("Conflicts With", list("conflict")),
            ("Replaces", list("replaces")),
            ("Compressed Size", compressed),
            ("Installed Size", number("size").map(pacman_size).unwrap_or_else(|| "None".into())),
            ("Packager", list("packager")),
            ("Build Date", number("builddate").and_then(|t| i64::try_from(t).ok()).map(pacman_date).unwrap_or_else(|| "None".into())),
            ("Compression", compression.to_string()),
        ];
        for (title, v) in rows {
            writeln!(out, "{title:<15} : {v}")?;
        }
        writeln!(out)?;
    }
    if ctx.json {
        let doc = if docs.len() == 1 { docs.remove(0) } else { Json::Arr(docs) };
        writeln!(out, "{doc:#}")?;
    }
    Ok(exit::OK)
}

/// `--dry-run`: what extracting would do to each path.
fn plan(ctx: &Ctx, pkgs: &[PathBuf], dir: &Path, all: bool) -> Result<u8> {
    let mut out = ctx.out();
    let mut root = Root::open(dir)?;
    for pkg in pkgs {
        Package::open(pkg)?.for_each(|m, _| {
            if m.is_metadata() && !all {
                return Ok(true);
            }
            let Some(rel) = rooted::sanitize(&m.raw_name).map_err(|e| e.context(m.name()))? else {
                return Ok(true);
            };
            let found = root.existing(&rel).unwrap_or(Existing::Nothing);
            let what = match (found, m.kind) {
                (Existing::Nothing, _) => "create",
                (Existing::Dir, EntryKind::Dir) => "keep",
                (Existing::File, EntryKind::File | EntryKind::Hardlink) | (Existing::Symlink, EntryKind::Symlink) => "replace",
                (Existing::Symlink, EntryKind::Dir) if root.is_dir_following(&rel) => "keep",
                _ => "conflict",
            };
            writeln!(out, "{what:<8} {} {}", m.kind.word(), rel.display())?;
            Ok(true)
        })?;
    }
    Ok(exit::OK)
}

fn verify(ctx: &Ctx, pkgs: &[PathBuf], dir: &Path) -> Result<u8> {
    let mut out = ctx.out();
    let mut bad = 0;
    let mut docs = Vec::new();
    for pkg in pkgs {
        let entries = verify::read_mtree(pkg)?;
        let report = verify::verify(dir, &entries)?;
        bad += report.mismatches.len();
        if ctx.json {
            let list: Vec<Json> = report
                .mismatches
                .iter()
                .map(|m| {
                    Json::obj()
                        .with("path", m.path.display().to_string())
                        .with("field", m.field)
                        .with("expected", &m.expected)
                        .with("found", &m.found)
                })
                .collect();
            docs.push(
                Json::obj()
                    .with("package", pkg.display().to_string())
                    .with("checked", report.checked)
                    .with("ok", report.mismatches.is_empty())
                    .with("mismatches", Json::Arr(list)),
            );
            continue;
        }
        for m in &report.mismatches {
            writeln!(out, "{}: {}: expected {}, found {}", m.path.display(), m.field, m.expected, m.found)?;
        }
        writeln!(
            out,
            "{}: {} entries checked under {}: {}",
            label(pkg),
            report.checked,
            dir.display(),
            if report.mismatches.is_empty() {
                "all match".to_string()
            } else {
                format!("{} difference(s)", report.mismatches.len())
            }
        )?;
    }
    if ctx.json {
        let doc = if docs.len() == 1 { docs.remove(0) } else { Json::Arr(docs) };
        writeln!(out, "{doc:#}")?;
    }
    Ok(if bad == 0 { exit::OK } else { exit::PROBLEMS })
}
