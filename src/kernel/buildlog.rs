//! Why an out-of-tree module build failed, from its `make.log`.
//!
//! The log is what kbuild, gcc or clang, and modpost print, sometimes with dkms's two header
//! lines on top. gcc quotes names with ‘’ in a UTF-8 locale and with '' in C. Both are read
//! the same way. The patterns come from real builds (the logs under
//! `tests/fixtures/buildlogs/`). Where no log could be provoked here (clang's wording of API
//! errors, modpost's "undefined!", gcc plugins), they follow the tools' message formats.

/// One reason for the failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// modpost refused a module whose licence is not GPL-compatible because it uses symbols
    /// the kernel exports GPL-only (openzfs/zfs#14658). `module` has no `.ko`.
    GplOnly {
        module: String,
        symbols: Vec<String>,
    },
    /// The kernel headers are absent, unconfigured or incomplete.
    MissingHeaders {
        detail: String,
    },
    /// The compiler is not the one the kernel was built with. Either field may be empty when
    /// the log does not name it.
    CompilerMismatch {
        built_with: String,
        using: String,
    },
    /// The module's source does not fit this kernel's API.
    ApiChange {
        items: Vec<ApiItem>,
    },
    OutOfMemory,
    OutOfSpace,
    /// Nothing recognised: the last lines that mention an error.
    Other {
        last_errors: Vec<String>,
    },
}

/// One API mismatch and where the compiler saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiItem {
    /// "function 'bio_start_io_acct_x'", "member 'bi_disk' of struct bio", …
    pub what: String,
    /// As the log names it. For a modpost error this is the module file.
    pub file: String,
    /// 0 when the log gives no line (modpost).
    pub line: u32,
}

/// How many lines [`Cause::Other`] keeps.
const OTHER_LINES: usize = 5;

/// Whether the log shows a failure: an error from make, modpost, dkms or configure, or a
/// compiler error. A log that reached `LD [M]` without any of these did not fail.
pub fn failed(log: &str) -> bool {
    log.lines().any(|l| {
        let l = l.trim_end();
        is_make_error(l)
            || l.contains("Error! Bad return status")
            || l.starts_with("ERROR: modpost:")
            || l.starts_with("FATAL: modpost:")
            || l.starts_with("configure: error:")
            || diagnostic(l).is_some()
    })
}

/// Every cause the log shows, the most decisive first. The order is: a full disk or memory,
/// missing headers, a compiler that rejects the kernel's options, GPL-only symbols, API
/// changes, and last a compiler that differs without rejecting anything. A log that
/// [`failed`] always gets a cause that explains it, [`Cause::Other`] at worst. A successful
/// log gets nothing.
pub fn classify(log: &str) -> Vec<Cause> {
    let text = normalize_quotes(log);
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();

    let mut gpl: Vec<(String, Vec<String>)> = Vec::new();
    let mut api: Vec<ApiItem> = Vec::new();
    let mut headers: Vec<String> = Vec::new();
    let mut built_with = String::new();
    let mut using = String::new();
    let mut rejecting_driver: Option<String> = None;
    let mut oom = false;
    let mut nospace = false;

    for (i, &l) in lines.iter().enumerate() {
        if OUT_OF_SPACE.iter().any(|p| l.contains(p)) {
            nospace = true;
        }
        if OUT_OF_MEMORY.iter().any(|p| l.contains(p)) {
            oom = true;
        }
        if let Some(h) = missing_headers(l, lines.get(i + 1).copied()) {
            push_unique(&mut headers, h);
        }
        if let Some(rest) = after(l, "The kernel was built by:") {
            built_with = rest.trim().to_string();
        }
        if let Some(rest) = after(l, "You are using:") {
            using = rest.trim().to_string();
        }
        if let Some((module, symbol)) = gpl_only(l) {
            match gpl.iter_mut().find(|(m, _)| *m == module) {
                Some((_, syms)) => push_unique(syms, symbol),
                None => gpl.push((module, vec![symbol])),
            }
            continue;
        }
        if let Some(item) = modpost_undefined(l) {
            push_item(&mut api, item);
            continue;
        }
        let Some(d) = diagnostic(l) else { continue };
        match d.line {
            None => {
                // A driver message ("clang: error: unknown argument: '-mfoo'"): the
                // compiler refuses an option from the kernel's build flags.
                if REJECTED_OPTION.iter().any(|p| d.msg.contains(p)) {
                    rejecting_driver.get_or_insert(d.file.to_string());
                }
            }
            Some(line) => {
                if let Some(header) = d.msg.strip_suffix(": No such file or directory") {
                    if d.fatal && kernel_header(header, d.file) {
                        push_unique(
                            &mut headers,
                            format!(
                                "kernel header {header} is missing (included from {}:{line})",
                                d.file
                            ),
                        );
                        continue;
                    }
                    if d.fatal && kernel_namespace(header) {
                        push_item(
                            &mut api,
                            ApiItem {
                                what: format!("header '{header}'"),
                                file: d.file.to_string(),
                                line,
                            },
                        );
                        continue;
                    }
                }
                if let Some(what) = api_item(d.msg) {
                    push_item(
                        &mut api,
                        ApiItem {
                            what,
                            file: d.file.to_string(),
                            line,
                        },
                    );
                }
            }
        }
    }

    let mut causes = Vec::new();
    if nospace {
        causes.push(Cause::OutOfSpace);
    }
    if oom {
        causes.push(Cause::OutOfMemory);
    }
    if !headers.is_empty() {
        causes.push(Cause::MissingHeaders {
            detail: headers.join("; "),
        });
    }
    let mismatch = |using: &str| Cause::CompilerMismatch {
        built_with: built_with.clone(),
        using: using.to_string(),
    };
    if let Some(driver) = &rejecting_driver {
        causes.push(mismatch(if using.is_empty() { driver } else { &using }));
    }
    for (module, symbols) in gpl {
        causes.push(Cause::GplOnly { module, symbols });
    }
    if !api.is_empty() {
        causes.push(Cause::ApiChange { items: api });
    }
    let soft_mismatch = rejecting_driver.is_none()
        && !built_with.is_empty()
        && without_program(&built_with) != without_program(&using);
    if soft_mismatch {
        causes.push(mismatch(&using));
    }
    // A compiler that merely differs explains nothing by itself: keep the errors too.
    let explained = causes.len() > usize::from(soft_mismatch);
    if !explained && failed(log) {
        causes.push(Cause::Other {
            last_errors: last_errors(&lines),
        });
    }
    causes
}

