//! A pacman transaction without pacman: install, upgrade, downgrade or reinstall package
//! files into a root so that the root's own pacman cannot tell the difference afterwards.
//!
//! The order of work (libalpm's `_alpm_trans_commit` and `commit_single_pkg`, made
//! crash-safe):
//! 1. the database lock `DBPath/db.lck`, then every package's metadata, then the checks —
//!    dependencies, package conflicts, file conflicts, free space — before anything is
//!    written;
//! 2. PreTransaction hooks;
//! 3. every file of every package written under a temporary name beside its place
//!    ([`crate::archive::extract::stage_name`]), then one `syncfs`: a failure here undoes
//!    the stage and leaves the root as it was;
//! 4. per package: `pre_*` scriptlet; backup files decided (kept, replaced, `.pacnew`); the
//!    staged files renamed into place; `syncfs`; the old entry moved aside, the new database
//!    entry renamed into `local/` (written last, so an entry never names files that are not
//!    there); the old version's files that the new one lacks removed; `post_*` scriptlet;
//! 5. `ldconfig`, PostTransaction hooks.
//!
//! The journal directory `DBPath/rtool-txn/` holds the new entries until they are committed
//! and the old entries between their removal from `local/` and the end: a run that is killed
//! leaves it, and the next run reads it to finish the work (see [`journal`]).

pub mod journal;
pub mod run;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::extract::{self, Package};
use crate::archive::rooted::{self, Existing, Root};
use crate::error::{Error, Kind, Result};
use crate::pkg::alpmhook::{self, Changes, Hook, Op, When};
use crate::pkg::db::Conf;
use crate::pkg::depend::Depend;
use crate::pkg::glob;
use crate::pkg::local::{self, Installed, Validation};
use crate::pkg::{mtree, pkginfo, vercmp};

/// What the caller decided.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Skip dependency checks (`--nodeps`).
    pub nodeps: bool,
    /// `--overwrite` globs: conflicting files that may be replaced.
    pub overwrite: Vec<String>,
    pub no_scriptlets: bool,
    pub no_hooks: bool,
    /// Record new packages as dependencies (`%REASON% 1`).
    pub asdeps: bool,
    /// Set numeric owners (running as root).
    pub owners: bool,
    /// The command line, for the log.
    pub command: String,
}

/// A package file to install and how it was checked.
#[derive(Clone, Debug)]
pub struct Source {
    pub file: PathBuf,
    pub validation: Validation,
}

/// Where the library tells its caller what happens; the caller decides how it is shown.
pub trait Events {
    fn note(&mut self, msg: &str);
    fn warn(&mut self, msg: &str);
    /// Progress through a package's compressed bytes while it is written.
    fn progress(&mut self, _label: &str, _done: u64, _total: u64) {}
    fn progress_done(&mut self) {}
}

/// The root and the database, as the root's `pacman.conf` places them.
pub struct Paths {
    /// The root packages go into (the target, or its `RootDir`).
    pub root: PathBuf,
    /// `DBPath` below the target.
    pub dbpath: PathBuf,
    pub conf: Conf,
}

impl Paths {
    pub fn new(target: &Path) -> Result<Paths> {
        let conf = Conf::read(target)?;
        let root = match &conf.rootdir {
            Some(r) => crate::ctx::below(target, r),
            None => target.to_path_buf(),
        };
        Ok(Paths {
            dbpath: crate::ctx::below(target, &conf.dbpath),
            root,
            conf,
        })
    }

    pub fn local(&self) -> PathBuf {
        self.dbpath.join("local")
    }

    pub fn lock(&self) -> PathBuf {
        self.dbpath.join("db.lck")
    }

    pub fn journal(&self) -> PathBuf {
        self.dbpath.join(journal::DIR)
    }
}

