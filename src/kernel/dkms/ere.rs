//! POSIX extended regular expressions as bash's `=~` reads them (glibc `regcomp` with
//! `REG_EXTENDED`, no `REG_NEWLINE`), matched by regex-lite.
//!
//! dkms tests `BUILD_EXCLUSIVE_KERNEL`, `BUILD_EXCLUSIVE_ARCH`, `MAKE_MATCH` and `PATCH_MATCH`
//! with `[[ $kernelver =~ $pattern ]]`: an unanchored search that only says whether there is
//! a match. regex-lite's syntax is Rust's, not POSIX's, so a pattern is never handed to it as
//! written. It is parsed here by glibc's rules and written out again in regex-lite's syntax,
//! every literal as a `\x{..}` escape. Where the two dialects differ:
//!
//! - In a bracket expression a backslash is literal (`[\.]` is a backslash or a dot), and so
//!   are `[`, `&`, `~` and `-` where POSIX makes them no syntax; regex-lite would read
//!   escapes, nested classes and set operators there.
//! - The twelve POSIX classes (`[[:digit:]]`, …) pass through; any other name (regex-lite's
//!   `[:word:]` too) is an error, as in glibc. `[[=x=]]` and `[[.x.]]` are refused.
//! - `{,n}` (glibc) becomes `{0,n}`. A `{` that does not start a valid interval is an error
//!   in glibc, and here. `\{` is a literal brace.
//! - `\d`, `\n` and every other letter escape that POSIX lacks: glibc matches the plain
//!   letter, which is surely not what the writer meant. Refused, naming the escape.
//! - GNU's `\w \W \s \S \b \B` and `` \` `` `\'` are translated; `\<`, `\>` and back-references
//!   (`\1`) are refused.
//! - `.` and `[^…]` match a newline, as without `REG_NEWLINE`.
//! - Stacked quantifiers (`a*?`, `a+*`) repeat a repetition in POSIX; regex-lite would read
//!   `*?` as a lazy `*`. Each is wrapped in a group, so the meaning is POSIX's.
//! - An unmatched `)` is literal in glibc. A quantifier at the start of a pattern, a group or
//!   an alternative, or after an anchor, is an error in both.
//! - Text or a pattern that is not ASCII is refused: bash's classes, ranges and `.` then
//!   depend on the locale, and regex-lite's do not.
//!
//! An error here says why; the caller names the pattern.

use regex_lite::{Regex, RegexBuilder};

/// glibc's RE_DUP_MAX.
const DUP_MAX: u32 = 0x7fff;
/// Bounds the compiled program, which counted repetition copies (regex-lite's default is
/// 10 MiB; no real pattern comes near either).
const SIZE_LIMIT: usize = 1 << 20;

/// The classes glibc knows in a bracket expression.
const CLASSES: [&str; 12] = [
    "alpha", "digit", "alnum", "upper", "lower", "space", "blank", "punct", "print", "graph",
    "cntrl", "xdigit",
];

/// Whether `pattern` matches anywhere in `text`, as `[[ text =~ pattern ]]` answers.
pub(super) fn search(pattern: &str, text: &str) -> Result<bool, String> {
    if !text.is_ascii() {
        return Err(format!(
            "{text:?} is not ASCII, and bash's answer for it would depend on the locale"
        ));
    }
    Ok(compile(pattern)?.is_match(text))
}

fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    RegexBuilder::new(&translated)
        .dot_matches_new_line(true)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("too large to match ({e})"))
}

