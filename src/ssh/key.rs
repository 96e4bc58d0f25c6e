//! OpenSSH public keys: one line of a `.pub` or `authorized_keys` file, checked down to the
//! wire blob inside its base64, and fingerprinted the way `ssh-keygen -l` prints it.
//!
//! A line is `[OPTIONS] TYPE BASE64 [COMMENT]`. The blob must name the same type as the line,
//! hold exactly the fields that type has (RFC 4253 §6.6, RFC 5656 §3.1, OpenSSH's PROTOCOL.u2f)
//! and nothing after them; numbers must be in their one canonical encoding, so that the
//! fingerprint of the blob is the fingerprint OpenSSH computes.

use sha2::{Digest, Sha256};

use super::base64;

/// The key types rtool accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Ed25519,
    Rsa,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    SkEd25519,
    SkEcdsaP256,
}

impl Algo {
    const ALL: [Algo; 7] = [
        Algo::Ed25519,
        Algo::Rsa,
        Algo::EcdsaP256,
        Algo::EcdsaP384,
        Algo::EcdsaP521,
        Algo::SkEd25519,
        Algo::SkEcdsaP256,
    ];

    /// The name on the line and inside the blob.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Ed25519 => "ssh-ed25519",
            Algo::Rsa => "ssh-rsa",
            Algo::EcdsaP256 => "ecdsa-sha2-nistp256",
            Algo::EcdsaP384 => "ecdsa-sha2-nistp384",
            Algo::EcdsaP521 => "ecdsa-sha2-nistp521",
            Algo::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            Algo::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    pub fn from_name(name: &str) -> Option<Algo> {
        Algo::ALL.into_iter().find(|a| a.name() == name)
    }

    /// What `ssh-keygen -l` prints in parentheses.
    pub fn label(self) -> &'static str {
        match self {
            Algo::Ed25519 => "ED25519",
            Algo::Rsa => "RSA",
            Algo::EcdsaP256 | Algo::EcdsaP384 | Algo::EcdsaP521 => "ECDSA",
            Algo::SkEd25519 => "ED25519-SK",
            Algo::SkEcdsaP256 => "ECDSA-SK",
        }
    }

    /// The curve name inside an ECDSA blob and the size of one coordinate, in bytes.
    fn curve(self) -> Option<(&'static str, usize)> {
        match self {
            Algo::EcdsaP256 | Algo::SkEcdsaP256 => Some(("nistp256", 32)),
            Algo::EcdsaP384 => Some(("nistp384", 48)),
            Algo::EcdsaP521 => Some(("nistp521", 66)),
            _ => None,
        }
    }
}

/// The smallest RSA modulus rtool adds; OpenSSH itself still reads 1024-bit keys.
pub const RSA_MIN_BITS: u32 = 2048;
/// OpenSSH's bounds on an RSA modulus it will read at all.
const RSA_READ_BITS: std::ops::RangeInclusive<u32> = 1024..=16384;

/// One key line, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub algo: Algo,
    /// The decoded wire blob: what identifies the key, whatever the text around it.
    pub blob: Vec<u8>,
    /// The size `ssh-keygen -l` prints: the RSA modulus length, the curve size, 256 for ed25519.
    pub bits: u32,
    /// The authorized_keys options before the type, as written.
    pub options: Option<String>,
    /// Whatever follows the key data (trailing whitespace kept), empty when nothing does.
    pub comment: String,
    /// The line without surrounding whitespace: what gets written to authorized_keys.
    pub text: String,
}

