//! `rtool preflight` on fake roots: the incident's situation, and a healthy system. Kernel
//! images carry the boot-protocol header the kernel writes; initramfs images are real cpio
//! archives made with `cpio` and `zstd`.

mod common;

use std::fs;
use std::path::Path;

use common::{fixtures, rtool, Cmd, FakeRoot};

/// An initramfs (zstd-compressed newc cpio) holding `usr/lib/modules/KVER/...` with the
/// given module files.
fn initramfs(at: &Path, kver: &str, modules: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    fs::write(d.path().join("init"), "#!/bin/sh\n").unwrap();
    for m in modules {
        let p = d
            .path()
            .join(format!("usr/lib/modules/{kver}/kernel"))
            .join(m);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "module").unwrap();
    }
    Cmd::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio --quiet -o -H newc | zstd -q -c > '{}'",
            d.path().display(),
            at.display()
        ))
        .run()
        .success();
}

/// `/usr/src/zfs-VERSION/dkms.conf`: a zfs DKMS source with AUTOINSTALL.
fn zfs_dkms_source(r: &FakeRoot, version: &str) {
    r.write(
        &format!("/usr/src/zfs-{version}/dkms.conf"),
        format!("PACKAGE_NAME=zfs\nPACKAGE_VERSION={version}\nBUILT_MODULE_NAME[0]=zfs\nBUILT_MODULE_LOCATION[0]=module/zfs/\nDEST_MODULE_LOCATION[0]=/extra\nAUTOINSTALL=yes\n"),
    );
}

fn kernel(r: &FakeRoot, base: &str, kver: &str) {
    r.write(
        &format!("/boot/vmlinuz-{base}"),
        rtool::kernel::bzimage::fake_image(kver),
    );
}

/// The mount table of the running system, with the root mounted and maybe /boot.
fn host(root: &Path, boot_mounted: bool) -> FakeRoot {
    let h = FakeRoot::new();
    let mut mi = format!(
        "21 1 0:20 / / rw - overlay airootfs rw\n40 21 0:40 / {} rw - zfs zroot/ROOT/default rw\n",
        root.display()
    );
    if boot_mounted {
        mi += &format!(
            "41 40 8:1 / {}/boot rw - vfat /dev/sda1 rw\n",
            root.display()
        );
    }
    h.write("/proc/self/mountinfo", mi);
    h
}

