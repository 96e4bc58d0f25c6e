//! Fill a USB stick with rtool, Arch's keyring and this machine's packages for an offline rescue; check it

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::kernel::zfs::{self, KERNEL_PACKAGES};
use rtool::net::ala::{self, Candidate, Op, Spec};
use rtool::net::http::{self, Client};
use rtool::pkg::name;
use rtool::progress::Mode;
use rtool::report::{self, Finding, Status};
use rtool::sig::{self, FileDigest, Keyring};
use rtool::stick::{self, facts, keyring::Provenance, rescue, Layout, Sums};
use rtool::units::human;
use rtool::{ctx, exit, install, sys, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    let dir = || {
        Arg::new("dir")
            .value_name("DIR")
            .required(true)
            .value_parser(clap::value_parser!(PathBuf))
            .help("Where the stick is mounted (e.g. /run/media/usb)")
    };
    Command::new("stick")
        .long_about(
            "Prepares a rescue stick for one machine, while it still works, and checks it \
             later. `prepare` puts on the stick this rtool binary (with a link per applet where \
             the filesystem has links; vfat has none), Arch's keyring (the target's, else the \
             running system's; checked against the package that installed it), the target's \
             pacman keyring (pubring.gpg and trustdb.gpg of its GPGDir, when it has one), and \
             the packages a repair needs, every one verified against Arch's keyring or, for a \
             key Arch's does not hold, the pacman keyring (archzfs's key, which the admin \
             trusted with pacman-key): the installed kernels and their headers, the previous \
             version of each from the Arch Linux Archive, the installed ZFS packages (zfs-dkms \
             or zfs-linux, zfs-utils) where a source has them (archzfs's are not on the \
             archive: the target's cache), and any PKG SPEC given. Files come from the stick \
             itself when already there and verified, else the target's pacman cache, else the \
             archive; a rerun downloads only what is missing. Every file is written under a \
             temporary name and renamed into place: a full stick stops with an error and \
             leaves no half file. RESCUE.txt is the walkthrough with this machine's pool, kernel, ESP and \
             network driver in its commands; rtool/SHA256SUMS covers everything.\n\n\
             `check` verifies every checksum in SHA256SUMS (the binary's included) and every \
             package's signature against the stick's own keyrings, and says which kernels the \
             stick can reinstall or go back to offline, and with which ZFS.",
        )
        .subcommand_required(true)
        .arg(
            Arg::new("root")
                .long("for-root")
                .visible_alias("root")
                .value_name("DIR")
                .global(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The installed system the stick is for [default: /, the running system]"),
        )
        .subcommand(
            Command::new("prepare")
                .about("Fill DIR with rtool, the keyring, this machine's packages and RESCUE.txt")
                .arg(dir())
                .arg(Arg::new("specs").value_name("PKG SPEC").num_args(0..)
                    .help("More packages: NAME, NAME=VERSION, NAME<V (as fetch-pkg takes them)"))
                .arg(Arg::new("no_previous").long("no-previous").action(ArgAction::SetTrue)
                    .help("Leave out the previous version of each installed kernel"))
                .arg(Arg::new("mirror").long("mirror").value_name("URL").action(ArgAction::Append)
                    .help("Archive base URL; repeat to try several [default: https://archive.archlinux.org]"))
                .arg(Arg::new("ca_file").long("ca-file").value_name("PEM").value_parser(clap::value_parser!(PathBuf))
                    .help("Trust only the certificates in PEM instead of the built-in roots"))
                .arg(Arg::new("keyring").long("keyring").value_name("PATH").value_parser(clap::value_parser!(PathBuf))
                    .help("The keyring to copy [default: the target's, then the running system's]"))
                .arg(Arg::new("retries").long("retries").value_name("N").value_parser(clap::value_parser!(u32))
                    .default_value("4").help("Retries (with backoff) after a failed connection or transfer"))
                .arg(ctx::arg_dry_run().help("Show what would be copied and downloaded, with sizes; write nothing"))
                .after_help(
                    "Examples:
  rtool stick prepare /run/media/usb
  rtool stick prepare -n /run/media/usb                  # the plan and its sizes
  rtool stick prepare --for-root /mnt /run/media/usb 'linux-lts<6.2'",
                ),
        )
        .subcommand(
            Command::new("check")
                .about("Verify everything on the stick and say what it can rescue")
                .arg(dir())
                .arg(ctx::arg_json())
                .after_help(
                    "Examples:
  rtool stick check /run/media/usb
  rtool stick check --json /run/media/usb

Exit status: 0 everything verified; 5 a checksum or signature failed (the file is named);
1 another problem (no kernel on the stick, a file missing).",
                ),
        )
        .after_help(
            "Examples:
  rtool stick prepare /run/media/usb              # for this machine, while it works
  rtool stick prepare -n /run/media/usb           # the plan and its sizes, nothing written
  rtool stick prepare --for-root /mnt /run/media/usb linux-lts   # another system, one more package
  rtool stick check /run/media/usb
  rtool stick check --json /run/media/usb | jq '.findings[] | select(.status == \"FAIL\")'

From the stick, with no network (S is where it is mounted):
  cd $S/rtool
  bin/rtool fetch-pkg --offline -o cache --keyring keyring linux=VERSION
  bin/rtool install --root /mnt --offline -o cache --keyring keyring \\
      linux=VERSION linux-headers=VERSION
  bin/rtool install --root /mnt --offline -o cache --keyring keyring \\
      --keyring gnupg zfs-dkms=VERSION   # archzfs: the target's pacman keyring

Exit status: 0 done (check: everything verified); 1 check found a problem (no kernel on the
stick); 5 a signature or checksum failed; 4 the stick is full or refused a write (no half
file is left); 6 network failure; 7 a required package or the keyring is missing.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    match m.subcommand() {
        Some(("prepare", a)) => prepare(ctx, a),
        Some(("check", a)) => check(ctx, a),
        _ => Err(Error::usage("expected prepare or check")),
    }
}

/// The stick's directory: it must exist (a mounted stick is never created).
fn stick_dir(m: &ArgMatches) -> Result<Layout> {
    let dir = m.get_one::<PathBuf>("dir").cloned().unwrap_or_default();
    if !dir.is_dir() {
        return Err(Error::usage(format!("{}: no such directory", dir.display()))
            .hint(format!("mount the stick on {} first (`lsblk -f` names its partition)", dir.display())));
    }
    // Absolute, so every path a message names is one to paste from anywhere.
    Ok(Layout::new(std::path::absolute(&dir).map_err(|e| Error::path(e, &dir))?))
}

// ---------------------------------------------------------------------------------------------
// prepare
// ---------------------------------------------------------------------------------------------

/// A package the stick should hold.
struct Want {
    spec: Spec,
    /// Missing, it fails the run; else a warning.
    required: bool,
    why: &'static str,
}

/// Where a package file comes from.
enum Source {
    /// Already on the stick (verified before it is counted).
    Stick,
    /// The target's pacman cache: copied, verified as it is copied.
    Cache(PathBuf),
    /// The archive.
    Mirror(Candidate),
}

struct Item {
    name: String,
    version: String,
    file: String,
    why: &'static str,
    source: Source,
    size: Option<u64>,
}

struct Prep<'a> {
    ctx: &'a Ctx,
    lay: Layout,
    client: Client,
    mirrors: Vec<String>,
    /// Listings already fetched, per package name.
    listings: BTreeMap<String, Vec<Candidate>>,
    cachedirs: Vec<PathBuf>,
}

fn prepare(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let lay = stick_dir(m)?;
    let dry = m.get_flag("dry_run");
    let (mirrors, plain) = ala::mirrors(m.get_many::<String>("mirror").map(|v| v.cloned().collect()))?;
    for w in plain {
        ctx.warn(w);
    }
    let client = Client::new(http::Options {
        ca_file: m.get_one::<PathBuf>("ca_file").cloned(),
        retries: *m.get_one::<u32>("retries").unwrap_or(&4),
        read_timeout: Duration::from_secs(60),
        ..http::Options::default()
    })?
    .on_retry(|msg| eprintln!("stick: {msg}"));

    // A mistyped SPEC stops here, before the network is asked anything.
    let mut asked = Vec::new();
    for s in m.get_many::<String>("specs").into_iter().flatten() {
        asked.push(Want { spec: Spec::parse(s)?, required: true, why: "asked for" });
    }

    // What the stick is for: read everything before anything is written.
    let facts = facts::read(&ctx.root, &ctx.host)?;
    let conf = rtool::pkg::db::Conf::read(&ctx.root)?;
    // Arch's keyring, loaded once, before anything is written; the stick gets the same bytes.
    let source = Keyring::find(&ctx.root, &ctx.host, m.get_one::<PathBuf>("keyring").map(PathBuf::as_path))?;
    if source.is_gnupg() {
        return Err(Error::usage(format!(
            "{}: a GnuPG directory cannot be copied to the stick",
            source.source().display()
        ))
        .hint(format!(
            "pass Arch's keyring (/usr/share/pacman/keyrings) to --keyring; the target's pacman keyring ({}) goes on the stick by itself",
            conf.gpgdir.display()
        )));
    }
    let key_files = stick::keyring::files(source.source());
    let provenance = [&ctx.root, &ctx.host]
        .iter()
        .find(|b| key_files.iter().all(|(f, _)| f.starts_with(b)))
        .map(|b| stick::keyring::provenance(b, &key_files.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>()))
        .transpose()?
        .unwrap_or(Provenance::Unrecorded);
    // pacman's own keyring on the target: what trusts a third-party repository's key (archzfs).
    let gpgdir = ctx::below(&ctx.root, &conf.gpgdir);
    let mut prep = Prep {
        ctx,
        cachedirs: conf.cachedirs.iter().map(|d| ctx::below(&ctx.root, d)).collect(),
        lay,
        client,
        mirrors,
        listings: BTreeMap::new(),
    };

    let mut wants = Vec::new();
    for k in &facts.kernels {
        let eq = |n: String| Spec { name: n, op: Some(Op::Eq), version: Some(k.version.clone()) };
        wants.push(Want { spec: eq(k.name.clone()), required: true, why: "installed" });
        wants.push(Want { spec: eq(format!("{}-headers", k.name)), required: true, why: "installed" });
        if m.get_flag("no_previous") {
            continue;
        }
        match prep.previous(&k.name, &k.version) {
            Ok(Some(v)) => {
                for n in [k.name.clone(), format!("{}-headers", k.name)] {
                    wants.push(Want {
                        spec: Spec { name: n, op: Some(Op::Eq), version: Some(v.clone()) },
                        required: false,
                        why: "previous",
                    });
                }
            }
            Ok(None) => ctx.warn(format!("{} {}: no earlier version on the archive", k.name, k.version)),
            Err(e) => ctx.warn(format!("{}: the previous version is unknown: {e}", k.name)),
        }
    }
    if facts.kernels.is_empty() {
        ctx.warn(format!(
            "no kernel package ({}) in {}'s pacman database: the stick gets no kernel",
            KERNEL_PACKAGES.join(", "),
            ctx.root.display()
        ));
    }
    for z in &facts.zfs {
        wants.push(Want {
            spec: Spec { name: z.name.clone(), op: Some(Op::Eq), version: Some(z.version.clone()) },
            required: false,
            why: "installed",
        });
    }
    wants.extend(asked);

    let mut items: Vec<Item> = Vec::new();
    for w in &wants {
        match prep.resolve(w, false) {
            Ok(it) => {
                if !items.iter().any(|i| i.file == it.file) {
                    items.push(it);
                }
            }
            Err(e) if !w.required => {
                ctx.warn(format!("{} ({}): left out: {e}", w.spec, w.why));
                if w.spec.name.starts_with("zfs-") {
                    ctx.warn(format!(
                        "{}: archzfs's packages are not on the Arch Linux Archive: `pacman -Sw {}` on the target puts them in its cache (with their .sig), and a new `rtool stick prepare` copies them",
                        w.spec.name, w.spec.name
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }

    // vfat (and exFAT) cannot hold a ':' in a name, which an epoch puts in a package's file.
    let fstype = fs_type(&prep.lay.dir);
    if fstype.as_deref().is_some_and(|t| ["vfat", "msdos", "exfat"].contains(&t)) {
        items.retain(|it| {
            let ok = !it.file.contains(':');
            if !ok {
                ctx.warn(format!(
                    "{}: left out: {} cannot hold ':' in a file name (an epoch); use an ext4 stick for it",
                    it.file,
                    fstype.as_deref().unwrap_or_default()
                ));
            }
            ok
        });
    }
    let exe = install::own_path(std::ffi::OsStr::new(""))?;
    let exe_size = std::fs::metadata(&exe).map(|m| m.len()).unwrap_or(0);
    let mut out = ctx.out();
    let free = sys::space(&prep.lay.dir).ok();
    writeln!(
        out,
        "stick    {} ({}{})",
        prep.lay.dir.display(),
        fstype.as_deref().unwrap_or("filesystem unknown"),
        free.map(|s| format!(", {} free", human(s.avail))).unwrap_or_default()
    )?;
    if dry {
        drop(out);
        let mut copies: Vec<(PathBuf, String)> =
            key_files.iter().map(|(f, n)| (f.clone(), format!("{}/{n}", stick::KEYRING))).collect();
        if stick::GNUPG_FILES.iter().all(|f| gpgdir.join(f).is_file()) {
            copies.extend(stick::GNUPG_FILES.iter().map(|f| (gpgdir.join(f), format!("{}/{f}", stick::GNUPG))));
        }
        return plan(ctx, &exe, exe_size, &copies, &items);
    }
    // A stick clearly too small stops here, before anything is written.
    let exe_there = std::fs::metadata(prep.lay.at(stick::EXE)).is_ok_and(|m| m.len() == exe_size);
    let need: u64 = if exe_there { 0 } else { exe_size }
        + items
            .iter()
            .filter(|i| !matches!(i.source, Source::Stick))
            .filter_map(|i| i.size)
            .sum::<u64>();
    if let Some(space) = free {
        if need > space.avail {
            return Err(Error::system(format!(
                "{}: {} free, and the stick needs about {} more: nothing was written",
                prep.lay.dir.display(),
                human(space.avail),
                human(need)
            ))
            .hint("use a larger stick, or leave out the previous kernels with --no-previous"));
        }
    }

    for d in [stick::BIN, stick::MAN_DIR, stick::KEYRING, stick::CACHE] {
        let p = prep.lay.at(d);
        std::fs::create_dir_all(&p).map_err(|e| Error::path(e, &p))?;
    }
    let mut sums = Sums::new();

    // The binary, then its links.
    let (mine, copied) = stick::ensure_copy(&exe, &prep.lay.at(stick::EXE), 0o755)?;
    let word = if copied { "copied" } else { "already on the stick" };
    sums.insert(stick::EXE.into(), mine);
    writeln!(out, "binary   {}: {word} ({}, from {})", stick::EXE, human(exe_size), exe.display())?;
    let links = link_applets(&prep.lay)?;
    // The manual, as `rtool --generate man` writes it, from the same applet table.
    let mut page = Vec::new();
    rtool::manual::generate(super::APPLETS, rtool::manual::Output::Man, &mut page)?;
    sums.insert(stick::MAN.into(), stick::write_atomic(&prep.lay.at(stick::MAN), &page, 0o644)?);
    writeln!(out, "manual   {}: man -l {}", stick::MAN, prep.lay.at(stick::MAN).display())?;
    match links {
        Some(n) => writeln!(out, "links    {}: {n} applet links", stick::BIN)?,
        None => writeln!(
            out,
            "links    none: {} has no symbolic links; `rtool APPLET` works without them",
            fstype.as_deref().unwrap_or("this filesystem")
        )?,
    }

    // The keyring, copied: the stick holds the bytes that were loaded and verify the packages.
    for (from, n) in &key_files {
        let rel = format!("{}/{n}", stick::KEYRING);
        let (sha, _) = stick::ensure_copy(from, &prep.lay.at(&rel), 0o644)?;
        sums.insert(rel, sha);
    }
    let keyring = source;
    let prov = match &provenance {
        Provenance::Package(p) => format!("matches {p}"),
        Provenance::Unrecorded => "no package database records it".into(),
    };
    writeln!(
        out,
        "keyring  {}: {} keys from {} ({prov})",
        stick::KEYRING,
        keyring.key_count(),
        keyring.source().display()
    )?;
    let pacman_keys = pacman_keyring(ctx, &prep.lay, &gpgdir, &mut sums, &mut out)?;
    let keys: Vec<&Keyring> = std::iter::once(&keyring).chain(pacman_keys.as_ref()).collect();

    // The packages.
    let mut problems = 0;
    let mut on_stick: Vec<rescue::OnStick> = Vec::new();
    for it in &items {
        let mut put = prep.put(it, &keys, &mut sums);
        // A local copy (on the stick, in the target's cache) that does not verify is taken
        // from the archive instead; a bad copy on the stick goes, the target's is left alone.
        let local = match &it.source {
            Source::Stick => Some(prep.lay.at(format!("{}/{}", stick::CACHE, it.file))),
            Source::Cache(p) => Some(p.clone()),
            Source::Mirror(_) => None,
        };
        if let (Some(path), Err(e)) = (local, &put) {
            if e.kind() != Kind::System {
                ctx.warn(format!("{}: {e}: taking it from the archive", path.display()));
                if matches!(it.source, Source::Stick) {
                    for p in [path.clone(), PathBuf::from(format!("{}.sig", path.display()))] {
                        std::fs::remove_file(&p).map_err(|e| Error::path(e, &p))?;
                    }
                }
                let w = Want {
                    spec: Spec { name: it.name.clone(), op: Some(Op::Eq), version: Some(it.version.clone()) },
                    required: false,
                    why: it.why,
                };
                put = prep.resolve(&w, true).and_then(|again| prep.put(&again, &keys, &mut sums));
            }
        }
        match put {
            Ok((how, pacman_keyring)) => {
                writeln!(out, "package  {} {} ({}): {how}", it.name, it.version, it.why)?;
                on_stick.push(rescue::OnStick { name: it.name.clone(), version: it.version.clone(), pacman_keyring });
            }
            Err(e) if e.kind() == Kind::System => return Err(e),
            Err(e) => {
                let w = wants.iter().find(|w| w.spec.name == it.name && w.why == it.why);
                if w.is_some_and(|w| w.required) {
                    return Err(e.context(it.file.clone()));
                }
                problems += 1;
                ctx.warn(format!("{}: left out: {e}", it.file));
                if it.name.starts_with("zfs-") && pacman_keys.is_none() {
                    ctx.warn(format!(
                        "{}: archzfs signs with a key outside Arch's keyring, and {} holds no pacman keyring to trust it",
                        it.file,
                        gpgdir.display()
                    ));
                }
            }
        }
    }
    // Package files left by earlier runs (or added by hand) stay, when they verify.
    for f in cache_files(&prep.lay)? {
        let rel = format!("{}/{f}", stick::CACHE);
        if sums.contains_key(&rel) {
            continue;
        }
        let pkg = prep.lay.at(&rel);
        let sig_path = prep.lay.at(format!("{rel}.sig"));
        match sig::check_file_any(&keys, &pkg, &sig_path) {
            Ok((i, c)) if c.signature.is_ok() => {
                sums.insert(format!("{rel}.sig"), stick::sha256_file(&sig_path)?);
                sums.insert(rel, c.sha256);
                if let Ok(p) = name::parse(&f) {
                    on_stick.push(rescue::OnStick { version: p.version(), name: p.name, pacman_keyring: i > 0 });
                }
            }
            _ => ctx.warn(format!("{rel}: does not verify: left out of SHA256SUMS")),
        }
    }
    on_stick.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| rtool::pkg::vercmp::vercmp(&b.version, &a.version)));
    on_stick.dedup();

    let today = sig::date(now());
    let target = stick::target_text(&facts, &today);
    sums.insert(stick::TARGET.into(), stick::write_atomic(&prep.lay.at(stick::TARGET), target.as_bytes(), 0o644)?);
    let text = rescue::render(&rescue::Input {
        facts: &facts,
        packages: &on_stick,
        links: links.is_some(),
        prepared: &today,
        rtool_version: env!("CARGO_PKG_VERSION"),
    });
    sums.insert(stick::RESCUE.into(), stick::write_atomic(&prep.lay.at(stick::RESCUE), text.as_bytes(), 0o644)?);
    writeln!(out, "rescue   {}: the walkthrough for {}", stick::RESCUE, facts.hostname.as_deref().unwrap_or("this machine"))?;
    stick::write_atomic(&prep.lay.at(stick::SUMS), stick::sums_text(&sums).as_bytes(), 0o644)?;
    writeln!(out, "sums     {}: {} files", stick::SUMS, sums.len())?;
    if problems > 0 {
        ctx.warn(format!("{problems} optional package(s) left out (see above); `rtool stick check` says what the stick can rescue"));
    }
    Ok(exit::OK)
}

/// `-n`: what would be copied and downloaded, with sizes.
fn plan(ctx: &Ctx, exe: &Path, exe_size: u64, copies: &[(PathBuf, String)], items: &[Item]) -> Result<u8> {
    let mut out = ctx.out();
    writeln!(out, "plan (nothing is written):")?;
    writeln!(out, "  copy      {} from {} ({})", stick::EXE, exe.display(), human(exe_size))?;
    for (from, to) in copies {
        let size = std::fs::metadata(from).map(|m| human(m.len())).unwrap_or_else(|_| "?".into());
        writeln!(out, "  copy      {to} from {} ({size})", from.display())?;
    }
    let mut total = exe_size;
    for it in items {
        let size = it.size.map(human).unwrap_or_else(|| "size unknown".into());
        let (verb, from) = match &it.source {
            Source::Stick => ("keep", "already on the stick (verified again)".to_string()),
            Source::Cache(p) => ("copy", format!("from {}", p.display())),
            Source::Mirror(c) => ("download", format!("from {}", c.url)),
        };
        if !matches!(it.source, Source::Stick) {
            total += it.size.unwrap_or(0);
        }
        writeln!(out, "  {verb:9} {}/{} ({}, {size}) {from}", stick::CACHE, it.file, it.why)?;
    }
    writeln!(out, "  write     {}, {}, {}, {}", stick::MAN, stick::TARGET, stick::RESCUE, stick::SUMS)?;
    writeln!(out, "about {} to write", human(total))?;
    Ok(exit::OK)
}

/// The package files (not signatures, not temporary files) in the stick's cache.
fn cache_files(lay: &Layout) -> Result<Vec<String>> {
    let dir = lay.at(stick::CACHE);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::path(e, &dir)),
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| !stick::is_temp(n) && !n.ends_with(".sig") && name::parse(n).is_ok())
        .collect();
    v.sort();
    Ok(v)
}

/// A symbolic link per applet beside the binary, named as `rtool --install -s` names them;
/// `None` when the filesystem has no symbolic links (vfat).
fn link_applets(lay: &Layout) -> Result<Option<usize>> {
    let bin = lay.at(stick::BIN);
    let probe = bin.join(".rtool-link-probe");
    let _ = std::fs::remove_file(&probe);
    if std::os::unix::fs::symlink("rtool", &probe).is_err() {
        return Ok(None);
    }
    let _ = std::fs::remove_file(&probe);
    // The table the binary was built with (the crate root's); chroot, modprobe and rmmod stay
    // the system's own, as with `rtool --install`.
    let names: Vec<&str> = super::APPLETS
        .iter()
        .map(|a| a.name)
        .filter(|n| !rtool::applet::SHADOWING.contains(n))
        .collect();
    let done = install::link_all(&lay.at(stick::EXE), &bin, &names, true, false)?;
    Ok(Some(done.created + done.present + done.replaced))
}

/// The type of the filesystem holding `dir` (`vfat`, `ext4`), from the mount table.
fn fs_type(dir: &Path) -> Option<String> {
    let abs = std::fs::canonicalize(dir).ok()?;
    let mounts = sys::mountinfo::read(Path::new("/proc/self/mountinfo")).ok()?;
    sys::mountinfo::containing(&mounts, &abs).map(|m| m.fstype.clone())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Prep<'_> {
    /// Every archived build of `pkg`, from the first mirror that answers (fetched once).
    fn listing(&mut self, pkg: &str) -> Result<&[Candidate]> {
        if !self.listings.contains_key(pkg) {
            let v = ala::on_mirrors(&self.client, &self.mirrors, |w| self.ctx.warn(w), |c, m| ala::list_package(c, m, pkg))?;
            self.listings.insert(pkg.to_string(), v);
        }
        Ok(self.listings.get(pkg).map(Vec::as_slice).unwrap_or_default())
    }

    /// The newest archived version of `pkg` older than `version`.
    fn previous(&mut self, pkg: &str, version: &str) -> Result<Option<String>> {
        let spec = Spec { name: pkg.to_string(), op: Some(Op::Lt), version: Some(version.to_string()) };
        Ok(ala::choose(self.listing(pkg)?, &spec).map(|c| c.version.clone()))
    }

    /// A package file with `name` matching `spec` in `dir` that has its `.sig` beside it.
    fn local(dir: &Path, spec: &Spec) -> Option<(String, String, u64)> {
        let mut found: Vec<(String, String, u64)> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let f = e.file_name().to_str()?.to_string();
                let p = name::parse(&f).ok().filter(|p| !p.sig)?;
                let ok = p.name == spec.name
                    && spec.matches(&p.version())
                    && matches!(p.arch.as_str(), "x86_64" | "any")
                    && dir.join(format!("{f}.sig")).is_file();
                if !ok {
                    return None;
                }
                let size = e.metadata().ok()?.len();
                Some((p.version(), f, size))
            })
            .collect();
        found.sort_by(|a, b| rtool::pkg::vercmp::vercmp(&b.0, &a.0).then_with(|| b.1.ends_with(".zst").cmp(&a.1.ends_with(".zst"))));
        found.into_iter().next()
    }

    /// Where `w` comes from: the stick, the target's cache, or the archive (only the archive
    /// with `archive_only`).
    fn resolve(&mut self, w: &Want, archive_only: bool) -> Result<Item> {
        let item = |version: String, file: String, source, size| Item {
            name: w.spec.name.clone(),
            version,
            file,
            why: w.why,
            source,
            size,
        };
        // An exact version may already be here, with no network needed to know it.
        if w.spec.op == Some(Op::Eq) && !archive_only {
            if let Some((v, f, size)) = Self::local(&self.lay.at(stick::CACHE), &w.spec) {
                return Ok(item(v, f, Source::Stick, Some(size)));
            }
            for d in &self.cachedirs {
                if let Some((v, f, size)) = Self::local(d, &w.spec) {
                    return Ok(item(v, f.clone(), Source::Cache(d.join(&f)), Some(size)));
                }
            }
        }
        let cands = self.listing(&w.spec.name)?;
        let Some(c) = ala::choose(cands, &w.spec) else {
            let have: Vec<&str> = cands.iter().map(|c| c.version.as_str()).take(5).collect();
            let e = Error::missing(format!("no {} on the archive", w.spec));
            return Err(if have.is_empty() { e } else { e.hint(format!("available: {}", have.join(", "))) });
        };
        let c = c.clone();
        if w.spec.op != Some(Op::Eq) && !archive_only {
            let exact = Spec { name: c.name.clone(), op: Some(Op::Eq), version: Some(c.version.clone()) };
            if let Some((v, f, size)) = Self::local(&self.lay.at(stick::CACHE), &exact) {
                return Ok(item(v, f, Source::Stick, Some(size)));
            }
        }
        let size = c.size.as_deref().and_then(rtool::units::parse_size);
        Ok(item(c.version.clone(), c.file.clone(), Source::Mirror(c), size))
    }

    /// Puts one package and its signature on the stick, verified against the first of `keys`
    /// that accepts its signer; how it got there, and whether a keyring after the first (the
    /// target's pacman keyring) was needed.
    fn put(&self, it: &Item, keys: &[&Keyring], sums: &mut Sums) -> Result<(String, bool)> {
        let rel = format!("{}/{}", stick::CACHE, it.file);
        let dest = self.lay.at(&rel);
        let sig_dest = self.lay.at(format!("{rel}.sig"));
        let (how, sha, sig_sha, keyring) = match &it.source {
            Source::Stick => {
                let (i, c) = sig::check_file_any(keys, &dest, &sig_dest)?;
                let v = c.signature.map_err(|e| {
                    e.hint(format!("remove {} and its .sig, then prepare again", dest.display()))
                })?;
                (format!("already on the stick, signed by {}", who(&v, i)), c.sha256, stick::sha256_file(&sig_dest)?, i)
            }
            Source::Cache(from) => {
                let sig_from = PathBuf::from(format!("{}.sig", from.display()));
                let bytes = sig::read_sig(&sig_from)?;
                let (i, pending) = sig::accept_any(keys, &bytes)?;
                let mut digest = pending.digest();
                stick::copy_to_temp(from, &dest, 0o644, &mut digest)?;
                let checked = pending.finish(digest);
                let v = match checked.signature {
                    Ok(v) => v,
                    Err(e) => {
                        stick::discard(&dest);
                        return Err(e.context(from.display().to_string()));
                    }
                };
                let sig_sha = stick::write_atomic(&sig_dest, &bytes, 0o644)?;
                stick::commit(&dest)?;
                (format!("copied from {}, signed by {}", from.display(), who(&v, i)), checked.sha256, sig_sha, i)
            }
            Source::Mirror(c) => {
                let client = &self.client;
                let bytes = client
                    .get_small(&c.sig_url(), sig::MAX_SIG_BYTES)?
                    .ok_or_else(|| Error::new(Kind::Verify, format!("no signature on the mirror ({} is missing)", c.sig_url())))?;
                let (i, pending) = sig::accept_any(keys, &bytes)?;
                let mut digest: FileDigest = pending.digest();
                let part = stick::temp_name(&dest);
                let mode = Mode::detect(self.ctx.verbosity < 0);
                if let Err(e) = client.download(&c.url, &part, &format!("stick: {}", c.file), mode, &mut digest) {
                    // A cut connection keeps what arrived, to resume; anything else leaves nothing.
                    if !stick::keeps_partial(&e) {
                        stick::discard(&dest);
                    }
                    return Err(if e.kind() == Kind::System { e.context(format!("writing {}", dest.display())) } else { e });
                }
                let checked = pending.finish(digest);
                let v = match checked.signature {
                    Ok(v) => v,
                    Err(e) => {
                        stick::discard(&dest);
                        return Err(e);
                    }
                };
                let sig_sha = stick::write_atomic(&sig_dest, &bytes, 0o644)?;
                stick::commit(&dest)?;
                (format!("downloaded, signed by {}", who(&v, i)), checked.sha256, sig_sha, i)
            }
        };
        sums.insert(format!("{rel}.sig"), sig_sha);
        sums.insert(rel, sha);
        Ok((how, keyring > 0))
    }
}

