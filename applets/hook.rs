//! Install pacman hooks that refuse a kernel ZFS cannot support, keep the old kernel, run preflight

use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::archive::rooted::Root;
use rtool::json::Json;
use rtool::kernel::zfs;
use rtool::text::glyph;
use rtool::{ctx, exit, install, Ctx, Error, Result};

pub fn command() -> Command {
    Command::new("hook")
        .long_about(
            "Puts rtool into pacman's transactions, so the incident cannot happen again. Before \
             a kernel is installed or upgraded, the transaction is refused (AbortOnFail) when the \
             installed ZFS cannot support the incoming kernel: zfs-dkms's META Linux-Maximum, or \
             the exact kernel a zfs-linux package was built for. Before a kernel upgrade, \
             `rtool kernel-keep` keeps the current kernel bootable, and after it puts its \
             modules back; after every kernel or ZFS change, `rtool preflight` prints its \
             banner when the machine would not boot. The hooks go to /etc/pacman.d/hooks (or \
             the first HookDir of pacman.conf, which replaces that default) and \
             call /usr/local/bin/rtool, where this binary is copied (pacman runs hooks \
             chrooted into the system, so they need a path inside it).",
        )
        .subcommand_required(true)
        .arg(ctx::arg_root().global(true))
        .arg(ctx::arg_dry_run().global(true))
        .subcommand(Command::new("install").about("Write the hooks and copy this binary to /usr/local/bin/rtool"))
        .subcommand(Command::new("remove").about("Delete the hook files `install` wrote (and nothing else)"))
        .subcommand(
            Command::new("status")
                .visible_alias("list")
                .about("Show which hooks are installed; exit 1 unless all are current")
                .arg(ctx::arg_json()),
        )
        .subcommand(
            Command::new("check-kernel")
                .hide(true)
                .about("The PreTransaction check: package names as arguments or on stdin (pacman's NeedsTargets)")
                .arg(Arg::new("package").action(ArgAction::Append)),
        )
        .after_help(
            "Examples:
  rtool hook install                 # on the running system
  rtool hook install --root /mnt     # on the installed system, from the live ISO
  rtool hook install -n              # show what would be written
  rtool hook status
  rtool hook status --json
  rtool hook remove

Exit status: 0 done (status: everything installed and current); 1 status found a hook
missing or outdated; 4 a file could not be written.",
        )
}

const BIN: &str = "usr/local/bin/rtool";
/// The first line of every hook file rtool writes: how `remove` and `status` know them.
macro_rules! mark {
    () => {
        "# Written by `rtool hook install`; `rtool hook remove` deletes it.\n"
    };
}
const MARK: &str = mark!();

/// A hook file's text, put together at compile time. The targets are
/// [`zfs::KERNEL_PACKAGES`] (a test checks that they agree), and `zfs-*` where ZFS matters.
macro_rules! hook {
    ($ops:literal, $zfs:literal, $when:literal, $desc:literal, $exec:literal, $extra:literal) => {
        concat!(
            mark!(),
            "[Trigger]\n",
            $ops,
            "Type = Package\nTarget = linux\nTarget = linux-lts\nTarget = linux-zen\nTarget = linux-hardened\n",
            $zfs,
            "\n[Action]\nDescription = ",
            $desc,
            "\nWhen = ",
            $when,
            "\nExec = /usr/local/bin/rtool ",
            $exec,
            "\n",
            $extra
        )
    };
}

/// (file name, what it does, contents). The names sort where they must run: the check and
/// the copy of the old kernel before mkinitcpio's and dkms's own hooks (60-, 70-), preflight
/// after everything else has rebuilt what it rebuilds (90-mkinitcpio-install).
const HOOKS: [(&str, &str, &str); 4] = [
    ("00-rtool-zfs-kernel.hook", "refuses a kernel the installed ZFS cannot support",
        hook!("Operation = Install\nOperation = Upgrade\n", "Target = zfs-*\n", "PreTransaction",
            "Checking that ZFS supports the new kernel...", "hook check-kernel", "NeedsTargets\nAbortOnFail\n")),
    ("01-rtool-kernel-keep.hook", "keeps the current kernel bootable before an upgrade",
        hook!("Operation = Upgrade\n", "", "PreTransaction", "Keeping the current kernel bootable...", "kernel-keep", "")),
    ("95-rtool-kernel-keep-restore.hook", "puts the kept kernel's modules back after it",
        hook!("Operation = Upgrade\n", "", "PostTransaction", "Restoring the kept kernel's modules...", "kernel-keep --restore", "")),
    ("99-rtool-preflight.hook", "checks that the system will boot, with a banner if not",
        hook!("Operation = Install\nOperation = Upgrade\nOperation = Remove\n", "Target = zfs-*\n", "PostTransaction",
            "Checking that the system will boot...", "preflight", "")),
];

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    match m.subcommand() {
        Some(("install", _)) => install_hooks(ctx),
        Some(("remove", _)) => remove_hooks(ctx),
        Some(("status", _)) => status(ctx),
        Some(("check-kernel", a)) => check_kernel(ctx, a),
        _ => Err(Error::usage("expected install, remove or status")),
    }
}

