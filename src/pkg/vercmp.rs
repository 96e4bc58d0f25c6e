//! pacman's version order (`alpm_pkg_vercmp`): `[epoch:]version[-release]`, compared segment by
//! segment with RPM's rules.
//!
//! Everything works on bytes with ASCII classes, as pacman's C code does in the C locale: every
//! byte that is not `0-9`, `A-Z` or `a-z` is a separator, including each byte of a multi-byte
//! UTF-8 character. A NUL byte ends a version, as it ends a C string.

use std::cmp::Ordering;

/// Orders two package versions as `vercmp A B` does: `Less` when `a` is older.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    vercmp_bytes(a.as_bytes(), b.as_bytes())
}

/// [`vercmp`] for versions that need not be UTF-8 (command-line arguments, file names).
pub fn vercmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (c_str(a), c_str(b));
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (Evr::parse(a), Evr::parse(b));
    segments(a.epoch, b.epoch)
        .then_with(|| segments(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            // A version without a release matches every release of that version.
            (Some(ra), Some(rb)) => segments(ra, rb),
            _ => Ordering::Equal,
        })
}

/// pacman sees C strings: whatever follows a NUL does not exist for it.
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// The three parts of a full version.
#[derive(Debug, PartialEq, Eq)]
struct Evr<'a> {
    epoch: &'a [u8],
    version: &'a [u8],
    /// `None` without any `-`; `Some(b"")` for a trailing `-`, which is not the same thing.
    release: Option<&'a [u8]>,
}

