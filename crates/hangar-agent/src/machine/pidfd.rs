//! Watching a process that is not our child (a detached pilot) for its exit,
//! through a pidfd: readable once the process has exited.

use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A handle on a running process that tells when it exits.
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`. Fails with `ESRCH` if it is already gone.
    pub fn open(pid: i32) -> std::io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no
        // memory is shared with the kernel.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Resolves when the process has exited.
    pub async fn exited(self) -> std::io::Result<()> {
        // SAFETY: the AsyncFd takes the OwnedFd by value, so the descriptor stays
        // open and is not reused while it is registered.
        let fd = unsafe { AsyncFd::register(self.0)? };
        let _guard = fd.readable().await?;
        Ok(())
    }
}

/// Whether `pid` is alive and its command line mentions `marker` (guards against
/// pid reuse after an agent restart).
pub fn is_process_of(pid: i32, marker: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == marker.as_bytes()),
        Err(_) => false,
    }
}
