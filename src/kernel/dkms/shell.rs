//! The subset of bash that `dkms.conf` files are written in, evaluated the way dkms 3 sources
//! them (`read_conf` and `safe_source`), without running bash.
//!
//! Evaluated exactly:
//! - simple statements of assignments, separated by newlines or `;`: `NAME=value`,
//!   `NAME[n]=value` with a literal index, `NAME+=value`, and lists `NAME=(a [n]=b c)`, whose
//!   unquoted expansions are split into words;
//! - `export`, `declare`, `typeset` and `readonly` before assignments (the flags `-a -r -x
//!   -g` only; others are read as plain assignments, with a warning); `unset NAME`; `:` and
//!   `true`; comments; backslash-newline continuations;
//! - quoting: `'…'`, `"…"`, backslash escapes, `$"…"`;
//! - expansions: `$NAME`, `${NAME}`, `${NAME[n]}`, `${NAME[@]}`, `${NAME[*]}`, and
//!   `${NAME:-w}`, `${NAME-w}`, `${NAME:+w}`, `${NAME+w}`;
//! - the variables dkms defines while it sources the file (`kernelver`, `arch`,
//!   `kernel_source_dir`, `kernel_config`, `dkms_tree`, `source_tree`, `module`,
//!   `module_version`, `parallel_jobs`), and the directives, which dkms unsets first;
//! - `$(nproc)` (and backquoted, `nproc --all`, `getconf _NPROCESSORS_ONLN`): the CPU count,
//!   with a warning;
//! - dkms's second reading: every value echoed back unquoted and expanded again.
//!
//! Anything else is never given a value. Command substitution, `$((…))`, `$'…'`, `~`, special
//! and positional parameters, `${#…}`, `${!…}`, other `${…}` operators, array index
//! expressions and variables set neither by the file nor by dkms make the value they appear
//! in unknown. `if`, `case`, loops, `[[ ]]`, `{ }`, functions, subshells, `&&`/`||`/`|` lists and
//! redirections are skipped whole, and every variable they assign becomes unknown. Any other
//! command is not run (a warning). An unknown value is an error naming its line when it is a
//! directive that says what is built and how (`PACKAGE_NAME`, `PACKAGE_VERSION`, `MAKE`,
//! `MAKE_MATCH`, `BUILT_MODULE_*`, `DEST_MODULE_*`, `PATCH`, `PATCH_MATCH`), and otherwise a
//! warning naming its line, the directive listed in `Conf::inexact` (then [`super::read`]
//! asks bash). Text that is not valid shell (an unterminated quote, `${}`, a stray `fi`, a
//! blank after `=` before a command) is an error naming its line. One thing is taken as bash
//! takes it only when nothing matches: an unquoted glob in an array list (`PATCH=(*.patch)`)
//! stays literal.

use std::collections::{BTreeMap, HashMap};

use super::lex::*;
use super::{Vars, CONF_VARIABLES, NEEDED, NEEDS_BASH};
use crate::error::{Error, Result};

/// A value after expansion: its text, the constructs that were not evaluated (each a short
/// description with its line), and the line it was assigned on.
#[derive(Clone, Debug, Default)]
pub(super) struct Val {
    pub(super) text: String,
    pub(super) unknown: Vec<String>,
    pub(super) line: usize,
}

/// A bash variable: every variable is an array, and `$X` is `${X[0]}`.
pub(super) type Array = BTreeMap<u64, Val>;

/// What a lookup found: the value, and whether the variable is set at all (`None`: nobody
/// knows without bash).
pub(super) struct Looked {
    pub(super) val: Val,
    pub(super) set: Option<bool>,
}

/// Words that start a compound command or otherwise need the shell grammar.
const RESERVED: [&str; 14] = [
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "select", "function",
];

pub(super) struct Shell<'a> {
    pub(super) vars: &'a Vars,
    /// Module and version from the source directory name, as dkms's `$module` and
    /// `$module_version` (the Arch hook splits `usr/src/<m>-<v>` at the last dash).
    pub(super) module: Option<(String, String)>,
    pub(super) assigned: HashMap<String, Array>,
    pub(super) warnings: Vec<String>,
}

