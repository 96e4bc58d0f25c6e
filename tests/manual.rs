//! `rtool --generate man|bash|zsh|fish` and `make install-files`: the page renders cleanly and
//! holds every applet and option `--help` shows; each shell really completes from its script.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, rtool};

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("manual-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
}

/// `rtool --generate WHAT` written to `FILE` in a new scratch directory: the directory, the
/// file and the text.
fn generated(what: &str, file: &str) -> (tempfile::TempDir, PathBuf, String) {
    let d = scratch();
    let path = d.path().join(file);
    let text = rtool(["--generate", what]).run().success().stdout();
    std::fs::write(&path, &text).expect("write the generated file");
    (d, path, text)
}

/// The applet names, as `rtool --list` prints them.
fn applets() -> Vec<String> {
    let out = rtool(["--list"]).run().success().stdout();
    out.lines()
        // A summary wrapped to 80 columns goes on under itself, further in.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `--long` option a help text names.
fn long_options(help: &str) -> Vec<String> {
    let mut v: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .filter(|w| w.len() > 2)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_man_page_renders_without_warnings_and_holds_every_applet_and_option() {
    let (_d, page, text) = generated("man", "rtool.1");
    assert!(text.starts_with(".TH RTOOL 1 "), "{}", &text[..80]);

    // groff itself is the judge of the roff: every warning class on, no output.
    let (code, _, err) = run(Command::new("groff").args(["-man", "-ww", "-z"]).arg(&page));
    assert_eq!((code, err.as_str()), (0, ""), "groff warns about the page");

    // What a reader sees, without overstrikes.
    let (code, shown, err) = run(Command::new("groff")
        .args(["-man", "-Tascii", "-P-cbou"])
        .arg(&page));
    assert_eq!(code, 0, "{err}");
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "APPLETS", "EXIT STATUS"] {
        assert!(shown.lines().any(|l| l == section), "no {section} section");
    }
    let names = applets();
    assert!(names.len() >= 17, "{names:?}");
    for name in &names {
        let heading = format!("RTOOL {}", name.to_uppercase());
        let start = shown
            .lines()
            .position(|l| l == heading)
            .unwrap_or_else(|| panic!("no section {heading}"));
        let body: Vec<&str> = shown
            .lines()
            .skip(start + 1)
            .take_while(|l| !(l.starts_with("RTOOL ") || l.starts_with("EXIT STATUS")))
            .collect();
        let body = body.join("\n");
        assert!(
            body.contains(&format!("rtool {name}")),
            "{name}: no usage line"
        );
        let help = rtool([name.as_str(), "--help"]).run().success().stdout();
        for opt in long_options(&help) {
            if ["--help", "--version", "--verbose", "--quiet"].contains(&opt.as_str()) {
                continue;
            }
            assert!(
                body.contains(&opt),
                "{name}: the page lacks {opt}, which --help shows"
            );
        }
        // The examples come over as they are.
        if let Some(ex) = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("rtool {name} ")))
        {
            let words: Vec<&str> = ex.split_whitespace().take_while(|w| *w != "#").collect();
            let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                flat.contains(&words.join(" ")),
                "{name}: example {ex:?} not in the page"
            );
        }
    }
}

#[test]
fn bash_completes_applets_and_their_options() {
    let (_d, script, _) = generated("bash", "rtool.bash");
    let complete = |words: &[&str]| -> String {
        let words_q = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let cur = words.last().copied().unwrap_or("");
        let prev = words
            .get(words.len().wrapping_sub(2))
            .copied()
            .unwrap_or("");
        let sh = format!(
            "source '{}'; COMP_WORDS=({words_q}); COMP_CWORD={}; COMP_LINE='{}'; \
             COMP_POINT=${{#COMP_LINE}}; _rtool rtool '{cur}' '{prev}'; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.len() - 1,
            words.join(" ")
        );
        let (code, out, err) = run(Command::new("bash").args(["--norc", "-c", &sh]));
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = complete(&["rtool", "fetch"]);
    assert_eq!(out.trim(), "fetch-pkg");
    let out = complete(&["rtool", "fetch-pkg", "--mir"]);
    assert_eq!(out.trim(), "--mirror");
    let out = complete(&["rtool", "chroot", "--zp"]);
    assert_eq!(out.trim(), "--zpool");
    let out = complete(&["rtool", "--gen"]);
    assert_eq!(out.trim(), "--generate");
    // An option's fixed values, an applet's subcommands and a subcommand's own options.
    let out = complete(&["rtool", "--generate", ""]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["man", "bash", "zsh", "fish"]
    );
    let out = complete(&["rtool", "pubkey", ""]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["add", "list", "remove"]
    );
    let out = complete(&["rtool", "stick", "prepare", "--for"]);
    assert_eq!(out.trim(), "--for-root");
    // A directory option offers directories only.
    let out = complete(&["rtool", "doctor", "--root", "/pro"]);
    assert_eq!(out.trim(), "/proc");
    // Through a link named after the applet, the same.
    let out = complete(&["doctor", "--ro"]);
    assert_eq!(out.trim(), "--root");
}

/// An interactive zsh on a pseudo-terminal (zsh/zpty) types each line and a TAB; what the
/// line became is what zsh's completion system made of the script.
#[test]
fn zsh_completes_on_a_real_terminal() {
    let (d, _, _) = generated("zsh", "_rtool");
    let dir = d.path().display();
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=({dir} \$fpath); autoload -U compinit; compinit -u -d {dir}/dump; PS1='> '"
zpty -w z $'rtool fetch-pkg --mir\t\n'
zpty -w z $'rtool --gen\t\n'
zpty -w z $'rtool stick prepare --for\t\n'
zpty -w z $'doctor --ro\t\n'
zpty -w z 'exit'
sleep 3
while zpty -rt z line 2>/dev/null; do print -rn -- "$line"; done
"#
    );
    let (_, out, err) = run(Command::new("timeout").args(["30", "zsh", "-f", "-c", &driver]));
    // Without the terminal's escapes.
    let mut plain = String::new();
    let mut esc = false;
    for c in out.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    for want in [
        "rtool fetch-pkg --mirror ",
        "rtool --generate ",
        "rtool stick prepare --for-root ",
        "doctor --root ",
    ] {
        assert!(
            plain.contains(want),
            "zsh did not complete to {want:?}:\n{plain}\n{err}"
        );
    }
}

