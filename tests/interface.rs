//! One interface across applets: plain ASCII in 80 columns under `LANG=C` (every `--help`,
//! `--list`, the findings of `doctor` and `preflight`, hints), the glyphs under a UTF-8 locale,
//! and the same refusal, before anything changes, from every applet that needs root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{real_arch, rtool, Cmd, Done, FakeRoot};
use rtool::kernel::bzimage::fake_image;

const KVER: &str = "6.2.8-arch1-1";

/// rtool under the plainest console: `COLUMNS=80 LANG=C LC_ALL=C`.
fn plain<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    rtool(args)
        .env("COLUMNS", "80")
        .env("LANG", "C")
        .env("LC_ALL", "C")
}

/// Every line of both streams is ASCII and at most 80 columns.
#[track_caller]
fn assert_plain(what: &str, out: &Done) {
    for (stream, bytes) in [("stdout", &out.0.stdout), ("stderr", &out.0.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        if let Some(b) = bytes.iter().find(|b| !b.is_ascii()) {
            panic!("{what}: {stream} has the non-ASCII byte {b:#x}:\n{text}");
        }
        for line in text.lines() {
            assert!(
                line.len() <= 80,
                "{what}: {stream} has a line of {} columns:\n{line}\n--- all of it\n{text}",
                line.len()
            );
        }
    }
}

/// The applet names `rtool --list` prints.
fn applets() -> Vec<String> {
    let list = plain(["--list"]).run().success();
    assert_plain("rtool --list", &list);
    list.stdout()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// The subcommands a help text lists under `Commands:` (clap's `help` left out).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description goes on further in.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_help_and_the_list_fit_80_ascii_columns() {
    let names = applets();
    assert!(names.len() >= 15, "{names:?}");
    for top in [&["--help"][..], &["--list"], &["--version"]] {
        assert_plain(&format!("rtool {top:?}"), &plain(top).run().success());
    }
    for a in &names {
        for flag in ["--help", "-h"] {
            let out = plain([a.as_str(), flag]).run().success();
            assert_plain(&format!("rtool {a} {flag}"), &out);
            for sub in subcommands(&out.stdout()) {
                let o = plain([a.as_str(), sub.as_str(), flag]).run().success();
                assert_plain(&format!("rtool {a} {sub} {flag}"), &o);
            }
        }
    }
    // A long help still says everything: the text is wrapped, not cut.
    let help = plain(["extract", "--help"]).run().success().stdout();
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let wide = rtool(["extract", "--help"]).run().success().stdout();
    assert_eq!(
        words(&help),
        words(&wide.replace('\u{2026}', "...")),
        "{help}"
    );
}

/// A system after the incident: a kernel without its modules or initramfs, a zfs DKMS source
/// not built for it, /boot in fstab but not mounted, one kernel only.
fn broken_root() -> FakeRoot {
    let r = FakeRoot::new();
    r.write(
        "/etc/fstab",
        "zroot/ROOT/default / zfs rw 0 0\nUUID=ABCD-1234 /boot vfat rw 0 2\n",
    );
    r.write("/boot/vmlinuz-linux", fake_image(KVER));
    r.write("/boot/vmlinuz-linux-zen", fake_image("6.2.8-zen1-1-zen"));
    r.mkdir("/usr/lib/modules/6.2.8-zen1-1-zen/kernel");
    r.write(
        "/usr/src/zfs-2.1.9/dkms.conf",
        "PACKAGE_NAME=zfs\nPACKAGE_VERSION=2.1.9\nBUILT_MODULE_NAME[0]=zfs\n\
         BUILT_MODULE_LOCATION[0]=module/zfs/\nDEST_MODULE_LOCATION[0]=/extra\nAUTOINSTALL=yes\n",
    );
    r.write(
        "/usr/src/zfs-2.1.9/META",
        "Name: zfs\nVersion: 2.1.9\nLinux-Maximum: 6.1\nLinux-Minimum: 3.10\n",
    );
    r.write("/etc/pacman.conf", "[options]\n");
    r
}

/// The running system: a live ISO whose kernel has no modules, no network, no sshd.
fn broken_host(root: &Path) -> FakeRoot {
    let h = FakeRoot::new();
    h.write("/proc/sys/kernel/osrelease", format!("{KVER}\n"))
        .write(
            "/proc/meminfo",
            "MemTotal: 16318480 kB\nMemFree: 300000 kB\nMemAvailable: 300000 kB\nSwapTotal: 0 kB\n",
        )
        .write(
            "/proc/self/mountinfo",
            format!(
                "21 1 0:20 / / rw - overlay airootfs rw\n\
                 40 21 0:40 / {} rw - zfs zroot/ROOT/default rw\n",
                root.display()
            ),
        )
        .write("/proc/1/comm", "systemd\n")
        .mkdir("/run/archiso/cowspace")
        .mkdir("/sys/class/net");
    h
}

#[test]
fn findings_and_hints_fit_80_ascii_columns() {
    let r = broken_root();
    let h = broken_host(r.path());
    for args in [&["preflight"][..], &["doctor"]] {
        let out = plain(args).arg("--root").arg(r.path()).host(h.path()).run();
        assert_plain(&format!("rtool {args:?}"), &out);
        assert_eq!(out.code(), 1, "{}{}", out.stdout(), out.stderr());
        // Long next steps were there, and go on under their own text.
        assert!(
            out.stdout()
                .lines()
                .any(|l| l.len() > 12 && l[..12].trim().is_empty() && !l[12..].starts_with(' ')),
            "{}",
            out.stdout()
        );
    }
    let pre = plain(["preflight", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .stdout();
    // Next steps are commands to paste: real names, the target through `rtool chroot`.
    let one_line = pre.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        format!(
            "`rtool chroot {} -- mkinitcpio -p linux`",
            r.path().display()
        ),
        format!(
            "`rtool fetch-pkg --match-kernel={KVER}`, then `rtool extract -C {} \
             linux-6.2.8.arch1-1-x86_64.pkg.tar.zst`",
            r.path().display()
        ),
    ] {
        assert!(one_line.contains(&want), "{want}\n--- in\n{pre}");
    }
    for placeholder in ["VERSION", "KVER", "DIR`", "POOL", "<name>"] {
        assert!(!pre.contains(placeholder), "{placeholder} in\n{pre}");
    }

    // Hints wrap under their own text.
    let out = plain(["doctor", "--root", "/nonexistent"]).run().status(2);
    assert_plain("rtool doctor --root /nonexistent", &out);
    assert!(
        out.stderr().lines().nth(2).is_some_and(|l| l.len() > 14
            && l[..14].trim().is_empty()
            && !l[14..].starts_with(' ')),
        "a hint of three lines, its text in one column:\n{}",
        out.stderr()
    );
}

#[test]
fn glyphs_only_under_a_utf8_locale() {
    let r = FakeRoot::new();
    r.write("/etc/pacman.conf", "[options]\n");
    let plan = |env: &[(&str, &str)]| {
        let mut c = rtool(["hook", "install", "-n", "--root"]).arg(r.path());
        for (k, v) in env {
            c = c.env(k, v);
        }
        c.run().success().stdout()
    };
    let utf8 = plan(&[("LANG", "en_US.UTF-8")]);
    assert!(utf8.contains(" \u{2014} "), "{utf8}");
    let c = plan(&[("LANG", "C")]);
    assert!(c.is_ascii() && c.contains(" -- "), "{c}");
    // LC_ALL wins over LANG, as setlocale has it.
    let c = plan(&[("LANG", "en_US.UTF-8"), ("LC_ALL", "POSIX")]);
    assert!(c.is_ascii(), "{c}");
}

/// Every file below `dir`: type, mode, size, modification time, link target.
fn listing(dir: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let md = fs::symlink_metadata(&p).expect("lstat");
            let link = fs::read_link(&p)
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            m.insert(
                p.display().to_string(),
                format!(
                    "{:o} {} {} {} {link}",
                    md.mode(),
                    md.len(),
                    md.mtime(),
                    md.mtime_nsec()
                ),
            );
            if md.is_dir() {
                todo.push(p);
            }
        }
    }
    m
}