#[test]
fn the_incident_is_stopped_before_the_reboot() {
    let r = FakeRoot::new();
    r.write(
        "/etc/fstab",
        "zroot/ROOT/default / zfs rw 0 0\nUUID=ABCD-1234 /boot vfat rw 0 2\n",
    );
    kernel(&r, "linux", "6.2.8-arch1-1");
    r.mkdir("/usr/lib/modules/6.2.8-arch1-1/kernel");
    initramfs(
        &r.at("/boot/initramfs-linux.img"),
        "6.2.8-arch1-1",
        &["fs/ext4/ext4.ko.zst"],
    );
    zfs_dkms_source(&r, "2.1.9");
    r.write("/usr/src/zfs-2.1.9/META", "Name:          zfs\nVersion:       2.1.9\nLicense:       CDDL\nLinux-Maximum: 6.1\nLinux-Minimum: 3.10\n");
    r.write("/usr/lib/modules/6.2.8-arch1-1/vmlinuz", "kernel");
    let h = host(r.path(), false);

    let out = rtool(["preflight", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .status(1)
        .stdout();
    assert!(
        out.contains("[FAIL] boot-mounted: /boot is in fstab (UUID=ABCD-1234) but not mounted"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] initramfs: initramfs-linux.img lacks zfs"),
        "{out}"
    );
    assert!(
        out.contains("[FAIL] dkms: zfs/2.1.9 is not built for 6.2.8-arch1-1"),
        "{out}"
    );
    assert!(out.contains("supports Linux 3.10 – 6.1"), "{out}");
    assert!(
        out.contains("[WARN] fallback: only one kernel is installed"),
        "{out}"
    );
    assert!(out.contains("DO NOT REBOOT"), "{out}");
    let j = rtool(["preflight", "--json", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .status(1)
        .json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["root_on_zfs"], true);
}

#[test]
fn a_healthy_system_passes() {
    let r = FakeRoot::new();
    r.write(
        "/etc/fstab",
        "zroot/ROOT/default / zfs rw 0 0\nUUID=ABCD-1234 /boot vfat rw 0 2\n",
    );
    for (base, kver) in [("linux", "6.1.12-arch1-1"), ("linux-lts", "6.1.20-1-lts")] {
        r.write(&format!("/usr/lib/modules/{kver}/vmlinuz"), "kernel");
        r.write(
            &format!("/usr/lib/modules/{kver}/updates/dkms/zfs.ko.zst"),
            "zfs",
        );
        initramfs(
            &r.at(&format!("/boot/initramfs-{base}.img")),
            kver,
            &["extra/zfs.ko.zst", "extra/spl.ko.zst"],
        );
        // The image is written after the kernel: newer.
        std::thread::sleep(std::time::Duration::from_millis(10));
        let img = r.at(&format!("/boot/initramfs-{base}.img"));
        kernel(&r, base, kver);
        let later = fs::metadata(r.at(&format!("/boot/vmlinuz-{base}")))
            .unwrap()
            .modified()
            .unwrap()
            + std::time::Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&img)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    r.write("/usr/src/zfs-2.1.9/dkms.conf", "PACKAGE_NAME=zfs\nPACKAGE_VERSION=2.1.9\nBUILT_MODULE_NAME[0]=zfs\nDEST_MODULE_LOCATION[0]=/extra\nAUTOINSTALL=yes\n");
    r.write(
        "/usr/src/zfs-2.1.9/META",
        "Linux-Maximum: 6.1\nLinux-Minimum: 3.10\n",
    );
    let h = host(r.path(), true);
    let out = rtool(["preflight", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .success()
        .stdout();
    assert!(
        !out.contains("FAIL") && !out.contains("DO NOT REBOOT"),
        "{out}"
    );
    assert!(
        out.contains("[ OK ] initramfs: initramfs-linux.img: current, holds zfs"),
        "{out}"
    );
    assert!(
        out.contains("[ OK ] fallback: 2 kernels installed"),
        "{out}"
    );
}

#[test]
fn stale_initramfs_and_missing_modules_directory() {
    let r = FakeRoot::new();
    initramfs(
        &r.at("/boot/initramfs-linux.img"),
        "6.2.7-arch1-1",
        &["fs/ext4/ext4.ko.zst"],
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    kernel(&r, "linux", "6.2.8-arch1-1");
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(r.at("/boot/initramfs-linux.img"))
        .unwrap()
        .set_modified(earlier)
        .unwrap();
    let h = host(r.path(), false);
    let out = rtool(["preflight", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .status(1)
        .stdout();
    assert!(out.contains("is older than vmlinuz-linux"), "{out}");
    assert!(
        out.contains("does not exist: it boots without any module"),
        "{out}"
    );
    assert!(
        out.contains("holds modules of 6.2.7-arch1-1 but the kernel is 6.2.8-arch1-1"),
        "{out}"
    );
}

#[test]
fn the_release_is_read_from_a_real_kernel_image() {
    // Debian's vmlinuz, from the module-tree package the extract tests build.
    let pkg = fixtures().join("rtool-kmod-1.0-1-x86_64.pkg.tar.zst");
    let list = rtool(["extract", "-t"]).arg(&pkg).run().success().stdout();
    let member = list
        .lines()
        .find(|l| l.ends_with("/vmlinuz"))
        .expect("vmlinuz in the package")
        .to_string();
    let kver = member
        .trim_end_matches("/vmlinuz")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("vmlinuz");
    let bytes = Cmd::new("bsdtar")
        .arg("-xOf")
        .arg(&pkg)
        .arg(&member)
        .run()
        .success()
        .0
        .stdout;
    fs::write(&img, bytes).unwrap();
    assert_eq!(rtool::kernel::bzimage::release(&img).unwrap(), kver);
}

/// A kernel installed without `vmlinuz` in its modules directory (Debian's layout, or a
/// kernel unpacked by hand) is still checked for its DKMS modules; a directory that only DKMS
/// left behind (no `modules.builtin`) is not a kernel.
#[test]
fn dkms_modules_are_checked_for_a_kernel_without_vmlinuz_in_its_modules_dir() {
    let r = FakeRoot::new();
    r.write("/etc/fstab", "zroot/ROOT/default / zfs rw 0 0\n");
    kernel(&r, "linux", "6.1.0-57-amd64");
    r.write(
        "/usr/lib/modules/6.1.0-57-amd64/modules.builtin",
        "kernel/fs/ext4/ext4.ko\n",
    );
    r.write(
        "/usr/lib/modules/6.0.0-1-amd64/updates/dkms/zfs.ko.zst",
        "old",
    );
    initramfs(
        &r.at("/boot/initramfs-linux.img"),
        "6.1.0-57-amd64",
        &["extra/zfs.ko.zst"],
    );
    zfs_dkms_source(&r, "2.1.11");
    let h = host(r.path(), false);
    let out = rtool(["preflight", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .status(1)
        .stdout();
    assert!(
        out.contains("[FAIL] dkms: zfs/2.1.11 is not built for 6.1.0-57-amd64"),
        "{out}"
    );
    assert!(!out.contains("6.0.0-1-amd64"), "{out}");
    r.write(
        "/usr/lib/modules/6.1.0-57-amd64/updates/dkms/zfs.ko.zst",
        "zfs",
    );
    let out = rtool(["preflight", "--root"])
        .arg(r.path())
        .host(h.path())
        .run()
        .stdout();
    assert!(!out.contains("[FAIL] dkms"), "{out}");
}