impl Shell<'_> {
    pub(super) fn run(&mut self, text: &str) -> Result<()> {
        let mut lx = Lexer::new(text, 0);
        loop {
            lx.skip_blanks();
            match lx.peek() {
                None => return Ok(()),
                Some('\n') => lx.pos += 1,
                Some('#') => lx.skip_comment(),
                Some(c @ (';' | '&' | '|' | ')')) => {
                    return Err(lx.err(lx.pos, format!("syntax error near {c:?}")))
                }
                Some(_) => self.statement(&mut lx)?,
            }
            self.warnings.append(&mut lx.notes);
        }
    }

    /// One simple command (assignments, maybe a command), or a compound one skipped whole.
    fn statement(&mut self, lx: &mut Lexer) -> Result<()> {
        let start = lx.pos;
        let line = lx.line();
        let mut assigns = Vec::new();
        let mut words: Vec<(String, Vec<Part>)> = Vec::new();
        let mut declaring = false;
        loop {
            lx.skip_blanks();
            match lx.peek() {
                None | Some('\n') => break,
                Some(';') => {
                    lx.pos += 1;
                    break;
                }
                Some('#') => {
                    lx.skip_comment();
                    break;
                }
                Some('&' | '|') => {
                    return self.skip_compound(lx, start, "a command list (&&, ||, |)")
                }
                Some('<' | '>') => return self.skip_compound(lx, start, "a redirection"),
                Some('(') => {
                    if words.len() == 1 && assigns.is_empty() {
                        let name = words.first().map(|w| w.0.clone()).unwrap_or_default();
                        return self.skip_compound(lx, start, &format!("the function {name}()"));
                    }
                    if words.is_empty() && assigns.is_empty() {
                        return self.skip_compound(
                            lx,
                            start,
                            &format!("a subshell ( {} )", crate::text::glyph("…")),
                        );
                    }
                    return Err(lx.err(lx.pos, "syntax error near \"(\""));
                }
                Some(')') => return Err(lx.err(lx.pos, "syntax error near \")\"")),
                Some(_) => {
                    if words.is_empty() || declaring {
                        if let Some(a) = lx.assignment()? {
                            assigns.push(a);
                            continue;
                        }
                    }
                    let wstart = lx.pos;
                    let parts = lx.word()?;
                    let raw = lx.slice(wstart, lx.pos);
                    if words.is_empty() {
                        let closer = matches!(
                            raw.as_str(),
                            "then" | "else" | "elif" | "fi" | "do" | "done" | "esac" | "}"
                        );
                        if closer && assigns.is_empty() {
                            return Err(lx.err(wstart, format!("syntax error near `{raw}`")));
                        }
                        let reserved = RESERVED.contains(&raw.as_str())
                            || matches!(raw.as_str(), "{" | "}" | "[[" | "!" | "coproc");
                        if reserved && assigns.is_empty() {
                            return self.skip_compound(lx, start, &format!("`{raw}`"));
                        }
                        declaring = matches!(
                            raw.as_str(),
                            "export" | "declare" | "typeset" | "readonly" | "local"
                        );
                    }
                    words.push((raw, parts));
                }
            }
        }

        let Some((cmd, _)) = words.first() else {
            for a in &assigns {
                self.assign(a);
            }
            return Ok(());
        };
        let cmd = cmd.clone();
        match cmd.as_str() {
            "export" | "declare" | "typeset" | "readonly" => {
                for (w, _) in words.iter().skip(1) {
                    if w.starts_with('-')
                        && !matches!(w.as_str(), "-a" | "-r" | "-x" | "-g" | "-ax" | "-xa")
                    {
                        self.warnings.push(format!(
                            "line {line}: `{cmd} {w}` is not supported; its variables are read as plain ones"
                        ));
                    }
                }
                for a in &assigns {
                    self.assign(a);
                }
            }
            "local" => self.warnings.push(format!(
                "line {line}: `local` outside a function fails in bash; its assignments are ignored"
            )),
            "unset" => {
                for (w, _) in words.iter().skip(1) {
                    if !w.starts_with('-') {
                        // Known to be unset from here on: an empty array.
                        self.assigned.insert(w.clone(), Array::new());
                    }
                }
            }
            ":" | "true" if words.len() == 1 && assigns.is_empty() => {}
            _ => {
                if let Some((second, _)) = words.get(1) {
                    if second.starts_with('=') && cmd.chars().all(is_name_char) {
                        return Err(lx.err(
                            start,
                            format!("`{cmd} {}` is not an assignment: a shell assignment has no blanks around '='", clip(second)),
                        ));
                    }
                }
                if let Some(a) = assigns
                    .iter()
                    .find(|a| CONF_VARIABLES.contains(&a.name.as_str()))
                {
                    return Err(lx.err(
                        start,
                        format!("{}= is followed by `{}`: bash would run that as a command and not set {} (a blank after '='?)", a.name, clip(&cmd), a.name),
                    ));
                }
                self.warnings.push(format!(
                    "line {line}: command `{}` was not run",
                    clip(&lx.slice(start, lx.pos))
                ));
            }
        }
        Ok(())
    }

    /// Skips a construct this interpreter does not run (`if … fi`, a loop, a function, a
    /// list), from `start` to its end. Whatever it assigns stays unknown: a warning, or an
    /// error when that is a directive the build needs.
    fn skip_compound(&mut self, lx: &mut Lexer, start: usize, what: &str) -> Result<()> {
        lx.pos = start;
        let line = lx.line();
        let mut depth = 0usize;
        let mut parens = 0usize;
        let mut cmd_pos = true;
        let mut names: Vec<String> = Vec::new();
        loop {
            lx.skip_blanks();
            match lx.peek() {
                None => {
                    if depth > 0 || parens > 0 {
                        return Err(lx.err(start, format!("{what} is not closed")));
                    }
                    break;
                }
                Some('\n' | ';') => {
                    lx.pos += 1;
                    cmd_pos = true;
                    if depth == 0 && parens == 0 {
                        break;
                    }
                }
                Some('#')
                    if cmd_pos
                        || lx
                            .s
                            .get(lx.pos.wrapping_sub(1))
                            .is_some_and(|c| c.is_whitespace()) =>
                {
                    lx.skip_comment();
                }
                Some('&' | '|' | '<' | '>') => {
                    lx.pos += 1;
                    cmd_pos = true;
                }
                Some('(') => {
                    lx.pos += 1;
                    if cmd_pos {
                        parens += 1;
                    }
                    cmd_pos = true;
                }
                Some(')') => {
                    lx.pos += 1;
                    // A `pattern)` in a case closes nothing.
                    parens = parens.saturating_sub(1);
                    cmd_pos = true;
                }
                Some(_) => {
                    if cmd_pos {
                        if let Some(a) = lx.assignment()? {
                            if !names.contains(&a.name) {
                                names.push(a.name);
                            }
                            continue;
                        }
                    }
                    let wstart = lx.pos;
                    lx.word()?;
                    let raw = lx.slice(wstart, lx.pos);
                    if cmd_pos {
                        match raw.as_str() {
                            "if" | "case" | "for" | "while" | "until" | "select" | "{" => {
                                depth += 1;
                            }
                            "fi" | "esac" | "done" | "}" => {
                                depth = depth.saturating_sub(1);
                            }
                            _ => {}
                        }
                    }
                    cmd_pos = matches!(
                        raw.as_str(),
                        "then" | "do" | "else" | "elif" | "{" | "!" | "in" | "export" | "declare"
                    ) || (cmd_pos && matches!(raw.as_str(), "if" | "while" | "until"));
                }
            }
        }
        let end = lx.line_of(lx.pos.saturating_sub(1));
        let lines = if end > line {
            format!("lines {line}-{end}")
        } else {
            format!("line {line}")
        };
        if let Some(n) = names.iter().find(|n| NEEDED.contains(&n.as_str())) {
            return Err(Error::invalid(format!(
                "dkms.conf {lines}: {n} is assigned inside {what}, which rtool cannot evaluate without bash"
            ))
            .hint(NEEDS_BASH));
        }
        let assigns = if names.is_empty() {
            String::new()
        } else {
            format!("; the values it may set stay unknown: {}", names.join(", "))
        };
        self.warnings
            .push(format!("{lines}: {what} was not run{assigns}"));
        // Nothing inside was run, so no CPU count was used either.
        lx.notes.clear();
        for n in &names {
            // Values that may or may not have been set are unknown from here on.
            self.assigned.remove(n);
            self.assigned.insert(
                n.clone(),
                BTreeMap::from([(
                    0,
                    Val {
                        text: String::new(),
                        unknown: vec![format!("the value {what} ({lines}) may set")],
                        line,
                    },
                )]),
            );
        }
        Ok(())
    }

    fn assign(&mut self, a: &Assign) {
        match &a.value {
            AValue::Scalar(parts) => {
                let v = eval(parts, a.line, &|p, l| self.lookup(p, l));
                let arr = self.assigned.entry(a.name.clone()).or_default();
                let idx = a.index.unwrap_or(0);
                if a.append {
                    let e = arr.entry(idx).or_insert_with(|| Val {
                        line: a.line,
                        ..Val::default()
                    });
                    e.text.push_str(&v.text);
                    e.unknown.extend(v.unknown);
                    e.line = a.line;
                } else {
                    arr.insert(idx, v);
                }
            }
            AValue::List(elems) => {
                let mut vals = Vec::new();
                for (idx, parts) in elems {
                    let v = eval(parts, a.line, &|p, l| self.lookup(p, l));
                    // Unquoted expansions in a list are split into words, as bash does.
                    let splits = parts
                        .iter()
                        .any(|p| matches!(p, Part::Param(q) if !q.quoted));
                    if splits && idx.is_none() {
                        for w in v.text.split_whitespace() {
                            vals.push((
                                None,
                                Val {
                                    text: w.to_string(),
                                    unknown: v.unknown.clone(),
                                    line: a.line,
                                },
                            ));
                        }
                    } else {
                        vals.push((*idx, v));
                    }
                }
                let arr = self.assigned.entry(a.name.clone()).or_default();
                if !a.append {
                    arr.clear();
                }
                let mut next = arr.keys().next_back().map(|k| k + 1).unwrap_or(0);
                for (idx, v) in vals {
                    let i = idx.unwrap_or(next);
                    arr.insert(i, v);
                    next = i + 1;
                }
            }
        }
    }

    /// What dkms itself defines while it sources the file.
    fn builtin(&self, name: &str) -> Option<String> {
        let v = self.vars;
        Some(match name {
            "kernelver" => v.kernelver.clone(),
            "kernel_source_dir" => v.kernel_source_dir.clone(),
            "dkms_tree" => v.dkms_tree.clone(),
            "source_tree" => v.source_tree.clone(),
            "arch" => v.arch.clone(),
            // set_kernel_source_dir_and_kconfig, line 236
            "kernel_config" => format!("{}/.config", v.kernel_source_dir),
            "module" => self.module.as_ref()?.0.clone(),
            "module_version" => self.module.as_ref()?.1.clone(),
            // dkms's -j count (line 2532): the CPU count, unless framework.conf sets it,
            // which rtool does not read.
            "parallel_jobs" => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
            _ => return None,
        })
    }

    /// A variable while the file itself is sourced: its own assignments first.
    fn lookup(&self, p: &Param, line: usize) -> Looked {
        if let Some(arr) = self.assigned.get(&p.name) {
            return index_into(arr, &p.index, line);
        }
        self.lookup_outside(p, line)
    }

    fn lookup_outside(&self, p: &Param, line: usize) -> Looked {
        if let Some(text) = self.builtin(&p.name) {
            let text = match p.index {
                Index::None | Index::All | Index::N(0) => text,
                Index::N(_) => String::new(),
            };
            return Looked {
                val: Val {
                    text,
                    unknown: Vec::new(),
                    line,
                },
                set: Some(true),
            };
        }
        // read_conf unsets every dkms.conf variable before sourcing (line 471).
        if CONF_VARIABLES.contains(&p.name.as_str()) {
            return Looked {
                val: Val {
                    line,
                    ..Val::default()
                },
                set: Some(false),
            };
        }
        Looked {
            val: Val {
                text: String::new(),
                unknown: vec![format!(
                    "`{}` (line {line}), set neither in dkms.conf nor by dkms",
                    p.raw
                )],
                line,
            },
            set: None,
        }
    }

    /// dkms's second reading (safe_source): each value's words joined by single spaces, then
    /// expanded again as `NAME[i]="value"`, where only the variables echoed before it exist.
    pub(super) fn reread(&mut self) -> HashMap<&'static str, Array> {
        let mut out: HashMap<&'static str, Array> = HashMap::new();
        for name in CONF_VARIABLES {
            let Some(arr) = self.assigned.get(name) else {
                continue;
            };
            for (i, v) in arr.clone() {
                let joined = join_words(&v.text);
                let quoted = format!("\"{joined}\"");
                let mut lx = Lexer::new(&quoted, v.line.saturating_sub(1));
                let parsed = lx.word().ok().filter(|_| lx.pos >= lx.s.len());
                self.warnings.append(&mut lx.notes);
                let mut val = match parsed {
                    Some(parts) => eval(&parts, v.line, &|p, l| match out.get(p.name.as_str()) {
                        Some(arr) => index_into(arr, &p.index, l),
                        None => self.lookup_outside(p, l),
                    }),
                    None => Val {
                        text: joined.clone(),
                        unknown: vec![format!(
                            "a double quote or trailing backslash in {}, which dkms's second reading by bash would mangle",
                            clip(&joined)
                        )],
                        line: v.line,
                    },
                };
                let mut unknown = v.unknown.clone();
                for u in val.unknown.drain(..) {
                    if !unknown.contains(&u) {
                        unknown.push(u);
                    }
                }
                val.unknown = unknown;
                val.line = v.line;
                out.entry(name).or_default().insert(i, val);
            }
        }
        out
    }
}

