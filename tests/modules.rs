//! `rtool modprobe`, `rmmod` and `sfp-unlock` on fake roots: the plan (order, aliases, options
//! from modprobe.d and the kernel command line, built-in and loaded modules) and the refusals.
//! Loading itself is tested on a real kernel in `modules_vm.rs`.

mod common;

use std::fs;

use common::{rtool, Cmd, FakeRoot};

const KVER: &str = "6.2.8-arch1-1";

/// A running system (`/proc`, `/sys`) on kernel 6.2.8-arch1-1 with libphy loaded and loop
/// built in, and a root with the ixgbe chain in modules.dep.
fn setup() -> (FakeRoot, FakeRoot) {
    let host = FakeRoot::new();
    host.write("/proc/sys/kernel/osrelease", format!("{KVER}\n"))
        .write(
            "/proc/cmdline",
            "BOOT_IMAGE=/vmlinuz-linux root=ZFS=zroot/ROOT/arch ixgbe.debug=2 modprobe.blacklist=nouveau\n",
        )
        .write("/sys/module/libphy/initstate", "live\n")
        .mkdir("/sys/module/loop/parameters");
    let root = FakeRoot::new();
    let m = format!("/usr/lib/modules/{KVER}");
    root.write(
        &format!("{m}/modules.dep"),
        "kernel/drivers/net/ethernet/intel/ixgbe/ixgbe.ko.zst: kernel/drivers/net/mdio.ko.zst kernel/drivers/net/phy/mdio_devres.ko.zst kernel/drivers/net/phy/libphy.ko.zst kernel/net/xfrm/xfrm_algo.ko.zst kernel/drivers/dca/dca.ko.zst\n\
         kernel/drivers/net/mdio.ko.zst:\n\
         kernel/drivers/net/phy/mdio_devres.ko.zst: kernel/drivers/net/phy/libphy.ko.zst\n\
         kernel/drivers/net/phy/libphy.ko.zst:\n\
         kernel/net/xfrm/xfrm_algo.ko.zst:\n\
         kernel/drivers/dca/dca.ko.zst:\n\
         kernel/drivers/gpu/drm/nouveau/nouveau.ko.zst:\n",
    )
    .write(
        &format!("{m}/modules.alias"),
        "alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe\nalias pci:v000010DEd*sv*sd*bc03sc*i* nouveau\n",
    )
    .write(&format!("{m}/modules.builtin"), "kernel/drivers/block/loop.ko\n")
    .write("/etc/modprobe.d/sfp.conf", "options ixgbe allow_unsupported_sfp=1\n");
    (host, root)
}

fn modprobe(host: &FakeRoot, root: &FakeRoot, args: &[&str]) -> common::Done {
    rtool(["modprobe", "--root"])
        .arg(root.path())
        .args(args)
        .host(host.path())
        .run()
}

#[test]
fn show_depends_orders_the_chain_and_merges_the_options() {
    let (host, root) = setup();
    let out = modprobe(&host, &root, &["--show-depends", "ixgbe", "debug=5"]).success();
    let lines: Vec<String> = out
        .stdout()
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    // depmod's list read right to left; libphy is loaded already.
    assert_eq!(
        lines,
        [
            "insmod dca",
            "insmod xfrm_algo",
            "already libphy",
            "insmod mdio_devres",
            "insmod mdio",
            "insmod ixgbe"
        ],
        "{}",
        out.stdout()
    );
    // modprobe.d first, then the kernel command line, then the command line.
    out.stdout_has("kernel/drivers/net/ethernet/intel/ixgbe/ixgbe.ko.zst with allow_unsupported_sfp=1 debug=2 debug=5");
}

#[test]
fn aliases_resolve_and_blacklisting_applies_to_aliases_only() {
    let (host, root) = setup();
    modprobe(
        &host,
        &root,
        &[
            "--show-depends",
            "pci:v00008086d000010FBsv00008086sd00000006bc02sc00i00",
        ],
    )
    .success()
    .stdout_has("insmod   ixgbe");
    // nouveau is blacklisted on the kernel command line: its alias finds nothing...
    modprobe(
        &host,
        &root,
        &["--show-depends", "pci:v000010DEd00001C82sv0sd0bc03sc00i00"],
    )
    .status(7)
    .stderr_has("not found for kernel 6.2.8-arch1-1");
    // ...but asking for it by name still works, as with kmod.
    modprobe(&host, &root, &["--show-depends", "nouveau"])
        .success()
        .stdout_has("insmod   nouveau");
}

#[test]
fn built_in_and_loaded_modules_are_not_errors() {
    let (host, root) = setup();
    modprobe(&host, &root, &["--show-depends", "loop"])
        .success()
        .stdout_has("built-in loop");
    modprobe(&host, &root, &["--show-depends", "libphy"])
        .success()
        .stdout_has("already  libphy");
}

