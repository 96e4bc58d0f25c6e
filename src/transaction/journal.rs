//! The database lock and the journal that lets a rerun finish an interrupted transaction.
//!
//! `DBPath/db.lck` is created as pacman creates it (`O_CREAT|O_EXCL`, mode 0000), with
//! `rtool install PID` inside so that a lock left by a killed rtool can be told from one held
//! by pacman. Only that case is taken over, and it is said; any other lock is reported and
//! left alone.
//!
//! `DBPath/rtool-txn/` (outside `local/`, where pacman never looks) holds:
//! - `NAME-VERSION/`: a new entry, until it is renamed into `local/`; its `files` lists what
//!   the interrupted run may have put on disk, so a rerun does not see those files as
//!   conflicts;
//! - `old/NAME-VERSION/`: an old entry between its removal from `local/` and the end of its
//!   package's commit. A rerun treats it as installed (it finishes the upgrade), or, when the
//!   new entry already reached `local/`, removes what the old version left and drops it.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Kind, Result};
use crate::pkg::local::{self, Installed};
use crate::transaction::{Events, Paths};

pub const DIR: &str = "rtool-txn";
const OURS: &str = "rtool install ";

/// The database lock, removed when dropped.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes `DBPath/db.lck`. `proc` is the running system's `/proc` (to tell whether the
    /// rtool that left a lock is still alive).
    pub fn take(paths: &Paths, proc: &Path, ev: &mut dyn Events) -> Result<Lock> {
        let path = paths.lock();
        std::fs::create_dir_all(&paths.dbpath).map_err(|e| Error::path(e, &paths.dbpath))?;
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o000)
                .open(&path)
        };
        let mut f = match create() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = text
                    .strip_prefix(OURS)
                    .and_then(|p| p.trim().parse::<u32>().ok());
                match pid {
                    Some(pid) if !proc.join(pid.to_string()).exists() => {
                        ev.warn(&format!(
                            "{} was left by an interrupted rtool install (pid {pid}, gone): taking it over",
                            path.display()
                        ));
                        std::fs::remove_file(&path).map_err(|e| Error::path(e, &path))?;
                        create().map_err(|e| Error::path(e, &path))?
                    }
                    Some(pid) => {
                        return Err(Error::new(
                            Kind::Refused,
                            format!("{}: rtool install (pid {pid}) is working on this system", path.display()),
                        )
                        .hint("wait for it to finish"))
                    }
                    None => {
                        return Err(Error::new(
                            Kind::Refused,
                            format!(
                                "{} exists: pacman is working on this system, or was stopped in the middle; nothing was changed",
                                path.display()
                            ),
                        )
                        .hint(format!(
                            "if no pacman runs on it (check: fuser {0}), remove the stale lock: rm {0}",
                            path.display()
                        )))
                    }
                }
            }
            Err(e) => return Err(Error::path(e, &path)),
        };
        let _ = writeln!(f, "{OURS}{}", std::process::id());
        let _ = f.sync_all();
        Ok(Lock { path })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What an interrupted run left, read back.
#[derive(Default)]
pub struct Recovered {
    /// Per package name: the files its uncommitted new entry lists.
    pub pending: HashMap<String, Vec<Vec<u8>>>,
    /// Old entries waiting in `old/` whose package has no entry in `local/`: still installed.
    pub waiting_old: Vec<Installed>,
}

/// Reads the journal; finishes the packages whose new entry reached `local/` (their old
/// entry's leftovers are removed) and returns the rest. `installed` is `local/` as read.
/// With `dry_run`, nothing is changed and nothing is said: the pending file lists are read
/// so that a plan shows what the real run would do.
pub fn recover(
    paths: &Paths,
    installed: &[Installed],
    dry_run: bool,
    ev: &mut dyn Events,
) -> Result<Recovered> {
    let dir = paths.journal();
    let mut out = Recovered::default();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in local::read_all(&dir)? {
        out.pending.insert(e.name.clone(), e.files.clone());
    }
    let old = local::read_all(&dir.join("old"))?;
    if dry_run {
        out.waiting_old = old
            .into_iter()
            .filter(|o| !installed.iter().any(|i| i.name == o.name))
            .collect();
        return Ok(out);
    }
    if !out.pending.is_empty() || !old.is_empty() {
        let mut names: Vec<&str> = out.pending.keys().map(String::as_str).collect();
        names.extend(old.iter().map(|o| o.name.as_str()));
        names.sort();
        names.dedup();
        ev.warn(&format!(
            "an interrupted install was found ({}): this run finishes it",
            names.join(", ")
        ));
    }
    // What the installed packages own stays; built once for every finished package.
    let keep: HashSet<&[u8]> = installed
        .iter()
        .flat_map(|i| i.files.iter().map(Vec::as_slice))
        .collect();
    let mut root = None;
    for o in old {
        match installed.iter().find(|i| i.name == o.name) {
            Some(now) => {
                // The new entry was committed: remove what only the old version had.
                let root = match &mut root {
                    Some(r) => r,
                    None => root.insert(crate::archive::rooted::Root::open(&paths.root)?),
                };
                let left: Vec<Vec<u8>> = o
                    .files
                    .iter()
                    .rev()
                    .filter(|f| !keep.contains(f.as_slice()))
                    .cloned()
                    .collect();
                super::run::remove_paths(root, &left, &o, ev);
                ev.note(&format!(
                    "finished replacing {} {} by {}",
                    o.name, o.version, now.version
                ));
                std::fs::remove_dir_all(&o.dir).map_err(|e| Error::path(e, &o.dir))?;
            }
            None => out.waiting_old.push(o),
        }
    }
    Ok(out)
}

/// Creates the journal (`DIR` and `DIR/old`).
pub fn open(paths: &Paths) -> Result<PathBuf> {
    let dir = paths.journal();
    std::fs::create_dir_all(dir.join("old")).map_err(|e| Error::path(e, &dir))?;
    Ok(dir)
}

/// Puts back old entries no target consumed and removes the journal.
pub fn close(paths: &Paths) -> Result<()> {
    let dir = paths.journal();
    let old = dir.join("old");
    if let Ok(rd) = std::fs::read_dir(&old) {
        for e in rd.flatten() {
            let to = paths.local().join(e.file_name());
            if !to.exists() {
                std::fs::rename(e.path(), &to).map_err(|err| Error::path(err, &to))?;
            }
        }
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::path(e, &dir)),
    }
}
