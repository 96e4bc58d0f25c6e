//! Proves the network test world (tests/common/server.rs, tests/fixtures/make-archive.sh)
//! works, with curl, openssl, gpg and bsdtar as the clients: no rtool here.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::server::{archive, archive_root, big_sha256, keys, tls, Fault, FaultProxy, Nginx};
use common::Cmd;

const LINUX_628: &str = "/packages/l/linux/linux-6.2.8.arch1-1-x86_64.pkg.tar.zst";
const BLOB: &str = "/big/blob-1.0-1-x86_64.pkg.tar.zst";
const BLOB_LEN: u64 = 64 << 20;

/// curl with no proxy from the environment, no config file, and a hard time limit.
fn curl<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Cmd::new("curl")
        .args(["-q", "-sS", "--noproxy", "*", "--max-time", "30"])
        .args(args)
}

/// curl with the test CA.
fn curl_ca<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Cmd::new("curl")
        .args([
            "-q",
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "30",
            "--cacert",
        ])
        .arg(&tls().ca)
        .args(args)
}

fn sha256_file(p: &Path) -> String {
    let out = Cmd::new("sha256sum").arg(p).run().success().stdout();
    out.split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

fn served(rel: &str) -> PathBuf {
    archive_root().join(rel.trim_start_matches('/'))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rtool-harness-")
        .tempdir()
        .expect("tempdir")
}

#[test]
fn https_listing_looks_like_the_archive() {
    let nginx = Nginx::start(&archive_root(), "");
    let page = curl_ca(["--fail", &format!("{}/packages/l/linux/", nginx.url())])
        .run()
        .success()
        .stdout();
    assert!(
        page.contains("<title>Index of /packages/l/linux/</title>"),
        "{page}"
    );
    assert!(page.contains("\r\n"), "autoindex lines end with CRLF");
    let mut at = Vec::new();
    for v in ["6.2.10", "6.2.7", "6.2.8"] {
        for ext in ["", ".sig"] {
            let href = format!("<a href=\"linux-{v}.arch1-1-x86_64.pkg.tar.zst{ext}\">");
            at.push(
                page.find(&href)
                    .unwrap_or_else(|| panic!("{href} in\n{page}")),
            );
        }
    }
    // strcmp order, not version order: 6.2.10 < 6.2.7 < 6.2.8
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{page}");
    // The display text is cut at 50 columns: always parse the href.
    let page = curl_ca([
        "--fail",
        &format!("{}/packages/l/linux-headers/", nginx.url()),
    ])
    .run()
    .success()
    .stdout();
    assert!(
        page.contains(">linux-headers-6.2.10.arch1-1-x86_64.pkg.tar.zst..&gt;</a>"),
        "{page}"
    );

    let page = curl_ca(["--fail", &format!("{}/packages/z/zfs-utils/", nginx.url())])
        .run()
        .success()
        .stdout();
    assert!(
        page.contains("<a href=\"zfs-utils-2%3A2.1.9-1-x86_64.pkg.tar.zst\">"),
        "{page}"
    );
    assert!(page.contains("zfs-utils-2%3A2.1.9-1-x86_64.pkg.tar.zst.sig\""));
    // Both spellings of the epoch colon reach the file.
    let want = fs::read(served(
        "packages/z/zfs-utils/zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst",
    ))
    .unwrap();
    for name in ["zfs-utils-2%3A2.1.9-1", "zfs-utils-2:2.1.9-1"] {
        let d = tempdir();
        let out = d.path().join("zfs.pkg");
        curl_ca(["--fail", "-o"])
            .arg(&out)
            .arg(format!(
                "{}/packages/z/zfs-utils/{name}-x86_64.pkg.tar.zst",
                nginx.url()
            ))
            .run()
            .success();
        assert_eq!(fs::read(&out).unwrap(), want, "{name}");
    }

    // The same listing over plain HTTP, and through localhost (the DNS SAN).
    let page = curl(["--fail", &format!("{}/packages/l/linux/", nginx.http_url())])
        .run()
        .success()
        .stdout();
    assert!(page.contains("linux-6.2.7.arch1-1-x86_64.pkg.tar.zst"));
    curl_ca([
        "--fail",
        "-o",
        "/dev/null",
        &format!("https://localhost:{}/packages/", nginx.port),
    ])
    .run()
    .success();

    // A 404 is simply a missing file.
    let d = curl_ca([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!(
            "{}/packages/n/no-such-pkg/no-such-pkg-1-1-x86_64.pkg.tar.zst",
            nginx.url()
        ),
    ])
    .run()
    .success();
    assert_eq!(d.stdout(), "404");
    let log = nginx.wait_access_log("\" 404 ");
    assert!(log.contains("\" 404 "), "{log}");
}

#[test]
fn https_needs_the_right_ca() {
    let t = tls();
    let nginx = Nginx::start(&archive_root(), "");
    let url = format!("{}/packages/", nginx.url());
    // curl's own CA store does not know our CA; the unrelated CA does not fit either.
    assert_eq!(curl(["-o", "/dev/null", &url]).run().code(), 60);
    assert_eq!(
        curl(["-o", "/dev/null", "--cacert"])
            .arg(&t.other_ca)
            .arg(&url)
            .run()
            .code(),
        60
    );
    curl_ca(["--fail", "-o", "/dev/null", &url]).run().success();

    // The certificate is what rustls wants: an end entity with IP and DNS SANs.
    let text = Cmd::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&t.cert)
        .run()
        .success()
        .stdout();
    for want in [
        "CA:FALSE",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
        "prime256v1",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let ca_text = Cmd::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&t.ca)
        .run()
        .success()
        .stdout();
    assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
    Cmd::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&t.ca)
        .arg(&t.cert)
        .run()
        .success();
    assert_ne!(
        Cmd::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(&t.other_ca)
            .arg(&t.cert)
            .run()
            .code(),
        0
    );
    Cmd::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", nginx.port))
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1", "-CAfile"])
        .arg(&t.ca)
        .run()
        .success()
        .stdout_has("Verify return code: 0 (ok)");
}

