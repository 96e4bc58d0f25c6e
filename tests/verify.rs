//! `rtool verify` against keys and signatures made by the real GnuPG
//! (tests/fixtures/make-keyring.sh), and a real Arch package against the real Arch keyring
//! (Debian's archlinux-keyring package).

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{real_arch, rtool, Cmd, FakeRoot};

/// The keyring fixtures, built once per test binary and kept between runs.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keyring-fixtures");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-keyring.sh");
        // Concurrent test binaries build into the same place: one at a time.
        fs::create_dir_all(&dir).expect("fixture dir");
        let lock = common::lock(&dir.join(".lock"));
        Cmd::new("bash").arg(&script).arg(&dir).run().success();
        drop(lock);
        dir
    })
}

fn keyring() -> PathBuf {
    fixtures().join("keyring")
}

fn signed(case: &str) -> PathBuf {
    let p = fixtures().join("signed").join(format!("{case}.dat"));
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

/// CASE → the signer's primary fingerprint.
fn fingerprints() -> &'static HashMap<String, String> {
    static FPRS: OnceLock<HashMap<String, String>> = OnceLock::new();
    FPRS.get_or_init(|| {
        fs::read_to_string(keyring().join("fingerprints"))
            .expect("fingerprints fixture")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .collect()
    })
}

fn fpr(case: &str) -> &'static str {
    fingerprints()
        .get(case)
        .unwrap_or_else(|| panic!("no fingerprint for {case}"))
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("verify-")
        .tempdir()
        .expect("tempdir")
}

/// Debian's archlinux-keyring package (scripts/test-deps.sh installs it).
fn debian_arch_keyring() -> PathBuf {
    let p = PathBuf::from("/usr/share/keyrings/archlinux.gpg");
    assert!(
        p.is_file(),
        "{} is missing: apt-get install archlinux-keyring (scripts/test-deps.sh)",
        p.display()
    );
    p
}

const CMATRIX: &str = "cmatrix-2.0-3-x86_64.pkg.tar.zst";
/// kpcyrd's primary key; the package was signed by its subkey 33EBB8A8….
const KPCYRD: &str = "64B13F7117D6E07D661BBCE0FE763A64F5E54FD6";
const KPCYRD_SUBKEY: &str = "33EBB8A8E1C5653645B1232A45A650E2638C536D";

#[test]
fn valid_signatures_pass_and_name_the_signer() {
    for (case, uid) in [
        ("good", "good <good@rtool.test>"),
        ("main", "main1 <main1@rtool.test>"),
        ("subkey", "subkey <subkey@rtool.test>"),
        ("expired-later", "expired-later <expired-later@rtool.test>"),
        ("armored", "good <good@rtool.test>"),
    ] {
        let file = signed(case);
        rtool(["verify", "--keyring"])
            .arg(keyring())
            .arg(&file)
            .run()
            .success()
            .stdout_has(&format!(
                "{}: good signature by {uid} ({}), made 2020-06-01",
                file.display(),
                fpr(case)
            ));
    }
}

#[test]
fn each_invalid_case_fails_with_its_reason_and_the_fingerprint() {
    // (case, the key that signed it, what the message must say)
    for (case, key, reason) in [
        (
            "two-certs",
            "two-certs",
            "is not trusted: only 2 valid main-key certifications (needs 3)",
        ),
        // Certified by main1, main2 and main4; main4 is listed as revoked: it vouches for nobody.
        (
            "revoked-main",
            "revoked-main",
            "is not trusted: only 2 valid main-key certifications (needs 3)",
        ),
        (
            "revoked-listed",
            "revoked-listed",
            "is revoked (listed in archlinux-revoked)",
        ),
        (
            "revoked-sig",
            "revoked-sig",
            "is revoked (revocation signature of 2020-01-01",
        ),
        (
            "expired-before",
            "expired-before",
            "had expired on 2020-02-01, before the signature was made (2020-06-01)",
        ),
        ("sig-expired", "good", "expired on 2020-06-02"),
        ("sha1", "sha1", "weak hash SHA1"),
        ("unknown", "unknown", "unknown key"),
        ("tampered", "good", "bad signature by"),
    ] {
        let done = rtool(["verify", "--keyring"])
            .arg(keyring())
            .arg(signed(case))
            .run()
            .status(5)
            .stderr_has(reason)
            .stderr_has(fpr(case));
        // The user ID is named whenever the key is known.
        if case != "unknown" {
            done.stderr_has(&format!("<{key}@rtool.test>"));
        }
    }
}

