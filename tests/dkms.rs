//! `rtool dkms` with Debian's real kernel headers (real kbuild and modpost): builds that work,
//! the incident's GPL-only failure reproduced, API changes, refusals before compiling, and
//! the same trees through Debian's real dkms.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::dkms::{copy_fixture, incident_tree, kver, module, sections, target, walk, work_base};
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

fn installed(root: &Path, k: &str, file: &str) -> PathBuf {
    root.join("usr/lib/modules")
        .join(k)
        .join("updates/dkms")
        .join(file)
}

fn append(file: &Path, text: &str) {
    let mut s = fs::read_to_string(file).unwrap();
    s.push_str(text);
    fs::write(file, s).unwrap();
}

/// `PRE_BUILD="prep.sh --flag value"`: dkms runs `BUILD_DIR/prep.sh --flag value` from the
/// build directory. The script writes prep.mk there, Kbuild includes it, and the module
/// carries the value: `modinfo` shows it.
#[test]
fn pre_build_runs_from_the_build_dir_with_its_arguments() {
    let (r, k) = target();
    let src = module("pre-build", r.path());
    let out = build(r.path(), &src, &k, &["--compress", "none"])
        .success()
        .stdout();
    let ko = installed(r.path(), &k, "pre_build.ko");
    assert!(ko.is_file(), "{out}");
    let info = Cmd::new(common::which("modinfo").expect("modinfo (kmod)"))
        .args(["-F", "prep"])
        .arg(&ko)
        .run()
        .success()
        .stdout();
    assert_eq!(info.trim(), "value");
    let base = work_base(r.path(), &src, &k);
    let log = fs::read_to_string(base.join("make.log")).unwrap();
    let build_dir = base.join("build");
    assert!(
        log.contains(&format!(
            "# PRE_BUILD: {}/prep.sh --flag value",
            build_dir.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("prep.sh: wrote {}/prep.mk", build_dir.display())),
        "{log}"
    );
    // It ran before make: its line comes first.
    assert!(log.find("# PRE_BUILD:") < log.find("# MAKE:"), "{log}");
    assert!(!src.join("prep.mk").exists(), "the source tree stays clean");
}

#[test]
fn pre_build_naming_a_missing_script_fails_before_make() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    append(
        &src.join("dkms.conf"),
        "PRE_BUILD=\"no-such-prep.sh --flag value\"\n",
    );
    let out = build(r.path(), &src, &k, &[]).status(8).stdout();
    assert!(
        out.contains(&format!("BUILD FAILED for {k} (PRE_BUILD)")),
        "{out}"
    );
    assert!(out.contains("PRE_BUILD command not found"), "{out}");
    assert!(out.contains("no-such-prep.sh"), "{out}");
    assert!(out.contains("is NOT installed"), "{out}");
    let log = fs::read_to_string(work_base(r.path(), &src, &k).join("make.log")).unwrap();
    assert!(!log.contains("# MAKE:"), "make never ran:\n{log}");
    assert!(!installed(r.path(), &k, "gpl_hello.ko").exists());
}

/// A PRE_BUILD script that runs a tool that is not installed: the shell's 127, said as such
/// and not taken for a compile error.
#[test]
fn pre_build_exiting_127_names_the_missing_command() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    let script = src.join("prep.sh");
    fs::write(
        &script,
        "#!/bin/sh\necho 'prep.sh: generating'\nexec rtool-no-such-tool --generate\n",
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    append(&src.join("dkms.conf"), "PRE_BUILD=\"prep.sh\"\n");
    let out = build(r.path(), &src, &k, &[]).status(8).stdout();
    assert!(
        out.contains("PRE_BUILD command not found (exit 127)"),
        "{out}"
    );
    assert!(out.contains("rtool-no-such-tool"), "{out}");
    assert!(!installed(r.path(), &k, "gpl_hello.ko").exists());
}

