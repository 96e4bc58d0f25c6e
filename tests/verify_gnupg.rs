//! `rtool verify --keyring GNUPGDIR` against a GnuPG home made by the real pacman-key
//! (`--init`, `--populate archlinux` from Debian's archlinux-keyring, `--add`,
//! `--lsign-key`), with the real gpg as the oracle for the same verdicts.

mod common;

use std::fs;
use std::path::Path;

use common::gnupg::{disable, gpg, pacman_key, Agent, RepoKey};
use common::{real_arch, rtool};

const CMATRIX: &str = "cmatrix-2.0-3-x86_64.pkg.tar.zst";

/// The real gpg's verdict: whether the signature is good and by a key it considers valid
/// (`TRUST_FULLY` or `TRUST_ULTIMATE`; an expired key gives no trust line, then a good
/// signature is enough, as pacman accepts keys that expired after signing).
fn gpg_accepts(home: &Path, sig: &Path, file: &Path) -> bool {
    let d = gpg(home)
        .args(["--status-fd", "1", "--verify"])
        .arg(sig)
        .arg(file)
        .run();
    let out = d.stdout();
    let valid_sig = out.contains("[GNUPG:] VALIDSIG ");
    let trust = out
        .lines()
        .find(|l| l.starts_with("[GNUPG:] TRUST_"))
        .map(String::from);
    valid_sig
        && match trust {
            None => out.contains("[GNUPG:] EXPKEYSIG "),
            Some(t) => t.contains("TRUST_FULLY") || t.contains("TRUST_ULTIMATE"),
        }
}

fn verify(home: &Path, pkg: &Path) -> common::Done {
    rtool(["verify"]).arg("--keyring").arg(home).arg(pkg).run()
}

#[test]
fn pacman_key_home_trusts_what_pacman_trusts() {
    common::require_root();
    let tmp = tempfile::Builder::new()
        .prefix("verify-gnupg-")
        .tempdir()
        .expect("tempdir");
    let home = tmp.path().join("gnupg");
    let _agent = Agent(home.clone());
    let conf = tmp.path().join("pacman.conf");
    fs::write(&conf, format!("[options]\nGPGDir = {}/\n", home.display())).unwrap();
    pacman_key(&conf, &home, &["--init"]);
    // Debian's pacman-key populates from /usr/share/keyrings (archlinux-keyring).
    pacman_key(&conf, &home, &["--populate", "archlinux"]);
    assert!(home.join("trustdb.gpg").is_file() && home.join("pubring.gpg").is_file());

    // 1. A real Arch package, signed by a packager certified by the main keys.
    let pkg = real_arch(CMATRIX);
    let sig = real_arch(&format!("{CMATRIX}.sig"));
    assert!(gpg_accepts(&home, &sig, &pkg), "gpg refuses cmatrix");
    verify(&home, &pkg)
        .success()
        .stdout_has("good signature by kpcyrd");

    // 2. A third-party repository's key: refused until added and locally signed.
    let repo = RepoKey::new(tmp.path(), "other", "Third Party Repo <repo@example.org>");
    let fpr = repo.fingerprint.clone();
    let third = tmp.path().join("zfs-utils-2.2.7-1-x86_64.pkg.tar.zst");
    fs::copy(&pkg, &third).unwrap();
    let third_sig = repo.sign(&third);
    let pubkey = repo.public.clone();

    // Not in pacman's keyring at all.
    assert!(!gpg_accepts(&home, &third_sig, &third));
    verify(&home, &third).status(5);
    // Added, but not signed by the local master key: present and not trusted.
    pacman_key(&conf, &home, &["--add", &pubkey.to_string_lossy()]);
    assert!(
        !gpg_accepts(&home, &third_sig, &third),
        "gpg trusts an unsigned key"
    );
    verify(&home, &third).status(5).stderr_has("not trusted");
    // Locally signed, as an admin does for archzfs.
    pacman_key(&conf, &home, &["--lsign-key", &fpr]);
    assert!(
        gpg_accepts(&home, &third_sig, &third),
        "gpg refuses the signed key"
    );
    verify(&home, &third)
        .success()
        .stdout_has("Third Party Repo");

    // 3. Disabled, as pacman-key --populate does for revoked keys: refused.
    disable(&home, &fpr);
    let colons = gpg(&home)
        .args(["--with-colons", "--list-keys", &fpr])
        .run()
        .success()
        .stdout();
    let caps = colons
        .lines()
        .find(|l| l.starts_with("pub:"))
        .and_then(|l| l.split(':').nth(11))
        .unwrap_or_default()
        .to_string();
    assert!(
        caps.contains('D'),
        "gpg does not list the key as disabled: {colons}"
    );
    verify(&home, &third).status(5).stderr_has("disabled");
    // The Arch packager is untouched.
    verify(&home, &pkg).success();

    // 4. A damaged trust database: a clear error, exit 3.
    let tdb = fs::read(home.join("trustdb.gpg")).unwrap();
    for (name, bytes) in [
        ("truncated", tdb[..tdb.len() - 7].to_vec()),
        ("garbage", vec![0x5a; 400]),
        ("empty", Vec::new()),
    ] {
        let copy = tmp.path().join(name);
        fs::create_dir(&copy).unwrap();
        fs::copy(home.join("pubring.gpg"), copy.join("pubring.gpg")).unwrap();
        fs::write(copy.join("trustdb.gpg"), bytes).unwrap();
        verify(&copy, &pkg).status(3).stderr_has("trust database");
    }

    // A keybox instead of pubring.gpg: told how to export it.
    let kbx = tmp.path().join("kbx");
    fs::create_dir(&kbx).unwrap();
    fs::write(kbx.join("trustdb.gpg"), &tdb).unwrap();
    fs::write(kbx.join("pubring.kbx"), b"\0\0\0\x20\x01\x01").unwrap();
    verify(&kbx, &pkg)
        .status(7)
        .stderr_has("keybox")
        .stderr_has("--export");
}
