//! What a rescue of this machine needs to know, read from the installed system (the target
//! root) and the running one (the host): its kernels, its ZFS, its pool, its ESP, its NICs.
//!
//! Every value says where it came from; a value that cannot be found is `None`, never a guess.

use std::path::Path;

use crate::ctx::below;
use crate::error::Result;
use crate::kernel::zfs::KERNEL_PACKAGES;
use crate::pkg::db;
use crate::sys::{fstab, net};

/// An installed package: name and `[epoch:]pkgver-pkgrel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkg {
    pub name: String,
    pub version: String,
}

/// An installed kernel package and the release its modules directory carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub name: String,
    pub version: String,
    /// `6.2.10-arch1-1`: the directory under `/usr/lib/modules` whose `pkgbase` names it.
    pub release: Option<String>,
}

/// A value and where it was found (`/etc/fstab`, a boot entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub from: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub hostname: Option<String>,
    pub kernels: Vec<Kernel>,
    /// Installed `zfs-*` packages (zfs-dkms, zfs-linux*, zfs-utils).
    pub zfs: Vec<Pkg>,
    /// The pool the root is on.
    pub pool: Option<Found>,
    /// The root dataset (`zroot/ROOT/default`).
    pub root_dataset: Option<Found>,
    /// The ESP: its fstab spec (`UUID=1234-ABCD`) and mount point.
    pub esp: Option<(Found, String)>,
    /// The running machine's network interfaces with a driver: (interface, driver).
    pub nics: Vec<(String, String)>,
}

/// Reads the facts of the system at `root`, with the NICs of the machine at `host`.
pub fn read(root: &Path, host: &Path) -> Result<Facts> {
    let conf = db::Conf::read(root)?;
    let dbdir = below(root, &conf.dbpath);
    let installed = db::installed(&dbdir, |n| {
        KERNEL_PACKAGES.contains(&n) || n.starts_with("zfs-")
    })?;
    let mut f = Facts {
        hostname: std::fs::read_to_string(below(root, Path::new("/etc/hostname")))
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic())),
        ..Facts::default()
    };
    for p in &installed {
        if KERNEL_PACKAGES.contains(&p.name.as_str()) {
            f.kernels.push(Kernel {
                name: p.name.clone(),
                version: p.version.clone(),
                release: release_of(root, &p.name),
            });
        } else {
            f.zfs.push(Pkg {
                name: p.name.clone(),
                version: p.version.clone(),
            });
        }
    }
    f.kernels.sort_by(|a, b| a.name.cmp(&b.name));
    f.zfs.sort_by(|a, b| a.name.cmp(&b.name));

    let fstab_path = below(root, Path::new("/etc/fstab"));
    let entries = fstab::read(&fstab_path).unwrap_or_default();
    if let Some(e) = entries
        .iter()
        .find(|e| e.fstype == "zfs" && e.mount_point == Path::new("/"))
    {
        f.root_dataset = Some(Found {
            value: e.spec.clone(),
            from: "/etc/fstab".into(),
        });
    }
    if f.root_dataset.is_none() {
        f.root_dataset = cmdline_dataset(root);
    }
    f.pool = match &f.root_dataset {
        Some(d) => Some(Found {
            value: d.value.split('/').next().unwrap_or_default().to_string(),
            from: d.from.clone(),
        }),
        None => entries.iter().find(|e| e.fstype == "zfs").map(|e| Found {
            value: e.spec.split('/').next().unwrap_or_default().to_string(),
            from: "/etc/fstab".into(),
        }),
    }
    .filter(|p| valid_pool_name(&p.value));
    if f.pool.is_none() {
        let cache = below(root, Path::new("/etc/zfs/zpool.cache"));
        let pools = std::fs::read(&cache)
            .map(|b| cached_pools(&b))
            .unwrap_or_default();
        // Several pools in the cache: which one holds the root is not said there.
        if let [only] = pools.as_slice() {
            f.pool = Some(Found {
                value: only.clone(),
                from: "/etc/zfs/zpool.cache".into(),
            });
        }
    }

    // The ESP: a vfat filesystem on one of the places Arch mounts it.
    f.esp = ["/boot", "/efi", "/boot/efi"].iter().find_map(|mp| {
        entries
            .iter()
            .find(|e| e.mount_point == Path::new(mp) && e.fstype == "vfat")
            .map(|e| {
                (
                    Found {
                        value: e.spec.clone(),
                        from: "/etc/fstab".into(),
                    },
                    (*mp).to_string(),
                )
            })
    });

    f.nics = net::interfaces(&below(host, Path::new("/sys/class/net")))
        .into_iter()
        .filter(|i| !i.loopback)
        .filter_map(|i| Some((i.name, i.driver?)))
        .collect();
    Ok(f)
}

