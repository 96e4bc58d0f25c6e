//! Network interfaces: driver, link state and addresses, from sysfs and getifaddrs.

use std::net::IpAddr;
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// The kernel driver (`ixgbe`, `e1000e`, `virtio_net`), none for virtual interfaces.
    pub driver: Option<String>,
    /// `up`, `down`, `unknown`, `dormant`, …
    pub operstate: String,
    /// Whether a cable/link is detected (`carrier` is 1); `None` when the link is down.
    pub carrier: Option<bool>,
    pub mac: Option<String>,
    pub loopback: bool,
    pub addresses: Vec<IpAddr>,
}

impl Interface {
    /// As reports give it: name, driver, state, carrier, MAC, addresses.
    pub fn to_json(&self) -> crate::json::Json {
        let addrs: Vec<String> = self.addresses.iter().map(|a| a.to_string()).collect();
        crate::json::Json::obj()
            .with("name", &self.name)
            .with("driver", self.driver.clone())
            .with("state", &self.operstate)
            .with("carrier", self.carrier)
            .with("mac", self.mac.clone())
            .with("addresses", addrs)
    }
}

/// The interfaces in `sys_class_net` (normally `/sys/class/net`), sorted by name, with the
/// addresses the running kernel has for interfaces of those names (getifaddrs).
pub fn interfaces(sys_class_net: &Path) -> Vec<Interface> {
    let Ok(dir) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut out: Vec<Interface> = dir
        .flatten()
        .map(|e| {
            let p = e.path();
            let read = |f: &str| {
                std::fs::read_to_string(p.join(f))
                    .ok()
                    .map(|s| s.trim().to_string())
            };
            let driver = std::fs::read_link(p.join("device/driver"))
                .ok()
                .and_then(|l| l.file_name().map(|f| f.to_string_lossy().into_owned()));
            Interface {
                name: e.file_name().to_string_lossy().into_owned(),
                driver,
                operstate: read("operstate").unwrap_or_else(|| "unknown".into()),
                carrier: read("carrier").map(|c| c == "1"),
                mac: read("address").filter(|a| !a.is_empty() && a != "00:00:00:00:00:00"),
                loopback: read("type").as_deref() == Some("772"),
                addresses: Vec::new(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(ip) = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v| IpAddr::V4(v.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))
            }) else {
                continue;
            };
            if let Some(i) = out.iter_mut().find(|i| i.name == a.interface_name) {
                i.addresses.push(ip);
            }
        }
    }
    out
}

impl Interface {
    /// Up with a link and an address that is not link-local: usable for ssh and downloads.
    pub fn usable(&self) -> bool {
        !self.loopback
            && self.carrier != Some(false)
            && matches!(self.operstate.as_str(), "up" | "unknown")
            && self.addresses.iter().any(reachable)
    }
}

/// Neither loopback nor link-local: an address another machine can reach without naming the
/// interface (what `ssh USER@ADDR` needs).
pub fn reachable(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !v.is_link_local() && !v.is_loopback(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) != 0xfe80 && !v.is_loopback(),
    }
}
