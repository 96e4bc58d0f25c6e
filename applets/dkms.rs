//! Build DKMS modules loudly: refuse doomed builds, explain failures, show what is missing

use std::io::Write;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::kernel::build::{self, Compress, Depmod, State};
use rtool::kernel::modules_dir;
use rtool::progress::{Activity, Mode};
use rtool::text::glyph;
use rtool::{ctx, exit, sys, Ctx, Error, Result};

pub fn command() -> Command {
    Command::new("dkms")
        .long_about(
            "A lean DKMS for the rescue: knows before compiling whether a module can work with a \
             kernel (the module's META range, BUILD_EXCLUSIVE_*), builds in a scratch copy with \
             a full make.log, explains a failure (GPL-only symbols, missing headers, compiler \
             mismatch, kernel API changes, memory or space) and never exits 0 when a build \
             failed. `status` shows which installed kernels lack which modules.",
        )
        .subcommand_required(true)
        .subcommand(
            Command::new("build")
                .about("Build and install a DKMS module for one or more kernels")
                .arg(Arg::new("source").value_name("SRC|NAME/VERSION").required(true)
                    .help("A DKMS source directory, or NAME/VERSION from <root>/usr/src/NAME-VERSION"))
                .arg(Arg::new("kernel").short('k').long("kernel").value_name("KVER").action(ArgAction::Append)
                    .help("Kernel release to build for (repeatable) [default: the running kernel]"))
                .arg(Arg::new("force").long("force").action(ArgAction::SetTrue)
                    .help("Build even for a kernel outside the module's supported range"))
                .arg(Arg::new("rebuild").long("rebuild").action(ArgAction::SetTrue)
                    .help("Compile again even when the work directory holds a finished build of the same source for the kernel"))
                .arg(Arg::new("compress").long("compress").value_name("KIND").value_parser(["auto", "zst", "xz", "gz", "none"])
                    .default_value("auto").help("Compression of the installed module [default: like the kernel's own modules]"))
                .arg(Arg::new("jobs").short('j').long("jobs").value_name("N").value_parser(clap::value_parser!(usize)))
                .arg(Arg::new("work").long("work").value_name("DIR").value_parser(clap::value_parser!(PathBuf))
                    .help("Where the scratch copy and make.log go; a finished build kept there is installed again without compiling [default: /var/tmp/rtool-dkms]"))
                .arg(ctx::arg_root())
                .arg(ctx::arg_dry_run())
                .arg(ctx::arg_json())
                .after_help(
                    "A finished build stays in the work directory: the same source built again for the \
                     same kernel is installed from it without compiling, into any root. A changed \
                     source tree or dkms.conf compiles again, and so does --rebuild. Exit status: \
                     see `rtool dkms --help`.",
                ),
        )
        .subcommand(
            Command::new("status")
                .about("Every DKMS source × every installed kernel: installed, missing, unsupported")
                .arg(ctx::arg_root())
                .arg(ctx::arg_json()),
        )
        .after_help(
            "Examples:
  rtool dkms build zfs/2.1.9 -k 6.1.12-arch1-1 --root /mnt
  rtool dkms build /usr/src/acpi_call-1.1.0 -k \"$(uname -r)\"
  rtool dkms build zfs/2.1.9 -k 6.1.12-arch1-1 --root /mnt --rebuild   # compile again
  rtool dkms build -n zfs/2.1.9 -k 6.1.12-arch1-1 --root /mnt   # the plan, nothing built
  rtool dkms build --json zfs/2.1.9 -k 6.1.12-arch1-1 --root /mnt | jq '.results[].status'
  rtool dkms status --root /mnt        # exit 1 if an AUTOINSTALL module is missing

A finished build stays in the work directory (--work): building the same source for the
same kernel again installs it without compiling, into any root. A changed source tree or
dkms.conf compiles again, and so does --rebuild.

Exit status: 0 built or installed (or nothing missing); 1 a kernel the module does not
support, by its META range or BUILD_EXCLUSIVE_* (refused before compiling; --force builds
anyway), or status found a missing module; 2 usage; 3 a dkms.conf that cannot be read;
7 the module source, headers, make or gcc missing; 8 the build failed (the summary says
why, make.log has everything).",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    match m.subcommand() {
        Some(("build", a)) => build_cmd(ctx, a),
        Some(("status", a)) => status_cmd(ctx, a),
        _ => Err(Error::usage("expected `build` or `status`")),
    }
}

