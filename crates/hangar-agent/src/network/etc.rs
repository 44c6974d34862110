//! The files pilot bind-mounts into a machine's containers: `/etc/hostname`,
//! `/etc/hosts` (the machine's own names, its peers' `<id>.vm.<app>.internal`
//! and `<app>.internal` for every machine of the app) and `/etc/resolv.conf`.

use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::config::check_chars;
use super::error::Result;
use super::machine::MachineNetwork;

/// Another machine of the same app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its machine id.
    pub machine_id: String,
    /// Its `private_ip`.
    pub ipv6: Ipv6Addr,
}

/// The contents of a machine's `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcFiles {
    /// `/etc/hostname`: the machine id.
    pub hostname: String,
    /// `/etc/hosts`.
    pub hosts: String,
    /// `/etc/resolv.conf`.
    pub resolv_conf: String,
}

/// Nameservers and search domains of a `resolv.conf` text, without the loopback
/// nameservers (a host's local resolver, e.g. 127.0.0.53, is not reachable from
/// inside a machine's namespace).
pub fn host_resolvers(resolv_conf: &str) -> (Vec<IpAddr>, Vec<String>) {
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok())
                    && !ip.is_loopback()
                {
                    servers.push(ip);
                }
            }
            Some("search" | "domain") => search = words.map(str::to_string).collect(),
            _ => {}
        }
    }
    (servers, search)
}

impl MachineNetwork {
    /// The machine's `/etc` files. `peers` are the other machines of `app`; the
    /// agent rewrites `hosts` in place when they change (a bind-mounted file sees
    /// in-place writes, not renames).
    pub fn etc_files(
        &self,
        app: &str,
        peers: &[Peer],
        nameservers: &[IpAddr],
        search: &[String],
    ) -> Result<EtcFiles> {
        check_chars("app", app)?;
        let id = &self.machine_id;
        let mut hosts = format!(
            "# Written by Hangar for machine {id} of app {app}.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             {v6}\t{id}.vm.{app}.internal {id}\n\
             {v4}\t{id}\n",
            v6 = self.addrs.ipv6,
            v4 = self.addrs.ipv4,
        );
        let mut peers: Vec<&Peer> = peers.iter().filter(|p| &p.machine_id != id).collect();
        peers.sort_by(|a, b| a.machine_id.cmp(&b.machine_id));
        for p in &peers {
            check_chars("peers[].machine_id", &p.machine_id)?;
            hosts.push_str(&format!("{}\t{}.vm.{app}.internal\n", p.ipv6, p.machine_id));
        }
        hosts.push_str(&format!("{}\t{app}.internal\n", self.addrs.ipv6));
        for p in &peers {
            hosts.push_str(&format!("{}\t{app}.internal\n", p.ipv6));
        }
        let mut resolv_conf = String::from("# Written by Hangar.\n");
        let mut domains = vec![format!("vm.{app}.internal"), format!("{app}.internal")];
        domains.extend(search.iter().cloned());
        resolv_conf.push_str(&format!("search {}\n", domains.join(" ")));
        for ns in nameservers {
            resolv_conf.push_str(&format!("nameserver {ns}\n"));
        }
        Ok(EtcFiles {
            hostname: format!("{id}\n"),
            hosts,
            resolv_conf,
        })
    }
}
