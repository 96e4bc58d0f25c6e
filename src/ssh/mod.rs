//! SSH public keys: the line format and its wire blob, fingerprints, where keys come from,
//! and a user's `authorized_keys` on the system being repaired.

pub mod authorized;
pub mod base64;
pub mod key;
pub mod source;
