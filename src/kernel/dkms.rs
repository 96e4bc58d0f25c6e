//! `dkms.conf` as dkms 3 reads it, and OpenZFS's `META` kernel range.
//!
//! dkms sources `dkms.conf` with bash. rtool must not run bash, so this is a small interpreter
//! for what real files contain: plain and array assignments, quoting, line continuations and
//! `$var`/`${var}` expansion. It also copies how dkms reads the result back. `safe_source`
//! (/usr/sbin/dkms 3.0.10, lines 407-437) echoes every value *unquoted* into a temporary file
//! and sources that file again. So dkms joins every value's words with single spaces, then
//! expands the value a second time inside double quotes. This module does the same. Line
//! numbers in this file's comments are those of Debian's /usr/sbin/dkms 3.0.10. dkms 3.2 is
//! cited where it differs.
//!
//! Whatever needs bash is never guessed: command substitution, `if`/`for`/`case`, functions,
//! `&&` lists, unknown variables. Such a construct is an error when it touches a value that
//! says what is built and how (name, version, make command, module list, patches). Elsewhere
//! it is a warning, and the directive is listed in [`Conf::inexact`]: `BUILD_EXCLUSIVE_*`,
//! `AUTOINSTALL`, the build scripts, `STRIP`. `$(nproc)` is the one command whose output is
//! known: it is the CPU count.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// The variables dkms makes available while it sources `dkms.conf` (`read_conf`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    pub kernelver: String,
    pub kernel_source_dir: String,
    pub dkms_tree: String,
    pub source_tree: String,
    pub arch: String,
}

impl Vars {
    /// dkms's defaults for kernel `kver`. The source dir is `/lib/modules/KVER/build`
    /// (`_get_kernel_dir`, line 59), the trees are `/var/lib/dkms` and `/usr/src` (lines
    /// 2316-2317). Arch's `/lib` is a link to `usr/lib`, so the paths hold there too.
    pub fn for_kernel(kver: &str, arch: &str) -> Vars {
        Vars {
            kernelver: kver.to_string(),
            kernel_source_dir: format!("/lib/modules/{kver}/build"),
            dkms_tree: "/var/lib/dkms".to_string(),
            source_tree: "/usr/src".to_string(),
            arch: arch.to_string(),
        }
    }
}

/// Where dkms installs modules on Arch. dkms ignores `DEST_MODULE_LOCATION` there:
/// `override_dest_module_location` returns `/updates/dkms` for `arch*` (lines 372-395).
pub const ARCH_DEST_LOCATION: &str = "/updates/dkms";

/// One module record of `dkms.conf`, with dkms's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// `BUILT_MODULE_NAME[i]`, without `.ko`. Defaults to `PACKAGE_NAME` when there is a
    /// single record.
    pub built_name: String,
    /// `BUILT_MODULE_LOCATION[i]`, relative to the build directory. It ends in `/` unless it
    /// is empty, as dkms makes it.
    pub built_location: String,
    /// `DEST_MODULE_LOCATION[i]` as written. It starts with `/kernel`, `/updates` or `/extra`.
    /// On Arch, dkms installs to [`ARCH_DEST_LOCATION`] anyway.
    pub dest_location: String,
    /// `DEST_MODULE_NAME[i]`. Defaults to `built_name`.
    pub dest_name: String,
    /// `STRIP[i]`: dkms runs `strip -g` on the module unless this is off.
    pub strip: bool,
}

impl Module {
    /// Where the build leaves the module, relative to the build directory.
    pub fn built_path(&self) -> String {
        format!("{}{}.ko", self.built_location, self.built_name)
    }
}

/// `PATCH[i]` and `PATCH_MATCH[i]`: a file under `patches/`, applied with `-p1` when the
/// kernel matches (or always, without a match).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patch {
    pub file: String,
    pub kernel_match: Option<String>,
}

/// A `dkms.conf` as dkms 3 understands it, after expansion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    pub package_name: String,
    pub package_version: String,
    /// `MAKE[0]`, `MAKE[1]`, … (plain `MAKE=` is `MAKE[0]`). A hole in the array is "".
    /// Empty means dkms's default command; see [`Conf::make_command`].
    pub make: Vec<String>,
    /// `MAKE_MATCH[i]`: the kernel regex that selects `MAKE[i]`, indexed like `make`.
    pub make_match: Vec<String>,
    /// `CLEAN`. dkms 3.0 runs it before the build. dkms 3.1 and later ignore it.
    pub clean: Option<String>,
    pub pre_build: Option<String>,
    pub post_build: Option<String>,
    pub post_add: Option<String>,
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub post_remove: Option<String>,
    pub modules: Vec<Module>,
    /// `BUILD_EXCLUSIVE_KERNEL`: a bash `=~` ERE, see [`exclusive_kernel_matches`].
    pub build_exclusive_kernel: Option<String>,
    pub build_exclusive_arch: Option<String>,
    /// `BUILD_EXCLUSIVE_CONFIG`: `CONFIG_X` / `!CONFIG_X` words, checked against the kernel's
    /// `.config`.
    pub build_exclusive_config: Option<String>,
    /// `BUILD_EXCLUSIVE_KERNEL_MIN` / `_MAX` (dkms 3.1 and later).
    pub build_exclusive_kernel_min: Option<String>,
    pub build_exclusive_kernel_max: Option<String>,
    /// `BUILD_DEPENDS[*]`: modules that must be built first.
    pub build_depends: Vec<String>,
    pub patches: Vec<Patch>,
    pub autoinstall: bool,
    /// Things a person should know: a placeholder version taken from the directory name,
    /// shell constructs that were not run, deprecated directives.
    pub warnings: Vec<String>,
    /// Directives whose value needed bash to be exact (e.g. `PRE_BUILD`, `STRIP[3]`). Their
    /// value here has the unevaluated parts taken as empty, and `warnings` says which parts.
    pub inexact: Vec<String>,
    /// Whether bash read the file (as dkms does) because the built-in reader could not.
    pub read_by_bash: bool,
}

/// Reads `dir/dkms.conf`. The directory name (`zfs-2.1.9`) supplies the version when the file
/// has the `#MODULE_VERSION#` placeholder.
///
/// The built-in reader comes first. When it cannot give every value exactly (command
/// substitution, `if`, `[[ ]]`, `source`: OpenZFS's file has all of them), the file is read by
/// bash itself, the way dkms reads it ([`parse_with_bash`]), if bash is installed. Without
/// bash, the built-in reader's answer stands: its warnings, or its error naming the line.
pub fn read(dir: &Path, vars: &Vars) -> Result<Conf> {
    let path = dir.join("dkms.conf");
    let bytes = std::fs::read(&path).at(&path)?;
    let text = String::from_utf8_lossy(&bytes);
    let dir_name = dir.file_name().and_then(|n| n.to_str());
    let builtin = parse(&text, vars, dir_name);
    if matches!(&builtin, Ok(c) if c.inexact.is_empty()) {
        return builtin.map_err(|e| e.context(format!("reading {}", path.display())));
    }
    match crate::sys::which("bash") {
        Some(bash) => parse_with_bash(&bash, dir, vars)
            .map_err(|e| e.context(format!("reading {} with bash", path.display()))),
        None => builtin.map_err(|e| {
            e.context(format!("reading {}", path.display())).hint(
                "install bash: dkms.conf is a bash script, and this one needs bash to be read",
            )
        }),
    }
}

/// The script that reads a `dkms.conf` as dkms 3 does: `read_conf` sets `kernelver`, `arch`,
/// `kernel_source_dir`, `kernel_config`, `dkms_tree`, `source_tree`, `install_tree`,
/// `module` and `module_version`, unsets the directives, and `safe_source` (lines 407-431)
/// sources the file in a subshell, echoes every directive back unquoted into a file and
/// sources that. Instead of a file, the echoes are captured and evaluated. The result is
/// printed as NUL-separated (name, index, value) triples, which no bash value can break.
/// dkms turns on `extglob` at its top (line 23), so patterns like `@(5|6).*` parse.
const BASH_READER: &str = r#"
shopt -s extglob
kernelver=$1 arch=$2 kernel_source_dir=$3 dkms_tree=$4 source_tree=$5
install_tree=$6 module=$7 module_version=$8 _rtool_conf=$9
kernel_config=$kernel_source_dir/.config
shift 9
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
    let mut conf = build_conf(warnings, dk, dir_name)?;
    conf.read_by_bash = true;
    Ok(conf)
}

