//! Starting an internal stage from pilot: a fresh process of the pilot binary
//! (fork + immediate exec, safe in a multi-threaded process), given its request
//! on [`REQUEST_FD`] and the status pipe on [`STATUS_FD`]; returns once the stage
//! reported and its status pipe reached end-of-file.

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

/// Runs `pilot <stage>` with `stdio` as its descriptors 0, 1 and 2.
/// `before_go` gets the stage's pid after the request is sent, while the stage
/// starts up and prepares; the stage forks nothing before it returns: the place
/// to move it into cgroups, overlapping that (an RCU grace period on cgroup v1)
/// with the stage's own work.
pub(crate) fn run_stage(
    exe: &Path,
    stage: &str,
    request: &[u8],
    stdio: [OwnedFd; 3],
    before_go: &mut dyn FnMut(i32),
    init_pidfd: Option<&OwnedFd>,
) -> std::io::Result<StatusReport> {
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
    let helper = child.id() as i32;
    // The stage is blocked on its request until we write it: it cannot have been
    // reaped, so this pidfd is the stage's.
    let helper_fd = sys::pidfd_open(helper).ok();
    drop(cmd);
    drop(req_r);
    drop(st_w);
    // A stage that died early makes these fail with EPIPE; its status says why.
    let mut req_w = std::fs::File::from(req_w);
    let _ = req_w.write_all(&proto::frame(request));
    before_go(helper);
    let _ = req_w.write_all(&[proto::GO]);
    drop(req_w);
    let report = proto::read_status(st_r);
    match &helper_fd {
        Some(fd) => {
            sys::reap_pidfd(fd, false);
        }
        None => reap(helper),
    }
    report
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