/// `echo NAME[i]=\"${NAME[i]}\"` with the value unquoted: the words joined by single spaces.
/// Leading or trailing blanks leave one space, because the quote beside them becomes a word
/// of its own.
fn join_words(v: &str) -> String {
    let ifs = [' ', '\t', '\n'];
    let words: Vec<&str> = v.split(ifs).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return if v.is_empty() {
            String::new()
        } else {
            " ".to_string()
        };
    }
    let lead = if v.starts_with(ifs) { " " } else { "" };
    let trail = if v.ends_with(ifs) { " " } else { "" };
    format!("{lead}{}{trail}", words.join(" "))
}

fn index_into(arr: &Array, index: &Index, line: usize) -> Looked {
    let val = match index {
        Index::None => arr.get(&0).cloned(),
        Index::N(n) => arr.get(n).cloned(),
        Index::All => {
            let mut v = Val {
                line,
                ..Val::default()
            };
            let texts: Vec<&str> = arr.values().map(|e| e.text.as_str()).collect();
            v.text = texts.join(" ");
            for e in arr.values() {
                v.unknown.extend(e.unknown.iter().cloned());
            }
            Some(v)
        }
    };
    let set = val.is_some();
    Looked {
        val: val.unwrap_or(Val {
            line,
            ..Val::default()
        }),
        set: Some(set),
    }
}

