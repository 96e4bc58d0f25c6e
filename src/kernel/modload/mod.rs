//! Loading and unloading kernel modules without kmod: `modules.dep` for the order,
//! `modprobe.d` and `/proc/cmdline` for the options, `finit_module`/`init_module` to load
//! (decompressing `.ko.zst`, `.ko.xz` and `.ko.gz` here when the kernel cannot), and
//! `delete_module` to unload. The kernel's own log says why a load failed; it is read back from
//! `/dev/kmsg` so the error can say it too.

mod index;
mod running;

// One module to its callers: everything public in the parts is `modload::NAME`.
pub use index::*;
pub use running::*;

use std::path::{Path, PathBuf};

use crate::ctx::below;
use crate::error::{Error, Result};

/// The kernel's name for a module: dashes and underscores are the same to it.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// What happened to one module of a load.
#[derive(Debug)]
pub enum Event<'a> {
    /// Already in the kernel; left as it is.
    Already(&'a Entry),
    /// Loaded, with these parameters.
    Loaded(&'a Entry, Method, &'a str),
    /// `--dry-run`: would be loaded with these parameters.
    Would(&'a Entry, &'a str),
    /// Part of the kernel image.
    BuiltIn(&'a str),
    Warning(String),
}

impl Event<'_> {
    /// The line that reports this step (`dir` is the modules directory, left out of paths);
    /// `None` for warnings, which go to stderr.
    pub fn line(&self, dir: &Path) -> Option<String> {
        let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
        let with = |p: &str| {
            if p.is_empty() {
                String::new()
            } else {
                format!(" with {p}")
            }
        };
        Some(match self {
            Event::Already(e) => format!("already  {:<16} loaded", e.name),
            Event::BuiltIn(n) => format!("built-in {n:<16} part of the kernel"),
            Event::Would(e, p) => format!("insmod   {:<16} {}{}", e.name, rel(&e.path), with(p)),
            Event::Loaded(e, how, p) => {
                let how = match how {
                    Method::File => "",
                    Method::KernelDecompressed => " (decompressed by the kernel)",
                    Method::Decompressed => " (decompressed by rtool)",
                };
                format!("loaded   {:<16} {}{how}{}", e.name, rel(&e.path), with(p))
            }
            Event::Warning(_) => return None,
        })
    }
}

/// What a load ended with, for the module asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Loaded,
    AlreadyLoaded,
    BuiltIn,
}

/// Everything needed to load modules into the running kernel from a modules tree below a root.
pub struct Loader {
    host: PathBuf,
    pub release: String,
    pub db: ModuleDb,
    pub conf: Config,
    kernel_compression: Option<String>,
}

impl Loader {
    /// The running kernel's modules below `root` and the configuration below it; the kernel
    /// command line and `/sys` of `host`.
    pub fn new(root: &Path, host: &Path) -> Result<Loader> {
        let release = crate::sys::kernel_release(host)?;
        let dir = crate::kernel::modules_dir(root, &release);
        if !dir.is_dir() {
            let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
            let others = ModuleDb::siblings(&parent);
            let mut e = Error::missing(format!(
                "no modules for the running kernel {release}: {} does not exist",
                dir.display()
            ));
            e = if others.is_empty() {
                e.hint("this root has no kernel modules at all; point --root at a system (or a stick) that has modules for this kernel")
            } else {
                e.hint(format!(
                    "{} has modules for {} only: the running kernel differs from those modules; boot the matching kernel, or get the modules of {release} (e.g. its package via `rtool fetch-pkg --match-kernel` and `rtool extract`)",
                    parent.display(),
                    others.join(", ")
                ))
            };
            return Err(e);
        }
        let db = ModuleDb::open(&dir)?;
        let mut conf = Config::load(root);
        // The modules' own soft dependencies (depmod's modules.softdep), unless configured.
        if let Ok(text) = std::fs::read_to_string(dir.join("modules.softdep")) {
            let mut from_modules = Config::default();
            from_modules.parse(&text);
            for (m, deps) in from_modules.softdeps {
                conf.softdeps.entry(m).or_insert(deps);
            }
        }
        if let Ok(cmdline) = std::fs::read_to_string(below(host, Path::new("/proc/cmdline"))) {
            conf.add_cmdline(&cmdline);
        }
        let kernel_compression =
            std::fs::read_to_string(below(host, Path::new("/sys/module/compression")))
                .ok()
                .map(|s| s.trim().to_string());
        Ok(Loader {
            host: host.to_path_buf(),
            release,
            db,
            conf,
            kernel_compression,
        })
    }

    pub fn sys_module(&self) -> PathBuf {
        below(&self.host, Path::new("/sys/module"))
    }

