//! GnuPG homes for tests: pacman's own (made by the real `pacman-key`) and a third-party
//! repository's signing key (as archzfs's), with the agents they start stopped at the end.

use std::path::{Path, PathBuf};

use super::Cmd;

/// Stops the gpg-agent a GnuPG home started, when the test ends however it ends.
pub struct Agent(pub PathBuf);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.0)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// The real `pacman-key` on the GnuPG home `home`, with `conf` as its pacman.conf.
pub fn pacman_key(conf: &Path, home: &Path, args: &[&str]) {
    Cmd::new("pacman-key")
        .arg("--config")
        .arg(conf)
        .arg("--gpgdir")
        .arg(home)
        .args(args)
        .run()
        .success();
}

/// gpg on `home`, in batch mode.
pub fn gpg(home: &Path) -> Cmd {
    Cmd::new("gpg").arg("--homedir").arg(home).arg("--batch")
}

/// Disables the key `fpr` in `home`, as `pacman-key --populate` does for a revoked key.
pub fn disable(home: &Path, fpr: &str) {
    gpg(home)
        .args(["--command-fd", "0", "--edit-key", fpr, "disable", "quit"])
        .run()
        .success();
}

/// A signing key of its own in a new GnuPG home: a third-party repository's.
pub struct RepoKey {
    pub home: PathBuf,
    pub fingerprint: String,
    /// The public key, ASCII-armoured (what `pacman-key --add` takes).
    pub public: PathBuf,
    _agent: Agent,
}

impl RepoKey {
    /// An ed25519 key for `uid` in `dir/NAME` (made), its public key at `dir/NAME.asc`.
    pub fn new(dir: &Path, name: &str, uid: &str) -> RepoKey {
        let home = dir.join(name);
        std::fs::create_dir(&home).expect("key home");
        let agent = Agent(home.clone());
        gpg(&home)
            .args([
                "--passphrase",
                "",
                "--quick-gen-key",
                uid,
                "ed25519",
                "sign",
                "never",
            ])
            .run()
            .success();
        let listing = gpg(&home)
            .args(["--with-colons", "--list-keys"])
            .run()
            .success()
            .stdout();
        let fingerprint = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint of the new key")
            .to_string();
        let public = dir.join(format!("{name}.asc"));
        gpg(&home)
            .args(["--armor", "--export", "-o"])
            .arg(&public)
            .run()
            .success();
        RepoKey {
            home,
            fingerprint,
            public,
            _agent: agent,
        }
    }

    /// A detached binary signature of `file` at `FILE.sig`, SHA-256, as repo-add's packages.
    pub fn sign(&self, file: &Path) -> PathBuf {
        let sig = PathBuf::from(format!("{}.sig", file.display()));
        let _ = std::fs::remove_file(&sig);
        gpg(&self.home)
            .args(["--digest-algo", "SHA256", "--detach-sign", "-o"])
            .arg(&sig)
            .arg(file)
            .run()
            .success();
        sig
    }
}
