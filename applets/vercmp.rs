//! Compare two package versions as pacman does (prints -1, 0 or 1)

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use clap::{value_parser, Arg, ArgMatches, Command};
use rtool::pkg::vercmp::vercmp_bytes;
use rtool::{exit, Ctx, Error, Result};

pub fn command() -> Command {
    let version = |id: &'static str, name: &'static str, help: &'static str| {
        Arg::new(id)
            .value_name(name)
            .required(true)
            // pacman's vercmp takes any string, `-1` and the empty string included.
            .allow_hyphen_values(true)
            .value_parser(value_parser!(OsString))
            .help(help)
    };
    Command::new("vercmp")
        .long_about(
            "Compares two package versions ([epoch:]pkgver[-pkgrel]) with pacman's rules and \
             prints -1 when A is older than B, 0 when they are equal and 1 when A is newer, \
             exactly as pacman's `vercmp` does. The release is compared only when both \
             versions have one.",
        )
        .arg(version("a", "A", "The first version"))
        .arg(version("b", "B", "The second version"))
        .after_help(
            "Examples:
  rtool vercmp 6.9.12.arch1-1 6.10.arch1-1   # -1: 9 < 10
  rtool vercmp 1:1.0-1 2.0-1                 # 1: the epoch wins
  rtool vercmp 1.0rc1 1.0                    # -1: letters glued to a number are a pre-release
  rtool vercmp 1.5 1.5-2                     # 0: no release on one side
  rtool vercmp -- -q 1                       # `--` first when a version looks like an option
  [ \"$(rtool vercmp \"$installed\" \"$new\")\" -lt 0 ] && echo upgrade

Exit status: 0 whenever the comparison was made, 2 for a wrong command line.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let arg = |id: &str| {
        m.get_one::<OsString>(id)
            .ok_or_else(|| Error::usage(format!("missing version {}", id.to_uppercase())))
    };
    let (a, b) = (arg("a")?, arg("b")?);
    let n = vercmp_bytes(a.as_bytes(), b.as_bytes()) as i8;
    writeln!(ctx.out(), "{n}")?;
    Ok(exit::OK)
}
