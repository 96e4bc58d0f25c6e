//! `rtool fetch-pkg` against a real nginx over TLS serving an archive-shaped tree of real,
//! gpg-signed packages; faults from a proxy that cuts and stalls connections.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::server::{archive, archive_root, tls, unresolvable_host, Fault, FaultProxy, Nginx};
use common::{in_mount_ns, rtool, Cmd, Done, FakeRoot};

fn keyring() -> PathBuf {
    archive().join("keyring")
}

fn server() -> Nginx {
    Nginx::start(&archive_root(), "")
}

/// `rtool fetch-pkg` against `url` with the test CA and keyring, into `out`.
fn fetch(url: &str, out: &Path, args: &[&str]) -> Done {
    rtool(["fetch-pkg", "--mirror", url, "--ca-file"])
        .arg(&tls().ca)
        .arg("--keyring")
        .arg(keyring())
        .arg("-o")
        .arg(out)
        .args(["--retries", "0"])
        .args(args)
        .run()
}

/// `rtool fetch-pkg --list PKG` against the server, with the test CA.
fn list_cmd(n: &Nginx, pkg: &str) -> common::Cmd {
    rtool([
        "fetch-pkg",
        "--list",
        pkg,
        "--mirror",
        &n.url(),
        "--ca-file",
    ])
    .arg(&tls().ca)
}

fn sha256(p: &Path) -> String {
    let out = Cmd::new("sha256sum").arg(p).run().success().stdout();
    out.split_whitespace().next().unwrap().to_string()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn out_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fetch-").tempdir().unwrap()
}

#[test]
fn list_shows_every_version_newest_first_by_vercmp() {
    let n = server();
    let out = list_cmd(&n, "linux").run().success().stdout();
    let versions: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["6.2.10.arch1-1", "6.2.8.arch1-1", "6.2.7.arch1-1"],
        "{out}"
    );
    // The epoch arrives percent-encoded in the listing and is shown decoded.
    let z = list_cmd(&n, "zfs-utils")
        .arg("--json")
        .run()
        .success()
        .json();
    assert_eq!(z[0]["version"], "2:2.1.9-1");
    assert_eq!(z[0]["file"], "zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst");
    assert_eq!(z[0]["signed"], true);
    // The size is a number of bytes; the listing's rounded text stays beside it.
    assert!(z[0]["size"].is_u64(), "{z}");
    assert!(z[0]["size_exact"].is_boolean(), "{z}");
    assert!(z[0]["size_listed"].is_string(), "{z}");
    // zfs-utils is small enough for nginx to list its exact size (up to 9999 bytes).
    let listed = z[0]["size_listed"].as_str().unwrap();
    assert_eq!(z[0]["size_exact"], true, "{z}");
    assert_eq!(z[0]["size"].as_u64().unwrap().to_string(), listed);
}

#[test]
fn list_marks_the_running_kernel() {
    let n = server();
    let host = tempfile::tempdir().unwrap();
    fs::create_dir_all(host.path().join("proc/sys/kernel")).unwrap();
    fs::write(
        host.path().join("proc/sys/kernel/osrelease"),
        "6.2.8-arch1-1\n",
    )
    .unwrap();
    let out = list_cmd(&n, "linux")
        .host(host.path())
        .run()
        .success()
        .stdout();
    let line = out
        .lines()
        .find(|l| l.contains("running kernel"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.trim_start().starts_with("6.2.8.arch1-1"), "{out}");
}

/// The line of `out` for `version` (the first column after the mark).
fn list_line<'a>(out: &'a str, version: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.get(2..)
                .is_some_and(|v| v.starts_with(&format!("{version} ")))
        })
        .unwrap_or_else(|| panic!("no line for {version}:\n{out}"))
}

