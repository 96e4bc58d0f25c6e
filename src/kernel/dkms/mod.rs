//! `dkms.conf` as dkms 3 reads it, and OpenZFS's `META` kernel range.
//!
//! dkms sources `dkms.conf` with bash. rtool must not need bash, so it has a small evaluator
//! for what real files contain (`lex.rs`, `shell.rs`; the subset is spelled out there). It
//! also copies how dkms reads the result back. `safe_source` (/usr/sbin/dkms 3.0.10, lines
//! 407-437) echoes every value *unquoted* into a temporary file and sources that file again.
//! So dkms joins every value's words with single spaces, then expands the value a second
//! time inside double quotes. This module does the same. Line numbers in these files'
//! comments are those of Debian's /usr/sbin/dkms 3.0.10. dkms 3.2 is cited where it differs.
//!
//! Whatever needs bash is never guessed. Such a construct is an error when it touches a
//! value that says what is built and how (name, version, make command, module list,
//! patches). Elsewhere it is a warning, and the directive is listed in [`Conf::inexact`];
//! [`read`] then asks bash itself when it is installed (`bash.rs`).
//!
//! The parts: this file holds the model (`Vars`, `Conf`, `Module`, `Patch`), [`read`],
//! [`parse`] and dkms's checks of the values; `ere.rs` answers bash's `=~` for
//! `BUILD_EXCLUSIVE_*`, `MAKE_MATCH` and `PATCH_MATCH`; `meta.rs` reads OpenZFS's `META`.

mod bash;
mod ere;
#[cfg(test)]
mod fixtures;
mod lex;
mod meta;
mod shell;

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use shell::{Array, Shell};

pub use bash::parse_with_bash;
pub use meta::{meta_range_check, parse_meta, read_meta, Meta};

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
    /// dkms's own `build_exclude`, set by the file itself: nvidia-tesla-470 sets it for
    /// `-rt-` kernels. dkms skips the module when it is non-empty (line 1022).
    pub build_exclude: bool,
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
/// POSIX ERE search, translated for regex-lite by glibc's rules (see `ere.rs`). A pattern
/// whose answer could differ from bash's is an error naming it, never a guess. (For an
/// invalid pattern, bash's test fails, and dkms then excludes the module.)
pub fn exclusive_kernel_matches(pattern: &str, kver: &str) -> Result<bool> {
    ere::search(pattern, kver)
        .map_err(|m| Error::invalid(format!("regular expression {pattern:?}: {m}")))
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
    /// `BUILD_EXCLUSIVE_KERNEL` and `BUILD_EXCLUSIVE_ARCH` (lines 624-625), and a
    /// `build_exclude` the file set itself. `_CONFIG` needs
    /// the kernel's `.config`, and `_KERNEL_MIN`/`_MAX` dkms 3.1's version order, so they
    /// are left to the caller. An error when either directive needed bash to be known
    /// (v4l2loopback sets BUILD_EXCLUSIVE_KERNEL inside an `if`): the answer is unknown.
    pub fn build_excluded(&self, vars: &Vars) -> Result<Option<String>> {
        for d in [
            "BUILD_EXCLUSIVE_KERNEL",
            "BUILD_EXCLUSIVE_ARCH",
            "build_exclude",
        ] {
            if self.inexact.iter().any(|i| i == d) {
                return Ok(Some(format!(
                    "{d} depends on shell code that only bash can run (bash is not installed), so whether dkms would build it for {} is unknown",
                    vars.kernelver
                )));
            }
        }
        if self.build_exclude {
            return Ok(Some(format!(
                "dkms.conf sets dkms's build_exclude itself for kernel {}",
                vars.kernelver
            )));
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
        build_exclude: scalar("build_exclude").is_some(),
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
        // dkms checks none of this; rtool installs into a root and must stay inside its
        // modules directory: names are plain names, locations never climb.
        for (what, v) in [
            ("BUILT_MODULE_NAME", &built_name),
            ("DEST_MODULE_NAME", &dest_name),
        ] {
            if v.contains('/') || v == ".." || v == "." {
                problems.push(format!(
                    "{what} {v:?} in record #{i} is not a plain file name"
                ));
            }
        }
        for (what, v) in [
            ("BUILT_MODULE_LOCATION", &built_location),
            ("DEST_MODULE_LOCATION", &dest_location),
        ] {
            if v.split('/').any(|c| c == "..") {
                problems.push(format!("{what} {v:?} in record #{i} climbs out with '..'"));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn names_and_locations_never_leave_the_modules_directory() {
        let v = Vars::for_kernel("6.1.0-57-amd64", "x86_64");
        for (line, says) in [
            (
                "BUILT_MODULE_NAME[0]=../../evil",
                "BUILT_MODULE_NAME \"../../evil\" in record #0 is not a plain file name",
            ),
            (
                "DEST_MODULE_NAME[0]=sub/evil",
                "DEST_MODULE_NAME \"sub/evil\" in record #0 is not a plain file name",
            ),
            (
                "BUILT_MODULE_LOCATION[0]=../../../etc",
                "BUILT_MODULE_LOCATION \"../../../etc/\" in record #0 climbs out",
            ),
            (
                "DEST_MODULE_LOCATION[0]=/kernel/../../../etc",
                "DEST_MODULE_LOCATION \"/kernel/../../../etc\" in record #0 climbs out",
            ),
        ] {
            let mut text = String::from(
                "PACKAGE_NAME=evil\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=evil\nDEST_MODULE_LOCATION[0]=/updates\n",
            );
            text.push_str(line);
            text.push('\n');
            let e = parse(&text, &v, None).unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{line}");
            assert!(e.to_string().contains(says), "{line}: {e}");
        }
    }

    pub(super) fn vars(kver: &str) -> Vars {
        Vars::for_kernel(kver, "x86_64")
    }

    pub(super) fn parse_ok(text: &str, kver: &str, dir: Option<&str>) -> Conf {
        match parse(text, &vars(kver), dir) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    pub(super) fn parse_err(text: &str) -> String {
        match parse(text, &vars("6.1.0-1"), None) {
            Ok(c) => panic!("parsed: {c:?}"),
            Err(e) => {
                assert_eq!(e.kind(), Kind::Invalid, "{e}");
                e.to_string()
            }
        }
    }

    /// Arch's acpi_call-dkms 1.1.0, `usr/src/acpi_call-1.1.0/dkms.conf`, byte for byte.
    pub(super) const ACPI_CALL: &str = "PACKAGE_NAME=\"acpi_call\"\nPACKAGE_VERSION=\"#MODULE_VERSION#\"\nAUTOINSTALL=\"yes\"\n\nMAKE[0]=\"make KVERSION=$kernelver\"\nCLEAN=\"make clean\"\n\nBUILT_MODULE_NAME[0]=\"acpi_call\"\nDEST_MODULE_LOCATION[0]=\"/kernel/drivers/acpi\"\n";

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
                .replace("–", crate::text::glyph("–"))
        );
    }
}
