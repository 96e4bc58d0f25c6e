//! Fetch packages from the Arch Linux Archive, verified against Arch's keyring, resumable

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::archive::decompress;
use rtool::json::Json;
use rtool::net::ala::{self, Candidate, Spec};
use rtool::net::http::{self, Client};
use rtool::net::listing;
use rtool::pkg::{db, name};
use rtool::progress::Mode;
use rtool::sig::{self, FileDigest, Keyring, Pending, Verified};
use rtool::{ctx, exit, sys, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("fetch-pkg")
        .long_about(
            "Downloads package files from the Arch Linux Archive (or --mirror), picking versions \
             with pacman's version order, resuming cut downloads, and verifying each file's \
             signature against Arch's keyring (no gpg or pacman needed). A file that fails \
             verification never appears under its final name. Files already in the output \
             directory and verified are not fetched again; --offline works from them alone.",
        )
        .arg(Arg::new("specs").value_name("SPEC").num_args(0..)
            .help("NAME (newest), NAME=VERSION, or NAME<V, NAME<=V, NAME>V, NAME>=V"))
        .arg(Arg::new("list").long("list").value_name("NAME")
            .help("List every archived version of NAME, newest first; + marks the installed one"))
        .arg(Arg::new("date").long("date").value_name("YYYY-MM-DD")
            .help("Resolve from that day's repository databases: a consistent set"))
        .arg(Arg::new("match_kernel").long("match-kernel").value_name("KVER").num_args(0..=1)
            .require_equals(true).default_missing_value("")
            .help("Add the kernel and headers packages whose release is KVER [default: the running kernel]"))
        .arg(Arg::new("output").short('o').long("output").value_name("DIR").value_parser(clap::value_parser!(PathBuf))
            .help("Where the files go (and where --offline looks) [default: the current directory]"))
        .arg(Arg::new("mirror").long("mirror").value_name("URL").action(ArgAction::Append)
            .help("Archive base URL; repeat to try several in order [default: https://archive.archlinux.org]"))
        .arg(Arg::new("ca_file").long("ca-file").value_name("PEM").value_parser(clap::value_parser!(PathBuf))
            .help("Trust only the certificates in PEM (e.g. a private mirror's CA) instead of the built-in roots"))
        .arg(ctx::arg_keyring())
        .arg(Arg::new("skip_verify").long("skip-verify").action(ArgAction::SetTrue)
            .help("Do not check signatures (said loudly; not recommended)"))
        .arg(Arg::new("offline").long("offline").action(ArgAction::SetTrue)
            .help("Use only the files already in the output directory (signatures re-checked)"))
        .arg(Arg::new("timeout").long("timeout").value_name("SECS").value_parser(clap::value_parser!(u64).range(1..))
            .default_value("60").help("Give up on a connection that sends nothing for SECS"))
        .arg(Arg::new("retries").long("retries").value_name("N").value_parser(clap::value_parser!(u32))
            .default_value("4").help("Retries (with backoff) after a failed connection or transfer"))
        .arg(ctx::arg_root())
        .arg(ctx::arg_json())
        .arg(ctx::arg_dry_run())
        .after_help(
            "Examples:
  rtool fetch-pkg --list linux --root /mnt   # + installed in /mnt, (cached) in its CacheDir
  rtool fetch-pkg linux=6.2.7.arch1-1 linux-headers=6.2.7.arch1-1 -o /mnt/var/cache/pacman/pkg
  rtool fetch-pkg 'linux<6.2.8' 'linux-headers<6.2.8'
  rtool fetch-pkg --date 2023-03-20 linux linux-headers zfs-utils   # one consistent day
  rtool fetch-pkg --match-kernel -o /run/media/usb/pkgs   # headers for the live ISO's kernel
  rtool fetch-pkg --offline -o /run/media/usb/pkgs linux=6.2.7.arch1-1
  rtool fetch-pkg -n 'linux<6.2.8'   # the plan only: no server is asked

--list marks the version installed in --root with +, as downgrade does, and says (cached)
of a version whose file is in the package cache: -o DIR, else the CacheDirs of --root's
pacman.conf.

Exit status: 0 all fetched and verified; 5 a signature or checksum failed; 6 network
failure (a name that does not resolve fails at once, without retries); 7 nothing matches,
or no keyring. A .sig that is not a signature (or over 64 KiB) is refused with 5 before
the package is downloaded.",
        )
}

