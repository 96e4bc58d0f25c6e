//! The kernel release inside a bzImage (`vmlinuz`): the x86 boot protocol's header names a
//! version string, whose first word is what `uname -r` will say.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// `6.2.8-arch1-1` from `/boot/vmlinuz-linux`.
pub fn release(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::path(e, path))?;
    let mut hdr = [0u8; 0x210];
    f.read_exact(&mut hdr)
        .map_err(|_| Error::invalid(format!("{}: too short for a kernel image", path.display())))?;
    // "HdrS" at 0x202 marks the boot protocol header; 0x20E holds the version string's
    // offset minus 0x200.
    if &hdr[0x202..0x206] != b"HdrS" {
        return Err(Error::invalid(format!(
            "{}: not an x86 kernel image (no HdrS header)",
            path.display()
        )));
    }
    let ptr = u16::from_le_bytes([hdr[0x20E], hdr[0x20F]]) as u64;
    if ptr == 0 {
        return Err(Error::invalid(format!(
            "{}: the kernel image names no version",
            path.display()
        )));
    }
    f.seek(SeekFrom::Start(ptr + 0x200))
        .map_err(|e| Error::path(e, path))?;
    let mut s = Vec::with_capacity(128);
    f.take(256)
        .read_to_end(&mut s)
        .map_err(|e| Error::path(e, path))?;
    let end = s
        .iter()
        .position(|b| *b == 0 || *b == b' ')
        .unwrap_or(s.len());
    let rel = String::from_utf8_lossy(&s[..end]).into_owned();
    if rel.is_empty() || !rel.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "{}: unreadable kernel version string",
            path.display()
        )));
    }
    Ok(rel)
}

/// A minimal image with the header fields the kernel writes, for tests and fake roots.
pub fn fake_image(release: &str) -> Vec<u8> {
    let mut img = vec![0u8; 0x400];
    img[0x1FE] = 0x55;
    img[0x1FF] = 0xAA;
    img[0x202..0x206].copy_from_slice(b"HdrS");
    let at = 0x300usize;
    img[0x20E..0x210].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
    let s = format!("{release} (builder@rtool) #1 SMP PREEMPT_DYNAMIC");
    img[at..at + s.len()].copy_from_slice(s.as_bytes());
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_release() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vmlinuz-linux");
        std::fs::write(&p, fake_image("6.2.8-arch1-1")).unwrap();
        assert_eq!(release(&p).unwrap(), "6.2.8-arch1-1");
        std::fs::write(&p, b"not a kernel").unwrap();
        assert!(release(&p).is_err());
        std::fs::write(&p, vec![0u8; 0x400]).unwrap();
        assert!(release(&p).unwrap_err().to_string().contains("no HdrS"));
    }
}
