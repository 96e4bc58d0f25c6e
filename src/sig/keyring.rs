//! The Arch keyring: `archlinux.gpg` (every main and packager key), `archlinux-trusted` (the
//! main keys, as GnuPG ownertrust lines) and `archlinux-revoked` (keys pacman disables).
//!
//! Layouts: Arch's `/usr/share/pacman/keyrings/` (a directory), and Debian's
//! `archlinux-keyring` package, which puts the same three files in `/usr/share/keyrings/`
//! beside other distributions' keyrings (so there a keyring is named by its `.gpg` file).
//! Or pacman's own GnuPG directory (`/etc/pacman.d/gnupg`): `pubring.gpg` and the ownertrust
//! in `trustdb.gpg`, so keys the admin locally signed with pacman-key count too.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::types::{Fingerprint, KeyDetails, KeyId};

use super::trust::{self, AnchorInfo};
use crate::ctx::below;
use crate::error::{Error, Kind, Result};

/// Where Arch keeps its keyring, in the target root and on the host.
const PACMAN_KEYRINGS: &str = "usr/share/pacman/keyrings";
/// Where Debian's `archlinux-keyring` package installs it.
const DEBIAN_KEYRING: &str = "usr/share/keyrings/archlinux.gpg";

/// GnuPG's trust database in its home directory.
const TRUSTDB: &str = "trustdb.gpg";
/// trustdb.gpg is a sequence of fixed-size records; the first is the version record.
const TDB_RECORD: usize = 40;
const TDB_VERSION: u8 = 3;
const REC_VERSION: u8 = 1;
const REC_TRUST: u8 = 12;
/// The record types GnuPG writes: unused, version, hash table, hash list, trust, valid, free.
const REC_KNOWN: [u8; 7] = [0, REC_VERSION, 10, 11, REC_TRUST, 13, 254];
/// Ownertrust byte: the level in the low bits, and a flag for a disabled key.
const OWNERTRUST_MASK: u8 = 0x0f;
const OWNERTRUST_DISABLED: u8 = 0x80;
const MARGINAL: u8 = 4;
const ULTIMATE: u8 = 6;
/// GnuPG's default `max-cert-depth`.
const MAX_CERT_DEPTH: usize = 5;

/// Ownertrust GnuPG gives a main key when `archlinux-trusted` names no level (keyringctl
/// always writes 4, "marginal").
const DEFAULT_LEVEL: u8 = 4;

/// A key in the keyring: the certificate and, when a subkey is meant, which one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyRef {
    pub cert: usize,
    pub subkey: Option<usize>,
}

/// A loaded keyring. Loading parses every certificate and checks the main keys' own
/// signatures once; verifying a package then costs a handful of signature checks.
pub struct Keyring {
    source: PathBuf,
    /// The revoked list's file name, for messages ("listed in archlinux-revoked").
    revoked_name: String,
    pub(crate) certs: Vec<SignedPublicKey>,
    by_fingerprint: HashMap<Fingerprint, KeyRef>,
    by_key_id: HashMap<KeyId, Vec<KeyRef>>,
    /// `archlinux-trusted`: uppercase fingerprint → ownertrust level.
    trusted: HashMap<String, u8>,
    /// `archlinux-revoked`: uppercase fingerprints.
    revoked: HashSet<String>,
    /// The main keys that can vouch for others: trusted, present, not revoked, self-signed.
    pub(crate) anchors: HashMap<String, AnchorInfo>,
    /// Certificates that did not parse (an algorithm rpgp does not know, damage).
    skipped: usize,
}

