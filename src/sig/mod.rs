//! Signatures of pacman packages: OpenPGP detached signatures (`PKG.sig`) checked against the
//! Arch keyring with Arch's trust model, in pure Rust (rpgp), without gpg or pacman.
//!
//! A signature is good when all of these hold (pacman's rules, as `pacman-key --populate`
//! sets up GnuPG):
//! - its issuer (fingerprint or key ID) is a key or subkey in `archlinux.gpg`;
//! - it hashes with SHA-256 or stronger, is over a binary file, and has not itself expired;
//! - the signer's primary key is not listed in `archlinux-revoked` and carries no valid
//!   revocation signature; a subkey is bound with a valid binding and back-signature, flagged
//!   for signing and not revoked;
//! - the signing key existed and had not expired when the signature was made (a key that
//!   expired later is fine: pacman accepts GnuPG's KEY_EXPIRED);
//! - the primary key is a main key (`archlinux-trusted`), or one of its user IDs is certified
//!   by 3 distinct main keys that are not revoked, each certification verified;
//! - and the signature verifies over the file, which is streamed, never held in memory.
//!
//! The keyring and the trust decisions are checked before the file is read ([`accept`]), so a
//! signature that cannot be accepted costs no pass over a 150 MB package, nor its download.
//! The file's bytes then go once through [`FileDigest`], which gives the signature's hash and
//! the file's SHA-256 together, from a disk or as they arrive from the network.

mod digest;
mod keyring;
mod trust;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::SignedPublicKey;
use pgp::packet::{Signature, SignatureType, SignatureVersion};
use pgp::types::KeyDetails;

pub use digest::FileDigest;
pub use keyring::Keyring;
use keyring::{hex_upper, KeyRef};
use trust::{Binding, Unusable, MARGINALS_NEEDED};

use crate::error::{Error, IoContext, Kind, Result};

/// A `.sig` larger than this is not a package signature (repo-add refuses more than 16 KiB).
pub const MAX_SIG_BYTES: u64 = 64 << 10;
/// Read buffer for the signed file: large reads keep the syscalls few on 150 MB packages.
const READ_BUFFER: usize = 256 * 1024;

/// Who made a good signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The signer's primary key, uppercase hex.
    pub fingerprint: String,
    /// The key that signed: the primary key, or its signing subkey (uppercase hex).
    pub signer_key: String,
    /// The user ID the trust rests on (for a packager, the one certified by the main keys).
    pub user_id: Option<String>,
    /// When the signature was made, in seconds since the epoch.
    pub created: i64,
}

/// What one read of a signed file tells.
#[derive(Debug)]
pub struct Checked {
    /// The file's SHA-256, lower-case hex.
    pub sha256: String,
    /// Whether the signature holds over the file.
    pub signature: Result<Verified>,
}

/// Checks the detached signature `sig_file` over `file` and gives the file's SHA-256 from the
/// same read. A signature that is missing, malformed or not accepted by the trust model, or a
/// file that cannot be read, is an error; a signature that does not hold over the bytes is
/// `Checked::signature`'s.
pub fn check_file(keyring: &Keyring, file: &Path, sig_file: &Path) -> Result<Checked> {
    check_file_any(&[keyring], file, sig_file).map(|(_, c)| c)
}

/// Checks the detached signature `sig_file` (binary or armoured) over `file`, the keyrings
/// tried as [`accept_any`] does.
pub fn verify_file_any(keyrings: &[&Keyring], file: &Path, sig_file: &Path) -> Result<Verified> {
    check_file_any(keyrings, file, sig_file)?.1.signature
}

/// Streams `data` and checks the detached signature `sig` (binary or armoured) against the
/// keyring with Arch's trust model.
pub fn verify_reader(keyring: &Keyring, data: &mut dyn Read, sig: &[u8]) -> Result<Verified> {
    let pending = accept(keyring, sig)?;
    let mut digest = pending.digest();
    crate::hash::update_from(&mut digest, data, &mut vec![0u8; READ_BUFFER])
        .map_err(|e| Error::io(e, "reading the signed file"))?;
    pending.finish(digest).signature
}

