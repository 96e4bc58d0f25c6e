//! `rtool dkms` with Debian's real kernel headers (real kbuild and modpost): builds that work,
//! the incident's GPL-only failure reproduced, API changes, refusals before compiling, and
//! the same trees through Debian's real dkms.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::dkms::{copy_fixture, kver, module, target};
use common::{real_arch, rtool, Cmd, Done};

/// gpl-hello under another name, its make command spelled out with dkms's variables, as
/// many real dkms.conf files do.
fn vars_make(dir: &Path) -> PathBuf {
    let src = copy_fixture("gpl-hello", &dir.join(".vars-make"));
    let dst = dir.join("vars-make-2.0");
    fs::rename(&src, &dst).unwrap();
    fs::remove_dir(dir.join(".vars-make")).unwrap();
    fs::write(dst.join("dkms.conf"), VARS_MAKE_CONF).unwrap();
    dst
}

const VARS_MAKE_CONF: &str = r#"# The make command spelled out with dkms's variables, as many real dkms.conf files do.
PACKAGE_NAME="vars-make"
PACKAGE_VERSION="2.0"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build KVER=${kernelver} modules"
CLEAN="true"
BUILT_MODULE_NAME[0]="gpl_hello"
DEST_MODULE_NAME[0]="vars_make"
DEST_MODULE_LOCATION[0]="/updates/dkms"
AUTOINSTALL="yes"
"#;

fn build(root: &Path, src: &Path, k: &str, extra: &[&str]) -> Done {
    rtool(["dkms", "build"])
        .arg(src)
        .args(["-k", k, "--root"])
        .arg(root)
        .arg("--work")
        .arg(root.join("work"))
        .args(extra)
        .run()
}

#[test]
fn gpl_module_builds_installs_and_is_found_by_depmod() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    // Status before: missing for the installed kernel, and that fails.
    rtool(["dkms", "status", "--root"])
        .arg(r.path())
        .run()
        .status(1)
        .stdout_has(&format!("gpl-hello/1.0, {k}: MISSING"));
    let out = build(r.path(), &src, &k, &[]).success().stdout();
    let ko = r
        .path()
        .join("usr/lib/modules")
        .join(&k)
        .join("updates/dkms/gpl_hello.ko");
    assert!(ko.is_file(), "{out}");
    assert!(
        out.contains(&format!("installed {}", ko.display())),
        "{out}"
    );
    let dep = fs::read_to_string(
        r.path()
            .join("usr/lib/modules")
            .join(&k)
            .join("modules.dep"),
    )
    .unwrap();
    assert!(dep.contains("updates/dkms/gpl_hello.ko:"), "{dep}");
    let st = rtool(["dkms", "status", "--json", "--root"])
        .arg(r.path())
        .run()
        .success()
        .json();
    assert_eq!(st["modules"][0]["state"], "installed");
    // The source tree stays clean: the build ran in a scratch copy.
    assert!(!src.join("gpl_hello.ko").exists() && !src.join(".gpl_hello.o.cmd").exists());
}

#[test]
fn zstd_compressed_when_asked() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    build(r.path(), &src, &k, &["--compress", "zst"]).success();
    let zst = r
        .path()
        .join("usr/lib/modules")
        .join(&k)
        .join("updates/dkms/gpl_hello.ko.zst");
    let plain = Cmd::new("zstd")
        .args(["-dc"])
        .arg(&zst)
        .run()
        .success()
        .0
        .stdout;
    assert_eq!(&plain[..4], b"\x7fELF");
    assert!(!zst.with_extension("").exists(), "no plain copy beside it");
}

#[test]
fn gpl_only_symbols_fail_loudly_like_the_incident() {
    let (r, k) = target();
    let src = module("cddl-gplonly", r.path());
    // A relative --root works too: make runs in another directory.
    let rel = r.path().file_name().unwrap();
    let out = rtool(["dkms", "build", "cddl-gplonly/1.0", "-k", &k, "--root"])
        .arg(rel)
        .arg("--work")
        .arg(Path::new(rel).join("work"))
        .current_dir(r.path().parent().unwrap())
        .run()
        .status(8)
        .stdout();
    let _ = &src;
    assert!(out.contains(&format!("BUILD FAILED for {k}")), "{out}");
    assert!(
        out.contains("bio_start_io_acct") && out.contains("bio_end_io_acct_remapped"),
        "{out}"
    );
    assert!(out.contains("GPL-only"), "{out}");
    assert!(out.contains("make.log"), "{out}");
    assert!(!r
        .path()
        .join("usr/lib/modules")
        .join(&k)
        .join("updates/dkms")
        .join("cddl_gplonly.ko")
        .exists());
    rtool(["dkms", "status", "--root"])
        .arg(r.path())
        .run()
        .status(1)
        .stdout_has("MISSING");
}

