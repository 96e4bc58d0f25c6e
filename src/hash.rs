//! SHA-256, the checksum pacman's databases, `.MTREE` files and people use.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whatever must see a file's bytes once, in order, as they are read or as they arrive: its
/// SHA-256, or a signature's hash that gives the SHA-256 too (`sig::FileDigest`).
pub trait Digester: Send {
    /// The next bytes of the file.
    fn consume(&mut self, bytes: &[u8]);
    /// Forgets every byte seen so far: the file starts over.
    fn restart(&mut self);
}

impl Digester for Sha256 {
    fn consume(&mut self, bytes: &[u8]) {
        Digest::update(self, bytes);
    }

    fn restart(&mut self) {
        Digest::reset(self);
    }
}

/// Feeds everything `r` yields into `h`, through `buf`.
pub fn update_from<D: Digester + ?Sized>(
    h: &mut D,
    mut r: impl Read,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut total = 0;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                h.consume(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The SHA-256 of everything `r` yields, in hex.
pub fn sha256_hex(r: impl Read) -> io::Result<String> {
    let mut h = Sha256::new();
    update_from(&mut h, r, &mut vec![0u8; 256 << 10])?;
    Ok(hex(&h.finalize()))
}

/// The SHA-256 of the file at `p`, lower-case hex; errors name the file.
pub fn sha256_file(p: &std::path::Path) -> crate::error::Result<String> {
    let f = std::fs::File::open(p).map_err(|e| crate::error::Error::path(e, p))?;
    sha256_hex(f).map_err(|e| crate::error::Error::path(e, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(&b"abc"[..]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn restart_forgets_what_was_seen() {
        let mut h = Sha256::new();
        h.consume(b"something else");
        h.restart();
        h.consume(b"abc");
        assert_eq!(hex(&h.finalize()), sha256_hex(&b"abc"[..]).unwrap());
    }
}