/// What is at a hook's path now.
#[derive(PartialEq)]
enum State {
    Missing,
    Current,
    /// Written by rtool, with other contents (an older rtool).
    Outdated,
    /// Not written by rtool: never touched.
    Foreign,
}

/// Where pacman reads the system's hooks, relative to the root: the first `HookDir` of its
/// pacman.conf, else /etc/pacman.d/hooks.
fn hook_dir(ctx: &Ctx) -> Result<PathBuf> {
    let conf = rtool::pkg::db::Conf::read(&ctx.root)?;
    let dir = conf.hookdirs.first().cloned().unwrap_or_else(|| PathBuf::from("/etc/pacman.d/hooks"));
    Ok(dir.strip_prefix("/").unwrap_or(&dir).to_path_buf())
}

/// Every hook with what is at its path now.
fn states(ctx: &Ctx, root: &Root) -> Result<Vec<(PathBuf, &'static str, &'static str, State)>> {
    let dir = hook_dir(ctx)?;
    let mut v = Vec::new();
    for (name, what, text) in HOOKS {
        let rel = dir.join(name);
        let s = match root.read(&rel).map_err(|e| Error::path(e, &rel))? {
            None => State::Missing,
            Some(b) if b == text.as_bytes() => State::Current,
            Some(b) if b.starts_with(MARK.as_bytes()) => State::Outdated,
            Some(_) => State::Foreign,
        };
        v.push((rel, what, text, s));
    }
    Ok(v)
}

fn install_hooks(ctx: &Ctx) -> Result<u8> {
    ctx.require_root(&format!("it writes pacman hooks and {}", ctx.root_path(BIN).display()))?;
    if !ctx.root_path("/etc/pacman.conf").is_file() {
        return Err(Error::missing(format!("{}: no /etc/pacman.conf there: not a system pacman manages", ctx.root.display()))
            .hint("give the installed system's root: `rtool hook install --root /mnt`"));
    }
    let mut root = Root::open(&ctx.root)?;
    let hooks = states(ctx, &root)?;
    if let Some((rel, ..)) = hooks.iter().find(|h| h.3 == State::Foreign) {
        return Err(Error::system(format!("{}: exists and was not written by rtool: nothing was changed", ctx.root_path(rel).display()))
            .hint("move it away, then run `rtool hook install` again"));
    }
    // The hooks call the binary by its path inside the system: it goes first.
    let exe = install::own_path(OsStr::new(""))?;
    let me = std::fs::read(&exe).map_err(|e| Error::path(e, &exe))?;
    let bin = Path::new(BIN);
    let mut out = ctx.out();
    let would = if ctx.dry_run { "would be " } else { "" };
    if root.read(bin).map_err(|e| Error::path(e, bin))?.is_some_and(|b| b == me) {
        writeln!(out, "{}: this binary already", ctx.root_path(bin).display())?;
    } else {
        if !ctx.dry_run {
            root.replace(bin, &me, 0o755).map_err(|e| Error::path(e, &ctx.root_path(bin)))?;
        }
        writeln!(out, "{}: {would}copied from {}", ctx.root_path(bin).display(), exe.display())?;
    }
    for (rel, what, text, s) in hooks {
        let done = match s {
            State::Current => "up to date",
            _ if !ctx.dry_run => {
                root.replace(&rel, text.as_bytes(), 0o644).map_err(|e| Error::path(e, &ctx.root_path(&rel)))?;
                if s == State::Outdated { "updated" } else { "installed" }
            }
            _ => "would be installed",
        };
        writeln!(out, "{}: {done} {} {what}", ctx.root_path(&rel).display(), glyph("—"))?;
    }
    Ok(exit::OK)
}

