//! Reload an Intel NIC driver with allow_unsupported_sfp=1, so a third-party SFP+ links up

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, ArgMatches, Command};
use rtool::json::Json;
use rtool::kernel::modload::{self, Event, Loader, Outcome, State};
use rtool::sys::net::{self, Interface};
use rtool::{ctx, exit, Ctx, Error, Kind, Result};

const PARAM: &str = "allow_unsupported_sfp";

pub fn command() -> Command {
    Command::new("sfp-unlock")
        .long_about(
            "Intel's ixgbe driver (82599, X520 and relatives) refuses SFP+ modules that are not \
             Intel's unless it is loaded with allow_unsupported_sfp=1, and reads that only when \
             it probes the card. This unloads the driver, loads it again (with its dependencies) \
             with the parameter, waits for its interfaces to come back, and shows the interfaces \
             before and after. A driver that is not loaded is simply loaded with the parameter. \
             --persist also writes the option to <root>/etc/modprobe.d so the repaired system \
             keeps working (--root is where that is written; the modules are always the running \
             system's). i40e and ice have no such parameter: their lock is in the NIC's \
             firmware.",
        )
        .arg(Arg::new("driver").value_name("DRIVER").default_value("ixgbe")
            .help("The driver module"))
        .arg(Arg::new("persist").long("persist").action(ArgAction::SetTrue)
            .help("Also write `options DRIVER allow_unsupported_sfp=1` to <root>/etc/modprobe.d/DRIVER-sfp.conf"))
        .arg(Arg::new("wait").long("wait").value_name("SECONDS").default_value("15").value_parser(clap::value_parser!(u64))
            .help("How long to wait for the interfaces and their links"))
        .arg(Arg::new("force").long("force").action(ArgAction::SetTrue)
            .help("Reload even when the driver carries this ssh session (the session will drop)"))
        .arg(ctx::arg_root())
        .arg(ctx::arg_dry_run())
        .arg(ctx::arg_json())
        .after_help(
            "Examples:
  rtool sfp-unlock                          # ixgbe
  rtool sfp-unlock --persist --root /mnt    # and keep the option in the repaired system
  rtool sfp-unlock --dry-run               # the plan: module, parameter, reload, file
  rtool sfp-unlock --json                  # the report as JSON (interfaces before and after)

Exit status: 0 the driver is loaded with the parameter (a warning when no interface appeared: \
no such NIC); 2 a driver without the parameter, or built into the kernel; 4 the driver is in \
use or the kernel refused; 7 module missing, or not root.",
        )
}

