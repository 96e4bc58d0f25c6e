//! Loading and unloading kernel modules without kmod: `modules.dep` for the order,
//! `modprobe.d` and `/proc/cmdline` for the options, `finit_module`/`init_module` to load
//! (decompressing `.ko.zst`, `.ko.xz` and `.ko.gz` here when the kernel cannot), and
//! `delete_module` to unload. The kernel's own log says why a load failed; it is read back from
//! `/dev/kmsg` so the error can say it too.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::ctx::below;
use crate::error::{Error, Kind, Result};
use crate::kernel::module_name;

/// The kernel's name for a module: dashes and underscores are the same to it.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// One module from `modules.dep`: where its file is and what it needs, all of it (depmod writes
/// the transitive closure, sorted so that loading right to left is correct).
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    /// `None` when there is no `modules.dep`: read from the module's own `.modinfo` then.
    pub deps: Option<Vec<String>>,
}

/// What a modules directory offers: its modules and their dependencies, the aliases, and
/// which modules are built into the kernel.
pub struct ModuleDb {
    pub dir: PathBuf,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    aliases: Vec<(String, String)>,
    builtin: HashSet<String>,
    /// Whether `modules.dep` was there (else the tree was walked).
    pub indexed: bool,
}

impl ModuleDb {
    /// Reads `dir` (a `/usr/lib/modules/KVER`). Without `modules.dep` the tree is walked and
    /// dependencies come from each module's `.modinfo` when it is loaded.
    pub fn open(dir: &Path) -> Result<ModuleDb> {
        let mut db = ModuleDb {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            by_name: HashMap::new(),
            aliases: Vec::new(),
            builtin: HashSet::new(),
            indexed: false,
        };
        match std::fs::read_to_string(dir.join("modules.dep")) {
            Ok(text) => {
                db.indexed = true;
                for line in text.lines() {
                    let Some((path, deps)) = line.split_once(':') else {
                        continue;
                    };
                    let Some(name) = file_module(path) else {
                        continue;
                    };
                    let deps = deps.split_whitespace().filter_map(file_module).collect();
                    db.push(Entry {
                        name,
                        path: dir.join(path.trim()),
                        deps: Some(deps),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => db.walk(),
            Err(e) => return Err(Error::path(e, &dir.join("modules.dep"))),
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("modules.alias")) {
            db.aliases = parse_aliases(&text);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("modules.builtin")) {
            db.builtin = text.lines().filter_map(file_module).collect();
        }
        Ok(db)
    }

    fn push(&mut self, e: Entry) {
        // The first of two files of the same name wins, as with depmod's search order.
        if !self.by_name.contains_key(&e.name) {
            self.by_name.insert(e.name.clone(), self.entries.len());
            self.entries.push(e);
        }
    }

    fn walk(&mut self) {
        let mut stack = vec![self.dir.clone()];
        let mut found = Vec::new();
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(t) = e.file_type() else { continue };
                let top = d == self.dir;
                let fname = e.file_name();
                let fname = fname.to_string_lossy();
                if t.is_dir() && !(top && matches!(&*fname, "build" | "source")) {
                    stack.push(e.path());
                } else if t.is_file() {
                    if let Some(name) = module_name(&fname) {
                        found.push(Entry {
                            name,
                            path: e.path(),
                            deps: None,
                        });
                    }
                }
            }
        }
        // `updates/` (DKMS) before `kernel/`, like depmod's default search order.
        found.sort_by_key(|e| {
            (
                !e.path.starts_with(self.dir.join("updates")),
                e.path.clone(),
            )
        });
        for e in found {
            self.push(e);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name
            .get(&normalize(name))
            .map(|&i| &self.entries[i])
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// The module names `name` stands for: itself when it is a module, else what the aliases
    /// of the configuration and of `modules.alias` match (blacklisted ones dropped, as kmod
    /// does for aliases).
    pub fn resolve(&self, name: &str, conf: &Config) -> Vec<String> {
        let n = normalize(name);
        if self.get(&n).is_some() || self.is_builtin(&n) {
            return vec![n];
        }
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in conf.aliases.iter().chain(&self.aliases) {
            if glob_match(pattern.as_bytes(), name.as_bytes())
                && !conf.blacklist.contains(module)
                && !out.contains(module)
            {
                out.push(module.clone());
            }
        }
        out
    }

    /// The modules to load for `name`, dependencies first.
    pub fn plan(&self, name: &str) -> Result<Vec<Entry>> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        self.visit(&normalize(name), &mut order, &mut seen, 0)?;
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        order: &mut Vec<Entry>,
        seen: &mut HashSet<String>,
        depth: usize,
    ) -> Result<()> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        if self.is_builtin(name) && self.get(name).is_none() {
            return Ok(());
        }
        let Some(e) = self.get(name) else {
            return Err(Error::missing(format!(
                "module {name} not found in {}",
                self.dir.display()
            )));
        };
        if depth > 64 {
            return Err(Error::invalid(format!("the dependencies of {name} loop")));
        }
        match &e.deps {
            // depmod lists the whole closure, sorted so the last one is needed first.
            Some(deps) => {
                for d in deps.iter().rev() {
                    if seen.insert(d.clone()) {
                        if let Some(de) = self.get(d) {
                            order.push(de.clone());
                        }
                    }
                }
            }
            None => {
                let image = read_image(&e.path)?;
                let info = modinfo(&image);
                for d in info.get("depends").into_iter().flatten() {
                    for d in d.split(',').filter(|d| !d.is_empty()) {
                        self.visit(&normalize(d), order, seen, depth + 1)?;
                    }
                }
            }
        }
        order.push(e.clone());
        Ok(())
    }

    /// The kernel releases beside this one under the same parent directory, for an error
    /// that says which modules there are.
    pub fn siblings(modules_parent: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(modules_parent)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// `kernel/net/dummy.ko.zst` → `dummy`.
fn file_module(path: &str) -> Option<String> {
    let path = path.trim();
    module_name(path.rsplit('/').next().unwrap_or(path))
}

fn parse_aliases(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("alias"), Some(p), Some(m)) => Some((p.to_string(), normalize(m))),
                _ => None,
            }
        })
        .collect()
}

