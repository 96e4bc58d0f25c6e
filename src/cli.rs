//! Busybox-style dispatch: `rtool APPLET ARGS`, a link named APPLET, or a renamed binary.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::applet::{Applet, SHADOWING};
use crate::ctx::{self, Ctx};
use crate::error::{exit, Error, Kind, Result};
use crate::install;
use crate::json::Json;
use crate::manual;
use crate::text;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs whatever `args` (the whole argv) asks for and returns the exit code.
pub fn dispatch(applets: &'static [Applet], args: Vec<OsString>) -> u8 {
    let argv0 = args.first().cloned().unwrap_or_default();
    let called_as = applet_name_of(&argv0);
    if let Some(applet) = find(applets, &called_as) {
        return run_applet(applet, true, args.into_iter().skip(1).collect());
    }
    let mut rest = args.into_iter().skip(1);
    let Some(first) = rest.next() else {
        // No applet named: the list, and a usage exit, so a script notices.
        let _ = report(list(applets, &mut io::stdout().lock()));
        return exit::USAGE;
    };
    match first.to_str().unwrap_or("") {
        "--list" | "-l" => report(list(applets, &mut io::stdout().lock())),
        "--help" | "-h" => report(usage(applets, &mut io::stdout().lock())),
        "--version" | "-V" => {
            report(writeln!(io::stdout(), "rtool {VERSION}").map_err(Error::from))
        }
        "--install" => report(install_cmd(applets, &argv0, rest.collect())),
        "--generate" => report(generate_cmd(applets, rest.collect())),
        "help" => match rest.next() {
            None => report(usage(applets, &mut io::stdout().lock())),
            Some(name) => match find_os(applets, &name) {
                Some(a) => run_applet(a, false, vec![OsString::from("--help")]),
                None => unknown(&name),
            },
        },
        _ => match find_os(applets, &first) {
            Some(a) => run_applet(a, false, rest.collect()),
            None => {
                let code = unknown(&first);
                if rest.take_while(|a| a != "--").any(|a| a == "--json") {
                    let name = first.to_string_lossy();
                    let message = format!("unknown applet '{name}'");
                    print_json_error(
                        "rtool",
                        &message,
                        Some("`rtool --list` shows them all"),
                        code,
                    );
                }
                code
            }
        },
    }
}

/// The applet name a link would carry: the basename of argv[0], a login shell's `-` stripped.
pub fn applet_name_of(argv0: &OsStr) -> String {
    let base = Path::new(argv0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    base.strip_prefix('-').unwrap_or(&base).to_string()
}

fn find(applets: &'static [Applet], name: &str) -> Option<&'static Applet> {
    applets.iter().find(|a| a.name == name)
}

fn find_os(applets: &'static [Applet], name: &OsStr) -> Option<&'static Applet> {
    name.to_str().and_then(|n| find(applets, n))
}

fn unknown(name: &OsStr) -> u8 {
    let _ = writeln!(
        io::stderr(),
        "rtool: unknown applet '{}' (`rtool --list` shows them all)",
        name.to_string_lossy()
    );
    exit::UNKNOWN_APPLET
}

/// Runs one applet; `via_link` when called through a link named after it (usage then reads
/// `doctor …` rather than `rtool doctor …`).
fn run_applet(applet: &'static Applet, via_link: bool, args: Vec<OsString>) -> u8 {
    let bin_name = if via_link {
        applet.name.to_string()
    } else {
        format!("rtool {}", applet.name)
    };
    let help = format!("{bin_name} --help");
    // Help is for a person even in a pipe: 80 columns unless the terminal is narrower.
    let width = text::stdout_width().unwrap_or(text::MAX_WIDTH);
    let cmd = applet.full_command(bin_name).term_width(width);
    // Before the command line is understood, `--json` anywhere ahead of a `--` asks for
    // errors as JSON too: a script that wants JSON gets it for a mistyped option as well.
    let json_seen = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let argv = std::iter::once(OsString::from(applet.name)).chain(args);
    let matches = match cmd.try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    // Help is rtool's own text: its glyphs follow the locale, its lines the
                    // terminal's width (80 columns at most).
                    let shown =
                        text::wrap_lines(&text::ascii(&e.render().to_string()), Some(width));
                    report(
                        io::stdout()
                            .write_all(shown.as_bytes())
                            .map_err(Error::from),
                    )
                }
                _ => usage_error(applet.name, &help, &e, json_seen),
            };
        }
    };
    let result = Ctx::from_matches(applet.name, &matches).and_then(|c| (applet.run)(&c, &matches));
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = print_error(applet.name, &e);
            if ctx::json_wanted(&matches) && e.kind() != Kind::BrokenPipe {
                print_json_error(applet.name, &e.to_string(), e.hint_text(), code);
            }
            code
        }
    }
}

/// `{"error": {"applet", "message", "hint", "exit"}}` on stdout, one line, for `--json`;
/// the person still reads the error on stderr.
pub fn print_json_error(who: &str, message: &str, hint: Option<&str>, code: u8) {
    let j = Json::obj().with(
        "error",
        Json::obj()
            .with("applet", who)
            .with("message", message)
            .with("hint", hint)
            .with("exit", u64::from(code)),
    );
    let _ = writeln!(io::stdout(), "{j}");
}