/// A package to install, read up to its first file.
pub struct Target {
    pub src: Source,
    pub info: pkginfo::Info,
    pub name: String,
    pub version: String,
    /// `.MTREE` as stored (gzip), copied into the database.
    pub mtree_raw: Option<Vec<u8>>,
    pub entries: Vec<mtree::Entry>,
    pub files: Vec<Vec<u8>>,
    pub install: Option<Vec<u8>>,
    pub changelog: Option<Vec<u8>>,
    /// The mtimes `.INSTALL` and `.CHANGELOG` keep in the database (pacman -Qkk checks them).
    pub meta_times: [(i64, u32); 2],
    pub backup: Vec<Vec<u8>>,
    /// The version it replaces.
    pub old: Option<Installed>,
}

impl Target {
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// `installed`, `upgraded`, `downgraded` or `reinstalled`, as pacman logs it.
    pub fn verb(&self) -> &'static str {
        match &self.old {
            None => "installed",
            Some(o) => match vercmp::vercmp(&self.version, &o.version) {
                std::cmp::Ordering::Greater => "upgraded",
                std::cmp::Ordering::Less => "downgraded",
                std::cmp::Ordering::Equal => "reinstalled",
            },
        }
    }

    fn provides(&self) -> impl Iterator<Item = &str> {
        self.info.all("provides")
    }

    /// Bytes the new files take (from `.MTREE`).
    pub fn size(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == mtree::Kind::File)
            .filter_map(|e| e.size)
            .sum()
    }
}

/// Reads `.PKGINFO`, `.MTREE`, `.INSTALL` and `.CHANGELOG`: they come before the first file.
pub fn load(src: Source) -> Result<Target> {
    let file = src.file.clone();
    let ctx = |e: Error| e.context(file.display().to_string());
    let mut pkginfo_raw = None;
    let mut mtree_raw = None;
    let mut install = None;
    let mut changelog = None;
    let mut meta_times = [(0, 0); 2];
    Package::open(&file)
        .map_err(ctx)?
        .for_each(|m, data| {
            if !m.is_metadata() {
                return Ok(false);
            }
            let name = m.raw_name.strip_prefix(b"./").unwrap_or(&m.raw_name);
            let slot = match name {
                b".PKGINFO" => &mut pkginfo_raw,
                b".MTREE" => &mut mtree_raw,
                b".INSTALL" => {
                    meta_times[0] = m.mtime;
                    &mut install
                }
                b".CHANGELOG" => {
                    meta_times[1] = m.mtime;
                    &mut changelog
                }
                _ => return Ok(true),
            };
            let mut v = Vec::new();
            data.take(64 << 20).read_to_end(&mut v).map_err(|e| {
                Error::invalid(format!("{} cannot be read", m.name())).with_source(e)
            })?;
            *slot = Some(v);
            Ok(true)
        })
        .map_err(ctx)?;
    let info = pkginfo::parse(
        &pkginfo_raw.ok_or_else(|| ctx(Error::invalid("no .PKGINFO: not a pacman package")))?,
    )
    .map_err(|e| ctx(e.context(".PKGINFO")))?;
    info.validate_pkginfo().map_err(ctx)?;
    let name = info.get("pkgname").unwrap_or_default().to_string();
    let version = info.get("pkgver").unwrap_or_default().to_string();
    if name.starts_with(['-', '.'])
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._+-".contains(&b))
    {
        return Err(ctx(Error::invalid(format!(
            ".PKGINFO: {name:?} is not a valid package name"
        ))));
    }
    if version.contains(['/', ' ', '\n']) {
        return Err(ctx(Error::invalid(format!(
            ".PKGINFO: {version:?} is not a valid version"
        ))));
    }
    let entries = match &mtree_raw {
        Some(gz) => mtree::parse_gz(gz).map_err(|e| ctx(e.context(".MTREE")))?,
        None => scan_entries(&file)?,
    };
    let files = local::file_list(&entries);
    let backup = info
        .all("backup")
        .filter(|b| !b.is_empty())
        .map(|b| b.trim_start_matches('/').as_bytes().to_vec())
        .collect();
    Ok(Target {
        src,
        name,
        version,
        info,
        mtree_raw,
        entries,
        files,
        install,
        changelog,
        meta_times,
        backup,
        old: None,
    })
}