impl Cause {
    /// A stable name for scripts (`--json`).
    pub fn id(&self) -> &'static str {
        match self {
            Cause::GplOnly { .. } => "gpl-only",
            Cause::MissingHeaders { .. } => "missing-headers",
            Cause::CompilerMismatch { .. } => "compiler-mismatch",
            Cause::ApiChange { .. } => "api-change",
            Cause::OutOfMemory => "out-of-memory",
            Cause::OutOfSpace => "out-of-space",
            Cause::Other { .. } => "other",
        }
    }

    /// A short explanation for a person: what went wrong, then what to do.
    pub fn explain(&self) -> String {
        match self {
            Cause::GplOnly { module, symbols } => {
                let licence = if ZFS_MODULES.contains(&module.as_str()) {
                    "is CDDL-licensed"
                } else {
                    "does not have a GPL-compatible licence"
                };
                format!(
                    "{module} {licence}, so it may not use kernel symbols exported GPL-only, and this kernel exports {} it uses that way: {}. Hold the kernel back (downgrade to a kernel the module supports), or upgrade the module to a release that supports this kernel.",
                    if symbols.len() == 1 { "one symbol" } else { "symbols" },
                    symbols.join(", ")
                )
            }
            Cause::MissingHeaders { detail } => format!(
                "The kernel headers for this kernel are missing or incomplete: {detail}. Install the headers package that matches the kernel exactly (linux-headers for linux, linux-lts-headers for linux-lts, {})."
            , crate::text::glyph("…")),
            Cause::CompilerMismatch { built_with, using } => {
                let what = match (built_with.is_empty(), using.is_empty()) {
                    (false, false) => {
                        format!("The kernel was built with {built_with}, but the module is being compiled with {using}")
                    }
                    (false, true) => format!("The kernel was built with {built_with}, and the compiler used now differs"),
                    (true, false) => format!(
                        "{using} rejects options from the kernel's build flags: the kernel was built with a different compiler"
                    ),
                    (true, true) => "The compiler differs from the one the kernel was built with".to_string(),
                };
                format!("{what}. Build with the same compiler and version as the kernel (a clang-built kernel needs LLVM=1).")
            }
            Cause::ApiChange { items } => {
                let list: Vec<String> = items
                    .iter()
                    .map(|i| {
                        if i.line == 0 {
                            format!("  {} ({})", i.what, i.file)
                        } else {
                            format!("  {} ({}:{})", i.what, i.file, i.line)
                        }
                    })
                    .collect();
                format!(
                    "The module's source does not match this kernel's API; the kernel changed or removed:\n{}\nUpgrade the module to a release that supports this kernel, or keep a kernel the module supports.",
                    list.join("\n")
                )
            }
            Cause::OutOfMemory => "The compiler ran out of memory or was killed (SIGKILL, usually the kernel's out-of-memory killer). Free memory or add swap, and build with fewer parallel jobs.".to_string(),
            Cause::OutOfSpace => "The disk filled up during the build. Free space where the build runs (/var/lib/dkms, /tmp) and build again.".to_string(),
            Cause::Other { last_errors } => {
                if last_errors.is_empty() {
                    "The build failed, and its log names no error.".to_string()
                } else {
                    format!("The build failed; the last errors were:\n  {}", last_errors.join("\n  "))
                }
            }
        }
    }
}

