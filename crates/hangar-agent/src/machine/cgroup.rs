//! Removing a machine's cgroup once its pilot is gone. `pilot sandbox` creates
//! `<prefix>/<machine id>` in every mounted hierarchy; the agent removes it (with
//! the container cgroups inside) after the machine stops or when it finds one
//! that no machine owns.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mounted cgroup hierarchies: (mount point, path of the hierarchy mounted there).
fn hierarchies() -> Vec<(PathBuf, PathBuf)> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let mut f = left.split(' ');
            let root = f.nth(3)?;
            let mount_point = f.next()?;
            Some((PathBuf::from(mount_point), PathBuf::from(root)))
        })
        .collect()
}

/// Directories of cgroup `path` (relative to each hierarchy's root) that exist.
pub fn dirs(path: &str) -> Vec<PathBuf> {
    let path = path.trim_matches('/');
    hierarchies()
        .into_iter()
        .filter_map(|(mount_point, root)| {
            // A hierarchy mounted at a sub-path (inside a container) holds only
            // cgroups below that sub-path.
            let rel = Path::new("/").join(path);
            let inside = rel.strip_prefix(&root).ok()?;
            let dir = mount_point.join(inside);
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
