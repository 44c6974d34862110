//! Thin wrappers over the few system calls the runtime needs that `nix` does not
//! cover (raw `clone` with `CLONE_PARENT`, pidfds, capability sets, `prctl`s,
//! `close_range`), plus the stage error type shared by the internal stages.
//!
//! Every `unsafe` block of the runtime lives here, each with its `SAFETY:` note.

use std::fmt::Display;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An error inside an internal stage: a sentence naming the step that failed.
/// Stages report it to their parent over the status pipe.
#[derive(Debug)]
pub(crate) struct StageError(pub String);

impl Display for StageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Attaches the failed step to an error: `mount overlay on /x: EPERM`.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, StageError>;
}

impl<T, E: Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, StageError> {
        self.map_err(|e| StageError(format!("{}: {e}", what())))
    }
}

/// Result of a fork-like call, seen from the calling process.
pub(crate) enum Forked {
    Parent(i32),
    Child,
}

/// `clone(CLONE_PARENT)`: the new process becomes a sibling of the caller (a child
/// of the caller's parent, pilot), so pilot's reaper gets its real exit status. If
/// the caller has unshared or joined a PID namespace, the new process is inside it.
///
/// Only for single-threaded callers (the internal stages).
pub(crate) fn clone_parent() -> io::Result<Forked> {
    // SAFETY: a raw clone without CLONE_VM and with a null stack behaves like fork:
    // the child gets a copy-on-write copy of the (single-threaded) address space
    // and returns here on the same stack. The caller is single-threaded, so no lock
    // can be held by another thread at the time of the copy.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Plain `fork` for single-threaded callers.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: only called from the internal stages, which are single-threaded, so
    // the child's copy of memory has no lock held by a vanished thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `pidfd_open(pid, 0)`.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub(crate) fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain system call; a null siginfo is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps the process behind `pidfd` if it is a child of the caller:
/// `waitid(P_PIDFD)`, which cannot pick up another process even if the pid was
/// reused. Blocks until it exits unless `nohang`. Returns whether it was reaped
/// (false: still running, or not a child, or already reaped by someone else).
pub(crate) fn reap_pidfd(pidfd: &OwnedFd, nohang: bool) -> bool {
    const P_PIDFD: libc::idtype_t = 3;
    let mut flags = libc::WEXITED;
    if nohang {
        flags |= libc::WNOHANG;
    }
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid idtype, descriptor and pointer to our siginfo_t.
        let ret =
            unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        if ret == 0 {
            // SAFETY: after a successful waitid, si_pid is set (0 with WNOHANG
            // when the child has not exited).
            return unsafe { info.si_pid() } != 0;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// Marks every descriptor from `first` upward close-on-exec.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain system call; CLOSE_RANGE_CLOEXEC only sets flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs `fds[i].0` as descriptor `fds[i].1` (without close-on-exec), in a way
/// that never clobbers a source with an earlier target. Async-signal-safe: used
/// between fork and exec.
pub(crate) fn install_fds(fds: &[(RawFd, RawFd)]) -> io::Result<()> {
    let mut moved = [0 as RawFd; 8];
    assert!(fds.len() <= moved.len());
    for (i, (src, _)) in fds.iter().enumerate() {
        // SAFETY: fcntl on a descriptor we were handed; the copy lands at >= 64,
        // above every target, and is close-on-exec.
        let fd = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 64) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        moved[i] = fd;
    }
    for (i, (_, dst)) in fds.iter().enumerate() {
        // SAFETY: dup2 between descriptors this process owns; dup2 clears
        // close-on-exec on the target.
        if unsafe { libc::dup2(moved[i], *dst) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets or clears close-on-exec on a raw descriptor.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: fcntl(F_SETFD) only changes descriptor flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of an inherited descriptor number.
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only checks that the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open and was handed to this process by its parent
    // for this purpose; nothing else in the process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `prctl` with integer arguments.
fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl options used here take integer arguments only.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `cap` from the bounding set. `EINVAL` (unknown capability) is ignored.
pub(crate) fn capbset_drop(cap: u32) -> io::Result<()> {
    match prctl(libc::PR_CAPBSET_DROP, cap.into(), 0) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

/// Clears the ambient capability set.
pub(crate) fn clear_ambient() -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
}

pub(crate) fn set_no_new_privs() -> io::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
}

/// Makes the calling process a child subreaper (orphans below it are re-parented
/// to it instead of to the PID namespace's init).
pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0)
}

/// Sets effective, permitted and inheritable capability sets of the calling thread
/// to `mask` (a bit per capability number).
pub(crate) fn capset(mask: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let low = mask as u32;
    let high = (mask >> 32) as u32;
    let data = [
        Data {
            effective: low,
            permitted: low,
            inheritable: low,
        },
        Data {
            effective: high,
            permitted: high,
            inheritable: high,
        },
    ];
    // SAFETY: header and data are valid, correctly laid out (version 3 takes two
    // data elements) and live for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Resets every catchable signal to its default action and unblocks all signals,
/// so the next program starts with a clean signal state (pilot ignores SIGPIPE,
/// and ignored signals survive `exec`).
pub(crate) fn reset_signals() {
    /// The kernel's `struct sigaction` (x86_64 layout).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // Raw rt_sigaction: glibc refuses signals 32 and 33 (its own), which a parent
    // may still have left ignored.
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a valid kernel sigaction (SIG_DFL) that outlives the
        // call; the old action is not wanted; the sigset size is 8 bytes.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    // SAFETY: an all-empty sigset is a valid argument; the old set is not wanted.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Exits the process at once, without running destructors or flushing stdio.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no process state we rely on.
    unsafe { libc::_exit(code) }
}

/// Brings the loopback interface of the current network namespace up.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket call; the result is checked and owned below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain old data; an all-zero value is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