#[test]
fn a_signing_subkey_is_reported_with_its_primary() {
    let v = rtool(["verify", "--json", "--keyring"])
        .arg(keyring())
        .arg(signed("subkey"))
        .run()
        .success()
        .json();
    let p = &v["packages"][0];
    assert_eq!(p["ok"], true, "{v}");
    assert_eq!(p["fingerprint"], fpr("subkey"), "{v}");
    let signer = p["signer_key"].as_str().expect("signer_key");
    assert_ne!(
        signer,
        fpr("subkey"),
        "the subkey signed, not the primary: {v}"
    );
    assert_eq!(signer.len(), 40, "{v}");
}

#[test]
fn json_reports_every_package() {
    let good = signed("good");
    let bad = signed("two-certs");
    let v = rtool(["verify", "--json", "--keyring"])
        .arg(keyring())
        .arg(&good)
        .arg(&bad)
        .run()
        .status(5)
        .json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["keyring"], keyring().display().to_string(), "{v}");
    assert_eq!(
        v["keyrings"],
        serde_json::json!([keyring().display().to_string()]),
        "{v}"
    );
    let g = &v["packages"][0];
    assert_eq!(g["package"], good.display().to_string());
    assert_eq!(g["signature"], format!("{}.sig", good.display()));
    assert_eq!(g["ok"], true);
    assert_eq!(g["fingerprint"], fpr("good"));
    assert_eq!(g["signer_key"], fpr("good"));
    assert_eq!(g["user_id"], "good <good@rtool.test>");
    assert_eq!(g["date"], "2020-06-01");
    assert_eq!(g["created"], 1_591_012_800);
    let b = &v["packages"][1];
    assert_eq!(b["ok"], false);
    assert_eq!(b["kind"], "verify");
    let err = b["error"].as_str().unwrap_or_default();
    assert!(err.contains("only 2 valid main-key certifications"), "{v}");
    assert!(err.contains(fpr("two-certs")), "{v}");
}

#[test]
fn binary_and_armoured_keyrings_and_files_or_directories_all_work() {
    let k = keyring();
    for kr in [
        k.clone(),
        k.join("archlinux.gpg"),
        // archlinux-binary-trusted and -revoked are found beside it by its stem.
        k.join("archlinux-binary.gpg"),
    ] {
        rtool(["verify", "--keyring"])
            .arg(&kr)
            .arg(signed("good"))
            .arg(signed("subkey"))
            .run()
            .success();
        // The revoked list is read in every layout.
        rtool(["verify", "--keyring"])
            .arg(&kr)
            .arg(signed("revoked-listed"))
            .run()
            .status(5)
            .stderr_has("is revoked (listed in archlinux-");
    }
}

#[test]
fn the_keyring_is_found_in_the_target_root() {
    let root = FakeRoot::new();
    let dir = root.at("/usr/share/pacman/keyrings");
    fs::create_dir_all(&dir).unwrap();
    for f in ["archlinux.gpg", "archlinux-trusted", "archlinux-revoked"] {
        fs::copy(keyring().join(f), dir.join(f)).unwrap();
    }
    // An empty host: nothing to fall back on, so the target's keyring must be the one used.
    let host = FakeRoot::new();
    rtool(["verify", "--root"])
        .arg(root.path())
        .arg(signed("good"))
        .host(host.path())
        .run()
        .success()
        .stdout_has(fpr("good"));
}

#[test]
fn no_keyring_anywhere_is_missing_and_says_what_to_do() {
    let empty = FakeRoot::new();
    rtool(["verify", "--root"])
        .arg(empty.path())
        .arg(signed("good"))
        .host(empty.path())
        .run()
        .status(7)
        .stderr_has("no Arch keyring found")
        .stderr_has("--keyring")
        .stderr_has("archlinux-keyring")
        .stderr_has("--skip-verify");
    rtool(["verify", "--keyring"])
        .arg(empty.path().join("nowhere"))
        .arg(signed("good"))
        .run()
        .status(7);
}

