//! libalpm hook files (`*.hook`, alpm-hooks(5)): parsing, and which of a transaction's
//! changes trigger them.
//!
//! A hook has one or more `[Trigger]` sections (`Type`, `Operation`s, `Target`s) and one
//! `[Action]` (`When`, `Exec`, optional `Description`, `Depends`, `AbortOnFail`,
//! `NeedsTargets`). Hooks run in file-name order; a hook in a later directory replaces one of
//! the same name in an earlier one, and a hook that is a symlink to `/dev/null` (or otherwise
//! not a regular file) disables that name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pkg::glob;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Pre,
    Post,
}

/// What happened to a path or a package in the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Install,
    Upgrade,
    Remove,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// `Type = Path` (or its old name `File`); otherwise `Package`.
    pub path: bool,
    pub ops: Vec<Op>,
    pub targets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The file name, which orders the hooks and names them in messages.
    pub name: String,
    pub file: PathBuf,
    pub triggers: Vec<Trigger>,
    pub description: Option<String>,
    pub when: When,
    pub exec: Vec<String>,
    pub depends: Vec<String>,
    pub abort_on_fail: bool,
    pub needs_targets: bool,
}

/// Reads a hook file's text.
pub fn parse(name: &str, file: &Path, text: &str) -> Result<Hook> {
    let bad =
        |n: usize, what: String| Error::invalid(format!("{}: line {n}: {what}", file.display()));
    let mut triggers: Vec<Trigger> = Vec::new();
    let mut section = "";
    let mut description = None;
    let mut when = None;
    let mut exec = None;
    let mut depends = Vec::new();
    let mut abort_on_fail = false;
    let mut needs_targets = false;
    let mut kinds: Vec<Option<bool>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = match s {
                "Trigger" => {
                    triggers.push(Trigger {
                        path: false,
                        ops: Vec::new(),
                        targets: Vec::new(),
                    });
                    kinds.push(None);
                    "Trigger"
                }
                "Action" => "Action",
                other => return Err(bad(n, format!("invalid section [{other}]"))),
            };
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (line, None),
        };
        let need = |v: Option<&'_ str>| -> Result<String> {
            v.map(str::to_string)
                .ok_or_else(|| bad(n, format!("{key} needs a value")))
        };
        match (section, key) {
            ("Trigger", "Type") => {
                let v = need(value)?;
                let path = match v.as_str() {
                    "Path" | "File" => true,
                    "Package" => false,
                    _ => return Err(bad(n, format!("invalid Type {v}"))),
                };
                if let (Some(t), Some(k)) = (triggers.last_mut(), kinds.last_mut()) {
                    t.path = path;
                    *k = Some(path);
                }
            }
            ("Trigger", "Operation") => {
                let v = need(value)?;
                let op = match v.as_str() {
                    "Install" => Op::Install,
                    "Upgrade" => Op::Upgrade,
                    "Remove" => Op::Remove,
                    _ => return Err(bad(n, format!("invalid Operation {v}"))),
                };
                if let Some(t) = triggers.last_mut() {
                    t.ops.push(op);
                }
            }
            ("Trigger", "Target") => {
                if let Some(t) = triggers.last_mut() {
                    t.targets.push(need(value)?);
                }
            }
            ("Action", "Description") => description = Some(need(value)?),
            ("Action", "When") => {
                when = Some(match need(value)?.as_str() {
                    "PreTransaction" => When::Pre,
                    "PostTransaction" => When::Post,
                    v => return Err(bad(n, format!("invalid When {v}"))),
                })
            }
            ("Action", "Exec") => exec = Some(split_words(&need(value)?).map_err(|e| bad(n, e))?),
            ("Action", "Depends") => depends.push(need(value)?),
            ("Action", "AbortOnFail") => abort_on_fail = true,
            ("Action", "NeedsTargets") => needs_targets = true,
            ("", _) => return Err(bad(n, format!("{key} outside a section"))),
            (s, k) => return Err(bad(n, format!("unknown option {k} in [{s}]"))),
        }
    }
    let missing = |what: &str| Error::invalid(format!("{}: {what}", file.display()));
    if triggers.is_empty() {
        return Err(missing("no [Trigger] section"));
    }
    for (t, k) in triggers.iter().zip(&kinds) {
        if k.is_none() || t.ops.is_empty() || t.targets.is_empty() {
            return Err(missing("a [Trigger] needs Type, Operation and Target"));
        }
    }
    let when = when.ok_or_else(|| missing("no When in [Action]"))?;
    let exec = exec
        .filter(|e| !e.is_empty())
        .ok_or_else(|| missing("no Exec in [Action]"))?;
    Ok(Hook {
        name: name.to_string(),
        file: file.to_path_buf(),
        triggers,
        description,
        when,
        exec,
        depends,
        abort_on_fail: abort_on_fail && when == When::Pre,
        needs_targets,
    })
}

/// Splits `Exec` into words as libalpm's `_alpm_wordsplit`: blanks separate, single and
/// double quotes group, a backslash escapes the next character.
pub fn split_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                let next = chars.next().ok_or("a trailing backslash")?;
                cur.push(next);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// What a transaction does, as the hooks see it: paths relative to the root (directories
/// with their trailing `/`) and package names, each with its operation.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub paths: Vec<(Vec<u8>, Op)>,
    pub packages: Vec<(String, Op)>,
}

