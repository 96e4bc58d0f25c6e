//! POSIX extended regular expressions, as bash's `=~` uses them (glibc regcomp REG_EXTENDED).
//!
//! A Thompson-NFA matcher: linear in the input, no backtracking blow-up. It answers only
//! "is there a match anywhere", which is all `[[ s =~ re ]]` tells dkms.

#[derive(Debug)]
enum Node {
    Empty,
    Char(char),
    Any,
    Set(usize),
    Bol,
    Eol,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Clone, Copy, Debug)]
enum Named {
    Alpha,
    Digit,
    Alnum,
    Upper,
    Lower,
    Space,
    Blank,
    Punct,
    Print,
    Graph,
    Cntrl,
    Xdigit,
    /// GNU `\w`: alphanumerics and underscore
    Word,
}

impl Named {
    fn matches(self, c: char) -> bool {
        match self {
            Named::Alpha => c.is_alphabetic(),
            Named::Digit => c.is_ascii_digit(),
            Named::Alnum => c.is_alphanumeric(),
            Named::Upper => c.is_uppercase(),
            Named::Lower => c.is_lowercase(),
            Named::Space => c.is_whitespace(),
            Named::Blank => c == ' ' || c == '\t',
            Named::Punct => c.is_ascii_punctuation(),
            Named::Print => !c.is_control(),
            Named::Graph => !c.is_control() && !c.is_whitespace(),
            Named::Cntrl => c.is_control(),
            Named::Xdigit => c.is_ascii_hexdigit(),
            Named::Word => c.is_alphanumeric() || c == '_',
        }
    }
}

#[derive(Debug, Default)]
struct Set {
    negated: bool,
    ranges: Vec<(char, char)>,
    classes: Vec<Named>,
}

impl Set {
    fn matches(&self, c: char) -> bool {
        let hit = self.ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi)
            || self.classes.iter().any(|n| n.matches(c));
        hit != self.negated
    }
}

#[derive(Clone, Copy, Debug)]
enum Inst {
    Char(char),
    Any,
    Set(usize),
    Bol,
    Eol,
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// glibc's RE_DUP_MAX.
const DUP_MAX: u32 = 0x7fff;
/// Counted repetition copies its operand; this bounds the program.
const MAX_PROG: usize = 20_000;

pub(super) struct Regex {
    prog: Vec<Inst>,
    sets: Vec<Set>,
}

struct Parser {
    s: Vec<char>,
    pos: usize,
    depth: usize,
    sets: Vec<Set>,
}

impl Regex {
    pub(super) fn new(pattern: &str) -> Result<Regex, String> {
        let mut p = Parser {
            s: pattern.chars().collect(),
            pos: 0,
            depth: 0,
            sets: Vec::new(),
        };
        let node = p.alt()?;
        if p.pos < p.s.len() {
            return Err(format!(
                "unexpected {:?}",
                p.s.get(p.pos).copied().unwrap_or(' ')
            ));
        }
        let mut re = Regex {
            prog: Vec::new(),
            sets: p.sets,
        };
        re.emit(&node)?;
        re.prog.push(Inst::Match);
        Ok(re)
    }

