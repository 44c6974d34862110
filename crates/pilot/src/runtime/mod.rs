//! The container runtime seam: how pilot turns one container description into a
//! running, isolated process.
//!
//! The supervisor (start order, health checks, restarts, stop) only talks to the
//! [`Runtime`] trait, so an OCI runtime binary (runc, crun) can be swapped in for the
//! namespace runtime without touching it.
//!
//! Process ownership: pilot is PID 1 (or a child subreaper) and reaps every child
//! itself with `waitpid(-1)`. A runtime therefore never waits on the processes it
//! starts; it returns their pids and the supervisor's reaper collects the exit status.
//! Nothing in pilot may use `tokio::process`, whose own reaping would race the reaper.
//!
//! The implementation is [`NamespaceRuntime`] (see its module docs for the process
//! tree). What the supervisor can rely on:
//!
//! - `Started.pid` and `ExecStarted.pid` are direct children of pilot, and their
//!   wait status is the program's own: exit code, or death by signal. A signal sent
//!   to `Started.pid` reaches the container's program itself.
//! - Besides those, pilot gets other children: the short-lived `pilot __cinit` /
//!   `pilot __cexec` helpers (one spare `__cinit` is kept waiting for the next
//!   start) and each container's init (PID 1 inside the container,
//!   `ContainerHandle::ns_pid`), which exits when the container's program does. The
//!   runtime reaps them itself when it can; the reaper must ignore pids nobody
//!   registered.
//! - A container init's PID namespace only ends once its program has been reaped:
//!   the reaper must keep reaping for cleanup to finish.
//! - `oom_kills` reads the container's cgroup: call it before `cleanup`.
//! - Containers share the machine's network, UTS and IPC namespaces: the hostname
//!   is the machine's (set by `pilot sandbox --hostname`); `ContainerLaunch::hostname`
//!   is not applied per container.
//!
//! The internal stages and `pilot sandbox` are reached through [`internal_main`].

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod caps;
mod cexec;
mod cgroup;
mod cinit;
mod init;
mod namespace;
mod process;
mod proto;
mod rootfs;
mod sandbox;
mod seccomp;
mod spawn;
mod sys;

pub use cgroup::CgroupLayout;
pub use namespace::{NamespaceRuntime, NamespaceRuntimeConfig};
pub use seccomp::DENIED_SYSCALLS;
pub use sys::set_child_subreaper;

/// Everything needed to start one container. Built by the supervisor from the
/// machine spec; the runtime does not interpret machine configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerLaunch {
    /// Container name, unique within the machine.
    pub name: String,
    pub rootfs: Rootfs,
    pub process: ProcessSpec,
    /// Written into the rootfs after it is mounted and before the process starts.
    pub files: Vec<FileWrite>,
    /// Bind mounts (volumes, shared directories) applied inside the rootfs.
    pub mounts: Vec<BindMount>,
    /// Hostname seen inside the container (the machine id). The UTS namespace is
    /// the machine's, shared by its containers: the namespace runtime does not set
    /// it per container (`pilot sandbox --hostname` sets it for the machine).
    pub hostname: String,
}

/// The container's root filesystem: an overlay of read-only image layers plus a
/// fresh writable upper directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rootfs {
    /// Unpacked image layer directories, lowest (base) layer first.
    pub layers: Vec<PathBuf>,
    /// Directory owned by this container's run: the runtime creates `upper/`,
    /// `work/` and `rootfs/` inside it and wipes them at every start, so each start
    /// sees a blank slate.
    pub state_dir: PathBuf,
}

/// The process to run inside the container, already resolved against the image
/// config (entrypoint/cmd, env, working dir, user).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// `argv[0]` is looked up in the container's `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries, in order.
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
}

/// A resolved numeric identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// A file placed in the container's rootfs before its process starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileWrite {
    /// Absolute path inside the container.
    pub guest_path: PathBuf,
    #[serde(with = "proto::base64_bytes")]
    pub content: Vec<u8>,
    pub mode: u32,
    pub owner: User,
}

/// A host directory bind-mounted into the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: PathBuf,
    pub readonly: bool,
}

/// A container whose process is running.
#[derive(Debug)]
pub struct Started {
    /// The pid (in pilot's PID namespace) the supervisor waits on; its exit is the
    /// container's exit, with the container process's exit code or signal.
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub handle: ContainerHandle,
}

/// What a runtime needs to act on a started container later (exec, OOM query,
/// cleanup). Opaque to the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerHandle {
    pub name: String,
    /// Pid whose namespaces an exec joins (for the namespace runtime: the
    /// container's init, PID 1 inside the container, pid in pilot's namespace).
    pub ns_pid: i32,
    /// The container's cgroup directories (one per hierarchy on cgroup v1).
    pub cgroups: Vec<PathBuf>,
    pub state_dir: PathBuf,
}

/// A command to run inside an already running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
}

/// An exec'd process; the supervisor's reaper collects its exit status.
#[derive(Debug)]
pub struct ExecStarted {
    pub pid: i32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {container}: {what}: {source}")]
    Io {
        container: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {container}: {message}")]
    Setup { container: String, message: String },
}

/// Starts and manages isolated containers. Implementations must be callable from a
/// multi-threaded process: anything that forks does so only to `exec` at once.
pub trait Runtime: Send + Sync + 'static {
    /// Mounts the rootfs, writes the files, and starts the process. Returns once
    /// the process has been exec'd, or with the reason it could not be.
    fn start(&self, launch: &ContainerLaunch) -> Result<Started, RuntimeError>;

    /// Runs a command inside a started container's namespaces and filesystem.
    fn exec(&self, handle: &ContainerHandle, spec: &ExecSpec) -> Result<ExecStarted, RuntimeError>;

    /// Number of times the kernel OOM-killed a process of this container.
    fn oom_kills(&self, handle: &ContainerHandle) -> u64;

    /// Removes what `start` made (mounts, cgroups, upper dir) after the
    /// container's process has exited. Idempotent.
    fn cleanup(&self, handle: &ContainerHandle) -> Result<(), RuntimeError>;
}

/// Entry point for the runtime's internal stages (`pilot __cinit`, `pilot __cexec`,
/// `pilot sandbox`), which run as fresh single-threaded processes. Returns `None`
/// when `args` is not one of them.
pub fn internal_main(args: &[String]) -> Option<std::process::ExitCode> {
    match args.get(1).map(String::as_str) {
        Some(cinit::STAGE) => Some(cinit::main()),
        Some(cexec::STAGE) => Some(cexec::main()),
        Some(sandbox::SUBCOMMAND) => Some(sandbox::main(&args[2..])),
        _ => None,
    }
}
