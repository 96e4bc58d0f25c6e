//! The test harness: run the real binary, build fake roots, stub external programs, and run
//! root-only mount work inside a private mount namespace so the host's mounts are never touched.
#![allow(dead_code)]

pub mod dkms;
pub mod gnupg;
pub mod server;
pub mod tree;
pub mod vm;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test: `RTOOL_BIN` (the static release build, set by `make test`), else
/// the one cargo built for these tests.
pub fn bin() -> PathBuf {
    match std::env::var_os("RTOOL_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_rtool")),
    }
}

/// A command running rtool with `args`, in a clean, predictable environment.
pub fn rtool<I, S>(args: I) -> Cmd
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Cmd::new(bin()).args(args)
}

/// A small fluent wrapper over `std::process::Command`.
pub struct Cmd(Command);

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let mut c = Command::new(program);
        // A UTF-8 locale and no COLUMNS, whatever the caller's: rtool's glyphs and line
        // lengths follow both (tests of the plain ASCII, 80-column output set them).
        c.env_remove("RTOOL_HOST_ROOT")
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS")
            .env_remove("LC_ALL")
            .env_remove("LC_CTYPE")
            .env("LANG", "C.UTF-8")
            .env("RTOOL_PROGRESS", "lines")
            .stdin(Stdio::null());
        Cmd(c)
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.0.args(args);
        self
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.0.arg(a);
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.0.env(k, v);
        self
    }
    pub fn host(self, host: &Path) -> Cmd {
        self.env("RTOOL_HOST_ROOT", host)
    }
    pub fn current_dir(mut self, d: impl AsRef<Path>) -> Cmd {
        self.0.current_dir(d);
        self
    }
    pub fn run(mut self) -> Done {
        // A binary copied by one test may still be open for writing in a child that another
        // test thread forked and has not exec'd yet: exec then fails with ETXTBSY for a moment.
        for _ in 0..100 {
            match self.0.output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                out => return Done(out.expect("spawn the command")),
            }
        }
        panic!("the program stayed busy (ETXTBSY)");
    }
}

/// A finished command with assertion helpers that print everything on failure.
pub struct Done(pub Output);

impl Done {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    pub fn status(self, want: i32) -> Done {
        assert_eq!(
            self.code(),
            want,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn success(self) -> Done {
        self.status(0)
    }
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Done {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Done {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
}

/// A directory tree standing in for a system root (or for the running system's /proc, /sys).
/// It starts with `etc/` and `usr/`, what `--root` wants to see in an installed system.
pub struct FakeRoot {
    pub dir: tempfile::TempDir,
}

impl FakeRoot {
    pub fn new() -> FakeRoot {
        let dir = tempfile::Builder::new()
            .prefix("rtool-root-")
            .tempdir()
            .expect("tempdir");
        for d in ["etc", "usr"] {
            fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        FakeRoot { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// `p` (absolute, as seen inside the root) under the fake root.
    pub fn at(&self, p: &str) -> PathBuf {
        self.path().join(p.trim_start_matches('/'))
    }
    pub fn mkdir(&self, p: &str) -> &FakeRoot {
        fs::create_dir_all(self.at(p)).expect("mkdir");
        self
    }
    pub fn write(&self, p: &str, content: impl AsRef<[u8]>) -> &FakeRoot {
        let full = self.at(p);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        fs::write(&full, content).expect("write");
        self
    }
    pub fn symlink(&self, target: &str, p: &str) -> &FakeRoot {
        let full = self.at(p);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).expect("mkdir parent");
        }
        std::os::unix::fs::symlink(target, full).expect("symlink");
        self
    }
}

/// Stand-ins for external programs (cryptsetup, zpool, make…) on a PATH of their own: each
/// records its arguments, one line per call, in `calls.log`, and exits as told.
pub struct Stubs {
    pub dir: tempfile::TempDir,
}

impl Stubs {
    pub fn new() -> Stubs {
        Stubs {
            dir: tempfile::Builder::new()
                .prefix("rtool-stubs-")
                .tempdir()
                .expect("tempdir"),
        }
    }
    pub fn add(&self, name: &str, exit_code: i32) -> &Stubs {
        self.add_script(name, &format!("exit {exit_code}"))
    }
    /// A stub that runs `body` (sh) after logging its call.
    pub fn add_script(&self, name: &str, body: &str) -> &Stubs {
        let p = self.dir.path().join(name);
        let log = self.log_path();
        fs::write(&p, format!("#!/bin/sh\nprintf '%s' \"{name}\" >> '{}'\nfor a in \"$@\"; do printf ' %s' \"$a\" >> '{}'; done\necho >> '{}'\n{body}\n", log.display(), log.display(), log.display())).expect("write stub");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod stub");
        self
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }
    /// Every recorded call, `name arg arg…` per line.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// Fails the test unless it runs as root: mount and module tests need it, and a test that
/// quietly skips cannot fail.
#[track_caller]
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it mounts inside a private namespace)"
    );
}

/// Runs `script` with bash inside a new private mount namespace (`unshare -m`, propagation
/// private): whatever it mounts disappears with it and never reaches the host. `$RTOOL` is the
/// binary under test; `vars` are exported too.
pub fn in_mount_ns(script: &str, vars: &[(&str, &OsStr)]) -> Done {
    require_root();
    let mut c = Cmd::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
        ])
        .env("RTOOL", bin());
    for (k, v) in vars {
        c = c.env(k, v);
    }
    c.run()
}

/// A network namespace for one test, deleted on drop: its interfaces are real kernel objects.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        require_root();
        let name = format!("rtool-{tag}-{}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(st.success(), "ip netns add {name} failed");
        NetNs { name }
    }
    /// Runs `script` (bash) inside the namespace.
    pub fn sh(&self, script: &str) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.name, "bash", "-euc", script])
            .status()
            .expect("run ip netns exec");
        assert!(st.success(), "in netns {}: {script}", self.name);
    }
    /// `cmd` run inside the namespace, under a private mount namespace too.
    pub fn wrap(&self, script: &str, vars: &[(&str, &OsStr)]) -> Done {
        let mut c = Cmd::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "bash",
                "-euo",
                "pipefail",
                "-c",
                script,
            ])
            .env("RTOOL", bin());
        for (k, v) in vars {
            c = c.env(k, v);
        }
        c.run()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// An exclusive lock on `path` (created if missing), held until the file is dropped: test
