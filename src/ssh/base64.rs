//! Base64 (RFC 4648, the standard alphabet) for key blobs and fingerprints.
//!
//! Decoding is strict, as OpenSSH's is: padded to a multiple of four, `=` only at the end, and
//! the bits past the last whole byte zero. Anything else is not a key someone copied intact.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// The bytes `text` encodes; the error says what is wrong with it.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let s = text.as_bytes();
    if s.is_empty() || s.len() % 4 != 0 {
        return Err(format!(
            "the base64 is {} characters long, not a multiple of 4 (cut short?)",
            s.len()
        ));
    }
    let pad = s.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return Err("the base64 ends in too much padding".into());
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, quad) in s.chunks_exact(4).enumerate() {
        let last = (i + 1) * 4 == s.len();
        let n = if last { 4 - pad } else { 4 };
        let mut acc = 0u32;
        for (j, &c) in quad.iter().enumerate() {
            let v = if j < n {
                value(c).ok_or_else(|| {
                    format!(
                        "{:?} at position {} is not a base64 character",
                        c as char,
                        i * 4 + j + 1
                    )
                })?
            } else {
                0
            };
            acc = (acc << 6) | v;
        }
        let bytes = acc.to_be_bytes();
        // Four characters carry three bytes; with padding, the bits past the last byte are 0.
        let keep = n * 6 / 8;
        if n < 4 && acc & ((1 << ((3 - keep) * 8)) - 1) != 0 {
            return Err("the base64 has stray bits before its padding".into());
        }
        out.extend_from_slice(&bytes[1..1 + keep]);
    }
    Ok(out)
}

/// `data` in base64 without the `=` padding, as OpenSSH prints SHA256 fingerprints.
pub fn encode_unpadded(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let mut b = [0u8; 3];
        b[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for k in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_both_ways() {
        for (plain, padded) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(decode(padded).unwrap(), plain.as_bytes(), "{padded}");
            assert_eq!(
                encode_unpadded(plain.as_bytes()),
                padded.trim_end_matches('=')
            );
        }
        assert_eq!(encode_unpadded(&[0xfb, 0xff]), "+/8");
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn strict_about_length_padding_alphabet_and_stray_bits() {
        assert!(decode("").is_err());
        assert!(decode("Zm9").unwrap_err().contains("multiple of 4"));
        assert!(decode("Zg").is_err(), "unpadded");
        assert!(decode("Z===").is_err());
        assert!(decode("Zg==Zg==").is_err(), "padding in the middle");
        assert!(decode("Zm9-").unwrap_err().contains("'-' at position 4"));
        assert!(decode("Zm 9").is_err());
        // "Zh==" carries a bit past the one byte it encodes.
        assert!(decode("Zh==").unwrap_err().contains("stray bits"));
        assert!(decode("Zm9=").unwrap_err().contains("stray bits"));
    }

    #[test]
    fn every_byte_value_survives() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut enc = encode_unpadded(&all);
        while enc.len() % 4 != 0 {
            enc.push('=');
        }
        assert_eq!(decode(&enc).unwrap(), all);
    }
}
