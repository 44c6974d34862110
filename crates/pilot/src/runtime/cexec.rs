//! `pilot __cexec`: runs a command inside a started container. A fresh
//! single-threaded process (joining a mount namespace requires one), moved into
//! the container's cgroups by pilot, that joins the container's PID and mount
//! namespaces, then `clone(CLONE_PARENT)`s
//! the command's process (a child of pilot, inside the container's PID namespace)
//! which drops privileges like the container process and execs.

use std::process::ExitCode;

use nix::sched::{CloneFlags, setns};

use super::process;
use super::proto::{self, ExecRequest, INIT_PIDFD, STATUS_FD};
use super::sys::{self, Ctx, Forked, StageError};

pub(crate) const STAGE: &str = "__cexec";

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
    let (req, pipe): (ExecRequest, _) = proto::RequestPipe::read().map_err(StageError)?;
    // The init's pidfd names the container exactly (a pid could have been reused)
    // and joins both namespaces in one call.
    let init =
        sys::adopt_fd(INIT_PIDFD).ctx(|| format!("container {}: init pidfd", req.container))?;
    setns(&init, CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS).ctx(|| {
        format!(
            "container {}: enter the namespaces of its init (pid {})",
            req.container, req.ns_pid
        )
    })?;
    drop(init);
    pipe.wait_go().map_err(StageError)?;
    match sys::clone_parent().ctx(|| "clone the exec process".into())? {
        Forked::Child => {
            let _ = sys::set_cloexec(STATUS_FD, true);
            let s = &req.spec;
            let e = process::exec_user(&s.argv, &s.env, &s.cwd, s.user, &req.confinement);
            proto::write_status(STATUS_FD, &format!("error {e}"));
            sys::exit_now(127)
        }
        Forked::Parent(pid) => proto::write_status(STATUS_FD, &format!("pid {pid} 0")),
    }
    Ok(())
}
