//! `rtool chroot`: arch-chroot's mounts, /boot from fstab, exit statuses, teardown on every
//! way out, LUKS and ZFS steps. Every mount happens inside `common::in_mount_ns`.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{in_mount_ns, rtool, Cmd, Done, Stubs};

/// A scratch directory holding disk images and the chroot directory `d`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        common::require_root();
        let dir = tempfile::Builder::new()
            .prefix("rtool-chroot-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir d");
        Scratch { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// A loop-backable image with a filesystem made by `mkfs` (program and arguments).
    fn image(&self, name: &str, size: &str, mkfs: &[&str]) {
        let img = self.path().join(name);
        Cmd::new("truncate")
            .args(["-s", size])
            .arg(&img)
            .run()
            .success();
        Cmd::new(mkfs[0]).args(&mkfs[1..]).arg(&img).run().success();
    }
    /// Runs `script` in a private mount namespace after attaching `root.img` (and `boot.img`
    /// when there is one), mounting the root on `$D` and filling it with a busybox system.
    /// `$T` is the scratch directory, `$R`/`$B` the loop devices; all are detached at the end.
    fn run(&self, script: &str, vars: &[(&str, &OsStr)]) -> Done {
        let full = format!("{SETUP}\n{script}");
        let mut v: Vec<(&str, &OsStr)> = vec![("T", self.path().as_os_str())];
        v.extend_from_slice(vars);
        let done = in_mount_ns(&full, &v);
        self.assert_no_mounts();
        done
    }
    /// Nothing is mounted under the scratch directory in the test's own namespace.
    #[track_caller]
    fn assert_no_mounts(&self) {
        let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let here = self.path().to_string_lossy().into_owned();
        let left: Vec<&str> = text.lines().filter(|l| l.contains(&here)).collect();
        assert!(left.is_empty(), "mounts left under {here}: {left:#?}");
    }
}

const SETUP: &str = r#"
D="$T/d"
LOOPS=""
cleanup() { umount -R "$D" 2>/dev/null || true; for l in $LOOPS; do losetup -d "$l"; done; }
trap cleanup EXIT
R=$(losetup -f --show "$T/root.img"); LOOPS="$R"
if [ -e "$T/boot.img" ]; then B=$(losetup -f --show "$T/boot.img"); LOOPS="$LOOPS $B"; fi
mount "$R" "$D"
mkdir -p "$D/bin" "$D/boot" "$D/etc" "$D/proc" "$D/sys" "$D/dev" "$D/run" "$D/tmp"
cp /bin/busybox "$D/bin/busybox"
for l in sh cat ls mount sleep kill true false touch; do ln -sf busybox "$D/bin/$l"; done
echo 'nameserver 192.0.2.53' > "$D/etc/resolv.conf"
"#;

fn busybox_root() -> Scratch {
    assert!(
        Path::new("/bin/busybox").is_file(),
        "these tests need a static busybox (apt-get install busybox-static)"
    );
    let s = Scratch::new();
    s.image("root.img", "64M", &["mkfs.ext4", "-q", "-F"]);
    s
}

fn kernel_has(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

/// The unmount lines `-v` prints, in order.
fn unmounts(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("chroot: unmounted "))
        .map(String::from)
        .collect()
}

/// arch-chroot's mounts under `d`, in the order rtool unmounts them.
fn api_teardown(d: &Path, with_resolv: bool) -> Vec<String> {
    let mut v = Vec::new();
    if with_resolv {
        v.push("etc/resolv.conf");
    }
    v.extend(["tmp", "run", "dev/shm", "dev/pts", "dev", "sys", "proc"]);
    v.iter().map(|p| d.join(p).display().to_string()).collect()
}

