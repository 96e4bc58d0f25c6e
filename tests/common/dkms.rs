//! Kernel headers and module sources for DKMS builds: Debian's real headers
//! (`linux-headers-amd64`) and the module trees in tests/fixtures/modules.

use std::fs;
use std::path::{Path, PathBuf};

use super::Cmd;

/// The release of the installed Debian headers (`linux-headers-amd64`).
pub fn kver() -> String {
    let mut found: Vec<String> = fs::read_dir("/usr/src")
        .expect("/usr/src")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("linux-headers-")
                .map(String::from)
        })
        .filter(|k| k.ends_with("-amd64"))
        .collect();
    found.sort();
    found
        .pop()
        .expect("Debian's linux-headers-amd64 is installed by `make test`")
}

/// A target root with the headers for `kver` (its `build` link points at the real headers),
/// an installed kernel (`vmlinuz`), and `/lib -> usr/lib` as on Arch.
pub fn target() -> (tempfile::TempDir, String) {
    let d = tempfile::Builder::new()
        .prefix("dkms-root-")
        .tempdir()
        .unwrap();
    let k = kver();
    let m = d.path().join("usr/lib/modules").join(&k);
    fs::create_dir_all(&m).unwrap();
    std::os::unix::fs::symlink(format!("/usr/src/linux-headers-{k}"), m.join("build")).unwrap();
    fs::write(m.join("vmlinuz"), "kernel").unwrap();
    std::os::unix::fs::symlink("usr/lib", d.path().join("lib")).unwrap();
    (d, k)
}

/// A module tree from tests/fixtures/modules, copied to `dir/NAME-VERSION` so builds never
/// touch the fixture.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/modules")
        .join(name);
    let conf = fs::read_to_string(src.join("dkms.conf")).unwrap();
    let ver = conf
        .lines()
        .find_map(|l| l.strip_prefix("PACKAGE_VERSION="))
        .unwrap()
        .trim_matches('"')
        .to_string();
    fs::create_dir_all(dir).unwrap();
    let dst = dir.join(format!("{name}-{ver}"));
    Cmd::new("cp").arg("-a").arg(&src).arg(&dst).run().success();
    dst
}

/// The same, into the target root's `/usr/src`, where `dkms status` looks.
pub fn module(name: &str, root: &Path) -> PathBuf {
    copy_fixture(name, &root.join("usr/src"))
}

/// Where `rtool dkms build SRC --root ROOT --work ROOT/work` builds SRC for `k`: dkms's layout
/// `WORK/SRCDIR-KVER/NAME/VERSION` (`build/`, `make.log`, the stamp of a finished build).
pub fn work_base(root: &Path, src: &Path, k: &str) -> PathBuf {
    let dir = src.file_name().unwrap().to_str().unwrap();
    let (name, version) = dir.rsplit_once('-').unwrap();
    root.join("work")
        .join(format!("{dir}-{k}"))
        .join(name)
        .join(version)
}

/// The section headers of an ELF file, as `readelf -S -W` prints them.
pub fn sections(elf: &Path) -> String {
    Cmd::new("readelf")
        .args(["-S", "-W"])
        .arg(elf)
        .run()
        .success()
        .stdout()
}

/// Every path below `dir`, recursively (none when it does not exist).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// `bash tests/fixtures/debian-pkg.sh CACHE PKG...`: the .deb of each package, downloaded once.
pub fn debian_pkg(cache: &Path, pkgs: &[String]) -> Vec<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian-pkg.sh");
    let out = Cmd::new("bash")
        .arg(script)
        .arg(cache)
        .args(pkgs)
        .run()
        .success()
        .stdout();
    let debs: Vec<PathBuf> = out.lines().map(PathBuf::from).collect();
    assert_eq!(debs.len(), pkgs.len(), "{out}");
    debs
}

/// The newest `linux-headers-6.X.Y+deb12-amd64` of bookworm-backports, as `6.X.Y+deb12`, from
/// the package lists debian-pkg.sh keeps (`--names`). 6.12.95+deb12, the kernel of the
/// incident, when it is there.
fn backports_kernel(cache: &Path) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debian-pkg.sh");
    let out = Cmd::new("bash")
        .arg(script)
        .arg(cache)
        .args(["--names", "linux-headers-6."])
        .run()
        .success()
        .stdout();
    let version = |v: &str| -> Option<(u32, u32, u32)> {
        let (nums, deb) = v.split_once('+')?;
        if deb != "deb12" {
            return None;
        }
        let mut n = nums.split('.').map(|x| x.parse::<u32>().ok());
        Some((n.next()??, n.next()??, n.next()??))
    };
    let mut found: Vec<((u32, u32, u32), String)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("linux-headers-")?.strip_suffix("-amd64"))
        .filter_map(|v| Some((version(v)?, v.to_string())))
        .collect();
    if found.iter().any(|(_, v)| v == "6.12.95+deb12") {
        return "6.12.95+deb12".to_string();
    }
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no linux-headers-6.*+deb12-amd64 in bookworm-backports:\n{out}"))
        .1
}

/// The incident's pieces, unpacked once with `dpkg -x` into one directory and kept: Debian's
/// zfs-dkms 2.1.11 (`usr/src/zfs-2.1.11`, META: Linux 3.10 – 6.2) and the headers of
/// bookworm-backports' newer kernel, split as Debian splits them (`-amd64`, the `build`
/// tree; `-common`, the `source` tree; `linux-kbuild`). Returns (directory, KVER, version).
pub fn incident_tree() -> (PathBuf, String, String) {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    let cache = tmp.join("cache");
    fs::create_dir_all(&cache).unwrap();
    // zfs-dkms first: that also brings the package lists up to date.
    let mut debs = debian_pkg(&cache, &["zfs-dkms".to_string()]);
    let v = backports_kernel(&cache);
    debs.extend(debian_pkg(
        &cache,
        &[
            format!("linux-headers-{v}-amd64"),
            format!("linux-headers-{v}-common"),
            format!("linux-kbuild-{v}"),
        ],
    ));
    let dir = tmp.join(format!("dkms-incident-{v}"));
    unpack_once(&dir, &debs);
    (dir, format!("{v}-amd64"), v)
}

/// `dpkg -x` of every package into `dir`, once: `dir/.done` marks a finished tree, and
/// concurrent test binaries take turns (`dir.lock`).
pub fn unpack_once(dir: &Path, debs: &[PathBuf]) {
    let _lock = super::lock(&PathBuf::from(format!("{}.lock", dir.display())));
    if dir.join(".done").exists() {
        return;
    }
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    for deb in debs {
        Cmd::new("dpkg").arg("-x").arg(deb).arg(dir).run().success();
    }
    fs::write(dir.join(".done"), "").unwrap();
}