/// `--root` of the subcommand (made absolute: make runs elsewhere), else the context's.
fn root_of(ctx: &Ctx, a: &ArgMatches) -> Result<PathBuf> {
    match a.get_one::<PathBuf>("root") {
        Some(p) => std::path::absolute(p).map_err(|e| Error::path(e, p)),
        None => Ok(ctx.root.clone()),
    }
}

fn build_cmd(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let root = root_of(ctx, a)?;
    ctx.require_root(&format!("it installs modules in {}", rtool::ctx::below(&root, std::path::Path::new("/usr/lib/modules")).display()))?;
    let spec = a.get_one::<String>("source").cloned().unwrap_or_default();
    let dir = build::locate(&root, &spec)?;
    let kernels: Vec<String> = match a.get_many::<String>("kernel") {
        Some(k) => k.cloned().collect(),
        None => vec![sys::kernel_release(&ctx.host)?],
    };
    let force = a.get_flag("force");
    let jobs = a.get_one::<usize>("jobs").copied().unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let work_base = match a.get_one::<PathBuf>("work") {
        Some(w) => std::path::absolute(w).map_err(|e| Error::path(e, w))?,
        None => PathBuf::from("/var/tmp/rtool-dkms"),
    };
    let mut out = ctx.out();
    let mut worst = exit::OK;
    let mut results: Vec<Json> = Vec::new();
    // With --json the text goes nowhere: one document at the end says it all.
    let say = |out: &mut dyn Write, line: &str| -> Result<()> {
        if !ctx.json {
            writeln!(out, "{line}")?;
        }
        Ok(())
    };
    for kver in &kernels {
        let work = work_base.join(format!("{}-{kver}", dir.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()));
        if !ctx.dry_run {
            std::fs::create_dir_all(&work).map_err(|e| Error::path(e, &work))?;
        }
        let vars = build::vars(&root, kver, &dir, &work);
        let src = build::read_source(&dir, &vars)?;
        let name = format!("{} {}", src.conf.package_name, src.conf.package_version);
        let result = Json::obj()
            .with("module", &src.conf.package_name)
            .with("version", &src.conf.package_version)
            .with("kernel", kver.as_str());
        for w in &src.conf.warnings {
            ctx.warn(format!("{}: {w}", dir.join("dkms.conf").display()));
        }
        if let Some(why) = build::refusal(&src, &vars)? {
            if force {
                ctx.warn(format!("{why} {} building anyway (--force)", glyph("—")));
            } else {
                say(&mut out, &format!("{name}: NOT built for {kver}: {why}"))?;
                say(&mut out, "  (nothing was compiled; --force builds anyway)")?;
                results.push(result.with("status", "refused").with("reason", why));
                worst = worst.max(exit::PROBLEMS);
                continue;
            }
        }
        let compress = match a.get_one::<String>("compress").map(String::as_str) {
            Some("auto") | None => Compress::of_kernel(&modules_dir(&root, kver)),
            Some(k) => Compress::parse(k).unwrap_or(Compress::None),
        };
        // The key hashes the whole source tree: once, for the check and the stamp.
        let key = build::build_key(&src, &vars)?;
        let reused = if a.get_flag("rebuild") { None } else { build::reusable(&src, &vars, &key) };
        if ctx.dry_run {
            let dest = modules_dir(&root, kver).join("updates/dkms");
            let mut steps = Vec::new();
            match &reused {
                Some(b) => steps.push(format!(
                    "reuse the finished build in {}",
                    b.log.parent().map(|p| p.display().to_string()).unwrap_or_default()
                )),
                None => {
                    build::check_tools(&root, kver)?;
                    steps.push(format!("copy {} to {} and compile it there (make -j{jobs}, log in that directory's make.log)", dir.display(), work.display()));
                }
            }
            for m in &src.conf.modules {
                steps.push(format!("install {}", dest.join(format!("{}{}", m.dest_name, compress.suffix())).display()));
            }
            steps.push(format!("run depmod {kver}"));
            say(&mut out, &format!("{name} for {kver}: would"))?;
            for st in &steps {
                say(&mut out, &format!("  {st}"))?;
            }
            results.push(result.with("status", if reused.is_some() { "would-reuse" } else { "would-build" }).with("steps", steps));
            continue;
        }
        let (built, how, status) = match reused {
            Some(b) => {
                let from = b.log.parent().map(|p| p.display().to_string()).unwrap_or_default();
                (b, format!("installed for {kver} from the finished build in {from} (--rebuild compiles again)"), "reused")
            }
            None => {
                build::check_tools(&root, kver)?;
                let mut act = Activity::new(format!("dkms: {name} for {kver}"), Mode::detect(ctx.verbosity < 0));
                let outcome = build::build(&src, &vars, &key, jobs, &mut |line| act.status(line))?;
                act.done();
                match outcome {
                    Ok(b) => (b, format!("built for {kver} in {} s", act.elapsed().as_secs()), "built"),
                    Err(failed) => {
                        if !ctx.json {
                            print_failure(ctx, &mut out, &name, kver, &failed)?;
                        }
                        results.push(
                            result
                                .with("status", "failed")
                                .with("step", failed.step.as_str())
                                .with("log", failed.log.display().to_string())
                                .with("causes", failed.causes.iter().map(|c| Json::obj().with("kind", c.id()).with("explanation", c.explain())).collect::<Vec<_>>()),
                        );
                        worst = exit::FAILED;
                        continue;
                    }
                }
            }
        };
        let installed = build::install(&root, kver, &built, compress)?;
        let dep = build::depmod(&root, kver)?;
        say(&mut out, &format!("{name}: {how}"))?;
        for p in &installed {
            say(&mut out, &format!("  installed {}", p.display()))?;
        }
        match dep {
            Depmod::Ran => say(&mut out, &format!("  depmod {kver}: done"))?,
            Depmod::Missing => ctx.warn(format!("depmod is not installed: run `depmod {kver}` in the system before booting it, or the module will not be found")),
        }
        ctx.debug(format!("log: {}", built.log.display()));
        results.push(
            result
                .with("status", status)
                .with("log", built.log.display().to_string())
                .with("built", built.modules.iter().map(|(f, _)| f.display().to_string()).collect::<Vec<_>>())
                .with("installed", installed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())
                .with("depmod", matches!(dep, Depmod::Ran)),
        );
    }
    if ctx.json {
        let j = Json::obj().with("ok", worst == exit::OK).with("dry_run", ctx.dry_run).with("results", Json::Arr(results));
        writeln!(out, "{j:#}")?;
    } else if ctx.dry_run {
        writeln!(out, "nothing was compiled or installed (--dry-run)")?;
    }
    Ok(worst)
}