#[test]
fn proxy_pass_is_byte_identical() {
    let nginx = Nginx::start(&archive_root(), "");
    let proxy = FaultProxy::start(nginx.port, Fault::Pass);
    let d = tempdir();
    let out = d.path().join("linux.pkg");
    curl_ca(["--fail", "-o"])
        .arg(&out)
        .arg(format!("{}{LINUX_628}", proxy.url()))
        .run()
        .success();
    assert_eq!(
        fs::read(&out).unwrap(),
        fs::read(served(LINUX_628)).unwrap()
    );
    assert_eq!(proxy.connections(), 1);

    // Plain HTTP through a second proxy, and the whole 64 MiB blob.
    let plain = FaultProxy::start(nginx.http_port, Fault::Pass);
    let out = d.path().join("blob");
    curl(["--fail", "-o"])
        .arg(&out)
        .arg(format!("{}{BLOB}", plain.http_url()))
        .run()
        .success();
    assert_eq!(sha256_file(&out), big_sha256());
    assert_eq!(plain.connections(), 1);
}

#[test]
fn cut_connection_fails_and_resume_completes() {
    let nginx = Nginx::start(&archive_root(), "");
    let d = tempdir();

    // Every connection cut after 1 MiB: curl fails in the middle of the body.
    let cut = FaultProxy::start(nginx.port, Fault::CutAfter(1 << 20));
    let part = d.path().join("cut");
    let r = curl_ca(["--fail", "-o"])
        .arg(&part)
        .arg(format!("{}{BLOB}", cut.url()))
        .run();
    assert_ne!(r.code(), 0, "a cut download must fail");
    let got = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(got < BLOB_LEN, "got {got} bytes");
    drop(cut);

    // Only the first connection cut: `curl -C -` picks up where it stopped.
    let proxy = FaultProxy::start(nginx.port, Fault::CutFirst(8 << 20));
    let out = d.path().join("blob");
    let url = format!("{}{BLOB}", proxy.url());
    let r = curl_ca(["--fail", "-o"]).arg(&out).arg(&url).run();
    assert_ne!(r.code(), 0, "the first connection is cut");
    let first = fs::metadata(&out).unwrap().len();
    assert!(
        first > 0 && first < BLOB_LEN,
        "first attempt left {first} bytes"
    );
    curl_ca(["--fail", "-C", "-", "-o"])
        .arg(&out)
        .arg(&url)
        .run()
        .success();
    assert_eq!(proxy.connections(), 2);
    assert_eq!(fs::metadata(&out).unwrap().len(), BLOB_LEN);
    assert_eq!(sha256_file(&out), big_sha256());
    let want = format!("\" 206 {} range=\"bytes={first}-\"", BLOB_LEN - first);
    let log = nginx.wait_access_log(&want);
    assert!(log.contains(&want), "no 206 for bytes={first}- in:\n{log}");
}

