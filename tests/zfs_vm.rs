//! The incident, end to end, on real ZFS. OpenZFS from Debian's zfs-dkms package is built by
//! `rtool dkms build` against Debian's real headers; a VM running the matching Debian kernel
//! gets a virtio disk with a real pool made by the real `zpool` and `zfs` (an Arch-shaped
//! root: `zroot/ROOT/arch` with `mountpoint=/` and `canmount=noauto`, `bootfs`, `zroot/home`,
//! a vfat ESP on `/boot` referenced by UUID in fstab) and a second disk with a pool under
//! native encryption. Then the rescue runs as a person would type it: `rtool modprobe zfs`,
//! `rtool chroot --zpool zroot --mount-boot /mnt`, `rtool preflight` failing on a kernel whose
//! modules lack zfs, `rtool dkms build` into the target, `rtool preflight` passing; the pool
//! exported on the way out, a second entry, an entry after the chroot was killed, and the
//! encrypted pool with and without its key.
//!
//! The VM cannot compile ZFS (no compiler there, and software emulation would take hours), so
//! the build made on the host is placed in the target's work directory, where `rtool dkms
//! build` finds it finished and installs it, as dkms installs a module it built before. The
//! target has no mkinitcpio either: its initramfs, made once with the pool, is the one from
//! before the failure and holds zfs, so preflight's verdict turns on the modules directory.
//!
//! The cold build (minutes) and the pool images are cached per machine, in
//! `$RTOOL_TEST_CACHE` (default /var/cache/rtool-test), keyed by the zfs version and the kernel
//! release; a warm run reuses both. `RTOOL_DEMO_TRANSCRIPT=FILE` writes the rescue's console,
//! as a person would see it, to FILE (`make demo`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use common::rtool;
use common::vm::{vm, Case, Console, Disk, Opts, Vm};

/// The kernel modules the VM needs besides ZFS: the virtio disk and the vfat ESP.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
];

const PASSPHRASE: &str = "rescue-passphrase";

fn cache() -> PathBuf {
    let d = std::env::var_os("RTOOL_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rtool-test"));
    fs::create_dir_all(&d).expect("cache dir");
    d
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn sh(script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's zfs-dkms source, unpacked once: (its /usr/src/zfs-VERSION, VERSION).
fn zfs_source() -> (PathBuf, String) {
    let debs = common::dkms::debian_pkg(&cache().join("debian"), &["zfs-dkms".to_string()]);
    let out = cache().join(debs[0].file_stem().expect("a .deb"));
    common::dkms::unpack_once(&out, &debs);
    let dir = fs::read_dir(out.join("usr/src"))
        .expect("usr/src in zfs-dkms")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("zfs-"))
        })
        .expect("usr/src/zfs-VERSION in zfs-dkms");
    let version = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("zfs-"))
        .expect("zfs-VERSION")
        .to_string();
    (dir, version)
}

/// OpenZFS built by `rtool dkms build` for the kernel whose headers are installed.
struct Built {
    version: String,
    kver: String,
    /// The work directory holding the finished build.
    work: PathBuf,
    /// The installed modules (`updates/dkms/*.ko.zst`).
    modules: Vec<PathBuf>,
    /// What `rtool dkms build` printed.
    output: String,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let (src, version) = zfs_source();
        let kver = common::dkms::kver();
        let base = cache().join(format!("zfs-{version}-{kver}"));
        let root = base.join("root");
        let work = base.join("work");
        fs::create_dir_all(&base).expect("cache dir");
        let _lock = common::lock(&base.join(".build.lock"));
        // A root with the headers as Debian lays them out: `build` (the -amd64 tree) and
        // `source` (the -common tree).
        sh(
            r#"set -euo pipefail
root=$1 src=$2 k=$3 v=$4
m=$root/usr/lib/modules/$k
mkdir -p "$m" "$root/usr/src"
[[ -e $root/lib ]] || ln -s usr/lib "$root/lib"
ln -sfn "/usr/src/linux-headers-$k" "$m/build"
common=$(readlink -f "/lib/modules/$k/source" || true)
[[ -n $common ]] && ln -sfn "$common" "$m/source"
# the source exactly as packaged: its marker lies beside it
if [[ ! -f $root/usr/src/.zfs-$v.done ]]; then
  rm -rf "$root/usr/src/zfs-$v"; cp -a "$src" "$root/usr/src/zfs-$v"; touch "$root/usr/src/.zfs-$v.done"
fi"#,
            &[&root, &src, &kver, &version],
        );
        let t = Instant::now();
        let spec = format!("zfs/{version}");
        let out = rtool(["dkms", "build", &spec, "-k", &kver, "--compress", "zst"])
            .arg("--root")
            .arg(&root)
            .arg("--work")
            .arg(&work)
            .run();
        let output = out.stdout();
        assert_eq!(out.code(), 0, "rtool dkms build of OpenZFS failed:\n{output}\n{}", out.stderr());
        eprintln!(
            "zfs {version} for {kver}: rtool dkms build took {:.0} s\n{output}",
            t.elapsed().as_secs_f64()
        );
        let dest = root.join("usr/lib/modules").join(&kver).join("updates/dkms");
        let mut modules: Vec<PathBuf> = fs::read_dir(&dest)
            .expect("updates/dkms")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".ko.zst"))
            .collect();
        modules.sort();
        Built {
            // rtool keeps each source × kernel in its own directory under --work.
            work: work.join(format!("zfs-{version}-{kver}")),
            version,
            kver,
            modules,
            output,
        }
    })
}

