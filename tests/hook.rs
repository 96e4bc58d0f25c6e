//! `rtool hook` with the real pacman: a test root, a `file://` repository made by `repo-add`
//! from packages the real `makepkg` built (tests/fixtures/make-hook-packages.sh), pacman
//! running the installed hooks chrooted into the root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{bin, in_mount_ns, rtool, Cmd, Done};

/// The packages, built once per test binary and kept between runs.
fn packages() -> &'static Path {
    common::hook_packages()
}

/// A stand-in for mkinitcpio's hook, run by busybox inside the root: the kernel goes to
/// /boot/vmlinuz-PKGBASE, and its modules directory into a gzip-compressed newc initramfs.
const FAKE_MKINITCPIO: &str = r#"bb=/bin/busybox
while read -r target; do
	d=/${target%/vmlinuz}
	kver=${d##*/}
	base=$($bb cat "$d/pkgbase")
	$bb mkdir -p /boot /var/tmp
	$bb cp "$d/vmlinuz" "/boot/vmlinuz-$base"
	w=/var/tmp/initramfs-build
	$bb rm -rf "$w"
	$bb mkdir -p "$w/usr/lib/modules"
	$bb cp -r "$d" "$w/usr/lib/modules/$kver"
	(cd "$w" && $bb find . | $bb cpio -o -H newc 2>/dev/null | $bb gzip) > "/boot/initramfs-$base.img"
	$bb rm -rf "$w"
done
"#;

/// A system root that the real pacman manages, with its own repository.
struct System {
    dir: tempfile::TempDir,
}

impl System {
    fn new() -> System {
        let dir = tempfile::Builder::new()
            .prefix("rtool-hook-")
            .tempdir()
            .unwrap();
        let s = System { dir };
        for d in [
            "repo",
            "root/var/lib/pacman",
            "root/var/cache/pacman/pkg",
            "root/bin",
            "root/proc",
            "root/etc/pacman.d/hooks",
            "root/usr/local/sbin",
        ] {
            fs::create_dir_all(s.dir.path().join(d)).unwrap();
        }
        s.write(
            "etc/pacman.conf",
            &format!(
                "[options]\nArchitecture = auto\nSigLevel = Never\n\n[test]\nServer = file://{}\n",
                s.repo().display()
            ),
        );
        fs::copy("/bin/busybox", s.at("bin/busybox")).unwrap();
        s.write("usr/local/sbin/fake-mkinitcpio", FAKE_MKINITCPIO);
        s.write(
            "etc/pacman.d/hooks/90-fake-mkinitcpio.hook",
            "[Trigger]\nOperation = Install\nOperation = Upgrade\nType = Path\nTarget = usr/lib/modules/*/vmlinuz\n\n\
             [Action]\nDescription = Installing the kernel into /boot (a stand-in for mkinitcpio)...\n\
             When = PostTransaction\nExec = /bin/busybox sh /usr/local/sbin/fake-mkinitcpio\nNeedsTargets\n",
        );
        s
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn at(&self, p: &str) -> PathBuf {
        self.root().join(p.trim_start_matches('/'))
    }
    fn write(&self, p: &str, text: &str) {
        fs::write(self.at(p), text).unwrap();
    }
    /// Puts package files (`linux-6.2.8.arch1-1`) into the repository; newer versions replace
    /// older ones in its database, as on a mirror.
    fn offer(&self, pkgs: &[&str]) {
        let mut files = Vec::new();
        for p in pkgs {
            let f = format!("{p}-x86_64.pkg.tar.zst");
            fs::copy(packages().join(&f), self.repo().join(&f)).unwrap();
            files.push(self.repo().join(f));
        }
        Cmd::new("repo-add")
            .arg("-q")
            .arg(self.repo().join("test.db.tar.gz"))
            .args(files)
            .run()
            .success();
    }
    fn pacman(&self, args: &[&str]) -> Done {
        Cmd::new("pacman").args(self.pacman_args()).args(args).run()
    }
    fn pacman_args(&self) -> Vec<String> {
        let r = self.root().display().to_string();
        [
            "--root",
            &r,
            "--config",
            &format!("{r}/etc/pacman.conf"),
            "--hookdir",
            &format!("{r}/etc/pacman.d/hooks"),
            "--cachedir",
            &format!("{r}/var/cache/pacman/pkg"),
            "--noconfirm",
        ]
        .map(String::from)
        .to_vec()
    }
    fn hook_install(&self) {
        rtool(["hook", "install", "--root"])
            .arg(self.root())
            .run()
            .success();
    }
    /// The installed version of a package, from the local database.
    fn installed(&self, name: &str) -> Option<String> {
        fs::read_dir(self.at("var/lib/pacman/local"))
            .ok()?
            .flatten()
            .find_map(|e| {
                let d = e.file_name().to_string_lossy().into_owned();
                let mut it = d.rsplitn(3, '-');
                let (rel, ver, n) = (it.next()?, it.next()?, it.next()?);
                (n == name).then(|| format!("{ver}-{rel}"))
            })
    }
    /// The system before the upgrade: the hooks, then `pkgs` installed from the repository.
    fn with(pkgs: &[&str]) -> System {
        let s = System::new();
        s.hook_install();
        s.offer(pkgs);
        let names: Vec<&str> = pkgs
            .iter()
            .map(|p| p.rsplitn(3, '-').nth(2).unwrap())
            .collect();
        s.pacman(&[&["-Syy"][..], &names].concat()).success();
        s
    }
}

#[test]
fn the_incidents_upgrade_is_refused_before_anything_changes() {
    let s = System::with(&["linux-6.1.12.arch1-1", "zfs-dkms-2.1.9-1"]);
    s.offer(&["linux-6.2.8.arch1-1"]);
    let out = s.pacman(&["-Syyu"]).status(1);
    let text = out.stdout();
    for want in [
        "linux 6.2.8.arch1-1: zfs 2.1.9 supports Linux 3.10 – 6.1; 6.2.8.arch1-1 is newer",
        "(/usr/src/zfs-2.1.9/META)",
        "`IgnorePkg = linux`",
        "`rtool fetch-pkg 'linux<6.2'`",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert!(
        out.stderr().contains("failed to run transaction hooks"),
        "{}",
        out.stderr()
    );
    assert_eq!(s.installed("linux").as_deref(), Some("6.1.12.arch1-1"));
    assert!(!s.at("usr/lib/modules/6.2.8-arch1-1").exists());
    // The check runs first and stops pacman's hook run: nothing was kept either.
    assert!(!s.at("var/lib/rtool/kernel-keep").exists());
    assert!(!s.at("boot/vmlinuz-linux-prev").exists());
}

#[test]
fn a_kernel_inside_the_range_goes_through_and_the_old_one_stays_bootable() {
    let s = System::with(&["linux-6.1.12.arch1-1", "zfs-dkms-2.1.9-1"]);
    s.offer(&["linux-6.1.20.arch1-1"]);
    let out = s.pacman(&["-Syyu"]).success().stdout();
    assert!(
        out.contains("linux 6.1.20.arch1-1: ZFS supports it"),
        "{out}"
    );
    assert_eq!(s.installed("linux").as_deref(), Some("6.1.20.arch1-1"));
    // pacman removed 6.1.12's modules; kernel-keep put them back for vmlinuz-linux-prev.
    assert!(
        s.at("usr/lib/modules/6.1.12-arch1-1/kernel/drivers/block/loop.ko.zst")
            .is_file(),
        "{out}"
    );
    assert_eq!(
        rtool::kernel::bzimage::release(&s.at("boot/vmlinuz-linux-prev")).unwrap(),
        "6.1.12-arch1-1"
    );
    assert_eq!(
        rtool::kernel::bzimage::release(&s.at("boot/vmlinuz-linux")).unwrap(),
        "6.1.20-arch1-1"
    );
    assert!(out.contains("restored"), "{out}");
}

#[test]
fn zfs_with_a_higher_maximum_in_the_same_transaction_lets_the_kernel_through() {
    let s = System::with(&["linux-6.1.12.arch1-1", "zfs-dkms-2.1.9-1"]);
    s.offer(&["linux-6.2.8.arch1-1", "zfs-dkms-2.1.10-1"]);
    // The incoming zfs-dkms's META is read from the package pacman downloaded.
    let out = s.pacman(&["-Syyu"]).success().stdout();
    assert!(
        out.contains("linux 6.2.8.arch1-1: ZFS supports it"),
        "{out}"
    );
    assert_eq!(s.installed("linux").as_deref(), Some("6.2.8.arch1-1"));
    assert_eq!(s.installed("zfs-dkms").as_deref(), Some("2.1.10-1"));
}

#[test]
fn zfs_linux_built_for_one_kernel_blocks_any_other() {
    let s = System::with(&["linux-6.1.12.arch1-1", "zfs-linux-2.1.9_6.1.12.arch1.1-1"]);
    s.offer(&["linux-6.2.8.arch1-1"]);
    // pacman's own dependency check would stop this; with it off, the hook still does.
    let out = s
        .pacman(&["-Syyu", "--nodeps", "--nodeps"])
        .status(1)
        .stdout();
    assert!(
        out.contains("linux 6.2.8.arch1-1: zfs-linux 2.1.9_6.1.12.arch1.1-1 has modules for linux=6.1.12.arch1-1 only"),
        "{out}"
    );
    assert!(
        out.contains("`rtool fetch-pkg 'linux=6.1.12.arch1-1'`"),
        "{out}"
    );
    assert_eq!(s.installed("linux").as_deref(), Some("6.1.12.arch1-1"));
}

#[test]
fn without_zfs_the_check_is_silent_and_a_good_upgrade_has_no_banner() {
    let s = System::with(&["linux-6.1.12.arch1-1"]);
    s.offer(&["linux-6.2.8.arch1-1"]);
    let out = s.pacman(&["-Syyu"]).success().stdout();
    assert!(
        !out.contains(": ZFS supports it") && !out.contains("REFUSED"),
        "{out}"
    );
    assert!(out.contains("rtool preflight: /"), "{out}");
    assert!(!out.contains("DO NOT REBOOT"), "{out}");
    assert!(s.at("usr/lib/modules/6.1.12-arch1-1/vmlinuz").is_file());
}

#[test]
fn preflights_banner_follows_a_bad_upgrade() {
    // Root on ZFS, a zfs-dkms that claims 6.2, and no DKMS build: the incident's initramfs.
    let s = System::with(&["linux-6.1.12.arch1-1", "zfs-dkms-2.1.10-1"]);
    s.write(
        "etc/fstab",
        "zroot/ROOT/default / zfs rw,xattr,posixacl 0 0\n",
    );
    s.offer(&["linux-6.2.8.arch1-1"]);
    // pacman ignores what a PostTransaction hook returns: the text is the alarm.
    let out = s.pacman(&["-Syyu"]).success().stdout();
    assert_eq!(s.installed("linux").as_deref(), Some("6.2.8.arch1-1"));
    assert!(
        out.contains("[FAIL] initramfs: initramfs-linux.img lacks zfs"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] dkms: zfs/2.1.10 is not built for 6.2.8-arch1-1"),
        "{out}"
    );
    assert!(out.contains("!!  DO NOT REBOOT"), "{out}");
}

#[test]
fn a_downgrade_from_a_package_file_is_judged_by_that_file() {
    // The broken state the check exists to prevent, made without the hooks.
    let s = System::new();
    s.offer(&["linux-6.2.8.arch1-1", "zfs-dkms-2.1.9-1"]);
    s.pacman(&["-Sy", "linux", "zfs-dkms"]).success();
    s.hook_install();
    // The way back: the sync database still says 6.2.8, the file says 6.1.12. With /proc in
    // the root (as on a real system or in arch-chroot) the hook sees pacman's command line.
    let file = packages().join("linux-6.1.12.arch1-1-x86_64.pkg.tar.zst");
    let script = format!(
        "mount -t proc proc \"$ROOT/proc\"\npacman {} -U \"$FILE\"",
        s.pacman_args()
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = in_mount_ns(
        &script,
        &[("ROOT", s.root().as_os_str()), ("FILE", file.as_os_str())],
    )
    .success()
    .stdout();
    assert!(
        out.contains("linux 6.1.12.arch1-1: ZFS supports it"),
        "{out}"
    );
    assert_eq!(s.installed("linux").as_deref(), Some("6.1.12.arch1-1"));
}

#[test]
fn install_is_idempotent_and_remove_takes_exactly_its_files() {
    let s = System::new();
    let hooks = s.at("etc/pacman.d/hooks");
    let listing = || {
        let mut v: Vec<String> = fs::read_dir(&hooks)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let plan = rtool(["hook", "install", "-n", "--root"])
        .arg(s.root())
        .run()
        .success()
        .stdout();
    assert!(
        plan.contains("00-rtool-zfs-kernel.hook: would be installed")
            && plan.contains("would be copied from"),
        "{plan}"
    );
    assert_eq!(listing(), before, "--dry-run changed nothing");
    rtool(["hook", "status", "--root"])
        .arg(s.root())
        .run()
        .status(1)
        .stdout_has("missing");

    let first = rtool(["hook", "install", "--root"])
        .arg(s.root())
        .run()
        .success()
        .stdout();
    assert!(
        first.contains("usr/local/bin/rtool: copied from")
            && first.contains("00-rtool-zfs-kernel.hook: installed"),
        "{first}"
    );
    let ours: Vec<String> = listing()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(ours.len(), 4, "{ours:?}");
    for n in &ours {
        let text = fs::read_to_string(hooks.join(n)).unwrap();
        assert!(
            text.starts_with("# Written by `rtool hook install`"),
            "{n}: {text}"
        );
        assert!(text.contains("Exec = /usr/local/bin/rtool "), "{n}: {text}");
    }
    // The hooks' targets are the kernels the check knows.
    let check = fs::read_to_string(hooks.join("00-rtool-zfs-kernel.hook")).unwrap();
    for k in rtool::kernel::zfs::KERNEL_PACKAGES {
        assert!(check.contains(&format!("Target = {k}\n")), "{check}");
    }
    let copy = s.at("usr/local/bin/rtool");
    assert_eq!(fs::read(&copy).unwrap(), fs::read(bin()).unwrap());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&copy).unwrap().permissions())
            & 0o7777,
        0o755
    );
    let again = rtool(["hook", "install", "--root"])
        .arg(s.root())
        .run()
        .success()
        .stdout();
    assert!(
        again.contains("usr/local/bin/rtool: this binary already")
            && !again.contains(": installed"),
        "{again}"
    );
    rtool(["hook", "status", "--root"])
        .arg(s.root())
        .run()
        .success();

    // An older rtool's hook is replaced; a file of another origin under one of the names is
    // never touched.
    fs::write(
        hooks.join("01-rtool-kernel-keep.hook"),
        "# Written by `rtool hook install`; `rtool hook remove` deletes it.\n[Trigger]\n",
    )
    .unwrap();
    rtool(["hook", "status", "--root"])
        .arg(s.root())
        .run()
        .status(1)
        .stdout_has("OUTDATED");
    rtool(["hook", "install", "--root"])
        .arg(s.root())
        .run()
        .success()
        .stdout_has("01-rtool-kernel-keep.hook: updated");
    fs::write(hooks.join("99-rtool-preflight.hook"), "# my own\n").unwrap();
    rtool(["hook", "install", "--root"])
        .arg(s.root())
        .run()
        .status(4)
        .stderr_has("was not written by rtool");
    fs::write(hooks.join("50-other.hook"), "[Trigger]\n").unwrap();

    let removed = rtool(["hook", "remove", "--root"])
        .arg(s.root())
        .run()
        .success();
    assert!(
        removed
            .stderr()
            .contains("99-rtool-preflight.hook: not written by rtool: left alone"),
        "{}",
        removed.stderr()
    );
    assert_eq!(
        removed.stdout().matches(": removed").count(),
        3,
        "{}",
        removed.stdout()
    );
    let mut expected = [
        &before[..],
        &[
            "50-other.hook".to_string(),
            "99-rtool-preflight.hook".to_string(),
        ],
    ]
    .concat();
    expected.sort();
    assert_eq!(listing(), expected);
    assert_eq!(
        fs::read_to_string(hooks.join("99-rtool-preflight.hook")).unwrap(),
        "# my own\n"
    );
    assert!(copy.is_file(), "the binary stays");
}

/// A `HookDir` in pacman.conf replaces /etc/pacman.d/hooks: the hooks go where pacman reads.
#[test]
fn a_configured_hook_dir_is_where_the_hooks_go() {
    let r = common::FakeRoot::new();
    r.write(
        "/etc/pacman.conf",
        "[options]\nHookDir = /etc/pacman.d/site-hooks/\n[core]\nInclude = /etc/pacman.d/mirrorlist\n",
    );
    rtool(["hook", "install", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout_has("etc/pacman.d/site-hooks/00-rtool-zfs-kernel.hook: installed");
    assert!(r
        .at("/etc/pacman.d/site-hooks/99-rtool-preflight.hook")
        .is_file());
    assert!(!r.at("/etc/pacman.d/hooks").exists());
    rtool(["hook", "status", "--root"])
        .arg(r.path())
        .run()
        .success();
    rtool(["hook", "remove", "--root"])
        .arg(r.path())
        .run()
        .success();
    assert_eq!(
        fs::read_dir(r.at("/etc/pacman.d/site-hooks"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn status_json_names_each_hook_and_its_state() {
    let r = common::FakeRoot::new();
    r.write("/etc/pacman.conf", "[options]\nArchitecture = auto\n");
    let before = rtool(["hook", "status", "--json", "--root"])
        .arg(r.path())
        .run()
        .status(1);
    let j = before.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["binary"]["present"], false);
    let hooks = j["hooks"].as_array().unwrap();
    assert!(hooks.len() >= 3, "{j}");
    assert!(hooks.iter().all(|h| h["state"] == "missing"), "{j}");

    rtool(["hook", "install", "--root"])
        .arg(r.path())
        .run()
        .success();
    // A file of that name rtool did not write is reported, not claimed.
    let first = hooks[0]["path"].as_str().unwrap().to_string();
    fs::write(&first, "[Trigger]\n").unwrap();
    let j = rtool(["hook", "status", "--json", "--root"])
        .arg(r.path())
        .run()
        .status(1)
        .json();
    assert_eq!(j["binary"]["present"], true);
    let states: Vec<&str> = j["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(states[0], "foreign", "{j}");
    assert!(states[1..].iter().all(|s| *s == "installed"), "{j}");
}