/// Everything below `dir` readable by others, as an installed system's files are.
fn open_up(dir: &Path) {
    for (p, _) in listing(dir) {
        let p = Path::new(&p);
        if !p.is_symlink() {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn applets_that_need_root_say_so_first_and_change_nothing() {
    let r = broken_root();
    r.mkdir(&format!("/usr/lib/modules/{KVER}/kernel"));
    r.write("/var/lib/rtool/kernel-keep/6.1.0-arch1-1/modules.dep", "");
    let h = broken_host(r.path());
    h.write("/sys/module/dummy/initstate", "live\n");
    let pkg = real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst");
    let pkg = pkg.to_str().expect("a UTF-8 path");
    let root = r.path().to_str().expect("a UTF-8 path").to_string();
    open_up(r.path());
    open_up(h.path());
    let (before_r, before_h) = (listing(r.path()), listing(h.path()));

    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let cases: Vec<Vec<&str>> = vec![
        vec!["kernel-keep", "--root", &root],
        vec!["kernel-keep", "--restore", "--root", &root],
        vec!["kernel-keep", "--prune", "--root", &root],
        vec!["boot-guard", "--root", &root],
        vec!["boot-guard", "--undo", "--root", &root],
        vec!["cowspace", "4G"],
        vec!["chroot", &root],
        vec!["dkms", "build", "zfs/2.1.9", "-k", KVER, "--root", &root],
        vec!["hook", "install", "--root", &root],
        vec!["hook", "remove", "--root", &root],
        vec!["install", "--root", &root, pkg],
        vec!["modprobe", "--root", &root, "dummy"],
        vec!["rmmod", "dummy"],
        vec!["sfp-unlock"],
        vec!["pubkey", "--root", &root, "add", "/nonexistent.pub"],
        vec!["pubkey", "--root", &root, "remove", fp],
    ];
    for args in &cases {
        let applet = args[0];
        let out = Cmd::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(common::bin())
            .args(args)
            .host(h.path())
            .run();
        let err = out.stderr();
        let mut lines = err.lines();
        let (first, hint) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        assert!(
            first.starts_with(&format!(
                "{applet}: error: rtool {applet} must be run as root ("
            )),
            "{args:?}:\n{err}"
        );
        assert!(
            hint.starts_with(&format!(
                "{applet}: hint: run it as root: `sudo {} {}",
                common::bin().display(),
                args.join(" ")
            )),
            "{args:?}:\n{err}"
        );
        assert_eq!(lines.next(), None, "{args:?}: one error, one hint:\n{err}");
        assert_eq!(out.code(), 7, "{args:?}:\n{err}");
        assert_eq!(out.stdout(), "", "{args:?}");
        assert_eq!(listing(r.path()), before_r, "{args:?} changed the root");
        assert_eq!(listing(h.path()), before_h, "{args:?} changed the host");
    }
    // What only reads, or only plans, needs no root.
    for (args, code) in [
        (vec!["kernel-keep", "--list", "--root", &root], 0),
        (vec!["kernel-keep", "-n", "--root", &root], 0),
        // 1: the hooks are not installed on this root, which is what it reports.
        (vec!["hook", "status", "--root", &root], 1),
    ] {
        let out = Cmd::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(common::bin())
            .args(&args)
            .host(h.path())
            .run();
        assert!(
            !out.stderr().contains("must be run as root"),
            "{args:?}:\n{}",
            out.stderr()
        );
        // It did its work: its own status, and a report or plan on stdout.
        assert_eq!(out.code(), code, "{args:?}:\n{}", out.stderr());
        assert_ne!(out.stdout(), "", "{args:?}");
    }
    assert_eq!(listing(r.path()), before_r);
}
