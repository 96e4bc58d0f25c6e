//! `rtool doctor` against fake roots shaped like the rescue's three situations: a fresh archiso
//! live system, an installed system whose /boot is not mounted, and a healthy system.
//! Sizes and addresses come from the real kernel: the cowspace is a real tmpfs mounted in a
//! private mount namespace, the addresses are real interfaces in a network namespace.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{in_mount_ns, rtool, FakeRoot, NetNs, Stubs};
use serde_json::Value;

/// The running system's kernel interfaces, as files: release, memory, mounts, NICs, processes.
fn fake_host(kver: &str, mem_avail_kib: u64, mountinfo: &str) -> FakeRoot {
    let h = FakeRoot::new();
    h.write("/proc/sys/kernel/osrelease", format!("{kver}\n"))
        .write(
            "/proc/meminfo",
            format!("MemTotal:       16318480 kB\nMemFree:         {mem_avail_kib} kB\nMemAvailable:   {mem_avail_kib} kB\nSwapTotal:             0 kB\n"),
        )
        .write("/proc/self/mountinfo", mountinfo)
        .mkdir(&format!("/usr/lib/modules/{kver}/kernel/drivers/net"))
        .write("/proc/1/comm", "systemd\n");
    h
}

fn nic(h: &FakeRoot, name: &str, driver: &str, state: &str, carrier: Option<bool>) {
    h.write(
        &format!("/sys/class/net/{name}/operstate"),
        format!("{state}\n"),
    )
    .write(
        &format!("/sys/class/net/{name}/address"),
        "52:54:00:12:34:56\n",
    )
    .write(&format!("/sys/class/net/{name}/type"), "1\n")
    .symlink(
        &format!("../../../../bus/pci/drivers/{driver}"),
        &format!("/sys/class/net/{name}/device/driver"),
    );
    if let Some(c) = carrier {
        h.write(
            &format!("/sys/class/net/{name}/carrier"),
            if c { "1\n" } else { "0\n" },
        );
    }
}

fn finding<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {doc:#}"))
}

fn status<'a>(doc: &'a Value, id: &str) -> &'a str {
    finding(doc, id)["status"].as_str().expect("status string")
}

/// Runs doctor (text, then JSON) in a private mount namespace after `setup` (bash).
fn doctor_in_ns(setup: &str, host: &Path, root: Option<&Path>, path: &Path) -> (String, Value) {
    let root_arg = root
        .map(|r| format!("--root '{}'", r.display()))
        .unwrap_or_default();
    let script = format!(
        "{setup}\nPATH=\"$STUBS\" RTOOL_HOST_ROOT=\"$HOSTDIR\" \"$RTOOL\" doctor {root_arg} && t=0 || t=$?\necho '=====JSON'\nPATH=\"$STUBS\" RTOOL_HOST_ROOT=\"$HOSTDIR\" \"$RTOOL\" doctor {root_arg} --json && j=0 || j=$?\necho \"=====EXIT $t $j\""
    );
    let out = in_mount_ns(
        &script,
        &[("HOSTDIR", host.as_os_str()), ("STUBS", path.as_os_str())],
    )
    .success();
    let stdout = out.stdout();
    let (text, rest) = stdout.split_once("=====JSON\n").expect("both reports");
    let (json, codes) = rest.split_once("=====EXIT ").expect("exit codes");
    let doc: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("bad JSON ({e}): {json}"));
    // Exit 1 exactly when a finding is FAIL, in text and JSON alike.
    let want = if doc["worst"] == "FAIL" { "1 1" } else { "0 0" };
    assert_eq!(
        codes.trim(),
        want,
        "doctor's exit codes (text, json)\n{text}"
    );
    (text.to_string(), doc)
}

/// With several zfs DKMS sources on the live system, the build hint names the newest by
/// version (zfs-2.1.10, not zfs-2.1.9 as text order would have it).
#[test]
fn the_zfs_build_hint_names_the_newest_source() {
    let kver = "6.2.8-arch1-1";
    let h = fake_host(kver, 3_000_000, "21 1 0:20 / / rw - ext4 /dev/sda1 rw\n");
    for v in ["2.1.9", "2.1.10", "2.0.7"] {
        h.write(&format!("/usr/src/zfs-{v}/dkms.conf"), "PACKAGE_NAME=zfs\n");
    }
    let (text, _) = doctor_in_ns("true", h.path(), None, Stubs::new().path());
    assert!(
        text.contains(&format!(
            "`rtool dkms build {} -k {kver}`",
            h.at("/usr/src/zfs-2.1.10").display()
        )),
        "{text}"
    );
}

