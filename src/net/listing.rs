//! nginx autoindex listings (what the Arch Linux Archive serves): names come from the
//! percent-decoded `href`, never from the link text, which nginx cuts at 50 columns.

/// One line of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Decoded name, without the trailing `/` of a directory.
    pub name: String,
    pub dir: bool,
    /// `18-Mar-2023 10:15`, as listed (GMT).
    pub date: Option<String>,
    /// As listed: `131M`, `566`, or `-` for a directory.
    pub size: Option<String>,
}

/// A listed size in bytes, and whether it is exact: `566` is, `131M` (nginx's
/// `autoindex_exact_size off`, what the Archive serves) is rounded to whole KiB, MiB or GiB.
pub fn size_bytes(listed: &str) -> Option<(u64, bool)> {
    // nginx writes a whole number and at most a unit letter: no fractions, no blanks.
    if !listed.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let exact = listed.bytes().all(|b| b.is_ascii_digit());
    crate::units::parse_size(listed).map(|n| (n, exact))
}

/// Every entry of an autoindex page, `../` excluded. Hrefs that do not decode to a plain name
/// (a `/` inside, a NUL, absolute URLs) are skipped: a listing only names its own children.
pub fn parse(html: &str) -> Vec<Item> {
    let mut out = Vec::new();
    for line in html.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("<a href=\"") {
            let after = &rest[i + 9..];
            let Some(end) = after.find('"') else { break };
            let href = &after[..end];
            let tail = &after[end..];
            rest = tail;
            if href == "../" || href.starts_with('?') || href.contains("://") {
                continue;
            }
            let Some(decoded) = percent_decode(href) else {
                continue;
            };
            let (name, dir) = match decoded.strip_suffix('/') {
                Some(n) => (n.to_string(), true),
                None => (decoded, false),
            };
            if name.is_empty()
                || name.contains('/')
                || name.contains('\0')
                || name == "."
                || name == ".."
            {
                continue;
            }
            // After `</a>`: padding, `DD-Mon-YYYY HH:MM`, then the size.
            let (date, size) = match tail.find("</a>") {
                Some(j) => {
                    let fields: Vec<&str> = tail[j + 4..].split_whitespace().collect();
                    match fields.as_slice() {
                        [d, t, s, ..] => (Some(format!("{d} {t}")), Some(s.to_string())),
                        _ => (None, None),
                    }
                }
                None => (None, None),
            };
            out.push(Item {
                name,
                dir,
                date,
                size,
            });
        }
    }
    out
}

/// `%3A` → `:`; `None` for a malformed escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hexs = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hexs).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The reverse, for building URLs: everything but `A-Z a-z 0-9 - . _ ~` escaped, as nginx does.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<html>\r\n<head><title>Index of /packages/f/ffmpeg/</title></head>\r\n<body>\r\n<h1>Index of /packages/f/ffmpeg/</h1><hr><pre><a href=\"../\">../</a>\r\n<a href=\"ffmpeg-2%3A6.0-3-x86_64.pkg.tar.zst\">ffmpeg-2:6.0-3-x86_64.pkg.tar.zst</a>                  18-Mar-2023 10:15     10M\r\n<a href=\"ffmpeg-2%3A6.0-3-x86_64.pkg.tar.zst.sig\">ffmpeg-2:6.0-3-x86_64.pkg.tar.zst.sig</a>              18-Mar-2023 10:15     566\r\n<a href=\"very-long-package-name-that-nginx-cuts-2.0-1-x86_64.pkg.tar.zst\">very-long-package-name-that-nginx-cuts-2.0-1-x..&gt;</a> 01-Jan-2024 00:00    131M\r\n<a href=\"sub/\">sub/</a>                                               01-Jan-2024 00:00       -\r\n<a href=\"..%2Fescape\">x</a>\r\n</pre><hr></body>\r\n</html>\r\n";

    #[test]
    fn parses_hrefs_not_link_text() {
        let items = parse(PAGE);
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ffmpeg-2:6.0-3-x86_64.pkg.tar.zst",
                "ffmpeg-2:6.0-3-x86_64.pkg.tar.zst.sig",
                "very-long-package-name-that-nginx-cuts-2.0-1-x86_64.pkg.tar.zst",
                "sub"
            ]
        );
        assert_eq!(items[0].date.as_deref(), Some("18-Mar-2023 10:15"));
        assert_eq!(items[0].size.as_deref(), Some("10M"));
        assert_eq!(size_bytes("10M"), Some((10 << 20, false)));
        assert!(items[3].dir);
    }

    #[test]
    fn encoding_round_trips() {
        assert_eq!(
            percent_encode("zfs-utils-2:2.1.9-1-x86_64.pkg.tar.zst"),
            "zfs-utils-2%3A2.1.9-1-x86_64.pkg.tar.zst"
        );
        assert_eq!(
            percent_decode("lucene%2B%2B-1.4.2-3"),
            Some("lucene++-1.4.2-3".into())
        );
        assert_eq!(percent_decode("bad%4"), None);
    }

    #[test]
    fn listed_sizes_in_bytes() {
        assert_eq!(size_bytes("566"), Some((566, true)));
        assert_eq!(size_bytes("2K"), Some((2048, false)));
        assert_eq!(size_bytes("131M"), Some((131 << 20, false)));
        assert_eq!(size_bytes("1G"), Some((1 << 30, false)));
        for bad in ["-", "", "M", "1.5M", "12Q", "99999999999999999999G"] {
            assert_eq!(size_bytes(bad), None, "{bad}");
        }
    }
}