#[test]
fn stalled_connection_trips_the_speed_limit() {
    let nginx = Nginx::start(&archive_root(), "");
    // 4 KiB: the TLS handshake (about 1 KiB from the server) completes, then nothing of the
    // response (nginx's first TLS record is 16 KiB) gets through. Had body bytes arrived, curl's
    // 5-second speed average would delay the failure to about 7 s.
    let proxy = FaultProxy::start(nginx.port, Fault::StallAfter(4 << 10));
    let t0 = Instant::now();
    let r = curl_ca([
        "--fail",
        "-o",
        "/dev/null",
        "--speed-time",
        "2",
        "--speed-limit",
        "1",
        &format!("{}{BLOB}", proxy.url()),
    ])
    .run();
    let took = t0.elapsed();
    assert_eq!(r.code(), 28, "operation too slow: {}", r.stderr());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    let t0 = Instant::now();
    drop(proxy);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "proxy drop is bounded"
    );
}

#[test]
fn repo_databases_list_the_right_packages() {
    let nginx = Nginx::start(&archive_root(), "");
    let d = tempdir();
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "2023/03/20",
            "core",
            &["linux-6.2.7.arch1-1", "linux-headers-6.2.7.arch1-1"],
        ),
        ("2023/03/20", "extra", &["zfs-utils-2:2.1.9-1"]),
        ("2023/03/20", "community", &["cmatrix-test-1.0-1"]),
        (
            "2023/06/01",
            "core",
            &["linux-6.2.8.arch1-1", "linux-headers-6.2.8.arch1-1"],
        ),
        (
            "2023/06/01",
            "extra",
            &["cmatrix-test-1.0-1", "zfs-utils-2:2.1.9-1"],
        ),
    ];
    for (day, repo, want) in cases {
        let db = d
            .path()
            .join(format!("{}-{repo}.db", day.replace('/', "-")));
        // `<repo>.db` is repo-add's symlink; nginx must serve it as the gzip file itself.
        curl_ca(["--fail", "-o"])
            .arg(&db)
            .arg(format!(
                "{}/repos/{day}/{repo}/os/x86_64/{repo}.db",
                nginx.url()
            ))
            .run()
            .success();
        assert_eq!(&fs::read(&db).unwrap()[..2], b"\x1f\x8b", "{day} {repo}");
        let list = Cmd::new("bsdtar")
            .arg("-tf")
            .arg(&db)
            .run()
            .success()
            .stdout();
        let mut dirs: Vec<&str> = list
            .lines()
            .filter_map(|l| l.strip_suffix("/desc"))
            .collect();
        dirs.sort();
        assert_eq!(dirs, want, "{day} {repo}:\n{list}");
        // Every package the database names is there, with its signature.
        let desc = Cmd::new("bsdtar")
            .arg("-xOf")
            .arg(&db)
            .run()
            .success()
            .stdout();
        for file in desc
            .split("%FILENAME%\n")
            .skip(1)
            .filter_map(|s| s.lines().next())
        {
            for ext in ["", ".sig"] {
                let dl = curl_ca(["--fail", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(format!(
                        "{}/repos/{day}/{repo}/os/x86_64/{}{ext}",
                        nginx.url(),
                        file.replace(':', "%3A")
                    ))
                    .run()
                    .success();
                assert_eq!(dl.stdout(), "200", "{day} {repo} {file}{ext}");
            }
        }
        assert!(desc.contains("%PGPSIG%\n"), "{desc}");
    }
    // After the May 2023 renames there is no [community].
    let r = curl_ca([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!(
            "{}/repos/2023/06/01/community/os/x86_64/community.db",
            nginx.url()
        ),
    ])
    .run()
    .success();
    assert_eq!(r.stdout(), "404");
}

#[test]
fn redirects_are_served() {
    let extra = format!(
        "location /redir/ {{ return 302 {LINUX_628}; }}\n\
         location = /loop {{ return 302 /loop; }}\n\
         location = /to-htmlerr {{ return 301 /packages/h/htmlerr/htmlerr-1.0-1-x86_64.pkg.tar.zst; }}\n"
    );
    let nginx = Nginx::start(&archive_root(), &extra);
    let proxy = FaultProxy::start(nginx.port, Fault::Pass);
    let want = fs::read(served(LINUX_628)).unwrap();
    let d = tempdir();
    for base in [nginx.url(), nginx.http_url(), proxy.url()] {
        let url = format!("{base}/redir/linux");
        // Not followed: a 302 with a relative Location.
        let r = curl_ca(["-o", "/dev/null", "-D", "-", "-w", "%{http_code}", &url])
            .run()
            .success();
        assert!(
            r.stdout().contains(&format!("Location: {LINUX_628}\r\n")),
            "{}",
            r.stdout()
        );
        assert!(r.stdout().ends_with("302"), "{}", r.stdout());
        // Followed.
        let out = d.path().join("followed");
        curl_ca(["--fail", "-L", "-o"])
            .arg(&out)
            .arg(&url)
            .run()
            .success();
        assert_eq!(fs::read(&out).unwrap(), want, "{url}");
        // A loop ends in curl's "too many redirects".
        let r = curl_ca([
            "-L",
            "--max-redirs",
            "5",
            "-o",
            "/dev/null",
            &format!("{base}/loop"),
        ])
        .run();
        assert_eq!(r.code(), 47, "{}", r.stderr());
    }
    // The HTML error page is served with 200 and the package's name.
    let r = curl_ca(["--fail", "-L", &format!("{}/to-htmlerr", nginx.url())])
        .run()
        .success();
    assert!(
        r.stdout().contains("<title>502 Bad Gateway</title>"),
        "{}",
        r.stdout()
    );
}

#[test]
fn signatures_verify_with_gpg() {
    let k = keys();
    let home = archive().join("gnupg");
    let mut checked = 0;
    let mut pkgs = Vec::new();
    for c in fs::read_dir(archive_root().join("packages")).unwrap() {
        for n in fs::read_dir(c.unwrap().path()).unwrap() {
            for f in fs::read_dir(n.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if !p.to_string_lossy().ends_with(".sig") {
                    pkgs.push(p);
                }
            }
        }
    }
    pkgs.sort();
    for pkg in &pkgs {
        let name = pkg.file_name().unwrap().to_string_lossy().into_owned();
        let sig = PathBuf::from(format!("{}.sig", pkg.display()));
        let r = Cmd::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--no-tty", "--status-fd", "1", "--verify"])
            .arg(&sig)
            .arg(pkg)
            .run();
        if name.starts_with("nosig-pkg-") {
            assert!(!sig.exists(), "{name} must have no .sig");
            continue;
        }
        let bytes = fs::read(&sig).unwrap();
        if name.starts_with("htmlerr-") {
            assert_ne!(r.code(), 0, "garbage signature verified");
            continue;
        }
        // Binary (not armoured), small: what pacman and repo-add accept.
        assert!(!bytes.starts_with(b"-----BEGIN"), "{name}.sig is armoured");
        assert!(bytes.len() < 16 << 10);
        let signer = if name.starts_with("badsig-pkg-") {
            &k.untrusted
        } else {
            &k.packager
        };
        let r = r.success();
        assert!(
            r.stdout().contains(&format!("[GNUPG:] VALIDSIG {signer} ")),
            "{name}:\n{}\n{}",
            r.stdout(),
            r.stderr()
        );
        checked += 1;
    }
    assert_eq!(checked, 11, "signed packages: {pkgs:?}");
}

/// The keyring files behave like archlinux-keyring under `pacman-key --populate`: imported
/// with the main keys lsigned and marginally trusted, the Test Packager key is fully valid and
/// the Untrusted Packager key is not.
#[test]
fn keyring_has_the_arch_trust_shape() {
    let k = keys();
    let kr = archive().join("keyring");
    let trusted = fs::read_to_string(kr.join("archlinux-trusted")).unwrap();
    let want: Vec<String> = k.main.iter().map(|f| format!("{f}:4:")).collect();
    assert_eq!(trusted.lines().collect::<Vec<_>>(), want);
    assert_eq!(
        fs::read_to_string(kr.join("archlinux-revoked"))
            .unwrap()
            .trim(),
        k.revoked
    );
    let armoured = fs::read(kr.join("archlinux.gpg")).unwrap();
    assert!(armoured.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let binary = archive().join("keyring-binary/archlinux.gpg");
    let all = [
        &k.main[0],
        &k.main[1],
        &k.main[2],
        &k.packager,
        &k.untrusted,
        &k.revoked,
    ];
    for file in [kr.join("archlinux.gpg"), binary] {
        let shown = Cmd::new("gpg")
            .args(["--batch", "--with-colons", "--show-keys"])
            .arg(&file)
            .run()
            .success()
            .stdout();
        for f in all {
            assert!(
                shown.contains(&format!("fpr:::::::::{f}:")),
                "{f} in {file:?}"
            );
        }
    }

    // pacman-key --init && pacman-key --populate, by hand, in a fresh home.
    let home = tempdir();
    let gpg = |args: &[&str]| {
        Cmd::new("gpg")
            .env("GNUPGHOME", home.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .run()
    };
    gpg(&[
        "--quick-gen-key",
        "Pacman Keyring Master Key <pacman@localhost>",
        "ed25519",
        "sign",
        "never",
    ])
    .success();
    gpg(&["--import", &kr.join("archlinux.gpg").to_string_lossy()]).success();
    for f in &k.main {
        gpg(&["--quick-lsign-key", f]).success();
    }
    gpg(&[
        "--import-ownertrust",
        &kr.join("archlinux-trusted").to_string_lossy(),
    ])
    .success();
    gpg(&["--check-trustdb"]).success();
    let validity = |fpr: &str| {
        let out = gpg(&["--with-colons", "--list-keys", fpr])
            .success()
            .stdout();
        out.lines()
            .find(|l| l.starts_with("pub:"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(validity(&k.packager), "f", "packager key fully valid");
    assert_eq!(
        validity(&k.revoked),
        "f",
        "valid until pacman-key disables it"
    );
    let v = validity(&k.untrusted);
    assert!(!matches!(v.as_str(), "f" | "u"), "untrusted key is {v}");
    let _ = Cmd::new("gpgconf")
        .env("GNUPGHOME", home.path())
        .args(["--kill", "all"])
        .run();
}
