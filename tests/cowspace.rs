//! `rtool cowspace` on a real tmpfs mounted in a private mount namespace.

mod common;

use std::fs;

use common::{in_mount_ns, rtool};

/// Runs `body` (bash) after mounting a 256 MiB tmpfs on `$COW`; stdout and stderr of each
/// `step NAME ARGS...` call land in `$OUT/NAME.{out,err,code}`.
fn scenario(body: &str) -> (tempfile::TempDir, impl Fn(&str) -> (String, String, i32)) {
    let d = tempfile::tempdir().unwrap();
    let cow = d.path().join("cowspace");
    fs::create_dir(&cow).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256M cowspace \"$COW\"\n\
         step() {{ n=$1; shift; set +e; \"$RTOOL\" cowspace --path \"$COW\" \"$@\" > \"$OUT/$n.out\" 2> \"$OUT/$n.err\"; echo $? > \"$OUT/$n.code\"; set -e; }}\n{body}"
    );
    in_mount_ns(
        &script,
        &[("COW", cow.as_os_str()), ("OUT", d.path().as_os_str())],
    )
    .success();
    let dir = d.path().to_path_buf();
    let read = move |n: &str| {
        let r = |ext: &str| fs::read_to_string(dir.join(format!("{n}.{ext}"))).unwrap_or_default();
        (r("out"), r("err"), r("code").trim().parse().unwrap_or(-1))
    };
    (d, read)
}

#[test]
fn show_grow_relative_and_read_back() {
    let (_d, step) = scenario(
        "step show\nstep json --json\nstep grow 1G\nstep rel +512M\nstep dry -n 2G\nstep after\n",
    );
    let (out, _, code) = step("show");
    assert_eq!(code, 0);
    assert!(
        out.contains(": 256 MiB in all, 0 B used, 256 MiB free"),
        "{out}"
    );
    let (out, _, _) = step("json");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["size"], 256u64 << 20);
    let (out, err, code) = step("grow");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("256 MiB → 1 GiB (read back from the kernel)"),
        "{out}"
    );
    let (out, err, code) = step("rel");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 GiB → 1.5 GiB"), "{out}");
    let (out, _, code) = step("dry");
    assert_eq!(code, 0);
    assert!(
        out.contains("would remount") && out.contains("1.5 GiB → 2 GiB"),
        "{out}"
    );
    let (out, _, _) = step("after");
    assert!(
        out.contains("1.5 GiB in all"),
        "the dry run changed nothing: {out}"
    );
}

#[test]
fn refusals() {
    let (_d, step) = scenario(
        "head -c 20M /dev/zero > \"$COW/fill\"\nstep below 8M\nstep huge 100T\nstep forced --force 16M\nstep junk 4X\nstep pct 10%\n",
    );
    let (_, err, code) = step("below");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("less than the 20 MiB already in use"), "{err}");
    let (_, err, code) = step("huge");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("more than RAM and swap together"), "{err}");
    // Forced below what is used: the kernel itself refuses, and says so.
    let (_, err, code) = step("forced");
    assert_ne!(code, 0, "{err}");
    let (_, err, code) = step("junk");
    assert_eq!(code, 2, "{err}");
    let (out, err, code) = step("pct");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(read back from the kernel)"), "{out}");
}

#[test]
fn not_an_archiso_system() {
    let host = tempfile::tempdir().unwrap();
    fs::create_dir_all(host.path().join("proc/self")).unwrap();
    fs::write(
        host.path().join("proc/self/mountinfo"),
        "21 1 0:20 / / rw - ext4 /dev/vda rw\n",
    )
    .unwrap();
    rtool(["cowspace"])
        .host(host.path())
        .run()
        .status(7)
        .stderr_has("not an archiso live system");
    let plain = tempfile::tempdir().unwrap();
    rtool(["cowspace", "--path"])
        .arg(plain.path())
        .run()
        .status(2)
        .stderr_has("not a mountpoint");
}
