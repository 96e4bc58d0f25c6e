//! What rpgp leaves to its caller: which self-signatures bind a key, when a key or subkey was
//! valid and able to sign, revocations, and the Arch trust model (a packager key is valid when
//! one of its user IDs is certified by 3 main keys).
//!
//! rpgp's own `verify_bindings()` is no use here: it treats every signature on a user ID as a
//! self-signature, and every Arch packager key carries main-key certifications. So each
//! signature is matched to its issuer and checked with the call for its kind.
//!
//! The pgp-facing functions collect facts (each one cryptographically checked); the decisions
//! on those facts are plain functions, tested below without any key material.

use std::collections::{HashMap, HashSet};

use pgp::composed::{SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    PublicKey, RevocationCode, Signature, SignatureType, SubpacketData,
    CERTIFICATION_SIGNATURE_TYPES,
};
use pgp::types::{KeyDetails, SignedUser, Tag, Timestamp};

use super::date;

/// GnuPG's default `marginals-needed`: pacman-key gives main keys marginal ownertrust, so a
/// packager key needs certifications from this many of them.
pub(crate) const MARGINALS_NEEDED: usize = 3;
/// GnuPG ownertrust levels as `archlinux-trusted` writes them: 4 marginal, 5 full, 6 ultimate.
const MARGINAL: u8 = 4;
const FULL: u8 = 5;

/// A main key able to vouch for packager keys, with its validity window.
#[derive(Clone, Debug)]
pub(crate) struct AnchorInfo {
    /// Index of its certificate in the keyring.
    pub cert: usize,
    /// Ownertrust from archlinux-trusted.
    pub level: u8,
    pub created: i64,
    pub expires: Option<i64>,
}

pub(crate) fn secs(t: Timestamp) -> i64 {
    i64::from(t.as_secs())
}

/// The data signature's hash: SHA-256 or stronger. rpgp itself accepts MD5 and SHA-1.
pub(crate) fn strong_hash(h: HashAlgorithm) -> bool {
    matches!(
        h,
        HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512
    )
}

/// Self-signatures (user ID bindings, subkey bindings, revocations) may still use SHA-1: old
/// keys were bound with it, and a collision there needs the key's owner to sign data an
/// attacker chose. Main-key certifications of other people's keys get the strict rule instead,
/// because that is exactly the case SHA-1 chosen-prefix collisions were shown to break.
fn self_sig_hash_ok(h: HashAlgorithm) -> bool {
    strong_hash(h) || matches!(h, HashAlgorithm::Sha1 | HashAlgorithm::Sha224)
}

/// Whether `sig` names `key` as its issuer; a signature naming no issuer at all may be a
/// self-signature (the cryptographic check decides).
fn maybe_issued_by(sig: &Signature, key: &impl KeyDetails) -> bool {
    let fps = sig.issuer_fingerprint();
    let ids = sig.issuer_key_id();
    if fps.is_empty() && ids.is_empty() {
        return true;
    }
    names_issuer(sig, key)
}

/// Whether `sig` names `key` in an issuer or issuer-fingerprint subpacket.
fn names_issuer(sig: &Signature, key: &impl KeyDetails) -> bool {
    sig.issuer_fingerprint()
        .iter()
        .any(|f| **f == key.fingerprint())
        || sig
            .issuer_key_id()
            .iter()
            .any(|id| **id == key.legacy_key_id())
}

fn created(sig: &Signature) -> Option<i64> {
    sig.created().map(secs)
}

/// `Some(sign flag)` when the signature carries a key-flags subpacket, `None` when it has none
/// (old keys: then the algorithm decides, and every signing algorithm may sign).
fn sign_flag(sig: &Signature) -> Option<bool> {
    sig.config()?
        .hashed_subpackets()
        .find_map(|p| match &p.data {
            SubpacketData::KeyFlags(f) => Some(f.sign()),
            _ => None,
        })
}

/// `base + duration` for a key- or signature-expiration subpacket; zero means never.
fn expiry(base: i64, d: Option<pgp::types::Duration>) -> Option<i64> {
    d.map(|d| d.as_secs())
        .filter(|&s| s > 0)
        .map(|s| base + i64::from(s))
}

/// The later of two signatures by creation time.
fn newer<'a>(a: Option<&'a Signature>, b: &'a Signature) -> Option<&'a Signature> {
    match a {
        Some(a) if created(a) >= created(b) => Some(a),
        _ => Some(b),
    }
}

