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
