//! A package's `.MTREE` (already decompressed): bsdtar's mtree text with `/set` defaults.
//!
//! Paths are bytes, with every unsafe byte written as `\NNN` (octal); they come back as raw
//! bytes in a [`PathBuf`]. A path that could leave the package root (`..`, an absolute path, a
//! NUL) is refused here, so no caller can be led outside its root by a hostile `.MTREE`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// The file type of an entry (`type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Link,
    /// Devices, FIFOs and sockets are legal mtree but never in a pacman package; they are
    /// kept so a caller can refuse them by name.
    Block,
    Char,
    Fifo,
    Socket,
}

impl Kind {
    fn parse(s: &[u8]) -> Option<Kind> {
        Some(match s {
            b"file" => Kind::File,
            b"dir" => Kind::Dir,
            b"link" => Kind::Link,
            b"block" => Kind::Block,
            b"char" => Kind::Char,
            b"fifo" => Kind::Fifo,
            b"socket" => Kind::Socket,
            _ => return None,
        })
    }

    /// The mtree spelling (`file`, `dir`, `link`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Link => "link",
            Kind::Block => "block",
            Kind::Char => "char",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

/// One `./path …` line with the `/set` defaults in force applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the package root, without the leading `./`.
    pub path: PathBuf,
    pub kind: Kind,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Permission bits only (at most `0o7777`).
    pub mode: Option<u32>,
    /// Seconds and nanoseconds since the epoch.
    pub time: Option<(i64, u32)>,
    pub size: Option<u64>,
    /// Lowercase hex.
    pub sha256: Option<String>,
    /// Lowercase hex; only packages built before pacman 6.1 have it.
    pub md5: Option<String>,
    /// The symlink target, unescaped, exactly as stored (it may be absolute or hold `..`).
    pub link: Option<PathBuf>,
    /// The line the entry starts on (1-based), for messages.
    pub line: usize,
}

/// The keywords this parser understands, from a `/set` line or an entry.
#[derive(Clone, Debug, Default)]
struct Fields {
    kind: Option<Kind>,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    time: Option<(i64, u32)>,
    size: Option<u64>,
    sha256: Option<String>,
    md5: Option<String>,
    link: Option<PathBuf>,
}

impl Fields {
    /// `self` where it has a value, the defaults elsewhere.
    fn over(self, d: &Fields) -> Fields {
        Fields {
            kind: self.kind.or(d.kind),
            uid: self.uid.or(d.uid),
            gid: self.gid.or(d.gid),
            mode: self.mode.or(d.mode),
            time: self.time.or(d.time),
            size: self.size.or(d.size),
            sha256: self.sha256.or_else(|| d.sha256.clone()),
            md5: self.md5.or_else(|| d.md5.clone()),
            link: self.link.or_else(|| d.link.clone()),
        }
    }

    /// Reads `key=value` words into `self`; later words win, as they do in libarchive.
    fn read<'a>(&mut self, words: impl Iterator<Item = &'a [u8]>, n: usize) -> Result<()> {
        for word in words {
            let Some(eq) = word.iter().position(|&c| c == b'=') else {
                // mtree's flag keywords carry no value; nothing here depends on them.
                if matches!(word, b"nochange" | b"optional" | b"ignore") {
                    continue;
                }
                return Err(bad(
                    n,
                    format!("keyword `{}` needs a value (`key=value`)", lossy(word)),
                ));
            };
            let (key, value) = (&word[..eq], &word[eq + 1..]);
            match key {
                b"type" => {
                    self.kind = Some(
                        Kind::parse(value)
                            .ok_or_else(|| bad(n, format!("unknown type `{}`", lossy(value))))?,
                    )
                }
                b"uid" => self.uid = Some(decimal(value, "uid", n)?),
                b"gid" => self.gid = Some(decimal(value, "gid", n)?),
                b"mode" => self.mode = Some(mode(value, n)?),
                b"time" => self.time = Some(time(value, n)?),
                b"size" => self.size = Some(decimal(value, "size", n)?),
                b"sha256digest" | b"sha256" => self.sha256 = Some(hex(value, 32, "sha256", n)?),
                b"md5digest" | b"md5" => self.md5 = Some(hex(value, 16, "md5", n)?),
                b"link" => {
                    let target = unescape(value, n)?;
                    if target.is_empty() || target.contains(&0) {
                        return Err(bad(n, "the link target is empty or holds a NUL byte"));
                    }
                    self.link = Some(PathBuf::from(OsString::from_vec(target)));
                }
                // uname, gname, flags, nlink, other digests…: not needed to check or extract.
                _ => {}
            }
        }
        Ok(())
    }

    fn unset(&mut self, key: &[u8]) {
        match key {
            b"all" => *self = Fields::default(),
            b"type" => self.kind = None,
            b"uid" => self.uid = None,
            b"gid" => self.gid = None,
            b"mode" => self.mode = None,
            b"time" => self.time = None,
            b"size" => self.size = None,
            b"sha256digest" | b"sha256" => self.sha256 = None,
            b"md5digest" | b"md5" => self.md5 = None,
            b"link" => self.link = None,
            _ => {}
        }
    }
}