/// Expands a word. `look` answers variable lookups.
pub(super) fn eval(parts: &[Part], line: usize, look: &dyn Fn(&Param, usize) -> Looked) -> Val {
    let mut out = Val {
        line,
        ..Val::default()
    };
    for p in parts {
        match p {
            Part::Text(t) => out.text.push_str(t),
            Part::Opaque { raw, what } => out
                .unknown
                .push(format!("{what} `{}` (line {line})", clip(raw))),
            Part::Param(q) => {
                let found = look(q, line);
                let Some(set) = found.set else {
                    out.unknown.extend(found.val.unknown);
                    continue;
                };
                let value = found.val;
                let empty = value.text.is_empty();
                let chosen = match &q.op {
                    Op::None => value,
                    Op::Default { colon, word } => {
                        if !set || (*colon && empty) {
                            eval(word, line, look)
                        } else {
                            value
                        }
                    }
                    Op::Alt { colon, word } => {
                        if set && !(*colon && empty) {
                            eval(word, line, look)
                        } else {
                            Val::default()
                        }
                    }
                };
                out.text.push_str(&chosen.text);
                out.unknown.extend(chosen.unknown);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::bash::read_values;
    use super::super::fixtures::{conf_dir, every_fixture_conf, kernel_tree, BASH};
    use super::super::parse;
    use super::super::tests::{parse_err, parse_ok, vars};
    use super::*;

    #[test]
    fn quoting_and_expansion_follow_bash_and_dkms() {
        // Every expected value here is what dkms 3.0.10's safe_source produced for this file.
        let text = r#"# comment line
PACKAGE_NAME=foo   # trailing comment
PACKAGE_VERSION='1.0 $kernelver'
MAKE[0]="make   -C
  $kernel_source_dir   M=\$dkms_tree/$PACKAGE_NAME" ; CLEAN=true
MAKE_MATCH[0]=${OBSOLETE_BY:-'^6\.'}
POST_BUILD=post\ build.sh\
--flag
PRE_BUILD="  lead"'trail  '
POST_INSTALL="${PACKAGE_NAME}-x${PACKAGE_VERSION:+-has}${OBSOLETE_BY-dflt}"
BUILT_MODULE_NAME=(a "b c" [5]=e)
DEST_MODULE_LOCATION+=/kernel/x
DEST_MODULE_LOCATION+=/y
POST_REMOVE='a\\b "q"'
POST_ADD=x$
BUILD_DEPENDS=("spl" zcommon)
export PRE_INSTALL=pre.sh
"#;
        let r = parse(text, &vars("6.1.0-1"), None);
        // Three module records, two without DEST_MODULE_LOCATION: the file is refused, but
        // the values are worth checking first with a valid module list.
        let e = r.unwrap_err().to_string();
        assert!(e.contains("no DEST_MODULE_LOCATION for record #1"), "{e}");
        let fixed = text.replace(
            "BUILT_MODULE_NAME=(a \"b c\" [5]=e)",
            "BUILT_MODULE_NAME=(a)",
        );
        let c = parse_ok(&fixed, "6.1.0-1", None);
        assert_eq!(c.package_name, "foo");
        // Single quotes keep `$kernelver`, and dkms's second reading expands it.
        assert_eq!(c.package_version, "1.0 6.1.0-1");
        assert_eq!(
            c.make,
            ["make -C /lib/modules/6.1.0-1/build M=/var/lib/dkms/foo"]
        );
        assert_eq!(c.make_match, ["^6\\."]);
        assert_eq!(c.clean.as_deref(), Some("true"));
        assert_eq!(c.post_build.as_deref(), Some("post build.sh--flag"));
        assert_eq!(c.pre_build.as_deref(), Some(" leadtrail "));
        assert_eq!(c.post_install.as_deref(), Some("foo-x-hasdflt"));
        assert_eq!(c.post_remove.as_deref(), Some("a\\b q"));
        assert_eq!(c.post_add.as_deref(), Some("x$"));
        assert_eq!(c.pre_install.as_deref(), Some("pre.sh"));
        assert_eq!(c.build_depends, ["spl", "zcommon"]);
        assert_eq!(c.modules[0].dest_location, "/kernel/x/y");
        // OBSOLETE_BY is a dkms.conf variable, unset before sourcing: the default applies.
        assert!(c.inexact.is_empty(), "{:?} {:?}", c.inexact, c.warnings);

        let list = parse_ok(
            "PACKAGE_NAME=p\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=(a \"b c\" [2]=e)\nDEST_MODULE_LOCATION=(/kernel /kernel [2]=/extra)\nDEST_MODULE_LOCATION[1]=/updates\n",
            "6.1.0-1",
            None,
        );
        let names: Vec<_> = list
            .modules
            .iter()
            .map(|m| (m.built_name.as_str(), m.dest_location.as_str()))
            .collect();
        assert_eq!(
            names,
            [("a", "/kernel"), ("b c", "/updates"), ("e", "/extra")]
        );
    }

    #[test]
    fn what_needs_bash_is_a_warning_or_an_error() {
        let head = "PACKAGE_NAME=p\nPACKAGE_VERSION=1\nDEST_MODULE_LOCATION=/extra\n";
        // The make command cannot be known: refused. `uname -r` would even name the
        // running kernel, not the one being built for.
        let e = parse_err(&format!("{head}MAKE[0]=\"make KVER=$(uname -r)\"\n"));
        assert!(
            e.contains("dkms.conf line 4: MAKE depends on command substitution `$(uname -r)`"),
            "{e}"
        );
        let e = parse_err(&format!("{head}MAKE[0]=\"make `uname -r`\"\n"));
        assert!(e.contains("`uname -r`"), "{e}");
        // A CPU count is known.
        let c = parse_ok(
            &format!("{head}MAKE[0]=\"make -j$(nproc) -C $kernel_source_dir\"\nCLEAN=\"make -j`nproc` clean\"\n"),
            "6.1.0-1",
            None,
        );
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            c.make,
            [format!("make -j{n} -C /lib/modules/6.1.0-1/build")]
        );
        assert_eq!(c.clean, Some(format!("make -j{n} clean")));
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("line 4: `$(nproc)` counts as")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("line 5: `\u{60}nproc\u{60}` counts as")),
            "{:?}",
            c.warnings
        );
        let e = parse_err(&format!("{head}BUILT_MODULE_NAME=$MYNAME\n"));
        assert!(
            e.contains("`$MYNAME`") && e.contains("set neither in dkms.conf nor by dkms"),
            "{e}"
        );
        let e = parse_err(&format!(
            "{head}if [ \"$kernelver\" = x ]; then\n  MAKE[0]=\"make A=1\"\nfi\n"
        ));
        assert!(
            e.contains("dkms.conf lines 4-6: MAKE is assigned inside `if`"),
            "{e}"
        );
        let e = parse_err(&format!("{head}[ -n \"$x\" ] && PATCH[0]=a.patch\n"));
        assert!(e.contains("PATCH is assigned inside a command list"), "{e}");
        // Whether to build is not what to build: an unknown exclusion is a warning, and
        // build_excluded() says it cannot answer.
        let c = parse_ok(
            &format!("{head}[ -n \"$x\" ] && BUILD_EXCLUSIVE_KERNEL=\"^6\"\n"),
            "6.1.0-1",
            None,
        );
        assert!(c.inexact.contains(&"BUILD_EXCLUSIVE_KERNEL".to_string()));
        let why = c.build_excluded(&vars("6.1.0-1")).unwrap().unwrap();
        assert!(why.contains("is unknown"), "{why}");

        // Optional values: warnings, and the directive is listed as inexact.
        let c = parse_ok(
            &format!("{head}POST_BUILD=\"post.sh $HOME\"\nif [ -e /x ]; then\n  POST_INSTALL=a\nelse\n  POST_INSTALL=b\nfi\nhelper() {{\n  echo hi\n}}\necho done\nfor m in a b; do POST_REMOVE=$m; done\n"),
            "6.1.0-1",
            None,
        );
        assert_eq!(c.post_build.as_deref(), Some("post.sh "));
        assert!(c.post_install.is_none());
        assert!(
            c.inexact.contains(&"POST_BUILD".to_string()),
            "{:?}",
            c.inexact
        );
        assert!(
            c.inexact.contains(&"POST_INSTALL".to_string()),
            "{:?}",
            c.inexact
        );
        assert!(
            c.inexact.contains(&"POST_REMOVE".to_string()),
            "{:?}",
            c.inexact
        );
        let w = c.warnings.join("\n");
        assert!(
            w.contains("line 4: POST_BUILD: `$HOME` (line 4), set neither"),
            "{w}"
        );
        assert!(
            w.contains(
                "lines 5-9: `if` was not run; the values it may set stay unknown: POST_INSTALL"
            ),
            "{w}"
        );
        assert!(
            w.contains("lines 10-12: the function helper() was not run"),
            "{w}"
        );
        assert!(
            w.contains("line 13: command `echo done` was not run"),
            "{w}"
        );
        assert!(w.contains("line 14: `for` was not run"), "{w}");
    }

    /// Sources `dir/dkms.conf` with real bash as `read_conf` does: dkms's variables set, the
    /// directives unset first, extglob on. Prints every element of every directive as
    /// NUL-separated (name, index, value) triples: `declare -p`'s facts, in a form no value
    /// can break.
    const SOURCE: &str = r#"
shopt -s extglob
kernelver=$1 arch=$2 kernel_source_dir=$3 dkms_tree=$4 source_tree=$5
module=$6 module_version=$7 parallel_jobs=$8 _conf=$9
kernel_config=$kernel_source_dir/.config
shift 9
for _v in "$@"; do unset "$_v"; done
. "$_conf" >/dev/null 2>&1
for _v in "$@"; do
    eval 'for _i in "${!'$_v'[@]}"; do printf "%s\0%s\0%s\0" "$_v" "$_i" "${'$_v'[$_i]}"; done'
done
"#;

    type Values = HashMap<String, BTreeMap<u64, String>>;

    fn sourced_by_bash(dir: &Path, v: &Vars, module: &str, version: &str) -> Values {
        let out = std::process::Command::new(BASH)
            .arg("-c")
            .arg(SOURCE)
            .arg("source-dkms-conf")
            .args([&v.kernelver, &v.arch, &v.kernel_source_dir, &v.dkms_tree])
            .arg(&v.source_tree)
            .args([module, version])
            .arg(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .to_string(),
            )
            .arg(dir.join("dkms.conf"))
            .args(CONF_VARIABLES)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", dir.display(), out.status);
        let mut values = Values::new();
        let mut f = out.stdout.split(|b| *b == 0);
        while let (Some(n), Some(i), Some(val)) = (f.next(), f.next(), f.next()) {
            values
                .entry(String::from_utf8_lossy(n).into_owned())
                .or_default()
                .insert(
                    String::from_utf8_lossy(i).parse().unwrap(),
                    String::from_utf8_lossy(val).into_owned(),
                );
        }
        values
    }

    /// Compares every directive: rtool's value must be bash's, element for element, unless
    /// rtool marked it unknown. Returns how many directives were unknown.
    fn same_as_bash(ours: &HashMap<&str, &Array>, bash: &Values, at: &str) -> usize {
        let mut unknown = 0;
        for name in CONF_VARIABLES {
            let arr = ours.get(name);
            if arr.is_some_and(|a| a.values().any(|v| !v.unknown.is_empty())) {
                unknown += 1;
                continue;
            }
            let ours: BTreeMap<u64, String> = arr
                .map(|a| a.iter().map(|(i, v)| (*i, v.text.clone())).collect())
                .unwrap_or_default();
            let theirs = bash.get(name).cloned().unwrap_or_default();
            assert_eq!(ours, theirs, "{at}: {name}");
        }
        unknown
    }

    /// The differential test of the evaluator: every dkms.conf of the corpus, for kernels
    /// with and without a `.config`, read by rtool and by real bash. What rtool evaluates,
    /// after sourcing and after dkms's echo-back, equals what bash gives; what it cannot
    /// evaluate is marked unknown; a file it refuses is refused with an error naming the
    /// line.
    #[test]
    fn every_corpus_file_evaluates_as_bash_does() {
        let files = every_fixture_conf();
        for want in [
            "nvidia-current-535.261.03",
            "nvidia-tesla-470-470.256.02",
            "v4l2loopback-0.12.7",
            "acpi-call-1.2.2",
            "zfs-2.1.11",
            "edge-1.0",
        ] {
            assert!(files.iter().any(|(d, _)| d == want), "{want} in {files:?}");
        }
        let t = tempfile::tempdir().unwrap();
        let kernels = [
            kernel_tree(t.path(), "6.1.0-13-amd64", None, false),
            kernel_tree(
                t.path(),
                "6.1.0-13-rt-amd64",
                Some("CONFIG_PREEMPT_RT=y\nCONFIG_VIDEO_DEV=m\n"),
                true,
            ),
            kernel_tree(
                t.path(),
                "5.10.0-30-amd64",
                Some("CONFIG_VIDEO_V4L2=m\n"),
                false,
            ),
        ];
        let (mut exact, mut inexact, mut refused) = (0, 0, 0);
        for (dir_name, text) in &files {
            let dir = conf_dir(&t.path().join("src"), dir_name, text);
            let (module, version) = dir_name.rsplit_once('-').unwrap();
            for v in &kernels {
                let at = format!("{dir_name} for {}", v.kernelver);
                let mut sh = Shell {
                    vars: v,
                    module: Some((module.to_string(), version.to_string())),
                    assigned: HashMap::new(),
                    warnings: Vec::new(),
                };
                if let Err(e) = sh.run(text) {
                    let e = e.to_string();
                    assert!(e.contains("dkms.conf line"), "{at}: {e}");
                    refused += 1;
                    continue;
                }
                let bash = sourced_by_bash(&dir, v, module, version);
                let ours = sh.assigned.iter().map(|(n, a)| (n.as_str(), a)).collect();
                let unknown = same_as_bash(&ours, &bash, &format!("{at}, sourced"));

                // After dkms's echo-back: against the bash reader, which is dkms's code.
                let echoed = sh.reread();
                let (dk, _) = read_values(Path::new(BASH), &dir, v).unwrap();
                let theirs: Values = dk
                    .iter()
                    .map(|(n, a)| {
                        let a = a.iter().map(|(i, v)| (*i, v.text.clone())).collect();
                        (n.to_string(), a)
                    })
                    .collect();
                let ours = echoed.iter().map(|(n, a)| (*n, a)).collect();
                let unknown_after = same_as_bash(&ours, &theirs, &format!("{at}, echoed back"));
                assert!(unknown_after >= unknown, "{at}");
                if unknown_after == 0 {
                    exact += 1;
                } else {
                    inexact += 1;
                }
            }
        }
        assert_eq!(exact + inexact + refused, files.len() * kernels.len());
        // The corpus keeps the evaluator honest only while most of it is exact.
        assert!(exact > inexact + refused, "{exact} {inexact} {refused}");
    }
}
