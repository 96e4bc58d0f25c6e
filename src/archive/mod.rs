//! Archives: decompression by magic, package (tar) extraction into a jailed root.

pub mod decompress;
pub mod extract;
pub mod initramfs;
pub mod rooted;
pub mod verify;
