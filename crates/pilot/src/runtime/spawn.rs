//! Starting an internal stage from pilot: a fresh process of the pilot binary
//! (fork + immediate exec, safe in a multi-threaded process), given its request
//! on [`REQUEST_FD`] and the status pipe on [`STATUS_FD`]. A stage can be
//! launched ahead of time ([`launch`]) and given its request later
//! ([`Launched::finish`]), which returns once the stage reported and its status
//! pipe reached end-of-file.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::proto::{self, INIT_PIDFD, REQUEST_FD, STATUS_FD, StatusReport};
use super::sys;

/// A stage process that has been started and waits for its request.
#[derive(Debug)]
pub(crate) struct Launched {
    pub pid: i32,
    /// The stage's pidfd (opened while it could not have been reaped yet).
    pidfd: Option<OwnedFd>,
    req_w: OwnedFd,
    st_r: OwnedFd,
}

/// Starts `pilot <stage>` with `stdio` as its descriptors 0, 1 and 2 (and
/// `init_pidfd` as [`INIT_PIDFD`]); it then waits for its request.
pub(crate) fn launch(
    exe: &Path,
    stage: &str,
    stdio: [OwnedFd; 3],
    init_pidfd: Option<&OwnedFd>,
) -> std::io::Result<Launched> {
    let (req_r, req_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (st_r, st_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let [stdin, stdout, stderr] = stdio;
    let mut cmd = Command::new(exe);
    cmd.arg(stage)
        .env_clear()
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    let mut fds = vec![
        (req_r.as_raw_fd(), REQUEST_FD),
        (st_w.as_raw_fd(), STATUS_FD),
    ];
    if let Some(fd) = init_pidfd {
        fds.push((fd.as_raw_fd(), INIT_PIDFD));
    }
    let first_free = fds.iter().map(|(_, to)| *to).max().unwrap_or(STATUS_FD) as u32 + 1;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (fcntl, dup2, close_range); it allocates
    // nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            sys::install_fds(&fds)?;
            sys::cloexec_from(first_free)
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // The stage is blocked on its request until we write it: it cannot have been
    // reaped, so this pidfd is the stage's.
    let pidfd = sys::pidfd_open(pid).ok();
    Ok(Launched {
        pid,
        pidfd,
        req_w,
        st_r,
    })
}

impl Launched {
    /// Sends the request, lets `before_go` act on the stage's pid while the
    /// stage prepares (the stage forks nothing before it returns: the place to
    /// move it into cgroups, overlapping that, an RCU grace period on cgroup v1,
    /// with the stage's own work), gives the go-ahead, and returns once the
    /// stage reported and its status pipe reached end-of-file.
    pub(crate) fn finish(
        self,
        request: &[u8],
        before_go: &mut dyn FnMut(i32),
    ) -> std::io::Result<StatusReport> {
        // A stage that died early makes these fail with EPIPE; its status says why.
        let mut req_w = std::fs::File::from(self.req_w);
        let _ = req_w.write_all(&proto::frame(request));
        before_go(self.pid);
        let _ = req_w.write_all(&[proto::GO]);
        drop(req_w);
        let report = proto::read_status(self.st_r);
        match &self.pidfd {
            Some(fd) => {
                sys::reap_pidfd(fd, false);
            }
            None => reap(self.pid),
        }
        report
    }

    /// Ends a stage that was never given a request (it exits on end-of-file).
    pub(crate) fn abandon(self) {
        drop(self.req_w);
        let _ = proto::read_status(self.st_r);
        match &self.pidfd {
            Some(fd) => {
                sys::reap_pidfd(fd, false);
            }
            None => reap(self.pid),
        }
    }
}

/// Runs `pilot <stage>` to completion: [`launch`] then [`Launched::finish`].
pub(crate) fn run_stage(
    exe: &Path,
    stage: &str,
    request: &[u8],
    stdio: [OwnedFd; 3],
    before_go: &mut dyn FnMut(i32),
    init_pidfd: Option<&OwnedFd>,
) -> std::io::Result<StatusReport> {
    launch(exe, stage, stdio, init_pidfd)?.finish(request, before_go)
}

/// Collects the exit status of a process of ours that nobody else waits for.
/// pilot's own reaper may have been first (ECHILD); that is fine, it ignores pids
/// nobody registered.
pub(crate) fn reap(pid: i32) {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}
