//! `rtool extract` against the real peers: packages built by makepkg, the real Arch packages,
//! extraction compared with bsdtar, hostile archives, truncation, a full filesystem.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{fixtures, in_mount_ns, real_arch, rtool, Cmd};

fn pkg(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("extract-")
        .tempdir()
        .expect("tempdir")
}

/// Everything about every entry below `dir` (the directory itself excluded): type, mode,
/// owner, size, mtime, link target, extended attributes, content, and which names share an
/// inode. Two trees are identical when their descriptions are.
fn describe(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let ft = m.file_type();
            let mut desc = format!(
                "{} mode={:o} uid={} gid={} mtime={}.{:09}",
                if ft.is_dir() {
                    "dir"
                } else if ft.is_symlink() {
                    "link"
                } else if ft.is_file() {
                    "file"
                } else {
                    "other"
                },
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec()
            );
            if ft.is_symlink() {
                desc += &format!(" -> {}", fs::read_link(&p).unwrap().display());
            } else if ft.is_file() {
                let data = fs::read(&p).unwrap();
                desc += &format!(" size={} sum={:x}", data.len(), fnv(&data));
                let f = fs::File::open(&p).unwrap();
                let xattrs = rtool::archive::rooted::xattrs(std::os::fd::AsFd::as_fd(&f)).unwrap();
                for (k, v) in xattrs {
                    desc += &format!(" xattr:{}={:02x?}", String::from_utf8_lossy(&k), v);
                }
                if m.nlink() > 1 {
                    let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                    desc += &format!(" inode-of={}", first.display());
                }
            } else if ft.is_dir() {
                stack.push(p.clone());
            }
            out.insert(rel, desc);
        }
    }
    out
}

/// A 64-bit FNV-1a: enough to tell contents apart in a comparison.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

