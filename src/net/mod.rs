//! The network: HTTPS downloads, directory listings, the Arch Linux Archive.

pub mod ala;
pub mod http;
pub mod listing;
