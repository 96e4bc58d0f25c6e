//! Building DKMS modules for a kernel: the checks before, the build in a scratch copy with a
//! full log, the installation compressed like the kernel's own modules, and depmod.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ctx::below;
use crate::error::{Error, Kind, Result};
use crate::kernel::buildlog::{self, Cause};
use crate::kernel::dkms::{self, Conf, Meta, Vars};
use crate::kernel::{modules_dir, MODULE_SUFFIXES};
use crate::sys;

/// How installed modules are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    None,
    Zstd,
    Xz,
    Gzip,
}

impl Compress {
    pub fn suffix(self) -> &'static str {
        match self {
            Compress::None => ".ko",
            Compress::Zstd => ".ko.zst",
            Compress::Xz => ".ko.xz",
            Compress::Gzip => ".ko.gz",
        }
    }

    pub fn parse(s: &str) -> Option<Compress> {
        Some(match s {
            "none" | "ko" => Compress::None,
            "zst" | "zstd" => Compress::Zstd,
            "xz" => Compress::Xz,
            "gz" | "gzip" => Compress::Gzip,
            _ => return None,
        })
    }

    /// The compression of the kernel's own modules in `moddir` (the first module found).
    pub fn of_kernel(moddir: &Path) -> Compress {
        let mut stack = vec![moddir.join("kernel")];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                } else if name.ends_with(".ko.zst") {
                    return Compress::Zstd;
                } else if name.ends_with(".ko.xz") {
                    return Compress::Xz;
                } else if name.ends_with(".ko.gz") {
                    return Compress::Gzip;
                } else if name.ends_with(".ko") {
                    return Compress::None;
                }
            }
        }
        Compress::None
    }
}

/// A DKMS source tree, read.
pub struct Source {
    pub dir: PathBuf,
    pub conf: Conf,
    pub meta: Option<Meta>,
}

/// `SRC` as given (a directory), or `NAME/VERSION` under `<root>/usr/src/NAME-VERSION`.
pub fn locate(root: &Path, spec: &str) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.join("dkms.conf").is_file() {
        return Ok(p.to_path_buf());
    }
    if let Some((name, ver)) = spec
        .split_once('/')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty() && !v.contains('/'))
    {
        let d = below(root, Path::new("/usr/src")).join(format!("{name}-{ver}"));
        if d.join("dkms.conf").is_file() {
            return Ok(d);
        }
        return Err(Error::missing(format!("{}: no dkms.conf there", d.display()))
            .hint(format!("install the module's source package, or give the source directory; `rtool dkms status` lists what is in {}", below(root, Path::new("/usr/src")).display())));
    }
    Err(Error::missing(format!(
        "{spec}: not a DKMS source directory (no dkms.conf) nor NAME/VERSION"
    )))
}

pub fn vars(root: &Path, kver: &str, src: &Path, work: &Path) -> Vars {
    Vars {
        kernelver: kver.to_string(),
        kernel_source_dir: modules_dir(root, kver).join("build").display().to_string(),
        dkms_tree: work.display().to_string(),
        source_tree: src
            .parent()
            .unwrap_or(Path::new("/usr/src"))
            .display()
            .to_string(),
        arch: std::env::consts::ARCH.to_string(),
    }
}

pub fn read_source(dir: &Path, vars: &Vars) -> Result<Source> {
    Ok(Source {
        dir: dir.to_path_buf(),
        conf: dkms::read(dir, vars)?,
        meta: dkms::read_meta(dir)?,
    })
}

