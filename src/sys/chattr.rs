//! Inode flags (`chattr`): the immutable flag that makes a directory refuse every change,
//! to root too.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `FS_IMMUTABLE_FL` (libc does not define the flag values).
pub const IMMUTABLE: libc::c_int = 0x10;

/// The inode flags of an open file or directory.
pub fn get(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: fd is open for the duration of the call; the kernel writes one int (the ioctl
    // is declared with `long` but reads and writes an int) into `flags`, which outlives it.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::FS_IOC_GETFLAGS,
            &mut flags as *mut libc::c_int,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(flags)
    }
}

/// Sets the inode flags of an open file or directory.
pub fn set(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: fd is open; the kernel reads one int from `flags`, which outlives the call.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::FS_IOC_SETFLAGS,
            &flags as *const libc::c_int,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether an error means the filesystem has no such flags at all.
pub fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
    )
}
