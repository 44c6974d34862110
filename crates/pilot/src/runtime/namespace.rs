//! [`NamespaceRuntime`]: pilot's own container runtime, built on namespaces,
//! overlayfs, cgroups, capabilities and seccomp.
//!
//! `start` and `exec` never fork without exec in pilot (a multi-threaded process):
//! they start a fresh process of the pilot binary running an internal stage
//! (`pilot __cinit`, `pilot __cexec`), hand it the request over a pipe, and wait on
//! a close-on-exec status pipe until the container's program has been exec'd or a
//! step has failed (see [`super::proto`]). One `__cinit` is kept started ahead
//! (exec'd, linked, waiting for its request) and refilled by a short-lived thread
//! after each start, so a start does not wait for the spawn.
//!
//! Process tree of a started container (pids as seen by pilot):
//!
//! ```text
//! pilot ─┬─ user process   (Started.pid; PID 2 in the container)
//!        └─ container init (handle.ns_pid; PID 1 in the container, re-parented
//!                           to pilot when `__cinit` exits)
//! ```
//!
//! The user process is pilot's direct child, so the reaper gets its own exit code
//! or signal, and the stop signal sent to `Started.pid` reaches it directly. The
//! init reaps orphans inside the container and exits when the user process does,
//! which kills whatever is left in the container. The helpers (`__cinit`,
//! `__cexec`) and the container init are reaped by whoever gets there first:
//! this runtime (`waitid` on a pidfd, immune to pid reuse) or pilot's reaper
//! (which ignores pids it does not know).
//!
//! The container's mounts live only in its own mount namespace: pilot's
//! namespace never sees them, and they go away with the container's last
//! process. `cleanup` kills anything left in the container's cgroups, removes
//! them, and removes the upper, work and mount-point directories.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use serde::Serialize;

use super::cgroup::{self, CgroupLayout};
use super::proto::{Confinement, ExecRequest};
use super::rootfs::StatePaths;
use super::{
    ContainerHandle, ContainerLaunch, ExecSpec, ExecStarted, Runtime, RuntimeError, Started, caps,
    cexec, cinit, seccomp, spawn, sys,
};

/// Bound on waiting for a killed container init to exit.
const INIT_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How [`NamespaceRuntime`] is set up.
#[derive(Debug, Clone)]
pub struct NamespaceRuntimeConfig {
    /// The pilot binary the stages run from. Tests pass
    /// `env!("CARGO_BIN_EXE_pilot")`.
    pub pilot_exe: PathBuf,
    /// The cgroup (a path inside every hierarchy, like `/hangar/m-1`) under which
    /// container cgroups are made; `None` means pilot's own cgroup.
    pub cgroup_parent: Option<PathBuf>,
}

impl Default for NamespaceRuntimeConfig {
    /// The running binary (resolved now, so a replaced binary on disk is not
    /// picked up half-way) and pilot's own cgroup.
    fn default() -> Self {
        let pilot_exe = std::fs::read_link("/proc/self/exe")
            .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        NamespaceRuntimeConfig {
            pilot_exe,
            cgroup_parent: None,
        }
    }
}

/// Why a [`NamespaceRuntime`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceRuntimeError {
    #[error("pilot_exe: {path}: {source}")]
    PilotExe {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("seccomp filter: {0}")]
    Seccomp(#[from] seccompiler::Error),
    #[error("cgroups: {0}")]
    Cgroups(#[source] std::io::Error),
}

/// Runs containers with namespaces, overlayfs, cgroups, capabilities and seccomp
/// (module docs: [`super::namespace`]).
#[derive(Debug)]
pub struct NamespaceRuntime {
    exe: PathBuf,
    cgroups: CgroupLayout,
    confinement: Confinement,
    /// pidfds of running container inits, by host pid, opened at start so
    /// `cleanup` can wait for the exact process even after it was reaped.
    inits: Mutex<HashMap<i32, OwnedFd>>,
    warm: Arc<WarmPool>,
}

/// A `pilot __cinit` started ahead of time (exec'd, linked, waiting for its
/// request), with the output pipes of the container it will run.
#[derive(Debug)]
struct WarmInit {
    stage: spawn::Launched,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

impl WarmInit {
    fn launch(exe: &Path) -> std::io::Result<WarmInit> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from);
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)?;
        let stage = spawn::launch(exe, cinit::STAGE, [null, out_w, err_w], None)?;
        Ok(WarmInit {
            stage,
            stdout: out_r,
            stderr: err_r,
        })
    }
}

/// Keeps one [`WarmInit`] ready, so a start skips spawning, exec'ing and
/// linking the stage. Refilled by a short-lived thread after each take.
#[derive(Debug)]
struct WarmPool {
    exe: PathBuf,
    slot: Mutex<Option<WarmInit>>,
    refilling: AtomicBool,
}

impl WarmPool {
    fn take(self: &Arc<Self>) -> Option<WarmInit> {
        let warm = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.refill();
        warm
    }