#[test]
fn zsh_registers_rtool_and_its_links_but_not_the_system_tools_names() {
    let (d, _, _) = generated("zsh", "_rtool");
    let sh = format!(
        "fpath=({} $fpath); autoload -U compinit; compinit -u -d {}/zcompdump;          print -r -- \"$_comps[rtool] $_comps[doctor] <$_comps[chroot]>\"",
        d.path().display(),
        d.path().display()
    );
    let (code, out, err) = run(Command::new("zsh").args(["-f", "-c", &sh]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("_rtool _rtool <"), "{out}");
    assert!(
        !out.contains("<_rtool>"),
        "chroot's completion taken over: {out}"
    );
}

#[test]
fn fish_completes_applets_and_their_options() {
    let (_d, script, _) = generated("fish", "rtool.fish");
    let complete = |line: &str| -> String {
        let sh = format!("source '{}'; complete -C '{line}'", script.display());
        let (code, out, err) = run(Command::new("fish").args(["--no-config", "-c", &sh]));
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = complete("rtool doc");
    assert!(
        out.lines()
            .any(|l| l.starts_with("doctor\tReport the rescue situation")),
        "{out}"
    );
    let out = complete("rtool install --over");
    assert!(out.lines().any(|l| l.starts_with("--overwrite")), "{out}");
    let out = complete("rtool hook ");
    let subs: Vec<&str> = out.lines().filter_map(|l| l.split('\t').next()).collect();
    assert!(
        subs.contains(&"install") && subs.contains(&"status"),
        "{out}"
    );
    let out = complete("rtool --generate ");
    let mut vals: Vec<&str> = out.lines().filter_map(|l| l.split('\t').next()).collect();
    vals.sort();
    assert_eq!(vals, ["bash", "fish", "man", "zsh"], "{out}");
}

#[test]
fn zsh_script_parses_and_names_every_applet() {
    let (_d, script, text) = generated("zsh", "_rtool");
    assert!(text.starts_with("#compdef rtool"), "{}", &text[..40]);
    let (code, _, err) = run(Command::new("zsh").arg("-n").arg(&script));
    assert_eq!(code, 0, "zsh -n: {err}");
    for name in applets() {
        assert!(text.contains(&format!("'{name}:")), "zsh: no {name}");
    }
}

#[test]
fn generate_without_a_known_output_is_a_usage_error() {
    rtool(["--generate"])
        .run()
        .status(2)
        .stderr_has("rtool: error: --generate needs what to write")
        .stderr_has("hint: usage: rtool --generate man|bash|zsh|fish");
    rtool(["--generate", "tcsh"])
        .run()
        .status(2)
        .stderr_has("unknown output 'tcsh' (one of: man, bash, zsh, fish)");
}

#[test]
fn make_install_files_puts_the_page_and_completions_where_their_readers_look() {
    let d = scratch();
    let dest = d.path().join("dest");
    let (code, out, err) = run(Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--no-print-directory")
        .arg("install-files")
        .arg(format!("BIN={}", bin().display()))
        .arg(format!("DESTDIR={}", dest.display()))
        .arg("PREFIX=/usr"));
    assert_eq!(code, 0, "{out}{err}");
    let share = dest.join("usr/share");
    let page = std::fs::read_to_string(share.join("man/man1/rtool.1")).expect("page");
    assert_eq!(page, rtool(["--generate", "man"]).run().success().stdout());
    for (f, head) in [
        ("bash-completion/completions/rtool", "_rtool()"),
        ("zsh/site-functions/_rtool", "#compdef rtool"),
        ("fish/vendor_completions.d/rtool.fish", "complete -c rtool"),
    ] {
        let text = std::fs::read_to_string(share.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains(head), "{f}");
    }
    assert!(Path::new(&dest.join("usr/bin/doctor")).exists());
    // The names that would shadow the system's tools stay out by default.
    assert!(!dest.join("usr/bin/chroot").exists());
    // No temporary file is left behind.
    let leftovers: Vec<_> = walk(&share)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}
