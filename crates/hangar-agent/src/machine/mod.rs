//! The machine lifecycle on one host: create assembles everything a start does not
//! need (images pulled and unpacked, network namespace, addresses), start spawns
//! pilot in the machine's sandbox, stop asks pilot to stop, destroy removes
//! everything create and start made.
//!
//! ```text
//!   create ──► created ──start──► starting ──► started ──stop──► stopping ──► stopped
//!                 │                   │           │ (pilot exits by itself)      │
//!                 │                   └─fails──► failed ◄─┘                      │
//!                 └──────────────destroy──► destroying ──► destroyed ◄───────────┘
//!
//!   started ──suspend──► suspending ──► suspended ──start──► starting ──► started
//!                                           └──stop / destroy: thawed first──►
//! ```
//!
//! Suspend freezes the machine's processes in place (see `suspend`): pilot and
//! its containers keep their memory, sockets and network; start thaws them.
//!
//! Every transition goes through the store (persisted with its event before it is
//! acknowledged). Operations on one machine are serialized by a per-machine lock.
//! pilot runs detached from the agent: killing the agent never stops a machine, and
//! [`Agent::open`] re-attaches to every pilot still running (see `recover`).

mod cgroup;
mod checks;
mod errors;
mod etc;
mod freezer;
mod images;
mod launch;
mod logs;
mod monitor;
mod paths;
mod pidfd;
mod ps;
mod recover;
mod spec;
mod suspend;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangar_types::MachineConfig;
use serde_json::json;
use tokio::sync::watch;

use crate::image::{ImageStore, RegistryAuth};
use crate::network::{HostNetwork, MachineNetwork, NetworkConfig};
use crate::store::{MachineRecord, MachineState, NewEvent, OperationId, Store, Transition};
use crate::volume::VolumeManager;

pub use checks::CheckInfo;
pub use errors::AgentError;
pub use monitor::{rfc3339, rfc3339_ms};
pub use paths::MachinePaths;
pub use ps::ProcessInfo;

/// How long a started pilot may take to answer on its socket.
const PILOT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the agent of one host.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Everything the agent keeps: images, machines, volumes, the store.
    pub data_dir: PathBuf,
    /// The pilot binary (`pilot sandbox` and `pilot run`).
    pub pilot_bin: PathBuf,
    /// The region this host is in.
    pub region: String,
    /// Machine networking; `None` gives every machine an empty network namespace
    /// with only loopback.
    pub network: Option<NetworkConfig>,
    /// Parent of the machines' cgroups in every hierarchy.
    pub cgroup_prefix: String,
    /// Credentials for image pulls.
    pub registry_auth: RegistryAuth,
}

impl AgentConfig {
    /// Defaults for `data_dir`: region `local`, no machine network, cgroups under
    /// `hangar`, the pilot binary next to the running executable.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let pilot_bin = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("pilot")))
            .unwrap_or_else(|| PathBuf::from("pilot"));
        Self {
            data_dir: data_dir.into(),
            pilot_bin,
            region: "local".into(),
            network: None,
            cgroup_prefix: "hangar".into(),
            registry_auth: RegistryAuth::Anonymous,
        }
    }
}

/// A pilot the agent started (or re-attached to).
#[derive(Debug)]
struct Run {
    generation: u64,
    pid: i32,
    /// Becomes `true` once the pilot process has exited.
    exited: watch::Receiver<bool>,
    /// Set before the agent asks pilot to stop, so the exit is recorded as requested.
    stop_requested: Arc<AtomicBool>,
    /// The machine's processes are frozen (suspended): pilot cannot answer.
    frozen: bool,
}

struct Inner {
    config: AgentConfig,
    store: Store,
    images: ImageStore,
    volumes: VolumeManager,
    network: Option<HostNetwork>,
    runs: Mutex<HashMap<String, Run>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    generation: AtomicU64,
    /// Apps whose machines' /etc files are queued for a rewrite.
    etc_queued: Mutex<std::collections::HashSet<String>>,
}