fn remove_hooks(ctx: &Ctx) -> Result<u8> {
    ctx.require_root(&format!("it removes the pacman hooks it wrote below {}", ctx.root.display()))?;
    let mut root = Root::open(&ctx.root)?;
    let mut out = ctx.out();
    for (rel, _, _, s) in states(ctx, &root)? {
        let shown = ctx.root_path(&rel);
        match s {
            State::Missing => {}
            State::Foreign => ctx.warn(format!("{}: not written by rtool: left alone", shown.display())),
            _ => {
                if !ctx.dry_run {
                    root.remove(&rel).map_err(|e| Error::path(e, &shown))?;
                }
                writeln!(out, "{}: {}removed", shown.display(), if ctx.dry_run { "would be " } else { "" })?;
            }
        }
    }
    if ctx.root_path(BIN).exists() {
        ctx.note(format!("{} is left in place", ctx.root_path(BIN).display()));
    }
    Ok(exit::OK)
}

fn status(ctx: &Ctx) -> Result<u8> {
    let root = Root::open(&ctx.root)?;
    let mut out = ctx.out();
    let bin_present = ctx.root_path(BIN).is_file();
    let mut all = bin_present;
    if !all && !ctx.json {
        writeln!(out, "{}: missing, the hooks cannot run", ctx.root_path(BIN).display())?;
    }
    let mut hooks = Vec::new();
    for (rel, what, _, s) in states(ctx, &root)? {
        all &= s == State::Current;
        let (key, word) = match s {
            State::Current => ("installed", "installed"),
            State::Outdated => ("outdated", "OUTDATED (`rtool hook install` updates it)"),
            State::Missing => ("missing", "missing"),
            State::Foreign => ("foreign", "NOT RTOOL'S (another file has this name)"),
        };
        let shown = ctx.root_path(&rel).display().to_string();
        if ctx.json {
            hooks.push(Json::obj().with("path", shown).with("state", key).with("what", what));
        } else {
            writeln!(out, "{shown}: {word} {} {what}", glyph("—"))?;
        }
    }
    if ctx.json {
        let j = Json::obj()
            .with("ok", all)
            .with("binary", Json::obj().with("path", ctx.root_path(BIN).display().to_string()).with("present", bin_present))
            .with("hooks", Json::Arr(hooks));
        writeln!(out, "{j:#}")?;
    }
    Ok(if all { exit::OK } else { exit::PROBLEMS })
}

/// The PreTransaction check. pacman gives the target names on stdin; anything on stdout or
/// stderr appears in its output, and a non-zero exit aborts the transaction.
fn check_kernel(ctx: &Ctx, a: &ArgMatches) -> Result<u8> {
    let mut targets: Vec<String> = a.get_many::<String>("package").into_iter().flatten().cloned().collect();
    let stdin = std::io::stdin();
    if targets.is_empty() && !stdin.is_terminal() {
        // Read as a File (a duplicate of descriptor 0), as pubkey does: no unsafe, and no
        // buffered Stdin machinery in the binary.
        let fd = std::os::fd::AsFd::as_fd(&stdin).try_clone_to_owned()?;
        let text = std::io::read_to_string(std::fs::File::from(fd))?;
        targets.extend(text.split_whitespace().map(String::from));
    }
    let after = zfs::after_transaction(&ctx.root, &ctx.host, &targets)?;
    for n in &after.notes {
        ctx.warn(n);
    }
    let problems = zfs::problems(&after.kernels, &after.zfs);
    let mut out = ctx.out();
    if problems.is_empty() {
        if !after.zfs.is_empty() {
            for k in after.kernels.iter().filter(|k| k.incoming) {
                writeln!(out, "{} {}: ZFS supports it", k.name, k.version)?;
            }
        }
        return Ok(exit::OK);
    }
    writeln!(out, "rtool: REFUSED: this transaction would leave a kernel without ZFS; nothing was changed.")?;
    for p in &problems {
        writeln!(out, "  {}", p.text)?;
    }
    let mut kernels: Vec<&str> = problems.iter().map(|p| p.kernel.as_str()).collect();
    kernels.dedup();
    writeln!(out, "That kernel could not load ZFS, so a root on ZFS would not mount at boot. Instead:")?;
    writeln!(out, "  - wait for a ZFS release that supports it, then upgrade both in one transaction;")?;
    writeln!(out, "  - or hold the kernel back: `IgnorePkg = {}` in /etc/pacman.conf, then upgrade;", kernels.join(" "))?;
    if let Some(back) = problems.iter().find_map(|p| p.way_back.as_ref()) {
        writeln!(out, "  - or, if such a kernel is installed already, go back: `rtool fetch-pkg '{back}'`, then `pacman -U` the files.")?;
    }
    writeln!(out, "(`rtool hook remove` takes this check away.)")?;
    Ok(exit::PROBLEMS)
}