struct Fetcher<'a> {
    ctx: &'a Ctx,
    client: Option<Client>,
    mirrors: Vec<String>,
    out: PathBuf,
    /// The keyrings, in order (none with --skip-verify).
    keys: Option<Vec<&'a Keyring>>,
    offline: bool,
}

/// What fetch-pkg adds to the shared hint when the mirror's name does not resolve: the ways on
/// without a network.
const OFFLINE_HINT: &str = "without a network, `--offline -o DIR` uses packages already on disk \
    (a USB stick, the pacman cache); or name another `--mirror URL`";

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    fetch_pkg(ctx, m).map_err(|e| {
        if e.cause::<http::Unresolved>().is_some() {
            e.hint(format!("{}; {OFFLINE_HINT}", http::UNRESOLVED_HINT))
        } else {
            e
        }
    })
}

fn fetch_pkg(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let out = m.get_one::<PathBuf>("output").cloned().unwrap_or_else(|| PathBuf::from("."));
    let offline = m.get_flag("offline");
    let (mirrors, plain) = ala::mirrors(m.get_many::<String>("mirror").map(|v| v.cloned().collect()))?;
    for w in plain {
        ctx.warn(w);
    }
    // A dry run asks no server: it says what it would look up.
    let client = if offline || ctx.dry_run {
        None
    } else {
        Some(Client::new(http::Options {
            ca_file: m.get_one::<PathBuf>("ca_file").cloned(),
            read_timeout: Duration::from_secs(*m.get_one::<u64>("timeout").unwrap_or(&60)),
            retries: *m.get_one::<u32>("retries").unwrap_or(&4),
            ..http::Options::default()
        })?
        .on_retry(|msg| eprintln!("fetch-pkg: {msg}")))
    };

    if let Some(name) = m.get_one::<String>("list") {
        // Where a listed version counts as cached: -o, else the target's package cache.
        let caches = match m.get_one::<PathBuf>("output") {
            Some(dir) => vec![dir.clone()],
            None => match db::Conf::read(&ctx.root) {
                Ok(conf) => conf.cachedirs.iter().map(|d| ctx.root_path(d)).collect(),
                Err(e) => {
                    ctx.warn(format!("cached versions are not marked: {e}"));
                    Vec::new()
                }
            },
        };
        let f = Fetcher { ctx, client, mirrors, out, keys: None, offline };
        return f.list(name, &caches);
    }

    let mut wanted: Vec<(Spec, Vec<Spec>)> = Vec::new(); // a spec and its alternatives
    for s in m.get_many::<String>("specs").into_iter().flatten() {
        wanted.push((Spec::parse(s)?, Vec::new()));
    }
    if let Some(k) = m.get_one::<String>("match_kernel") {
        let kver = if k.is_empty() { sys::kernel_release(&ctx.host)? } else { k.clone() };
        let (pkg, versions) = ala::kernel_packages(&kver)?;
        for p in [pkg.clone(), format!("{pkg}-headers")] {
            let mut alts: Vec<Spec> = versions.iter().map(|v| Spec { name: p.clone(), op: Some(ala::Op::Eq), version: Some(v.clone()) }).collect();
            let first = alts.remove(0);
            wanted.push((first, alts));
        }
        ctx.note(format!("kernel {kver}: {pkg} and {pkg}-headers {}", versions.join(" or ")));
    }
    if wanted.is_empty() {
        return Err(Error::usage("nothing to fetch: name packages, or use --match-kernel or --list NAME"));
    }

    let skip_verify = m.get_flag("skip_verify");
    if skip_verify {
        ctx.warn("--skip-verify: signatures are NOT checked; anything the mirror sends is accepted");
    }
    let date = m.get_one::<String>("date").cloned();
    // A dry run with the network says what it would look up: no keyring, no directory.
    if ctx.dry_run && !offline {
        let f = Fetcher { ctx, client, mirrors, out, keys: None, offline };
        return f.plan(&wanted, date.as_deref());
    }
    let keyring =
        if skip_verify { None } else { Some(Keyring::find_all(&ctx.root, &ctx.host, &ctx::paths(m, "keyring"))?) };
    if !ctx.dry_run {
        std::fs::create_dir_all(&out).map_err(|e| Error::path(e, &out))?;
    }
    let keys = keyring.as_ref().map(|k| k.iter().collect());
    let f = Fetcher { ctx, client, mirrors, out, keys, offline };
    let chosen = f.resolve(&wanted, date.as_deref())?;
    let mut results = Vec::new();
    for c in &chosen {
        results.push(f.fetch(c)?);
    }
    let mut o = ctx.out();
    if ctx.json {
        writeln!(o, "{:#}", Json::Arr(results))?;
    }
    Ok(exit::OK)
}

