//! `rtool chroot` where the test machine's kernel cannot go: a `/boot` on vfat found by its
//! fstab `UUID=`, and a LUKS root opened by the real `cryptsetup`, both on loop devices inside a
//! VM running Debian's kernel (whose dm-crypt, loop, ext4 and vfat modules rtool itself loads).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::vm::{vm, Case, Console};

const MODULES: &[&str] = &[
    "loop",
    "dm_crypt",
    "xts",
    "ecb",
    "crc32c_generic",
    "ext4",
    "vfat",
    "nls_cp437",
    "nls_utf8",
    "nls_ascii",
];

const SCENARIO: &str = r#"
# ext4 names crc32c as a soft dependency (modules.softdep); dm-crypt's xts and ecb the kernel
# asks for itself, through /sbin/modprobe: here that is rtool, resolving the kernel's aliases.
mkdir -p /sbin; ln -s /bin/rtool /sbin/modprobe
case_ ext4 rtool modprobe ext4
for m in loop dm_crypt vfat nls_cp437; do rtool modprobe -q $m || echo "modprobe $m failed"; done
mkdir -p /run/cryptsetup /var/lock /d /e /fill
D=/d
R=$(losetup -f); losetup "$R" /root.img
B=$(losetup -f); losetup "$B" /boot.img
mount "$R" "$D"
touch "$D/boot/vmlinuz-linux" "$D/boot/initramfs-linux.img"
echo 'UUID=1234-ABCD /boot vfat rw,relatime,fmask=0022,dmask=0022 0 2' > "$D/etc/fstab"
case_ mount-boot rtool chroot -v --mount-boot "$D" -- /bin/cat /proc/mounts
case_ require-boot rtool chroot --require-boot "$D" -- /bin/true
umount "$D"
L=$(losetup -f); losetup "$L" /luks.img
printf secret > /key
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file /key "$L" || echo "luksFormat failed"
cryptsetup open --key-file /key "$L" fill || echo "open failed"
dd if=/root.img of=/dev/mapper/fill bs=1M 2>/dev/null
cryptsetup close fill
case_ kernel-requested-crypto sh -c 'grep -oE "^(xts|ecb) " /proc/modules | sort | tr "\n" " "'
case_ luks sh -c 'rtool chroot -v --luks "$0:rtool-test" --key-file /key /e -- /bin/cat /proc/mounts; echo "status=$?"; [ -e /dev/mapper/rtool-test ] || echo closed' "$L"
"#;

/// A busybox root as an ext4 image (made without mounting: `mkfs.ext4 -d`), a vfat image with
/// the volume id 1234-ABCD, an empty image for LUKS, and cryptsetup with its libraries.
fn files(tmp: &Path) -> Vec<(String, Vec<u8>)> {
    let tree = tmp.join("tree");
    for d in ["bin", "boot", "etc", "proc", "sys", "dev", "run", "tmp"] {
        std::fs::create_dir_all(tree.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", tree.join("bin/busybox")).expect("busybox");
    for l in ["sh", "cat", "true", "ls"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(l)).expect("symlink");
    }
    let run = |c: &mut Command| assert!(c.status().expect("spawn").success(), "{c:?}");
    let root = tmp.join("root.img");
    run(Command::new("truncate").arg("-s").arg("32M").arg(&root));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&root));
    let boot = tmp.join("boot.img");
    run(Command::new("truncate").arg("-s").arg("32M").arg(&boot));
    run(Command::new("mkfs.vfat")
        .args(["-i", "1234ABCD"])
        .arg(&boot));
    let mut out = vec![
        (
            "root.img".to_string(),
            std::fs::read(&root).expect("root.img"),
        ),
        (
            "boot.img".to_string(),
            std::fs::read(&boot).expect("boot.img"),
        ),
        ("luks.img".to_string(), vec![0u8; 56 << 20]),
    ];
    // cryptsetup is dynamically linked: bring it with everything `ldd` names.
    let cs = common::which("cryptsetup").expect("cryptsetup (apt-get install cryptsetup)");
    out.push((
        "bin/cryptsetup".to_string(),
        std::fs::read(&cs).expect("cryptsetup"),
    ));
    let ldd = Command::new("ldd").arg(&cs).output().expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(p) = path {
            let real = std::fs::canonicalize(p).expect("library");
            out.push((
                p.trim_start_matches('/').to_string(),
                std::fs::read(real).expect("library"),
            ));
        }
    }
    out
}

fn console() -> &'static Console {
    static C: OnceLock<Console> = OnceLock::new();
    C.get_or_init(|| {
        let v = vm("chroot", MODULES);
        let tmp = tempfile::tempdir().expect("tempdir");
        let owned = files(tmp.path());
        let files: Vec<(&str, &[u8])> = owned
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        v.run(SCENARIO, &files, "")
    })
}

fn case(name: &str) -> Case {
    console().case(name)
}

#[test]
fn mount_boot_mounts_vfat_found_by_its_uuid() {
    let c = case("mount-boot");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("mounted UUID=1234-ABCD (/dev/loop1, vfat) on /d/boot"),
        "{c:?}"
    );
    assert!(
        c.out
            .contains("/dev/loop1 /boot vfat rw,relatime,fmask=0022,dmask=0022"),
        "{c:?}"
    );
    // The mounts live in rtool's own mount namespace, so nothing can be seen left behind from
    // outside: its -v log shows the teardown, /boot after the API filesystems above it.
    let proc_gone = c
        .out
        .find("chroot: unmounted /d/proc\n")
        .expect("proc unmounted");
    let boot_gone = c
        .out
        .find("chroot: unmounted /d/boot\n")
        .expect("/boot unmounted");
    assert!(proc_gone < boot_gone, "{c:?}");
}

#[test]
fn soft_dependencies_load_first() {
    // ext4's modinfo says `softdep: pre: crc32c`; crc32c is an alias of crc32c_generic.
    let c = case("ext4");
    assert_eq!(c.rc, 0, "{c:?}");
    let crc = c
        .out
        .find("loaded   crc32c_generic")
        .expect("crc32c_generic loaded");
    let ext4 = c.out.find("loaded   ext4").expect("ext4 loaded");
    assert!(crc < ext4, "{c:?}");
}

#[test]
fn the_kernel_loads_what_it_needs_through_rtool_as_sbin_modprobe() {
    // dm-crypt asks for xts(aes): the kernel runs /sbin/modprobe with the alias crypto-xts,
    // and xts names ecb as a soft dependency.
    let c = case("kernel-requested-crypto");
    assert_eq!(c.out.trim(), "ecb  xts", "{c:?}");
}

#[test]
fn require_boot_refuses_while_boot_is_not_mounted() {
    let c = case("require-boot");
    assert_eq!(c.rc, 7, "{c:?}");
    assert!(
        c.out.contains("--mount-boot"),
        "the fix is not named: {c:?}"
    );
}

#[test]
fn luks_root_opened_with_real_cryptsetup_and_closed_after() {
    let c = case("luks");
    assert!(c.out.contains("/dev/mapper/rtool-test / ext4"), "{c:?}");
    assert!(c.out.contains("status=0"), "{c:?}");
    assert!(
        c.out.contains("closed"),
        "the LUKS mapping stayed open: {c:?}"
    );
    // The mapping could only close once the root on it was unmounted; -v shows that too.
    assert!(c.out.contains("chroot: unmounted /e\n"), "{c:?}");
}