    fn refill(self: &Arc<Self>) {
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("pilot-warm-cinit".into())
            .spawn(move || {
                let empty = pool
                    .slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_none();
                if empty {
                    match WarmInit::launch(&pool.exe) {
                        Ok(w) => {
                            let mut slot = pool.slot.lock().unwrap_or_else(|p| p.into_inner());
                            if let Some(extra) = slot.replace(w) {
                                extra.stage.abandon();
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not start a spare pilot __cinit")
                        }
                    }
                }
                pool.refilling.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.refilling.store(false, Ordering::Release);
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = slot.take() {
            w.stage.abandon();
        }
    }
}

/// The `__cinit` request, borrowed (serialises like `proto::InitRequest`).
#[derive(Serialize)]
struct InitRequestRef<'a> {
    launch: &'a ContainerLaunch,
    confinement: &'a Confinement,
}

impl NamespaceRuntime {
    /// Compiles the seccomp filter and finds the cgroup hierarchies, once. On a
    /// pure cgroup v2 host this moves the calling process into the `pilot` leaf
    /// of its cgroup (see [`CgroupLayout::discover`]).
    pub fn new(config: NamespaceRuntimeConfig) -> Result<Self, NamespaceRuntimeError> {
        std::fs::metadata(&config.pilot_exe).map_err(|source| NamespaceRuntimeError::PilotExe {
            path: config.pilot_exe.clone(),
            source,
        })?;
        let seccomp = seccomp::compile()?;
        let cgroups = CgroupLayout::discover(config.cgroup_parent.as_deref())
            .map_err(NamespaceRuntimeError::Cgroups)?;
        let runtime = NamespaceRuntime {
            exe: config.pilot_exe.clone(),
            cgroups,
            confinement: Confinement {
                capabilities: caps::DEFAULT_CAPS,
                seccomp,
            },
            inits: Mutex::new(HashMap::new()),
            warm: Arc::new(WarmPool {
                exe: config.pilot_exe.clone(),
                slot: Mutex::new(None),
                refilling: AtomicBool::new(false),
            }),
        };
        runtime.warm.refill();
        Ok(runtime)
    }

    /// The cgroup hierarchies in use.
    pub fn cgroups(&self) -> &CgroupLayout {
        &self.cgroups
    }

    /// A pidfd of the container init `ns_pid` if it is still running: the one
    /// kept since `start` (so a reused pid is never mistaken for it).
    fn init_pidfd(&self, ns_pid: i32) -> Option<OwnedFd> {
        if ns_pid <= 0 {
            return None;
        }
        let inits = self.inits.lock().unwrap_or_else(|p| p.into_inner());
        let fd = inits.get(&ns_pid)?.try_clone().ok()?;
        drop(inits);
        sys::pidfd_send_signal(&fd, 0).ok()?;
        Some(fd)
    }

    fn io(container: &str, what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let container = container.to_string();
        let what = what.to_string();
        move |source| RuntimeError::Io {
            container,
            what,
            source,
        }
    }
}

fn pipe(container: &str) -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| NamespaceRuntime::io(container, "pipe")(std::io::Error::from(e)))
}

impl Runtime for NamespaceRuntime {
    fn start(&self, launch: &ContainerLaunch) -> Result<Started, RuntimeError> {
        let name = launch.name.as_str();
        let setup = |message: String| RuntimeError::Setup {
            container: name.to_string(),
            message,
        };
        if launch.process.argv.is_empty() {
            return Err(setup("process.argv: empty command".into()));
        }
        if launch.rootfs.layers.is_empty() {
            return Err(setup("rootfs.layers: no image layer".into()));
        }
        let paths = StatePaths::of(&launch.rootfs.state_dir);
        paths
            .reset()
            .map_err(Self::io(name, "reset rootfs.state_dir"))?;
        let mut cgroups = self.cgroups.create_container(name);
        let request = serde_json::to_vec(&InitRequestRef {
            launch,
            confinement: &self.confinement,
        })
        .map_err(|e| setup(format!("encode the launch request: {e}")))?;
        let warm = match self.warm.take() {
            Some(w) => w,
            None => WarmInit::launch(&self.exe).map_err(Self::io(name, "start pilot __cinit"))?,
        };
        let mut handle = ContainerHandle {
            name: name.to_string(),
            ns_pid: 0,
            cgroups: Vec::new(),
            state_dir: launch.rootfs.state_dir.clone(),
        };
        let mut attach = |pid: i32| attach(name, &mut cgroups, pid);
        let spawned = warm.stage.finish(&request, &mut attach);
        handle.cgroups = cgroups;
        let report = match spawned {
            Ok(r) => r,
            Err(e) => {
                let _ = self.cleanup(&handle);
                return Err(Self::io(name, "start pilot __cinit")(e));
            }
        };
        handle.ns_pid = report.init_pid.unwrap_or(0);
        if handle.ns_pid > 0
            && let Ok(fd) = sys::pidfd_open(handle.ns_pid)
        {
            self.inits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(handle.ns_pid, fd);
        }
        match report.pid {
            Some(pid) if report.errors.is_empty() => Ok(Started {
                pid,
                stdout: warm.stdout,
                stderr: warm.stderr,
                handle,
            }),
            pid => {
                if let Some(pid) = pid {
                    spawn::reap(pid);
                }
                let _ = self.cleanup(&handle);
                let message = if report.errors.is_empty() {
                    "the container process was not started (pilot __cinit ended without a report)"
                        .to_string()
                } else {
                    report.errors.join("; ")
                };
                Err(setup(message))
            }
        }
    }

