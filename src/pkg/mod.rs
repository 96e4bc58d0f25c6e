//! pacman's package formats: versions, file names, `.PKGINFO`/`.BUILDINFO`, `.MTREE`, sync
//! databases, and its configuration and databases on an installed system.

pub mod alpmhook;
pub mod db;
pub mod depend;
pub mod glob;
pub mod local;
pub mod mtree;
pub mod name;
pub mod pkginfo;
pub mod syncdb;
pub mod vercmp;