#[test]
fn modules_for_another_kernel_are_named() {
    let (host, _) = setup();
    let root = FakeRoot::new();
    root.write("/usr/lib/modules/6.1.0-1-lts/modules.dep", "");
    modprobe(&host, &root, &["dummy"])
        .status(7)
        .stderr_has("no modules for the running kernel 6.2.8-arch1-1")
        .stderr_has("has modules for 6.1.0-1-lts only");
}

#[test]
fn loading_and_unloading_need_root() {
    for args in [
        &["modprobe", "dummy"][..],
        &["rmmod", "dummy"],
        &["sfp-unlock"],
    ] {
        Cmd::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(common::bin())
            .args(args)
            .run()
            .status(7)
            .stderr_has("must be run as root");
    }
}

#[test]
fn sfp_unlock_explains_firmware_locks_and_built_in_drivers() {
    let (host, _) = setup();
    rtool(["sfp-unlock", "ice"])
        .host(host.path())
        .run()
        .status(2)
        .stderr_has("ice has no allow_unsupported_sfp parameter")
        .stderr_has("firmware");
    host.mkdir("/sys/module/ixgbe/parameters");
    rtool(["sfp-unlock", "--dry-run"])
        .host(host.path())
        .run()
        .status(2)
        .stderr_has("ixgbe is built into this kernel")
        .stderr_has("ixgbe.allow_unsupported_sfp=1 to the kernel command line");
}

/// A running system whose ssh session comes in over an ixgbe interface: the real ixgbe.ko of
/// Debian's kernel in its modules tree, the interface in sysfs, and its address on a veth in a
/// network namespace (interface addresses come from the kernel).
#[test]
fn sfp_unlock_will_not_cut_the_ssh_session_it_runs_in() {
    let v = common::vm::vm("sfp-host", &["ixgbe"]);
    let host = FakeRoot::new();
    host.write("/proc/sys/kernel/osrelease", format!("{}\n", v.kver))
        .write("/proc/cmdline", "quiet\n")
        .write("/sys/module/ixgbe/initstate", "live\n")
        .write("/sys/class/net/sfp0/operstate", "up\n")
        .write("/sys/class/net/sfp0/carrier", "1\n")
        .write("/sys/class/net/sfp0/address", "52:54:00:12:34:56\n")
        .write("/sys/class/net/sfp0/type", "1\n")
        .symlink(
            "../../../../bus/pci/drivers/ixgbe",
            "/sys/class/net/sfp0/device/driver",
        )
        .mkdir("/usr/lib");
    Cmd::new("cp")
        .arg("-a")
        .arg(v.base().join("usr/lib/modules"))
        .arg(host.at("/usr/lib/"))
        .run()
        .success();
    let ns = common::NetNs::new("sfp");
    ns.sh("ip link add sfp0 type veth peer name peer0 && ip link set peer0 up && ip link set sfp0 up && ip addr add 10.9.9.1/24 dev sfp0");
    let run = |args: &str| {
        ns.wrap(
            &format!("SSH_CONNECTION='10.9.9.2 50000 10.9.9.1 22' RTOOL_HOST_ROOT=\"$H\" \"$RTOOL\" sfp-unlock {args}"),
            &[("H", host.path().as_os_str())],
        )
    };
    run("")
        .status(2)
        .stderr_has("this ssh session runs over sfp0 (ixgbe): reloading ixgbe drops it")
        .stderr_has("--force");
    // With --force it goes ahead (here only as a plan), saying so.
    run("--force --dry-run")
        .success()
        .stderr_has("warning: this ssh session runs over sfp0")
        .stdout_has("would unload ixgbe (1 interface(s))");
}

/// A running system on KVER whose ixgbe is a real ELF object (made by gcc) with ixgbe's
/// `.modinfo` parameter, depending on mdio (loaded before it); no interfaces.
fn sfp_host(with_ixgbe: bool) -> FakeRoot {
    let host = FakeRoot::new();
    host.write("/proc/sys/kernel/osrelease", format!("{KVER}\n"))
        .write("/proc/cmdline", "quiet\n")
        .mkdir("/sys/module")
        .mkdir("/sys/class/net");
    let m = format!("/usr/lib/modules/{KVER}");
    let src = host.at("/tmp/ixgbe.c");
    host.write(
        "/tmp/ixgbe.c",
        "static const char modinfo[] __attribute__((section(\".modinfo\"), used)) =\n\
         \"parm=allow_unsupported_sfp:Allow unsupported and untested SFP+ modules on 82599-based adapters\\0\"\n\
         \"parmtype=allow_unsupported_sfp:uint\\0depends=mdio\\0\";\n",
    );
    for (name, dir) in [
        ("ixgbe", "kernel/drivers/net/ethernet/intel/ixgbe"),
        ("mdio", "kernel/drivers/net"),
    ] {
        host.mkdir(&format!("{m}/{dir}"));
        Cmd::new("gcc")
            .args(["-c", "-o"])
            .arg(host.at(&format!("{m}/{dir}/{name}.ko")))
            .arg(&src)
            .run()
            .success();
    }
    let dep = if with_ixgbe {
        "kernel/drivers/net/ethernet/intel/ixgbe/ixgbe.ko: kernel/drivers/net/mdio.ko\nkernel/drivers/net/mdio.ko:\n"
    } else {
        "kernel/drivers/net/mdio.ko:\n"
    };
    host.write(&format!("{m}/modules.dep"), dep);
    fs::remove_file(src).unwrap();
    host
}