    fn exec(&self, handle: &ContainerHandle, spec: &ExecSpec) -> Result<ExecStarted, RuntimeError> {
        let name = handle.name.as_str();
        let setup = |message: String| RuntimeError::Setup {
            container: name.to_string(),
            message,
        };
        if spec.argv.is_empty() {
            return Err(setup("exec: empty command".into()));
        }
        let init = self.init_pidfd(handle.ns_pid).ok_or_else(|| {
            setup(format!(
                "exec: the container is not running (its init, pid {}, has exited)",
                handle.ns_pid
            ))
        })?;
        let request = serde_json::to_vec(&ExecRequest {
            container: name.to_string(),
            ns_pid: handle.ns_pid,
            spec: spec.clone(),
            confinement: self.confinement.clone(),
        })
        .map_err(|e| setup(format!("encode the exec request: {e}")))?;
        let (in_r, in_w) = pipe(name)?;
        let (out_r, out_w) = pipe(name)?;
        let (err_r, err_w) = pipe(name)?;
        let mut cgroups = handle.cgroups.clone();
        let mut attach = |pid: i32| attach(name, &mut cgroups, pid);
        let report = spawn::run_stage(
            &self.exe,
            cexec::STAGE,
            &request,
            [in_r, out_w, err_w],
            &mut attach,
            Some(&init),
        )
        .map_err(Self::io(name, "start pilot __cexec"))?;
        match report.pid {
            Some(pid) if report.errors.is_empty() => Ok(ExecStarted {
                pid,
                stdin: in_w,
                stdout: out_r,
                stderr: err_r,
            }),
            pid => {
                if let Some(pid) = pid {
                    spawn::reap(pid);
                }
                Err(setup(if report.errors.is_empty() {
                    "exec: the process was not started".to_string()
                } else {
                    format!("exec: {}", report.errors.join("; "))
                }))
            }
        }
    }

    fn oom_kills(&self, handle: &ContainerHandle) -> u64 {
        cgroup::oom_kills(&handle.cgroups)
    }

    fn cleanup(&self, handle: &ContainerHandle) -> Result<(), RuntimeError> {
        let name = handle.name.as_str();
        let mut first_error = None;
        // Killing the init ends the container's PID namespace: the kernel kills
        // everything left in it. Killing through the cgroups also gets processes
        // that left the namespace (there should be none).
        let init = if handle.ns_pid > 0 {
            let kept = self
                .inits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&handle.ns_pid);
            kept.or_else(|| sys::pidfd_open(handle.ns_pid).ok())
        } else {
            None
        };
        if let Some(fd) = &init {
            let _ = sys::pidfd_send_signal(fd, libc::SIGKILL);
        }
        for dir in &handle.cgroups {
            let _ = cgroup::kill_all(dir);
        }
        // While the init exits (tearing down the mount namespace takes an RCU
        // grace period), remove the upper dir: nothing can write to it any more.
        if let Err(e) = StatePaths::of(&handle.state_dir).remove() {
            first_error = Some(Self::io(name, "remove the upper directory")(e));
        }
        if let Some(fd) = &init {
            wait_exit(fd, INIT_EXIT_TIMEOUT);
            sys::reap_pidfd(fd, true);
        }
        for dir in &handle.cgroups {
            if let Err(e) = cgroup::remove(dir) {
                first_error
                    .get_or_insert(Self::io(name, &format!("remove cgroup {}", dir.display()))(
                        e,
                    ));
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Moves a starting stage into the container's cgroups; a hierarchy that refuses
/// is logged and dropped (the container runs without it).
fn attach(container: &str, cgroups: &mut Vec<PathBuf>, pid: i32) {
    cgroups.retain(|dir| match cgroup::join(&[dir.join("cgroup.procs")], pid) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(container, error = %e, "container not moved into a cgroup; continuing without it");
            let _ = std::fs::remove_dir(dir);
            false
        }
    });
}

/// Waits until the process behind `pidfd` has exited (bounded).
fn wait_exit(pidfd: &OwnedFd, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return,
            Ok(_) => return,
            Err(Errno::EINTR) if !left.is_zero() => {}
            Err(_) => return,
        }
    }
}