#[test]
fn api_change_names_the_function() {
    let (r, k) = target();
    let src = module("api-missing", r.path());
    let out = build(r.path(), &src, &k, &[]).status(8).stdout();
    assert!(
        out.contains("blk_queue_nonexistent_rtool") || out.contains("nonexistent"),
        "{out}"
    );
    assert!(out.contains("api_missing.c:"), "{out}");
}

#[test]
fn unsupported_kernel_is_refused_before_compiling_unless_forced() {
    let (r, k) = target();
    let src = module("meta-old", r.path());
    let out = build(r.path(), &src, &k, &[]).status(1).stdout();
    assert!(out.contains("5.15") && out.contains("NOT built"), "{out}");
    assert!(
        !r.path()
            .join("work")
            .read_dir()
            .map(|mut d| d.any(|e| e.unwrap().path().join("make.log").exists()))
            .unwrap_or(false),
        "nothing compiled"
    );
    rtool(["dkms", "status", "--root"])
        .arg(r.path())
        .run()
        .status(1)
        .stdout_has("unsupported");
    build(r.path(), &src, &k, &["--force"])
        .success()
        .stderr_has("--force");
    assert!(r
        .path()
        .join("usr/lib/modules")
        .join(&k)
        .join("updates/dkms/meta_old.ko")
        .is_file());
}

#[test]
fn missing_headers_name_the_fetch_command() {
    let (r, _) = target();
    let src = module("gpl-hello", r.path());
    build(r.path(), &src, "6.2.8-arch1-1", &[])
        .status(7)
        .stderr_has("no kernel headers for 6.2.8-arch1-1")
        .stderr_has("rtool fetch-pkg --match-kernel=6.2.8-arch1-1");
}

#[test]
fn real_acpi_call_package_extracts_builds_and_installs() {
    let (r, k) = target();
    rtool(["extract", "-q", "-C"])
        .arg(r.path())
        .arg(real_arch("acpi_call-dkms.pkg.tar.zst"))
        .run()
        .success();
    let built = rtool(["dkms", "build", "acpi_call/1.1.0", "-k", &k, "--root"])
        .arg(r.path())
        .arg("--work")
        .arg(r.path().join("work"))
        .run()
        .success()
        .stdout();
    assert!(
        r.path()
            .join("usr/lib/modules")
            .join(&k)
            .join("updates/dkms/acpi_call.ko")
            .is_file(),
        "{built}"
    );
}

/// Debian's own dkms on the same tree: same kernel variables, the module lands in the same
/// place, and a failure is a failure for both.
#[test]
fn same_trees_with_debians_dkms() {
    let k = kver();
    let t = tempfile::Builder::new()
        .prefix("dkms-real-")
        .tempdir()
        .unwrap();
    let (src_tree, dkms_tree, install_tree) = (
        t.path().join("src"),
        t.path().join("dkms"),
        t.path().join("install"),
    );
    fs::create_dir_all(&src_tree).unwrap();
    fs::create_dir_all(&dkms_tree).unwrap();
    fs::create_dir_all(install_tree.join(&k)).unwrap();
    copy_fixture("gpl-hello", &src_tree);
    let real = |name: &str, ver: &str, action: &str| {
        Cmd::new("dkms")
            .args([action, "-m", name, "-v", ver, "-k", &k])
            .arg("--sourcetree")
            .arg(&src_tree)
            .arg("--dkmstree")
            .arg(&dkms_tree)
            .arg("--installtree")
            .arg(&install_tree)
            .arg("--kernelsourcedir")
            .arg(format!("/usr/src/linux-headers-{k}"))
            .run()
    };
    real("gpl-hello", "1.0", "build").success();
    // Variables expanded in MAKE[0]: both build it and install it under DEST_MODULE_NAME.
    vars_make(&src_tree);
    real("vars-make", "2.0", "build").success();
    let theirs_vars = real("vars-make", "2.0", "install");
    assert!(
        install_tree
            .join(&k)
            .join("updates/dkms/vars_make.ko")
            .is_file(),
        "{}\n{}",
        theirs_vars.stdout(),
        theirs_vars.stderr()
    );
    let theirs = real("gpl-hello", "1.0", "install");
    let their_ko = install_tree.join(&k).join("updates/dkms/gpl_hello.ko");
    assert!(
        their_ko.is_file(),
        "{}\n{}",
        theirs.stdout(),
        theirs.stderr()
    );
    let (r, k2) = target();
    let src = module("gpl-hello", r.path());
    build(r.path(), &src, &k2, &[]).success();
    assert!(r
        .path()
        .join("usr/lib/modules")
        .join(&k2)
        .join("updates/dkms/gpl_hello.ko")
        .is_file());
    // A failing build fails in both.
    copy_fixture("cddl-gplonly", &src_tree);
    let theirs = real("cddl-gplonly", "1.0", "build");
    assert_ne!(theirs.code(), 0, "Debian's dkms must fail too");
    let src = module("cddl-gplonly", r.path());
    assert_ne!(build(r.path(), &src, &k2, &[]).code(), 0);
}
