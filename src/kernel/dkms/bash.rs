//! Reading a `dkms.conf` with bash itself, as dkms does.

use std::collections::HashMap;
use std::path::Path;

use super::shell::{Array, Val};
use super::{build_conf, Conf, Vars, CONF_VARIABLES};
use crate::error::{Error, IoContext, Result};

/// The script that reads a `dkms.conf` as dkms 3 does: `read_conf` sets `kernelver`, `arch`,
/// `kernel_source_dir`, `kernel_config`, `dkms_tree`, `source_tree`, `install_tree`,
/// `module` and `module_version`, unsets the directives (`parallel_jobs` is set before, at
/// dkms's top level, line 2532: the CPU count, as the built-in reader takes it), and `safe_source` (lines 407-431)
/// sources the file in a subshell, echoes every directive back unquoted into a file and
/// sources that. Instead of a file, the echoes are captured and evaluated. The result is
/// printed as NUL-separated (name, index, value) triples, which no bash value can break.
/// dkms turns on `extglob` at its top (line 23), so patterns like `@(5|6).*` parse.
const BASH_READER: &str = r#"
shopt -s extglob
kernelver=$1 arch=$2 kernel_source_dir=$3 dkms_tree=$4 source_tree=$5
install_tree=$6 module=$7 module_version=$8 _rtool_conf=$9 parallel_jobs=${10}
kernel_config=$kernel_source_dir/.config
shift 10
declare -a -r _rtool_vars=("$@")
for _v in "${_rtool_vars[@]}"; do unset "$_v"; done
_rtool_echoed=$(
    . "$_rtool_conf" >/dev/null
    for _export_env in "${_rtool_vars[@]}"; do
        for _i in $(eval echo \${!$_export_env[@]}); do
            eval echo '$_export_env[$_i]=\"${'$_export_env'[$_i]}\"'
        done
    done
) || { echo "rtool: the subshell reading $_rtool_conf failed" >&2; exit 90; }
eval "$_rtool_echoed"
for _v in "${_rtool_vars[@]}"; do
    eval 'for _i in "${!'$_v'[@]}"; do printf "%s\0%s\0%s\0" "$_v" "$_i" "${'$_v'[$_i]}"; done'
done
"#;

/// How long bash may take to read a `dkms.conf`.
const BASH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// More output than any real `dkms.conf` gives.
const BASH_OUTPUT_MAX: usize = 4 << 20;

/// Reads `dir/dkms.conf` with `bash`, exactly as dkms does, for the kernel in `vars`.
/// The file runs with the privileges of rtool, as under dkms; its own output is discarded.
pub fn parse_with_bash(bash: &Path, dir: &Path, vars: &Vars) -> Result<Conf> {
    let (dk, warnings) = read_values(bash, dir, vars)?;
    let dir_name = dir.file_name().and_then(|n| n.to_str());
    let mut conf = build_conf(warnings, dk, dir_name)?;
    conf.read_by_bash = true;
    Ok(conf)
}

