//! `rtool vercmp` against the documented vectors, and the library's version order against
//! pacman's own `vercmp` on thousands of generated version pairs.

mod common;

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::{bin, rtool, Cmd};
use rtool::pkg::vercmp::{vercmp, vercmp_bytes};

/// pacman's `vercmp` (Debian: pacman-package-manager), the reference implementation.
const PACMAN_VERCMP: &str = "/usr/bin/vercmp";

/// Every pair of vercmp.md §4.1 to §4.4 with pacman's answer.
/// The documented vectors (pacman's own suite, the manual page, alpm-types, kernel versions),
/// shared with the unit tests in src/pkg/vercmp.rs.
const VECTORS_TSV: &str = include_str!("fixtures/vercmp-vectors.tsv");

fn vectors() -> Vec<(&'static str, &'static str, i32)> {
    VECTORS_TSV
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0], f[1], f[2].parse().expect("a number"))
        })
        .collect()
}

/// vercmp(8)'s ordering chains: each element is older than the next.
const CHAINS: [&[&str]; 2] = [
    &[
        "1.0a", "1.0b", "1.0beta", "1.0p", "1.0pre", "1.0rc", "1.0", "1.0.a", "1.0.1",
    ],
    &["1", "1.0", "1.1", "1.1.1", "1.2", "2.0", "3.0.0"],
];

/// Every documented pair, both ways round, plus every ordered pair of each chain.
fn documented() -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    let mut v = Vec::new();
    for (a, b, r) in vectors() {
        v.push((a.as_bytes().to_vec(), b.as_bytes().to_vec(), r));
        v.push((b.as_bytes().to_vec(), a.as_bytes().to_vec(), -r));
    }
    for chain in CHAINS {
        for (x, a) in chain.iter().enumerate() {
            for (y, b) in chain.iter().enumerate() {
                v.push((
                    a.as_bytes().to_vec(),
                    b.as_bytes().to_vec(),
                    x.cmp(&y) as i32,
                ));
            }
        }
    }
    v
}

/// Quoted, every byte outside printable ASCII as `\xNN`: the rules work on bytes.
fn show(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

fn ours(a: &[u8], b: &[u8]) -> i32 {
    let o: Ordering = match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(a), Ok(b)) => vercmp(a, b),
        _ => vercmp_bytes(a, b),
    };
    o as i32
}

/// Runs `program… A B` once per pair in ONE bash loop (one process per pair would take
/// minutes) and returns its output, one line per pair.
fn batch(program: &[&OsStr], pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("pairs.tsv");
    let mut text = Vec::new();
    for (a, b) in pairs {
        assert!(
            !a.is_empty() && !b.is_empty(),
            "`read` cannot carry an empty field"
        );
        assert!(
            !a.iter().chain(b).any(|c| matches!(c, b'\t' | b'\n' | 0)),
            "a pair holds a tab, newline or NUL: {} {}",
            show(a),
            show(b)
        );
        text.extend_from_slice(a);
        text.push(b'\t');
        text.extend_from_slice(b);
        text.push(b'\n');
    }
    std::fs::write(&list, text).expect("write the pairs");
    let script = r#"list=$1; shift
while IFS=$'\t' read -r a b; do "$@" "$a" "$b" || echo "exit status $?"; done < "$list""#;
    let out = Cmd::new("bash")
        .args(["-c", script, "bash"])
        .arg(&list)
        .args(program)
        .env("LC_ALL", "C")
        .run();
    assert_eq!(out.code(), 0, "the batch failed:\n{}", out.stderr());
    let lines: Vec<String> = out.stdout().lines().map(String::from).collect();
    assert_eq!(
        lines.len(),
        pairs.len(),
        "one line per pair expected from {program:?}\n--- stderr\n{}",
        out.stderr()
    );
    lines
}

/// Compares answers line by line; fails with the first disagreements, readable.
#[track_caller]
fn assert_agree(
    cases: &[(Vec<u8>, Vec<u8>, String)],
    want_from: &str,
    got: &[String],
    got_from: &str,
) {
    let mut bad = Vec::new();
    for ((a, b, want), got) in cases.iter().zip(got) {
        if want != got {
            bad.push(format!(
                "  {} {}: {got_from} says {got}, {want_from} says {want}",
                show(a),
                show(b)
            ));
        }
    }
    if !bad.is_empty() {
        let mut msg = format!(
            "{} of {} pairs disagree; the first ones:\n",
            bad.len(),
            cases.len()
        );
        for line in bad.iter().take(25) {
            let _ = writeln!(msg, "{line}");
        }
        panic!("{msg}");
    }
}

