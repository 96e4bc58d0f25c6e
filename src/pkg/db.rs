//! pacman's own files on an installed system: `pacman.conf`, the local database
//! (`local/NAME-VERSION/desc`), the sync databases (`sync/REPO.db`), and what a running pacman
//! was asked to do (its command line).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::paths::below;
use crate::pkg::name;
use crate::pkg::syncdb::{self, DbEntry};

/// Where pacman keeps things and which repositories it reads, as `pacman.conf` says (paths as
/// the system itself sees them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    pub dbpath: PathBuf,
    pub cachedirs: Vec<PathBuf>,
    /// The repositories in the order pacman searches them.
    pub repos: Vec<String>,
    /// Where pacman reads user hooks: `HookDir` lines, else `/etc/pacman.d/hooks` (a `HookDir`
    /// replaces that default).
    pub hookdirs: Vec<PathBuf>,
    /// `RootDir`, when set.
    pub rootdir: Option<PathBuf>,
    /// `LogFile` [default: `/var/log/pacman.log`].
    pub logfile: PathBuf,
    /// `GPGDir`, pacman's own GnuPG keyring [default: `/etc/pacman.d/gnupg`].
    pub gpgdir: PathBuf,
    /// `NoExtract`, `NoUpgrade` and `IgnorePkg` patterns, in file order.
    pub noextract: Vec<String>,
    pub noupgrade: Vec<String>,
    pub ignorepkg: Vec<String>,
}

impl Conf {
    /// Reads `pacman.conf` as pacman's ini parser does: `#` starts a comment, `[name]` a
    /// section, every section but `[options]` is a repository. `Include`d files only hold
    /// servers, so they are not read.
    pub fn parse(text: &str) -> Conf {
        let mut dbpath = None;
        let mut cachedirs: Vec<PathBuf> = Vec::new();
        let mut repos = Vec::new();
        let mut hookdirs: Vec<PathBuf> = Vec::new();
        let (mut rootdir, mut logfile, mut gpgdir) = (None, None, None);
        let (mut noextract, mut noupgrade, mut ignorepkg) = (Vec::new(), Vec::new(), Vec::new());
        let mut options = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                options = s == "options";
                if !options && !repos.iter().any(|r| r == s) {
                    repos.push(s.to_string());
                }
                continue;
            }
            match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("DBPath", v)) if options => dbpath = Some(PathBuf::from(v)),
                Some(("CacheDir", v)) if options => {
                    cachedirs.extend(v.split_whitespace().map(PathBuf::from))
                }
                Some(("HookDir", v)) if options => {
                    hookdirs.extend(v.split_whitespace().map(PathBuf::from))
                }
                Some(("RootDir", v)) if options => rootdir = Some(PathBuf::from(v)),
                Some(("LogFile", v)) if options => logfile = Some(PathBuf::from(v)),
                Some(("GPGDir", v)) if options => gpgdir = Some(PathBuf::from(v)),
                Some(("NoExtract", v)) if options => {
                    noextract.extend(v.split_whitespace().map(String::from))
                }
                Some(("NoUpgrade", v)) if options => {
                    noupgrade.extend(v.split_whitespace().map(String::from))
                }
                Some(("IgnorePkg", v)) if options => {
                    ignorepkg.extend(v.split_whitespace().map(String::from))
                }
                _ => {}
            }
        }
        if cachedirs.is_empty() {
            cachedirs.push(PathBuf::from("/var/cache/pacman/pkg"));
        }
        if hookdirs.is_empty() {
            hookdirs.push(PathBuf::from("/etc/pacman.d/hooks"));
        }
        // As pacman: without DBPath and LogFile, both sit below RootDir.
        let under_root = |p: &str| match &rootdir {
            Some(r) => Path::new(r).join(p),
            None => Path::new("/").join(p),
        };
        Conf {
            dbpath: dbpath.unwrap_or_else(|| under_root("var/lib/pacman")),
            cachedirs,
            repos,
            hookdirs,
            logfile: logfile.unwrap_or_else(|| under_root("var/log/pacman.log")),
            // Unlike DBPath, GPGDir does not follow RootDir.
            gpgdir: gpgdir.unwrap_or_else(|| PathBuf::from("/etc/pacman.d/gnupg")),
            rootdir,
            noextract,
            noupgrade,
            ignorepkg,
        }
    }

    /// `<root>/etc/pacman.conf`; pacman's defaults when there is none.
    pub fn read(root: &Path) -> Result<Conf> {
        let p = below(root, Path::new("/etc/pacman.conf"));
        match std::fs::read(&p) {
            Ok(b) => Ok(Conf::parse(&String::from_utf8_lossy(&b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Conf::parse("")),
            Err(e) => Err(Error::path(e, &p)),
        }
    }
}

/// Calls `f(KEY, value)` for every value line of a database `desc`: `%KEY%` lines open a
/// section, its values follow one per line.
pub fn fields<'a>(text: &'a str, mut f: impl FnMut(&'a str, &'a str)) {
    let mut key = "";
    for line in text.lines() {
        if line.len() > 2 && line.starts_with('%') && line.ends_with('%') {
            key = line;
        } else if !line.is_empty() {
            f(key, line);
        }
    }
}