/// Parses the detached signature `sig` (binary or armoured) and checks everything but the
/// data: the signature's own properties, the key's state when it signed, revocations, trust.
/// What it returns waits for the signed bytes.
pub fn accept<'k>(keyring: &'k Keyring, sig: &[u8]) -> Result<Pending<'k>> {
    accept_any(&[keyring], sig).map(|(_, p)| p)
}

/// As [`accept`], with several keyrings in order (Arch's, then pacman's own GnuPG keyring
/// for a third-party repository's key), and the index of the one that accepted. A keyring is
/// asked only when the ones before it do not hold the signer's key at all: the first that
/// holds it decides, so a key Arch's keyring revokes or does not trust is refused whatever a
/// later keyring says. A key no keyring holds is one "unknown key" error naming them all.
pub fn accept_any<'k>(keyrings: &[&'k Keyring], sig: &[u8]) -> Result<(usize, Pending<'k>)> {
    let sig = parse_signature(sig)?;
    let now = now();
    for (i, keyring) in keyrings.iter().enumerate() {
        let mut first_err = None;
        // Several candidates only when the signature names a 64-bit key ID that more than one
        // key shares; the first that the trust model accepts is the one the file is checked
        // against.
        for r in keyring.lookup(&sig.issuer_fingerprint(), &sig.issuer_key_id()) {
            match check_signer(keyring, &sig, r, now) {
                Ok(signer) => return Ok((i, Pending { sig, signer })),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Err(unknown_key(keyrings, &sig))
}

/// As [`check_file`], with the keyrings tried as [`accept_any`] does; which one accepted.
pub fn check_file_any(
    keyrings: &[&Keyring],
    file: &Path,
    sig_file: &Path,
) -> Result<(usize, Checked)> {
    let sig = read_sig(sig_file)?;
    let data = File::open(file).at(file)?;
    let (i, pending) = accept_any(keyrings, &sig)?;
    let mut digest = pending.digest();
    crate::hash::update_from(&mut digest, data, &mut vec![0u8; READ_BUFFER])
        .map_err(|e| Error::io(e, "reading the signed file"))?;
    Ok((i, pending.finish(digest)))
}

/// A signature the trust model accepted, waiting for the bytes it signs.
pub struct Pending<'k> {
    sig: Signature,
    signer: Signer<'k>,
}

impl Pending<'_> {
    /// The hashes to feed the file's bytes to, once, in order.
    pub fn digest(&self) -> FileDigest {
        // check_signer accepted only hashes rpgp computes.
        FileDigest::for_signature(&self.sig).unwrap_or_else(FileDigest::sha256_only)
    }

    /// The file's SHA-256 and whether the signature holds, once `digest` has seen every byte.
    pub fn finish(&self, digest: FileDigest) -> Checked {
        let (sha256, data) = digest.split();
        let holds = data.is_some_and(|data| match self.signer.key.subkey {
            None => digest::holds(&self.sig, &self.signer.cert.primary_key, data),
            Some(j) => self
                .signer
                .cert
                .public_subkeys
                .get(j)
                .is_some_and(|sub| digest::holds(&self.sig, &sub.key, data)),
        });
        let signature = if holds {
            Ok(Verified {
                fingerprint: self.signer.fingerprint.clone(),
                signer_key: self.signer.signer_key.clone(),
                user_id: self.signer.user_id.clone(),
                created: self.signer.created,
            })
        } else {
            Err(verify_error(format!(
                "bad signature by {}: the file does not match it (changed or damaged)",
                self.signer.who
            )))
        };
        Checked {
            sha256: crate::hash::hex(&sha256),
            signature,
        }
    }
}

/// `YYYY-MM-DD` (UTC) for seconds since the epoch.
pub fn date(secs: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn verify_error(message: String) -> Error {
    Error::new(Kind::Verify, message)
}

/// A detached signature file, read up to [`MAX_SIG_BYTES`]; a missing one is `Missing` with
/// the hint to download it, a larger one `Invalid`.
pub fn read_sig(path: &Path) -> Result<Vec<u8>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(
                Error::missing(format!("no signature file {}", path.display())).hint(format!(
                    "mirrors keep {} beside the package: download it too",
                    path.file_name().map_or_else(
                        || path.display().to_string(),
                        |f| f.to_string_lossy().into_owned()
                    )
                )),
            );
        }
        Err(e) => return Err(Error::path(e, path)),
    };
    let mut buf = Vec::new();
    file.take(MAX_SIG_BYTES + 1)
        .read_to_end(&mut buf)
        .at(path)?;
    if buf.len() as u64 > MAX_SIG_BYTES {
        return Err(Error::invalid(format!(
            "{}: too large for a signature",
            path.display()
        )));
    }
    Ok(buf)
}