#[test]
fn list_marks_the_installed_and_cached_versions() {
    let n = server();
    // The target keeps its database and cache where its pacman.conf says, not at the defaults.
    let root = FakeRoot::new();
    root.write(
        "/etc/pacman.conf",
        "[options]\nDBPath = /srv/pacman/\nCacheDir = /srv/cache/one/ /srv/cache/two/\n",
    )
    .write(
        "/srv/pacman/local/linux-6.2.8.arch1-1/desc",
        "%NAME%\nlinux\n\n%VERSION%\n6.2.8.arch1-1\n\n",
    )
    .write(
        "/srv/pacman/local/linux-headers-6.2.10.arch1-1/desc",
        "%NAME%\nlinux-headers\n\n%VERSION%\n6.2.10.arch1-1\n\n",
    )
    .write("/srv/cache/two/linux-6.2.7.arch1-1-x86_64.pkg.tar.zst", "x")
    .write(
        "/srv/cache/two/linux-6.2.7.arch1-1-x86_64.pkg.tar.zst.sig",
        "x",
    )
    // Neither a half download nor the default cache counts.
    .write(
        "/srv/cache/one/linux-6.2.10.arch1-1-x86_64.pkg.tar.zst.part",
        "x",
    )
    .write(
        "/var/cache/pacman/pkg/linux-6.2.10.arch1-1-x86_64.pkg.tar.zst",
        "x",
    );
    let listed = |extra: &[&str]| {
        list_cmd(&n, "linux")
            .arg("--root")
            .arg(root.path())
            .args(extra)
    };
    let out = listed(&[]).run().success().stdout();
    assert!(out.starts_with("  VERSION "), "{out}");
    assert!(list_line(&out, "6.2.8.arch1-1").starts_with("+ "), "{out}");
    assert!(
        list_line(&out, "6.2.8.arch1-1").ends_with("  (installed)"),
        "{out}"
    );
    assert!(list_line(&out, "6.2.7.arch1-1").starts_with("  "), "{out}");
    assert!(
        list_line(&out, "6.2.7.arch1-1").ends_with(".pkg.tar.zst  (cached)"),
        "{out}"
    );
    assert!(
        list_line(&out, "6.2.10.arch1-1").ends_with(".pkg.tar.zst"),
        "{out}"
    );
    assert_eq!(out.matches('+').count(), 1, "{out}");

    let marks = |json: serde_json::Value| -> Vec<(String, bool, bool)> {
        json.as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let b = |k: &str| v[k].as_bool().unwrap_or_else(|| panic!("{k}: {v}"));
                (
                    v["version"].as_str().unwrap().to_string(),
                    b("installed"),
                    b("cached"),
                )
            })
            .collect()
    };
    let mark = |v: &str, i: bool, c: bool| (v.to_string(), i, c);
    assert_eq!(
        marks(listed(&["--json"]).run().success().json()),
        [
            mark("6.2.10.arch1-1", false, false),
            mark("6.2.8.arch1-1", true, false),
            mark("6.2.7.arch1-1", false, true),
        ]
    );
    // -o DIR is the cache that counts, the target's CacheDirs no longer.
    let d = out_dir();
    fs::write(
        d.path().join("linux-6.2.10.arch1-1-x86_64.pkg.tar.zst"),
        "x",
    )
    .unwrap();
    assert_eq!(
        marks(
            listed(&["--json", "-o"])
                .arg(d.path())
                .run()
                .success()
                .json()
        ),
        [
            mark("6.2.10.arch1-1", false, true),
            mark("6.2.8.arch1-1", true, false),
            mark("6.2.7.arch1-1", false, false),
        ]
    );
}