/// The directives dkms holds after `safe_source`, read by `bash`, and what bash said on
/// stderr (as warnings).
pub(super) fn read_values(
    bash: &Path,
    dir: &Path,
    vars: &Vars,
) -> Result<(HashMap<&'static str, Array>, Vec<String>)> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let path = dir.join("dkms.conf");
    let path = std::path::absolute(&path).at(&path)?;
    let dir_name = dir.file_name().and_then(|n| n.to_str());
    let (module, version) = dir_name
        .and_then(|d| d.rsplit_once('-'))
        .map(|(m, v)| (m.to_string(), v.to_string()))
        .unwrap_or_default();
    let mut child = Command::new(bash)
        .arg("-c")
        .arg(BASH_READER)
        .arg("rtool-dkms-conf")
        .arg(&vars.kernelver)
        .arg(&vars.arch)
        .arg(&vars.kernel_source_dir)
        .arg(&vars.dkms_tree)
        .arg(&vars.source_tree)
        .arg("/lib/modules")
        .arg(&module)
        .arg(&version)
        .arg(&path)
        .arg(
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        )
        .args(CONF_VARIABLES)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(e, format!("running {}", bash.display())))?;
    // Both pipes are drained on their own threads, so neither can fill and stall bash.
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(BASH_OUTPUT_MAX as u64 + 1).read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > BASH_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::invalid(format!(
                    "bash did not finish reading it in {} s",
                    BASH_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Err(Error::io(e, "waiting for bash")),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let err = String::from_utf8_lossy(&err);
    if !status.success() {
        let last = err.lines().rev().take(3).collect::<Vec<_>>();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(Error::invalid(format!(
            "bash could not read it ({status}){}{}",
            if last.is_empty() { "" } else { ": " },
            last.join(" / ")
        )));
    }
    if out.len() > BASH_OUTPUT_MAX {
        return Err(Error::invalid(format!(
            "its values add up to more than {} MiB",
            BASH_OUTPUT_MAX >> 20
        )));
    }
    let mut dk: HashMap<&'static str, Array> = HashMap::new();
    let mut fields = out.split(|b| *b == 0);
    while let (Some(name), Some(index), Some(value)) = (fields.next(), fields.next(), fields.next())
    {
        let name = String::from_utf8_lossy(name);
        let Some(name) = CONF_VARIABLES.iter().find(|n| **n == name) else {
            continue;
        };
        let Ok(index) = std::str::from_utf8(index).unwrap_or("").parse::<u64>() else {
            continue;
        };
        let text = String::from_utf8_lossy(value).into_owned();
        dk.entry(name).or_default().insert(
            index,
            Val {
                text,
                unknown: Vec::new(),
                line: 0,
            },
        );
    }
    let mut warnings = Vec::new();
    for l in err.lines().filter(|l| !l.trim().is_empty()).take(5) {
        warnings.push(format!("bash: {l}"));
    }
    Ok((dk, warnings))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::{
        conf_dir, dkms_conf_fixture, every_fixture_conf, kernel_tree, BASH,
    };
    use super::super::tests::ACPI_CALL;
    use super::super::{exclusive_kernel_matches, read, Module};
    use super::*;
    use crate::error::Kind;

    fn by_bash(dir: &Path, v: &Vars) -> Conf {
        match parse_with_bash(Path::new(BASH), dir, v) {
            Ok(c) => c,
            Err(e) => panic!("{}: {e}", dir.display()),
        }
    }

    fn words(s: Option<&str>) -> Vec<String> {
        s.unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// A zfs fixture whose `PACKAGE_CONFIG` names `cfg` instead of a file of this machine's
    /// /etc, so what the test sees does not depend on the machine.
    fn zfs_with_config(file: &str, etc: &str, cfg: &Path) -> String {
        let text = dkms_conf_fixture(file);
        let line = format!("PACKAGE_CONFIG=\"{etc}\"\n");
        assert!(text.contains(&line), "{file} sets {line}");
        text.replacen(&line, &format!("PACKAGE_CONFIG=\"{}\"\n", cfg.display()), 1)
    }

    const ZFS_MODULES: [(&str, &str, &str); 9] = [
        ("zavl", "module/avl/", "/extra/avl/avl"),
        ("znvpair", "module/nvpair/", "/extra/nvpair/znvpair"),
        ("zunicode", "module/unicode/", "/extra/unicode/zunicode"),
        ("zcommon", "module/zcommon/", "/extra/zcommon/zcommon"),
        ("zfs", "module/zfs/", "/extra/zfs/zfs"),
        ("icp", "module/icp/", "/extra/icp/icp"),
        ("zlua", "module/lua/", "/extra/lua/zlua"),
        ("spl", "module/spl/", "/extra/spl/spl"),
        ("zzstd", "module/zstd/", "/extra/zstd/zzstd"),
    ];

    /// What both zfs files give whatever the kernel: names, versions, module records, make.
    fn assert_zfs_common(c: &Conf, version: &str, v: &Vars) {
        assert!(c.read_by_bash);
        assert_eq!(
            (c.package_name.as_str(), c.package_version.as_str()),
            ("zfs", version)
        );
        let got: Vec<(&str, &str, &str)> = c
            .modules
            .iter()
            .map(|m| {
                (
                    m.built_name.as_str(),
                    m.built_location.as_str(),
                    m.dest_location.as_str(),
                )
            })
            .collect();
        assert_eq!(got, ZFS_MODULES);
        assert!(c.modules.iter().all(|m| m.dest_name == m.built_name));
        assert_eq!(c.modules[4].built_path(), "module/zfs/zfs.ko");
        assert_eq!(c.make, ["make"]);
        assert_eq!(
            c.make_command(v, 2).unwrap(),
            format!("make -j2 KERNELRELEASE={}", v.kernelver)
        );
        assert!(c.autoinstall);
        assert!(c.inexact.is_empty(), "{:?}", c.inexact);
        assert_eq!(
            words(c.post_build.as_deref()),
            [
                "scripts/dkms.postbuild",
                "-n",
                "zfs",
                "-v",
                version,
                "-a",
                "x86_64",
                "-k",
                &v.kernelver,
                "-t",
                &v.dkms_tree
            ]
        );
    }

    /// The `--with-linux…` words of OpenZFS's PRE_BUILD: `source` beside `build` when it
    /// exists (Debian's -common headers), else the build directory itself.
    fn with_linux(v: &Vars, source: bool) -> [String; 2] {
        let linux = match source {
            true => v.kernel_source_dir.replace("/build", "/source"),
            false => v.kernel_source_dir.clone(),
        };
        [
            format!("--with-linux={linux}"),
            format!("--with-linux-obj={}", v.kernel_source_dir),
        ]
    }

    /// The `--with-qat=` and `--host=` words of OpenZFS's PRE_BUILD, from the environment as
    /// under dkms (both are empty unless ICP_ROOT or CROSS_COMPILE is set).
    fn qat_and_host() -> (String, String) {
        let qat = std::env::var("ICP_ROOT").unwrap_or_default();
        let cross = std::env::var("CROSS_COMPILE").unwrap_or_default();
        (
            format!("--with-qat={qat}"),
            format!("--host={}", cross.strip_suffix('-').unwrap_or(&cross)),
        )
    }

    #[test]
    fn bash_reads_debians_zfs_conf_as_dkms_does() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("etc-dkms-zfs.conf");
        let text = zfs_with_config("debian-zfs-2.1.11.conf", "/etc/dkms/zfs.conf", &cfg);
        let dir = conf_dir(t.path(), "zfs-2.1.11", &text);
        // OpenZFS's quoting (`\"${CROSS_COMPILE}\"` inside `$( )`) makes both tests true,
        // so `--with-qat=` and `--host=` are always there; dkms reads the same (see the
        // differential test below).
        let (qat, host) = qat_and_host();
        for (kver, source) in [("6.1.0-13-amd64", true), ("6.1.0-14-amd64", false)] {
            let v = kernel_tree(t.path(), kver, Some("CONFIG_SMP=y\n"), source);
            let c = by_bash(&dir, &v);
            assert_zfs_common(&c, "2.1.11", &v);
            let [linux, obj] = with_linux(&v, source);
            assert_eq!(
                words(c.pre_build.as_deref()),
                [
                    "configure",
                    "--prefix=/usr",
                    "--with-config=kernel",
                    &linux,
                    &obj,
                    &qat,
                    &host
                ],
                "{kver}"
            );
            assert!(c.modules.iter().all(|m| m.strip), "{kver}");
            assert_eq!(c.build_exclusive_kernel, None, "{kver}");
            assert_eq!(c.build_excluded(&v).unwrap(), None, "{kver}");
        }
        // The PREEMPT_RT test runs on the kernel's .config, which only bash can source.
        let v = kernel_tree(
            t.path(),
            "6.1.0-13-rt-amd64",
            Some("CONFIG_SMP=y\nCONFIG_PREEMPT_RT=y\n"),
            true,
        );
        let c = by_bash(&dir, &v);
        assert_zfs_common(&c, "2.1.11", &v);
        assert_eq!(
            c.build_exclusive_kernel.as_deref(),
            Some("NOT ON PREEMPT_RT")
        );
        let why = c.build_excluded(&v).unwrap().unwrap();
        assert!(
            why.contains("NOT ON PREEMPT_RT") && why.contains("6.1.0-13-rt-amd64"),
            "{why}"
        );
        // No .config at all: not excluded either.
        let v = kernel_tree(t.path(), "6.1.0-15-amd64", None, false);
        assert_eq!(by_bash(&dir, &v).build_exclusive_kernel, None);

        // The package's own configuration file, sourced inside the `$( )`s with extglob.
        std::fs::write(
            &cfg,
            "ZFS_DKMS_ENABLE_DEBUG=Yes\nZFS_DKMS_ENABLE_DEBUGINFO=n\nZFS_DKMS_DISABLE_STRIP=y\n",
        )
        .unwrap();
        let v = kernel_tree(t.path(), "6.1.0-13-amd64", None, true);
        let c = by_bash(&dir, &v);
        assert_zfs_common(&c, "2.1.11", &v);
        let pre = words(c.pre_build.as_deref());
        assert_eq!(
            pre.last().map(String::as_str),
            Some("--enable-debug"),
            "{pre:?}"
        );
        assert!(!pre.contains(&"--enable-debuginfo".to_string()), "{pre:?}");
        assert!(c.modules.iter().all(|m| !m.strip), "STRIP[0..8] are no");
    }

    #[test]
    fn bash_reads_archs_generated_zfs_conf_as_dkms_does() {
        let (qat, _) = qat_and_host();
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("sysconfig-zfs");
        let text = zfs_with_config("arch-zfs-2.1.9.conf", "/etc/sysconfig/zfs", &cfg);
        let dir = conf_dir(t.path(), "zfs-2.1.9", &text);
        // Arch's file has no PREEMPT_RT test: a PREEMPT_RT .config changes nothing.
        for (kver, source, config) in [
            ("6.1.12-arch1-1", false, "CONFIG_SMP=y\n"),
            ("6.1.12-rt7-arch1-1", true, "CONFIG_PREEMPT_RT=y\n"),
        ] {
            let v = kernel_tree(t.path(), kver, Some(config), source);
            let c = by_bash(&dir, &v);
            assert_zfs_common(&c, "2.1.9", &v);
            let [linux, obj] = with_linux(&v, source);
            assert_eq!(
                words(c.pre_build.as_deref()),
                [
                    "configure",
                    "--prefix=/usr",
                    "--with-config=kernel",
                    &linux,
                    &obj,
                    &qat
                ],
                "{kver}"
            );
            assert!(c.modules.iter().all(|m| m.strip), "{kver}");
            assert_eq!(c.build_exclusive_kernel, None, "{kver}");
        }
        std::fs::write(
            &cfg,
            "ZFS_DKMS_DISABLE_STRIP=YES\nZFS_DKMS_ENABLE_DEBUGINFO=y\n",
        )
        .unwrap();
        let v = kernel_tree(t.path(), "6.1.12-arch1-1", None, false);
        let c = by_bash(&dir, &v);
        assert!(c.modules.iter().all(|m| !m.strip));
        assert_eq!(
            words(c.pre_build.as_deref()).last().map(String::as_str),
            Some("--enable-debuginfo")
        );
    }

    #[test]
    fn read_turns_to_bash_only_when_the_builtin_reader_is_inexact() {
        let t = tempfile::tempdir().unwrap();
        let v = kernel_tree(t.path(), "6.1.0-13-amd64", None, true);
        let zfs = conf_dir(
            t.path(),
            "zfs-2.1.11",
            &dkms_conf_fixture("debian-zfs-2.1.11.conf"),
        );
        let c = read(&zfs, &v).unwrap();
        assert!(c.read_by_bash);
        assert_eq!(c, by_bash(&zfs, &v));
        let [linux, _] = with_linux(&v, true);
        assert!(words(c.pre_build.as_deref()).contains(&linux));
        let plain = conf_dir(t.path(), "acpi_call-1.1.0", ACPI_CALL);
        let c = read(&plain, &v).unwrap();
        assert!(!c.read_by_bash);
        assert_eq!(c.package_version, "1.1.0");
    }

    #[test]
    fn bash_failures_are_errors_that_say_why() {
        let t = tempfile::tempdir().unwrap();
        let v = kernel_tree(t.path(), "6.1.0-13-amd64", None, false);
        // A file that exits: dkms would read nothing back.
        let d = conf_dir(
            t.path(),
            "gone-1.0",
            "PACKAGE_NAME=gone\necho oops >&2\nexit 3\n",
        );
        let e = parse_with_bash(Path::new(BASH), &d, &v).unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid, "{e}");
        assert!(e.to_string().contains("oops"), "{e}");
        // Values that come out wrong are refused as dkms refuses them.
        let d = conf_dir(
            t.path(),
            "bad-1.0",
            "PACKAGE_NAME=bad\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=$(echo bad.ko)\nDEST_MODULE_LOCATION[0]=/extra\n",
        );
        let e = parse_with_bash(Path::new(BASH), &d, &v).unwrap_err();
        assert!(e.to_string().contains("ends in .o or .ko"), "{e}");
        // What bash says on stderr becomes a warning.
        let d = conf_dir(
            t.path(),
            "noisy-1.0",
            "PACKAGE_NAME=noisy\nPACKAGE_VERSION=1.0\nBUILT_MODULE_NAME[0]=noisy\nDEST_MODULE_LOCATION[0]=/extra\nno-such-command-rtool\n",
        );
        let c = by_bash(&d, &v);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("no-such-command-rtool")),
            "{:?}",
            c.warnings
        );
        // No such bash.
        let e = parse_with_bash(Path::new("/nonexistent/bash"), &d, &v).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bash"), "{e}");
    }

    /// Debian's dkms 3.0.10 itself: its `read_conf` and the functions it calls, taken from
    /// /usr/sbin/dkms and run on the file. It prints what dkms holds afterwards, including
    /// the make command as `actual_build` turns it (line 1081), as NUL-separated triples.
    const REAL_DKMS_READ_CONF: &str = r#"
