//! Decompression chosen by the magic bytes, never by the file name.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Xz,
    Gzip,
    Bzip2,
    /// A bare tar (`.pkg.tar`).
    None,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::None => "none (plain tar)",
        })
    }
}

/// What the first bytes of a file say it is. `head` should hold at least 512 bytes when the
/// file has them (a plain tar is recognised by its header).
pub fn detect(head: &[u8]) -> Result<Compression> {
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Compression::Zstd);
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Ok(Compression::Xz);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Compression::Gzip);
    }
    if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
        return Ok(Compression::Bzip2);
    }
    if head.len() >= 512 && tar_header_checksum_ok(&head[..512]) {
        return Ok(Compression::None);
    }
    Err(Error::invalid(format!(
        "unknown compression: {}",
        describe(head)
    )))
}

/// A few words on what unknown content looks like, for the error message.
fn describe(head: &[u8]) -> String {
    if head.is_empty() {
        return "the file is empty".into();
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(256)]).to_ascii_lowercase();
    let trimmed = text.trim_start();
    if trimmed.starts_with("<!doctype html")
        || trimmed.starts_with("<html")
        || text.contains("<head")
    {
        return "it is an HTML page (an error page saved as a package?)".into();
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) || head.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        return "lz4, which pacman packages do not use".into();
    }
    let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "not zstd, xz, gzip, bzip2 or tar (starts with {})",
        hex.join(" ")
    )
}

/// The ustar checksum: the header's bytes summed with the checksum field read as spaces.
fn tar_header_checksum_ok(h: &[u8]) -> bool {
    let field = &h[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| ('0'..='7').contains(c))
        .collect();
    let Ok(want) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    sum == want && h.iter().any(|&b| b != 0)
}

/// Counts the bytes that pass through, shared with whoever reports progress or offsets.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    pub fn new(inner: R) -> (Counting<R>, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A decompressing reader over `r` for the format its first bytes show.
pub fn decoder<R: Read + Send + 'static>(r: R) -> Result<(Compression, Box<dyn Read + Send>)> {
    decoder_boxed(Box::new(r))
}

/// The one body behind [`decoder`]: generic decoders over each caller's reader type would
/// each carry their own copy of four decompressors.
fn decoder_boxed(mut r: Box<dyn Read + Send>) -> Result<(Compression, Box<dyn Read + Send>)> {
    let mut head = Vec::with_capacity(512);
    r.by_ref()
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(e, "reading the first bytes"))?;
    let kind = detect(&head)?;
    let r = BufReader::with_capacity(256 << 10, io::Cursor::new(head).chain(r));
    let boxed: Box<dyn Read + Send> = match kind {
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(r)
                .map_err(|e| Error::io(e, "starting the zstd decoder"))?;
            // Frames made with `zstd --long` need windows beyond the default limit.
            d.window_log_max(31)
                .map_err(|e| Error::io(e, "configuring the zstd decoder"))?;
            Box::new(d)
        }
        Compression::Xz => Box::new(xz4rust::XzReader::new(r)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::None => Box::new(r),
    };
    Ok((kind, boxed))
}

/// Runs `src` on its own thread and hands its bytes over in chunks, so that decompression
/// and whatever consumes the stream (parsing, writing files) use two cores. The chunk buffers
/// go back and forth between the threads instead of being allocated per chunk: fresh
/// allocations of this size are fresh pages, and faulting them in cost more than the copy.
pub struct Pipelined {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
    thread: Option<JoinHandle<()>>,
}

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 4;

impl Pipelined {
    pub fn new(mut src: Box<dyn Read + Send>) -> Pipelined {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let (back, spare) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let thread = std::thread::spawn(move || loop {
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut filled = 0;
            // Fill whole chunks: fewer hand-overs.
            let res = loop {
                match src.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == buf.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(filled);
            let last = filled < CHUNK || res.is_err();
            if filled > 0 && tx.send(Ok(buf)).is_err() {
                return; // the reader went away
            }
            if let Err(e) = res {
                let _ = tx.send(Err(e));
                return;
            }
            if last {
                return;
            }
        });
        Pipelined {
            rx,
            back,
            chunk: Vec::new(),
            pos: 0,
            done: false,
            thread: Some(thread),
        }
    }
}

impl Read for Pipelined {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    let used = std::mem::replace(&mut self.chunk, c);
                    if used.capacity() > 0 {
                        let _ = self.back.try_send(used);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        // Dropping the receiver ends the thread at its next send; wait so no work outlives us.
        let (_, rx) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(kind: Compression, data: &[u8], packed: Vec<u8>) {
        let (k, r) = decoder(io::Cursor::new(packed)).unwrap();
        assert_eq!(k, kind);
        let mut out = Vec::new();
        Pipelined::new(r).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn detects_by_magic_and_decodes() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        roundtrip(
            Compression::Zstd,
            &data,
            zstd::encode_all(&data[..], 3).unwrap(),
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        roundtrip(Compression::Gzip, &data, gz.finish().unwrap());
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut bz, &data).unwrap();
        roundtrip(Compression::Bzip2, &data, bz.finish().unwrap());
    }

    #[test]
    fn pipelined_passes_everything_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut out = Vec::new();
        Pipelined::new(Box::new(io::Cursor::new(data.clone())))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn unknown_content_is_described() {
        let e = detect(b"<!DOCTYPE html><html><head><title>404").unwrap_err();
        assert!(e.to_string().contains("HTML page"), "{e}");
        let e = detect(b"").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = detect(b"\x00\x01garbage").unwrap_err();
        assert!(
            e.to_string().starts_with("unknown compression: not zstd"),
            "{e}"
        );
    }
}
