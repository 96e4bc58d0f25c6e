//! Kernels and their modules: where they live, what is there.

pub mod build;
pub mod buildlog;
pub mod bzimage;
pub mod dkms;
pub mod initramfs;
pub mod modload;
pub mod zfs;

use std::path::{Path, PathBuf};

use crate::ctx::below;

/// Module file endings, in the order kmod prefers them.
pub const MODULE_SUFFIXES: [&str; 4] = [".ko", ".ko.zst", ".ko.xz", ".ko.gz"];

/// `<root>/usr/lib/modules/KVER` (or `<root>/lib/modules/KVER` on an unmerged system), whether
/// or not it exists; the first that exists wins.
pub fn modules_dir(root: &Path, kver: &str) -> PathBuf {
    let merged = below(root, Path::new("/usr/lib/modules")).join(kver);
    if merged.is_dir() {
        return merged;
    }
    let old = below(root, Path::new("/lib/modules")).join(kver);
    if old.is_dir() {
        old
    } else {
        merged
    }
}

/// The commands that bring the package of kernel `kver` (its modules), or of its headers,
/// from the Arch Linux Archive and unpack it into `root`, ready to paste. Prose for a release
/// that is not an Arch kernel's.
pub fn package_from_archive(kver: &str, root: &Path, headers: bool) -> String {
    let what = if headers { "headers" } else { "kernel" };
    match crate::net::ala::kernel_packages(kver) {
        Ok((name, vers)) => {
            let name = if headers {
                format!("{name}-headers")
            } else {
                name
            };
            let file = match vers.as_slice() {
                [v] => format!("{name}-{v}-x86_64.pkg.tar.zst"),
                _ => format!("{name}-[0-9]*-x86_64.pkg.tar.zst"),
            };
            format!(
                "`rtool fetch-pkg --match-kernel={kver}`, then `rtool extract -C {} {file}`",
                root.display()
            )
        }
        Err(_) => format!("install the {what} package of {kver}"),
    }
}

/// The module a file name holds, as the kernel names it: `zfs-foo.ko.zst` → `zfs_foo`
/// (dashes and underscores are the same to the kernel); `None` for other files.
pub fn module_name(file: &str) -> Option<String> {
    MODULE_SUFFIXES
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .filter(|stem| !stem.is_empty())
        .map(|stem| stem.replace('-', "_"))
}

/// `usr/lib/modules/KVER/…` or `lib/modules/KVER/…` (relative) → KVER.
pub fn release_of_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("usr/")
        .unwrap_or(path)
        .strip_prefix("lib/modules/")?;
    rest.split('/').next().filter(|k| !k.is_empty())
}

/// The module file for `name` (`zfs` finds `zfs.ko`, `zfs.ko.zst`, …) in a modules directory:
/// from `modules.dep` when there is one, else by walking the tree.
pub fn find_module(moddir: &Path, name: &str) -> Option<PathBuf> {
    let name = name.replace('-', "_");
    let wanted = |file: &str| module_name(file).is_some_and(|m| m == name);
    if let Ok(dep) = std::fs::read_to_string(moddir.join("modules.dep")) {
        for line in dep.lines() {
            let Some((path, _)) = line.split_once(':') else {
                continue;
            };
            let file = path.rsplit('/').next().unwrap_or(path);
            if wanted(file) {
                return Some(moddir.join(path));
            }
        }
    }
    let mut stack = vec![moddir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            // `build` and `source` point into the headers: not modules, and possibly huge.
            if t.is_dir()
                && !(dir == moddir && matches!(e.file_name().to_str(), Some("build" | "source")))
            {
                stack.push(p);
            } else if t.is_file() && e.file_name().to_str().is_some_and(wanted) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_modules_by_dep_or_walk() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("usr/lib/modules/6.1.0-1-amd64");
        std::fs::create_dir_all(m.join("updates/dkms")).unwrap();
        std::fs::write(m.join("updates/dkms/zfs.ko.zst"), b"x").unwrap();
        assert_eq!(modules_dir(d.path(), "6.1.0-1-amd64"), m);
        assert_eq!(
            find_module(&m, "zfs"),
            Some(m.join("updates/dkms/zfs.ko.zst"))
        );
        assert_eq!(find_module(&m, "spl"), None);
        std::fs::write(m.join("modules.dep"), "kernel/drivers/net/dummy.ko: \n").unwrap();
        assert_eq!(
            find_module(&m, "dummy"),
            Some(m.join("kernel/drivers/net/dummy.ko"))
        );
    }
}
