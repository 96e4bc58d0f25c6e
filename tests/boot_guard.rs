//! `rtool boot-guard` on ext4 and tmpfs, with /boot mounted and not, in private namespaces.

mod common;

use std::fs;

use common::in_mount_ns;

/// Runs `body` with `$R` a fresh root filesystem of type `fs` (ext4 on a loop device, or
/// tmpfs) holding an empty `boot` directory (and `etc`, `usr`: a system); results go to files
/// in `$OUT`.
fn with_root(fs_kind: &str, body: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fs::create_dir(&root).unwrap();
    let setup = match fs_kind {
        "ext4" => "truncate -s 32M \"$OUT/img\"\nmkfs.ext4 -q -F \"$OUT/img\"\nmount -o loop \"$OUT/img\" \"$R\"\n",
        _ => "mount -t tmpfs rootfs \"$R\"\n",
    };
    let script = format!(
        "{setup}mkdir -p \"$R/boot\" \"$R/etc\" \"$R/usr\"\n\
         try() {{ n=$1; shift; set +e; \"$@\" > \"$OUT/$n.out\" 2> \"$OUT/$n.err\"; echo $? > \"$OUT/$n.code\"; set -e; }}\n\
         {body}\numount -l \"$R/boot\" 2>/dev/null || true\nchattr -i \"$R/boot\" 2>/dev/null || true\numount -l \"$R\""
    );
    in_mount_ns(
        &script,
        &[("R", root.as_os_str()), ("OUT", d.path().as_os_str())],
    )
    .success();
    d
}

fn read(d: &tempfile::TempDir, n: &str) -> (String, String, i32) {
    let r = |ext: &str| fs::read_to_string(d.path().join(format!("{n}.{ext}"))).unwrap_or_default();
    (r("out"), r("err"), r("code").trim().parse().unwrap_or(-1))
}

const GUARD_UNMOUNTED: &str = "try guard \"$RTOOL\" boot-guard --root \"$R\"\n\
    try status \"$RTOOL\" boot-guard --status --root \"$R\"\n\
    try write touch \"$R/boot/vmlinuz-linux\"\n\
    try again \"$RTOOL\" boot-guard --root \"$R\"\n\
    try undo \"$RTOOL\" boot-guard --undo --root \"$R\"\n\
    try write2 touch \"$R/boot/vmlinuz-linux\"\n";

fn check_unmounted(d: &tempfile::TempDir) {
    let (out, err, code) = read(d, "guard");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now mode 000 and immutable"), "{out}");
    let (out, _, code) = read(d, "status");
    assert_eq!(code, 0);
    assert!(
        out.contains("not mounted")
            && out.contains("mode 0000, immutable yes")
            && out.contains("guarded"),
        "{out}"
    );
    let (_, err, code) = read(d, "write");
    assert_ne!(code, 0, "writing into the guarded directory must fail");
    assert!(
        err.contains("Operation not permitted") || err.contains("Permission denied"),
        "{err}"
    );
    assert!(read(d, "again").0.contains("already guarded"));
    assert_eq!(read(d, "undo").2, 0);
    assert_eq!(
        read(d, "write2").2,
        0,
        "writes work again after --undo: {}",
        read(d, "write2").1
    );
}

#[test]
fn guards_an_unmounted_boot_on_ext4() {
    check_unmounted(&with_root("ext4", GUARD_UNMOUNTED));
}

#[test]
fn guards_an_unmounted_boot_on_tmpfs() {
    check_unmounted(&with_root("tmpfs", GUARD_UNMOUNTED));
}

#[test]
fn guards_the_directory_under_a_mounted_boot() {
    let d = with_root(
        "ext4",
        "mount -t tmpfs realboot \"$R/boot\"\n\
         chmod 755 \"$OUT\"\n\
         try user_status setpriv --reuid 65534 --regid 65534 --clear-groups \
           \"$RTOOL\" boot-guard --status --root \"$R\"\n\
         try guard \"$RTOOL\" boot-guard --root \"$R\"\n\
         try status \"$RTOOL\" boot-guard --status --root \"$R\"\n\
         try mounted_write touch \"$R/boot/vmlinuz-linux\"\n\
         umount \"$R/boot\"\n\
         try under_write touch \"$R/boot/vmlinuz-linux\"\n\
         try undo \"$RTOOL\" boot-guard --undo --root \"$R\"\n",
    );
    // Looking under a mounted /boot takes a private bind mount: root even for --status, said
    // as every root check says it.
    let (out, err, code) = read(&d, "user_status");
    assert_eq!(code, 7, "{out}{err}");
    assert!(
        err.contains("boot-guard must be run as root") && err.contains("private bind mount"),
        "{err}"
    );
    let (out, err, code) = read(&d, "guard");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("under the mounted /boot"), "{out}");
    let (out, _, _) = read(&d, "status");
    assert!(
        out.contains("mounted: realboot (tmpfs)") && out.contains("immutable yes"),
        "{out}"
    );
    assert_eq!(
        read(&d, "mounted_write").2,
        0,
        "the mounted /boot itself stays writable"
    );
    assert_ne!(
        read(&d, "under_write").2,
        0,
        "once unmounted, nothing lands in the root's /boot"
    );
    assert_eq!(read(&d, "undo").2, 0);
}

