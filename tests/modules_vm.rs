//! Module loading on a real kernel: Debian's, booted under qemu, with modules as plain `.ko`,
//! `.ko.zst`, `.ko.xz` and `.ko.gz` (Debian's kernel cannot decompress modules itself, so
//! rtool must). One boot runs every case; each test reads its own.

mod common;

use std::sync::OnceLock;

use common::vm::{vm, Case, Console};

const SCENARIO: &str = r#"
case_ dummy-three sh -c 'rtool modprobe dummy numdummies=3 && ls /sys/class/net | grep -c "^dummy"'
case_ dummy-again rtool modprobe dummy
case_ dummy-rmmod sh -c 'rtool rmmod dummy && { ls /sys/class/net | grep -c "^dummy" || true; }'
case_ unknown-param sh -c 'rtool modprobe dummy bogus=1 && rtool rmmod dummy'
case_ bad-value rtool modprobe dummy numdummies=abc
case_ no-such-module rtool modprobe no_such_module
case_ rmmod-not-loaded rtool rmmod dummy
# Roots as --root wants them: etc/ and usr/ (the trees below hold only modules).
mkdir -p /etc/modprobe.d /empty/etc /empty/usr /alt/etc
printf 'options loop max_loop=7 max_part=1\n' > /etc/modprobe.d/loop.conf
case_ options sh -c 'rtool modprobe loop && cat /sys/module/loop/parameters/max_loop /sys/module/loop/parameters/max_part'
case_ no-modules-dir rtool modprobe --root /empty dummy
case_ no-index sh -c 'rtool modprobe --root /alt mdio_devres && grep -oE "^(libphy|mdio_devres) " /proc/modules'
case_ in-use rtool rmmod libphy
case_ rmmod-dry sh -c 'rtool rmmod -n libphy && grep -c "^libphy " /proc/modules'
case_ rmmod-two rtool rmmod mdio_devres libphy
case_ show-depends rtool modprobe --show-depends ixgbe
case_ sfp sh -c 'rtool sfp-unlock --wait 1 && grep -oE "^(ixgbe|dca|mdio|libphy|mdio_devres|xfrm_algo) " /proc/modules | sort | tr "\n" " "'
case_ sfp-again rtool sfp-unlock --wait 1
case_ sfp-persist sh -c 'mkdir -p /target/etc /target/usr/lib/modprobe.d && ln -s /usr/lib/modprobe.d /target/etc/modprobe.d && rtool sfp-unlock --wait 1 --persist --root /target && cat /target/usr/lib/modprobe.d/ixgbe-sfp.conf && rtool sfp-unlock --wait 1 --persist --root /target && { [ -e /usr/lib/modprobe.d/ixgbe-sfp.conf ] && echo LEAKED || echo "live system untouched"; }'
# ixgbe prints its banner on every load: the count before and after the dry run.
case_ sfp-dry sh -c 'b=$(dmesg | grep -c "10 Gigabit PCI Express Network Driver"); rtool sfp-unlock -n && echo "banners $b $(dmesg | grep -c "10 Gigabit PCI Express Network Driver")" && grep -c "^ixgbe " /proc/modules'
case_ sfp-json sh -c 'rtool sfp-unlock --wait 1 --json 2>/dev/null'
case_ sfp-i40e rtool sfp-unlock i40e
printf 'options ixgbe allow_unsupported_sfp=abc\n' > /etc/modprobe.d/broken.conf
case_ sfp-fails sh -c 'rtool sfp-unlock --wait 1; echo "status=$?"; grep -c "^ixgbe " /proc/modules'
rm /etc/modprobe.d/broken.conf
case_ sfp-dummy rtool sfp-unlock dummy
"#;

const MODULES: &[&str] = &["dummy", "loop", "ixgbe", "libphy", "mdio_devres"];

fn console() -> &'static Console {
    static C: OnceLock<Console> = OnceLock::new();
    C.get_or_init(|| {
        let v = vm("modules", MODULES);
        v.run(SCENARIO, &[], "loop.max_part=3")
    })
}

fn case(name: &str) -> Case {
    console().case(name)
}

#[test]
fn modprobe_dummy_numdummies_makes_exactly_three_interfaces() {
    let c = case("dummy-three");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("dummy.ko.zst (decompressed by rtool) with numdummies=3"),
        "{c:?}"
    );
    assert_eq!(c.out.lines().last(), Some("3"), "{c:?}");
}

#[test]
fn a_loaded_module_is_not_an_error() {
    let c = case("dummy-again");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(c.out.contains("already  dummy"), "{c:?}");
}