impl Hook {
    /// The targets that trigger the hook (sorted, unique; paths or names), or `None` when
    /// nothing in `changes` does.
    pub fn triggered(&self, changes: &Changes) -> Option<Vec<Vec<u8>>> {
        let mut hit: Vec<Vec<u8>> = Vec::new();
        for t in &self.triggers {
            let pats = || t.targets.iter().map(String::as_str);
            if t.path {
                for (p, op) in &changes.paths {
                    if t.ops.contains(op) && glob::last_match(pats(), p) == Some(true) {
                        hit.push(p.clone());
                    }
                }
            } else {
                for (n, op) in &changes.packages {
                    if t.ops.contains(op) && glob::last_match(pats(), n.as_bytes()) == Some(true) {
                        hit.push(n.as_bytes().to_vec());
                    }
                }
            }
        }
        if hit.is_empty() {
            return None;
        }
        hit.sort();
        hit.dedup();
        Some(hit)
    }
}

/// The hooks in `dirs` (below `root`), later directories replacing earlier ones by name, in
/// name order. A file that cannot be parsed is an error naming it.
pub fn load(root: &Path, dirs: &[PathBuf]) -> Result<Vec<Hook>> {
    let mut by_name: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for d in dirs {
        let dir = crate::paths::below(root, d);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".hook") {
                continue;
            }
            let p = e.path();
            // A symlink to /dev/null (or anything not a regular file) masks the name.
            let regular = std::fs::metadata(&p).is_ok_and(|m| m.is_file())
                && std::fs::read_link(&p).map_or(true, |t| t != Path::new("/dev/null"));
            by_name.insert(name, regular.then_some(p));
        }
    }
    let mut out = Vec::new();
    for (name, p) in by_name {
        let Some(p) = p else { continue };
        let text = std::fs::read_to_string(&p).map_err(|e| Error::path(e, &p))?;
        out.push(parse(&name, &p, &text)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPMOD: &str = "[Trigger]\nType = Path\nOperation = Install\nOperation = Upgrade\n\
        Operation = Remove\nTarget = usr/lib/modules/*/\nTarget = !usr/lib/modules/*/?*\n\n\
        [Action]\nDescription = Updating module dependencies...\nWhen = PostTransaction\n\
        Exec = /usr/share/libalpm/scripts/depmod\nNeedsTargets\n";

    #[test]
    fn depmod_hook_matches_the_kernel_directory_only() {
        let h = parse("60-depmod.hook", Path::new("60-depmod.hook"), DEPMOD).unwrap();
        assert_eq!(h.when, When::Post);
        assert!(h.needs_targets && !h.abort_on_fail);
        let c = Changes {
            paths: vec![
                (b"usr/lib/modules/6.2.7-arch1-1/".to_vec(), Op::Install),
                (
                    b"usr/lib/modules/6.2.7-arch1-1/vmlinuz".to_vec(),
                    Op::Install,
                ),
                (b"usr/lib/modules/6.2.8-arch1-1/".to_vec(), Op::Remove),
                (b"usr/bin/x".to_vec(), Op::Install),
            ],
            packages: vec![("linux".into(), Op::Upgrade)],
        };
        assert_eq!(
            h.triggered(&c).unwrap(),
            [
                b"usr/lib/modules/6.2.7-arch1-1/".to_vec(),
                b"usr/lib/modules/6.2.8-arch1-1/".to_vec()
            ]
        );
        let none = Changes {
            paths: vec![(b"usr/bin/x".to_vec(), Op::Install)],
            packages: vec![],
        };
        assert!(h.triggered(&none).is_none());
    }

    #[test]
    fn package_triggers_exec_words_and_errors() {
        let h = parse(
            "x.hook",
            Path::new("x.hook"),
            "[Trigger]\nType = Package\nOperation = Upgrade\nTarget = linux*\n[Action]\n\
             When = PreTransaction\nExec = /bin/sh -c 'echo \"a b\"' x\\ y\nAbortOnFail\n",
        )
        .unwrap();
        assert_eq!(h.exec, ["/bin/sh", "-c", "echo \"a b\"", "x y"]);
        assert!(h.abort_on_fail);
        let c = Changes {
            paths: vec![],
            packages: vec![
                ("linux-lts".into(), Op::Upgrade),
                ("linux".into(), Op::Install),
            ],
        };
        assert_eq!(h.triggered(&c).unwrap(), [b"linux-lts".to_vec()]);
        for bad in [
            "[Trigger]\nType = Path\nOperation = Install\n[Action]\nWhen = PostTransaction\nExec = x\n",
            "[Trigger]\nType = Path\nOperation = Install\nTarget = x\n[Action]\nExec = x\n",
            "[Trigger]\nType = Disk\n",
            "[Action]\nWhen = PostTransaction\nExec = x\n",
            "Exec = x\n",
        ] {
            assert!(parse("b.hook", Path::new("b.hook"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn later_directories_override_and_dev_null_masks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/share/libalpm/hooks")).unwrap();
        std::fs::create_dir_all(r.join("etc/pacman.d/hooks")).unwrap();
        let hook = |desc: &str| {
            format!("[Trigger]\nType = Package\nOperation = Install\nTarget = *\n[Action]\nDescription = {desc}\nWhen = PostTransaction\nExec = /bin/true\n")
        };
        std::fs::write(
            r.join("usr/share/libalpm/hooks/10-a.hook"),
            hook("system a"),
        )
        .unwrap();
        std::fs::write(
            r.join("usr/share/libalpm/hooks/20-b.hook"),
            hook("system b"),
        )
        .unwrap();
        std::fs::write(r.join("etc/pacman.d/hooks/10-a.hook"), hook("admin a")).unwrap();
        std::os::unix::fs::symlink("/dev/null", r.join("etc/pacman.d/hooks/20-b.hook")).unwrap();
        let hooks = load(
            r,
            &[
                PathBuf::from("/usr/share/libalpm/hooks"),
                PathBuf::from("/etc/pacman.d/hooks"),
            ],
        )
        .unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].description.as_deref(), Some("admin a"));
    }
}