#[track_caller]
fn assert_same_tree(ours: &Path, theirs: &Path) {
    let (a, b) = (describe(ours), describe(theirs));
    if a != b {
        let mut diff = Vec::new();
        for (k, v) in &a {
            match b.get(k) {
                Some(w) if w == v => {}
                Some(w) => diff.push(format!("{}:\n  rtool  {v}\n  bsdtar {w}", k.display())),
                None => diff.push(format!("{}: only rtool has it", k.display())),
            }
        }
        for k in b.keys().filter(|k| !a.contains_key(*k)) {
            diff.push(format!("{}: only bsdtar has it", k.display()));
        }
        panic!(
            "trees differ in {} entries:\n{}",
            diff.len(),
            diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(!a.is_empty(), "nothing was extracted");
}

/// rtool and bsdtar extract the same package into sibling directories.
fn both(p: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = scratch();
    let (ours, theirs) = (d.path().join("rtool"), d.path().join("bsdtar"));
    fs::create_dir_all(&ours).unwrap();
    fs::create_dir_all(&theirs).unwrap();
    rtool(["extract", "-q", "-C"])
        .arg(&ours)
        .arg(p)
        .run()
        .success();
    // pacman's own flags; the metadata members stay out, as pacman keeps them out.
    Cmd::new("bsdtar")
        .args(["-xpf"])
        .arg(p)
        .args([
            "--numeric-owner",
            "--xattrs",
            "--exclude",
            ".PKGINFO",
            "--exclude",
            ".BUILDINFO",
            "--exclude",
            ".MTREE",
            "--exclude",
            ".INSTALL",
            "-C",
        ])
        .arg(&theirs)
        .run()
        .success();
    (d, ours, theirs)
}

#[test]
fn small_packages_extract_exactly_like_bsdtar() {
    for name in [
        "rtool-small-1.0-1-x86_64.pkg.tar.zst",
        "rtool-epoch-2:3.1-4-x86_64.pkg.tar.xz",
        "rtool-gz-1.0-1-x86_64.pkg.tar.gz",
        "rtool-bz2-1.0-1-x86_64.pkg.tar.bz2",
        "rtool-plain-1.0-1-x86_64.pkg.tar",
    ] {
        let (_d, ours, theirs) = both(&pkg(name));
        assert_same_tree(&ours, &theirs);
    }
}

#[test]
fn small_package_keeps_every_kind_of_entry() {
    let (_d, ours, _) = both(&pkg("rtool-small-1.0-1-x86_64.pkg.tar.zst"));
    let mode = |p: &str| fs::symlink_metadata(ours.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("usr/bin/rs-setuid"), 0o4755);
    assert_eq!(mode("usr/bin/rs-setgid"), 0o2755);
    assert_eq!(mode("var/spool/rtool-small"), 0o1777);
    let owned = fs::metadata(ours.join("usr/share/rtool-small/owned-by-1234")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1234, 2345));
    let a = fs::metadata(ours.join("usr/share/rtool-small/hardlink-a")).unwrap();
    let b = fs::metadata(ours.join("usr/share/rtool-small/hardlink-b")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(
        fs::read_link(ours.join("usr/lib/rs-abs")).unwrap(),
        Path::new("/usr/lib/rtool-small/lib.so.1")
    );
    assert!(ours
        .join("usr/share/rtool-small/café ünïcode.txt")
        .is_file());
    let f = fs::File::open(ours.join("usr/bin/rs-ping")).unwrap();
    let x = rtool::archive::rooted::xattrs(std::os::fd::AsFd::as_fd(&f)).unwrap();
    assert!(
        x.iter().any(|(k, _)| k == b"security.capability"),
        "the file capability survived: {x:?}"
    );
    assert!(
        !ours.join(".PKGINFO").exists() && !ours.join(".INSTALL").exists(),
        "metadata stays out"
    );
}

#[test]
fn all_extracts_the_metadata_too() {
    let d = scratch();
    rtool(["extract", "-q", "--all", "-C"])
        .arg(d.path())
        .arg(pkg("rtool-small-1.0-1-x86_64.pkg.tar.zst"))
        .run()
        .success();
    for f in [".PKGINFO", ".MTREE", ".BUILDINFO", ".INSTALL"] {
        assert!(d.path().join(f).is_file(), "{f}");
    }
}

#[test]
fn kernel_module_tree_extracts_exactly_like_bsdtar() {
    let (_d, ours, theirs) = both(&pkg("rtool-kmod-1.0-1-x86_64.pkg.tar.zst"));
    let n = describe(&ours).len();
    assert!(n > 4000, "only {n} entries");
    assert_same_tree(&ours, &theirs);
    rtool(["extract", "--verify", "-C"])
        .arg(&ours)
        .arg(pkg("rtool-kmod-1.0-1-x86_64.pkg.tar.zst"))
        .run()
        .success()
        .stdout_has("all match");
}

#[test]
fn real_arch_packages_list_extract_and_verify() {
    for name in [
        "cmatrix-2.0-3-x86_64.pkg.tar.zst",
        "archey3.pkg.tar.xz",
        "acpi_call-dkms.pkg.tar.zst",
    ] {
        let p = real_arch(name);
        let ours = rtool(["extract", "-t"]).arg(&p).run().success().stdout();
        let theirs = Cmd::new("bsdtar")
            .arg("-tf")
            .arg(&p)
            .run()
            .success()
            .stdout();
        assert_eq!(ours, theirs, "{name}: listing");
        let (_d, a, b) = both(&p);
        assert_same_tree(&a, &b);
        rtool(["extract", "--verify", "-C"])
            .arg(&a)
            .arg(&p)
            .run()
            .success()
            .stdout_has("all match");
    }
}

#[test]
fn info_shows_the_pkginfo() {
    let p = real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst");
    rtool(["extract", "--info"])
        .arg(&p)
        .run()
        .success()
        .stdout_has("Name            : cmatrix\n")
        .stdout_has("Version         : 2.0-3\n")
        .stdout_has("Depends On      : ncurses\n")
        .stdout_has(
            "Optional Deps   : kbd: cmatrix-tty custom font\n                  \
             xterm: cmatrix-tty custom font\n",
        )
        .stdout_has("Compression     : zstd\n");
    let j = rtool(["extract", "--info", "--json"])
        .arg(&p)
        .run()
        .success()
        .json();
    assert_eq!(j["pkgname"], "cmatrix");
    assert_eq!(j["compression"], "zstd");
    // Bytes and seconds are numbers.
    assert!(j["size"].as_u64().is_some_and(|n| n > 0), "{j}");
    assert!(
        j["builddate"].as_u64().is_some_and(|n| n > 1_600_000_000),
        "{j}"
    );
    let e = rtool(["extract", "--info", "--json"])
        .arg(pkg("rtool-epoch-2:3.1-4-x86_64.pkg.tar.xz"))
        .run()
        .success()
        .json();
    assert_eq!(e["pkgver"], "2:3.1-4");
}

/// `pacman -Qip` and `--info` as `Label : value` pairs; a value's further lines (pacman's
/// optional dependencies) are kept with it.
fn qip_fields(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if let Some(more) = line.strip_prefix(&" ".repeat(18)) {
            if let Some(v) = last.as_ref().and_then(|k| m.get_mut(k)) {
                let v: &mut String = v;
                v.push('\n');
                v.push_str(more);
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(" : ") {
            m.insert(k.trim_end().to_string(), v.to_string());
            last = Some(k.trim_end().to_string());
        }
    }
    m
}

/// `--info` says what `pacman -Qip` says, field by field, for every field both print: the
/// build date in pacman's format and local time (a TZ with summer time), sizes as pacman
/// rounds them, one optional dependency a line (or None).
#[test]
fn info_prints_what_pacman_qip_prints() {
    assert!(
        common::which("pacman").is_some(),
        "pacman is missing (scripts/test-deps.sh)"
    );
    let tz = "CET-1CEST,M3.5.0,M10.5.0/3";
    for name in [
        "cmatrix-2.0-3-x86_64.pkg.tar.zst",
        "archey3.pkg.tar.xz",
        "acpi_call-dkms.pkg.tar.zst",
    ] {
        let p = real_arch(name);
        let ours = rtool(["extract", "--info"])
            .arg(&p)
            .env("TZ", tz)
            .run()
            .success()
            .stdout();
        let theirs = Cmd::new("pacman")
            .arg("-Qip")
            .arg(&p)
            .env("TZ", tz)
            .env("LC_ALL", "C")
            .run()
            .success()
            .stdout();
        let (a, b) = (qip_fields(&ours), qip_fields(&theirs));
        let both: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
        for k in [
            "Name",
            "Version",
            "Optional Deps",
            "Installed Size",
            "Compressed Size",
            "Build Date",
        ] {
            assert!(both.iter().any(|b| *b == k), "{name}: {k} missing:\n{ours}");
        }
        for k in both {
            assert_eq!(
                a[k], b[k],
                "{name}: {k}\n--- rtool\n{ours}\n--- pacman\n{theirs}"
            );
        }
        // The layout too: the value column and the continuation lines are pacman's.
        for line in theirs.lines().filter(|l| {
            l.starts_with("Optional Deps") || l.starts_with("Build Date") || l.starts_with(' ')
        }) {
            assert!(
                ours.lines().any(|o| o == line),
                "{name}: {line:?} not in\n{ours}"
            );
        }
    }
}

/// Extracts, changes one thing, and expects --verify to name exactly that field.
#[test]
fn verify_catches_every_single_field_tampering() {
    let p = pkg("rtool-small-1.0-1-x86_64.pkg.tar.zst");
    type Tamper = fn(&Path);
    let cases: [(&str, &str, Tamper); 8] = [
        ("usr/bin/rs-tool", "mode", |r| {
            fs::set_permissions(r.join("usr/bin/rs-tool"), fs::Permissions::from_mode(0o700))
                .unwrap()
        }),
        ("usr/bin/rs-tool", "uid", |r| {
            std::os::unix::fs::lchown(r.join("usr/bin/rs-tool"), Some(7), None).unwrap()
        }),
        ("usr/bin/rs-tool", "gid", |r| {
            std::os::unix::fs::lchown(r.join("usr/bin/rs-tool"), None, Some(7)).unwrap()
        }),
        ("usr/bin/rs-tool", "size", |r| {
            let mut d = fs::read(r.join("usr/bin/rs-tool")).unwrap();
            d.push(b'\n');
            fs::write(r.join("usr/bin/rs-tool"), d).unwrap()
        }),
        ("usr/bin/rs-tool", "sha256", |r| {
            let mut d = fs::read(r.join("usr/bin/rs-tool")).unwrap();
            d[0] ^= 1;
            fs::write(r.join("usr/bin/rs-tool"), d).unwrap()
        }),
        ("usr/bin/rs-link", "link", |r| {
            fs::remove_file(r.join("usr/bin/rs-link")).unwrap();
            std::os::unix::fs::symlink("elsewhere", r.join("usr/bin/rs-link")).unwrap()
        }),
        ("usr/bin/rs-tool", "type", |r| {
            fs::remove_file(r.join("usr/bin/rs-tool")).unwrap();
            fs::create_dir(r.join("usr/bin/rs-tool")).unwrap()
        }),
        ("usr/bin/rs-tool", "missing", |r| {
            fs::remove_file(r.join("usr/bin/rs-tool")).unwrap()
        }),
    ];
    for (path, field, tamper) in cases {
        let d = scratch();
        rtool(["extract", "-q", "-C"])
            .arg(d.path())
            .arg(&p)
            .run()
            .success();
        rtool(["extract", "--verify", "-C"])
            .arg(d.path())
            .arg(&p)
            .run()
            .success();
        tamper(d.path());
        let out = rtool(["extract", "--verify", "--json", "-C"])
            .arg(d.path())
            .arg(&p)
            .run()
            .status(1);
        let j = out.json();
        let found: Vec<(String, String)> = j["mismatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["path"].as_str().unwrap().to_string(),
                    m["field"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![(path.to_string(), field.to_string())],
            "tampering {field}"
        );
    }
}

/// A tree around the root whose every file must stay as it was.
fn sentinel_tree() -> (tempfile::TempDir, PathBuf) {
    let d = scratch();
    for f in ["sentinel.txt", "etc/passwd", "tmp/keep", "a/b/c/deep.txt"] {
        let p = d.path().join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, f).unwrap();
    }
    let root = d.path().join("a/b/root");
    fs::create_dir_all(&root).unwrap();
    (d, root)
}

fn snapshot_outside(top: &Path, root: &Path) -> BTreeMap<PathBuf, String> {
    describe(top)
        .into_iter()
        .filter(|(p, _)| !top.join(p).starts_with(root))
        .collect()
}

const HOST_ESCAPES: [&str; 3] = [
    "/tmp/rtool-abs-escape.txt",
    "/etc/rtool-pwned",
    "/tmp/rtool-pwned",
];

#[test]
fn hostile_archives_are_refused_and_nothing_escapes() {
    let dir = fixtures().join("hostile");
    // (file, refused?, what the error must say)
    let cases: [(&str, bool, &str); 35] = [
        ("dotdot.pkg.tar", true, "contains '..'"),
        ("dotdot.pkg.tar.zst", true, "contains '..'"),
        ("dotdot.pkg.tar.xz", true, "contains '..'"),
        ("dotdot.pkg.tar.gz", true, "contains '..'"),
        ("absolute.pkg.tar", false, ""),
        ("absolute.pkg.tar.zst", false, ""),
        ("symlink-then-file.pkg.tar", true, "beyond the symlink etc"),
        (
            "symlink-then-file.pkg.tar.zst",
            true,
            "beyond the symlink etc",
        ),
        ("symlink-rel-escape.pkg.tar", true, "beyond the symlink up"),
        (
            "abs-symlink-dir.pkg.tar",
            true,
            "beyond the symlink usr/lib/x",
        ),
        (
            "abs-symlink-dir.pkg.tar.zst",
            true,
            "beyond the symlink usr/lib/x",
        ),
        ("hardlink-outside.pkg.tar", true, "hard link to /etc/passwd"),
        (
            "hardlink-outside.pkg.tar.zst",
            true,
            "hard link to /etc/passwd",
        ),
        (
            "hardlink-via-symlink.pkg.tar",
            true,
            "not a file extracted from this package",
        ),
        ("symlink-loop.pkg.tar", true, "beyond the symlink a"),
        ("device.pkg.tar", true, "a char device: refused"),
        (
            "huge-size.pkg.tar",
            true,
            "bytes short of the size in its header",
        ),
        (
            "huge-size.pkg.tar.zst",
            true,
            "bytes short of the size in its header",
        ),
        (
            "huge-size-octal.pkg.tar",
            true,
            "bytes short of the size in its header",
        ),
        ("bad-checksum.pkg.tar", true, "checksum mismatch"),
        ("bad-checksum.pkg.tar.zst", true, "checksum mismatch"),
        (
            "pax-path-escape.pkg.tar",
            true,
            "member ../pax-escape.txt: the name contains '..'",
        ),
        ("gnu-longname-escape.pkg.tar", true, "contains '..'"),
        ("not-an-archive.pkg.tar.zst", true, "HTML page"),
        (
            "truncated.pkg.tar.zst",
            true,
            "corrupt or truncated package",
        ),
        ("empty.pkg.tar.zst", true, "the file is empty"),
        (
            "long-component.pkg.tar",
            true,
            "a name component of 300 bytes, beyond the file system's limit (255)",
        ),
        (
            "long-pax-path.pkg.tar",
            true,
            "the name of 6033 bytes exceeds the kernel's limit (4095)",
        ),
        (
            "dir-then-file.pkg.tar",
            true,
            "usr/x is in the archive twice, first as a directory, then as a file",
        ),
        (
            "symlink-then-same-file.pkg.tar",
            true,
            "usr/y is in the archive twice, first as a symlink, then as a file",
        ),
        ("pax-size-huge.pkg.tar", true, "bad pax size record"),
        (
            "pax-size-negative.pkg.tar",
            true,
            "bad pax size record \"-5\"",
        ),
        ("pax-size-text.pkg.tar", true, "bad pax size record \"abc\""),
        (
            "zeros.pkg.tar.zst",
            true,
            "not a pacman package: it has no .PKGINFO",
        ),
        (
            "no-pkginfo.pkg.tar",
            true,
            "not a pacman package: usr/ comes before any .PKGINFO",
        ),
    ];
    let listed: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed.len(),
        cases.len(),
        "every hostile fixture has a case: {listed:?}"
    );
    for (file, refused, says) in cases {
        let (top, root) = sentinel_tree();
        let before = snapshot_outside(top.path(), &root);
        let out = rtool(["extract", "-q", "-C"])
            .arg(&root)
            .arg(dir.join(file))
            .run();
        if refused {
            let out = out.status(3);
            assert!(
                out.stderr().contains(says),
                "{file}: stderr lacks {says:?}:\n{}",
                out.stderr()
            );
        } else {
            out.success();
        }
        assert_eq!(
            snapshot_outside(top.path(), &root),
            before,
            "{file}: something changed outside the root"
        );
        for p in HOST_ESCAPES {
            assert!(
                !Path::new(p).exists(),
                "{file}: {p} was written on the host"
            );
        }
        // No member may be left half-written: a huge declared size leaves no file behind.
        assert!(
            !root.join("usr/share/huge.bin").exists(),
            "{file}: partial file left"
        );
    }
    // Absolute names are taken relative to the root.
    let (_top, root) = sentinel_tree();
    rtool(["extract", "-q", "-C"])
        .arg(&root)
        .arg(dir.join("absolute.pkg.tar"))
        .run()
        .success();
    assert!(root.join("tmp/rtool-abs-escape.txt").is_file());
    // A bare tar is unpacked, in the same jail, when asked for.
    let (_top, root) = sentinel_tree();
    rtool(["extract", "-q", "--raw", "-C"])
        .arg(&root)
        .arg(dir.join("no-pkginfo.pkg.tar"))
        .run()
        .success();
    assert!(root.join("usr/bare.txt").is_file());
}

#[test]
fn devices_are_created_only_when_asked() {
    let d = scratch();
    rtool(["extract", "-q", "--devices", "-C"])
        .arg(d.path())
        .arg(fixtures().join("hostile/device.pkg.tar"))
        .run()
        .success();
    use std::os::unix::fs::FileTypeExt;
    let t = fs::symlink_metadata(d.path().join("dev/null2")).unwrap();
    assert!(t.file_type().is_char_device());
    assert_eq!(t.rdev(), libc::makedev(1, 3));
    assert!(fs::symlink_metadata(d.path().join("dev/rtool-fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn targets_own_absolute_symlinks_resolve_inside_the_root() {
    // The installed system has /lib -> /usr/lib (absolute); a package member lib/rtool/x must
    // land in ROOT/usr/lib/rtool/x, never in the host's /usr/lib.
    let d = scratch();
    let root = d.path().join("root");
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
    let src = d.path().join("src");
    fs::create_dir_all(src.join("lib/rtool-test-abs")).unwrap();
    fs::write(src.join("lib/rtool-test-abs/x"), "inside").unwrap();
    fs::write(src.join(".PKGINFO"), "pkgname = t\npkgver = 1-1\n").unwrap();
    let tarball = d.path().join("t.pkg.tar");
    Cmd::new("bsdtar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .args([
            ".PKGINFO",
            "lib/",
            "lib/rtool-test-abs",
            "lib/rtool-test-abs/x",
        ])
        .run()
        .success();
    rtool(["extract", "-q", "-C"])
        .arg(&root)
        .arg(&tarball)
        .run()
        .success();
    assert_eq!(
        fs::read_to_string(root.join("usr/lib/rtool-test-abs/x")).unwrap(),
        "inside"
    );
    assert!(
        fs::symlink_metadata(root.join("lib"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the target's symlink stays"
    );
    assert!(
        !Path::new("/usr/lib/rtool-test-abs").exists(),
        "written on the host"
    );
}

/// Cutting a package anywhere gives a clear error, and leaves no file truncated: what is on
/// disk afterwards is complete (verify reports only missing entries). A plain tar cut only
/// in its trailing record padding has lost nothing: it must then extract completely.
#[test]
fn package_truncated_at_every_sixteenth_is_refused() {
    for name in [
        "rtool-small-1.0-1-x86_64.pkg.tar.zst",
        "rtool-plain-1.0-1-x86_64.pkg.tar",
        "rtool-epoch-2:3.1-4-x86_64.pkg.tar.xz",
        "rtool-gz-1.0-1-x86_64.pkg.tar.gz",
        "rtool-bz2-1.0-1-x86_64.pkg.tar.bz2",
    ] {
        let full = fs::read(pkg(name)).unwrap();
        let d = scratch();
        for k in 1..16 {
            let cut = d.path().join(format!("cut-{k}-{name}"));
            fs::write(&cut, &full[..full.len() * k / 16]).unwrap();
            let root = d.path().join(format!("root-{k}"));
            fs::create_dir(&root).unwrap();
            let out = rtool(["extract", "-q", "-C"]).arg(&root).arg(&cut).run();
            if out.code() == 0 {
                assert!(
                    name.ends_with(".pkg.tar"),
                    "{name} cut at {k}/16 was accepted"
                );
                rtool(["extract", "--verify", "-C"])
                    .arg(&root)
                    .arg(pkg(name))
                    .run()
                    .success()
                    .stdout_has("all match");
                continue;
            }
            assert!(
                out.code() == 3,
                "{name} cut at {k}/16: exit {}\n{}",
                out.code(),
                out.stderr()
            );
            assert!(
                out.stderr().contains("corrupt or truncated")
                    || out.stderr().contains("unknown compression"),
                "{name} at {k}/16: {}",
                out.stderr()
            );
            let v = rtool(["extract", "--verify", "--json", "-C"])
                .arg(&root)
                .arg(pkg(name))
                .run();
            let j = v.json();
            for m in j["mismatches"].as_array().unwrap() {
                assert_eq!(
                    m["field"], "missing",
                    "{name} at {k}/16 left a damaged entry: {m}"
                );
            }
        }
    }
}

#[test]
fn full_filesystem_is_named_and_no_partial_file_stays() {
    let d = scratch();
    let small = d.path().join("small");
    fs::create_dir(&small).unwrap();
    let p = real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst");
    let script = format!(
        "mount -t tmpfs -o size=48k tiny '{s}'\n\
         set +e\n\"$RTOOL\" extract -q -C '{s}' '{p}' 2> '{d}/err'; echo $? > '{d}/code'\nset -e\n\
         \"$RTOOL\" extract --verify --json -C '{s}' '{p}' > '{d}/verify.json' || true",
        s = small.display(),
        p = p.display(),
        d = d.path().display()
    );
    in_mount_ns(&script, &[]).success();
    let code = fs::read_to_string(d.path().join("code")).unwrap();
    let err = fs::read_to_string(d.path().join("err")).unwrap();
    assert_eq!(code.trim(), "4", "{err}");
    assert!(
        err.contains(&format!(
            "no space left on {} (tmpfs tiny)",
            small.display()
        )),
        "{err}"
    );
    assert!(err.contains("48 KiB in all"), "{err}");
    assert!(err.contains("the partial file was removed"), "{err}");
    assert!(err.contains("hint: "), "{err}");
    let j: serde_json::Value =
        serde_json::from_slice(&fs::read(d.path().join("verify.json")).unwrap()).unwrap();
    let fields: Vec<&str> = j["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["field"].as_str().unwrap())
        .collect();
    assert!(
        !fields.is_empty() && fields.iter().all(|f| *f == "missing"),
        "{j:#}"
    );
}

#[test]
fn replacing_files_and_conflicts() {
    let p = pkg("rtool-small-1.0-1-x86_64.pkg.tar.zst");
    let d = scratch();
    let r = d.path();
    rtool(["extract", "-C"]).arg(r).arg(&p).run().success();
    // Again: every file is replaced (atomically), nothing conflicts.
    rtool(["extract", "-C"])
        .arg(r)
        .arg(&p)
        .run()
        .success()
        .stdout_has("replaced");
    rtool(["extract", "--verify", "-C"])
        .arg(r)
        .arg(&p)
        .run()
        .success();

    // A directory where the package has a file: refused, then allowed with --force when empty.
    fs::remove_file(r.join("usr/bin/rs-tool")).unwrap();
    fs::create_dir(r.join("usr/bin/rs-tool")).unwrap();
    rtool(["extract", "-q", "-C"])
        .arg(r)
        .arg(&p)
        .run()
        .status(4)
        .stderr_has("a directory is on disk where the package has a file: not replaced")
        .stderr_has("--force");
    rtool(["extract", "-q", "--force", "-C"])
        .arg(r)
        .arg(&p)
        .run()
        .success();
    assert!(r.join("usr/bin/rs-tool").is_file());

    // A non-empty directory is never replaced.
    fs::remove_file(r.join("usr/bin/rs-tool")).unwrap();
    fs::create_dir(r.join("usr/bin/rs-tool")).unwrap();
    fs::write(r.join("usr/bin/rs-tool/precious"), "keep").unwrap();
    rtool(["extract", "-q", "--force", "-C"])
        .arg(r)
        .arg(&p)
        .run()
        .status(4)
        .stderr_has("non-empty directory");
    assert_eq!(
        fs::read_to_string(r.join("usr/bin/rs-tool/precious")).unwrap(),
        "keep"
    );
}

#[test]
fn existing_directories_keep_their_mode_and_owner() {
    let d = scratch();
    let usr = d.path().join("usr");
    fs::create_dir(&usr).unwrap();
    fs::set_permissions(&usr, fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::lchown(&usr, Some(1000), Some(1000)).unwrap();
    rtool(["extract", "-q", "-C"])
        .arg(d.path())
        .arg(real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst"))
        .run()
        .success();
    let m = fs::metadata(&usr).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o750, 1000, 1000));
}

#[test]
fn dry_run_writes_nothing() {
    let d = scratch();
    let out = rtool(["extract", "-n", "-C"])
        .arg(d.path())
        .arg(real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst"))
        .run()
        .success()
        .stdout();
    assert!(out.contains("create   file usr/bin/cmatrix"), "{out}");
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn root_option_is_the_default_directory() {
    let d = scratch();
    // Not an installed system (no /etc, no /usr): --root refuses it before anything.
    rtool(["extract", "-q", "--root"])
        .arg(d.path())
        .arg(real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst"))
        .run()
        .status(2)
        .stderr_has("not an installed system (it has no /etc and no /usr)");
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    for s in ["etc", "usr"] {
        fs::create_dir(d.path().join(s)).unwrap();
    }
    rtool(["extract", "-q", "--root"])
        .arg(d.path())
        .arg(real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst"))
        .run()
        .success();
    assert!(d.path().join("usr/bin/cmatrix").is_file());
    rtool(["extract", "-q", "-C"])
        .arg(d.path().join("missing"))
        .arg(real_arch("cmatrix-2.0-3-x86_64.pkg.tar.zst"))
        .run()
        .status(7)
        .stderr_has("no such directory");
}