#[test]
fn rtool_dkms_builds_openzfs_against_debians_headers() {
    let b = built();
    let names: Vec<String> = b
        .modules
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect();
    for m in [
        "spl.ko.zst",
        "zfs.ko.zst",
        "znvpair.ko.zst",
        "icp.ko.zst",
        "zzstd.ko.zst",
    ] {
        assert!(
            names.contains(&m.to_string()),
            "{m} not installed: {names:?}"
        );
    }
    assert!(
        b.output.contains(&format!("zfs {}: ", b.version)),
        "{}",
        b.output
    );
    assert!(b.output.contains("depmod"), "{}", b.output);
    // depmod indexed them: zfs after spl.
    let dep = fs::read_to_string(
        b.modules[0]
            .parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.parent())
            .expect("modules dir")
            .join("modules.dep"),
    )
    .expect("modules.dep");
    let line = dep
        .lines()
        .find(|l| l.starts_with("updates/dkms/zfs.ko.zst:"))
        .unwrap_or_else(|| panic!("zfs not in modules.dep:\n{dep}"));
    assert!(line.contains("updates/dkms/spl.ko.zst"), "{line}");
    // Stripped as dkms strips them: the installed zfs is far below its unstripped size.
    let zfs = b
        .modules
        .iter()
        .find(|p| p.ends_with("zfs.ko.zst"))
        .expect("zfs");
    let raw = sh("zstd -dc \"$1\" | wc -c", &[zfs]);
    let raw: u64 = raw.trim().parse().expect("size");
    assert!(raw < 12 << 20, "zfs.ko is {raw} bytes: not stripped?");
    // The finished build is stamped: the next run, and the target's own `rtool dkms build`
    // in the VM, install it without compiling (asserted there).
    let stamp = b.work.join(format!("zfs/{}/rtool-built", b.version));
    assert!(stamp.is_file(), "no stamp {}", stamp.display());
}

/// The VM: the kernel, the modules above and the dkms-built ZFS in its modules directory.
fn the_vm() -> &'static Vm {
    static V: OnceLock<Vm> = OnceLock::new();
    V.get_or_init(|| {
        let b = built();
        let mut mods: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
        mods.extend(b.modules.iter().map(|p| format!("+{}", p.display())));
        let refs: Vec<&str> = mods.iter().map(String::as_str).collect();
        let v = vm("zfs", &refs);
        assert_eq!(
            v.kver, b.kver,
            "the headers and the kernel image must be the same release"
        );
        v
    })
}

/// zpool, zfs, bash and depmod with their libraries (tests/fixtures/zfs-userland.sh).
fn userland() -> PathBuf {
    let out = cache().join("zfs-userland");
    sh(
        "bash \"$1\" \"$2\" \"$3\"",
        &[&fixture("zfs-userland.sh"), &cache().join("debian"), &out],
    );
    out
}

