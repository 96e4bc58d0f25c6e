//! A module and the running kernel: its state in `/sys/module`, its image (decompressed when
//! the kernel cannot) and `.modinfo`, `finit_module`/`init_module`/`delete_module`, the
//! kernel log from `/dev/kmsg`, and what a refused load or unload means.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::normalize;
use crate::ctx::below;
use crate::error::{Error, Kind, Result};

/// How a module is present in the running kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    /// Loaded (or loading/unloading: `initstate` says which).
    Loaded,
    /// Part of the kernel image: it has a `/sys/module` entry but no `initstate`.
    BuiltIn,
}

/// `name`'s state from `sys_module` (normally `/sys/module`).
pub fn state(sys_module: &Path, name: &str) -> State {
    let d = sys_module.join(normalize(name));
    if d.join("initstate").exists() {
        State::Loaded
    } else if d.is_dir() {
        State::BuiltIn
    } else {
        State::Absent
    }
}

/// The compression of a module file, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Elf,
    Zstd,
    Xz,
    Gzip,
}

impl Format {
    pub fn detect(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"\x7fELF") {
            Some(Format::Elf)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Format::Zstd)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Format::Xz)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::Gzip)
        } else {
            None
        }
    }

    /// The name `/sys/module/compression` uses.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Format::Elf => "none",
            Format::Zstd => "zstd",
            Format::Xz => "xz",
            Format::Gzip => "gzip",
        }
    }
}

/// Modules larger than this (decompressed) are refused as hostile; the largest real ones
/// (amdgpu, zfs with debug info) stay well below.
const MAX_IMAGE: u64 = 1 << 30;

/// The module's ELF image, decompressed when needed.
pub fn read_image(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::path(e, path))?;
    let mut head = [0u8; 6];
    let n =
        std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).map_err(|e| Error::path(e, path))?;
    let not_module = || {
        Error::invalid(format!(
            "{}: not a kernel module (neither ELF nor zstd, xz or gzip)",
            path.display()
        ))
    };
    let format = Format::detect(&head[..n]).ok_or_else(not_module)?;
    let mut r: Box<dyn Read + Send> = if format == Format::Elf {
        Box::new(f)
    } else {
        crate::decompress::decoder(f).map_err(|_| not_module())?.1
    };
    let mut image = Vec::new();
    r.by_ref()
        .take(MAX_IMAGE + 1)
        .read_to_end(&mut image)
        .map_err(|e| {
            Error::path(e, path).context(format!("decompressing ({})", format.kernel_name()))
        })?;
    if image.len() as u64 > MAX_IMAGE {
        return Err(Error::invalid(format!(
            "{}: over 1 GiB once decompressed",
            path.display()
        )));
    }
    if !image.starts_with(b"\x7fELF") {
        return Err(Error::invalid(format!(
            "{}: the decompressed content is not an ELF module",
            path.display()
        )));
    }
    Ok(image)
}

/// The `.modinfo` section of a 64-bit little-endian ELF module: `key` → values, in order
/// (`depends`, `vermagic`, `parm`, `parmtype`, `alias`, …). Empty when it cannot be read.
pub fn modinfo(image: &[u8]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let Some(sec) = elf_section(image, ".modinfo") else {
        return out;
    };
    for item in sec.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let item = String::from_utf8_lossy(item);
        if let Some((k, v)) = item.split_once('=') {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

fn elf_section<'a>(image: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| {
        image
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        image
            .get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(|b| u32::from_le_bytes(b) as usize)
    };
    let u64_at = |o: usize| {
        image
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .and_then(|b| usize::try_from(u64::from_le_bytes(b)).ok())
    };
    // ELFCLASS64, little endian.
    if image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return None;
    }
    let shoff = u64_at(0x28)?;
    let shentsize = u16_at(0x3a)?;
    let shnum = u16_at(0x3c)?;
    let shstrndx = u16_at(0x3e)?;
    let header = |i: usize| -> Option<(usize, usize, usize)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(h)?, u64_at(h + 0x18)?, u64_at(h + 0x20)?))
    };
    let (_, stroff, strsize) = header(shstrndx)?;
    let strtab = image.get(stroff..stroff.checked_add(strsize)?)?;
    (0..shnum).find_map(|i| {
        let (name, off, size) = header(i)?;
        let n = strtab.get(name..)?;
        let n = &n[..n.iter().position(|&b| b == 0)?];
        (n == wanted.as_bytes()).then(|| image.get(off..off.checked_add(size)?))?
    })
}

/// The kernel log from now on: what the kernel says about a load, read back for the error.
pub struct KernelLog(Option<File>);

impl KernelLog {
    /// Opens `/dev/kmsg` (below `host`) positioned after the last record; silent when it
    /// cannot be read.
    pub fn from_now(host: &Path) -> KernelLog {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(below(host, Path::new("/dev/kmsg")))
            .ok();
        if let Some(f) = &f {
            // SAFETY: lseek on a file descriptor we own; /dev/kmsg supports SEEK_END.
            unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        }
        KernelLog(f)
    }

