//! Where keys to add come from: a file, standard input, an `https://` URL or `github:USER`.
//! Reading is bounded per line and in all, so a wrong URL or a huge file costs little memory.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use super::key::{self, Bad, PublicKey};
use crate::error::{Error, IoContext, Kind, Result};
use crate::net::http::Client;

/// The longest line read: a 16384-bit RSA key with long options is well below it.
pub const LINE_MAX: usize = 16 << 10;
/// The most read from one source.
pub const SOURCE_MAX: u64 = 1 << 20;
/// Replaces `https://github.com` for `github:USER` (a mirror, or a test server).
pub const GITHUB_URL_ENV: &str = "RTOOL_GITHUB_URL";
const GITHUB_URL: &str = "https://github.com";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
    Url(String),
    GitHub(String),
}

impl Source {
    /// `-`, `github:USER`, `https://…` (or `http://…`, which the caller must allow), else a file.
    pub fn parse(arg: &OsStr) -> Result<Source> {
        let Some(s) = arg.to_str() else {
            return Ok(Source::File(PathBuf::from(arg)));
        };
        if s == "-" {
            return Ok(Source::Stdin);
        }
        if let Some(user) = s.strip_prefix("github:") {
            // GitHub's own rule; it also keeps the name from reshaping the URL.
            let ok = (1..=39).contains(&user.len())
                && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !user.starts_with('-');
            if !ok {
                return Err(Error::usage(format!("{s}: not a GitHub user name")));
            }
            return Ok(Source::GitHub(user.to_string()));
        }
        let scheme = s.split_once("://").map(|(sc, _)| sc.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("https" | "http") => Ok(Source::Url(s.to_string())),
            Some(other) if !other.contains('/') => Err(Error::usage(format!(
                "{s}: {other}:// is not supported: give an https:// URL, a file or github:USER"
            ))),
            _ => Ok(Source::File(PathBuf::from(s))),
        }
    }

