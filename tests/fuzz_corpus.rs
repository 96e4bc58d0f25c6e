//! The fuzz corpora as regression tests, on stable: every file of `fuzz/corpus/NAME/` and
//! `fuzz/regressions/NAME/` goes through target NAME of `fuzz/targets.rs` once. A target that
//! panics on a file fails its test, naming the file.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn run(name: &str) {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(base.join(dir).join(name)) else {
            continue;
        };
        for e in rd {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    assert!(!files.is_empty(), "fuzz/corpus/{name}/ has no seeds");
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{name} panicked on:\n  {}",
        failed.join("\n  ")
    );
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for (n, _) in targets::TARGETS {
                assert!(tested.contains(n), "fuzz target {n} has no corpus test");
            }
        }
    };
}

corpus_tests!(
    alpmhook,
    bzimage,
    dkms,
    fstab,
    initramfs,
    listing,
    localdb,
    modules,
    mountinfo,
    mtree,
    package,
    pacman_conf,
    pkginfo,
    signature,
    ssh_key,
    syncdb,
    vercmp,
);
