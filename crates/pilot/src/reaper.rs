//! The reaper: pilot collects the exit status of every child and orphan itself.
//!
//! A dedicated thread listens for SIGCHLD and calls `waitpid(-1, WNOHANG)` until no
//! exited child is left, then hands each status to whoever registered that pid with
//! [`Reaper::watch`]. Statuses of pids nobody watches yet are kept for a short while,
//! so a child that exits between being spawned and being registered is not lost;
//! orphans re-parented to pilot are simply reaped and counted.
//!
//! There is one reaper per process ([`reaper()`]); nothing else in pilot may wait on
//! children (no `tokio::process`, no `std::process::Child::wait`).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// Shell-style code: the exit code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// How long a status nobody has asked for is kept.
const UNCLAIMED_TTL: Duration = Duration::from_secs(30);
/// Bound on kept unclaimed statuses.
const UNCLAIMED_MAX: usize = 4096;
/// A sweep also runs this often, in case a SIGCHLD was coalesced or missed.
const SAFETY_SWEEP: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Table {
    watchers: HashMap<i32, oneshot::Sender<ExitStatus>>,
    unclaimed: HashMap<i32, (ExitStatus, Instant)>,
}

/// The process-wide reaper.
pub struct Reaper {
    table: Mutex<Table>,
    reaped: AtomicU64,
    orphans: AtomicU64,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

/// Returns the process-wide reaper, starting its thread on first use. Call it
/// before spawning the first child.
pub fn reaper() -> &'static Reaper {
    let mut started = false;
    let r = REAPER.get_or_init(|| {
        started = true;
        Reaper {
            table: Mutex::new(Table::default()),
            reaped: AtomicU64::new(0),
            orphans: AtomicU64::new(0),
        }
    });
    if started {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pilot-reaper".into())
            .spawn(move || run(r, ready_tx))
            .expect("spawn the reaper thread");
        // The SIGCHLD handler is installed once the thread says so.
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
    }
    r
}

fn run(r: &'static Reaper, ready: std::sync::mpsc::Sender<()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("reaper runtime");
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigchld = signal(SignalKind::child()).expect("install the SIGCHLD handler");
        let _ = ready.send(());
        loop {
            r.sweep();
            let _ = tokio::time::timeout(SAFETY_SWEEP, sigchld.recv()).await;
        }
    });
}

impl Reaper {
    /// Returns a receiver for `pid`'s exit status. Register each child right after
    /// spawning it; a status reaped in between is still delivered.
    pub fn watch(&self, pid: i32) -> oneshot::Receiver<ExitStatus> {
        let (tx, rx) = oneshot::channel();
        let mut t = self.table.lock().expect("reaper table");
        if let Some((status, _)) = t.unclaimed.remove(&pid) {
            self.orphans.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(status);
        } else {
            t.watchers.insert(pid, tx);
        }
        rx
    }

    /// Forgets a registration (the caller no longer cares about `pid`).
    pub fn unwatch(&self, pid: i32) {
        self.table
            .lock()
            .expect("reaper table")
            .watchers
            .remove(&pid);
    }

    /// Number of processes reaped so far.
    pub fn reaped(&self) -> u64 {
        self.reaped.load(Ordering::Relaxed)
    }

    /// Number of reaped processes nobody was watching (orphans).
    pub fn orphans(&self) -> u64 {
        self.orphans.load(Ordering::Relaxed)
    }

    /// Reaps every exited child without blocking.
    fn sweep(&self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    (pid.as_raw(), ExitStatus::Signaled(sig as i32))
                }
                Ok(WaitStatus::StillAlive) => return,
                // Stopped / continued / ptrace events: not an exit, keep sweeping.
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => return, // ECHILD: no children at all.
            };
            self.deliver(status.0, status.1);
        }
    }

    fn deliver(&self, pid: i32, status: ExitStatus) {
        self.reaped.fetch_add(1, Ordering::Relaxed);
        let mut t = self.table.lock().expect("reaper table");
        if let Some(tx) = t.watchers.remove(&pid) {
            let _ = tx.send(status);
            return;
        }
        self.orphans.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        t.unclaimed
            .retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED_TTL);
        if t.unclaimed.len() >= UNCLAIMED_MAX
            && let Some(oldest) = t
                .unclaimed
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(p, _)| *p)
        {
            t.unclaimed.remove(&oldest);
        }
        t.unclaimed.insert(pid, (status, now));
    }
}