/// A package without `.MTREE` (built before pacman 4.1): its file list comes from the archive.
fn scan_entries(file: &Path) -> Result<Vec<mtree::Entry>> {
    let mut out = Vec::new();
    Package::open(file)?.for_each(|m, _| {
        if !m.is_metadata() {
            if let Some(rel) = rooted::sanitize(&m.raw_name)? {
                out.push(mtree::Entry {
                    path: rel,
                    kind: if m.kind == extract::EntryKind::Dir {
                        mtree::Kind::Dir
                    } else {
                        mtree::Kind::File
                    },
                    uid: Some(m.uid),
                    gid: Some(m.gid),
                    mode: Some(m.mode),
                    time: Some(m.mtime),
                    size: Some(m.size),
                    sha256: None,
                    md5: None,
                    link: None,
                    line: 0,
                });
            }
        }
        Ok(true)
    })?;
    Ok(out)
}

/// What a backup file or a `NoUpgrade` path becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The new file replaces what is there.
    Replace,
    /// What is there stays; the new file is dropped (it equals the original).
    Keep,
    /// What is there stays; the new file goes beside it as `.pacnew`.
    Pacnew,
}

/// libalpm's decision for a backup file that exists on disk, from three md5s: the file on
/// disk, the package's new file, and the one recorded when the old version was installed.
pub fn backup_place(local: &str, new: &str, orig: Option<&str>) -> Place {
    if local == new {
        Place::Replace
    } else if orig == Some(new) {
        Place::Keep
    } else if orig == Some(local) {
        Place::Replace
    } else {
        Place::Pacnew
    }
}

/// The checked plan: targets in install order, and what each removes.
pub struct Plan {
    pub targets: Vec<Target>,
    /// Per target, the old version's paths the new one lacks and no one else owns
    /// (deepest first).
    pub removes: Vec<Vec<Vec<u8>>>,
    pub hooks: Vec<Hook>,
    pub changes: Changes,
    /// The local database as it was (hooks' `Depends` are checked against it).
    pub installed: Vec<Installed>,
}

/// Everything found wrong before writing, for one refusal.
fn refuse(title: &str, lines: &[String], hint: &str) -> Error {
    let mut msg = title.to_string();
    for l in lines.iter().take(50) {
        msg.push_str("\n  ");
        msg.push_str(l);
    }
    if lines.len() > 50 {
        msg.push_str(&format!(
            "\n  {} and {} more",
            crate::text::glyph("…"),
            lines.len() - 50
        ));
    }
    Error::new(Kind::Refused, msg).hint(hint)
}