/// Parses the text of a `dkms.conf` the way dkms 3 sources it for the kernel in `vars`.
pub fn parse(text: &str, vars: &Vars, dir_name: Option<&str>) -> Result<Conf> {
    let mut warnings = Vec::new();
    // Files written on Windows: bash keeps the CR in every value. dkms 3.2 strips it from
    // the end of each value (`%$CR` in safe_source). Reading CRLF as LF gives the same
    // values.
    let text = if text.contains("\r\n") {
        warnings.push("dkms.conf has CRLF line endings; read as LF".to_string());
        std::borrow::Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let module = dir_name
        .and_then(|d| d.rsplit_once('-'))
        .map(|(m, v)| (m.to_string(), v.to_string()));
    let mut sh = Shell {
        vars,
        module,
        assigned: HashMap::new(),
        warnings,
    };
    sh.run(&text)?;
    let exported = sh.reread();
    build_conf(sh.warnings, exported, dir_name)
}

/// Whether kernel release `kver` matches `BUILD_EXCLUSIVE_KERNEL` (or `MAKE_MATCH`,
/// `PATCH_MATCH`). dkms tests these with bash's `[[ $kver =~ $pattern ]]`, an unanchored
/// POSIX ERE search. A pattern this engine does not support is an error, never a guess.
/// (For an invalid pattern, bash's test fails, and dkms then excludes the module.)
pub fn exclusive_kernel_matches(pattern: &str, kver: &str) -> Result<bool> {
    let re = ere::Regex::new(pattern)
        .map_err(|m| Error::invalid(format!("regular expression {pattern:?}: {m}")))?;
    Ok(re.is_match(kver))
}

impl Conf {
    /// The make command dkms runs for `vars.kernelver`. It chooses like `read_conf` (lines
    /// 586-594): `MAKE[0]` unless `MAKE_MATCH[0]` is set, then the last `MAKE[i]` whose
    /// `MAKE_MATCH[i]` matches. The fallback is `make -C $kernel_source_dir
    /// M=$dkms_tree/$module/$version/build`. Then a leading `make` becomes `make -jJOBS
    /// KERNELRELEASE=$kernelver` (line 1081); `jobs` 0 gives a bare `-j`, as dkms does.
    /// dkms appends `CC=clang`/`LD=ld.lld` (3.0) or `LLVM=1` (3.2) for a clang-built
    /// kernel. That depends on the kernel, so it is not done here.
    pub fn make_command(&self, vars: &Vars, jobs: u32) -> Result<String> {
        let get = |v: &Vec<String>, i: usize| v.get(i).cloned().unwrap_or_default();
        let mut cmd = if get(&self.make_match, 0).is_empty() {
            get(&self.make, 0)
        } else {
            String::new()
        };
        for (i, m) in self.make.iter().enumerate() {
            let pat = get(&self.make_match, i);
            if !m.is_empty() && !pat.is_empty() && exclusive_kernel_matches(&pat, &vars.kernelver)?
            {
                cmd = m.clone();
            }
        }
        if cmd.is_empty() {
            cmd = format!(
                "make -C {} M={}/{}/{}/build",
                vars.kernel_source_dir, vars.dkms_tree, self.package_name, self.package_version
            );
        }
        Ok(match cmd.strip_prefix("make") {
            Some(rest) => {
                let j = if jobs == 0 {
                    String::new()
                } else {
                    jobs.to_string()
                };
                format!("make -j{j} KERNELRELEASE={}{rest}", vars.kernelver)
            }
            None => cmd,
        })
    }

    /// Why dkms would skip this module for `vars` (its exit 77), or `None`. Checks
    /// `BUILD_EXCLUSIVE_KERNEL` and `BUILD_EXCLUSIVE_ARCH` (lines 624-625). `_CONFIG` needs
    /// the kernel's `.config`, and `_KERNEL_MIN`/`_MAX` dkms 3.1's version order, so they
    /// are left to the caller. An error when either directive needed bash to be known
    /// (v4l2loopback sets BUILD_EXCLUSIVE_KERNEL inside an `if`): the answer is unknown.
    pub fn build_excluded(&self, vars: &Vars) -> Result<Option<String>> {
        for d in ["BUILD_EXCLUSIVE_KERNEL", "BUILD_EXCLUSIVE_ARCH"] {
            if self.inexact.iter().any(|i| i == d) {
                return Ok(Some(format!(
                    "{d} depends on shell code that only bash can run (bash is not installed), so whether dkms would build it for {} is unknown",
                    vars.kernelver
                )));
            }
        }
        if let Some(re) = &self.build_exclusive_kernel {
            if !exclusive_kernel_matches(re, &vars.kernelver)? {
                return Ok(Some(format!(
                    "BUILD_EXCLUSIVE_KERNEL {re:?} does not match kernel {}",
                    vars.kernelver
                )));
            }
        }
        if let Some(re) = &self.build_exclusive_arch {
            if !exclusive_kernel_matches(re, &vars.arch)? {
                return Ok(Some(format!(
                    "BUILD_EXCLUSIVE_ARCH {re:?} does not match architecture {}",
                    vars.arch
                )));
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// What dkms reads back

/// The variables `safe_source` echoes back. Order matters, because the second expansion sees
/// only the earlier ones: dkms 3.0.10's `dkms_conf_variables` (lines 28-40), then the
/// variables dkms 3.2 added.
const CONF_VARIABLES: [&str; 43] = [
    "CLEAN",
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "POST_ADD",
    "POST_BUILD",
    "POST_INSTALL",
    "POST_REMOVE",
    "PRE_BUILD",
    "PRE_INSTALL",
    "BUILD_DEPENDS",
    "BUILD_EXCLUSIVE_KERNEL",
    "BUILD_EXCLUSIVE_ARCH",
    "BUILD_EXCLUSIVE_CONFIG",
    "build_exclude",
    "OBSOLETE_BY",
    "MAKE",
    "MAKE_MATCH",
    "PATCH",
    "PATCH_MATCH",
    "patch_array",
    "BUILT_MODULE_NAME",
    "built_module_name",
    "BUILT_MODULE_LOCATION",
    "built_module_location",
    "DEST_MODULE_NAME",
    "dest_module_name",
    "DEST_MODULE_LOCATION",
    "dest_module_location",
    "STRIP",
    "strip",
    "AUTOINSTALL",
    "NO_WEAK_MODULES",
    "SIGN_FILE",
    "MOK_SIGNING_KEY",
    "MOK_CERTIFICATE",
    "REMAKE_INITRD",
    "MODULES_CONF",
    "MODULES_CONF_OBSOLETES",
    "MODULES_CONF_ALIAS_TYPE",
    "MODULES_CONF_OBSOLETE_ONLY",
    "BUILD_EXCLUSIVE_KERNEL_MIN",
    "BUILD_EXCLUSIVE_KERNEL_MAX",
    "BUILD_DEPENDS_REBUILD",
];

/// Directives that say what is built and how: if bash would be needed to know one of them,
/// the file is refused. The others (`BUILD_EXCLUSIVE_*`, `AUTOINSTALL`, scripts, `STRIP`)
/// become warnings and are listed in [`Conf::inexact`].
const NEEDED: [&str; 10] = [
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "MAKE",
    "MAKE_MATCH",
    "BUILT_MODULE_NAME",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "PATCH",
    "PATCH_MATCH",
];

/// dkms 3.0 only warns about these ("Deprecated feature", line 125), then ignores them.
const DEPRECATED: [&str; 5] = [
    "REMAKE_INITRD",
    "MODULES_CONF",
    "MODULES_CONF_OBSOLETES",
    "MODULES_CONF_ALIAS_TYPE",
    "MODULES_CONF_OBSOLETE_ONLY",
];

/// dkms's own working arrays: a file that sets them changes dkms's internals.
const INTERNAL: [&str; 7] = [
    "build_exclude",
    "patch_array",
    "built_module_name",
    "built_module_location",
    "dest_module_name",
    "dest_module_location",
    "strip",
];

const PLACEHOLDER: &str = "#MODULE_VERSION#";

const NEEDS_BASH: &str = "this dkms.conf needs bash to be read: build the module with dkms itself inside the installed system (arch-chroot), or simplify the file";

fn build_conf(
    mut warnings: Vec<String>,
    dk: HashMap<&'static str, Array>,
    dir_name: Option<&str>,
) -> Result<Conf> {
    let mut inexact = Vec::new();

    for name in CONF_VARIABLES {
        let Some(arr) = dk.get(name) else { continue };
        for (i, v) in arr {
            let label = label(name, arr, *i);
            for why in &v.unknown {
                if NEEDED.contains(&name) {
                    return Err(Error::invalid(format!(
                        "dkms.conf line {}: {label} depends on {why}, which rtool cannot evaluate without bash",
                        v.line
                    ))
                    .hint(NEEDS_BASH));
                }
                warnings.push(format!(
                    "line {}: {label}: {why} was not evaluated; it counts as empty",
                    v.line
                ));
            }
            if !v.unknown.is_empty() && !inexact.contains(&label) {
                inexact.push(label.clone());
            }
            if name != "PACKAGE_VERSION" && v.text.contains(PLACEHOLDER) {
                warnings.push(format!(
                    "line {}: {label} contains the placeholder {PLACEHOLDER}; dkms passes it on unchanged",
                    v.line
                ));
            }
        }
        if DEPRECATED.contains(&name) {
            warnings.push(format!("{name} is deprecated; dkms 3 ignores it"));
        }
        if INTERNAL.contains(&name) {
            warnings.push(format!(
                "dkms.conf sets {name}, one of dkms's internal variables"
            ));
        }
    }

    let scalar = |name: &str| -> Option<String> {
        dk.get(name)
            .and_then(|a| a.get(&0))
            .map(|v| v.text.clone())
            .filter(|s| !s.is_empty())
    };
    let at = |name: &str, i: u64| -> String {
        dk.get(name)
            .and_then(|a| a.get(&i))
            .map(|v| v.text.clone())
            .unwrap_or_default()
    };
    let dense = |name: &str| -> Vec<String> {
        let Some(arr) = dk.get(name) else {
            return Vec::new();
        };
        let Some(max) = arr.keys().next_back() else {
            return Vec::new();
        };
        let mut v: Vec<String> = (0..=*max).map(|i| at(name, i)).collect();
        while v.last().is_some_and(|s| s.is_empty()) {
            v.pop();
        }
        v
    };

    // read_conf: PACKAGE_NAME and PACKAGE_VERSION are required (lines 642-652).
    let Some(package_name) = scalar("PACKAGE_NAME") else {
        return Err(Error::invalid("dkms.conf: no PACKAGE_NAME directive"));
    };
    let Some(mut package_version) = scalar("PACKAGE_VERSION") else {
        return Err(Error::invalid("dkms.conf: no PACKAGE_VERSION directive"));
    };
    if package_version == PLACEHOLDER {
        // dh_dkms replaces the placeholder when it builds a Debian package. Arch packages
        // keep it. dkms then never needs it: the Arch hook takes module and version from
        // the directory name (`usr/src/<m>-<v>/`), and so does this.
        let Some(dir) = dir_name else {
            return Err(Error::invalid(format!(
                "dkms.conf: PACKAGE_VERSION is the placeholder {PLACEHOLDER}, and there is no directory name to take the version from"
            )));
        };
        let from_dir = dir
            .strip_prefix(&format!("{package_name}-"))
            .or_else(|| dir.rsplit_once('-').map(|(_, v)| v))
            .filter(|v| !v.is_empty());
        let Some(v) = from_dir else {
            return Err(Error::invalid(format!(
                "dkms.conf: PACKAGE_VERSION is the placeholder {PLACEHOLDER}, and the directory name {dir:?} has no -VERSION suffix"
            )));
        };
        warnings.push(format!(
            "PACKAGE_VERSION is the placeholder {PLACEHOLDER}; using {v} from the directory name {dir}"
        ));
        package_version = v.to_string();
    }

    let modules = modules(&dk, &package_name)?;

    // AUTOINSTALL: dkms 3.0 autoinstalls for any non-empty value (`[[ ! $AUTOINSTALL ]]`,
    // line 2225). dkms 3.1 and later accept only "yes" and "no" and refuse anything else.
    let autoinstall = match scalar("AUTOINSTALL") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("yes") => true,
        Some(v) if v.eq_ignore_ascii_case("no") => {
            warnings.push(format!(
                "AUTOINSTALL=\"{v}\": dkms 3.1 and later read this as off (as here); dkms 3.0 autoinstalls for any non-empty value"
            ));
            false
        }
        Some(v) => {
            warnings.push(format!(
                "AUTOINSTALL=\"{v}\": dkms 3.0 autoinstalls for any non-empty value (as here); dkms 3.1 and later refuse anything but yes or no"
            ));
            true
        }
    };

    let clean = scalar("CLEAN");
    if let Some(c) = &clean {
        if !matches!(c.as_str(), "true" | "/bin/true" | "/usr/bin/true") {
            warnings.push(
                "CLEAN is deprecated: dkms 3.0 runs it before the build, dkms 3.1 and later ignore it"
                    .to_string(),
            );
        }
    }

    let make_match = dense("MAKE_MATCH");
    let patch_match = dense("PATCH_MATCH");
    let patches = dense("PATCH")
        .into_iter()
        .enumerate()
        .filter(|(_, f)| !f.is_empty())
        .map(|(i, file)| Patch {
            file,
            kernel_match: patch_match.get(i).filter(|m| !m.is_empty()).cloned(),
        })
        .collect();
    let build_depends = dk
        .get("BUILD_DEPENDS")
        .map(|a| {
            a.values()
                .map(|v| v.text.clone())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();

    Ok(Conf {
        package_name,
        package_version,
        make: dense("MAKE"),
        make_match,
        clean,
        pre_build: scalar("PRE_BUILD"),
        post_build: scalar("POST_BUILD"),
        post_add: scalar("POST_ADD"),
        pre_install: scalar("PRE_INSTALL"),
        post_install: scalar("POST_INSTALL"),
        post_remove: scalar("POST_REMOVE"),
        modules,
        build_exclusive_kernel: scalar("BUILD_EXCLUSIVE_KERNEL"),
        build_exclusive_arch: scalar("BUILD_EXCLUSIVE_ARCH"),
        build_exclusive_config: scalar("BUILD_EXCLUSIVE_CONFIG"),
        build_exclusive_kernel_min: scalar("BUILD_EXCLUSIVE_KERNEL_MIN"),
        build_exclusive_kernel_max: scalar("BUILD_EXCLUSIVE_KERNEL_MAX"),
        build_depends,
        patches,
        autoinstall,
        warnings,
        inexact,
        read_by_bash: false,
    })
}

/// `NAME` for a plain scalar, `NAME[i]` for an array element.
fn label(name: &str, arr: &Array, i: u64) -> String {
    if i == 0 && arr.len() == 1 {
        name.to_string()
    } else {
        format!("{name}[{i}]")
    }
}

/// The module records, with read_conf's defaults and checks (lines 503-583). The record count
/// is the highest index plus one, as in dkms 3.2. dkms 3.0 counts the elements instead,
/// which is the same for dense arrays.
fn modules(dk: &HashMap<&'static str, Array>, package_name: &str) -> Result<Vec<Module>> {
    const ARRAYS: [&str; 4] = [
        "BUILT_MODULE_NAME",
        "BUILT_MODULE_LOCATION",
        "DEST_MODULE_NAME",
        "DEST_MODULE_LOCATION",
    ];
    let at = |name: &str, i: u64| -> String {
        dk.get(name)
            .and_then(|a| a.get(&i))
            .map(|v| v.text.clone())
            .unwrap_or_default()
    };
    let count = ARRAYS
        .iter()
        .filter_map(|n| dk.get(n).and_then(|a| a.keys().next_back()).map(|k| k + 1))
        .max()
        .unwrap_or(0);
    if count == 0 {
        // dkms 3.0 refuses a file without modules (line 637); 3.2 only warns.
        return Err(Error::invalid(
            "dkms.conf: no module records (no DEST_MODULE_LOCATION directive)",
        ));
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut strip0: Option<bool> = None;
    for i in 0..count {
        let mut built_name = at("BUILT_MODULE_NAME", i);
        if built_name.is_empty() && count == 1 {
            built_name = package_name.to_string();
        }
        let mut dest_name = at("DEST_MODULE_NAME", i);
        if dest_name.is_empty() {
            dest_name = built_name.clone();
        }
        let mut built_location = at("BUILT_MODULE_LOCATION", i);
        if !built_location.is_empty() && !built_location.ends_with('/') {
            built_location.push('/');
        }
        let dest_location = at("DEST_MODULE_LOCATION", i);
        // STRIP: n… is off, y… is on, empty follows record 0 (default on); anything else
        // leaves dkms's `strip[i]` unset, which strips.
        let strip = match at("STRIP", i).chars().next() {
            Some('n' | 'N') => false,
            Some('y' | 'Y') => true,
            None => strip0.unwrap_or(true),
            Some(_) => true,
        };
        if i == 0 {
            strip0 = Some(strip);
        }

        if built_name.is_empty() {
            problems.push(format!("no BUILT_MODULE_NAME for record #{i}"));
        }
        if built_name.ends_with(".o") || built_name.ends_with(".ko") {
            problems.push(format!(
                "BUILT_MODULE_NAME ends in .o or .ko in record #{i}"
            ));
        }
        if dest_name.ends_with(".o") || dest_name.ends_with(".ko") {
            problems.push(format!("DEST_MODULE_NAME ends in .o or .ko in record #{i}"));
        }
        if dest_location.is_empty() {
            problems.push(format!("no DEST_MODULE_LOCATION for record #{i}"));
        } else if !["/kernel", "/updates", "/extra"]
            .iter()
            .any(|p| dest_location.starts_with(p))
        {
            problems.push(format!(
                "DEST_MODULE_LOCATION {dest_location:?} does not begin with /kernel, /updates or /extra in record #{i}"
            ));
        }
        out.push(Module {
            built_name,
            built_location,
            dest_location,
            dest_name,
            strip,
        });
    }
    if !problems.is_empty() {
        return Err(Error::invalid(format!(
            "dkms.conf: {}",
            problems.join("; ")
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The shell subset

/// A value after expansion: its text, the constructs that were not evaluated (each a short
/// description with its line), and the line it was assigned on.
#[derive(Clone, Debug, Default)]
struct Val {
    text: String,
    unknown: Vec<String>,
    line: usize,
}

/// A bash variable: every variable is an array, and `$X` is `${X[0]}`.
type Array = BTreeMap<u64, Val>;

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    Param(Param),
    /// Something only bash can evaluate: `$(…)`, backticks, `$((…))`, `$'…'`, an unsupported
    /// `${…}` form, `~`, positional parameters.
    Opaque {
        raw: String,
        what: &'static str,
    },
}

#[derive(Clone, Debug)]
struct Param {
    name: String,
    index: Index,
    op: Op,
    /// Written inside double quotes: no word splitting in an array list.
    quoted: bool,
    raw: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Index {
    None,
    /// `[@]` or `[*]`
    All,
    N(u64),
}

#[derive(Clone, Debug)]
enum Op {
    None,
    /// `${x:-word}` (colon: also when empty) and `${x-word}`
    Default {
        colon: bool,
        word: Vec<Part>,
    },
    /// `${x:+word}` and `${x+word}`
    Alt {
        colon: bool,
        word: Vec<Part>,
    },
}

#[derive(Debug)]
struct Assign {
    name: String,
    index: Option<u64>,
    append: bool,
    value: AValue,
    line: usize,
}

#[derive(Debug)]
enum AValue {
    Scalar(Vec<Part>),
    /// `NAME=(a [3]=b c)`
    List(Vec<(Option<u64>, Vec<Part>)>),
}

/// What a lookup found: the value, and whether the variable is set at all (`None`: nobody
/// knows without bash).
struct Looked {
    val: Val,
    set: Option<bool>,
}

struct Lexer {
    s: Vec<char>,
    pos: usize,
    /// Line of `s[0]` minus one: sub-lexers over `${…}` report the outer file's lines.
    line_base: usize,
    line_starts: Vec<usize>,
    /// Things worth a warning that the lexer settled itself (a CPU count).
    notes: Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Keeps quoted shell text short in a message.
fn clip(s: &str) -> String {
    const MAX: usize = 48;
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

impl Lexer {
    fn new(text: &str, line_base: usize) -> Self {
        let s: Vec<char> = text.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in s.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Lexer {
            s,
            pos: 0,
            line_base,
            line_starts,
            notes: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.s.get(self.pos + k).copied()
    }

    fn line_of(&self, pos: usize) -> usize {
        let idx = match self.line_starts.binary_search(&pos) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        self.line_base + idx + 1
    }

    fn line(&self) -> usize {
        self.line_of(self.pos)
    }

    fn slice(&self, from: usize, to: usize) -> String {
        self.s
            .get(from..to.min(self.s.len()))
            .map(|c| c.iter().collect())
            .unwrap_or_default()
    }

    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> Error {
        Error::invalid(format!("dkms.conf line {}: {msg}", self.line_of(pos)))
    }

    /// Blanks and backslash-newline continuations; not newlines.
    fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.pos += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                _ => return,
            }
        }
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                return;
            }
            self.pos += 1;
        }
    }

    fn at_word_end(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')')
        )
    }

    /// One unquoted shell word, up to an unquoted blank or operator.
    fn word(&mut self) -> Result<Vec<Part>> {
        self.word_until(false)
    }

    /// A word; `braced` is the word inside `${x:-…}`, where blanks are part of it.
    fn word_until(&mut self, braced: bool) -> Result<Vec<Part>> {
        let mut parts = Vec::new();
        let mut buf = String::new();
        let begin = self.pos;
        while let Some(c) = self.peek() {
            if !braced && self.at_word_end() {
                break;
            }
            match c {
                '\\' => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some(d) => {
                        buf.push(d);
                        self.pos += 2;
                    }
                    None => {
                        buf.push('\\');
                        self.pos += 1;
                    }
                },
                '\'' => {
                    let start = self.pos;
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.err(start, "unterminated single quote")),
                            Some('\'') => {
                                self.pos += 1;
                                break;
                            }
                            Some(d) => {
                                buf.push(d);
                                self.pos += 1;
                            }
                        }
                    }
                }
                '"' => {
                    flush(&mut buf, &mut parts);
                    self.dquote(&mut parts)?;
                }
                '$' => {
                    flush(&mut buf, &mut parts);
                    let p = self.dollar(false)?;
                    parts.push(p);
                }
                '`' => {
                    flush(&mut buf, &mut parts);
                    let p = self.backtick()?;
                    parts.push(p);
                }
                '~' if self.pos == begin && !braced => {
                    let start = self.pos;
                    self.pos += 1;
                    while self.peek().is_some_and(|c| is_name_char(c) || c == '-') {
                        self.pos += 1;
                    }
                    parts.push(Part::Opaque {
                        raw: self.slice(start, self.pos),
                        what: "tilde expansion",
                    });
                }
                _ => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut buf, &mut parts);
        Ok(parts)
    }

    /// `"…"`, starting at the quote.
    fn dquote(&mut self, parts: &mut Vec<Part>) -> Result<()> {
        let start = self.pos;
        self.pos += 1;
        let mut buf = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err(start, "unterminated double quote")),
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some(c @ ('$' | '`' | '"' | '\\')) => {
                        buf.push(c);
                        self.pos += 2;
                    }
                    _ => {
                        buf.push('\\');
                        self.pos += 1;
                    }
                },
                Some('$') => {
                    flush(&mut buf, parts);
                    let p = self.dollar(true)?;
                    parts.push(p);
                }
                Some('`') => {
                    flush(&mut buf, parts);
                    let p = self.backtick()?;
                    parts.push(p);
                }
                Some(c) => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut buf, parts);
        Ok(())
    }

    fn backtick(&mut self) -> Result<Part> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.err(start, "unterminated backquote")),
                Some('\\') => self.pos += 2,
                Some('`') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
            }
        }
        let raw = self.slice(start, self.pos);
        Ok(self.substitution(raw, 1, "command substitution"))
    }

    /// A `$(…)` or backquoted command. Only a CPU count is known without running it: `-j$(nproc)`
    /// is common in make commands, and the CPUs rtool sees are the ones the build will use.
    fn substitution(&mut self, raw: String, open: usize, what: &'static str) -> Part {
        let inner = raw
            .get(open..raw.len().saturating_sub(1))
            .unwrap_or_default()
            .trim();
        if what == "command substitution"
            && matches!(inner, "nproc" | "nproc --all" | "getconf _NPROCESSORS_ONLN")
        {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.notes.push(format!(
                "line {}: `{raw}` counts as {n}, the number of CPUs rtool sees",
                self.line_of(self.pos.saturating_sub(1))
            ));
            return Part::Text(n.to_string());
        }
        Part::Opaque { raw, what }
    }

    /// `$…`, starting at the dollar.
    fn dollar(&mut self, quoted: bool) -> Result<Part> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some('(') => {
                let arith = self.peek_at(1) == Some('(');
                let end = self.paren_end(self.pos + 1)?;
                self.pos = end + 1;
                let raw = self.slice(start, self.pos);
                Ok(if arith {
                    Part::Opaque {
                        raw,
                        what: "arithmetic expansion",
                    }
                } else {
                    self.substitution(raw, 2, "command substitution")
                })
            }
            Some('{') => self.braced(start, quoted),
            Some('\'') if !quoted => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => return Err(self.err(start, "unterminated $'…' quote")),
                        Some('\\') => self.pos += 2,
                        Some('\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                Ok(Part::Opaque {
                    raw: self.slice(start, self.pos),
                    what: "$'…' quoting",
                })
            }
            // $"…" is a translatable string: the same as "…" without a message catalogue.
            Some('"') if !quoted => Ok(Part::Text(String::new())),
            Some(c) if is_name_start(c) => {
                let from = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                let name = self.slice(from, self.pos);
                Ok(Part::Param(Param {
                    name,
                    index: Index::None,
                    op: Op::None,
                    quoted,
                    raw: self.slice(start, self.pos),
                }))
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                Ok(Part::Opaque {
                    raw: self.slice(start, self.pos),
                    what: "special parameter",
                })
            }
            _ => Ok(Part::Text("$".to_string())),
        }
    }

    /// The index of the `)` that closes a `$(` whose body starts at `from`. Quotes, nested
    /// substitutions and `case` patterns (`pattern)`, unbalanced) are respected.
    fn paren_end(&self, from: usize) -> Result<usize> {
        let mut depth = 1usize;
        let mut case_depth = 0usize;
        let mut i = from;
        let open = from.saturating_sub(2);
        while let Some(&c) = self.s.get(i) {
            match c {
                '\\' => i += 1,
                '\'' => {
                    i += 1;
                    while self.s.get(i).is_some_and(|&d| d != '\'') {
                        i += 1;
                    }
                    if i >= self.s.len() {
                        break;
                    }
                }
                '"' => {
                    i += 1;
                    while let Some(&d) = self.s.get(i) {
                        match d {
                            '\\' => i += 1,
                            '"' => break,
                            '$' if self.s.get(i + 1) == Some(&'(') => i = self.paren_end(i + 2)?,
                            _ => {}
                        }
                        i += 1;
                    }
                    if i >= self.s.len() {
                        break;
                    }
                }
                '`' => {
                    i += 1;
                    while let Some(&d) = self.s.get(i) {
                        match d {
                            '\\' => i += 1,
                            '`' => break,
                            _ => {}
                        }
                        i += 1;
                    }
                    if i >= self.s.len() {
                        break;
                    }
                }
                '$' if self.s.get(i + 1) == Some(&'(') => {
                    i = self.paren_end(i + 2)?;
                }
                '(' => depth += 1,
                ')' => {
                    if case_depth > 0 && depth == 1 {
                        // a `pattern)` of a case inside the substitution
                    } else {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i);
                        }
                    }
                }
                '#' if i == from
                    || self
                        .s
                        .get(i - 1)
                        .is_some_and(|p| p.is_whitespace() || *p == ';') =>
                {
                    while self.s.get(i).is_some_and(|&d| d != '\n') {
                        i += 1;
                    }
                    continue;
                }
                c if c.is_ascii_alphabetic()
                    && (i == from
                        || self
                            .s
                            .get(i - 1)
                            .is_some_and(|p| p.is_whitespace() || ";&|(".contains(*p))) =>
                {
                    let mut j = i;
                    while self.s.get(j).is_some_and(|d| is_name_char(*d)) {
                        j += 1;
                    }
                    let w: String = self.slice(i, j);
                    let ends = self
                        .s
                        .get(j)
                        .is_none_or(|d| d.is_whitespace() || ";&|)".contains(*d));
                    if ends && w == "case" {
                        case_depth += 1;
                    } else if ends && w == "esac" {
                        case_depth = case_depth.saturating_sub(1);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        Err(self.err(open, "unterminated $( … )"))
    }

    /// `${…}`, with the lexer at the brace.
    fn braced(&mut self, start: usize, quoted: bool) -> Result<Part> {
        // Find the matching brace, past quotes and nested `${`.
        let mut i = self.pos + 1;
        let mut depth = 1usize;
        loop {
            match self.s.get(i) {
                None => return Err(self.err(start, "unterminated ${")),
                Some('\\') => i += 1,
                Some('\'') if !quoted => {
                    i += 1;
                    while self.s.get(i).is_some_and(|&d| d != '\'') {
                        i += 1;
                    }
                }
                Some('"') => {
                    i += 1;
                    while self.s.get(i).is_some_and(|&d| d != '"') {
                        if self.s.get(i) == Some(&'\\') {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                Some('$') if self.s.get(i + 1) == Some(&'{') => {
                    depth += 1;
                    i += 1;
                }
                Some('}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Some(_) => {}
            }
            i += 1;
        }
        let inner = self.slice(self.pos + 1, i);
        self.pos = i + 1;
        let raw = self.slice(start, self.pos);
        let opaque = |what| {
            Ok(Part::Opaque {
                raw: raw.clone(),
                what,
            })
        };
        let chars: Vec<char> = inner.chars().collect();
        let Some(&first) = chars.first() else {
            return Err(self.err(start, format!("{raw}: bad substitution")));
        };
        if first == '#' && chars.len() > 1 {
            return opaque("string length `${#…}`");
        }
        if first == '!' {
            return opaque("indirect expansion `${!…}`");
        }
        if !is_name_start(first) {
            if first.is_ascii_digit() || "@*#?$!-".contains(first) {
                return opaque("special parameter");
            }
            return Err(self.err(start, format!("{raw}: bad substitution")));
        }
        let mut k = 0;
        while chars.get(k).is_some_and(|c| is_name_char(*c)) {
            k += 1;
        }
        let name: String = chars
            .get(..k)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let mut index = Index::None;
        if chars.get(k) == Some(&'[') {
            let Some(close) = chars.iter().skip(k).position(|c| *c == ']').map(|p| p + k) else {
                return Err(self.err(start, format!("{raw}: bad substitution")));
            };
            let sub: String = chars
                .get(k + 1..close)
                .map(|c| c.iter().collect())
                .unwrap_or_default();
            let sub = sub.trim();
            index = if sub == "@" || sub == "*" {
                Index::All
            } else if let Ok(n) = sub.parse::<u64>() {
                Index::N(n)
            } else {
                return opaque("array index expression");
            };
            k = close + 1;
        }
        let rest: String = chars
            .get(k..)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let op_word = |lx: &Lexer, text: &str| -> Result<Vec<Part>> {
            let mut sub = Lexer::new(text, lx.line_of(start) - 1);
            sub.word_until(true)
        };
        let op = if rest.is_empty() {
            Op::None
        } else if let Some(w) = rest.strip_prefix(":-") {
            Op::Default {
                colon: true,
                word: op_word(self, w)?,
            }
        } else if let Some(w) = rest.strip_prefix(":+") {
            Op::Alt {
                colon: true,
                word: op_word(self, w)?,
            }
        } else if let Some(w) = rest.strip_prefix('-') {
            Op::Default {
                colon: false,
                word: op_word(self, w)?,
            }
        } else if let Some(w) = rest.strip_prefix('+') {
            Op::Alt {
                colon: false,
                word: op_word(self, w)?,
            }
        } else if rest.starts_with([':', '=', '?', '%', '#', '/', '^', ',', '@']) {
            return opaque("`${…}` operator");
        } else {
            return Err(self.err(start, format!("{raw}: bad substitution")));
        };
        Ok(Part::Param(Param {
            name,
            index,
            op,
            quoted,
            raw,
        }))
    }

    /// `NAME=`, `NAME[i]=`, `NAME+=` at the lexer: the assignment, with its value read.
    /// `None` (and the lexer unmoved) when the word is not an assignment.
    fn assignment(&mut self) -> Result<Option<Assign>> {
        let start = self.pos;
        if !self.peek().is_some_and(is_name_start) {
            return Ok(None);
        }
        let mut i = self.pos;
        while self.s.get(i).is_some_and(|c| is_name_char(*c)) {
            i += 1;
        }
        let name = self.slice(start, i);
        let mut index = None;
        if self.s.get(i) == Some(&'[') {
            let mut j = i + 1;
            while self.s.get(j).is_some_and(|c| *c != ']' && *c != '\n') {
                j += 1;
            }
            if self.s.get(j) != Some(&']') {
                return Ok(None);
            }
            let sub = self.slice(i + 1, j);
            let after = j + 1;
            let is_assign = self.s.get(after) == Some(&'=')
                || (self.s.get(after) == Some(&'+') && self.s.get(after + 1) == Some(&'='));
            if !is_assign {
                return Ok(None);
            }
            match sub.trim().parse::<u64>() {
                Ok(n) => index = Some(n),
                Err(_) => {
                    return Err(self.err(
                        start,
                        format!("{name}[{sub}]: the array index is not a number (rtool does not evaluate shell arithmetic)"),
                    ))
                }
            }
            i = after;
        }
        let append = self.s.get(i) == Some(&'+');
        if append {
            i += 1;
        }
        if self.s.get(i) != Some(&'=') {
            return Ok(None);
        }
        self.pos = i + 1;
        let line = self.line_of(start);
        let value = if self.peek() == Some('(') {
            if index.is_some() {
                return Err(self.err(
                    start,
                    format!("{name}[…]=(…): cannot assign a list to an array element"),
                ));
            }
            AValue::List(self.list()?)
        } else {
            AValue::Scalar(self.word()?)
        };
        Ok(Some(Assign {
            name,
            index,
            append,
            value,
            line,
        }))
    }

    /// `( a [2]=b "c d" )`, with the lexer at the parenthesis.
    fn list(&mut self) -> Result<Vec<(Option<u64>, Vec<Part>)>> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Err(self.err(start, "unterminated array list (")),
                Some('\n') => self.pos += 1,
                Some('#') => self.skip_comment(),
                Some(')') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c @ (';' | '&' | '|' | '<' | '>' | '(')) => {
                    return Err(self.err(self.pos, format!("unexpected {c:?} in an array list")))
                }
                Some(_) => {
                    let mut idx = None;
                    if self.peek() == Some('[') {
                        let mut j = self.pos + 1;
                        while self.s.get(j).is_some_and(|c| *c != ']' && *c != '\n') {
                            j += 1;
                        }
                        if self.s.get(j) == Some(&']') && self.s.get(j + 1) == Some(&'=') {
                            let sub = self.slice(self.pos + 1, j);
                            match sub.trim().parse::<u64>() {
                                Ok(n) => idx = Some(n),
                                Err(_) => {
                                    return Err(self.err(
                                        self.pos,
                                        format!("[{sub}]=: the array index is not a number"),
                                    ))
                                }
                            }
                            self.pos = j + 2;
                        }
                    }
                    let w = self.word()?;
                    out.push((idx, w));
                }
            }
        }
    }
}

fn flush(buf: &mut String, parts: &mut Vec<Part>) {
    if !buf.is_empty() {
        parts.push(Part::Text(std::mem::take(buf)));
    }
}

/// Words that start a compound command or otherwise need the shell grammar.
const RESERVED: [&str; 14] = [
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "select", "function",
];

struct Shell<'a> {
    vars: &'a Vars,
    /// Module and version from the source directory name, as dkms's `$module` and
    /// `$module_version` (the Arch hook splits `usr/src/<m>-<v>` at the last dash).
    module: Option<(String, String)>,
    assigned: HashMap<String, Array>,
    warnings: Vec<String>,
}

