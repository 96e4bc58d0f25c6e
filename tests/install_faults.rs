//! `rtool install` when things go wrong: the process killed at every step of the commit
//! (fault injection, `RTOOL_FAULT`) and in the middle of staging a big package, a filesystem
//! that runs out of inodes or blocks at every possible moment, a held database lock, an
//! unowned conflicting file, and `-n`. After each, the root must be consistent — no database
//! entry naming files that are not there, as the real `pacman -Qk` judges — and the same
//! command run again must leave exactly what an undisturbed install leaves.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tree::{arch_root, listing, listing_diff, local_db, VOLATILE};
use common::{in_mount_ns, rtool, Cmd, Done};

fn pkg(name: &str) -> PathBuf {
    common::install_pkg(name)
}

/// Debian's kernel module tree as a pacman package: ~4900 members, 93 MiB.
fn kmod() -> PathBuf {
    let p = common::fixtures().join("rtool-kmod-1.0-1-x86_64.pkg.tar.zst");
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

/// A minimal pacman.conf for reading the roots with the real pacman.
fn pacman_conf() -> &'static Path {
    static CONF: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CONF.get_or_init(|| {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install-faults-pacman.conf");
        fs::write(&p, "[options]\nSigLevel = Never\n").expect("write pacman.conf");
        p
    })
}

/// A fresh Arch-like root: `/bin`, `/lib`, `/sbin` link into `/usr`, busybox is `/bin/sh`.
fn new_root() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rtool-faults-")
        .tempdir()
        .expect("tempdir");
    arch_root(dir.path());
    dir
}

/// `rtool install --root ROOT --skip-verify PKG…`, not yet run.
fn install(root: &Path, pkgs: &[&Path]) -> Cmd {
    rtool(["install", "--root"])
        .arg(root)
        .arg("--skip-verify")
        .args(pkgs)
}

fn lock_file(root: &Path) -> PathBuf {
    root.join("var/lib/pacman/db.lck")
}

fn journal_dir(root: &Path) -> PathBuf {
    root.join("var/lib/pacman/rtool-txn")
}

/// The first `n` lines of `text`, and how many more there were.
fn head(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines.iter().take(n).cloned().collect::<Vec<_>>().join("\n");
    if lines.len() > n {
        out += &format!("\n… and {} more lines", lines.len() - n);
    }
    out
}

fn all_output(d: &Done) -> String {
    format!("--- stdout\n{}\n--- stderr\n{}", d.stdout(), d.stderr())
}

/// The paths named in the `%FILES%` of every entry in `local/` that do not exist (lstat).
fn db_names_missing_paths(root: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let local = root.join("var/lib/pacman/local");
    let Ok(rd) = fs::read_dir(&local) else {
        return missing;
    };
    for e in rd.flatten() {
        let files = e.path().join("files");
        if !e.path().is_dir() {
            continue;
        }
        let text =
            fs::read_to_string(&files).unwrap_or_else(|err| panic!("{}: {err}", files.display()));
        let mut in_files = false;
        for line in text.lines() {
            if line.starts_with('%') {
                in_files = line == "%FILES%";
                continue;
            }
            if !in_files || line.is_empty() {
                continue;
            }
            let p = root.join(line.trim_end_matches('/'));
            if fs::symlink_metadata(&p).is_err() {
                missing.push(format!("{}: /{line}", e.file_name().to_string_lossy()));
            }
        }
    }
    missing
}

