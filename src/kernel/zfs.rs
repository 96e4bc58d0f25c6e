//! Whether the ZFS a system has, or is about to have, works with its kernels: the range in an
//! OpenZFS DKMS source's `META` (`Linux-Maximum`), or the one kernel a prebuilt module package
//! (`zfs-linux`) was built for (`depends = linux=VERSION`).

use std::io::Read;
use std::path::Path;

use crate::archive::extract::Package;
use crate::ctx::below;
use crate::error::{Error, Result};
use crate::kernel::dkms::{self, Meta};
use crate::net::ala::{Op, Spec};
use crate::pkg::vercmp::vercmp;
use crate::pkg::{db, name, pkginfo};

/// The kernel packages Arch ships, whose installs and upgrades the check guards.
pub const KERNEL_PACKAGES: [&str; 4] = ["linux", "linux-lts", "linux-zen", "linux-hardened"];

/// A kernel package as it will be once the transaction is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub name: String,
    pub version: String,
    /// Installed or changed by the transaction.
    pub incoming: bool,
}

/// One piece of ZFS that depends on the kernel: a DKMS source with its `META`, or a package
/// of prebuilt modules with its exact kernel dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zfs {
    /// For messages: `/usr/src/zfs-2.1.9` or `zfs-linux 2.1.9_6.1.12.arch1.1-1`.
    pub what: String,
    pub meta: Option<Meta>,
    /// `linux=6.1.12.arch1-1`-style dependencies.
    pub pins: Vec<Spec>,
    pub incoming: bool,
}

impl Zfs {
    /// A package's exact (`=`) dependencies on a kernel package.
    pub fn pins_of<'a>(depends: impl IntoIterator<Item = &'a str>) -> Vec<Spec> {
        depends
            .into_iter()
            .filter_map(|d| Spec::parse(d).ok())
            .filter(|s| s.op == Some(Op::Eq) && KERNEL_PACKAGES.contains(&s.name.as_str()))
            .collect()
    }
}

/// A kernel the transaction would leave without working ZFS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The kernel package.
    pub kernel: String,
    /// One sentence: which kernel, which ZFS, why.
    pub text: String,
    /// A `rtool fetch-pkg` request for a kernel that works (`linux<6.2`, `linux=6.1.12.arch1-1`).
    pub way_back: Option<String>,
}

/// Every pair of a kernel and a piece of ZFS that the transaction creates and that cannot
/// work. Pairs the transaction does not touch are not its business.
pub fn problems(kernels: &[Kernel], zfs: &[Zfs]) -> Vec<Problem> {
    let mut out = Vec::new();
    for k in kernels {
        // META ranges are about the kernel's major.minor; an epoch is not part of it.
        let release = k.version.rsplit(':').next().unwrap_or_default();
        for z in zfs.iter().filter(|z| k.incoming || z.incoming) {
            if let Some((m, Ok(Some(why)))) = z
                .meta
                .as_ref()
                .map(|m| (m, dkms::meta_range_check(m, release)))
            {
                let way_back = m
                    .linux_max
                    .as_deref()
                    .and_then(next_minor)
                    .filter(|v| vercmp(release, v).is_ge())
                    .map(|v| format!("{}<{v}", k.name));
                out.push(Problem {
                    kernel: k.name.clone(),
                    text: format!("{} {}: {why} ({}/META)", k.name, k.version, z.what),
                    way_back,
                });
            }
            for p in z
                .pins
                .iter()
                .filter(|p| p.name == k.name && !p.matches(&k.version))
            {
                let pin = format!("{}={}", p.name, p.version.as_deref().unwrap_or_default());
                out.push(Problem {
                    kernel: k.name.clone(),
                    text: format!(
                        "{} {}: {} has modules for {pin} only",
                        k.name, k.version, z.what
                    ),
                    way_back: Some(pin),
                });
            }
        }
    }
    out
}