/// fnmatch without flags, as modules.alias needs: `*`, `?` and `[...]` (with `!`/`^`, ranges).
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = class(&p[pi..], s[si]) {
                        if ok {
                            pi += next;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == b'[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `p` against `c`: (matched, length of the class).
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            hit |= (p[i]..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    None
}

/// The module configuration: `options`, `alias` and `blacklist` from the modprobe.d
/// directories, and `MODULE.param=value` from the kernel command line.
#[derive(Debug, Default)]
pub struct Config {
    options: Vec<(String, String)>,
    cmdline: Vec<(String, String)>,
    pub aliases: Vec<(String, String)>,
    pub blacklist: HashSet<String>,
    /// `install` commands, which rtool does not run (reported instead).
    pub install: HashMap<String, String>,
    /// `softdep MODULE pre: A B post: C`: loaded before and after MODULE, when available.
    pub softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// Where kmod reads configuration, in order of precedence.
pub const CONF_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

impl Config {
    /// Reads `*.conf` from the modprobe.d directories below `root`: a file name in an earlier
    /// directory hides the same name in later ones; the files are then read in name order.
    pub fn load(root: &Path) -> Config {
        let mut by_name: Vec<(String, PathBuf)> = Vec::new();
        for d in CONF_DIRS {
            let Ok(rd) = std::fs::read_dir(below(root, Path::new(d))) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".conf") && !by_name.iter().any(|(n, _)| *n == name) {
                    by_name.push((name, e.path()));
                }
            }
        }
        by_name.sort();
        let mut c = Config::default();
        for (_, p) in by_name {
            if let Ok(text) = std::fs::read_to_string(&p) {
                c.parse(&text);
                c.files.push(p);
            }
        }
        c
    }

    /// One modprobe.d file's text.
    pub fn parse(&mut self, text: &str) {
        let mut joined = String::new();
        for raw in text.lines() {
            // A trailing backslash continues the line.
            if let Some(head) = raw.strip_suffix('\\') {
                joined.push_str(head);
                joined.push(' ');
                continue;
            }
            joined.push_str(raw);
            let line = std::mem::take(&mut joined);
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut w = line.split_whitespace();
            match (w.next(), w.next()) {
                (Some("options"), Some(m)) => {
                    let m = normalize(m);
                    for o in w {
                        self.options.push((m.clone(), o.to_string()));
                    }
                }
                (Some("alias"), Some(p)) => {
                    if let Some(m) = w.next() {
                        self.aliases.push((p.to_string(), normalize(m)));
                    }
                }
                (Some("blacklist"), Some(m)) => {
                    self.blacklist.insert(normalize(m));
                }
                (Some("softdep"), Some(m)) => {
                    let (mut pre, mut post) = (Vec::new(), Vec::new());
                    let mut into_post = false;
                    for word in w {
                        match word {
                            "pre:" => into_post = false,
                            "post:" => into_post = true,
                            d if into_post => post.push(d.to_string()),
                            d => pre.push(d.to_string()),
                        }
                    }
                    self.softdeps.insert(normalize(m), (pre, post));
                }
                (Some("install"), Some(m)) => {
                    self.install
                        .insert(normalize(m), w.collect::<Vec<_>>().join(" "));
                }
                _ => {}
            }
        }
    }

    /// `MODULE.param=value` words of a kernel command line (`/proc/cmdline`); quotes group a
    /// value with spaces; `modprobe.blacklist=a,b` blacklists; words after `--` are init's.
    pub fn add_cmdline(&mut self, cmdline: &str) {
        for word in split_cmdline(cmdline) {
            if word == "--" {
                break;
            }
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let Some((module, param)) = key.split_once('.') else {
                continue;
            };
            if module.is_empty() || param.is_empty() || module.contains('/') {
                continue;
            }
            if module == "modprobe" && param == "blacklist" {
                self.blacklist.extend(value.split(',').map(normalize));
                continue;
            }
            self.cmdline
                .push((normalize(module), format!("{param}={value}")));
        }
    }

    /// The options for `module`: configuration files first, then the kernel command line.
    pub fn options_for(&self, module: &str) -> Vec<String> {
        let m = normalize(module);
        self.options
            .iter()
            .chain(&self.cmdline)
            .filter(|(n, _)| *n == m)
            .map(|(_, o)| o.clone())
            .collect()
    }
}

/// Splits a kernel command line the way the kernel does: spaces separate, double quotes
/// group (and are dropped).
fn split_cmdline(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Joins parameters into the string the kernel takes, quoting values that hold spaces.
pub fn param_string(params: &[String]) -> String {
    params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if v.contains(char::is_whitespace) && !v.starts_with('"') => {
                format!("{k}=\"{v}\"")
            }
            _ => p.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How a module is present in the running kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    /// Loaded (or loading/unloading: `initstate` says which).
    Loaded,
    /// Part of the kernel image: it has a `/sys/module` entry but no `initstate`.
    BuiltIn,
}

/// `name`'s state from `sys_module` (normally `/sys/module`).
pub fn state(sys_module: &Path, name: &str) -> State {
    let d = sys_module.join(normalize(name));
    if d.join("initstate").exists() {
        State::Loaded
    } else if d.is_dir() {
        State::BuiltIn
    } else {
        State::Absent
    }
}

/// The compression of a module file, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Elf,
    Zstd,
    Xz,
    Gzip,
}

impl Format {
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"\x7fELF") {
            Some(Format::Elf)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::Zstd)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Format::Xz)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::Gzip)
        } else {
            None
        }
    }

    /// The name `/sys/module/compression` uses.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Format::Elf => "none",
            Format::Zstd => "zstd",
            Format::Xz => "xz",
            Format::Gzip => "gzip",
        }
    }
}

