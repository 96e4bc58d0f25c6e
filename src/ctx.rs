//! The context every applet runs in: the target root, dry-run, verbosity, output style.
//!
//! Paths into the system being repaired are always built from [`Ctx::root`] (`--root`), and
//! paths into the running system's kernel interfaces (`/proc`, `/sys`, `/run`) from
//! [`Ctx::host`], so every applet can run against a fake root in a temporary directory.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches};

use crate::error::{Error, Result};

/// Applets build their paths with `ctx::below`; the helper itself sits lower, in `paths`.
pub use crate::paths::below;

/// Names a test or a diagnosis can set to read `/proc`, `/sys` and `/run` below another
/// directory instead of `/`.
pub const HOST_ROOT_ENV: &str = "RTOOL_HOST_ROOT";

pub struct Ctx {
    /// The applet's name, for messages.
    pub applet: &'static str,
    /// The system being inspected or repaired (`--root`, default: the running system).
    pub root: PathBuf,
    /// Where the running system's `/proc`, `/sys`, `/run` are read (`/` unless testing).
    pub host: PathBuf,
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Machine-readable output on stdout.
    pub json: bool,
    /// -1 quiet, 0 normal, 1+ verbose.
    pub verbosity: i8,
    /// Colour on stdout (a terminal, `NO_COLOR` unset, `TERM` not `dumb`).
    pub color: bool,
}

/// `--root DIR`, for applets that read or change a system.
pub fn arg_root() -> Arg {
    Arg::new("root")
        .long("root")
        .value_name("DIR")
        .value_parser(clap::value_parser!(PathBuf))
        .help("Work on the system mounted at DIR instead of / (e.g. /mnt)")
}

/// `--keyring PATH`, repeatable, for applets that verify package signatures
/// (`sig::Keyring::find_all` takes what [`paths`] gives).
pub fn arg_keyring() -> Arg {
    Arg::new("keyring")
        .long("keyring")
        .value_name("PATH")
        .action(ArgAction::Append)
        .value_parser(clap::value_parser!(PathBuf))
        .help(
            "The keyring: a directory with archlinux.gpg, archlinux-trusted and \
             archlinux-revoked, or the .gpg file with STEM-trusted/-revoked beside it, or \
             pacman's GnuPG directory (/etc/pacman.d/gnupg: keys locally signed with \
             pacman-key are trusted too). Repeat it for several, in order: the first that \
             holds the signer's key decides [default: the target's, then the host's]",
        )
}

