//! `rtool initramfs` on mkinitcpio-shaped images made by the real `cpio`, `zstd`, `gzip`, `xz`,
//! `lz4 -l` and `bzip2`: an early uncompressed cpio (microcode, modules) followed by the
//! compressed main archive; listings compared with `cpio -t`; images made by Debian's real
//! `mkinitramfs` compared with its `lsinitramfs`; hostile images refused.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{rtool, Cmd};

const KVER: &str = "6.2.8-arch1-1";

/// `cpio -o -H newc` of the tree at `dir` (names as `find .` gives them) into `out`.
fn cpio_of(dir: &Path, out: &Path) {
    Cmd::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | LC_ALL=C sort | cpio --quiet -o -H newc > '{}'",
            dir.display(),
            out.display()
        ))
        .run()
        .success();
}

fn listing(cpio: &Path) -> String {
    Cmd::new("sh")
        .arg("-c")
        .arg(format!("cpio --quiet -t < '{}'", cpio.display()))
        .run()
        .success()
        .stdout()
}

struct Image {
    _d: tempfile::TempDir,
    early: PathBuf,
    main: PathBuf,
    dir: PathBuf,
}

/// Early tree (microcode, optionally zfs.ko.zst) and main tree (init, modules, optionally zfs).
fn trees(zfs_early: bool, zfs_main: bool) -> Image {
    let d = tempfile::tempdir().unwrap();
    let (e, m) = (d.path().join("early"), d.path().join("main"));
    let md = format!("usr/lib/modules/{KVER}/kernel");
    for (root, files) in [
        (
            &e,
            vec!["kernel/x86/microcode/GenuineIntel.bin".to_string()],
        ),
        (
            &m,
            vec![
                "init".to_string(),
                format!("{md}/fs/ext4/ext4.ko.zst"),
                "etc/initrd-release".into(),
            ],
        ),
    ] {
        for f in files {
            let p = root.join(&f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, format!("content of {f}\n")).unwrap();
        }
    }
    std::os::unix::fs::symlink("usr/lib", m.join("lib")).unwrap();
    if zfs_early {
        let p = e.join(&md).join("extra/zfs.ko.zst");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "zfs module").unwrap();
    }
    if zfs_main {
        let p = m.join(&md).join("extra/zfs.ko.zst");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "zfs module").unwrap();
    }
    let (early, main) = (d.path().join("early.cpio"), d.path().join("main.cpio"));
    cpio_of(&e, &early);
    cpio_of(&m, &main);
    let dir = d.path().to_path_buf();
    Image {
        _d: d,
        early,
        main,
        dir,
    }
}

/// early.cpio + padding + main.cpio compressed with `cmd` (reading stdin, writing stdout).
fn image(t: &Image, name: &str, cmd: &str) -> PathBuf {
    let out = t.dir.join(name);
    Cmd::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{e}' > '{o}' && head -c 512 /dev/zero >> '{o}' && {cmd} < '{m}' >> '{o}'",
            e = t.early.display(),
            m = t.main.display(),
            o = out.display()
        ))
        .run()
        .success();
    out
}

const COMPRESSORS: [(&str, &str); 5] = [
    ("zst", "zstd -q -c -19"),
    ("gz", "gzip -c -9"),
    ("xz", "xz -c --check=crc32"),
    ("lz4", "lz4 -q -l -c"),
    ("bz2", "bzip2 -c"),
];

#[test]
fn listing_agrees_with_cpio_segment_by_segment() {
    let t = trees(true, false);
    let want = listing(&t.early) + &listing(&t.main);
    for (ext, cmd) in COMPRESSORS {
        let img = image(&t, &format!("initramfs.{ext}.img"), cmd);
        let got = rtool(["initramfs", "ls"])
            .arg(&img)
            .run()
            .success()
            .stdout();
        assert_eq!(got, want, "{ext}");
        let long = rtool(["initramfs", "ls", "-l"])
            .arg(&img)
            .run()
            .success()
            .stdout();
        assert!(
            long.lines()
                .any(|l| l.contains("[0 none]") && l.contains("GenuineIntel.bin")),
            "{long}"
        );
        assert!(
            long.lines().any(|l| l.contains(&format!(
                "[1 {}]",
                if ext == "zst" {
                    "zstd"
                } else if ext == "gz" {
                    "gzip"
                } else if ext == "bz2" {
                    "bzip2"
                } else {
                    ext
                }
            )) && l.contains("ext4.ko.zst")),
            "{ext}: {long}"
        );
    }
}

#[test]
fn concatenated_lz4_legacy_streams_are_read_on() {
    let t = trees(false, true);
    // The main archive compressed in two halves, each its own lz4 legacy stream.
    let img = t.dir.join("two-lz4.img");
    Cmd::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{e}' > '{o}' && half=$(( $(stat -c %s '{m}') / 2 )) && head -c $half '{m}' | lz4 -q -l -c >> '{o}' && tail -c +$((half + 1)) '{m}' | lz4 -q -l -c >> '{o}'",
            e = t.early.display(),
            m = t.main.display(),
            o = img.display()
        ))
        .run()
        .success();
    let got = rtool(["initramfs", "ls"])
        .arg(&img)
        .run()
        .success()
        .stdout();
    assert_eq!(got, listing(&t.early) + &listing(&t.main));
}