#[test]
fn newest_is_fetched_verified_with_path_and_sha256() {
    let n = server();
    let d = out_dir();
    let out = fetch(&n.url(), d.path(), &["linux"]).success().stdout();
    let file = d.path().join("linux-6.2.10.arch1-1-x86_64.pkg.tar.zst");
    assert!(
        out.contains(&format!("{}  {}", file.display(), sha256(&file))),
        "{out}"
    );
    assert!(out.contains("signed by Test Packager"), "{out}");
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(archive_root().join("packages/l/linux/linux-6.2.10.arch1-1-x86_64.pkg.tar.zst"))
            .unwrap()
    );
    assert_eq!(
        files(d.path()),
        [
            "linux-6.2.10.arch1-1-x86_64.pkg.tar.zst",
            "linux-6.2.10.arch1-1-x86_64.pkg.tar.zst.sig"
        ]
    );
    // Present and verified: not fetched again.
    fetch(&n.url(), d.path(), &["linux"])
        .success()
        .stdout_has("already here, signed by Test Packager");
    let log = n.wait_access_log("linux-6.2.10.arch1-1-x86_64.pkg.tar.zst ");
    assert_eq!(
        log.matches("GET /packages/l/linux/linux-6.2.10.arch1-1-x86_64.pkg.tar.zst ")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn exact_versions_constraints_epochs_and_xz() {
    let n = server();
    let d = out_dir();
    fetch(
        &n.url(),
        d.path(),
        &[
            "linux=6.2.7.arch1-1",
            "linux-headers<6.2.10",
            "zfs-utils=2:2.1.9-1",
            "cmatrix-test",
        ],
    )
    .success();
    assert_eq!(
        files(d.path())
            .into_iter()
            .filter(|f| !f.ends_with(".sig"))
            .collect::<Vec<_>>(),
        [
            "cmatrix-test-1.0-1-any.pkg.tar.xz",
            "linux-6.2.7.arch1-1-x86_64.pkg.tar.zst",
            "linux-headers-6.2.8.arch1-1-x86_64.pkg.tar.zst",
            "zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst"
        ]
    );
    fetch(&n.url(), d.path(), &["linux=9.9.arch1-1"])
        .status(7)
        .stderr_has("no linux matching 9.9.arch1-1")
        .stderr_has("available: 6.2.10.arch1-1");
    fetch(&n.url(), d.path(), &["no-such-package"])
        .status(7)
        .stderr_has("no such package");
}

#[test]
fn date_resolves_a_consistent_set_before_and_after_the_repo_renames() {
    let n = server();
    let d = out_dir();
    let j = fetch(
        &n.url(),
        d.path(),
        &[
            "--date",
            "2023-03-20",
            "--json",
            "linux",
            "linux-headers",
            "zfs-utils",
            "cmatrix-test",
        ],
    )
    .success()
    .json();
    let got: Vec<(String, String)> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("linux".to_string(), "6.2.7.arch1-1".to_string()),
            ("linux-headers".into(), "6.2.7.arch1-1".into()),
            ("zfs-utils".into(), "2:2.1.9-1".into()),
            ("cmatrix-test".into(), "1.0-1".into())
        ]
    );
    let d2 = out_dir();
    fetch(&n.url(), d2.path(), &["--date", "2023-06-01", "linux"]).success();
    assert!(d2
        .path()
        .join("linux-6.2.8.arch1-1-x86_64.pkg.tar.zst")
        .is_file());
    fetch(&n.url(), d2.path(), &["--date", "2023-06-02", "linux"])
        .status(7)
        .stderr_has("no repository database for 2023-06-02");
    // The database's checksum is checked too: a file that differs from it is refused.
    let f = d.path().join("linux-6.2.7.arch1-1-x86_64.pkg.tar.zst");
    let mut bytes = fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&f, bytes).unwrap();
    fetch(&n.url(), d.path(), &["--date", "2023-03-20", "linux"])
        .status(5)
        .stderr_has("differs from the repository database");
}

#[test]
fn match_kernel_fetches_kernel_and_headers() {
    let n = server();
    let d = out_dir();
    fetch(&n.url(), d.path(), &["--match-kernel=6.2.8-arch1-1"]).success();
    assert!(d
        .path()
        .join("linux-6.2.8.arch1-1-x86_64.pkg.tar.zst")
        .is_file());
    assert!(d
        .path()
        .join("linux-headers-6.2.8.arch1-1-x86_64.pkg.tar.zst")
        .is_file());
    fetch(&n.url(), d.path(), &["--match-kernel=6.1.20-1-lts"]).success();
    assert!(d
        .path()
        .join("linux-lts-headers-6.1.20-1-x86_64.pkg.tar.zst")
        .is_file());
    // Without a value: the running kernel.
    let host = tempfile::tempdir().unwrap();
    fs::create_dir_all(host.path().join("proc/sys/kernel")).unwrap();
    fs::write(
        host.path().join("proc/sys/kernel/osrelease"),
        "6.2.7-arch1-1\n",
    )
    .unwrap();
    let d2 = out_dir();
    rtool([
        "fetch-pkg",
        "--match-kernel",
        "--mirror",
        &n.url(),
        "--ca-file",
    ])
    .arg(&tls().ca)
    .arg("--keyring")
    .arg(keyring())
    .arg("-o")
    .arg(d2.path())
    .host(host.path())
    .run()
    .success();
    assert!(d2
        .path()
        .join("linux-headers-6.2.7.arch1-1-x86_64.pkg.tar.zst")
        .is_file());
}

