//! The container's PID 1: a minimal init forked by `__cinit` inside the
//! container's new PID namespace.
//!
//! The user process is its sibling (a child of pilot, created with
//! `CLONE_PARENT`), so pilot's reaper sees the user process's real exit status
//! (code or signal) and pilot's signals reach it directly. This init only:
//! - reaps every orphan re-parented to it inside the container;
//! - forwards the usual stop and control signals it receives to the user process;
//! - exits as soon as the user process exits, which makes the kernel kill every
//!   process left in the container's PID namespace.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, waitpid};

use super::sys;

/// Signals forwarded to the user process.
const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// Runs the init. `sync` carries the user process's pid in this namespace (its
/// write end is closed without a pid if the user process could not be made).
pub(crate) fn run(sync: OwnedFd) -> ! {
    quiet_stdio();
    let mut text = String::new();
    let _ = File::from(sync).read_to_string(&mut text);
    let Ok(pid) = text.trim().parse::<i32>() else {
        sys::exit_now(0)
    };
    let Ok(pidfd) = sys::pidfd_open(pid) else {
        sys::exit_now(0)
    };
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in FORWARDED {
        mask.add(*s);
    }
    if mask.thread_block().is_err() {
        sys::exit_now(1)
    }
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        sys::exit_now(1)
    };
    loop {
        let (user_done, signalled) = {
            let mut fds = [
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if user_done {
            sys::exit_now(0);
        }
        if signalled {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGCHLD {
                    reap_all();
                } else {
                    let _ = sys::pidfd_send_signal(&pidfd, signo);
                }
            }
        }
    }
}

fn reap_all() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

/// Points stdin, stdout and stderr at /dev/null so the container's output pipes
/// reach end-of-file when the user process (not the init) closes them.
fn quiet_stdio() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let fd = null.as_raw_fd();
        let _ = sys::install_fds(&[(fd, 0), (fd, 1), (fd, 2)]);
    }
}