#[test]
fn mount_boot_by_uuid_require_boot_and_stray_kernels() {
    let s = busybox_root();
    let uuid = "0d5c1a2e-1111-4222-8333-0123456789ab";
    s.image("boot.img", "32M", &["mkfs.ext4", "-q", "-F", "-U", uuid]);
    let out = s
        .run(
            &format!(
                r#"echo 'UUID={uuid} /boot ext4 rw,relatime 0 2' > "$D/etc/fstab"
touch "$D/boot/vmlinuz-linux" "$D/boot/initramfs-linux.img"
echo '== mount-boot'
# As arch-chroot takes it: no `--`, and the command's own options are its own.
$RTOOL chroot --mount-boot "$D" /bin/cat -n /proc/mounts
echo '== require-boot'
st=0; $RTOOL chroot --require-boot "$D" -- /bin/true 2>"$T/req.err" || st=$?
echo "require-status=$st"
cat "$T/req.err" >&2
"#
            ),
            &[],
        )
        .success();
    let stdout = out.stdout();
    let (mounted, _) = stdout.split_once("== require-boot").expect("both parts");
    assert!(
        mounted.contains(" /boot ext4 rw,relatime"),
        "/boot not mounted inside:\n{mounted}"
    );
    assert!(
        stdout.contains("require-status=7"),
        "--require-boot did not refuse:\n{stdout}"
    );
    let err = out.stderr();
    assert!(err.contains("--require-boot"), "{err}");
    assert!(err.contains("--mount-boot"), "the fix is not named:\n{err}");
    // The unmounted /boot holds a kernel: said loudly, listing the files.
    assert!(
        err.contains("NOT a mounted filesystem")
            && err.contains("initramfs-linux.img, vmlinuz-linux"),
        "{err}"
    );
    // With /boot mounted there is nothing stray to report.
    assert_eq!(err.matches("holds kernel images").count(), 1, "{err}");
}

/// `UUID=XXXX-XXXX` of a FAT filesystem is found by reading its boot sector (no udev links
/// here). Where the kernel has no vfat driver, the error names the device it found.
#[test]
fn vfat_uuid_resolves_from_the_boot_sector() {
    let s = busybox_root();
    s.image("boot.img", "32M", &["mkfs.vfat", "-i", "1234ABCD"]);
    let out = s.run(
        r#"echo 'UUID=1234-ABCD /boot vfat rw,relatime,fmask=0022,dmask=0022 0 2' > "$D/etc/fstab"
echo "boot-device=$B"
st=0; $RTOOL chroot --mount-boot "$D" -- /bin/cat /proc/mounts || st=$?
echo "status=$st"
"#,
        &[],
    );
    let stdout = out.stdout();
    let dev = stdout
        .lines()
        .find_map(|l| l.strip_prefix("boot-device="))
        .expect("boot device")
        .to_string();
    if kernel_has("vfat") {
        assert!(
            stdout.contains(" /boot vfat "),
            "{stdout}\n{}",
            out.stderr()
        );
        assert!(stdout.contains("status=0"), "{stdout}");
    } else {
        assert!(stdout.contains("status=4"), "{stdout}");
        let want = format!("cannot mount {dev} on");
        assert!(
            out.stderr().contains(&want) && out.stderr().contains("(vfat)"),
            "UUID=1234-ABCD did not resolve to {dev}:\n{}",
            out.stderr()
        );
    }
}

/// mount point → (type, source, per-mount options, filesystem options) from a mountinfo text.
fn table(text: &str) -> BTreeMap<String, (String, String, Vec<String>, Vec<String>)> {
    let mut t = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let sorted = |s: &str| {
            let mut v: Vec<String> = s.split(',').map(String::from).collect();
            v.sort();
            v
        };
        t.insert(
            f[4].to_string(),
            (
                f[sep + 1].to_string(),
                f[sep + 2].to_string(),
                sorted(f[5]),
                sorted(f.get(sep + 3).copied().unwrap_or("")),
            ),
        );
    }
    t
}

