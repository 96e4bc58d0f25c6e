//! rtool: the library behind the applets. Formats, archives, network, signatures, system
//! calls and kernel knowledge live here; nothing here prints for a person (applets decide how
//! to show what the library returns).
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod applet;
pub mod archive;
pub mod cli;
pub mod ctx;
pub mod decompress;
pub mod error;
pub mod hash;
pub mod install;
pub mod json;
pub mod kernel;
pub mod manual;
pub mod net;
pub mod paths;
pub mod pkg;
pub mod progress;
pub mod report;
pub mod sig;
pub mod ssh;
pub mod stick;
pub mod sys;
pub mod text;
pub mod transaction;
pub mod units;

pub use ctx::Ctx;
pub use error::{exit, Context, Error, IoContext, Kind, Result};