#[test]
fn check_finds_modules_in_either_segment() {
    let without = trees(false, false);
    let img = image(&without, "no-zfs.img", "zstd -q -c");
    rtool(["initramfs", "check", "--module", "zfs"])
        .arg(&img)
        .run()
        .status(1)
        .stdout_has("zfs: MISSING")
        .stdout_has(&format!("kernel {KVER}"));
    rtool(["initramfs", "check", "--module", "ext4"])
        .arg(&img)
        .run()
        .success();
    for (early, main) in [(true, false), (false, true)] {
        let t = trees(early, main);
        let img = image(&t, "zfs.img", "gzip -c");
        let j = rtool(["initramfs", "check", "--module", "zfs", "--json"])
            .arg(&img)
            .run()
            .success()
            .json();
        assert_eq!(j["ok"], true);
        assert_eq!(j["kernels"][0], KVER);
        assert_eq!(j["found"][0]["segment"], if early { 0 } else { 1 });
    }
    rtool([
        "initramfs",
        "check",
        "--module",
        "zfs",
        "--kver",
        "5.15.0-1-lts",
    ])
    .arg(&img)
    .run()
    .status(1);
}

#[test]
fn extract_writes_inside_the_directory() {
    let t = trees(true, true);
    let img = image(&t, "x.img", "xz -c --check=crc32");
    let out = tempfile::tempdir().unwrap();
    rtool(["initramfs", "extract", "-C"])
        .arg(out.path())
        .arg(&img)
        .run()
        .success();
    assert_eq!(
        fs::read_to_string(out.path().join("init")).unwrap(),
        "content of init\n"
    );
    assert!(out
        .path()
        .join("kernel/x86/microcode/GenuineIntel.bin")
        .is_file());
    assert_eq!(
        fs::read_link(out.path().join("lib")).unwrap(),
        Path::new("usr/lib")
    );
}

/// A cpio header made by hand: newc, with the given name and declared size.
fn header(name: &str, mode: u32, size: u64) -> Vec<u8> {
    let mut h = format!(
        "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
        1,
        mode,
        0,
        0,
        1,
        0,
        size,
        0,
        0,
        0,
        0,
        name.len() + 1,
        0
    )
    .into_bytes();
    h.extend_from_slice(name.as_bytes());
    h.push(0);
    while h.len() % 4 != 0 {
        h.push(0);
    }
    h
}

/// Zeros between segments and inside a compressed stream, as much as 256 MiB of them, are
/// padding: the listing is the same as without them. An entry with an empty name is listed
/// as `.`, as the kernel takes it.
#[test]
fn padding_of_any_length_and_empty_names() {
    let t = trees(false, false);
    let want = listing(&t.early) + &listing(&t.main);
    let img = t.dir.join("padded.img");
    Cmd::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{e}' > '{o}' && head -c 64M /dev/zero >> '{o}' && \
             {{ cat '{m}'; head -c 256M /dev/zero; cat '{m}'; }} | zstd -q -c >> '{o}'",
            e = t.early.display(),
            m = t.main.display(),
            o = img.display()
        ))
        .run()
        .success();
    let got = rtool(["initramfs", "ls"])
        .arg(&img)
        .run()
        .success()
        .stdout();
    assert_eq!(got, want.clone() + &listing(&t.main));

    let mut unnamed = header("", 0o40755, 0);
    unnamed.extend(header("TRAILER!!!", 0, 0));
    let img = t.dir.join("unnamed.img");
    fs::write(&img, unnamed).unwrap();
    let got = rtool(["initramfs", "ls"])
        .arg(&img)
        .run()
        .success()
        .stdout();
    assert_eq!(got, ".\n");
}

#[test]
fn hostile_images_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let t = trees(false, false);
    let good = fs::read(image(&t, "good.img", "zstd -q -c")).unwrap();
    let early = fs::read(&t.early).unwrap();
    let mut escape = header("../../rtool-initramfs-escape", 0o100644, 4);
    escape.extend_from_slice(b"evil");
    escape.extend(header("TRAILER!!!", 0, 0));
    let mut giant = header("big", 0o100644, 0xFFFF_FFFF);
    giant.extend_from_slice(b"tiny");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "truncated-header",
            early[..60].to_vec(),
            "truncated cpio header",
        ),
        ("escape", escape, "'..'"),
        ("giant-size", giant, "bytes short"),
        (
            "cut-compressed",
            good[..good.len() - 40].to_vec(),
            "corrupt or truncated",
        ),
    ];
    for (name, bytes, says) in cases {
        let img = d.path().join(name);
        fs::write(&img, bytes).unwrap();
        let root = d.path().join(format!("root-{name}"));
        fs::create_dir(&root).unwrap();
        let out = rtool(["initramfs", "extract", "-C"])
            .arg(&root)
            .arg(&img)
            .run()
            .status(3);
        assert!(out.stderr().contains(says), "{name}: {}", out.stderr());
        assert!(
            !d.path().join("rtool-initramfs-escape").exists()
                && !Path::new("/rtool-initramfs-escape").exists()
        );
        assert!(!root.join("big").exists(), "{name}: a partial file stayed");
    }
}

