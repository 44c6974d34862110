//! Machine networking: the host bridge, per-machine network namespaces, veths
//! and addresses.
//!
//! Layout on a host (defaults): bridge `hangar0` holding `10.209.0.1/16` and
//! `<ula>::1/64`; each machine has a namespace `/run/netns/hangar-<id>` (a bind
//! mount, so it survives the agent and pilot joins it by path) with `lo` and
//! `eth0`, the latter one end of a veth whose host end `hg<hash>` is a bridge
//! port. Machines reach each other over the bridge on both families; with
//! `nat`, their traffic leaving the host is masqueraded.
//!
//! Usage by the agent:
//! 1. at start: [`HostNetwork::ensure`], then [`remove_orphans`] with the ids of
//!    the machines in the store;
//! 2. machine create: [`allocate`] (persist the result), then
//!    [`MachineNetwork::create`]; give pilot [`MachineNetwork::netns_path`] and
//!    [`MachineNetwork::etc_files`];
//! 3. machine destroy: [`MachineNetwork::destroy`], then forget the addresses.
//!
//! Every call is synchronous and quick (netlink, no subprocess, except the
//! firewall rules at `ensure`); from async code run them in `spawn_blocking`.
#![forbid(unsafe_code)]

mod alloc;
mod config;
mod error;
mod etc;
pub mod firewall;
mod host;
mod machine;
mod names;
mod netlink;
mod netns;
mod reconcile;

#[cfg(test)]
mod tests;

pub use alloc::{MachineAddrs, allocate, check_addrs, ipv6_for, next_free_ipv4};
pub use config::{
    DEFAULT_BRIDGE, DEFAULT_IPV4_SUBNET, DEFAULT_NETNS_PREFIX, DEFAULT_VETH_PREFIX, Ipv4Subnet,
    Ipv6Prefix, NetworkConfig,
};
pub use error::{NetworkError, Result};
pub use etc::{EtcFiles, Peer, host_resolvers};
pub use host::HostNetwork;
pub use machine::{MachineNetwork, MachineNetworkState};
pub use names::{GUEST_IFNAME, NETNS_DIR, check_machine_id, netns_name, netns_path, veth_name};
pub use reconcile::{Managed, list_managed, remove_orphans};
