//! One pass over a signed file gives both its SHA-256 and the signature's hash.
//!
//! A v4 or v6 signature (RFC 9580 §5.2.4) hashes the file's bytes, then the signature's own
//! hashed part (version, type, algorithms, hashed subpackets), then a trailer: the version,
//! 0xFF, and the length of that hashed part as 4 bytes big-endian. A v6 signature puts a salt
//! before the file. So for a v4 signature over SHA-256, the hash state at the file's last byte
//! *is* the file's SHA-256 state: a copy of it finishes into the checksum, the original goes on
//! with the trailer into the digest the key signed. Any other signature runs its own hash and
//! SHA-256 side by side over the same bytes.
//!
//! rpgp builds the hashed part and the trailer (`SignatureConfig::hash_signature_data`,
//! `trailer`) and checks the digest with the key (`VerifyingKey::verify`); what happens in
//! between, feeding the file, is ours, so the bytes can come from a disk or a socket.

use pgp::packet::{Signature, SignatureVersion, SignatureVersionSpecific};
use pgp::types::{KeyVersion, VerifyingKey};
use sha2::digest::DynDigest;
use sha2::{Digest, Sha256};

use crate::hash::Digester;

/// The hashes a signed file needs, fed once with its bytes (or SHA-256 alone, for a file
/// taken unverified).
pub struct FileDigest {
    hashes: Hashes,
}

enum Hashes {
    /// No signature: the file's SHA-256 only.
    Plain(Sha256),
    /// A v4 SHA-256 signature: one hash is both the file's SHA-256 and the signature's.
    Shared(Sha256),
    /// Any other: the signature's hash (after a v6 salt) and SHA-256, side by side.
    Apart {
        sig: Box<dyn DynDigest + Send>,
        salt: Vec<u8>,
        file: Sha256,
    },
}

impl FileDigest {
    /// SHA-256 alone, for a file no signature is checked over.
    pub fn sha256_only() -> FileDigest {
        FileDigest {
            hashes: Hashes::Plain(Sha256::new()),
        }
    }

    /// The hashes for the data `sig` signs; `None` when rpgp has no such hash.
    pub(crate) fn for_signature(sig: &Signature) -> Option<FileDigest> {
        let config = sig.config()?;
        let hashes = match &config.version_specific {
            SignatureVersionSpecific::V4
                if config.hash_alg == pgp::crypto::hash::HashAlgorithm::Sha256 =>
            {
                Hashes::Shared(Sha256::new())
            }
            specific => {
                let salt = match specific {
                    SignatureVersionSpecific::V6 { salt } => salt.clone(),
                    _ => Vec::new(),
                };
                let mut sig = config.hash_alg.new_hasher().ok()?;
                sig.update(&salt);
                Hashes::Apart {
                    sig,
                    salt,
                    file: Sha256::new(),
                }
            }
        };
        Some(FileDigest { hashes })
    }

    /// The file's SHA-256 in hex, for a file taken unverified.
    pub fn sha256_hex(self) -> String {
        crate::hash::hex(&self.split().0)
    }

    /// The file's SHA-256, and the signature's hash of the file, still open for the trailer.
    pub(crate) fn split(self) -> ([u8; 32], Option<Box<dyn DynDigest + Send>>) {
        match self.hashes {
            Hashes::Plain(h) => (h.finalize().into(), None),
            // The state at the file's last byte, copied: finished, it is the file's SHA-256.
            Hashes::Shared(h) => (h.clone().finalize().into(), Some(Box::new(h))),
            Hashes::Apart { sig, file, .. } => (file.finalize().into(), Some(sig)),
        }
    }
}

impl Digester for FileDigest {
    fn consume(&mut self, bytes: &[u8]) {
        match &mut self.hashes {
            Hashes::Plain(h) | Hashes::Shared(h) => Digest::update(h, bytes),
            Hashes::Apart { sig, file, .. } => {
                sig.update(bytes);
                Digest::update(file, bytes);
            }
        }
    }

    fn restart(&mut self) {
        match &mut self.hashes {
            Hashes::Plain(h) | Hashes::Shared(h) => Digest::reset(h),
            Hashes::Apart { sig, salt, file } => {
                sig.reset();
                sig.update(salt);
                Digest::reset(file);
            }
        }
    }
}

/// Whether `sig`, whose hash has seen the whole file (`data`), is a signature by `key`: the
/// hashed part and the trailer are added, the first two bytes of the digest must be the ones
/// the packet carries (rpgp's own rule, for v4 as for v6), and the key checks the digest.
pub(crate) fn holds(
    sig: &Signature,
    key: &impl VerifyingKey,
    mut data: Box<dyn DynDigest + Send>,
) -> bool {
    let (Some(config), Some(left), Some(mpis)) =
        (sig.config(), sig.signed_hash_value(), sig.signature())
    else {
        return false;
    };
    // Only a v6 key makes v6 signatures, and a v6 key makes nothing else (RFC 9580 §5.2.3).
    let v6_sig = config.version() == SignatureVersion::V6;
    if v6_sig != (key.version() == KeyVersion::V6) {
        return false;
    }
    if let SignatureVersionSpecific::V6 { salt } = &config.version_specific {
        if config.hash_alg.salt_len() != Some(salt.len()) {
            return false;
        }
    }
    let Ok(len) = config.hash_signature_data(&mut data) else {
        return false;
    };
    let Ok(trailer) = config.trailer(len) else {
        return false;
    };
    data.update(&trailer);
    let digest = data.finalize();
    digest.get(..2) == Some(&left[..]) && key.verify(config.hash_alg, &digest, mpis).is_ok()
}