/// The release under `/usr/lib/modules` whose `pkgbase` file names the kernel package.
fn release_of(root: &Path, pkg: &str) -> Option<String> {
    let dir = below(root, Path::new("/usr/lib/modules"));
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("pkgbase")).is_ok_and(|b| b.trim() == pkg)
        })
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    // Several (a kept kernel's directory): the newest by pacman's order is the package's.
    found.sort_by(|a, b| crate::pkg::vercmp::vercmp(b, a));
    found.into_iter().next()
}

/// `zfs=POOL/DATASET` from the kernel command lines the target boots with: systemd-boot
/// entries, `/etc/kernel/cmdline`, GRUB's defaults. `zfs=bootfs` names no dataset.
fn cmdline_dataset(root: &Path) -> Option<Found> {
    let mut sources: Vec<(String, String)> = Vec::new();
    let entries = below(root, Path::new("/boot/loader/entries"));
    if let Ok(rd) = std::fs::read_dir(&entries) {
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            if let Ok(t) = std::fs::read_to_string(entries.join(&n)) {
                sources.push((format!("/boot/loader/entries/{}", n.to_string_lossy()), t));
            }
        }
    }
    for p in [
        "/etc/kernel/cmdline",
        "/etc/default/grub",
        "/boot/grub/grub.cfg",
    ] {
        if let Ok(t) = std::fs::read_to_string(below(root, Path::new(p))) {
            sources.push((p.to_string(), t));
        }
    }
    sources.into_iter().find_map(|(from, text)| {
        text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .filter_map(|w| w.strip_prefix("zfs="))
            .find(|d| d.contains('/') && valid_pool_name(d.split('/').next().unwrap_or("")))
            .map(|d| Found {
                value: d.to_string(),
                from,
            })
    })
}

/// The pools named in a `zpool.cache`: an XDR-encoded nvlist whose top-level pairs are
/// named after the pools. Anything that does not read as one gives no names.
fn cached_pools(b: &[u8]) -> Vec<String> {
    let be32 = |at: usize| -> Option<usize> {
        let w = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize)
    };
    // The stream header: encoding 1 (XDR), then the nvlist's version and flags.
    if b.first() != Some(&1) {
        return Vec::new();
    }
    let mut names = Vec::new();
    let mut at = 12;
    while let Some(size) = be32(at) {
        if size == 0 || names.len() >= 64 {
            break;
        }
        let name = be32(at + 8).and_then(|n| b.get(at + 12..(at + 12).checked_add(n)?));
        match name.map(|n| {
            String::from_utf8_lossy(n)
                .trim_end_matches('\0')
                .to_string()
        }) {
            Some(n) if valid_pool_name(&n) => names.push(n),
            _ => return Vec::new(),
        }
        at = match at.checked_add(size) {
            Some(next) => next,
            None => break,
        };
    }
    names
}

/// A name `zpool create` accepts: a letter first, then letters, digits, `_-.:`.
fn valid_pool_name(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names() {
        assert!(valid_pool_name("zroot"));
        assert!(!valid_pool_name("bootfs/x") && !valid_pool_name("") && !valid_pool_name("1x"));
    }

    /// An XDR nvlist pair as libnvpair encodes it: sizes, the padded name, type, elements.
    fn pair(name: &str) -> Vec<u8> {
        let mut padded = name.as_bytes().to_vec();
        padded.push(0);
        while padded.len() % 4 != 0 {
            padded.push(0);
        }
        let body = [19u32.to_be_bytes(), 1u32.to_be_bytes()].concat(); // DATA_TYPE_NVLIST
        let size = 12 + padded.len() + body.len();
        [
            (size as u32).to_be_bytes().to_vec(),
            (size as u32).to_be_bytes().to_vec(),
            ((name.len() + 1) as u32).to_be_bytes().to_vec(),
            padded,
            body,
        ]
        .concat()
    }

    #[test]
    fn pools_from_a_zpool_cache() {
        let head = [1u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let b = [&head[..], &pair("zroot"), &pair("tank"), &[0u8; 8]].concat();
        assert_eq!(cached_pools(&b), ["zroot", "tank"]);
        assert!(
            cached_pools(&b[..20]).is_empty(),
            "a cut name reads as nothing"
        );
        assert!(cached_pools(b"garbage").is_empty());
        let mut bad = b.clone();
        bad[12] = 0xff; // a size that points past the end
        assert_eq!(cached_pools(&bad), ["zroot"]);
    }

    #[test]
    fn dataset_from_a_boot_entry() {
        let d = tempfile::tempdir().unwrap();
        let e = d.path().join("boot/loader/entries");
        std::fs::create_dir_all(&e).unwrap();
        std::fs::write(
            e.join("arch.conf"),
            "title Arch\nlinux /vmlinuz-linux\noptions zfs=rpool/ROOT/arch rw\n",
        )
        .unwrap();
        let f = cmdline_dataset(d.path()).unwrap();
        assert_eq!(f.value, "rpool/ROOT/arch");
        assert_eq!(f.from, "/boot/loader/entries/arch.conf");
    }
}