#[test]
fn a_missing_sig_is_exit_7_and_a_malformed_one_exit_3() {
    let tmp = scratch();
    let pkg = tmp.path().join("lonely.pkg.tar.zst");
    fs::copy(signed("good"), &pkg).unwrap();
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(&pkg)
        .run()
        .status(7)
        .stderr_has("verify: error: ")
        .stderr_has("no signature file")
        .stderr_has("hint: mirrors keep lonely.pkg.tar.zst.sig beside the package");
    // A package that is not there is named as missing, not its signature.
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(tmp.path().join("typo.pkg.tar.zst"))
        .run()
        .status(7)
        .stderr_has("no such package file")
        .stderr_has("typo.pkg.tar.zst");
    // The hint names what to fetch, when the file name says it.
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(tmp.path().join("linux-6.2.7.arch1-1-x86_64.pkg.tar.zst"))
        .run()
        .status(7)
        .stderr_has("hint: check the path; `rtool fetch-pkg linux=6.2.7.arch1-1` downloads it");

    fs::write(
        tmp.path().join("lonely.pkg.tar.zst.sig"),
        b"garbage, not OpenPGP",
    )
    .unwrap();
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(&pkg)
        .run()
        .status(3)
        .stderr_has("malformed signature");

    // Hostile signatures: a real one cut short, a packet header claiming 4 GiB, and a
    // 100 MB file (sparse: it is refused by its size, never read).
    let real = fs::read(real_arch(&format!("{CMATRIX}.sig"))).unwrap();
    let sig = tmp.path().join("lonely.pkg.tar.zst.sig");
    for (what, bytes) in [
        ("cut", real[..100].to_vec()),
        ("huge length", b"\xc2\xff\xff\xff\xff\xff".to_vec()),
    ] {
        fs::write(&sig, &bytes).unwrap();
        let d = rtool(["verify", "--keyring"])
            .arg(keyring())
            .arg(&pkg)
            .run();
        assert_eq!(d.code(), 3, "{what}: {}", d.stderr());
        assert!(
            d.stderr().contains("malformed signature"),
            "{what}: {}",
            d.stderr()
        );
    }
    fs::File::create(&sig)
        .unwrap()
        .set_len(100_000_000)
        .unwrap();
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(&pkg)
        .run()
        .status(3)
        .stderr_has("too large for a signature");
}

#[test]
fn with_several_packages_a_bad_signature_outranks_a_missing_one() {
    let tmp = scratch();
    let lonely = tmp.path().join("lonely.dat");
    fs::copy(signed("good"), &lonely).unwrap();
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(signed("good"))
        .arg(&lonely)
        .run()
        .status(7)
        .stdout_has("good signature by good");
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(&lonely)
        .arg(signed("tampered"))
        .arg(signed("good"))
        .run()
        .status(5)
        .stderr_has("bad signature")
        .stderr_has("no signature file");
}

#[test]
fn a_real_arch_package_verifies_against_the_real_arch_keyring() {
    let keyring = debian_arch_keyring();
    rtool(["verify", "--keyring"])
        .arg(&keyring)
        .arg(real_arch(CMATRIX))
        .run()
        .success()
        .stdout_has(&format!(
            "good signature by kpcyrd <kpcyrd@archlinux.org> ({KPCYRD}), made 2024-04-02"
        ));
    let v = rtool(["verify", "--json", "--keyring"])
        .arg(&keyring)
        .arg(real_arch(CMATRIX))
        .run()
        .success()
        .json();
    assert_eq!(v["packages"][0]["signer_key"], KPCYRD_SUBKEY, "{v}");
}

#[test]
fn the_real_keyring_works_binary_too() {
    // gpg --dearmor gives the binary form Arch itself ships.
    let tmp = scratch();
    let armoured = debian_arch_keyring();
    let dearmored = Cmd::new("gpg")
        .args(["--batch", "--dearmor", "--output", "-"])
        .arg(&armoured)
        .run()
        .success();
    fs::write(tmp.path().join("archlinux.gpg"), &dearmored.0.stdout).unwrap();
    for f in ["archlinux-trusted", "archlinux-revoked"] {
        fs::copy(armoured.with_file_name(f), tmp.path().join(f)).unwrap();
    }
    rtool(["verify", "--keyring"])
        .arg(tmp.path())
        .arg(real_arch(CMATRIX))
        .run()
        .success()
        .stdout_has(KPCYRD);
}