impl Keyring {
    /// DIR holding archlinux.gpg (binary or ASCII-armoured), archlinux-trusted and
    /// archlinux-revoked; or the .gpg FILE itself, with STEM-trusted and STEM-revoked beside it
    /// (`/usr/share/keyrings/archlinux.gpg` → `archlinux-trusted`).
    ///
    /// Or pacman's own GnuPG home (`/etc/pacman.d/gnupg`, a directory with `trustdb.gpg`):
    /// its `pubring.gpg` and the ownertrust in its trust database, so keys the admin added
    /// and locally signed with pacman-key (a third-party repository's) are trusted as pacman
    /// trusts them.
    pub fn load(path: &Path) -> Result<Keyring> {
        if Keyring::is_gnupg_dir(path) {
            return Keyring::load_gnupg(path);
        }
        let [gpg, trusted, revoked] = Keyring::files(path);
        let read = |p: &Path, what: &str| -> Result<Vec<u8>> {
            fs::read(p).map_err(|e| {
                let err = Error::path(e, p);
                if err.kind() == Kind::Missing {
                    Error::missing(format!("{}: no {what} there", p.display())).hint(
                        "an Arch keyring is archlinux.gpg with archlinux-trusted and \
                         archlinux-revoked beside it (package archlinux-keyring)",
                    )
                } else {
                    err
                }
            })
        };
        let keys = read(&gpg, "keyring")?;
        let trusted_text = read(&trusted, "list of main keys")?;
        let revoked_text = read(&revoked, "list of revoked keys")?;
        let trusted_list = parse_trusted(&String::from_utf8_lossy(&trusted_text))
            .map_err(|e| e.context(trusted.display().to_string()))?;
        let revoked_list = parse_revoked(&String::from_utf8_lossy(&revoked_text))
            .map_err(|e| e.context(revoked.display().to_string()))?;
        let (certs, skipped) =
            parse_certs(&keys).map_err(|e| e.context(gpg.display().to_string()))?;
        let revoked_name = revoked
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Keyring::build(
            path.to_path_buf(),
            revoked_name,
            certs,
            skipped,
            trusted_list,
            revoked_list,
        ))
    }

    /// Pacman's GnuPG home: `pubring.gpg` and `trustdb.gpg`. Ultimately trusted keys (the
    /// local master key) are valid by themselves; a key with marginal or full ownertrust (the
    /// Arch main keys after `--populate`) vouches for others only once it is valid itself,
    /// which is worked out as GnuPG's pgp trust model does, level by level. Disabled keys
    /// (`--populate` disables those in archlinux-revoked) are refused like revoked ones.
    fn load_gnupg(dir: &Path) -> Result<Keyring> {
        let pubring = dir.join("pubring.gpg");
        if !pubring.is_file() {
            let kbx = dir.join("pubring.kbx");
            let what = if kbx.is_file() {
                format!(
                    "{}: the keys are in a GnuPG keybox (pubring.kbx), which is not read here",
                    dir.display()
                )
            } else {
                format!("{}: no pubring.gpg beside trustdb.gpg", dir.display())
            };
            return Err(Error::missing(what).hint(format!(
                "export the keys as an OpenPGP keyring, put it at {} and pass the directory \
                 again: gpg --homedir {} --export > {}",
                pubring.display(),
                dir.display(),
                pubring.display()
            )));
        }
        let tdb_path = dir.join(TRUSTDB);
        let tdb = fs::read(&tdb_path).map_err(|e| Error::path(e, &tdb_path))?;
        let ownertrust =
            parse_trustdb(&tdb).map_err(|e| e.context(tdb_path.display().to_string()))?;
        let keys = fs::read(&pubring).map_err(|e| Error::path(e, &pubring))?;
        let keys =
            without_trust_packets(&keys).map_err(|e| e.context(pubring.display().to_string()))?;
        let (certs, skipped) =
            parse_certs(&keys).map_err(|e| e.context(pubring.display().to_string()))?;
        let mut ultimate = HashMap::new();
        let mut disabled = HashSet::new();
        let mut vouching = Vec::new();
        for (fpr, ot) in &ownertrust {
            let level = ot & OWNERTRUST_MASK;
            if ot & OWNERTRUST_DISABLED != 0 {
                disabled.insert(fpr.clone());
            } else if level == ULTIMATE {
                ultimate.insert(fpr.clone(), level);
            } else if level >= MARGINAL {
                vouching.push((fpr.clone(), level));
            }
        }
        vouching.sort();
        let mut k = Keyring::build(
            dir.to_path_buf(),
            "trustdb.gpg as disabled".into(),
            certs,
            skipped,
            ultimate,
            disabled,
        );
        let now = super::now();
        // The keys that may vouch once valid, each located and its self-signatures checked
        // once; the rounds below only count certifications.
        let mut pending: Vec<(String, AnchorInfo, trust::KeyState)> = vouching
            .iter()
            .filter_map(|(fpr, level)| {
                anchor_of(&k.certs, fpr, *level).map(|(a, state)| (fpr.clone(), a, state))
            })
            .collect();
        // Each round makes valid the keys certified by the ones valid so far; GnuPG's
        // default max-cert-depth bounds the chain.
        for _ in 0..MAX_CERT_DEPTH {
            let mut added = Vec::new();
            pending.retain(|(fpr, anchor, state)| {
                let i = anchor.cert;
                let valid =
                    trust::valid_uid(&k.certs[i], i, state, &k.anchors, &k.certs, now).is_ok();
                if valid {
                    added.push((fpr.clone(), anchor.clone()));
                }
                !valid
            });
            if added.is_empty() {
                break;
            }
            for (fpr, a) in added {
                k.trusted.insert(fpr.clone(), a.level);
                k.anchors.insert(fpr, a);
            }
        }
        Ok(k)
    }

    /// The keyring [`Keyring::locate`] finds, loaded.
    pub fn find(root: &Path, host: &Path, explicit: Option<&Path>) -> Result<Keyring> {
        Keyring::load(&Keyring::locate(root, host, explicit)?)
    }

    /// Where the keyring to use is, without loading it: `explicit` if given; else the
    /// target's `/usr/share/pacman/keyrings/`; else the host's; else Debian's
    /// `/usr/share/keyrings/archlinux.gpg` (package `archlinux-keyring`), the target's then
    /// the host's. No keyring anywhere is a `Missing` error whose hint lists the choices.
    fn locate(root: &Path, host: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            if !p.exists() {
                return Err(Error::missing(format!(
                    "keyring {}: no such file or directory",
                    p.display()
                ))
                .hint("--keyring takes a directory like /usr/share/pacman/keyrings or its archlinux.gpg"));
            }
            return Ok(p.to_path_buf());
        }
        // (what must exist, what to load): Arch's layout in the target, then on the host,
        // then Debian's in either.
        let mut candidates: Vec<(PathBuf, PathBuf)> = Vec::new();
        for base in [root, host] {
            let dir = below(base, Path::new(PACMAN_KEYRINGS));
            candidates.push((dir.join("archlinux.gpg"), dir));
        }
        for base in [root, host] {
            let deb = below(base, Path::new(DEBIAN_KEYRING));
            candidates.push((deb.clone(), deb));
        }
        let mut seen = HashSet::new();
        let mut looked = Vec::new();
        for (probe, load) in candidates {
            if !seen.insert(probe.clone()) {
                continue;
            }
            if probe.is_file() {
                return Ok(load);
            }
            looked.push(load.display().to_string());
        }
        Err(Error::missing(format!(
            "no Arch keyring found (looked in {})",
            looked.join(", ")
        ))
        .hint(
            "pass --keyring DIR (a copy of an Arch system's /usr/share/pacman/keyrings), \
             install the keyring (apt-get install archlinux-keyring, pacman -S archlinux-keyring), \
             or skip the check with --skip-verify",
        ))
    }

    /// The keyrings a `--keyring` given `explicit.len()` times names, in order; with none,
    /// the one [`Keyring::find`] finds. Verifying against several, the first that holds the
    /// signer's key decides ([`super::accept_any`]).
    pub fn find_all(root: &Path, host: &Path, explicit: &[PathBuf]) -> Result<Vec<Keyring>> {
        if explicit.is_empty() {
            return Ok(vec![Keyring::find(root, host, None)?]);
        }
        explicit
            .iter()
            .map(|p| Keyring::find(root, host, Some(p)))
            .collect()
    }

    /// Where the keyring was loaded from, for messages.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Whether the keyring is pacman's GnuPG directory rather than Arch's keyring files.
    pub fn is_gnupg(&self) -> bool {
        Keyring::is_gnupg_dir(&self.source)
    }

    /// Whether `path` is pacman's GnuPG directory (it has a `trustdb.gpg`).
    fn is_gnupg_dir(path: &Path) -> bool {
        path.is_dir() && path.join(TRUSTDB).exists()
    }

    /// The three files of an Arch keyring at `path`: `archlinux.gpg`, `archlinux-trusted` and
    /// `archlinux-revoked` in a directory, or the .gpg file itself with `STEM-trusted` and
    /// `STEM-revoked` beside it.
    pub fn files(path: &Path) -> [PathBuf; 3] {
        if path.is_dir() {
            return ["archlinux.gpg", "archlinux-trusted", "archlinux-revoked"]
                .map(|n| path.join(n));
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new("."));
        [
            path.to_path_buf(),
            dir.join(format!("{stem}-trusted")),
            dir.join(format!("{stem}-revoked")),
        ]
    }

    /// How many certificates the keyring holds (that parsed).
    pub fn key_count(&self) -> usize {
        self.certs.len()
    }

    /// How many main keys can vouch for packager keys.
    pub fn main_key_count(&self) -> usize {
        self.anchors.len()
    }

    /// Certificates in the file that could not be read (an unknown algorithm, damage).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    fn build(
        source: PathBuf,
        revoked_name: String,
        certs: Vec<SignedPublicKey>,
        skipped: usize,
        trusted: HashMap<String, u8>,
        revoked: HashSet<String>,
    ) -> Keyring {
        let mut by_fingerprint = HashMap::new();
        let mut by_key_id: HashMap<KeyId, Vec<KeyRef>> = HashMap::new();
        for (i, cert) in certs.iter().enumerate() {
            let primary = KeyRef {
                cert: i,
                subkey: None,
            };
            // A certificate listed twice: the first copy wins, as the file is read in order.
            by_fingerprint
                .entry(cert.primary_key.fingerprint())
                .or_insert(primary);
            by_key_id
                .entry(cert.primary_key.legacy_key_id())
                .or_default()
                .push(primary);
            for (j, sub) in cert.public_subkeys.iter().enumerate() {
                let r = KeyRef {
                    cert: i,
                    subkey: Some(j),
                };
                by_fingerprint.entry(sub.key.fingerprint()).or_insert(r);
                by_key_id
                    .entry(sub.key.legacy_key_id())
                    .or_default()
                    .push(r);
            }
        }
        let mut anchors = HashMap::new();
        for (fpr, level) in &trusted {
            if revoked.contains(fpr) {
                continue;
            }
            if let Some((anchor, _)) = anchor_of(&certs, fpr, *level) {
                anchors.insert(fpr.clone(), anchor);
            }
        }
        Keyring {
            source,
            revoked_name,
            certs,
            by_fingerprint,
            by_key_id,
            trusted,
            revoked,
            anchors,
            skipped,
        }
    }

    /// The keys a signature names as its issuer: by fingerprint when it carries one, else by
    /// key ID (which can, rarely, match several keys).
    pub(crate) fn lookup(&self, fingerprints: &[&Fingerprint], key_ids: &[&KeyId]) -> Vec<KeyRef> {
        if !fingerprints.is_empty() {
            return fingerprints
                .iter()
                .filter_map(|f| self.by_fingerprint.get(*f).copied())
                .take(1)
                .collect();
        }
        let mut out = Vec::new();
        for id in key_ids {
            for r in self.by_key_id.get(*id).into_iter().flatten() {
                if !out.contains(r) {
                    out.push(*r);
                }
            }
        }
        out
    }

    /// Whether a primary fingerprint (uppercase hex) is a main key of this keyring.
    pub(crate) fn is_main_key(&self, fpr: &str) -> bool {
        self.trusted.contains_key(fpr)
    }

    /// Whether a primary fingerprint (uppercase hex) is listed in archlinux-revoked.
    pub(crate) fn is_listed_revoked(&self, fpr: &str) -> bool {
        self.revoked.contains(fpr)
    }

    pub(crate) fn revoked_name(&self) -> &str {
        &self.revoked_name
    }
}