#[test]
fn same_mounts_as_arch_chroot() {
    assert!(
        Path::new("/usr/bin/arch-chroot").exists(),
        "needs arch-chroot (apt-get install arch-install-scripts)"
    );
    let s = busybox_root();
    let out = s
        .run(
            r#"echo '== rtool'
$RTOOL chroot "$D" -- /bin/cat /proc/self/mountinfo
echo '== arch-chroot'
arch-chroot "$D" /bin/cat /proc/self/mountinfo
"#,
            &[],
        )
        .success();
    let stdout = out.stdout();
    let (ours, theirs) = stdout
        .trim_start_matches("== rtool\n")
        .split_once("== arch-chroot\n")
        .expect("both tables");
    let (mut ours, mut theirs) = (table(ours), table(theirs));
    // /run: rtool binds the host's /run (arch-chroot v28 at 2249315, the reference); Debian's
    // packaged arch-chroot 28-1 is older and mounts a tmpfs there. Compared apart.
    let our_run = ours.remove("/run").expect("rtool mounts /run");
    let their_run = theirs.remove("/run").expect("arch-chroot mounts /run");
    let host_run = table(&std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"));
    let host_run_fs = host_run
        .iter()
        .filter(|(mp, _)| Path::new("/run").starts_with(mp.as_str()))
        .max_by_key(|(mp, _)| mp.len())
        .map(|(_, v)| v.0.clone())
        .expect("a mount holds /run");
    assert_eq!(
        our_run.0, host_run_fs,
        "rtool's /run is not the host's /run"
    );
    assert!(
        their_run.0 == "tmpfs" || their_run.0 == host_run_fs,
        "{their_run:?}"
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "mount points differ"
    );
    for (mp, a) in &ours {
        assert_eq!(Some(a), theirs.get(mp), "{mp} differs (rtool, arch-chroot)");
    }
    for mp in [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/tmp",
        "/etc/resolv.conf",
    ] {
        assert!(ours.contains_key(mp), "{mp} missing: {ours:#?}");
    }
}

#[test]
fn exit_statuses_pass_through_and_everything_is_unmounted() {
    let s = busybox_root();
    let out = s
        .run(
            r#"for cmd in "exit 7" "false" "kill -KILL \$\$" "exit 0"; do
  st=0; $RTOOL chroot -v "$D" -- /bin/sh -c "$cmd" 2>>"$T/err" || st=$?
  echo "status=$st"
  echo "-- end" >>"$T/err"
done
cat "$T/err" >&2
"#,
            &[],
        )
        .success();
    let stdout = out.stdout();
    let statuses: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("status="))
        .collect();
    assert_eq!(statuses, ["7", "1", "137", "0"], "{}", out.stdout());
    let d = s.path().join("d");
    let err = out.stderr();
    for run in err.split("-- end\n").filter(|r| !r.trim().is_empty()) {
        assert_eq!(unmounts(run), api_teardown(&d, true), "{run}");
    }
}

/// rtool stopped by SIGTERM or SIGHUP forwards it, tears down, and exits 128+N.
#[test]
fn signals_to_rtool_are_forwarded_then_torn_down() {
    let s = busybox_root();
    let out = s
        .run(
            r#"for sig in TERM HUP; do
  rm -f "$D/ready"
  $RTOOL chroot -v "$D" -- /bin/sh -c ': > /ready; exec sleep 30' 2>"$T/err.$sig" &
  pid=$!
  for i in $(seq 100); do [ -e "$D/ready" ] && break; sleep 0.1; done
  [ -e "$D/ready" ] || { echo "never started" >&2; exit 1; }
  kill -$sig $pid
  st=0; wait $pid || st=$?
  echo "$sig=$st"
done
cat "$T/err.TERM" >&2; echo "-- end" >&2; cat "$T/err.HUP" >&2; echo "-- end" >&2
"#,
            &[],
        )
        .success();
    assert!(out.stdout().contains("TERM=143"), "{}", out.stdout());
    assert!(out.stdout().contains("HUP=129"), "{}", out.stdout());
    let d = s.path().join("d");
    let err = out.stderr();
    let runs: Vec<&str> = err
        .split("-- end\n")
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert_eq!(runs.len(), 2, "{err}");
    for run in runs {
        assert_eq!(unmounts(run), api_teardown(&d, true), "{run}");
    }
}

/// A mount failing half-way: what was mounted is unmounted, in reverse order.
#[test]
fn a_failed_mount_half_way_is_torn_down() {
    let s = busybox_root();
    let out = s.run(
        r#"rmdir "$D/tmp"
st=0; $RTOOL chroot -v "$D" -- /bin/true || st=$?
echo "status=$st"
"#,
        &[],
    );
    assert!(out.stdout().contains("status=4"), "{}", out.stdout());
    let d = s.path().join("d");
    let mut want = api_teardown(&d, false);
    want.remove(0); // tmp never got mounted
    assert_eq!(unmounts(&out.stderr()), want, "{}", out.stderr());
    assert!(out.stderr().contains("failed to set up the chroot"));
}

#[test]
fn refuses_a_non_directory_and_a_non_root_user() {
    let s = Scratch::new();
    let f = s.path().join("file");
    std::fs::write(&f, "x").expect("write");
    rtool(["chroot".as_ref(), f.as_os_str()])
        .run()
        .status(2)
        .stderr_has("not a directory");
    Cmd::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(common::bin())
        .args(["chroot", "/"])
        .run()
        .status(7)
        .stderr_has("must be run as root");
}