/// What the setup VM puts into the pool: an Arch-shaped root (`/bin`, `/sbin`, `/lib`,
/// `/lib64` linked into `/usr`), busybox as its small tools, the real zpool/zfs/bash/depmod,
/// the zfs DKMS source, the kernel's modules directory without zfs, fstab with the ESP by
/// UUID, mkinitcpio's HOOKS with zfs; and for /boot the kernel image and an initramfs with
/// the zfs modules.
/// The script that lays out [`target_tree`]: DIR USERLAND ZFS-SOURCE KVER ZFS-VERSION
/// VM-BASE VMLINUZ MODULE....
const TARGET: &str = r#"set -euo pipefail
d=$1 t=$1/target boot=$1/boot ul=$2 src=$3 k=$4 v=$5 base=$6 vmlinuz=$7; shift 7
mkdir -p "$t/usr/bin" "$t/usr/lib" "$t/usr/local/bin" "$t/etc" "$t/root" "$t/home/alice" \
  "$t/var/tmp" "$t/boot" "$t/proc" "$t/sys" "$t/dev" "$t/run" "$t/tmp" "$t/mnt" "$boot/loader/entries"
for l in bin sbin; do ln -s usr/bin "$t/$l"; done
ln -s usr/lib "$t/lib"; ln -s usr/lib "$t/lib64"
cp /bin/busybox "$t/usr/bin/busybox"
for a in sh ls cat true false echo sleep mkdir grep sed tr wc head tail env id uname ln cp rm mount umount stat; do
  ln -s busybox "$t/usr/bin/$a"
done
cp "$ul/usr/sbin/zpool" "$ul/usr/sbin/zfs" "$ul/usr/sbin/depmod" "$ul/usr/bin/bash" "$ul/usr/bin/zstd" "$t/usr/bin/"
cp -a "$ul/usr/lib/x86_64-linux-gnu" "$t/usr/lib/"
cp "$ul/lib64/ld-linux-x86-64.so.2" "$t/usr/lib/"
mkdir -p "$t/usr/src"; cp -a "$src" "$t/usr/src/"
# The kernel's modules as Arch ships them (.ko.zst), indexed; no zfs: the incident's state.
m=$t/usr/lib/modules/$k
mkdir -p "$m/kernel"
(cd "$base/usr/lib/modules/$k" && find kernel -name '*.ko' | while read -r f; do
   mkdir -p "$m/$(dirname "$f")"; zstd -q -19 -c "$f" > "$m/$f.zst"; done)
for f in modules.builtin modules.builtin.modinfo modules.order; do
  [[ -f $base/usr/lib/modules/$k/$f ]] && cp "$base/usr/lib/modules/$k/$f" "$m/"
done
cp "$vmlinuz" "$m/vmlinuz"
depmod -b "$t" "$k"
printf 'archzfs\n' > "$t/etc/hostname"
printf 'NAME="Arch Linux"\nID=arch\n' > "$t/etc/os-release"
printf 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n' > "$t/etc/passwd"
cat > "$t/etc/fstab" <<EOF
# <file system> <dir> <type> <options> <dump> <pass>
UUID=1234-ABCD /boot vfat rw,relatime,fmask=0022,dmask=0022 0 2
EOF
printf 'MODULES=()\nHOOKS=(base udev autodetect modconf block keyboard zfs filesystems)\n' > "$t/etc/mkinitcpio.conf"
echo "alice's files" > "$t/home/alice/notes.txt"
# /boot: the kernel, an initramfs from before the failure (with zfs), a boot entry.
cp "$vmlinuz" "$boot/vmlinuz-linux"
i=$d/initramfs; mkdir -p "$i/usr/lib/modules/$k/updates/dkms"
for f in "$@"; do cp "$f" "$i/usr/lib/modules/$k/updates/dkms/"; done
(cd "$i" && find . | cpio -o -H newc --quiet | zstd -q -c > "$boot/initramfs-linux.img")
touch "$boot/initramfs-linux.img"
printf 'title Arch Linux\nlinux /vmlinuz-linux\ninitrd /initramfs-linux.img\noptions zfs=zroot/ROOT/arch rw\n' > "$boot/loader/entries/arch.conf"
"#;

fn target_tree(dir: &Path, v: &Vm, b: &Built) {
    let (ul, src, base, vmlinuz) = (
        userland(),
        zfs_source().0,
        v.base(),
        v.base().join("../vmlinuz"),
    );
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&dir, &ul, &src, &v.kver, &b.version, &base, &vmlinuz];
    for m in &b.modules {
        args.push(m);
    }
    sh(TARGET, &args);
}