/// A summary: the certificates themselves would fill pages.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("source", &self.source)
            .field("keys", &self.certs.len())
            .field("main_keys", &self.anchors.len())
            .field("revoked", &self.revoked.len())
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// The key `fpr` (uppercase hex) as an anchor with ownertrust `level`, with its state: `None`
/// when the keyring lacks it, it is revoked, or no self-signature binds it.
fn anchor_of(
    certs: &[SignedPublicKey],
    fpr: &str,
    level: u8,
) -> Option<(AnchorInfo, trust::KeyState)> {
    let i = certs
        .iter()
        .position(|c| hex_upper(&c.primary_key.fingerprint()) == fpr)?;
    let state = trust::primary_state(&certs[i]);
    if state.revoked.is_some() || state.newest_self_sig.is_none() {
        return None;
    }
    let anchor = AnchorInfo {
        cert: i,
        level,
        created: state.created,
        expires: state.expires,
    };
    Some((anchor, state))
}

/// Uppercase hex, the way Arch's lists and pacman's messages write fingerprints.
pub(crate) fn hex_upper(f: &Fingerprint) -> String {
    f.to_string().to_uppercase()
}

/// Every certificate in an armoured or binary keyring; certificates that do not parse are
/// counted and skipped, as GnuPG's import skips them.
fn parse_certs(bytes: &[u8]) -> Result<(Vec<SignedPublicKey>, usize)> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let Some(&first) = first else {
        return Err(Error::invalid("the keyring is empty"));
    };
    let mut certs = Vec::new();
    let mut skipped = 0;
    let mut take = |it: Box<dyn Iterator<Item = pgp::errors::Result<SignedPublicKey>> + '_>,
                    skipped: &mut usize| {
        for c in it {
            match c {
                Ok(c) => certs.push(c),
                Err(_) => *skipped += 1,
            }
        }
    };
    if first & 0x80 != 0 {
        let it = SignedPublicKey::from_bytes_many(bytes)
            .map_err(|e| Error::invalid("not an OpenPGP keyring").with_source(e))?;
        take(it, &mut skipped);
    } else {
        // rpgp reads one armour block per call; a keyring may be several blocks end to end.
        // Each block is dearmoured here and parsed as binary, so the packet parser is built
        // for one reader type only (each one costs tens of KiB in the static binary).
        let text = String::from_utf8_lossy(bytes);
        let marker = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        let starts: Vec<usize> = text.match_indices(marker).map(|(i, _)| i).collect();
        if starts.is_empty() {
            return Err(Error::invalid(
                "not an OpenPGP keyring (neither binary nor an armoured public key block)",
            ));
        }
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(text.len());
            match crate::sig::dearmor(&text.as_bytes()[start..end]) {
                Ok(bin) => match SignedPublicKey::from_bytes_many(&bin[..]) {
                    Ok(it) => take(it, &mut skipped),
                    Err(_) => skipped += 1,
                },
                Err(_) => skipped += 1,
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::invalid("no readable key in the keyring"));
    }
    Ok((certs, skipped))
}