/// dkms runs `strip -g` on every module unless `STRIP[i]` says no. Debian's kernel is built
/// with CONFIG_DEBUG_INFO, so its modules carry .debug_info until stripped.
#[test]
fn modules_are_stripped_unless_strip_says_no() {
    let (r, k) = target();
    let config = fs::read_to_string(format!("/usr/src/linux-headers-{k}/.config")).unwrap();
    assert!(
        config.lines().any(|l| l == "CONFIG_DEBUG_INFO=y"),
        "the headers' kernel has no CONFIG_DEBUG_INFO: this test proves nothing"
    );
    let src = module("gpl-hello", r.path());
    let ko = installed(r.path(), &k, "gpl_hello.ko");
    build(r.path(), &src, &k, &["--compress", "none"]).success();
    let stripped = sections(&ko);
    assert!(!stripped.contains(".debug_info"), "{stripped}");
    assert!(stripped.contains(".modinfo"), "{stripped}");

    append(&src.join("dkms.conf"), "STRIP[0]=\"no\"\n");
    let out = build(r.path(), &src, &k, &["--compress", "none"])
        .success()
        .stdout();
    assert!(
        out.contains(&format!("built for {k}")),
        "compiled again: {out}"
    );
    let kept = sections(&ko);
    assert!(kept.contains(".debug_info"), "{kept}");
}

/// A finished build in the work directory is installed again without compiling, as dkms
/// installs from its tree. The proof: the second run has no make and no gcc on PATH (a
/// compile could not even start: exit 7), and make.log is left as it was.
#[test]
fn a_finished_build_is_reused_until_rebuild_or_a_change() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    let first = build(r.path(), &src, &k, &[]).success().stdout();
    assert!(first.contains(&format!("built for {k}")), "{first}");
    let base = work_base(r.path(), &src, &k);
    let log = base.join("make.log");
    let ko = installed(r.path(), &k, "gpl_hello.ko");
    assert!(ko.is_file(), "{first}");
    fs::remove_file(&ko).unwrap();
    append(&log, "rtool-test: the first build's log\n");
    let log_before = fs::read_to_string(&log).unwrap();
    let no_tools = tempfile::tempdir().unwrap();
    let again = rtool(["dkms", "build"])
        .arg(&src)
        .args(["-k", &k, "--root"])
        .arg(r.path())
        .arg("--work")
        .arg(r.path().join("work"))
        .env("PATH", no_tools.path())
        .run()
        .success()
        .stdout();
    assert!(
        again.contains(&format!(
            "installed for {k} from the finished build in {} (--rebuild compiles again)",
            base.display()
        )),
        "{again}"
    );
    assert!(!again.contains("built for"), "{again}");
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        log_before,
        "make.log untouched"
    );
    assert!(ko.is_file(), "installed again: {again}");

    // --rebuild compiles: a new make.log.
    let re = build(r.path(), &src, &k, &["--rebuild"]).success().stdout();
    assert!(re.contains(&format!("built for {k}")), "{re}");
    assert!(!fs::read_to_string(&log).unwrap().contains("rtool-test:"));

    // An edited dkms.conf makes it another build.
    append(&log, "rtool-test: marker\n");
    append(&src.join("dkms.conf"), "# edited\n");
    let edited = build(r.path(), &src, &k, &[]).success().stdout();
    assert!(edited.contains(&format!("built for {k}")), "{edited}");
    assert!(!fs::read_to_string(&log).unwrap().contains("rtool-test:"));

    // So does an edited source file: the build would not be the same.
    append(&log, "rtool-test: marker\n");
    append(&src.join("gpl_hello.c"), "/* edited */\n");
    let edited = build(r.path(), &src, &k, &[]).success().stdout();
    assert!(edited.contains(&format!("built for {k}")), "{edited}");
    assert!(!fs::read_to_string(&log).unwrap().contains("rtool-test:"));

    // And the same build for another root installs there from the same work directory.
    let (r2, _) = target();
    let other = rtool(["dkms", "build"])
        .arg(&src)
        .args(["-k", &k, "--root"])
        .arg(r2.path())
        .arg("--work")
        .arg(r.path().join("work"))
        .run()
        .success()
        .stdout();
    assert!(other.contains("from the finished build"), "{other}");
    assert!(installed(r2.path(), &k, "gpl_hello.ko").is_file());
}

