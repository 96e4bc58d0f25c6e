//! The lexer of the shell subset: words, quoting, expansions and assignments.

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub(super) enum Part {
    Text(String),
    Param(Param),
    /// Something only bash can evaluate: `$(…)`, backticks, `$((…))`, `$'…'`, an unsupported
    /// `${…}` form, `~`, positional parameters.
    Opaque {
        raw: String,
        what: &'static str,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Param {
    pub(super) name: String,
    pub(super) index: Index,
    pub(super) op: Op,
    /// Written inside double quotes: no word splitting in an array list.
    pub(super) quoted: bool,
    pub(super) raw: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Index {
    None,
    /// `[@]` or `[*]`
    All,
    N(u64),
}

#[derive(Clone, Debug)]
pub(super) enum Op {
    None,
    /// `${x:-word}` (colon: also when empty) and `${x-word}`
    Default {
        colon: bool,
        word: Vec<Part>,
    },
    /// `${x:+word}` and `${x+word}`
    Alt {
        colon: bool,
        word: Vec<Part>,
    },
}

#[derive(Debug)]
pub(super) struct Assign {
    pub(super) name: String,
    pub(super) index: Option<u64>,
    pub(super) append: bool,
    pub(super) value: AValue,
    pub(super) line: usize,
}

#[derive(Debug)]
pub(super) enum AValue {
    Scalar(Vec<Part>),
    /// `NAME=(a [3]=b c)`
    List(Vec<(Option<u64>, Vec<Part>)>),
}

pub(super) struct Lexer {
    pub(super) s: Vec<char>,
    pub(super) pos: usize,
    /// Line of `s[0]` minus one: sub-lexers over `${…}` report the outer file's lines.
    pub(super) line_base: usize,
    pub(super) line_starts: Vec<usize>,
    /// Things worth a warning that the lexer settled itself (a CPU count).
    pub(super) notes: Vec<String>,
}

pub(super) fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Keeps quoted shell text short in a message.
pub(super) fn clip(s: &str) -> String {
    const MAX: usize = 48;
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}{}", &one[..i], crate::text::glyph("…")),
        None => one,
    }
}

