//! Arch-like roots for the installer tests, and the listings that compare two of them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Makes `r` an Arch-like root: `/bin`, `/lib`, `/sbin` link into `/usr`, busybox is the
/// shell (`sh`, `true`, `false`), and pacman's directories exist.
pub fn arch_root(r: &Path) {
    for d in [
        "usr/bin",
        "usr/lib",
        "etc",
        "var/log",
        "var/lib/pacman",
        "tmp",
    ] {
        fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    for (l, t) in [("bin", "usr/bin"), ("lib", "usr/lib"), ("sbin", "usr/bin")] {
        std::os::unix::fs::symlink(t, r.join(l)).expect("symlink");
    }
    fs::copy("/bin/busybox", r.join("usr/bin/busybox")).expect("copy busybox");
    for l in ["sh", "false", "true"] {
        std::os::unix::fs::symlink("busybox", r.join("usr/bin").join(l)).expect("symlink");
    }
}

/// What root comparisons leave out: pacman.log and the scriptlets' temporary directories.
pub const VOLATILE: &[&str] = &["var/log", "tmp"];

/// `desc` without its `%INSTALLDATE%` block (the only thing two identical installs differ in).
pub fn strip_install_date(desc: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(desc);
    let mut out = String::new();
    let mut skip = false;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "%INSTALLDATE%" {
            skip = true;
            continue;
        }
        if skip {
            skip = false;
            continue;
        }
        out.push_str(line);
    }
    out.into_bytes()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every entry below `root`: type, mode, owner, size, link target, md5, link count. Below
/// the directories in `skip` (relative paths) nothing is listed; a database `desc` is
/// hashed without its `%INSTALLDATE%`.
pub fn listing(root: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in rd {
            let p = e.expect("read_dir entry").path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let ft = m.file_type();
            let head = format!("mode={:o} owner={}:{}", m.mode() & 0o7777, m.uid(), m.gid());
            let desc = if ft.is_dir() {
                if !skip.contains(&rel.as_str()) {
                    stack.push(p.clone());
                }
                format!("dir {head}")
            } else if ft.is_symlink() {
                let t = fs::read_link(&p).unwrap();
                format!("link {head} size={} -> {}", m.len(), t.display())
            } else if ft.is_file() {
                let mut data = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                if rel.starts_with("var/lib/pacman/") && rel.ends_with("/desc") {
                    data = strip_install_date(&data);
                }
                format!(
                    "file {head} size={} md5={} nlink={}",
                    data.len(),
                    md5_hex(&data),
                    m.nlink()
                )
            } else {
                format!("other {head}")
            };
            out.insert(rel, desc);
        }
    }
    out
}

/// The differences between two listings, one line each (empty when they are equal).
pub fn listing_diff(
    want: &BTreeMap<String, String>,
    got: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            Some(w) if w == v => {}
            Some(w) => diff.push(format!("{k}:\n    want {v}\n    got  {w}")),
            None => diff.push(format!("{k}: missing ({v})")),
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            diff.push(format!("{k}: unexpected ({v})"));
        }
    }
    diff
}

/// The local database as text: `ENTRY/desc` (without `%INSTALLDATE%`), `ENTRY/files`,
/// `ENTRY/mtree` and any other file in an entry (as md5), `ALPM_DB_VERSION`'s contents.
pub fn local_db(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let local = root.join("var/lib/pacman/local");
    let Ok(rd) = fs::read_dir(&local) else {
        return out;
    };
    for e in rd.flatten() {
        let entry = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !entry.is_dir() {
            let data = fs::read(&entry).unwrap_or_default();
            out.insert(name, String::from_utf8_lossy(&data).into_owned());
            continue;
        }
        for f in fs::read_dir(&entry).unwrap().flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            let data = fs::read(f.path()).unwrap();
            let text = match fname.as_str() {
                "desc" => String::from_utf8_lossy(&strip_install_date(&data)).into_owned(),
                "files" => String::from_utf8_lossy(&data).into_owned(),
                _ => format!("md5 {}", md5_hex(&data)),
            };
            out.insert(format!("{name}/{fname}"), text);
        }
    }
    out
}