/// The release of the installed Debian kernel (`linux-image-amd64`, installed by `make test`).
fn debian_kernel() -> String {
    let mut found: Vec<String> = fs::read_dir("/lib/modules")
        .expect("/lib/modules")
        .flatten()
        .filter(|e| e.path().join("kernel").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
        .pop()
        .expect("an installed Debian kernel (linux-image-amd64, installed by `make test`)")
}

/// An image made by Debian's real `mkinitramfs` (initramfs-tools) for the installed kernel:
/// `ls` lists exactly what initramfs-tools' own `lsinitramfs` lists, and `check` finds the
/// modules it was told to include, in the kernel's own directory.
#[test]
fn debians_mkinitramfs_image_reads_like_lsinitramfs() {
    let kver = debian_kernel();
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("conf");
    fs::create_dir_all(&conf).unwrap();
    // Only the modules listed, so the image is small and quick to make.
    fs::write(conf.join("modules"), "dummy\nloop\n").unwrap();
    for compress in ["zstd", "gzip"] {
        fs::write(
            conf.join("initramfs.conf"),
            format!("MODULES=list\nBUSYBOX=auto\nCOMPRESS={compress}\n"),
        )
        .unwrap();
        let img = d.path().join(format!("initrd-{compress}.img"));
        Cmd::new("mkinitramfs")
            .arg("-d")
            .arg(&conf)
            .arg("-o")
            .arg(&img)
            .arg(&kver)
            .run()
            .success();
        let theirs = Cmd::new("lsinitramfs").arg(&img).run().success().stdout();
        let ours = rtool(["initramfs", "ls"])
            .arg(&img)
            .run()
            .success()
            .stdout();
        assert!(theirs.lines().count() > 100, "{theirs}");
        assert_eq!(ours, theirs, "{compress}");
        rtool([
            "initramfs",
            "check",
            "--module",
            "dummy",
            "--module",
            "loop",
        ])
        .arg(&img)
        .run()
        .success()
        .stdout_has(&format!("kernel {kver}"))
        .stdout_has(&format!(
            "dummy: present (usr/lib/modules/{kver}/kernel/drivers/net/dummy.ko"
        ));
        rtool(["initramfs", "check", "--module", "zfs"])
            .arg(&img)
            .run()
            .status(1)
            .stdout_has("zfs: MISSING");
    }
}

#[test]
fn ls_json_gives_every_entry_with_numbers_and_its_segment() {
    let t = trees(true, false);
    let img = image(&t, "j.img", "zstd -q -c");
    let j = rtool(["initramfs", "ls", "--json"])
        .arg(&img)
        .run()
        .success()
        .json();
    let entries = j["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let want = listing(&t.early) + &listing(&t.main);
    assert_eq!(names, want.lines().collect::<Vec<_>>());
    let named = |n: &str| {
        entries
            .iter()
            .find(|e| e["name"].as_str().unwrap().trim_start_matches("./") == n)
            .unwrap_or_else(|| panic!("{n} not listed: {j}"))
    };
    let init = named("init");
    assert_eq!(init["type"], "file");
    assert_eq!(
        init["size"].as_u64(),
        Some("content of init\n".len() as u64),
        "{init}"
    );
    assert_eq!(init["segment"].as_u64(), Some(1));
    assert_eq!(init["compression"], "zstd");
    assert!(init["mode"].is_u64() && init["uid"].is_u64() && init["gid"].is_u64());
    let ucode = named("kernel/x86/microcode/GenuineIntel.bin");
    assert_eq!(ucode["segment"].as_u64(), Some(0));
    assert_eq!(ucode["compression"], "none");
    let lib = named("lib");
    assert_eq!(
        (lib["type"].as_str(), lib["link"].as_str()),
        (Some("symlink"), Some("usr/lib"))
    );

    // A file that is no image: the error as JSON, exit 3.
    let junk = t.dir.join("junk.img");
    fs::write(&junk, b"not an initramfs at all, not even close").unwrap();
    let e = rtool(["initramfs", "ls", "--json"])
        .arg(&junk)
        .run()
        .status(3);
    assert_eq!(e.json()["error"]["exit"].as_u64(), Some(e.code() as u64));
}

#[test]
fn extract_dry_run_counts_and_writes_nothing() {
    let t = trees(true, true);
    let img = image(&t, "n.img", "gzip -c");
    let out = tempfile::tempdir().unwrap();
    let before = common::tree::listing(out.path(), &[]);
    let plan = rtool(["initramfs", "extract", "-n", "-C"])
        .arg(out.path())
        .arg(&img)
        .run()
        .success()
        .stdout();
    assert!(
        plan.contains("would unpack 6 files")
            && plan.contains("1 symlinks")
            && plan.contains("nothing was written"),
        "{plan}"
    );
    assert_eq!(common::tree::listing(out.path(), &[]), before);
}