fn bad(n: usize, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("line {n}: {what}"))
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// What a gzipped `.MTREE` may inflate to: a hostile one is cut there (and then fails to parse).
const MAX_TEXT: u64 = 256 << 20;

/// Parses a gzipped `.MTREE` (a package's, or the local database's `mtree`); every gzip member
/// is read, as pacman's libarchive does.
pub fn parse_gz(gz: &[u8]) -> Result<Vec<Entry>> {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .take(MAX_TEXT)
        .read_to_end(&mut text)
        .map_err(|e| Error::invalid("not valid gzip").with_source(e))?;
    parse(&text)
}

/// Parses the text of a `.MTREE` into its entries, in file order.
pub fn parse(text: &[u8]) -> Result<Vec<Entry>> {
    if !text.starts_with(b"#mtree") {
        return Err(bad(
            1,
            "not an mtree file (no `#mtree` first line; is it still gzip-compressed?)",
        ));
    }
    let mut defaults = Fields::default();
    let mut out = Vec::new();
    let mut lines = text.split(|&c| c == b'\n').enumerate();
    while let Some((i, first)) = lines.next() {
        let n = i + 1;
        // A line ending in a backslash goes on on the next line (an escaped backslash is
        // written `\134`, so a bare one at the end can only mean this).
        let mut line = first.to_vec();
        while line.last() == Some(&b'\\') {
            line.pop();
            line.push(b' ');
            match lines.next() {
                Some((_, more)) => line.extend_from_slice(more),
                None => return Err(bad(n, "the last line ends in a `\\` continuation")),
            }
        }
        let mut words = line
            .split(|c| matches!(c, b' ' | b'\t' | b'\r'))
            .filter(|w| !w.is_empty());
        let Some(head) = words.next() else { continue };
        if head.starts_with(b"#") {
            continue;
        }
        match head {
            b"/set" => defaults.read(words, n)?,
            b"/unset" => words.for_each(|k| defaults.unset(k)),
            _ if head.starts_with(b"/") => {
                return Err(bad(n, format!("unknown command `{}`", lossy(head))))
            }
            _ => {
                let path = entry_path(head, n)?;
                let mut own = Fields::default();
                own.read(words, n)?;
                let f = own.over(&defaults);
                let kind = f.kind.unwrap_or(Kind::File);
                if kind == Kind::Link && f.link.is_none() {
                    return Err(bad(
                        n,
                        format!("{}: a link without `link=`", path.display()),
                    ));
                }
                out.push(Entry {
                    path,
                    kind,
                    uid: f.uid,
                    gid: f.gid,
                    mode: f.mode,
                    time: f.time,
                    size: f.size,
                    sha256: f.sha256,
                    md5: f.md5,
                    link: f.link,
                    line: n,
                });
            }
        }
    }
    Ok(out)
}

/// `./usr/bin/x` → `usr/bin/x`, refusing anything that does not stay below the root.
fn entry_path(word: &[u8], n: usize) -> Result<PathBuf> {
    let raw = unescape(word, n)?;
    let Some(rel) = raw.strip_prefix(b"./") else {
        return Err(bad(
            n,
            format!("the path `{}` does not start with `./`", lossy(word)),
        ));
    };
    if rel.contains(&0) {
        return Err(bad(n, "the path holds a NUL byte"));
    }
    let path = PathBuf::from(OsString::from_vec(rel.to_vec()));
    let normal = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if rel.is_empty() || rel.starts_with(b"/") || !normal {
        return Err(bad(
            n,
            format!(
                "the path `{}` does not name a file below the package root",
                lossy(word)
            ),
        ));
    }
    Ok(path)
}

/// Undoes bsdtar's `\NNN` escapes (three octal digits, one byte). bsdtar writes no other
/// escape, so anything else after a backslash is a corrupt file.
fn unescape(s: &[u8], n: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let digits = s
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let Some(d) = digits else {
            let end = s.len().min(i + 4);
            return Err(bad(
                n,
                format!(
                    "bad escape `{}` (expected \\ and three octal digits)",
                    lossy(&s[i..end])
                ),
            ));
        };
        let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
        let byte = u8::try_from(v).map_err(|_| {
            bad(
                n,
                format!("bad escape `\\{}`: more than one byte", lossy(d)),
            )
        })?;
        out.push(byte);
        i += 4;
    }
    Ok(out)
}

