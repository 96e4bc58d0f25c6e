//! Package file names: `<pkgname>-[<epoch>:]<pkgver>-<pkgrel>-<arch>.pkg.tar[.<ext>][.sig]`.
//!
//! The name may itself contain `-`, so the fields are taken from the right: arch, pkgrel, then
//! the version; whatever is left is the name.

use std::fmt;

use crate::error::{Error, Result};

/// The compression suffix after `.pkg.tar`, as the package specification lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain `.pkg.tar`.
    None,
    Zst,
    Xz,
    Gz,
    Bz2,
    Lz4,
    Lzo,
    Lrz,
    /// `.Z`, compress(1).
    Z,
    Lz,
}

impl Compression {
    const ALL: [Compression; 9] = [
        Compression::Zst,
        Compression::Xz,
        Compression::Gz,
        Compression::Bz2,
        Compression::Lz4,
        Compression::Lzo,
        Compression::Lrz,
        Compression::Z,
        Compression::Lz,
    ];

    /// The suffix with its dot (`.zst`), empty for [`Compression::None`].
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Zst => ".zst",
            Compression::Xz => ".xz",
            Compression::Gz => ".gz",
            Compression::Bz2 => ".bz2",
            Compression::Lz4 => ".lz4",
            Compression::Lzo => ".lzo",
            Compression::Lrz => ".lrz",
            Compression::Z => ".Z",
            Compression::Lz => ".lz",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            c => f.write_str(&c.suffix()[1..]),
        }
    }
}

/// The parts of a package file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkgFileName {
    pub name: String,
    /// The digits before `:`; `None` when the version has no epoch.
    pub epoch: Option<String>,
    pub pkgver: String,
    pub pkgrel: String,
    pub arch: String,
    pub ext: Compression,
    /// The name is that of the detached signature (`….sig`), not of the package.
    pub sig: bool,
}

impl PkgFileName {
    /// The full version as `.PKGINFO` and `vercmp` read it: `[epoch:]pkgver-pkgrel`.
    pub fn version(&self) -> String {
        match &self.epoch {
            Some(e) => format!("{e}:{}-{}", self.pkgver, self.pkgrel),
            None => format!("{}-{}", self.pkgver, self.pkgrel),
        }
    }

    /// The package's file name again (without `.sig`).
    pub fn package_file_name(&self) -> String {
        format!(
            "{}-{}-{}.pkg.tar{}",
            self.name,
            self.version(),
            self.arch,
            self.ext.suffix()
        )
    }
}

