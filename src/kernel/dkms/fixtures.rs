//! What the tests of several parts share: the corpus of real `dkms.conf` files
//! (tests/fixtures/dkms-conf/, tests/fixtures/modules/) and fake kernel trees.

use std::path::{Path, PathBuf};

use super::Vars;

/// The bash of the test machine, the one dkms runs.
pub(super) const BASH: &str = "/bin/bash";

pub(super) fn dkms_conf_fixture(file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dkms-conf")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `text` as `dir/NAME/dkms.conf`; returns `dir/NAME`.
pub(super) fn conf_dir(dir: &Path, name: &str, text: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("dkms.conf"), text).unwrap();
    d
}

/// A kernel tree `dir/lib/modules/KVER/build`, with a `.config` if given and a `source`
/// directory beside `build` if asked, as Debian's -amd64 and -common headers make it.
pub(super) fn kernel_tree(dir: &Path, kver: &str, config: Option<&str>, source: bool) -> Vars {
    let m = dir.join("lib/modules").join(kver);
    std::fs::create_dir_all(m.join("build")).unwrap();
    if let Some(c) = config {
        std::fs::write(m.join("build/.config"), c).unwrap();
    }
    if source {
        std::fs::create_dir_all(m.join("source")).unwrap();
    }
    Vars {
        kernelver: kver.to_string(),
        kernel_source_dir: m.join("build").display().to_string(),
        dkms_tree: dir.join("dkms-tree").display().to_string(),
        source_tree: dir.join("src").display().to_string(),
        arch: "x86_64".to_string(),
    }
}

/// Every dkms.conf of the fixtures, named as its source directory would be.
pub(super) fn every_fixture_conf() -> Vec<(String, String)> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut found = Vec::new();
    for e in std::fs::read_dir(base.join("dkms-conf")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(stem) = name.strip_suffix(".conf") {
            let (_, dir) = stem.split_once('-').unwrap();
            found.push((dir.to_string(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    for e in std::fs::read_dir(base.join("modules")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(p.join("dkms.conf")).unwrap();
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("PACKAGE_VERSION="))
            .map_or("1.0", |v| v.trim_matches('"'));
        let name = p.file_name().unwrap().to_str().unwrap();
        found.push((format!("{name}-{version}"), text));
    }
    found.sort();
    found
}