/// The modules of OpenZFS (2.x and earlier), all CDDL.
const ZFS_MODULES: [&str; 10] = [
    "zfs", "spl", "zavl", "znvpair", "zunicode", "zcommon", "icp", "zlua", "zzstd", "openzfs",
];

/// cc1 and as writing temporaries ("error writing to /tmp/cc….s: No space left on device",
/// "can't write … 'No space left on device'") and fixdep losing its output were all
/// captured on a full tmpfs. "Disk quota exceeded" is EDQUOT's message.
const OUT_OF_SPACE: [&str; 3] = [
    "No space left on device",
    "Disk quota exceeded",
    "fixdep: not all data was written to the output",
];

/// Captured: cc1 under `ulimit -v` ("virtual memory exhausted: Cannot allocate memory"), and
/// gcc's driver after cc1 got SIGKILL, which is what the OOM killer sends ("gcc-12: fatal
/// error: Killed signal terminated program cc1"). "out of memory allocating" is cc1's other
/// message (libiberty's xmalloc_failed). Older gcc reported the SIGKILL as "internal compiler
/// error: Killed (program cc1)".
const OUT_OF_MEMORY: [&str; 5] = [
    "virtual memory exhausted",
    "out of memory allocating",
    "Cannot allocate memory",
    "Killed signal terminated program",
    "internal compiler error: Killed",
];

/// Driver messages about options: gcc ("unrecognized command-line option"), clang ("unknown
/// argument", "unsupported option", "'-ftrivial-auto-var-init=zero' hasn't been enabled"),
/// and gcc plugins built for another gcc ("incompatible gcc/plugin versions").
const REJECTED_OPTION: [&str; 7] = [
    "unrecognized command-line option",
    "unrecognized command line option",
    "unknown argument",
    "unsupported option",
    "hasn't been enabled",
    "incompatible gcc/plugin versions",
    "fail to initialize plugin",
];

/// A compiler's `--version` line without the program name: `gcc-12 (Debian 12.2.0-14) 12.2.0`
/// and `gcc (Debian 12.2.0-14) 12.2.0` are the same compiler under two names.
fn without_program(version: &str) -> &str {
    version.split_once(' ').map_or(version, |(_, rest)| rest)
}

/// gcc's ‘’ and “” as plain quotes, so one set of patterns reads both locales.
fn normalize_quotes(s: &str) -> String {
    s.replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"")
}

fn after<'a>(l: &'a str, marker: &str) -> Option<&'a str> {
    l.find(marker).and_then(|i| l.get(i + marker.len()..))
}

/// The `n`th '…' in `s`.
fn quoted(s: &str, n: usize) -> Option<&str> {
    let mut rest = s;
    for k in 0..=n {
        let open = rest.find('\'')?;
        let body = rest.get(open + 1..)?;
        let close = body.find('\'')?;
        if k == n {
            return body.get(..close);
        }
        rest = body.get(close + 1..)?;
    }
    None
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

fn push_item(v: &mut Vec<ApiItem>, item: ApiItem) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// `make: *** […] Error 2`, `make[1]: *** … Stop.`
fn is_make_error(l: &str) -> bool {
    l.starts_with("make") && l.contains(": *** ")
}

/// `ERROR: modpost: GPL-incompatible module zfs.ko uses GPL-only symbol 'bio_start_io_acct'`
/// (older kernels say FATAL). The module without `.ko` or a directory.
fn gpl_only(l: &str) -> Option<(String, String)> {
    let rest = after(l, "GPL-incompatible module ")?;
    let (module, tail) = rest.split_once(" uses GPL-only symbol ")?;
    let symbol = quoted(tail, 0)?;
    let module = module.rsplit('/').next().unwrap_or(module);
    let module = module.strip_suffix(".ko").unwrap_or(module);
    Some((module.to_string(), symbol.to_string()))
}

/// `ERROR: modpost: "sym" [/path/mod.ko] undefined!`: a symbol this kernel does not export.
fn modpost_undefined(l: &str) -> Option<ApiItem> {
    if !(l.starts_with("ERROR: modpost:") || l.starts_with("FATAL: modpost:")) {
        return None;
    }
    let rest = after(l, "modpost: \"")?;
    let (symbol, tail) = rest.split_once('"')?;
    let tail = tail.trim_start();
    let module = tail.strip_prefix('[')?.split_once(']')?.0;
    if !tail.ends_with("undefined!") {
        return None;
    }
    Some(ApiItem {
        what: format!("symbol '{symbol}' (not exported by this kernel)"),
        file: module.to_string(),
        line: 0,
    })
}

/// A compiler error: `file:line:col: error: msg`, or a driver's `prog: error: msg`.
struct Diag<'a> {
    file: &'a str,
    line: Option<u32>,
    fatal: bool,
    msg: &'a str,
}