/// BUILD_EXCLUSIVE_KERNEL set inside `if [ -f $kernel_source_dir/.config ]; then .
/// $kernel_source_dir/.config …`, as Debian's zfs-dkms and v4l2loopback do: bash reads the
/// file as dkms does, so a PREEMPT_RT kernel is refused and any other is built.
#[test]
fn build_exclusive_kernel_from_shell_code_is_evaluated_by_bash() {
    let (r, k) = target();
    let src = module("exclusive-rt", r.path());
    // Debian's headers: no PREEMPT_RT, so it builds.
    build(r.path(), &src, &k, &[]).success();
    assert!(installed(r.path(), &k, "exclusive_rt.ko").is_file());

    // A PREEMPT_RT kernel whose "headers" are only its .config: the refusal comes before
    // anything needs the headers.
    let rt = "6.1.0-99-rt-amd64";
    let rt_build = r.path().join("usr/lib/modules").join(rt).join("build");
    fs::create_dir_all(&rt_build).unwrap();
    fs::write(
        rt_build.join(".config"),
        "CONFIG_SMP=y\nCONFIG_PREEMPT_RT=y\n",
    )
    .unwrap();
    let out = build(r.path(), &src, rt, &[]).status(1).stdout();
    assert!(out.contains(&format!("NOT built for {rt}")), "{out}");
    assert!(out.contains("NOT ON PREEMPT_RT"), "{out}");
    assert!(out.contains("nothing was compiled"), "{out}");
    let work = r.path().join("work").join(format!("exclusive-rt-1.0-{rt}"));
    assert!(
        !walk(&work).iter().any(|p| p.ends_with("make.log")),
        "nothing compiled"
    );
    // --force goes on, and finds no headers: the refusal came first.
    build(r.path(), &src, rt, &["--force"])
        .status(7)
        .stderr_has("--force")
        .stderr_has(&format!("no kernel headers for {rt}"));
    assert!(!installed(r.path(), rt, "exclusive_rt.ko").exists());
}

/// The incident, re-enacted with the real pieces: Debian's zfs-dkms 2.1.11 (META: Linux 3.10 –
/// 6.2) and the real headers of bookworm-backports' newer kernel, laid out as Debian lays
/// them out (`build` -> the -amd64 headers, `source` -> the -common ones). rtool refuses
/// before compiling anything: nothing in the work directory, nothing installed.
#[test]
fn zfs_2_1_11_is_refused_for_a_newer_kernel_before_compiling() {
    let (tree, k, v) = incident_tree();
    let r = tempfile::Builder::new()
        .prefix("dkms-incident-")
        .tempdir()
        .unwrap();
    let m = r.path().join("usr/lib/modules").join(&k);
    fs::create_dir_all(&m).unwrap();
    let headers = tree.join("usr/src").join(format!("linux-headers-{k}"));
    let common = tree
        .join("usr/src")
        .join(format!("linux-headers-{v}-common"));
    assert!(headers.join(".config").is_file() && common.join("Makefile").is_file());
    std::os::unix::fs::symlink(&headers, m.join("build")).unwrap();
    std::os::unix::fs::symlink(&common, m.join("source")).unwrap();
    fs::write(m.join("vmlinuz"), "kernel").unwrap();
    std::os::unix::fs::symlink("usr/lib", r.path().join("lib")).unwrap();
    fs::create_dir_all(r.path().join("usr/src")).unwrap();
    Cmd::new("cp")
        .arg("-a")
        .arg(tree.join("usr/src/zfs-2.1.11"))
        .arg(r.path().join("usr/src/"))
        .run()
        .success();
    let meta = fs::read_to_string(r.path().join("usr/src/zfs-2.1.11/META")).unwrap();
    assert!(meta.contains("Linux-Maximum: 6.2"), "{meta}");
    let w = r.path().join("work");
    let done = rtool(["dkms", "build", "zfs/2.1.11", "-k", &k, "--root"])
        .arg(r.path())
        .arg("--work")
        .arg(&w)
        .run()
        .status(1);
    let out = done.stdout();
    assert!(
        out.contains(&format!("zfs 2.1.11: NOT built for {k}")),
        "{out}"
    );
    assert!(out.contains("3.10") && out.contains("6.2"), "{out}");
    assert!(out.contains("nothing was compiled"), "{out}");
    let made: Vec<PathBuf> = walk(&w)
        .into_iter()
        .filter(|p| p.ends_with("make.log") || p.ends_with("build"))
        .collect();
    assert!(made.is_empty(), "compiled: {made:?}");
    assert!(!m.join("updates").exists());
    assert!(!done.stderr().contains("with bash"), "{}", done.stderr());
    rtool(["dkms", "status", "--root"])
        .arg(r.path())
        .run()
        .status(1)
        .stdout_has(&format!("zfs/2.1.11, {k}: unsupported"));
}