/// The signer; `keyring` is the index of the keyring that accepted it (0: Arch's).
fn who(v: &sig::Verified, keyring: usize) -> String {
    let name = v.user_id.clone().unwrap_or_else(|| v.fingerprint.clone());
    if keyring > 0 {
        format!("{name} (trusted through the target's pacman keyring)")
    } else {
        name
    }
}

/// The target's pacman keyring (`GPGDir`: pubring.gpg and trustdb.gpg) on the stick, loaded
/// from the stick's copy: it verifies what Arch's keyring does not know, a third-party
/// repository's packages whose key the admin trusted with pacman-key (archzfs). Without one on
/// the target, a copy an earlier run left is kept. One that does not load is said, and taken
/// off the stick when it came from the target: only the packages it alone could verify are
/// left out then.
fn pacman_keyring(ctx: &Ctx, lay: &Layout, gpgdir: &Path, sums: &mut Sums, out: &mut impl Write) -> Result<Option<Keyring>> {
    let dest = lay.at(stick::GNUPG);
    let from_target = stick::GNUPG_FILES.iter().all(|f| gpgdir.join(f).is_file());
    let mut shas = Vec::new();
    if from_target {
        std::fs::create_dir_all(&dest).map_err(|e| Error::path(e, &dest))?;
        for f in stick::GNUPG_FILES {
            shas.push(stick::ensure_copy(&gpgdir.join(f), &dest.join(f), 0o644)?.0);
        }
    } else if stick::GNUPG_FILES.iter().all(|f| dest.join(f).is_file()) {
        for f in stick::GNUPG_FILES {
            shas.push(stick::sha256_file(&dest.join(f))?);
        }
    } else {
        return Ok(None);
    }
    let source = if from_target { gpgdir.to_path_buf() } else { dest.clone() };
    match Keyring::load(&dest) {
        Ok(k) => {
            for (f, sha) in stick::GNUPG_FILES.iter().zip(shas) {
                sums.insert(format!("{}/{f}", stick::GNUPG), sha);
            }
            writeln!(
                out,
                "keyring  {}: {} keys from {} (pacman's own: for packages signed outside Arch's keyring)",
                stick::GNUPG,
                k.key_count(),
                source.display()
            )?;
            Ok(Some(k))
        }
        Err(e) => {
            ctx.warn(format!(
                "{}: {e}: packages signed outside Arch's keyring (archzfs) cannot be verified and are left out",
                source.display()
            ));
            if from_target {
                for f in stick::GNUPG_FILES {
                    let _ = std::fs::remove_file(dest.join(f));
                }
                let _ = std::fs::remove_dir(&dest);
            }
            Ok(None)
        }
    }
}


// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

fn check(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let lay = stick_dir(m)?;
    let json = ctx.json;
    let mut findings: Vec<Finding> = Vec::new();
    let mut verify_failed = false;

    let sums_path = lay.at(stick::SUMS);
    let sums = match std::fs::read_to_string(&sums_path) {
        Ok(t) => stick::parse_sums(&t)?,
        Err(e) => {
            return Err(Error::path(e, &sums_path)
                .context("not a stick prepared by rtool")
                .hint(format!("`rtool stick prepare {}` makes one", lay.dir.display())))
        }
    };
    // The keyrings, and every package's signature against them. A package is read once: the
    // same pass gives the signature's verdict and the SHA-256 the checksums are compared with.
    let mut key_findings: Vec<Finding> = Vec::new();
    let keyring = match Keyring::load(&lay.at(stick::KEYRING)) {
        Ok(k) => {
            key_findings.push(Finding::new("keyring", Status::Ok, format!("{}: {} keys, {} main keys", stick::KEYRING, k.key_count(), k.main_key_count())));
            Some(k)
        }
        Err(e) => {
            key_findings.push(Finding::new("keyring", Status::Fail, format!("{}: {e}", stick::KEYRING)).next("prepare the stick again"));
            None
        }
    };
    // The target's pacman keyring, when the stick carries one: for archzfs's packages.
    let pacman_keys = if lay.at(stick::GNUPG).is_dir() {
        match Keyring::load(&lay.at(stick::GNUPG)) {
            Ok(k) => {
                key_findings.push(Finding::new("keyring", Status::Ok, format!(
                    "{}: the target's pacman keyring, {} keys, for packages signed outside Arch's keyring",
                    stick::GNUPG,
                    k.key_count()
                )));
                Some(k)
            }
            Err(e) => {
                key_findings.push(Finding::new("keyring", Status::Fail, format!("{}: {e}", stick::GNUPG)).next("prepare the stick again"));
                None
            }
        }
    } else {
        None
    };
    let mut good: Vec<(name::PkgFileName, PathBuf)> = Vec::new();
    let files = cache_files(&lay)?;
    let mut sig_findings: Vec<Finding> = Vec::new();
    let mut read: BTreeMap<String, String> = BTreeMap::new();
    let mut sig_fail = 0;
    let mut through_pacman = 0;
    if let Some(k) = &keyring {
        let keys: Vec<&Keyring> = std::iter::once(k).chain(pacman_keys.as_ref()).collect();
        for f in &files {
            let rel = format!("{}/{f}", stick::CACHE);
            let r = sig::check_file_any(&keys, &lay.at(&rel), &lay.at(format!("{rel}.sig"))).and_then(|(i, c)| {
                read.insert(rel.clone(), c.sha256);
                c.signature.map(|_| i)
            });
            match r {
                Ok(i) => {
                    through_pacman += usize::from(i > 0);
                    if let Ok(p) = name::parse(f) {
                        good.push((p, lay.at(&rel)));
                    }
                }
                Err(e) => {
                    sig_fail += 1;
                    if e.kind() == Kind::Verify {
                        verify_failed = true;
                    }
                    sig_findings.push(
                        Finding::new("signature", Status::Fail, format!("{rel}: {e}"))
                            .next("prepare the stick again to replace it")
                            .data("file", rel.as_str()),
                    );
                }
            }
        }
        if sig_fail == 0 {
            let how = if through_pacman > 0 {
                format!("the stick's keyrings ({through_pacman} through the target's pacman keyring)")
            } else {
                "the stick's keyring".to_string()
            };
            sig_findings.push(Finding::new("signature", Status::Ok, format!("{} package(s) in {} verified against {how}", files.len(), stick::CACHE)));
        }
    }


    // The checksums, the binary's first; a package's SHA-256 comes from its signature's pass.
    let mut bad: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for (rel, want) in &sums {
        let got = match read.get(rel) {
            Some(sha) => Ok(sha.clone()),
            None => stick::sha256_file(&lay.at(rel)),
        };
        match got {
            Ok(got) if &got == want => {}
            Ok(_) => bad.push(rel.clone()),
            Err(_) => missing.push(rel.clone()),
        }
    }
    for rel in &bad {
        verify_failed = true;
        findings.push(
            Finding::new("checksum", Status::Fail, format!("{rel}: its SHA-256 differs from {}: damaged or changed", stick::SUMS))
                .next(format!("prepare the stick again (`rtool stick prepare {}`) to replace it", lay.dir.display()))
                .data("file", rel.as_str()),
        );
    }
    for rel in &missing {
        findings.push(
            Finding::new("checksum", Status::Fail, format!("{rel}: listed in {} but missing", stick::SUMS))
                .next(format!("prepare the stick again (`rtool stick prepare {}`)", lay.dir.display()))
                .data("file", rel.as_str()),
        );
    }
    let unlisted: Vec<String> = on_stick(&lay)?.into_iter().filter(|r| !sums.contains_key(r) && r != stick::SUMS).collect();
    if bad.is_empty() && missing.is_empty() {
        findings.push(Finding::new("checksum", Status::Ok, format!("all {} files match {}", sums.len(), stick::SUMS)).data("files", sums.len()));
    }
    if !unlisted.is_empty() {
        let mut f = Finding::new("checksum", Status::Warn, format!("{} file(s) on the stick are not in {}", unlisted.len(), stick::SUMS))
            .next(format!("`rtool stick prepare {}` again covers them", lay.dir.display()));
        for u in &unlisted {
            f = f.detail(u.clone());
        }
        findings.push(f.data("unlisted", unlisted.clone()));
    }
    let exe_ok = sums.contains_key(stick::EXE) && !bad.iter().chain(&missing).any(|r| r == stick::EXE);
    findings.push(if exe_ok {
        Finding::new("binary", Status::Ok, format!("{}: checksum matches", stick::EXE))
    } else if !sums.contains_key(stick::EXE) {
        Finding::new("binary", Status::Fail, format!("{}: not in {}", stick::EXE, stick::SUMS))
    } else {
        Finding::new("binary", Status::Fail, format!("{}: damaged or missing: do not run it", stick::EXE))
    });

    findings.extend(key_findings);
    findings.extend(sig_findings);

    // What the verified packages can rescue.
    let target = std::fs::read_to_string(lay.at(stick::TARGET)).unwrap_or_default();
    let installed = stick::target_kernels(&target);
    findings.push(kernels_finding(&good, &installed, &lay.dir));
    findings.push(zfs_finding(&good, &target));

    let code = if verify_failed {
        exit::VERIFY
    } else if findings.iter().any(|f| f.status == Status::Fail) {
        exit::PROBLEMS
    } else {
        exit::OK
    };
    let mut out = ctx.out();
    if json {
        let doc = Json::obj()
            .with("stick", lay.dir.display().to_string())
            .with("ok", code == exit::OK)
            .with("worst", report::worst(&findings).word())
            .with("findings", report::to_json(&findings));
        writeln!(out, "{doc:#}")?;
    } else {
        writeln!(out, "rtool stick check: {}", lay.dir.display())?;
        report::write_text(&mut out, &findings, ctx.color)?;
    }
    Ok(code)
}