#[test]
fn offline_uses_the_output_directory_only() {
    let n = server();
    let d = out_dir();
    fetch(&n.url(), d.path(), &["linux=6.2.8.arch1-1"]).success();
    drop(n);
    let run = |spec: &str| {
        rtool(["fetch-pkg", "--offline", "--keyring"])
            .arg(keyring())
            .arg("-o")
            .arg(d.path())
            .arg(spec)
            .run()
    };
    run("linux")
        .success()
        .stdout_has("already here, signed by Test Packager");
    run("linux-headers")
        .status(7)
        .stderr_has(&format!("no linux-headers in {}", d.path().display()));
    // Signatures are checked again: a changed file is refused.
    let f = d.path().join("linux-6.2.8.arch1-1-x86_64.pkg.tar.zst");
    let mut b = fs::read(&f).unwrap();
    b[100] ^= 1;
    fs::write(&f, b).unwrap();
    run("linux").status(5);
}

#[test]
fn bad_signatures_never_reach_the_final_name() {
    let n = server();
    let d = out_dir();
    fetch(&n.url(), d.path(), &["badsig-pkg"])
        .status(5)
        .stderr_has("Untrusted Packager");
    fetch(&n.url(), d.path(), &["nosig-pkg"])
        .status(5)
        .stderr_has("no signature on the mirror")
        .stderr_has("--skip-verify");
    fetch(&n.url(), d.path(), &["htmlerr"]).status(5);
    for f in files(d.path()) {
        assert!(f.ends_with(".sig"), "left behind: {f}");
    }
    // --skip-verify is explicit and loud.
    fetch(&n.url(), d.path(), &["--skip-verify", "nosig-pkg"])
        .success()
        .stderr_has("signatures are NOT checked")
        .stdout_has("NOT verified");
    // An HTML page is still not a package, verified or not.
    fetch(&n.url(), d.path(), &["--skip-verify", "htmlerr"])
        .status(5)
        .stderr_has("HTML page");
    assert!(!d.path().join("htmlerr-1.0-1-x86_64.pkg.tar.zst").exists());
}

#[test]
fn tls_is_verified() {
    let n = server();
    let d = out_dir();
    rtool(["fetch-pkg", "--retries", "0", "--keyring"])
        .arg(keyring())
        .args(["--mirror", &n.url(), "-o"])
        .arg(d.path())
        .arg("linux")
        .run()
        .status(6)
        .stderr_has("--ca-file");
    rtool(["fetch-pkg", "--retries", "0", "--ca-file"])
        .arg(&tls().other_ca)
        .arg("--keyring")
        .arg(keyring())
        .args(["--mirror", &n.url(), "-o"])
        .arg(d.path())
        .arg("linux")
        .run()
        .status(6);
    let bad = d.path().join("not-a-cert.pem");
    fs::write(&bad, "hello\n").unwrap();
    rtool(["fetch-pkg", "--ca-file"])
        .arg(&bad)
        .args(["--mirror", &n.url(), "linux"])
        .run()
        .status(3)
        .stderr_has("no certificate");
    assert!(files(d.path()).iter().all(|f| f == "not-a-cert.pem"));
}