#[test]
fn rmmod_removes_the_interfaces() {
    let c = case("dummy-rmmod");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(c.out.contains("unloaded dummy"), "{c:?}");
    assert_eq!(c.out.lines().last(), Some("0"), "{c:?}");
    let c = case("rmmod-not-loaded");
    assert_eq!(c.rc, 7, "{c:?}");
    assert!(c.out.contains("dummy is not loaded"), "{c:?}");
}

#[test]
fn an_unknown_parameter_loads_with_the_kernels_warning() {
    let c = case("unknown-param");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("warning: kernel: dummy: unknown parameter 'bogus' ignored"),
        "{c:?}"
    );
}

#[test]
fn an_invalid_parameter_value_is_named_with_the_kernels_words() {
    let c = case("bad-value");
    assert_eq!(c.rc, 2, "{c:?}");
    assert!(c.out.contains("a parameter value is invalid"), "{c:?}");
    assert!(
        c.out.contains("`abc' invalid for parameter `numdummies'"),
        "{c:?}"
    );
}

#[test]
fn an_unknown_module_names_the_kernel() {
    let c = case("no-such-module");
    assert_eq!(c.rc, 7, "{c:?}");
    let kver = vm("modules", MODULES).kver;
    assert!(
        c.out.contains(&format!(
            "module no_such_module not found for kernel {kver}"
        )),
        "{c:?}"
    );
}

#[test]
fn options_come_from_modprobe_d_then_the_kernel_command_line() {
    let c = case("options");
    assert_eq!(c.rc, 0, "{c:?}");
    // max_loop from /etc/modprobe.d; max_part=1 there, overridden by loop.max_part=3 on the
    // kernel command line.
    assert!(
        c.out.contains("with max_loop=7 max_part=1 max_part=3"),
        "{c:?}"
    );
    let vals: Vec<&str> = c.out.lines().rev().take(2).collect();
    assert_eq!(vals, ["3", "7"], "{c:?}");
}

#[test]
fn a_missing_modules_directory_says_which_kernel() {
    let c = case("no-modules-dir");
    assert_eq!(c.rc, 7, "{c:?}");
    assert!(c.out.contains("no modules for the running kernel"), "{c:?}");
    assert!(c.out.contains("/empty/usr/lib/modules"), "{c:?}");
}

#[test]
fn without_modules_dep_dependencies_come_from_modinfo_and_gz_loads() {
    let c = case("no-index");
    assert_eq!(c.rc, 0, "{c:?}");
    let libphy = c.out.find("loaded   libphy").expect("libphy loaded");
    let devres = c
        .out
        .find("loaded   mdio_devres")
        .expect("mdio_devres loaded");
    assert!(libphy < devres, "dependency first: {c:?}");
    assert!(
        c.out.contains("mdio_devres.ko.gz (decompressed by rtool)"),
        "{c:?}"
    );
    assert!(
        c.out.contains("libphy \nmdio_devres ") || c.out.contains("mdio_devres \nlibphy "),
        "{c:?}"
    );
}

#[test]
fn a_module_in_use_names_its_holders() {
    let c = case("in-use");
    assert_eq!(c.rc, 4, "{c:?}");
    assert!(
        c.out
            .contains("libphy is in use: held by the modules mdio_devres"),
        "{c:?}"
    );
    assert!(c.out.contains("rtool rmmod mdio_devres"), "{c:?}");
    let c = case("rmmod-two");
    assert_eq!(c.rc, 0, "{c:?}");
}