const SETUP: &str = r#"
export PATH=/usr/sbin:/usr/bin:/bin
for m in virtio_pci virtio_blk vfat nls_cp437 nls_ascii nls_utf8 zfs; do rtool modprobe -q $m || echo "modprobe $m failed"; done
i=0; while [ ! -b /dev/vdb1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
case_ zroot sh -ec '
zpool create -f -o ashift=12 -o cachefile=none -O mountpoint=none -O canmount=off \
  -O compression=lz4 -O acltype=posixacl -O xattr=sa -O atime=off -R /t zroot /dev/vda2
zfs create -o mountpoint=none zroot/ROOT
zfs create -o mountpoint=/ -o canmount=noauto zroot/ROOT/arch
zfs mount zroot/ROOT/arch
zfs create -o mountpoint=/home zroot/home
zpool set bootfs=zroot/ROOT/arch zroot
cp -a /setup/target/. /t/
mount -t vfat /dev/vda1 /t/boot
cp -a /setup/boot/. /t/boot/
umount /t/boot
zfs list -o name,mountpoint,canmount
zpool export zroot
'
case_ zcrypt sh -ec '
printf "%s" "$0" | zpool create -f -o ashift=12 -o cachefile=none -O mountpoint=none -O canmount=off \
  -O encryption=aes-256-gcm -O keyformat=passphrase -O keylocation=prompt -R /c zcrypt /dev/vdb1
zfs create -o mountpoint=none zcrypt/ROOT
zfs create -o mountpoint=/ -o canmount=noauto zcrypt/ROOT/arch
zfs mount zcrypt/ROOT/arch
cp -a /setup/target/. /c/
echo archcrypt > /c/etc/hostname
zfs get -H -o name,value encryption,keyformat zcrypt/ROOT/arch
zpool export zcrypt
' "$PASSPHRASE"
"#;

/// The two disk images with their pools, made once by the setup VM and kept.
fn pool_images() -> (PathBuf, PathBuf) {
    static P: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    P.get_or_init(|| {
        let v = the_vm();
        let b = built();
        // The key: what goes into the pools.
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            SETUP.hash(&mut h);
            TARGET.hash(&mut h);
            fs::read(fixture("zfs-userland.sh")).expect("script").hash(&mut h);
            h.finish()
        };
        let dir = cache().join(format!("zfs-pool-{}-{}-{key:016x}", b.version, b.kver));
        let (disk, crypt) = (dir.join("zroot.img"), dir.join("zcrypt.img"));
        fs::create_dir_all(&dir).expect("mkdir");
        let _lock = common::lock(&dir.join(".lock"));
        if dir.join(".done").is_file() {
            return (disk, crypt);
        }
        let work = tempfile::tempdir().expect("tempdir");
        target_tree(work.path(), v, b);
        // A GPT disk: a 64 MiB ESP (vfat, volume id 1234-ABCD) and a Solaris-root partition
        // for the pool; a second disk with one partition for the encrypted pool.
        sh(
            r#"set -euo pipefail
rm -f "$1" "$2"; truncate -s 512M "$1"; truncate -s 256M "$2"
printf 'label: gpt\nsize=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\ntype=6A85CF4D-1DD2-11B2-99A6-080020736631, name=zroot\n' | sfdisk -q "$1"
printf 'label: gpt\ntype=6A85CF4D-1DD2-11B2-99A6-080020736631, name=zcrypt\n' | sfdisk -q "$2"
start=$(sfdisk -d "$1" | awk -F'[=,]' '/name="ESP"/ {gsub(/ /, "", $2); print $2}')
mkfs.vfat -F 32 -i 1234ABCD -n ESP --offset "$start" "$1" $((64 * 1024)) >/dev/null"#,
            &[&disk, &crypt],
        );
        let scenario = SETUP.replace("$PASSPHRASE", PASSPHRASE);
        let c = v.run_with(
            &scenario,
            &[],
            "",
            &Opts {
                disks: vec![
                    Disk { path: disk.clone(), snapshot: false },
                    Disk { path: crypt.clone(), snapshot: false },
                ],
                memory_mb: Some(1536),
                trees: vec![
                    (userland(), "/".into()),
                    (work.path().join("target"), "/setup/target".into()),
                    (work.path().join("boot"), "/setup/boot".into()),
                ],
                timeout_s: Some(1200),
            },
        );
        for n in ["zroot", "zcrypt"] {
            let k = c.case(n);
            assert_eq!(k.rc, 0, "making the pool {n} failed: {k:?}\n{}", c.0);
        }
        fs::write(dir.join(".done"), "").expect("done");
        (disk, crypt)
    })
    .clone()
}