/// The binary packets inside one ASCII-armoured block.
pub(crate) fn dearmor(text: &[u8]) -> pgp::errors::Result<Vec<u8>> {
    let mut d = pgp::armor::Dearmor::new(text);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut out)?;
    Ok(out)
}

/// The one signature packet of a detached `.sig`, binary or armoured.
fn parse_signature(bytes: &[u8]) -> Result<Signature> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid("the signature file is empty"));
    }
    let bad = |e: pgp::errors::Error| {
        Error::invalid("malformed signature: not an OpenPGP detached signature").with_source(e)
    };
    let armored;
    let binary: &[u8] = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes
    } else {
        armored = dearmor(bytes).map_err(bad)?;
        &armored
    };
    let mut sigs = Vec::new();
    // A handful is plenty to tell one from several; the parser never needs to run long.
    for p in pgp::packet::PacketParser::new(binary).take(8) {
        match p.map_err(bad)? {
            pgp::packet::Packet::Signature(s) => sigs.push(s),
            _ => {
                return Err(Error::invalid(
                    "malformed signature: the file holds something other than a signature",
                ))
            }
        }
    }
    match sigs.len() {
        0 => Err(Error::invalid(
            "malformed signature: no signature packet in the file",
        )),
        1 => Ok(sigs.remove(0)),
        n => Err(Error::invalid(format!(
            "malformed signature: the file holds {n} signatures, a package signature is one"
        ))),
    }
}

fn unknown_key(keyrings: &[&Keyring], sig: &Signature) -> Error {
    let who = match (
        sig.issuer_fingerprint().first(),
        sig.issuer_key_id().first(),
    ) {
        (Some(f), _) => hex_upper(f),
        (None, Some(id)) => format!("ID {}", id.to_string().to_uppercase()),
        (None, None) => "(the signature names no issuer)".to_string(),
    };
    let places: Vec<String> = keyrings
        .iter()
        .map(|k| k.source().display().to_string())
        .collect();
    let where_ = match places.as_slice() {
        [one] => format!("the keyring {one}"),
        [first @ .., last] => format!("the keyrings {} or {last}", first.join(", ")),
        [] => "any keyring".to_string(),
    };
    verify_error(format!("unknown key {who}: not in {where_}")).hint(
        "the keyring may be older than the package: update archlinux-keyring, or pass \
         --keyring with a newer copy",
    )
}

/// The key a signature will be checked against, once the trust model accepted it.
struct Signer<'k> {
    cert: &'k SignedPublicKey,
    key: KeyRef,
    fingerprint: String,
    signer_key: String,
    who: String,
    user_id: Option<String>,
    created: i64,
}