#[test]
fn archiso_live_system_with_small_cowspace_and_no_zfs() {
    let kver = "6.2.8-arch1-1";
    let h = fake_host(kver, 3_000_000, "");
    h.mkdir("/run/archiso/cowspace").mkdir("/root");
    let mountinfo = format!(
        "21 1 0:20 / / rw,relatime shared:1 - overlay airootfs rw,lowerdir=/run/archiso/sfs/airootfs\n\
         30 21 0:26 / {} rw,relatime shared:9 - tmpfs cowspace rw,size=262144k\n",
        h.at("/run/archiso/cowspace").display()
    );
    h.write("/proc/self/mountinfo", mountinfo);
    nic(&h, "enp1s0", "e1000e", "down", None);
    let stubs = Stubs::new(); // no tools at all on PATH

    let setup = format!(
        "mount -t tmpfs -o size=256M cowspace '{}'",
        h.at("/run/archiso/cowspace").display()
    );
    let (text, doc) = doctor_in_ns(&setup, h.path(), None, stubs.path());

    assert!(text.contains("[INFO] live: archiso live system"), "{text}");
    assert!(text.contains("[WARN] cowspace: 256 MiB in all"), "{text}");
    assert!(text.contains("-> grow it: `rtool cowspace 4G`"), "{text}");
    assert!(
        text.contains(&format!("[WARN] zfs: no zfs module for {kver}")),
        "{text}"
    );
    // Commands to paste: the headers' package by name, the build of whatever zfs source the
    // live system gets.
    assert!(
        text.contains("linux-headers-6.2.8.arch1-1-x86_64.pkg.tar.zst`"),
        "{text}"
    );
    assert!(
        text.contains("`rtool dkms build /usr/src/zfs-* -k 6.2.8-arch1-1`"),
        "{text}"
    );
    assert!(
        text.contains("[WARN] network: no interface has both a link and an address"),
        "{text}"
    );
    assert!(text.contains("enp1s0 (e1000e) down"), "{text}");
    assert!(
        text.contains("[WARN] ssh: sshd is not running and root has no authorized key"),
        "{text}"
    );
    assert!(
        text.contains("[WARN] tools: missing make and gcc"),
        "{text}"
    );
    assert!(
        !text.contains("boot:"),
        "a live system's own /boot is not reported:\n{text}"
    );

    assert_eq!(doc["archiso"], true);
    assert_eq!(doc["kernel"], kver);
    assert_eq!(status(&doc, "kernel"), "OK");
    assert_eq!(status(&doc, "cowspace"), "WARN");
    assert_eq!(finding(&doc, "cowspace")["data"]["size"], 256u64 << 20);
    assert_eq!(status(&doc, "memory"), "OK");
    assert_eq!(status(&doc, "zfs"), "WARN");
    assert_eq!(finding(&doc, "zfs")["data"]["loaded"], false);
    assert_eq!(status(&doc, "network"), "WARN");
    assert_eq!(
        finding(&doc, "network")["data"]["interfaces"][0]["driver"],
        "e1000e"
    );
    assert_eq!(status(&doc, "ssh"), "WARN");
    assert_eq!(status(&doc, "tools"), "WARN");
    assert_eq!(
        finding(&doc, "tools")["data"]["missing"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(doc["worst"], "WARN");
}

#[test]
fn full_cowspace_is_a_failure() {
    let h = fake_host("6.2.8-arch1-1", 3_000_000, "");
    h.mkdir("/run/archiso/cowspace");
    let stubs = Stubs::new();
    let cow = h.at("/run/archiso/cowspace");
    let setup = format!(
        "mount -t tmpfs -o size=256M cowspace '{c}'\nhead -c 230M /dev/zero > '{c}/fill'",
        c = cow.display()
    );
    let (text, doc) = doctor_in_ns(&setup, h.path(), None, stubs.path());
    assert_eq!(status(&doc, "cowspace"), "FAIL", "{text}");
    assert!(text.contains("nearly full"), "{text}");
    assert_eq!(doc["worst"], "FAIL");
}

/// An installed root on ZFS, mounted at R, with /boot in its fstab.
fn installed_root() -> FakeRoot {
    let r = FakeRoot::new();
    r.write(
        "/etc/fstab",
        "# <file system> <dir> <type> <options> <dump> <pass>\n\
         zroot/ROOT/default / zfs rw,noatime,xattr,posixacl 0 0\n\
         UUID=ABCD-1234 /boot vfat rw,relatime,fmask=0022,dmask=0022 0 2\n",
    );
    r.mkdir("/usr/lib/modules/6.2.8-arch1-1");
    r
}

#[test]
fn installed_system_whose_boot_is_not_mounted() {
    let kver = "6.1.12-arch1-1";
    let r = installed_root();
    // What the incident left behind: a kernel installed into the root's own /boot.
    r.write("/boot/vmlinuz-linux", "kernel")
        .write("/boot/initramfs-linux.img", "image");
    let h = fake_host(
        kver,
        8_000_000,
        &format!(
            "21 1 0:20 / / rw - overlay airootfs rw\n\
             40 21 0:40 / {} rw,noatime shared:20 - zfs zroot/ROOT/default rw,xattr,posixacl\n",
            r.path().display()
        ),
    );
    h.write("/sys/module/zfs/version", "2.1.9-1\n");
    let stubs = Stubs::new();
    stubs.add("zpool", 0);

    let (text, doc) = doctor_in_ns("", h.path(), Some(r.path()), stubs.path());
    assert!(
        text.contains("[FAIL] boot: not mounted: /boot (UUID=ABCD-1234)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "-> `rtool chroot --mount-boot {}`",
            r.path().display()
        )),
        "{text}"
    );
    assert!(
        text.contains("holds initramfs-linux.img, vmlinuz-linux"),
        "{text}"
    );
    assert!(
        text.contains("[ OK ] zfs: zfs module loaded (version 2.1.9-1), zpool available"),
        "{text}"
    );
    assert!(
        text.contains("the system under the root uses ZFS"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "[INFO] mounts: 1 filesystem(s) mounted under {}",
            r.path().display()
        )),
        "{text}"
    );

    assert_eq!(status(&doc, "boot"), "FAIL");
    let boot = &finding(&doc, "boot")["data"];
    assert_eq!(boot["entries"][0]["mounted"], false);
    assert_eq!(
        boot["stray_images"],
        serde_json::json!(["initramfs-linux.img", "vmlinuz-linux"])
    );
    assert_eq!(status(&doc, "zfs"), "OK");
    assert_eq!(finding(&doc, "zfs")["data"]["needed"], true);
    assert_eq!(finding(&doc, "mounts")["data"]["root_is_mountpoint"], true);
    assert!(
        doc.get("findings")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != "cowspace"),
        "not archiso: no cowspace finding"
    );
    assert_eq!(doc["worst"], "FAIL");
}

