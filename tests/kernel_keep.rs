//! `rtool kernel-keep` on a fake root: keep before an upgrade, restore after it.

mod common;

use std::fs;

use common::{rtool, FakeRoot};
use rtool::kernel::bzimage::fake_image;

fn installed(r: &FakeRoot, kver: &str) {
    r.write("/boot/vmlinuz-linux", fake_image(kver));
    r.write("/boot/initramfs-linux.img", format!("initramfs of {kver}"));
    r.write(
        &format!("/usr/lib/modules/{kver}/kernel/fs/zfs/zfs.ko.zst"),
        "zfs",
    );
    r.write(
        &format!("/usr/lib/modules/{kver}/modules.dep"),
        "kernel/fs/zfs/zfs.ko.zst:\n",
    );
    r.symlink("/usr/src/linux", &format!("/usr/lib/modules/{kver}/build"));
}

#[test]
fn keeps_the_kernel_its_initramfs_and_its_modules_across_an_upgrade() {
    let r = FakeRoot::new();
    installed(&r, "6.2.7-arch1-1");
    r.write("/boot/loader/entries/arch.conf", "title Arch Linux\nlinux /vmlinuz-linux\ninitrd /initramfs-linux.img\noptions root=ZFS=zroot/ROOT/default rw\n");

    let out = rtool(["kernel-keep", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout();
    assert!(out.contains("kept 6.2.7-arch1-1"), "{out}");
    assert_eq!(
        fs::read(r.at("/boot/vmlinuz-linux-prev")).unwrap(),
        fake_image("6.2.7-arch1-1")
    );
    assert_eq!(
        fs::read_to_string(r.at("/boot/initramfs-linux-prev.img")).unwrap(),
        "initramfs of 6.2.7-arch1-1"
    );
    let entry = fs::read_to_string(r.at("/boot/loader/entries/rtool-linux-prev.conf")).unwrap();
    assert!(
        entry.contains("linux   /vmlinuz-linux-prev")
            && entry.contains("initrd  /initramfs-linux-prev.img"),
        "{entry}"
    );
    assert!(
        entry.contains("options root=ZFS=zroot/ROOT/default rw"),
        "{entry}"
    );
    let kept = r.at("/var/lib/rtool/kernel-keep/6.2.7-arch1-1");
    assert!(kept.join("kernel/fs/zfs/zfs.ko.zst").is_file());
    assert!(!kept.join("build").exists(), "the headers link is not kept");

    // The upgrade: a new kernel, the old modules directory removed by pacman.
    fs::remove_dir_all(r.at("/usr/lib/modules/6.2.7-arch1-1")).unwrap();
    installed(&r, "6.2.8-arch1-1");
    rtool(["kernel-keep", "--restore", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout_has("restored");
    assert_eq!(
        fs::read_to_string(r.at("/usr/lib/modules/6.2.7-arch1-1/kernel/fs/zfs/zfs.ko.zst"))
            .unwrap(),
        "zfs"
    );
    // Restoring again changes nothing.
    let again = rtool(["kernel-keep", "--restore", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout();
    assert!(!again.contains("restored"), "{again}");
    rtool(["kernel-keep", "--list", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout_has(&format!(
            "6.2.7-arch1-1: modules kept; boots from {}",
            r.at("/boot/vmlinuz-linux-prev").display()
        ));
}

#[test]
fn prune_drops_what_no_image_refers_to_and_missing_modules_are_not_kept() {
    let r = FakeRoot::new();
    installed(&r, "6.2.7-arch1-1");
    rtool(["kernel-keep", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout_has("add a boot entry");
    // Nothing refers to 6.2.7 any more.
    fs::remove_file(r.at("/boot/vmlinuz-linux-prev")).unwrap();
    installed(&r, "6.2.8-arch1-1");
    rtool(["kernel-keep", "--prune", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout_has("removed");
    assert!(!r.at("/var/lib/rtool/kernel-keep/6.2.7-arch1-1").exists());
    // A kernel whose modules are already gone is not worth keeping.
    fs::remove_dir_all(r.at("/usr/lib/modules/6.2.8-arch1-1")).unwrap();
    rtool(["kernel-keep", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stderr_has("already gone");
    assert!(!r.at("/var/lib/rtool/kernel-keep/6.2.8-arch1-1").exists());
}

#[test]
fn dry_run_lists_every_copy_and_changes_nothing() {
    let r = FakeRoot::new();
    installed(&r, "6.2.7-arch1-1");
    r.write(
        "/boot/loader/entries/arch.conf",
        "title Arch Linux\nlinux /vmlinuz-linux\n",
    );
    let before = common::tree::listing(r.path(), &[]);
    let out = rtool(["kernel-keep", "-n", "--root"])
        .arg(r.path())
        .run()
        .success()
        .stdout();
    for step in [
        "would keep 6.2.7-arch1-1",
        "/boot/vmlinuz-linux to ",
        "/boot/vmlinuz-linux-prev",
        "/boot/initramfs-linux-prev.img",
        "/var/lib/rtool/kernel-keep/6.2.7-arch1-1",
        "/boot/loader/entries/rtool-linux-prev.conf",
        "nothing was changed",
    ] {
        assert!(out.contains(step), "{step:?} missing from the plan:\n{out}");
    }
    assert_eq!(common::tree::listing(r.path(), &[]), before);
}

#[test]
fn list_json_names_each_kept_kernel_and_its_image() {
    let r = FakeRoot::new();
    let empty = rtool(["kernel-keep", "--list", "--json", "--root"])
        .arg(r.path())
        .run()
        .success()
        .json();
    assert_eq!(empty["kept"], serde_json::json!([]));
    installed(&r, "6.2.7-arch1-1");
    rtool(["kernel-keep", "--root"])
        .arg(r.path())
        .run()
        .success();
    let j = rtool(["kernel-keep", "--list", "--json", "--root"])
        .arg(r.path())
        .run()
        .success()
        .json();
    let kept = j["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{j}");
    assert_eq!(kept[0]["kernel"], "6.2.7-arch1-1");
    assert!(kept[0]["modules"]
        .as_str()
        .unwrap()
        .ends_with("/var/lib/rtool/kernel-keep/6.2.7-arch1-1"));
    assert!(kept[0]["images"][0]
        .as_str()
        .unwrap()
        .ends_with("/boot/vmlinuz-linux-prev"));
    // --json belongs to --list: elsewhere it is a usage error, said as JSON too.
    let e = rtool(["kernel-keep", "--json", "--root"])
        .arg(r.path())
        .run()
        .status(2)
        .json();
    assert_eq!(e["error"]["exit"].as_u64(), Some(2));
    assert_eq!(e["error"]["applet"], "kernel-keep");
}