/// Modules larger than this (decompressed) are refused as hostile; the largest real ones
/// (amdgpu, zfs with debug info) stay well below.
const MAX_IMAGE: u64 = 1 << 30;

/// The module's ELF image, decompressed when needed.
pub fn read_image(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::path(e, path))?;
    let mut head = [0u8; 6];
    let n =
        std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).map_err(|e| Error::path(e, path))?;
    let not_module = || {
        Error::invalid(format!(
            "{}: not a kernel module (neither ELF nor zstd, xz or gzip)",
            path.display()
        ))
    };
    let format = Format::detect(&head[..n]).ok_or_else(not_module)?;
    let mut r: Box<dyn Read + Send> = if format == Format::Elf {
        Box::new(f)
    } else {
        crate::decompress::decoder(f).map_err(|_| not_module())?.1
    };
    let mut image = Vec::new();
    r.by_ref()
        .take(MAX_IMAGE + 1)
        .read_to_end(&mut image)
        .map_err(|e| {
            Error::path(e, path).context(format!("decompressing ({})", format.kernel_name()))
        })?;
    if image.len() as u64 > MAX_IMAGE {
        return Err(Error::invalid(format!(
            "{}: over 1 GiB once decompressed",
            path.display()
        )));
    }
    if !image.starts_with(b"\x7fELF") {
        return Err(Error::invalid(format!(
            "{}: the decompressed content is not an ELF module",
            path.display()
        )));
    }
    Ok(image)
}

