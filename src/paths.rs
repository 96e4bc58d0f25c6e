//! Paths built below a base directory: how every layer reaches into the system being repaired
//! (`--root`) or the running one (`/proc`, `/sys`), whatever it is given as the base.

use std::path::{Component, Path, PathBuf};

/// Joins `p` below `base`, dropping `p`'s root and any `..` that would climb above `base`.
/// No symlink is followed here: this is for building paths, not for resolving them.
pub fn below(base: &Path, p: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    let depth0 = out.components().count();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                if out.components().count() > depth0 {
                    out.pop();
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_never_climbs_out() {
        let b = Path::new("/mnt");
        assert_eq!(below(b, Path::new("/boot")), Path::new("/mnt/boot"));
        assert_eq!(
            below(b, Path::new("../../etc/passwd")),
            Path::new("/mnt/etc/passwd")
        );
        assert_eq!(below(b, Path::new("/a/../../b")), Path::new("/mnt/b"));
        assert_eq!(
            below(Path::new("/"), Path::new("/proc/1")),
            Path::new("/proc/1")
        );
    }
}
