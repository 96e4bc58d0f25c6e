//! `rtool stick`: a stick prepared from an Arch-like fake root against the loopback archive
//! (real nginx over TLS, real gpg-signed packages), then used with the network gone: `fetch-pkg
//! --offline` and `verify` from the stick's own binary and keyring, and `stick check`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::gnupg::{disable, pacman_key, Agent, RepoKey};
use common::server::{archive, archive_root, keys, tls, Nginx};
use common::{in_mount_ns, rtool, Cmd, Done, FakeRoot};

const LINUX: &str = "linux-6.2.10.arch1-1-x86_64.pkg.tar.zst";
const PREVIOUS: &str = "linux-6.2.8.arch1-1-x86_64.pkg.tar.zst";

fn sha256(p: &Path) -> String {
    let out = Cmd::new("sha256sum").arg(p).run().success().stdout();
    out.split_whitespace().next().unwrap().to_string()
}

/// The system the stick is for: linux 6.2.10 and zfs-utils installed (and zfs-dkms, which the
/// archive does not have), root on zroot/ROOT/default, the ESP on /boot, Arch's keyring as
/// archlinux-keyring installed it.
fn target() -> FakeRoot {
    let r = FakeRoot::new();
    r.symlink("usr/lib", "/lib")
        .write("/usr/lib/modules/6.2.10-arch1-1/pkgbase", "linux\n")
        .write("/etc/hostname", "archzfs\n")
        .write(
            "/etc/fstab",
            "# <file system> <dir> <type> <options> <dump> <pass>\n\
             zroot/ROOT/default / zfs rw,xattr,noacl 0 0\n\
             UUID=1234-ABCD /boot vfat rw,relatime 0 2\n",
        );
    for (n, v) in [
        ("linux", "6.2.10.arch1-1"),
        ("zfs-utils", "2:2.1.9-1"),
        ("zfs-dkms", "2.1.9-1"),
        ("archlinux-keyring", "20230320-1"),
    ] {
        r.write(
            &format!("/var/lib/pacman/local/{n}-{v}/desc"),
            format!("%NAME%\n{n}\n\n%VERSION%\n{v}\n\n"),
        );
    }
    let mut mtree = String::from("#mtree\n/set type=file uid=0 gid=0 mode=644\n");
    for f in ["archlinux.gpg", "archlinux-trusted", "archlinux-revoked"] {
        let src = archive().join("keyring").join(f);
        r.write(
            &format!("/usr/share/pacman/keyrings/{f}"),
            fs::read(&src).unwrap(),
        );
        mtree.push_str(&format!(
            "./usr/share/pacman/keyrings/{f} sha256digest={}\n",
            sha256(&src)
        ));
    }
    let db = r.at("/var/lib/pacman/local/archlinux-keyring-20230320-1");
    fs::write(db.join("mtree.txt"), mtree).unwrap();
    Cmd::new("sh")
        .arg("-c")
        .arg("gzip -c mtree.txt > mtree && rm mtree.txt")
        .current_dir(&db)
        .run()
        .success();
    r
}

/// The running machine: one NIC driven by ixgbe.
fn host() -> FakeRoot {
    let h = FakeRoot::new();
    h.write("/sys/class/net/enp1s0f0/type", "1\n")
        .write("/sys/class/net/lo/type", "772\n")
        .mkdir("/sys/bus/pci/drivers/ixgbe")
        .symlink(
            "../../../../bus/pci/drivers/ixgbe",
            "/sys/class/net/enp1s0f0/device/driver",
        );
    h
}

/// `rtool stick prepare` with the options in `args`, then the stick, then the SPECs in `args`.
fn prepare(n: &Nginx, root: &Path, host: &Path, stick: &Path, args: &[&str]) -> Done {
    rtool([
        "stick",
        "prepare",
        "--mirror",
        &n.url(),
        "--retries",
        "0",
        "--ca-file",
    ])
    .arg(&tls().ca)
    .arg("--for-root")
    .arg(root)
    .args(args.iter().filter(|a| a.starts_with('-')))
    .arg(stick)
    .args(args.iter().filter(|a| !a.starts_with('-')))
    .host(host)
    .run()
}

/// [`prepare`] onto a new, empty stick, returned with the result.
fn prepare_fresh(
    n: &Nginx,
    root: &FakeRoot,
    host: &FakeRoot,
    args: &[&str],
) -> (tempfile::TempDir, Done) {
    let stick = tempfile::tempdir().unwrap();
    let done = prepare(n, root.path(), host.path(), stick.path(), args);
    (stick, done)
}