impl Shell<'_> {
    fn run(&mut self, text: &str) -> Result<()> {
        let mut lx = Lexer::new(text, 0);
        loop {
            lx.skip_blanks();
            match lx.peek() {
                None => return Ok(()),
                Some('\n') => lx.pos += 1,
                Some('#') => lx.skip_comment(),
                Some(c @ (';' | '&' | '|' | ')')) => {
                    return Err(lx.err(lx.pos, format!("syntax error near {c:?}")))
                }
                Some(_) => self.statement(&mut lx)?,
            }
            self.warnings.append(&mut lx.notes);
        }
    }

    /// One simple command (assignments, maybe a command), or a compound one skipped whole.
    fn statement(&mut self, lx: &mut Lexer) -> Result<()> {
        let start = lx.pos;
        let line = lx.line();
        let mut assigns = Vec::new();
        let mut words: Vec<(String, Vec<Part>)> = Vec::new();
        let mut declaring = false;
        loop {
            lx.skip_blanks();
            match lx.peek() {
                None | Some('\n') => break,
                Some(';') => {
                    lx.pos += 1;
                    break;
                }
                Some('#') => {
                    lx.skip_comment();
                    break;
                }
                Some('&' | '|') => {
                    return self.skip_compound(lx, start, "a command list (&&, ||, |)")
                }
                Some('<' | '>') => return self.skip_compound(lx, start, "a redirection"),
                Some('(') => {
                    if words.len() == 1 && assigns.is_empty() {
                        let name = words.first().map(|w| w.0.clone()).unwrap_or_default();
                        return self.skip_compound(lx, start, &format!("the function {name}()"));
                    }
                    if words.is_empty() && assigns.is_empty() {
                        return self.skip_compound(lx, start, "a subshell ( … )");
                    }
                    return Err(lx.err(lx.pos, "syntax error near \"(\""));
                }
                Some(')') => return Err(lx.err(lx.pos, "syntax error near \")\"")),
                Some(_) => {
                    if words.is_empty() || declaring {
                        if let Some(a) = lx.assignment()? {
                            assigns.push(a);
                            continue;
                        }
                    }
                    let wstart = lx.pos;
                    let parts = lx.word()?;
                    let raw = lx.slice(wstart, lx.pos);
                    if words.is_empty() {
                        let closer = matches!(
                            raw.as_str(),
                            "then" | "else" | "elif" | "fi" | "do" | "done" | "esac" | "}"
                        );
                        if closer && assigns.is_empty() {
                            return Err(lx.err(wstart, format!("syntax error near `{raw}`")));
                        }
                        let reserved = RESERVED.contains(&raw.as_str())
                            || matches!(raw.as_str(), "{" | "}" | "[[" | "!" | "coproc");
                        if reserved && assigns.is_empty() {
                            return self.skip_compound(lx, start, &format!("`{raw}`"));
                        }
                        declaring = matches!(
                            raw.as_str(),
                            "export" | "declare" | "typeset" | "readonly" | "local"
                        );
                    }
                    words.push((raw, parts));
                }
            }
        }

        let Some((cmd, _)) = words.first() else {
            for a in &assigns {
                self.assign(a);
            }
            return Ok(());
        };
        let cmd = cmd.clone();
        match cmd.as_str() {
            "export" | "declare" | "typeset" | "readonly" => {
                for (w, _) in words.iter().skip(1) {
                    if w.starts_with('-')
                        && !matches!(w.as_str(), "-a" | "-r" | "-x" | "-g" | "-ax" | "-xa")
                    {
                        self.warnings.push(format!(
                            "line {line}: `{cmd} {w}` is not supported; its variables are read as plain ones"
                        ));
                    }
                }
                for a in &assigns {
                    self.assign(a);
                }
            }
            "local" => self.warnings.push(format!(
                "line {line}: `local` outside a function fails in bash; its assignments are ignored"
            )),
            "unset" => {
                for (w, _) in words.iter().skip(1) {
                    if !w.starts_with('-') {
                        // Known to be unset from here on: an empty array.
                        self.assigned.insert(w.clone(), Array::new());
                    }
                }
            }
            ":" | "true" if words.len() == 1 && assigns.is_empty() => {}
            _ => {
                if let Some((second, _)) = words.get(1) {
                    if second.starts_with('=') && cmd.chars().all(is_name_char) {
                        return Err(lx.err(
                            start,
                            format!("`{cmd} {}` is not an assignment: a shell assignment has no blanks around '='", clip(second)),
                        ));
                    }
                }
                if let Some(a) = assigns
                    .iter()
                    .find(|a| CONF_VARIABLES.contains(&a.name.as_str()))
                {
                    return Err(lx.err(
                        start,
                        format!("{}= is followed by `{}`: bash would run that as a command and not set {} (a blank after '='?)", a.name, clip(&cmd), a.name),
                    ));
                }
                self.warnings.push(format!(
                    "line {line}: command `{}` was not run",
                    clip(&lx.slice(start, lx.pos))
                ));
            }
        }
        Ok(())
    }

    /// Skips a construct this interpreter does not run (`if … fi`, a loop, a function, a
    /// list), from `start` to its end. Whatever it assigns stays unknown: a warning, or an
    /// error when that is a directive the build needs.
    fn skip_compound(&mut self, lx: &mut Lexer, start: usize, what: &str) -> Result<()> {
        lx.pos = start;
        let line = lx.line();
        let mut depth = 0usize;
        let mut parens = 0usize;
        let mut cmd_pos = true;
        let mut names: Vec<String> = Vec::new();
        loop {
            lx.skip_blanks();
            match lx.peek() {
                None => {
                    if depth > 0 || parens > 0 {
                        return Err(lx.err(start, format!("{what} is not closed")));
                    }
                    break;
                }
                Some('\n' | ';') => {
                    lx.pos += 1;
                    cmd_pos = true;
                    if depth == 0 && parens == 0 {
                        break;
                    }
                }
                Some('#')
                    if cmd_pos
                        || lx
                            .s
                            .get(lx.pos.wrapping_sub(1))
                            .is_some_and(|c| c.is_whitespace()) =>
                {
                    lx.skip_comment();
                }
                Some('&' | '|' | '<' | '>') => {
                    lx.pos += 1;
                    cmd_pos = true;
                }
                Some('(') => {
                    lx.pos += 1;
                    if cmd_pos {
                        parens += 1;
                    }
                    cmd_pos = true;
                }
                Some(')') => {
                    lx.pos += 1;
                    // A `pattern)` in a case closes nothing.
                    parens = parens.saturating_sub(1);
                    cmd_pos = true;
                }
                Some(_) => {
                    if cmd_pos {
                        if let Some(a) = lx.assignment()? {
                            if !names.contains(&a.name) {
                                names.push(a.name);
                            }
                            continue;
                        }
                    }
                    let wstart = lx.pos;
                    lx.word()?;
                    let raw = lx.slice(wstart, lx.pos);
                    if cmd_pos {
                        match raw.as_str() {
                            "if" | "case" | "for" | "while" | "until" | "select" | "{" => {
                                depth += 1;
                            }
                            "fi" | "esac" | "done" | "}" => {
                                depth = depth.saturating_sub(1);
                            }
                            _ => {}
                        }
                    }
                    cmd_pos = matches!(
                        raw.as_str(),
                        "then" | "do" | "else" | "elif" | "{" | "!" | "in" | "export" | "declare"
                    ) || (cmd_pos && matches!(raw.as_str(), "if" | "while" | "until"));
                }
            }
        }
        let end = lx.line_of(lx.pos.saturating_sub(1));
        let lines = if end > line {
            format!("lines {line}-{end}")
        } else {
            format!("line {line}")
        };
        if let Some(n) = names.iter().find(|n| NEEDED.contains(&n.as_str())) {
            return Err(Error::invalid(format!(
                "dkms.conf {lines}: {n} is assigned inside {what}, which rtool cannot evaluate without bash"
            ))
            .hint(NEEDS_BASH));
        }
        let assigns = if names.is_empty() {
            String::new()
        } else {
            format!("; the values it may set stay unknown: {}", names.join(", "))
        };
        self.warnings
            .push(format!("{lines}: {what} was not run{assigns}"));
        // Nothing inside was run, so no CPU count was used either.
        lx.notes.clear();
        for n in &names {
            // Values that may or may not have been set are unknown from here on.
            self.assigned.remove(n);
            self.assigned.insert(
                n.clone(),
                BTreeMap::from([(
                    0,
                    Val {
                        text: String::new(),
                        unknown: vec![format!("the value {what} ({lines}) may set")],
                        line,
                    },
                )]),
            );
        }
        Ok(())
    }

    fn assign(&mut self, a: &Assign) {
        match &a.value {
            AValue::Scalar(parts) => {
                let v = eval(parts, a.line, &|p, l| self.lookup(p, l));
                let arr = self.assigned.entry(a.name.clone()).or_default();
                let idx = a.index.unwrap_or(0);
                if a.append {
                    let e = arr.entry(idx).or_insert_with(|| Val {
                        line: a.line,
                        ..Val::default()
                    });
                    e.text.push_str(&v.text);
                    e.unknown.extend(v.unknown);
                    e.line = a.line;
                } else {
                    arr.insert(idx, v);
                }
            }
            AValue::List(elems) => {
                let mut vals = Vec::new();
                for (idx, parts) in elems {
                    let v = eval(parts, a.line, &|p, l| self.lookup(p, l));
                    // Unquoted expansions in a list are split into words, as bash does.
                    let splits = parts
                        .iter()
                        .any(|p| matches!(p, Part::Param(q) if !q.quoted));
                    if splits && idx.is_none() {
                        for w in v.text.split_whitespace() {
                            vals.push((
                                None,
                                Val {
                                    text: w.to_string(),
                                    unknown: v.unknown.clone(),
                                    line: a.line,
                                },
                            ));
                        }
                    } else {
                        vals.push((*idx, v));
                    }
                }
                let arr = self.assigned.entry(a.name.clone()).or_default();
                if !a.append {
                    arr.clear();
                }
                let mut next = arr.keys().next_back().map(|k| k + 1).unwrap_or(0);
                for (idx, v) in vals {
                    let i = idx.unwrap_or(next);
                    arr.insert(i, v);
                    next = i + 1;
                }
            }
        }
    }

    /// What dkms itself defines while it sources the file.
    fn builtin(&self, name: &str) -> Option<String> {
        let v = self.vars;
        Some(match name {
            "kernelver" => v.kernelver.clone(),
            "kernel_source_dir" => v.kernel_source_dir.clone(),
            "dkms_tree" => v.dkms_tree.clone(),
            "source_tree" => v.source_tree.clone(),
            "arch" => v.arch.clone(),
            // set_kernel_source_dir_and_kconfig, line 236
            "kernel_config" => format!("{}/.config", v.kernel_source_dir),
            "module" => self.module.as_ref()?.0.clone(),
            "module_version" => self.module.as_ref()?.1.clone(),
            // dkms's -j count (line 2532): the CPU count, unless framework.conf sets it,
            // which rtool does not read.
            "parallel_jobs" => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
            _ => return None,
        })
    }

    /// A variable while the file itself is sourced: its own assignments first.
    fn lookup(&self, p: &Param, line: usize) -> Looked {
        if let Some(arr) = self.assigned.get(&p.name) {
            return index_into(arr, &p.index, line);
        }
        self.lookup_outside(p, line)
    }

    fn lookup_outside(&self, p: &Param, line: usize) -> Looked {
        if let Some(text) = self.builtin(&p.name) {
            let text = match p.index {
                Index::None | Index::All | Index::N(0) => text,
                Index::N(_) => String::new(),
            };
            return Looked {
                val: Val {
                    text,
                    unknown: Vec::new(),
                    line,
                },
                set: Some(true),
            };
        }
        // read_conf unsets every dkms.conf variable before sourcing (line 471).
        if CONF_VARIABLES.contains(&p.name.as_str()) {
            return Looked {
                val: Val {
                    line,
                    ..Val::default()
                },
                set: Some(false),
            };
        }
        Looked {
            val: Val {
                text: String::new(),
                unknown: vec![format!(
                    "`{}` (line {line}), set neither in dkms.conf nor by dkms",
                    p.raw
                )],
                line,
            },
            set: None,
        }
    }

    /// dkms's second reading (safe_source): each value's words joined by single spaces, then
    /// expanded again as `NAME[i]="value"`, where only the variables echoed before it exist.
    fn reread(&mut self) -> HashMap<&'static str, Array> {
        let mut out: HashMap<&'static str, Array> = HashMap::new();
        for name in CONF_VARIABLES {
            let Some(arr) = self.assigned.get(name) else {
                continue;
            };
            for (i, v) in arr.clone() {
                let joined = join_words(&v.text);
                let quoted = format!("\"{joined}\"");
                let mut lx = Lexer::new(&quoted, v.line.saturating_sub(1));
                let parsed = lx.word().ok().filter(|_| lx.pos >= lx.s.len());
                self.warnings.append(&mut lx.notes);
                let mut val = match parsed {
                    Some(parts) => eval(&parts, v.line, &|p, l| match out.get(p.name.as_str()) {
                        Some(arr) => index_into(arr, &p.index, l),
                        None => self.lookup_outside(p, l),
                    }),
                    None => Val {
                        text: joined.clone(),
                        unknown: vec![format!(
                            "a double quote or trailing backslash in {}, which dkms's second reading by bash would mangle",
                            clip(&joined)
                        )],
                        line: v.line,
                    },
                };
                let mut unknown = v.unknown.clone();
                for u in val.unknown.drain(..) {
                    if !unknown.contains(&u) {
                        unknown.push(u);
                    }
                }
                val.unknown = unknown;
                val.line = v.line;
                out.entry(name).or_default().insert(i, val);
            }
        }
        out
    }
}

