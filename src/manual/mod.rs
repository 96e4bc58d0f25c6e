//! The manual page and the shell completions, generated from the applets' own clap commands,
//! so they say what `--help` says and cannot drift from it.
//!
//! `rtool --generate man` writes one roff page, `rtool(1)`, with a section per applet (its
//! usage, description, options, subcommands and examples); `rtool --generate bash|zsh|fish`
//! writes a completion script for `rtool APPLET …` in that shell's own format (complete.rs).

use std::io::Write;

use clap::{Arg, ArgAction, Command};

mod complete;

use crate::applet::Applet;
use crate::error::{exit, Error, Result};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `--generate` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Man,
    Bash,
    Zsh,
    Fish,
}

impl Output {
    pub const NAMES: [&'static str; 4] = ["man", "bash", "zsh", "fish"];

    pub fn parse(s: &str) -> Result<Output> {
        match s {
            "man" => Ok(Output::Man),
            "bash" => Ok(Output::Bash),
            "zsh" => Ok(Output::Zsh),
            "fish" => Ok(Output::Fish),
            _ => Err(Error::usage(format!(
                "--generate: unknown output '{s}' (one of: {})",
                Output::NAMES.join(", ")
            ))),
        }
    }
}

/// Writes the page or script `what` for every applet in `applets`.
pub fn generate(applets: &[Applet], what: Output, out: &mut dyn Write) -> Result<()> {
    match what {
        Output::Man => man(applets, out),
        Output::Bash => write(out, complete::bash(&command_tree(applets))),
        Output::Zsh => write(out, complete::zsh(&command_tree(applets))),
        Output::Fish => write(out, complete::fish(&command_tree(applets))),
    }
}

/// `rtool` as one clap command with an applet per subcommand, and the dispatcher's own
/// options, for the completion scripts.
pub fn command_tree(applets: &[Applet]) -> Command {
    let own = [
        Arg::new("list")
            .short('l')
            .long("list")
            .action(ArgAction::SetTrue)
            .help("List the applets"),
        Arg::new("install")
            .long("install")
            .value_name("DIR")
            .value_hint(clap::ValueHint::DirPath)
            .help("Link the applet names in DIR to this binary"),
        Arg::new("generate")
            .long("generate")
            .value_name("WHAT")
            .value_parser(Output::NAMES)
            .help("Write the manual page or a shell's completions to stdout"),
    ];
    Command::new("rtool")
        .version(VERSION)
        .about("The Arch Linux rescue multitool")
        .args(own)
        .subcommands(
            applets
                .iter()
                .map(|a| a.full_command(format!("rtool {}", a.name))),
        )
}

fn write(out: &mut dyn Write, text: String) -> Result<()> {
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Options every applet takes, described once in the page rather than under each applet.
const COMMON: [&str; 4] = ["verbose", "quiet", "help", "version"];

fn man(applets: &[Applet], out: &mut dyn Write) -> Result<()> {
    let mut p = String::new();
    p.push_str(&format!(
        ".TH RTOOL 1 \"\" \"rtool {VERSION}\" \"User Commands\"\n"
    ));
    p.push_str(".SH NAME\nrtool \\- the Arch Linux rescue multitool\n");
    p.push_str(
        ".SH SYNOPSIS\n\
         .B rtool\n.I APPLET\n.RI [ ARGS ...]\n.br\n\
         .I APPLET\n.RI [ ARGS ...]\n.br\n\
         .B rtool \\-\\-list\n.br\n\
         .B rtool help\n.I APPLET\n.br\n\
         .B rtool \\-\\-install\n.RB [ \\-s ]\n.RB [ \\-\\-force ]\n.RB [ \\-\\-all ]\n.I DIR\n.br\n\
         .B rtool \\-\\-generate\n.BR man | bash | zsh | fish\n",
    );
    p.push_str(
        ".SH DESCRIPTION\n\
         One static binary that carries the applets needed to bring a broken Linux system \
         back, above all an Arch Linux system with its root on ZFS whose kernel upgrade left \
         it unbootable. Each applet is called as \\fBrtool\\fR \\fIAPPLET\\fR, or through a \
         link named after it (\\fBrtool \\-\\-install\\fR makes the links).\n\
         .PP\n\
         Applets that work on an installed system take \\fB\\-\\-root\\fR \\fIDIR\\fR (for \
         example \\fI/mnt\\fR); without it they work on the running system. Applets that \
         change something take \\fB\\-n\\fR, which prints the plan and changes nothing.\n",
    );
    p.push_str(".SH COMMON OPTIONS\nEvery applet takes these.\n");
    let sample = applets.first().map(|a| a.full_command(a.name));
    if let Some(c) = &sample {
        for a in c
            .get_arguments()
            .filter(|a| COMMON.contains(&a.get_id().as_str()))
        {
            option(&mut p, a);
        }
    }
    p.push_str(".TP\n.BR \\-h \", \" \\-\\-help\nPrint the applet's help and examples\n");
    p.push_str(".TP\n.BR \\-V \", \" \\-\\-version\nPrint the version\n");
    p.push_str(".SH APPLETS\n");
    for a in applets {
        p.push_str(&format!(".TP\n.B {}\n{}\n", roff(a.name), roff(a.summary)));
    }
    for a in applets {
        let mut cmd = a.full_command(format!("rtool {}", a.name));
        p.push_str(&format!(".SH \"RTOOL {}\"\n", roff(&a.name.to_uppercase())));
        section(&mut p, &mut cmd, 0);
    }
    p.push_str(".SH \"EXIT STATUS\"\n");
    for (code, text) in EXIT {
        p.push_str(&format!(".TP\n.B {code}\n{}\n", roff(text)));
    }
    p.push_str(
        ".SH \"SEE ALSO\"\n\
         .BR pacman (8),\n.BR arch\\-chroot (8),\n.BR mkinitcpio (8),\n\
         .BR zpool (8),\n.BR modprobe (8),\n.BR dkms (8)\n",
    );
    out.write_all(p.as_bytes())?;
    Ok(())
}

/// The exit codes, as `crate::error::exit` documents them.
const EXIT: [(u8, &str); 11] = [
    (exit::OK, "Everything worked, or the check found nothing wrong."),
    (
        exit::PROBLEMS,
        "The applet ran, and what it checked has problems (a FAIL finding, a verify mismatch).",
    ),
    (exit::USAGE, "The command line is wrong."),
    (
        exit::INVALID,
        "An input is invalid: a corrupt or hostile archive, a malformed file.",
    ),
    (
        exit::SYSTEM,
        "The system refused: permission denied, disk full, a failing system call or mount.",
    ),
    (exit::VERIFY, "A signature or checksum did not verify."),
    (exit::NETWORK, "The network failed: connection, TLS, HTTP status."),
    (
        exit::MISSING,
        "Something needed is missing: a tool, a file, kernel headers, modules, privileges.",
    ),
    (
        exit::FAILED,
        "An external step ran and failed: a module build, a scriptlet or hook, a command in a chroot.",
    ),
    (exit::UNKNOWN_APPLET, "The applet named does not exist."),
    (exit::INTERRUPTED, "Interrupted by a signal."),
];

/// One applet (depth 0) or one of its subcommands (depth 1+): usage, text, options, examples.
fn section(p: &mut String, cmd: &mut Command, depth: usize) {
    let usage = cmd.render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).trim();
    if depth > 0 {
        p.push_str(&format!(".SS \"{}\"\n", roff(&display_name(cmd))));
    }
    p.push_str(".PP\n.nf\n");
    for line in usage.lines() {
        p.push_str(&format!("\\fB{}\\fR\n", roff(line.trim())));
    }
    p.push_str(".fi\n");
    let text = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(|t| t.to_string());
    if let Some(t) = text {
        paragraphs(p, &t);
    }
    let opts: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !COMMON.contains(&a.get_id().as_str()))
        .collect();
    if !opts.is_empty() {
        p.push_str(".PP\nOptions:\n");
        for a in opts {
            option(p, a);
        }
    }
    let after = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|t| t.to_string());
    if let Some(t) = after {
        p.push_str(".PP\n.nf\n");
        for line in t.lines() {
            p.push_str(&roff_line(line));
            p.push('\n');
        }
        p.push_str(".fi\n");
    }
    let parent = display_name(cmd);
    let subs: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.clone().bin_name(format!("{parent} {}", s.get_name())))
        .collect();
    for mut sub in subs {
        section(p, &mut sub, depth + 1);
    }
}

