//! The Arch Linux Archive: which package files exist, in which version, and where.
//!
//! Two sources: the per-package directory listing (`packages/<c>/<name>/`, every build ever
//! uploaded), and a day's repository databases (`repos/YYYY/MM/DD/<repo>/os/x86_64/<repo>.db`,
//! a consistent set as that day's mirrors had it).

use std::cmp::Ordering;

use crate::error::{Error, Kind, Result};
use crate::net::http::Client;
use crate::net::listing::{self, percent_encode};
use crate::pkg::name;
use crate::pkg::vercmp::vercmp;

/// A sync database is a package format (`pkg::syncdb`); its names stay valid here.
pub use crate::pkg::syncdb::{read_db, DbEntry};

pub const DEFAULT_MIRROR: &str = "https://archive.archlinux.org";

/// Runs `f` against each mirror in turn until one answers. A network failure moves on to
/// the next mirror, said through `warn`; any other error (a missing package, a bad listing)
/// is the answer. With every mirror down, the last failure is the error.
pub fn on_mirrors<T>(
    client: &Client,
    mirrors: &[String],
    warn: impl Fn(String),
    mut f: impl FnMut(&Client, &str) -> Result<T>,
) -> Result<T> {
    let mut last = None;
    for m in mirrors {
        match f(client, m) {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == Kind::Network && mirrors.len() > 1 => {
                warn(format!("{m}: {e}; trying the next mirror"));
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::usage("no mirror")))
}

/// The `--mirror` values in order (none given: the Archive). Each must be an `https://` URL or
/// a plain `http://` one; the second list holds a warning for each plain one, since only the
/// signatures protect what comes from it.
pub fn mirrors(given: Option<Vec<String>>) -> Result<(Vec<String>, Vec<String>)> {
    let list = given
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![DEFAULT_MIRROR.to_string()]);
    let mut warnings = Vec::new();
    for m in &list {
        if m.starts_with("http://") {
            warnings.push(format!(
                "{m} is plain http: TLS protects nothing there, only the signatures do"
            ));
        } else if !m.starts_with("https://") {
            return Err(Error::usage(format!(
                "--mirror {m}: expected an https:// URL"
            )));
        }
    }
    Ok((list, warnings))
}

/// Repositories of a day, in pacman's order, before and after the May 2023 renames (a day has
/// only some of them).
pub const REPOS: [&str; 4] = ["core", "extra", "community", "multilib"];

/// One package file that can be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub file: String,
    pub name: String,
    /// `[epoch:]pkgver-pkgrel`
    pub version: String,
    pub arch: String,
    pub url: String,
    /// Whether a `.sig` was listed beside it (the databases do not say; assumed there).
    pub has_sig: bool,
    pub date: Option<String>,
    pub size: Option<String>,
    /// From a repository database: the expected sha256 of the file.
    pub sha256: Option<String>,
    /// From a repository database: which repository.
    pub repo: Option<String>,
}

impl Candidate {
    pub fn sig_url(&self) -> String {
        format!("{}.sig", self.url)
    }
}