/// `echo NAME[i]=\"${NAME[i]}\"` with the value unquoted: the words joined by single spaces.
/// Leading or trailing blanks leave one space, because the quote beside them becomes a word
/// of its own.
fn join_words(v: &str) -> String {
    let ifs = [' ', '\t', '\n'];
    let words: Vec<&str> = v.split(ifs).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return if v.is_empty() {
            String::new()
        } else {
            " ".to_string()
        };
    }
    let lead = if v.starts_with(ifs) { " " } else { "" };
    let trail = if v.ends_with(ifs) { " " } else { "" };
    format!("{lead}{}{trail}", words.join(" "))
}

fn index_into(arr: &Array, index: &Index, line: usize) -> Looked {
    let val = match index {
        Index::None => arr.get(&0).cloned(),
        Index::N(n) => arr.get(n).cloned(),
        Index::All => {
            let mut v = Val {
                line,
                ..Val::default()
            };
            let texts: Vec<&str> = arr.values().map(|e| e.text.as_str()).collect();
            v.text = texts.join(" ");
            for e in arr.values() {
                v.unknown.extend(e.unknown.iter().cloned());
            }
            Some(v)
        }
    };
    let set = val.is_some();
    Looked {
        val: val.unwrap_or(Val {
            line,
            ..Val::default()
        }),
        set: Some(set),
    }
}