/// The `.modinfo` section of a 64-bit little-endian ELF module: `key` → values, in order
/// (`depends`, `vermagic`, `parm`, `parmtype`, `alias`, …). Empty when it cannot be read.
pub fn modinfo(image: &[u8]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let Some(sec) = elf_section(image, ".modinfo") else {
        return out;
    };
    for item in sec.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let item = String::from_utf8_lossy(item);
        if let Some((k, v)) = item.split_once('=') {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

fn elf_section<'a>(image: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| {
        image
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        image
            .get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(|b| u32::from_le_bytes(b) as usize)
    };
    let u64_at = |o: usize| {
        image
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .and_then(|b| usize::try_from(u64::from_le_bytes(b)).ok())
    };
    // ELFCLASS64, little endian.
    if image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return None;
    }
    let shoff = u64_at(0x28)?;
    let shentsize = u16_at(0x3a)?;
    let shnum = u16_at(0x3c)?;
    let shstrndx = u16_at(0x3e)?;
    let header = |i: usize| -> Option<(usize, usize, usize)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(h)?, u64_at(h + 0x18)?, u64_at(h + 0x20)?))
    };
    let (_, stroff, strsize) = header(shstrndx)?;
    let strtab = image.get(stroff..stroff.checked_add(strsize)?)?;
    (0..shnum).find_map(|i| {
        let (name, off, size) = header(i)?;
        let n = strtab.get(name..)?;
        let n = &n[..n.iter().position(|&b| b == 0)?];
        (n == wanted.as_bytes()).then(|| image.get(off..off.checked_add(size)?))?
    })
}

/// The kernel log from now on: what the kernel says about a load, read back for the error.
pub struct KernelLog(Option<File>);

impl KernelLog {
    /// Opens `/dev/kmsg` (below `host`) positioned after the last record; silent when it
    /// cannot be read.
    pub fn from_now(host: &Path) -> KernelLog {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(below(host, Path::new("/dev/kmsg")))
            .ok();
        if let Some(f) = &f {
            // SAFETY: lseek on a file descriptor we own; /dev/kmsg supports SEEK_END.
            unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        }
        KernelLog(f)
    }

    /// The messages logged since, first line of each record.
    pub fn since(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(f) = &mut self.0 else {
            return out;
        };
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, msg)) = rec.split_once(';') {
                        let msg = msg.lines().next().unwrap_or("").trim_end();
                        out.push(msg.to_string());
                    }
                }
                // EPIPE: records were overwritten; read on from the next one.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        out
    }
}

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the file itself (since 5.17).
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// How a module went into the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `finit_module` on the file as it is.
    File,
    /// `finit_module` with the kernel decompressing.
    KernelDecompressed,
    /// Decompressed here, then `init_module`.
    Decompressed,
}