/// A request: `name`, `name=VERSION`, `name<V`, `name<=V`, `name>V`, `name>=V`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub op: Option<Op>,
    pub version: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Spec {
    pub fn parse(s: &str) -> Result<Spec> {
        let i = s.find(['<', '>', '=']);
        let (name, rest) = match i {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let valid_name = !name.is_empty()
            && !name.starts_with(['-', '.'])
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@._+-".contains(&b));
        if !valid_name {
            return Err(Error::usage(format!(
                "'{s}': not a package name (a-z, 0-9, @._+-)"
            )));
        }
        let (op, ver) = if let Some(v) = rest.strip_prefix("<=") {
            (Some(Op::Le), v)
        } else if let Some(v) = rest.strip_prefix(">=") {
            (Some(Op::Ge), v)
        } else if let Some(v) = rest.strip_prefix('<') {
            (Some(Op::Lt), v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Some(Op::Gt), v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Some(Op::Eq), v)
        } else {
            (None, "")
        };
        if op.is_some() && (ver.is_empty() || ver.contains(['<', '>', '=', '/', ' '])) {
            return Err(Error::usage(format!(
                "'{s}': expected NAME, NAME=VERSION or NAME<VERSION (also <=, >, >=)"
            )));
        }
        Ok(Spec {
            name: name.to_string(),
            op,
            version: op.map(|_| ver.to_string()),
        })
    }

    pub fn matches(&self, version: &str) -> bool {
        let (Some(op), Some(want)) = (self.op, self.version.as_deref()) else {
            return true;
        };
        // `=6.2.7.arch1` without a pkgrel matches any pkgrel, as pacman's comparison does.
        let ord = vercmp(version, want);
        match op {
            Op::Eq => ord == Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        }
    }
}

/// As it was typed: `linux`, `linux=6.2.7.arch1-1`, `linux<=6.2.8`.
impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            None => return f.write_str(&self.name),
            Some(Op::Eq) => "=",
            Some(Op::Lt) => "<",
            Some(Op::Le) => "<=",
            Some(Op::Gt) => ">",
            Some(Op::Ge) => ">=",
        };
        write!(
            f,
            "{}{op}{}",
            self.name,
            self.version.as_deref().unwrap_or("")
        )
    }
}

/// Newest first, by pacman's version order; `.zst` before `.xz` for the same version.
pub fn sort_newest_first(c: &mut [Candidate]) {
    c.sort_by(|a, b| {
        vercmp(&b.version, &a.version)
            .then_with(|| b.file.ends_with(".zst").cmp(&a.file.ends_with(".zst")))
    });
}

/// The newest candidate that satisfies the spec.
pub fn choose<'a>(candidates: &'a [Candidate], spec: &Spec) -> Option<&'a Candidate> {
    let mut v: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.name == spec.name && spec.matches(&c.version))
        .collect();
    v.sort_by(|a, b| {
        vercmp(&b.version, &a.version)
            .then_with(|| b.file.ends_with(".zst").cmp(&a.file.ends_with(".zst")))
    });
    v.first().copied()
}

fn mirror_base(m: &str) -> &str {
    m.trim_end_matches('/')
}

/// `packages/<first char>/<name>/` on a mirror.
pub fn package_dir_url(mirror: &str, pkg: &str) -> String {
    let first = pkg.chars().next().unwrap_or('_');
    format!(
        "{}/packages/{}/{}/",
        mirror_base(mirror),
        percent_encode(&first.to_string()),
        percent_encode(pkg)
    )
}

/// Candidates from a directory listing of package files (of any names: the caller filters).
pub fn candidates_from_listing(html: &str, base_url: &str) -> Vec<Candidate> {
    let items = listing::parse(html);
    let sigs: std::collections::HashSet<&str> = items
        .iter()
        .filter_map(|i| i.name.strip_suffix(".sig"))
        .collect();
    let mut out: Vec<Candidate> = items
        .iter()
        .filter(|i| !i.dir && !i.name.ends_with(".sig"))
        .filter_map(|i| {
            let n = name::parse(&i.name).ok()?;
            Some(Candidate {
                url: format!("{base_url}{}", percent_encode(&i.name)),
                has_sig: sigs.contains(i.name.as_str()),
                version: n.version(),
                name: n.name,
                arch: n.arch,
                file: i.name.clone(),
                date: i.date.clone(),
                size: i.size.clone(),
                sha256: None,
                repo: None,
            })
        })
        .collect();
    sort_newest_first(&mut out);
    out
}

/// Every archived build of `pkg` on `mirror` for x86_64 (or `any`), newest first.
pub fn list_package(client: &Client, mirror: &str, pkg: &str) -> Result<Vec<Candidate>> {
    let url = package_dir_url(mirror, pkg);
    let html = client.get_small(&url, 16 << 20)?.ok_or_else(|| {
        Error::missing(format!(
            "{pkg}: no such package on the archive ({url} does not exist)"
        ))
    })?;
    let html = String::from_utf8_lossy(&html);
    Ok(candidates_from_listing(&html, &url)
        .into_iter()
        .filter(|c| c.name == pkg && (c.arch == "x86_64" || c.arch == "any"))
        .collect())
}