fn print_failure(ctx: &Ctx, out: &mut dyn Write, name: &str, kver: &str, f: &build::Failed) -> Result<()> {
    let (red, reset) = if ctx.color { ("\x1b[1;31m", "\x1b[0m") } else { ("", "") };
    writeln!(out, "{red}{name}: BUILD FAILED for {kver} ({}){reset}", f.step)?;
    for c in &f.causes {
        for (i, line) in c.explain().lines().enumerate() {
            writeln!(out, "  {}{line}", if i == 0 { "- " } else { "  " })?;
        }
    }
    writeln!(out, "  full log: {}", f.log.display())?;
    writeln!(out, "  The module is NOT installed for {kver}: do not boot that kernel if it needs this module.")?;
    Ok(())
}

fn status_cmd(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let root = root_of(ctx, a)?;
    let (rows, warnings) = build::status(&root)?;
    for w in &warnings {
        ctx.warn(w);
    }
    let missing_auto = rows.iter().any(|r| r.state != State::Installed && r.autoinstall);
    let mut out = ctx.out();
    if ctx.json {
        let list: Vec<Json> = rows
            .iter()
            .map(|r| {
                Json::obj()
                    .with("module", &r.module)
                    .with("version", &r.version)
                    .with("kernel", &r.kernel)
                    .with("state", r.state.word().to_ascii_lowercase())
                    .with("autoinstall", r.autoinstall)
                    .with("detail", r.detail.clone())
            })
            .collect();
        writeln!(out, "{:#}", Json::obj().with("ok", !missing_auto).with("modules", Json::Arr(list)))?;
    } else if rows.is_empty() {
        writeln!(out, "no DKMS module sources in {}/usr/src, or no kernels in {}/usr/lib/modules", root.display(), root.display())?;
    } else {
        for r in &rows {
            writeln!(
                out,
                "{}/{}, {}: {}{}{}",
                r.module,
                r.version,
                r.kernel,
                r.state.word(),
                if r.autoinstall { "" } else { " (no AUTOINSTALL)" },
                r.detail.as_ref().map(|d| format!(" {} {d}", glyph("—"))).unwrap_or_default()
            )?;
        }
        if missing_auto {
            writeln!(out, "A module that should be built automatically is missing for an installed kernel: that kernel may not boot.")?;
        }
    }
    Ok(if missing_auto { exit::PROBLEMS } else { exit::OK })
}