impl PublicKey {
    /// `SHA256:` and the unpadded base64 of the blob's SHA-256.
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            base64::encode_unpadded(&Sha256::digest(&self.blob))
        )
    }

    /// The line `ssh-keygen -lf` prints for this key: `BITS FINGERPRINT COMMENT (TYPE)`.
    ///
    /// Like ssh-keygen, a comment that starts with `#` does not count, and a key without a
    /// comment shows its options instead (or `no comment`). Control characters are shown as
    /// `?`, so a hostile comment cannot drive the terminal.
    pub fn keygen_line(&self) -> String {
        let comment = match (&self.options, self.comment.as_str()) {
            (_, c) if !c.is_empty() && !c.starts_with('#') => c,
            (Some(o), _) => o.as_str(),
            _ => "no comment",
        };
        let shown: String = comment
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        format!(
            "{} {} {shown} ({})",
            self.bits,
            self.fingerprint(),
            self.algo.label()
        )
    }

    /// Why rtool will not add this key even though OpenSSH could read it, if it will not.
    pub fn refusal(&self) -> Option<String> {
        if self.algo == Algo::Rsa && self.bits < RSA_MIN_BITS {
            return Some(format!(
                "a {}-bit RSA key is too weak: at least {RSA_MIN_BITS} bits are needed \
                 (better: ssh-keygen -t ed25519)",
                self.bits
            ));
        }
        if self.text.chars().any(|c| c.is_control() && c != '\t') {
            return Some("control characters in the line".into());
        }
        None
    }
}

/// Why a line was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bad {
    /// This line is wrong; the lines around it may be fine.
    Line(String),
    /// The whole input is something else (a private key, an HTML page, binary data).
    Input(String),
}

fn line_err<T>(msg: impl Into<String>) -> Result<T, Bad> {
    Err(Bad::Line(msg.into()))
}

/// Parses one line. `Ok(None)` for a blank line or a `#` comment.
pub fn parse_line(line: &str) -> Result<Option<PublicKey>, Bad> {
    // ssh-keygen keeps trailing blanks in the comment it prints; the line written is trimmed.
    let line = line
        .trim_end_matches(['\n', '\r'])
        .trim_start_matches([' ', '\t']);
    let text = line.trim_end_matches([' ', '\t']);
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    if let Some(why) = not_a_key_list(text) {
        return Err(Bad::Input(why.into()));
    }
    let (first, rest) = split_token(line);
    let (options, algo, rest) = match Algo::from_name(first) {
        Some(a) => (None, a, rest),
        None => {
            let (second, _) = split_token(rest);
            if second.starts_with("AAAA") && !first.contains(['=', ',', '"']) {
                return line_err(unsupported(first));
            }
            let opts = options_prefix(line)?;
            let (ty, rest) = split_token(line[opts.len()..].trim_start_matches([' ', '\t']));
            let algo = match Algo::from_name(ty) {
                Some(a) => a,
                None if ty.is_empty() => return line_err("options but no key after them"),
                None if rest.starts_with("AAAA") => return line_err(unsupported(ty)),
                None => return line_err("not a public key"),
            };
            check_options(opts)?;
            (Some(opts.to_string()), algo, rest)
        }
    };
    let (data, comment) = split_token(rest);
    if data.is_empty() {
        return line_err(format!("{}: the key data is missing", algo.name()));
    }
    let blob = base64::decode(data).map_err(Bad::Line)?;
    let bits = check_blob(algo, &blob).map_err(Bad::Line)?;
    Ok(Some(PublicKey {
        algo,
        blob,
        bits,
        options,
        comment: comment.to_string(),
        text: text.to_string(),
    }))
}

/// Recognises whole files that are not lists of public keys, by one of their lines.
fn not_a_key_list(text: &str) -> Option<&'static str> {
    if text.contains('\0') {
        return Some("binary data, not a list of public keys");
    }
    if text.starts_with('<') {
        return Some("an HTML or XML page, not a list of public keys");
    }
    if text.starts_with("-----BEGIN") || text.starts_with("---- BEGIN") {
        return Some(if text.contains("PRIVATE KEY") {
            "a PRIVATE key: it must never leave its machine; give the public key (the .pub file) instead"
        } else if text.contains("SSH2 PUBLIC KEY") {
            "an RFC 4716 (SSH2) public key: convert it first with `ssh-keygen -i -f FILE`"
        } else {
            "a PEM file, not an OpenSSH public key (for a PKCS#8 public key: `ssh-keygen -i -m PKCS8 -f FILE`)"
        });
    }
    if text.starts_with("PuTTY-User-Key-File") {
        return Some("a PuTTY PRIVATE key: give the OpenSSH public key instead (`puttygen -O public-openssh`)");
    }
    None
}

fn unsupported(ty: &str) -> String {
    if ty == "ssh-dss" {
        "DSA keys (ssh-dss) are not accepted: OpenSSH disabled them years ago".into()
    } else if ty.contains("-cert-") {
        format!("{ty}: certificates are not accepted here, only plain public keys")
    } else {
        format!("unsupported key type {ty:?}")
    }
}

