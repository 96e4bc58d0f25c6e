//! What an applet is: a name, a one-line summary, its clap command and its `run`.
//!
//! `build.rs` generates the table of every applet in `applets/` from these.

use clap::{ArgMatches, Command};

use crate::ctx::Ctx;
use crate::error::Result;

/// Applets named like the system tools they stand in for: linked by `--install` only with
/// `--all`, so a directory in PATH does not shadow the system's own `chroot` or `modprobe`
/// (and their shell completions are left alone).
pub const SHADOWING: [&str; 3] = ["chroot", "modprobe", "rmmod"];

/// An applet's entry in the generated table.
pub struct Applet {
    pub name: &'static str,
    pub summary: &'static str,
    /// The clap definition: arguments, help text and examples.
    pub command: fn() -> Command,
    /// The work. Returns the exit code (see [`crate::error::exit`]) or an error.
    pub run: fn(&Ctx, &ArgMatches) -> Result<u8>,
}

impl Applet {
    /// The applet's full clap command as it parses: its own arguments, name, version, summary
    /// and the `-v`/`-q` every applet takes. `bin_name` is how usage lines spell the call.
    pub fn full_command(&self, bin_name: impl Into<String>) -> Command {
        (self.command)()
            .name(self.name)
            .bin_name(bin_name.into())
            .version(env!("CARGO_PKG_VERSION"))
            .about(self.summary)
            .args(crate::ctx::args_verbosity())
    }
}