impl Lexer {
    pub(super) fn new(text: &str, line_base: usize) -> Self {
        let s: Vec<char> = text.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in s.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Lexer {
            s,
            pos: 0,
            line_base,
            line_starts,
            notes: Vec::new(),
        }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    pub(super) fn peek_at(&self, k: usize) -> Option<char> {
        self.s.get(self.pos + k).copied()
    }

    pub(super) fn line_of(&self, pos: usize) -> usize {
        let idx = match self.line_starts.binary_search(&pos) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        self.line_base + idx + 1
    }

    pub(super) fn line(&self) -> usize {
        self.line_of(self.pos)
    }

    pub(super) fn slice(&self, from: usize, to: usize) -> String {
        self.s
            .get(from..to.min(self.s.len()))
            .map(|c| c.iter().collect())
            .unwrap_or_default()
    }

    pub(super) fn err(&self, pos: usize, msg: impl std::fmt::Display) -> Error {
        Error::invalid(format!("dkms.conf line {}: {msg}", self.line_of(pos)))
    }

    /// Blanks and backslash-newline continuations; not newlines.
    pub(super) fn skip_blanks(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.pos += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                _ => return,
            }
        }
    }

    pub(super) fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                return;
            }
            self.pos += 1;
        }
    }

    pub(super) fn at_word_end(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')')
        )
    }

    /// One unquoted shell word, up to an unquoted blank or operator.
    pub(super) fn word(&mut self) -> Result<Vec<Part>> {
        self.word_until(false)
    }

    /// A word; `braced` is the word inside `${x:-…}`, where blanks are part of it.
    pub(super) fn word_until(&mut self, braced: bool) -> Result<Vec<Part>> {
        let mut parts = Vec::new();
        let mut buf = String::new();
        let begin = self.pos;
        while let Some(c) = self.peek() {
            if !braced && self.at_word_end() {
                break;
            }
            match c {
                '\\' => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some(d) => {
                        buf.push(d);
                        self.pos += 2;
                    }
                    None => {
                        buf.push('\\');
                        self.pos += 1;
                    }
                },
                '\'' => {
                    let start = self.pos;
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.err(start, "unterminated single quote")),
                            Some('\'') => {
                                self.pos += 1;
                                break;
                            }
                            Some(d) => {
                                buf.push(d);
                                self.pos += 1;
                            }
                        }
                    }
                }
                '"' => {
                    flush(&mut buf, &mut parts);
                    self.dquote(&mut parts)?;
                }
                '$' => {
                    flush(&mut buf, &mut parts);
                    let p = self.dollar(false)?;
                    parts.push(p);
                }
                '`' => {
                    flush(&mut buf, &mut parts);
                    let p = self.backtick()?;
                    parts.push(p);
                }
                '~' if self.pos == begin && !braced => {
                    let start = self.pos;
                    self.pos += 1;
                    while self.peek().is_some_and(|c| is_name_char(c) || c == '-') {
                        self.pos += 1;
                    }
                    parts.push(Part::Opaque {
                        raw: self.slice(start, self.pos),
                        what: "tilde expansion",
                    });
                }
                _ => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut buf, &mut parts);
        Ok(parts)
    }

    /// `"…"`, starting at the quote.
    pub(super) fn dquote(&mut self, parts: &mut Vec<Part>) -> Result<()> {
        let start = self.pos;
        self.pos += 1;
        let mut buf = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err(start, "unterminated double quote")),
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some(c @ ('$' | '`' | '"' | '\\')) => {
                        buf.push(c);
                        self.pos += 2;
                    }
                    _ => {
                        buf.push('\\');
                        self.pos += 1;
                    }
                },
                Some('$') => {
                    flush(&mut buf, parts);
                    let p = self.dollar(true)?;
                    parts.push(p);
                }
                Some('`') => {
                    flush(&mut buf, parts);
                    let p = self.backtick()?;
                    parts.push(p);
                }
                Some(c) => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut buf, parts);
        Ok(())
    }

    pub(super) fn backtick(&mut self) -> Result<Part> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.err(start, "unterminated backquote")),
                Some('\\') => self.pos += 2,
                Some('`') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
            }
        }
        let raw = self.slice(start, self.pos);
        Ok(self.substitution(raw, 1, "command substitution"))
    }

    /// A `$(…)` or backquoted command. Only a CPU count is known without running it: `-j$(nproc)`
    /// is common in make commands, and the CPUs rtool sees are the ones the build will use.
    pub(super) fn substitution(&mut self, raw: String, open: usize, what: &'static str) -> Part {
        let inner = raw
            .get(open..raw.len().saturating_sub(1))
            .unwrap_or_default()
            .trim();
        if what == "command substitution"
            && matches!(inner, "nproc" | "nproc --all" | "getconf _NPROCESSORS_ONLN")
        {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.notes.push(format!(
                "line {}: `{raw}` counts as {n}, the number of CPUs rtool sees",
                self.line_of(self.pos.saturating_sub(1))
            ));
            return Part::Text(n.to_string());
        }
        Part::Opaque { raw, what }
    }

    /// `$…`, starting at the dollar.
    pub(super) fn dollar(&mut self, quoted: bool) -> Result<Part> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some('(') => {
                let arith = self.peek_at(1) == Some('(');
                let end = self.paren_end(self.pos + 1)?;
                self.pos = end + 1;
                let raw = self.slice(start, self.pos);
                Ok(if arith {
                    Part::Opaque {
                        raw,
                        what: "arithmetic expansion",
                    }
                } else {
                    self.substitution(raw, 2, "command substitution")
                })
            }
            Some('{') => self.braced(start, quoted),
            Some('\'') if !quoted => {
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => return Err(self.err(start, "unterminated $'...' quote")),
                        Some('\\') => self.pos += 2,
                        Some('\'') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                Ok(Part::Opaque {
                    raw: self.slice(start, self.pos),
                    what: "$'...' quoting",
                })
            }
            // $"…" is a translatable string: the same as "…" without a message catalogue.
            Some('"') if !quoted => Ok(Part::Text(String::new())),
            Some(c) if is_name_start(c) => {
                let from = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                let name = self.slice(from, self.pos);
                Ok(Part::Param(Param {
                    name,
                    index: Index::None,
                    op: Op::None,
                    quoted,
                    raw: self.slice(start, self.pos),
                }))
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.pos += 1;
                Ok(Part::Opaque {
                    raw: self.slice(start, self.pos),
                    what: "special parameter",
                })
            }
            _ => Ok(Part::Text("$".to_string())),
        }
    }

    /// The index of the `)` that closes a `$(` whose body starts at `from`. Quotes, nested
    /// substitutions and `case` patterns (`pattern)`, unbalanced) are respected.
    pub(super) fn paren_end(&self, from: usize) -> Result<usize> {
        let mut depth = 1usize;
        let mut case_depth = 0usize;
        let mut i = from;
        let open = from.saturating_sub(2);
        while let Some(&c) = self.s.get(i) {
            match c {
                '\\' => i += 1,
                '\'' => {
                    i += 1;
                    while self.s.get(i).is_some_and(|&d| d != '\'') {
                        i += 1;
                    }
                    if i >= self.s.len() {
                        break;
                    }
                }
                '"' => {
                    i += 1;
                    while let Some(&d) = self.s.get(i) {
                        match d {
                            '\\' => i += 1,
                            '"' => break,
                            '$' if self.s.get(i + 1) == Some(&'(') => i = self.paren_end(i + 2)?,
                            _ => {}
                        }
                        i += 1;
                    }
                    if i >= self.s.len() {
                        break;
                    }
                }
                '`' => {
                    i += 1;
                    while let Some(&d) = self.s.get(i) {
                        match d {
                            '\\' => i += 1,
                            '`' => break,
                            _ => {}
                        }
                        i += 1;
                    }
                    if i >= self.s.len() {
                        break;
                    }
                }
                '$' if self.s.get(i + 1) == Some(&'(') => {
                    i = self.paren_end(i + 2)?;
                }
                '(' => depth += 1,
                ')' => {
                    if case_depth > 0 && depth == 1 {
                        // a `pattern)` of a case inside the substitution
                    } else {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i);
                        }
                    }
                }
                '#' if i == from
                    || self
                        .s
                        .get(i - 1)
                        .is_some_and(|p| p.is_whitespace() || *p == ';') =>
                {
                    while self.s.get(i).is_some_and(|&d| d != '\n') {
                        i += 1;
                    }
                    continue;
                }
                c if c.is_ascii_alphabetic()
                    && (i == from
                        || self
                            .s
                            .get(i - 1)
                            .is_some_and(|p| p.is_whitespace() || ";&|(".contains(*p))) =>
                {
                    let mut j = i;
                    while self.s.get(j).is_some_and(|d| is_name_char(*d)) {
                        j += 1;
                    }
                    let w: String = self.slice(i, j);
                    let ends = self
                        .s
                        .get(j)
                        .is_none_or(|d| d.is_whitespace() || ";&|)".contains(*d));
                    if ends && w == "case" {
                        case_depth += 1;
                    } else if ends && w == "esac" {
                        case_depth = case_depth.saturating_sub(1);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        Err(self.err(open, "unterminated $( ... )"))
    }

    /// `${…}`, with the lexer at the brace.
    pub(super) fn braced(&mut self, start: usize, quoted: bool) -> Result<Part> {
        // Find the matching brace, past quotes and nested `${`.
        let mut i = self.pos + 1;
        let mut depth = 1usize;
        loop {
            match self.s.get(i) {
                None => return Err(self.err(start, "unterminated ${")),
                Some('\\') => i += 1,
                Some('\'') if !quoted => {
                    i += 1;
                    while self.s.get(i).is_some_and(|&d| d != '\'') {
                        i += 1;
                    }
                }
                Some('"') => {
                    i += 1;
                    while self.s.get(i).is_some_and(|&d| d != '"') {
                        if self.s.get(i) == Some(&'\\') {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                Some('$') if self.s.get(i + 1) == Some(&'{') => {
                    depth += 1;
                    i += 1;
                }
                Some('}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Some(_) => {}
            }
            i += 1;
        }
        let inner = self.slice(self.pos + 1, i);
        self.pos = i + 1;
        let raw = self.slice(start, self.pos);
        let opaque = |what| {
            Ok(Part::Opaque {
                raw: raw.clone(),
                what,
            })
        };
        let chars: Vec<char> = inner.chars().collect();
        let Some(&first) = chars.first() else {
            return Err(self.err(start, format!("{raw}: bad substitution")));
        };
        if first == '#' && chars.len() > 1 {
            return opaque("string length `${#...}`");
        }
        if first == '!' {
            return opaque("indirect expansion `${!...}`");
        }
        if !is_name_start(first) {
            if first.is_ascii_digit() || "@*#?$!-".contains(first) {
                return opaque("special parameter");
            }
            return Err(self.err(start, format!("{raw}: bad substitution")));
        }
        let mut k = 0;
        while chars.get(k).is_some_and(|c| is_name_char(*c)) {
            k += 1;
        }
        let name: String = chars
            .get(..k)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let mut index = Index::None;
        if chars.get(k) == Some(&'[') {
            let Some(close) = chars.iter().skip(k).position(|c| *c == ']').map(|p| p + k) else {
                return Err(self.err(start, format!("{raw}: bad substitution")));
            };
            let sub: String = chars
                .get(k + 1..close)
                .map(|c| c.iter().collect())
                .unwrap_or_default();
            let sub = sub.trim();
            index = if sub == "@" || sub == "*" {
                Index::All
            } else if let Ok(n) = sub.parse::<u64>() {
                Index::N(n)
            } else {
                return opaque("array index expression");
            };
            k = close + 1;
        }
        let rest: String = chars
            .get(k..)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let op_word = |lx: &Lexer, text: &str| -> Result<Vec<Part>> {
            let mut sub = Lexer::new(text, lx.line_of(start) - 1);
            sub.word_until(true)
        };
        let op = if rest.is_empty() {
            Op::None
        } else if let Some(w) = rest.strip_prefix(":-") {
            Op::Default {
                colon: true,
                word: op_word(self, w)?,
            }
        } else if let Some(w) = rest.strip_prefix(":+") {
            Op::Alt {
                colon: true,
                word: op_word(self, w)?,
            }
        } else if let Some(w) = rest.strip_prefix('-') {
            Op::Default {
                colon: false,
                word: op_word(self, w)?,
            }
        } else if let Some(w) = rest.strip_prefix('+') {
            Op::Alt {
                colon: false,
                word: op_word(self, w)?,
            }
        } else if rest.starts_with([':', '=', '?', '%', '#', '/', '^', ',', '@']) {
            return opaque("`${...}` operator");
        } else {
            return Err(self.err(start, format!("{raw}: bad substitution")));
        };
        Ok(Part::Param(Param {
            name,
            index,
            op,
            quoted,
            raw,
        }))
    }

    /// `NAME=`, `NAME[i]=`, `NAME+=` at the lexer: the assignment, with its value read.
    /// `None` (and the lexer unmoved) when the word is not an assignment.
    pub(super) fn assignment(&mut self) -> Result<Option<Assign>> {
        let start = self.pos;
        if !self.peek().is_some_and(is_name_start) {
            return Ok(None);
        }
        let mut i = self.pos;
        while self.s.get(i).is_some_and(|c| is_name_char(*c)) {
            i += 1;
        }
        let name = self.slice(start, i);
        let mut index = None;
        if self.s.get(i) == Some(&'[') {
            let mut j = i + 1;
            while self.s.get(j).is_some_and(|c| *c != ']' && *c != '\n') {
                j += 1;
            }
            if self.s.get(j) != Some(&']') {
                return Ok(None);
            }
            let sub = self.slice(i + 1, j);
            let after = j + 1;
            let is_assign = self.s.get(after) == Some(&'=')
                || (self.s.get(after) == Some(&'+') && self.s.get(after + 1) == Some(&'='));
            if !is_assign {
                return Ok(None);
            }
            match sub.trim().parse::<u64>() {
                Ok(n) => index = Some(n),
                Err(_) => {
                    return Err(self.err(
                        start,
                        format!("{name}[{sub}]: the array index is not a number (rtool does not evaluate shell arithmetic)"),
                    ))
                }
            }
            i = after;
        }
        let append = self.s.get(i) == Some(&'+');
        if append {
            i += 1;
        }
        if self.s.get(i) != Some(&'=') {
            return Ok(None);
        }
        self.pos = i + 1;
        let line = self.line_of(start);
        let value = if self.peek() == Some('(') {
            if index.is_some() {
                return Err(self.err(
                    start,
                    format!("{name}[...]=(...): cannot assign a list to an array element"),
                ));
            }
            AValue::List(self.list()?)
        } else {
            AValue::Scalar(self.word()?)
        };
        Ok(Some(Assign {
            name,
            index,
            append,
            value,
            line,
        }))
    }

    /// `( a [2]=b "c d" )`, with the lexer at the parenthesis.
    pub(super) fn list(&mut self) -> Result<Vec<(Option<u64>, Vec<Part>)>> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Err(self.err(start, "unterminated array list (")),
                Some('\n') => self.pos += 1,
                Some('#') => self.skip_comment(),
                Some(')') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c @ (';' | '&' | '|' | '<' | '>' | '(')) => {
                    return Err(self.err(self.pos, format!("unexpected {c:?} in an array list")))
                }
                Some(_) => {
                    let mut idx = None;
                    if self.peek() == Some('[') {
                        let mut j = self.pos + 1;
                        while self.s.get(j).is_some_and(|c| *c != ']' && *c != '\n') {
                            j += 1;
                        }
                        if self.s.get(j) == Some(&']') && self.s.get(j + 1) == Some(&'=') {
                            let sub = self.slice(self.pos + 1, j);
                            match sub.trim().parse::<u64>() {
                                Ok(n) => idx = Some(n),
                                Err(_) => {
                                    return Err(self.err(
                                        self.pos,
                                        format!("[{sub}]=: the array index is not a number"),
                                    ))
                                }
                            }
                            self.pos = j + 2;
                        }
                    }
                    let w = self.word()?;
                    out.push((idx, w));
                }
            }
        }
    }
}

pub(super) fn flush(buf: &mut String, parts: &mut Vec<Part>) {
    if !buf.is_empty() {
        parts.push(Part::Text(std::mem::take(buf)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse_err;

    #[test]
    fn malformed_lines_name_their_line() {
        let head = "PACKAGE_NAME=p\nPACKAGE_VERSION=1\n";
        let e = parse_err(&format!(
            "{head}MAKE[0]=\"make\nDEST_MODULE_LOCATION=/extra\n"
        ));
        assert!(
            e.contains("dkms.conf line 3: unterminated double quote"),
            "{e}"
        );
        let e = parse_err(&format!("{head}\n\nCLEAN='x\n"));
        assert!(
            e.contains("dkms.conf line 5: unterminated single quote"),
            "{e}"
        );
        let e = parse_err(&format!("{head}BUILT_MODULE_NAME = foo\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("no blanks around '='"),
            "{e}"
        );
        let e = parse_err(&format!("{head}DEST_MODULE_LOCATION= /extra\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("DEST_MODULE_LOCATION="),
            "{e}"
        );
        let e = parse_err(&format!("{head}MAKE[$i]=make\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("not a number"),
            "{e}"
        );
        let e = parse_err(&format!("{head}MAKE=\"${{}}\"\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("bad substitution"),
            "{e}"
        );
        let e = parse_err(&format!("{head}\nPRE_BUILD=\"$(echo\n"));
        assert!(
            e.contains("dkms.conf line 4:") && e.contains("unterminated $("),
            "{e}"
        );
        let e = parse_err(&format!("{head}if true; then\nPOST_BUILD=x\n"));
        assert!(
            e.contains("dkms.conf line 3:") && e.contains("not closed"),
            "{e}"
        );
        let e = parse_err(&format!("{head}fi\n"));
        assert!(
            e.contains("dkms.conf line 3: syntax error near `fi`"),
            "{e}"
        );
        let e = parse_err(
            "PACKAGE_NAME=p\nunset PACKAGE_NAME\nPACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/extra\n",
        );
        assert!(e.contains("no PACKAGE_NAME"), "{e}");
        let e = parse_err(&format!("{head}) \n"));
        assert!(e.contains("dkms.conf line 3: syntax error"), "{e}");
    }
}
