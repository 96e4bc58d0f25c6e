//! The multicall binary: by subcommand, by link name, renamed; `--install`; exit codes.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{bin, rtool, Cmd};

/// A scratch directory on the same filesystem as the binary (hard links need that).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dispatch-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
}

#[test]
fn bare_binary_and_list_show_every_applet_with_its_summary() {
    // Bare, the list comes with a usage exit, so a script notices.
    for (args, code) in [(&[][..], 2), (&["--list"][..], 0)] {
        let out = rtool(args)
            .run()
            .status(code)
            .stdout_has("rtool APPLET --help")
            .stdout();
        for (name, summary) in [
            ("doctor", "Report the rescue situation"),
            ("extract", "Unpack pacman packages"),
            ("vercmp", "Compare two package versions"),
        ] {
            assert!(
                out.lines()
                    .any(|l| l.trim_start().starts_with(name) && l.contains(summary)),
                "no line for {name}:\n{out}"
            );
        }
    }
}

#[test]
fn subcommand_runs_the_applet() {
    rtool(["doctor", "--help"])
        .run()
        .success()
        .stdout_has("Usage: rtool doctor")
        .stdout_has("Examples:");
    rtool(["help", "doctor"])
        .run()
        .success()
        .stdout_has("Usage: rtool doctor");
}

#[test]
fn link_named_after_an_applet_runs_it() {
    let d = scratch();
    let link = d.path().join("doctor");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    Cmd::new(&link)
        .arg("--help")
        .run()
        .success()
        .stdout_has("Usage: doctor");
    // A login shell's leading dash is stripped, as busybox does.
    let dash = d.path().join("-doctor");
    std::os::unix::fs::symlink(bin(), &dash).unwrap();
    Cmd::new(&dash)
        .arg("--help")
        .run()
        .success()
        .stdout_has("Usage: doctor");
}

#[test]
fn renamed_binary_still_works_as_the_container() {
    let d = scratch();
    let renamed = d.path().join("rtool-x86_64.static");
    fs::copy(bin(), &renamed).unwrap();
    Cmd::new(&renamed)
        .args(["doctor", "--help"])
        .run()
        .success()
        .stdout_has("Usage: rtool doctor");
    Cmd::new(&renamed)
        .arg("--list")
        .run()
        .success()
        .stdout_has("doctor");
}

