//! Starting a machine's pilot: addresses, volume mounts, the spec file, and
//! `pilot sandbox -- pilot run`, then waiting until pilot answers on its socket.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pilot::spec::VolumeSpec;
use tokio::sync::watch;

use super::pidfd::PidFd;
use super::{Agent, AgentError, PILOT_READY_TIMEOUT, Run, parse_config, spec};
use crate::network::{MachineAddrs, NetworkConfig, ipv6_for, netns_path};
use crate::store::{IpPool, MachineRecord, Store};

const V4_POOL: &str = "machines-v4";
const V6_POOL: &str = "machines-v6";

/// The machine's addresses: the ones already allocated to it, else new ones.
pub async fn addresses(
    store: &Store,
    net: &NetworkConfig,
    machine_id: &str,
) -> Result<MachineAddrs, AgentError> {
    let have = store.ips_of(machine_id).await?;
    let v4 = match have.iter().find_map(|a| match a.ip {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }) {
        Some(ip) => ip,
        None => {
            let pool = IpPool {
                name: V4_POOL.into(),
                first: IpAddr::V4(net.ipv4_subnet.first_host()),
                last: IpAddr::V4(net.ipv4_subnet.last_host()),
            };
            match store.allocate_ip(pool, machine_id).await?.ip {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => unreachable!("an IPv4 pool hands out IPv4 addresses"),
            }
        }
    };
    let v6 = match have.iter().find_map(|a| match a.ip {
        IpAddr::V6(ip) => Some(ip),
        IpAddr::V4(_) => None,
    }) {
        Some(ip) => ip,
        None => {
            let mut reserved = None;
            for attempt in 0..64 {
                let ip = ipv6_for(net.ipv6_prefix, machine_id, attempt);
                if store
                    .reserve_ip(V6_POOL, IpAddr::V6(ip), machine_id)
                    .await
                    .is_ok()
                {
                    reserved = Some(ip);
                    break;
                }
            }
            reserved.ok_or_else(|| {
                AgentError::Unavailable(format!("machine {machine_id}: no free IPv6 address"))
            })?
        }
    };
    Ok(MachineAddrs { ipv4: v4, ipv6: v6 })
}

impl Agent {
    /// Mounts the machine's volumes and returns them as pilot bind mounts.
    async fn mount_volumes(
        &self,
        machine: &MachineRecord,
        config: &hangar_types::MachineConfig,
    ) -> Result<Vec<VolumeSpec>, AgentError> {
        let mut out = Vec::new();
        for (i, mount) in config.mounts().iter().enumerate() {
            let (Some(volume), Some(path)) = (&mount.volume, &mount.path) else {
                return Err(AgentError::Invalid(format!(
                    "config.mounts[{i}]: needs both volume and path"
                )));
            };
            let record = self.0.store.volume(volume).await.map_err(|_| {
                AgentError::Invalid(format!(
                    "config.mounts[{i}].volume: no volume {volume:?} on this host"
                ))
            })?;
            if record.app != machine.app {
                return Err(AgentError::Invalid(format!(
                    "config.mounts[{i}].volume: volume {volume} belongs to app {}",
                    record.app
                )));
            }
            self.0
                .store
                .attach_volume(volume, &machine.id)
                .await
                .map_err(|e| AgentError::InvalidState(format!("config.mounts[{i}].volume: {e}")))?;
            let source = self
                .0
                .volumes
                .mount(volume)
                .map_err(|e| AgentError::Internal(e.to_string()))?;
            out.push(VolumeSpec {
                source,
                target: path.into(),
                readonly: false,
                containers: None,
            });
        }
        Ok(out)
    }