/// binaries that make the same fixture at the same time take turns.
pub fn lock(path: &Path) -> fs::File {
    let f = fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own; released when the file is dropped.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    f
}

/// The packages built by the real makepkg (tests/fixtures/make-packages.sh) and the hostile
/// corpus (tests/fixtures/hostile.py), made once per test binary and kept between runs.
pub fn fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        // Concurrent test binaries build into the same place: one at a time.
        fs::create_dir_all(&dir).expect("fixture dir");
        let lock = lock(&dir.join(".lock"));
        Cmd::new("bash")
            .arg(here.join("make-packages.sh"))
            .arg(&dir)
            .run()
            .success();
        Cmd::new("python3")
            .arg(here.join("hostile.py"))
            .arg(dir.join("hostile"))
            .run()
            .success();
        drop(lock);
        dir
    })
}

/// The makepkg-built packages of tests/fixtures/make-install-packages.sh, made once per test
/// binary (one at a time across binaries) and kept between runs.
pub fn install_fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install-fixtures");
        fs::create_dir_all(&dir).expect("fixture dir");
        let lock = lock(&dir.join(".lock"));
        Cmd::new("bash")
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/make-install-packages.sh"),
            )
            .arg(&dir)
            .run()
            .success();
        drop(lock);
        dir
    })
}

/// The kernels of [`hook_packages`].
pub const HOOK_KERNELS: [&str; 3] = ["6.1.12-arch1-1", "6.1.20-arch1-1", "6.2.8-arch1-1"];

/// The fake but valid kernel packages of tests/fixtures/make-hook-packages.sh (built with
/// makepkg from [`HOOK_KERNELS`]' images), made once per test binary and kept between runs.
pub fn hook_packages() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hook-packages");
        let images = dir.join("images");
        fs::create_dir_all(&images).expect("fixture dir");
        let lock = lock(&dir.join(".lock"));
        for k in HOOK_KERNELS {
            fs::write(images.join(k), rtool::kernel::bzimage::fake_image(k)).expect("image");
        }
        Cmd::new("bash")
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/make-hook-packages.sh"),
            )
            .arg(&dir)
            .arg(&images)
            .run()
            .success();
        drop(lock);
        dir
    })
}

/// `rt-base-1.0-1` → its package file among [`install_fixtures`].
pub fn install_pkg(name: &str) -> PathBuf {
    let p = install_fixtures().join(format!("{name}-x86_64.pkg.tar.zst"));
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

/// The real Arch packages shipped beside the repository.
pub fn real_arch(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/real-arch")
        .join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// The program `name` on `PATH` or in the sbin directories.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}
