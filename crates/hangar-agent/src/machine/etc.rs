//! A machine's `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` on the
//! machine network: written into the machine's directory, bind-mounted
//! read-only into every container, and rewritten in place (same inode, so the
//! mounts see it) whenever a machine of the same app starts or stops, so
//! `<app>.internal` and `<id>.vm.<app>.internal` name the app's running
//! machines.

use std::net::IpAddr;
use std::path::PathBuf;

use pilot::spec::VolumeSpec;

use super::{Agent, AgentError, launch};
use crate::network::{MachineNetwork, Peer, host_resolvers};
use crate::store::{MachineFilter, MachineRecord, MachineState};

/// States in which a machine answers on its address.
const LIVE: &[MachineState] = &[MachineState::Starting, MachineState::Started];

impl Agent {
    fn etc_dir(&self, machine_id: &str) -> PathBuf {
        self.paths(machine_id).dir().join("etc")
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
        self.write_etc(machine).await?;
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

    /// Serializes the writers of one app's files, so an older peer list
    /// never overwrites a newer one.
    fn etc_lock(&self, app: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.lock_for(&format!("/etc of app {app}"))
    }

    async fn write_etc(&self, machine: &MachineRecord) -> Result<(), AgentError> {
        let lock = self.etc_lock(&machine.app);
        let _guard = lock.lock().await;
        self.write_etc_locked(machine).await
    }

    async fn write_etc_locked(&self, machine: &MachineRecord) -> Result<(), AgentError> {
        let Some(host) = &self.0.network else {
            return Ok(());
        };
        let net = host.config().clone();
        let addrs = launch::addresses(&self.0.store, &net, &machine.id).await?;
        let peers = self.live_peers(&machine.app).await?;
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (nameservers, search) = host_resolvers(&resolv);
        let files = MachineNetwork::describe(&net, &machine.id, addrs)
            .etc_files(&machine.app, &peers, &nameservers, &search)
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
            // In place (truncate and write): a bind mount holds the inode.
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| AgentError::Internal(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// The app's machines that are starting or running, with their addresses.
    async fn live_peers(&self, app: &str) -> Result<Vec<Peer>, AgentError> {
        let machines = self
            .0
            .store
            .list_machines(MachineFilter {
                app: Some(app.to_owned()),
                include_deleted: false,
                region: None,
                states: LIVE.to_vec(),
                metadata: Vec::new(),
            })
            .await?;
        Ok(machines
            .into_iter()
            .filter_map(|m| match m.private_ip.as_deref()?.parse().ok()? {
                IpAddr::V6(ipv6) => Some(Peer {
                    machine_id: m.id,
                    ipv6,
                }),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    /// Rewrites the files of the app's running machines after one of its
    /// machines started or stopped. Failures are logged: a stale peer list
    /// must not fail the operation that changed it.
    pub(super) async fn refresh_app_etc(&self, app: &str) {
        if self.0.network.is_none() {
            return;
        }
        let lock = self.etc_lock(app);
        let _guard = lock.lock().await;
        let machines = match self
            .0
            .store
            .list_machines(MachineFilter {
                app: Some(app.to_owned()),
                include_deleted: false,
                region: None,
                states: LIVE.to_vec(),
                metadata: Vec::new(),
            })
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(app, "listing machines to refresh /etc/hosts: {e}");
                return;
            }
        };
        for m in machines {
            if self.etc_dir(&m.id).is_dir()
                && let Err(e) = self.write_etc_locked(&m).await
            {
                tracing::warn!(machine_id = m.id, "refreshing /etc/hosts: {e}");
            }
        }
    }
}
