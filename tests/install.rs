//! `rtool install` judged by the real pacman: the same packages (built by the real makepkg,
//! tests/fixtures/make-install-packages.sh) go into root A with `pacman -r A -U` and into root
//! B with `rtool install --root B`, step by step; after every step the two trees, the local
//! databases (desc but for %INSTALLDATE%, files, mtree, install), pacman.log, the scriptlets'
//! and hooks' own logs must be the same. pacman then reads rtool's database: `-Qkk`, `-Qi`,
//! and an upgrade by pacman from rtool's entry.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::tree::{arch_root, listing, listing_diff, local_db, VOLATILE};
use common::{rtool, Cmd, Done};

fn pkg(name: &str) -> PathBuf {
    common::install_pkg(name)
}

/// An Arch-like root: `/bin`, `/lib`, `/sbin` link into `/usr`, busybox is the shell.
struct Sys {
    dir: tempfile::TempDir,
}

impl Sys {
    fn new() -> Sys {
        let dir = tempfile::Builder::new()
            .prefix("rtool-install-")
            .tempdir()
            .unwrap();
        let r = dir.path();
        arch_root(r);
        fs::write(
            r.join("etc/pacman.conf"),
            "[options]\nSigLevel = Never\nArchitecture = auto\n",
        )
        .unwrap();
        Sys { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn at(&self, p: &str) -> PathBuf {
        self.root().join(p)
    }
    fn pacman(&self, args: &[&str]) -> Done {
        let r = self.root().display().to_string();
        Cmd::new("pacman")
            .args([
                "--config",
                &format!("{r}/etc/pacman.conf"),
                "-r",
                &r,
                "--noconfirm",
            ])
            .args(args)
            .env("LANG", "C")
            .run()
    }
    fn rtool_install(&self, flags: &[&str], pkgs: &[PathBuf]) -> Done {
        rtool(["install", "--skip-verify", "--root"])
            .arg(self.root())
            .args(flags)
            .args(pkgs)
            .run()
    }
    /// Every path with its type, mode, owner, size, link target, md5 and link count; the
    /// logs and /tmp left out, desc without its `%INSTALLDATE%`.
    fn listing(&self) -> BTreeMap<String, String> {
        listing(self.root(), VOLATILE)
    }
    /// The local database, desc without `%INSTALLDATE%`.
    fn db(&self) -> BTreeMap<String, String> {
        local_db(self.root())
    }
    /// pacman.log without times and without the line naming the program that ran.
    fn log(&self, name: &str) -> String {
        let text = fs::read_to_string(self.at(&format!("var/log/{name}"))).unwrap_or_default();
        text.lines()
            .filter(|l| !l.contains("] Running '"))
            .map(|l| match l.split_once("] ") {
                Some((t, rest)) if t.starts_with('[') && name == "pacman.log" => rest,
                _ => l,
            })
            .map(|l| l.replace(&self.root().display().to_string(), "ROOT"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The same step on both roots; `codes` are the exit statuses expected from pacman and rtool.
#[track_caller]
fn both(a: &Sys, b: &Sys, pkgs: &[&str], codes: (i32, i32)) -> (Done, Done) {
    both_with(a, b, &[], pkgs, codes)
}

/// [`both`] with `flags` given to both tools (`--asdeps`, …).
#[track_caller]
fn both_with(a: &Sys, b: &Sys, flags: &[&str], pkgs: &[&str], codes: (i32, i32)) -> (Done, Done) {
    let files: Vec<PathBuf> = pkgs.iter().map(|p| pkg(p)).collect();
    let mut args = vec!["-U"];
    args.extend(flags);
    let strs: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(strs.iter().map(String::as_str));
    let p = a.pacman(&args);
    let r = b.rtool_install(flags, &files);
    let ctx = format!(
        "step {pkgs:?}\n--- pacman\n{}{}\n--- rtool\n{}{}",
        p.stdout(),
        p.stderr(),
        r.stdout(),
        r.stderr()
    );
    assert_eq!((p.code(), r.code()), codes, "{ctx}");
    let diff = listing_diff(&a.listing(), &b.listing());
    assert!(
        diff.is_empty(),
        "trees differ after {pkgs:?} (want: pacman's, got: rtool's):\n{}\n{ctx}",
        diff.join("\n")
    );
    assert_eq!(a.db(), b.db(), "databases differ after {pkgs:?}\n{ctx}");
    for log in ["pacman.log", "rt-script.log", "rt-hook.log"] {
        assert_eq!(
            a.log(log),
            b.log(log),
            "{log} differs after {pkgs:?}\n{ctx}"
        );
    }
    (p, r)
}

#[test]
fn pacman_and_rtool_leave_the_same_system_step_by_step() {
    common::require_root();
    let (a, b) = (Sys::new(), Sys::new());
    both(&a, &b, &["rt-base-1.0-1"], (0, 0));
    // An upgrade: files the new version lacks go (old-dir/ with them), a hard link arrives.
    both(&a, &b, &["rt-base-2.0-1"], (0, 0));
    assert!(!b.at("usr/share/rt-base/old-dir").exists());
    both(&a, &b, &["rt-cfg-1.0-1"], (0, 0));
    for s in [&a, &b] {
        fs::write(s.at("etc/rt-cfg.conf"), "setting = mine\n").unwrap();
    }
    // A changed backup file stays, the new one waits as .pacnew; untouched ones are replaced.
    let (_, r) = both(&a, &b, &["rt-cfg-2.0-1"], (0, 0));
    assert_eq!(
        fs::read_to_string(b.at("etc/rt-cfg.conf")).unwrap(),
        "setting = mine\n"
    );
    assert!(b.at("etc/rt-cfg.conf.pacnew").is_file());
    assert!(
        r.stdout().contains("/etc/rt-cfg.conf.pacnew"),
        "{}",
        r.stdout()
    );
    // Scriptlets run chrooted, with pacman's arguments.
    both(&a, &b, &["rt-script-1.0-1"], (0, 0));
    assert_eq!(
        fs::read_to_string(b.at("var/log/rt-script.log")).unwrap(),
        "pre_install 1.0-1\npost_install 1.0-1\n"
    );
    both(&a, &b, &["rt-hooks-1.0-1"], (0, 0));
    // The hooks: a Pre package hook and a Post path hook with its targets on stdin.
    both(&a, &b, &["rt-base-2.0-1"], (0, 0));
    assert!(fs::read_to_string(b.at("var/log/rt-hook.log"))
        .unwrap()
        .contains("path usr/share/rt-base/common.txt"));
    // A failing PostTransaction hook: pacman says exit 0, rtool says so loudly (8).
    let (_, r) = both(&a, &b, &["rt-script-2.0-1"], (0, 8));
    assert!(
        r.stderr().contains("FAILED: hook 60-rt-fail.hook"),
        "{}",
        r.stderr()
    );
    // Two targets in one transaction, the dependency given last; a provision satisfies.
    both(&a, &b, &["rt-needs-virtual-1.0-1", "rt-dep-1.0-1"], (0, 0));
    both(&a, &b, &["rt-needs-2-1.0-1"], (0, 0));
    // Refusals change nothing: a downgrade that breaks an installed dependency, a package
    // conflict, a file conflict.
    let (_, r) = both(&a, &b, &["rt-base-1.0-1"], (1, 1));
    assert!(
        r.stderr()
            .contains("rt-base>=2.0 (required by installed rt-needs-2)"),
        "{}",
        r.stderr()
    );
    let (_, r) = both(&a, &b, &["rt-conflict-1.0-1"], (1, 1));
    assert!(
        r.stderr()
            .contains("rt-conflict conflicts with installed rt-dep"),
        "{}",
        r.stderr()
    );
    let (_, r) = both(&a, &b, &["rt-clash-1.0-1"], (1, 1));
    assert!(
        r.stderr()
            .contains("/usr/share/rt-base/common.txt exists in filesystem (owned by rt-base)"),
        "{}",
        r.stderr()
    );

    // pacman reads rtool's database as its own.
    let norm = |s: &Sys, d: Done| d.stdout().replace(&s.root().display().to_string(), "ROOT");
    let qkk_a = norm(&a, a.pacman(&["-Qkk"]));
    let qkk_b = norm(&b, b.pacman(&["-Qkk"]));
    assert_eq!(qkk_a, qkk_b);
    assert!(
        qkk_b.contains("rt-base: 14 total files, 0 altered files"),
        "{qkk_b}"
    );
    for name in [
        "rt-base",
        "rt-cfg",
        "rt-script",
        "rt-dep",
        "rt-needs-virtual",
    ] {
        let qi = |s: &Sys| {
            s.pacman(&["-Qi", name])
                .success()
                .stdout()
                .lines()
                .filter(|l| !l.starts_with("Install Date"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(qi(&a), qi(&b), "pacman -Qi {name}");
    }
    // And pacman upgrades (here downgrades) from rtool's entries.
    for s in [&a, &b] {
        let f = pkg("rt-cfg-1.0-1").display().to_string();
        s.pacman(&["-U", &f]).success();
        let f = pkg("rt-script-1.0-1").display().to_string();
        s.pacman(&["-U", &f]).success();
    }
    assert_eq!(a.listing(), b.listing());
    assert_eq!(a.db(), b.db());
}

#[test]
fn asdeps_changelog_and_hook_depends_as_pacman_has_them() {
    common::require_root();
    let (a, b) = (Sys::new(), Sys::new());
    both(&a, &b, &["rt-base-1.0-1"], (0, 0));
    // The changelog lands in the entry, and pacman -Qc reads it back.
    both(&a, &b, &["rt-extra-1.0-1"], (0, 0));
    let qc = |s: &Sys| s.pacman(&["-Qc", "rt-extra"]).success().stdout();
    assert_eq!(qc(&a), qc(&b));
    assert!(qc(&b).contains("the first release"), "{}", qc(&b));
    // --asdeps gives %REASON% 1; of the two hooks it triggers, the one whose Depends is
    // installed runs, the other is not run: pacman says so and exits 0, rtool exits 8.
    let (_, r) = both_with(&a, &b, &["--asdeps"], &["rt-dep-1.0-1"], (0, 8));
    assert!(
        r.stderr()
            .contains("71-rt-dep-missing.hook: needs rt-absent"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        fs::read_to_string(b.at("var/log/rt-hook.log")).unwrap(),
        "70-rt-dep-ok\n"
    );
    let reason = |s: &Sys| {
        s.pacman(&["-Qi", "rt-dep"])
            .success()
            .stdout()
            .lines()
            .find(|l| l.starts_with("Install Reason"))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(reason(&a), reason(&b));
    assert!(reason(&b).contains("dependency"), "{}", reason(&b));
    // A reinstall without the flag keeps the reason it found.
    both(&a, &b, &["rt-dep-1.0-1"], (0, 0));
    assert_eq!(b.pacman(&["-Qdq"]).stdout(), "rt-dep\n");
}

#[test]
fn real_arch_packages_install_as_pacman_installs_them() {
    common::require_root();
    let (a, b) = (Sys::new(), Sys::new());
    let cmatrix = common::real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst");
    // Signed by its real packager: verified against Arch's keyring, recorded as pgp.
    let r = rtool(["install", "--nodeps", "--root"])
        .arg(b.root())
        .arg(&cmatrix)
        .run()
        .success();
    assert!(r.stderr().contains("--nodeps"), "{}", r.stderr());
    let desc = fs::read_to_string(b.at("var/lib/pacman/local/cmatrix-2.0-3/desc")).unwrap();
    assert!(desc.contains("%VALIDATION%\npgp\n"), "{desc}");
    assert!(desc.contains("%XDATA%\npkgtype=pkg\n"), "{desc}");
    let archey = common::real_arch("archey3.pkg.tar.xz");
    rtool(["install", "--nodeps", "--skip-verify", "--root"])
        .arg(b.root())
        .arg(&archey)
        .run()
        .success();
    for f in [&cmatrix, &archey] {
        a.pacman(&["-Udd", &f.display().to_string()]).success();
    }
    // The same tree; desc apart, as pacman here checked no signature (%VALIDATION% none)
    // and pacman 6.0 predates %XDATA%.
    let no_desc = |s: &Sys| {
        let mut l = s.listing();
        l.retain(|k, _| !k.ends_with("/desc"));
        l
    };
    assert_eq!(no_desc(&a), no_desc(&b));
    let desc = |s: &Sys| {
        String::from_utf8_lossy(&common::tree::strip_install_date(
            &fs::read(s.at("var/lib/pacman/local/cmatrix-2.0-3/desc")).unwrap(),
        ))
        .into_owned()
    };
    assert_eq!(
        desc(&a).replace("%VALIDATION%\nnone\n", "%VALIDATION%\npgp\n"),
        desc(&b).replace("%XDATA%\npkgtype=pkg\n\n", "")
    );
    // Debian's pacman 6.0.2 reads Arch's md5-less mtrees with complaints of its own: rtool's
    // install must draw exactly the same ones as pacman's.
    let qkk = |s: &Sys| {
        s.pacman(&["-Qkk"])
            .stdout()
            .replace(&s.root().display().to_string(), "ROOT")
    };
    assert_eq!(qkk(&a), qkk(&b));
    // Without its signature beside it, a package file is refused unless --skip-verify.
    let c = Sys::new();
    let lone = c.at("tmp/cmatrix-2.0-3-x86_64.pkg.tar.zst");
    fs::copy(&cmatrix, &lone).unwrap();
    rtool(["install", "--nodeps", "--root"])
        .arg(c.root())
        .arg(&lone)
        .run()
        .status(5)
        .stderr_has("no signature beside it");
    // A signature that does not match is refused before anything is written.
    fs::copy(
        common::real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst.sig"),
        c.at("tmp/archey3.pkg.tar.xz.sig"),
    )
    .unwrap();
    fs::copy(&archey, c.at("tmp/archey3.pkg.tar.xz")).unwrap();
    rtool(["install", "--nodeps", "--root"])
        .arg(c.root())
        .arg(c.at("tmp/archey3.pkg.tar.xz"))
        .run()
        .status(5);
    assert!(
        !c.at("var/lib/pacman/local").exists()
            || fs::read_dir(c.at("var/lib/pacman/local")).unwrap().count() == 0
    );
}

#[test]
fn specs_are_fetched_and_verified_first() {
    common::require_root();
    let b = Sys::new();
    let cache = tempfile::tempdir().unwrap();
    for f in [
        "cmatrix-2.0-3-x86_64.pkg.tar.zst",
        "cmatrix-2.0-3-x86_64.pkg.tar.zst.sig",
    ] {
        fs::copy(common::real_arch(f), cache.path().join(f)).unwrap();
    }
    rtool(["install", "--nodeps", "--offline", "-o"])
        .arg(cache.path())
        .arg("--root")
        .arg(b.root())
        .arg("cmatrix=2.0-3")
        .run()
        .success()
        .stdout_has("installed cmatrix (2.0-3)");
    assert!(b.at("usr/bin/cmatrix").is_file());
    // -n on an installed package: the plan, nothing written.
    let before = b.listing();
    rtool(["install", "-n", "--nodeps", "--offline", "-o"])
        .arg(cache.path())
        .arg("--root")
        .arg(b.root())
        .arg("cmatrix")
        .run()
        .success()
        .stdout_has("would install cmatrix 2.0-3 -> 2.0-3 (reinstalled)");
    assert_eq!(before, b.listing());
}

#[test]
fn a_kernel_downgrade_matches_pacmans_with_rtools_hooks_in_the_root() {
    common::require_root();
    let file = |p: &str| {
        common::hook_packages()
            .join(format!("{p}-x86_64.pkg.tar.zst"))
            .display()
            .to_string()
    };
    let (a, b) = (Sys::new(), Sys::new());
    for s in [&a, &b] {
        fs::create_dir_all(s.at("etc/pacman.d/hooks")).unwrap();
        s.pacman(&["-U", &file("linux-6.2.8.arch1-1")]).success();
        rtool(["hook", "install", "--root"])
            .arg(s.root())
            .run()
            .success();
    }
    // pacman -r reads the host's hook directory: point it at the root's, as the system would.
    let hookdir = a.at("etc/pacman.d/hooks").display().to_string();
    let p = a
        .pacman(&["--hookdir", &hookdir, "-U", &file("linux-6.1.20.arch1-1")])
        .success();
    let r = rtool(["install", "--skip-verify", "--root"])
        .arg(b.root())
        .arg(file("linux-6.1.20.arch1-1"))
        .run();
    let (po, ro) = (p.stdout(), format!("{}{}", r.stdout(), r.stderr()));
    assert!(
        ro.contains("downgraded linux (6.2.8.arch1-1 -> 6.1.20.arch1-1)"),
        "{ro}"
    );
    // The same hooks ran, and found the same thing: this root has no /boot, so the kernel
    // cannot be kept and preflight says the system will not boot. pacman exits 0 all the
    // same; rtool names the failed hooks and exits 8.
    for want in [
        "rtool preflight: /",
        "DO NOT REBOOT",
        "no kernel (vmlinuz-*) in /boot",
    ] {
        assert!(po.contains(want), "pacman: {want:?} missing:\n{po}");
        assert!(ro.contains(want), "rtool: {want:?} missing:\n{ro}");
    }
    assert_eq!(r.code(), 8, "{ro}");
    assert!(ro.contains("FAILED: hook 99-rtool-preflight.hook"), "{ro}");
    for s in [&a, &b] {
        assert!(s.at("usr/lib/modules/6.1.20-arch1-1/vmlinuz").is_file());
        assert!(s
            .at("var/lib/pacman/local/linux-6.1.20.arch1-1/desc")
            .is_file());
        assert!(!s.at("var/lib/pacman/local/linux-6.2.8.arch1-1").exists());
    }
    // What the newer kernel had and the older lacks is gone alike (kernel-keep may keep the
    // previous kernel's modules, in both or neither).
    assert_eq!(
        a.at("usr/lib/modules/6.2.8-arch1-1").exists(),
        b.at("usr/lib/modules/6.2.8-arch1-1").exists()
    );
    assert_eq!(a.db(), b.db());
}

#[test]
fn noextract_and_noupgrade_are_honoured_as_pacman_honours_them() {
    common::require_root();
    let (a, b) = (Sys::new(), Sys::new());
    for s in [&a, &b] {
        fs::write(
            s.at("etc/pacman.conf"),
            "[options]\nSigLevel = Never\nArchitecture = auto\n\
             NoExtract = usr/share/rt-base/only-* !usr/share/rt-base/only-v2.txt\n\
             NoUpgrade = usr/share/rt-base/common.txt\n",
        )
        .unwrap();
    }
    both(&a, &b, &["rt-base-1.0-1"], (0, 0));
    assert!(!b.at("usr/share/rt-base/only-v1.txt").exists());
    both(&a, &b, &["rt-base-2.0-1"], (0, 0));
    // The last pattern wins: only-v2.txt is extracted after all.
    assert!(b.at("usr/share/rt-base/only-v2.txt").is_file());
    assert_eq!(
        fs::read_to_string(b.at("usr/share/rt-base/common.txt")).unwrap(),
        "common v1\n"
    );
    assert!(b.at("usr/share/rt-base/common.txt.pacnew").is_file());
}