/// Loads one module file with `params`. `kernel_compression` is the content of
/// `/sys/module/compression` (the one format the kernel can decompress itself), if any.
/// On failure the `io::Error` is the kernel's answer.
pub fn insert(
    path: &Path,
    params: &str,
    kernel_compression: Option<&str>,
) -> Result<std::result::Result<Method, io::Error>> {
    let cparams = CString::new(params)
        .map_err(|_| Error::usage("module parameters cannot contain a NUL byte"))?;
    let f = File::open(path).map_err(|e| Error::path(e, path))?;
    let mut head = [0u8; 6];
    // Read at an offset: the descriptor's position stays at 0 for finit_module.
    let n =
        std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).map_err(|e| Error::path(e, path))?;
    let format = Format::detect(&head[..n]).ok_or_else(|| {
        Error::invalid(format!(
            "{}: not a kernel module (neither ELF nor zstd, xz or gzip)",
            path.display()
        ))
    })?;
    let by_kernel = format != Format::Elf
        && kernel_compression.is_some_and(|k| k.trim() == format.kernel_name());
    if format == Format::Elf || by_kernel {
        let flags = if by_kernel {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        // SAFETY: finit_module reads the open file descriptor and the NUL-terminated parameter
        // string, both alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                f.as_raw_fd(),
                cparams.as_ptr(),
                flags,
            )
        };
        if r == 0 {
            return Ok(Ok(if by_kernel {
                Method::KernelDecompressed
            } else {
                Method::File
            }));
        }
        let e = io::Error::last_os_error();
        // A kernel that turns out unable to decompress: do it here instead.
        if !(by_kernel && matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL))) {
            return Ok(Err(e));
        }
    }
    drop(f);
    let image = read_image(path)?;
    // SAFETY: init_module copies `len` bytes from the image buffer and reads the NUL-terminated
    // parameter string; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len(),
            cparams.as_ptr(),
        )
    };
    if r == 0 {
        Ok(Ok(Method::Decompressed))
    } else {
        Ok(Err(io::Error::last_os_error()))
    }
}

/// Unloads `name` without waiting (`O_NONBLOCK`, as kmod does). The `io::Error` is the
/// kernel's answer (`EWOULDBLOCK`/`EBUSY` when in use, `ENOENT` when not loaded).
pub fn remove(name: &str) -> Result<std::result::Result<(), io::Error>> {
    let c = CString::new(normalize(name))
        .map_err(|_| Error::usage("a module name cannot contain a NUL byte"))?;
    // SAFETY: delete_module reads the NUL-terminated name, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, c.as_ptr(), libc::O_NONBLOCK) };
    Ok(if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    })
}