#[test]
fn cut_connection_then_resume_gives_the_same_file() {
    let n = server();
    // Listing, signature and package share one kept-alive connection: cut it in the body.
    let p = FaultProxy::start(n.port, Fault::CutAfter(300_000));
    let d = out_dir();
    let name = "linux-6.2.8.arch1-1-x86_64.pkg.tar.zst";
    fetch(&p.url(), d.path(), &["linux=6.2.8.arch1-1"])
        .status(6)
        .stderr_has("kept for resuming");
    let part = d.path().join(format!("{name}.part"));
    let have = fs::metadata(&part).unwrap().len();
    assert!(have > 0 && have < 300_000, "partial: {have}");
    assert!(!d.path().join(name).exists());
    p.set_fault(Fault::Pass);
    fetch(&p.url(), d.path(), &["linux=6.2.8.arch1-1"]).success();
    let src = archive_root().join("packages/l/linux").join(name);
    assert_eq!(sha256(&d.path().join(name)), sha256(&src));
    assert!(!part.exists());
    n.wait_access_log(&format!("range=\"bytes={have}-\""));
    // With retries, one command rides over the cut, resuming on a new connection.
    let d2 = out_dir();
    let p2 = FaultProxy::start(n.port, Fault::CutFirst(200_000));
    rtool([
        "fetch-pkg",
        "--skip-verify",
        "--retries",
        "3",
        "--mirror",
        &p2.url(),
        "--ca-file",
    ])
    .arg(&tls().ca)
    .arg("-o")
    .arg(d2.path())
    .arg("linux=6.2.10.arch1-1")
    .run()
    .success()
    .stderr_has("retrying");
    assert!(p2.connections() >= 2);
    assert_eq!(
        sha256(&d2.path().join("linux-6.2.10.arch1-1-x86_64.pkg.tar.zst")),
        sha256(&archive_root().join("packages/l/linux/linux-6.2.10.arch1-1-x86_64.pkg.tar.zst"))
    );
}

#[test]
fn stalled_server_times_out() {
    let n = server();
    // The listing passes; the package body stops arriving.
    let p = FaultProxy::start(n.port, Fault::StallAfter(100_000));
    let d = out_dir();
    let t = std::time::Instant::now();
    rtool([
        "fetch-pkg",
        "--timeout",
        "2",
        "--retries",
        "0",
        "--skip-verify",
        "--mirror",
        &p.url(),
        "--ca-file",
    ])
    .arg(&tls().ca)
    .arg("-o")
    .arg(d.path())
    .arg("linux=6.2.8.arch1-1")
    .run()
    .status(6)
    .stderr_has("timeout")
    .stderr_has("kept for resuming");
    assert!(t.elapsed().as_secs() < 15, "took {:?}", t.elapsed());
}

#[test]
fn redirect_chains_are_followed() {
    let extra = "location /hop2/ { rewrite ^/hop2/(.*)$ /hop1/$1 redirect; }\n location /hop1/ { rewrite ^/hop1/(.*)$ /$1 redirect; }";
    let n = Nginx::start(&archive_root(), extra);
    let d = out_dir();
    fetch(
        &format!("{}/hop2", n.url()),
        d.path(),
        &["linux=6.2.7.arch1-1"],
    )
    .success()
    .stdout_has("signed by Test Packager");
    let loops = Nginx::start(
        &archive_root(),
        "location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 redirect; }",
    );
    fetch(&format!("{}/loop", loops.url()), d.path(), &["linux"]).status(6);
}

#[test]
fn truncated_or_foreign_part_files() {
    let n = server();
    let d = out_dir();
    let name = "linux-6.2.7.arch1-1-x86_64.pkg.tar.zst";
    let src = fs::read(archive_root().join("packages/l/linux").join(name)).unwrap();
    // A truncated .part from an earlier run is resumed.
    fs::write(d.path().join(format!("{name}.part")), &src[..1000]).unwrap();
    fetch(&n.url(), d.path(), &["linux=6.2.7.arch1-1"]).success();
    assert_eq!(fs::read(d.path().join(name)).unwrap(), src);
    n.wait_access_log("range=\"bytes=1000-\"");
    // A .part holding other bytes fails verification, is discarded, and the next run succeeds.
    let d2 = out_dir();
    fs::write(d2.path().join(format!("{name}.part")), vec![b'x'; 5000]).unwrap();
    fetch(&n.url(), d2.path(), &["linux=6.2.7.arch1-1"]).status(5);
    assert!(!d2.path().join(format!("{name}.part")).exists() && !d2.path().join(name).exists());
    fetch(&n.url(), d2.path(), &["linux=6.2.7.arch1-1"]).success();
}