/// `6.1` → `6.2`: the first release a `Linux-Maximum` excludes.
fn next_minor(max: &str) -> Option<String> {
    let mut it = max.split('.');
    let major: u32 = it.next()?.trim().parse().ok()?;
    let minor: u32 = it.next()?.trim().parse().ok()?;
    Some(format!("{major}.{}", minor + 1))
}

/// OpenZFS sources: (directory name under `usr/src`, its `META`).
pub type Sources = Vec<(String, Meta)>;

/// The OpenZFS sources in `<root>/usr/src/zfs-*` that have a `META`.
pub fn sources(root: &Path) -> Result<Sources> {
    let src = below(root, Path::new("/usr/src"));
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("zfs-"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        if let Some(m) = dkms::read_meta(&src.join(&n))? {
            out.push((n, m));
        }
    }
    Ok(out)
}

/// What a package file brings that matters here: its `depend`s, and the `usr/src/DIR/META`
/// files it installs, as (DIR, META).
pub fn read_package(path: &Path) -> Result<(Vec<String>, Sources)> {
    let mut depends = Vec::new();
    let mut metas = Vec::new();
    Package::open(path)?
        .for_each(|m, data| {
            let name = m.name();
            let name = name.strip_prefix("./").unwrap_or(&name);
            let meta_dir = name
                .strip_prefix("usr/src/")
                .and_then(|r| r.strip_suffix("/META"))
                .filter(|d| !d.contains('/'));
            if name != ".PKGINFO" && meta_dir.is_none() {
                return Ok(true);
            }
            let mut bytes = Vec::new();
            data.take(1 << 20)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::invalid(format!("{name}: unreadable")).with_source(e))?;
            match meta_dir {
                Some(d) => metas.push((
                    d.to_string(),
                    dkms::parse_meta(&String::from_utf8_lossy(&bytes))?,
                )),
                None => {
                    depends = pkginfo::parse(&bytes)?
                        .all("depend")
                        .map(String::from)
                        .collect()
                }
            }
            Ok(true)
        })
        .map_err(|e| e.context(path.display().to_string()))?;
    Ok((depends, metas))
}

