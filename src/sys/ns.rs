//! A private mount namespace for this process: mounts made afterwards are invisible to the
//! rest of the system and vanish with the process.

use crate::error::{Error, Result};

/// Moves this (single-threaded) process into a new mount namespace whose mounts do not
/// propagate back to the parent namespace.
pub fn private_mounts() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        Error::system("cannot create a private mount namespace")
            .with_source(std::io::Error::from(e))
    })?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| {
        Error::system("cannot make the mount namespace private")
            .with_source(std::io::Error::from(e))
    })
}

/// Bind-mounts `src` on `dst` without its submounts: what lies under a mountpoint inside
/// `src` shows through at the same place inside `dst`.
pub fn bind_shallow(src: &std::path::Path, dst: &std::path::Path) -> Result<()> {
    nix::mount::mount(
        Some(src),
        dst,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Error::system(format!(
            "cannot bind {} on {}",
            src.display(),
            dst.display()
        ))
        .with_source(std::io::Error::from(e))
    })
}

/// Unmounts `p` (detaching it if it is busy).
pub fn unmount(p: &std::path::Path) -> Result<()> {
    nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
        Error::system(format!("cannot unmount {}", p.display()))
            .with_source(std::io::Error::from(e))
    })
}