#[test]
fn applet_prints_the_documented_answers() {
    let pairs = documented();
    let cases: Vec<(Vec<u8>, Vec<u8>, String)> = pairs
        .iter()
        .map(|(a, b, r)| (a.clone(), b.clone(), r.to_string()))
        .collect();
    let plain: Vec<(Vec<u8>, Vec<u8>)> = pairs.into_iter().map(|(a, b, _)| (a, b)).collect();
    let rtool_bin = bin();
    let got = batch(
        &[
            rtool_bin.as_os_str(),
            OsStr::new("vercmp"),
            OsStr::new("--"),
        ],
        &plain,
    );
    assert_agree(&cases, "vercmp.md", &got, "rtool vercmp");
}

#[test]
fn applet_output_and_usage() {
    for (a, b, want) in [
        ("6.9.12.arch1-1", "6.10.arch1-1", "-1\n"),
        ("1:1.0-1", "2.0-1", "1\n"),
        ("1.5", "1.5-2", "0\n"),
        ("", "", "0\n"),
        ("", "1", "-1\n"),
        ("-1", "1", "-1\n"),
    ] {
        let out = rtool(["vercmp", a, b]).run().success();
        assert_eq!(out.stdout(), want, "rtool vercmp {a:?} {b:?}");
        assert_eq!(out.stderr(), "");
    }
    // Arguments need not be UTF-8: 0xff is one more separator byte, as in pacman.
    rtool([
        OsStr::new("vercmp"),
        OsStr::from_bytes(b"1.0\xff"),
        OsStr::new("1.0"),
    ])
    .run()
    .success()
    .stdout_has("1\n");
    rtool(["vercmp", "1"])
        .run()
        .status(2)
        .stderr_has("vercmp: error: missing <B>\nvercmp: hint: rtool vercmp --help");
    rtool(["vercmp", "1", "2", "3"])
        .run()
        .status(2)
        .stderr_has("vercmp: error: unexpected argument 3");
    rtool(["vercmp", "--help"])
        .run()
        .success()
        .stdout_has("Examples:");
}

#[track_caller]
fn require_pacman_vercmp() {
    assert!(
        Path::new(PACMAN_VERCMP).is_file(),
        "{PACMAN_VERCMP} is missing: run `make test`, which installs it (Debian package \
         pacman-package-manager) through scripts/test-deps.sh"
    );
}

#[test]
fn pacman_vercmp_agrees_with_the_documented_vectors() {
    require_pacman_vercmp();
    let pairs = documented();
    let cases: Vec<(Vec<u8>, Vec<u8>, String)> = pairs
        .iter()
        .map(|(a, b, r)| (a.clone(), b.clone(), r.to_string()))
        .collect();
    let plain: Vec<(Vec<u8>, Vec<u8>)> = pairs.into_iter().map(|(a, b, _)| (a, b)).collect();
    let got = batch(&[OsStr::new(PACMAN_VERCMP)], &plain);
    assert_agree(&cases, "vercmp.md", &got, "pacman's vercmp");
}

/// Empty versions cannot travel through `read`, so they get a process each.
#[test]
fn empty_versions_match_pacman() {
    require_pacman_vercmp();
    for (a, b) in [
        ("", ""),
        ("", "1"),
        ("1", ""),
        ("", "a"),
        ("a", ""),
        ("", ":"),
        ("", "-"),
        ("", "."),
    ] {
        let out = Cmd::new(PACMAN_VERCMP).args([a, b]).run();
        assert_eq!(
            out.stdout().trim(),
            ours(a.as_bytes(), b.as_bytes()).to_string(),
            "vercmp {a:?} {b:?}"
        );
    }
}

/// xorshift64*: deterministic, so a failure reproduces, and no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}

const DIGITS: &[u8] = b"0123456789";
const LETTERS: &[u8] = b"abcprzABRZ";
const WORDS: &[&str] = &["alpha", "beta", "rc", "pre", "arch", "p", "git", "r"];
/// Separators, a two-byte and a three-byte UTF-8 character and a lone 0xff byte included:
/// each of their bytes counts as one separator.
const SEPARATORS: &[&[u8]] = &[
    b".",
    b".",
    b".",
    b"_",
    b"+",
    b"~",
    b"-",
    "é".as_bytes(),
    "€".as_bytes(),
    b"\xff",
];

fn digits(r: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    if r.percent(15) {
        v.extend(std::iter::repeat_n(b'0', 1 + r.below(3)));
    }
    let longest = if r.percent(5) { 12 } else { 3 };
    for _ in 0..1 + r.below(longest) {
        v.push(*r.pick(DIGITS));
    }
    v
}

fn letters(r: &mut Rng) -> Vec<u8> {
    if r.percent(40) {
        return r.pick(WORDS).as_bytes().to_vec();
    }
    (0..1 + r.below(3)).map(|_| *r.pick(LETTERS)).collect()
}

fn separators(r: &mut Rng) -> Vec<u8> {
    let n = if r.percent(85) { 1 } else { 2 + r.below(2) };
    (0..n).flat_map(|_| r.pick(SEPARATORS).to_vec()).collect()
}

