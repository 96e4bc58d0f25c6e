//! Text for people: glyphs that fall back to ASCII outside a UTF-8 locale, and lines wrapped
//! to the terminal (80 columns at most) with a hanging indent.
//!
//! A rescue console is often a serial line or the kernel's VT under `LANG=C`, where `→` prints
//! as mojibake. Every non-ASCII glyph rtool prints itself goes through [`glyph`] or [`ascii`];
//! what comes from the data (a file name, a package description) is printed as it is.

use std::borrow::Cow;
use std::sync::OnceLock;

/// The widest rtool's own text gets, whatever the terminal: a line of 80 columns reads well
/// and fits the consoles a rescue happens on.
pub const MAX_WIDTH: usize = 80;

/// Each glyph rtool prints, and its ASCII stand-in.
const GLYPHS: [(char, &str); 6] = [
    ('→', "->"),
    ('—', "--"),
    ('–', "-"),
    ('…', "..."),
    ('×', "x"),
    ('≥', ">="),
];

/// Whether the locale's character set is UTF-8: the first of `LC_ALL`, `LC_CTYPE` and `LANG`
/// that is set and not empty says so (as setlocale reads them), e.g. `en_US.UTF-8`, `C.utf8`.
pub fn utf8() -> bool {
    static UTF8: OnceLock<bool> = OnceLock::new();
    *UTF8.get_or_init(|| utf8_locale(|k| std::env::var(k).ok()))
}

fn utf8_locale(var: impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| var(k).filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// `g` (one of the glyphs above) under a UTF-8 locale, its ASCII stand-in otherwise.
pub fn glyph(g: &'static str) -> &'static str {
    if utf8() {
        g
    } else {
        to_ascii(g)
    }
}

fn to_ascii(g: &'static str) -> &'static str {
    let mut chars = g.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => GLYPHS.iter().find(|(u, _)| *u == c).map_or("?", |(_, a)| a),
        _ => "?",
    }
}

/// `s` with every glyph above replaced by its ASCII stand-in outside a UTF-8 locale: for
/// text that is rtool's own as a whole (usage, help).
pub fn ascii(s: &str) -> Cow<'_, str> {
    if utf8() || s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(replace_glyphs(s))
}

fn replace_glyphs(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match GLYPHS.iter().find(|(u, _)| *u == c) {
            Some((_, a)) => out.push_str(a),
            None => out.push(c),
        }
    }
    out
}

/// The width to wrap rtool's own text to, as pacman finds it: `COLUMNS` when set, else the
/// terminal's width when the output is one, and never more than [`MAX_WIDTH`]. `None`: the
/// output is not a terminal and no width was asked for, so lines stay whole for `grep`.
pub fn width(fd: i32) -> Option<usize> {
    let cols = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| terminal_width(fd))?;
    Some(cols.min(MAX_WIDTH))
}

fn terminal_width(fd: i32) -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the structure given, which outlives the call;
    // an fd that is not a terminal makes it fail with ENOTTY and nothing is written.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// Standard output's wrapping width ([`width`]).
pub fn stdout_width() -> Option<usize> {
    width(libc::STDOUT_FILENO)
}

/// Standard error's wrapping width ([`width`]).
pub fn stderr_width() -> Option<usize> {
    width(libc::STDERR_FILENO)
}

/// `first` followed by `text`, broken at spaces so that no line is wider than `width`; the
/// lines after the first start with `indent` spaces. A word longer than a line (a long path)
/// gets a line of its own rather than being cut. Without a width, one line.
pub fn hang(first: &str, text: &str, indent: usize, width: Option<usize>) -> String {
    let mut out = String::with_capacity(first.len() + text.len() + 16);
    out.push_str(first);
    let Some(width) = width else {
        out.push_str(text);
        return out;
    };
    let mut col = columns(first);
    // Nothing of `text` on the line yet: no space goes before the next word.
    let mut fresh = true;
    for (i, para) in text.split('\n').enumerate() {
        // A line of its own in the text starts a line at the indent.
        if i > 0 {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
            fresh = true;
        }
        words(&mut out, &mut col, &mut fresh, para, indent, width);
    }
    out
}

/// `para`'s words, a command quoted in backticks kept whole when a line can hold it: a command
/// cut over two lines does not paste.
fn units(para: &str, room: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut quoted: Vec<&str> = Vec::new();
    let flush = |quoted: &mut Vec<&str>, out: &mut Vec<String>| {
        let whole = quoted.join(" ");
        if columns(&whole) <= room {
            out.push(whole);
        } else {
            out.extend(quoted.iter().map(|w| w.to_string()));
        }
        quoted.clear();
    };
    for word in para.split(' ') {
        let ticks = word.matches('`').count() % 2 == 1;
        if quoted.is_empty() {
            if ticks {
                quoted.push(word);
            } else {
                out.push(word.to_string());
            }
        } else {
            quoted.push(word);
            if ticks {
                flush(&mut quoted, &mut out);
            }
        }
    }
    if !quoted.is_empty() {
        flush(&mut quoted, &mut out);
    }
    out
}