/// "revocation signature of 2024-05-01: key compromised (lost laptop)".
fn revocation_text(sig: &Signature) -> String {
    let mut s = format!(
        "revocation signature of {}",
        created(sig)
            .map(date)
            .unwrap_or_else(|| "unknown date".into())
    );
    let reason = match sig.revocation_reason_code() {
        Some(RevocationCode::KeySuperseded) => Some("key superseded"),
        Some(RevocationCode::KeyCompromised) => Some("key compromised"),
        Some(RevocationCode::KeyRetired) => Some("key retired"),
        Some(RevocationCode::CertUserIdInvalid) => Some("user ID no longer valid"),
        _ => None,
    };
    let text = sig
        .revocation_reason_string()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .filter(|t| !t.is_empty());
    match (reason, text) {
        (Some(r), Some(t)) => s.push_str(&format!(": {r} ({t})")),
        (Some(r), None) => s.push_str(&format!(": {r}")),
        (None, Some(t)) => s.push_str(&format!(": {t}")),
        (None, None) => {}
    }
    s
}

/// A user ID and whether its owner still stands by it.
#[derive(Clone, Debug)]
pub(crate) struct UidState {
    pub text: String,
    /// A valid self-signature, not followed by the owner's revocation of the user ID.
    pub bound: bool,
    /// Its newest self-signature marks it primary.
    pub primary: bool,
}

/// The newest valid self-signature over the primary key (direct-key or user ID binding):
/// its key-expiration and key-flags subpackets are the key's current ones, as GnuPG reads them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SelfSig {
    pub expires: Option<i64>,
    pub sign_flag: Option<bool>,
}

/// A primary key's state according to its own signatures.
#[derive(Clone, Debug)]
pub(crate) struct KeyState {
    pub created: i64,
    pub expires: Option<i64>,
    /// A valid key revocation signature, described.
    pub revoked: Option<String>,
    pub newest_self_sig: Option<SelfSig>,
    pub uids: Vec<UidState>,
}

impl KeyState {
    /// The user ID to show for the key: the primary one, else the first bound, else the first.
    pub fn display_uid(&self) -> Option<&str> {
        self.uids
            .iter()
            .find(|u| u.bound && u.primary)
            .or_else(|| self.uids.iter().find(|u| u.bound))
            .or_else(|| self.uids.first())
            .map(|u| u.text.as_str())
    }
}

/// Reads a certificate's self-signatures: bindings of its user IDs, direct-key signatures,
/// revocations. Only signatures that verify against the primary key count.
pub(crate) fn primary_state(cert: &SignedPublicKey) -> KeyState {
    let pk = &cert.primary_key;
    let key_created = secs(pk.created_at());
    let mut newest: Option<&Signature> = None;
    let hash_ok = |s: &Signature| s.hash_alg().is_some_and(self_sig_hash_ok);

    for sig in &cert.details.direct_signatures {
        if sig.typ() == Some(SignatureType::Key)
            && created(sig).is_some()
            && hash_ok(sig)
            && maybe_issued_by(sig, pk)
            && sig.verify_key(pk).is_ok()
        {
            newest = newer(newest, sig);
        }
    }

    let mut uids = Vec::new();
    for user in &cert.details.users {
        let mut binding: Option<&Signature> = None;
        let mut revocation: Option<&Signature> = None;
        for sig in &user.signatures {
            let Some(typ) = sig.typ() else { continue };
            if created(sig).is_none() || !hash_ok(sig) || !maybe_issued_by(sig, pk) {
                continue;
            }
            let is_cert = CERTIFICATION_SIGNATURE_TYPES.contains(&typ);
            if !is_cert && typ != SignatureType::CertRevocation {
                continue;
            }
            if sig.verify_certification(pk, Tag::UserId, &user.id).is_err() {
                continue;
            }
            if is_cert {
                binding = newer(binding, sig);
            } else {
                revocation = newer(revocation, sig);
            }
        }
        let bound = match (binding, revocation) {
            (Some(b), Some(r)) => created(r) < created(b),
            (Some(_), None) => true,
            _ => false,
        };
        if let (true, Some(b)) = (bound, binding) {
            newest = newer(newest, b);
        }
        uids.push(UidState {
            text: String::from_utf8_lossy(user.id.id()).into_owned(),
            bound,
            primary: binding.is_some_and(|b| b.is_primary()),
        });
    }

    let revoked = cert
        .details
        .revocation_signatures
        .iter()
        .find(|sig| {
            sig.typ() == Some(SignatureType::KeyRevocation)
                && sig.hash_alg().is_some_and(self_sig_hash_ok)
                && sig.verify_key(pk).is_ok()
        })
        .map(revocation_text);

    let newest_self_sig = newest.map(|s| SelfSig {
        expires: expiry(key_created, s.key_expiration_time()),
        sign_flag: sign_flag(s),
    });
    KeyState {
        created: key_created,
        expires: newest_self_sig.and_then(|s| s.expires),
        revoked,
        newest_self_sig,
        uids,
    }
}