/// Every `.rtool-new.*` staging file below `root`.
fn staged_leftovers(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(".rtool-new.") {
                found.push(p.strip_prefix(root).unwrap().display().to_string());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
}

/// What a finished (or refused) run must not leave: staging files, the lock, the journal.
fn leftovers(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = staged_leftovers(root)
        .into_iter()
        .map(|p| format!("staging file {p}"))
        .collect();
    if fs::symlink_metadata(lock_file(root)).is_ok() {
        out.push("var/lib/pacman/db.lck".into());
    }
    if fs::symlink_metadata(journal_dir(root)).is_ok() {
        out.push("var/lib/pacman/rtool-txn".into());
    }
    out
}

/// Runs the real pacman on `root` (`pacman -r ROOT --config CONF ARGS…`).
fn pacman(root: &Path, args: &[&str]) -> Done {
    Cmd::new("pacman")
        .arg("-r")
        .arg(root)
        .arg("--config")
        .arg(pacman_conf())
        .args(args)
        .env("LC_ALL", "C")
        .run()
}

/// `pacman -Qk [PKG]`: an error line for each problem (empty when pacman finds every file
/// its database names). With no package in the database pacman exits 1 and says nothing.
fn pacman_missing(root: &Path, pkgs: &[&str]) -> Vec<String> {
    let mut args = vec!["-Qk"];
    args.extend_from_slice(pkgs);
    let d = pacman(root, &args);
    let mut problems = Vec::new();
    let mut summaries = 0;
    for line in d.stdout().lines() {
        if line.contains("total file") {
            summaries += 1;
            if !line.contains(" 0 missing files") {
                problems.push(format!("pacman -Qk: {line}"));
            }
        }
    }
    let has_entries = fs::read_dir(root.join("var/lib/pacman/local"))
        .map(|rd| rd.flatten().any(|e| e.path().is_dir()))
        .unwrap_or(false);
    if has_entries && (d.code() != 0 || summaries == 0) {
        problems.push(format!(
            "pacman -Qk exited {}\n{}",
            d.code(),
            all_output(&d)
        ));
    }
    problems
}

/// Collected failures, reported together at the end of a test.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }
    fn all(&mut self, what: &str, lines: Vec<String>) {
        if !lines.is_empty() {
            self.0.push(format!(
                "{what}:\n  {}",
                lines
                    .iter()
                    .take(30)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    #[track_caller]
    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

/// The reference: rt-base 1.0 then 2.0 installed by rtool, undisturbed.
fn reference_upgrade() -> tempfile::TempDir {
    let r = new_root();
    install(r.path(), &[&pkg("rt-base-1.0-1")]).run().success();
    install(r.path(), &[&pkg("rt-base-2.0-1")]).run().success();
    assert!(
        leftovers(r.path()).is_empty(),
        "an undisturbed upgrade left {:?}",
        leftovers(r.path())
    );
    assert!(
        r.path()
            .join("var/lib/pacman/local/rt-base-2.0-1/files")
            .is_file(),
        "the reference upgrade has no rt-base-2.0-1 entry"
    );
    r
}

#[test]
fn killed_at_every_point_then_rerun_finishes() {
    common::require_root();
    let reference = reference_upgrade();
    let want_tree = listing(reference.path(), VOLATILE);
    let want_db = local_db(reference.path());
    let mut p = Problems::default();
    for point in ["staged", "renamed", "old-moved", "committed", "finishing"] {
        let r = new_root();
        let root = r.path();
        install(root, &[&pkg("rt-base-1.0-1")]).run().success();

        let killed = install(root, &[&pkg("rt-base-2.0-1")])
            .env("RTOOL_FAULT", point)
            .run();
        p.check(killed.0.status.signal() == Some(libc::SIGKILL), || {
            format!(
                "{point}: the run was not killed at the fault point (status {:?})\n{}",
                killed.0.status,
                all_output(&killed)
            )
        });
        // Right after the kill: the database never names a file that is not there.
        p.all(
            &format!("{point}: after the kill, local/ names paths that do not exist"),
            db_names_missing_paths(root),
        );
        p.all(
            &format!("{point}: after the kill, pacman -Qk finds files missing"),
            pacman_missing(root, &[]),
        );
        p.check(lock_file(root).exists(), || {
            format!("{point}: the killed run left no db.lck (did it hold the lock?)")
        });

        let rerun = install(root, &[&pkg("rt-base-2.0-1")]).run();
        if rerun.code() != 0 {
            p.0.push(format!(
                "{point}: the rerun exited {}\n{}",
                rerun.code(),
                all_output(&rerun)
            ));
            continue;
        }
        p.check(rerun.stderr().contains("taking it over"), || {
            format!(
                "{point}: the rerun did not say it took over the killed run's lock\n{}",
                rerun.stderr()
            )
        });
        p.all(&format!("{point}: after the rerun"), leftovers(root));
        let db = local_db(root);
        if db != want_db {
            p.0.push(format!(
                "{point}: the local database differs from an undisturbed upgrade's:\n  {}",
                listing_diff(&want_db, &db).join("\n  ")
            ));
        }
        p.all(
            &format!("{point}: the tree differs from an undisturbed upgrade's"),
            listing_diff(&want_tree, &listing(root, VOLATILE)),
        );
        p.all(
            &format!("{point}: after the rerun, pacman -Qk finds files missing"),
            pacman_missing(root, &[]),
        );
    }
    p.finish();
}

#[test]
fn killed_mid_stage_of_a_big_package_leaves_the_root_unchanged() {
    common::require_root();
    let pkgfile = kmod();
    let mut p = Problems::default();
    for delay in [Duration::from_millis(300), Duration::from_millis(1000)] {
        let r = new_root();
        let root = r.path();
        let before = listing(root, VOLATILE);
        let err = root.join("tmp/killed.err");
        let mut child = Command::new(common::bin())
            .args(["install", "--root"])
            .arg(root)
            .arg("--skip-verify")
            .arg(&pkgfile)
            .env_remove("RTOOL_HOST_ROOT")
            .env_remove("RTOOL_FAULT")
            .env("RTOOL_PROGRESS", "lines")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn rtool");
        std::thread::sleep(delay);
        let early = child.try_wait().expect("try_wait");
        let _ = child.kill();
        let status = child.wait().expect("wait");
        match early {
            Some(s) => eprintln!(
                "note: after {delay:?} rtool had already finished ({s}); it was not killed mid-stage"
            ),
            None => p.check(status.signal() == Some(libc::SIGKILL), || {
                format!("{delay:?}: the kill did not end the run ({status})")
            }),
        }
        if early.is_none() {
            let staged = staged_leftovers(root).len();
            eprintln!("note: killed after {delay:?} with {staged} files staged");
            let entries: Vec<String> = fs::read_dir(root.join("var/lib/pacman/local"))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with("rtool-kmod"))
                        .collect()
                })
                .unwrap_or_default();
            p.check(entries.is_empty(), || {
                format!("{delay:?}: killed mid-stage, yet local/ has {entries:?}")
            });
            p.all(
                &format!("{delay:?}: after the kill, local/ names paths that do not exist"),
                db_names_missing_paths(root),
            );
            // Nothing but staging files (and the lock, the journal) is new in the root.
            let now = listing(root, VOLATILE);
            let changed: Vec<String> = listing_diff(&before, &now)
                .into_iter()
                .filter(|l| {
                    // Directories staging made for the package, the staging files themselves
                    // and the journal are expected; a file in its final place is not.
                    !(l.contains(".rtool-new.")
                        || l.starts_with("var/lib/pacman/")
                        || l.contains(": unexpected (dir "))
                })
                .collect();
            p.all(
                &format!("{delay:?}: after the kill, files are in their final place"),
                changed,
            );
        }

        let rerun = install(root, &[&pkgfile]).run();
        if rerun.code() != 0 {
            p.0.push(format!(
                "{delay:?}: the rerun exited {}\n{}",
                rerun.code(),
                all_output(&rerun)
            ));
            continue;
        }
        p.all(&format!("{delay:?}: after the rerun"), leftovers(root));
        p.all(
            &format!("{delay:?}: after the rerun, pacman -Qk"),
            pacman_missing(root, &["rtool-kmod"]),
        );
        let full = pacman(root, &["-Qkk", "rtool-kmod"]);
        p.check(
            full.code() == 0 && full.stdout().contains(" 0 altered files"),
            || {
                format!(
                    "{delay:?}: pacman -Qkk rtool-kmod after the rerun: {}\n{}",
                    full.stdout().trim(),
                    head(&full.stderr(), 8)
                )
            },
        );
    }
    p.finish();
}

/// The attempts the tmpfs script made: (kind, budget).
fn attempts(out: &Path) -> Vec<(String, u32)> {
    fs::read_to_string(out.join("attempts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (kind, k) = l.split_once(' ')?;
            Some((kind.to_string(), k.parse().ok()?))
        })
        .collect()
}

fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn full_filesystem_is_undone() {
    common::require_root();
    let reference = reference_upgrade();
    let want_after = listing(reference.path(), VOLATILE);
    let scratch = tempfile::Builder::new()
        .prefix("rtool-faults-full-")
        .tempdir()
        .expect("tempdir");
    let mnt = scratch.path().join("mnt");
    let out = scratch.path().join("out");
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&out).unwrap();
    let (base1, base2, kmodfile) = (pkg("rt-base-1.0-1"), pkg("rt-base-2.0-1"), kmod());
    // For every budget of free inodes (then of free blocks) from none upwards until the
    // upgrade fits: the root is restored to rt-base 1.0, the tmpfs shrunk to what it uses
    // plus the budget, the upgrade run, the result copied out; then the tmpfs is grown and
    // the same command run again, and that result copied out too.
    let script = r#"
mkroot() {
    mkdir -p "$1"/{usr/bin,usr/lib,etc,var/log,var/lib/pacman,tmp}
    ln -s usr/bin "$1/bin"; ln -s usr/lib "$1/lib"; ln -s usr/bin "$1/sbin"
    cp /bin/busybox "$1/usr/bin/busybox"
    for l in sh false true; do ln -s busybox "$1/usr/bin/$l"; done
}
big() { mount -o remount,size=256m,nr_inodes=100000 "$MNT"; }
restore() { big; rm -rf "$R"; cp -a "$OUT/pristine" "$R"; }
shrink() { # KIND BUDGET
    local tot free bs
    if [[ $1 == inodes ]]; then
        read -r tot free < <(stat -f -c '%c %d' "$MNT")
        mount -o remount,nr_inodes=$((tot - free + $2)) "$MNT"
    else
        read -r tot free bs < <(stat -f -c '%b %f %S' "$MNT")
        mount -o remount,size=$(((tot - free + $2) * bs / 1024))k "$MNT"
    fi
}
run() { # NAME PKG
    local rc=0
    "$RTOOL" install --root "$R" --skip-verify "$2" >"$OUT/$1.out" 2>"$OUT/$1.err" || rc=$?
    echo "$rc" >"$OUT/$1.rc"
}
mount -t tmpfs -o size=256m,nr_inodes=100000 rtool-faults "$MNT"
R="$MNT/root"
mkroot "$R"
"$RTOOL" install --root "$R" --skip-verify "$BASE1" >/dev/null 2>&1
cp -a "$R" "$OUT/pristine"
for kind in inodes blocks; do
    for k in $(seq 0 60); do
        name=$kind-$k
        restore
        shrink "$kind" "$k"
        run "$name" "$BASE2"
        big
        cp -a "$R" "$OUT/$name.after"
        echo "$kind $k" >>"$OUT/attempts"
        [[ $(cat "$OUT/$name.rc") == 0 ]] && break
        run "$name.rerun" "$BASE2"
        cp -a "$R" "$OUT/$name.rerun.after"
    done
done
# The space check: the kernel module tree on a filesystem with 4 MiB left.
restore
shrink blocks 1024
run kmod "$KMOD"
big
cp -a "$R" "$OUT/kmod.after"
"#;
    let vars: [(&str, &OsStr); 5] = [
        ("MNT", mnt.as_os_str()),
        ("OUT", out.as_os_str()),
        ("BASE1", base1.as_os_str()),
        ("BASE2", base2.as_os_str()),
        ("KMOD", kmodfile.as_os_str()),
    ];
    in_mount_ns(script, &vars).success();

    let pristine = listing(&out.join("pristine"), VOLATILE);
    assert!(
        pristine.contains_key("var/lib/pacman/local/rt-base-1.0-1/files"),
        "rt-base 1.0 was not installed on the tmpfs"
    );
    let mut p = Problems::default();
    let tried = attempts(&out);
    for kind in ["inodes", "blocks"] {
        let mine: Vec<u32> = tried
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, b)| *b)
            .collect();
        let last = mine.last().copied();
        p.check(
            last.is_some_and(|b| read_trim(&out.join(format!("{kind}-{b}.rc"))) == "0"),
            || format!("{kind}: the upgrade never succeeded, budgets {mine:?}"),
        );
        let mut midway = 0;
        let mut prechecked = 0;
        for b in mine {
            let name = format!("{kind}-{b}");
            let rc = read_trim(&out.join(format!("{name}.rc")));
            let err = read_trim(&out.join(format!("{name}.err")));
            if rc == "0" {
                p.all(
                    &format!("{name}: the upgrade that fit differs from an undisturbed one"),
                    listing_diff(
                        &want_after,
                        &listing(&out.join(format!("{name}.after")), VOLATILE),
                    ),
                );
                continue;
            }
            let after = out.join(format!("{name}.after"));
            p.check(rc == "4" || rc == "1", || {
                format!("{name} free: exit {rc}, want 4 (the system refused) or 1 (refused before)\n{err}")
            });
            if rc == "1" {
                prechecked += 1;
                p.check(err.contains("not enough space"), || {
                    format!("{name} free: exit 1 without \"not enough space\"\n{err}")
                });
            }
            if rc == "4" && err.contains("rt-base-2.0-1-x86_64.pkg.tar.zst: usr/") {
                midway += 1;
            }
            p.all(
                &format!(
                    "{name} free: exit {rc} ({}) but the root changed",
                    err.lines()
                        .filter(|l| !l.contains("--skip-verify"))
                        .collect::<Vec<_>>()
                        .join(" / ")
                ),
                listing_diff(&pristine, &listing(&after, VOLATILE)),
            );
            p.all(&format!("{name} free: after exit {rc}"), leftovers(&after));
            let rerun_rc = read_trim(&out.join(format!("{name}.rerun.rc")));
            p.check(rerun_rc == "0", || {
                format!(
                    "{name} free: the rerun with space exited {rerun_rc}\n{}",
                    read_trim(&out.join(format!("{name}.rerun.err")))
                )
            });
            let rerun_after = out.join(format!("{name}.rerun.after"));
            p.all(
                &format!("{name} free: the rerun with space differs from an undisturbed upgrade"),
                listing_diff(&want_after, &listing(&rerun_after, VOLATILE)),
            );
            p.all(
                &format!("{name} free: after the rerun"),
                leftovers(&rerun_after),
            );
        }
        p.check(midway >= 3, || {
            format!("{kind}: only {midway} runs failed while writing the package's files: the budgets never ran out midway")
        });
        if kind == "blocks" {
            p.check(prechecked >= 1, || {
                "blocks: no run was refused by the space check".to_string()
            });
        }
    }

    let rc = read_trim(&out.join("kmod.rc"));
    let err = read_trim(&out.join("kmod.err"));
    p.check(rc == "1" && err.contains("not enough space"), || {
        format!(
            "the kernel module tree on 4 MiB: exit {rc}, want 1 and \"not enough space\"\n{err}"
        )
    });
    let after = out.join("kmod.after");
    p.all(
        "the kernel module tree refused for space, yet the root changed",
        listing_diff(&pristine, &listing(&after, VOLATILE)),
    );
    p.all(
        "the kernel module tree refused for space",
        leftovers(&after),
    );
    p.finish();
}