impl<'a> Evr<'a> {
    fn parse(s: &'a [u8]) -> Evr<'a> {
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (epoch, start): (&[u8], usize) = if s.get(digits) == Some(&b':') {
            // An empty epoch (`:1.0`) is still a present epoch: it reads as 0.
            let e: &[u8] = if digits == 0 { b"0" } else { &s[..digits] };
            (e, digits + 1)
        } else {
            // pacman's change to RPM: no epoch always means epoch 0.
            (b"0", 0)
        };
        // The epoch digits hold no '-', so the last '-' anywhere is the release separator;
        // it can never fall inside the epoch.
        match s[start..].iter().rposition(|&c| c == b'-') {
            Some(dash) => Evr {
                epoch,
                version: &s[start..start + dash],
                release: Some(&s[start + dash + 1..]),
            },
            None => Evr {
                epoch,
                version: &s[start..],
                release: None,
            },
        }
    }
}

/// RPM's segment comparison (`rpmvercmp`), as pacman ships it.
fn segments(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    // Past the end reads as NUL, like the C code's terminator: it is neither a letter nor a
    // digit, which the final showdown relies on.
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() && j < b.len() {
        let (run_a, run_b) = (i, j);
        while i < a.len() && !a[i].is_ascii_alphanumeric() {
            i += 1;
        }
        while j < b.len() && !b[j].is_ascii_alphanumeric() {
            j += 1;
        }
        if i >= a.len() || j >= b.len() {
            break;
        }
        // More separators before the next run makes that side newer (`1..0` > `1.0`).
        let (sep_a, sep_b) = (i - run_a, j - run_b);
        if sep_a != sep_b {
            return sep_a.cmp(&sep_b);
        }
        let numeric = a[i].is_ascii_digit();
        let class: fn(&u8) -> bool = if numeric {
            u8::is_ascii_digit
        } else {
            u8::is_ascii_alphabetic
        };
        let end_a = i + a[i..].iter().take_while(|c| class(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| class(c)).count();
        if end_b == j {
            // B has the other kind of run here; digits beat letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut x, mut y) = (&a[i..end_a], &b[j..end_b]);
        let ord = if numeric {
            // Lengths without leading zeros decide first, so no run can overflow anything.
            while x.first() == Some(&b'0') {
                x = &x[1..];
            }
            while y.first() == Some(&b'0') {
                y = &y[1..];
            }
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i = end_a;
        j = end_b;
    }
    if i >= a.len() && j >= b.len() {
        return Ordering::Equal;
    }
    // Exactly one side has text left. Text that starts right here with a letter is a
    // pre-release tag (`1.0rc` < `1.0`); anything else is a further part (`1.0.1` > `1.0`).
    if (i >= a.len() && !at(b, j).is_ascii_alphabetic()) || at(a, i).is_ascii_alphabetic() {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(o: Ordering) -> i32 {
        o as i32
    }

    #[track_caller]
    fn check(table: &[(&str, &str, i32)], swapped_too: bool) {
        let mut bad = Vec::new();
        for &(a, b, want) in table {
            let got = num(vercmp(a, b));
            if got != want {
                bad.push(format!("vercmp({a:?}, {b:?}) = {got}, want {want}"));
            }
            if swapped_too {
                let got = num(vercmp(b, a));
                if got != -want {
                    bad.push(format!("vercmp({b:?}, {a:?}) = {got}, want {}", -want));
                }
            }
        }
        assert!(bad.is_empty(), "{} wrong:\n{}", bad.len(), bad.join("\n"));
    }

    /// The documented vectors (vercmp.md §4.1–4.4: pacman's own suite, the manual page,
    /// alpm-types, kernel versions), shared with the integration test that also runs them
    /// through pacman's real `vercmp`.
    const VECTORS: &str = include_str!("../../tests/fixtures/vercmp-vectors.tsv");

    #[test]
    fn documented_vectors_both_ways() {
        let table: Vec<(&str, &str, i32)> = VECTORS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0], f[1], f[2].parse().unwrap())
            })
            .collect();
        assert_eq!(table.len(), 99);
        check(&table, true);
    }

    #[test]
    fn manual_page_chains() {
        let chains: [&[&str]; 2] = [
            &[
                "1.0a", "1.0b", "1.0beta", "1.0p", "1.0pre", "1.0rc", "1.0", "1.0.a", "1.0.1",
            ],
            &["1", "1.0", "1.1", "1.1.1", "1.2", "2.0", "3.0.0"],
        ];
        for chain in chains {
            for (x, a) in chain.iter().enumerate() {
                for (y, b) in chain.iter().enumerate() {
                    assert_eq!(vercmp(a, b), x.cmp(&y), "vercmp({a:?}, {b:?})");
                }
            }
        }
    }

    #[test]
    fn splits_epoch_version_release() {
        let evr = |s: &'static str| {
            let e = Evr::parse(s.as_bytes());
            (
                String::from_utf8_lossy(e.epoch).into_owned(),
                String::from_utf8_lossy(e.version).into_owned(),
                e.release.map(|r| String::from_utf8_lossy(r).into_owned()),
            )
        };
        let own = |e: &str, v: &str, r: Option<&str>| (e.into(), v.into(), r.map(String::from));
        assert_eq!(evr("1.5.0-1"), own("0", "1.5.0", Some("1")));
        assert_eq!(evr("1:1.0-1"), own("1", "1.0", Some("1")));
        assert_eq!(evr(":1.0"), own("0", "1.0", None));
        assert_eq!(evr("1.5"), own("0", "1.5", None));
        assert_eq!(evr("1-2-3"), own("0", "1-2", Some("3")));
        assert_eq!(evr("1.0-"), own("0", "1.0", Some("")));
        assert_eq!(evr("6.2.7.arch1-1"), own("0", "6.2.7.arch1", Some("1")));
    }

    #[test]
    fn bytes_and_nul() {
        // Bytes >= 0x80 are separators even when they are not UTF-8.
        assert_eq!(vercmp_bytes(b"1.0\xff", b"1.0"), Ordering::Greater);
        assert_eq!(vercmp_bytes(b"1\xff0", b"1.0"), Ordering::Equal);
        // What follows a NUL is not there for pacman.
        assert_eq!(vercmp_bytes(b"1.0\x002", b"1.0"), Ordering::Equal);
        assert_eq!(vercmp("", ""), Ordering::Equal);
        assert_eq!(vercmp("", "1"), Ordering::Less);
    }
}