/// Package and signature downloads in the access log (listings left out).
fn downloads(n: &Nginx) -> usize {
    n.access_log()
        .lines()
        .filter(|l| l.contains("\"GET /packages/") && l.contains(".pkg.tar"))
        .count()
}

/// Every file below `dir` with its size and mtime: what `-n` must leave exactly as it was.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            v.push((e.path(), m.len(), m.modified().unwrap()));
        }
    }
    v.sort();
    v
}

/// `sha256sum -c --strict rtool/SHA256SUMS` from the stick's top, as a person would run it.
fn sums_check(stick: &Path) -> Done {
    Cmd::new("sha256sum")
        .args(["-c", "--strict", "rtool/SHA256SUMS"])
        .current_dir(stick)
        .run()
        .success()
}

/// Checks the stick's RESCUE.txt: ASCII in 80 columns, holding each of `wants`.
fn rescue_text(stick: &Path, wants: &[&str]) {
    let rescue = fs::read_to_string(stick.join("RESCUE.txt")).unwrap();
    for l in rescue.lines() {
        assert!(l.is_ascii() && l.len() <= 80, "{l:?}");
    }
    for want in wants {
        assert!(rescue.contains(want), "{want}\n{rescue}");
    }
}

/// Runs `script` in a private mount namespace (so it may mount a small tmpfs on the stick)
/// with `$STICK`, the archive's `$URL` and `$CA`, the target `$ROOT` and the host root set.
fn in_stick_ns(n: &Nginx, root: &FakeRoot, host: &FakeRoot, stick: &Path, script: &str) -> Done {
    let url = n.url();
    in_mount_ns(
        script,
        &[
            ("STICK", stick.as_os_str()),
            ("URL", url.as_ref()),
            ("CA", tls().ca.as_os_str()),
            ("ROOT", root.path().as_os_str()),
            ("RTOOL_HOST_ROOT", host.path().as_os_str()),
        ],
    )
    .success()
}

/// Runs `args` with no network at all (a new, empty network namespace).
fn offline(args: &[&std::ffi::OsStr]) -> Done {
    Cmd::new("unshare").arg("-n").arg("--").args(args).run()
}