#[test]
fn version_is_printed() {
    let want = format!("rtool {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(rtool(["--version"]).run().success().stdout(), want);
    rtool(["doctor", "--version"])
        .run()
        .success()
        .stdout_has(env!("CARGO_PKG_VERSION"));
}

#[test]
fn unknown_applet_exits_127() {
    rtool(["no-such-applet"])
        .run()
        .status(127)
        .stderr_has("unknown applet 'no-such-applet'");
    rtool(["help", "no-such-applet"]).run().status(127);
    // Not UTF-8: still a clear message, no panic.
    rtool([std::ffi::OsStr::from_bytes(b"\xff\xfe")])
        .run()
        .status(127)
        .stderr_has("unknown applet");
}

#[test]
fn usage_errors_exit_2() {
    // In rtool's own format: one error line, one hint line.
    let e = rtool(["doctor", "--no-such-option"])
        .run()
        .status(2)
        .stderr();
    assert_eq!(
        e,
        "doctor: error: unknown option --no-such-option\ndoctor: hint: rtool doctor --help\n"
    );
    let e = rtool(["doctor", "--jsn"]).run().status(2).stderr();
    assert_eq!(
        e,
        "doctor: error: unknown option --jsn\ndoctor: hint: did you mean --json? (rtool doctor --help)\n"
    );
    rtool(["extract"])
        .run()
        .status(2)
        .stderr_has("extract: error: missing <PKG>...");
    rtool(["--install"])
        .run()
        .status(2)
        .stderr_has("--install needs a directory");
    rtool(["--install", "-x", "/tmp"])
        .run()
        .status(2)
        .stderr_has("unknown option '-x'");
}

#[test]
fn unreadable_system_exits_7_with_a_hint() {
    // A host root with no /proc: doctor cannot read the mount table.
    let empty = tempfile::tempdir().unwrap();
    rtool(["doctor"])
        .host(empty.path())
        .run()
        .status(7)
        .stderr_has("doctor: error: cannot read the mount table")
        .stderr_has("hint: is /proc mounted?");
}

#[test]
fn broken_pipe_exits_0_quietly() {
    let mut child = Command::new(bin())
        .arg("--list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before rtool writes anything.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "stderr: {err}");
}

fn applet_names() -> Vec<String> {
    let out = rtool(["--list"]).run().success().stdout();
    out.lines()
        // A summary wrapped to 80 columns goes on under itself, further in.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn install_symlinks_then_run_through_a_link() {
    let d = scratch();
    let dir = d.path().join("bin"); // does not exist yet: created
    rtool(["--install", "-s"])
        .arg(&dir)
        .run()
        .success()
        .stdout_has("symbolic")
        .stdout_has("not linked, so the system's own stay first in PATH: chroot, modprobe, rmmod");
    // The names of the system's own tools are left to them unless --all.
    let shadowing = ["chroot", "modprobe", "rmmod"];
    let names: Vec<String> = applet_names()
        .into_iter()
        .filter(|n| !shadowing.contains(&n.as_str()))
        .collect();
    assert!(!names.is_empty());
    for n in shadowing {
        assert!(fs::symlink_metadata(dir.join(n)).is_err(), "{n} was linked");
    }
    for n in &names {
        let link = dir.join(n);
        let target = fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert_eq!(
            fs::canonicalize(&target).unwrap(),
            fs::canonicalize(bin()).unwrap()
        );
    }
    Cmd::new(dir.join("doctor"))
        .arg("--help")
        .run()
        .success()
        .stdout_has("Usage: doctor");
    // Running it again changes nothing and says so.
    rtool(["--install", "-s"])
        .arg(&dir)
        .run()
        .success()
        .stdout_has(&format!(
            "0 link(s) in {} ({} already there)",
            dir.display(),
            names.len()
        ));
    rtool(["--install", "-s", "--all"])
        .arg(&dir)
        .run()
        .success()
        .stdout_has("3 link(s)");
    for n in shadowing {
        assert!(fs::read_link(dir.join(n)).is_ok(), "{n} was not linked");
    }
}

#[test]
fn install_hardlinks_by_default() {
    let d = scratch();
    rtool(["--install"])
        .arg(d.path())
        .run()
        .success()
        .stdout_has("hard");
    let ino = fs::metadata(bin()).unwrap().ino();
    assert_eq!(fs::metadata(d.path().join("doctor")).unwrap().ino(), ino);
    Cmd::new(d.path().join("doctor"))
        .arg("--help")
        .run()
        .success();
}

#[test]
fn install_next_to_the_binary_uses_relative_links() {
    let d = scratch();
    let copy = d.path().join("rtool");
    fs::copy(bin(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    Cmd::new(&copy)
        .args(["--install", "-s"])
        .arg(d.path())
        .run()
        .success();
    assert_eq!(
        fs::read_link(d.path().join("doctor")).unwrap(),
        PathBuf::from("rtool")
    );
}

#[test]
fn install_refuses_foreign_files_unless_forced() {
    let d = scratch();
    let foreign = d.path().join("doctor");
    fs::write(&foreign, "#!/bin/sh\necho mine\n").unwrap();
    rtool(["--install", "-s"])
        .arg(d.path())
        .run()
        .status(4)
        .stderr_has("already belong to something else")
        .stderr_has("nothing was changed")
        .stderr_has("--force");
    // Nothing was created, the foreign file is intact.
    assert_eq!(
        fs::read_to_string(&foreign).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    rtool(["--install", "-s", "--force"])
        .arg(d.path())
        .run()
        .success()
        .stdout_has("1 replaced");
    assert!(fs::symlink_metadata(&foreign)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn install_into_a_directory_name_that_is_a_file_fails_cleanly() {
    let d = scratch();
    let f = d.path().join("file");
    fs::write(&f, "x").unwrap();
    rtool(["--install", "-s"])
        .arg(&f)
        .run()
        .status(4)
        .stderr_has(&f.display().to_string());
}

/// `--json` anywhere before `--` asks for errors as JSON on stdout: a usage error the parser
/// finds, a bad `--root`, and an error from the applet's own work; the person's two lines
/// stay on stderr.
#[test]
fn errors_are_json_on_stdout_when_json_is_asked_for() {
    let check = |d: &common::Done, applet: &str, code: i32, said: &str| {
        assert_eq!(d.code(), code, "{}", d.stderr());
        let j = d.json();
        let e = &j["error"];
        assert_eq!(e["applet"], applet, "{j}");
        assert_eq!(
            e["exit"].as_u64(),
            Some(code as u64),
            "exit is a number: {j}"
        );
        assert!(e["message"].as_str().unwrap().contains(said), "{j}");
        // Always there: a string, or null when the error has no hint.
        assert!(
            e.as_object().is_some_and(|o| o.contains_key("hint"))
                && (e["hint"].is_string() || e["hint"].is_null()),
            "{j}"
        );
        assert!(
            d.stderr().contains(&format!("{applet}: error: ")),
            "{}",
            d.stderr()
        );
    };
    // The parser's error, with the suggestion as the hint.
    let d = rtool(["doctor", "--json", "--jsn"]).run();
    check(&d, "doctor", 2, "unknown option --jsn");
    assert!(d.json()["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("did you mean --json?"));
    // Before the applet runs: the target is not a system.
    let d = rtool(["preflight", "--json", "--root", "/nonexistent-rtool-root"]).run();
    check(&d, "preflight", 2, "/nonexistent-rtool-root");
    // The applet's own error, from a subcommand with --json.
    let t = tempfile::tempdir().unwrap();
    let d = rtool(["initramfs", "check", "--json", "--module", "zfs"])
        .arg(t.path().join("missing.img"))
        .run();
    check(&d, "initramfs", 7, "missing.img");
    // An applet without --json: the unknown option is still said as JSON.
    let d = rtool(["vercmp", "1", "2", "--json"]).run();
    assert_eq!(d.json()["error"]["exit"].as_u64(), Some(2));
    // No such applet.
    let d = rtool(["doktor", "--json"]).run();
    assert_eq!(d.code(), 127);
    assert_eq!(d.json()["error"]["exit"].as_u64(), Some(127));
    assert!(d.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("doktor"));
    // Without --json, stdout stays empty; after `--` it belongs to the command.
    let d = rtool(["doctor", "--jsn"]).run();
    assert_eq!((d.code(), d.stdout()), (2, String::new()));
    let d = rtool(["chroot", "/nonexistent-rtool-root", "--", "ls", "--json"]).run();
    assert_eq!(d.code(), 2, "{}", d.stderr());
    assert_eq!(d.stdout(), "", "--json after -- is the command's");
    assert!(d.stderr().contains("chroot: error: "), "{}", d.stderr());
}