/// How a subkey is bound to its primary key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// No binding signature by the primary key verifies.
    Missing,
    /// Bound, but its key flags do not include signing.
    NotForSigning,
    /// Flagged for signing, but without a valid back-signature by the subkey (RFC 9580
    /// 5.2.1: without it anyone could claim someone else's signing key as their subkey).
    NoBackSignature,
    Signing,
}

#[derive(Clone, Debug)]
pub(crate) struct SubkeyState {
    pub created: i64,
    pub expires: Option<i64>,
    pub revoked: Option<String>,
    pub binding: Binding,
}

/// Reads a subkey's binding and revocation signatures (by the primary key).
pub(crate) fn subkey_state(primary: &PublicKey, sub: &SignedPublicSubKey) -> SubkeyState {
    let sub_created = secs(sub.key.created_at());
    let mut binding: Option<&Signature> = None;
    let mut revoked = None;
    for sig in &sub.signatures {
        if created(sig).is_none() || !sig.hash_alg().is_some_and(self_sig_hash_ok) {
            continue;
        }
        if sig.verify_subkey_binding(primary, &sub.key).is_err() {
            continue;
        }
        match sig.typ() {
            Some(SignatureType::SubkeyBinding) => binding = newer(binding, sig),
            Some(SignatureType::SubkeyRevocation) => revoked = Some(revocation_text(sig)),
            _ => {}
        }
    }
    let state = match binding {
        None => Binding::Missing,
        Some(b) if !b.key_flags().sign() => Binding::NotForSigning,
        Some(b) => {
            let back = b.embedded_signature().is_some_and(|back| {
                back.typ() == Some(SignatureType::KeyBinding)
                    && back.verify_primary_key_binding(&sub.key, primary).is_ok()
            });
            if back {
                Binding::Signing
            } else {
                Binding::NoBackSignature
            }
        }
    };
    SubkeyState {
        created: sub_created,
        expires: binding.and_then(|b| expiry(sub_created, b.key_expiration_time())),
        revoked,
        binding: state,
    }
}

/// A certification (or certification revocation) of a user ID by a main key, verified.
#[derive(Clone, Debug)]
pub(crate) struct CertFact {
    /// The main key's fingerprint (uppercase hex).
    pub by: String,
    pub created: i64,
    /// When the certification itself expires.
    pub expires: Option<i64>,
    pub revocation: bool,
}

/// The main-key certifications on one user ID of `cert`, each checked against the main key
/// that issued it. `own` is `cert`'s index in the keyring (a main key does not vouch for itself).
pub(crate) fn uid_certifications(
    cert: &SignedPublicKey,
    own: usize,
    user: &SignedUser,
    anchors: &HashMap<String, AnchorInfo>,
    certs: &[SignedPublicKey],
) -> Vec<CertFact> {
    let mut out = Vec::new();
    for sig in &user.signatures {
        let (Some(typ), Some(made), Some(hash)) = (sig.typ(), created(sig), sig.hash_alg()) else {
            continue;
        };
        let revocation = typ == SignatureType::CertRevocation;
        if !(revocation || CERTIFICATION_SIGNATURE_TYPES.contains(&typ)) {
            continue;
        }
        // A certification that adds trust must use a strong hash; a revocation only removes
        // trust, so any hash acceptable for self-signatures will do.
        if !(strong_hash(hash) || revocation && self_sig_hash_ok(hash)) {
            continue;
        }
        for (fpr, a) in anchors {
            if a.cert == own || a.cert >= certs.len() {
                continue;
            }
            let signer = &certs[a.cert].primary_key;
            if !names_issuer(sig, signer) {
                continue;
            }
            if sig
                .verify_third_party_certification(&cert.primary_key, signer, Tag::UserId, &user.id)
                .is_ok()
            {
                out.push(CertFact {
                    by: fpr.clone(),
                    created: made,
                    expires: expiry(made, sig.signature_expiration_time()),
                    revocation,
                });
            }
            break;
        }
    }
    out
}

