//! After a crash: find the namespaces and veths this host's agent made (by
//! their name prefixes) and remove those that belong to no known machine.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::config::{IFNAME_MAX, NetworkConfig};
use super::error::Result;
use super::names::{netns_name, veth_name};
use super::netlink::Netlink;
use super::netns;

/// The network objects found with Hangar's prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Managed {
    /// Machine ids that have a namespace (the namespace name minus the prefix).
    pub machines: BTreeSet<String>,
    /// Namespace names under `/run/netns`.
    pub netns: BTreeSet<String>,
    /// Host-side veths.
    pub veths: BTreeSet<String>,
}

/// Whether `name` has the shape of a machine veth of `config`.
fn is_managed_veth(config: &NetworkConfig, name: &str) -> bool {
    name.len() == IFNAME_MAX
        && name
            .strip_prefix(config.veth_prefix.as_str())
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Lists the namespaces and veths `config`'s prefixes mark as Hangar's.
pub fn list_managed(config: &NetworkConfig) -> Result<Managed> {
    config.validate()?;
    let mut managed = Managed::default();
    for name in netns::list(&config.netns_prefix)? {
        if let Some(id) = name.strip_prefix(config.netns_prefix.as_str()) {
            managed.machines.insert(id.to_string());
        }
        managed.netns.insert(name);
    }
    let mut nl = Netlink::open()?;
    for link in nl.links()? {
        if link.kind == "veth" && is_managed_veth(config, &link.name) {
            managed.veths.insert(link.name);
        }
    }
    Ok(managed)
}

/// Removes every managed namespace and veth that does not belong to a machine id
/// in `keep`; returns what it removed.
pub fn remove_orphans(config: &NetworkConfig, keep: &HashSet<String>) -> Result<Managed> {
    let found = list_managed(config)?;
    let keep_netns: HashSet<String> = keep.iter().map(|id| netns_name(config, id)).collect();
    let keep_veths: HashSet<String> = keep.iter().map(|id| veth_name(config, id)).collect();
    let mut removed = Managed::default();
    let mut nl = Netlink::open()?;
    for name in &found.veths {
        if !keep_veths.contains(name) {
            nl.del_link(name)?;
            removed.veths.insert(name.clone());
        }
    }
    for name in &found.netns {
        if !keep_netns.contains(name) {
            netns::remove(name)?;
            if let Some(id) = name.strip_prefix(config.netns_prefix.as_str()) {
                removed.machines.insert(id.to_string());
            }
            removed.netns.insert(name.clone());
        }
    }
    if !removed.netns.is_empty() || !removed.veths.is_empty() {
        tracing::info!(
            netns = removed.netns.len(),
            veths = removed.veths.len(),
            "removed orphaned machine networks"
        );
    }
    Ok(removed)
}