#[test]
fn zfs_root_without_a_zfs_module_is_a_failure() {
    let kver = "6.2.8-arch1-1";
    let r = installed_root();
    let h = fake_host(kver, 8_000_000, "21 1 0:20 / / rw - overlay airootfs rw\n");
    let stubs = Stubs::new();
    let (text, doc) = doctor_in_ns("", h.path(), Some(r.path()), stubs.path());
    assert_eq!(status(&doc, "zfs"), "FAIL", "{text}");
    assert_eq!(status(&doc, "mounts"), "WARN", "{text}");
    assert!(text.contains("is not a mountpoint"), "{text}");
}

#[test]
fn zfs_module_on_disk_but_not_loaded() {
    let kver = "6.1.12-arch1-1";
    let h = fake_host(kver, 8_000_000, "21 1 0:20 / / rw - ext4 /dev/vda rw\n");
    h.write(
        &format!("/usr/lib/modules/{kver}/updates/dkms/zfs.ko.zst"),
        "module",
    );
    let stubs = Stubs::new();
    let out = rtool(["doctor", "--json"])
        .host(h.path())
        .env("PATH", stubs.path())
        .run()
        .success();
    let doc = out.json();
    assert_eq!(status(&doc, "zfs"), "WARN");
    assert_eq!(
        finding(&doc, "zfs")["next"],
        "load it: `rtool modprobe zfs`"
    );
    assert!(finding(&doc, "zfs")["data"]["module"]
        .as_str()
        .unwrap()
        .ends_with("updates/dkms/zfs.ko.zst"));
}