#[test]
fn prepared_stick_rescues_offline_and_check_catches_one_bad_byte() {
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let stick = tempfile::tempdir().unwrap();
    let s = stick.path();

    let out = prepare(&n, root.path(), host.path(), s, &[])
        .success()
        .stdout_has("matches archlinux-keyring 20230320-1")
        .stderr_has("zfs-dkms=2.1.9-1 (installed): left out")
        .stdout();
    assert!(
        out.contains("linux 6.2.8.arch1-1 (previous): downloaded"),
        "{out}"
    );

    // The layout: the running binary, its links, the keyring, the packages with signatures.
    assert_eq!(
        fs::read(s.join("rtool/bin/rtool")).unwrap(),
        fs::read(common::bin()).unwrap()
    );
    assert_eq!(
        fs::read_link(s.join("rtool/bin/fetch-pkg")).unwrap(),
        Path::new("rtool")
    );
    assert!(
        !s.join("rtool/bin/chroot").exists(),
        "chroot stays the system's own"
    );
    for f in ["archlinux.gpg", "archlinux-trusted", "archlinux-revoked"] {
        assert!(s.join("rtool/keyring").join(f).is_file(), "{f}");
    }
    let mut cached: Vec<String> = fs::read_dir(s.join("rtool/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cached.sort();
    assert_eq!(
        cached,
        [
            LINUX,
            &format!("{LINUX}.sig"),
            PREVIOUS,
            &format!("{PREVIOUS}.sig"),
            "linux-headers-6.2.10.arch1-1-x86_64.pkg.tar.zst",
            "linux-headers-6.2.10.arch1-1-x86_64.pkg.tar.zst.sig",
            "linux-headers-6.2.8.arch1-1-x86_64.pkg.tar.zst",
            "linux-headers-6.2.8.arch1-1-x86_64.pkg.tar.zst.sig",
            "zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst",
            "zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst.sig",
        ]
    );
    // SHA256SUMS is sha256sum's own format, and covers the binary.
    let sums = fs::read_to_string(s.join("rtool/SHA256SUMS")).unwrap();
    assert!(
        sums.contains("  rtool/bin/rtool\n")
            && sums.contains("  RESCUE.txt\n")
            && sums.contains("  rtool/man/rtool.1\n"),
        "{sums}"
    );
    // The manual is the binary's own, readable in place.
    assert_eq!(
        fs::read_to_string(s.join("rtool/man/rtool.1")).unwrap(),
        common::rtool(["--generate", "man"])
            .run()
            .success()
            .stdout()
    );
    sums_check(s);

    // RESCUE.txt: this machine's values in the commands, ASCII, 80 columns.
    rescue_text(
        s,
        &[
            "RESCUE STICK FOR archzfs",
            "zpool import -N -R /mnt zroot",
            "zfs mount zroot/ROOT/default",
            "mount UUID=1234-ABCD /mnt/boot",
            "rtool modprobe ixgbe",
            "linux 6.2.10.arch1-1 (6.2.10-arch1-1)",
            "linux=6.2.8.arch1-1",
            "linux-headers=6.2.8.arch1-1",
            "rtool chroot --zpool zroot --mount-boot /mnt",
        ],
    );

    // A rerun finds everything there and verified: no package or signature is downloaded.
    let before = downloads(&n);
    assert_eq!(before, 10, "{}", n.access_log());
    prepare(&n, root.path(), host.path(), s, &[])
        .success()
        .stdout_has("linux 6.2.10.arch1-1 (installed): already on the stick");
    assert_eq!(downloads(&n), before, "{}", n.access_log());

    // No network from here on: the stick's own binary, links and keyring.
    let bin = s.join("rtool/bin/rtool");
    let cache = s.join("rtool/cache");
    let keyring = s.join("rtool/keyring");
    let scratch = tempfile::tempdir().unwrap();
    offline(&[
        bin.as_os_str(),
        "fetch-pkg".as_ref(),
        "--mirror".as_ref(),
        n.url().as_ref(),
        "--ca-file".as_ref(),
        tls().ca.as_os_str(),
        "--keyring".as_ref(),
        keyring.as_os_str(),
        "--retries".as_ref(),
        "0".as_ref(),
        "-o".as_ref(),
        scratch.path().as_os_str(),
        "linux".as_ref(),
    ])
    .status(6);
    offline(&[
        s.join("rtool/bin/fetch-pkg").as_os_str(),
        "--offline".as_ref(),
        "-o".as_ref(),
        cache.as_os_str(),
        "--keyring".as_ref(),
        keyring.as_os_str(),
        "linux=6.2.8.arch1-1".as_ref(),
        "linux-headers=6.2.8.arch1-1".as_ref(),
    ])
    .success()
    .stdout_has("(already here, signed by Test Packager");
    offline(&[
        bin.as_os_str(),
        "verify".as_ref(),
        "--keyring".as_ref(),
        keyring.as_os_str(),
        cache.join(LINUX).as_os_str(),
        cache.join(PREVIOUS).as_os_str(),
    ])
    .success()
    .stdout_has("good signature by Test Packager");
    // RESCUE.txt's downgrade, as a plan (the fake root is no system to install into).
    offline(&[
        bin.as_os_str(),
        "install".as_ref(),
        "--root".as_ref(),
        root.path().as_os_str(),
        "--offline".as_ref(),
        "-o".as_ref(),
        cache.as_os_str(),
        "--keyring".as_ref(),
        keyring.as_os_str(),
        "-n".as_ref(),
        "linux=6.2.8.arch1-1".as_ref(),
        "linux-headers=6.2.8.arch1-1".as_ref(),
    ])
    .success()
    .stdout_has("would install linux 6.2.10.arch1-1 -> 6.2.8.arch1-1 (downgraded)");
    let report = offline(&[
        bin.as_os_str(),
        "stick".as_ref(),
        "check".as_ref(),
        s.as_os_str(),
    ])
    .success()
    .stdout();
    assert!(
        report.contains("linux 6.2.10.arch1-1: reinstall"),
        "{report}"
    );
    assert!(
        report.contains("linux 6.2.8.arch1-1: downgrade; headers too"),
        "{report}"
    );
    assert!(
        report.contains("the target's zfs-dkms 2.1.9-1 is not on the stick"),
        "{report}"
    );
    let j = offline(&[
        bin.as_os_str(),
        "stick".as_ref(),
        "check".as_ref(),
        "--json".as_ref(),
        s.as_os_str(),
    ])
    .success()
    .json();
    assert_eq!(j["ok"], true, "{j}");

    // One byte of a cached package changed: check fails, naming the file.
    let victim = cache.join(PREVIOUS);
    let mut bytes = fs::read(&victim).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    fs::write(&victim, bytes).unwrap();
    let bad = offline(&[
        bin.as_os_str(),
        "stick".as_ref(),
        "check".as_ref(),
        s.as_os_str(),
    ])
    .status(5);
    let text = bad.stdout() + &bad.stderr();
    assert!(
        text.contains(&format!("rtool/cache/{PREVIOUS}: its SHA-256 differs")),
        "{text}"
    );
    assert!(
        text.contains(&format!("rtool/cache/{PREVIOUS}: bad signature")),
        "{text}"
    );

    // Prepared again (with the network): the damaged file alone is fetched again.
    let before = downloads(&n);
    prepare(&n, root.path(), host.path(), s, &[])
        .success()
        .stderr_has(&format!("rtool/cache/{PREVIOUS}: bad signature"))
        .stdout_has("linux 6.2.8.arch1-1 (previous): downloaded");
    assert_eq!(downloads(&n), before + 2, "{}", n.access_log());
    rtool(["stick", "check"]).arg(s).run().success();
}

#[test]
fn dry_run_writes_nothing_and_shows_the_plan_with_sizes() {
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let stick = tempfile::tempdir().unwrap();
    let out = prepare(
        &n,
        root.path(),
        host.path(),
        stick.path(),
        &["-n", "cmatrix-test"],
    )
    .success()
    .stdout();
    assert!(
        out.contains(&format!("download  rtool/cache/{LINUX} (installed, 1")),
        "{out}"
    );
    assert!(
        out.contains("cmatrix-test-1.0-1-any.pkg.tar.xz (asked for"),
        "{out}"
    );
    assert!(out.contains("copy      rtool/bin/rtool from"), "{out}");
    assert!(out.contains("to write"), "{out}");
    assert_eq!(snapshot(stick.path()), vec![], "{out}");
    assert_eq!(downloads(&n), 0, "{}", n.access_log());

    // On a prepared stick -n changes nothing either.
    prepare(
        &n,
        root.path(),
        host.path(),
        stick.path(),
        &["--no-previous"],
    )
    .success();
    let before = snapshot(stick.path());
    let out = prepare(
        &n,
        root.path(),
        host.path(),
        stick.path(),
        &["-n", "--no-previous"],
    )
    .success()
    .stdout();
    assert!(
        out.contains(&format!("keep      rtool/cache/{LINUX}")),
        "{out}"
    );
    assert_eq!(snapshot(stick.path()), before);
}

#[test]
fn a_damaged_keyring_on_the_target_is_never_copied() {
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let trusted = root.at("/usr/share/pacman/keyrings/archlinux-trusted");
    let mut t = fs::read_to_string(&trusted).unwrap();
    t.push_str("0000000000000000000000000000000000000000:4:\n");
    fs::write(&trusted, t).unwrap();
    let stick = tempfile::tempdir().unwrap();
    prepare(&n, root.path(), host.path(), stick.path(), &[])
        .status(5)
        .stderr_has("archlinux-trusted: differs from what archlinux-keyring 20230320-1 installed");
    assert_eq!(snapshot(stick.path()), vec![]);
}

#[test]
fn a_stick_too_small_stops_with_an_error_and_no_half_file() {
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let stick = tempfile::tempdir().unwrap();
    // 3 MiB holds neither the binary nor the packages.
    let script = r#"
        mount -t tmpfs -o size=3m tmpfs "$STICK"
        set +e
        "$RTOOL" stick prepare --mirror "$URL" --ca-file "$CA" --retries 0 --for-root "$ROOT" "$STICK"
        echo "status=$?"
        find "$STICK" -mindepth 1 | sed 's/^/left: /'
    "#;
    let d = in_stick_ns(&n, &root, &host, stick.path(), script);
    let out = d.stdout();
    assert!(out.contains("status=4"), "{out}\n{}", d.stderr());
    assert!(!out.contains("left: "), "{out}");
    assert!(
        d.stderr().contains("free, and the stick needs about"),
        "{}",
        d.stderr()
    );
}

#[test]
fn a_stick_that_fills_up_mid_copy_keeps_the_old_file_and_no_half_one() {
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let stick = tempfile::tempdir().unwrap();
    // An old binary of the same size is on the stick: the free space looks enough for the
    // packages, but the new binary's temporary copy beside the old one fills the stick.
    let script = r#"
        size=$(stat -c %s "$RTOOL")
        mount -t tmpfs -o size=$((size + 3 * 1024 * 1024)) tmpfs "$STICK"
        mkdir -p "$STICK/rtool/bin"
        head -c "$size" /dev/zero > "$STICK/rtool/bin/rtool"
        set +e
        "$RTOOL" stick prepare --no-previous --mirror "$URL" --ca-file "$CA" --retries 0 \
            --for-root "$ROOT" "$STICK"
        echo "status=$?"
        find "$STICK" -name '*.rtool-part' | sed 's/^/half: /'
        cmp -s "$STICK/rtool/bin/rtool" <(head -c "$size" /dev/zero) && echo "old binary intact"
    "#;
    let d = in_stick_ns(&n, &root, &host, stick.path(), script);
    let (out, err) = (d.stdout(), d.stderr());
    assert!(out.contains("status=4"), "{out}\n{err}");
    assert!(!out.contains("half: "), "{out}");
    assert!(out.contains("old binary intact"), "{out}\n{err}");
    assert!(
        err.contains("no space left on") && err.contains("rtool/bin/rtool"),
        "{err}"
    );
}

#[test]
fn the_targets_pacman_cache_is_used_and_a_bad_copy_there_is_passed_over() {
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let src = archive_root().join("packages/l/linux").join(LINUX);
    let cached = root.at("/var/cache/pacman/pkg").join(LINUX);
    root.mkdir("/var/cache/pacman/pkg");
    fs::copy(&src, &cached).unwrap();
    fs::copy(
        src.with_file_name(format!("{LINUX}.sig")),
        cached.with_file_name(format!("{LINUX}.sig")),
    )
    .unwrap();
    let (stick, done) = prepare_fresh(&n, &root, &host, &["--no-previous"]);
    done.success().stdout_has(&format!(
        "linux 6.2.10.arch1-1 (installed): copied from {}",
        cached.display()
    ));
    let log = n.access_log();
    assert!(!log.contains(&format!("/{LINUX} ")), "{log}");
    assert_eq!(
        fs::read(stick.path().join("rtool/cache").join(LINUX)).unwrap(),
        fs::read(&src).unwrap()
    );

    // The cache's copy damaged: said, left alone, and the archive's is taken instead.
    let mut bytes = fs::read(&cached).unwrap();
    bytes[100] ^= 0x40;
    fs::write(&cached, &bytes).unwrap();
    let (other, done) = prepare_fresh(&n, &root, &host, &["--no-previous"]);
    done.success()
        .stderr_has(&format!("{}: bad signature", cached.display()))
        .stdout_has("linux 6.2.10.arch1-1 (installed): downloaded");
    assert_eq!(fs::read(&cached).unwrap(), bytes);
    assert_eq!(
        fs::read(other.path().join("rtool/cache").join(LINUX)).unwrap(),
        fs::read(&src).unwrap()
    );
    rtool(["stick", "check"]).arg(other.path()).run().success();
}

/// archzfs's packages: not on the archive, signed by a key outside Arch's keyring, trusted on
/// the target because the admin added and locally signed it with pacman-key. The stick carries
/// the target's pacman keyring and the package from its cache; from the stick, with no
/// network, the package verifies through that keyring (and not through Arch's), `check` and
/// RESCUE.txt use it. A key the target no longer trusts keeps its package off the stick.
#[test]
fn archzfs_packages_go_on_the_stick_with_the_targets_pacman_keyring() {
    common::require_root();
    const DKMS: &str = "zfs-dkms-2.1.9-1-x86_64.pkg.tar.zst";
    let n = Nginx::start(&archive_root(), "");
    let (root, host) = (target(), host());
    let tmp = tempfile::tempdir().unwrap();
    // The target's pacman keyring, by the real pacman-key, at pacman's default GPGDir.
    let home = root.at("/etc/pacman.d/gnupg");
    let _agent = Agent(home.clone());
    let conf = tmp.path().join("pacman.conf");
    fs::write(&conf, format!("[options]\nGPGDir = {}/\n", home.display())).unwrap();
    pacman_key(&conf, &home, &["--init"]);
    let archzfs = RepoKey::new(tmp.path(), "archzfs", "ArchZFS Bot <buildbot@archzfs.com>");
    pacman_key(&conf, &home, &["--add", &archzfs.public.to_string_lossy()]);
    pacman_key(&conf, &home, &["--lsign-key", &archzfs.fingerprint]);
    // zfs-dkms (built by makepkg, META up to Linux 6.1) in the target's cache, with its .sig.
    root.mkdir("/var/cache/pacman/pkg");
    let cached = root.at("/var/cache/pacman/pkg").join(DKMS);
    fs::copy(common::hook_packages().join(DKMS), &cached).unwrap();
    archzfs.sign(&cached);

    let stick = tempfile::tempdir().unwrap();
    let s = stick.path();
    // The plan names both keyrings' files and the package from the cache, and writes nothing.
    let plan = prepare(&n, root.path(), host.path(), s, &["--no-previous", "-n"])
        .success()
        .stdout();
    for want in [
        format!(
            "copy      rtool/gnupg/pubring.gpg from {}",
            home.join("pubring.gpg").display()
        ),
        format!(
            "copy      rtool/gnupg/trustdb.gpg from {}",
            home.join("trustdb.gpg").display()
        ),
        format!("copy      rtool/cache/{DKMS} (installed"),
    ] {
        assert!(plan.contains(&want), "{want}\n{plan}");
    }
    assert!(!s.join("rtool").exists(), "-n wrote to the stick");
    prepare(&n, root.path(), host.path(), s, &["--no-previous"])
        .success()
        .stdout_has("keyring  rtool/gnupg: ")
        .stdout_has(&format!(
            "zfs-dkms 2.1.9-1 (installed): copied from {}, signed by ArchZFS Bot \
             <buildbot@archzfs.com> (trusted through the target's pacman keyring)",
            cached.display()
        ))
        .stdout_has("zfs-utils 2:2.1.9-1 (installed): downloaded, signed by Test Packager");
    for f in ["pubring.gpg", "trustdb.gpg"] {
        assert_eq!(
            fs::read(s.join("rtool/gnupg").join(f)).unwrap(),
            fs::read(home.join(f)).unwrap(),
            "{f}"
        );
    }
    sums_check(s).stdout_has("rtool/gnupg/trustdb.gpg: OK");
    rescue_text(
        s,
        &[
            "rtool/gnupg/         the target's pacman keyring",
            "--keyring $S/rtool/gnupg",
            "zfs-dkms=2.1.9-1",
            "zfs-utils=2:2.1.9-1",
        ],
    );

    // No network: Arch's keyring does not know archzfs's key, the stick's pacman keyring does.
    let bin = s.join("rtool/bin/rtool");
    let pkg = s.join("rtool/cache").join(DKMS);
    let arch = s.join("rtool/keyring");
    let pacman = s.join("rtool/gnupg");
    let v = |keyring: &Path| {
        offline(&[
            bin.as_os_str(),
            "verify".as_ref(),
            "--keyring".as_ref(),
            keyring.as_os_str(),
            pkg.as_os_str(),
        ])
    };
    v(&arch).status(5).stderr_has("unknown key");
    v(&pacman).success().stdout_has("ArchZFS Bot");
    offline(&[
        bin.as_os_str(),
        "fetch-pkg".as_ref(),
        "--offline".as_ref(),
        "-o".as_ref(),
        s.join("rtool/cache").as_os_str(),
        "--keyring".as_ref(),
        pacman.as_os_str(),
        "zfs-dkms=2.1.9-1".as_ref(),
    ])
    .success()
    .stdout_has("already here");
    // RESCUE.txt's way: both keyrings, Arch's first, in one command for both ZFS packages.
    let utils = s.join("rtool/cache/zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst");
    offline(&[
        bin.as_os_str(),
        "verify".as_ref(),
        "--keyring".as_ref(),
        arch.as_os_str(),
        "--keyring".as_ref(),
        pacman.as_os_str(),
        utils.as_os_str(),
        pkg.as_os_str(),
    ])
    .success()
    .stdout_has("good signature by Test Packager")
    .stdout_has("good signature by ArchZFS Bot");
    offline(&[
        bin.as_os_str(),
        "install".as_ref(),
        "--root".as_ref(),
        root.path().as_os_str(),
        "--offline".as_ref(),
        "-o".as_ref(),
        s.join("rtool/cache").as_os_str(),
        "--keyring".as_ref(),
        arch.as_os_str(),
        "--keyring".as_ref(),
        pacman.as_os_str(),
        "-n".as_ref(),
        "zfs-utils=2:2.1.9-1".as_ref(),
        "zfs-dkms=2.1.9-1".as_ref(),
    ])
    .success()
    .stdout_has("would install zfs-dkms 2.1.9-1 -> 2.1.9-1 (reinstalled)")
    .stdout_has("would install zfs-utils 2:2.1.9-1 -> 2:2.1.9-1 (reinstalled)");
    let report = offline(&[
        bin.as_os_str(),
        "stick".as_ref(),
        "check".as_ref(),
        s.as_os_str(),
    ])
    .success()
    .stdout();
    for want in [
        "the target's pacman keyring",
        "(1 through the target's pacman keyring)",
        "zfs-dkms 2.1.9-1",
        // The package itself was read: its META says what it supports.
        "/usr/src/zfs-2.1.9/META",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    assert!(!report.contains("is not on the stick"), "{report}");

    // A key Arch's keyring holds but does not trust (one main-key certification) stays
    // refused though the target's pacman keyring trusts it: the keyring that holds the key
    // first decides.
    let arch_keys = archive().join("keyring/archlinux.gpg");
    pacman_key(&conf, &home, &["--add", &arch_keys.to_string_lossy()]);
    pacman_key(&conf, &home, &["--lsign-key", &keys().untrusted]);
    let badsig = archive_root().join("packages/b/badsig-pkg/badsig-pkg-1.0-1-x86_64.pkg.tar.zst");
    rtool(["verify", "--keyring"])
        .arg(&home)
        .arg(&badsig)
        .run()
        .success()
        .stdout_has("Untrusted Packager");
    // Arch's keyring first, as RESCUE.txt orders them: it holds the key, so it decides.
    rtool(["verify", "--keyring"])
        .arg(archive().join("keyring"))
        .arg("--keyring")
        .arg(&home)
        .arg(&badsig)
        .run()
        .status(5)
        .stderr_has("Untrusted Packager");
    let (_refused, done) = prepare_fresh(&n, &root, &host, &["--no-previous", "badsig-pkg=1.0-1"]);
    done.status(5)
        .stderr_has("Untrusted Packager")
        .stderr_has("certification");

    // The target stops trusting the key (disabled, as --populate does for revoked keys): a
    // new stick leaves the package out and says why and what to do.
    disable(&home, &archzfs.fingerprint);
    let (other, done) = prepare_fresh(&n, &root, &host, &["--no-previous"]);
    done.success()
        .stderr_has(&format!("{DKMS}: left out"))
        .stderr_has("disabled");
    assert!(!other.path().join("rtool/cache").join(DKMS).exists());
    rtool(["stick", "check"])
        .arg(other.path())
        .run()
        .success()
        .stdout_has("the target's zfs-dkms 2.1.9-1 is not on the stick")
        .stdout_has("pacman -Sw");
}

/// The modules a vfat and an exFAT stick need in the VM (the test machine's kernel has neither).
const STICK_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "vfat",
    "nls_cp437",
    "nls_utf8",
    "nls_ascii",
    "exfat",
];

/// What the VM does with each stick: prepare (no network: the packages come from the target's
/// cache), prepare again, the checksums by busybox's sha256sum, check, and a kernel fetched
/// offline from the stick.
const STICK_SCENARIO: &str = r#"
for m in virtio_pci virtio_blk vfat nls_cp437 nls_utf8 nls_ascii exfat; do rtool modprobe -q $m || echo "modprobe $m failed"; done
for fs in vfat exfat; do
  case $fs in vfat) dev=/dev/vda;; exfat) dev=/dev/vdb;; esac
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -b $dev ] && break; sleep 0.2; done
  S=/stick-$fs
  mkdir -p $S
  case_ $fs-mount mount -t $fs $dev $S
  case_ $fs-prepare rtool stick prepare --for-root /target --no-previous --retries 0 --mirror https://127.0.0.1:9 $S
  case_ $fs-again rtool stick prepare --for-root /target --no-previous --retries 0 --mirror https://127.0.0.1:9 $S
  case_ $fs-sums sh -c "cd $S && sha256sum -c rtool/SHA256SUMS"
  case_ $fs-ls ls -a $S/rtool/bin $S/rtool/cache
  case_ $fs-check $S/rtool/bin/rtool stick check $S
  case_ $fs-offline $S/rtool/bin/rtool fetch-pkg --offline -o $S/rtool/cache --keyring $S/rtool/keyring linux=6.2.10.arch1-1
  case_ $fs-rescue cat $S/RESCUE.txt
  case_ $fs-umount umount $S