/// `YYYY-MM-DD` → `YYYY/MM/DD`, checked.
pub fn date_path(date: &str) -> Result<String> {
    let p: Vec<&str> = date.split('-').collect();
    let ok = p.len() == 3
        && p[0].len() == 4
        && p[1].len() == 2
        && p[2].len() == 2
        && p.iter().all(|x| x.bytes().all(|b| b.is_ascii_digit()))
        && (1..=12).contains(&p[1].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&p[2].parse::<u32>().unwrap_or(0));
    if !ok {
        return Err(Error::usage(format!("--date {date}: expected YYYY-MM-DD")));
    }
    Ok(p.join("/"))
}

/// Every package of the day's repositories, in repository order (earlier repositories win).
pub fn snapshot(client: &Client, mirror: &str, date: &str) -> Result<Vec<Candidate>> {
    let day = date_path(date)?;
    let mut out = Vec::new();
    let mut found_any = false;
    for repo in REPOS {
        let base = format!("{}/repos/{day}/{repo}/os/x86_64/", mirror_base(mirror));
        let Some(db) = client.get_small(&format!("{base}{repo}.db"), 256 << 20)? else {
            continue;
        };
        found_any = true;
        for e in read_db(&db).map_err(|e| e.context(format!("{base}{repo}.db")))? {
            out.push(Candidate {
                url: format!("{base}{}", percent_encode(&e.filename)),
                has_sig: true,
                file: e.filename,
                name: e.name,
                version: e.version,
                arch: e.arch,
                date: Some(date.to_string()),
                size: e.csize.map(|c| c.to_string()),
                sha256: e.sha256,
                repo: Some(repo.to_string()),
            });
        }
    }
    if !found_any {
        return Err(Error::missing(format!("no repository database for {date} on {mirror}"))
            .hint("the archive starts in 2013, and a day whose sync failed may be missing: try a neighbouring day"));
    }
    Ok(out)
}

