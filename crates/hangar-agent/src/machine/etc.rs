//! A machine's `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` on the
//! machine network: written into the machine's directory, bind-mounted
//! read-only into every container, and rewritten in place (same inode, so the
//! mounts see it) when a machine of the same app starts or stops, so
//! `<app>.internal` and `<id>.vm.<app>.internal` name the app's running
//! machines.
//!
//! Refreshes are coalesced per app: while one is queued, further changes ride
//! on it, so a burst of starts in a large app costs a few rewrites, not one
//! per start and machine.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pilot::spec::VolumeSpec;

use super::{Agent, AgentError, launch};
use crate::network::{MachineAddrs, MachineNetwork, Peer, host_resolvers};
use crate::store::{MachineFilter, MachineRecord, MachineState};

/// States in which a machine answers on its address.
const LIVE: &[MachineState] = &[MachineState::Starting, MachineState::Started];
/// How long a queued refresh waits for more changes to ride on it.
const REFRESH_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

impl Agent {
    fn etc_dir(&self, machine_id: &str) -> PathBuf {
        self.paths(machine_id).dir().join("etc")
    }

    /// Serializes the writers of one app's files, so an older peer list
    /// never overwrites a newer one.
    fn etc_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for(&format!("/etc of app {app}"))
    }

    /// Writes the machine's files and returns them as read-only mounts; none
    /// without a machine network.
    pub(super) async fn etc_mounts(
        &self,
        machine: &MachineRecord,
    ) -> Result<Vec<VolumeSpec>, AgentError> {
        if self.0.network.is_none() {
            return Ok(Vec::new());
        }
        let lock = self.etc_lock(&machine.app);
        let _guard = lock.lock().await;
        let peers = peers_of(&self.live_machines(&machine.app).await?);
        self.write_etc(machine, &peers).await?;
        let dir = self.etc_dir(&machine.id);
        Ok(["hostname", "hosts", "resolv.conf"]
            .into_iter()
            .map(|name| VolumeSpec {
                source: dir.join(name),
                target: PathBuf::from("/etc").join(name),
                readonly: true,
                containers: None,
            })
            .collect())
    }

    /// Writes one machine's files (the caller holds the app's etc lock).
    async fn write_etc(&self, machine: &MachineRecord, peers: &[Peer]) -> Result<(), AgentError> {
        let Some(host) = &self.0.network else {
            return Ok(());
        };
        let net = host.config();
        let addrs = match (
            machine.private_ip.as_deref().and_then(|s| s.parse().ok()),
            machine.private_ipv4.as_deref().and_then(|s| s.parse().ok()),
        ) {
            (Some(ipv6), Some(ipv4)) => MachineAddrs { ipv4, ipv6 },
            _ => launch::addresses(&self.0.store, net, &machine.id).await?,
        };
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (nameservers, search) = host_resolvers(&resolv);
        let files = MachineNetwork::describe(net, &machine.id, addrs)
            .etc_files(&machine.app, peers, &nameservers, &search)
            .map_err(|e| {
                AgentError::Internal(format!("machine {}: /etc files: {e}", machine.id))
            })?;
        let dir = self.etc_dir(&machine.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| AgentError::Internal(format!("{}: {e}", dir.display())))?;
        for (name, text) in [
            ("hostname", &files.hostname),
            ("hosts", &files.hosts),
            ("resolv.conf", &files.resolv_conf),
        ] {
            let path = dir.join(name);
            // Unchanged files are left alone; changed ones are rewritten in
            // place (truncate and write): a bind mount holds the inode.
            if std::fs::read_to_string(&path).is_ok_and(|old| &old == text) {
                continue;
            }
            std::fs::write(&path, text)
                .map_err(|e| AgentError::Internal(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// The app's machines that are starting or running.
    async fn live_machines(&self, app: &str) -> Result<Vec<MachineRecord>, AgentError> {
        Ok(self
            .0
            .store
            .list_machines(MachineFilter {
                app: Some(app.to_owned()),
                include_deleted: false,
                region: None,
                states: LIVE.to_vec(),
                metadata: Vec::new(),
            })
            .await?)
    }

    /// Queues a rewrite of the files of the app's running machines after one
    /// of its machines started or stopped, unless one is queued already.
    pub(super) fn schedule_etc_refresh(&self, app: &str) {
        if self.0.network.is_none() {
            return;
        }
        {
            let mut queued = self.0.etc_queued.lock().expect("etc_queued poisoned");
            if !queued.insert(app.to_owned()) {
                return;
            }
        }
        let agent = self.clone();
        let app = app.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(REFRESH_DELAY).await;
            let lock = agent.etc_lock(&app);
            let _guard = lock.lock().await;
            // Changes from here on queue another refresh.
            agent
                .0
                .etc_queued
                .lock()
                .expect("etc_queued poisoned")
                .remove(&app);
            agent.refresh_etc_locked(&app).await;
        });
    }

    /// Failures are logged: a stale peer list must not fail the operation
    /// that changed it.
    async fn refresh_etc_locked(&self, app: &str) {
        let machines = match self.live_machines(app).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(app, "listing machines to refresh /etc/hosts: {e}");
                return;
            }
        };
        let peers = peers_of(&machines);
        for m in &machines {
            if self.etc_dir(&m.id).is_dir()
                && let Err(e) = self.write_etc(m, &peers).await
            {
                tracing::warn!(machine_id = m.id, "refreshing /etc/hosts: {e}");
            }
        }
    }
}

/// Machines as peers, with their addresses.
fn peers_of(machines: &[MachineRecord]) -> Vec<Peer> {
    machines
        .iter()
        .filter_map(|m| match m.private_ip.as_deref()?.parse().ok()? {
            IpAddr::V6(ipv6) => Some(Peer {
                machine_id: m.id.clone(),
                ipv6,
            }),
            IpAddr::V4(_) => None,
        })
        .collect()
}
