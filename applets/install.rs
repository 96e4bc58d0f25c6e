//! Install, upgrade or downgrade packages into a root as pacman would, when pacman is broken

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::pkg::local::{self, Validation};
use rtool::progress::{Mode, Progress};
use rtool::sig::{self, Keyring};
use rtool::transaction::{self, journal, run, Events, Options, Paths, Source};
use rtool::units::human;
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("install")
        .long_about(
            "Installs package files into the system at --root as `pacman -U` does, for when \
             that system's pacman cannot run (a broken libalpm, openssl or glibc; a kernel to \
             downgrade first). The result is what pacman leaves: files with their owners and \
             modes, the local database entry (desc, files, mtree, install) byte for byte, \
             backup files kept or written as .pacnew, the old version's files removed, \
             .INSTALL scriptlets and the system's alpm hooks run inside it, pacman.log \
             written. Everything is checked before anything is written: signatures, \
             dependencies, conflicting packages and files, free space. Files are written \
             under temporary names and renamed into place, the database entry last; a run \
             that is interrupted is finished by running the same command again. Unlike \
             pacman, a failing scriptlet or PostTransaction hook (a DKMS build, mkinitcpio) \
             makes the exit status non-zero.\n\n\
             A SPEC (NAME, NAME=VERSION, 'NAME<VERSION', …) is fetched from the Arch Linux \
             Archive first, as `rtool fetch-pkg` does, into the system's package cache.",
        )
        .arg(Arg::new("packages").value_name("PKG|SPEC").num_args(1..).required(true)
            .value_parser(clap::value_parser!(OsString))
            .help("Package files (.pkg.tar.zst, .xz, …) or specs to fetch"))
        .arg(ctx::arg_root())
        .arg(ctx::arg_dry_run())
        .arg(Arg::new("skip_verify").long("skip-verify").action(ArgAction::SetTrue)
            .help("Install package files without a signature (said loudly; not recommended)"))
        .arg(ctx::arg_keyring())
        .arg(Arg::new("nodeps").long("nodeps").action(ArgAction::SetTrue)
            .help("Skip the dependency check (said loudly)"))
        .arg(Arg::new("overwrite").long("overwrite").value_name("GLOB").action(ArgAction::Append)
            .help("Replace conflicting files matching GLOB (an absolute path glob, as pacman's)"))
        .arg(Arg::new("asdeps").long("asdeps").action(ArgAction::SetTrue)
            .help("Record newly installed packages as dependencies"))
        .arg(Arg::new("no_scriptlets").long("no-scriptlets").action(ArgAction::SetTrue)
            .help("Do not run the packages' .INSTALL scriptlets"))
        .arg(Arg::new("no_hooks").long("no-hooks").action(ArgAction::SetTrue)
            .help("Do not run the system's alpm hooks (mkinitcpio, depmod, dkms…)"))
        .arg(Arg::new("output").short('o').long("output").value_name("DIR").value_parser(clap::value_parser!(PathBuf))
            .help("Where fetched packages go [default: the system's pacman cache]"))
        .arg(Arg::new("date").long("date").value_name("YYYY-MM-DD").help("Fetch specs as of that day's repositories"))
        .arg(Arg::new("match_kernel").long("match-kernel").value_name("KVER").num_args(0..=1)
            .require_equals(true).default_missing_value("")
            .help("Also fetch the kernel and headers whose release is KVER"))
        .arg(Arg::new("offline").long("offline").action(ArgAction::SetTrue)
            .help("Resolve specs only from files already in the cache (-o)"))
        .arg(Arg::new("mirror").long("mirror").value_name("URL").action(ArgAction::Append)
            .help("Archive base URL for specs"))
        .arg(Arg::new("ca_file").long("ca-file").value_name("PEM").value_parser(clap::value_parser!(PathBuf))
            .help("Trust only the certificates in PEM for the archive"))
        .after_help(
            "Examples:
  rtool install --root /mnt linux=6.2.7.arch1-1 linux-headers=6.2.7.arch1-1  # downgrade
  rtool install --root /mnt /run/media/usb/pkgs/openssl-3.0.8-1-x86_64.pkg.tar.zst
  rtool install --root /mnt -n 'zfs-dkms<2.1.10'       # what would be fetched; no server asked
  rtool install --root /mnt -n --offline -o /run/media/usb/pkgs zfs-dkms   # the whole plan
  rtool install --root /mnt --offline -o /run/media/usb/pkgs glibc
  rtool chroot --zpool zroot /mnt -- true && rtool install --root /mnt linux   # pool first

Exit status: 0 installed; 1 refused before any change (a missing dependency, a conflict,
the database locked, not enough space); 3 a corrupt package; 4 the system refused (disk
full, permissions; rerun the command to finish); 5 a signature failed; 6 network; 7 no
keyring, no package; 8 installed, but a scriptlet or hook failed (see above).",
        )
}