#[test]
fn held_lock_is_reported_and_kept() {
    common::require_root();
    let r = new_root();
    let root = r.path();
    let lock = lock_file(root);
    let base1 = pkg("rt-base-1.0-1");

    // pacman's lock: empty, mode 0000.
    fs::write(&lock, "").unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o000)).unwrap();
    let before = listing(root, &[]);
    let d = install(root, &[&base1])
        .run()
        .status(1)
        .stderr_has("db.lck");
    assert!(
        lock.exists(),
        "pacman's lock was removed\n{}",
        all_output(&d)
    );
    assert_eq!(
        fs::read(&lock).unwrap(),
        b"",
        "pacman's lock was written to"
    );
    let diff = listing_diff(&before, &listing(root, &[]));
    assert!(
        diff.is_empty(),
        "refused for the lock, yet the root changed:\n{}",
        diff.join("\n")
    );

    // A live rtool's lock (this test's own pid stands for it): refused, kept.
    let live = format!("rtool install {}\n", std::process::id());
    fs::write(&lock, &live).unwrap();
    let before = listing(root, &[]);
    let d = install(root, &[&base1])
        .run()
        .status(1)
        .stderr_has("db.lck");
    assert_eq!(
        fs::read_to_string(&lock).ok().as_deref(),
        Some(live.as_str()),
        "a live rtool's lock was not kept\n{}",
        all_output(&d)
    );
    let diff = listing_diff(&before, &listing(root, &[]));
    assert!(
        diff.is_empty(),
        "refused for a live lock, yet the root changed:\n{}",
        diff.join("\n")
    );

    // A lock left by a dead rtool: taken over, said, removed at the end.
    assert!(
        !Path::new("/proc/999999").exists(),
        "pid 999999 exists here: the test needs a dead pid"
    );
    fs::write(&lock, "rtool install 999999\n").unwrap();
    let d = install(root, &[&base1])
        .run()
        .success()
        .stderr_has("taking it over");
    assert!(
        !lock.exists(),
        "db.lck was left after the install\n{}",
        all_output(&d)
    );
    assert!(
        root.join("var/lib/pacman/local/rt-base-1.0-1/files")
            .is_file(),
        "rt-base was not installed\n{}",
        all_output(&d)
    );
    let left = leftovers(root);
    assert!(left.is_empty(), "left behind: {left:?}");
    let missing = pacman_missing(root, &[]);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn conflicting_unowned_file_is_refused_then_overwritten() {
    common::require_root();
    let r = new_root();
    let root = r.path();
    let base1 = pkg("rt-base-1.0-1");
    let mine = root.join("usr/share/rt-base/common.txt");
    fs::create_dir_all(mine.parent().unwrap()).unwrap();
    fs::write(&mine, "the admin's own file\n").unwrap();
    let before = listing(root, VOLATILE);

    let d = install(root, &[&base1])
        .run()
        .status(1)
        .stderr_has("exists in filesystem")
        .stderr_has("/usr/share/rt-base/common.txt");
    assert_eq!(
        fs::read_to_string(&mine).unwrap(),
        "the admin's own file\n",
        "the unowned file was changed\n{}",
        all_output(&d)
    );
    assert!(
        !root.join("var/lib/pacman/local/rt-base-1.0-1").exists(),
        "refused, yet an entry was written"
    );
    let diff = listing_diff(&before, &listing(root, VOLATILE));
    assert!(
        diff.is_empty(),
        "refused, yet the root changed:\n{}",
        diff.join("\n")
    );
    let left = leftovers(root);
    assert!(left.is_empty(), "refused, yet left: {left:?}");

    let d = install(root, &[&base1])
        .args(["--overwrite", "/usr/share/rt-base/*"])
        .run()
        .success();
    assert_eq!(
        fs::read_to_string(&mine).unwrap(),
        "common v1\n",
        "--overwrite did not replace the file\n{}",
        all_output(&d)
    );
    assert!(
        root.join("var/lib/pacman/local/rt-base-1.0-1/files")
            .is_file(),
        "rt-base was not installed"
    );
    let left = leftovers(root);
    assert!(left.is_empty(), "left behind: {left:?}");
    let full = pacman(root, &["-Qkk", "rt-base"]);
    assert!(
        full.code() == 0 && full.stdout().contains(" 0 altered files"),
        "pacman -Qkk rt-base:\n{}",
        all_output(&full)
    );
}

