//! initramfs images: uncompressed early cpio archives (microcode; since mkinitcpio v39 also
//! the already-compressed modules) followed by the main archive compressed with zstd, gzip,
//! xz, lz4 (legacy frames, possibly several back to back) or bzip2, with padding between.
//! Each cpio is newc (`070701`) or crc (`070702`).

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::archive::extract::{EntryKind, Member};
use crate::archive::Exact;
use crate::decompress;
use crate::error::{Error, Kind, Result};

/// One entry, with the segment it came from.
#[derive(Clone, Debug)]
pub struct Entry {
    pub member: Member,
    /// 0 for the first archive in the image, counting every cpio (early and main).
    pub segment: usize,
    /// How that segment was stored: `none` (uncompressed) or the compression.
    pub compression: &'static str,
}

const LZ4_LEGACY: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Names longer than this are not file names: a hostile header.
const MAX_NAME: u64 = 4096;

fn bad(msg: impl Into<String>) -> Error {
    Error::invalid(msg.into())
}

/// Reads every entry of every segment of the image at `path`, calling `f` with the entry
/// and its data (symlink targets are in `Member::link`, their data already consumed).
pub fn for_each(path: &Path, mut f: impl FnMut(&Entry, &mut dyn Read) -> Result<()>) -> Result<()> {
    each(path, &mut f, &mut |_| {})
}

/// [`for_each`], telling `tick` how many bytes of padding (zeros between and after archives,
/// decompressed) it has skipped so far, at every entry and every buffer of padding: a long
/// scan of zeros can show its progress.
pub fn for_each_with_progress(
    path: &Path,
    tick: &mut dyn FnMut(u64),
    mut f: impl FnMut(&Entry, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    each(path, &mut f, tick)
}

/// [`for_each`]'s work, compiled once rather than once per caller.
fn each(
    path: &Path,
    f: &mut dyn FnMut(&Entry, &mut dyn Read) -> Result<()>,
    tick: &mut dyn FnMut(u64),
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::path(e, path))?;
    let outer = std::cell::RefCell::new(tick);
    let skipped = std::cell::Cell::new(0u64);
    // Copied into each user: it holds only shared references.
    let mut tick = |n: u64| {
        skipped.set(skipped.get() + n);
        (outer.borrow_mut())(skipped.get())
    };
    let mut f = move |e: &Entry, data: &mut dyn Read| {
        tick(0);
        f(e, data)
    };
    let f = &mut f;
    let mut r = Counted {
        inner: BufReader::with_capacity(256 << 10, file),
        pos: 0,
    };
    let mut segment = 0;
    loop {
        // Padding between segments: zeros.
        let head = match skip_zeros(&mut r, &mut tick) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Error::path(e, path)),
        };
        let start = r.pos - 1;
        let mut magic = [head, 0, 0, 0, 0, 0];
        r.read_exact(&mut magic[1..])
            .map_err(|e| trunc(e, path, start))?;
        if &magic[..5] == b"07070" {
            // Uncompressed cpio: up to and including its trailer.
            let mut prefixed = io::Cursor::new(magic.to_vec()).chain(&mut r);
            let n = read_cpio(&mut prefixed, segment, "none", f, path, start)?;
            segment += n.max(1);
            continue;
        }
        // A compressed stream: everything after it belongs to it (the kernel reads on).
        let rest = io::Cursor::new(magic.to_vec()).chain(r);
        let (name, stream): (&'static str, Box<dyn Read>) = if magic[..4] == LZ4_LEGACY {
            ("lz4", Box::new(Lz4Legacy::new(rest)))
        } else {
            let (kind, dec) = decompress::decoder(rest)
                .map_err(|e| e.context(format!("{}: segment at byte {start}", path.display())))?;
            let name = match kind {
                decompress::Compression::Zstd => "zstd",
                decompress::Compression::Xz => "xz",
                decompress::Compression::Gzip => "gzip",
                decompress::Compression::Bzip2 => "bzip2",
                decompress::Compression::None => "none",
            };
            (name, dec)
        };
        // The decompressed stream may itself hold several cpio archives, with zeros between
        // them (as many as the stream likes: they are skipped a buffer at a time).
        let mut stream = BufReader::with_capacity(256 << 10, stream);
        loop {
            let mut m = [0u8; 6];
            match read_nonzero(&mut stream, &mut m, &mut tick) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => return Err(corrupt(e, path, start, name)),
            }
            if &m[..5] != b"07070" {
                return Err(bad(format!(
                    "{}: the {name} segment at byte {start} does not hold a cpio archive",
                    path.display()
                )));
            }
            let mut prefixed = io::Cursor::new(m.to_vec()).chain(&mut stream);
            read_cpio(&mut prefixed, segment, name, f, path, start)?;
            segment += 1;
        }
    }
}