/// A real Arch package and its packager's signature (kpcyrd, RSA subkey, SHA-256), checked
/// against Debian's copy of the Arch keyring.
#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::error::Kind;
    use crate::sig::{accept, check_file, Keyring};

    const CMATRIX: &str = "cmatrix-2.0-3-x86_64.pkg.tar.zst";

    fn real_arch(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/real-arch")
            .join(name)
    }

    fn arch_keyring() -> Keyring {
        let path = Path::new("/usr/share/keyrings/archlinux.gpg");
        assert!(
            path.is_file(),
            "{} is missing: apt-get install archlinux-keyring (scripts/test-deps.sh)",
            path.display()
        );
        Keyring::load(path).unwrap()
    }

    fn file() -> Vec<u8> {
        std::fs::read(real_arch(CMATRIX)).unwrap()
    }

    fn sig() -> Vec<u8> {
        std::fs::read(real_arch(&format!("{CMATRIX}.sig"))).unwrap()
    }

    #[test]
    fn one_read_gives_the_checksum_and_a_good_signature() {
        let k = arch_keyring();
        let c = check_file(
            &k,
            &real_arch(CMATRIX),
            &real_arch(&format!("{CMATRIX}.sig")),
        )
        .unwrap();
        assert_eq!(
            c.sha256,
            crate::hash::sha256_hex(&file()[..]).unwrap(),
            "the shared hash must finish into the file's own SHA-256"
        );
        let v = c.signature.unwrap();
        assert_eq!(v.signer_key, "33EBB8A8E1C5653645B1232A45A650E2638C536D");
    }

    #[test]
    fn chunks_and_a_restart_change_nothing() {
        let k = arch_keyring();
        let pending = accept(&k, &sig()).unwrap();
        let data = file();
        let mut d = pending.digest();
        d.consume(b"bytes of an earlier attempt");
        d.restart();
        for chunk in data.chunks(777) {
            d.consume(chunk);
        }
        let c = pending.finish(d);
        assert!(c.signature.is_ok(), "{:?}", c.signature);
        assert_eq!(c.sha256, crate::hash::sha256_hex(&data[..]).unwrap());
    }

    #[test]
    fn a_flipped_byte_or_a_missing_byte_is_a_bad_signature() {
        let k = arch_keyring();
        let pending = accept(&k, &sig()).unwrap();
        let data = file();
        let mut flipped = data.clone();
        flipped[data.len() / 3] ^= 0x80;
        for bytes in [&flipped[..], &data[..data.len() - 1], b""] {
            let mut d = pending.digest();
            d.consume(bytes);
            let c = pending.finish(d);
            let e = c.signature.unwrap_err();
            assert_eq!(e.kind(), Kind::Verify);
            assert!(e.to_string().contains("bad signature by"), "{e}");
            assert_eq!(c.sha256, crate::hash::sha256_hex(bytes).unwrap());
        }
    }

    /// RFC 9580 §5.2.4 done by hand over the packet's raw bytes: SHA-256 over the file, the
    /// signature's version..hashed subpackets, then 0x04 0xFF and that part's length. The
    /// first two bytes of the digest are the ones the packet carries.
    #[test]
    fn the_trailer_is_the_one_the_rfc_describes() {
        let raw = sig();
        // An old-format header with a two-byte length (tag 2, signature).
        assert_eq!(raw[0], 0x89);
        let body = &raw[3..];
        assert_eq!(body[..4], [4, 0x00, 1, 8], "v4, binary, RSA, SHA-256");
        let hashed_len = usize::from(u16::from_be_bytes([body[4], body[5]]));
        let hashed = &body[..6 + hashed_len];
        let unhashed_len = usize::from(u16::from_be_bytes([
            body[6 + hashed_len],
            body[7 + hashed_len],
        ]));
        let left = &body[8 + hashed_len + unhashed_len..][..2];

        let mut h = Sha256::new();
        Digest::update(&mut h, file());
        Digest::update(&mut h, hashed);
        Digest::update(&mut h, [0x04, 0xFF]);
        Digest::update(&mut h, u32::try_from(hashed.len()).unwrap().to_be_bytes());
        assert_eq!(&h.finalize()[..2], left);
    }

    #[test]
    fn sha256_only_is_plain_sha256() {
        let mut d = FileDigest::sha256_only();
        d.consume(b"a");
        d.consume(b"bc");
        assert_eq!(
            d.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