/// An installed package, from the local database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Local {
    pub name: String,
    pub version: String,
    pub depends: Vec<String>,
    /// Its directory in the local database.
    pub dir: PathBuf,
}

/// The installed packages whose name `want` accepts, read from `<dbdir>/local`, in directory
/// order; the name is taken from the directory (`NAME-PKGVER-PKGREL`) so that only those
/// `desc` files are read.
pub fn installed(dbdir: &Path, want: impl Fn(&str) -> bool) -> Result<Vec<Local>> {
    let local = dbdir.join("local");
    let rd = match std::fs::read_dir(&local) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::path(e, &local)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let dir_name = e.file_name().to_string_lossy().into_owned();
        let name = dir_name.rsplitn(3, '-').nth(2).unwrap_or("");
        if name.is_empty() || !want(name) {
            continue;
        }
        let desc = e.path().join("desc");
        let text = std::fs::read_to_string(&desc).map_err(|e| Error::path(e, &desc))?;
        let mut p = Local {
            dir: e.path(),
            ..Local::default()
        };
        fields(&text, |k, v| match k {
            "%NAME%" => p.name = v.to_string(),
            "%VERSION%" => p.version = v.to_string(),
            "%DEPENDS%" => p.depends.push(v.to_string()),
            _ => {}
        });
        if p.name.is_empty() || p.version.is_empty() {
            return Err(Error::invalid(format!(
                "{}: no %NAME% or %VERSION%",
                desc.display()
            )));
        }
        out.push(p);
    }
    Ok(out)
}