fn is_rel(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The kernel packages whose kernel release is `kver`, as (pkgname, acceptable pkgvers):
/// `6.2.7-arch1-1` is `linux 6.2.7.arch1-1`; `6.2.0-arch1-1` may be `6.2.arch1-1`;
/// `-zen`, `-hardened` and `-lts` releases name their packages.
pub fn kernel_packages(kver: &str) -> Result<(String, Vec<String>)> {
    let bad = || {
        Error::usage(format!(
            "{kver}: not an Arch kernel release (e.g. 6.2.7-arch1-1, 6.1.20-1-lts)"
        ))
    };
    let (base, flavour) = match kver.rsplit_once('-') {
        Some((b, f)) if ["lts", "zen", "hardened", "rt", "rt-lts"].contains(&f) => (b, Some(f)),
        _ => (kver, None),
    };
    let pkg = match flavour {
        Some(f) => format!("linux-{f}"),
        None => "linux".to_string(),
    };
    let parts: Vec<&str> = base.split('-').collect();
    let versions = match parts.as_slice() {
        // linux, linux-zen, linux-hardened: X.Y.Z-<tag>N-REL
        [v, tag, rel] if tag.starts_with(|c: char| c.is_ascii_lowercase()) && is_rel(rel) => {
            let mut vs = vec![format!("{v}.{tag}-{rel}")];
            if let Some(short) = v.strip_suffix(".0") {
                vs.push(format!("{short}.{tag}-{rel}"));
            }
            vs
        }
        // linux-lts: X.Y.Z-REL
        [v, rel] if flavour.is_some() && is_rel(rel) => vec![format!("{v}-{rel}")],
        _ => return Err(bad()),
    };
    if !parts[0]
        .split('.')
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok((pkg, versions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_default_to_the_archive_and_plain_http_is_warned_about() {
        let (list, warn) = mirrors(None).unwrap();
        assert_eq!((list, warn.len()), (vec![DEFAULT_MIRROR.to_string()], 0));
        let given = vec![
            "http://m.example/".to_string(),
            "https://a.example".to_string(),
        ];
        let (list, warn) = mirrors(Some(given.clone())).unwrap();
        assert_eq!(list, given);
        assert_eq!(warn.len(), 1);
        assert!(
            warn[0].starts_with("http://m.example/ is plain http"),
            "{warn:?}"
        );
        let e = mirrors(Some(vec!["ftp://x".into()])).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e
            .to_string()
            .contains("--mirror ftp://x: expected an https:// URL"));
    }

    #[test]
    fn specs() {
        let s = Spec::parse("linux=6.2.7.arch1-1").unwrap();
        assert_eq!(
            (s.name.as_str(), s.op, s.version.as_deref()),
            ("linux", Some(Op::Eq), Some("6.2.7.arch1-1"))
        );
        assert!(s.matches("6.2.7.arch1-1") && !s.matches("6.2.8.arch1-1"));
        let lt = Spec::parse("linux<6.2.8").unwrap();
        assert!(lt.matches("6.2.7.arch1-1") && !lt.matches("6.2.10.arch1-1"));
        assert!(Spec::parse("linux>=6.2.10")
            .unwrap()
            .matches("6.2.10.arch1-1"));
        assert!(Spec::parse("zfs-utils").unwrap().matches("2:2.1.9-1"));
        assert!(Spec::parse("Linux").is_err());
        assert!(Spec::parse("linux=").is_err());
        assert!(Spec::parse("../x").is_err());
        for s in [
            "linux",
            "linux=6.2.7.arch1-1",
            "linux<6.2.8",
            "zfs-utils>=2:2.1.9-1",
        ] {
            assert_eq!(Spec::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn kernel_release_to_package() {
        assert_eq!(
            kernel_packages("6.2.7-arch1-1").unwrap(),
            ("linux".into(), vec!["6.2.7.arch1-1".into()])
        );
        assert_eq!(
            kernel_packages("6.2.0-arch1-1").unwrap().1,
            vec!["6.2.0.arch1-1".to_string(), "6.2.arch1-1".into()]
        );
        assert_eq!(
            kernel_packages("6.2.7-zen1-1-zen").unwrap(),
            ("linux-zen".into(), vec!["6.2.7.zen1-1".into()])
        );
        assert_eq!(kernel_packages("6.1.0-13-amd64").map(|k| k.0).ok(), None);
        assert_eq!(
            kernel_packages("6.2.7-hardened1-1-hardened").unwrap().0,
            "linux-hardened"
        );
        assert_eq!(
            kernel_packages("6.1.20-1-lts").unwrap(),
            ("linux-lts".into(), vec!["6.1.20-1".into()])
        );
    }

    #[test]
    fn listing_sorted_by_vercmp_with_sigs() {
        let html = "<pre><a href=\"../\">../</a>\n\
            <a href=\"linux-6.2.10.arch1-1-x86_64.pkg.tar.zst\">x</a> 01-Apr-2023 10:00 131M\n\
            <a href=\"linux-6.2.10.arch1-1-x86_64.pkg.tar.zst.sig\">x</a> 01-Apr-2023 10:00 566\n\
            <a href=\"linux-6.2.7.arch1-1-x86_64.pkg.tar.zst\">x</a> 18-Mar-2023 10:15 131M\n\
            <a href=\"linux-6.2.8.arch1-1-x86_64.pkg.tar.zst\">x</a> 22-Mar-2023 10:15 131M\n</pre>";
        let c = candidates_from_listing(html, "https://m/packages/l/linux/");
        let v: Vec<&str> = c.iter().map(|c| c.version.as_str()).collect();
        assert_eq!(v, ["6.2.10.arch1-1", "6.2.8.arch1-1", "6.2.7.arch1-1"]);
        assert!(c[0].has_sig && !c[1].has_sig);
        assert_eq!(
            c[2].url,
            "https://m/packages/l/linux/linux-6.2.7.arch1-1-x86_64.pkg.tar.zst"
        );
        let want = Spec::parse("linux<6.2.10").unwrap();
        assert_eq!(choose(&c, &want).unwrap().version, "6.2.8.arch1-1");
    }
}