#[test]
fn full_output_filesystem_is_a_clear_error() {
    let n = server();
    let d = out_dir();
    let small = d.path().join("small");
    fs::create_dir(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256k tiny '{s}'\nset +e\n\"$RTOOL\" fetch-pkg --retries 0 --mirror '{u}' --ca-file '{ca}' --keyring '{k}' -o '{s}' linux=6.2.7.arch1-1 2> '{d}/err'\necho $? > '{d}/code'\nls '{s}' > '{d}/ls'",
        s = small.display(),
        u = n.url(),
        ca = tls().ca.display(),
        k = keyring().display(),
        d = d.path().display()
    );
    in_mount_ns(&script, &[]).success();
    let err = fs::read_to_string(d.path().join("err")).unwrap();
    assert_eq!(
        fs::read_to_string(d.path().join("code")).unwrap().trim(),
        "4",
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "no space left on {} (tmpfs tiny), 256 KiB in all",
            small.display()
        )),
        "{err}"
    );
    let ls = fs::read_to_string(d.path().join("ls")).unwrap();
    assert!(
        !ls.lines()
            .any(|l| l == "linux-6.2.7.arch1-1-x86_64.pkg.tar.zst"),
        "{ls}"
    );
}

#[test]
fn no_keyring_anywhere_explains_the_choices() {
    let n = server();
    let d = out_dir();
    let empty = tempfile::tempdir().unwrap();
    for s in ["etc", "usr"] {
        std::fs::create_dir(empty.path().join(s)).unwrap();
    }
    rtool(["fetch-pkg", "--mirror", &n.url(), "--ca-file"])
        .arg(&tls().ca)
        .arg("--root")
        .arg(empty.path())
        .arg("-o")
        .arg(d.path())
        .arg("linux")
        .host(empty.path())
        .run()
        .status(7)
        .stderr_has("--keyring")
        .stderr_has("--skip-verify");
    assert!(files(d.path()).is_empty());
}

#[test]
fn resume_handles_416_and_servers_that_ignore_ranges() {
    let name = "linux-6.2.10.arch1-1-x86_64.pkg.tar.zst";
    let src = fs::read(archive_root().join("packages/l/linux").join(name)).unwrap();
    // A .part that already holds the whole file: the server answers 416, nothing is sent again.
    let n = server();
    let d = out_dir();
    fs::write(d.path().join(format!("{name}.part")), &src).unwrap();
    fetch(&n.url(), d.path(), &["linux=6.2.10.arch1-1"])
        .success()
        .stdout_has("signed by Test Packager");
    assert_eq!(fs::read(d.path().join(name)).unwrap(), src);
    n.wait_access_log(" 416 ");
    // A server without range support answers 200 with the whole file: start over cleanly.
    let plain = Nginx::start(&archive_root(), "max_ranges 0;");
    let d2 = out_dir();
    fs::write(d2.path().join(format!("{name}.part")), &src[..5000]).unwrap();
    fetch(&plain.url(), d2.path(), &["linux=6.2.10.arch1-1"]).success();
    assert_eq!(fs::read(d2.path().join(name)).unwrap(), src);
}

#[test]
fn mirrors_are_tried_in_order() {
    let n = server();
    let d = out_dir();
    // Nothing listens on the first one.
    let dead = format!("https://127.0.0.1:{}", common::server::free_port());
    rtool([
        "fetch-pkg",
        "--retries",
        "0",
        "--mirror",
        &dead,
        "--mirror",
        &n.url(),
        "--ca-file",
    ])
    .arg(&tls().ca)
    .arg("--keyring")
    .arg(keyring())
    .arg("-o")
    .arg(d.path())
    .arg("linux=6.2.7.arch1-1")
    .run()
    .success()
    .stderr_has("trying the next mirror");
    assert!(d
        .path()
        .join("linux-6.2.7.arch1-1-x86_64.pkg.tar.zst")
        .is_file());
}

/// A served tree with the archive's `linux` packages, each `(version, body, sig)` as given.
fn linux_tree(entries: &[(&str, Vec<u8>, Vec<u8>)]) -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("fetch-root-")
        .tempdir()
        .unwrap();
    let dir = root.path().join("packages/l/linux");
    fs::create_dir_all(&dir).unwrap();
    for (version, body, sig) in entries {
        let name = format!("linux-{version}-x86_64.pkg.tar.zst");
        fs::write(dir.join(&name), body).unwrap();
        fs::write(dir.join(format!("{name}.sig")), sig).unwrap();
    }
    root
}

fn linux_pkg(version: &str) -> (Vec<u8>, Vec<u8>) {
    let p = archive_root().join(format!(
        "packages/l/linux/linux-{version}-x86_64.pkg.tar.zst"
    ));
    let mut sig = p.clone().into_os_string();
    sig.push(".sig");
    (fs::read(&p).unwrap(), fs::read(sig).unwrap())
}

