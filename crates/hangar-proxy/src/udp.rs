//! UDP services: one socket per UDP public port, one flow per client
//! address pinned to a machine, datagrams relayed both ways, and machines
//! started by a flow's first datagram.
//!
//! A datagram carries no Host header, so a UDP port serves one app (see
//! [`Catalog::udp_ports`]). Each client address (ip:port) is a flow: its
//! datagrams go to one machine over a socket connected to the machine's
//! `private_ip:internal_port`, and the machine's answers go back out of the
//! public socket, so the client sees them come from the address it sent
//! to. A flow holds one unit of its machine's load while it lives: flows
//! spread over machines by load, and autostop leaves a machine with flows
//! alone. A flow ends after `--proxy-udp-idle-timeout` without a datagram
//! either way.

mod budget;
mod flow;
mod flows;
mod pick;
mod port;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::shared::Shared;

/// How long a UDP port that failed to bind waits before the next try.
const BIND_RETRY_MS: u64 = 5_000;

/// The UDP service ports the proxy serves, kept in line with the routing
/// table by [`UdpPorts::sync`]; their sockets close when this is dropped.
pub struct UdpPorts {
    tasks: HashMap<u16, JoinHandle<()>>,
    /// The flows of all ports together.
    budget: Arc<budget::FlowBudget>,
    /// Ports that failed to bind, and when (clock ms).
    failed: HashMap<u16, u64>,
    /// Port conflicts already logged: (port, app left without it).
    warned: HashSet<(u16, String)>,
}

impl Default for UdpPorts {
    fn default() -> Self {
        UdpPorts {
            tasks: HashMap::new(),
            budget: budget::FlowBudget::from_open_file_limit(),
            failed: HashMap::new(),
            warned: HashSet::new(),
        }
    }
}

impl UdpPorts {
    /// Opens a socket for each UDP port of `cat` not open yet (a port that
    /// failed to bind is retried every 5 s) and closes those no machine
    /// declares any more, with their flows.
    pub fn sync(&mut self, shared: &Arc<Shared>, cat: &Catalog) {
        self.warn_conflicts(cat);
        self.tasks.retain(|port, task| {
            let keep = cat.udp_ports.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
                tracing::info!(port, "proxy: closed UDP service port");
            }
            keep
        });
        self.failed
            .retain(|port, _| cat.udp_ports.contains_key(port));
        for port in cat.udp_ports.keys() {
            if self.tasks.contains_key(port) {
                continue;
            }
            if let Some(at) = self.failed.get(port)
                && crate::clock::now_ms().saturating_sub(*at) < BIND_RETRY_MS
            {
                continue;
            }
            let addr = SocketAddr::new(shared.opts.bind, *port);
            match bind(addr) {
                Ok(socket) => {
                    self.failed.remove(port);
                    tracing::info!(%addr, "proxy: listening on UDP service port");
                    let task = tokio::spawn(port::serve(
                        shared.clone(),
                        *port,
                        socket,
                        self.budget.clone(),
                    ));
                    self.tasks.insert(*port, task);
                }
                Err(e) => {
                    if !self.failed.contains_key(port) {
                        tracing::warn!(%addr, "proxy: cannot listen on UDP service port: {e}");
                    }
                    self.failed.insert(*port, crate::clock::now_ms());
                }
            }
        }
    }

    /// Logs each UDP port conflict once (again if it goes away and comes
    /// back).
    fn warn_conflicts(&mut self, cat: &Catalog) {
        let mut current = HashSet::new();
        for c in &cat.udp_conflicts {
            for loser in &c.losers {
                let key = (c.port, loser.clone());
                if !self.warned.contains(&key) {
                    tracing::warn!(
                        port = c.port,
                        serving = %c.winner,
                        ignored = %loser,
                        "proxy: several apps declare this UDP port; one app per UDP port, the app of the lowest machine id serves it"
                    );
                }
                current.insert(key);
            }
        }
        self.warned = current;
    }
}

impl Drop for UdpPorts {
    fn drop(&mut self) {
        for (_, task) in self.tasks.drain() {
            task.abort();
        }
    }
}

/// A UDP socket on `addr` (no `SO_REUSEADDR`: on UDP it would let two
/// sockets share the port).
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket)
}