    /// The messages logged since, first line of each record.
    pub fn since(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(f) = &mut self.0 else {
            return out;
        };
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, msg)) = rec.split_once(';') {
                        let msg = msg.lines().next().unwrap_or("").trim_end();
                        out.push(msg.to_string());
                    }
                }
                // EPIPE: records were overwritten; read on from the next one.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        out
    }
}

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the file itself (since 5.17).
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// How a module went into the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `finit_module` on the file as it is.
    File,
    /// `finit_module` with the kernel decompressing.
    KernelDecompressed,
    /// Decompressed here, then `init_module`.
    Decompressed,
}

/// Loads one module file with `params`. `kernel_compression` is the content of
/// `/sys/module/compression` (the one format the kernel can decompress itself), if any.
/// On failure the `io::Error` is the kernel's answer.
pub fn insert(
    path: &Path,
    params: &str,
    kernel_compression: Option<&str>,
) -> Result<std::result::Result<Method, io::Error>> {
    let cparams = CString::new(params)
        .map_err(|_| Error::usage("module parameters cannot contain a NUL byte"))?;
    let f = File::open(path).map_err(|e| Error::path(e, path))?;
    let mut head = [0u8; 6];
    // Read at an offset: the descriptor's position stays at 0 for finit_module.
    let n =
        std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).map_err(|e| Error::path(e, path))?;
    let format = Format::detect(&head[..n]).ok_or_else(|| {
        Error::invalid(format!(
            "{}: not a kernel module (neither ELF nor zstd, xz or gzip)",
            path.display()
        ))
    })?;
    let by_kernel = format != Format::Elf
        && kernel_compression.is_some_and(|k| k.trim() == format.kernel_name());
    if format == Format::Elf || by_kernel {
        let flags = if by_kernel {
            MODULE_INIT_COMPRESSED_FILE
        } else {
            0
        };
        // SAFETY: finit_module reads the open file descriptor and the NUL-terminated parameter
        // string, both alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                f.as_raw_fd(),
                cparams.as_ptr(),
                flags,
            )
        };
        if r == 0 {
            return Ok(Ok(if by_kernel {
                Method::KernelDecompressed
            } else {
                Method::File
            }));
        }
        let e = io::Error::last_os_error();
        // A kernel that turns out unable to decompress: do it here instead.
        if !(by_kernel && matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL))) {
            return Ok(Err(e));
        }
    }
    drop(f);
    let image = read_image(path)?;
    // SAFETY: init_module copies `len` bytes from the image buffer and reads the NUL-terminated
    // parameter string; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len(),
            cparams.as_ptr(),
        )
    };
    if r == 0 {
        Ok(Ok(Method::Decompressed))
    } else {
        Ok(Err(io::Error::last_os_error()))
    }
}

/// Unloads `name` without waiting (`O_NONBLOCK`, as kmod does). The `io::Error` is the
/// kernel's answer (`EWOULDBLOCK`/`EBUSY` when in use, `ENOENT` when not loaded).
pub fn remove(name: &str) -> Result<std::result::Result<(), io::Error>> {
    let c = CString::new(normalize(name))
        .map_err(|_| Error::usage("a module name cannot contain a NUL byte"))?;
    // SAFETY: delete_module reads the NUL-terminated name, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, c.as_ptr(), libc::O_NONBLOCK) };
    Ok(if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    })
}