/// Appends the words of `para` to `out`, breaking before a word that would pass `width`.
fn words(
    out: &mut String,
    col: &mut usize,
    fresh: &mut bool,
    para: &str,
    indent: usize,
    width: usize,
) {
    for word in units(para, width.saturating_sub(indent)) {
        let word = word.as_str();
        if word.is_empty() {
            // Runs of spaces inside the text (alignment) are kept as they are.
            if !*fresh {
                out.push(' ');
                *col += 1;
            }
            continue;
        }
        let w = columns(word);
        if !*fresh && *col + 1 + w > width && *col > indent {
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            *col = indent;
        } else if !*fresh {
            out.push(' ');
            *col += 1;
        }
        out.push_str(word);
        *col += w;
        *fresh = false;
    }
}

/// Columns a piece of text takes: one per character (rtool's own glyphs are all narrow).
fn columns(s: &str) -> usize {
    s.chars().count()
}

/// Every line of `text` wrapped to `width` ([`hang`]), each continuing at the column where its
/// own text starts: past its leading spaces, or past a two-space gap that opens a second
/// column (`  -n, --dry-run  Show what would be done`) in the line's first half.
pub fn wrap_lines(text: &str, width: Option<usize>) -> String {
    let Some(w) = width else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if columns(line) <= w {
            out.push_str(line);
            continue;
        }
        let lead = line.len() - line.trim_start_matches(' ').len();
        let body = &line[lead..];
        let indent = match second_column(body) {
            Some(at) if lead + at <= w / 2 => lead + at,
            _ => lead,
        };
        let head = &line[..indent.min(line.len())];
        let rest = &line[indent.min(line.len())..];
        out.push_str(&hang(head, rest, indent, Some(w)));
    }
    out
}

/// Where the text after a two-space gap starts, when `body` has one.
fn second_column(body: &str) -> Option<usize> {
    let gap = body.find("  ")?;
    let after = body[gap..].len() - body[gap..].trim_start_matches(' ').len();
    let at = gap + after;
    (at < body.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_decides_utf8() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(utf8_locale(env(&[("LANG", "en_US.UTF-8")])));
        assert!(utf8_locale(env(&[("LC_CTYPE", "C.utf8")])));
        assert!(!utf8_locale(env(&[
            ("LC_ALL", "C"),
            ("LANG", "en_US.UTF-8")
        ])));
        assert!(utf8_locale(env(&[("LC_ALL", ""), ("LANG", "de_DE.utf8")])));
        assert!(!utf8_locale(env(&[])));
        assert!(!utf8_locale(env(&[("LANG", "POSIX")])));
    }

    #[test]
    fn ascii_stand_ins() {
        assert_eq!(to_ascii("→"), "->");
        assert_eq!(to_ascii("—"), "--");
        assert_eq!(to_ascii("–"), "-");
        assert_eq!(to_ascii("…"), "...");
        assert_eq!(
            replace_glyphs("3.10 – 6.1 → a × b…"),
            "3.10 - 6.1 -> a x b..."
        );
        assert!(GLYPHS.iter().all(|(_, a)| a.is_ascii()));
    }

    #[test]
    fn hanging_indent() {
        let s = hang(
            "doctor: hint: ",
            "one two three four five six seven",
            14,
            Some(30),
        );
        assert_eq!(
            s,
            "doctor: hint: one two three\n              four five six\n              seven"
        );
        assert!(s.lines().all(|l| l.len() <= 30));
        assert_eq!(hang("a: ", "x y", 3, None), "a: x y");
        // A word wider than the line is not cut.
        let long = "/a/very/long/path/that/does/not/fit";
        assert_eq!(
            hang("-> ", &format!("see {long} now"), 3, Some(20)),
            format!("-> see\n   {long}\n   now")
        );
        // A command in backticks moves to the next line whole, unless no line can hold it.
        assert_eq!(
            hang(
                "-> ",
                "then run `rtool fetch-pkg --match-kernel` now",
                3,
                Some(40)
            ),
            "-> then run\n   `rtool fetch-pkg --match-kernel` now"
        );
        assert_eq!(
            hang(
                "-> ",
                "run `a b c d e f g h i j k l m n o p q r s`",
                3,
                Some(20)
            ),
            "-> run `a b c d e f\n   g h i j k l m n o\n   p q r s`"
        );
    }

    #[test]
    fn help_lines_continue_in_their_column() {
        let line = "  -n, --dry-run  Show what would be done and change nothing at all here";
        let w = wrap_lines(line, Some(40));
        assert_eq!(
            w,
            "  -n, --dry-run  Show what would be done\n                 and change nothing at\n                 all here"
        );
        assert_eq!(wrap_lines("short\n\nlines", Some(10)), "short\n\nlines");
        assert_eq!(
            wrap_lines("    an indented paragraph of text", Some(20)),
            "    an indented\n    paragraph of\n    text"
        );
    }
}