/// Everything but the data: the signature's own properties, the key's state when it signed,
/// revocations and trust.
fn check_signer<'k>(
    keyring: &'k Keyring,
    sig: &Signature,
    r: KeyRef,
    now: i64,
) -> Result<Signer<'k>> {
    let cert = keyring
        .certs
        .get(r.cert)
        .ok_or_else(|| unknown_key(&[keyring], sig))?;
    let state = trust::primary_state(cert);
    let fpr = hex_upper(&cert.primary_key.fingerprint());
    let who = match state.display_uid() {
        Some(u) => format!("{fpr} ({u})"),
        None => fpr.clone(),
    };

    // The signature itself.
    let Some(hash) = sig.hash_alg() else {
        return Err(verify_error(format!(
            "the signature by {who} is of an unsupported version"
        )));
    };
    if !trust::strong_hash(hash) {
        return Err(verify_error(format!(
            "weak hash {hash} in the signature by {who}: SHA-256 or stronger is required"
        )));
    }
    if !matches!(sig.version(), SignatureVersion::V4 | SignatureVersion::V6) {
        return Err(verify_error(format!(
            "the signature by {who} is a version {:?} signature; only 4 and 6 are accepted",
            sig.version()
        )));
    }
    if sig.typ() != Some(SignatureType::Binary) {
        return Err(verify_error(format!(
            "the signature by {who} is not a signature of a binary file (type {:?})",
            sig.typ()
        )));
    }
    let Some(t) = sig.created().map(trust::secs) else {
        return Err(verify_error(format!(
            "the signature by {who} has no creation time"
        )));
    };
    if let Some(d) = sig.signature_expiration_time().filter(|d| d.as_secs() > 0) {
        let end = t + i64::from(d.as_secs());
        if end <= now {
            return Err(verify_error(format!(
                "the signature by {who} expired on {}",
                date(end)
            )));
        }
    }

    // Revocation, then the key's validity when it signed.
    if keyring.is_listed_revoked(&fpr) {
        return Err(verify_error(format!(
            "key {who} is revoked (listed in {})",
            keyring.revoked_name()
        )));
    }
    if let Some(rev) = &state.revoked {
        return Err(verify_error(format!("key {who} is revoked ({rev})")));
    }
    let Some(self_sig) = state.newest_self_sig else {
        return Err(verify_error(format!(
            "key {who} is not valid: no valid self-signature binds it"
        )));
    };
    usable_at(&format!("key {who}"), state.created, state.expires, t)?;
    let signer_key = match r.subkey {
        None => {
            if self_sig.sign_flag == Some(false) {
                return Err(verify_error(format!(
                    "key {who} is not able to sign: its key flags do not allow it"
                )));
            }
            fpr.clone()
        }
        Some(j) => {
            let sub = cert
                .public_subkeys
                .get(j)
                .ok_or_else(|| unknown_key(&[keyring], sig))?;
            let sub_fpr = hex_upper(&sub.key.fingerprint());
            let what = format!("subkey {sub_fpr} of key {who}");
            let s = trust::subkey_state(&cert.primary_key, sub);
            if let Some(rev) = &s.revoked {
                return Err(verify_error(format!("{what} is revoked ({rev})")));
            }
            let why = match s.binding {
                Binding::Signing => None,
                Binding::Missing => Some("no valid binding signature ties it to the key"),
                Binding::NotForSigning => Some("its key flags do not allow signing"),
                Binding::NoBackSignature => {
                    Some("its binding lacks a valid back-signature by the subkey")
                }
            };
            if let Some(why) = why {
                return Err(verify_error(format!("{what} is not able to sign: {why}")));
            }
            usable_at(&what, s.created, s.expires, t)?;
            sub_fpr
        }
    };

    // Trust: a main key, or a key certified by enough of them.
    let user_id = if keyring.is_main_key(&fpr) {
        state.display_uid().map(String::from)
    } else {
        match trust::valid_uid(cert, r.cert, &state, &keyring.anchors, &keyring.certs, now) {
            Ok(uid) => Some(uid.text.clone()),
            Err(best) if keyring.is_gnupg() => {
                return Err(verify_error(format!(
                    "key {who} is not trusted: no valid certification by a locally signed \
                     or ultimately trusted key ({best} by marginal ones, needs \
                     {MARGINALS_NEEDED})"
                ))
                .hint(format!(
                    "pacman would refuse it too; if the key is the repository's own, trust \
                     it as pacman does: pacman-key --lsign-key {fpr}"
                )));
            }
            Err(best) => {
                return Err(verify_error(format!(
                    "key {who} is not trusted: only {best} valid main-key certifications \
                     (needs {MARGINALS_NEEDED})"
                ))
                .hint(
                    "pacman would refuse it too; a newer archlinux-keyring may carry more \
                     certifications",
                ));
            }
        }
    };

    Ok(Signer {
        cert,
        key: r,
        who: match &user_id {
            Some(u) => format!("{fpr} ({u})"),
            None => who,
        },
        fingerprint: fpr,
        signer_key,
        user_id,
        created: t,
    })
}