/// Who keeps `name` loaded: the modules in `/sys/module/NAME/holders`, its use count, and
/// the network interfaces its driver runs.
pub fn users(host: &Path, name: &str) -> (Vec<String>, Option<u64>, Vec<String>) {
    let m = below(host, Path::new("/sys/module")).join(normalize(name));
    let mut holders: Vec<String> = std::fs::read_dir(m.join("holders"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    holders.sort();
    let refcnt = std::fs::read_to_string(m.join("refcnt"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let ifaces = interfaces_of(host, name);
    (holders, refcnt, ifaces)
}

/// The network interfaces whose device's driver belongs to module `name`.
pub fn interfaces_of(host: &Path, name: &str) -> Vec<String> {
    let want = normalize(name);
    let net = below(host, Path::new("/sys/class/net"));
    let mut out: Vec<String> = std::fs::read_dir(&net)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path().join("device/driver/module"))
                        .ok()
                        .and_then(|l| l.file_name().map(|f| normalize(&f.to_string_lossy())))
                        .is_some_and(|m| m == want)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// What keeps the loaded module `name` in use: the modules holding it, the interfaces it
/// drives, and its use count when nothing else explains it. Empty when it could be unloaded.
pub fn in_use_reasons(host: &Path, name: &str) -> Vec<String> {
    let (holders, refcnt, ifaces) = users(host, name);
    reasons(&holders, refcnt, &ifaces)
}

fn reasons(holders: &[String], refcnt: Option<u64>, ifaces: &[String]) -> Vec<String> {
    let mut why = Vec::new();
    if !holders.is_empty() {
        why.push(format!("held by the modules {}", holders.join(", ")));
    }
    if !ifaces.is_empty() {
        why.push(format!("driving the interfaces {}", ifaces.join(", ")));
    }
    match refcnt {
        Some(n) if n > 0 && holders.is_empty() => why.push(format!("use count {n}")),
        _ => {}
    }
    why
}

/// The error for a module in use, naming its users.
pub fn in_use(host: &Path, name: &str) -> Error {
    let (holders, refcnt, ifaces) = users(host, name);
    let why = reasons(&holders, refcnt, &ifaces);
    let mut e = Error::new(
        Kind::System,
        format!(
            "{name} is in use: {}",
            if why.is_empty() {
                "by something".to_string()
            } else {
                why.join("; ")
            }
        ),
    );
    if !holders.is_empty() {
        e = e.hint(format!(
            "unload those first: rtool rmmod {}",
            holders.join(" ")
        ));
    } else if !ifaces.is_empty() {
        e = e.hint(format!(
            "take them down first: ip link set {} down",
            ifaces.join(" down; ip link set ")
        ));
    }
    e
}

/// The error for a refused load: the kernel's answer in words, and its log lines.
pub fn load_error(
    name: &str,
    path: &Path,
    e: &io::Error,
    log: &[String],
    image_vermagic: Option<&str>,
    running: &str,
) -> Error {
    let said: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(name) || l.contains("module"))
        .collect();
    let (kind, what) = match e.raw_os_error() {
        Some(libc::EINVAL) if said.iter().any(|l| l.contains("invalid for parameter")) => {
            (Kind::Usage, "a parameter value is invalid".to_string())
        }
        Some(libc::ENOEXEC) => (
            Kind::Invalid,
            match image_vermagic {
                Some(v) if !v.starts_with(&format!("{running} ")) && v != running => {
                    format!(
                        "invalid module format: it was built for kernel {}, this is {running}",
                        v.split_whitespace().next().unwrap_or(v)
                    )
                }
                _ => "invalid module format (built for another kernel, or corrupt)".to_string(),
            },
        ),
        Some(libc::EPERM) if !crate::sys::is_root() => {
            (Kind::Missing, "loading modules needs root".to_string())
        }
        Some(libc::EPERM) | Some(libc::EKEYREJECTED) | Some(libc::EKEYEXPIRED) => (
            Kind::System,
            "the kernel refused it: module signature enforcement or lockdown".to_string(),
        ),
        Some(libc::ENOENT) => (
            Kind::Failed,
            "unknown symbols: a dependency is missing or built for another kernel".to_string(),
        ),
        _ => (Kind::System, "the kernel refused it".to_string()),
    };
    let mut err = Error::new(
        kind,
        format!("loading {name} ({}) failed: {what}", path.display()),
    )
    .with_source(io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(0)));
    let mut lines: Vec<String> = said.iter().map(|l| format!("kernel: {l}")).collect();
    if matches!(
        e.raw_os_error(),
        Some(libc::EKEYREJECTED | libc::EKEYEXPIRED | libc::EPERM)
    ) && kind == Kind::System
    {
        lines.push(
            "a module built here is unsigned: sign it with the key the kernel trusts, or boot without module.sig_enforce=1 (with Secure Boot, lockdown enforces it: enroll the key with mokutil)"
                .to_string(),
        );
    }
    if !lines.is_empty() {
        err = err.hint(lines.join("\n"));
    }
    err
}

#[cfg(test)]
mod tests {
    #[test]
    fn modinfo_of_a_minimal_elf() {
        // A 64-bit ELF with a section header table: null, .modinfo, .shstrtab.
        let modinfo = b"depends=a,b\0vermagic=6.1.0 SMP mod_unload\0";
        let shstr = b"\0.modinfo\0.shstrtab\0";
        let mut img = vec![0u8; 64];
        img[..4].copy_from_slice(b"\x7fELF");
        img[4] = 2;
        img[5] = 1;
        let mi_off = img.len();
        img.extend_from_slice(modinfo);
        let ss_off = img.len();
        img.extend_from_slice(shstr);
        let shoff = img.len();
        let sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        img.extend(sh(0, 0, 0));
        img.extend(sh(1, mi_off, modinfo.len()));
        img.extend(sh(10, ss_off, shstr.len()));
        img[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        img[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        img[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        img[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        let info = super::modinfo(&img);
        assert_eq!(info["depends"], ["a,b"]);
        assert_eq!(info["vermagic"], ["6.1.0 SMP mod_unload"]);
        // Truncated or hostile offsets give nothing, never a panic.
        assert!(super::modinfo(&img[..100]).is_empty());
        let mut bad = img.clone();
        bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(super::modinfo(&bad).is_empty());
    }
}
