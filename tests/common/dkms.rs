//! Kernel headers and module sources for DKMS builds: Debian's real headers
//! (`linux-headers-amd64`) and the module trees in tests/fixtures/modules.

use std::fs;
use std::path::{Path, PathBuf};

use super::Cmd;

/// The release of the installed Debian headers (`linux-headers-amd64`).
pub fn kver() -> String {
    let mut found: Vec<String> = fs::read_dir("/usr/src")
        .expect("/usr/src")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("linux-headers-")
                .map(String::from)
        })
        .filter(|k| k.ends_with("-amd64"))
        .collect();
    found.sort();
    found
        .pop()
        .expect("Debian's linux-headers-amd64 is installed by `make test`")
}

/// A target root with the headers for `kver` (its `build` link points at the real headers),
/// an installed kernel (`vmlinuz`), and `/lib -> usr/lib` as on Arch.
pub fn target() -> (tempfile::TempDir, String) {
    let d = tempfile::Builder::new()
        .prefix("dkms-root-")
        .tempdir()
        .unwrap();
    let k = kver();
    let m = d.path().join("usr/lib/modules").join(&k);
    fs::create_dir_all(&m).unwrap();
    std::os::unix::fs::symlink(format!("/usr/src/linux-headers-{k}"), m.join("build")).unwrap();
    fs::write(m.join("vmlinuz"), "kernel").unwrap();
    std::os::unix::fs::symlink("usr/lib", d.path().join("lib")).unwrap();
    (d, k)
}

/// A module tree from tests/fixtures/modules, copied to `dir/NAME-VERSION` so builds never
/// touch the fixture.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/modules")
        .join(name);
    let conf = fs::read_to_string(src.join("dkms.conf")).unwrap();
    let ver = conf
        .lines()
        .find_map(|l| l.strip_prefix("PACKAGE_VERSION="))
        .unwrap()
        .trim_matches('"')
        .to_string();
    fs::create_dir_all(dir).unwrap();
    let dst = dir.join(format!("{name}-{ver}"));
    Cmd::new("cp").arg("-a").arg(&src).arg(&dst).run().success();
    dst
}

/// The same, into the target root's `/usr/src`, where `dkms status` looks.
pub fn module(name: &str, root: &Path) -> PathBuf {
    copy_fixture(name, &root.join("usr/src"))
}
