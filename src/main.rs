//! rtool: one static binary, many rescue applets. See `rtool --list`.
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

include!(concat!(env!("OUT_DIR"), "/applets.rs"));

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(rtool::cli::dispatch(APPLETS, std::env::args_os().collect()))
}
