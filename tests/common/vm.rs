//! A virtual machine running Debian's real kernel under `qemu-system-x86_64` (software
//! emulation, no KVM needed), booted from an initramfs made here: busybox, the static rtool, the
//! modules a test names (tests/fixtures/make-vm.sh) and a scenario script. The scenario's cases
//! print between markers on the serial console, which is all the test reads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{bin, require_root};

/// The prepared kernel and initramfs tree.
pub struct Vm {
    dir: PathBuf,
    pub kver: String,
}

/// What to put into the VM besides the base tree: `(path inside, content)`.
pub type Files<'a> = &'a [(&'a str, &'a [u8])];

/// The kernel and a base tree named `name` with `modules` (and their dependencies), made once
/// and kept.
pub fn vm(name: &str, modules: &[&str]) -> Vm {
    require_root();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(format!("vm-{name}"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-vm.sh");
    let st = Command::new("bash")
        .arg(script)
        .arg(tmp.join("fixtures/cache"))
        .arg(&dir)
        .args(modules)
        .status()
        .expect("running make-vm.sh");
    assert!(st.success(), "make-vm.sh failed");
    let kver = fs::read_to_string(dir.join("kver"))
        .expect("kver")
        .trim()
        .to_string();
    Vm { dir, kver }
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mkdir -p /proc /sys /dev /tmp /run /etc /root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# case NAME CMD...: runs CMD, its output between markers the test reads.
case_() { n=$1; shift; echo "@@ BEGIN $n"; "$@" 2>&1; echo "@@ END $n rc=$?"; echo "@@ TIME $n $(cut -d" " -f1 /proc/uptime)"; }
echo "@@ VM UP $(uname -r)"
. /scenario.sh
echo "@@ VM DONE"
poweroff -f
"#;

impl Vm {
    /// The tree the initramfs starts from (busybox, `usr/lib/modules/KVER`).
    pub fn base(&self) -> PathBuf {
        self.dir.join("base")
    }

    /// Boots with `scenario` (busybox sh, using `case_ NAME CMD...`), `files` added to the
    /// initramfs and `cmdline` appended to the kernel command line; returns the console output.
    pub fn run(&self, scenario: &str, files: Files, cmdline: &str) -> Console {
        self.run_with(scenario, files, cmdline, &Opts::default())
    }

    /// [`Vm::run`] with what [`Opts`] adds: disks, memory, trees copied in, a time limit.
    pub fn run_with(&self, scenario: &str, files: Files, cmdline: &str, opts: &Opts) -> Console {
        let work = tempfile::tempdir().expect("tempdir");
        let root = work.path().join("root");
        let st = Command::new("cp")
            .arg("-a")
            .arg(self.dir.join("base"))
            .arg(&root)
            .status()
            .expect("cp");
        assert!(st.success());
        fs::copy(bin(), root.join("bin/rtool")).expect("copying rtool");
        write(&root, "init", INIT.as_bytes(), 0o755);
        write(&root, "scenario.sh", scenario.as_bytes(), 0o644);
        for (src, inside) in &opts.trees {
            let dst = root.join(inside.trim_start_matches('/'));
            fs::create_dir_all(&dst).expect("mkdir");
            let st = Command::new("cp")
                .arg("-a")
                .arg(src.join("."))
                .arg(&dst)
                .status()
                .expect("cp");
            assert!(st.success(), "copying {} into the VM", src.display());
        }
        for (p, data) in files {
            write(&root, p, data, 0o755);
        }
        let initrd = work.path().join("initrd.gz");
        let st = Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . | cpio -o -H newc --quiet | gzip -1 > \"$2\"")
            .arg("sh")
            .arg(&root)
            .arg(&initrd)
            .status()
            .expect("cpio");
        assert!(st.success(), "making the initramfs failed");
        let mut qemu = Command::new("timeout");
        qemu.arg(opts.timeout_s.unwrap_or(600).to_string()).args([
            "qemu-system-x86_64",
            "-m",
            &opts.memory_mb.unwrap_or(768).to_string(),
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ]);
        for d in &opts.disks {
            // snapshot=on: writes go to a temporary overlay; the image itself stays as it was.
            qemu.arg("-drive").arg(format!(
                "file={},if=virtio,format=raw,snapshot={}",
                d.path.display(),
                if d.snapshot { "on" } else { "off" }
            ));
        }
        let out = qemu
            .arg("-kernel")
            .arg(self.dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(&initrd)
            .arg("-append")
            .arg(format!(
                "console=ttyS0 panic=-1 rdinit=/init loglevel=1 {cmdline}"
            ))
            .stdin(Stdio::null())
            .output()
            .expect("running qemu-system-x86_64");
        let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        if std::env::var_os("RTOOL_VM_SHOW").is_some() {
            eprintln!("{text}");
        }
        assert!(
            text.contains("@@ VM DONE"),
            "the VM did not finish its scenario:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Console(text)
    }
}

fn write(root: &Path, p: &str, data: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let f = root.join(p.trim_start_matches('/'));
    fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
    fs::write(&f, data).expect("write");
    fs::set_permissions(&f, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A disk image given to the VM as a virtio disk (`/dev/vda`, `/dev/vdb`, … in order).
pub struct Disk {
    pub path: PathBuf,
    /// Keep the image unchanged: the VM's writes are discarded when it stops.
    pub snapshot: bool,
}

/// What a VM gets besides its scenario.
#[derive(Default)]
pub struct Opts {
    pub disks: Vec<Disk>,
    pub memory_mb: Option<u32>,
    /// Directory trees copied into the initramfs: (tree on the host, where inside).
    pub trees: Vec<(PathBuf, String)>,
    pub timeout_s: Option<u32>,
}

/// The serial console's text.
pub struct Console(pub String);

/// One case's output and exit status.
#[derive(Debug)]
pub struct Case {
    pub out: String,
    pub rc: i32,
}

impl Console {
    /// Seconds between the end of the case before `name` and the end of `name` (the
    /// `@@ TIME` lines the scenario's helpers print).
    pub fn elapsed(&self, name: &str) -> f64 {
        let times: Vec<(&str, f64)> = self
            .0
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("@@ TIME ")? + 8..];
                let (n, t) = rest.rsplit_once(' ')?;
                Some((n, t.trim().parse().ok()?))
            })
            .collect();
        let i = times
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no time for {name}"));
        times[i].1 - if i == 0 { 0.0 } else { times[i - 1].1 }
    }

    pub fn case(&self, name: &str) -> Case {
        let begin = format!("@@ BEGIN {name}\n");
        let start = self
            .0
            .find(&begin)
            .unwrap_or_else(|| panic!("no case {name} in:\n{}", self.0))
            + begin.len();
        let end_marker = format!("@@ END {name} rc=");
        let end = self.0[start..]
            .find(&end_marker)
            .unwrap_or_else(|| panic!("case {name} did not end:\n{}", self.0))
            + start;
        let rc = self.0[end + end_marker.len()..]
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("rc");
        Case {
            out: self.0[start..end].to_string(),
            rc,
        }
    }
}