dkms=$1 kver=$2 arch=$3
shopt -s extglob
eval "$(sed -n '/^readonly dkms_conf_variables=/,/"$/p' "$dkms")"
eval "$(sed -n -e '/^error() (/,/^)/p' -e '/^warn() (/,/^)/p' -e '/^deprecated() (/,/^)/p' \
    -e '/^die() {/,/^}/p' -e '/^mktemp_or_die() {/,/^}/p' -e '/^_get_kernel_dir() {/,/^}/p' \
    -e '/^set_kernel_source_dir_and_kconfig()/,/^}/p' \
    -e '/^override_dest_module_location()/,/^}/p' \
    -e '/^safe_source() {/,/^}/p' -e '/^read_conf()/,/^}/p' "$dkms")"
for f in read_conf safe_source set_kernel_source_dir_and_kconfig override_dest_module_location; do
    declare -F "$f" >/dev/null || { echo "no function $f in $dkms" >&2; exit 3; }
done
[[ $dkms_conf_variables == *PACKAGE_NAME* ]] || { echo "no dkms_conf_variables in $dkms" >&2; exit 3; }
current_os=Linux running_distribution=arch ksourcedir_fromcli=1
kernel_source_dir=$4 dkms_tree=$5 source_tree=$6 install_tree=/lib/modules
module=$7 module_version=$8 parallel_jobs=${10}
read_conf "$kver" "$arch" "$9" || { echo "read_conf failed" >&2; exit 4; }
the_make_command="${make_command/#make/make -j4 KERNELRELEASE=$kver}"
for _v in package_name package_version CLEAN pre_build post_build pre_install post_install \
    post_add post_remove the_make_command built_module_name built_module_location \
    dest_module_name DEST_MODULE_LOCATION strip patch_array build_exclude \
    BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_ARCH BUILD_EXCLUSIVE_CONFIG AUTOINSTALL; do
    eval 'for _i in "${!'$_v'[@]}"; do printf "%s\0%s\0%s\0" "$_v" "$_i" "${'$_v'[$_i]}"; done'