/// The package bodies the server was asked for (signatures and listings aside).
fn body_requests(n: &Nginx) -> Vec<String> {
    n.access_log()
        .lines()
        .filter(|l| l.contains(".pkg.tar.zst HTTP"))
        .map(String::from)
        .collect()
}

#[test]
fn a_sig_that_is_no_signature_is_refused_before_the_package_is_asked_for() {
    let (body, _) = linux_pkg("6.2.8.arch1-1");
    // 70 KiB of signature-looking bytes, and a well-formed OpenPGP packet that is a user ID.
    let mut huge = vec![0x89, 0x02, 0x33];
    huge.resize(70 << 10, 0x42);
    let user_id = b"\xcd\x0cnot a packet".to_vec();
    let root = linux_tree(&[
        ("6.2.8.arch1-1", body.clone(), huge),
        ("6.2.7.arch1-1", body, user_id),
    ]);
    let n = Nginx::start(root.path(), "");
    let d = out_dir();
    fetch(&n.url(), d.path(), &["linux=6.2.8.arch1-1"])
        .status(5)
        .stderr_has("linux-6.2.8.arch1-1-x86_64.pkg.tar.zst: ")
        .stderr_has("larger than the 65536 bytes expected")
        .stderr_has("the package was not downloaded");
    fetch(&n.url(), d.path(), &["linux=6.2.7.arch1-1"])
        .status(5)
        .stderr_has("malformed signature: the file holds something other than a signature");
    n.wait_access_log("linux-6.2.7.arch1-1-x86_64.pkg.tar.zst.sig ");
    assert_eq!(body_requests(&n), Vec::<String>::new());
    assert_eq!(files(d.path()), Vec::<String>::new());
}

#[test]
fn a_resumed_download_is_verified_in_one_pass() {
    let name = "linux-6.2.10.arch1-1-x86_64.pkg.tar.zst";
    let src = archive_root().join("packages/l/linux").join(name);
    let bytes = fs::read(&src).unwrap();
    let want = sha256(&src);
    let n = server();
    // A .part from an earlier run: its bytes are hashed once, the rest as it arrives, and the
    // printed checksum and the signature both cover the whole file.
    let d = out_dir();
    let half = bytes.len() / 2;
    fs::write(d.path().join(format!("{name}.part")), &bytes[..half]).unwrap();
    fetch(&n.url(), d.path(), &["linux=6.2.10.arch1-1"])
        .success()
        .stdout_has(&format!("{want}, signed by Test Packager"));
    n.wait_access_log(&format!("range=\"bytes={half}-\""));
    assert_eq!(fs::read(d.path().join(name)).unwrap(), bytes);
    // Cut mid-body and resumed within one command: the bytes of the first attempt are not
    // hashed again, nor missed.
    let d2 = out_dir();
    let p = FaultProxy::start(n.port, Fault::CutFirst(200_000));
    rtool([
        "fetch-pkg",
        "--retries",
        "3",
        "--mirror",
        &p.url(),
        "--ca-file",
    ])
    .arg(&tls().ca)
    .arg("--keyring")
    .arg(keyring())
    .arg("-o")
    .arg(d2.path())
    .arg("linux=6.2.10.arch1-1")
    .run()
    .success()
    .stderr_has("retrying")
    .stdout_has(&format!("{want}, signed by Test Packager"));
    assert!(p.connections() >= 2);
}

#[test]
fn a_corrupted_body_fails_and_is_not_kept() {
    let (mut body, sig) = linux_pkg("6.2.8.arch1-1");
    let mid = body.len() / 2;
    body[mid] ^= 0x01;
    let root = linux_tree(&[("6.2.8.arch1-1", body, sig)]);
    let n = Nginx::start(root.path(), "");
    let d = out_dir();
    let name = "linux-6.2.8.arch1-1-x86_64.pkg.tar.zst";
    fetch(&n.url(), d.path(), &["linux=6.2.8.arch1-1"])
        .status(5)
        .stderr_has("bad signature by")
        .stderr_has("Test Packager");
    assert!(!d.path().join(name).exists() && !d.path().join(format!("{name}.part")).exists());
    // A damaged byte in a resumed prefix, with a correct rest from the server: refused too.
    let good = server();
    let (mut prefix, _) = linux_pkg("6.2.8.arch1-1");
    prefix.truncate(4000);
    prefix[10] ^= 0x01;
    fs::write(d.path().join(format!("{name}.part")), prefix).unwrap();
    fetch(&good.url(), d.path(), &["linux=6.2.8.arch1-1"])
        .status(5)
        .stderr_has("bad signature by");
    good.wait_access_log("range=\"bytes=4000-\"");
    assert!(!d.path().join(name).exists() && !d.path().join(format!("{name}.part")).exists());
}

