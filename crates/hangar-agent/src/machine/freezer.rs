//! Freezing a machine's processes in place (suspend) and thawing them
//! (resume) through the cgroup freezer.
//!
//! On a cgroup v1 (or hybrid) host pilot puts the machine in the memory, pids
//! and cpu hierarchies only, so the agent makes `<prefix>/<machine id>` in the
//! v1 freezer hierarchy itself and starts `pilot sandbox` inside it (see
//! [`join_before_exec`]); everything pilot forks stays there. On a cgroup v2
//! host the machine's own cgroup is frozen with `cgroup.freeze`. Either way
//! freezing the machine's cgroup freezes every process below it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroup::hierarchies;

/// The cgroup that freezes one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// A v1 freezer cgroup directory (`freezer.state`).
    V1(PathBuf),
    /// A v2 cgroup directory (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

impl Freezer {
    /// The freezer of cgroup `path` (relative to each hierarchy's root): the
    /// v1 freezer cgroup when it exists, else the v2 cgroup when it exists
    /// and can freeze. `None` when the machine's processes are in neither.
    pub fn find(path: &str) -> Option<Freezer> {
        let all = hierarchies();
        let v1 = all
            .iter()
            .filter(|h| h.has_v1_controller("freezer"))
            .filter_map(|h| h.dir_of(path))
            .find(|d| d.join("freezer.state").is_file())
            .map(Freezer::V1);
        v1.or_else(|| {
            all.iter()
                .filter(|h| h.v2)
                .filter_map(|h| h.dir_of(path))
                .find(|d| d.join("cgroup.freeze").is_file())
                .map(Freezer::V2)
        })
    }

    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        match self {
            Freezer::V1(d) | Freezer::V2(d) => d,
        }
    }

    /// Freezes every process of the cgroup and waits until the kernel says
    /// all of them are frozen. If that does not happen within `timeout` the
    /// cgroup is thawed again and the freeze fails. Blocking.
    pub fn freeze(&self, timeout: Duration) -> io::Result<()> {
        self.request(true)?;
        let deadline = Instant::now() + timeout;
        let mut delay = Duration::from_micros(100);
        let mut last_write = Instant::now();
        loop {
            if self.is_frozen()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.thaw();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{}: not frozen within {timeout:?} (a process may be in an uninterruptible sleep)",
                        self.dir().display()
                    ),
                ));
            }
            // A v1 freezer that met a task it could not freeze yet stays
            // FREEZING until asked again.
            if last_write.elapsed() >= Duration::from_millis(50) {
                self.request(true)?;
                last_write = Instant::now();
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(5));
        }
    }

    /// Thaws the cgroup and waits (briefly) until the kernel reports it
    /// thawed. A cgroup that is gone counts as thawed. Blocking.
    pub fn thaw(&self) -> io::Result<()> {
        match self.request(false) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match self.is_frozen() {
                Ok(false) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
                Ok(true) if Instant::now() >= deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{}: still frozen after thawing", self.dir().display()),
                    ));
                }
                Ok(true) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    /// Whether the kernel reports the cgroup frozen (v1 `FROZEN`, v2
    /// `frozen 1`). A v1 cgroup still `FREEZING` is not frozen yet.
    pub fn is_frozen(&self) -> io::Result<bool> {
        match self {
            Freezer::V1(d) => {
                let state = std::fs::read_to_string(d.join("freezer.state"))?;
                Ok(state.trim() == "FROZEN")
            }
            Freezer::V2(d) => {
                let events = std::fs::read_to_string(d.join("cgroup.events"))?;
                Ok(events.lines().any(|l| l.trim() == "frozen 1"))
            }
        }
    }

    fn request(&self, frozen: bool) -> io::Result<()> {
        match self {
            Freezer::V1(d) => std::fs::write(
                d.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            Freezer::V2(d) => {
                std::fs::write(d.join("cgroup.freeze"), if frozen { "1" } else { "0" })
            }
        }
    }
}

/// Makes cgroup `path` in the v1 freezer hierarchy and opens its
/// `cgroup.procs`, for the machine's first process to join before it execs
/// (so nothing it forks can escape the freezer). `None` when the host has no
/// v1 freezer hierarchy (a v2 host freezes pilot's own machine cgroup).
pub fn join_before_exec(path: &str) -> io::Result<Option<File>> {
    let Some(dir) = hierarchies()
        .iter()
        .filter(|h| h.has_v1_controller("freezer"))
        .find_map(|h| h.dir_of(path))
    else {
        return Ok(None);
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let procs = dir.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .map(Some)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", procs.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_freeze_and_thaw_write_and_read_freezer_state() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("freezer.state"), "THAWED\n").unwrap();
        let f = Freezer::V1(tmp.path().to_path_buf());
        assert!(!f.is_frozen().unwrap());
        f.freeze(Duration::from_secs(1)).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("freezer.state")).unwrap(),
            "FROZEN"
        );
        assert!(f.is_frozen().unwrap());
        f.thaw().unwrap();
        assert!(!f.is_frozen().unwrap());
    }

    #[test]
    fn v2_freeze_waits_for_the_kernel_and_gives_up_thawed() {
        let tmp = tempfile::tempdir().unwrap();
        let events = tmp.path().join("cgroup.events");
        std::fs::write(tmp.path().join("cgroup.freeze"), "0\n").unwrap();
        // The kernel never reports the cgroup frozen: the freeze fails in
        // time and asks for the thaw again.
        std::fs::write(&events, "populated 1\nfrozen 0\n").unwrap();
        let f = Freezer::V2(tmp.path().to_path_buf());
        let err = f.freeze(Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("not frozen within"), "{err}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cgroup.freeze")).unwrap(),
            "0"
        );
        // It reports frozen: done.
        std::fs::write(&events, "populated 1\nfrozen 1\n").unwrap();
        f.freeze(Duration::from_millis(50)).unwrap();
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
    }

    #[test]
    fn thaw_of_a_removed_cgroup_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        Freezer::V1(gone.clone()).thaw().unwrap();
        Freezer::V2(gone).thaw().unwrap();
    }

    /// A real v1 freezer cgroup (skipped where the host has none): a busy
    /// process gets no CPU time while frozen and runs again once thawed.
    #[test]
    fn a_frozen_process_gets_no_cpu_until_thawed() {
        let name = format!("hangar-freezer-test-{}", std::process::id());
        let Some(procs) = join_before_exec(&name).unwrap() else {
            eprintln!("no v1 freezer hierarchy: skipped");
            return;
        };
        drop(procs);
        let freezer = Freezer::find(&name).expect("the cgroup just made");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        std::fs::write(freezer.dir().join("cgroup.procs"), pid.to_string()).unwrap();
        let cpu = || -> u64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split(' ').collect();
            f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
        };
        let result = std::panic::catch_unwind(|| {
            freezer.freeze(Duration::from_secs(5)).unwrap();
            assert!(freezer.is_frozen().unwrap());
            let before = cpu();
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(cpu(), before, "a frozen process ran");
            freezer.thaw().unwrap();
            let thawed = cpu();
            let deadline = Instant::now() + Duration::from_secs(5);
            while cpu() == thawed && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(cpu() > thawed, "the thawed process runs again");
        });
        let _ = freezer.thaw();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir(freezer.dir());
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