pub fn run(ctx: &Ctx, m: &ArgMatches) -> Result<u8> {
    let driver = modload::normalize(m.get_one::<String>("driver").map(String::as_str).unwrap_or("ixgbe"));
    let wait = Duration::from_secs(*m.get_one::<u64>("wait").unwrap_or(&15));
    if matches!(driver.as_str(), "i40e" | "ice") {
        return Err(Error::usage(format!(
            "{driver} has no {PARAM} parameter: on X710/XL710 and E810 cards the SFP lock is in the NIC's firmware (NVM), not in the driver"
        ))
        .hint("use a module from the card's qualified list, or a firmware/tool from the vendor that lifts the restriction; reloading the driver cannot change it"));
    }
    ctx.require_root("it unloads and loads the driver again")?;
    let sys_module = ctx.host_path("/sys/module");
    if modload::state(&sys_module, &driver) == State::BuiltIn {
        return Err(built_in(&driver));
    }
    // The driver is the running system's: its modules and configuration come from the host;
    // --root only says where --persist writes.
    let loader = match Loader::new(&ctx.host, &ctx.host) {
        Ok(l) => Some(l),
        // A plan is still worth showing without the modules: the run would stop here.
        Err(e) if ctx.dry_run => {
            ctx.warn(format!("{e}: the reload would fail"));
            None
        }
        Err(e) => return Err(e),
    };
    let state = match &loader {
        Some(l) => l.state(&driver),
        None => modload::state(&sys_module, &driver),
    };
    if state == State::BuiltIn {
        return Err(built_in(&driver));
    }
    let entry = match loader.as_ref().map(|l| (l, l.db.get(&driver))) {
        Some((_, Some(e))) => Some(e),
        Some((l, None)) => {
            let e = Error::missing(format!("module {driver} not found for kernel {} (in {})", l.release, l.db.dir.display()));
            if !ctx.dry_run {
                return Err(e);
            }
            ctx.warn(format!("{e}: the reload would fail"));
            None
        }
        None => None,
    };
    if let Some(entry) = entry {
        let info = modload::modinfo(&modload::read_image(&entry.path)?);
        let has_param = info.get("parm").into_iter().flatten().chain(info.get("parmtype").into_iter().flatten())
            .any(|p| p.split(':').next() == Some(PARAM));
        if !has_param {
            return Err(Error::usage(format!("{driver} has no {PARAM} parameter ({})", entry.path.display()))
                .hint("sfp-unlock is for ixgbe (82599/X520/X540/X550); other drivers lift no SFP restriction this way"));
        }
    }

    let before = nics(ctx);
    let ours: Vec<&Interface> = before.iter().filter(|i| i.driver.as_deref() == Some(driver.as_str())).collect();
    if let Some(i) = ssh_interface(&before) {
        if i.driver.as_deref() == Some(driver.as_str()) && state == State::Loaded {
            let msg = format!("this ssh session runs over {} ({driver}): reloading {driver} drops it", i.name);
            if !m.get_flag("force") && !ctx.dry_run {
                return Err(Error::usage(msg).hint("run it from the console, or pass --force inside `tmux`/`screen`/`nohup` so it finishes without you"));
            }
            ctx.warn(msg);
        }
    }
    let mut out = ctx.out();
    let mut report = Json::obj()
        .with("driver", driver.as_str())
        .with("parameter", format!("{PARAM}=1"))
        .with("dry_run", ctx.dry_run)
        .with("module", entry.map(|e| e.path.display().to_string()))
        .with("loaded_before", state == State::Loaded)
        .with("before", interfaces_json(&before));
    if !ctx.json {
        writeln!(out, "before:")?;
        table(&mut out, &before)?;
    }

    if ctx.dry_run {
        // The plan: each step the run takes, in its order; nothing is unloaded or loaded.
        let mut steps: Vec<String> = Vec::new();
        if state == State::Loaded {
            steps.push(format!("unload {driver} ({} interface(s))", ours.len()));
        }
        match &loader {
            Some(l) if entry.is_some() && state != State::Loaded => {
                let params = vec![format!("{PARAM}=1")];
                let mut warnings = Vec::new();
                l.load(&driver, &params, true, &mut |ev| match &ev {
                    Event::Would(e, p) if !p.is_empty() => steps.push(format!("load {} ({}) with {p}", e.name, e.path.display())),
                    Event::Would(e, _) => steps.push(format!("load {} ({})", e.name, e.path.display())),
                    Event::Warning(w) => warnings.push(w.clone()),
                    _ => {}
                })?;
                for w in warnings {
                    ctx.warn(w);
                }
            }
            _ => steps.push(format!(
                "load {driver}{} with {PARAM}=1 (its dependencies first)",
                entry.map(|e| format!(" ({})", e.path.display())).unwrap_or_default()
            )),
        }
        let conf = persist_path(ctx, &driver);
        if m.get_flag("persist") {
            steps.push(format!("write {} (options {driver} {PARAM}=1)", conf.display()));
        }
        steps.push(format!("wait up to {}s for the interfaces of {driver} and their links", wait.as_secs()));
        if ctx.json {
            report.push("steps", steps);
            report.push("persist", m.get_flag("persist").then(|| conf.display().to_string()));
            writeln!(out, "{report:#}")?;
        } else {
            writeln!(out, "plan (nothing is changed):")?;
            for s in &steps {
                writeln!(out, "  would {s}")?;
            }
            if !m.get_flag("persist") {
                writeln!(out, "  (--persist would also write {})", conf.display())?;
            }
        }
        return Ok(exit::OK);
    }
    let Some(loader) = loader else {
        return Err(Error::missing(format!("the modules of the running kernel could not be read: {driver} cannot be loaded")));
    };
    let mut steps: Vec<String> = Vec::new();
    if state == State::Loaded {
        match modload::remove(&driver)? {
            Ok(()) => steps.push(format!("unloaded {driver}")),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EBUSY)) => {
                return Err(modload::in_use(&ctx.host, &driver).with_source(e));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(Error::system(format!("unloading {driver} failed")).with_source(e)),
        }
        if !ctx.json {
            for s in &steps {
                writeln!(out, "{s}")?;
            }
        }
        wait_gone(&sys_module, &driver);
    }
    let params = vec![format!("{PARAM}=1")];
    let mut written: std::io::Result<()> = Ok(());
    let mut show = |ev: Event| {
        let r = match ev.line(&loader.db.dir) {
            Some(l) => {
                steps.push(l.trim_end().to_string());
                if ctx.json { Ok(()) } else { writeln!(out, "{l}") }
            }
            None => {
                if let Event::Warning(w) = &ev {
                    ctx.warn(w);
                }
                Ok(())
            }
        };
        if written.is_ok() {
            written = r;
        }
    };
    let outcome = match loader.load(&driver, &params, false, &mut show) {
        Ok(o) => o,
        Err(e) => {
            // The driver was unloaded a moment ago: put it back as it was, so a failed
            // unlock does not also take away the interfaces it had.
            if state == State::Loaded {
                match loader.load(&driver, &[], false, &mut show) {
                    Ok(_) => ctx.warn(format!("{driver} is loaded again without {PARAM}, as before")),
                    Err(again) => ctx.warn(format!("{driver} could not be loaded again either: {again}")),
                }
            }
            return Err(e);
        }
    };
    written?;
    if outcome == Outcome::AlreadyLoaded {
        return Err(Error::new(Kind::System, format!("{driver} is still loaded: it did not unload")));
    }
    let value = read_param(&sys_module, &driver);
    if let (Some(v), false) = (&value, ctx.json) {
        writeln!(out, "{driver} {PARAM} = {v} (read back from the kernel)")?;
    }
    report.push("steps", steps);
    report.push("value", value);

    if m.get_flag("persist") {
        let p = persist(ctx, &mut out, &driver)?;
        report.push("persist", Json::obj().with("path", p.0.display().to_string()).with("written", p.1));
    } else {
        report.push("persist", Json::Null);
    }

    // The driver probes its cards while loading, so the bound devices are known now; their
    // interfaces appear at once, their links some seconds later.
    let devices = bound_devices(&sys_module, &driver);
    report.push("devices", devices);
    if devices == 0 {
        let after = nics(ctx);
        ctx.warn(format!("{driver} is loaded with {PARAM}=1, but it found no card: no {driver} NIC in this machine, or it is bound elsewhere (lspci -k)"));
        if ctx.json {
            report.push("after", interfaces_json(&after));
            report.push("new_interfaces", Json::Arr(Vec::new()));
            writeln!(out, "{report:#}")?;
        } else {
            writeln!(out, "after:")?;
            table(&mut out, &after)?;
        }
        return Ok(exit::OK);
    }
    let start = Instant::now();
    let after = loop {
        let now = nics(ctx);
        let mine: Vec<&Interface> = now.iter().filter(|i| i.driver.as_deref() == Some(driver.as_str())).collect();
        let linked = mine.iter().filter(|i| i.carrier == Some(true)).count();
        if (mine.len() >= devices && linked == mine.len()) || start.elapsed() >= wait {
            break now;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let new: Vec<&str> = after
        .iter()
        .filter(|a| !before.iter().any(|b| b.name == a.name))
        .map(|a| a.name.as_str())
        .collect();
    if ctx.json {
        report.push("after", interfaces_json(&after));
        report.push("new_interfaces", new.clone());
        writeln!(out, "{report:#}")?;
    } else {
        writeln!(out, "after:")?;
        table(&mut out, &after)?;
        if !new.is_empty() {
            writeln!(out, "new interfaces: {}", new.join(", "))?;
        }
    }
    let mine: Vec<&Interface> = after.iter().filter(|i| i.driver.as_deref() == Some(driver.as_str())).collect();
    if mine.is_empty() {
        ctx.warn(format!("{driver} bound {devices} device(s) but no interface appeared within {}s: see `dmesg | grep {driver}`", wait.as_secs()));
    } else if mine.iter().all(|i| i.carrier != Some(true)) {
        ctx.note(format!(
            "no link yet on {}: bring it up with `ip link set {} up` and check the cable/fibre; `dmesg | grep -i sfp` shows what the driver thinks of the module",
            mine.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
            mine[0].name
        ));
    }
    Ok(exit::OK)
}

fn interfaces_json(ifs: &[Interface]) -> Json {
    Json::Arr(ifs.iter().map(Interface::to_json).collect())
}

fn built_in(driver: &str) -> Error {
    Error::usage(format!("{driver} is built into this kernel: it cannot be reloaded")).hint(format!(
        "add {driver}.{PARAM}=1 to the kernel command line (at the boot menu: `e` in systemd-boot or GRUB, Tab in syslinux) and boot again"
    ))
}

fn nics(ctx: &Ctx) -> Vec<Interface> {
    net::interfaces(&ctx.host_path("/sys/class/net")).into_iter().filter(|i| !i.loopback).collect()
}

fn table(out: &mut impl Write, ifs: &[Interface]) -> std::io::Result<()> {
    if ifs.is_empty() {
        return writeln!(out, "  (no network interfaces)");
    }
    for i in ifs {
        let link = match i.carrier {
            Some(true) => "link",
            Some(false) => "no link",
            None => "",
        };
        writeln!(
            out,
            "  {:<16} {:<12} {:<8} {:<8} {}",
            i.name,
            i.driver.as_deref().unwrap_or("-"),
            i.operstate,
            link,
            i.mac.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// The interface holding this ssh session's local address (`SSH_CONNECTION`'s third field).
fn ssh_interface(ifs: &[Interface]) -> Option<&Interface> {
    let conn = std::env::var("SSH_CONNECTION").ok()?;
    let local: IpAddr = conn.split_whitespace().nth(2)?.parse().ok()?;
    ifs.iter().find(|i| i.addresses.contains(&local))
}

/// Devices the driver's module has bound (`/sys/module/M/drivers/*/<device>`).
fn bound_devices(sys_module: &Path, driver: &str) -> usize {
    let dir = sys_module.join(driver).join("drivers");
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|rd| rd.flatten())
        // Devices are links named by bus address (0000:02:00.0); the rest are attributes.
        .filter(|e| e.file_name().to_string_lossy().contains(':'))
        .count()
}

/// Waits (briefly) until the module is gone from /sys/module after an unload.
fn wait_gone(sys_module: &Path, driver: &str) {
    let start = Instant::now();
    while modload::state(sys_module, driver) != State::Absent && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The parameter's value, readable since Linux 6.9.
fn read_param(sys_module: &Path, driver: &str) -> Option<String> {
    let p = sys_module.join(driver).join("parameters").join(PARAM);
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Where `--persist` writes: below the target root.
fn persist_path(ctx: &Ctx, driver: &str) -> std::path::PathBuf {
    ctx.root_path(format!("/etc/modprobe.d/{driver}-sfp.conf"))
}

/// Writes the option below the target root; the path, and whether it was written (false: it
/// was there already).
fn persist(ctx: &Ctx, out: &mut impl Write, driver: &str) -> Result<(std::path::PathBuf, bool)> {
    // Inside the root's jail: a symlinked /etc/modprobe.d resolves in the repaired system,
    // never on the live one.
    let rel = std::path::PathBuf::from(format!("etc/modprobe.d/{driver}-sfp.conf"));
    let shown = persist_path(ctx, driver);
    let text = format!("# Written by rtool sfp-unlock: accept SFP+ modules not made by Intel.\noptions {driver} {PARAM}=1\n");
    let mut root = rtool::archive::rooted::Root::open(&ctx.root)?;
    if root.read(&rel).map_err(|e| Error::path(e, &shown))?.is_some_and(|t| t == text.as_bytes()) {
        if !ctx.json {
            writeln!(out, "{} already has the option", shown.display())?;
        }
        return Ok((shown, false));
    }
    root.replace(&rel, text.as_bytes(), 0o644)
        .map_err(|e| rtool::sys::write_error(e, &shown, &shown, "; nothing was replaced"))?;
    if !ctx.json {
        writeln!(out, "wrote {}", shown.display())?;
    }
    ctx.note(format!(
        "if {driver} is in the initramfs, rebuild it (mkinitcpio -P in a chroot) so early boot gets the option too"
    ));
    Ok((shown, true))
}