/// The `usr/src/DIR` directories with a `META` that an installed package owns, from the
/// `files` list in its local database directory.
pub fn owned_sources(local_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(local_dir.join("files"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("usr/src/")?.strip_suffix("/META"))
        .filter(|d| !d.contains('/'))
        .map(String::from)
        .collect()
}

/// The kernels and the ZFS a system will have once the pacman transaction now running is
/// done, and what could not be told (for warnings).
#[derive(Debug, Default)]
pub struct After {
    pub kernels: Vec<Kernel>,
    pub zfs: Vec<Zfs>,
    pub notes: Vec<String>,
}

impl After {
    fn source(&mut self, dir: &str, meta: Meta, incoming: bool) {
        let what = format!("/usr/src/{dir}");
        self.zfs.retain(|z| z.what != what);
        self.zfs.push(Zfs {
            what,
            meta: Some(meta),
            pins: Vec::new(),
            incoming,
        });
    }

    fn package(&mut self, name: &str, version: &str, depends: &[String], incoming: bool) {
        let pins = Zfs::pins_of(depends.iter().map(String::as_str));
        if !pins.is_empty() {
            self.zfs.push(Zfs {
                what: format!("{name} {version}"),
                meta: None,
                pins,
                incoming,
            });
        }
    }
}

/// [`After`] for a transaction that installs or upgrades `targets` (package names, as a hook
/// with `NeedsTargets` reads them), seen from inside the system at `root`; `host` is where
/// the running system's `/proc` is. A target's version is that of the package file named on
/// pacman's command line (`pacman -U`, read from the parent process), else that of the sync
/// databases, which is what `pacman -S` and `-Syu` install. A ZFS package's `META` and
/// dependencies are read from its file: pacman has downloaded it before hooks run.
pub fn after_transaction(root: &Path, host: &Path, targets: &[String]) -> Result<After> {
    let conf = db::Conf::read(root)?;
    let dbdir = below(root, &conf.dbpath);
    let is_kernel = |n: &str| KERNEL_PACKAGES.contains(&n);
    let ours = |n: &str| is_kernel(n) || n.starts_with("zfs-");
    let local = db::installed(&dbdir, ours)?;
    let mut after = After::default();
    for p in &local {
        if is_kernel(&p.name) {
            after.kernels.push(Kernel {
                name: p.name.clone(),
                version: p.version.clone(),
                incoming: false,
            });
        } else {
            after.package(&p.name, &p.version, &p.depends, false);
        }
    }
    for (d, meta) in sources(root)? {
        after.source(&d, meta, false);
    }

    let parent = below(
        host,
        Path::new(&format!("/proc/{}", std::os::unix::process::parent_id())),
    );
    let files = std::fs::read(parent.join("cmdline"))
        .ok()
        .and_then(|c| db::upgrade_files(&c))
        .unwrap_or_default();
    let wanted: Vec<&str> = targets
        .iter()
        .map(String::as_str)
        .filter(|t| ours(t))
        .collect();
    let (synced, errors) = db::sync_entries(&dbdir, &conf.repos, &wanted);
    after.notes.extend(errors.iter().map(Error::to_string));
    let cached = |file: &str| {
        conf.cachedirs
            .iter()
            .map(|c| below(root, c).join(file))
            .find(|p| p.is_file())
    };
    for t in wanted {
        let on_cmdline = files.iter().find_map(|f| {
            let n = name::parse(f.rsplit('/').next()?).ok()?;
            (n.name == t).then(|| (n.version(), f))
        });
        let (version, file) = match (on_cmdline, synced.iter().find(|e| e.name == t)) {
            (Some((v, f)), _) if f.contains("://") => (v, f.rsplit('/').next().and_then(cached)),
            // A relative name is relative to pacman's working directory.
            (Some((v, f)), _) => (v, Some(parent.join("cwd").join(f))),
            (None, Some(e)) => (e.version.clone(), cached(&e.filename)),
            (None, None) => {
                after.notes.push(format!("{t}: in no sync database: which version is coming cannot be told, so it is not checked"));
                continue;
            }
        };
        let old = local.iter().find(|p| p.name == t);
        if old.is_some_and(|o| o.version == version) {
            continue; // a reinstall changes nothing here
        }
        if is_kernel(t) {
            after.kernels.retain(|k| k.name != t);
            after.kernels.push(Kernel {
                name: t.to_string(),
                version,
                incoming: true,
            });
            continue;
        }
        let read = file
            .ok_or_else(|| Error::missing("its package file is not in the cache"))
            .and_then(|f| read_package(&f));
        let (depends, metas) = match read {
            Ok(r) => r,
            Err(e) => {
                after.notes.push(format!(
                    "{t} {version}: {e}: checked as the installed version instead"
                ));
                continue;
            }
        };
        // What the old version brought goes, what the new one brings comes.
        if let Some(o) = old {
            let mut gone: Vec<String> = owned_sources(&o.dir)
                .iter()
                .map(|d| format!("/usr/src/{d}"))
                .collect();
            gone.push(format!("{} {}", o.name, o.version));
            after.zfs.retain(|z| !gone.contains(&z.what));
        }
        for (d, meta) in metas {
            after.source(&d, meta, true);
        }
        after.package(t, &version, &depends, true);
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(max: &str) -> Meta {
        dkms::parse_meta(&format!(
            "Name: zfs\nVersion: 2.1.9\nLinux-Minimum: 3.10\nLinux-Maximum: {max}\n"
        ))
        .unwrap()
    }

    fn kernel(name: &str, version: &str, incoming: bool) -> Kernel {
        Kernel {
            name: name.into(),
            version: version.into(),
            incoming,
        }
    }

    #[test]
    fn the_incidents_kernel_is_outside_zfs_2_1_9() {
        let z = [Zfs {
            what: "/usr/src/zfs-2.1.9".into(),
            meta: Some(meta("6.1")),
            pins: vec![],
            incoming: false,
        }];
        let p = problems(&[kernel("linux", "6.2.8.arch1-1", true)], &z);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].text.starts_with(
                &"linux 6.2.8.arch1-1: zfs 2.1.9 supports Linux 3.10 – 6.1;"
                    .replace("–", crate::text::glyph("–"))
            ),
            "{}",
            p[0].text
        );
        assert!(
            p[0].text.ends_with("(/usr/src/zfs-2.1.9/META)"),
            "{}",
            p[0].text
        );
        assert_eq!(p[0].way_back.as_deref(), Some("linux<6.2"));
        // Too old for it: going further back is no way out.
        let p = problems(&[kernel("linux", "3.9.1-1", true)], &z);
        assert!(p.len() == 1 && p[0].way_back.is_none(), "{p:?}");
        assert!(problems(&[kernel("linux", "6.1.20.arch1-1", true)], &z).is_empty());
        // An installed kernel that the transaction leaves alone is not this transaction's doing.
        assert!(problems(&[kernel("linux-zen", "6.3.1.zen1-1", false)], &z).is_empty());
        // A zfs upgrade is checked against every kernel.
        let newer = [Zfs {
            incoming: true,
            meta: Some(meta("6.2")),
            ..z[0].clone()
        }];
        assert!(problems(&[kernel("linux", "6.2.8.arch1-1", true)], &newer).is_empty());
        assert_eq!(
            problems(&[kernel("linux-zen", "6.3.1.zen1-1", false)], &newer).len(),
            1
        );
    }

    #[test]
    fn prebuilt_modules_need_their_exact_kernel() {
        let pins = Zfs::pins_of([
            "zfs-utils=2.1.9",
            "linux=6.1.12.arch1-1",
            "linux-lts>=6",
            "kmod",
        ]);
        assert_eq!(pins.len(), 1);
        let z = [Zfs {
            what: "zfs-linux 2.1.9_6.1.12.arch1.1-1".into(),
            meta: None,
            pins,
            incoming: false,
        }];
        let p = problems(
            &[
                kernel("linux", "6.2.8.arch1-1", true),
                kernel("linux-lts", "6.1.20-1", true),
            ],
            &z,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].text, "linux 6.2.8.arch1-1: zfs-linux 2.1.9_6.1.12.arch1.1-1 has modules for linux=6.1.12.arch1-1 only");
        assert_eq!(p[0].way_back.as_deref(), Some("linux=6.1.12.arch1-1"));
        assert!(problems(&[kernel("linux", "6.1.12.arch1-1", true)], &z).is_empty());
    }

    #[test]
    fn sources_and_owned_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("usr/src/zfs-2.1.9")).unwrap();
        std::fs::create_dir_all(d.path().join("usr/src/acpi_call-1.2")).unwrap();
        std::fs::write(
            d.path().join("usr/src/zfs-2.1.9/META"),
            "Version: 2.1.9\nLinux-Maximum: 6.1\n",
        )
        .unwrap();
        let s = sources(d.path()).unwrap();
        assert_eq!(
            (s.len(), s[0].0.as_str(), s[0].1.linux_max.as_deref()),
            (1, "zfs-2.1.9", Some("6.1"))
        );
        assert!(sources(&d.path().join("nothing")).unwrap().is_empty());
        std::fs::write(d.path().join("files"), "%FILES%\nusr/\nusr/src/\nusr/src/zfs-2.1.9/\nusr/src/zfs-2.1.9/META\nusr/src/zfs-2.1.9/module/META\n").unwrap();
        assert_eq!(owned_sources(d.path()), ["zfs-2.1.9"]);
    }
}