/// A command line the applet cannot take, said as every other error is: one `error:` line
/// and one `hint:` line (a suggested spelling when there is one, and where the usage is).
fn usage_error(who: &str, help: &str, e: &clap::Error, json: bool) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let text = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let msg = match (e.kind(), text(ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with('-') => {
            format!("unknown option {a}")
        }
        (ErrorKind::UnknownArgument, Some(a)) => format!("unexpected argument {a}"),
        (ErrorKind::MissingRequiredArgument, _) => match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(v)) => format!("missing {}", v.join(", ")),
            _ => "a required argument is missing".into(),
        },
        _ => first.strip_prefix("error: ").unwrap_or(first).to_string(),
    };
    let hint = match text(ContextKind::SuggestedArg) {
        Some(s) => format!("did you mean {s}? ({help})"),
        None => help.to_string(),
    };
    // Said as every error is, its hint wrapped like every other.
    print_error(who, &Error::usage(msg.clone()).hint(hint.clone()));
    if json {
        print_json_error(who, &msg, Some(&hint), exit::USAGE);
    }
    exit::USAGE
}

/// `rtool --generate man|bash|zsh|fish`: the manual page or a completion script on stdout.
fn generate_cmd(applets: &'static [Applet], args: Vec<OsString>) -> Result<()> {
    const USAGE: &str =
        "usage: rtool --generate man|bash|zsh|fish (e.g. rtool --generate man > rtool.1)";
    let mut args = args.into_iter();
    let what = match (args.next(), args.next()) {
        (Some(w), None) => {
            manual::Output::parse(&w.to_string_lossy()).map_err(|e| e.hint(USAGE))?
        }
        (None, _) => return Err(Error::usage("--generate needs what to write").hint(USAGE)),
        (Some(_), Some(_)) => return Err(Error::usage("--generate takes one name").hint(USAGE)),
    };
    let mut out = io::stdout().lock();
    manual::generate(applets, what, &mut out)?;
    out.flush()?;
    Ok(())
}

fn report(r: Result<()>) -> u8 {
    match r {
        Ok(()) => exit::OK,
        Err(e) => print_error("rtool", &e),
    }
}

/// Prints the error chain once, and the hint on its own line; returns the exit code.
pub fn print_error(who: &str, e: &Error) -> u8 {
    if e.kind() == Kind::BrokenPipe {
        return exit::OK;
    }
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{who}: error: {e}");
    if let Some(h) = e.hint_text() {
        let _ = writeln!(err, "{}", hint_line(who, h));
    }
    e.exit_code()
}

/// `WHO: hint: …`, wrapped to the terminal with the text's continuation lines under its start.
pub fn hint_line(who: &str, hint: &str) -> String {
    let first = format!("{who}: hint: ");
    let indent = first.len();
    text::hang(&first, hint, indent, text::stderr_width())
}

fn list(applets: &'static [Applet], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "rtool {VERSION}: the Arch Linux rescue multitool. Applets:"
    )?;
    let names = applets.iter().map(|a| a.name.len()).max().unwrap_or(0);
    // Two columns in 80 at most: a summary too long goes on under itself, not under the names.
    let width = text::stdout_width().unwrap_or(text::MAX_WIDTH);
    for a in applets {
        let first = format!("  {:names$}  ", a.name);
        writeln!(
            out,
            "{}",
            text::hang(&first, a.summary, names + 4, Some(width))
        )?;
    }
    writeln!(
        out,
        "\nRun `rtool APPLET --help` for one applet's usage and examples."
    )?;
    Ok(())
}

fn usage(applets: &'static [Applet], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "Usage: rtool APPLET [ARGS...]      run an applet
       APPLET [ARGS...]            the same, through a link named APPLET
       rtool --list                list the applets
       rtool help APPLET           an applet's usage and examples
       rtool --install [-s] [--force] [--all] DIR
                                   link the applet names in DIR to this binary
                                   (hard links; -s for symbolic links); chroot,
                                   modprobe and rmmod only with --all, as they
                                   would shadow the system's own tools
       rtool --generate man|bash|zsh|fish
                                   the manual page, or a shell's completions
       rtool --version
"
    )?;
    list(applets, out)
}

fn install_cmd(applets: &'static [Applet], argv0: &OsStr, args: Vec<OsString>) -> Result<()> {
    let mut symbolic = false;
    let mut force = false;
    let mut all = false;
    let mut dir: Option<PathBuf> = None;
    for a in args {
        match a.to_str() {
            Some("-s") | Some("--symbolic") => symbolic = true,
            Some("-f") | Some("--force") => force = true,
            Some("--all") => all = true,
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(Error::usage(format!("--install: unknown option '{s}'"))
                    .hint("usage: rtool --install [-s] [--force] [--all] DIR"))
            }
            _ if dir.is_some() => {
                return Err(Error::usage("--install takes one directory")
                    .hint("usage: rtool --install [-s] [--force] [--all] DIR"))
            }
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.ok_or_else(|| {
        Error::usage("--install needs a directory")
            .hint("usage: rtool --install [-s] [--force] [--all] DIR")
    })?;
    let exe = install::own_path(argv0)?;
    let names: Vec<&str> = applets
        .iter()
        .map(|a| a.name)
        .filter(|n| all || !SHADOWING.contains(n))
        .collect();
    let done = install::link_all(&exe, &dir, &names, symbolic, force)?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "rtool: {} {} link(s) in {} ({} already there{})",
        if symbolic { "symbolic" } else { "hard" },
        done.created,
        dir.display(),
        done.present,
        if done.replaced > 0 {
            format!(", {} replaced", done.replaced)
        } else {
            String::new()
        }
    )?;
    if !all {
        writeln!(
            out,
            "rtool: not linked, so the system's own stay first in PATH: {} (rtool {} {}, or --install --all)",
            SHADOWING.join(", "),
            SHADOWING[0],
            crate::text::glyph("…")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names() {
        assert_eq!(applet_name_of(OsStr::new("/usr/bin/doctor")), "doctor");
        assert_eq!(applet_name_of(OsStr::new("-doctor")), "doctor");
        assert_eq!(applet_name_of(OsStr::new("rtool")), "rtool");
        assert_eq!(applet_name_of(OsStr::new("")), "");
    }
}