/// Every value of the path option `id` (none when it was not given).
pub fn paths(m: &ArgMatches, id: &str) -> Vec<PathBuf> {
    m.get_many::<PathBuf>(id)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

/// `--dry-run`, for applets that change things.
pub fn arg_dry_run() -> Arg {
    Arg::new("dry_run")
        .long("dry-run")
        .short('n')
        .action(ArgAction::SetTrue)
        .help("Show what would be done, change nothing")
}

/// `--json`, for applets that report state.
pub fn arg_json() -> Arg {
    Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .help("Print the report as JSON on stdout")
}

/// `-v` and `-q`, added to every applet by the dispatcher.
pub fn args_verbosity() -> [Arg; 2] {
    [
        Arg::new("verbose")
            .short('v')
            .long("verbose")
            .action(ArgAction::Count)
            .global(true)
            .help("Say more (repeat for even more)"),
        Arg::new("quiet")
            .short('q')
            .long("quiet")
            .action(ArgAction::SetTrue)
            .conflicts_with("verbose")
            .global(true)
            .help("Print only errors and the result"),
    ]
}

impl Ctx {
    /// Builds the context from an applet's parsed arguments; options the applet does not
    /// declare keep their defaults.
    pub fn from_matches(applet: &'static str, m: &ArgMatches) -> Result<Ctx> {
        let flag = |id: &str| flag_anywhere(m, id);
        let host = match std::env::var_os(HOST_ROOT_ENV) {
            Some(h) if !h.is_empty() => absolute(Path::new(&h))?,
            _ => PathBuf::from("/"),
        };
        // Without --root the target is the running system itself.
        let root = match m.try_get_one::<PathBuf>("root") {
            Ok(Some(p)) => {
                let r = absolute(p)?;
                check_root(&r)?;
                r
            }
            _ => host.clone(),
        };
        let verbose = m
            .try_get_one::<u8>("verbose")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(0);
        let verbosity = if flag("quiet") {
            -1
        } else {
            verbose.min(9) as i8
        };
        Ok(Ctx {
            applet,
            root,
            host,
            dry_run: flag("dry_run"),
            json: json_wanted(m),
            verbosity,
            color: color_wanted(io::stdout().is_terminal()),
        })
    }

    /// A plain context for library tests and internal use.
    pub fn for_root(applet: &'static str, root: impl Into<PathBuf>) -> Ctx {
        Ctx {
            applet,
            root: root.into(),
            host: PathBuf::from("/"),
            dry_run: false,
            json: false,
            verbosity: 0,
            color: false,
        }
    }

    /// `p` (an absolute path as the repaired system sees it) below the target root.
    pub fn root_path(&self, p: impl AsRef<Path>) -> PathBuf {
        below(&self.root, p.as_ref())
    }

    /// `p` (e.g. `/proc/meminfo`) on the running system.
    pub fn host_path(&self, p: impl AsRef<Path>) -> PathBuf {
        below(&self.host, p.as_ref())
    }

    /// Whether the target is the running system itself.
    pub fn root_is_host(&self) -> bool {
        self.root == self.host
    }

    /// ` --root DIR` for a command to paste in a hint, or nothing when the root is the host.
    pub fn root_arg(&self) -> String {
        match self.root_is_host() {
            true => String::new(),
            false => format!(" --root {}", self.root.display()),
        }
    }

    /// Standard output, for the result.
    pub fn out(&self) -> io::StdoutLock<'static> {
        io::stdout().lock()
    }

    /// A message for a person on stderr (hidden by `-q`).
    pub fn note(&self, msg: impl AsRef<str>) {
        if self.verbosity >= 0 {
            let _ = writeln!(io::stderr(), "{}", msg.as_ref());
        }
    }

    /// Details shown with `-v`.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.verbosity >= 1 {
            let _ = writeln!(io::stderr(), "{}: {}", self.applet, msg.as_ref());
        }
    }

    /// Stops an applet that needs root before it has done anything, with the message every
    /// such applet gives: `rtool APPLET must be run as root (WHY)`, and the hint to run the
    /// same command line as root. `why` says what needs it, with absolute paths. A dry run
    /// (`-n`) changes nothing and needs no root; [`Ctx::require_root_always`] is for what
    /// needs root even to look.
    pub fn require_root(&self, why: &str) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        self.require_root_always(why)
    }

    /// [`Ctx::require_root`], dry run or not.
    pub fn require_root_always(&self, why: &str) -> Result<()> {
        // nix directly: ctx sits below sys in the layering (sys::is_root asks the same).
        if nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        Err(
            Error::missing(format!("rtool {} must be run as root ({why})", self.applet))
                .hint(format!("run it as root: `sudo {}`", command_line())),
        )
    }

    /// A warning, always shown (also with `-q`).
    pub fn warn(&self, msg: impl AsRef<str>) {
        let _ = writeln!(io::stderr(), "{}: warning: {}", self.applet, msg.as_ref());
    }
}

/// Whether `--json` was given, to the applet or to its subcommand (`pubkey list --json`).
pub fn json_wanted(m: &ArgMatches) -> bool {
    flag_anywhere(m, "json")
}

/// A flag set on the command or on any subcommand below it.
fn flag_anywhere(m: &ArgMatches, id: &str) -> bool {
    matches!(m.try_get_one::<bool>(id), Ok(Some(true)))
        || m.subcommand()
            .is_some_and(|(_, sub)| flag_anywhere(sub, id))
}

/// This process's command line, quoted so that a shell reads it back the same.
fn command_line() -> String {
    std::env::args_os()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:,+@%-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A `--root` that is not an installed system is a mistake to stop at: diagnosed, an empty
/// directory looks like a broken system, and unpacked into, it fills the live system's /mnt
/// (the incident's own mistake). It must be a directory with `etc/` and `usr/`.
fn check_root(root: &Path) -> Result<()> {
    const HINT: &str = "is the installed system mounted there? Mount it first: `rtool chroot \
                        --zpool` with a pool `zpool import` lists, or `mount` with a partition \
                        `lsblk -f` shows";
    let shown = root.display();
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::usage(format!("--root {shown}: not a directory")).hint(HINT));
        }
        Err(_) => {
            return Err(Error::usage(format!("--root {shown}: no such directory")).hint(HINT));
        }
    }
    let missing: Vec<&str> = ["etc", "usr"]
        .into_iter()
        .filter(|d| !root.join(d).is_dir())
        .collect();
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "--root {shown}: not an installed system (it has no {})",
            missing
                .iter()
                .map(|d| format!("/{d}"))
                .collect::<Vec<_>>()
                .join(" and no ")
        ))
        .hint(HINT));
    }
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.as_os_str().is_empty() {
        return Err(Error::usage("an empty path is not a root directory"));
    }
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(e, "the current directory"))?;
    Ok(below(&cwd, p))
}

/// Colour only on a terminal, never with `NO_COLOR` set (to anything non-empty) or a dumb terminal.
pub fn color_wanted(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_none_or(|t| t == "dumb");
    is_terminal && !no_color && !dumb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_for_the_shell() {
        assert_eq!(shell_quote("--root=/mnt"), "--root=/mnt");
        assert_eq!(shell_quote("/mnt/my disk"), "'/mnt/my disk'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