fn diagnostic(l: &str) -> Option<Diag<'_>> {
    let (at, fatal, len) = [(": fatal error: ", true), (": error: ", false)]
        .iter()
        .find_map(|(m, f)| l.find(m).map(|i| (i, *f, m.len())))?;
    let loc = l.get(..at)?;
    let msg = l.get(at + len..)?;
    // gcc appends the option that made a warning an error: " [-Werror=…]".
    let msg = match msg.rfind(" [-W") {
        Some(i) if msg.ends_with(']') => msg.get(..i).unwrap_or(msg),
        _ => msg,
    };
    if loc.is_empty() || (loc.contains(' ') && !loc.contains('/')) {
        return None;
    }
    let mut parts = loc.rsplitn(3, ':');
    let last = parts.next()?;
    let mid = parts.next();
    let first = parts.next();
    let (file, line) = match (first, mid) {
        // file:line:col
        (Some(f), Some(line)) if last.parse::<u32>().is_ok() && line.parse::<u32>().is_ok() => {
            (f, line.parse().ok())
        }
        // file:line
        _ if last.parse::<u32>().is_ok() => {
            let f = loc.get(..loc.len() - last.len() - 1)?;
            (f, last.parse().ok())
        }
        _ => (loc, None),
    };
    Some(Diag {
        file,
        line,
        fatal,
        msg,
    })
}

/// Whether a missing `header`, included from `from`, means the headers are broken rather
/// than that the module wants a header this kernel dropped. Missing generated and arch
/// headers always mean broken headers, and so does a header included from inside the
/// kernel's own tree.
fn kernel_header(header: &str, from: &str) -> bool {
    const ALWAYS_THERE: [&str; 7] = [
        "linux/kconfig.h",
        "linux/module.h",
        "linux/init.h",
        "linux/kernel.h",
        "linux/types.h",
        "linux/compiler.h",
        "linux/version.h",
    ];
    header.starts_with("generated/")
        || header.starts_with("asm/")
        || ALWAYS_THERE.contains(&header)
        || in_kernel_tree(from)
}

/// Headers under the kernel's own include namespaces. A missing header elsewhere (the
/// module's own `sys/zfs_context.h`) says nothing about the kernel.
fn kernel_namespace(header: &str) -> bool {
    const DIRS: [&str; 16] = [
        "linux/",
        "asm-generic/",
        "uapi/",
        "net/",
        "drm/",
        "media/",
        "scsi/",
        "crypto/",
        "sound/",
        "trace/",
        "xen/",
        "acpi/",
        "keys/",
        "rdma/",
        "video/",
        "soc/",
    ];
    DIRS.iter().any(|d| header.starts_with(d))
}

