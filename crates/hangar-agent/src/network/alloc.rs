//! Address allocation, pure: given the addresses in use, the next free IPv4
//! address of the subnet and the machine's IPv6 address (ULA prefix + bits
//! derived from its id). The caller persists the result (the agent's store).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::config::{Ipv4Subnet, Ipv6Prefix, NetworkConfig};
use super::error::{NetworkError, Result};
use super::names::stable_hash;

/// A machine's addresses: `ipv6` is its `private_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MachineAddrs {
    /// Address on the host bridge's IPv4 subnet.
    pub ipv4: Ipv4Addr,
    /// Address in the host's ULA /64.
    pub ipv6: Ipv6Addr,
}

/// The lowest IPv4 address of `subnet` that is not in `used` and is neither the
/// network address, the gateway (`.1`) nor the broadcast address.
pub fn next_free_ipv4(subnet: Ipv4Subnet, used: &HashSet<Ipv4Addr>) -> Result<Ipv4Addr> {
    let first = u32::from(subnet.first_host());
    let last = u32::from(subnet.last_host());
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
        .ok_or_else(|| NetworkError::SubnetFull(subnet.to_string()))
}

/// The IPv6 address a machine id maps to: the prefix + 64 bits hashed from the id
/// (attempt 0), or from `id#attempt` when an earlier attempt collided.
pub fn ipv6_for(prefix: Ipv6Prefix, machine_id: &str, attempt: u32) -> Ipv6Addr {
    let iid = if attempt == 0 {
        stable_hash(machine_id.as_bytes())
    } else {
        stable_hash(format!("{machine_id}#{attempt}").as_bytes())
    };
    // ::0 is the subnet-router anycast address and ::1 the gateway.
    let iid = if iid <= 1 { iid | 0x100 } else { iid };
    prefix.with_interface_id(iid)
}

/// Addresses for a new machine, given every machine's addresses already allocated
/// on this host. Deterministic: the same inputs give the same answer.
pub fn allocate<'a>(
    config: &NetworkConfig,
    machine_id: &str,
    used: impl IntoIterator<Item = &'a MachineAddrs>,
) -> Result<MachineAddrs> {
    super::names::check_machine_id(machine_id)?;
    let mut v4 = HashSet::new();
    let mut v6 = HashSet::new();
    for a in used {
        v4.insert(a.ipv4);
        v6.insert(a.ipv6);
    }
    let ipv4 = next_free_ipv4(config.ipv4_subnet, &v4)?;
    let ipv6 = (0..64)
        .map(|attempt| ipv6_for(config.ipv6_prefix, machine_id, attempt))
        .find(|a| !v6.contains(a))
        .ok_or_else(|| {
            NetworkError::invalid("machine_id", "no free IPv6 address after 64 attempts")
        })?;
    Ok(MachineAddrs { ipv4, ipv6 })
}

/// Checks that `addrs` are usable machine addresses of `config`'s networks.
pub fn check_addrs(config: &NetworkConfig, addrs: &MachineAddrs) -> Result<()> {
    let subnet = config.ipv4_subnet;
    if !subnet.contains(addrs.ipv4) {
        return Err(NetworkError::OutsideNetwork {
            addr: IpAddr::V4(addrs.ipv4),
            network: subnet.to_string(),
        });
    }
    if [subnet.network(), subnet.gateway(), subnet.broadcast()].contains(&addrs.ipv4) {
        return Err(NetworkError::invalid(
            "addrs.ipv4",
            format!(
                "{} is the network, gateway or broadcast address of {subnet}",
                addrs.ipv4
            ),
        ));
    }
    let prefix = config.ipv6_prefix;
    if !prefix.contains(addrs.ipv6) {
        return Err(NetworkError::OutsideNetwork {
            addr: IpAddr::V6(addrs.ipv6),
            network: prefix.to_string(),
        });
    }
    if [prefix.network(), prefix.gateway()].contains(&addrs.ipv6) {
        return Err(NetworkError::invalid(
            "addrs.ipv6",
            format!(
                "{} is the network or gateway address of {prefix}",
                addrs.ipv6
            ),
        ));
    }
    Ok(())
}