/// A PRE_BUILD script without a `#!` line: dkms's `exec $run` is bash's, and bash runs such a
/// file as a bash script (`[[ ]]` works), from the build directory.
#[test]
fn pre_build_script_without_a_shebang_runs_as_bash_runs_it() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    let script = src.join("prep");
    fs::write(
        &script,
        "# no #! line\n[[ $1 == --flag ]] && echo \"ran with $1 in $PWD\" >prep-ran\n",
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    append(&src.join("dkms.conf"), "PRE_BUILD=\"prep --flag\"\n");
    build(r.path(), &src, &k, &[]).success();
    let build_dir = work_base(r.path(), &src, &k).join("build");
    let ran = fs::read_to_string(build_dir.join("prep-ran")).unwrap();
    assert_eq!(
        ran.trim(),
        format!("ran with --flag in {}", build_dir.display())
    );
    assert!(installed(r.path(), &k, "gpl_hello.ko").is_file());
}

#[test]
fn help_tells_of_reuse_rebuild_and_the_exit_codes() {
    let top = rtool(["dkms", "--help"]).run().success().stdout();
    for want in [
        "--rebuild",
        "without compiling",
        "2 usage",
        "7 the module source",
        "8 the build failed",
    ] {
        assert!(top.contains(want), "{want}: {top}");
    }
    let b = rtool(["dkms", "build", "--help"]).run().success().stdout();
    assert!(
        b.contains("--rebuild") && b.contains("without compiling"),
        "{b}"
    );
    rtool(["dkms", "build"]).run().status(2);
}

#[test]
fn dry_run_names_the_steps_and_builds_nothing() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    let before = common::tree::listing(r.path(), &[]);
    let out = build(r.path(), &src, &k, &["-n"]).success().stdout();
    let dest = r
        .path()
        .join("usr/lib/modules")
        .join(&k)
        .join("updates/dkms/gpl_hello.ko");
    for step in [
        format!("gpl-hello 1.0 for {k}: would"),
        format!("copy {} to ", src.display()),
        "and compile it there".to_string(),
        format!("install {}", dest.display()),
        format!("run depmod {k}"),
        "nothing was compiled or installed".to_string(),
    ] {
        assert!(
            out.contains(&step),
            "{step:?} missing from the plan:\n{out}"
        );
    }
    assert_eq!(
        common::tree::listing(r.path(), &[]),
        before,
        "nothing changed, not even --work"
    );
}

#[test]
fn json_reports_built_refused_and_failed_with_logs_and_causes() {
    let (r, k) = target();
    let src = module("gpl-hello", r.path());
    let j = build(r.path(), &src, &k, &["--json"]).success().json();
    assert_eq!(j["ok"], true);
    let res = &j["results"][0];
    assert_eq!(
        (
            res["module"].as_str(),
            res["version"].as_str(),
            res["kernel"].as_str(),
            res["status"].as_str()
        ),
        (
            Some("gpl-hello"),
            Some("1.0"),
            Some(k.as_str()),
            Some("built")
        ),
        "{j}"
    );
    assert!(Path::new(res["log"].as_str().unwrap()).is_file(), "{j}");
    let installed = res["installed"].as_array().unwrap();
    assert_eq!(installed.len(), 1);
    assert!(Path::new(installed[0].as_str().unwrap()).is_file());
    assert!(
        res["built"][0].as_str().unwrap().ends_with("gpl_hello.ko"),
        "{j}"
    );
    assert_eq!(res["depmod"], true);

    // Built once, a dry run says it would reuse the build (the dry run's other half is
    // dry_run_names_the_steps_and_builds_nothing; this build is not done twice).
    let j = build(r.path(), &src, &k, &["-n", "--json"])
        .success()
        .json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["results"][0]["status"], "would-reuse", "{j}");

    let old = module("meta-old", r.path());
    let j = build(r.path(), &old, &k, &["--json"]).status(1).json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["results"][0]["status"], "refused");
    assert!(
        j["results"][0]["reason"].as_str().unwrap().contains("5.15"),
        "{j}"
    );

    let bad = module("cddl-gplonly", r.path());
    let j = build(r.path(), &bad, &k, &["--json"]).status(8).json();
    let res = &j["results"][0];
    assert_eq!(res["status"], "failed", "{j}");
    assert!(Path::new(res["log"].as_str().unwrap()).is_file());
    assert_eq!(res["causes"][0]["kind"], "gpl-only", "{j}");

    // A source that does not exist: the error as JSON.
    let e = build(r.path(), Path::new("nosuch/1.0"), &k, &["--json"]).status(7);
    assert_eq!(e.json()["error"]["applet"], "dkms");
    assert_eq!(e.json()["error"]["exit"].as_u64(), Some(e.code() as u64));
}