done
"#;

    type Held = HashMap<String, BTreeMap<u64, String>>;

    fn real_dkms_read_conf(dir: &Path, v: &Vars, module: &str, version: &str) -> Held {
        let out = std::process::Command::new(BASH)
            .arg("-c")
            .arg(REAL_DKMS_READ_CONF)
            .arg("dkms-read-conf")
            .arg("/usr/sbin/dkms")
            .arg(&v.kernelver)
            .arg(&v.arch)
            .arg(&v.kernel_source_dir)
            .arg(&v.dkms_tree)
            .arg(&v.source_tree)
            .arg(module)
            .arg(version)
            .arg(dir.join("dkms.conf"))
            // dkms's top level sets it (line 2532); the built-in reader counts the same CPUs.
            .arg(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .to_string(),
            )
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Debian's dkms (`apt-get install dkms`) on {}: {}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut held = Held::new();
        let mut f = out.stdout.split(|b| *b == 0);
        while let (Some(n), Some(i), Some(val)) = (f.next(), f.next(), f.next()) {
            held.entry(String::from_utf8_lossy(n).into_owned())
                .or_default()
                .insert(
                    String::from_utf8_lossy(i).parse().unwrap(),
                    String::from_utf8_lossy(val).into_owned(),
                );
        }
        held
    }

    #[test]
    fn bash_reads_every_fixture_as_debians_dkms_does() {
        let files = every_fixture_conf();
        for want in [
            "zfs-2.1.11",
            "zfs-2.1.9",
            "edge-1.0",
            "gpl-hello-1.0",
            "pre-build-1.0",
        ] {
            assert!(files.iter().any(|(d, _)| d == want), "{want} in {files:?}");
        }
        let t = tempfile::tempdir().unwrap();
        let kernels = [
            kernel_tree(t.path(), "6.1.0-13-amd64", None, false),
            kernel_tree(
                t.path(),
                "6.1.0-13-rt-amd64",
                Some("CONFIG_PREEMPT_RT=y\n"),
                true,
            ),
            kernel_tree(t.path(), "4.19.0-27-amd64", Some("CONFIG_SMP=y\n"), false),
        ];
        let mut compared = 0;
        for (dir_name, text) in &files {
            let dir = conf_dir(&t.path().join("src"), dir_name, text);
            let (module, version) = dir_name.rsplit_once('-').unwrap();
            for v in &kernels {
                let at = format!("{dir_name} for {}", v.kernelver);
                let dkms = real_dkms_read_conf(&dir, v, module, version);
                let one = |n: &str| {
                    dkms.get(n)
                        .and_then(|a| a.get(&0))
                        .cloned()
                        .unwrap_or_default()
                };
                let all = |n: &str| -> Vec<String> {
                    dkms.get(n)
                        .map(|a| a.values().cloned().collect())
                        .unwrap_or_default()
                };
                let c = by_bash(&dir, v);
                let opt = |o: &Option<String>| o.clone().unwrap_or_default();
                assert_eq!(c.package_name, one("package_name"), "{at}");
                assert_eq!(c.package_version, one("package_version"), "{at}");
                assert_eq!(opt(&c.clean), one("CLEAN"), "{at}");
                assert_eq!(opt(&c.pre_build), one("pre_build"), "{at}");
                assert_eq!(opt(&c.post_build), one("post_build"), "{at}");
                assert_eq!(opt(&c.pre_install), one("pre_install"), "{at}");
                assert_eq!(opt(&c.post_install), one("post_install"), "{at}");
                assert_eq!(opt(&c.post_add), one("post_add"), "{at}");
                assert_eq!(opt(&c.post_remove), one("post_remove"), "{at}");
                assert_eq!(
                    c.make_command(v, 4).unwrap(),
                    one("the_make_command"),
                    "{at}"
                );
                let field =
                    |f: fn(&Module) -> String| -> Vec<String> { c.modules.iter().map(f).collect() };
                assert_eq!(
                    field(|m| m.built_name.clone()),
                    all("built_module_name"),
                    "{at}"
                );
                assert_eq!(
                    field(|m| m.built_location.clone()),
                    all("built_module_location"),
                    "{at}"
                );
                assert_eq!(
                    field(|m| m.dest_name.clone()),
                    all("dest_module_name"),
                    "{at}"
                );
                assert_eq!(
                    field(|m| m.dest_location.clone()),
                    all("DEST_MODULE_LOCATION"),
                    "{at}"
                );
                // dkms strips unless strip[i] is "no" (line 1110); unset strips too.
                let strip = dkms.get("strip").cloned().unwrap_or_default();
                for (i, m) in c.modules.iter().enumerate() {
                    let theirs = strip.get(&(i as u64)).is_none_or(|s| s != "no");
                    assert_eq!(m.strip, theirs, "{at}: STRIP[{i}]");
                }
                let patches: Vec<String> = c
                    .patches
                    .iter()
                    .filter(|p| {
                        p.kernel_match
                            .as_ref()
                            .is_none_or(|re| exclusive_kernel_matches(re, &v.kernelver).unwrap())
                    })
                    .map(|p| p.file.clone())
                    .collect();
                assert_eq!(patches, all("patch_array"), "{at}");
                assert_eq!(
                    opt(&c.build_exclusive_kernel),
                    one("BUILD_EXCLUSIVE_KERNEL"),
                    "{at}"
                );
                assert_eq!(
                    opt(&c.build_exclusive_arch),
                    one("BUILD_EXCLUSIVE_ARCH"),
                    "{at}"
                );
                assert_eq!(
                    opt(&c.build_exclusive_config),
                    one("BUILD_EXCLUSIVE_CONFIG"),
                    "{at}"
                );
                if c.build_exclusive_config.is_none() {
                    assert_eq!(
                        c.build_excluded(v).unwrap().is_some(),
                        one("build_exclude") == "yes",
                        "{at}"
                    );
                }
                // dkms 3.0 autoinstalls for any non-empty AUTOINSTALL; the fixtures say yes.
                assert_eq!(c.autoinstall, !one("AUTOINSTALL").is_empty(), "{at}");
                compared += 1;
            }
        }
        assert_eq!(compared, files.len() * kernels.len());
    }

    #[test]
    fn extglob_and_the_second_expansion_are_dkmss() {
        let t = tempfile::tempdir().unwrap();
        let dir = conf_dir(
            t.path(),
            "edge-1.0",
            &dkms_conf_fixture("rtool-edge-1.0.conf"),
        );
        let new = kernel_tree(t.path(), "6.1.0-13-amd64", None, true);
        let c = by_bash(&dir, &new);
        assert_eq!(
            c.make,
            [format!(
                "make -C {} M={}/edge/1.0/build NEW=1",
                new.kernel_source_dir, new.dkms_tree
            )]
        );
        // POST_INSTALL is echoed back after POST_BUILD: empty when POST_BUILD is expanded.
        assert_eq!(c.post_build.as_deref(), Some("post.sh edge 1.0 []"));
        assert_eq!(c.post_install.as_deref(), Some("inst.sh"));
        assert_eq!(
            words(c.pre_build.as_deref()),
            [
                "prep.sh".to_string(),
                "--arch=x86_64".to_string(),
                format!("--config={}/.config", new.kernel_source_dir)
            ]
        );
        assert_eq!(c.clean.as_deref(), Some("make clean SOURCE=yes"));
        let strip: Vec<bool> = c.modules.iter().map(|m| m.strip).collect();
        assert_eq!(strip, [false, false, true], "STRIP[1] follows STRIP[0]");
        assert_eq!(c.modules[2].dest_location, "/kernel/drivers/misc");
        assert_eq!(c.modules[2].dest_name, "edge_renamed");
        let old = kernel_tree(t.path(), "4.19.0-27-amd64", None, false);
        let c = by_bash(&dir, &old);
        assert_eq!(c.make, ["make OLD=1"]);
        assert_eq!(c.clean, None);
    }
}
