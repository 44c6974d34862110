//! `pilot __cexec`: runs a command inside a started container. A fresh
//! single-threaded process (joining a mount namespace requires one), moved into
//! the container's cgroups by pilot, that joins the container's PID and mount
//! namespaces, then `clone(CLONE_PARENT)`s
//! the command's process (a child of pilot, inside the container's PID namespace)
//! which drops privileges like the container process and execs.

use std::fs::File;
use std::process::ExitCode;

use nix::sched::{CloneFlags, setns};

use super::process;
use super::proto::{self, ExecRequest, STATUS_FD};
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
    let ns = |kind: &str| {
        File::open(format!("/proc/{}/ns/{kind}", req.ns_pid)).ctx(|| {
            format!(
                "container {}: {kind} namespace of pid {}",
                req.container, req.ns_pid
            )
        })
    };
    let pid_ns = ns("pid")?;
    let mnt_ns = ns("mnt")?;
    setns(&pid_ns, CloneFlags::CLONE_NEWPID).ctx(|| "enter the PID namespace".into())?;
    setns(&mnt_ns, CloneFlags::CLONE_NEWNS).ctx(|| "enter the mount namespace".into())?;
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