/// Skips zero bytes, then fills `buf`; false at a clean end.
fn read_nonzero(
    r: &mut dyn BufRead,
    buf: &mut [u8; 6],
    tick: &mut dyn FnMut(u64),
) -> io::Result<bool> {
    let Some(first) = skip_zeros(r, tick)? else {
        return Ok(false);
    };
    buf[0] = first;
    r.read_exact(&mut buf[1..])?;
    Ok(true)
}

/// Skips zero bytes a buffer at a time; the first other byte (consumed), or `None` at the end.
/// `tick` is told how many zeros every buffer held.
fn skip_zeros(r: &mut dyn BufRead, tick: &mut dyn FnMut(u64)) -> io::Result<Option<u8>> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        match buf.iter().position(|&b| b != 0) {
            Some(i) => {
                let b = buf[i];
                r.consume(i + 1);
                tick(i as u64);
                return Ok(Some(b));
            }
            None => {
                let n = buf.len();
                r.consume(n);
                tick(n as u64);
            }
        }
    }
}

fn trunc(e: io::Error, path: &Path, at: u64) -> Error {
    Error::new(
        Kind::Invalid,
        format!("{}: truncated at byte {at}", path.display()),
    )
    .with_source(e)
}

fn corrupt(e: io::Error, path: &Path, at: u64, name: &str) -> Error {
    Error::new(
        Kind::Invalid,
        format!(
            "{}: the {name} segment starting at byte {at} is corrupt or truncated",
            path.display()
        ),
    )
    .with_source(e)
}

fn hex(field: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| bad(format!("cpio header: bad {what} field")))
}