#[test]
fn a_device_that_is_not_there_is_named_as_missing() {
    let s = Scratch::new();
    let d = s.path().join("d");
    rtool(["chroot", "--mount", "/dev/rtool-nonexist"])
        .arg(&d)
        .run()
        .status(7)
        .stderr_has("chroot: error: /dev/rtool-nonexist: no such device\n")
        .stderr_has("chroot: hint: `lsblk -f` lists the disks and partitions");
    let f = s.path().join("file");
    std::fs::write(&f, "x").expect("write");
    let out = rtool([
        "chroot".as_ref(),
        "--mount".as_ref(),
        f.as_os_str(),
        d.as_os_str(),
    ])
    .run()
    .status(2)
    .stderr_has("not a block device");
    assert!(
        !out.stderr().contains("no filesystem type"),
        "{}",
        out.stderr()
    );
    s.assert_no_mounts();
}

/// A chroot directory `d` holding a static busybox `true`: enough to enter, for the tests
/// whose pool is stubbed (nothing gets mounted on `d` itself).
fn stub_chroot(s: &Scratch) -> PathBuf {
    let d = s.path().join("d");
    for sub in ["bin", "proc", "sys", "dev", "run", "tmp"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", d.join("bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", d.join("bin/true")).expect("link");
    d
}

/// zpool and zfs stand-ins for the pool `tank` (tank/ROOT/arch mounted at /, tank/home),
/// printing what the real tools print with -H. The environment steers them:
/// - `IMPORTED`: the altroot of an import already there (`-` for none); unset, not imported;
/// - `IMPORT_ERR`: what a failing `zpool import` says (one with -f succeeds);
/// - `ENCRYPTED`: tank/ROOT is an encryption root (keylocation=prompt) whose key is not
///   loaded; `zfs load-key` takes `secret`, from `-L file://F` or typed on stdin.
fn pool_stubs() -> Stubs {
    let stubs = Stubs::new();
    stubs
        .add_script(
            "zpool",
            r#"case "$1" in
list)
  if [ -z "${IMPORTED:-}" ]; then echo "cannot open '$5': no such pool" >&2; exit 1; fi
  printf '%s\t%s\n' "$5" "$IMPORTED" ;;
import)
  [ "$2" = -f ] && exit 0
  if [ -n "${IMPORT_ERR:-}" ]; then printf '%s\n' "$IMPORT_ERR" >&2; exit 1; fi ;;
esac"#,
        )
        .add_script(
            "zfs",
            r#"case "$1" in
get)
  for ds in tank tank/ROOT tank/ROOT/arch tank/home; do
    ks=-; er=-; kl=none
    case "$ds" in
    tank/ROOT*) if [ -n "${ENCRYPTED:-}" ]; then
        ks=unavailable; er=tank/ROOT; [ "$ds" = tank/ROOT ] && kl=prompt
      fi ;;
    esac
    printf '%s\tkeystatus\t%s\n%s\tencryptionroot\t%s\n%s\tkeylocation\t%s\n' \
      "$ds" "$ks" "$ds" "$er" "$ds" "$kl"
  done ;;
list)
  printf 'tank\tnone\ton\ntank/ROOT\tnone\toff\ntank/ROOT/arch\t%s\tnoauto\ntank/home\t%s/home\ton\n' "$ALTROOT" "$ALTROOT" ;;
load-key)
  if [ "$2" = -L ]; then key=$(cat "${3#file://}"); ds=$4
  else printf "Enter passphrase for '%s': " "$2"; read -r key; ds=$2
  fi
  if [ "$key" != secret ]; then
    echo "Key load error: Incorrect key provided for '$ds'." >&2; exit 255
  fi ;;
esac"#,
        );
    stubs
}

/// `rtool chroot ARGS "$D" -- /bin/true` from the scratch directory, with `pool_stubs` first
/// on PATH, in a private mount namespace: its exit status and output.
fn run_pool(stubs: &Stubs, d: &Path, args: &str, env: &[(&str, &OsStr)]) -> (i32, Done) {
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.path().display());
    let mut vars: Vec<(&str, &OsStr)> = vec![
        ("D", d.as_os_str()),
        ("ALTROOT", d.as_os_str()),
        ("PATH", OsStr::new(&path)),
    ];
    vars.extend_from_slice(env);
    let out = in_mount_ns(
        &format!(
            r#"cd "$D/.."
st=0; $RTOOL chroot {args} "$D" -- /bin/true || st=$?
echo "status=$st""#
        ),
        &vars,
    );
    let status = out
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("status=")?.parse().ok())
        .unwrap_or_else(|| panic!("no status:\n{}\n{}", out.stdout(), out.stderr()));
    (status, out)
}

