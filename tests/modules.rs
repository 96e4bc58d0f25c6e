//! `rtool modprobe`, `rmmod` and `sfp-unlock` on fake roots: the plan (order, aliases, options
//! from modprobe.d and the kernel command line, built-in and loaded modules) and the refusals.
//! Loading itself is tested on a real kernel in `modules_vm.rs`.

mod common;

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