/// Paths of installed kernel headers or sources, as kbuild prints them.
fn in_kernel_tree(path: &str) -> bool {
    if path.contains("/var/lib/dkms/") {
        return false;
    }
    [
        "/linux-headers-",
        "/lib/modules/",
        "/usr/src/linux",
        "/usr/src/kernels/",
    ]
    .iter()
    .any(|p| path.contains(p))
        || ["./include/", "./arch/", "include/", "arch/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// Signs that the kernel tree itself is unusable, with a detail for a person.
fn missing_headers(l: &str, next: Option<&str>) -> Option<String> {
    if l.contains("Kernel configuration is invalid") {
        // kbuild's next line names the missing files.
        let detail = next
            .map(str::trim)
            .filter(|n| n.contains("missing"))
            .map(|n| {
                format!(
                    "the kernel configuration is invalid: {}",
                    n.trim_end_matches('.')
                )
            })
            .unwrap_or_else(|| "the kernel configuration is invalid".to_string());
        return Some(detail);
    }
    if is_make_error(l) {
        // `make -C DIR` on a directory that is not there (a dangling build link).
        if let Some(rest) = after(l, ": *** ") {
            if let Some(dir) = rest.strip_suffix(": No such file or directory.  Stop.") {
                return Some(format!("{dir} does not exist"));
            }
            if rest.contains("No rule to make target 'modules'")
                || rest.contains("No targets specified and no makefile found")
            {
                return Some("the kernel build directory has no kernel Makefile".to_string());
            }
        }
    }
    if l.contains("Your kernel headers for kernel") {
        return Some(l.trim().to_string());
    }
    // OpenZFS configure: "*** Please make sure the kernel devel package for your
    // distribution is installed".
    if l.contains("make sure the kernel devel package") {
        return Some("configure found no usable kernel source tree".to_string());
    }
    for tool in ["scripts/basic/fixdep", "scripts/mod/modpost"] {
        if l.contains(tool) && (l.contains("No such file or directory") || l.contains("not found"))
        {
            return Some(format!(
                "{tool} is missing: the headers were not prepared for building modules"
            ));
        }
    }
    None
}

/// An API mismatch in a gcc or clang error message, as "what".
fn api_item(msg: &str) -> Option<String> {
    let q0 = quoted(msg, 0);
    if msg.starts_with("implicit declaration of function")
        || msg.starts_with("call to undeclared function")
    {
        return q0.map(|f| format!("function '{f}'"));
    }
    if msg.starts_with("use of undeclared identifier") {
        return q0.map(|x| format!("identifier '{x}'"));
    }
    if msg.starts_with('\'')
        && (msg.contains("' undeclared (") || msg.contains("' undeclared here"))
    {
        return q0.map(|x| format!("identifier '{x}'"));
    }
    if msg.contains("has no member named") {
        // gcc: 'struct bio' has no member named 'bi_disk'; a typedef adds {aka 'struct x'}.
        let ty = match after(msg, "{aka '") {
            Some(aka) => aka.split_once('\'').map(|(t, _)| t),
            None => q0,
        }?;
        let member = after(msg, "has no member named ").and_then(|m| quoted(m, 0))?;
        return Some(format!("member '{member}' of {ty}"));
    }
    if let Some(rest) = msg.strip_prefix("no member named ") {
        // clang: no member named 'bi_disk' in 'struct bio'
        let member = quoted(rest, 0)?;
        let ty = quoted(rest, 1)?;
        return Some(format!("member '{member}' of {ty}"));
    }
    for (prefix, how) in [
        ("too many arguments to function", "too many"),
        ("too few arguments to function", "too few"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            return Some(match quoted(rest, 0) {
                Some(f) => format!("arguments of function '{f}' ({how})"),
                None => format!(
                    "arguments of a function call ({how}{})",
                    rest.trim_start_matches(" call")
                ),
            });
        }
    }
    if msg.starts_with("passing argument") && msg.contains("incompatible pointer type") {
        let n = msg.split_whitespace().nth(2)?;
        let f = q0?;
        return Some(format!(
            "argument {n} of function '{f}' (incompatible pointer type)"
        ));
    }
    if msg.contains("incompatible pointer type")
        || msg.contains("incompatible function pointer type")
    {
        return Some(msg.to_string());
    }
    if msg.starts_with("conflicting types for") {
        return q0.map(|f| format!("declaration of '{f}' (conflicting types)"));
    }
    if msg.starts_with("unknown type name") {
        return q0.map(|t| format!("type '{t}'"));
    }
    if msg.starts_with("invalid use of undefined type")
        || msg.starts_with("dereferencing pointer to incomplete type")
        || msg.starts_with("incomplete definition of type")
    {
        return q0.map(|t| format!("type '{t}' (incomplete here)"));
    }
    None
}

/// The last lines that mention an error, preferring the compiler's and modpost's to make's
/// summary lines.
fn last_errors(lines: &[&str]) -> Vec<String> {
    let mentions = |l: &&&str| l.to_ascii_lowercase().contains("error");
    let mut picked: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| mentions(l))
        .filter(|(_, l)| !is_make_error(l))
        .map(|(i, l)| with_configure_message(l, &lines[i + 1..]))
        .collect();
    if picked.is_empty() {
        picked = lines
            .iter()
            .filter(mentions)
            .map(|l| l.trim().to_string())
            .collect();
    }
    let skip = picked.len().saturating_sub(OTHER_LINES);
    picked.split_off(skip)
}

/// The causes of a step that is known to have failed: [`classify`]'s, and when the log shows
/// nothing it recognises as a failure (a script that exits 1 quietly, a tool's own words),
/// the step's last lines, which say more than nothing.
pub fn classify_failed(log: &str) -> Vec<Cause> {
    let causes = classify(log);
    if !causes.is_empty() {
        return causes;
    }
    vec![Cause::Other {
        last_errors: last_lines(log, 3),
    }]
}

/// The last `n` non-empty lines of a log, in order, trimmed, without rtool's own `# …`
/// lines.
pub fn last_lines(log: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("# "))
        .take(n)
        .map(String::from)
        .collect();
    v.reverse();
    v
}

