//! Archives: package (tar) extraction into a jailed root, `.MTREE` checks, initramfs images.

pub mod extract;
pub mod initramfs;
pub mod rooted;
pub mod verify;

/// Decompression sits below every format that needs it; `archive::decompress` stays a valid
/// path for the callers that name it so.
pub use crate::decompress;

use std::io::{self, Read};

/// An archive member's data, which must be exactly as long as its header says: a stream that
/// ends early is an error, never a short file.
pub(crate) struct Exact<'a, R: Read + ?Sized> {
    pub(crate) inner: &'a mut R,
    pub(crate) left: u64,
    /// A read failed: the input, not the caller, is at fault.
    pub(crate) failed: bool,
}

impl<R: Read + ?Sized> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self
            .inner
            .read(&mut buf[..want])
            .inspect_err(|_| self.failed = true)?;
        if n == 0 {
            self.failed = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the data ends {} bytes short of the size in its header",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