/// The stubbed calls of a pool that is entered: from its keys to the export.
fn pool_enter_calls(load_key: Option<String>) -> Vec<String> {
    let mut v = vec![POOL_KEYS.to_string()];
    v.extend(load_key);
    v.extend([
        "zfs list -H -o name,mountpoint,canmount -r tank".to_string(),
        "zfs mount tank/ROOT/arch".to_string(),
        "zfs mount -a".to_string(),
        "zpool export tank".to_string(),
    ]);
    v
}

const POOL_LIST: &str = "zpool list -H -o name,altroot tank";
const POOL_KEYS: &str =
    "zfs get -H -p -o name,property,value -r -t filesystem keystatus,encryptionroot,keylocation tank";

#[test]
fn zpool_import_always_with_altroot_then_root_dataset_then_export() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    let stubs = pool_stubs();
    let (st, out) = run_pool(&stubs, &d, "--zpool tank", &[]);
    s.assert_no_mounts();
    assert_eq!(st, 0, "{}", out.stderr());
    let mut want = vec![
        POOL_LIST.to_string(),
        format!("zpool import -N -R {} tank", d.display()),
    ];
    want.extend(pool_enter_calls(None));
    assert_eq!(stubs.calls(), want, "{}", out.stderr());

    // --keep leaves the pool imported.
    std::fs::remove_file(stubs.log_path()).expect("rm log");
    let (st, out) = run_pool(&stubs, &d, "--keep --zpool tank", &[]);
    assert_eq!(st, 0, "{}", out.stderr());
    assert!(out.stderr().contains("kept: "), "{}", out.stderr());
    assert!(
        !stubs.calls().iter().any(|c| c.contains("export")),
        "{:?}",
        stubs.calls()
    );
}

/// A session killed with SIGKILL leaves the pool imported at DIR with nothing mounted: the
/// next one uses it without importing, and exports it on the way out.
#[test]
fn a_pool_left_imported_at_dir_is_used_and_exported() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    let stubs = pool_stubs();
    let (st, out) = run_pool(&stubs, &d, "--zpool tank", &[("IMPORTED", d.as_os_str())]);
    s.assert_no_mounts();
    assert_eq!(st, 0, "{}", out.stderr());
    let mut want = vec![POOL_LIST.to_string()];
    want.extend(pool_enter_calls(None));
    assert_eq!(stubs.calls(), want, "{}", out.stderr());
    let note = format!(
        "tank is already imported with altroot {} (left by an interrupted session?): using it",
        d.display()
    );
    assert!(out.stderr().contains(&note), "{}", out.stderr());
}

/// Imported somewhere else, or with no altroot at all: refused, and left exactly as it was.
#[test]
fn a_pool_imported_elsewhere_is_refused_untouched() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    for (imported, said) in [
        ("/elsewhere", "(altroot /elsewhere)"),
        ("-", "(no altroot)"),
    ] {
        let stubs = pool_stubs();
        let (st, out) = run_pool(
            &stubs,
            &d,
            "--zpool tank",
            &[("IMPORTED", OsStr::new(imported))],
        );
        s.assert_no_mounts();
        let err = out.stderr();
        assert_eq!(st, 4, "{err}");
        assert_eq!(stubs.calls(), [POOL_LIST], "{err}");
        assert!(
            err.contains(&format!("tank is already imported {said}")),
            "{err}"
        );
        assert!(err.contains("`zpool export tank` first"), "{err}");
    }
}

/// Native encryption with --key-file: the key goes to `zfs load-key -L file://ABSOLUTE` for
/// the encryption root, before any dataset is mounted.
#[test]
fn encrypted_pool_with_a_key_file_loads_it_before_mounting() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    std::fs::write(s.path().join("key"), "secret\n").expect("key");
    let key = std::fs::canonicalize(s.path().join("key")).expect("canonical key");
    let stubs = pool_stubs();
    // A relative FILE (run_pool starts in the scratch directory) becomes absolute for zfs.
    let (st, out) = run_pool(
        &stubs,
        &d,
        "--zpool tank --key-file key",
        &[("ENCRYPTED", OsStr::new("1"))],
    );
    s.assert_no_mounts();
    assert_eq!(st, 0, "{}", out.stderr());
    let mut want = vec![
        POOL_LIST.to_string(),
        format!("zpool import -N -R {} tank", d.display()),
    ];
    want.extend(pool_enter_calls(Some(format!(
        "zfs load-key -L file://{} tank/ROOT",
        key.display()
    ))));
    assert_eq!(stubs.calls(), want, "{}", out.stderr());
}

