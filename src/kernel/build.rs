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
        return Err(Error::missing(format!("no kernel headers for {kver}: {} is missing", build.display()))
            .hint(format!("install the headers package of that kernel; from the archive: `rtool fetch-pkg --match-kernel={kver}`, then `rtool extract`")));
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

/// Runs the build of `src` for `kver` in a scratch copy under `work`, logging everything to
/// `work/make.log`. `tick` is called about every 200 ms with the log's last line.
pub fn build(
    src: &Source,
    v: &Vars,
    jobs: usize,
    tick: &mut dyn FnMut(&str),
) -> Result<std::result::Result<Built, Failed>> {
    let kver = &v.kernelver;
    // Laid out as in dkms's tree, so the default `M=$dkms_tree/NAME/VERSION/build` is ours.
    let base = Path::new(&v.dkms_tree)
        .join(&src.conf.package_name)
        .join(&src.conf.package_version);
    let build_dir = base.join("build");
    if build_dir.exists() {
        fs::remove_dir_all(&build_dir).map_err(|e| Error::path(e, &build_dir))?;
    }
    copy_tree(&src.dir, &build_dir)?;
    let log_path = base.join("make.log");
    let log = fs::File::create(&log_path).map_err(|e| Error::path(e, &log_path))?;
    let kdir = &v.kernel_source_dir;
    let make = src.conf.make_command(v, jobs as u32)?;
    let mut steps: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &src.conf.pre_build {
        steps.push(("PRE_BUILD", p.clone()));
    }
    steps.push(("MAKE", make));
    if let Some(p) = &src.conf.post_build {
        steps.push(("POST_BUILD", p.clone()));
    }
    for (step, cmd) in steps {
        use std::io::Write;
        let mut l = &log;
        let _ = writeln!(l, "# {step}: {cmd}");
        let child = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(&build_dir)
            .env("kernelver", kver)
            .env("kernel_source_dir", kdir)
            .env("dkms_tree", &v.dkms_tree)
            .env("source_tree", &v.source_tree)
            .env("arch", &v.arch)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| Error::path(e, &log_path))?)
            .stderr(log.try_clone().map_err(|e| Error::path(e, &log_path))?)
            .spawn();
        let mut child = child.map_err(|e| Error::io(e, format!("running {step} ({cmd})")))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {
                    tick(&last_line(&log_path));
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(Error::io(e, format!("waiting for {step}"))),
            }
        };
        if !status.success() {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            let _ = writeln!(l, "# {step} failed: {status}");
            return Ok(Err(Failed {
                causes: buildlog::classify(&text),
                log: log_path,
                step: step.to_string(),
            }));
        }
    }
    let mut modules = Vec::new();
    for m in &src.conf.modules {
        let f = build_dir.join(m.built_path());
        if !f.is_file() {
            return Ok(Err(Failed {
                causes: vec![Cause::Other { last_errors: vec![format!("the build succeeded but {} is missing (BUILT_MODULE_LOCATION/BUILT_MODULE_NAME wrong?)", f.display())] }],
                log: log_path,
                step: "MAKE".into(),
            }));
        }
        modules.push((f, m.dest_name.clone()));
    }
    Ok(Ok(Built {
        log: log_path,
        modules,
    }))
}

fn last_line(log: &Path) -> String {
    let Ok(mut f) = fs::File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut tail = String::new();
    let _ = f.read_to_string(&mut tail);
    tail.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
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
                .filter(|e| e.path().join("vmlinuz").is_file())
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