impl Fetcher<'_> {
    fn client(&self) -> Result<&Client> {
        // None only with --offline: a dry run with the network stops at its plan before any
        // server would be asked.
        self.client.as_ref().ok_or_else(|| Error::usage("--offline: no network access"))
    }

    /// Runs `f` against each mirror in turn until one answers.
    fn on_mirrors<T>(&self, f: impl FnMut(&Client, &str) -> Result<T>) -> Result<T> {
        ala::on_mirrors(self.client()?, &self.mirrors, |w| self.ctx.warn(w), f)
    }

    /// Every version of `pkg`, newest first, marked as downgrade marks them: `+` the version
    /// installed in the target, `(cached)` one whose file is in a directory of `caches`.
    fn list(&self, pkg: &str, caches: &[PathBuf]) -> Result<u8> {
        let spec = Spec::parse(pkg)?;
        let mut o = self.ctx.out();
        if self.ctx.dry_run && !self.offline {
            writeln!(o, "would list the versions of {} on {} (dry run: no server asked)", spec.name, self.mirrors.join(", then "))?;
            return Ok(exit::OK);
        }
        let cands = if self.offline { self.local_candidates()? } else { self.on_mirrors(|c, m| ala::list_package(c, m, &spec.name))? };
        let cands: Vec<&Candidate> = cands.iter().filter(|c| c.name == spec.name).collect();
        if cands.is_empty() {
            return Err(Error::missing(format!("{pkg}: no version found")));
        }
        // The running kernel's package, marked.
        let running = sys::kernel_release(&self.ctx.host).ok().and_then(|k| ala::kernel_packages(&k).ok());
        // A local database that cannot be read costs the mark, not the list.
        let installed = match self.installed_version(&spec.name) {
            Ok(v) => v,
            Err(e) => {
                self.ctx.warn(format!("the installed version of {} is not marked: {e}", spec.name));
                None
            }
        };
        let mut cached: Vec<Candidate> = Vec::new();
        for dir in caches {
            match package_files(dir, true) {
                Ok(files) => cached.extend(files),
                Err(e) => self.ctx.warn(format!("cached versions are not marked: {e}")),
            }
        }
        let is_installed = |c: &Candidate| installed.as_deref() == Some(c.version.as_str());
        let is_cached = |c: &Candidate| cached.iter().any(|f| f.name == c.name && f.version == c.version && f.arch == c.arch);
        if self.ctx.json {
            let arr: Vec<Json> = cands
                .iter()
                .map(|c| {
                    let size = c.size.as_deref().and_then(listing::size_bytes);
                    Json::obj()
                        .with("name", &c.name)
                        .with("version", &c.version)
                        .with("arch", &c.arch)
                        .with("file", &c.file)
                        .with("date", c.date.clone())
                        // Bytes as a number; nginx's listing rounds them (`131M`): `size_exact`
                        // says which, `size_listed` is the text as listed.
                        .with("size", size.map(|(n, _)| n))
                        .with("size_exact", size.map(|(_, e)| e))
                        .with("size_listed", c.size.clone())
                        .with("signed", c.has_sig)
                        .with("installed", is_installed(c))
                        .with("cached", is_cached(c))
                })
                .collect();
            writeln!(o, "{:#}", Json::Arr(arr))?;
            return Ok(exit::OK);
        }
        let w = cands.iter().map(|c| c.version.len()).max().unwrap_or(7).max(7);
        writeln!(o, "  {:w$}  {:17}  {:>6}  FILE", "VERSION", "DATE (GMT)", "SIZE")?;
        for c in cands {
            let mut notes = Vec::new();
            if is_installed(c) {
                notes.push("installed");
            }
            if is_cached(c) {
                notes.push("cached");
            }
            if matches!(&running, Some((p, vs)) if *p == c.name && vs.contains(&c.version)) {
                notes.push("running kernel");
            }
            if !c.has_sig {
                notes.push("no signature");
            }
            writeln!(
                o,
                "{} {:w$}  {:17}  {:>6}  {}{}",
                if is_installed(c) { '+' } else { ' ' },
                c.version,
                c.date.as_deref().unwrap_or("-"),
                c.size.as_deref().unwrap_or("-"),
                c.file,
                if notes.is_empty() { String::new() } else { format!("  ({})", notes.join(", ")) }
            )?;
        }
        Ok(exit::OK)
    }

    /// The version of `pkg` in the target's local database (pacman.conf's DBPath).
    fn installed_version(&self, pkg: &str) -> Result<Option<String>> {
        let conf = db::Conf::read(&self.ctx.root)?;
        let found = db::installed(&self.ctx.root_path(&conf.dbpath), |n| n == pkg)?;
        Ok(found.into_iter().find(|l| l.name == pkg).map(|l| l.version))
    }

    /// Package files already in the output directory.
    fn local_candidates(&self) -> Result<Vec<Candidate>> {
        package_files(&self.out, false)
    }

    /// A dry run: what would be looked up, and on which mirrors, without asking any. A
    /// version named exactly whose file is already in the output directory is named too.
    fn plan(&self, wanted: &[(Spec, Vec<Spec>)], date: Option<&str>) -> Result<u8> {
        let here = package_files(&self.out, true)?;
        let mirrors = self.mirrors.join(", then ");
        let mut o = self.ctx.out();
        let mut results = Vec::new();
        for (spec, alts) in wanted {
            let all = || std::iter::once(spec).chain(alts);
            let exact = date.is_none() && all().all(|s| s.op == Some(ala::Op::Eq));
            let what = all().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
            if let Some(c) = all().find_map(|s| ala::choose(&here, s)).filter(|_| exact) {
                let path = self.out.join(&c.file);
                if !self.ctx.json {
                    writeln!(o, "would use {} (already here; its signature is checked again)", path.display())?;
                }
                results.push(Json::obj().with("spec", what).with("file", &c.file).with("path", path.display().to_string()).with("cached", true));
                continue;
            }
            if !self.ctx.json {
                let day = date.map(|d| format!(" in the repositories of {d}")).unwrap_or_default();
                writeln!(o, "would look up {what} on {mirrors}{day}, and fetch it into {}", self.out.display())?;
            }
            results.push(Json::obj().with("spec", what).with("mirrors", Json::Arr(self.mirrors.iter().map(|m| Json::from(m.as_str())).collect())).with("date", date.map(String::from)).with("cached", false));
        }
        if self.ctx.json {
            writeln!(o, "{:#}", Json::Arr(results))?;
        } else {
            drop(o);
            self.ctx.note("dry run: no server was asked, nothing was written");
        }
        Ok(exit::OK)
    }

    fn resolve(&self, wanted: &[(Spec, Vec<Spec>)], date: Option<&str>) -> Result<Vec<Candidate>> {
        let snapshot = match (date, self.offline) {
            (Some(_), true) => return Err(Error::usage("--date needs the network; with --offline name exact versions")),
            (Some(d), false) => Some(self.on_mirrors(|c, m| ala::snapshot(c, m, d))?),
            (None, true) => Some(self.local_candidates()?),
            (None, false) => None,
        };
        let mut chosen = Vec::new();
        for (spec, alts) in wanted {
            let pool = match &snapshot {
                Some(s) => s.clone(),
                None => self.on_mirrors(|c, m| ala::list_package(c, m, &spec.name))?,
            };
            let pick = std::iter::once(spec).chain(alts).find_map(|s| ala::choose(&pool, s));
            match pick {
                Some(c) => {
                    self.ctx.debug(format!("{}: {} ({})", spec.name, c.version, c.url));
                    chosen.push(c.clone());
                }
                None => {
                    let have: Vec<&str> = pool.iter().filter(|c| c.name == spec.name).map(|c| c.version.as_str()).take(5).collect();
                    let want = match (&spec.op, &spec.version) {
                        (Some(_), Some(v)) => format!("{} matching {v}", spec.name),
                        _ => spec.name.clone(),
                    };
                    let e = Error::missing(format!(
                        "no {want}{}",
                        if self.offline { format!(" in {}", self.out.display()) } else if let Some(d) = date { format!(" in the repositories of {d}") } else { " on the archive".into() }
                    ));
                    return Err(if have.is_empty() { e } else { e.hint(format!("available: {}", have.join(", "))) });
                }
            }
        }
        Ok(chosen)
    }

    /// Fetches (or finds) one file and its signature, verifies, and puts it in place.
    fn fetch(&self, c: &Candidate) -> Result<Json> {
        let dest = self.out.join(&c.file);
        let sig = self.out.join(format!("{}.sig", c.file));
        let part = self.out.join(format!("{}.part", c.file));
        let mut o = self.ctx.out();
        if self.ctx.dry_run {
            writeln!(o, "would fetch {} {} from {}", c.name, c.version, c.url)?;
            return Ok(Json::obj().with("file", &c.file).with("url", &c.url));
        }
        let already = dest.is_file();
        if !already && self.offline {
            return Err(Error::missing(format!("{} is not in {}", c.file, self.out.display())));
        }
        if already {
            // One read gives the checksum and the signature's verdict.
            let (sum, signature) = match &self.keys {
                Some(keys) => {
                    let (_, checked) = sig::check_file_any(keys, &dest, &sig).map_err(|e| e.context(c.file.clone()))?;
                    (checked.sha256, Some(checked.signature))
                }
                None => (rtool::hash::sha256_file(&dest)?, None),
            };
            if let Some(want) = &c.sha256 {
                if &sum != want {
                    return Err(Error::new(Kind::Verify, format!("{}: sha256 {sum} differs from the repository database's {want}", dest.display()))
                        .hint("remove the file to fetch it again"));
                }
            }
            let who = signed_by(signature, c)?;
            if !self.ctx.json {
                writeln!(o, "{}  {sum}  (already here{who})", dest.display())?;
            }
            return Ok(result(c, &dest, &sum, true));
        }
        // The signature first: small, and without it the package is useless. It is parsed and
        // its signer judged before a byte of the package is asked for.
        let pending = match &self.keys {
            Some(keys) => {
                let bytes = self
                    .client()?
                    .get_small(&c.sig_url(), sig::MAX_SIG_BYTES)
                    .map_err(|e| if e.kind() == Kind::Invalid { no_signature(e, c) } else { e })?
                    .ok_or_else(|| Error::new(Kind::Verify, format!("{}: no signature on the mirror ({} is missing)", c.file, c.sig_url()))
                        .hint("refusing an unsigned package; --skip-verify accepts it anyway"))?;
                let pending = sig::accept_any(keys, &bytes)
                    .map(|(_, p)| p)
                    .map_err(|e| if e.kind() == Kind::Invalid { no_signature(e, c) } else { e.context(c.file.clone()) })?;
                sys::write_atomic(&sig, &bytes, 0o644)?;
                Some(pending)
            }
            None => None,
        };
        // Every byte goes once through the signature's hash, which gives the SHA-256 too: the
        // file is verified the moment its last byte lands.
        let mut digest = pending.as_ref().map_or_else(FileDigest::sha256_only, Pending::digest);
        let mode = Mode::detect(self.ctx.verbosity < 0);
        self.client()?.download(&c.url, &part, &format!("fetch {}", c.file), mode, &mut digest)?;
        let (sum, signature) = match &pending {
            Some(p) => {
                let checked = p.finish(digest);
                (checked.sha256, Some(checked.signature))
            }
            None => (digest.sha256_hex(), None),
        };
        // A mirror's error page saved as a package: say so before anything else.
        let mut head = vec![0u8; 512];
        let n = std::fs::File::open(&part).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).map_err(|e| Error::path(e, &part))?;
        if let Err(e) = decompress::detect(&head[..n]) {
            let _ = std::fs::remove_file(&part);
            return Err(Error::new(Kind::Verify, format!("{}: not a package: {e}", c.url)));
        }
        if let Some(want) = &c.sha256 {
            if &sum != want {
                let _ = std::fs::remove_file(&part);
                return Err(Error::new(Kind::Verify, format!("{}: sha256 {sum} differs from the repository database's {want}", c.file)));
            }
        }
        let who = match signed_by(signature, c) {
            Ok(w) => w,
            Err(e) => {
                // Bad data must not be resumed into, nor found under the final name.
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        std::fs::rename(&part, &dest).map_err(|e| Error::path(e, &dest))?;
        if !self.ctx.json {
            writeln!(o, "{}  {sum}{who}", dest.display())?;
        }
        Ok(result(c, &dest, &sum, false))
    }
}