/// A fingerprint as the lists write it: 40 hex digits (v4) or 64 (v6), any case.
fn fingerprint_field(s: &str) -> Option<String> {
    let ok = (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| s.to_ascii_uppercase())
}

/// `archlinux-trusted`: `FINGERPRINT:LEVEL:` per line (GnuPG ownertrust); `#` comments.
pub(crate) fn parse_trusted(text: &str) -> Result<HashMap<String, u8>> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let fpr = fields
            .next()
            .and_then(fingerprint_field)
            .ok_or_else(|| Error::invalid(format!("line {}: not FINGERPRINT:LEVEL:", n + 1)))?;
        let level = match fields.next().map(str::trim) {
            None | Some("") => DEFAULT_LEVEL,
            Some(l) => l.parse::<u8>().map_err(|_| {
                Error::invalid(format!("line {}: trust level {l:?} is not a number", n + 1))
            })?,
        };
        out.insert(fpr, level);
    }
    Ok(out)
}

/// A GnuPG keyring file with its ring trust packets (tag 12, GnuPG's local bookkeeping
/// after each signature and user ID) left out: they are not part of a certificate.
fn without_trust_packets(bytes: &[u8]) -> Result<Vec<u8>> {
    const RING_TRUST: u8 = 12;
    let damaged = |at: usize| Error::invalid(format!("damaged keyring: bad packet at byte {at}"));
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let ctb = bytes[at];
        if ctb & 0x80 == 0 {
            return Err(damaged(at));
        }
        let byte = |i: usize| bytes.get(at + i).map(|&b| usize::from(b));
        let (tag, head, len) = if ctb & 0x40 != 0 {
            let tag = ctb & 0x3f;
            match byte(1).ok_or_else(|| damaged(at))? {
                l @ 0..=191 => (tag, 2, l),
                l @ 192..=223 => {
                    let l2 = byte(2).ok_or_else(|| damaged(at))?;
                    (tag, 3, ((l - 192) << 8) + l2 + 192)
                }
                255 => {
                    let mut l = 0;
                    for i in 2..6 {
                        l = (l << 8) | byte(i).ok_or_else(|| damaged(at))?;
                    }
                    (tag, 6, l)
                }
                // Partial lengths are for data packets, never in a keyring.
                _ => return Err(damaged(at)),
            }
        } else {
            let tag = (ctb >> 2) & 0x0f;
            let n = match ctb & 3 {
                0 => 1,
                1 => 2,
                2 => 4,
                _ => return Err(damaged(at)),
            };
            let mut l = 0;
            for i in 1..=n {
                l = (l << 8) | byte(i).ok_or_else(|| damaged(at))?;
            }
            (tag, 1 + n, l)
        };
        let end = at
            .checked_add(head)
            .and_then(|e| e.checked_add(len))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| damaged(at))?;
        if tag != RING_TRUST {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
    Ok(out)
}