/// `pattern` in regex-lite's syntax, with the meaning glibc gives it.
pub(super) fn translate(pattern: &str) -> Result<String, String> {
    if !pattern.is_ascii() {
        return Err("it is not ASCII, and bash's answer would depend on the locale".to_string());
    }
    let mut t = Translator {
        s: pattern.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let out = t.alt()?;
    match t.peek() {
        None => Ok(out),
        Some(c) => Err(format!("unexpected {:?}", char::from(c))),
    }
}

/// One byte as a regex-lite literal.
fn lit(c: u8) -> String {
    if c.is_ascii_alphanumeric() {
        char::from(c).to_string()
    } else {
        format!("\\x{{{c:02X}}}")
    }
}

struct Translator<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

/// What one atom became: something a quantifier may follow, or an anchor, which it may not.
enum Atom {
    Item(String),
    Anchor(&'static str),
}

/// One element of a bracket expression.
enum Elem {
    Byte(u8),
    Class(String),
}

impl Translator<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        self.s.get(self.pos + k).copied()
    }

    fn alt(&mut self) -> Result<String, String> {
        let mut out = self.concat()?;
        while self.peek() == Some(b'|') {
            self.pos += 1;
            out.push('|');
            out.push_str(&self.concat()?);
        }
        Ok(out)
    }

    fn concat(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.peek() {
                None | Some(b'|') => return Ok(out),
                Some(b')') if self.depth > 0 => return Ok(out),
                Some(_) => {
                    let atom = self.atom()?;
                    out.push_str(&self.quantified(atom)?);
                }
            }
        }
    }

    fn is_quantifier(c: Option<u8>) -> bool {
        matches!(c, Some(b'*' | b'+' | b'?' | b'{'))
    }

    fn atom(&mut self) -> Result<Atom, String> {
        let Some(c) = self.peek() else {
            return Ok(Atom::Item(String::new()));
        };
        self.pos += 1;
        Ok(match c {
            b'(' => {
                self.depth += 1;
                let inner = self.alt()?;
                if self.peek() != Some(b')') {
                    return Err("unmatched (".to_string());
                }
                self.pos += 1;
                self.depth -= 1;
                Atom::Item(format!("(?:{inner})"))
            }
            // glibc takes an unmatched ) literally.
            b')' => Atom::Item(lit(c)),
            b'^' => Atom::Anchor("^"),
            b'$' => Atom::Anchor("$"),
            b'.' => Atom::Item(".".to_string()),
            b'[' => Atom::Item(self.bracket()?),
            b'\\' => self.escape()?,
            b'*' | b'+' | b'?' | b'{' => {
                return Err(format!("nothing to repeat before {:?}", char::from(c)))
            }
            c => Atom::Item(lit(c)),
        })
    }

    /// The atom with the quantifiers that follow it. A quantifier on a quantified atom
    /// repeats the whole, as in POSIX.
    fn quantified(&mut self, atom: Atom) -> Result<String, String> {
        let mut out = match atom {
            Atom::Anchor(a) if Self::is_quantifier(self.peek()) => {
                return Err(format!("nothing to repeat after the anchor {a}"))
            }
            Atom::Anchor(a) => return Ok(a.to_string()),
            Atom::Item(s) => s,
        };
        let mut quantified = false;
        loop {
            let q = match self.peek() {
                Some(c @ (b'*' | b'+' | b'?')) => {
                    self.pos += 1;
                    char::from(c).to_string()
                }
                Some(b'{') => {
                    self.pos += 1;
                    self.interval()?
                }
                _ => return Ok(out),
            };
            if quantified {
                out = format!("(?:{out})");
            }
            out.push_str(&q);
            quantified = true;
        }
    }

    /// `{m}`, `{m,}`, `{m,n}`, `{,n}` (glibc), after the brace, in regex-lite's spelling.
    fn interval(&mut self) -> Result<String, String> {
        let min = self.count()?;
        let (min, max) = if self.peek() == Some(b',') {
            self.pos += 1;
            let max = self.count()?;
            if min.is_none() && max.is_none() {
                return Err("invalid interval {,}".to_string());
            }
            (min.unwrap_or(0), max)
        } else {
            let Some(m) = min else {
                return Err("a { that does not start an interval {m,n}".to_string());
            };
            (m, Some(m))
        };
        if self.peek() != Some(b'}') {
            return Err("unterminated interval {".to_string());
        }
        self.pos += 1;
        match max {
            Some(mx) if mx < min => Err(format!("interval {{{min},{mx}}} with m > n")),
            Some(mx) if mx == min => Ok(format!("{{{min}}}")),
            Some(mx) => Ok(format!("{{{min},{mx}}}")),
            None => Ok(format!("{{{min},}}")),
        }
    }

    fn count(&mut self) -> Result<Option<u32>, String> {
        let from = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.s.get(from..self.pos).unwrap_or_default();
        if digits.is_empty() {
            return Ok(None);
        }
        let s = String::from_utf8_lossy(digits);
        match s.parse::<u32>() {
            Ok(n) if n <= DUP_MAX => Ok(Some(n)),
            _ => Err(format!(
                "repetition count {s} is larger than {DUP_MAX}, glibc's limit"
            )),
        }
    }

    fn escape(&mut self) -> Result<Atom, String> {
        let Some(c) = self.peek() else {
            return Err("trailing backslash".to_string());
        };
        self.pos += 1;
        let item = |s: &str| Ok(Atom::Item(s.to_string()));
        match c {
            // GNU extensions; glibc's word characters are the alphanumerics and `_`.
            b'w' => item("[0-9A-Za-z_]"),
            b'W' => item("[^0-9A-Za-z_]"),
            b's' => item("[[:space:]]"),
            b'S' => item("[^[:space:]]"),
            b'b' => Ok(Atom::Anchor("\\b")),
            b'B' => Ok(Atom::Anchor("\\B")),
            b'`' => Ok(Atom::Anchor("\\A")),
            b'\'' => Ok(Atom::Anchor("\\z")),
            b'<' | b'>' => Err(format!(
                "the GNU word anchor \\{} is not supported",
                char::from(c)
            )),
            b'1'..=b'9' => Err(format!(
                "the back-reference \\{} is not supported",
                char::from(c)
            )),
            c if c.is_ascii_alphanumeric() => Err(format!(
                "\\{c} is not a POSIX ERE escape (bash would match a plain {c:?})",
                c = char::from(c)
            )),
            c => Ok(Atom::Item(lit(c))),
        }
    }

    /// `[…]`, after the bracket, as glibc parses it: `]` first is literal, a backslash is
    /// literal, `-` is literal first or last and otherwise makes a range.
    fn bracket(&mut self) -> Result<String, String> {
        let mut out = String::from("[");
        if self.peek() == Some(b'^') {
            self.pos += 1;
            out.push('^');
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err("unmatched [".to_string());
            };
            if c == b']' && !first {
                self.pos += 1;
                out.push(']');
                return Ok(out);
            }
            if c == b'-' && !first && self.peek_at(1) != Some(b']') {
                return Err(
                    "a - in a bracket expression that is neither first, last nor a range"
                        .to_string(),
                );
            }
            let start = self.bracket_elem()?;
            first = false;
            let range = self.peek() == Some(b'-') && !matches!(self.peek_at(1), None | Some(b']'));
            match start {
                Elem::Class(name) if range => {
                    return Err(format!("a range cannot start with the class [:{name}:]"))
                }
                Elem::Class(name) => out.push_str(&format!("[:{name}:]")),
                Elem::Byte(lo) if range => {
                    self.pos += 1;
                    let Elem::Byte(hi) = self.bracket_elem()? else {
                        return Err("a range cannot end with a class".to_string());
                    };
                    if hi < lo {
                        return Err(format!(
                            "invalid range {}-{}",
                            char::from(lo),
                            char::from(hi)
                        ));
                    }
                    out.push_str(&format!("{}-{}", lit(lo), lit(hi)));
                }
                Elem::Byte(b) => out.push_str(&lit(b)),
            }
        }
    }

    fn bracket_elem(&mut self) -> Result<Elem, String> {
        let Some(c) = self.peek() else {
            return Err("unmatched [".to_string());
        };
        self.pos += 1;
        if c != b'[' {
            return Ok(Elem::Byte(c));
        }
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                let from = self.pos;
                while self.peek().is_some_and(|c| c != b':') {
                    self.pos += 1;
                }
                let name = String::from_utf8_lossy(self.s.get(from..self.pos).unwrap_or_default())
                    .into_owned();
                if self.peek_at(1) != Some(b']') {
                    return Err("unterminated [: :] class".to_string());
                }
                self.pos += 2;
                if !CLASSES.contains(&name.as_str()) {
                    return Err(format!("unknown class [:{name}:]"));
                }
                Ok(Elem::Class(name))
            }
            Some(d @ (b'=' | b'.')) => Err(format!(
                "[{d} {d}] in a bracket expression is not supported",
                d = char::from(d)
            )),
            _ => Ok(Elem::Byte(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::exclusive_kernel_matches;
    use super::*;
    use crate::error::Kind;

    fn m(re: &str, s: &str) -> bool {
        match exclusive_kernel_matches(re, s) {
            Ok(b) => b,
            Err(e) => panic!("{re}: {e}"),
        }
    }

    #[test]
    fn regex_matches_like_bash() {
        // Every case was checked against bash's [[ s =~ re ]].
        assert!(m("^(6\\.[0-1]\\.|5\\.)", "6.1.12-arch1-1"));
        assert!(m("^(6\\.[0-1]\\.|5\\.)", "5.15.0"));
        assert!(!m("^(6\\.[0-1]\\.|5\\.)", "6.2.8-arch1-1"));
        assert!(!m("^(6\\.[0-1]\\.|5\\.)", "6.10.1"));
        assert!(m("^6\\.[0-9]+\\.", "6.10.1-arch1-1"));
        assert!(!m("^6\\.[0-9]+\\.", "16.1.0"));
        assert!(m("arch", "6.2.8-arch1-1"), "unanchored search");
        assert!(!m("^arch", "6.2.8-arch1-1"));
        assert!(m("-1$", "6.2.8-arch1-1"));
        assert!(!m("^6\\.2$", "6.2.8"));
        assert!(m("6.2", "6x2"), ". is any character");
        assert!(!m("6\\.2", "6x2"));
        assert!(m("^[^5]", "6.1"));
        assert!(!m("^[^56]", "6.1"));
        assert!(m("[[:digit:]]+-lts$", "6.6.30-1-lts"));
        assert!(m("^x{2}$", "xx") && !m("^x{2}$", "xxx"));
        assert!(m("^a{,2}$", "aa") && !m("^a{,2}$", "aaa"));
        assert!(m("^a{2,}$", "aaaa") && !m("^a{2,}$", "a"));
        assert!(m("^(ab|cd)*e?$", "abcdab") && m("^(ab|cd)*e?$", "e"));
        assert!(m("(a|)", "b") && m("()", "x") && m("a|", "x"));
        assert!(m("[]a]", "]") && m("[^]a]", "b") && m("[a-]", "-"));
        assert!(m("[\\.]", "\\"), "backslash is literal in brackets");
        assert!(m("a)", "a)"), "an unmatched ) is literal in glibc");
        assert!(m("\\(", "(") && m("\\{", "{"));
        assert!(m("^\\w+\\s\\S$", "ab x"));
        assert!(
            m("^(a*)*$", "aaa") && m("^(a*)*$", ""),
            "empty loops terminate"
        );
        assert!(m("x*", ""));
    }

    #[test]
    fn posix_brackets_are_not_rusts() {
        // Checked against bash: what regex-lite would read as syntax is literal in POSIX.
        assert!(m("[\\d]", "d") && m("[\\d]", "\\") && !m("[\\d]", "5"));
        assert!(m("[a\\-z]", "q") && m("[a\\-z]", "\\"), "range \\ to z");
        assert!(m("[[]", "[") && m("[[a]", "["));
        assert!(m("[a&&b]", "&") && m("[a~~b]", "~") && m("[+--]", "-"));
        assert!(m("[--/]", "-") && m("[!--]", "-") && !m("[%--]", "a"));
        assert!(m("[a-c-]", "-") && m("[[:alpha:]-]", "-"));
        assert!(m("[]-a]", "^"), "range ] to a");
        assert!(m("[A-z]", "_"), "ranges go by code point");
        assert!(!m("[^-a]", "-"));
        assert!(m("[{]", "{") && m("}", "}") && m("a}", "a}"));
        assert!(m("a.b", "a\nb") && m("a[^x]b", "a\nb") && !m("^b", "a\nb"));
        assert!(m("a\\b", "a b") && !m("a\\b", "ab"));
        assert!(m("\\`a", "a") && m("a\\'", "a"));
        assert!(m("a{1}*", "a") && m("a?*", "a") && m("(^)*a", "a"));
        assert!(m("^a{1}{2}$", "aa") && !m("a{1}{2}", "a"));
        assert!(!m("a^", "a^") && !m("a$b", "ab"), "anchors anywhere");
        assert!(m("a||b", "b"));
    }

    #[test]
    fn translation_escapes_every_literal() {
        assert_eq!(
            translate("^(3\\.[1-9][0-9]|[4-9]\\.)").unwrap(),
            "^(?:3\\x{2E}[1-9][0-9]|[4-9]\\x{2E})"
        );
        assert_eq!(translate("a*?").unwrap(), "(?:a*)?");
        assert_eq!(translate("a{,2}").unwrap(), "a{0,2}");
        assert_eq!(translate("[^[:digit:]x]").unwrap(), "[^[:digit:]x]");
    }

    #[test]
    fn regex_refuses_what_it_cannot_answer() {
        for bad in [
            "*a",
            "+a",
            "a{",
            "a{1",
            "a{x",
            "a{ 1}",
            "a{2,1}",
            "(a",
            "[a",
            "[z-a]",
            "^*",
            "a$*",
            "\\b*a",
            "(*a)",
            "(?i)a",
            "a|*b",
            "[[:foo:]]",
            "[[:word:]]",
            "[[:a]",
            "[[:alpha:]",
            "[a-c-e]",
            "[a--]",
            "[[:alpha:]-z]",
            "[a-[:alpha:]]",
            "\\",
            "{1}a",
        ] {
            // bash fails these too (status 2).
            let e = exclusive_kernel_matches(bad, "a").unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{bad}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        for unsupported in [
            "(a)\\1", "\\<word", "[[.a.]]", "[[=a=]]", "\\d", "\\n", "a{99999}", "é",
        ] {
            let e = exclusive_kernel_matches(unsupported, "a").unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{unsupported}");
        }
        let e = exclusive_kernel_matches("\\d+", "5").unwrap_err();
        assert!(e.to_string().contains("plain 'd'"), "{e}");
        let e = exclusive_kernel_matches("^6", "6.1-é").unwrap_err();
        assert!(e.to_string().contains("not ASCII"), "{e}");
        // Counted repetition is bounded.
        let e = exclusive_kernel_matches("(((a{100}){100}){100})", "a").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    /// The patterns of the corpus's real files: `BUILD_EXCLUSIVE_KERNEL`/`_ARCH`,
    /// `MAKE_MATCH`, `PATCH_MATCH` and `=~` operands, where written as plain double-quoted
    /// text (nvidia's `"^(3\.[1-9][0-9]|[4-9]\.)"`, nvidia-tesla-470's `"-rt-"`, …).
    fn corpus_patterns() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkms-conf");
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "conf") {
                continue;
            }
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let l = line.trim_start();
                let keys = [
                    "BUILD_EXCLUSIVE_KERNEL=",
                    "BUILD_EXCLUSIVE_ARCH=",
                    "MAKE_MATCH[",
                    "PATCH_MATCH[",
                ];
                let value = if keys.iter().any(|k| l.starts_with(k)) {
                    l.split_once('=').map(|(_, v)| v)
                } else {
                    l.split_once("=~ ").map(|(_, v)| v)
                };
                let Some(quoted) = value.and_then(|v| v.strip_prefix('"')) else {
                    continue;
                };
                let Some((pat, _)) = quoted.split_once('"') else {
                    continue;
                };
                // Only text that double quotes leave as it is: no expansion, no `\\`.
                let expands = pat.contains(['`', '"'])
                    || pat.contains("\\\\")
                    || pat.match_indices('$').any(|(k, _)| {
                        pat[k + 1..]
                            .starts_with(|c: char| c.is_ascii_alphanumeric() || "_{(".contains(c))
                    });
                if !expands && !found.iter().any(|f| f == pat) {
                    found.push(pat.to_string());
                }
            }
        }
        found
    }

    /// bash's `[[ s =~ p ]]` for every pattern and subject: 0 match, 1 none, 2 invalid.
    fn bash_verdicts(patterns: &[String], subjects: &[&str]) -> Vec<Vec<u8>> {
        let out = std::process::Command::new(super::super::fixtures::BASH)
            .arg("-c")
            .arg(
                r#"np=$1; shift; pats=("${@:1:np}"); subj=("${@:np+1}")
for p in "${pats[@]}"; do for s in "${subj[@]}"; do [[ $s =~ $p ]]; printf %d $?; done; echo; done"#,
            )
            .arg("bash-ere")
            .arg(patterns.len().to_string())
            .args(patterns)
            .args(subjects)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.bytes().map(|b| b - b'0').collect())
            .collect()
    }

    /// regex-lite's verdicts against bash's own `=~` for the corpus's patterns and more, over
    /// kernel releases and architectures. Where rtool answers, it answers as bash; where it
    /// refuses, bash fails too or the pattern is one rtool refuses on purpose.
    #[test]
    fn verdicts_equal_bashs() {
        let corpus = corpus_patterns();
        for want in [
            "^(3\\.[1-9][0-9]|[4-9]\\.)",
            "-rt-",
            "NOT ON PREEMPT_RT",
            "REQUIRES CONFIG_VIDEO_DEV",
        ] {
            assert!(corpus.iter().any(|p| p == want), "{want} in {corpus:?}");
        }
        // Patterns of other real packages, and the dialect's corners.
        let more = [
            "^(6\\.[0-1]\\.|5\\.)",
            "^[5-9]\\.",
            "^(4\\.(1[5-9]|[2-9][0-9])|[5-9]\\.)",
            "^6\\.(1|6)\\..*-lts$",
            "x86_64|i.86",
            "^(x86_64|aarch64)$",
            "arm.*",
            ".*",
            "[[:digit:]]+\\.[[:digit:]]+",
            "^[^5]",
            "-rt",
            "^6\\.[0-9]{1,2}\\.",
            "^(5|6)\\.[0-9]{,1}\\.",
            "[\\d]",
            "[a\\-z]",
            "[[]",
            "[a&&b]",
            "[--/]",
            "[]-a]",
            "[A-z]",
            "^\\w+\\.\\w+",
            "\\s",
            "\\S+$",
            "\\bamd64$",
            "\\Barch",
            "a{1}*",
            "(^)*6",
            "a||6",
            "()",
            "a)",
            "*a",
            "a{",
            "a{x",
            "[a-c-e]",
            "[[:word:]]",
            "[z-a]",
            "^*",
            "(a",
            "\\d",
            "\\<6",
            "(6)\\1",
            "[[.6.]]",
            "[[=6=]]",
            "a{99999}",
        ];
        let refused_on_purpose = ["\\d", "\\<6", "(6)\\1", "[[.6.]]", "[[=6=]]"];
        let patterns: Vec<String> = corpus
            .iter()
            .cloned()
            .chain(more.iter().map(|s| s.to_string()))
            .collect();
        let subjects = [
            "6.1.0-13-amd64",
            "6.1.0-13-rt-amd64",
            "6.1.55-1-rt16",
            "5.10.0-30-amd64",
            "4.19.0-27-amd64",
            "4.9.0-8-686-pae",
            "3.10.0",
            "3.9.11",
            "2.6.32-5-amd64",
            "6.10.1-arch1-1",
            "6.6.30-1-lts",
            "6.12.0-rc1",
            "10.0.0",
            "x86_64",
            "aarch64",
            "i686",
            "armv7l",
            "ppc64le",
            "a&b",
            "\\",
            "-",
            "_",
            "[",
            "]",
            "",
        ];
        let bash = bash_verdicts(&patterns, &subjects);
        assert_eq!(bash.len(), patterns.len());
        let mut answered = 0;
        for (p, verdicts) in patterns.iter().zip(&bash) {
            for (s, b) in subjects.iter().zip(verdicts) {
                match exclusive_kernel_matches(p, s) {
                    Ok(ours) => {
                        assert_eq!(u8::from(!ours), *b, "{p:?} on {s:?}");
                        answered += 1;
                    }
                    Err(e) => assert!(
                        *b == 2 || refused_on_purpose.contains(&p.as_str()),
                        "{p:?} on {s:?}: bash says {b}, rtool {e}"
                    ),
                }
            }
        }
        for p in &corpus {
            assert!(exclusive_kernel_matches(p, "6.1.0-13-amd64").is_ok(), "{p}");
        }
        assert!(answered > subjects.len() * corpus.len());
    }
}