/// No key file and no terminal to type the passphrase on: refused before anything is
/// mounted, naming the encryption root; the pool rtool imported is exported again.
#[test]
fn encrypted_pool_without_a_key_or_a_terminal_is_refused_before_mounting() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    let stubs = pool_stubs();
    let (st, out) = run_pool(
        &stubs,
        &d,
        "--zpool tank",
        &[("ENCRYPTED", OsStr::new("1"))],
    );
    s.assert_no_mounts();
    let err = out.stderr();
    assert_eq!(st, 7, "{err}");
    assert_eq!(
        stubs.calls(),
        [
            POOL_LIST.to_string(),
            format!("zpool import -N -R {} tank", d.display()),
            POOL_KEYS.to_string(),
            "zpool export tank".to_string(),
        ],
        "{err}"
    );
    assert!(
        err.contains("tank/ROOT is encrypted and its key is not loaded"),
        "{err}"
    );
    assert!(
        err.contains("--key-file FILE") && err.contains("terminal"),
        "{err}"
    );
}

/// No key file, but a terminal: `zfs load-key ROOT` runs on it and asks for the passphrase;
/// a wrong one is refused naming the dataset, before anything is mounted.
#[test]
fn encrypted_pool_asks_for_the_passphrase_on_the_terminal() {
    assert!(
        common::which("script").is_some(),
        "needs script(1) for a terminal (apt-get install bsdutils)"
    );
    let s = Scratch::new();
    let d = stub_chroot(&s);
    for (typed, status) in [("secret", 0), ("guess", 8)] {
        let stubs = pool_stubs();
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.path().display());
        let out = in_mount_ns(
            r#"printf '%s\n' "$TYPED" |
  script -qec '$RTOOL chroot --zpool tank "$D" -- /bin/true; echo "status=$?"' /dev/null"#,
            &[
                ("D", d.as_os_str()),
                ("ALTROOT", d.as_os_str()),
                ("PATH", OsStr::new(&path)),
                ("ENCRYPTED", OsStr::new("1")),
                ("TYPED", OsStr::new(typed)),
            ],
        )
        .success();
        s.assert_no_mounts();
        // script(1) puts everything on its terminal: stdout.
        let said = out.stdout();
        assert!(
            said.contains(&format!("status={status}")),
            "{typed}: {said}"
        );
        assert!(said.contains("Enter passphrase for 'tank/ROOT'"), "{said}");
        let mut want = vec![
            POOL_LIST.to_string(),
            format!("zpool import -N -R {} tank", d.display()),
        ];
        if status == 0 {
            want.extend(pool_enter_calls(Some("zfs load-key tank/ROOT".to_string())));
        } else {
            want.extend([
                POOL_KEYS.to_string(),
                "zfs load-key tank/ROOT".to_string(),
                "zpool export tank".to_string(),
            ]);
            assert!(
                said.contains("the key for tank/ROOT was refused: wrong passphrase?"),
                "{said}"
            );
        }
        assert_eq!(stubs.calls(), want, "{said}");
    }
}

/// A key zfs refuses: the error names the dataset; nothing is mounted, the pool exported.
#[test]
fn a_wrong_passphrase_names_the_dataset() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    std::fs::write(s.path().join("key"), "guess\n").expect("key");
    let key = std::fs::canonicalize(s.path().join("key")).expect("canonical key");
    let stubs = pool_stubs();
    let (st, out) = run_pool(
        &stubs,
        &d,
        "--zpool tank --key-file key",
        &[("ENCRYPTED", OsStr::new("1"))],
    );
    s.assert_no_mounts();
    let err = out.stderr();
    assert_eq!(st, 8, "{err}");
    assert!(
        err.contains("the key for tank/ROOT was refused: wrong passphrase?"),
        "{err}"
    );
    assert!(err.contains(&key.display().to_string()), "{err}");
    let calls = stubs.calls();
    assert_eq!(
        calls[2..],
        [
            POOL_KEYS.to_string(),
            format!("zfs load-key -L file://{} tank/ROOT", key.display()),
            "zpool export tank".to_string(),
        ],
        "{err}"
    );
}