#[test]
fn a_name_that_does_not_resolve_fails_at_once_with_the_next_steps() {
    let (host, lookup) = unresolvable_host();
    let d = out_dir();
    let mirror = format!("https://{host}");
    // The default retries (4, 7.5 s of backoff) stay: they are for what may pass. (The
    // keyring comes from the test archive, built on first use: before the clock starts.)
    let cmd = rtool(["fetch-pkg", "--mirror", &mirror, "--keyring"])
        .arg(keyring())
        .arg("-o")
        .arg(d.path())
        .arg("linux");
    let started = std::time::Instant::now();
    let done = cmd.run();
    let took = started.elapsed();
    let done = done
        .status(6)
        .stderr_has(&format!("cannot resolve the host name {host}"))
        .stderr_has("rtool doctor")
        .stderr_has("rtool sfp-unlock")
        .stderr_has("--offline -o DIR")
        .stderr_has("--mirror URL");
    let err = done.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("fetch-pkg: error: ") && lines[0].contains(host),
        "{err}"
    );
    assert!(lines[1].starts_with("fetch-pkg: hint: "), "{err}");
    assert!(
        took < lookup + std::time::Duration::from_secs(2),
        "{took:?} (one lookup takes {lookup:?}):\n{err}"
    );
    assert_eq!(files(d.path()), Vec::<String>::new());
}

#[test]
fn a_dry_run_asks_no_server() {
    let n = server();
    let (host, _) = unresolvable_host();
    let d = out_dir();
    let exact = "linux-6.2.7.arch1-1-x86_64.pkg.tar.zst";
    fs::write(d.path().join(exact), "already here").unwrap();
    for mirror in [n.url(), format!("https://{host}")] {
        let done = fetch(
            &mirror,
            d.path(),
            &[
                "-n",
                "linux<6.2.8",
                "linux=6.2.7.arch1-1",
                "linux=6.2.8.arch1-1",
            ],
        )
        .success()
        .stdout_has(&format!(
            "would look up linux<6.2.8 on {mirror}, and fetch it into"
        ))
        .stdout_has(&format!("would look up linux=6.2.8.arch1-1 on {mirror}"))
        .stdout_has(&format!("would use {}", d.path().join(exact).display()))
        .stderr_has("no server was asked");
        assert!(
            !done.stdout().contains("would look up linux=6.2.7"),
            "{}",
            done.stdout()
        );
        let plan = fetch(
            &mirror,
            d.path(),
            &["-n", "--json", "--date", "2023-03-20", "linux"],
        )
        .success()
        .json();
        assert_eq!(plan[0]["spec"], "linux");
        assert_eq!(plan[0]["date"], "2023-03-20");
        assert_eq!(plan[0]["cached"], false);
        rtool(["fetch-pkg", "-n", "--list", "linux", "--mirror", &mirror])
            .run()
            .success()
            .stdout_has("would list the versions of linux");
    }
    // install -n with a spec goes through fetch-pkg's plan: no server either.
    let root = FakeRoot::new();
    rtool(["install", "-n", "--root"])
        .arg(root.path())
        .args(["--mirror", &n.url(), "--ca-file"])
        .arg(&tls().ca)
        .arg("--keyring")
        .arg(keyring())
        .arg("-o")
        .arg(d.path())
        .arg("linux<6.2.8")
        .run()
        .success()
        .stdout_has("would look up linux<6.2.8 on ");
    assert_eq!(files(d.path()), [exact]);
    // The server logs what it is asked: one real request shows up, and only that one.
    list_cmd(&n, "linux").run().success();
    let log = n.wait_access_log("/packages/l/linux/ ");
    assert_eq!(log.lines().count(), 1, "{log}");
}