/// The first space- or tab-separated word and what follows the separators after it.
fn split_token(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

/// The options at the start of `text`, up to the first space or tab outside double quotes
/// (where `\"` does not end the quote), as sshd reads them.
fn options_prefix(text: &str) -> Result<&str, Bad> {
    let b = text.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < b.len() && (quoted || (b[i] != b' ' && b[i] != b'\t')) {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if b[i] == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    if quoted {
        return line_err("an option's quoted value is never closed");
    }
    Ok(&text[..i])
}

/// Options sshd understands without a value, and those that need `="..."`.
const FLAG_OPTIONS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-touch-required",
    "no-user-rc",
    "no-x11-forwarding",
    "port-forwarding",
    "pty",
    "restrict",
    "user-rc",
    "verify-required",
    "x11-forwarding",
];
const VALUE_OPTIONS: &[&str] = &[
    "command",
    "environment",
    "expiry-time",
    "from",
    "permitlisten",
    "permitopen",
    "principals",
    "tunnel",
];

/// Checks each comma-separated option: sshd ignores the whole key over one it does not know.
fn check_options(opts: &str) -> Result<(), Bad> {
    let b = opts.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && b[i] != b',' && b[i] != b'=' {
            i += 1;
        }
        let name = opts[start..i].to_ascii_lowercase();
        let has_value = b.get(i) == Some(&b'=');
        let known = if has_value {
            VALUE_OPTIONS
        } else {
            FLAG_OPTIONS
        };
        if name.is_empty() {
            return line_err(format!("an empty option in {opts:?}"));
        }
        if !known.contains(&name.as_str()) {
            let other = if has_value {
                FLAG_OPTIONS
            } else {
                VALUE_OPTIONS
            };
            return line_err(if other.contains(&name.as_str()) {
                format!(
                    "option {name:?} used {} a value",
                    if has_value { "with" } else { "without" }
                )
            } else {
                format!("unknown option {name:?} (sshd would ignore this key)")
            });
        }
        if has_value {
            i += 1;
            if b.get(i) != Some(&b'"') {
                return line_err(format!(
                    "option {name:?}: the value must be in double quotes"
                ));
            }
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' && b.get(i + 1) == Some(&b'"') {
                    2
                } else {
                    1
                };
            }
            i += 1; // the closing quote (options_prefix made sure there is one)
        }
        match b.get(i) {
            None => return Ok(()),
            Some(b',') => i += 1,
            Some(_) => return line_err(format!("option {name:?}: text after its value")),
        }
    }
}

/// Reads the SSH wire encoding: big-endian u32 lengths before each string.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self, what: &str) -> Result<&'a [u8], String> {
        let short = || format!("the key data ends inside its {what}");
        let len = self.0.get(..4).ok_or_else(short)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let s = self.0.get(4..4 + len).ok_or_else(short)?;
        self.0 = &self.0[4 + len..];
        Ok(s)
    }

    /// A positive mpint in its canonical form: no needless leading zero, no sign bit set.
    fn positive_mpint(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.string(what)?;
        match n {
            [] | [0] => Err(format!("the {what} is zero")),
            [b, ..] if b & 0x80 != 0 => Err(format!("the {what} is negative")),
            [0, b, ..] if b & 0x80 == 0 => Err(format!("the {what} is not in canonical form")),
            [0, rest @ ..] => Ok(rest),
            _ => Ok(n),
        }
    }
}