/// autoconf prints `configure: error:` and the message on the `*** …` lines after it (as
/// OpenZFS's configure does): one line with both, so the message is not lost.
fn with_configure_message(line: &str, after: &[&str]) -> String {
    let line = line.trim();
    if !line.ends_with("configure: error:") {
        return line.to_string();
    }
    let words: Vec<&str> = after
        .iter()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("***"))
        .map(|l| l.trim_start_matches('*').trim())
        .filter(|l| !l.is_empty())
        .collect();
    if words.is_empty() {
        line.to_string()
    } else {
        format!("{line} {}", words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    //! The logs are real. Each is the complete output of `make -C
    //! /usr/src/linux-headers-6.1.0-56-amd64 M=<scratch copy>` for a tree under
    //! `tests/fixtures/modules/`, built in a copy under /tmp on Debian 12 (gcc 12.2.0). How each
    //! failure was provoked:
    //! - success.log: gpl-hello. gplonly.log: cddl-gplonly. api-missing.log: api-missing.
    //!   header-removed.log: header-removed.
    //! - gplonly-dkms.log: dkms 3.0.10's own make.log for cddl-gplonly (`dkms build
    //!   --dkmstree … --sourcetree …`): dkms's header lines and its `make -j2 KERNELRELEASE=…`.
    //! - missing-headers.log: gpl-hello against a copy of the headers without
    //!   include/generated/autoconf.h.
    //! - missing-build-dir.log: `-C /usr/lib/modules/6.2.8-arch1-1/build`, which does not exist.
    //! - missing-kernel-header.log: against a copy of the headers without include/linux/init.h.
    //! - api-missing-cc-differs.log: api-missing with `CC=gcc DEBIAN_KERNEL_NO_CC_VERSION_CHECK=`.
    //!   The same gcc under another name, so kbuild warns.
    //! - compiler-mismatch.log: `CC=clang-14 DEBIAN_KERNEL_NO_CC_VERSION_CHECK=`. Debian's
    //!   .kernelvariables turns kbuild's compiler check off; upstream and Arch kernels keep it.
    //! - out-of-space*.log: the module copy (and TMPDIR) on tmpfs of 256k, 400k and 96k.
    //! - out-of-memory.log: `ulimit -v 80000`. oom-killed.log: cc1 of the build sent SIGKILL,
    //!   as the OOM killer does.
    use super::*;

    macro_rules! log {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/buildlogs/", $name))
        };
    }

    #[test]
    fn gpl_only_symbols_name_the_module_and_both_symbols() {
        for log in [log!("gplonly.log"), log!("gplonly-dkms.log")] {
            assert!(failed(log));
            let causes = classify(log);
            assert_eq!(
                causes,
                [Cause::GplOnly {
                    module: "cddl_gplonly".into(),
                    symbols: vec![
                        "bio_end_io_acct_remapped".into(),
                        "bio_start_io_acct".into()
                    ],
                }]
            );
        }
        let zfs = Cause::GplOnly {
            module: "zfs".into(),
            symbols: vec![
                "bio_start_io_acct".into(),
                "bio_end_io_acct_remapped".into(),
            ],
        };
        assert_eq!(
            zfs.explain(),
            "zfs is CDDL-licensed, so it may not use kernel symbols exported GPL-only, and this kernel exports symbols it uses that way: bio_start_io_acct, bio_end_io_acct_remapped. Hold the kernel back (downgrade to a kernel the module supports), or upgrade the module to a release that supports this kernel."
        );
        let text = classify(log!("gplonly.log"))[0].explain();
        assert!(
            text.starts_with("cddl_gplonly does not have a GPL-compatible licence"),
            "{text}"
        );
    }

    #[test]
    fn api_changes_name_function_and_member_with_their_lines() {
        let log = log!("api-missing.log");
        assert!(failed(log));
        let causes = classify(log);
        let file = "/tmp/rtool-kbuild/api-missing/api_missing.c";
        assert_eq!(
            causes,
            [Cause::ApiChange {
                items: vec![
                    ApiItem {
                        what: "member 'bi_disk' of struct bio".into(),
                        file: file.into(),
                        line: 15
                    },
                    ApiItem {
                        what: "function 'blk_queue_nonexistent_rtool'".into(),
                        file: file.into(),
                        line: 20
                    },
                ]
            }]
        );
        let text = causes[0].explain();
        assert!(text.contains("  function 'blk_queue_nonexistent_rtool' (/tmp/rtool-kbuild/api-missing/api_missing.c:20)"), "{text}");

        // The same in the C locale, with plain quotes.
        let c_locale = log.replace(['\u{2018}', '\u{2019}'], "'");
        assert_eq!(classify(&c_locale), causes);
    }

    #[test]
    fn a_header_the_module_includes_and_the_kernel_dropped_is_an_api_change() {
        let causes = classify(log!("header-removed.log"));
        assert_eq!(
            causes,
            [Cause::ApiChange {
                items: vec![ApiItem {
                    what: "header 'linux/genhd.h'".into(),
                    file: "/tmp/rtool-kbuild/header-removed/header_removed.c".into(),
                    line: 9,
                }]
            }]
        );
    }

    #[test]
    fn a_compiler_under_another_name_is_not_a_cause() {
        // `CC=gcc` where the kernel used `gcc-12`: kbuild warns, but it is the same gcc.
        let log = log!("api-missing-cc-differs.log");
        assert!(log.contains("The kernel was built by: gcc-12"));
        let causes = classify(log);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert!(matches!(&causes[0], Cause::ApiChange { items } if items.len() == 2));

        // A compiler that really differs is named after the real cause, and does not hide
        // errors nothing else explains.
        let other = log
            .replace(
                "You are using:           gcc (Debian 12.2.0-14+deb12u1) 12.2.0",
                "You are using:           gcc (GCC) 13.2.1 20230801",
            )
            .replace("has no member named", "is a mystery named")
            .replace("implicit declaration of function", "an odd thing about");
        let causes = classify(&other);
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert_eq!(
            causes[0],
            Cause::CompilerMismatch {
                built_with: "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0".into(),
                using: "gcc (GCC) 13.2.1 20230801".into()
            }
        );
        assert!(matches!(&causes[1], Cause::Other { last_errors } if last_errors.len() == 4));
    }

    #[test]
    fn a_missing_header_of_the_module_itself_is_not_about_the_kernel() {
        let log = "/var/lib/dkms/zfs/2.1.9/build/module/zfs/arc.c:3:10: fatal error: sys/zfs_context.h: No such file or directory\nmake: *** [Makefile:1] Error 2\n";
        let causes = classify(log);
        assert!(matches!(&causes[..], [Cause::Other { .. }]), "{causes:?}");
    }

    #[test]
    fn success_has_no_cause() {
        let log = log!("success.log");
        assert!(!failed(log));
        assert_eq!(classify(log), []);
    }

    #[test]
    fn missing_or_broken_headers() {
        let causes = classify(log!("missing-headers.log"));
        assert_eq!(
            causes,
            [Cause::MissingHeaders {
                detail: "the kernel configuration is invalid: include/generated/autoconf.h or include/config/auto.conf are missing".into()
            }]
        );
        assert!(causes[0].explain().contains("linux-headers"));

        assert_eq!(
            classify(log!("missing-build-dir.log")),
            [Cause::MissingHeaders {
                detail: "/usr/lib/modules/6.2.8-arch1-1/build does not exist".into()
            }]
        );

        let causes = classify(log!("missing-kernel-header.log"));
        assert_eq!(causes.len(), 1, "{causes:?}");
        let Cause::MissingHeaders { detail } = &causes[0] else {
            panic!("{causes:?}")
        };
        assert!(detail.starts_with("kernel header linux/init.h is missing (included from /tmp/rtool-kbuild/hdr-nomodule/linux-headers-6.1.0-56-common/include/linux/printk.h:6)"), "{detail}");
    }

    #[test]
    fn compiler_mismatch() {
        let causes = classify(log!("compiler-mismatch.log"));
        assert_eq!(
            causes,
            [Cause::CompilerMismatch {
                built_with: "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0".into(),
                using: "Debian clang version 14.0.6".into(),
            }]
        );
        assert_eq!(
            causes[0].explain(),
            "The kernel was built with gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, but the module is being compiled with Debian clang version 14.0.6. Build with the same compiler and version as the kernel (a clang-built kernel needs LLVM=1)."
        );
        // Without kbuild's warning (Debian turns it off), the rejected options still tell.
        let quiet: String = log!("compiler-mismatch.log")
            .lines()
            .filter(|l| {
                !l.contains("built by")
                    && !l.contains("You are using")
                    && !l.starts_with("warning:")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let causes = classify(&quiet);
        assert_eq!(
            causes,
            [Cause::CompilerMismatch {
                built_with: String::new(),
                using: "clang".into()
            }]
        );
        assert!(causes[0]
            .explain()
            .starts_with("clang rejects options from the kernel's build flags"));
    }

    #[test]
    fn out_of_space_and_memory() {
        for log in [
            log!("out-of-space.log"),
            log!("out-of-space-as.log"),
            log!("out-of-space-fixdep.log"),
        ] {
            assert_eq!(classify(log), [Cause::OutOfSpace], "{log}");
        }
        for log in [log!("out-of-memory.log"), log!("oom-killed.log")] {
            assert_eq!(classify(log), [Cause::OutOfMemory], "{log}");
        }
        assert!(Cause::OutOfSpace.explain().contains("disk filled up"));
        assert!(Cause::OutOfMemory
            .explain()
            .contains("out-of-memory killer"));
    }

    #[test]
    fn unrecognised_failures_keep_their_last_errors() {
        let log = "make: Entering directory '/k'\n  CC [M]  /m/a.o\n/m/a.c:3:1: error: expected ';' before '}' token\n/m/a.c:9:1: error: control reaches end of non-void function [-Werror=return-type]\ncc1: some warnings being treated as errors\nmake[1]: *** [/k/scripts/Makefile.build:255: /m/a.o] Error 1\nmake: *** [/k/Makefile:2065: /m] Error 2\n";
        let causes = classify(log);
        assert_eq!(
            causes,
            [Cause::Other {
                last_errors: vec![
                    "/m/a.c:3:1: error: expected ';' before '}' token".into(),
                    "/m/a.c:9:1: error: control reaches end of non-void function [-Werror=return-type]".into(),
                    "cc1: some warnings being treated as errors".into(),
                ]
            }]
        );
        assert!(causes[0]
            .explain()
            .starts_with("The build failed; the last errors were:\n  /m/a.c:3:1"));
        // Only make's own lines: those are kept.
        let causes = classify("make: *** [Makefile:5: all] Error 1\n");
        assert_eq!(
            causes,
            [Cause::Other {
                last_errors: vec!["make: *** [Makefile:5: all] Error 1".into()]
            }]
        );
    }

    #[test]
    fn a_failed_step_whose_log_shows_no_error_keeps_its_last_lines() {
        let log = "# POST_BUILD: scripts/dkms.postbuild -n zfs\ncp: target '/w/zfs/2.1.11/6.1.0-57-amd64/x86_64/': No such file or directory\n\n# POST_BUILD failed: exit status: 1\n";
        assert!(classify(log).is_empty());
        assert_eq!(
            classify_failed(log),
            [Cause::Other {
                last_errors: vec![
                    "cp: target '/w/zfs/2.1.11/6.1.0-57-amd64/x86_64/': No such file or directory"
                        .into()
                ]
            }]
        );
        assert_eq!(last_lines("a\n\nb\n# note\nc\n", 2), ["b", "c"]);
    }

    #[test]
    fn a_configure_error_keeps_its_message() {
        // The end of OpenZFS 2.1.11's configure against headers given as source and build
        // directory both (its real make.log).
        let log = "checking whether global_page_state enums are sane... no\nNR_FILE_PAGES in either node_stat_item or zone_stat_item: NOT FOUND\nconfigure: error: \n\t*** None of the expected \"global page state\" interfaces were detected.\n\t*** This may be because your kernel version is newer than what is\n\t*** supported, or you are using a patched custom kernel with\n\t*** incompatible modifications.\n\t***\n\t*** ZFS Version: zfs-2.1.11-1+deb12u1\n\t*** Compatible Kernels: 3.10 - 6.2\n\t\n# PRE_BUILD failed: exit status: 1\n";
        assert_eq!(
            last_errors(&log.lines().collect::<Vec<_>>()),
            ["configure: error: None of the expected \"global page state\" interfaces were detected. This may be because your kernel version is newer than what is supported, or you are using a patched custom kernel with incompatible modifications. ZFS Version: zfs-2.1.11-1+deb12u1 Compatible Kernels: 3.10 - 6.2"]
        );
    }

    #[test]
    fn clang_and_modpost_api_messages() {
        let log = "/b/x.c:10:5: error: call to undeclared function 'blk_foo'; ISO C99 and later do not support implicit function declarations [-Wimplicit-function-declaration]\n/b/x.c:11:12: error: no member named 'bi_disk' in 'struct bio'\n/b/x.c:12:3: error: use of undeclared identifier 'QUEUE_FLAG_X'\n/b/y.c:4:2: error: too few arguments to function 'bdev_foo'\n/b/y.c:5:2: error: passing argument 1 of 'submit_bio' from incompatible pointer type [-Werror=incompatible-pointer-types]\n/b/y.c:6:2: error: 'BIO_MAX_PAGES' undeclared (first use in this function); did you mean 'BIO_MAX_VECS'?\n/b/y.c:7:2: error: 'blk_qc_t' {aka 'struct blk_qc'} has no member named 'x'\nERROR: modpost: \"blk_gone\" [/b/m.ko] undefined!\nmake: *** [Makefile:1] Error 2\n";
        let Some(Cause::ApiChange { items }) = classify(log).into_iter().next() else {
            panic!()
        };
        let whats: Vec<&str> = items.iter().map(|i| i.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "function 'blk_foo'",
                "member 'bi_disk' of struct bio",
                "identifier 'QUEUE_FLAG_X'",
                "arguments of function 'bdev_foo' (too few)",
                "argument 1 of function 'submit_bio' (incompatible pointer type)",
                "identifier 'BIO_MAX_PAGES'",
                "member 'x' of struct blk_qc",
                "symbol 'blk_gone' (not exported by this kernel)",
            ]
        );
        assert_eq!(items[7].file, "/b/m.ko");
        assert_eq!(items[7].line, 0);
        assert!(classify(log)[0]
            .explain()
            .contains("symbol 'blk_gone' (not exported by this kernel) (/b/m.ko)"));
    }
}