#[test]
fn refuses_a_directory_that_holds_a_stray_kernel() {
    let d = with_root(
        "ext4",
        "echo kernel > \"$R/boot/vmlinuz-linux\"\n\
         try refuse \"$RTOOL\" boot-guard --root \"$R\"\n\
         try move \"$RTOOL\" boot-guard --move-to \"$R/root/stray-boot\" --root \"$R\"\n\
         try moved cat \"$R/root/stray-boot/vmlinuz-linux\"\n\
         try status \"$RTOOL\" boot-guard --status --root \"$R\"\n",
    );
    let (_, err, code) = read(&d, "refuse");
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("holds vmlinuz-linux")
            && err.contains("nothing was changed")
            && err.contains("--move-to"),
        "{err}"
    );
    assert_eq!(read(&d, "move").2, 0, "{}", read(&d, "move").1);
    assert_eq!(read(&d, "moved").0, "kernel\n");
    assert!(read(&d, "status").0.contains("guarded"));
}

/// `-n` on a directory holding a stray kernel: the plan names each step, and the root is
/// the same afterwards, down to modes and contents. No mount is involved: nothing is
/// mounted on the fake root's /boot.
#[test]
fn dry_run_names_the_steps_and_changes_nothing() {
    let r = common::FakeRoot::new();
    r.write("/boot/vmlinuz-linux", "stray kernel");
    let before = common::tree::listing(r.path(), &[]);
    let out = common::rtool(["boot-guard", "-n", "--move-to"])
        .arg(r.at("/root/stray-boot"))
        .arg("--root")
        .arg(r.path())
        .run()
        .success()
        .stdout();
    assert!(
        out.contains("would move vmlinuz-linux to")
            && out.contains("would set the mode of the directory under")
            && out.contains("to 000")
            && out.contains("would set the immutable flag")
            && out.contains("nothing was changed"),
        "{out}"
    );
    assert_eq!(common::tree::listing(r.path(), &[]), before);

    // The same plan as JSON, and the status of the unguarded directory.
    let j = common::rtool(["boot-guard", "-n", "--json", "--move-to"])
        .arg(r.at("/root/stray-boot"))
        .arg("--root")
        .arg(r.path())
        .run()
        .success()
        .json();
    assert_eq!(j["action"], "guard");
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["steps"].as_array().unwrap().len(), 3, "{j}");
    let st = common::rtool(["boot-guard", "--status", "--json", "--root"])
        .arg(r.path())
        .run()
        .status(1)
        .json();
    assert_eq!(st["guarded"], false);
    assert_eq!(st["mounted"], serde_json::Value::Null);
    assert_eq!(
        st["under"]["mode"].as_u64(),
        Some(0o755),
        "mode is a number: {st}"
    );
    assert_eq!(st["under"]["mode_octal"], "0755");
    assert_eq!(st["under"]["entries"][0], "vmlinuz-linux");
    assert_eq!(common::tree::listing(r.path(), &[]), before);
}

#[test]
fn status_json_after_guarding_and_undo_dry_run_keeps_the_guard() {
    let d = with_root(
        "ext4",
        "mount -t tmpfs realboot \"$R/boot\"\n\
         try guard \"$RTOOL\" boot-guard --root \"$R\"\n\
         try status \"$RTOOL\" boot-guard --status --json --root \"$R\"\n\
         try undo_n \"$RTOOL\" boot-guard --undo -n --root \"$R\"\n\
         try status2 \"$RTOOL\" boot-guard --status --json --root \"$R\"\n\
         try undo \"$RTOOL\" boot-guard --undo --root \"$R\"\n",
    );
    assert_eq!(read(&d, "guard").2, 0, "{}", read(&d, "guard").1);
    for n in ["status", "status2"] {
        let (out, err, code) = read(&d, n);
        assert_eq!(code, 0, "{err}");
        let j: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(j["guarded"], true, "{j}");
        assert_eq!(j["mounted"]["source"], "realboot");
        assert_eq!(j["mounted"]["fstype"], "tmpfs");
        assert_eq!(j["under"]["mode"].as_u64(), Some(0));
        assert_eq!(j["under"]["immutable"], true);
    }
    let (out, _, code) = read(&d, "undo_n");
    assert_eq!(code, 0);
    assert!(
        out.contains("would clear the immutable flag") && out.contains("to 0755"),
        "{out}"
    );
    assert_eq!(read(&d, "undo").2, 0);
}
