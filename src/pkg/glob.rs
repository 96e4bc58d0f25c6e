//! Shell globs as libalpm matches them with `fnmatch(pattern, string, 0)`: `*` and `?` also
//! match `/`, `[...]` classes with ranges and `!`/`^` negation, `\` escapes the next byte.
//! Lists of patterns read as pacman reads `NoExtract`, `NoUpgrade` and hook targets: the last
//! pattern that matches decides, and a leading `!` makes it a negation.

/// Whether `pat` matches all of `s`.
pub fn matches(pat: &[u8], s: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*`: linear in practice.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = class(&pat[p..], s[i]) {
                        if ok {
                            p += next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == s[i] => {
                    p += 2;
                    i += 1;
                    continue;
                }
                b'\\' if p + 1 < pat.len() => {}
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|c| *c == b'*')
}

/// A `[...]` class at the start of `pat` tested against `c`: whether it matches and the
/// class's length; `None` when the class is not closed (then `[` is literal).
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < pat.len() {
        let lo = pat[i];
        if lo == b']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|h| *h != b']') {
            let hi = pat[i + 2];
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
    None
}

/// pacman's `_alpm_fnmatch_patterns`: the last matching pattern decides; `!pattern` matching
/// means "not matched". `None` when no pattern matches.
pub fn last_match<'a>(patterns: impl IntoIterator<Item = &'a str>, s: &[u8]) -> Option<bool> {
    let mut out = None;
    for pat in patterns {
        let (neg, p) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        if matches(p.as_bytes(), s) {
            out = Some(!neg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_without_flags() {
        assert!(matches(
            b"usr/lib/modules/*/",
            b"usr/lib/modules/6.1.0-57-amd64/"
        ));
        assert!(matches(b"usr/lib/modules/*/", b"usr/lib/modules/a/b/"));
        assert!(!matches(
            b"usr/lib/modules/*/",
            b"usr/lib/modules/a/vmlinuz"
        ));
        assert!(matches(
            b"usr/lib/modules/*/?*",
            b"usr/lib/modules/a/vmlinuz"
        ));
        assert!(matches(b"*.conf", b"etc/x/y.conf"));
        assert!(matches(b"etc/[a-c]*", b"etc/b"));
        assert!(!matches(b"etc/[!a-c]*", b"etc/b"));
        assert!(matches(b"a\\*", b"a*"));
        assert!(!matches(b"a\\*", b"ab"));
        assert!(matches(b"[", b"["));
        assert!(matches(b"*", b""));
        assert!(!matches(b"?", b""));
        assert!(matches(b"*a*b*c", b"xxaxxbxxc"));
    }

    #[test]
    fn last_pattern_wins() {
        let pats = ["usr/share/doc/*", "!usr/share/doc/keep*"];
        assert_eq!(last_match(pats, b"usr/share/doc/x"), Some(true));
        assert_eq!(last_match(pats, b"usr/share/doc/keep.txt"), Some(false));
        assert_eq!(last_match(pats, b"usr/bin/x"), None);
    }
}