/// Every file under the stick's own directory and RESCUE.txt, relative, `/`-separated.
fn on_stick(lay: &Layout) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if lay.at(stick::RESCUE).is_file() {
        out.push(stick::RESCUE.to_string());
    }
    let mut stack = vec![stick::TOP.to_string()];
    while let Some(rel) = stack.pop() {
        let dir = lay.at(&rel);
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::path(e, &dir))?;
        for e in rd.flatten() {
            let Some(n) = e.file_name().to_str().map(String::from) else { continue };
            let child = format!("{rel}/{n}");
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(child),
                Ok(t) if t.is_file() && !stick::is_temp(&n) => out.push(child),
                _ => {} // the applet links, and files being written
            }
        }
    }
    out.sort();
    Ok(out)
}

fn kernels_finding(good: &[(name::PkgFileName, PathBuf)], installed: &[(String, String)], dir: &Path) -> Finding {
    let mut kernels: Vec<(&str, String)> = good
        .iter()
        .filter(|(p, _)| KERNEL_PACKAGES.contains(&p.name.as_str()))
        .map(|(p, _)| (p.name.as_str(), p.version()))
        .collect();
    kernels.sort_by(|a, b| a.0.cmp(b.0).then_with(|| rtool::pkg::vercmp::vercmp(&b.1, &a.1)));
    kernels.dedup();
    if kernels.is_empty() {
        return Finding::new("kernels", Status::Fail, "no verified kernel package: the stick cannot reinstall a kernel offline")
            .next(format!(
                "`rtool stick prepare {0}` on the machine, or name one: `rtool stick prepare {0} linux`",
                dir.display()
            ));
    }
    let mut f = Finding::new("kernels", Status::Ok, format!("{} kernel(s) can be installed offline", kernels.len()));
    let mut data = Vec::new();
    for (n, v) in &kernels {
        let headers = good.iter().any(|(p, _)| p.name == format!("{n}-headers") && &p.version() == v);
        let role = match installed.iter().find(|(i, _)| i == n) {
            Some((_, iv)) if iv == v => "reinstall (the target's own)",
            Some((_, iv)) if rtool::pkg::vercmp::vercmp(v, iv).is_lt() => "downgrade",
            Some(_) => "upgrade",
            None => "install",
        };
        f = f.detail(format!(
            "{n} {v}: {role}; {}",
            if headers { "headers too (modules can be built)" } else { "NO headers: no module can be built for it" }
        ));
        data.push(Json::obj().with("name", *n).with("version", v.as_str()).with("headers", headers).with("role", role));
    }
    f.data("kernels", Json::Arr(data))
}