/// The entries of the sync databases for `names`: for each, the first repository (in
/// pacman.conf's order) that has it, as pacman picks it. A repository whose database cannot
/// be read is reported in the second list and skipped.
pub fn sync_entries(dbdir: &Path, repos: &[String], names: &[&str]) -> (Vec<DbEntry>, Vec<Error>) {
    let mut found: Vec<DbEntry> = Vec::new();
    let mut errors = Vec::new();
    for repo in repos {
        if names.iter().all(|n| found.iter().any(|f| f.name == *n)) {
            break;
        }
        let p = dbdir.join("sync").join(format!("{repo}.db"));
        let entries = match std::fs::read(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(Error::path(e, &p)),
            Ok(bytes) => syncdb::read_db(&bytes).map_err(|e| e.context(p.display().to_string())),
        };
        match entries {
            Ok(v) => {
                for e in v {
                    if names.contains(&e.name.as_str()) && !found.iter().any(|f| f.name == e.name) {
                        found.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (found, errors)
}

/// The package files a pacman command line installs (`pacman -U FILE…`, URLs included), as
/// given; `None` when `cmdline` (NUL-separated, as in `/proc/PID/cmdline`) is not pacman's or
/// not an `-U`. `rtool install FILE…` counts as an `-U`. Other arguments never parse as
/// package file names, so they need no sorting out.
pub fn upgrade_files(cmdline: &[u8]) -> Option<Vec<String>> {
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(String::from_utf8_lossy)
        .peekable();
    let argv0 = args.next()?;
    let mut upgrade = false;
    match argv0.rsplit('/').next() {
        Some("pacman") => {}
        Some("rtool") if args.peek().is_some_and(|a| a == "install") => upgrade = true,
        _ => return None,
    }
    let mut files = Vec::new();
    let mut options = true;
    for a in args {
        if options && a == "--" {
            options = false;
        } else if options && a.starts_with("--") {
            upgrade |= a == "--upgrade";
        } else if options && a.starts_with('-') {
            upgrade |= a.contains('U');
        } else if name::parse(a.rsplit('/').next().unwrap_or("")).is_ok() {
            files.push(a.into_owned());
        }
    }
    upgrade.then_some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_options_and_repositories_in_order() {
        let c = Conf::parse(
            "#[options]\n[options]\nDBPath = /srv/db/ # moved\nCacheDir = /a /b\nCacheDir=/c\n\
             HoldPkg = pacman\n[core-testing]\nInclude = /etc/pacman.d/mirrorlist\n[core]\n[extra]\n",
        );
        assert_eq!(c.dbpath, Path::new("/srv/db/"));
        assert_eq!(
            c.cachedirs,
            [Path::new("/a"), Path::new("/b"), Path::new("/c")]
        );
        assert_eq!(c.repos, ["core-testing", "core", "extra"]);
        assert_eq!(c.hookdirs, [Path::new("/etc/pacman.d/hooks")]);
        let d = Conf::parse("");
        assert_eq!(d.dbpath, Path::new("/var/lib/pacman"));
        assert_eq!(d.cachedirs, [Path::new("/var/cache/pacman/pkg")]);
        assert_eq!(d.logfile, Path::new("/var/log/pacman.log"));
        let n = Conf::parse(
            "[options]\nNoExtract = usr/share/doc/* !usr/share/doc/keep\nNoUpgrade = etc/x\n\
             IgnorePkg = linux linux-headers\nRootDir = /alt\n",
        );
        assert_eq!(n.noextract, ["usr/share/doc/*", "!usr/share/doc/keep"]);
        assert_eq!(n.noupgrade, ["etc/x"]);
        assert_eq!(n.ignorepkg, ["linux", "linux-headers"]);
        assert_eq!(n.dbpath, Path::new("/alt/var/lib/pacman"));
        // GPGDir holds configuration: RootDir does not move it.
        assert_eq!(n.gpgdir, Path::new("/etc/pacman.d/gnupg"));
        assert_eq!(
            Conf::parse("[options]\nGPGDir = /srv/gnupg/\n").gpgdir,
            Path::new("/srv/gnupg/")
        );
        let h =
            Conf::parse("[options]\nHookDir = /etc/site-hooks/\n[core]\nHookDir = /not/options\n");
        assert_eq!(h.hookdirs, [Path::new("/etc/site-hooks/")]);
    }

    #[test]
    fn local_packages_by_directory_name() {
        let d = tempfile::tempdir().unwrap();
        let local = d.path().join("local");
        for (dir, desc) in [
            ("linux-6.1.12.arch1-1", "%NAME%\nlinux\n\n%VERSION%\n6.1.12.arch1-1\n\n%DEPENDS%\ncoreutils\nkmod\n\n"),
            ("zfs-linux-2.1.9_6.1.12.arch1.1-1", "%NAME%\nzfs-linux\n\n%VERSION%\n2.1.9_6.1.12.arch1.1-1\n\n%DEPENDS%\nlinux=6.1.12.arch1-1\n"),
            ("bash-5.2-1", "garbage that is never read"),
        ] {
            std::fs::create_dir_all(local.join(dir)).unwrap();
            std::fs::write(local.join(dir).join("desc"), desc).unwrap();
        }
        let mut v = installed(d.path(), |n| {
            n.starts_with("linux") || n.starts_with("zfs-")
        })
        .unwrap();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].name.as_str(), v[0].version.as_str()),
            ("linux", "6.1.12.arch1-1")
        );
        assert_eq!(v[0].depends, ["coreutils", "kmod"]);
        assert_eq!(v[1].depends, ["linux=6.1.12.arch1-1"]);
        assert_eq!(v[1].dir, local.join("zfs-linux-2.1.9_6.1.12.arch1.1-1"));
        assert!(installed(&d.path().join("none"), |_| true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn pacman_upgrade_command_lines() {
        let cl = |args: &[&str]| args.join("\0").into_bytes();
        assert_eq!(
            upgrade_files(&cl(&[
                "pacman",
                "-U",
                "/tmp/linux-6.1.12.arch1-1-x86_64.pkg.tar.zst",
                "--noconfirm"
            ])),
            Some(vec![
                "/tmp/linux-6.1.12.arch1-1-x86_64.pkg.tar.zst".to_string()
            ])
        );
        assert_eq!(
            upgrade_files(&cl(&[
                "/usr/bin/pacman",
                "--root",
                "/mnt",
                "--upgrade",
                "https://a/b/zfs-dkms-2.1.10-1-x86_64.pkg.tar.zst",
                "notes.txt"
            ])),
            Some(vec![
                "https://a/b/zfs-dkms-2.1.10-1-x86_64.pkg.tar.zst".to_string()
            ])
        );
        assert_eq!(
            upgrade_files(&cl(&["pacman", "-Udd", "--", "x-1-1-any.pkg.tar"])).map(|v| v.len()),
            Some(1)
        );
        assert_eq!(upgrade_files(&cl(&["pacman", "-Syu", "linux"])), None);
        assert_eq!(
            upgrade_files(&cl(&[
                "/usr/local/bin/rtool",
                "install",
                "--root",
                "/mnt",
                "linux-6.1.12.arch1-1-x86_64.pkg.tar.zst"
            ])),
            Some(vec!["linux-6.1.12.arch1-1-x86_64.pkg.tar.zst".to_string()])
        );
        assert_eq!(
            upgrade_files(&cl(&["rtool", "extract", "x-1-1-any.pkg.tar"])),
            None
        );
        assert_eq!(
            upgrade_files(&cl(&[
                "bash",
                "-U",
                "linux-6.1.12.arch1-1-x86_64.pkg.tar.zst"
            ])),
            None
        );
        assert_eq!(upgrade_files(b""), None);
    }
}