fn decimal<T: FromStr>(s: &[u8], what: &str, n: usize) -> Result<T> {
    // FromStr takes a leading '+', which mtree never writes.
    std::str::from_utf8(s)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(n, format!("bad {what} `{}`", lossy(s))))
}

fn mode(s: &[u8], n: usize) -> Result<u32> {
    std::str::from_utf8(s)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|c| (b'0'..=b'7').contains(&c)))
        .and_then(|t| u32::from_str_radix(t, 8).ok())
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            bad(
                n,
                format!("bad mode `{}` (expected octal, at most 7777)", lossy(s)),
            )
        })
}

/// `secs.nanos`, where the nanoseconds are a plain number (`.5` is 5 ns, not half a second).
fn time(s: &[u8], n: usize) -> Result<(i64, u32)> {
    let err = || {
        bad(
            n,
            format!("bad time `{}` (expected SECONDS.NANOSECONDS)", lossy(s)),
        )
    };
    let (secs, nanos) = match s.iter().position(|&c| c == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b"0"[..]),
    };
    let (neg, digits) = match secs.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, secs),
    };
    let magnitude: i64 = decimal(digits, "time", n).map_err(|_| err())?;
    let nanos: u32 = decimal(nanos, "time", n).map_err(|_| err())?;
    if nanos >= 1_000_000_000 {
        return Err(err());
    }
    Ok((if neg { -magnitude } else { magnitude }, nanos))
}