    fn push(&mut self, i: Inst) -> Result<usize, String> {
        if self.prog.len() >= MAX_PROG {
            return Err("too large (counted repetition)".to_string());
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }

    fn patch(&mut self, at: usize, i: Inst) {
        if let Some(slot) = self.prog.get_mut(at) {
            *slot = i;
        }
    }

    fn emit(&mut self, n: &Node) -> Result<(), String> {
        match n {
            Node::Empty => {}
            Node::Char(c) => {
                self.push(Inst::Char(*c))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Set(i) => {
                self.push(Inst::Set(*i))?;
            }
            Node::Bol => {
                self.push(Inst::Bol)?;
            }
            Node::Eol => {
                self.push(Inst::Eol)?;
            }
            Node::Concat(v) => {
                for x in v {
                    self.emit(x)?;
                }
            }
            Node::Alt(v) => {
                let mut jumps = Vec::new();
                for (k, b) in v.iter().enumerate() {
                    if k + 1 < v.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(b)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.patch(split, Inst::Split(split + 1, next));
                    } else {
                        self.emit(b)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.patch(j, Inst::Jmp(end));
                }
            }
            Node::Repeat(x, min, max) => {
                for _ in 0..*min {
                    self.emit(x)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(x)?;
                        self.push(Inst::Jmp(split))?;
                        let end = self.prog.len();
                        self.patch(split, Inst::Split(split + 1, end));
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.emit(x)?;
                        }
                        let end = self.prog.len();
                        for s in splits {
                            self.patch(s, Inst::Split(s + 1, end));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the pattern matches anywhere in `text`.
    pub(super) fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let mut mark = vec![usize::MAX; self.prog.len()];
        let mut clist: Vec<usize> = Vec::new();
        let mut nlist: Vec<usize> = Vec::new();
        for pos in 0..=chars.len() {
            // Unanchored: a new attempt starts at every position.
            if self.add(&mut clist, &mut mark, 0, pos, chars.len()) {
                return true;
            }
            let Some(&c) = chars.get(pos) else { break };
            nlist.clear();
            for &pc in &clist {
                let step = match self.prog.get(pc) {
                    Some(Inst::Char(x)) => *x == c,
                    Some(Inst::Any) => true,
                    Some(Inst::Set(i)) => self.sets.get(*i).is_some_and(|s| s.matches(c)),
                    _ => false,
                };
                if step && self.add(&mut nlist, &mut mark, pc + 1, pos + 1, chars.len()) {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
        }
        false
    }

    /// Adds `pc` and everything reachable from it without input; true on reaching Match.
    fn add(
        &self,
        list: &mut Vec<usize>,
        mark: &mut [usize],
        pc: usize,
        pos: usize,
        len: usize,
    ) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            let Some(m) = mark.get_mut(pc) else { continue };
            if *m == pos {
                continue;
            }
            *m = pos;
            match self.prog.get(pc) {
                Some(Inst::Match) => return true,
                Some(Inst::Jmp(t)) => stack.push(*t),
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Bol) if pos == 0 => stack.push(pc + 1),
                Some(Inst::Eol) if pos == len => stack.push(pc + 1),
                Some(Inst::Bol | Inst::Eol) => {}
                Some(_) => list.push(pc),
                None => {}
            }
        }
        false
    }
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }

    fn alt(&mut self) -> Result<Node, String> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some('|') => break,
                Some(')') if self.depth > 0 => break,
                _ => {
                    let atom = self.atom()?;
                    let atom = self.quantifiers(atom)?;
                    items.push(atom);
                }
            }
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn atom(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Ok(Node::Empty);
        };
        self.pos += 1;
        Ok(match c {
            '(' => {
                self.depth += 1;
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err("unmatched (".to_string());
                }
                self.pos += 1;
                self.depth -= 1;
                // A group is one operand for a quantifier.
                Node::Concat(vec![inner])
            }
            // glibc takes an unmatched ) literally.
            ')' => Node::Char(')'),
            '^' => Node::Bol,
            '$' => Node::Eol,
            '.' => Node::Any,
            '[' => self.bracket()?,
            '\\' => self.escape()?,
            '*' | '+' | '?' | '{' => return Err(format!("nothing to repeat before {c:?}")),
            c => Node::Char(c),
        })
    }