#[test]
fn show_depends_lists_the_chain_in_load_order() {
    let c = case("show-depends");
    assert_eq!(c.rc, 0, "{c:?}");
    let order: Vec<&str> = c
        .out
        .lines()
        .filter_map(|l| l.strip_prefix("insmod   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(order.last(), Some(&"ixgbe"), "{c:?}");
    for dep in ["xfrm_algo", "libphy", "mdio_devres", "mdio", "dca"] {
        assert!(order.contains(&dep), "{dep} missing: {c:?}");
    }
    let pos = |n: &str| order.iter().position(|o| *o == n).unwrap_or(usize::MAX);
    assert!(pos("libphy") < pos("mdio_devres"), "{c:?}");
}

#[test]
fn sfp_unlock_loads_ixgbe_and_its_chain_with_the_parameter() {
    let c = case("sfp");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("ixgbe/ixgbe.ko with allow_unsupported_sfp=1"),
        "{c:?}"
    );
    assert!(c.out.contains("dca.ko.xz (decompressed by rtool)"), "{c:?}");
    assert!(c.out.contains("found no card"), "no NIC in the VM: {c:?}");
    let loaded = c.out.lines().last().unwrap_or("");
    for m in ["dca", "ixgbe", "libphy", "mdio", "mdio_devres", "xfrm_algo"] {
        assert!(
            loaded.split_whitespace().any(|w| w == m),
            "{m} not in /proc/modules: {c:?}"
        );
    }
}

#[test]
fn sfp_unlock_again_reloads_cleanly() {
    let c = case("sfp-again");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(c.out.contains("unloaded ixgbe"), "{c:?}");
    assert!(
        c.out
            .contains("ixgbe/ixgbe.ko with allow_unsupported_sfp=1"),
        "{c:?}"
    );
    assert!(c.out.contains("already  dca"), "{c:?}");
}

#[test]
fn sfp_unlock_persist_writes_the_option_once() {
    let c = case("sfp-persist");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("wrote /target/etc/modprobe.d/ixgbe-sfp.conf"),
        "{c:?}"
    );
    assert!(
        c.out.contains("\noptions ixgbe allow_unsupported_sfp=1\n"),
        "{c:?}"
    );
    assert!(
        c.out
            .contains("/target/etc/modprobe.d/ixgbe-sfp.conf already has the option"),
        "{c:?}"
    );
    // /target/etc/modprobe.d is a symlink to /usr/lib/modprobe.d: followed inside /target.
    assert!(c.out.contains("live system untouched"), "{c:?}");
}

#[test]
fn a_failed_reload_tries_to_put_the_driver_back() {
    // A broken option in modprobe.d makes the reload fail after the unload: rtool tries the
    // driver again without the parameter (which fails too here, as the option stays) and says so.
    let c = case("sfp-fails");
    assert!(c.out.contains("unloaded ixgbe"), "{c:?}");
    assert!(c.out.contains("status=2"), "{c:?}");
    assert!(
        c.out
            .contains("`abc' invalid for parameter `allow_unsupported_sfp'"),
        "{c:?}"
    );
    assert!(
        c.out.contains("ixgbe could not be loaded again either"),
        "{c:?}"
    );
}

#[test]
fn sfp_unlock_explains_drivers_it_cannot_unlock() {
    let c = case("sfp-i40e");
    assert_eq!(c.rc, 2, "{c:?}");
    assert!(c.out.contains("firmware"), "{c:?}");
    let c = case("sfp-dummy");
    assert_eq!(c.rc, 2, "{c:?}");
    assert!(
        c.out
            .contains("dummy has no allow_unsupported_sfp parameter"),
        "{c:?}"
    );
}

#[test]
fn rmmod_dry_run_names_the_holder_and_unloads_nothing() {
    let c = case("rmmod-dry");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out
            .contains("would unload libphy (held by the modules mdio_devres"),
        "{c:?}"
    );
    assert_eq!(c.out.lines().last(), Some("1"), "still loaded: {c:?}");
}

#[test]
fn sfp_unlock_dry_run_on_a_loaded_driver_changes_nothing() {
    let c = case("sfp-dry");
    assert_eq!(c.rc, 0, "{c:?}");
    assert!(
        c.out.contains("would unload ixgbe (0 interface(s))"),
        "{c:?}"
    );
    assert!(c.out.contains("would load ixgbe"), "{c:?}");
    assert_eq!(c.out.lines().last(), Some("1"), "still loaded: {c:?}");
    // Not reloaded either: a reload prints ixgbe's banner again (it was loaded before).
    let banners: Vec<u32> = c
        .out
        .lines()
        .find_map(|l| l.strip_prefix("banners "))
        .map(|l| l.split(' ').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    assert!(
        banners.len() == 2 && banners[0] >= 1 && banners[0] == banners[1],
        "{c:?}"
    );
}

#[test]
fn sfp_unlock_json_reports_the_reload() {
    let c = case("sfp-json");
    assert_eq!(c.rc, 0, "{c:?}");
    let j: serde_json::Value =
        serde_json::from_str(&c.out).unwrap_or_else(|e| panic!("{e}: {c:?}"));
    assert_eq!(j["driver"], "ixgbe");
    assert_eq!(j["dry_run"], false);
    assert_eq!(j["loaded_before"], true);
    assert!(
        j["module"].as_str().unwrap().ends_with("ixgbe/ixgbe.ko"),
        "{j}"
    );
    assert_eq!(j["devices"].as_u64(), Some(0), "a number: {j}");
    let steps: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(steps.first(), Some(&"unloaded ixgbe"), "{j}");
    assert!(
        steps
            .iter()
            .any(|s| s.contains("ixgbe") && s.contains("with allow_unsupported_sfp=1")),
        "{j}"
    );
    assert!(j["before"].is_array() && j["after"].is_array(), "{j}");
    assert_eq!(j["persist"], serde_json::Value::Null);
}