done
"#;

/// The usual stick is vfat (or exFAT): no symbolic links, no ':' in a file name, no modes.
/// Prepared on each, in a VM running Debian's kernel, from a target whose packages are in its
/// pacman cache: the links are left out and said, the package with an epoch (zfs-utils
/// 2:2.1.9-1) is left out with the reason, everything else verifies, a rerun copies nothing,
/// `sha256sum -c` and `check` pass, and `fetch-pkg --offline` takes the kernel from the stick.
/// The images are checked by the filesystems' own fsck afterwards.
#[test]
fn a_vfat_or_exfat_stick_holds_what_it_can_and_says_what_it_cannot() {
    common::require_root();
    let root = target();
    root.mkdir("/var/cache/pacman/pkg");
    for (dir, file) in [
        ("l/linux", LINUX),
        (
            "l/linux-headers",
            "linux-headers-6.2.10.arch1-1-x86_64.pkg.tar.zst",
        ),
        ("z/zfs-utils", "zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst"),
    ] {
        for f in [file.to_string(), format!("{file}.sig")] {
            fs::copy(
                archive_root().join("packages").join(dir).join(&f),
                root.at("/var/cache/pacman/pkg").join(&f),
            )
            .unwrap();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let image = |name: &str, mkfs: &[&str]| {
        let p = tmp.path().join(name);
        Cmd::new("truncate")
            .args(["-s", "64M"])
            .arg(&p)
            .run()
            .success();
        Cmd::new(mkfs[0]).args(&mkfs[1..]).arg(&p).run().success();
        p
    };
    let vfat = image("vfat.img", &["mkfs.vfat", "-n", "RESCUE"]);
    let exfat = image("exfat.img", &["mkfs.exfat", "-L", "RESCUE"]);
    let vm = common::vm::vm("stick", STICK_MODULES);
    let opts = common::vm::Opts {
        disks: [&vfat, &exfat]
            .iter()
            .map(|p| common::vm::Disk {
                path: p.to_path_buf(),
                snapshot: false,
            })
            .collect(),
        trees: vec![(root.path().to_path_buf(), "/target".into())],
        timeout_s: Some(900),
        ..Default::default()
    };
    let c = vm.run_with(STICK_SCENARIO, &[], "", &opts);
    assert!(!c.0.contains("failed"), "{}", c.0);
    for fs in ["vfat", "exfat"] {
        let case = |n: &str| {
            let k = c.case(&format!("{fs}-{n}"));
            assert_eq!(k.rc, 0, "{fs}-{n}:\n{}", k.out);
            k.out
        };
        case("mount");
        let out = case("prepare");
        for want in [
            format!("({fs}, "),
            format!("links    none: {fs} has no symbolic links"),
            format!(
                "zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst: left out: {fs} cannot hold ':' in a file name"
            ),
            "linux 6.2.10.arch1-1 (installed): copied from /target/var/cache/pacman/pkg/"
                .to_string(),
            "linux-headers 6.2.10.arch1-1 (installed): copied from".to_string(),
        ] {
            assert!(out.contains(&want), "{fs}: {want}\n{out}");
        }
        let again = case("again");
        assert!(
            again.contains("linux 6.2.10.arch1-1 (installed): already on the stick")
                && again.contains("binary   rtool/bin/rtool: already on the stick"),
            "{fs}:\n{again}"
        );
        let sums = case("sums");
        assert!(
            sums.contains("rtool/bin/rtool: OK") && !sums.contains("FAILED"),
            "{fs}:\n{sums}"
        );
        let ls = case("ls");
        assert!(
            !ls.contains("fetch-pkg") && !ls.contains("zfs-utils") && !ls.contains("rtool-part"),
            "{fs}:\n{ls}"
        );
        let check = case("check");
        assert!(
            check.contains("linux 6.2.10.arch1-1: reinstall (the target's own); headers too"),
            "{fs}:\n{check}"
        );
        assert!(case("offline").contains("already here"), "{fs}");
        let rescue = case("rescue");
        assert!(
            rescue.contains("alias rtool=$S/rtool/bin/rtool"),
            "{fs}:\n{rescue}"
        );
        case("umount");
    }
    // The filesystems are sound after the writes and renames.
    Cmd::new("fsck.fat").arg("-n").arg(&vfat).run().success();
    Cmd::new("fsck.exfat").arg("-n").arg(&exfat).run().success();
}
