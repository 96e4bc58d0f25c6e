//! A small JSON writer for `--json` reports (no serde: the binary stays small).

use std::fmt::{self, Write as _};

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(String),
    Arr(Vec<Json>),
    /// Keys keep the order they were added in.
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Adds `key: value` to an object (builder style); no-op on other values.
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        if let Json::Obj(v) = &mut self {
            v.push((key.to_string(), value.into()));
        }
        self
    }

    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        if let Json::Obj(v) = self {
            v.push((key.to_string(), value.into()));
        }
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::UInt(n)
    }
}
impl From<usize> for Json {
    fn from(n: usize) -> Json {
        Json::UInt(n as u64)
    }
}
impl From<i64> for Json {
    fn from(n: i64) -> Json {
        Json::Int(n)
    }
}
impl From<i32> for Json {
    fn from(n: i32) -> Json {
        Json::Int(n.into())
    }
}
impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl From<&String> for Json {
    fn from(s: &String) -> Json {
        Json::Str(s.clone())
    }
}
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(o: Option<T>) -> Json {
        o.map_or(Json::Null, Into::into)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Compact JSON; `{:#}` indents by two spaces.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn go(v: &Json, f: &mut fmt::Formatter<'_>, pretty: bool, depth: usize) -> fmt::Result {
            let nl = |f: &mut fmt::Formatter<'_>, d: usize| -> fmt::Result {
                if pretty {
                    f.write_char('\n')?;
                    for _ in 0..d {
                        f.write_str("  ")?;
                    }
                }
                Ok(())
            };
            match v {
                Json::Null => f.write_str("null"),
                Json::Bool(b) => write!(f, "{b}"),
                Json::Int(n) => write!(f, "{n}"),
                Json::UInt(n) => write!(f, "{n}"),
                Json::Str(s) => write_str(f, s),
                Json::Arr(a) if a.is_empty() => f.write_str("[]"),
                Json::Obj(o) if o.is_empty() => f.write_str("{}"),
                Json::Arr(a) => {
                    f.write_char('[')?;
                    for (i, x) in a.iter().enumerate() {
                        if i > 0 {
                            f.write_char(',')?;
                        }
                        nl(f, depth + 1)?;
                        go(x, f, pretty, depth + 1)?;
                    }
                    nl(f, depth)?;
                    f.write_char(']')
                }
                Json::Obj(o) => {
                    f.write_char('{')?;
                    for (i, (k, x)) in o.iter().enumerate() {
                        if i > 0 {
                            f.write_char(',')?;
                        }
                        nl(f, depth + 1)?;
                        write_str(f, k)?;
                        f.write_str(if pretty { ": " } else { ":" })?;
                        go(x, f, pretty, depth + 1)?;
                    }
                    nl(f, depth)?;
                    f.write_char('}')
                }
            }
        }
        go(self, f, f.alternate(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nests() {
        let j = Json::obj()
            .with("name", "a\"b\\c\n\u{1}")
            .with("n", 3u64)
            .with("neg", -2i64)
            .with("none", Option::<u64>::None)
            .with("list", vec!["x", "y"]);
        assert_eq!(
            j.to_string(),
            r#"{"name":"a\"b\\c\n\u0001","n":3,"neg":-2,"none":null,"list":["x","y"]}"#
        );
        assert_eq!(
            format!("{:#}", Json::obj().with("a", Json::Arr(vec![]))),
            "{\n  \"a\": []\n}"
        );
    }
}