/// Matches targets with what is installed, orders them, and runs every check. Nothing is
/// written.
pub fn plan(
    paths: &Paths,
    mut targets: Vec<Target>,
    installed: Vec<Installed>,
    pending: &HashMap<String, Vec<Vec<u8>>>,
    opts: &Options,
    ev: &mut dyn Events,
) -> Result<Plan> {
    let mut seen = HashSet::new();
    for t in &targets {
        if !seen.insert(t.name.clone()) {
            return Err(Error::usage(format!(
                "{} is given twice: install one version at a time",
                t.name
            )));
        }
        if glob::last_match(
            paths.conf.ignorepkg.iter().map(String::as_str),
            t.name.as_bytes(),
        ) == Some(true)
        {
            ev.warn(&format!(
                "{} is in IgnorePkg (pacman.conf): installing it because it was named",
                t.name
            ));
        }
    }
    for t in &mut targets {
        t.old = installed.iter().find(|i| i.name == t.name).cloned();
    }
    order_by_depends(&mut targets);
    let replaced: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let staying: Vec<&Installed> = installed
        .iter()
        .filter(|i| !replaced.contains(i.name.as_str()))
        .collect();

    if !opts.nodeps {
        let mut missing = Vec::new();
        let satisfied = |d: &Depend| {
            staying
                .iter()
                .any(|i| d.satisfied_by(&i.name, &i.version, i.provides.iter().map(String::as_str)))
                || targets
                    .iter()
                    .any(|t| d.satisfied_by(&t.name, &t.version, t.provides()))
        };
        for t in &targets {
            for d in t.info.all("depend") {
                if !satisfied(&Depend::parse(d)) {
                    missing.push(format!("{d} (required by {})", t.name));
                }
            }
        }
        for i in &staying {
            for d in &i.depends {
                let dep = Depend::parse(d);
                // Only what this transaction changes can break an installed package.
                let touched = targets.iter().any(|t| {
                    t.name == dep.name
                        || t.provides().any(|p| Depend::parse(p).name == dep.name)
                        || t.old.as_ref().is_some_and(|o| {
                            o.provides.iter().any(|p| Depend::parse(p).name == dep.name)
                        })
                });
                if touched && !satisfied(&dep) {
                    missing.push(format!("{d} (required by installed {})", i.name));
                }
            }
        }
        if !missing.is_empty() {
            return Err(refuse(
                "unsatisfied dependencies; nothing was changed:",
                &missing,
                "install what is missing in the same command, or --nodeps to install anyway",
            ));
        }
    }

    // Package conflicts, both ways, provisions included.
    let mut conflicts = Vec::new();
    for t in &targets {
        for c in t.info.all("conflict") {
            let d = Depend::parse(c);
            for i in &staying {
                if i.name != t.name
                    && d.satisfied_by(&i.name, &i.version, i.provides.iter().map(String::as_str))
                {
                    conflicts.push(format!("{} conflicts with installed {}", t.name, i.name));
                }
            }
            for u in &targets {
                if u.name != t.name && d.satisfied_by(&u.name, &u.version, u.provides()) {
                    conflicts.push(format!("{} conflicts with {}", t.name, u.name));
                }
            }
        }
        for i in &staying {
            for c in &i.conflicts {
                if Depend::parse(c).satisfied_by(&t.name, &t.version, t.provides()) {
                    conflicts.push(format!("installed {} conflicts with {}", i.name, t.name));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(refuse(
            "conflicting packages; nothing was changed:",
            &conflicts,
            "remove the conflicting package first (from a working pacman, or --root with pacman -R)",
        ));
    }

    // Who owns what after the transaction: the packages that stay and the new versions.
    let mut owner: HashMap<&[u8], &str> = HashMap::new();
    for i in &staying {
        for f in &i.files {
            owner.insert(f.as_slice(), i.name.as_str());
        }
    }
    let mut root = Root::open(&paths.root)?;
    let mut file_conflicts = Vec::new();
    let mut in_targets: HashMap<&[u8], &str> = HashMap::new();
    for t in &targets {
        let old: HashSet<&[u8]> = t
            .old
            .iter()
            .flat_map(|o| o.files.iter().map(Vec::as_slice))
            .collect();
        let ours: HashSet<&[u8]> = pending
            .get(&t.name)
            .into_iter()
            .flatten()
            .map(Vec::as_slice)
            .collect();
        // A directory found absent: nothing below it can exist, and the sorted list holds
        // its contents right after it, so they need no look.
        let mut absent: Option<&[u8]> = None;
        for f in &t.files {
            let is_dir = f.ends_with(b"/");
            let shown = String::from_utf8_lossy(f);
            let key = f.as_slice();
            let under_absent = absent.is_some_and(|a| key.starts_with(a));
            if !under_absent {
                absent = None;
            }
            if !is_dir {
                if let Some(other) = in_targets.insert(key, t.name.as_str()) {
                    file_conflicts.push(format!("{shown} is in both {other} and {}", t.name));
                    continue;
                }
            }
            // pacman matches --overwrite against the relative path and the path below its
            // root; the path as the system itself sees it (`/usr/lib/…`) counts too.
            let overwrite = || {
                let pats = || opts.overwrite.iter().map(String::as_str);
                let bare = key.strip_suffix(b"/").unwrap_or(key);
                let abs = [b"/".as_slice(), bare].concat();
                let rooted = [paths.root.as_os_str().as_bytes(), abs.as_slice()].concat();
                [key, abs.as_slice(), rooted.as_slice()]
                    .iter()
                    .any(|s| glob::last_match(pats(), s) == Some(true))
            };
            if !is_dir {
                if let Some(o) = owner.get(key) {
                    if !overwrite() {
                        file_conflicts.push(format!(
                            "{}: /{shown} exists in filesystem (owned by {o})",
                            t.name
                        ));
                    }
                    continue;
                }
            }
            let rel = Path::new(OsStr::from_bytes(key.strip_suffix(b"/").unwrap_or(key)));
            let found = if under_absent {
                Existing::Nothing
            } else {
                root.existing(rel).map_err(|e| Error::path(e, rel))?
            };
            if is_dir && found == Existing::Nothing && absent.is_none() {
                absent = Some(key);
            }
            let clash = match found {
                Existing::Nothing => false,
                Existing::Dir => !is_dir,
                Existing::Symlink if is_dir => !root.is_dir_following(rel),
                // An unowned file where the package has a backup file is not a conflict:
                // it is kept, and the package's version goes beside it as .pacnew.
                _ if !is_dir && t.backup.iter().any(|b| b == key) => false,
                _ => is_dir || !(old.contains(key) || ours.contains(key)),
            };
            if clash && !overwrite() {
                let what = if found == Existing::Dir {
                    "a directory "
                } else if is_dir {
                    "a file "
                } else {
                    ""
                };
                file_conflicts.push(format!(
                    "{}: /{shown} exists in filesystem{}",
                    t.name,
                    if what.is_empty() {
                        String::new()
                    } else {
                        format!(" as {what}where the package has another type")
                    }
                ));
            }
        }
    }
    if !file_conflicts.is_empty() {
        return Err(refuse(
            "conflicting files; nothing was changed:",
            &file_conflicts,
            "--overwrite GLOB replaces files that match it (as pacman's --overwrite)",
        ));
    }

    // What each upgrade leaves behind for removal: the old paths the new version lacks and
    // no other package owns, deepest first.
    let mut all_new: HashMap<&[u8], ()> = HashMap::new();
    for t in &targets {
        for f in &t.files {
            all_new.insert(f.as_slice(), ());
        }
    }
    let mut dir_owned: HashSet<&[u8]> = HashSet::new();
    for i in &staying {
        for f in i.files.iter().filter(|f| f.ends_with(b"/")) {
            dir_owned.insert(f.as_slice());
        }
    }
    let mut removes = Vec::new();
    let mut changes = Changes::default();
    for t in &targets {
        let mut r: Vec<Vec<u8>> = Vec::new();
        let old_files: HashSet<&[u8]> = t
            .old
            .iter()
            .flat_map(|o| o.files.iter().map(Vec::as_slice))
            .collect();
        if let Some(o) = &t.old {
            let new: HashSet<&[u8]> = t.files.iter().map(Vec::as_slice).collect();
            for f in o.files.iter().rev() {
                if new.contains(f.as_slice()) {
                    continue;
                }
                changes.paths.push((f.clone(), Op::Remove));
                let noupgrade = paths.conf.noupgrade.iter().map(String::as_str);
                if all_new.contains_key(f.as_slice())
                    || glob::last_match(noupgrade, f) == Some(true)
                    || owner.contains_key(f.as_slice())
                    || dir_owned.contains(f.as_slice())
                {
                    continue;
                }
                r.push(f.clone());
            }
        }
        for f in &t.files {
            let op = if old_files.contains(f.as_slice()) {
                Op::Upgrade
            } else {
                Op::Install
            };
            changes.paths.push((f.clone(), op));
        }
        changes.packages.push((
            t.name.clone(),
            if t.old.is_some() {
                Op::Upgrade
            } else {
                Op::Install
            },
        ));
        removes.push(r);
    }

    // Space: every new file is written before any old one goes.
    let need: u64 = targets.iter().map(Target::size).sum();
    if let Ok(space) = crate::sys::space(&paths.root) {
        if need > space.avail {
            return Err(Error::new(
                Kind::Refused,
                format!(
                    "not enough space: the packages need {}, {} has {} free; nothing was changed",
                    crate::units::human(need),
                    paths.root.display(),
                    crate::units::human(space.avail)
                ),
            )
            .hint("free space first (old kernels in /boot, pacman's cache: paccache -rk1)"));
        }
    }

    let hooks = if opts.no_hooks {
        Vec::new()
    } else {
        let mut dirs = vec![PathBuf::from("/usr/share/libalpm/hooks")];
        dirs.extend(paths.conf.hookdirs.iter().cloned());
        alpmhook::load(&paths.root, &dirs)?
    };
    Ok(Plan {
        targets,
        removes,
        hooks,
        changes,
        installed,
    })
}

/// Puts a target after the targets it depends on (a stable sort otherwise).
fn order_by_depends(targets: &mut Vec<Target>) {
    let mut out: Vec<Target> = Vec::with_capacity(targets.len());
    let mut left: Vec<Target> = std::mem::take(targets);
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            t.info.all("depend").all(|d| {
                let d = Depend::parse(d);
                !left
                    .iter()
                    .any(|u| u.name != t.name && d.satisfied_by(&u.name, &u.version, u.provides()))
            })
        });
        // A dependency circle keeps the given order.
        out.push(left.remove(ready.unwrap_or(0)));
    }
    *targets = out;
}