/// A run killed while making a directory leaves at most its staging name, never the
/// directory half made at its own name: the rerun replaces the leftover and pacman finds
/// every directory as the package has it.
#[test]
fn a_directory_left_half_made_is_made_again() {
    common::require_root();
    let dir = new_root();
    let root = dir.path();
    let rel = Path::new("usr/share/rt-base/old-dir");
    let left = root
        .join("usr/share/rt-base")
        .join(rtool::archive::extract::stage_name(rel));
    fs::create_dir_all(&left).unwrap();
    fs::set_permissions(&left, fs::Permissions::from_mode(0o700)).unwrap();
    let done = install(root, &[&pkg("rt-base-1.0-1")]).run();
    assert_eq!(done.code(), 0, "{}", all_output(&done));
    assert_eq!(leftovers(root), Vec::<String>::new());
    let mode = fs::metadata(root.join(rel)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    let full = pacman(root, &["-Qkk", "rt-base"]);
    assert!(
        full.stdout().contains(" 0 altered files"),
        "{}",
        all_output(&full)
    );
}

#[test]
fn dry_run_changes_nothing() {
    common::require_root();
    let r = new_root();
    let root = r.path();
    install(root, &[&pkg("rt-base-1.0-1")]).run().success();
    let base2 = pkg("rt-base-2.0-1");

    // Everything, pacman.log included: -n writes nowhere.
    let before = listing(root, &[]);
    install(root, &[&base2])
        .arg("-n")
        .run()
        .success()
        .stdout_has("would install rt-base 1.0-1 -> 2.0-1")
        .stdout_has("would remove 3 paths");
    let diff = listing_diff(&before, &listing(root, &[]));
    assert!(diff.is_empty(), "-n changed the root:\n{}", diff.join("\n"));

    // After an interrupted upgrade, -n neither finishes it nor changes anything, and it shows
    // the plan the real command carries out (which succeeds: the journal names the staged
    // and renamed files as the run's own).
    let killed = install(root, &[&base2]).env("RTOOL_FAULT", "renamed").run();
    assert_eq!(
        killed.0.status.signal(),
        Some(libc::SIGKILL),
        "the fault point was not reached\n{}",
        all_output(&killed)
    );
    let before = listing(root, &[]);
    let d = install(root, &[&base2]).arg("-n").run();
    let diff = listing_diff(&before, &listing(root, &[]));
    assert!(
        diff.is_empty(),
        "-n after an interrupted run changed the root:\n{}",
        diff.join("\n")
    );
    let d = d.success().stdout_has("would install rt-base");
    install(root, &[&base2]).run().success();
    let left = leftovers(root);
    assert!(left.is_empty(), "left behind: {left:?}\n{}", all_output(&d));
}
