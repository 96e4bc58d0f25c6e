//! The rescue's core loop on a real kernel: a module built by `rtool dkms build` against
//! Debian's headers (installed as `.ko.zst`, indexed by depmod) loads with `rtool modprobe` in
//! Debian's running kernel; with module signatures enforced, the unsigned module is refused
//! with an error that says so.

mod common;

use std::path::Path;

use common::dkms::{module, target};
use common::rtool;
use common::vm::{vm, Console};

const SCENARIO: &str = r#"
mkdir -p /dkms/etc
case_ load sh -c 'rtool modprobe --root /dkms gpl_hello && grep -o "^gpl_hello " /proc/modules && dmesg | grep -o "gpl_hello: loaded"'
"#;

/// The module tree `rtool dkms build` made, as (path inside the VM, content), without the
/// `build` link into the headers.
fn built_tree() -> (Vec<(String, Vec<u8>)>, String) {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    rtool(["dkms", "build"])
        .arg(&src)
        .args(["-k", &k, "--compress", "zst", "--root"])
        .arg(r.path())
        .arg("--work")
        .arg(r.path().join("work"))
        .run()
        .success();
    let moddir = r.path().join("usr/lib/modules").join(&k);
    let mut files = Vec::new();
    let mut stack = vec![moddir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() && p.file_name().is_some_and(|n| n != "vmlinuz") {
                let rel = p.strip_prefix(&moddir).expect("below");
                let inside = Path::new("dkms/usr/lib/modules").join(&k).join(rel);
                files.push((
                    inside.display().to_string(),
                    std::fs::read(&p).expect("read"),
                ));
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|(p, _)| p.ends_with("updates/dkms/gpl_hello.ko.zst")),
        "the build installed no gpl_hello.ko.zst"
    );
    (files, k)
}

fn boot(cmdline: &str) -> Console {
    let v = vm("dkms", &["dummy"]);
    let (owned, k) = built_tree();
    assert_eq!(
        k, v.kver,
        "the headers and the kernel image must be the same release"
    );
    let files: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    v.run(SCENARIO, &files, cmdline)
}

#[test]
fn a_module_built_by_rtool_dkms_loads_in_the_real_kernel() {
    let c = boot("").case("load");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("updates/dkms/gpl_hello.ko.zst (decompressed by rtool)"),
        "{c:?}"
    );
    assert!(
        c.out.contains("gpl_hello \n"),
        "not in /proc/modules: {c:?}"
    );
    assert!(
        c.out.contains("gpl_hello: loaded"),
        "its init did not run: {c:?}"
    );
}

#[test]
fn an_unsigned_module_under_signature_enforcement_is_refused_clearly() {
    let c = boot("module.sig_enforce=1").case("load");
    assert_eq!(c.rc, 4, "{c:?}");
    assert!(
        c.out.contains("module signature enforcement or lockdown"),
        "{c:?}"
    );
    assert!(!c.out.contains("gpl_hello: loaded"), "{c:?}");
}