/// Who keeps `name` loaded: the modules in `/sys/module/NAME/holders`, its use count, and
/// the network interfaces its driver runs.
pub fn users(host: &Path, name: &str) -> (Vec<String>, Option<u64>, Vec<String>) {
    let m = below(host, Path::new("/sys/module")).join(normalize(name));
    let mut holders: Vec<String> = std::fs::read_dir(m.join("holders"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    holders.sort();
    let refcnt = std::fs::read_to_string(m.join("refcnt"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let ifaces = interfaces_of(host, name);
    (holders, refcnt, ifaces)
}

/// The network interfaces whose device's driver belongs to module `name`.
pub fn interfaces_of(host: &Path, name: &str) -> Vec<String> {
    let want = normalize(name);
    let net = below(host, Path::new("/sys/class/net"));
    let mut out: Vec<String> = std::fs::read_dir(&net)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path().join("device/driver/module"))
                        .ok()
                        .and_then(|l| l.file_name().map(|f| normalize(&f.to_string_lossy())))
                        .is_some_and(|m| m == want)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The error for a module in use, naming its users.
pub fn in_use(host: &Path, name: &str) -> Error {
    let (holders, refcnt, ifaces) = users(host, name);
    let mut why = Vec::new();
    if !holders.is_empty() {
        why.push(format!("held by the modules {}", holders.join(", ")));
    }
    if !ifaces.is_empty() {
        why.push(format!("driving the interfaces {}", ifaces.join(", ")));
    }
    if let Some(n) = refcnt {
        why.push(format!("use count {n}"));
    }
    let mut e = Error::new(
        Kind::System,
        format!(
            "{name} is in use: {}",
            if why.is_empty() {
                "by something".to_string()
            } else {
                why.join("; ")
            }
        ),
    );
    if !holders.is_empty() {
        e = e.hint(format!(
            "unload those first: rtool rmmod {}",
            holders.join(" ")
        ));
    } else if !ifaces.is_empty() {
        e = e.hint(format!(
            "take them down first: ip link set {} down",
            ifaces.join(" down; ip link set ")
        ));
    }
    e
}

/// The error for a refused load: the kernel's answer in words, and its log lines.
pub fn load_error(
    name: &str,
    path: &Path,
    e: &io::Error,
    log: &[String],
    image_vermagic: Option<&str>,
    running: &str,
) -> Error {
    let said: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(name) || l.contains("module"))
        .collect();
    let (kind, what) = match e.raw_os_error() {
        Some(libc::EINVAL) if said.iter().any(|l| l.contains("invalid for parameter")) => {
            (Kind::Usage, "a parameter value is invalid".to_string())
        }
        Some(libc::ENOEXEC) => (
            Kind::Invalid,
            match image_vermagic {
                Some(v) if !v.starts_with(&format!("{running} ")) && v != running => {
                    format!(
                        "invalid module format: it was built for kernel {}, this is {running}",
                        v.split_whitespace().next().unwrap_or(v)
                    )
                }
                _ => "invalid module format (built for another kernel, or corrupt)".to_string(),
            },
        ),
        Some(libc::EPERM) if !crate::sys::is_root() => {
            (Kind::Missing, "loading modules needs root".to_string())
        }
        Some(libc::EPERM) | Some(libc::EKEYREJECTED) | Some(libc::EKEYEXPIRED) => (
            Kind::System,
            "the kernel refused it: module signature enforcement or lockdown".to_string(),
        ),
        Some(libc::ENOENT) => (
            Kind::Failed,
            "unknown symbols: a dependency is missing or built for another kernel".to_string(),
        ),
        _ => (Kind::System, "the kernel refused it".to_string()),
    };
    let mut err = Error::new(
        kind,
        format!("loading {name} ({}) failed: {what}", path.display()),
    )
    .with_source(io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(0)));
    let mut lines: Vec<String> = said.iter().map(|l| format!("kernel: {l}")).collect();
    if matches!(
        e.raw_os_error(),
        Some(libc::EKEYREJECTED | libc::EKEYEXPIRED | libc::EPERM)
    ) && kind == Kind::System
    {
        lines.push(
            "a module built here is unsigned: sign it with the key the kernel trusts, or boot without module.sig_enforce=1 (with Secure Boot, lockdown enforces it: enroll the key with mokutil)"
                .to_string(),
        );
    }
    if !lines.is_empty() {
        err = err.hint(lines.join("\n"));
    }
    err
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_fnmatch() {
        assert!(glob_match(
            b"pci:v00008086d000010FBsv*sd*bc*sc*i*",
            b"pci:v00008086d000010FBsv00001234sd00005678bc02sc00i00"
        ));
        assert!(!glob_match(
            b"pci:v00008086d000010FBsv*",
            b"pci:v00008086d000010FCsv0"
        ));
        assert!(glob_match(b"net-pf-[0-9]*", b"net-pf-10"));
        assert!(!glob_match(b"net-pf-[!0-9]", b"net-pf-1"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"abc", b"abcd"));
    }

    #[test]
    fn config_and_cmdline() {
        let mut c = Config::default();
        c.parse("# comment\noptions ixgbe allow_unsupported_sfp=1 \\\n  debug=2\nblacklist pcspkr\nalias my-nic ixgbe\ninstall foo /bin/false\n");
        c.add_cmdline("BOOT_IMAGE=/vmlinuz root=ZFS=zroot ixgbe.debug=3 mod-x.p=\"a b\" modprobe.blacklist=nouveau,bar -- ixgbe.x=1");
        assert_eq!(
            c.options_for("ixgbe"),
            ["allow_unsupported_sfp=1", "debug=2", "debug=3"]
        );
        assert_eq!(c.options_for("mod_x"), ["p=a b"]);
        assert_eq!(param_string(&c.options_for("mod_x")), "p=\"a b\"");
        assert!(c.blacklist.contains("pcspkr") && c.blacklist.contains("nouveau"));
        assert_eq!(c.aliases, [("my-nic".to_string(), "ixgbe".to_string())]);
        assert_eq!(c.install.get("foo").map(String::as_str), Some("/bin/false"));
        c.parse("softdep ext4 pre: crc32c post: foo bar\n");
        assert_eq!(
            c.softdeps["ext4"],
            (
                vec!["crc32c".to_string()],
                vec!["foo".to_string(), "bar".to_string()]
            )
        );
    }

    #[test]
    fn config_directories_hide_by_name() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc/modprobe.d");
        let lib = d.path().join("usr/lib/modprobe.d");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("a.conf"), "options m x=lib\n").unwrap();
        std::fs::write(etc.join("a.conf"), "options m x=etc\n").unwrap();
        std::fs::write(lib.join("b.conf"), "options m y=1\n").unwrap();
        std::fs::write(lib.join("c.txt"), "options m z=1\n").unwrap();
        let c = Config::load(d.path());
        assert_eq!(c.options_for("m"), ["x=etc", "y=1"]);
    }

    #[test]
    fn plan_orders_dependencies() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::write(
            m.join("modules.dep"),
            "kernel/drivers/net/ixgbe.ko.zst: kernel/net/xfrm_algo.ko kernel/drivers/net/mdio.ko kernel/lib/dca.ko\nkernel/net/xfrm_algo.ko:\nkernel/drivers/net/mdio.ko:\nkernel/lib/dca.ko:\n",
        )
        .unwrap();
        std::fs::write(
            m.join("modules.alias"),
            "alias pci:v00008086d000010FB* ixgbe\n",
        )
        .unwrap();
        std::fs::write(m.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        let db = ModuleDb::open(m).unwrap();
        let names: Vec<_> = db
            .plan("ixgbe")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["dca", "mdio", "xfrm_algo", "ixgbe"]);
        assert_eq!(
            db.resolve("pci:v00008086d000010FBsv0", &Config::default()),
            ["ixgbe"]
        );
        assert!(db.is_builtin("ext4"));
        assert!(db.plan("nope").is_err());
    }

    #[test]
    fn modinfo_of_a_minimal_elf() {
        // A 64-bit ELF with a section header table: null, .modinfo, .shstrtab.
        let modinfo = b"depends=a,b\0vermagic=6.1.0 SMP mod_unload\0";
        let shstr = b"\0.modinfo\0.shstrtab\0";
        let mut img = vec![0u8; 64];
        img[..4].copy_from_slice(b"\x7fELF");
        img[4] = 2;
        img[5] = 1;
        let mi_off = img.len();
        img.extend_from_slice(modinfo);
        let ss_off = img.len();
        img.extend_from_slice(shstr);
        let shoff = img.len();
        let sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        img.extend(sh(0, 0, 0));
        img.extend(sh(1, mi_off, modinfo.len()));
        img.extend(sh(10, ss_off, shstr.len()));
        img[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        img[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        img[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        img[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        let info = super::modinfo(&img);
        assert_eq!(info["depends"], ["a,b"]);
        assert_eq!(info["vermagic"], ["6.1.0 SMP mod_unload"]);
        // Truncated or hostile offsets give nothing, never a panic.
        assert!(super::modinfo(&img[..100]).is_empty());
        let mut bad = img.clone();
        bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(super::modinfo(&bad).is_empty());
    }

    #[test]
    fn cmdline_words() {
        assert_eq!(split_cmdline("a=\"b c\" d  e=\"\""), ["a=b c", "d", "e="]);
    }
}