/// What the main keys' certifications of one user ID add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Certified {
    /// Distinct main keys with a standing certification.
    pub distinct: usize,
    /// One of them has full (or ultimate) ownertrust: one certification is then enough.
    pub full: bool,
}

impl Certified {
    pub fn valid(&self) -> bool {
        self.full || self.distinct >= MARGINALS_NEEDED
    }
}

/// The first bound user ID of certificate number `own` that `anchors` make valid; else the
/// most distinct anchors behind any bound one, for the message that refuses the key.
pub(crate) fn valid_uid<'s>(
    cert: &SignedPublicKey,
    own: usize,
    state: &'s KeyState,
    anchors: &HashMap<String, AnchorInfo>,
    certs: &[SignedPublicKey],
    now: i64,
) -> std::result::Result<&'s UidState, usize> {
    let mut best = 0;
    for (user, uid) in cert.details.users.iter().zip(&state.uids) {
        if !uid.bound {
            continue;
        }
        let facts = uid_certifications(cert, own, user, anchors, certs);
        let c = count_certifiers(&facts, anchors, now);
        if c.valid() {
            return Ok(uid);
        }
        best = best.max(c.distinct);
    }
    Err(best)
}

/// Counts the main keys standing behind a user ID, as GnuPG's trust model does with
/// pacman-key's setup: a certification counts if its main key is one we trust (marginal or
/// better), was valid when it certified, the certification has not expired, and the same
/// main key has not revoked it since. Several certifications by one main key count once.
pub(crate) fn count_certifiers(
    facts: &[CertFact],
    anchors: &HashMap<String, AnchorInfo>,
    now: i64,
) -> Certified {
    let mut by = HashSet::new();
    let mut full = false;
    for c in facts.iter().filter(|c| !c.revocation) {
        let Some(a) = anchors.get(&c.by) else {
            continue;
        };
        let anchor_valid = a.level >= MARGINAL
            && a.created <= c.created
            && a.expires.is_none_or(|e| c.created < e);
        let live = c.expires.is_none_or(|e| now < e);
        let withdrawn = facts
            .iter()
            .any(|r| r.revocation && r.by == c.by && r.created >= c.created);
        if anchor_valid && live && !withdrawn {
            full |= a.level >= FULL;
            by.insert(c.by.as_str());
        }
    }
    Certified {
        distinct: by.len(),
        full,
    }
}

/// Why a key could not make a signature at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// The key was made after the signature.
    NotYetCreated { created: i64 },
    /// The key had expired before the signature was made.
    Expired { at: i64 },
}

