//! What a modules directory and the configuration say: `modules.dep` (the load order),
//! `modules.alias` and `modules.builtin`, the modprobe.d directories and `/proc/cmdline` (the
//! options, aliases, blacklist and soft dependencies).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use super::normalize;
use super::running::{modinfo, read_image};
use crate::ctx::below;
use crate::error::{Error, Result};
use crate::kernel::module_name;

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

/// fnmatch without flags, as kmod matches modules.alias (`fnmatch(pattern, modalias, 0)`):
/// the same matcher as pacman's globs.
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    crate::pkg::glob::matches(p, s)
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
    fn cmdline_words() {
        assert_eq!(split_cmdline("a=\"b c\" d  e=\"\""), ["a=b c", "d", "e="]);
    }
}