#[test]
fn healthy_system_reports_no_problem() {
    let kver = "6.1.12-arch1-1";
    let r = installed_root();
    let ns = NetNs::new("doctor");
    // A real interface with a real address: doctor reads addresses from the kernel.
    ns.sh("ip link add eth0 type veth peer name eth1 && ip link set eth1 up && ip link set eth0 up && ip addr add 192.0.2.10/24 dev eth0");

    let h = fake_host(
        kver,
        12_000_000,
        &format!(
            "21 1 0:20 / / rw - overlay airootfs rw\n\
             30 21 0:26 / {cow} rw - tmpfs cowspace rw,size=4194304k\n\
             40 21 0:40 / {root} rw,noatime - zfs zroot/ROOT/default rw\n\
             41 40 8:1 / {root}/boot rw,relatime - vfat /dev/sda1 rw\n",
            cow = "/nonexistent-cowspace-placeholder",
            root = r.path().display()
        ),
    );
    h.mkdir("/run/archiso/cowspace");
    h.write("/sys/module/zfs/version", "2.1.9-1\n")
        .write(&format!("/usr/lib/modules/{kver}/updates/dkms/zfs.ko.zst"), "module")
        .write("/proc/4242/comm", "sshd\n")
        .write("/root/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEX me@laptop\n");
    nic(&h, "eth0", "ixgbe", "up", Some(true));
    let stubs = Stubs::new();
    for t in ["modprobe", "cryptsetup", "zpool", "pacman", "make", "gcc"] {
        stubs.add(t, 0);
    }

    let script = format!(
        "mount -t tmpfs -o size=4G cowspace '{cow}'\n\
         PATH=\"$STUBS\" RTOOL_HOST_ROOT=\"$HOSTDIR\" \"$RTOOL\" doctor --root '{root}'\necho '=====JSON'\n\
         PATH=\"$STUBS\" RTOOL_HOST_ROOT=\"$HOSTDIR\" \"$RTOOL\" doctor --root '{root}' --json",
        cow = h.at("/run/archiso/cowspace").display(),
        root = r.path().display()
    );
    let vars: [(&str, &OsStr); 2] = [
        ("HOSTDIR", h.path().as_os_str()),
        ("STUBS", stubs.path().as_os_str()),
    ];
    let out = ns.wrap(&script, &vars).success();
    let stdout = out.stdout();
    let (text, json) = stdout.split_once("=====JSON\n").unwrap();
    let doc: Value = serde_json::from_str(json).unwrap();

    assert!(!text.contains("WARN]") && !text.contains("FAIL]"), "{text}");
    assert!(text.contains("0 WARN, 0 FAIL"), "{text}");
    assert!(text.contains("eth0 (ixgbe) up, link, 192.0.2.10"), "{text}");
    assert!(text.contains("[ OK ] cowspace: 4 GiB in all"), "{text}");
    assert!(
        text.contains("[ OK ] ssh: sshd is running; root has 1 authorized key(s)"),
        "{text}"
    );
    assert!(
        text.contains("[ OK ] boot: the boot filesystems in fstab are mounted"),
        "{text}"
    );
    for id in [
        "kernel", "cowspace", "memory", "zfs", "network", "ssh", "boot", "tools",
    ] {
        assert_eq!(status(&doc, id), "OK", "{id}: {:#}", finding(&doc, id));
    }
    assert_eq!(
        finding(&doc, "network")["data"]["interfaces"][0]["addresses"][0],
        "192.0.2.10"
    );
    assert_eq!(doc["worst"], "OK");
}

#[test]
fn boot_mount_is_read_from_the_real_mount_table() {
    // The running system's own /proc, real mounts made in a private namespace.
    let r = installed_root();
    let root = r.path().display().to_string();
    let script = format!(
        "mount -t tmpfs rootfs '{root}'\n\
         mkdir -p '{root}/etc' '{root}/usr' '{root}/boot'\n\
         printf 'UUID=ABCD-1234 /boot vfat rw 0 2\\n' > '{root}/etc/fstab'\n\
         \"$RTOOL\" doctor --root '{root}' --json > \"$OUTDIR/before.json\" || [ $? -eq 1 ]\n\
         mount -t tmpfs boot '{root}/boot'\n\
         \"$RTOOL\" doctor --root '{root}' --json > \"$OUTDIR/after.json\" || [ $? -eq 1 ]"
    );
    let outdir = tempfile::tempdir().unwrap();
    in_mount_ns(&script, &[("OUTDIR", outdir.path().as_os_str())]).success();
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(outdir.path().join(f)).unwrap()).unwrap()
    };
    let (before, after) = (read("before.json"), read("after.json"));
    assert_eq!(status(&before, "boot"), "FAIL");
    assert_eq!(
        finding(&before, "mounts")["data"]["root_is_mountpoint"],
        true
    );
    assert_eq!(status(&after, "boot"), "OK", "{after:#}");
    // The namespace is gone: nothing stayed mounted on the host.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(&root),
        "a test mount leaked to the host"
    );
}