/// zpool's own words when the import fails, and the way on: --force-import for a pool the
/// crashed system never exported (passed on as -f), the module for a pool not found.
#[test]
fn a_failed_import_says_why_and_force_import_passes_f() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    let in_use = "cannot import 'tank': pool was previously in use from another system.
Last accessed by archiso (hostid=8d5c3a21) at Sat Dec  5 20:12:01 2026
The pool can be imported, use 'zpool import -f' to import the pool.";
    let stubs = pool_stubs();
    let env: [(&str, &OsStr); 1] = [("IMPORT_ERR", OsStr::new(in_use))];
    let (st, out) = run_pool(&stubs, &d, "--zpool tank", &env);
    s.assert_no_mounts();
    let err = out.stderr();
    assert_eq!(st, 8, "{err}");
    let import = format!("zpool import -N -R {} tank", d.display());
    assert_eq!(stubs.calls(), [POOL_LIST, import.as_str()], "{err}");
    assert!(
        err.contains("pool was previously in use from another system")
            && err.contains("Last accessed by archiso"),
        "zpool's words are missing:\n{err}"
    );
    assert!(
        err.contains("--force-import") && err.contains("crash"),
        "{err}"
    );

    std::fs::remove_file(stubs.log_path()).expect("rm log");
    let (st, out) = run_pool(&stubs, &d, "--zpool tank --force-import", &env);
    s.assert_no_mounts();
    assert_eq!(st, 0, "{}", out.stderr());
    let mut want = vec![
        POOL_LIST.to_string(),
        format!("zpool import -f -N -R {} tank", d.display()),
    ];
    want.extend(pool_enter_calls(None));
    assert_eq!(stubs.calls(), want, "{}", out.stderr());

    let stubs = pool_stubs();
    let (st, out) = run_pool(
        &stubs,
        &d,
        "--zpool tank",
        &[(
            "IMPORT_ERR",
            OsStr::new("cannot import 'tank': no such pool available"),
        )],
    );
    let err = out.stderr();
    assert_eq!(st, 8, "{err}");
    assert!(
        err.contains("failed: cannot import 'tank': no such pool available"),
        "{err}"
    );
    assert!(
        err.contains("modprobe zfs") && err.contains("`zpool import` lists tank"),
        "{err}"
    );
}

/// The ZFS options are checked before anything runs.
#[test]
fn zpool_options_are_checked_first() {
    let s = Scratch::new();
    let d = stub_chroot(&s);
    let stubs = pool_stubs();
    for (args, code, said) in [
        ("--key-file /etc/hostname", 2, "--luks"),
        ("--force-import", 2, "--zpool"),
        ("--zpool tank/ROOT", 2, "not a dataset"),
        ("--zpool=-f", 2, "begins with a letter"),
        (
            "--zpool tank --key-file /nonexistent/key",
            7,
            "/nonexistent/key",
        ),
        ("--zpool tank --key-file /", 2, "is a directory"),
    ] {
        let (st, out) = run_pool(&stubs, &d, args, &[]);
        assert_eq!(st, code, "{args}: {}", out.stderr());
        assert!(out.stderr().contains(said), "{args}: {}", out.stderr());
    }
    assert_eq!(stubs.calls(), Vec::<String>::new());
}

#[test]
fn a_missing_zfs_or_cryptsetup_names_the_package() {
    let s = Scratch::new();
    let d = s.path().join("d");
    rtool(["chroot", "--zpool", "tank"])
        .arg(&d)
        .env("PATH", "/nonexistent")
        .run()
        .status(7)
        .stderr_has("zfs-utils");
    rtool(["chroot", "--luks", "/dev/null"])
        .arg(&d)
        .env("PATH", "/nonexistent")
        .run()
        .status(7)
        .stderr_has("install the cryptsetup package");
}

/// cryptsetup through a stub (the test kernel may have no device-mapper): opened with the key
/// file and the name given, and closed again even when mounting the mapping fails.
#[test]
fn luks_open_and_close_even_when_the_mount_fails() {
    let s = Scratch::new();
    let d = s.path().join("d");
    let key = s.path().join("key");
    std::fs::write(&key, "secret").expect("key");
    let stubs = Stubs::new();
    stubs.add("cryptsetup", 0);
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.path().display());
    let name = format!("rtool-test-{}", std::process::id());
    let out = in_mount_ns(
        r#"st=0; $RTOOL chroot --luks "/dev/rtool-no-such-disk:$NAME" --key-file "$KEY" "$D" -- /bin/true || st=$?
echo "status=$st""#,
        &[
            ("D", d.as_os_str()),
            ("KEY", key.as_os_str()),
            ("NAME", OsStr::new(&name)),
            ("PATH", OsStr::new(&path)),
        ],
    );
    s.assert_no_mounts();
    assert!(
        out.stdout().contains("status=4"),
        "{}\n{}",
        out.stdout(),
        out.stderr()
    );
    assert_eq!(
        stubs.calls(),
        [
            format!(
                "cryptsetup open --key-file {} /dev/rtool-no-such-disk {name}",
                key.display()
            ),
            format!("cryptsetup close {name}"),
        ]
    );
}