/// Checks that `blob` is a well-formed key of type `algo`; returns its size in bits.
fn check_blob(algo: Algo, blob: &[u8]) -> Result<u32, String> {
    let mut w = Wire(blob);
    let inner = w.string("type name")?;
    if inner != algo.name().as_bytes() {
        return Err(format!(
            "the key data is a {:?} key, but the line says {}",
            String::from_utf8_lossy(inner),
            algo.name()
        ));
    }
    let bits = match algo {
        Algo::Ed25519 | Algo::SkEd25519 => {
            let k = w.string("public key")?;
            if k.len() != 32 {
                return Err(format!("an ed25519 key is 32 bytes, not {}", k.len()));
            }
            256
        }
        Algo::Rsa => {
            w.positive_mpint("RSA exponent")?;
            let n = w.positive_mpint("RSA modulus")?;
            let bits = (n.len() as u32 - 1) * 8 + (8 - n[0].leading_zeros());
            if !RSA_READ_BITS.contains(&bits) {
                return Err(format!(
                    "a {bits}-bit RSA modulus is outside what OpenSSH reads (1024 to 16384 bits)"
                ));
            }
            bits
        }
        Algo::EcdsaP256 | Algo::EcdsaP384 | Algo::EcdsaP521 | Algo::SkEcdsaP256 => {
            let (want, size) = algo.curve().unwrap_or(("", 0));
            let curve = w.string("curve name")?;
            if curve != want.as_bytes() {
                return Err(format!(
                    "the key data is on curve {:?}, but the line says {}",
                    String::from_utf8_lossy(curve),
                    algo.name()
                ));
            }
            let q = w.string("public point")?;
            if q.len() != 1 + 2 * size || q[0] != 4 {
                return Err(format!(
                    "the public point is not an uncompressed {want} point ({} bytes)",
                    q.len()
                ));
            }
            // sshd ignores a key whose point is off its curve: refuse it here instead.
            let on_curve = match size {
                32 => p256::PublicKey::from_sec1_bytes(q).is_ok(),
                48 => p384::PublicKey::from_sec1_bytes(q).is_ok(),
                _ => p521::PublicKey::from_sec1_bytes(q).is_ok(),
            };
            if !on_curve {
                return Err(format!("the public point does not lie on {want}"));
            }
            if size == 66 {
                521
            } else {
                size as u32 * 8
            }
        }
    };
    if matches!(algo, Algo::SkEd25519 | Algo::SkEcdsaP256) {
        let app = w.string("security key application")?;
        if app.is_empty() || app.contains(&0) {
            return Err("the security key's application string is empty or invalid".into());
        }
    }
    if !w.0.is_empty() {
        return Err(format!("{} stray bytes after the key data", w.0.len()));
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a wire blob from its strings.
    fn blob(parts: &[&[u8]]) -> String {
        let mut b = Vec::new();
        for p in parts {
            b.extend_from_slice(&(p.len() as u32).to_be_bytes());
            b.extend_from_slice(p);
        }
        encode(&b)
    }

    fn encode(b: &[u8]) -> String {
        let mut s = base64::encode_unpadded(b);
        while s.len() % 4 != 0 {
            s.push('=');
        }
        s
    }

    fn parse(line: &str) -> PublicKey {
        parse_line(line)
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
            .unwrap_or_else(|| panic!("{line}: no key"))
    }

    fn bad(line: &str) -> String {
        match parse_line(line) {
            Err(Bad::Line(m)) => m,
            other => panic!("{line}: expected a bad line, got {other:?}"),
        }
    }

    // Made by ssh-keygen 9.2: `ssh-keygen -t ed25519 -C user@host`, and `-lf` of it.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHf0EAafktwU9ag3bMRPLIEyBBUavLDjKc9QFxepfyAC user@host";
    const ED_FP: &str =
        "256 SHA256:hWPKS4xk1vGNenXA5xfrB0zuoMUMSRa/pZKPcbm/hK0 user@host (ED25519)";

    #[test]
    fn ed25519_fingerprint_as_ssh_keygen_prints_it() {
        let k = parse(ED);
        assert_eq!(k.algo, Algo::Ed25519);
        assert_eq!(k.keygen_line(), ED_FP);
        assert_eq!(k.text, ED);
        assert_eq!(k.refusal(), None);
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        for l in ["", "   ", "\t", "# ssh-ed25519 AAAA", "  #x", "\r"] {
            assert_eq!(parse_line(l), Ok(None), "{l:?}");
        }
    }

    #[test]
    fn options_with_quoted_spaces_and_commas() {
        let body = ED.split_once(' ').unwrap().1;
        let line = format!(
            r#"no-pty,command="echo \"a, b\" c",from="10.0.0.0/8,!10.1.*" ssh-ed25519 {body}"#
        );
        let k = parse(&line);
        assert_eq!(
            k.options.as_deref(),
            Some(r#"no-pty,command="echo \"a, b\" c",from="10.0.0.0/8,!10.1.*""#)
        );
        assert_eq!(k.comment, "user@host");
        // Options are case-insensitive for sshd.
        parse(&format!("No-PTY,Restrict ssh-ed25519 {body}"));
        let key_only = ED.rsplit_once(' ').unwrap().0.split_once(' ').unwrap().1;
        // Without a comment ssh-keygen shows the options, and a `#` comment does not count.
        let k = parse(&format!("restrict ssh-ed25519 {key_only}"));
        assert!(
            k.keygen_line().ends_with(" restrict (ED25519)"),
            "{}",
            k.keygen_line()
        );
        let k = parse(&format!("ssh-ed25519 {key_only} #note"));
        assert!(k.keygen_line().ends_with(" no comment (ED25519)"));
        let k = parse(&format!("  ssh-ed25519\t{key_only}  two  words \r\n"));
        assert_eq!(k.comment, "two  words ");
        assert_eq!(k.text, format!("ssh-ed25519\t{key_only}  two  words"));
    }

    #[test]
    fn bad_options_are_named() {
        let body = ED.split_once(' ').unwrap().1;
        assert!(bad(&format!("no-ptty ssh-ed25519 {body}")).contains("unknown option \"no-ptty\""));
        assert!(bad(&format!("command=ls ssh-ed25519 {body}")).contains("double quotes"));
        assert!(bad(&format!("no-pty=\"x\" ssh-ed25519 {body}")).contains("with a value"));
        assert!(bad(&format!("from ssh-ed25519 {body}")).contains("without a value"));
        assert!(bad(&format!("no-pty,,pty ssh-ed25519 {body}")).contains("empty option"));
        assert!(bad(&format!("command=\"ls ssh-ed25519 {body}")).contains("never closed"));
        assert!(bad(&format!("command=\"ls\"x ssh-ed25519 {body}")).contains("after its value"));
        assert!(bad("no-pty").contains("no key after"));
        assert!(bad("no-pty hello world").contains("not a public key"));
    }

    #[test]
    fn inner_type_must_match_the_line() {
        let body = ED.split_once(' ').unwrap().1;
        let m = bad(&format!("ssh-rsa {body}"));
        assert!(
            m.contains("\"ssh-ed25519\" key, but the line says ssh-rsa"),
            "{m}"
        );
        let m = bad(&format!("sk-ssh-ed25519@openssh.com {body}"));
        assert!(m.contains("but the line says sk-ssh-ed25519"), "{m}");
    }

    #[test]
    fn ecdsa_curve_and_point_are_checked() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        // The curves' generators: points that are on them.
        let point = p256::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let ok = blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &point]);
        assert_eq!(parse(&format!("ecdsa-sha2-nistp256 {ok}")).bits, 256);
        let wrong = blob(&[b"ecdsa-sha2-nistp256", b"nistp384", &point]);
        assert!(bad(&format!("ecdsa-sha2-nistp256 {wrong}")).contains("on curve \"nistp384\""));
        let compressed = blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[2u8; 33]]);
        assert!(bad(&format!("ecdsa-sha2-nistp256 {compressed}")).contains("uncompressed"));
        let mut off = point.clone();
        off[64] ^= 1;
        let off = blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &off]);
        assert!(bad(&format!("ecdsa-sha2-nistp256 {off}")).contains("does not lie on nistp256"));
        let p521 = p521::AffinePoint::GENERATOR
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let k = parse(&format!(
            "ecdsa-sha2-nistp521 {}",
            blob(&[b"ecdsa-sha2-nistp521", b"nistp521", &p521])
        ));
        assert_eq!((k.bits, k.algo.label()), (521, "ECDSA"));
    }

    #[test]
    fn security_keys_need_their_application() {
        let ty = "sk-ssh-ed25519@openssh.com";
        let k = parse(&format!(
            "{ty} {} me",
            blob(&[ty.as_bytes(), &[9; 32], b"ssh:"])
        ));
        assert_eq!((k.bits, k.algo.label()), (256, "ED25519-SK"));
        assert!(bad(&format!("{ty} {}", blob(&[ty.as_bytes(), &[9; 32]]))).contains("application"));
        assert!(
            bad(&format!("{ty} {}", blob(&[ty.as_bytes(), &[9; 32], b""]))).contains("application")
        );
        let ty = "sk-ecdsa-sha2-nistp256@openssh.com";
        let point = {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            p256::AffinePoint::GENERATOR
                .to_encoded_point(false)
                .as_bytes()
                .to_vec()
        };
        let k = parse(&format!(
            "{ty} {}",
            blob(&[ty.as_bytes(), b"nistp256", &point, b"ssh:"])
        ));
        assert_eq!((k.bits, k.algo.label()), (256, "ECDSA-SK"));
    }

    #[test]
    fn rsa_bits_canonical_numbers_and_the_minimum() {
        let mut n = vec![0u8; 257];
        n[1] = 0x80; // a 2048-bit modulus needs a leading zero to stay positive
        let k = parse(&format!("ssh-rsa {}", blob(&[b"ssh-rsa", &[1, 0, 1], &n])));
        assert_eq!((k.bits, k.refusal()), (2048, None));
        let mut n = vec![0u8; 129];
        n[1] = 0x80;
        let k = parse(&format!("ssh-rsa {}", blob(&[b"ssh-rsa", &[1, 0, 1], &n])));
        assert_eq!(k.bits, 1024);
        assert!(k
            .refusal()
            .unwrap()
            .contains("1024-bit RSA key is too weak"));
        let small = [0x7fu8; 64];
        assert!(bad(&format!(
            "ssh-rsa {}",
            blob(&[b"ssh-rsa", &[1, 0, 1], &small])
        ))
        .contains("511-bit"));
        let padded = [&[0u8][..], &[0x7f; 256]].concat();
        assert!(bad(&format!(
            "ssh-rsa {}",
            blob(&[b"ssh-rsa", &[1, 0, 1], &padded])
        ))
        .contains("canonical"));
        let negative = [0x80u8; 256];
        assert!(bad(&format!(
            "ssh-rsa {}",
            blob(&[b"ssh-rsa", &[1, 0, 1], &negative])
        ))
        .contains("negative"));
        assert!(
            bad(&format!("ssh-rsa {}", blob(&[b"ssh-rsa", &[], &n]))).contains("exponent is zero")
        );
    }

    #[test]
    fn truncated_or_padded_blobs() {
        let body = ED.split_whitespace().nth(1).unwrap();
        let raw = base64::decode(body).unwrap();
        let cut = encode(&raw[..raw.len() - 1]);
        assert!(bad(&format!("ssh-ed25519 {cut}")).contains("ends inside its public key"));
        let extra = encode(&[&raw[..], &[0]].concat());
        assert!(bad(&format!("ssh-ed25519 {extra}")).contains("1 stray bytes"));
        let short = blob(&[b"ssh-ed25519", &[1; 31]]);
        assert!(bad(&format!("ssh-ed25519 {short}")).contains("32 bytes, not 31"));
        assert!(bad("ssh-ed25519 AAAA!!!!").contains("not a base64 character"));
        assert!(bad("ssh-ed25519").contains("key data is missing"));
    }

    #[test]
    fn unsupported_types_and_other_files() {
        assert!(bad("ssh-dss AAAAB3NzaC1kc3MAAACBAP x").contains("DSA keys"));
        assert!(bad("ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC x").contains("certificates"));
        assert!(bad("ssh-ed448 AAAAC3 x").contains("unsupported key type"));
        for (line, says) in [
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "PRIVATE key"),
            ("-----BEGIN RSA PRIVATE KEY-----", "PRIVATE key"),
            ("---- BEGIN SSH2 PUBLIC KEY ----", "ssh-keygen -i"),
            ("<!DOCTYPE html>", "HTML"),
            ("PuTTY-User-Key-File-3: ssh-ed25519", "PuTTY"),
            ("ssh-ed25519 \0", "binary"),
        ] {
            match parse_line(line) {
                Err(Bad::Input(m)) => assert!(m.contains(says), "{line}: {m}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_comments_are_refused_and_shown_harmless() {
        let k = parse(&format!("{ED}\x1b[2J"));
        assert!(k.refusal().unwrap().contains("control characters"));
        assert!(k.keygen_line().contains("user@host?[2J"));
    }
}
