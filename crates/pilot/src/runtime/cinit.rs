//! `pilot __cinit`: the stage that builds one container. It runs as a fresh,
//! single-threaded process started by [`NamespaceRuntime::start`](super::NamespaceRuntime),
//! so it may fork freely and enter namespaces; it initialises neither tokio nor
//! tracing.
//!
//! Steps: unshare the mount namespace and make it private; mount the overlay
//! rootfs, `/dev`, `/sys` and the bind mounts; wait until pilot has moved this
//! process into the container's cgroups; unshare
//! the PID namespace; fork the container's init (PID 1, see [`super::init`]);
//! `clone(CLONE_PARENT)` the user process (PID 2, a child of pilot), which mounts
//! `/proc`, pivots into the rootfs, writes the files, drops privileges and execs;
//! report both pids to pilot and exit.
//!
//! The network, UTS and IPC namespaces are the machine's, shared by all its
//! containers, and are not unshared.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, umask};

use super::proto::{self, InitRequest, STATUS_FD};
use super::rootfs::{self, StatePaths};
use super::sys::{self, Ctx, Forked, StageError};
use super::{init, process};

pub(crate) const STAGE: &str = "__cinit";

pub(crate) fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            proto::write_status(STATUS_FD, &format!("error {e}"));
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), StageError> {
    sys::reset_signals();
    umask(Mode::empty());
    let (req, pipe): (InitRequest, _) = proto::RequestPipe::read().map_err(StageError)?;
    unshare(CloneFlags::CLONE_NEWNS).ctx(|| "unshare the mount namespace".into())?;
    rootfs::make_private()?;
    let paths = StatePaths::of(&req.launch.rootfs.state_dir);
    rootfs::mount_overlay(&req.launch.rootfs, &paths)?;
    rootfs::mount_dev_and_sys(&paths.root)?;
    rootfs::mount_binds(&paths.root, &req.launch.mounts)?;
    // From here on processes are made: they must start inside the cgroups.
    pipe.wait_go().map_err(StageError)?;
    unshare(CloneFlags::CLONE_NEWPID).ctx(|| "unshare the PID namespace".into())?;

    let (sync_r, sync_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    let init_pid = match sys::fork().ctx(|| "fork the container init".into())? {
        Forked::Child => {
            drop(sync_w);
            if let Ok(status) = sys::adopt_fd(STATUS_FD) {
                drop(status);
            }
            init::run(sync_r)
        }
        Forked::Parent(pid) => pid,
    };
    drop(sync_r);
    let user_pid = match sys::clone_parent().ctx(|| "clone the container process".into())? {
        Forked::Child => {
            drop(sync_w);
            let _ = sys::set_cloexec(STATUS_FD, true);
            let e = user_process(&req, &paths);
            proto::write_status(STATUS_FD, &format!("error {e}"));
            sys::exit_now(127)
        }
        Forked::Parent(pid) => pid,
    };
    let ns_pid = ns_pid_of(user_pid).unwrap_or(2);
    tell_init(sync_w, ns_pid);
    proto::write_status(STATUS_FD, &format!("pid {user_pid} {init_pid}"));
    Ok(())
}

/// In the new PID namespace: the rest of the container's setup, then exec.
fn user_process(req: &InitRequest, paths: &StatePaths) -> StageError {
    let setup = || -> Result<(), StageError> {
        rootfs::mount_proc(&paths.root)?;
        rootfs::pivot(&paths.root)?;
        rootfs::write_files(&req.launch.files)
    };
    if let Err(e) = setup() {
        return e;
    }
    let p = &req.launch.process;
    process::exec_user(&p.argv, &p.env, &p.cwd, p.user, &req.confinement)
}

/// The pid of `host_pid` inside its own (innermost) PID namespace.
fn ns_pid_of(host_pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

fn tell_init(sync_w: OwnedFd, ns_pid: i32) {
    let _ = std::fs::File::from(sync_w).write_all(ns_pid.to_string().as_bytes());
}