/// `-n` with `--zpool` and with `--luks`: the plan names the import with its altroot, the
/// keys, the mounts, the command and the teardown; neither zpool, zfs nor cryptsetup is run,
/// and the namespace's mount table and the directory are as they were.
#[test]
fn dry_run_prints_the_plan_and_runs_no_tool() {
    let s = Scratch::new();
    let d = s.path().join("d");
    let key = s.path().join("key");
    std::fs::write(&key, "secret").expect("key");
    let stubs = pool_stubs();
    stubs.add("cryptsetup", 0);
    let before = common::tree::listing(s.path(), &[]);
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.path().display());
    let out = in_mount_ns(
        r#"cat /proc/self/mountinfo > "$T/mi.before"
echo "== zpool"; $RTOOL chroot -n --zpool tank --key-file "$KEY" --mount-boot "$D" -- /bin/true
echo "== force"; $RTOOL chroot --dry-run --zpool tank --force-import --keep "$D"
echo "== luks"; $RTOOL chroot -n --luks /dev/rtool-no-such-disk:cryptroot "$D" /bin/ls -l
cat /proc/self/mountinfo > "$T/mi.after"
cmp "$T/mi.before" "$T/mi.after"; rm "$T/mi.before" "$T/mi.after""#,
        &[
            ("T", s.path().as_os_str()),
            ("D", d.as_os_str()),
            ("KEY", key.as_os_str()),
            ("PATH", OsStr::new(&path)),
        ],
    )
    .success();
    s.assert_no_mounts();
    assert_eq!(
        stubs.calls(),
        Vec::<String>::new(),
        "no tool may run for a plan"
    );
    assert_eq!(common::tree::listing(s.path(), &[]), before);
    let text = out.stdout();
    let part = |name: &str| {
        text.split(&format!("== {name}\n"))
            .nth(1)
            .and_then(|t| t.split("\n== ").next())
            .unwrap_or_else(|| panic!("no {name} part:\n{text}"))
            .to_string()
    };
    let zpool = stubs.path().join("zpool");
    let zfs = stubs.path().join("zfs");
    let (p, dd) = (part("zpool"), d.display());
    for step in [
        format!("plan for {dd} (nothing is changed)"),
        format!(
            "1. ZPOOL_IMPORT_UDEV_TIMEOUT_MS=0 {} import -N -R {dd} tank",
            zpool.display()
        ),
        format!(
            "2. load the key of each encryption root of tank from {}",
            key.display()
        ),
        format!("{} mount -a", zfs.display()),
        format!("mount /boot, /efi and /boot/efi as {dd}/etc/fstab lists them"),
        "mount proc, sys".to_string(),
        format!("chroot {dd} /bin/true"),
        format!("then {} export tank", zpool.display()),
    ] {
        let step = if Path::new("/run/udev/control").exists() {
            step.replace("ZPOOL_IMPORT_UDEV_TIMEOUT_MS=0 ", "")
        } else {
            step
        };
        assert!(p.contains(&step), "{step:?} missing from the plan:\n{p}");
    }
    let f = part("force");
    assert!(f.contains(&format!("import -f -N -R {dd} tank")), "{f}");
    assert!(
        f.contains("asking on the terminal") && f.contains("target's shell"),
        "{f}"
    );
    assert!(f.contains("but keep (--keep)"), "{f}");
    let l = part("luks");
    for step in [
        format!(
            "1. {} open /dev/rtool-no-such-disk cryptroot",
            stubs.path().join("cryptsetup").display()
        ),
        format!("2. mount /dev/mapper/cryptroot on {dd}"),
        format!("chroot {dd} /bin/ls -l"),
        "cryptsetup close cryptroot".to_string(),
    ] {
        assert!(l.contains(&step), "{step:?} missing from the plan:\n{l}");
    }
}