/// `[epoch:]segments[-pkgrel]` with the odd corners pacman must handle.
fn version(r: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    if r.percent(20) {
        // Empty epochs and leading zeros included.
        if !r.percent(15) {
            v.extend(digits(r));
        }
        v.push(b':');
    }
    if r.percent(8) {
        v.extend(separators(r));
    }
    for i in 0..1 + r.below(5) {
        if i > 0 && !r.percent(25) {
            v.extend(separators(r));
        }
        if r.percent(65) {
            v.extend(digits(r));
        } else {
            v.extend(letters(r));
        }
    }
    if r.percent(8) {
        v.extend(separators(r));
    }
    if r.percent(50) {
        v.push(b'-');
        match r.below(10) {
            0 => {}
            1 => v.extend(letters(r)),
            2 | 3 => {
                v.extend(digits(r));
                v.push(b'.');
                v.extend(digits(r));
            }
            _ => v.extend(digits(r)),
        }
    }
    v
}

/// One small change: the pairs that differ in a single place are where the rules bite.
fn mutate(r: &mut Rng, a: &[u8]) -> Vec<u8> {
    let mut b = a.to_vec();
    let at = r.below(b.len() + 1);
    let piece = match r.below(3) {
        0 => digits(r),
        1 => letters(r),
        _ => separators(r),
    };
    match r.below(5) {
        0 => {
            b.splice(at..at, piece);
        }
        1 if at < b.len() => {
            b.remove(at);
        }
        2 if at < b.len() => {
            b.splice(at..at + 1, piece);
        }
        3 => {
            // A digit one up or down, the most common real difference.
            if let Some(p) = b.iter().rposition(u8::is_ascii_digit) {
                b[p] = if b[p] == b'9' { b'0' } else { b[p] + 1 };
            }
        }
        _ => b.extend(piece),
    }
    b
}

fn usable(v: &[u8]) -> bool {
    // pacman's vercmp takes `-h` and `--help` in first place as a request for help.
    !v.is_empty() && v != b"-h" && v != b"--help"
}

#[test]
fn matches_pacman_vercmp_on_random_pairs() {
    require_pacman_vercmp();
    const PAIRS: usize = 12_000;
    let mut r = Rng(0x5eed_1234_abcd_ef01);
    let mut pairs = Vec::with_capacity(PAIRS);
    while pairs.len() < PAIRS {
        let a = version(&mut r);
        let b = match r.below(20) {
            0 | 1 => a.clone(),
            2..=10 => mutate(&mut r, &a),
            11 | 12 => {
                let keep = r.below(a.len() + 1);
                let mut b = a[..keep].to_vec();
                b.extend(version(&mut r));
                b
            }
            _ => version(&mut r),
        };
        if usable(&a) && usable(&b) {
            pairs.push((a, b));
        }
    }
    let got = batch(&[OsStr::new(PACMAN_VERCMP)], &pairs);
    let cases: Vec<(Vec<u8>, Vec<u8>, String)> = pairs
        .into_iter()
        .map(|(a, b)| {
            let ours = ours(&a, &b).to_string();
            (a, b, ours)
        })
        .collect();
    assert_agree(&cases, "rtool::pkg::vercmp", &got, "pacman's vercmp");
    let equal = got.iter().filter(|g| *g == "0").count();
    assert!(
        equal > PAIRS / 20 && equal < PAIRS / 2,
        "the generator should give a mix of equal and unequal pairs, got {equal} equal"
    );
}

/// Hostile lengths: 10,000-digit numbers, thousands of leading zeros, 5,000 components. The
/// applet answers at once and as pacman's own vercmp does (numbers are compared as digit
/// strings, never parsed into a machine integer).
#[test]
fn huge_versions_agree_with_pacman() {
    let ones = "1".repeat(10_000);
    let dotted = vec!["1"; 5_000].join(".");
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = [
        (ones.clone(), format!("{}2", "1".repeat(9_999))),
        (format!("{}1", "0".repeat(5_000)), "1".to_string()),
        (dotted.clone(), format!("{dotted}.1")),
        (format!("{ones}-1"), format!("{ones}-2")),
        (format!("1:{ones}"), format!("2:{ones}")),
        (format!("{ones}a"), format!("{ones}b")),
    ]
    .into_iter()
    .map(|(a, b)| (a.into_bytes(), b.into_bytes()))
    .collect();
    let got = batch(&[OsStr::new(PACMAN_VERCMP)], &pairs);
    let applet = batch(&[bin().as_os_str(), OsStr::new("vercmp")], &pairs);
    let cases: Vec<(Vec<u8>, Vec<u8>, String)> = pairs
        .into_iter()
        .map(|(a, b)| {
            let ours = ours(&a, &b).to_string();
            (a, b, ours)
        })
        .collect();
    assert_agree(&cases, "rtool::pkg::vercmp", &got, "pacman's vercmp");
    assert_agree(&cases, "rtool::pkg::vercmp", &applet, "rtool vercmp");
}