/// The hooks of `plan` that run at `when`, with their targets.
pub fn hooks_for(plan: &Plan, when: When) -> Vec<(&Hook, Vec<Vec<u8>>)> {
    plan.hooks
        .iter()
        .filter(|h| h.when == when)
        .filter_map(|h| h.triggered(&plan.changes).map(|t| (h, t)))
        .collect()
}

/// The scriptlet functions a target runs, in order, with their arguments.
pub fn scriptlet_calls(t: &Target) -> Vec<(&'static str, Vec<String>)> {
    let Some(script) = &t.install else {
        return Vec::new();
    };
    let (pre, post, args) = match &t.old {
        None => ("pre_install", "post_install", vec![t.version.clone()]),
        Some(o) => (
            "pre_upgrade",
            "post_upgrade",
            vec![t.version.clone(), o.version.clone()],
        ),
    };
    // pacman runs a function only when its name occurs in the file.
    let has = |f: &str| script.windows(f.len()).any(|w| w == f.as_bytes());
    [pre, post]
        .into_iter()
        .filter(|f| has(f))
        .map(|f| (f, args.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_decisions_follow_libalpm() {
        // Unchanged on disk since the old version: the new one replaces it.
        assert_eq!(backup_place("a", "b", Some("a")), Place::Replace);
        // Already what the package brings.
        assert_eq!(backup_place("b", "b", Some("a")), Place::Replace);
        // The package did not change it, the user did: keep the user's.
        assert_eq!(backup_place("u", "a", Some("a")), Place::Keep);
        // Both changed: the new one goes beside it.
        assert_eq!(backup_place("u", "b", Some("a")), Place::Pacnew);
        // No record (a file that was not a backup file, or a fresh install over a file).
        assert_eq!(backup_place("u", "b", None), Place::Pacnew);
    }
}
