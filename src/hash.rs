//! SHA-256, the checksum pacman's databases, `.MTREE` files and people use.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds everything `r` yields into `h`, through `buf`.
pub fn update_from(h: &mut Sha256, mut r: impl Read, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                h.update(&buf[..n]);
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
}
