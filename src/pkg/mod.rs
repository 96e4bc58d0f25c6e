//! pacman's package formats: versions, file names, `.PKGINFO`/`.BUILDINFO`, `.MTREE`.

pub mod mtree;
pub mod name;
pub mod pkginfo;
pub mod vercmp;