/// The rescue, typed as on the live system. `say` prints the command as a prompt line
/// before running it, so the console reads as a session; its output lies between markers.
const RESCUE: &str = r#"
export PATH=/usr/sbin:/usr/bin:/bin
say() { n=$1; shift; echo "@@ BEGIN $n"; printf "%s" "[root@archiso ~]#"; for a in "$@"; do case $a in *[\ \"\$\<\>\|]*) printf " '%s'" "$a";; *) printf " %s" "$a";; esac; done; echo; "$@" 2>&1; echo "@@ END $n rc=$?"; echo "@@ TIME $n $(cut -d' ' -f1 /proc/uptime)"; }
mkdir -p /mnt /p /root
for m in virtio_pci virtio_blk vfat nls_cp437 nls_ascii nls_utf8; do rtool modprobe -q $m || echo "modprobe $m failed"; done
i=0; while [ ! -b /dev/vdb1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
say modprobe rtool modprobe -v zfs
case_ loaded sh -c 'grep -oE "^(spl|zfs) " /proc/modules | sort | tr "\n" " "'
# The current rtool and the host's finished OpenZFS build go into the target, with the real
# tools (rtool's own chroot keeps its mounts in a private namespace).
case_ prep sh -ec 'ZPOOL_IMPORT_UDEV_TIMEOUT_MS=0 zpool import -N -R /p zroot; zfs mount zroot/ROOT/arch
  cp /bin/rtool /p/usr/local/bin/rtool; cp /rescue.sh /p/root/rescue.sh
  mkdir -p /p/var/tmp/rtool-dkms; cp -a /hostbuild/. /p/var/tmp/rtool-dkms/
  zpool export zroot'
say rescue rtool chroot --zpool zroot --mount-boot /mnt -- /bin/sh /root/rescue.sh
say exported zpool list
case_ exported-mounts sh -c 'echo "mounts under /mnt: $(grep -c " /mnt" /proc/mounts)"'
say again rtool chroot --zpool zroot /mnt -- /bin/cat /etc/hostname
# Killed: rtool, then the command inside; the pool stays imported, nothing stays mounted.
case_ kill sh -c '
  rtool chroot --zpool zroot /mnt -- /bin/sleep 600 & r=$!
  i=0; until pidof sleep >/dev/null || [ $i -gt 300 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 $r; wait $r; echo "rtool: killed ($?)"
  kill -9 $(pidof sleep); sleep 1
  zpool list -H -o name,altroot; echo "mounts under /mnt: $(grep -c " /mnt" /proc/mounts)"'
say after-kill rtool chroot --zpool zroot /mnt -- /bin/cat /etc/hostname
say after-kill-exported zpool list
# Killed the other way round: the command, then rtool while it may be tearing down.
case_ kill-child sh -c '
  rtool chroot --zpool zroot /mnt -- /bin/sleep 600 & r=$!
  i=0; until pidof sleep >/dev/null || [ $i -gt 300 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 $(pidof sleep); kill -9 $r; wait $r; sleep 1
  echo "mounts under /mnt: $(grep -c " /mnt" /proc/mounts)"'
say after-kill-child rtool chroot --zpool zroot /mnt -- /bin/cat /etc/hostname
case_ after-kill-child-exported zpool list
say crypt-nokey sh -c 'rtool chroot --zpool zcrypt /mnt -- /bin/cat /etc/hostname < /dev/null'
say crypt-nokey-exported zpool list
printf '%s' wrong-passphrase > /root/wrong.key
say crypt-wrong rtool chroot --zpool zcrypt --key-file /root/wrong.key /mnt -- /bin/cat /etc/hostname
printf '%s' "$PASSPHRASE" > /root/zcrypt.key
say crypt rtool chroot --zpool zcrypt --key-file /root/zcrypt.key /mnt -- /bin/cat /etc/hostname
say crypt-exported zpool list
"#;

/// Run inside the target by `rtool chroot`.
const INSIDE: &str = r#"
export PATH=/usr/local/bin:/usr/bin
say() { n=$1; shift; echo "@@ BEGIN $n"; printf "%s" "[root@archiso /]#"; for a in "$@"; do case $a in *[\ \"\$\<\>\|]*) printf " '%s'" "$a";; *) printf " %s" "$a";; esac; done; echo; "$@" 2>&1; echo "@@ END $n rc=$?"; echo "@@ TIME $n $(cut -d' ' -f1 /proc/uptime)"; }
say boot ls /boot
say altroot zpool get -H -o value altroot zroot
say mounts grep -E " (/|/home|/boot) " /proc/mounts
say preflight-before rtool preflight
say dkms rtool dkms build zfs/$ZFS -k $KVER
say preflight-after rtool preflight
say home cat /home/alice/notes.txt
"#;

fn rescue() -> &'static Console {
    static C: OnceLock<Console> = OnceLock::new();
    C.get_or_init(|| {
        let v = the_vm();
        let b = built();
        let (disk, crypt) = pool_images();
        // The finished build, as the target's work directory would hold it: the stamp and
        // the built modules.
        let hb = tempfile::tempdir().expect("tempdir");
        let name = format!("zfs-{}-{}", b.version, b.kver);
        sh(
            r#"set -euo pipefail
from=$1/zfs/$3 to=$2/$4/zfs/$3
mkdir -p "$to"
cp "$from/rtool-built" "$to/"
(cd "$from" && find build -name '*.ko' -print0 | cpio -0 -pdm --quiet "$to")"#,
            &[&b.work, &hb.path(), &b.version, &name],
        );
        let inside = INSIDE.replace("$ZFS", &b.version).replace("$KVER", &b.kver);
        let scenario = RESCUE.replace("$PASSPHRASE", PASSPHRASE);
        let files: Vec<(&str, &[u8])> = vec![("rescue.sh", inside.as_bytes())];
        let c = v.run_with(
            &scenario,
            &files,
            "",
            &Opts {
                disks: vec![
                    Disk {
                        path: disk,
                        snapshot: true,
                    },
                    Disk {
                        path: crypt,
                        snapshot: true,
                    },
                ],
                memory_mb: Some(1536),
                trees: vec![
                    (userland(), "/".into()),
                    (hb.path().to_path_buf(), "/hostbuild".into()),
                ],
                timeout_s: Some(1200),
            },
        );
        let _ = fs::write(
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("zfs-rescue-console.txt"),
            &c.0,
        );
        if let Some(t) = std::env::var_os("RTOOL_DEMO_TRANSCRIPT") {
            fs::write(&t, transcript(&c.0)).expect("transcript");
        }
        c
    })
}

/// The console as a person would read it: the commands typed with `say` (a prompt line,
/// then the output), without the test's own steps and markers.
fn transcript(console: &str) -> String {
    let mut out = String::new();
    // For each open block: whether it is shown.
    let mut open: Vec<bool> = Vec::new();
    let mut lines = console.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("@@ BEGIN ") {
            let shown = lines.peek().is_some_and(|n| n.starts_with("[root@"));
            let parent = open.last().copied().unwrap_or(true);
            open.push(shown && parent);
        } else if let Some(i) = l.find("@@ END ") {
            // An output without a final newline leaves the marker on its last line.
            if open.last().copied().unwrap_or(false) && i > 0 {
                out.push_str(&l[..i]);
                out.push('\n');
            }
            open.pop();
        } else if l.starts_with("@@ ") {
            // the scenario's own lines (times)
        } else if open.last().copied().unwrap_or(false) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn case(name: &str) -> Case {
    rescue().case(name)
}

#[test]
fn rtool_modprobe_loads_the_dkms_built_zfs_after_spl() {
    let c = case("modprobe");
    assert_eq!(c.rc, 0, "{c:?}");
    let spl = c.out.find("spl.ko.zst").expect("spl loaded");
    let zfs = c.out.find("updates/dkms/zfs.ko.zst").expect("zfs loaded");
    assert!(spl < zfs, "spl must load before zfs: {c:?}");
    let loaded = case("loaded").out;
    assert_eq!(
        loaded.split_whitespace().collect::<Vec<_>>(),
        ["spl", "zfs"],
        "{loaded:?}"
    );
}

#[test]
fn chroot_imports_with_altroot_mounts_root_home_and_boot() {
    let c = case("rescue");
    assert_eq!(c.rc, 0, "{c:?}");
    let boot = case("boot");
    assert!(boot.out.contains("vmlinuz-linux"), "{boot:?}");
    assert_eq!(
        case("altroot").out.lines().last(),
        Some("/mnt"),
        "{:?}",
        case("altroot")
    );
    let m = case("mounts").out;
    assert!(m.contains("zroot/ROOT/arch / zfs"), "{m}");
    assert!(m.contains("zroot/home /home zfs"), "{m}");
    assert!(m.contains(" /boot vfat"), "{m}");
    assert!(
        case("home").out.contains("alice's files"),
        "{:?}",
        case("home")
    );
}

#[test]
fn preflight_fails_without_zfs_then_passes_after_rtool_dkms_build() {
    let before = case("preflight-before");
    assert_eq!(before.rc, 1, "{before:?}");
    assert!(before.out.contains("DO NOT REBOOT"), "{before:?}");
    assert!(before.out.contains("zfs/"), "{before:?}");
    let d = case("dkms");
    assert_eq!(d.rc, 0, "{d:?}");
    assert!(d.out.contains("from the finished build"), "{d:?}");
    assert!(d.out.contains("updates/dkms/zfs.ko.zst"), "{d:?}");
    assert!(d.out.contains("depmod"), "{d:?}");
    let after = case("preflight-after");
    assert_eq!(after.rc, 0, "{after:?}");
    assert!(!after.out.contains("DO NOT REBOOT"), "{after:?}");
}

#[test]
fn the_pool_is_exported_and_nothing_stays_mounted() {
    let e = case("exported");
    assert!(e.out.contains("no pools available"), "{e:?}");
    let m = case("exported-mounts");
    assert!(m.out.contains("mounts under /mnt: 0"), "{m:?}");
    let again = case("again");
    assert_eq!(again.rc, 0, "{again:?}");
    assert!(again.out.contains("archzfs"), "{again:?}");
    // No udev runs here: zpool's 30-second wait for udev per disk must be off.
    let took = rescue().elapsed("again");
    assert!(
        took < 25.0,
        "the second entry took {took} s: waiting for udev?"
    );
}

#[test]
fn a_killed_chroot_leaves_the_pool_importable_with_a_clear_message() {
    let k = case("kill");
    assert!(
        k.out.contains("zroot\t/mnt"),
        "the pool should stay imported: {k:?}"
    );
    assert!(k.out.contains("mounts under /mnt: 0"), "{k:?}");
    let a = case("after-kill");
    assert_eq!(a.rc, 0, "{a:?}");
    assert!(a.out.contains("already imported"), "{a:?}");
    assert!(a.out.contains("archzfs"), "{a:?}");
    assert!(
        case("after-kill-exported")
            .out
            .contains("no pools available"),
        "{:?}",
        case("after-kill-exported")
    );
    let k = case("kill-child");
    assert!(k.out.contains("mounts under /mnt: 0"), "{k:?}");
    let a = case("after-kill-child");
    assert_eq!(a.rc, 0, "{a:?}");
    assert!(a.out.contains("archzfs"), "{a:?}");
    let e = case("after-kill-child-exported");
    assert!(e.out.contains("no pools available"), "{e:?}");
}

#[test]
fn an_encrypted_pool_needs_its_key_and_says_so() {
    let n = case("crypt-nokey");
    assert_ne!(n.rc, 0, "{n:?}");
    assert!(
        n.out.contains("zcrypt") && n.out.contains("--key-file"),
        "{n:?}"
    );
    assert!(!n.out.contains("archcrypt"), "{n:?}");
    assert!(case("crypt-nokey-exported")
        .out
        .contains("no pools available"));
    let w = case("crypt-wrong");
    assert_ne!(w.rc, 0, "{w:?}");
    assert!(w.out.contains("zcrypt"), "{w:?}");
    let c = case("crypt");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(c.out.contains("archcrypt"), "{c:?}");
    assert!(case("crypt-exported").out.contains("no pools available"));
}

#[test]
fn the_transcript_shows_what_a_person_typed_and_saw() {
    let console = "boot noise @@ VM UP 6.1\n@@ BEGIN a\n[root@archiso ~]# rtool x\nout a\n@@ END a rc=0\n\
                   @@ BEGIN hidden\nspl zfs @@ END hidden rc=0\n@@ BEGIN b\n[root@archiso ~]# rtool chroot\n\
                   @@ BEGIN c\n[root@archiso /]# ls\nno newline@@ END c rc=0\n@@ TIME c 1.5\nafter c\n@@ END b rc=0\n";
    assert_eq!(
        transcript(console),
        "[root@archiso ~]# rtool x\nout a\n[root@archiso ~]# rtool chroot\n[root@archiso /]# ls\nno newline\nafter c\n"
    );
}