/// Why a kernel is not a target for this module, decided before anything compiles.
pub fn refusal(src: &Source, vars: &Vars) -> Result<Option<String>> {
    let kver = &vars.kernelver;
    if let Some(why) = src.conf.build_excluded(vars)? {
        return Ok(Some(format!(
            "{} {}: {why}",
            src.conf.package_name, src.conf.package_version
        )));
    }
    if let Some(meta) = &src.meta {
        if let Some(why) = dkms::meta_range_check(meta, kver)? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// Headers, make and a C compiler: what a build needs, each missing one explained.
pub fn check_tools(root: &Path, kver: &str) -> Result<PathBuf> {
    let build = modules_dir(root, kver).join("build");
    if !build.join("Makefile").is_file() {
        return Err(Error::missing(format!(
            "no kernel headers for {kver}: {} is missing",
            build.display()
        ))
        .hint(format!(
            "install the headers package of that kernel; from the archive: {}",
            super::package_from_archive(kver, root, true)
        )));
    }
    for tool in ["make", "gcc"] {
        if sys::which(tool).is_none() {
            return Err(Error::missing(format!(
                "{tool} is not installed: modules cannot be built"
            ))
            .hint("install base-devel (make and gcc)"));
        }
    }
    Ok(build)
}

/// A failed build: why, and where the whole log is.
pub struct Failed {
    pub causes: Vec<Cause>,
    pub log: PathBuf,
    pub step: String,
}

/// What a successful build produced.
pub struct Built {
    pub log: PathBuf,
    /// (built file, destination name without suffix)
    pub modules: Vec<(PathBuf, String)>,
}

/// The file in the work directory that records a finished build (see [`reusable`]).
const STAMP: &str = "rtool-built";

/// What identifies a build: the module, every file of its source tree (`dkms.conf`, `META`
/// and the code: a package update may patch the code under the same version), the kernel, the
/// commands as read for that kernel (bash may choose options from the kernel's `.config` or
/// the package's own configuration file) and where each built module lies. Absolute paths are
/// left out of the commands (the kernel tree, the work directory), so the same build installs
/// into another root. A finished build with the same key needs no second compile.
pub fn build_key(src: &Source, v: &Vars) -> Result<String> {
    let mut key = format!(
        "rtool dkms build 3\nmodule {} {}\nkernel {} {}\nsource {}\n",
        src.conf.package_name,
        src.conf.package_version,
        v.kernelver,
        v.arch,
        tree_hash(&src.dir)?
    );
    // Paths differ between the root built in and the root installed into (the headers, the
    // work directory); the options around them are what changes a build.
    let command = |c: &str| {
        c.split_whitespace()
            .map(|w| match (w.starts_with('/'), w.find("=/")) {
                (true, _) => "<path>".to_string(),
                (false, Some(i)) => format!("{}=<path>", &w[..i]),
                _ => w.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (step, value) in [
        ("PRE_BUILD", src.conf.pre_build.clone()),
        ("MAKE", Some(src.conf.make_command(v, 0)?)),
        ("POST_BUILD", src.conf.post_build.clone()),
    ] {
        key.push_str(&format!("{step} {}\n", command(&value.unwrap_or_default())));
    }
    for m in &src.conf.modules {
        key.push_str(&format!("built {} strip {}\n", m.built_path(), m.strip));
    }
    Ok(key)
}

/// The SHA-256 of a source tree: every path in order, with its kind, and the mode and
/// content of a file or the target of a link.
fn tree_hash(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    fn walk(h: &mut Sha256, root: &Path, rel: &Path, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        let d = root.join(rel);
        let mut names = Vec::new();
        for e in fs::read_dir(&d).map_err(|e| Error::path(e, &d))? {
            names.push(e.map_err(|e| Error::path(e, &d))?.file_name());
        }
        names.sort();
        for name in names {
            let r = rel.join(&name);
            let p = root.join(&r);
            let md = fs::symlink_metadata(&p).map_err(|e| Error::path(e, &p))?;
            h.update(r.as_os_str().as_bytes());
            if md.is_dir() {
                h.update(b"\0dir\0");
                walk(h, root, &r, buf)?;
            } else if md.file_type().is_symlink() {
                let target = fs::read_link(&p).map_err(|e| Error::path(e, &p))?;
                h.update(b"\0link\0");
                h.update(target.as_os_str().as_bytes());
                h.update(b"\0");
            } else if md.is_file() {
                let mode = md.permissions().mode() & 0o7777;
                h.update(format!("\0file {mode:o} {}\0", md.len()).as_bytes());
                let f = fs::File::open(&p).map_err(|e| Error::path(e, &p))?;
                crate::hash::update_from(h, f, buf).map_err(|e| Error::path(e, &p))?;
            } else {
                h.update(b"\0other\0");
            }
        }
        Ok(())
    }
    let mut h = Sha256::new();
    walk(&mut h, dir, Path::new(""), &mut vec![0u8; 256 << 10])?;
    Ok(crate::hash::hex(&h.finalize()))
}

fn build_base(src: &Source, v: &Vars) -> PathBuf {
    Path::new(&v.dkms_tree)
        .join(&src.conf.package_name)
        .join(&src.conf.package_version)
}

/// A finished build of the same source for the same kernel in the work directory, as dkms
/// keeps one in its tree (`dkms build`, then `dkms install` compiles nothing): the modules
/// are there and the stamp written after the last step matches. A compile of OpenZFS takes
/// many minutes; installing it again, into another root or after a failed install, should not.
pub fn reusable(src: &Source, v: &Vars, key: &str) -> Option<Built> {
    let base = build_base(src, v);
    if fs::read_to_string(base.join(STAMP)).ok()? != key {
        return None;
    }
    let build_dir = base.join("build");
    let mut modules = Vec::new();
    for m in &src.conf.modules {
        let f = build_dir.join(m.built_path());
        if !f.is_file() {
            return None;
        }
        modules.push((f, m.dest_name.clone()));
    }
    Some(Built {
        log: base.join("make.log"),
        modules,
    })
}

/// How dkms runs `PRE_BUILD` and `POST_BUILD` (`run_build_script`, lines 815-840): the value
/// names a program relative to the build directory, with its arguments; dkms prefixes the
/// directory, checks that the part before the first space is executable, and runs the whole
/// split into words (`exec $run`, no other shell evaluation) from the build directory. So
/// OpenZFS's `PRE_BUILD="configure --prefix=/usr …"` runs `build/configure`.
fn script_argv(build_dir: &Path, value: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = value.split([' ', '\t', '\n']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return Err("it is empty".to_string());
    };
    let program = format!("{}/{first}", build_dir.display());
    let executable = fs::metadata(&program).is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    });
    if !executable {
        return Err(format!(
            "{first} is not an executable file in the build directory ({program})"
        ));
    }
    let mut argv = vec![program];
    argv.extend(words.map(String::from));
    Ok(argv)
}

/// Runs the build of `src` for `kver` in a scratch copy under `work`, logging everything to
/// `work/make.log`, and stamps it with `key` ([`build_key`]) once finished. `tick` is called
/// about every 200 ms with the log's last line.
pub fn build(
    src: &Source,
    v: &Vars,
    key: &str,
    jobs: usize,
    tick: &mut dyn FnMut(&str),
) -> Result<std::result::Result<Built, Failed>> {
    let kver = &v.kernelver;
    // Laid out as in dkms's tree, so the default `M=$dkms_tree/NAME/VERSION/build` is ours.
    let base = build_base(src, v);
    let build_dir = base.join("build");
    let _ = fs::remove_file(base.join(STAMP));
    if build_dir.exists() {
        fs::remove_dir_all(&build_dir).map_err(|e| Error::path(e, &build_dir))?;
    }
    copy_tree(&src.dir, &build_dir)?;
    let log_path = base.join("make.log");
    let log = fs::File::create(&log_path).map_err(|e| Error::path(e, &log_path))?;
    let mut step = Step {
        v,
        build_dir: &build_dir,
        log: &log,
        log_path: &log_path,
        tick,
    };
    if let Some(value) = &src.conf.pre_build {
        if let Some(f) = step.script("PRE_BUILD", value)? {
            return Ok(Err(f));
        }
    }
    // dkms evaluates the make command with bash (`invoke_command`, line 1083); sh where
    // there is no bash.
    let shell = sys::which("bash").unwrap_or_else(|| PathBuf::from("sh"));
    let make = src.conf.make_command(v, jobs as u32)?;
    if let Some(f) = step.run("MAKE", &[shell.display().to_string(), "-c".into(), make])? {
        return Ok(Err(f));
    }
    let strip = sys::which("strip");
    let mut modules = Vec::new();
    for m in &src.conf.modules {
        let f = build_dir.join(m.built_path());
        if !f.is_file() {
            return Ok(Err(step.failed("MAKE", vec![format!("the build succeeded but {} is missing (BUILT_MODULE_LOCATION/BUILT_MODULE_NAME wrong?)", f.display())])));
        }
        // dkms strips debugging symbols unless STRIP[i] says no (line 1110).
        match (&strip, m.strip) {
            (Some(strip), true) => {
                let argv = [
                    strip.display().to_string(),
                    "-g".into(),
                    f.display().to_string(),
                ];
                if let Some(failed) = step.run("STRIP", &argv)? {
                    return Ok(Err(failed));
                }
            }
            (None, true) => step.note(&format!(
                "STRIP: strip is not installed; {} keeps its debugging symbols",
                f.display()
            )),
            (_, false) => {}
        }
        modules.push((f, m.dest_name.clone()));
    }
    // dkms runs POST_BUILD after stripping, once it has made its per-kernel directory
    // `$dkms_tree/NAME/VERSION/KVER/ARCH/log` (OpenZFS's dkms.postbuild copies into it). It
    // looks the script up only then: PRE_BUILD or make may have made it.
    if let Some(value) = &src.conf.post_build {
        let per_kernel = base.join(kver).join(&v.arch).join("log");
        fs::create_dir_all(&per_kernel).map_err(|e| Error::path(e, &per_kernel))?;
        if let Some(f) = step.script("POST_BUILD", value)? {
            return Ok(Err(f));
        }
    }
    sys::write_atomic(&base.join(STAMP), key.as_bytes(), 0o644)?;
    Ok(Ok(Built {
        log: log_path,
        modules,
    }))
}

/// The steps of one build: each runs from the build directory, its output in the log.
struct Step<'a> {
    v: &'a Vars,
    build_dir: &'a Path,
    log: &'a fs::File,
    log_path: &'a Path,
    tick: &'a mut dyn FnMut(&str),
}

impl Step<'_> {
    /// A line of rtool's own in the log (`# …`, which the summaries skip).
    fn note(&self, line: &str) {
        use std::io::Write;
        let mut l = self.log;
        let _ = writeln!(l, "# {line}");
    }

    fn failed(&self, step: &str, lines: Vec<String>) -> Failed {
        Failed {
            causes: vec![Cause::Other { last_errors: lines }],
            log: self.log_path.to_path_buf(),
            step: step.to_string(),
        }
    }

    /// `PRE_BUILD`/`POST_BUILD` as dkms runs them ([`script_argv`]).
    fn script(&mut self, step: &str, value: &str) -> Result<Option<Failed>> {
        match script_argv(self.build_dir, value) {
            Ok(argv) => self.run(step, &argv),
            Err(why) => {
                self.note(&format!("{step}: {value}"));
                self.note(&format!("{step} command not found: {why}"));
                Ok(Some(self.failed(
                    step,
                    vec![format!("{step} command not found: {why}")],
                )))
            }
        }
    }

    /// Runs `argv` without a shell and waits, ticking; a failure says why.
    fn run(&mut self, step: &str, argv: &[String]) -> Result<Option<Failed>> {
        let shown = argv.join(" ");
        self.note(&format!("{step}: {shown}"));
        let mut child = match self.spawn(argv) {
            Ok(c) => c,
            // A script without a `#!` line: dkms's `exec $run` is bash's, and bash runs such
            // a file as a bash script.
            Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                let shell = sys::which("bash").unwrap_or_else(|| PathBuf::from("/bin/sh"));
                self.note(&format!(
                    "{step}: {} has no #! line; running it with {}",
                    argv[0],
                    shell.display()
                ));
                let mut with = vec![shell.display().to_string()];
                with.extend(argv.iter().cloned());
                self.spawn(&with)
                    .map_err(|e| Error::io(e, format!("running {step} ({shown})")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.note(&format!("{step} command not found: {}", argv[0]));
                return Ok(Some(self.failed(
                    step,
                    vec![format!("{step} command not found: {}", argv[0])],
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let why = format!(
                    "{step} cannot be executed: {}: {e} (a work directory on a noexec mount? --work chooses another)",
                    argv[0]
                );
                self.note(&why);
                return Ok(Some(self.failed(step, vec![why])));
            }
            Err(e) => return Err(Error::io(e, format!("running {step} ({shown})"))),
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {
                    (self.tick)(&last_line(self.log_path));
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(Error::io(e, format!("waiting for {step}"))),
            }
        };
        if status.success() {
            return Ok(None);
        }
        let text = fs::read_to_string(self.log_path).unwrap_or_default();
        self.note(&format!("{step} failed: {status}"));
        // 127 and 126 are the shell's "command not found" and "cannot execute": a missing
        // tool, not a compile error.
        let causes = match status.code() {
            Some(c @ (126 | 127)) => {
                let why = if c == 127 {
                    "command not found (exit 127)"
                } else {
                    "command found but not executable (exit 126)"
                };
                let last = buildlog::last_lines(&text, 1).pop().unwrap_or_default();
                vec![Cause::Other {
                    last_errors: vec![
                        format!("{step} {why}: {last}"),
                        format!("{step} was: {}", clip_words(&shown, 160)),
                    ],
                }]
            }
            _ => buildlog::classify_failed(&text),
        };
        Ok(Some(Failed {
            causes,
            log: self.log_path.to_path_buf(),
            step: step.to_string(),
        }))
    }

    fn spawn(&self, argv: &[String]) -> std::io::Result<std::process::Child> {
        let v = self.v;
        Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(self.build_dir)
            .env("kernelver", &v.kernelver)
            .env("kernel_source_dir", &v.kernel_source_dir)
            .env("dkms_tree", &v.dkms_tree)
            .env("source_tree", &v.source_tree)
            .env("arch", &v.arch)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(self.log.try_clone()?)
            .stderr(self.log.try_clone()?)
            .spawn()
    }
}

/// `s` with runs of blanks made single spaces and cut to about `max` characters.
fn clip_words(s: &str, max: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let cut: String = joined.chars().take(max).collect();
    format!("{cut}{}", crate::text::glyph("…"))
}

/// The last line of the log, read from its tail: what the progress line shows.
fn last_line(log: &Path) -> String {
    let Ok(mut f) = fs::File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut tail = String::new();
    let _ = f.read_to_string(&mut tail);
    buildlog::last_lines(&tail, 1).pop().unwrap_or_default()
}

/// Copies a source tree (files, directories, symlinks, modes).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    copy_tree_except(from, to, &[])
}

/// [`copy_tree`], leaving out the top-level entries named in `skip`.
pub fn copy_tree_except(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::path(e, to))?;
    let rd = fs::read_dir(from).map_err(|e| Error::path(e, from))?;
    for e in rd {
        let e = e.map_err(|e| Error::path(e, from))?;
        if skip.iter().any(|s| e.file_name() == *s) {
            continue;
        }
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().map_err(|e| Error::path(e, &src))?;
        if t.is_dir() {
            copy_tree(&src, &dst)?;
        } else if t.is_symlink() {
            let target = fs::read_link(&src).map_err(|e| Error::path(e, &src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(|e| Error::path(e, &dst))?;
        } else if t.is_file() {
            fs::copy(&src, &dst).map_err(|e| sys::write_error(e, &dst, &dst, ""))?;
        }
    }
    Ok(())
}

/// Installs the built modules into `<root>/usr/lib/modules/KVER/updates/dkms/`, compressed,
/// each written beside its place and renamed in. Returns the installed paths.
pub fn install(root: &Path, kver: &str, built: &Built, compress: Compress) -> Result<Vec<PathBuf>> {
    let dest = modules_dir(root, kver).join("updates/dkms");
    fs::create_dir_all(&dest).map_err(|e| Error::path(e, &dest))?;
    let mut out = Vec::new();
    for (file, name) in &built.modules {
        let target = dest.join(format!("{name}{}", compress.suffix()));
        let tmp = dest.join(format!(".{name}.rtool-{}", std::process::id()));
        let r = compress_into(file, &tmp, compress)
            .and_then(|_| fs::rename(&tmp, &target).map_err(|e| Error::path(e, &target)));
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // An older copy under another compression would shadow or confuse depmod.
        for s in MODULE_SUFFIXES {
            let other = dest.join(format!("{name}{s}"));
            if other != target {
                let _ = fs::remove_file(other);
            }
        }
        out.push(target);
    }
    Ok(out)
}

fn compress_into(src: &Path, dst: &Path, c: Compress) -> Result<()> {
    if c == Compress::None {
        fs::copy(src, dst).map_err(|e| sys::write_error(e, dst, dst, ""))?;
        return Ok(());
    }
    // The same tools, with the options the kernel's modules_install uses (xz with crc32: the
    // kernel's decompressor checks nothing else).
    let (tool, args): (&str, &[&str]) = match c {
        Compress::Zstd => ("zstd", &["-q", "-T0", "-19", "-c"]),
        Compress::Xz => ("xz", &["-c", "--check=crc32", "--lzma2=dict=1MiB"]),
        _ => ("gzip", &["-n", "-9", "-c"]),
    };
    let out = fs::File::create(dst).map_err(|e| Error::path(e, dst))?;
    let status = Command::new(tool)
        .args(args)
        .arg(src)
        .stdout(out)
        .status()
        .map_err(|e| {
            Error::io(e, format!("running {tool}"))
                .hint(format!("install {tool}, or choose --compress none"))
        })?;
    if !status.success() {
        return Err(Error::new(
            Kind::Failed,
            format!("{tool} failed compressing {}: {status}", src.display()),
        ));
    }
    Ok(())
}

/// What depmod did.
pub enum Depmod {
    Ran,
    Missing,
}

/// `depmod -b ROOT KVER` (or plain `depmod KVER` for the running system).
pub fn depmod(root: &Path, kver: &str) -> Result<Depmod> {
    let Some(tool) = sys::which("depmod").or_else(|| {
        ["/usr/bin/depmod", "/usr/sbin/depmod", "/sbin/depmod"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }) else {
        return Ok(Depmod::Missing);
    };
    let mut cmd = Command::new(tool);
    if root != Path::new("/") {
        cmd.arg("-b").arg(root);
    }
    let out = cmd
        .arg(kver)
        .output()
        .map_err(|e| Error::io(e, "running depmod"))?;
    if !out.status.success() {
        return Err(Error::new(
            Kind::Failed,
            format!(
                "depmod {kver} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(Depmod::Ran)
}

/// One line of `dkms status`.
#[derive(Clone, Debug)]
pub struct StatusRow {
    pub module: String,
    pub version: String,
    pub kernel: String,
    pub state: State,
    pub autoinstall: bool,
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Installed,
    Missing,
    Unsupported,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Installed => "installed",
            State::Missing => "MISSING",
            State::Unsupported => "unsupported",
        }
    }
}

/// Kernels installed under the root: module directories that hold a `vmlinuz`.
pub fn installed_kernels(root: &Path) -> Vec<String> {
    let base = below(root, Path::new("/usr/lib/modules"));
    let mut v: Vec<String> = fs::read_dir(&base)
        .map(|rd| {
            rd.flatten()
                // A kernel package's tree: Arch ships `vmlinuz` there, every kernel
                // `modules.builtin`. A directory that only DKMS left behind has neither.
                .filter(|e| {
                    let p = e.path();
                    p.join("vmlinuz").is_file() || p.join("modules.builtin").is_file()
                })
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every DKMS source under `<root>/usr/src` × every installed kernel.
pub fn status(root: &Path) -> Result<(Vec<StatusRow>, Vec<String>)> {
    let src_base = below(root, Path::new("/usr/src"));
    let mut sources: Vec<PathBuf> = fs::read_dir(&src_base)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("dkms.conf").is_file())
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    let kernels = installed_kernels(root);
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for dir in &sources {
        for k in &kernels {
            let v = vars(root, k, dir, Path::new("/var/lib/dkms"));
            let src = match read_source(dir, &v) {
                Ok(s) => s,
                Err(e) => {
                    warnings.push(format!("{}: {e}", dir.display()));
                    break;
                }
            };
            let moddir = modules_dir(root, k);
            let present = src
                .conf
                .modules
                .iter()
                .all(|m| crate::kernel::find_module(&moddir, &m.dest_name).is_some());
            let refusal = refusal(&src, &v)?;
            let (state, detail) = match (present, refusal) {
                (true, _) => (State::Installed, None),
                (false, Some(why)) => (State::Unsupported, Some(why)),
                (false, None) => (State::Missing, None),
            };
            rows.push(StatusRow {
                module: src.conf.package_name.clone(),
                version: src.conf.package_version.clone(),
                kernel: k.clone(),
                state,
                autoinstall: src.conf.autoinstall,
                detail,
            });
        }
    }
    Ok((rows, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_follows_the_kernels_own_modules() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Compress::of_kernel(d.path()), Compress::None);
        for (file, want) in [
            ("a.ko.zst", Compress::Zstd),
            ("b.ko.xz", Compress::Xz),
            ("c.ko.gz", Compress::Gzip),
            ("d.ko", Compress::None),
        ] {
            let k = d.path().join(file.replace('.', "_"));
            std::fs::create_dir_all(k.join("kernel/drivers/net")).unwrap();
            std::fs::write(k.join("kernel/drivers/net").join(file), b"x").unwrap();
            assert_eq!(Compress::of_kernel(&k), want, "{file}");
            assert!(want.suffix().starts_with(".ko"));
        }
        assert_eq!(Compress::parse("zst"), Some(Compress::Zstd));
        assert_eq!(Compress::parse("lz4"), None);
    }
}