#[test]
fn sfp_unlock_dry_run_shows_the_plan_and_changes_nothing() {
    let host = sfp_host(true);
    let target = FakeRoot::new();
    let before = (
        common::tree::listing(host.path(), &[]),
        common::tree::listing(target.path(), &[]),
    );
    let out = rtool(["sfp-unlock", "-n", "--persist", "--root"])
        .arg(target.path())
        .host(host.path())
        .run()
        .success()
        .stdout();
    let plan: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("plan")).collect();
    assert!(plan.len() >= 4, "{out}");
    assert!(
        plan[1].contains("would load mdio") && plan[1].contains("mdio.ko"),
        "{out}"
    );
    assert!(
        plan[2].contains("would load ixgbe")
            && plan[2].contains("ixgbe/ixgbe.ko")
            && plan[2].contains("with allow_unsupported_sfp=1"),
        "{out}"
    );
    assert!(
        plan[3].contains("would write")
            && plan[3].contains("/etc/modprobe.d/ixgbe-sfp.conf")
            && plan[3].contains(&target.path().display().to_string()),
        "{out}"
    );
    // Loaded now: the plan unloads first.
    host.write("/sys/module/ixgbe/initstate", "live\n");
    rtool(["sfp-unlock", "-n"])
        .host(host.path())
        .run()
        .success()
        .stdout_has("would unload ixgbe (0 interface(s))")
        .stdout_has("--persist would also write");
    fs::remove_dir_all(host.at("/sys/module/ixgbe")).unwrap();
    assert_eq!(
        (
            common::tree::listing(host.path(), &[]),
            common::tree::listing(target.path(), &[])
        ),
        before
    );

    // As JSON.
    let j = rtool(["sfp-unlock", "-n", "--json", "--persist", "--root"])
        .arg(target.path())
        .host(host.path())
        .run()
        .success()
        .json();
    assert_eq!(j["driver"], "ixgbe");
    assert_eq!(j["parameter"], "allow_unsupported_sfp=1");
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["loaded_before"], false);
    assert!(
        j["module"].as_str().unwrap().ends_with("ixgbe/ixgbe.ko"),
        "{j}"
    );
    assert_eq!(j["before"], serde_json::json!([]));
    assert!(j["persist"]
        .as_str()
        .unwrap()
        .ends_with("/etc/modprobe.d/ixgbe-sfp.conf"));
    assert_eq!(j["steps"].as_array().unwrap().len(), 4, "{j}");
}

#[test]
fn sfp_unlock_dry_run_without_the_module_still_shows_the_plan() {
    let host = sfp_host(false);
    rtool(["sfp-unlock", "--dry-run"])
        .host(host.path())
        .run()
        .success()
        .stderr_has("module ixgbe not found for kernel 6.2.8-arch1-1")
        .stderr_has("the reload would fail")
        .stdout_has("would load ixgbe with allow_unsupported_sfp=1");
    // The real run stops there, as JSON when asked.
    let d = rtool(["sfp-unlock", "--json"])
        .host(host.path())
        .run()
        .status(7);
    assert!(d.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("module ixgbe not found"));
}

#[test]
fn rmmod_dry_run_says_what_holds_a_module_and_unloads_nothing() {
    let (host, _) = setup();
    host.write("/sys/module/libphy/refcnt", "1\n")
        .mkdir("/sys/module/libphy/holders/mdio_devres");
    let before = common::tree::listing(host.path(), &[]);
    rtool(["rmmod", "-n", "libphy"])
        .host(host.path())
        .run()
        .success()
        .stdout_has("would unload libphy (held by the modules mdio_devres");
    rtool(["rmmod", "-n", "nouveau"])
        .host(host.path())
        .run()
        .status(7)
        .stderr_has("nouveau is not loaded");
    assert_eq!(common::tree::listing(host.path(), &[]), before);
}