    /// Writes the spec and starts pilot; returns once pilot answers on its socket.
    pub(super) async fn launch(&self, machine: &MachineRecord) -> Result<(), AgentError> {
        let config = parse_config(machine)?;
        let paths = self.paths(&machine.id);
        std::fs::create_dir_all(paths.state_dir())
            .map_err(|e| AgentError::Internal(format!("{}: {e}", paths.dir().display())))?;
        // A failed create may have left images unpulled; a restart after an
        // agent upgrade may need them again.
        self.ensure_images(&config, &machine.id).await?;
        let mut machine = machine.clone();
        if let Some(ip) = self.ensure_network(&machine).await? {
            machine.private_ip = Some(ip);
        }
        self.attach_network(&machine.id)?;
        let mut volumes = self.mount_volumes(&machine, &config).await?;
        volumes.extend(self.etc_mounts(&machine).await?);
        let secrets = self.0.store.secret_values(&machine.app).await?;
        let spec = spec::build(&machine, &config, &self.0.images, secrets, volumes, &paths)?;
        write_private(
            &paths.spec(),
            &serde_json::to_vec(&spec).expect("spec serializes"),
        )?;
        for stale in [paths.socket(), paths.pidfile(), paths.final_status()] {
            let _ = std::fs::remove_file(stale);
        }

        let mut cmd = std::process::Command::new(&self.0.config.pilot_bin);
        cmd.arg("sandbox");
        match &self.0.network {
            Some(host) => cmd
                .arg("--netns")
                .arg(netns_path(host.config(), &machine.id)),
            None => cmd.arg("--new-netns"),
        };
        cmd.arg("--hostname").arg(&machine.id);
        cmd.arg("--cgroup-parent")
            .arg(self.cgroup_path(&machine.id));
        let guest = config.guest();
        if let Some(mb) = guest.memory_mb {
            cmd.arg("--memory-mb").arg(mb.to_string());
        }
        if let Some(cpus) = guest.cpus {
            cmd.arg("--cpus").arg(cpus.to_string());
        }
        cmd.arg("--pidfile").arg(paths.pidfile());
        cmd.arg("--").arg(&self.0.config.pilot_bin).arg("run");
        cmd.arg("--spec").arg(paths.spec());
        cmd.arg("--socket").arg(paths.socket());
        cmd.arg("--state-dir").arg(paths.state_dir());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.log())
            .map_err(|e| AgentError::Internal(format!("{}: {e}", paths.log().display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        // On a v1 host the machine joins its freezer cgroup before pilot runs,
        // so suspend can freeze everything it ever forks. Without one (a
        // read-only cgroup mount) the machine runs but cannot be suspended.
        let freezer = super::freezer::join_before_exec(&self.cgroup_path(&machine.id))
            .unwrap_or_else(|e| {
                tracing::warn!(
                    machine_id = machine.id,
                    "no freezer cgroup, the machine cannot be suspended: {e}"
                );
                None
            });
        if let Some(procs) = &freezer {
            join_cgroup_in_child(&mut cmd, procs.as_raw_fd());
        }
        let status = tokio::task::spawn_blocking(move || {
            let status = cmd.status();
            drop(freezer);
            status
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
        .map_err(|e| {
            AgentError::Internal(format!(
                "running {}: {e}",
                self.0.config.pilot_bin.display()
            ))
        })?;
        if !status.success() {
            return Err(AgentError::Internal(format!(
                "pilot sandbox failed ({status}): {}",
                log_tail(&paths.log())
            )));
        }
        let pid: i32 = std::fs::read_to_string(paths.pidfile())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| AgentError::Internal("pilot sandbox wrote no pid".into()))?;
        self.attach(&machine.id, pid)?;
        self.wait_ready(&machine.id).await
    }

    /// Starts watching pilot `pid` of the machine.
    pub(super) fn attach(&self, machine_id: &str, pid: i32) -> Result<(), AgentError> {
        let pidfd = PidFd::open(pid)
            .map_err(|e| AgentError::Internal(format!("pilot {pid} of {machine_id}: {e}")))?;
        let generation = self.0.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = watch::channel(false);
        let stop_requested = Arc::new(AtomicBool::new(false));
        self.0.runs.lock().expect("runs poisoned").insert(
            machine_id.to_owned(),
            Run {
                generation,
                pid,
                exited: rx,
                stop_requested,
                frozen: false,
            },
        );
        let agent = self.clone();
        let id = machine_id.to_owned();
        tokio::spawn(async move {
            let _ = pidfd.exited().await;
            let _ = tx.send(true);
            let lock = agent.lock_for(&id);
            let _guard = lock.lock().await;
            if let Err(e) = agent.finish_run(&id, generation).await {
                tracing::error!(machine_id = id, "recording the exit of pilot: {e}");
            }
        });
        Ok(())
    }

    /// Waits until pilot answers `status`, or fails with why it did not.
    pub(super) async fn wait_ready(&self, machine_id: &str) -> Result<(), AgentError> {
        let paths = self.paths(machine_id);
        let client = pilot::client::Client::new(paths.socket());
        let deadline = tokio::time::Instant::now() + PILOT_READY_TIMEOUT;
        // Pilot is usually ready within a few milliseconds: poll finely so the
        // start is acknowledged as soon as it is.
        let mut delay = std::time::Duration::from_micros(100);
        loop {
            // Started once pilot answers and has tried every container that
            // waits for nothing, so an exec or a request right after `started`
            // finds them running.
            if paths.socket().exists()
                && let Ok(status) = client.status().await
                && !status.containers.iter().any(first_start_pending)
            {
                return Ok(());
            }
            let exited = {
                let runs = self.0.runs.lock().expect("runs poisoned");
                runs.get(machine_id)
                    .map(|r| *r.exited.borrow())
                    .unwrap_or(true)
            };
            if exited {
                // Its containers ran and finished before we looked: the
                // machine did start; its exit is recorded as usual.
                if super::monitor::read_status(&paths).is_some_and(|s| {
                    s.error.is_none() && s.containers.iter().any(|c| c.last_exit.is_some())
                }) {
                    return Ok(());
                }
                return Err(AgentError::Internal(format!(
                    "pilot exited during start: {}",
                    super::monitor::read_exit_reason(&paths)
                        .unwrap_or_else(|| log_tail(&paths.log()))
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AgentError::Timeout(format!(
                    "pilot of machine {machine_id} did not answer within {PILOT_READY_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(1));
        }
    }
}

/// Makes the child of `cmd` write itself ("0") to the open `cgroup.procs`
/// descriptor `procs` between fork and exec. The descriptor must stay open
/// until the child has been spawned.
fn join_cgroup_in_child(cmd: &mut std::process::Command, procs: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes one write(2) of a static
    // buffer to a descriptor the parent keeps open across the spawn, and
    // builds its error from errno without allocating.
    unsafe {
        cmd.pre_exec(move || {
            let n = libc::write(procs, b"0".as_ptr().cast(), 1);
            if n == 1 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Whether a container that depends on nothing has not been tried yet: not
/// started, not exited, no failed start.
fn first_start_pending(c: &pilot::status::ContainerStatus) -> bool {
    use pilot::status::ContainerState;
    c.waiting_for.is_empty()
        && c.started_at_ms.is_none()
        && c.last_exit.is_none()
        && c.reason.is_none()
        && c.restart_count == 0
        && matches!(c.state, ContainerState::Created | ContainerState::Starting)
}

/// Writes `data` to `path` (mode 0600, it holds secrets) through a temp file.
fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), AgentError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| AgentError::Internal(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The last lines of pilot's log, for error messages.
pub(super) fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = lines.into_iter().rev().collect();
    if tail.is_empty() {
        "no output".into()
    } else {
        tail.join(" | ")
    }
}