    /// The URL to fetch, for the network sources.
    pub fn url(&self) -> Option<String> {
        match self {
            Source::Url(u) => Some(u.clone()),
            Source::GitHub(user) => {
                let base = std::env::var(GITHUB_URL_ENV)
                    .ok()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| GITHUB_URL.to_string());
                Some(format!("{}/{user}.keys", base.trim_end_matches('/')))
            }
            Source::Stdin | Source::File(_) => None,
        }
    }

    /// Fetched without TLS: anyone on the way could hand over their own keys.
    pub fn is_plain_http(&self) -> bool {
        self.url().is_some_and(|u| {
            u.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stdin => f.write_str("standard input"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
            Source::GitHub(user) => write!(f, "github:{user}"),
        }
    }
}

/// A line of a source that holds a key, or why it cannot be added.
#[derive(Debug)]
pub struct Line {
    /// From 1.
    pub number: usize,
    pub key: std::result::Result<PublicKey, String>,
}

/// Reads every key line of `src`; `client` is needed for the network sources.
pub fn read(src: &Source, client: Option<&Client>) -> Result<Vec<Line>> {
    match src {
        Source::Stdin => {
            // As a File: `lines` buffers already, and File's reader is in the binary anyway.
            let fd = std::os::fd::AsFd::as_fd(&std::io::stdin())
                .try_clone_to_owned()
                .map_err(|e| Error::io(e, src))?;
            lines(&mut std::fs::File::from(fd), src)
        }
        Source::File(p) => {
            let mut f = std::fs::File::open(p).at(p)?;
            if f.metadata().at(p)?.is_dir() {
                return Err(Error::invalid(format!(
                    "{}: a directory, not a file",
                    p.display()
                )));
            }
            lines(&mut f, src)
        }
        Source::Url(_) | Source::GitHub(_) => {
            let url = src.url().unwrap_or_default();
            let client = client.ok_or_else(|| Error::usage(format!("{src}: no network client")))?;
            let body = client.get_small(&url, SOURCE_MAX)?.ok_or_else(|| {
                let what = match src {
                    Source::GitHub(user) => {
                        format!("{src}: no GitHub user {user:?} ({url}: HTTP 404)")
                    }
                    _ => format!("{url}: not found (HTTP 404)"),
                };
                Error::new(Kind::Network, what)
            })?;
            lines(&mut &body[..], src)
        }
    }
}

/// The key lines of `r`. A line over [`LINE_MAX`], input over [`SOURCE_MAX`], and inputs that
/// are something else entirely (a private key, an HTML page) stop the reading with an error.
pub fn lines(r: &mut dyn Read, src: &Source) -> Result<Vec<Line>> {
    let mut r = BufReader::new(r.take(SOURCE_MAX + 1));
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut number = 0;
    loop {
        buf.clear();
        let n = (&mut r)
            .take(LINE_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(e, src))?;
        if n == 0 {
            return Ok(out);
        }
        number += 1;
        total += n as u64;
        if total > SOURCE_MAX {
            return Err(Error::invalid(format!(
                "{src}: larger than {} MiB: not a list of public keys",
                SOURCE_MAX >> 20
            )));
        }
        let content = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if content.len() > LINE_MAX {
            return Err(Error::invalid(format!(
                "{src} line {number}: longer than {} KiB: not a public key",
                LINE_MAX >> 10
            )));
        }
        let key = match std::str::from_utf8(content).map(key::parse_line) {
            Err(_) => Err("not UTF-8 text".to_string()),
            Ok(Ok(None)) => continue,
            Ok(Ok(Some(k))) => k.refusal().map_or(Ok(k), Err),
            Ok(Err(Bad::Line(why))) => Err(why),
            Ok(Err(Bad::Input(why))) => {
                return Err(Error::invalid(format!("{src} line {number}: {why}")))
            }
        };
        out.push(Line { number, key });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(s: &str) -> Result<Source> {
        Source::parse(OsStr::new(s))
    }

    #[test]
    fn source_kinds() {
        assert_eq!(src("-").unwrap(), Source::Stdin);
        assert_eq!(
            src("github:octo-cat").unwrap(),
            Source::GitHub("octo-cat".into())
        );
        assert_eq!(
            src("HTTPS://x/k").unwrap(),
            Source::Url("HTTPS://x/k".into())
        );
        assert!(src("http://x/k").unwrap().is_plain_http());
        assert!(!src("https://x/k").unwrap().is_plain_http());
        assert_eq!(src("./a://b").unwrap(), Source::File("./a://b".into()));
        assert_eq!(src("keys.pub").unwrap(), Source::File("keys.pub".into()));
        assert_eq!(src("ftp://x/k").unwrap_err().kind(), Kind::Usage);
        for bad in [
            "github:",
            "github:../x",
            "github:a/b",
            "github:-a",
            "github:a?b=c",
        ] {
            assert_eq!(src(bad).unwrap_err().kind(), Kind::Usage, "{bad}");
        }
    }

    #[test]
    fn lines_are_numbered_and_bounded() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHf0EAafktwU9ag3bMRPLIEyBBUavLDjKc9QFxepfyAC";
        let text = format!("# keys\n\n{ed} a\nnonsense here\n{ed}");
        let got = lines(&mut text.as_bytes(), &Source::Stdin).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].number, got[1].number, got[2].number), (3, 4, 5));
        assert!(got[0].key.is_ok() && got[2].key.is_ok());
        assert!(got[1]
            .key
            .as_ref()
            .unwrap_err()
            .contains("not a public key"));

        let long = format!("{ed} {}\n", "x".repeat(LINE_MAX));
        let e = lines(&mut long.as_bytes(), &Source::Stdin).unwrap_err();
        assert!(e.to_string().contains("line 1: longer than 16 KiB"), "{e}");
        // Exactly at the limit is still a line.
        let edge = format!("{ed} {}\n", "x".repeat(LINE_MAX - ed.len() - 1));
        assert!(lines(&mut edge.as_bytes(), &Source::Stdin).unwrap()[0]
            .key
            .is_ok());

        let many = format!("{ed} c\n").repeat((SOURCE_MAX as usize) / ed.len());
        let e = lines(&mut many.as_bytes(), &Source::Stdin).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");

        let e = lines(
            &mut &b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n"[..],
            &Source::Stdin,
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 1: a PRIVATE key"), "{e}");
        let got = lines(&mut &b"\xff\xfe\n"[..], &Source::Stdin).unwrap();
        assert_eq!(got[0].key.as_ref().unwrap_err(), "not UTF-8 text");
    }
}