/// Expands a word. `look` answers variable lookups.
fn eval(parts: &[Part], line: usize, look: &dyn Fn(&Param, usize) -> Looked) -> Val {
    let mut out = Val {
        line,
        ..Val::default()
    };
    for p in parts {
        match p {
            Part::Text(t) => out.text.push_str(t),
            Part::Opaque { raw, what } => out
                .unknown
                .push(format!("{what} `{}` (line {line})", clip(raw))),
            Part::Param(q) => {
                let found = look(q, line);
                let Some(set) = found.set else {
                    out.unknown.extend(found.val.unknown);
                    continue;
                };
                let value = found.val;
                let empty = value.text.is_empty();
                let chosen = match &q.op {
                    Op::None => value,
                    Op::Default { colon, word } => {
                        if !set || (*colon && empty) {
                            eval(word, line, look)
                        } else {
                            value
                        }
                    }
                    Op::Alt { colon, word } => {
                        if set && !(*colon && empty) {
                            eval(word, line, look)
                        } else {
                            Val::default()
                        }
                    }
                };
                out.text.push_str(&chosen.text);
                out.unknown.extend(chosen.unknown);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// POSIX extended regular expressions, as bash's `=~` uses them (glibc regcomp REG_EXTENDED)

mod ere {
    //! A Thompson-NFA matcher: linear in the input, no backtracking blow-up. It answers only
    //! "is there a match anywhere", which is all `[[ s =~ re ]]` tells dkms.

    #[derive(Debug)]
    enum Node {
        Empty,
        Char(char),
        Any,
        Set(usize),
        Bol,
        Eol,
        Concat(Vec<Node>),
        Alt(Vec<Node>),
        Repeat(Box<Node>, u32, Option<u32>),
    }

    #[derive(Clone, Copy, Debug)]
    enum Named {
        Alpha,
        Digit,
        Alnum,
        Upper,
        Lower,
        Space,
        Blank,
        Punct,
        Print,
        Graph,
        Cntrl,
        Xdigit,
        /// GNU `\w`: alphanumerics and underscore
        Word,
    }

    impl Named {
        fn matches(self, c: char) -> bool {
            match self {
                Named::Alpha => c.is_alphabetic(),
                Named::Digit => c.is_ascii_digit(),
                Named::Alnum => c.is_alphanumeric(),
                Named::Upper => c.is_uppercase(),
                Named::Lower => c.is_lowercase(),
                Named::Space => c.is_whitespace(),
                Named::Blank => c == ' ' || c == '\t',
                Named::Punct => c.is_ascii_punctuation(),
                Named::Print => !c.is_control(),
                Named::Graph => !c.is_control() && !c.is_whitespace(),
                Named::Cntrl => c.is_control(),
                Named::Xdigit => c.is_ascii_hexdigit(),
                Named::Word => c.is_alphanumeric() || c == '_',
            }
        }
    }

    #[derive(Debug, Default)]
    struct Set {
        negated: bool,
        ranges: Vec<(char, char)>,
        classes: Vec<Named>,
    }

    impl Set {
        fn matches(&self, c: char) -> bool {
            let hit = self.ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi)
                || self.classes.iter().any(|n| n.matches(c));
            hit != self.negated
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Inst {
        Char(char),
        Any,
        Set(usize),
        Bol,
        Eol,
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    /// glibc's RE_DUP_MAX.
    const DUP_MAX: u32 = 0x7fff;
    /// Counted repetition copies its operand; this bounds the program.
    const MAX_PROG: usize = 20_000;

    pub(super) struct Regex {
        prog: Vec<Inst>,
        sets: Vec<Set>,
    }

    struct Parser {
        s: Vec<char>,
        pos: usize,
        depth: usize,
        sets: Vec<Set>,
    }

    impl Regex {
        pub(super) fn new(pattern: &str) -> Result<Regex, String> {
            let mut p = Parser {
                s: pattern.chars().collect(),
                pos: 0,
                depth: 0,
                sets: Vec::new(),
            };
            let node = p.alt()?;
            if p.pos < p.s.len() {
                return Err(format!(
                    "unexpected {:?}",
                    p.s.get(p.pos).copied().unwrap_or(' ')
                ));
            }
            let mut re = Regex {
                prog: Vec::new(),
                sets: p.sets,
            };
            re.emit(&node)?;
            re.prog.push(Inst::Match);
            Ok(re)
        }

        fn push(&mut self, i: Inst) -> Result<usize, String> {
            if self.prog.len() >= MAX_PROG {
                return Err("too large (counted repetition)".to_string());
            }
            self.prog.push(i);
            Ok(self.prog.len() - 1)
        }

        fn patch(&mut self, at: usize, i: Inst) {
            if let Some(slot) = self.prog.get_mut(at) {
                *slot = i;
            }
        }

        fn emit(&mut self, n: &Node) -> Result<(), String> {
            match n {
                Node::Empty => {}
                Node::Char(c) => {
                    self.push(Inst::Char(*c))?;
                }
                Node::Any => {
                    self.push(Inst::Any)?;
                }
                Node::Set(i) => {
                    self.push(Inst::Set(*i))?;
                }
                Node::Bol => {
                    self.push(Inst::Bol)?;
                }
                Node::Eol => {
                    self.push(Inst::Eol)?;
                }
                Node::Concat(v) => {
                    for x in v {
                        self.emit(x)?;
                    }
                }
                Node::Alt(v) => {
                    let mut jumps = Vec::new();
                    for (k, b) in v.iter().enumerate() {
                        if k + 1 < v.len() {
                            let split = self.push(Inst::Split(0, 0))?;
                            self.emit(b)?;
                            jumps.push(self.push(Inst::Jmp(0))?);
                            let next = self.prog.len();
                            self.patch(split, Inst::Split(split + 1, next));
                        } else {
                            self.emit(b)?;
                        }
                    }
                    let end = self.prog.len();
                    for j in jumps {
                        self.patch(j, Inst::Jmp(end));
                    }
                }
                Node::Repeat(x, min, max) => {
                    for _ in 0..*min {
                        self.emit(x)?;
                    }
                    match max {
                        None => {
                            let split = self.push(Inst::Split(0, 0))?;
                            self.emit(x)?;
                            self.push(Inst::Jmp(split))?;
                            let end = self.prog.len();
                            self.patch(split, Inst::Split(split + 1, end));
                        }
                        Some(max) => {
                            let mut splits = Vec::new();
                            for _ in *min..*max {
                                splits.push(self.push(Inst::Split(0, 0))?);
                                self.emit(x)?;
                            }
                            let end = self.prog.len();
                            for s in splits {
                                self.patch(s, Inst::Split(s + 1, end));
                            }
                        }
                    }
                }
            }
            Ok(())
        }

        /// Whether the pattern matches anywhere in `text`.
        pub(super) fn is_match(&self, text: &str) -> bool {
            let chars: Vec<char> = text.chars().collect();
            let mut mark = vec![usize::MAX; self.prog.len()];
            let mut clist: Vec<usize> = Vec::new();
            let mut nlist: Vec<usize> = Vec::new();
            for pos in 0..=chars.len() {
                // Unanchored: a new attempt starts at every position.
                if self.add(&mut clist, &mut mark, 0, pos, chars.len()) {
                    return true;
                }
                let Some(&c) = chars.get(pos) else { break };
                nlist.clear();
                for &pc in &clist {
                    let step = match self.prog.get(pc) {
                        Some(Inst::Char(x)) => *x == c,
                        Some(Inst::Any) => true,
                        Some(Inst::Set(i)) => self.sets.get(*i).is_some_and(|s| s.matches(c)),
                        _ => false,
                    };
                    if step && self.add(&mut nlist, &mut mark, pc + 1, pos + 1, chars.len()) {
                        return true;
                    }
                }
                std::mem::swap(&mut clist, &mut nlist);
            }
            false
        }

        /// Adds `pc` and everything reachable from it without input; true on reaching Match.
        fn add(
            &self,
            list: &mut Vec<usize>,
            mark: &mut [usize],
            pc: usize,
            pos: usize,
            len: usize,
        ) -> bool {
            let mut stack = vec![pc];
            while let Some(pc) = stack.pop() {
                let Some(m) = mark.get_mut(pc) else { continue };
                if *m == pos {
                    continue;
                }
                *m = pos;
                match self.prog.get(pc) {
                    Some(Inst::Match) => return true,
                    Some(Inst::Jmp(t)) => stack.push(*t),
                    Some(Inst::Split(a, b)) => {
                        stack.push(*b);
                        stack.push(*a);
                    }
                    Some(Inst::Bol) if pos == 0 => stack.push(pc + 1),
                    Some(Inst::Eol) if pos == len => stack.push(pc + 1),
                    Some(Inst::Bol | Inst::Eol) => {}
                    Some(_) => list.push(pc),
                    None => {}
                }
            }
            false
        }
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.s.get(self.pos).copied()
        }

        fn alt(&mut self) -> Result<Node, String> {
            let mut branches = vec![self.concat()?];
            while self.peek() == Some('|') {
                self.pos += 1;
                branches.push(self.concat()?);
            }
            Ok(if branches.len() == 1 {
                branches.pop().unwrap_or(Node::Empty)
            } else {
                Node::Alt(branches)
            })
        }

        fn concat(&mut self) -> Result<Node, String> {
            let mut items = Vec::new();
            loop {
                match self.peek() {
                    None | Some('|') => break,
                    Some(')') if self.depth > 0 => break,
                    _ => {
                        let atom = self.atom()?;
                        let atom = self.quantifiers(atom)?;
                        items.push(atom);
                    }
                }
            }
            Ok(match items.len() {
                0 => Node::Empty,
                1 => items.pop().unwrap_or(Node::Empty),
                _ => Node::Concat(items),
            })
        }

        fn atom(&mut self) -> Result<Node, String> {
            let Some(c) = self.peek() else {
                return Ok(Node::Empty);
            };
            self.pos += 1;
            Ok(match c {
                '(' => {
                    self.depth += 1;
                    let inner = self.alt()?;
                    if self.peek() != Some(')') {
                        return Err("unmatched (".to_string());
                    }
                    self.pos += 1;
                    self.depth -= 1;
                    // A group is one operand for a quantifier.
                    Node::Concat(vec![inner])
                }
                // glibc takes an unmatched ) literally.
                ')' => Node::Char(')'),
                '^' => Node::Bol,
                '$' => Node::Eol,
                '.' => Node::Any,
                '[' => self.bracket()?,
                '\\' => self.escape()?,
                '*' | '+' | '?' | '{' => return Err(format!("nothing to repeat before {c:?}")),
                c => Node::Char(c),
            })
        }

        fn escape(&mut self) -> Result<Node, String> {
            let Some(c) = self.peek() else {
                return Err("trailing backslash".to_string());
            };
            self.pos += 1;
            let class = |named, negated| {
                let set = Set {
                    negated,
                    ranges: Vec::new(),
                    classes: vec![named],
                };
                (set, ())
            };
            let set = match c {
                'w' => class(Named::Word, false),
                'W' => class(Named::Word, true),
                's' => class(Named::Space, false),
                'S' => class(Named::Space, true),
                '1'..='9' => return Err(format!("back-reference \\{c} is not supported")),
                'b' | 'B' | '<' | '>' | '`' | '\'' => {
                    return Err(format!("the GNU anchor \\{c} is not supported"))
                }
                c if c.is_ascii_alphanumeric() => {
                    return Err(format!(
                        "\\{c} is not a POSIX ERE escape (bash would match a plain {c:?})"
                    ))
                }
                c => return Ok(Node::Char(c)),
            };
            self.sets.push(set.0);
            Ok(Node::Set(self.sets.len() - 1))
        }

        fn quantifiers(&mut self, mut atom: Node) -> Result<Node, String> {
            loop {
                let (min, max) = match self.peek() {
                    Some('*') => {
                        self.pos += 1;
                        (0, None)
                    }
                    Some('+') => {
                        self.pos += 1;
                        (1, None)
                    }
                    Some('?') => {
                        self.pos += 1;
                        (0, Some(1))
                    }
                    Some('{') => {
                        self.pos += 1;
                        self.interval()?
                    }
                    _ => return Ok(atom),
                };
                if matches!(atom, Node::Bol | Node::Eol) {
                    return Err("nothing to repeat after an anchor".to_string());
                }
                atom = Node::Repeat(Box::new(atom), min, max);
            }
        }

        /// `{m}`, `{m,}`, `{m,n}`, `{,n}` (glibc), after the brace.
        fn interval(&mut self) -> Result<(u32, Option<u32>), String> {
            let num = |p: &mut Parser| -> Result<Option<u32>, String> {
                let from = p.pos;
                while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                    p.pos += 1;
                }
                if p.pos == from {
                    return Ok(None);
                }
                let s: String =
                    p.s.get(from..p.pos)
                        .map(|c| c.iter().collect())
                        .unwrap_or_default();
                match s.parse::<u32>() {
                    Ok(n) if n <= DUP_MAX => Ok(Some(n)),
                    _ => Err(format!("repetition count {s} is too large")),
                }
            };
            let min = num(self)?;
            let (min, max) = if self.peek() == Some(',') {
                self.pos += 1;
                let max = num(self)?;
                if min.is_none() && max.is_none() {
                    return Err("invalid interval {,}".to_string());
                }
                (min.unwrap_or(0), max)
            } else {
                let Some(m) = min else {
                    return Err("invalid interval after {".to_string());
                };
                (m, Some(m))
            };
            if self.peek() != Some('}') {
                return Err("unterminated interval {".to_string());
            }
            self.pos += 1;
            if max.is_some_and(|mx| mx < min) {
                return Err("interval {m,n} with m > n".to_string());
            }
            Ok((min, max))
        }

        /// `[…]`, after the bracket. Backslash is literal inside, as POSIX says.
        fn bracket(&mut self) -> Result<Node, String> {
            let mut set = Set::default();
            if self.peek() == Some('^') {
                set.negated = true;
                self.pos += 1;
            }
            let mut first = true;
            loop {
                let Some(c) = self.peek() else {
                    return Err("unmatched [".to_string());
                };
                self.pos += 1;
                if c == ']' && !first {
                    break;
                }
                first = false;
                if c == '[' {
                    match self.peek() {
                        Some(':') => {
                            self.pos += 1;
                            let from = self.pos;
                            while self.peek().is_some_and(|c| c != ':') {
                                self.pos += 1;
                            }
                            let name: String = self
                                .s
                                .get(from..self.pos)
                                .map(|c| c.iter().collect())
                                .unwrap_or_default();
                            if self.s.get(self.pos + 1) != Some(&']') {
                                return Err("unterminated [: :] class".to_string());
                            }
                            self.pos += 2;
                            let named = match name.as_str() {
                                "alpha" => Named::Alpha,
                                "digit" => Named::Digit,
                                "alnum" => Named::Alnum,
                                "upper" => Named::Upper,
                                "lower" => Named::Lower,
                                "space" => Named::Space,
                                "blank" => Named::Blank,
                                "punct" => Named::Punct,
                                "print" => Named::Print,
                                "graph" => Named::Graph,
                                "cntrl" => Named::Cntrl,
                                "xdigit" => Named::Xdigit,
                                _ => return Err(format!("unknown class [:{name}:]")),
                            };
                            set.classes.push(named);
                            continue;
                        }
                        Some(d @ ('=' | '.')) => {
                            return Err(format!(
                                "[{d} {d}] in a bracket expression is not supported"
                            ))
                        }
                        _ => {}
                    }
                }
                let lo = c;
                if self.peek() == Some('-') && self.s.get(self.pos + 1).is_some_and(|d| *d != ']') {
                    let Some(&hi) = self.s.get(self.pos + 1) else {
                        return Err("unmatched [".to_string());
                    };
                    if hi == '[' {
                        return Err(
                            "a range ending in a class or collating element is not supported"
                                .to_string(),
                        );
                    }
                    self.pos += 2;
                    if hi < lo {
                        return Err(format!("invalid range {lo}-{hi}"));
                    }
                    set.ranges.push((lo, hi));
                } else {
                    set.ranges.push((lo, lo));
                }
            }
            self.sets.push(set);
            Ok(Node::Set(self.sets.len() - 1))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenZFS META

/// The fields of an OpenZFS-style `META` file that matter for a rebuild.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub license: Option<String>,
    pub linux_min: Option<String>,
    pub linux_max: Option<String>,
}

/// `dir/META`, or `None` when the source has none.
pub fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let path = dir.join("META");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::path(e, &path)),
    };
    parse_meta(&String::from_utf8_lossy(&bytes))
        .map(Some)
        .map_err(|e| e.context(format!("reading {}", path.display())))
}

/// Reads `META` as OpenZFS's `config/zfs-meta.m4` does: `^[ ]*KEY:[ \t]+VALUE`, keys
/// case-sensitive, the first occurrence wins, and the value ends at the next `:[ \t]`. Other
/// lines are ignored; that is how a line is commented out. A `Linux-Minimum` or
/// `Linux-Maximum` that is not a kernel version is an error: the range check would
/// otherwise be silently wrong.
pub fn parse_meta(text: &str) -> Result<Meta> {
    let mut meta = Meta::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start_matches(' ');
        let Some(sep) = field_separator(line) else {
            continue;
        };
        let key = line.get(..sep).unwrap_or_default();
        let rest = line
            .get(sep + 1..)
            .unwrap_or_default()
            .trim_start_matches([' ', '\t']);
        let value = match field_separator(rest) {
            Some(end) => rest.get(..end).unwrap_or_default(),
            None => rest,
        }
        .trim_end()
        .to_string();
        let slot = match key {
            "Name" | "Project" | "Package" => &mut meta.name,
            "Version" => &mut meta.version,
            "Release" => &mut meta.release,
            "License" => &mut meta.license,
            "Linux-Minimum" | "Linux-Maximum" => {
                if major_minor(&value).is_none() {
                    return Err(Error::invalid(format!(
                        "META line {}: {key} {value:?} is not a kernel version",
                        n + 1
                    )));
                }
                if key == "Linux-Minimum" {
                    &mut meta.linux_min
                } else {
                    &mut meta.linux_max
                }
            }
            _ => continue,
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
    Ok(meta)
}

/// The byte offset of the first `:` followed by a blank (awk's `-F ':[ \t]+'`).
fn field_separator(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    (0..b.len()).find(|&i| b.get(i) == Some(&b':') && matches!(b.get(i + 1), Some(b' ' | b'\t')))
}

/// `6.2.8-arch1-1` → (6, 2).
fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    // The separator after the major number must be a dot.
    let after = v.get(v.find(|c: char| !c.is_ascii_digit())?..)?;
    if !after.starts_with('.') {
        return None;
    }
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether kernel release `kver` ("6.2.8-arch1-1") is inside the `META` range, compared by
/// major.minor as OpenZFS means it: `Linux-Maximum: 6.1` allows every 6.1.x, and 6.2 is too
/// new. `None` inside (or with no limits), else one sentence for a person: "zfs 2.1.9
/// supports Linux 3.10 – 6.1; 6.2.8-arch1-1 is newer: keep a 6.1 kernel or use a zfs release
/// that supports 6.2".
pub fn meta_range_check(meta: &Meta, kver: &str) -> Result<Option<String>> {
    let Some((kmaj, kmin)) = major_minor(kver) else {
        return Err(Error::invalid(format!("{kver:?} is not a kernel release")));
    };
    let bound = |b: &Option<String>| -> Result<Option<(String, (u32, u32))>> {
        match b {
            None => Ok(None),
            Some(s) => match major_minor(s) {
                Some(mm) => Ok(Some((s.clone(), mm))),
                None => Err(Error::invalid(format!(
                    "META: {s:?} is not a kernel version"
                ))),
            },
        }
    };
    let min = bound(&meta.linux_min)?;
    let max = bound(&meta.linux_max)?;
    let name = meta.name.as_deref().unwrap_or("this module");
    let who = match &meta.version {
        Some(v) => format!("{name} {v}"),
        None => name.to_string(),
    };
    let release = match &meta.name {
        Some(n) => format!("a {n} release"),
        None => "a release of this module".to_string(),
    };
    let range = match (&min, &max) {
        (Some((lo, _)), Some((hi, _))) => format!("Linux {lo} – {hi}"),
        (Some((lo, _)), None) => format!("Linux {lo} and newer"),
        (None, Some((hi, _))) => format!("Linux up to {hi}"),
        (None, None) => return Ok(None),
    };
    let k = (kmaj, kmin);
    if let Some((hi, mm)) = &max {
        if k > *mm {
            return Ok(Some(format!(
                "{who} supports {range}; {kver} is newer: keep a {hi} kernel or use {release} that supports {kmaj}.{kmin}"
            )));
        }
    }
    if let Some((lo, mm)) = &min {
        if k < *mm {
            return Ok(Some(format!(
                "{who} supports {range}; {kver} is older: use a kernel of at least {lo} or {release} that supports {kmaj}.{kmin}"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn vars(kver: &str) -> Vars {
        Vars::for_kernel(kver, "x86_64")
    }

    fn parse_ok(text: &str, kver: &str, dir: Option<&str>) -> Conf {
        match parse(text, &vars(kver), dir) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match parse(text, &vars("6.1.0-1"), None) {
            Ok(c) => panic!("parsed: {c:?}"),
            Err(e) => {
                assert_eq!(e.kind(), Kind::Invalid, "{e}");
                e.to_string()
            }
        }
    }

    /// Arch's acpi_call-dkms 1.1.0, `usr/src/acpi_call-1.1.0/dkms.conf`, byte for byte.
    const ACPI_CALL: &str = "PACKAGE_NAME=\"acpi_call\"\nPACKAGE_VERSION=\"#MODULE_VERSION#\"\nAUTOINSTALL=\"yes\"\n\nMAKE[0]=\"make KVERSION=$kernelver\"\nCLEAN=\"make clean\"\n\nBUILT_MODULE_NAME[0]=\"acpi_call\"\nDEST_MODULE_LOCATION[0]=\"/kernel/drivers/acpi\"\n";

    #[test]
    fn acpi_call_takes_its_version_from_the_directory() {
        let c = parse_ok(ACPI_CALL, "6.2.8-arch1-1", Some("acpi_call-1.1.0"));
        assert_eq!(c.package_name, "acpi_call");
        assert_eq!(c.package_version, "1.1.0");
        assert_eq!(c.make, ["make KVERSION=6.2.8-arch1-1"]);
        assert_eq!(c.clean.as_deref(), Some("make clean"));
        assert!(c.autoinstall);
        assert_eq!(
            c.modules,
            [Module {
                built_name: "acpi_call".into(),
                built_location: String::new(),
                dest_location: "/kernel/drivers/acpi".into(),
                dest_name: "acpi_call".into(),
                strip: true,
            }]
        );
        assert_eq!(c.modules[0].built_path(), "acpi_call.ko");
        assert!(c.inexact.is_empty());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("#MODULE_VERSION#") && w.contains("1.1.0")),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings.iter().any(|w| w.contains("CLEAN is deprecated")));
        assert_eq!(
            c.make_command(&vars("6.2.8-arch1-1"), 4).unwrap(),
            "make -j4 KERNELRELEASE=6.2.8-arch1-1 KVERSION=6.2.8-arch1-1"
        );

        // Without a directory name the placeholder cannot be resolved.
        let e = parse(ACPI_CALL, &vars("6.1.0-1"), None).unwrap_err();
        assert!(e.to_string().contains("#MODULE_VERSION#"), "{e}");
        // A directory named differently: the version after the last dash, as the Arch hook
        // splits it.
        let c = parse_ok(ACPI_CALL, "6.1.0-1", Some("acpi-call-1.2"));
        assert_eq!(c.package_version, "1.2");
    }

    /// What OpenZFS 2.1.9's `scripts/dkms.mkconf -n zfs -v 2.1.9` writes.
    const ZFS_219: &str = r#"PACKAGE_NAME="zfs"
PACKAGE_VERSION="2.1.9"
PACKAGE_CONFIG="/etc/sysconfig/zfs"
NO_WEAK_MODULES="yes"
PRE_BUILD="configure
  --prefix=/usr
  --with-config=kernel
  --with-linux=$(
    if [ -e "${kernel_source_dir/%build/source}" ]
    then
      echo "${kernel_source_dir/%build/source}"
    else
      echo "${kernel_source_dir}"
    fi
  )
  --with-linux-obj="${kernel_source_dir}"
  $(
    [[ -n \"${ICP_ROOT}\" ]] && \
    {
      echo --with-qat=\"${ICP_ROOT}\"
    }
  )
  $(
    [[ -r ${PACKAGE_CONFIG} ]] \
    && source ${PACKAGE_CONFIG} \
    && shopt -q -s extglob \
    && \
    {
      if [[ ${ZFS_DKMS_ENABLE_DEBUG,,} == @(y|yes) ]]
      then
        echo --enable-debug
      fi
      if [[ ${ZFS_DKMS_ENABLE_DEBUGINFO,,} == @(y|yes) ]]
      then
        echo --enable-debuginfo
      fi
    }
  )
"
POST_BUILD="scripts/dkms.postbuild
  -n ${PACKAGE_NAME}
  -v ${PACKAGE_VERSION}
  -a ${arch}
  -k ${kernelver}
  -t ${dkms_tree}
"
AUTOINSTALL="yes"
MAKE[0]="make"
STRIP[0]="$(
  [[ -r ${PACKAGE_CONFIG} ]] \
  && source ${PACKAGE_CONFIG} \
  && shopt -q -s extglob \
  && [[ ${ZFS_DKMS_DISABLE_STRIP,,} == @(y|yes) ]] \
  && echo -n no
)"
STRIP[1]="${STRIP[0]}"
STRIP[2]="${STRIP[0]}"
STRIP[3]="${STRIP[0]}"
STRIP[4]="${STRIP[0]}"
STRIP[5]="${STRIP[0]}"
STRIP[6]="${STRIP[0]}"
STRIP[7]="${STRIP[0]}"
STRIP[8]="${STRIP[0]}"
BUILT_MODULE_NAME[0]="zavl"
BUILT_MODULE_LOCATION[0]="module/avl/"
DEST_MODULE_LOCATION[0]="/extra/avl/avl"
BUILT_MODULE_NAME[1]="znvpair"
BUILT_MODULE_LOCATION[1]="module/nvpair/"
DEST_MODULE_LOCATION[1]="/extra/nvpair/znvpair"
BUILT_MODULE_NAME[2]="zunicode"
BUILT_MODULE_LOCATION[2]="module/unicode/"
DEST_MODULE_LOCATION[2]="/extra/unicode/zunicode"
BUILT_MODULE_NAME[3]="zcommon"
BUILT_MODULE_LOCATION[3]="module/zcommon/"
DEST_MODULE_LOCATION[3]="/extra/zcommon/zcommon"
BUILT_MODULE_NAME[4]="zfs"
BUILT_MODULE_LOCATION[4]="module/zfs/"
DEST_MODULE_LOCATION[4]="/extra/zfs/zfs"
BUILT_MODULE_NAME[5]="icp"
BUILT_MODULE_LOCATION[5]="module/icp/"
DEST_MODULE_LOCATION[5]="/extra/icp/icp"
BUILT_MODULE_NAME[6]="zlua"
BUILT_MODULE_LOCATION[6]="module/lua/"
DEST_MODULE_LOCATION[6]="/extra/lua/zlua"
BUILT_MODULE_NAME[7]="spl"
BUILT_MODULE_LOCATION[7]="module/spl/"
DEST_MODULE_LOCATION[7]="/extra/spl/spl"
BUILT_MODULE_NAME[8]="zzstd"
BUILT_MODULE_LOCATION[8]="module/zstd/"
DEST_MODULE_LOCATION[8]="/extra/zstd/zzstd"
"#;

    #[test]
    fn zfs_conf_parses_with_its_command_substitutions_reported() {
        let k = "6.2.8-arch1-1";
        let c = parse_ok(ZFS_219, k, Some("zfs-2.1.9"));
        assert_eq!(
            (c.package_name.as_str(), c.package_version.as_str()),
            ("zfs", "2.1.9")
        );
        assert_eq!(c.make, ["make"]);
        assert_eq!(
            c.make_command(&vars(k), 8).unwrap(),
            format!("make -j8 KERNELRELEASE={k}")
        );
        assert!(c.autoinstall);
        let names: Vec<&str> = c.modules.iter().map(|m| m.built_name.as_str()).collect();
        assert_eq!(
            names,
            ["zavl", "znvpair", "zunicode", "zcommon", "zfs", "icp", "zlua", "spl", "zzstd"]
        );
        assert_eq!(c.modules[4].built_path(), "module/zfs/zfs.ko");
        assert_eq!(c.modules[4].dest_location, "/extra/zfs/zfs");
        assert_eq!(c.modules[0].dest_name, "zavl");
        // dkms 3.0.10 reads POST_BUILD like this, trailing blank included (checked with its
        // safe_source).
        assert_eq!(
            c.post_build.as_deref(),
            Some("scripts/dkms.postbuild -n zfs -v 2.1.9 -a x86_64 -k 6.2.8-arch1-1 -t /var/lib/dkms ")
        );
        // PRE_BUILD needs bash: the substitutions count as empty and say so.
        assert_eq!(
            c.pre_build.as_deref(),
            Some("configure --prefix=/usr --with-config=kernel --with-linux= --with-linux-obj=/lib/modules/6.2.8-arch1-1/build ")
        );
        assert!(
            c.inexact.contains(&"PRE_BUILD".to_string()),
            "{:?}",
            c.inexact
        );
        assert!(
            c.inexact.contains(&"STRIP[8]".to_string()),
            "{:?}",
            c.inexact
        );
        assert!(c.modules.iter().all(|m| m.strip));
        let subst: Vec<&String> = c
            .warnings
            .iter()
            .filter(|w| w.contains("PRE_BUILD") && w.contains("command substitution"))
            .collect();
        assert_eq!(subst.len(), 3, "{:#?}", c.warnings);
        assert!(subst[0].starts_with("line 5: "), "{}", subst[0]);
        assert_eq!(c.build_excluded(&vars(k)).unwrap(), None);

        // Arch's zfs-dkms keeps the placeholder.
        let arch = ZFS_219.replace(
            "PACKAGE_VERSION=\"2.1.9\"",
            "PACKAGE_VERSION=\"#MODULE_VERSION#\"",
        );
        let c = parse_ok(&arch, k, Some("zfs-2.1.9"));
        assert_eq!(c.package_version, "2.1.9");
        // dkms passes the placeholder on into POST_BUILD unchanged, and so do we, with a word.
        assert!(c
            .post_build
            .as_deref()
            .unwrap()
            .contains("-v #MODULE_VERSION#"));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("POST_BUILD contains the placeholder")));
    }

    #[test]
    fn arrays_with_several_modules_and_make_match() {
        let text = r#"PACKAGE_NAME="multi"
PACKAGE_VERSION=2.0
MAKE[0]="make -C $kernel_source_dir M=$dkms_tree/multi/2.0/build"
MAKE[1]='make LEGACY=1 KVER=$kernelver'
MAKE_MATCH[1]="^5\."
STRIP[0]=no
STRIP[2]=yes
BUILT_MODULE_NAME[0]=one
BUILT_MODULE_LOCATION[0]=src/one
DEST_MODULE_LOCATION[0]=/kernel/drivers/misc
BUILT_MODULE_NAME[1]=two
DEST_MODULE_NAME[1]=two_renamed
DEST_MODULE_LOCATION[1]=/extra
BUILT_MODULE_NAME[2]=three
BUILT_MODULE_LOCATION[2]=src/three/
DEST_MODULE_LOCATION[2]=/updates
PATCH[0]=fix-5.x.patch
PATCH_MATCH[0]="^5\."
PATCH[1]=always.patch
BUILD_EXCLUSIVE_KERNEL="^(5\.|6\.[0-9]\.)"
BUILD_EXCLUSIVE_ARCH=x86_64
AUTOINSTALL=yes
"#;
        let c = parse_ok(text, "5.15.0-1", None);
        assert_eq!(
            c.make,
            [
                "make -C /lib/modules/5.15.0-1/build M=/var/lib/dkms/multi/2.0/build",
                "make LEGACY=1 KVER=5.15.0-1"
            ]
        );
        assert_eq!(c.make_match, ["", "^5\\."]);
        let m = |b: &str, bl: &str, d: &str, dn: &str, s: bool| Module {
            built_name: b.into(),
            built_location: bl.into(),
            dest_location: d.into(),
            dest_name: dn.into(),
            strip: s,
        };
        assert_eq!(
            c.modules,
            [
                m("one", "src/one/", "/kernel/drivers/misc", "one", false),
                // An empty STRIP follows record 0.
                m("two", "", "/extra", "two_renamed", false),
                m("three", "src/three/", "/updates", "three", true),
            ]
        );
        assert_eq!(
            c.patches,
            [
                Patch {
                    file: "fix-5.x.patch".into(),
                    kernel_match: Some("^5\\.".into())
                },
                Patch {
                    file: "always.patch".into(),
                    kernel_match: None
                },
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // MAKE_MATCH[0] is unset, so MAKE[0] is the default and MAKE[1] wins on 5.x.
        assert_eq!(
            c.make_command(&vars("5.15.0-1"), 2).unwrap(),
            "make -j2 KERNELRELEASE=5.15.0-1 LEGACY=1 KVER=5.15.0-1"
        );
        let c6 = parse_ok(text, "6.1.0-1", None);
        assert_eq!(
            c6.make_command(&vars("6.1.0-1"), 0).unwrap(),
            "make -j KERNELRELEASE=6.1.0-1 -C /lib/modules/6.1.0-1/build M=/var/lib/dkms/multi/2.0/build"
        );
        assert_eq!(c6.build_excluded(&vars("6.1.0-1")).unwrap(), None);
        let why = c6.build_excluded(&vars("6.10.1-arch1-1")).unwrap().unwrap();
        assert!(why.contains("BUILD_EXCLUSIVE_KERNEL"), "{why}");
        let mut arm = vars("6.1.0-1");
        arm.arch = "aarch64".into();
        assert!(c6
            .build_excluded(&arm)
            .unwrap()
            .unwrap()
            .contains("aarch64"));
    }

    /// umlaeute/v4l2loopback 0.12.5: an exclusion decided by the kernel's .config, in bash.
    const V4L2LOOPBACK: &str = "PACKAGE_NAME=\"v4l2loopback\"\nPACKAGE_VERSION=\"0.12.5\"\n\nif [ -f $kernel_source_dir/.config ]; then\n    . $kernel_source_dir/.config\n    if [ \"${CONFIG_VIDEO_V4L2:-n}\" = \"n\" ]; then\n        BUILD_EXCLUSIVE_KERNEL=\"REQUIRES CONFIG_VIDEO_V4L2\"\n    fi\nfi\n\n# Items below here should not have to change with each driver version\nMAKE[0]=\"make KERNEL_DIR=${kernel_source_dir} all\"\nCLEAN=\"make clean\"\n\nBUILT_MODULE_NAME[0]=\"$PACKAGE_NAME\"\nDEST_MODULE_LOCATION[0]=\"/extra\"\n\nAUTOINSTALL=\"yes\"\n";

    #[test]
    fn v4l2loopback_builds_but_cannot_say_whether_dkms_would() {
        let c = parse_ok(V4L2LOOPBACK, "6.2.8-arch1-1", Some("v4l2loopback-0.12.5"));
        assert_eq!(
            c.make,
            ["make KERNEL_DIR=/lib/modules/6.2.8-arch1-1/build all"]
        );
        assert_eq!(c.modules[0].built_name, "v4l2loopback");
        assert_eq!(c.build_exclusive_kernel, None);
        assert_eq!(c.inexact, ["BUILD_EXCLUSIVE_KERNEL"]);
        assert!(
            c.warnings.iter().any(|w| w.starts_with("lines 4-9: `if` was not run; the values it may set stay unknown: BUILD_EXCLUSIVE_KERNEL")),
            "{:?}",
            c.warnings
        );
        let why = c.build_excluded(&vars("6.2.8-arch1-1")).unwrap().unwrap();
        assert!(
            why.contains("BUILD_EXCLUSIVE_KERNEL depends on shell code that only bash can run"),
            "{why}"
        );
    }

    #[test]
    fn quoted_make_keeps_dkms_from_adding_its_arguments() {
        // nvidia's trick: "'make'" does not start with `make`, so dkms adds neither -j nor
        // KERNELRELEASE (the kernel Makefile would misread KERNELRELEASE).
        let c = parse_ok(
            "PACKAGE_NAME=nvidia\nPACKAGE_VERSION=550.78\nMAKE[0]=\"'make' -j16 NV_EXCLUDE_BUILD_MODULES='' KERNEL_UNAME=${kernelver} modules\"\nBUILT_MODULE_NAME[0]=nvidia\nDEST_MODULE_LOCATION[0]=/kernel/drivers/video\n",
            "6.9.1-arch1-1",
            None,
        );
        assert_eq!(
            c.make_command(&vars("6.9.1-arch1-1"), 4).unwrap(),
            "'make' -j16 NV_EXCLUDE_BUILD_MODULES='' KERNEL_UNAME=6.9.1-arch1-1 modules"
        );
    }

    #[test]
    fn default_make_command_and_single_module_defaults() {
        let c = parse_ok(
            "PACKAGE_NAME=gpl-hello\nPACKAGE_VERSION=1.0\nDEST_MODULE_LOCATION[0]=/updates/dkms\n",
            "6.1.0-1",
            None,
        );
        // One record without a name is named after the package (read_conf, line 532).
        assert_eq!(c.modules[0].built_name, "gpl-hello");
        assert!(c.make.is_empty());
        assert!(!c.autoinstall);
        assert_eq!(
            c.make_command(&vars("6.1.0-1"), 3).unwrap(),
            "make -j3 KERNELRELEASE=6.1.0-1 -C /lib/modules/6.1.0-1/build M=/var/lib/dkms/gpl-hello/1.0/build"
        );
    }

    #[test]
    fn quoting_and_expansion_follow_bash_and_dkms() {
        // Every expected value here is what dkms 3.0.10's safe_source produced for this file.
        let text = r#"# comment line
PACKAGE_NAME=foo   # trailing comment
PACKAGE_VERSION='1.0 $kernelver'
MAKE[0]="make   -C
  $kernel_source_dir   M=\$dkms_tree/$PACKAGE_NAME" ; CLEAN=true
MAKE_MATCH[0]=${OBSOLETE_BY:-'^6\.'}
POST_BUILD=post\ build.sh\
--flag
PRE_BUILD="  lead"'trail  '
POST_INSTALL="${PACKAGE_NAME}-x${PACKAGE_VERSION:+-has}${OBSOLETE_BY-dflt}"
BUILT_MODULE_NAME=(a "b c" [5]=e)
DEST_MODULE_LOCATION+=/kernel/x
DEST_MODULE_LOCATION+=/y
POST_REMOVE='a\\b "q"'
POST_ADD=x$
BUILD_DEPENDS=("spl" zcommon)
export PRE_INSTALL=pre.sh
"#;
        let r = parse(text, &vars("6.1.0-1"), None);
        // Three module records, two without DEST_MODULE_LOCATION: the file is refused, but
        // the values are worth checking first with a valid module list.
        let e = r.unwrap_err().to_string();
        assert!(e.contains("no DEST_MODULE_LOCATION for record #1"), "{e}");
        let fixed = text.replace(
            "BUILT_MODULE_NAME=(a \"b c\" [5]=e)",
            "BUILT_MODULE_NAME=(a)",
        );
        let c = parse_ok(&fixed, "6.1.0-1", None);
        assert_eq!(c.package_name, "foo");
        // Single quotes keep `$kernelver`, and dkms's second reading expands it.
        assert_eq!(c.package_version, "1.0 6.1.0-1");
        assert_eq!(
            c.make,
            ["make -C /lib/modules/6.1.0-1/build M=/var/lib/dkms/foo"]
        );
        assert_eq!(c.make_match, ["^6\\."]);
        assert_eq!(c.clean.as_deref(), Some("true"));
        assert_eq!(c.post_build.as_deref(), Some("post build.sh--flag"));
        assert_eq!(c.pre_build.as_deref(), Some(" leadtrail "));
        assert_eq!(c.post_install.as_deref(), Some("foo-x-hasdflt"));
        assert_eq!(c.post_remove.as_deref(), Some("a\\b q"));
        assert_eq!(c.post_add.as_deref(), Some("x$"));
        assert_eq!(c.pre_install.as_deref(), Some("pre.sh"));
        assert_eq!(c.build_depends, ["spl", "zcommon"]);
        assert_eq!(c.modules[0].dest_location, "/kernel/x/y");
        // OBSOLETE_BY is a dkms.conf variable, unset before sourcing: the default applies.
        assert!(c.inexact.is_empty(), "{:?} {:?}", c.inexact, c.warnings);

        let list = parse_ok(
            "PACKAGE_NAME=p\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=(a \"b c\" [2]=e)\nDEST_MODULE_LOCATION=(/kernel /kernel [2]=/extra)\nDEST_MODULE_LOCATION[1]=/updates\n",
            "6.1.0-1",
            None,
        );
        let names: Vec<_> = list
            .modules
            .iter()
            .map(|m| (m.built_name.as_str(), m.dest_location.as_str()))
            .collect();
        assert_eq!(
            names,
            [("a", "/kernel"), ("b c", "/updates"), ("e", "/extra")]
        );
    }

    #[test]
    fn sparse_arrays_and_bad_records_are_refused_like_dkms() {
        // dkms's own test, dkms_conf_test_sparse_arrays.
        let e = parse_err("PACKAGE_NAME=\"dkms_conf_test\"\nPACKAGE_VERSION=\"1.0\"\nBUILT_MODULE_NAME[1]=\"dkms_sparse_arrays_test_1\"\nDEST_MODULE_LOCATION[1]=\"/kernel/extra\"\nBUILT_MODULE_NAME[3]=\"dkms_sparse_arrays_test_3\"\nDEST_MODULE_LOCATION[3]=\"/kernel/extra\"\nDEST_MODULE_LOCATION[4]=\"/oops\"\n");
        assert!(e.contains("no BUILT_MODULE_NAME for record #0"), "{e}");
        assert!(e.contains("\"/oops\" does not begin with"), "{e}");
        // dkms_conf_test_invalid
        let e = parse_err("PACKAGE_NAME=\"dkms_conf_test\"\nPACKAGE_VERSION=\"1.0\"\nDEST_MODULE_NAME[0]=\"bar.ko\"\nDEST_MODULE_LOCATION=\"/wrong/path\"\nBUILT_MODULE_NAME[1]=\"bar.o\"\nDEST_MODULE_NAME[1]=\"foo\"\nAUTOINSTALL=\"maybe\"\n");
        assert!(
            e.contains("DEST_MODULE_NAME ends in .o or .ko in record #0"),
            "{e}"
        );
        assert!(
            e.contains("BUILT_MODULE_NAME ends in .o or .ko in record #1"),
            "{e}"
        );
        assert!(e.contains("no DEST_MODULE_LOCATION for record #1"), "{e}");
        // dkms_conf_test_zero_modules: refused by dkms 3.0.
        let e = parse_err(
            "PACKAGE_NAME=\"dkms_conf_test\"\nPACKAGE_VERSION=\"1.0\"\nAUTOINSTALL=\"yes\"\n",
        );
        assert!(e.contains("no module records"), "{e}");
        assert!(
            parse_err("PACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/extra\n")
                .contains("no PACKAGE_NAME")
        );
        assert!(parse_err("PACKAGE_NAME=x\nDEST_MODULE_LOCATION=/extra\n")
            .contains("no PACKAGE_VERSION"));
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let head = "PACKAGE_NAME=p\nPACKAGE_VERSION=1\n";
        let e = parse_err(&format!(
            "{head}MAKE[0]=\"make\nDEST_MODULE_LOCATION=/extra\n"
        ));
        assert!(
            e.contains("dkms.conf line 3: unterminated double quote"),
            "{e}"
        );
        let e = parse_err(&format!("{head}\n\nCLEAN='x\n"));
        assert!(
            e.contains("dkms.conf line 5: unterminated single quote"),
            "{e}"
        );
        let e = parse_err(&format!("{head}BUILT_MODULE_NAME = foo\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("no blanks around '='"),
            "{e}"
        );
        let e = parse_err(&format!("{head}DEST_MODULE_LOCATION= /extra\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("DEST_MODULE_LOCATION="),
            "{e}"
        );
        let e = parse_err(&format!("{head}MAKE[$i]=make\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("not a number"),
            "{e}"
        );
        let e = parse_err(&format!("{head}MAKE=\"${{}}\"\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("bad substitution"),
            "{e}"
        );
        let e = parse_err(&format!("{head}\nPRE_BUILD=\"$(echo\n"));
        assert!(
            e.contains("dkms.conf line 4:") && e.contains("unterminated $("),
            "{e}"
        );
        let e = parse_err(&format!("{head}if true; then\nPOST_BUILD=x\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("not closed"),
            "{e}"
        );
        let e = parse_err(&format!("{head}fi\n"));
        assert!(
            e.contains("dkms.conf line 3: syntax error near `fi`"),
            "{e}"
        );
        let e = parse_err(
            "PACKAGE_NAME=p\nunset PACKAGE_NAME\nPACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/extra\n",
        );
        assert!(e.contains("no PACKAGE_NAME"), "{e}");
        let e = parse_err(&format!("{head}) \n"));
        assert!(e.contains("dkms.conf line 3: syntax error"), "{e}");
    }

    #[test]
    fn what_needs_bash_is_a_warning_or_an_error() {
        let head = "PACKAGE_NAME=p\nPACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/extra\n";
        // The make command cannot be known: refused. `uname -r` would even name the
        // running kernel, not the one being built for.
        let e = parse_err(&format!("{head}MAKE[0]=\"make KVER=$(uname -r)\"\n"));
        assert!(
            e.contains("dkms.conf line 4: MAKE depends on command substitution `$(uname -r)`"),
            "{e}"
        );
        let e = parse_err(&format!("{head}MAKE[0]=\"make `uname -r`\"\n"));
        assert!(e.contains("`uname -r`"), "{e}");
        // A CPU count is known.
        let c = parse_ok(
            &format!("{head}MAKE[0]=\"make -j$(nproc) -C $kernel_source_dir\"\nCLEAN=\"make -j`nproc` clean\"\n"),
            "6.1.0-1",
            None,
        );
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            c.make,
            [format!("make -j{n} -C /lib/modules/6.1.0-1/build")]
        );
        assert_eq!(c.clean, Some(format!("make -j{n} clean")));
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("line 4: `$(nproc)` counts as")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("line 5: `\u{60}nproc\u{60}` counts as")),
            "{:?}",
            c.warnings
        );
        let e = parse_err(&format!("{head}BUILT_MODULE_NAME=$MYNAME\n"));
        assert!(
            e.contains("`$MYNAME`") && e.contains("set neither in dkms.conf nor by dkms"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{head}if [ \"$kernelver\" = x ]; then\n  MAKE[0]=\"make A=1\"\nfi\n"
        ));
        assert!(
            e.contains("dkms.conf lines 4-6: MAKE is assigned inside `if`"),
            "{e}"
        );
        let e = parse_err(&format!("{head}[ -n \"$x\" ] && PATCH[0]=a.patch\n"));
        assert!(e.contains("PATCH is assigned inside a command list"), "{e}");
        // Whether to build is not what to build: an unknown exclusion is a warning, and
        // build_excluded() says it cannot answer.
        let c = parse_ok(
            &format!("{head}[ -n \"$x\" ] && BUILD_EXCLUSIVE_KERNEL=\"^6\"\n"),
            "6.1.0-1",
            None,
        );
        assert!(c.inexact.contains(&"BUILD_EXCLUSIVE_KERNEL".to_string()));
        let why = c.build_excluded(&vars("6.1.0-1")).unwrap().unwrap();
        assert!(why.contains("is unknown"), "{why}");

        // Optional values: warnings, and the directive is listed as inexact.
        let c = parse_ok(
            &format!("{head}POST_BUILD=\"post.sh $HOME\"\nif [ -e /x ]; then\n  POST_INSTALL=a\nelse\n  POST_INSTALL=b\nfi\nhelper() {{\n  echo hi\n}}\necho done\nfor m in a b; do POST_REMOVE=$m; done\n"),
            "6.1.0-1",
            None,
        );
        assert_eq!(c.post_build.as_deref(), Some("post.sh "));
        assert!(c.post_install.is_none());
        assert!(
            c.inexact.contains(&"POST_BUILD".to_string()),
            "{:?}",
            c.inexact
        );
        assert!(
            c.inexact.contains(&"POST_INSTALL".to_string()),
            "{:?}",
            c.inexact
        );
        assert!(
            c.inexact.contains(&"POST_REMOVE".to_string()),
            "{:?}",
            c.inexact
        );
        let w = c.warnings.join("\n");
        assert!(
            w.contains("line 4: POST_BUILD: `$HOME` (line 4), set neither"),
            "{w}"
        );
        assert!(
            w.contains(
                "lines 5-9: `if` was not run; the values it may set stay unknown: POST_INSTALL"
            ),
            "{w}"
        );
        assert!(
            w.contains("lines 10-12: the function helper() was not run"),
            "{w}"
        );
        assert!(
            w.contains("line 13: command `echo done` was not run"),
            "{w}"
        );
        assert!(w.contains("line 14: `for` was not run"), "{w}");
    }

    #[test]
    fn autoinstall_crlf_and_deprecated_directives() {
        let base = "PACKAGE_NAME=p\nPACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/extra\n";
        assert!(parse_ok(&format!("{base}AUTOINSTALL=yes\n"), "6.1.0-1", None).autoinstall);
        assert!(parse_ok(&format!("{base}AUTOINSTALL=YES\n"), "6.1.0-1", None).autoinstall);
        assert!(!parse_ok(&format!("{base}AUTOINSTALL=\n"), "6.1.0-1", None).autoinstall);
        let c = parse_ok(&format!("{base}AUTOINSTALL=no\n"), "6.1.0-1", None);
        assert!(!c.autoinstall);
        assert!(c.warnings[0].contains("dkms 3.0 autoinstalls for any non-empty value"));
        let c = parse_ok(&format!("{base}AUTOINSTALL=true\n"), "6.1.0-1", None);
        assert!(c.autoinstall);

        // dkms's own dkms_crlf_test.
        let crlf = "PACKAGE_NAME=\"dkms_crlf_test\"\r\nPACKAGE_VERSION=\"1.0\"\r\nBUILT_MODULE_NAME[0]=\"dkms_dos_test\"\r\nDEST_MODULE_LOCATION[0]=\"/kernel/extra\"\r\nAUTOINSTALL=\"yes\"\r\n";
        let c = parse_ok(crlf, "6.1.0-1", None);
        assert_eq!(c.package_name, "dkms_crlf_test");
        assert_eq!(c.modules[0].built_name, "dkms_dos_test");
        assert!(c.autoinstall);
        assert!(c.warnings[0].contains("CRLF"));

        let c = parse_ok(
            &format!("{base}REMAKE_INITRD=yes\nstrip[0]=no\n"),
            "6.1.0-1",
            None,
        );
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("REMAKE_INITRD is deprecated")));
        assert!(c.warnings.iter().any(|w| w.contains("internal variables")));
    }

    #[test]
    fn reads_the_fixture_trees() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modules");
        let v = vars("6.1.0-56-amd64");
        let c = read(&root.join("gpl-hello"), &v).unwrap();
        assert_eq!(
            (c.package_name.as_str(), c.package_version.as_str()),
            ("gpl-hello", "1.0")
        );
        assert_eq!(c.modules[0].built_name, "gpl_hello");
        assert_eq!(c.modules[0].dest_location, "/updates/dkms");
        assert!(c.autoinstall);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for d in ["cddl-gplonly", "api-missing", "meta-old", "header-removed"] {
            let c = read(&root.join(d), &v).unwrap();
            assert_eq!(c.package_name, d);
            assert!(c.warnings.is_empty(), "{d}: {:?}", c.warnings);
        }
        let e = read(&root.join("nonexistent"), &v).unwrap_err();
        assert_eq!(e.kind(), Kind::Missing);

        assert_eq!(read_meta(&root.join("gpl-hello")).unwrap(), None);
        let m = read_meta(&root.join("meta-old")).unwrap().unwrap();
        assert_eq!(m.linux_max.as_deref(), Some("5.15"));
        let why = meta_range_check(&m, "6.1.0-56-amd64").unwrap().unwrap();
        assert_eq!(
            why,
            "meta-old 0.8.0 supports Linux 3.10 – 5.15; 6.1.0-56-amd64 is newer: keep a 5.15 kernel or use a meta-old release that supports 6.1"
        );
    }

    const ZFS_219_META: &str = "Meta:          1\nName:          zfs\nBranch:        1.0\nVersion:       2.1.9\nRelease:       1\nRelease-Tags:  relext\nLicense:       CDDL\nAuthor:        OpenZFS\nLinux-Maximum: 6.1\nLinux-Minimum: 3.10\n";

    #[test]
    fn meta_parses_like_zfs_meta_m4() {
        let m = parse_meta(ZFS_219_META).unwrap();
        assert_eq!(
            m,
            Meta {
                name: Some("zfs".into()),
                version: Some("2.1.9".into()),
                release: Some("1".into()),
                license: Some("CDDL".into()),
                linux_min: Some("3.10".into()),
                linux_max: Some("6.1".into()),
            }
        );
        // First match wins, leading spaces are fine, a commented line and a key without a
        // blank after the colon do not count, and the value ends at the next ": ".
        let m = parse_meta(
            "#Version: 9\n  Version:\t2.2.0\nVersion: 3\nName:zfs\nProject: zfs: extra\n",
        )
        .unwrap();
        assert_eq!(m.version.as_deref(), Some("2.2.0"));
        assert_eq!(m.name.as_deref(), Some("zfs"));
        let e = parse_meta("Linux-Maximum: six\n").unwrap_err();
        assert!(
            e.to_string().contains("META line 1: Linux-Maximum \"six\""),
            "{e}"
        );
        assert_eq!(parse_meta("").unwrap(), Meta::default());
    }

    #[test]
    fn meta_range_by_major_minor() {
        let m = parse_meta(ZFS_219_META).unwrap();
        assert_eq!(meta_range_check(&m, "6.1.12-arch1-1").unwrap(), None);
        assert_eq!(meta_range_check(&m, "3.10.0").unwrap(), None);
        assert_eq!(
            meta_range_check(&m, "6.2.8-arch1-1").unwrap().unwrap(),
            "zfs 2.1.9 supports Linux 3.10 – 6.1; 6.2.8-arch1-1 is newer: keep a 6.1 kernel or use a zfs release that supports 6.2"
        );
        assert_eq!(
            meta_range_check(&m, "3.9.0").unwrap().unwrap(),
            "zfs 2.1.9 supports Linux 3.10 – 6.1; 3.9.0 is older: use a kernel of at least 3.10 or a zfs release that supports 3.9"
        );
        // 6.10 is newer than 6.1: numbers, not strings.
        assert!(meta_range_check(&m, "6.10.1-arch1-1")
            .unwrap()
            .unwrap()
            .contains("is newer"));
        assert!(meta_range_check(&m, "linux").is_err());
        assert_eq!(meta_range_check(&Meta::default(), "6.2.8").unwrap(), None);
        let only_max = Meta {
            linux_max: Some("6.1".into()),
            ..Meta::default()
        };
        assert_eq!(
            meta_range_check(&only_max, "6.2.1").unwrap().unwrap(),
            "this module supports Linux up to 6.1; 6.2.1 is newer: keep a 6.1 kernel or use a release of this module that supports 6.2"
        );
    }

    fn m(re: &str, s: &str) -> bool {
        match exclusive_kernel_matches(re, s) {
            Ok(b) => b,
            Err(e) => panic!("{re}: {e}"),
        }
    }

    #[test]
    fn regex_matches_like_bash() {
        // Every case was checked against bash's [[ s =~ re ]].
        assert!(m("^(6\\.[0-1]\\.|5\\.)", "6.1.12-arch1-1"));
        assert!(m("^(6\\.[0-1]\\.|5\\.)", "5.15.0"));
        assert!(!m("^(6\\.[0-1]\\.|5\\.)", "6.2.8-arch1-1"));
        assert!(!m("^(6\\.[0-1]\\.|5\\.)", "6.10.1"));
        assert!(m("^6\\.[0-9]+\\.", "6.10.1-arch1-1"));
        assert!(!m("^6\\.[0-9]+\\.", "16.1.0"));
        assert!(m("arch", "6.2.8-arch1-1"), "unanchored search");
        assert!(!m("^arch", "6.2.8-arch1-1"));
        assert!(m("-1$", "6.2.8-arch1-1"));
        assert!(!m("^6\\.2$", "6.2.8"));
        assert!(m("6.2", "6x2"), ". is any character");
        assert!(!m("6\\.2", "6x2"));
        assert!(m("^[^5]", "6.1"));
        assert!(!m("^[^56]", "6.1"));
        assert!(m("[[:digit:]]+-lts$", "6.6.30-1-lts"));
        assert!(m("^x{2}$", "xx") && !m("^x{2}$", "xxx"));
        assert!(m("^a{,2}$", "aa") && !m("^a{,2}$", "aaa"));
        assert!(m("^a{2,}$", "aaaa") && !m("^a{2,}$", "a"));
        assert!(m("^(ab|cd)*e?$", "abcdab") && m("^(ab|cd)*e?$", "e"));
        assert!(m("(a|)", "b") && m("()", "x") && m("a|", "x"));
        assert!(m("[]a]", "]") && m("[^]a]", "b") && m("[a-]", "-"));
        assert!(m("[\\.]", "\\"), "backslash is literal in brackets");
        assert!(m("a)", "a)"), "an unmatched ) is literal in glibc");
        assert!(m("\\(", "(") && m("\\{", "{"));
        assert!(m("^\\w+\\s\\S$", "ab x"));
        assert!(
            m("^(a*)*$", "aaa") && m("^(a*)*$", ""),
            "empty loops terminate"
        );
        assert!(m("x*", ""));
    }

    #[test]
    fn regex_refuses_what_it_cannot_answer() {
        for bad in [
            "*a",
            "+a",
            "a{",
            "a{1",
            "a{2,1}",
            "(a",
            "[a",
            "[z-a]",
            "^*",
            "[[:foo:]]",
            "\\",
            "{1}a",
        ] {
            // bash fails these too (status 2).
            let e = exclusive_kernel_matches(bad, "a").unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{bad}");
        }
        for unsupported in ["(a)\\1", "\\bword", "[[.a.]]", "[[=a=]]", "\\d", "a{99999}"] {
            let e = exclusive_kernel_matches(unsupported, "a").unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{unsupported}");
        }
        let e = exclusive_kernel_matches("\\d+", "5").unwrap_err();
        assert!(e.to_string().contains("plain 'd'"), "{e}");
        // Counted repetition is bounded.
        assert!(exclusive_kernel_matches("(((a{100}){100}){100})", "a").is_err());
    }

    // -----------------------------------------------------------------------------------------
    // Read by bash, as dkms reads it

    /// The bash of the test machine, the one dkms runs.
    const BASH: &str = "/bin/bash";

    fn dkms_conf_fixture(file: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dkms-conf")
            .join(file);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// `text` as `dir/NAME/dkms.conf`; returns `dir/NAME`.
    fn conf_dir(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("dkms.conf"), text).unwrap();
        d
    }

    /// A kernel tree `dir/lib/modules/KVER/build`, with a `.config` if given and a `source`
    /// directory beside `build` if asked, as Debian's -amd64 and -common headers make it.
    fn kernel_tree(dir: &Path, kver: &str, config: Option<&str>, source: bool) -> Vars {
        let m = dir.join("lib/modules").join(kver);
        std::fs::create_dir_all(m.join("build")).unwrap();
        if let Some(c) = config {
            std::fs::write(m.join("build/.config"), c).unwrap();
        }
        if source {
            std::fs::create_dir_all(m.join("source")).unwrap();
        }
        Vars {
            kernelver: kver.to_string(),
            kernel_source_dir: m.join("build").display().to_string(),
            dkms_tree: dir.join("dkms-tree").display().to_string(),
            source_tree: dir.join("src").display().to_string(),
            arch: "x86_64".to_string(),
        }
    }

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
module=$7 module_version=$8
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

    /// Every dkms.conf of the fixtures, named as its source directory would be.
    fn every_fixture_conf() -> Vec<(String, String)> {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut found = Vec::new();
        for e in std::fs::read_dir(base.join("dkms-conf")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if let Some(stem) = name.strip_suffix(".conf") {
                let (_, dir) = stem.split_once('-').unwrap();
                found.push((dir.to_string(), std::fs::read_to_string(&p).unwrap()));
            }
        }
        for e in std::fs::read_dir(base.join("modules")).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(p.join("dkms.conf")).unwrap();
            let version = text
                .lines()
                .find_map(|l| l.strip_prefix("PACKAGE_VERSION="))
                .map_or("1.0", |v| v.trim_matches('"'));
            let name = p.file_name().unwrap().to_str().unwrap();
            found.push((format!("{name}-{version}"), text));
        }
        found.sort();
        found
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