fn hex(s: &[u8], bytes: usize, what: &str, n: usize) -> Result<String> {
    if s.len() != bytes * 2 || !s.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad(
            n,
            format!(
                "bad {what} digest `{}` (expected {} hex digits)",
                lossy(s),
                bytes * 2
            ),
        ));
    }
    Ok(lossy(s).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind as ErrorKind;
    use std::path::Path;

    const SHA_A: &str = "cf42aa8d5c0e0b4a7b8f7bd1c2de0fb3c1a7a1b0d2e3f40516273849abcdef01";
    const SHA_B: &str = "32CDaa8d5c0e0b4a7b8f7bd1c2de0fb3c1a7a1b0d2e3f40516273849abcdef01";

    fn ok(text: &str) -> Vec<Entry> {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[track_caller]
    fn err(text: &[u8], want: &str) {
        match parse(text) {
            Ok(v) => panic!("parsed: {v:?}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Invalid);
                assert!(e.to_string().contains(want), "{e:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn reference_example() {
        let text = format!(
            "#mtree
/set type=file uid=0 gid=0 mode=644
./.BUILDINFO time=1712094817.0 size=4902 sha256digest={SHA_A}
./.PKGINFO time=1712094817.0 size=448 sha256digest={SHA_A}
/set mode=755
./usr time=1712094817.0 type=dir
./usr/bin/cmatrix time=1712094817.0 size=22544 sha256digest={SHA_B}
"
        );
        let v = ok(&text);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].path, Path::new(".BUILDINFO"));
        assert_eq!(
            v[0],
            Entry {
                path: PathBuf::from(".BUILDINFO"),
                kind: Kind::File,
                uid: Some(0),
                gid: Some(0),
                mode: Some(0o644),
                time: Some((1712094817, 0)),
                size: Some(4902),
                sha256: Some(SHA_A.to_string()),
                md5: None,
                link: None,
                line: 3,
            }
        );
        assert_eq!(
            (v[2].path.as_path(), v[2].kind, v[2].mode, v[2].size),
            (Path::new("usr"), Kind::Dir, Some(0o755), None)
        );
        let bin = &v[3];
        assert_eq!(
            (bin.path.as_path(), bin.kind, bin.mode, bin.size, bin.line),
            (
                Path::new("usr/bin/cmatrix"),
                Kind::File,
                Some(0o755),
                Some(22544),
                7
            )
        );
        assert_eq!(
            bin.sha256.as_deref(),
            Some(SHA_B.to_ascii_lowercase().as_str())
        );
    }

    #[test]
    fn escapes_become_raw_bytes() {
        let v = ok("#mtree\n./usr/share/my\\040file type=file\n./caf\\303\\251 type=link link=\\303\\251t\\303\\251\\040x\n");
        assert_eq!(v[0].path, Path::new("usr/share/my file"));
        assert_eq!(v[1].path, Path::new("café"));
        assert_eq!(v[1].link.as_deref(), Some(Path::new("été x")));
        // Not UTF-8 at all: the bytes survive as they are.
        let v = ok("#mtree\n./x\\377y\n");
        assert_eq!(v[0].path.as_os_str().as_encoded_bytes(), b"x\xffy");
    }

    #[test]
    fn set_and_unset_defaults() {
        let v = ok("#mtree\n/set type=dir uid=0 gid=0 mode=755 time=1.5\n./a\n/unset mode time\n./a/b uid=1000\n/set type=file\n/unset all\n./c\n");
        assert_eq!(
            (v[0].kind, v[0].uid, v[0].mode, v[0].time),
            (Kind::Dir, Some(0), Some(0o755), Some((1, 5)))
        );
        assert_eq!(
            (v[1].kind, v[1].uid, v[1].gid, v[1].mode, v[1].time),
            (Kind::Dir, Some(1000), Some(0), None, None)
        );
        assert_eq!((v[2].kind, v[2].uid, v[2].mode), (Kind::File, None, None));
    }

    #[test]
    fn link_entries_and_other_types() {
        let v = ok("#mtree\n/set type=file uid=0 gid=0 mode=644\n./usr/bin/resolvconf time=1712094817.123 mode=777 type=link link=resolvectl\n./dev/x type=char\n./f md5digest=D41D8CD98F00B204E9800998ECF8427E nlink=1 uname=root flags=none optional\n");
        assert_eq!(v[0].kind, Kind::Link);
        assert_eq!(v[0].link.as_deref(), Some(Path::new("resolvectl")));
        assert_eq!(
            (v[0].mode, v[0].time),
            (Some(0o777), Some((1712094817, 123)))
        );
        assert_eq!(v[1].kind, Kind::Char);
        assert_eq!(
            v[2].md5.as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
    }

    #[test]
    fn comments_blanks_continuations_and_negative_time() {
        let v = ok(
            "#mtree v2.0\n\n# a comment\n   # indented\n./a \\\n  size=3 \\\n  time=-5.0\n./b\n",
        );
        assert_eq!(
            (v[0].size, v[0].time, v[0].line),
            (Some(3), Some((-5, 0)), 5)
        );
        assert_eq!(v[1].line, 8);
    }

    #[test]
    fn rejects_malformed_lines_with_their_number() {
        err(b"./a type=file\n", "line 1: not an mtree file");
        err(b"#mtree\n./a size=12x\n", "line 2: bad size `12x`");
        err(b"#mtree\n./a\n./b uid=-1\n", "line 3: bad uid");
        err(b"#mtree\n./a uid=4294967296\n", "line 2: bad uid");
        err(b"#mtree\n./a size=+1\n", "line 2: bad size");
        err(
            b"#mtree\n\n\n./a mode=0644 mode=899\n",
            "line 4: bad mode `899`",
        );
        err(b"#mtree\n./a mode=17777\n", "line 2: bad mode");
        err(b"#mtree\n./a time=1.\n", "line 2: bad time");
        err(b"#mtree\n./a time=x.0\n", "line 2: bad time");
        err(b"#mtree\n./a time=1.1000000000\n", "line 2: bad time");
        err(
            b"#mtree\n./a sha256digest=abc\n",
            "line 2: bad sha256 digest",
        );
        err(
            b"#mtree\n./a md5digest=zz41d8cd98f00b204e9800998ecf8427\n",
            "line 2: bad md5 digest",
        );
        err(b"#mtree\n./a\\04x\n", "line 2: bad escape `\\04x`");
        err(b"#mtree\n./a\\\\\n", "line 2: bad escape");
        err(b"#mtree\n./a\\400\n", "line 2: bad escape `\\400`");
        err(b"#mtree\n./a link=b\\9\n", "line 2: bad escape");
        err(
            b"#mtree\nusr/bin/x\n",
            "line 2: the path `usr/bin/x` does not start with `./`",
        );
        err(b"#mtree\n/usr/bin/x\n", "line 2: unknown command");
        err(
            b"#mtree\n./\n",
            "line 2: the path `./` does not name a file below",
        );
        err(
            b"#mtree\n./a/../../etc\n",
            "line 2: the path `./a/../../etc` does not name",
        );
        err(b"#mtree\n.//etc/passwd\n", "line 2: the path");
        err(b"#mtree\n./a\\000b\n", "line 2: the path holds a NUL");
        err(
            b"#mtree\n./a size\n",
            "line 2: keyword `size` needs a value",
        );
        err(
            b"#mtree\n/set mode\n",
            "line 2: keyword `mode` needs a value",
        );
        err(
            b"#mtree\n./a type=whiteout\n",
            "line 2: unknown type `whiteout`",
        );
        err(
            b"#mtree\n./a type=link\n",
            "line 2: a: a link without `link=`",
        );
        err(
            b"#mtree\n./a type=link link=\n",
            "line 2: the link target is empty",
        );
        err(
            b"#mtree\n./a \\",
            "line 2: the last line ends in a `\\` continuation",
        );
    }
}