fn usable_at(what: &str, created: i64, expires: Option<i64>, t: i64) -> Result<()> {
    trust::usable_at(created, expires, t).map_err(|u| {
        verify_error(match u {
            Unusable::NotYetCreated { created } => format!(
                "{what} is not valid for this signature: it was created on {}, after the \
                 signature was made ({})",
                date(created),
                date(t)
            ),
            Unusable::Expired { at } => format!(
                "{what} had expired on {}, before the signature was made ({})",
                date(at),
                date(t)
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_712_094_850), "2024-04-02");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_590_969_600 + 43_200), "2020-06-01");
        assert_eq!(date(-86_400), "1969-12-31");
    }

    #[test]
    fn malformed_signatures_are_invalid() {
        for bytes in [&b""[..], b"  \n", b"not a signature at all", b"\x89\x01"] {
            let e = parse_signature(bytes).unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{bytes:?}: {e}");
        }
    }

    #[test]
    fn a_missing_sig_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_sig(&dir.path().join("x.pkg.tar.zst.sig")).unwrap_err();
        assert_eq!(e.kind(), Kind::Missing);
        assert!(e.to_string().contains("no signature file"), "{e}");
    }
}

/// The trust model over the whole real Arch keyring (Debian's archlinux-keyring package,
/// installed by scripts/test-deps.sh), compared with counts made independently for the
/// reference notes (rust-crates.md 2.3, archlinux-keyring 20231113).
#[cfg(test)]
mod real_keyring {
    use super::*;

    #[test]
    fn trust_counts_match_the_reference() {
        let path = Path::new("/usr/share/keyrings/archlinux.gpg");
        assert!(
            path.is_file(),
            "{} is missing: apt-get install archlinux-keyring (scripts/test-deps.sh)",
            path.display()
        );
        let k = Keyring::load(path).unwrap();
        let now = now();
        let (mut valid, mut too_few, mut revoked) = (0, 0, 0);
        for (i, cert) in k.certs.iter().enumerate() {
            let fpr = hex_upper(&cert.primary_key.fingerprint());
            if k.is_listed_revoked(&fpr) {
                revoked += 1;
                continue;
            }
            if k.is_main_key(&fpr) {
                continue;
            }
            let state = trust::primary_state(cert);
            let best = cert
                .details
                .users
                .iter()
                .zip(&state.uids)
                .filter(|(_, s)| s.bound)
                .map(|(u, _)| {
                    let facts = trust::uid_certifications(cert, i, u, &k.anchors, &k.certs);
                    trust::count_certifiers(&facts, &k.anchors, now).distinct
                })
                .max()
                .unwrap_or(0);
            if best >= MARGINALS_NEEDED {
                valid += 1;
            } else {
                too_few += 1;
            }
        }
        let counts = (
            k.key_count(),
            k.skipped(),
            k.main_key_count(),
            valid,
            too_few,
            revoked,
        );
        // Debian bookworm ships archlinux-keyring 0~20231113; a newer one changes these.
        assert_eq!(
            counts,
            (164, 0, 6, 73, 44, 41),
            "(keys, skipped, main keys, valid, too few, revoked)"
        );
    }
}
