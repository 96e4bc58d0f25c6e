//! `rtool --install DIR`: a link per applet, so `DIR/doctor` runs `rtool doctor`.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// How many links were made, found in place, replaced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub created: usize,
    pub present: usize,
    pub replaced: usize,
}

/// This binary's own path: `/proc/self/exe`, else an absolute argv[0].
pub fn own_path(argv0: &OsStr) -> Result<PathBuf> {
    if let Ok(p) = fs::read_link("/proc/self/exe") {
        if p.is_file() {
            return Ok(p);
        }
    }
    let p = Path::new(argv0);
    if p.is_absolute() && p.is_file() {
        return fs::canonicalize(p).at(p);
    }
    Err(Error::missing("cannot tell where this binary is: /proc/self/exe is unreadable and argv[0] is not an absolute path")
        .hint("mount /proc, or run rtool by its absolute path"))
}

enum Plan {
    Create,
    Present,
    Replace,
}

/// Links every name in `dir` to `exe`. Existing correct links are left alone; anything else
/// under a name is a conflict, listed before anything is changed, and replaced only with
/// `force` (atomically: new link beside it, then rename). Directories are never replaced.
pub fn link_all(
    exe: &Path,
    dir: &Path,
    names: &[&str],
    symbolic: bool,
    force: bool,
) -> Result<Installed> {
    fs::create_dir_all(dir).at(dir)?;
    let exe_meta = fs::metadata(exe).at(exe)?;
    let canon_exe = fs::canonicalize(exe).at(exe)?;
    let canon_dir = fs::canonicalize(dir).at(dir)?;
    // A link beside the binary points at it by name, so the pair can move together.
    let target: PathBuf = match (canon_exe.parent(), canon_exe.file_name()) {
        (Some(parent), Some(file)) if symbolic && parent == canon_dir => PathBuf::from(file),
        _ => canon_exe.clone(),
    };

    let mut plans = Vec::with_capacity(names.len());
    let mut conflicts = Vec::new();
    for name in names {
        let path = dir.join(name);
        let plan = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Plan::Create,
            Err(e) => return Err(Error::path(e, &path)),
            Ok(m) => {
                let same = fs::metadata(&path)
                    .map(|t| t.dev() == exe_meta.dev() && t.ino() == exe_meta.ino())
                    .unwrap_or(false);
                if same {
                    Plan::Present
                } else if m.is_dir() {
                    return Err(Error::system(format!(
                        "{} is a directory: refusing to replace it with a link",
                        path.display()
                    )));
                } else {
                    conflicts.push(path.display().to_string());
                    Plan::Replace
                }
            }
        };
        plans.push((path, plan));
    }
    if !conflicts.is_empty() && !force {
        let shown: Vec<_> = conflicts.iter().take(8).cloned().collect();
        let more = conflicts.len().saturating_sub(shown.len());
        return Err(Error::system(format!(
            "{} name(s) in {} already belong to something else: {}{}; nothing was changed",
            conflicts.len(),
            dir.display(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
        .hint("--force replaces them"));
    }

    let mut done = Installed::default();
    for (path, plan) in plans {
        match plan {
            Plan::Present => done.present += 1,
            Plan::Create => {
                make_link(&target, exe, &path, symbolic)?;
                done.created += 1;
            }
            Plan::Replace => {
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = dir.join(format!(".{file}.rtool-new"));
                let _ = fs::remove_file(&tmp);
                make_link(&target, exe, &tmp, symbolic)?;
                if let Err(e) = fs::rename(&tmp, &path) {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::path(e, &path));
                }
                done.replaced += 1;
            }
        }
    }
    Ok(done)
}

fn make_link(target: &Path, exe: &Path, at: &Path, symbolic: bool) -> Result<()> {
    let r = if symbolic {
        std::os::unix::fs::symlink(target, at)
    } else {
        fs::hard_link(exe, at)
    };
    r.map_err(|e| {
        let cross = e.raw_os_error() == Some(libc::EXDEV);
        let err = Error::path(e, at);
        if cross {
            err.hint("hard links cannot cross filesystems: use `rtool --install -s DIR`")
        } else {
            err
        }
    })
}
