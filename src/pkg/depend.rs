//! Package relations (`depend`, `conflict`, `provides`): `name`, or `name OP version` with OP
//! one of `<`, `<=`, `=`, `>=`, `>`, compared with pacman's version order.

use std::cmp::Ordering;

use crate::pkg::vercmp::vercmp;

/// One relation, as written in `.PKGINFO` or a database (`linux>=6.1`, `sh`, `libfoo.so=1-64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depend<'a> {
    pub name: &'a str,
    pub op: Option<&'a str>,
    pub version: &'a str,
}

impl<'a> Depend<'a> {
    /// Splits `s`; an optional dependency's `: description` is dropped.
    pub fn parse(s: &'a str) -> Depend<'a> {
        let s = s.split_once(": ").map_or(s, |(d, _)| d);
        let Some(at) = s.find(['<', '>', '=']) else {
            return Depend {
                name: s,
                op: None,
                version: "",
            };
        };
        let rest = &s[at..];
        let op_len = if rest.starts_with("<=") || rest.starts_with(">=") {
            2
        } else {
            1
        };
        Depend {
            name: &s[..at],
            op: Some(&rest[..op_len]),
            version: &rest[op_len..],
        }
    }

    /// Whether `version` meets the relation's version bound (always, without one).
    pub fn version_ok(&self, version: &str) -> bool {
        let Some(op) = self.op else { return true };
        let c = vercmp(version, self.version);
        match op {
            "<" => c == Ordering::Less,
            "<=" => c != Ordering::Greater,
            "=" => c == Ordering::Equal,
            ">=" => c != Ordering::Less,
            ">" => c == Ordering::Greater,
            _ => false,
        }
    }

    /// Whether the package `name`-`version` with `provides` satisfies the relation, as
    /// libalpm's `_alpm_depcmp` decides: by its own name and version, or by a provision (an
    /// unversioned provision satisfies only an unversioned relation).
    pub fn satisfied_by<'b>(
        &self,
        name: &str,
        version: &str,
        provides: impl IntoIterator<Item = &'b str>,
    ) -> bool {
        if name == self.name && self.version_ok(version) {
            return true;
        }
        provides.into_iter().any(|p| {
            let p = Depend::parse(p);
            p.name == self.name
                && match (p.op, self.op) {
                    (_, None) => true,
                    (Some("="), Some(_)) => self.version_ok(p.version),
                    _ => false,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_split_and_compare() {
        let d = Depend::parse("linux>=6.1.12.arch1-1");
        assert_eq!(
            (d.name, d.op, d.version),
            ("linux", Some(">="), "6.1.12.arch1-1")
        );
        assert!(d.satisfied_by("linux", "6.2.8.arch1-1", []));
        assert!(!d.satisfied_by("linux", "6.1.1.arch1-1", []));
        assert_eq!(Depend::parse("kbd: a font").name, "kbd");
        assert_eq!(Depend::parse("sh").op, None);
        let v = Depend::parse("rt-virtual");
        assert!(v.satisfied_by("rt-dep", "1.0-1", ["rt-virtual=1.0"]));
        let vv = Depend::parse("rt-virtual>=2");
        assert!(!vv.satisfied_by("rt-dep", "1.0-1", ["rt-virtual=1.0"]));
        assert!(!vv.satisfied_by("rt-dep", "1.0-1", ["rt-virtual"]));
        assert!(Depend::parse("a<2").satisfied_by("a", "1.9", []));
        assert!(Depend::parse("a=2").satisfied_by("a", "2", []));
        assert!(!Depend::parse("a>2").satisfied_by("a", "2", []));
    }
}