/// What to do when the target's ZFS packages are not on the stick.
const ZFS_HINT: &str = "archzfs's packages are not on the Arch Linux Archive: on the target, \
     `pacman -Sw zfs-dkms zfs-utils` (or zfs-linux) puts them in its cache with their .sig, \
     and `rtool stick prepare` again copies them, verified with the target's pacman keyring; \
     else bring a live system with ZFS";

fn zfs_finding(good: &[(name::PkgFileName, PathBuf)], target: &str) -> Finding {
    let zfs_pkgs: Vec<&(name::PkgFileName, PathBuf)> = good.iter().filter(|(p, _)| p.name.starts_with("zfs-")).collect();
    let target_zfs: Vec<&str> = target.lines().filter_map(|l| l.strip_prefix("zfs=")).collect();
    if zfs_pkgs.is_empty() {
        return if target_zfs.is_empty() {
            Finding::new("zfs", Status::Info, "no ZFS package on the stick (the target had none)")
        } else {
            Finding::new("zfs", Status::Warn, format!("the target has {}, but no ZFS package is on the stick", target_zfs.join(", ")))
                .next(ZFS_HINT)
        };
    }
    let mut pieces: Vec<zfs::Zfs> = Vec::new();
    let mut f = Finding::new("zfs", Status::Ok, format!("{} ZFS package(s): {}", zfs_pkgs.len(),
        zfs_pkgs.iter().map(|(p, _)| format!("{} {}", p.name, p.version())).collect::<Vec<_>>().join(", ")));
    for (p, path) in &zfs_pkgs {
        match zfs::read_package(path) {
            Ok((depends, metas)) => {
                for (dir, meta) in metas {
                    pieces.push(zfs::Zfs { what: format!("/usr/src/{dir}"), meta: Some(meta), pins: Vec::new(), incoming: true });
                }
                let pins = zfs::Zfs::pins_of(depends.iter().map(String::as_str));
                if !pins.is_empty() {
                    pieces.push(zfs::Zfs { what: format!("{} {}", p.name, p.version()), meta: None, pins, incoming: true });
                }
            }
            Err(e) => f = f.detail(format!("{}: unreadable: {e}", p.name)),
        }
    }
    for t in &target_zfs {
        let n = t.split(' ').next().unwrap_or_default();
        if !zfs_pkgs.iter().any(|(p, _)| p.name == n) {
            f.status = Status::Warn;
            f = f.detail(format!("the target's {t} is not on the stick"));
            f.next = Some(ZFS_HINT.into());
        }
    }
    if !zfs_pkgs.iter().any(|(p, _)| p.name == "zfs-utils") {
        f.status = Status::Warn;
        f = f.detail("no zfs-utils: zpool and zfs must come from the live system");
    }
    for (p, _) in good.iter().filter(|(p, _)| KERNEL_PACKAGES.contains(&p.name.as_str())) {
        if pieces.is_empty() {
            break;
        }
        let k = zfs::Kernel { name: p.name.clone(), version: p.version(), incoming: true };
        let problems = zfs::problems(std::slice::from_ref(&k), &pieces);
        if problems.is_empty() {
            f = f.detail(format!("{} {}: ZFS on the stick supports it", p.name, p.version()));
        } else {
            for pr in problems {
                f = f.detail(pr.text);
            }
        }
    }
    f
}
