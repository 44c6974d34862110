//! One machine's network: a persistent namespace `/run/netns/<prefix><id>`, a
//! veth whose host side is on the bridge and whose other side is the machine's
//! `eth0` with its IPv4 and IPv6 addresses and default routes via the bridge.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use serde::{Deserialize, Serialize};

use super::alloc::{MachineAddrs, check_addrs};
use super::config::NetworkConfig;
use super::error::{NetworkError, Result};
use super::host::{HostNetwork, bridge_link};
use super::names::{GUEST_IFNAME, check_machine_id, netns_name, netns_path, veth_name};
use super::netlink::Netlink;
use super::netns;

/// Loopback's interface index in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// What a machine's network is made of; enough for pilot to join it and for the
/// API to report `private_ip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineNetwork {
    /// The machine this belongs to.
    pub machine_id: String,
    /// The namespace's name (as `ip netns` lists it).
    pub netns: String,
    /// Where the namespace is mounted; pilot joins it with `setns` on this path.
    pub netns_path: String,
    /// The host side of the veth, attached to the bridge.
    pub veth: String,
    /// The machine's addresses.
    pub addrs: MachineAddrs,
    /// Prefix length of the IPv4 subnet.
    pub ipv4_prefix_len: u8,
    /// IPv4 default gateway (the bridge).
    pub ipv4_gateway: std::net::Ipv4Addr,
    /// IPv6 default gateway (the bridge).
    pub ipv6_gateway: std::net::Ipv6Addr,
}

/// What is actually there for a machine, as [`MachineNetwork::inspect`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineNetworkState {
    /// A namespace is mounted at the machine's netns path.
    pub netns_mounted: bool,
    /// The host side of the veth exists.
    pub veth_present: bool,
    /// ... and is attached to the configured bridge.
    pub veth_on_bridge: bool,
    /// `eth0` inside the namespace is up.
    pub eth0_up: bool,
    /// The global addresses of `eth0` inside the namespace.
    pub addrs: Vec<IpAddr>,
}

impl MachineNetwork {
    /// The description of `machine_id`'s network with `addrs`, without touching the system.
    pub fn describe(config: &NetworkConfig, machine_id: &str, addrs: MachineAddrs) -> Self {
        Self {
            machine_id: machine_id.to_string(),
            netns: netns_name(config, machine_id),
            netns_path: netns_path(config, machine_id),
            veth: veth_name(config, machine_id),
            addrs,
            ipv4_prefix_len: config.ipv4_subnet.prefix_len(),
            ipv4_gateway: config.ipv4_subnet.gateway(),
            ipv6_gateway: config.ipv6_prefix.gateway(),
        }
    }

    /// Creates the machine's namespace, veth, addresses and routes. Fails with
    /// [`NetworkError::AlreadyExists`] if its namespace exists (after a crash,
    /// `destroy` then `create`); on any other failure removes what it made.
    pub fn create(host: &HostNetwork, machine_id: &str, addrs: MachineAddrs) -> Result<Self> {
        Self::create_with(host, machine_id, addrs, true)
    }

    /// [`create`](Self::create), with the host-side veth left off the bridge
    /// until [`attach`](Self::attach): a Linux bridge takes at most 1024
    /// ports, so only running machines hold one.
    pub fn create_detached(
        host: &HostNetwork,
        machine_id: &str,
        addrs: MachineAddrs,
    ) -> Result<Self> {
        Self::create_with(host, machine_id, addrs, false)
    }

    fn create_with(
        host: &HostNetwork,
        machine_id: &str,
        addrs: MachineAddrs,
        attached: bool,
    ) -> Result<Self> {
        let config = host.config();
        check_machine_id(machine_id)?;
        check_addrs(config, &addrs)?;
        let net = Self::describe(config, machine_id, addrs);
        let mut inside = netns::create(&net.netns)?;
        match net.configure(config, &mut inside, attached) {
            Ok(()) => Ok(net),
            Err(e) => {
                if let Err(cleanup) = Self::destroy(config, machine_id) {
                    tracing::warn!(machine_id, error = %cleanup, "cleanup after failed network create");
                }
                Err(e)
            }
        }
    }

    fn configure(
        &self,
        config: &NetworkConfig,
        inside: &mut Netlink,
        attached: bool,
    ) -> Result<()> {
        inside.set_up(LOOPBACK_INDEX, "lo")?;
        let mut host = Netlink::open()?;
        let bridge = bridge_link(&mut host, config)?
            .ok_or_else(|| NetworkError::NoBridge(config.bridge.clone()))?;
        let ns_file = File::open(&self.netns_path).map_err(|source| NetworkError::Io {
            op: "open netns",
            path: self.netns_path.clone(),
            source,
        })?;
        host.add_veth(
            &self.veth,
            config.mtu,
            attached.then_some(bridge.index),
            GUEST_IFNAME,
            ns_file.as_raw_fd(),
        )
        .map_err(|e| bridge_full(e, config))?;
        let eth0 = inside
            .link(GUEST_IFNAME)?
            .ok_or_else(|| NetworkError::Protocol {
                op: "add veth",
                problem: format!("{GUEST_IFNAME} did not appear in {}", self.netns),
            })?;
        if !eth0.up {
            inside.set_up(eth0.index, GUEST_IFNAME)?;
        }
        inside.add_addr(
            eth0.index,
            GUEST_IFNAME,
            IpAddr::V4(self.addrs.ipv4),
            self.ipv4_prefix_len,
        )?;
        inside.add_addr(eth0.index, GUEST_IFNAME, IpAddr::V6(self.addrs.ipv6), 64)?;
        inside.add_default_route(eth0.index, GUEST_IFNAME, IpAddr::V4(self.ipv4_gateway))?;
        inside.add_default_route(eth0.index, GUEST_IFNAME, IpAddr::V6(self.ipv6_gateway))?;
        Ok(())
    }

