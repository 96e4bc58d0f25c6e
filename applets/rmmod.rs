//! Unload kernel modules, saying what holds them when they are in use

use std::io::Write;

use clap::{Arg, ArgMatches, Command};
use rtool::kernel::modload::{self, State};
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

pub fn command() -> Command {
    Command::new("rmmod")
        .long_about(
            "Unloads each MODULE from the running kernel without waiting (delete_module with \
             O_NONBLOCK, as kmod does). A module in use is left alone, and the error lists what \
             uses it: the modules that hold it and the network interfaces its driver runs.",
        )
        .arg(Arg::new("modules").value_name("MODULE").required(true).num_args(1..)
            .help("Modules to unload, in this order"))
        .arg(ctx::arg_dry_run())
        .after_help(
            "Examples:
  rtool rmmod ixgbe
  rtool rmmod -n ixgbe        # whether it is loaded and what holds it; nothing unloaded
  rtool rmmod dummy

Exit status: 0 unloaded; 4 in use or refused; 7 not loaded, or not root.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    ctx.require_root("it unloads kernel modules")?;
    let sys_module = ctx.host_path("/sys/module");
    let mut out = ctx.out();
    for name in m.get_many::<String>("modules").into_iter().flatten() {
        let name = modload::normalize(name);
        match modload::state(&sys_module, &name) {
            State::Absent => return Err(Error::missing(format!("{name} is not loaded"))),
            State::BuiltIn => {
                return Err(Error::new(Kind::System, format!("{name} is built into the kernel and cannot be unloaded")))
            }
            State::Loaded => {}
        }
        if ctx.dry_run {
            // What the kernel would refuse is known now: the holders and the use count.
            let why = modload::in_use_reasons(&ctx.host, &name);
            if why.is_empty() {
                writeln!(out, "would unload {name}")?;
            } else {
                writeln!(out, "would unload {name} ({}; the kernel refuses while it is in use)", why.join(", "))?;
            }
            continue;
        }
        match modload::remove(&name)? {
            Ok(()) => {
                if ctx.verbosity >= 0 {
                    writeln!(out, "unloaded {name}")?;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::missing(format!("{name} is not loaded")))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EBUSY)) => {
                return Err(modload::in_use(&ctx.host, &name).with_source(e));
            }
            Err(e) => return Err(Error::system(format!("unloading {name} failed")).with_source(e)),
        }
    }
    Ok(exit::OK)
}