/// The agent of one host. Cheap to clone.
#[derive(Clone)]
pub struct Agent(Arc<Inner>);

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("data_dir", &self.0.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Opens the agent's stores under `config.data_dir`, sets up the host network,
    /// and brings every machine's record in line with what runs on the host.
    pub async fn open(config: AgentConfig, store: Store) -> Result<Self, AgentError> {
        let images = ImageStore::open(config.data_dir.join("images"))
            .map_err(|e| AgentError::Internal(format!("image store: {e}")))?;
        let volumes = VolumeManager::open(config.data_dir.join("volumes"))
            .map_err(|e| AgentError::Internal(format!("volumes: {e}")))?;
        let network = match &config.network {
            Some(net) => {
                let net = net.clone();
                Some(
                    tokio::task::spawn_blocking(move || HostNetwork::ensure(&net))
                        .await
                        .map_err(|e| AgentError::Internal(e.to_string()))?
                        .map_err(|e| AgentError::Internal(format!("host network: {e}")))?,
                )
            }
            None => None,
        };
        let agent = Agent(Arc::new(Inner {
            config,
            store,
            images,
            volumes,
            network,
            runs: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            etc_queued: Mutex::default(),
        }));
        agent.recover().await?;
        Ok(agent)
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn images(&self) -> &ImageStore {
        &self.0.images
    }

    pub fn volumes(&self) -> &VolumeManager {
        &self.0.volumes
    }

    pub fn config(&self) -> &AgentConfig {
        &self.0.config
    }

    pub fn paths(&self, machine_id: &str) -> MachinePaths {
        MachinePaths::new(&self.0.config.data_dir, machine_id)
    }

    fn cgroup_path(&self, machine_id: &str) -> String {
        paths::cgroup_path(&self.0.config.cgroup_prefix, machine_id)
    }

    /// The per-machine operation lock.
    fn lock_for(&self, machine_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.locks.lock().expect("locks poisoned");
        locks.entry(machine_id.to_owned()).or_default().clone()
    }

    /// Host pid of the machine's pilot, if it runs.
    pub fn pilot_pid(&self, machine_id: &str) -> Option<i32> {
        let runs = self.0.runs.lock().expect("runs poisoned");
        runs.get(machine_id).map(|r| r.pid)
    }

    /// A client of the machine's pilot, if it runs (and is not suspended:
    /// a frozen pilot would never answer).
    pub fn pilot(&self, machine_id: &str) -> Result<pilot::client::Client, AgentError> {
        self.require_running(machine_id)?;
        Ok(pilot::client::Client::new(self.paths(machine_id).socket()))
    }

    /// Fails unless the machine's pilot runs and is not frozen.
    fn require_running(&self, machine_id: &str) -> Result<(), AgentError> {
        let runs = self.0.runs.lock().expect("runs poisoned");
        match runs.get(machine_id) {
            None => Err(AgentError::InvalidState(format!(
                "machine {machine_id} is not running"
            ))),
            Some(run) if run.frozen => Err(AgentError::InvalidState(format!(
                "machine {machine_id} is suspended (its processes are frozen): start it to resume it first"
            ))),
            Some(_) => Ok(()),
        }
    }

    async fn transition(
        &self,
        machine_id: &str,
        to: MachineState,
        event: NewEvent,
    ) -> Result<MachineRecord, AgentError> {
        let record = self
            .0
            .store
            .transition(Transition {
                machine_id: machine_id.to_owned(),
                to,
                event,
            })
            .await?;
        // The app's running machines name each other in /etc/hosts; that is
        // brought up to date in the background.
        if self.0.network.is_some()
            && matches!(
                to,
                MachineState::Started
                    | MachineState::Stopped
                    | MachineState::Failed
                    | MachineState::Destroyed
            )
        {
            self.schedule_etc_refresh(&record.app);
        }
        Ok(record)
    }

    /// Assembles a machine the API has recorded in `created` (images, network,
    /// addresses), finishes the create operation `op`, and starts it unless
    /// `skip_launch`. On failure the machine is left `failed` with nothing
    /// half-made on the host.
    pub async fn create(
        &self,
        machine: &MachineRecord,
        op: OperationId,
        skip_launch: bool,
    ) -> Result<(), AgentError> {
        let lock = self.lock_for(&machine.id);
        let guard = lock.lock().await;
        let config = parse_config(machine)?;
        let assembled = self.assemble(machine, &config).await;
        if let Err(e) = assembled {
            self.teardown_network(&machine.id).await;
            let _ = self
                .transition(
                    &machine.id,
                    MachineState::Failed,
                    NewEvent::agent("launch_failed").with_request(json!({"error": e.to_string()})),
                )
                .await;
            self.0.store.finish_operation(op, "failed").await?;
            return Err(e);
        }
        self.0.store.finish_operation(op, "done").await?;
        if !skip_launch {
            self.start_locked(&machine.id, &guard).await?;
        }
        Ok(())
    }

    /// Pulls the images (when missing) and makes the network namespace.
    async fn assemble(
        &self,
        machine: &MachineRecord,
        config: &MachineConfig,
    ) -> Result<(), AgentError> {
        self.ensure_images(config, &machine.id).await?;
        self.ensure_network(machine).await.map(|_| ())
    }

    /// Allocates the machine's addresses and makes its network namespace;
    /// returns the machine's `private_ip` (none without a machine network).
    async fn ensure_network(&self, machine: &MachineRecord) -> Result<Option<String>, AgentError> {
        let Some(host) = &self.0.network else {
            return Ok(None);
        };
        let net = host.config().clone();
        let addrs = launch::addresses(&self.0.store, &net, &machine.id).await?;
        let private_ip = addrs.ipv6.to_string();
        if machine.private_ip.as_deref() != Some(private_ip.as_str()) {
            self.0
                .store
                .set_private_ip(&machine.id, Some(private_ip.clone()))
                .await?;
        }
        let host = host.clone();
        let id = machine.id.clone();
        tokio::task::spawn_blocking(move || {
            if MachineNetwork::exists(host.config(), &id)? {
                return Ok(());
            }
            // On the bridge only while it runs (see `attach_network`).
            MachineNetwork::create_detached(&host, &id, addrs).map(|_| ())
        })
        .await
        .map_err(|e| AgentError::Internal(e.to_string()))?
        .map_err(|e| AgentError::Internal(format!("machine network: {e}")))?;
        Ok(Some(private_ip))
    }

    /// Puts a machine that is about to run on the bridge. A Linux bridge
    /// takes at most 1024 ports, so machines hold one only while they run.
    fn attach_network(&self, machine_id: &str) -> Result<(), AgentError> {
        let Some(host) = &self.0.network else {
            return Ok(());
        };
        MachineNetwork::attach(host.config(), machine_id)
            .map_err(|e| AgentError::Unavailable(format!("machine network: {e}")))
    }

    /// Takes a machine whose run ended off the bridge.
    fn detach_network(&self, machine_id: &str) {
        if let Some(host) = &self.0.network
            && let Err(e) = MachineNetwork::detach(host.config(), machine_id)
        {
            tracing::warn!(machine_id, "taking the machine off the bridge: {e}");
        }
    }

    async fn teardown_network(&self, machine_id: &str) {
        if let Some(host) = &self.0.network {
            let net = host.config().clone();
            let id = machine_id.to_owned();
            let _ = tokio::task::spawn_blocking(move || MachineNetwork::destroy(&net, &id)).await;
        }
        let _ = self.0.store.release_ips(machine_id).await;
    }

    /// Starts a created, stopped or failed machine; resumes a suspended one.
    pub async fn start(&self, machine_id: &str) -> Result<(), AgentError> {
        let lock = self.lock_for(machine_id);
        let guard = lock.lock().await;
        self.start_locked(machine_id, &guard).await
    }

    async fn start_locked(
        &self,
        machine_id: &str,
        _guard: &tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<(), AgentError> {
        let machine = self.0.store.machine(machine_id).await?;
        if machine.state == MachineState::Suspended && self.pilot_pid(machine_id).is_some() {
            return self.resume_locked(machine_id).await;
        }
        if !machine.state.can_become(MachineState::Starting) {
            return Err(AgentError::InvalidState(format!(
                "machine {machine_id} is {}; only a created, stopped, failed or suspended machine can start",
                machine.state.as_str()
            )));
        }
        self.transition(machine_id, MachineState::Starting, NewEvent::user("start"))
            .await?;
        match self.launch(&machine).await {
            Ok(()) => {
                self.transition(
                    machine_id,
                    MachineState::Started,
                    NewEvent::agent("start").with_request(json!({"status": "started"})),
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                // The run never started for the API: its exit is not recorded.
                let pid = {
                    let mut runs = self.0.runs.lock().expect("runs poisoned");
                    runs.remove(machine_id).map(|r| r.pid)
                };
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                self.cleanup_run(machine_id).await;
                let _ = self
                    .transition(
                        machine_id,
                        MachineState::Failed,
                        NewEvent::agent("launch_failed")
                            .with_request(json!({"error": e.to_string()})),
                    )
                    .await;
                Err(e)
            }
        }
    }

    /// Removes what a run made on the host: the machine's cgroups, its volume
    /// mounts (when no other running machine uses them) and pilot's socket.
    async fn cleanup_run(&self, machine_id: &str) {
        self.detach_network(machine_id);
        let cg = self.cgroup_path(machine_id);
        let _ = tokio::task::spawn_blocking(move || cgroup::remove(&cg)).await;
        if let Ok(machine) = self.0.store.machine(machine_id).await
            && let Ok(config) = parse_config(&machine)
        {
            for mount in config.mounts() {
                if let Some(volume) = &mount.volume {
                    let _ = self.0.volumes.unmount(volume);
                }
            }
        }
        let _ = std::fs::remove_file(self.paths(machine_id).socket());
    }

    /// Stops a running machine: pilot stops its containers (their stop signals and
    /// timeouts, unless `signal`/`timeout` override them) and exits.
    pub async fn stop(
        &self,
        machine_id: &str,
        signal: Option<i32>,
        timeout: Option<Duration>,
    ) -> Result<(), AgentError> {
        let lock = self.lock_for(machine_id);
        let guard = lock.lock().await;
        self.stop_locked(machine_id, signal, timeout, &guard).await
    }

    async fn stop_locked(
        &self,
        machine_id: &str,
        signal: Option<i32>,
        timeout: Option<Duration>,
        _guard: &tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<(), AgentError> {
        let machine = self.0.store.machine(machine_id).await?;
        let run = {
            let runs = self.0.runs.lock().expect("runs poisoned");
            runs.get(machine_id)
                .map(|r| (r.generation, r.exited.clone(), r.stop_requested.clone()))
        };
        let Some((generation, mut exited, stop_requested)) = run else {
            return match machine.state {
                MachineState::Stopped | MachineState::Created | MachineState::Failed => Ok(()),
                other => Err(AgentError::InvalidState(format!(
                    "machine {machine_id} is {} and has no running pilot",
                    other.as_str()
                ))),
            };
        };
        stop_requested.store(true, Ordering::SeqCst);
        if machine.state.can_become(MachineState::Stopping) {
            self.transition(machine_id, MachineState::Stopping, NewEvent::user("stop"))
                .await?;
        }
        // A suspended machine is thawed first: frozen pilot cannot stop its
        // containers, and a frozen task does not even die of SIGKILL.
        self.thaw_for_stop(machine_id).await;
        let client = pilot::client::Client::new(self.paths(machine_id).socket());
        let sig = signal
            .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
            .map(|s| s.as_str().to_owned());
        let secs = timeout.map(|t| t.as_secs().max(1));
        // pilot applies the timeouts; the agent only backs them up with SIGKILL.
        let _ = client.stop(sig.as_deref(), secs, false).await;
        let grace = timeout.unwrap_or(Duration::from_secs(5)) * 2 + Duration::from_secs(30);
        let timed_out = tokio::time::timeout(grace, exited.wait_for(|e| *e))
            .await
            .is_err();
        if timed_out {
            tracing::warn!(machine_id, "pilot did not exit in {grace:?}; killing it");
            if let Some(pid) = self.pilot_pid(machine_id) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), exited.wait_for(|e| *e)).await;
        }
        self.finish_run(machine_id, generation).await
    }

    /// Records the end of run `generation` of the machine (idempotent: the
    /// monitor and a stop may both get here).
    async fn finish_run(&self, machine_id: &str, generation: u64) -> Result<(), AgentError> {
        let run = {
            let mut runs = self.0.runs.lock().expect("runs poisoned");
            match runs.get(machine_id) {
                Some(r) if r.generation == generation => runs.remove(machine_id),
                _ => None,
            }
        };
        let Some(run) = run else { return Ok(()) };
        let requested = run.stop_requested.load(Ordering::SeqCst);
        self.record_exit(machine_id, requested).await
    }

    /// Reads pilot's final status, cleans up the run and moves the machine to
    /// `stopped` with an `exit` event; destroys it if `auto_destroy` says so.
    async fn record_exit(&self, machine_id: &str, requested: bool) -> Result<(), AgentError> {
        let exit = monitor::read_exit(&self.paths(machine_id), requested);
        self.cleanup_run(machine_id).await;
        let machine = self.0.store.machine(machine_id).await?;
        if machine.state.can_become(MachineState::Stopped) && machine.state != MachineState::Stopped
        {
            self.transition(machine_id, MachineState::Stopped, NewEvent::exit(&exit))
                .await?;
        }
        let auto_destroy = parse_config(&machine)
            .map(|c| c.auto_destroy == Some(true))
            .unwrap_or(false);
        if auto_destroy && !requested {
            self.destroy_stopped(machine_id).await?;
        }
        Ok(())
    }

    /// Stops (if needed) and starts the machine again.
    pub async fn restart(
        &self,
        machine_id: &str,
        signal: Option<i32>,
        timeout: Option<Duration>,
    ) -> Result<(), AgentError> {
        let lock = self.lock_for(machine_id);
        let guard = lock.lock().await;
        self.stop_locked(machine_id, signal, timeout, &guard)
            .await?;
        self.start_locked(machine_id, &guard).await
    }

    /// Applies the machine's new current version: stops the old run, assembles the
    /// new config (pulling a new image) and starts it unless `skip_launch`.
    pub async fn update(
        &self,
        machine: &MachineRecord,
        op: OperationId,
        skip_launch: bool,
    ) -> Result<(), AgentError> {
        let lock = self.lock_for(&machine.id);
        let guard = lock.lock().await;
        let was_running = self.pilot_pid(&machine.id).is_some();
        if was_running {
            self.stop_locked(&machine.id, None, None, &guard).await?;
        }
        let config = parse_config(machine)?;
        if let Err(e) = self.assemble(machine, &config).await {
            self.0.store.finish_operation(op, "failed").await?;
            return Err(e);
        }
        self.0.store.finish_operation(op, "done").await?;
        if !skip_launch {
            self.start_locked(&machine.id, &guard).await?;
        }
        Ok(())
    }

    /// Sends `signal` to every container of the machine.
    pub async fn signal(&self, machine_id: &str, signal: i32) -> Result<(), AgentError> {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| AgentError::Invalid(format!("signal: {signal} is not a signal")))?;
        let client = self.pilot(machine_id)?;
        client.signal(None, name.as_str()).await?;
        Ok(())
    }

    /// Destroys the machine and everything made for it. A running machine is
    /// refused unless `force`, which kills it first; a suspended one is
    /// thawed and killed either way.
    pub async fn destroy(&self, machine_id: &str, force: bool) -> Result<(), AgentError> {
        let lock = self.lock_for(machine_id);
        let guard = lock.lock().await;
        if self.pilot_pid(machine_id).is_some() {
            let state = self.0.store.machine(machine_id).await?.state;
            // A suspended machine does not run for its user: it is destroyed
            // like a stopped one (thawed and killed on the way).
            if !force && state != MachineState::Suspended {
                return Err(AgentError::InvalidState(format!(
                    "machine {machine_id} is {}: stop it first, or destroy with force=true",
                    state.as_str()
                )));
            }
            self.stop_locked(
                machine_id,
                Some(libc::SIGKILL),
                Some(Duration::from_secs(1)),
                &guard,
            )
            .await?;
        }
        self.destroy_stopped(machine_id).await
    }

    async fn destroy_stopped(&self, machine_id: &str) -> Result<(), AgentError> {
        let machine = self.0.store.machine(machine_id).await?;
        if machine.state == MachineState::Destroyed {
            return Ok(());
        }
        if machine.state != MachineState::Destroying {
            self.transition(
                machine_id,
                MachineState::Destroying,
                NewEvent::user("destroy"),
            )
            .await?;
        }
        self.cleanup_run(machine_id).await;
        self.teardown_network(machine_id).await;
        if let Ok(config) = parse_config(&machine) {
            for mount in config.mounts() {
                if let Some(volume) = &mount.volume {
                    let _ = self.0.store.detach_volume(volume).await;
                }
            }
        }
        let dir = self.paths(machine_id).dir().to_path_buf();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| AgentError::Internal(format!("removing {}: {e}", dir.display())))?;
        }
        self.transition(
            machine_id,
            MachineState::Destroyed,
            NewEvent::agent("destroy").with_request(json!({"status": "destroyed"})),
        )
        .await?;
        Ok(())
    }

    /// Runs a command in a container of a started machine.
    pub async fn exec(
        &self,
        machine_id: &str,
        container: Option<&str>,
        command: &[String],
        stdin: Option<&str>,
        timeout: Option<u64>,
    ) -> Result<pilot::api::protocol::ExecResult, AgentError> {
        if command.is_empty() {
            return Err(AgentError::Invalid("command: must not be empty".into()));
        }
        let client = self.pilot(machine_id)?;
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        Ok(client.exec(container, &argv, stdin, timeout).await?)
    }

    /// The processes of a started machine.
    pub async fn ps(&self, machine_id: &str) -> Result<Vec<ProcessInfo>, AgentError> {
        self.require_running(machine_id)?;
        let cg = self.cgroup_path(machine_id);
        tokio::task::spawn_blocking(move || ps::list(&cgroup::pids(&cg)))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))
    }

    /// Stops watching machines without stopping them (they outlive the agent).
    pub fn detach(&self) {
        self.0.runs.lock().expect("runs poisoned").clear();
    }
}

fn parse_config(machine: &MachineRecord) -> Result<MachineConfig, AgentError> {
    serde_json::from_value(machine.config.clone())
        .map_err(|e| AgentError::Invalid(format!("machine {}: stored config: {e}", machine.id)))
}