/// Whether a key created at `created` and expiring at `expires` was valid at `t`. A key that
/// expired after `t` was: pacman accepts those signatures (GnuPG's KEY_EXPIRED status).
pub(crate) fn usable_at(created: i64, expires: Option<i64>, t: i64) -> Result<(), Unusable> {
    if t < created {
        return Err(Unusable::NotYetCreated { created });
    }
    match expires {
        Some(at) if at <= t => Err(Unusable::Expired { at }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn anchors(levels: &[(&str, u8)]) -> HashMap<String, AnchorInfo> {
        levels
            .iter()
            .enumerate()
            .map(|(i, (f, l))| {
                (
                    f.to_string(),
                    AnchorInfo {
                        cert: i,
                        level: *l,
                        created: 0,
                        expires: None,
                    },
                )
            })
            .collect()
    }

    fn cert(by: &str, created: i64) -> CertFact {
        CertFact {
            by: by.into(),
            created,
            expires: None,
            revocation: false,
        }
    }

    #[test]
    fn three_distinct_main_keys_make_a_key_valid() {
        let a = anchors(&[("M1", 4), ("M2", 4), ("M3", 4)]);
        let c = count_certifiers(&[cert("M1", 10), cert("M2", 10), cert("M3", 10)], &a, 100);
        assert_eq!(c.distinct, 3);
        assert!(c.valid());
    }

    #[test]
    fn two_are_not_enough_and_repeats_count_once() {
        let a = anchors(&[("M1", 4), ("M2", 4), ("M3", 4)]);
        let c = count_certifiers(&[cert("M1", 10), cert("M1", 20), cert("M2", 10)], &a, 100);
        assert_eq!(c.distinct, 2);
        assert!(!c.valid());
    }

    #[test]
    fn certifications_by_other_keys_do_not_count() {
        // "X" is not a main key (or a revoked one: revoked main keys never become anchors).
        let a = anchors(&[("M1", 4), ("M2", 4)]);
        let c = count_certifiers(&[cert("M1", 10), cert("M2", 10), cert("X", 10)], &a, 100);
        assert_eq!(c.distinct, 2);
        assert!(!c.valid());
    }

    #[test]
    fn a_fully_trusted_main_key_is_enough_alone() {
        let a = anchors(&[("M1", 5), ("M2", 4)]);
        let c = count_certifiers(&[cert("M1", 10)], &a, 100);
        assert!(c.valid());
        // Ownertrust "never" (3) or "undefined" (2): the key vouches for nobody.
        let a = anchors(&[("M1", 3), ("M2", 2), ("M3", 4)]);
        let c = count_certifiers(&[cert("M1", 10), cert("M2", 10), cert("M3", 10)], &a, 100);
        assert_eq!(c.distinct, 1);
    }

    #[test]
    fn a_revoked_certification_does_not_count_until_renewed() {
        let a = anchors(&[("M1", 4), ("M2", 4), ("M3", 4)]);
        let mut facts = vec![cert("M1", 10), cert("M2", 10), cert("M3", 10)];
        facts.push(CertFact {
            revocation: true,
            ..cert("M3", 50)
        });
        assert_eq!(count_certifiers(&facts, &a, 100).distinct, 2);
        // M3 certified again after revoking.
        facts.push(cert("M3", 60));
        assert_eq!(count_certifiers(&facts, &a, 100).distinct, 3);
    }

    #[test]
    fn expired_certifications_and_expired_certifiers_do_not_count() {
        let mut a = anchors(&[("M1", 4), ("M2", 4), ("M3", 4)]);
        let expiring = CertFact {
            expires: Some(50),
            ..cert("M3", 10)
        };
        let facts = [cert("M1", 10), cert("M2", 10), expiring];
        assert_eq!(count_certifiers(&facts, &a, 40).distinct, 3);
        assert_eq!(count_certifiers(&facts, &a, 50).distinct, 2);
        // M2 had expired when it certified; a main key that expired later still counts.
        a.get_mut("M2").unwrap().expires = Some(5);
        a.get_mut("M1").unwrap().expires = Some(20);
        assert_eq!(count_certifiers(&facts, &a, 40).distinct, 2);
        // A main key cannot certify before it existed.
        a.get_mut("M1").unwrap().created = 11;
        assert_eq!(count_certifiers(&facts, &a, 40).distinct, 1);
    }

    #[test]
    fn keys_that_expired_after_signing_are_accepted() {
        assert_eq!(usable_at(0, Some(100 * DAY), 10 * DAY), Ok(()));
        assert_eq!(usable_at(0, None, 10 * DAY), Ok(()));
        assert_eq!(
            usable_at(0, Some(5 * DAY), 10 * DAY),
            Err(Unusable::Expired { at: 5 * DAY })
        );
        // Expiring at the very second of the signature is already expired.
        assert_eq!(
            usable_at(0, Some(10 * DAY), 10 * DAY),
            Err(Unusable::Expired { at: 10 * DAY })
        );
        assert_eq!(
            usable_at(20 * DAY, None, 10 * DAY),
            Err(Unusable::NotYetCreated { created: 20 * DAY })
        );
    }

    #[test]
    fn hash_policy() {
        for h in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
            HashAlgorithm::Sha3_256,
            HashAlgorithm::Sha3_512,
        ] {
            assert!(strong_hash(h), "{h}");
        }
        for h in [
            HashAlgorithm::Md5,
            HashAlgorithm::Sha1,
            HashAlgorithm::Ripemd160,
            HashAlgorithm::Sha224,
            HashAlgorithm::None,
            HashAlgorithm::Other(200),
        ] {
            assert!(!strong_hash(h), "{h}");
        }
        assert!(self_sig_hash_ok(HashAlgorithm::Sha1));
        assert!(!self_sig_hash_ok(HashAlgorithm::Md5));
    }

    #[test]
    fn expiry_zero_means_never() {
        assert_eq!(expiry(100, Some(pgp::types::Duration::from_secs(0))), None);
        assert_eq!(expiry(100, None), None);
        assert_eq!(
            expiry(100, Some(pgp::types::Duration::from_secs(50))),
            Some(150)
        );
    }
}
