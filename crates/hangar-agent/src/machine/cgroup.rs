//! Removing a machine's cgroup once its pilot is gone. `pilot sandbox` creates
//! `<prefix>/<machine id>` in the hierarchies it uses; the agent removes it (with
//! the container cgroups inside) after the machine stops or when it finds one
//! that no machine owns. The agent itself makes the machine's cgroup in a v1
//! freezer hierarchy (see `freezer`); removal thaws it first.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A mounted cgroup hierarchy.
pub(super) struct Hierarchy {
    pub mount_point: PathBuf,
    /// The path of the hierarchy mounted there (`/` unless inside a container).
    pub root: PathBuf,
    /// `cgroup2`, else a v1 hierarchy.
    pub v2: bool,
    /// The mount's super options (`rw,freezer` for the v1 freezer).
    pub options: String,
}

impl Hierarchy {
    /// The directory of cgroup `path` (relative to the hierarchy's root) in
    /// this hierarchy, whether or not it exists; `None` when the hierarchy is
    /// mounted at a sub-path that does not hold it.
    pub fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let rel = Path::new("/").join(path.trim_matches('/'));
        let inside = rel.strip_prefix(&self.root).ok()?;
        Some(self.mount_point.join(inside))
    }

    /// Whether this is a v1 hierarchy with controller `name`.
    pub fn has_v1_controller(&self, name: &str) -> bool {
        !self.v2 && self.options.split(',').any(|o| o == name)
    }
}

/// Mounted cgroup hierarchies.
pub(super) fn hierarchies() -> Vec<Hierarchy> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let options = r.nth(1).unwrap_or_default().to_owned();
            let mut f = left.split(' ');
            let root = f.nth(3)?;
            let mount_point = f.next()?;
            Some(Hierarchy {
                mount_point: PathBuf::from(mount_point),
                root: PathBuf::from(root),
                v2: fstype == "cgroup2",
                options,
            })
        })
        .collect()
}

/// Directories of cgroup `path` (relative to each hierarchy's root) that exist.
pub fn dirs(path: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .filter_map(|h| {
            // A hierarchy mounted at a sub-path (inside a container) holds only
            // cgroups below that sub-path.
            let dir = h.dir_of(path)?;
            dir.is_dir().then_some(dir)
        })
        .collect()
}

/// Names of the child cgroups under `prefix` in any hierarchy.
pub fn children(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = dirs(prefix)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Kills whatever still runs in cgroup `path` and removes it, deepest first, in
/// every hierarchy. Missing directories are fine.
pub fn remove(path: &str) -> std::io::Result<()> {
    // A frozen task cannot die: thaw the machine first (it may be suspended).
    if let Some(freezer) = super::freezer::Freezer::find(path)
        && let Err(e) = freezer.thaw()
    {
        tracing::warn!(cgroup = path, "thawing before removal: {e}");
    }
    let mut last_err = None;
    for dir in dirs(path) {
        if let Err(e) = remove_tree(&dir) {
            last_err = Some(e);
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    // A process may still be exiting: kill what is left, then retry rmdir briefly.
    for attempt in 0..50 {
        kill_all(dir);
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 49 => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(())
}

fn kill_all(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Pids in cgroup `path` and below, from the first hierarchy that has it.
pub fn pids(path: &str) -> Vec<i32> {
    fn collect(dir: &Path, out: &mut Vec<i32>) {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect(&entry.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(dir) = dirs(path).first() {
        collect(dir, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}