#[test]
fn a_real_package_with_one_flipped_byte_fails() {
    let tmp = scratch();
    let pkg = tmp.path().join(CMATRIX);
    let mut bytes = fs::read(real_arch(CMATRIX)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&pkg, bytes).unwrap();
    fs::copy(
        real_arch(&format!("{CMATRIX}.sig")),
        tmp.path().join(format!("{CMATRIX}.sig")),
    )
    .unwrap();
    rtool(["verify", "--keyring"])
        .arg(debian_arch_keyring())
        .arg(&pkg)
        .run()
        .status(5)
        .stderr_has("bad signature by")
        .stderr_has(KPCYRD);
}

#[test]
fn a_real_package_without_its_sig_is_missing() {
    let tmp = scratch();
    let pkg = tmp.path().join(CMATRIX);
    fs::copy(real_arch(CMATRIX), &pkg).unwrap();
    rtool(["verify", "--keyring"])
        .arg(debian_arch_keyring())
        .arg(&pkg)
        .run()
        .status(7)
        .stderr_has("no signature file");
}

#[test]
fn the_real_signature_fails_against_the_test_keyring() {
    // Same package, a keyring without kpcyrd's key: unknown key, named by fingerprint.
    let tmp = scratch();
    let pkg = tmp.path().join(CMATRIX);
    fs::copy(real_arch(CMATRIX), &pkg).unwrap();
    fs::copy(
        real_arch(&format!("{CMATRIX}.sig")),
        tmp.path().join(format!("{CMATRIX}.sig")),
    )
    .unwrap();
    rtool(["verify", "--keyring"])
        .arg(keyring())
        .arg(&pkg)
        .run()
        .status(5)
        .stderr_has("unknown key")
        .stderr_has(KPCYRD_SUBKEY);
}

#[test]
fn sha512_and_sha256_signatures_both_hold_and_a_flipped_byte_fails() {
    // A main key of its own, made here: its SHA-512 signature takes the path where the
    // signature's hash and the file's SHA-256 run side by side.
    let tmp = scratch();
    let home = tempfile::Builder::new()
        .prefix("rtool-gpg.")
        .tempdir_in("/tmp")
        .unwrap();
    let gpg = || {
        Cmd::new("gpg")
            .env("GNUPGHOME", home.path())
            .args(["--batch", "--quiet", "--pinentry-mode", "loopback"])
            .args(["--passphrase", ""])
    };
    gpg()
        .args(["--quick-gen-key", "hashes <hashes@rtool.test>", "ed25519"])
        .args(["sign", "never"])
        .run()
        .success();
    let listing = gpg()
        .args(["--with-colons", "--list-keys", "hashes@rtool.test"])
        .run()
        .success()
        .stdout();
    let fpr = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').find(|f| f.len() == 40))
        .expect("the new key's fingerprint")
        .to_string();
    let keyring = tmp.path().join("keyring");
    fs::create_dir(&keyring).unwrap();
    let export = gpg().args(["--export", &fpr]).run().success();
    fs::write(keyring.join("archlinux.gpg"), &export.0.stdout).unwrap();
    fs::write(keyring.join("archlinux-trusted"), format!("{fpr}:4:\n")).unwrap();
    fs::write(keyring.join("archlinux-revoked"), "").unwrap();

    // Bigger than one read, and not a multiple of it.
    let data: Vec<u8> = (0..(600u32 << 10) + 77)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    for algo in ["SHA512", "SHA256"] {
        let file = tmp.path().join(format!("{algo}.dat"));
        fs::write(&file, &data).unwrap();
        gpg()
            .args(["-u", &fpr, "--digest-algo", algo, "--detach-sign", "-o"])
            .arg(tmp.path().join(format!("{algo}.dat.sig")))
            .arg(&file)
            .run()
            .success();
        rtool(["verify", "--keyring"])
            .arg(&keyring)
            .arg(&file)
            .run()
            .success()
            .stdout_has(&format!(
                "good signature by hashes <hashes@rtool.test> ({fpr})"
            ));
        let mut flipped = data.clone();
        flipped[data.len() - 1] ^= 0x10;
        fs::write(&file, flipped).unwrap();
        rtool(["verify", "--keyring"])
            .arg(&keyring)
            .arg(&file)
            .run()
            .status(5)
            .stderr_has("bad signature by");
    }
    let _ = Cmd::new("gpgconf")
        .env("GNUPGHOME", home.path())
        .args(["--kill", "gpg-agent"])
        .run();
}