fn display_name(cmd: &Command) -> String {
    cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string()
}

/// Paragraphs of running text: blank lines separate them, and lines that start with spaces
/// (lists, commands) keep their breaks.
fn paragraphs(p: &mut String, text: &str) {
    let mut in_pre = false;
    p.push_str(".PP\n");
    for line in text.lines() {
        if line.trim().is_empty() {
            if in_pre {
                p.push_str(".fi\n");
                in_pre = false;
            }
            p.push_str(".PP\n");
        } else if line.starts_with(' ') {
            if !in_pre {
                p.push_str(".nf\n");
                in_pre = true;
            }
            p.push_str(&roff_line(line));
            p.push('\n');
        } else {
            if in_pre {
                p.push_str(".fi\n");
                in_pre = false;
            }
            p.push_str(&roff_line(line.trim_start()));
            p.push('\n');
        }
    }
    if in_pre {
        p.push_str(".fi\n");
    }
}

/// One option as a tagged paragraph: its spellings and value, then its help.
fn option(p: &mut String, a: &Arg) {
    let value = a
        .get_value_names()
        .map(|v| {
            v.iter()
                .map(|s| format!("\\fI{}\\fR", roff(s)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("\\fI{}\\fR", roff(&a.get_id().as_str().to_uppercase())));
    let takes = a.get_action().takes_values();
    let tag = if a.is_positional() {
        let v = if a.get_num_args().is_some_and(|n| n.max_values() > 1) {
            format!("{value}...")
        } else {
            value
        };
        if a.is_required_set() {
            v
        } else {
            format!("[{v}]")
        }
    } else {
        let mut names = Vec::new();
        if let Some(s) = a.get_short() {
            names.push(format!("\\fB\\-{}\\fR", roff(&s.to_string())));
        }
        if let Some(l) = a.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", roff(l)));
        }
        let names = names.join(", ");
        if takes {
            format!("{names} {value}")
        } else {
            names
        }
    };
    p.push_str(&format!(".TP\n{tag}\n"));
    let help = a
        .get_long_help()
        .or_else(|| a.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    if !help.is_empty() {
        p.push_str(&roff_line(&help.replace('\n', " ")));
        p.push('\n');
    }
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if takes && !values.is_empty() {
        p.push_str(&format!("(one of: {})\n", roff(&values.join(", "))));
    }
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if takes && !defaults.is_empty() {
        p.push_str(&format!("(default: {})\n", roff(&defaults.join(" "))));
    }
}

/// A line of text safe as a roff text line: a leading `.` or `'` would be a request.
fn roff_line(s: &str) -> String {
    let r = roff(s);
    if r.starts_with('.') || r.starts_with('\'') {
        format!("\\&{r}")
    } else {
        r
    }
}

/// Escapes roff's escape character and spells the typographic characters the help texts use
/// as roff's named glyphs, so the page renders the same in any locale.
fn roff(s: &str) -> String {
    let mut r = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => r.push_str("\\e"),
            '-' => r.push_str("\\-"),
            '\u{2014}' => r.push_str("\\(em"),
            '\u{2013}' => r.push_str("\\(en"),
            '\u{2192}' => r.push_str("\\(->"),
            '\u{2026}' => r.push_str("..."),
            '\u{2018}' | '\u{2019}' => r.push('\''),
            '\u{201c}' | '\u{201d}' => r.push('"'),
            '\u{00d7}' => r.push_str("\\(mu"),
            '\u{2265}' => r.push_str("\\(>="),
            '\u{2264}' => r.push_str("\\(<="),
            c => r.push(c),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes_requests_and_backslashes() {
        assert_eq!(roff_line(".hidden"), "\\&.hidden");
        assert_eq!(roff_line("'quoted"), "\\&'quoted");
        assert_eq!(roff("a\\b"), "a\\eb");
        assert_eq!(roff("--root"), "\\-\\-root");
        assert_eq!(roff("a \u{2192} b \u{2014} c"), "a \\(-> b \\(em c");
    }

    #[test]
    fn outputs_parse() {
        assert_eq!(Output::parse("man").ok(), Some(Output::Man));
        assert_eq!(Output::parse("fish").ok(), Some(Output::Fish));
        assert!(Output::parse("tcsh").is_err());
    }
}