    fn escape(&mut self) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Err("trailing backslash".to_string());
        };
        self.pos += 1;
        let class = |named, negated| {
            let set = Set {
                negated,
                ranges: Vec::new(),
                classes: vec![named],
            };
            (set, ())
        };
        let set = match c {
            'w' => class(Named::Word, false),
            'W' => class(Named::Word, true),
            's' => class(Named::Space, false),
            'S' => class(Named::Space, true),
            '1'..='9' => return Err(format!("back-reference \\{c} is not supported")),
            'b' | 'B' | '<' | '>' | '`' | '\'' => {
                return Err(format!("the GNU anchor \\{c} is not supported"))
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(format!(
                    "\\{c} is not a POSIX ERE escape (bash would match a plain {c:?})"
                ))
            }
            c => return Ok(Node::Char(c)),
        };
        self.sets.push(set.0);
        Ok(Node::Set(self.sets.len() - 1))
    }

    fn quantifiers(&mut self, mut atom: Node) -> Result<Node, String> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => {
                    self.pos += 1;
                    (0, None)
                }
                Some('+') => {
                    self.pos += 1;
                    (1, None)
                }
                Some('?') => {
                    self.pos += 1;
                    (0, Some(1))
                }
                Some('{') => {
                    self.pos += 1;
                    self.interval()?
                }
                _ => return Ok(atom),
            };
            if matches!(atom, Node::Bol | Node::Eol) {
                return Err("nothing to repeat after an anchor".to_string());
            }
            atom = Node::Repeat(Box::new(atom), min, max);
        }
    }

    /// `{m}`, `{m,}`, `{m,n}`, `{,n}` (glibc), after the brace.
    fn interval(&mut self) -> Result<(u32, Option<u32>), String> {
        let num = |p: &mut Parser| -> Result<Option<u32>, String> {
            let from = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            if p.pos == from {
                return Ok(None);
            }
            let s: String =
                p.s.get(from..p.pos)
                    .map(|c| c.iter().collect())
                    .unwrap_or_default();
            match s.parse::<u32>() {
                Ok(n) if n <= DUP_MAX => Ok(Some(n)),
                _ => Err(format!("repetition count {s} is too large")),
            }
        };
        let min = num(self)?;
        let (min, max) = if self.peek() == Some(',') {
            self.pos += 1;
            let max = num(self)?;
            if min.is_none() && max.is_none() {
                return Err("invalid interval {,}".to_string());
            }
            (min.unwrap_or(0), max)
        } else {
            let Some(m) = min else {
                return Err("invalid interval after {".to_string());
            };
            (m, Some(m))
        };
        if self.peek() != Some('}') {
            return Err("unterminated interval {".to_string());
        }
        self.pos += 1;
        if max.is_some_and(|mx| mx < min) {
            return Err("interval {m,n} with m > n".to_string());
        }
        Ok((min, max))
    }

    /// `[…]`, after the bracket. Backslash is literal inside, as POSIX says.
    fn bracket(&mut self) -> Result<Node, String> {
        let mut set = Set::default();
        if self.peek() == Some('^') {
            set.negated = true;
            self.pos += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err("unmatched [".to_string());
            };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            if c == '[' {
                match self.peek() {
                    Some(':') => {
                        self.pos += 1;
                        let from = self.pos;
                        while self.peek().is_some_and(|c| c != ':') {
                            self.pos += 1;
                        }
                        let name: String = self
                            .s
                            .get(from..self.pos)
                            .map(|c| c.iter().collect())
                            .unwrap_or_default();
                        if self.s.get(self.pos + 1) != Some(&']') {
                            return Err("unterminated [: :] class".to_string());
                        }
                        self.pos += 2;
                        let named = match name.as_str() {
                            "alpha" => Named::Alpha,
                            "digit" => Named::Digit,
                            "alnum" => Named::Alnum,
                            "upper" => Named::Upper,
                            "lower" => Named::Lower,
                            "space" => Named::Space,
                            "blank" => Named::Blank,
                            "punct" => Named::Punct,
                            "print" => Named::Print,
                            "graph" => Named::Graph,
                            "cntrl" => Named::Cntrl,
                            "xdigit" => Named::Xdigit,
                            _ => return Err(format!("unknown class [:{name}:]")),
                        };
                        set.classes.push(named);
                        continue;
                    }
                    Some(d @ ('=' | '.')) => {
                        return Err(format!(
                            "[{d} {d}] in a bracket expression is not supported"
                        ))
                    }
                    _ => {}
                }
            }
            let lo = c;
            if self.peek() == Some('-') && self.s.get(self.pos + 1).is_some_and(|d| *d != ']') {
                let Some(&hi) = self.s.get(self.pos + 1) else {
                    return Err("unmatched [".to_string());
                };
                if hi == '[' {
                    return Err(
                        "a range ending in a class or collating element is not supported"
                            .to_string(),
                    );
                }
                self.pos += 2;
                if hi < lo {
                    return Err(format!("invalid range {lo}-{hi}"));
                }
                set.ranges.push((lo, hi));
            } else {
                set.ranges.push((lo, lo));
            }
        }
        self.sets.push(set);
        Ok(Node::Set(self.sets.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::super::exclusive_kernel_matches;
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
    fn regex_refuses_what_it_cannot_answer() {
        for bad in [
            "*a",
            "+a",
            "a{",
            "a{1",
            "a{2,1}",
            "(a",
            "[a",
            "[z-a]",
            "^*",
            "[[:foo:]]",
            "\\",
            "{1}a",
        ] {
            // bash fails these too (status 2).
            let e = exclusive_kernel_matches(bad, "a").unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{bad}");
        }
        for unsupported in ["(a)\\1", "\\bword", "[[.a.]]", "[[=a=]]", "\\d", "a{99999}"] {
            let e = exclusive_kernel_matches(unsupported, "a").unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{unsupported}");
        }
        let e = exclusive_kernel_matches("\\d+", "5").unwrap_err();
        assert!(e.to_string().contains("plain 'd'"), "{e}");
        // Counted repetition is bounded.
        assert!(exclusive_kernel_matches("(((a{100}){100}){100})", "a").is_err());
    }
}