/// GnuPG's `trustdb.gpg`: 40-byte records, the first a version record (type 1, "gpg",
/// version 3). A trust record (type 12) holds a v4 fingerprint (bytes 2..22) and the
/// ownertrust byte (byte 22). Returns uppercase fingerprint → ownertrust byte.
pub(crate) fn parse_trustdb(bytes: &[u8]) -> Result<HashMap<String, u8>> {
    if bytes.len() < TDB_RECORD || bytes.len() % TDB_RECORD != 0 {
        return Err(Error::invalid(format!(
            "not a GnuPG trust database: {} bytes is not a whole number of {TDB_RECORD}-byte \
             records",
            bytes.len()
        )));
    }
    let mut records = bytes.chunks_exact(TDB_RECORD);
    let version = records.next().unwrap_or_default();
    if version.first() != Some(&REC_VERSION) || version.get(1..4) != Some(b"gpg".as_slice()) {
        return Err(Error::invalid(
            "not a GnuPG trust database: no version record at its start",
        ));
    }
    if version.get(4) != Some(&TDB_VERSION) {
        return Err(Error::invalid(format!(
            "GnuPG trust database version {} (only {TDB_VERSION} is read)",
            version.get(4).copied().unwrap_or(0)
        )));
    }
    let mut out = HashMap::new();
    for (n, rec) in records.enumerate() {
        let typ = rec.first().copied().unwrap_or(0);
        if !REC_KNOWN.contains(&typ) {
            return Err(Error::invalid(format!(
                "damaged GnuPG trust database: record {} has unknown type {typ}",
                n + 1
            )));
        }
        if typ != REC_TRUST {
            continue;
        }
        let (Some(fpr), Some(&ot)) = (rec.get(2..22), rec.get(22)) else {
            continue;
        };
        let hex: String = fpr.iter().map(|b| format!("{b:02X}")).collect();
        out.insert(hex, ot);
    }
    Ok(out)
}