struct Shown<'a> {
    ctx: &'a Ctx,
    progress: Option<Progress>,
}

impl Events for Shown<'_> {
    fn note(&mut self, msg: &str) {
        self.progress_done();
        self.ctx.note(format!("{}: {msg}", self.ctx.applet));
    }
    fn warn(&mut self, msg: &str) {
        self.progress_done();
        self.ctx.warn(msg);
    }
    fn progress(&mut self, label: &str, done: u64, total: u64) {
        let quiet = self.ctx.verbosity < 0;
        self.progress
            .get_or_insert_with(|| Progress::bytes(format!("install {label}"), Some(total), Mode::detect(quiet)))
            .set(done);
    }
    fn progress_done(&mut self) {
        if let Some(mut p) = self.progress.take() {
            p.finish();
        }
    }
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    ctx.require_root("it sets owners and runs scriptlets chrooted into the system; -n shows the plan")?;
    let paths = Paths::new(&ctx.root)?;
    if !ctx.root.join("usr").is_dir() || !ctx.root.join("etc").is_dir() {
        return Err(Error::missing(format!(
            "{}: no usr/ and etc/ here: is the installed system mounted?",
            ctx.root.display()
        )));
    }
    let mut ev = Shown { ctx, progress: None };
    let skip_verify = m.get_flag("skip_verify");
    let args: Vec<OsString> = m.get_many::<OsString>("packages").into_iter().flatten().cloned().collect();
    let (files, specs): (Vec<OsString>, Vec<OsString>) = args.into_iter().partition(|a| {
        let p = Path::new(a);
        p.is_file() || a.to_string_lossy().contains(".pkg.tar")
    });
    let mut sources: Vec<Source> = Vec::new();
    let mut keyring: Option<Vec<Keyring>> = None;
    for f in &files {
        let file = PathBuf::from(f);
        if !file.is_file() {
            return Err(Error::missing(format!("{}: no such package file", file.display())));
        }
        let sig_file = PathBuf::from(format!("{}.sig", file.display()));
        let validation = if sig_file.is_file() && !skip_verify {
            if keyring.is_none() {
                keyring = Some(Keyring::find_all(&ctx.root, &ctx.host, &ctx::paths(m, "keyring"))?);
            }
            let keys: Vec<&Keyring> = keyring.iter().flatten().collect();
            let v = sig::verify_file_any(&keys, &file, &sig_file).map_err(|e| e.context(file.display().to_string()))?;
            ctx.debug(format!("{}: signed by {}", file.display(), v.user_id.as_deref().unwrap_or(&v.fingerprint)));
            Validation::Pgp
        } else if skip_verify {
            ctx.warn(format!("--skip-verify: {} is installed WITHOUT a signature check", file.display()));
            Validation::None
        } else {
            return Err(Error::new(Kind::Verify, format!("{}: no signature beside it ({} is missing)", file.display(), sig_file.display()))
                .hint("put the .sig next to the package, or --skip-verify to install it unchecked"));
        };
        sources.push(Source { file, validation });
    }
    if !specs.is_empty() || m.get_one::<String>("match_kernel").is_some() {
        let fetched = fetch(ctx, m, &paths, &specs)?;
        if fetched.is_empty() {
            return Ok(exit::OK); // a dry run that would download: fetch-pkg said what
        }
        sources.extend(fetched);
    }
    let opts = Options {
        nodeps: m.get_flag("nodeps"),
        overwrite: m.get_many::<String>("overwrite").into_iter().flatten().cloned().collect(),
        no_scriptlets: m.get_flag("no_scriptlets"),
        no_hooks: m.get_flag("no_hooks"),
        asdeps: m.get_flag("asdeps"),
        owners: rtool::sys::is_root(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    if opts.nodeps {
        ctx.warn("--nodeps: dependencies are NOT checked; the system may not work afterwards");
    }

    let _lock = if ctx.dry_run { None } else { Some(journal::Lock::take(&paths, &ctx.host_path("/proc"), &mut ev)?) };
    let mut installed = local::read_all(&paths.local())?;
    let recovered = journal::recover(&paths, &installed, ctx.dry_run, &mut ev)?;
    if !recovered.waiting_old.is_empty() || !recovered.pending.is_empty() {
        installed = local::read_all(&paths.local())?;
    }
    installed.extend(recovered.waiting_old);
    let mut targets = Vec::new();
    for s in sources {
        targets.push(transaction::load(s)?);
    }
    let mut plan = transaction::plan(&paths, targets, installed, &recovered.pending, &opts, &mut ev)?;
    if ctx.dry_run {
        return show_plan(ctx, &plan, &opts);
    }
    let out = run::execute(&paths, &mut plan, &opts, &mut ev)?;
    let mut o = ctx.out();
    for line in &out.done {
        writeln!(o, "{line}")?;
    }
    if out.removed > 0 {
        writeln!(o, "removed {} old files and directories", out.removed)?;
    }
    for p in &out.pacnew {
        writeln!(o, "new configuration waiting: {p} (merge it: pacdiff, or diff and move)")?;
    }
    if !out.failures.is_empty() {
        drop(o);
        for f in &out.failures {
            ctx.warn(format!("FAILED: {f}"));
        }
        return Err(Error::new(
            Kind::Failed,
            format!(
                "the packages are installed, but {} step(s) of their installation failed: the system may not boot as it is",
                out.failures.len()
            ),
        )
        .hint(format!("fix the cause, then rerun the failed step inside the system: `rtool chroot {} -- mkinitcpio -P` (or the hook named above)", ctx.root.display())));
    }
    Ok(exit::OK)
}

/// Fetches specs through `fetch-pkg` (the same resolution, download and verification).
fn fetch(ctx: &Ctx, m: &ArgMatches, paths: &Paths, specs: &[OsString]) -> Result<Vec<Source>> {
    let out = m.get_one::<PathBuf>("output").cloned().unwrap_or_else(|| {
        let cache = paths.conf.cachedirs.first().cloned().unwrap_or_else(|| PathBuf::from("/var/cache/pacman/pkg"));
        rtool::ctx::below(&ctx.root, &cache)
    });
    let exe = std::env::current_exe().map_err(|e| Error::io(e, "finding this program"))?;
    let mut cmd = std::process::Command::new(exe);
    // A dry run downloads nothing and asks no server: fetch-pkg says what it would look up,
    // for a person, and the plan stops there. Offline, the files are at hand and the plan
    // goes on.
    let plan_only = ctx.dry_run && !m.get_flag("offline");
    cmd.arg("fetch-pkg").arg("-o").arg(&out).arg("--root").arg(&ctx.root);
    cmd.arg(if plan_only { "-n" } else { "--json" });
    if let Some(d) = m.get_one::<String>("date") {
        cmd.arg("--date").arg(d);
    }
    for k in ctx::paths(m, "keyring") {
        cmd.arg("--keyring").arg(k);
    }
    if let Some(k) = m.get_one::<PathBuf>("ca_file") {
        cmd.arg("--ca-file").arg(k);
    }
    if let Some(k) = m.get_one::<String>("match_kernel") {
        cmd.arg(if k.is_empty() { "--match-kernel".to_string() } else { format!("--match-kernel={k}") });
    }
    for mirror in m.get_many::<String>("mirror").into_iter().flatten() {
        cmd.arg("--mirror").arg(mirror);
    }
    for (flag, id) in [("--offline", "offline"), ("--skip-verify", "skip_verify")] {
        if m.get_flag(id) {
            cmd.arg(flag);
        }
    }
    cmd.args(specs);
    if plan_only {
        let st = cmd.status().map_err(|e| Error::io(e, "running fetch-pkg"))?;
        return match st.code() {
            Some(0) => Ok(Vec::new()),
            _ => Err(Error::new(Kind::Failed, "fetch-pkg -n failed (see above)")),
        };
    }
    cmd.stdout(std::process::Stdio::piped());
    ctx.debug(format!("fetching {} into {}", specs.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" "), out.display()));
    let child = cmd.output().map_err(|e| Error::io(e, "running fetch-pkg"))?;
    let code = child.status.code().unwrap_or(1);
    if code != 0 {
        let kind = match code as u8 {
            exit::VERIFY => Kind::Verify,
            exit::NETWORK => Kind::Network,
            exit::MISSING => Kind::Missing,
            exit::USAGE => Kind::Usage,
            _ => Kind::Failed,
        };
        return Err(Error::new(kind, "fetching the packages failed (see above); nothing was installed"));
    }
    let text = String::from_utf8_lossy(&child.stdout);
    let files = json_files(&text);
    if files.is_empty() {
        return Err(Error::missing("fetch-pkg found nothing to install"));
    }
    let validation = if m.get_flag("skip_verify") { Validation::None } else { Validation::Pgp };
    Ok(files.into_iter().map(|f| Source { file: PathBuf::from(f), validation }).collect())
}