/// Reads one cpio archive up to its `TRAILER!!!`; returns how many archives it read (1).
fn read_cpio(
    r: &mut dyn Read,
    segment: usize,
    compression: &'static str,
    f: &mut dyn FnMut(&Entry, &mut dyn Read) -> Result<()>,
    path: &Path,
    start: u64,
) -> Result<usize> {
    let mut last = String::from("(start)");
    let ctx = |e: Error, last: &str| {
        e.context(format!(
            "{}: segment {segment} ({compression}) from byte {start}, after {last}",
            path.display()
        ))
    };
    loop {
        let mut h = [0u8; 110];
        r.read_exact(&mut h).map_err(|e| {
            ctx(
                Error::invalid("truncated cpio header").with_source(e),
                &last,
            )
        })?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(ctx(bad("not a newc/crc cpio header"), &last));
        }
        let field = |i: usize| &h[6 + i * 8..14 + i * 8];
        let mode = hex(field(1), "mode").map_err(|e| ctx(e, &last))? as u32;
        let uid = hex(field(2), "uid").map_err(|e| ctx(e, &last))? as u32;
        let gid = hex(field(3), "gid").map_err(|e| ctx(e, &last))? as u32;
        let mtime = hex(field(5), "mtime").map_err(|e| ctx(e, &last))? as i64;
        let size = hex(field(6), "filesize").map_err(|e| ctx(e, &last))?;
        let rdev = (
            hex(field(9), "rdevmajor").map_err(|e| ctx(e, &last))? as u32,
            hex(field(10), "rdevminor").map_err(|e| ctx(e, &last))? as u32,
        );
        let namesize = hex(field(11), "namesize").map_err(|e| ctx(e, &last))?;
        if namesize == 0 || namesize > MAX_NAME {
            return Err(ctx(
                bad(format!("cpio header: a name of {namesize} bytes")),
                &last,
            ));
        }
        let mut name = vec![0u8; namesize as usize];
        r.read_exact(&mut name)
            .map_err(|e| ctx(Error::invalid("truncated name").with_source(e), &last))?;
        if name.pop() != Some(0) {
            return Err(ctx(bad("cpio name without its terminating NUL"), &last));
        }
        skip(r, pad4(110 + namesize))
            .map_err(|e| ctx(Error::invalid("truncated padding").with_source(e), &last))?;
        if name == b"TRAILER!!!" {
            // Trailing padding to the next 512 bytes belongs to the next loop's zero skipping.
            return Ok(1);
        }
        if name.is_empty() {
            // The kernel takes an empty name as the archive's top, as it takes `.`.
            name.push(b'.');
        }
        let kind = match mode & 0o170000 {
            0o100000 => EntryKind::File,
            0o040000 => EntryKind::Dir,
            0o120000 => EntryKind::Symlink,
            0o020000 => EntryKind::Char,
            0o060000 => EntryKind::Block,
            0o010000 => EntryKind::Fifo,
            0o140000 => {
                // Sockets cannot be archived meaningfully: skip their (empty) data.
                skip(r, size + pad4(size))
                    .map_err(|e| ctx(Error::invalid("truncated data").with_source(e), &last))?;
                continue;
            }
            t => return Err(ctx(bad(format!("cpio entry of unknown type {t:o}")), &last)),
        };
        let shown = String::from_utf8_lossy(&name).into_owned();
        let mut link = None;
        if kind == EntryKind::Symlink {
            if size > MAX_NAME {
                return Err(ctx(
                    bad(format!("{shown}: a symlink target of {size} bytes")),
                    &last,
                ));
            }
            let mut t = vec![0u8; size as usize];
            r.read_exact(&mut t).map_err(|e| {
                ctx(
                    Error::invalid("truncated symlink target").with_source(e),
                    &last,
                )
            })?;
            skip(r, pad4(size))
                .map_err(|e| ctx(Error::invalid("truncated padding").with_source(e), &last))?;
            link = Some(t);
        }
        let member = Member {
            raw_name: name,
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            mtime: (mtime, 0),
            size: if kind == EntryKind::File { size } else { 0 },
            link,
            xattrs: Vec::new(),
            dev: rdev,
        };
        let entry = Entry {
            member,
            segment,
            compression,
        };
        if kind == EntryKind::File {
            let mut data = Exact {
                inner: &mut *r,
                left: size,
                failed: false,
            };
            f(&entry, &mut data).map_err(|e| ctx(e, &shown))?;
            if data.left > 0 {
                io::copy(&mut data, &mut io::sink()).map_err(|e| {
                    ctx(
                        Error::invalid(format!("{shown}: truncated data")).with_source(e),
                        &last,
                    )
                })?;
            }
            skip(r, pad4(size))
                .map_err(|e| ctx(Error::invalid("truncated padding").with_source(e), &last))?;
        } else {
            if kind != EntryKind::Symlink && size > 0 {
                skip(r, size + pad4(size))
                    .map_err(|e| ctx(Error::invalid("truncated data").with_source(e), &last))?;
            }
            f(&entry, &mut io::empty()).map_err(|e| ctx(e, &shown))?;
        }
        last = shown;
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn skip(r: &mut dyn Read, n: u64) -> io::Result<()> {
    let got = io::copy(&mut r.take(n), &mut io::sink())?;
    if got < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.pos += n as u64;
        self.inner.consume(n);
    }
}

/// lz4's legacy format as the kernel reads it: blocks of at most 8 MiB, each prefixed by its
/// compressed size; a repeated magic starts another stream; zeros end it.
struct Lz4Legacy<R: Read> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    block: Vec<u8>,
    done: bool,
    started: bool,
}

const LZ4_BLOCK: usize = 8 << 20;

impl<R: Read> Lz4Legacy<R> {
    fn new(inner: R) -> Self {
        Lz4Legacy {
            inner,
            out: Vec::new(),
            pos: 0,
            block: Vec::new(),
            done: false,
            started: false,
        }
    }
}

impl<R: Read> Read for Lz4Legacy<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() {
            if self.done {
                return Ok(0);
            }
            let mut word = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                match self.inner.read(&mut word[got..])? {
                    0 if got == 0 => {
                        self.done = true;
                        return Ok(0);
                    }
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
            }
            if word == LZ4_LEGACY {
                self.started = true;
                continue;
            }
            if !self.started {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not an lz4 legacy stream",
                ));
            }
            let n = u32::from_le_bytes(word) as usize;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            if n > LZ4_BLOCK + LZ4_BLOCK / 255 + 16 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("an lz4 block of {n} bytes"),
                ));
            }
            self.block.resize(n, 0);
            self.inner.read_exact(&mut self.block)?;
            self.out.resize(LZ4_BLOCK, 0);
            let m = lz4_flex::block::decompress_into(&self.block, &mut self.out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("lz4: {e}")))?;
            self.out.truncate(m);
            self.pos = 0;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