/// `archlinux-revoked`: one fingerprint per line.
pub(crate) fn parse_revoked(text: &str) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fpr = fingerprint_field(line)
            .ok_or_else(|| Error::invalid(format!("line {}: not a fingerprint", n + 1)))?;
        out.insert(fpr);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "2AC0A42EFB0B5CBC7A0402ED4DC95B6D7BE9892E";

    /// A trust database as `gpg --import-ownertrust` writes it (layout checked against a
    /// real one): version record, then one trust record per key.
    fn trustdb(trust: &[(&str, u8)]) -> Vec<u8> {
        let mut v = vec![0u8; TDB_RECORD];
        v[..5].copy_from_slice(&[1, b'g', b'p', b'g', 3]);
        for (fpr, ot) in trust {
            let mut r = [0u8; TDB_RECORD];
            r[0] = REC_TRUST;
            for (i, b) in r[2..22].iter_mut().enumerate() {
                *b = u8::from_str_radix(&fpr[2 * i..2 * i + 2], 16).unwrap();
            }
            r[22] = *ot;
            v.extend_from_slice(&r);
        }
        // A hash table record, skipped.
        let mut h = [0u8; TDB_RECORD];
        h[0] = 10;
        v.extend_from_slice(&h);
        v
    }

    #[test]
    fn ring_trust_packets_are_dropped() {
        // Old-format user ID (tag 13) "ab", old-format trust packet (tag 12), new-format
        // user ID with a two-byte length.
        let mut k = vec![0xb4, 2, b'a', b'b', 0xb0, 2, 0, 0];
        let mut long = vec![0xcd, 192, 8];
        long.extend(std::iter::repeat_n(b'x', 200));
        k.extend_from_slice(&long);
        let out = without_trust_packets(&k).unwrap();
        assert_eq!(out[..4], [0xb4, 2, b'a', b'b']);
        assert_eq!(out[4..], long[..]);
        for bad in [&k[..k.len() - 1], &[0x01, 0][..], &[0xb4][..]] {
            assert_eq!(
                without_trust_packets(bad).unwrap_err().kind(),
                Kind::Invalid
            );
        }
    }

    #[test]
    fn trustdb_trust_records_give_ownertrust() {
        let b = "69E6471E3AE065297529832E6BA0F5A2037F4F41";
        let t = parse_trustdb(&trustdb(&[(A, 6), (b, 0x84)])).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[A], 6);
        assert_eq!(t[b], 0x84);
    }

    #[test]
    fn malformed_trustdbs_are_invalid() {
        let good = trustdb(&[(A, 6)]);
        for bad in [
            Vec::new(),
            good[..good.len() - 1].to_vec(),
            good[..20].to_vec(),
            vec![0u8; 80],
            b"garbage garbage garbage garbage garbage!".to_vec(),
        ] {
            let e = parse_trustdb(&bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Invalid, "{e}");
            assert!(e.to_string().contains("trust database"), "{e}");
        }
        let mut v2 = good.clone();
        v2[4] = 2;
        assert!(parse_trustdb(&v2)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        let mut odd = good;
        odd[TDB_RECORD] = 99;
        assert!(parse_trustdb(&odd)
            .unwrap_err()
            .to_string()
            .contains("record 1"));
    }

    #[test]
    fn trusted_lines_are_ownertrust() {
        let t = parse_trusted(&format!(
            "# main keys\n{A}:4:\n{}:5:\n\n{}\n",
            A.to_lowercase().replace('2', "3"),
            "69E6471E3AE065297529832E6BA0F5A2037F4F41:"
        ))
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[A], 4);
        assert_eq!(t["3AC0A43EFB0B5CBC7A0403ED4DC95B6D7BE9893E"], 5);
        // No level: the marginal trust keyringctl always writes.
        assert_eq!(t["69E6471E3AE065297529832E6BA0F5A2037F4F41"], DEFAULT_LEVEL);
    }

    #[test]
    fn malformed_lists_are_invalid() {
        let e = parse_trusted("2AC0A42E:4:\n").unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid);
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = parse_trusted(&format!("{A}:four:\n")).unwrap_err();
        assert_eq!(e.kind(), Kind::Invalid);
        let e = parse_revoked(&format!("{A}\nnot-a-key\n")).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn revoked_list_is_uppercased() {
        let r = parse_revoked(&format!("{}\n  \n", A.to_lowercase())).unwrap();
        assert!(r.contains(A));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn empty_or_foreign_keyrings_are_invalid() {
        assert_eq!(parse_certs(b"  \n").unwrap_err().kind(), Kind::Invalid);
        assert_eq!(parse_certs(b"hello").unwrap_err().kind(), Kind::Invalid);
    }

    #[test]
    fn find_explains_the_choices_when_there_is_no_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let e = Keyring::find(dir.path(), dir.path(), None).unwrap_err();
        assert_eq!(e.kind(), Kind::Missing);
        let hint = e.hint_text().unwrap_or_default();
        for want in ["--keyring", "archlinux-keyring", "--skip-verify"] {
            assert!(hint.contains(want), "hint lacks {want}: {hint}");
        }
        assert!(e.to_string().contains("usr/share/pacman/keyrings"), "{e}");
    }

    #[test]
    fn a_keyring_without_its_lists_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("archlinux.gpg"), b"x").unwrap();
        let e = Keyring::load(dir.path()).unwrap_err();
        assert_eq!(e.kind(), Kind::Missing);
        assert!(e.to_string().contains("archlinux-trusted"), "{e}");
    }
}
