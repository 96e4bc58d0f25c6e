//! Load a kernel module and its dependencies, .ko.zst/.ko.xz/.ko.gz included, without kmod

use std::io::Write;

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::kernel::modload::{Event, Loader, Outcome};
use rtool::{ctx, exit, Ctx, Result};

pub fn command() -> Command {
    Command::new("modprobe")
        .long_about(
            "Loads MODULE into the running kernel, after the modules it depends on (from \
             modules.dep of <root>/usr/lib/modules/$(uname -r), or from each module's own \
             dependency list when there is no modules.dep). Compressed modules (.ko.zst, .ko.xz, \
             .ko.gz) are handed to the kernel to decompress when /sys/module/compression names \
             their format, and decompressed here otherwise, so Arch's .ko.zst modules load on any \
             kernel. Parameters come from `options` lines in <root>/etc/modprobe.d, \
             /run/modprobe.d, /usr/local/lib/modprobe.d, /usr/lib/modprobe.d and /lib/modprobe.d, \
             then from MODULE.param=value on the kernel command line, then from the command line \
             here. Soft dependencies (modules.softdep, `softdep` lines) load before and after it \
             when they exist. MODULE may be an alias (modules.alias, `alias` lines). A module \
             already loaded is not an error. Installed as /sbin/modprobe (rtool --install), it \
             answers the kernel's own module requests.",
        )
        .arg(Arg::new("module").value_name("MODULE").required(true)
            .help("The module (dashes and underscores are the same) or an alias"))
        .arg(Arg::new("params").value_name("PARAM=VALUE").num_args(0..)
            .help("Module parameters, after the configured ones"))
        .arg(Arg::new("show_depends").long("show-depends").action(ArgAction::SetTrue)
            .help("Print the modules that would be loaded, in order, and load nothing (like --dry-run)"))
        .arg(ctx::arg_root())
        .arg(ctx::arg_dry_run())
        .after_help(
            "Examples:
  rtool modprobe ixgbe allow_unsupported_sfp=1
  rtool modprobe zfs                          # zfs.ko.zst from a DKMS build, with spl first
  rtool modprobe --show-depends ixgbe
  rtool modprobe --root /mnt dummy numdummies=3   # modules and modprobe.d of another root

Exit status: 0 loaded or already loaded; 2 bad usage or parameter value; 3 not a module or \
built for another kernel; 4 refused by the kernel (signature enforcement, lockdown); 7 module \
or modules directory missing, or not root; 8 unknown symbols.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let module = m.get_one::<String>("module").cloned().unwrap_or_default();
    let params: Vec<String> = m.get_many::<String>("params").map(|v| v.cloned().collect()).unwrap_or_default();
    let dry_run = ctx.dry_run || m.get_flag("show_depends");
    if !m.get_flag("show_depends") {
        ctx.require_root("it loads kernel modules")?;
    }
    let loader = Loader::new(&ctx.root, &ctx.host)?;
    ctx.debug(format!(
        "modules of {} in {} ({})",
        loader.release,
        loader.db.dir.display(),
        if loader.db.indexed { "modules.dep" } else { "no modules.dep: each module's own dependency list" }
    ));
    let files: Vec<String> = loader.conf.files.iter().map(|f| f.display().to_string()).collect();
    ctx.debug(format!("configuration: {}", if files.is_empty() { "none".to_string() } else { files.join(", ") }));
    let names = loader.resolve(&module)?;
    if names.len() > 1 {
        ctx.note(format!("{module} is an alias of {}", names.join(", ")));
    }
    let mut out = ctx.out();
    for name in &names {
        let mut written: std::io::Result<()> = Ok(());
        let outcome = loader.load(name, &params, dry_run, &mut |ev| {
            if written.is_err() {
                return;
            }
            written = report(ctx, &mut out, &loader, &ev);
        })?;
        written?;
        match outcome {
            Outcome::AlreadyLoaded if !params.is_empty() => ctx.warn(format!(
                "{name} was already loaded: the parameters given were not applied (`rtool rmmod {name}` first)"
            )),
            Outcome::BuiltIn if !params.is_empty() => ctx.warn(format!(
                "{name} is built into the kernel: parameters can only be given on the kernel command line as {name}.PARAM=VALUE"
            )),
            _ => {}
        }
    }
    Ok(exit::OK)
}

fn report(ctx: &Ctx, out: &mut impl Write, loader: &Loader, ev: &Event) -> std::io::Result<()> {
    match ev {
        Event::Warning(w) => ctx.warn(w),
        // --show-depends is the answer itself, even with -q.
        Event::Would(..) => writeln!(out, "{}", ev.line(&loader.db.dir).unwrap_or_default())?,
        _ if ctx.verbosity >= 0 => writeln!(out, "{}", ev.line(&loader.db.dir).unwrap_or_default())?,
        _ => {}
    }
    Ok(())
}
