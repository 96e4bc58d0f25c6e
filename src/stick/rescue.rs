//! `RESCUE.txt`: the walkthrough for one machine, with its own pool, kernel, ESP and network
//! driver in the commands. Plain ASCII, at most 80 columns, readable on any console; a value
//! that could not be found is said to be unknown, with the command that finds it.

use super::facts::Facts;

/// A package on the stick, for the walkthrough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnStick {
    pub name: String,
    pub version: String,
    /// Verified through the target's pacman keyring (`rtool/gnupg`), not Arch's: signed by a
    /// third-party repository's key the admin trusted with pacman-key (archzfs).
    pub pacman_keyring: bool,
}

/// What the walkthrough is written from.
pub struct Input<'a> {
    pub facts: &'a Facts,
    /// Every package in the stick's cache.
    pub packages: &'a [OnStick],
    /// Whether `rtool/bin` has a link per applet (not on vfat).
    pub links: bool,
    /// `YYYY-MM-DD`.
    pub prepared: &'a str,
    pub rtool_version: &'a str,
}

const WIDTH: usize = 80;

/// Only printable ASCII survives into the text (a hostname or a driver name is data).
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `cmd` with `args`, broken with ` \` before 80 columns, continuation lines indented.
fn command(indent: &str, cmd: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut line = format!("{indent}{cmd}");
    for a in args {
        if line.len() + 1 + a.len() + 2 > WIDTH {
            out.push_str(&line);
            out.push_str(" \\\n");
            line = format!("{indent}    {a}");
        } else {
            line.push(' ');
            line.push_str(a);
        }
    }
    out.push_str(&line);
    out.push('\n');
    out
}

pub fn render(i: &Input) -> String {
    let f = i.facts;
    let host = f
        .hostname
        .as_deref()
        .map(ascii)
        .unwrap_or_else(|| "this machine".into());
    let mut t = String::new();
    let title = format!("RESCUE STICK FOR {host}");
    t.push_str(&format!(
        "{title}\n{}\n",
        "=".repeat(title.len().min(WIDTH))
    ));
    t.push_str(&format!(
        "Prepared {} by rtool {} (`rtool stick prepare`).\n\
         Everything below works with no network at all. $S is where the stick is\n\
         mounted. Check the stick first: rtool stick check $S\n\n",
        ascii(i.prepared),
        ascii(i.rtool_version)
    ));

    t.push_str("THIS MACHINE\n");
    let kernels = if f.kernels.is_empty() {
        "unknown: no kernel package in the local pacman database".to_string()
    } else {
        f.kernels
            .iter()
            .map(|k| {
                let rel = k
                    .release
                    .as_deref()
                    .map(|r| format!(" ({})", ascii(r)))
                    .unwrap_or_default();
                format!("{} {}{rel}", ascii(&k.name), ascii(&k.version))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    t.push_str(&format!("  kernel   {kernels}\n"));
    let zfs = if f.zfs.is_empty() {
        "no zfs package installed".to_string()
    } else {
        f.zfs
            .iter()
            .map(|z| format!("{} {}", ascii(&z.name), ascii(&z.version)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    t.push_str(&format!("  ZFS      {zfs}\n"));
    match (&f.pool, &f.root_dataset) {
        (Some(p), Some(d)) => t.push_str(&format!(
            "  pool     {} (root dataset {}, from {})\n",
            ascii(&p.value),
            ascii(&d.value),
            ascii(&d.from)
        )),
        (Some(p), None) => t.push_str(&format!(
            "  pool     {} (from {}; root dataset unknown)\n",
            ascii(&p.value),
            ascii(&p.from)
        )),
        _ => t.push_str(
            "  pool     unknown: not in /etc/fstab, on a kernel command line (zfs=)\n\
             \x20          nor in /etc/zfs/zpool.cache; `zpool import` lists the pools\n",
        ),
    }
    match &f.esp {
        Some((spec, mp)) => t.push_str(&format!(
            "  ESP      {} mounted on {} (from {})\n",
            ascii(&spec.value),
            ascii(mp),
            ascii(&spec.from)
        )),
        None => t.push_str(
            "  ESP      unknown: no vfat /boot, /efi or /boot/efi in /etc/fstab;\n\
             \x20          `lsblk -f` shows the vfat partitions\n",
        ),
    }
    if f.nics.is_empty() {
        t.push_str("  network  unknown: no network interface with a driver was seen\n");
    } else {
        for (n, (ifname, driver)) in f.nics.iter().enumerate() {
            let label = if n == 0 { "network" } else { "" };
            t.push_str(&format!(
                "  {label:8} {} (driver {})\n",
                ascii(ifname),
                ascii(driver)
            ));
        }
    }
    t.push('\n');

    t.push_str("ON THE STICK\n");
    t.push_str("  rtool/bin/rtool      rtool itself, static: runs on any x86_64 Linux\n");
    t.push_str("  rtool/man/rtool.1    the manual: man -l $S/rtool/man/rtool.1\n");
    t.push_str("  rtool/keyring/       Arch's keyring, to verify every package offline\n");
    if i.packages.iter().any(|p| p.pacman_keyring) {
        t.push_str(
            "  rtool/gnupg/         the target's pacman keyring (pacman-key's), for the\n\
             \x20                      packages signed outside Arch's keyring (archzfs)\n",
        );
    }
    t.push_str("  rtool/cache/         packages with their signatures:\n");
    if i.packages.is_empty() {
        t.push_str("                         none\n");
    }
    for p in i.packages {
        t.push_str(&format!(
            "                         {} {}\n",
            ascii(&p.name),
            ascii(&p.version)
        ));
    }
    t.push_str(
        "  rtool/SHA256SUMS     checksums of all of it (`rtool stick check` reads them)\n\n",
    );

    t.push_str("STEPS\n");
    t.push_str(
        " 1. Boot a live system (the Arch ISO), plug the stick in and mount it:\n\
         \x20     lsblk -f                       # find the stick\n\
         \x20     mkdir -p /run/stick && mount /dev/sdX1 /run/stick\n\
         \x20     S=/run/stick\n",
    );
    if i.links {
        t.push_str("      export PATH=$S/rtool/bin:$PATH\n");
    } else {
        t.push_str(
            "      alias rtool=$S/rtool/bin/rtool\n\
             \x20   (no links per applet on this filesystem: type `rtool APPLET`)\n",
        );
    }
    t.push_str(" 2. Check the stick:  rtool stick check $S\n");
    t.push_str(" 3. Look around:      rtool doctor\n");
    let drivers: Vec<String> = {
        let mut d: Vec<String> = f.nics.iter().map(|(_, d)| ascii(d)).collect();
        d.dedup();
        d
    };
    if drivers.is_empty() {
        t.push_str(
            " 4. Network (only if you need it): the driver is unknown;\n\
             \x20   `rtool doctor` lists the interfaces and their drivers\n",
        );
    } else {
        t.push_str(" 4. Network (only if you need it):\n");
        for d in &drivers {
            t.push_str(&format!("      rtool modprobe {d}\n"));
        }
        if drivers.iter().any(|d| d == "ixgbe") {
            t.push_str("      rtool sfp-unlock      # an SFP+ module ixgbe refuses\n");
        }
    }

    let pool = f.pool.as_ref().map(|p| ascii(&p.value));
    t.push_str(" 5. Import the pool under /mnt (never without -R) and mount the system:\n");
    match (&pool, &f.root_dataset) {
        (Some(p), Some(d)) => {
            t.push_str(&format!("      zpool import -N -R /mnt {p}\n"));
            t.push_str(&format!("      zfs mount {}\n", ascii(&d.value)));
            t.push_str("      zfs mount -a\n");
        }
        (Some(p), None) => {
            t.push_str(&format!("      zpool import -N -R /mnt {p}\n"));
            t.push_str("      zfs mount -a       # the root dataset was not found\n");
        }
        _ => t.push_str(
            "      zpool import              # the pool name was not found: this lists them\n\
             \x20     zpool import -N -R /mnt POOL && zfs mount -a\n",
        ),
    }
    match &f.esp {
        Some((spec, mp)) => t.push_str(&format!(
            "      mount {} /mnt{}\n",
            ascii(&spec.value),
            ascii(mp)
        )),
        None => {
            t.push_str("      mount /dev/ESP /mnt/boot   # the ESP was not found: see lsblk -f\n")
        }
    }
    t.push_str("    Or all of it at once, with a shell inside:\n");
    t.push_str(&format!(
        "      rtool chroot --zpool {} --mount-boot /mnt\n",
        pool.as_deref().unwrap_or("POOL")
    ));

    t.push_str(" 6. Reinstall a kernel from the stick, verified, with no network:\n");
    let kernels_on_stick: Vec<&OnStick> = i
        .packages
        .iter()
        .filter(|p| crate::kernel::zfs::KERNEL_PACKAGES.contains(&p.name.as_str()))
        .collect();
    if kernels_on_stick.is_empty() {
        t.push_str("      (no kernel package is on the stick)\n");
    }
    for k in &kernels_on_stick {
        let what = match f.kernels.iter().find(|i| i.name == k.name) {
            Some(i) if i.version == k.version => "as installed when prepared",
            Some(i) if crate::pkg::vercmp::vercmp(&k.version, &i.version).is_lt() => {
                "older: the way back"
            }
            Some(_) => "newer than the installed one",
            None => "not installed when prepared",
        };
        t.push_str(&format!(
            "    {} {} ({what}):\n",
            ascii(&k.name),
            ascii(&k.version)
        ));
        let mut args = vec![
            "--root /mnt".to_string(),
            "--offline".into(),
            "-o $S/rtool/cache".into(),
            "--keyring $S/rtool/keyring".into(),
            format!("{}={}", ascii(&k.name), ascii(&k.version)),
        ];
        let headers = format!("{}-headers", k.name);
        if i.packages
            .iter()
            .any(|p| p.name == headers && p.version == k.version)
        {
            args.push(format!("{}={}", ascii(&headers), ascii(&k.version)));
        }
        t.push_str(&command("      ", "rtool install", &args));
    }
    let zfs_on_stick: Vec<&OnStick> = i
        .packages
        .iter()
        .filter(|p| p.name.starts_with("zfs-"))
        .collect();
    if !zfs_on_stick.is_empty() {
        t.push_str("    ZFS packages from the stick the same way:\n");
        // archzfs's packages verify only through the target's pacman keyring, asked after
        // Arch's (the first keyring that holds a signer's key decides).
        let mut args = vec![
            "--root /mnt".to_string(),
            "--offline".into(),
            "-o $S/rtool/cache".into(),
            "--keyring $S/rtool/keyring".into(),
        ];
        if zfs_on_stick.iter().any(|z| z.pacman_keyring) {
            args.push("--keyring $S/rtool/gnupg".into());
        }
        args.extend(
            zfs_on_stick
                .iter()
                .map(|z| format!("{}={}", ascii(&z.name), ascii(&z.version))),
        );
        t.push_str(&command("      ", "rtool install", &args));
        if zfs_on_stick.iter().any(|z| z.name.starts_with("zfs-linux")) {
            t.push_str(
                "    zfs-linux is built for one kernel version: name it in the same\n\
                 \x20   `rtool install` as that kernel (add the --keyring lines too).\n",
            );
        }
    }
    if f.zfs.iter().any(|z| z.name == "zfs-dkms") {
        t.push_str(
            "    zfs-dkms builds its module for the kernel (the headers must be there):\n\
             \x20     rtool dkms status --root /mnt\n",
        );
    }
    t.push_str(
        " 7. Check before rebooting; a banner says what would not boot:\n\
         \x20     rtool preflight --root /mnt\n",
    );
    t.push_str(&format!(
        " 8. Leave cleanly:\n\
         \x20     umount -R /mnt{}\n",
        pool.as_deref()
            .map(|p| format!(" ; zpool export {p}"))
            .unwrap_or_default()
    ));
    t.push_str(
        "\nThe live system must be able to load ZFS to import the pool: `rtool doctor`\n\
         says whether it can.\n",
    );
    t
}

#[cfg(test)]
mod tests {
    use super::super::facts::{Found, Kernel, Pkg};
    use super::*;

    fn input_text(f: &Facts, pkgs: &[OnStick], links: bool) -> String {
        render(&Input {
            facts: f,
            packages: pkgs,
            links,
            prepared: "2026-12-06",
            rtool_version: "0.1.0",
        })
    }

    #[test]
    fn ascii_within_80_columns_with_the_machine_in_it() {
        let f = Facts {
            hostname: Some("archzfs".into()),
            kernels: vec![Kernel {
                name: "linux".into(),
                version: "6.2.10.arch1-1".into(),
                release: Some("6.2.10-arch1-1".into()),
            }],
            zfs: vec![Pkg {
                name: "zfs-dkms".into(),
                version: "2.1.9-1".into(),
            }],
            pool: Some(Found {
                value: "zroot".into(),
                from: "/etc/fstab".into(),
            }),
            root_dataset: Some(Found {
                value: "zroot/ROOT/default".into(),
                from: "/etc/fstab".into(),
            }),
            esp: Some((
                Found {
                    value: "UUID=1234-ABCD".into(),
                    from: "/etc/fstab".into(),
                },
                "/boot".into(),
            )),
            nics: vec![("enp1s0f0".into(), "ixgbe".into())],
        };
        let pkgs = vec![
            OnStick {
                name: "linux".into(),
                version: "6.2.10.arch1-1".into(),
                pacman_keyring: false,
            },
            OnStick {
                name: "linux-headers".into(),
                version: "6.2.10.arch1-1".into(),
                pacman_keyring: false,
            },
            OnStick {
                name: "linux".into(),
                version: "6.2.8.arch1-1".into(),
                pacman_keyring: false,
            },
            OnStick {
                name: "zfs-utils".into(),
                version: "2:2.1.9-1".into(),
                pacman_keyring: false,
            },
            OnStick {
                name: "zfs-dkms".into(),
                version: "2.1.9-1".into(),
                pacman_keyring: true,
            },
        ];
        let t = input_text(&f, &pkgs, true);
        for l in t.lines() {
            assert!(l.len() <= 80 && l.is_ascii(), "{l:?}");
        }
        for want in [
            "zpool import -N -R /mnt zroot",
            "zfs mount zroot/ROOT/default",
            "mount UUID=1234-ABCD /mnt/boot",
            "rtool modprobe ixgbe",
            "linux=6.2.10.arch1-1",
            "linux-headers=6.2.10.arch1-1",
            "--keyring $S/rtool/keyring",
            "linux=6.2.8.arch1-1",
            "rtool sfp-unlock",
            "rtool/gnupg/         the target's pacman keyring",
            "--keyring $S/rtool/gnupg",
            "zfs-dkms=2.1.9-1",
        ] {
            assert!(t.contains(want), "{want}\n{t}");
        }
        // zfs-utils (Arch's keyring) and zfs-dkms (pacman's) in one command, both keyrings
        // in order before them.
        let arch = t.rfind("--keyring $S/rtool/keyring").unwrap_or_default();
        let gnupg = t.find("--keyring $S/rtool/gnupg").unwrap_or_default();
        let utils = t.find("zfs-utils=2:2.1.9-1").unwrap_or_default();
        let dkms = t.find("zfs-dkms=2.1.9-1").unwrap_or_default();
        assert!(arch < gnupg && gnupg < utils && utils < dkms, "{t}");
        assert_eq!(t.matches("--keyring $S/rtool/gnupg").count(), 1, "{t}");
        let only_arch = input_text(&f, &pkgs[..4], true);
        assert!(!only_arch.contains("rtool/gnupg"), "{only_arch}");
    }

    #[test]
    fn zfs_linux_is_named_with_its_kernel() {
        let pkgs = [OnStick {
            name: "zfs-linux".into(),
            version: "2.1.9_6.2.10.arch1.1-1".into(),
            pacman_keyring: true,
        }];
        let t = input_text(&Facts::default(), &pkgs, true);
        assert!(
            t.contains("zfs-linux is built for one kernel version"),
            "{t}"
        );
        assert!(t.contains("--keyring $S/rtool/gnupg"), "{t}");
        for l in t.lines() {
            assert!(l.len() <= 80 && l.is_ascii(), "{l:?}");
        }
    }

    #[test]
    fn unknowns_are_said_plainly() {
        let t = input_text(&Facts::default(), &[], false);
        for l in t.lines() {
            assert!(l.len() <= 80 && l.is_ascii(), "{l:?}");
        }
        assert!(t.contains("pool     unknown"), "{t}");
        assert!(t.contains("ESP      unknown"), "{t}");
        assert!(t.contains("network  unknown"), "{t}");
        assert!(t.contains("alias rtool="), "{t}");
    }
}