/// A `.sig` from the mirror that is too large or no signature fails like a bad signature
/// (exit 5), and before the package is downloaded.
fn no_signature(e: Error, c: &Candidate) -> Error {
    Error::new(Kind::Verify, format!("{}: {e}", c.file))
        .hint("the package was not downloaded; another --mirror may have an intact signature")
}

/// A note on the signer for the output line, or the signature's failure (`None`: --skip-verify).
fn signed_by(signature: Option<Result<Verified>>, c: &Candidate) -> Result<String> {
    match signature {
        None => Ok(", NOT verified".into()),
        Some(Ok(v)) => Ok(format!(", signed by {}", v.user_id.unwrap_or(v.fingerprint))),
        Some(Err(e)) => Err(e.context(c.file.clone())),
    }
}

/// The package files in `dir`, newest first; with `missing_ok`, none when `dir` does not exist.
fn package_files(dir: &Path, missing_ok: bool) -> Result<Vec<Candidate>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::path(e, dir)),
    };
    let names: Vec<String> = rd.flatten().filter_map(|e| e.file_name().to_str().map(String::from)).collect();
    let mut out = Vec::new();
    for n in &names {
        if n.ends_with(".sig") || n.ends_with(".part") {
            continue;
        }
        let Ok(p) = name::parse(n) else { continue };
        out.push(Candidate {
            url: dir.join(n).display().to_string(),
            has_sig: names.contains(&format!("{n}.sig")),
            version: p.version(),
            name: p.name,
            arch: p.arch,
            file: n.clone(),
            date: None,
            size: None,
            sha256: None,
            repo: None,
        });
    }
    ala::sort_newest_first(&mut out);
    Ok(out)
}

fn result(c: &Candidate, dest: &Path, sum: &str, cached: bool) -> Json {
    Json::obj()
        .with("name", &c.name)
        .with("version", &c.version)
        .with("path", dest.display().to_string())
        .with("sha256", sum)
        .with("cached", cached)
}