/// Splits a package (or signature) file name into its parts. Only the last path component
/// may be given: a `/` is an error, not a directory to strip.
pub fn parse(file_name: &str) -> Result<PkgFileName> {
    let bad = |why: &str| Error::invalid(format!("not a package file name: {file_name:?}: {why}"));
    if file_name.contains('/') {
        return Err(bad("a file name has no '/'"));
    }
    let (rest, sig) = match file_name.strip_suffix(".sig") {
        Some(r) => (r, true),
        None => (file_name, false),
    };
    let (rest, ext) = Compression::ALL
        .iter()
        .find_map(|&c| rest.strip_suffix(c.suffix()).map(|r| (r, c)))
        .unwrap_or((rest, Compression::None));
    let stem = rest.strip_suffix(".pkg.tar").ok_or_else(|| {
        bad("it does not end in .pkg.tar[.zst|.xz|.gz|.bz2|.lz4|.lzo|.lrz|.Z|.lz][.sig]")
    })?;

    let mut fields = stem.rsplitn(4, '-');
    let arch = fields.next().unwrap_or_default();
    let (Some(pkgrel), Some(version), Some(name)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("it needs NAME-VERSION-RELEASE-ARCH before .pkg.tar"));
    };

    if arch.is_empty() {
        return Err(bad("the architecture is empty"));
    }
    if pkgrel.is_empty() || !pkgrel.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad(&format!(
            "the release {pkgrel:?} is not digits and dots"
        )));
    }
    let (epoch, pkgver) = match version.split_once(':') {
        Some((e, v)) => {
            if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("the epoch {e:?} is not a number")));
            }
            (Some(e.to_string()), v)
        }
        None => (None, version),
    };
    if pkgver.is_empty() {
        return Err(bad("the version is empty"));
    }
    if let Some(c) = pkgver.chars().find(|c| *c == ':' || c.is_whitespace()) {
        return Err(bad(&format!("the version {pkgver:?} contains {c:?}")));
    }
    if name.is_empty() {
        return Err(bad("the package name is empty"));
    }
    // A name starting with '-' or '.' is no valid package name, and would read as an option
    // or a hidden file wherever it is passed on.
    if name.starts_with(['-', '.']) {
        return Err(bad(&format!(
            "the package name {name:?} starts with {:?}",
            &name[..1]
        )));
    }
    Ok(PkgFileName {
        name: name.to_string(),
        epoch,
        pkgver: pkgver.to_string(),
        pkgrel: pkgrel.to_string(),
        arch: arch.to_string(),
        ext,
        sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn reference_table() {
        let cases = [
            (
                "linux-6.2.7.arch1-1-x86_64.pkg.tar.zst",
                (
                    "linux",
                    None,
                    "6.2.7.arch1",
                    "1",
                    "x86_64",
                    Compression::Zst,
                    false,
                ),
            ),
            (
                "linux-headers-6.2.7.arch1-1-x86_64.pkg.tar.zst.sig",
                (
                    "linux-headers",
                    None,
                    "6.2.7.arch1",
                    "1",
                    "x86_64",
                    Compression::Zst,
                    true,
                ),
            ),
            (
                "python-setuptools-1:10.0.1-1-any.pkg.tar.xz",
                (
                    "python-setuptools",
                    Some("1"),
                    "10.0.1",
                    "1",
                    "any",
                    Compression::Xz,
                    false,
                ),
            ),
            (
                "ffmpeg-2:6.0-3-x86_64.pkg.tar.zst",
                (
                    "ffmpeg",
                    Some("2"),
                    "6.0",
                    "3",
                    "x86_64",
                    Compression::Zst,
                    false,
                ),
            ),
        ];
        for (file, (name, epoch, pkgver, pkgrel, arch, ext, sig)) in cases {
            let p = parse(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            let want = PkgFileName {
                name: name.into(),
                epoch: epoch.map(String::from),
                pkgver: pkgver.into(),
                pkgrel: pkgrel.into(),
                arch: arch.into(),
                ext,
                sig,
            };
            assert_eq!(p, want, "{file}");
            assert_eq!(p.package_file_name(), file.trim_end_matches(".sig"));
        }
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse("python-setuptools-1:10.0.1-1-any.pkg.tar.xz")
                .map(|p| p.version())
                .ok(),
            Some("1:10.0.1-1".to_string())
        );
        assert_eq!(
            parse("linux-6.2.7.arch1-1.1-x86_64.pkg.tar.zst")
                .map(|p| p.version())
                .ok(),
            Some("6.2.7.arch1-1.1".to_string())
        );
    }

    #[test]
    fn every_compression_and_none() {
        for c in Compression::ALL.into_iter().chain([Compression::None]) {
            let f = format!("zfs-utils-2.2.3-1-x86_64.pkg.tar{}", c.suffix());
            let p = parse(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!((p.ext, p.name.as_str(), p.sig), (c, "zfs-utils", false));
            let s = parse(&format!("{f}.sig")).unwrap_or_else(|e| panic!("{f}.sig: {e}"));
            assert_eq!((s.ext, s.sig), (c, true));
        }
    }

    #[test]
    fn rejects_malformed_names() {
        let bad = [
            ("", "does not end in .pkg.tar"),
            ("linux-6.2.7-1-x86_64.tar.zst", "does not end in .pkg.tar"),
            (
                "linux-6.2.7-1-x86_64.pkg.tar.bz3",
                "does not end in .pkg.tar",
            ),
            (
                "linux-6.2.7-1-x86_64.pkg.tar.zst.sig.sig",
                "does not end in .pkg.tar",
            ),
            ("linux-1-x86_64.pkg.tar.zst", "NAME-VERSION-RELEASE-ARCH"),
            (".pkg.tar", "NAME-VERSION-RELEASE-ARCH"),
            ("linux-6.2.7-1-.pkg.tar.zst", "architecture is empty"),
            ("linux-6.2.7-r1-x86_64.pkg.tar.zst", "release \"r1\""),
            ("linux-6.2.7--x86_64.pkg.tar.zst", "release \"\""),
            ("linux-x:6.2.7-1-x86_64.pkg.tar.zst", "epoch \"x\""),
            ("linux-:6.2.7-1-x86_64.pkg.tar.zst", "epoch \"\""),
            ("linux-1:-1-x86_64.pkg.tar.zst", "version is empty"),
            ("linux-1:2:3-1-x86_64.pkg.tar.zst", "contains ':'"),
            ("linux-6.2 7-1-x86_64.pkg.tar.zst", "contains ' '"),
            ("-6.2.7-1-x86_64.pkg.tar.zst", "name is empty"),
            ("--6.2.7-1-x86_64.pkg.tar.zst", "starts with \"-\""),
            (".hidden-6.2.7-1-x86_64.pkg.tar.zst", "starts with \".\""),
            ("dir/linux-6.2.7-1-x86_64.pkg.tar.zst", "no '/'"),
        ];
        for (file, why) in bad {
            match parse(file) {
                Ok(p) => panic!("{file:?} parsed as {p:?}"),
                Err(e) => {
                    assert_eq!(e.kind(), Kind::Invalid, "{file:?}");
                    let msg = e.to_string();
                    assert!(msg.contains(why), "{file:?}: {msg:?} lacks {why:?}");
                }
            }
        }
    }
}