    pub fn state(&self, name: &str) -> State {
        match state(&self.sys_module(), name) {
            State::Absent if self.db.is_builtin(name) => State::BuiltIn,
            s => s,
        }
    }

    /// The module names `name` stands for; an error naming the kernel when there is none.
    pub fn resolve(&self, name: &str) -> Result<Vec<String>> {
        let names = self.db.resolve(name, &self.conf);
        if !names.is_empty() {
            return Ok(names);
        }
        if self.state(name) != State::Absent {
            return Ok(vec![normalize(name)]);
        }
        Err(Error::missing(format!(
            "module {name} not found for kernel {} (in {})",
            self.release,
            self.db.dir.display()
        ))
        .hint("check the name (`ls` the modules directory, or `rtool initramfs check`); DKMS modules need `rtool dkms build` first"))
    }

    /// Loads `name` and what it depends on, dependencies first; `params` go to `name` itself,
    /// after its configured options. Each step is reported to `on`.
    pub fn load(
        &self,
        name: &str,
        params: &[String],
        dry_run: bool,
        on: &mut dyn FnMut(Event),
    ) -> Result<Outcome> {
        self.load_soft(&normalize(name), params, dry_run, on, 0)
    }

    /// `name` between its soft dependencies: those that exist are loaded before (`pre:`) and
    /// after (`post:`) it; one that fails is a warning, as the module works without it.
    fn load_soft(
        &self,
        name: &str,
        params: &[String],
        dry_run: bool,
        on: &mut dyn FnMut(Event),
        depth: usize,
    ) -> Result<Outcome> {
        let (pre, post) = match self.conf.softdeps.get(name) {
            Some(d) if depth < 4 => d.clone(),
            _ => Default::default(),
        };
        for d in &pre {
            self.soft(d, name, dry_run, on, depth);
        }
        let outcome = self.load_one(name, params, dry_run, on)?;
        for d in &post {
            self.soft(d, name, dry_run, on, depth);
        }
        Ok(outcome)
    }

    fn soft(&self, dep: &str, of: &str, dry_run: bool, on: &mut dyn FnMut(Event), depth: usize) {
        for m in self.db.resolve(dep, &self.conf) {
            if m != of {
                if let Err(e) = self.load_soft(&m, &[], dry_run, on, depth + 1) {
                    on(Event::Warning(format!(
                        "{m}, a soft dependency of {of}, did not load: {e}"
                    )));
                }
            }
        }
    }

    fn load_one(
        &self,
        name: &str,
        params: &[String],
        dry_run: bool,
        on: &mut dyn FnMut(Event),
    ) -> Result<Outcome> {
        if self.state(name) == State::BuiltIn {
            on(Event::BuiltIn(name));
            return Ok(Outcome::BuiltIn);
        }
        let plan = self.db.plan(name)?;
        let mut outcome = Outcome::Loaded;
        for e in &plan {
            let target = e.name == name;
            match self.state(&e.name) {
                State::Loaded => {
                    on(Event::Already(e));
                    if target {
                        outcome = Outcome::AlreadyLoaded;
                    }
                    continue;
                }
                State::BuiltIn => {
                    on(Event::BuiltIn(&e.name));
                    continue;
                }
                State::Absent => {}
            }
            if let Some(cmd) = self.conf.install.get(&e.name) {
                on(Event::Warning(format!(
                    "the configuration has `install {} {cmd}`; rtool loads the module itself and does not run that command",
                    e.name
                )));
            }
            let mut all = self.conf.options_for(&e.name);
            if target {
                all.extend(params.iter().cloned());
            }
            let p = param_string(&all);
            if dry_run {
                on(Event::Would(e, &p));
                continue;
            }
            let mut log = KernelLog::from_now(&self.host);
            match insert(&e.path, &p, self.kernel_compression.as_deref())? {
                Ok(method) => {
                    for l in log.since() {
                        if l.contains("unknown parameter") {
                            on(Event::Warning(format!("kernel: {l}")));
                        }
                    }
                    on(Event::Loaded(e, method, &p));
                }
                Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                    on(Event::Already(e));
                    if target {
                        outcome = Outcome::AlreadyLoaded;
                    }
                }
                Err(err) => {
                    let said = log.since();
                    let vermagic = if err.raw_os_error() == Some(libc::ENOEXEC) {
                        read_image(&e.path)
                            .ok()
                            .and_then(|i| modinfo(&i).remove("vermagic"))
                            .and_then(|mut v| v.pop())
                    } else {
                        None
                    };
                    return Err(load_error(
                        &e.name,
                        &e.path,
                        &err,
                        &said,
                        vermagic.as_deref(),
                        &self.release,
                    ));
                }
            }
        }
        Ok(outcome)
    }
}
