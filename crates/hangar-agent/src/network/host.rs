//! The host side of the machine network: the bridge with the gateway addresses,
//! IP forwarding and the firewall rules. `ensure` creates what is missing and
//! repairs what drifted, so the agent runs it at every start.

use std::fs;
use std::net::IpAddr;

use super::config::NetworkConfig;
use super::error::{NetworkError, Result};
use super::firewall;
use super::names::stable_hash;
use super::netlink::{Link, Netlink};

/// The host's machine network, known to be in place (returned by [`HostNetwork::ensure`]).
#[derive(Debug, Clone)]
pub struct HostNetwork {
    config: NetworkConfig,
}

/// A locally administered, stable MAC for the bridge, so it does not follow its ports'.
fn bridge_mac(name: &str) -> [u8; 6] {
    let h = stable_hash(format!("bridge:{name}").as_bytes()).to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(path, value).map_err(|source| NetworkError::Io {
        op: "write sysctl",
        path: path.into(),
        source,
    })
}

/// The bridge's link, checking that it is one.
pub(crate) fn bridge_link(nl: &mut Netlink, config: &NetworkConfig) -> Result<Option<Link>> {
    match nl.link(&config.bridge)? {
        Some(link) if link.kind != "bridge" => Err(NetworkError::NotABridge {
            name: config.bridge.clone(),
            kind: link.kind,
        }),
        other => Ok(other),
    }
}

impl HostNetwork {
    /// Creates or repairs the bridge (up, MTU, gateway addresses `.1` and `::1`),
    /// turns on forwarding when `config.nat` is set, and converges the firewall
    /// rules. Idempotent.
    ///
    /// Forwarding is a host-wide setting: with IPv6 forwarding on, interfaces
    /// with `accept_ra=1` stop taking router advertisements (set it to 2 on a
    /// host that depends on them). Teardown leaves forwarding as it is.
    pub fn ensure(config: &NetworkConfig) -> Result<Self> {
        config.validate()?;
        let mut nl = Netlink::open()?;
        let link = match bridge_link(&mut nl, config)? {
            Some(link) => link,
            None => {
                match nl.add_bridge(&config.bridge, config.mtu, bridge_mac(&config.bridge)) {
                    Ok(()) => {}
                    // Another agent start raced us: use what it made.
                    Err(NetworkError::Netlink {
                        source: nix::errno::Errno::EEXIST,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                bridge_link(&mut nl, config)?
                    .ok_or_else(|| NetworkError::NoBridge(config.bridge.clone()))?
            }
        };
        if link.mtu != Some(config.mtu) {
            nl.set_mtu(link.index, &config.bridge, config.mtu)?;
        }
        if !link.up {
            nl.set_up(link.index, &config.bridge)?;
        }
        let v4 = config.ipv4_subnet;
        nl.add_addr(
            link.index,
            &config.bridge,
            IpAddr::V4(v4.gateway()),
            v4.prefix_len(),
        )?;
        nl.add_addr(
            link.index,
            &config.bridge,
            IpAddr::V6(config.ipv6_prefix.gateway()),
            64,
        )?;
        if config.nat {
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
        }
        firewall::ensure(config)?;
        Ok(Self {
            config: config.clone(),
        })
    }

    /// Removes the firewall rules and the bridge. Machines' namespaces are left
    /// alone (destroy them first); their veths fall off the deleted bridge.
    /// Nothing there is success.
    pub fn teardown(config: &NetworkConfig) -> Result<()> {
        config.validate()?;
        firewall::teardown(config)?;
        let mut nl = Netlink::open()?;
        if bridge_link(&mut nl, config)?.is_some() {
            nl.del_link(&config.bridge)?;
        }
        Ok(())
    }

    /// The configuration this network was ensured with.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }
}