    /// Removes the machine's veth and namespace. Nothing there is success;
    /// `Ok(true)` when something was removed.
    pub fn destroy(config: &NetworkConfig, machine_id: &str) -> Result<bool> {
        check_machine_id(machine_id)?;
        remove_by_names(
            &veth_name(config, machine_id),
            &netns_name(config, machine_id),
        )
    }

    /// Puts the machine's host-side veth on the bridge (nothing to do when it
    /// is there already).
    pub fn attach(config: &NetworkConfig, machine_id: &str) -> Result<()> {
        Self::set_port(config, machine_id, true)
    }

    /// Takes the machine's host-side veth off the bridge (a stopped machine
    /// holds no bridge port). A missing veth is fine.
    pub fn detach(config: &NetworkConfig, machine_id: &str) -> Result<()> {
        Self::set_port(config, machine_id, false)
    }

    fn set_port(config: &NetworkConfig, machine_id: &str, on: bool) -> Result<()> {
        check_machine_id(machine_id)?;
        let name = veth_name(config, machine_id);
        let mut host = Netlink::open()?;
        let Some(veth) = host.link(&name)? else {
            return if on {
                Err(NetworkError::Protocol {
                    op: "attach link to bridge",
                    problem: format!("machine {machine_id} has no veth {name}"),
                })
            } else {
                Ok(())
            };
        };
        if on {
            let bridge = bridge_link(&mut host, config)?
                .ok_or_else(|| NetworkError::NoBridge(config.bridge.clone()))?;
            if veth.master != Some(bridge.index) {
                host.set_master(veth.index, &name, bridge.index)
                    .map_err(|e| bridge_full(e, config))?;
            }
        } else if veth.master.is_some() {
            host.set_master(veth.index, &name, 0)?;
        }
        Ok(())
    }

    /// Whether the machine's namespace is mounted.
    pub fn exists(config: &NetworkConfig, machine_id: &str) -> Result<bool> {
        check_machine_id(machine_id)?;
        Ok(netns::is_mounted(&netns_path(config, machine_id)))
    }

    /// What is there for the machine; `None` when neither namespace nor veth exists.
    pub fn inspect(
        config: &NetworkConfig,
        machine_id: &str,
    ) -> Result<Option<MachineNetworkState>> {
        check_machine_id(machine_id)?;
        let path = netns_path(config, machine_id);
        let netns_mounted = netns::is_mounted(&path);
        let mut host = Netlink::open()?;
        let veth = host.link(&veth_name(config, machine_id))?;
        if !netns_mounted && veth.is_none() {
            return Ok(None);
        }
        let bridge = host.link(&config.bridge)?;
        let veth_on_bridge = match (&veth, &bridge) {
            (Some(v), Some(b)) => v.master == Some(b.index),
            _ => false,
        };
        let mut eth0_up = false;
        let mut addrs = Vec::new();
        if netns_mounted {
            let mut inside = netns::socket_in(&path)?;
            if let Some(eth0) = inside.link(GUEST_IFNAME)? {
                eth0_up = eth0.up;
                addrs = inside
                    .addrs()?
                    .into_iter()
                    .filter(|a| a.index == eth0.index)
                    .map(|a| a.addr)
                    .filter(|a| match a {
                        IpAddr::V4(_) => true,
                        // Link-local addresses are the kernel's, not the machine's.
                        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
                    })
                    .collect();
            }
        }
        Ok(Some(MachineNetworkState {
            netns_mounted,
            veth_present: veth.is_some(),
            veth_on_bridge,
            eth0_up,
            addrs,
        }))
    }
}

/// The kernel's EXFULL on a bridge port, said plainly.
fn bridge_full(e: NetworkError, config: &NetworkConfig) -> NetworkError {
    match e {
        NetworkError::Netlink {
            source: nix::Error::EXFULL,
            ..
        } => NetworkError::Invalid {
            field: "bridge",
            problem: format!(
                "bridge {} has 1024 ports, the most a Linux bridge takes: at most 1023 machines can run on it at once",
                config.bridge
            ),
        },
        other => other,
    }
}

/// Deletes a veth (its peer goes with it) and unmounts a namespace.
pub(crate) fn remove_by_names(veth: &str, netns_name: &str) -> Result<bool> {
    let mut host = Netlink::open()?;
    let veth_removed = host.del_link(veth)?;
    let netns_removed = netns::remove(netns_name)?;
    Ok(veth_removed || netns_removed)
}