/// The `"path": "FILE"` values of fetch-pkg's JSON list (file names hold no quotes).
fn json_files(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\"path\"") {
        rest = &rest[at + 6..];
        let Some(q1) = rest.find('"') else { break };
        let after = &rest[q1 + 1..];
        let Some(q2) = after.find('"') else { break };
        out.push(after[..q2].to_string());
        rest = &after[q2 + 1..];
    }
    out
}

fn show_plan(ctx: &Ctx, plan: &transaction::Plan, opts: &Options) -> Result<u8> {
    let mut o = ctx.out();
    for (t, removes) in plan.targets.iter().zip(&plan.removes) {
        let change = match &t.old {
            Some(old) => format!("{} {} -> {} ({})", t.name, old.version, t.version, t.verb()),
            None => format!("{} {} (new)", t.name, t.version),
        };
        writeln!(o, "would install {change}: {} paths, {}", t.files.len(), human(t.size()))?;
        if !removes.is_empty() {
            writeln!(o, "  would remove {} paths the old version had", removes.len())?;
        }
        for b in &t.backup {
            let rel = String::from_utf8_lossy(b);
            if ctx.root_path(&*rel).exists() {
                writeln!(o, "  backup file /{rel}: kept if changed locally (the new one as .pacnew)")?;
            }
        }
        if !opts.no_scriptlets {
            for (f, args) in transaction::scriptlet_calls(t) {
                writeln!(o, "  would run scriptlet {f} {}", args.join(" "))?;
            }
        }
    }
    for when in [rtool::pkg::alpmhook::When::Pre, rtool::pkg::alpmhook::When::Post] {
        for (h, targets) in transaction::hooks_for(plan, when) {
            writeln!(
                o,
                "would run hook {} ({}){}",
                h.name,
                h.description.as_deref().unwrap_or("no description"),
                if h.needs_targets { format!(" for {} targets", targets.len()) } else { String::new() }
            )?;
        }
    }
    Ok(exit::OK)
}
