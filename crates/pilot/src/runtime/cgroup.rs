//! Container cgroups, on cgroup v1 (one directory per controller hierarchy, as on
//! hybrid hosts) and on cgroup v2 (one unified hierarchy).
//!
//! Each container gets `ctr-<pilot pid>-<name>` under the machine's cgroup in
//! every hierarchy the runtime uses (pilot's pid is 1 in a machine; elsewhere it
//! keeps two pilots sharing a cgroup, as in tests, from touching each other's
//! containers). The machine's cgroup is pilot's own (from `/proc/self/cgroup`)
//! unless the runtime is given a parent. The hierarchies are found once, when the
//! runtime is built ([`CgroupLayout::discover`]).
//!
//! On cgroup v2, a cgroup with controllers enabled for its children may not hold
//! processes itself ("no internal processes"), so pilot moves itself into a leaf,
//! `<machine>/pilot`, before the container cgroups become its siblings.
//!
//! A controller that is missing or refuses a new cgroup is logged and skipped: the
//! container still starts, without that accounting.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// v1 controllers a container gets a cgroup in (`cpuset` is left out: a new v1
/// cpuset cgroup has no cpus until configured).
const V1_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "cpuacct"];
/// v2 controllers enabled for the machine's children when available.
const V2_CONTROLLERS: &[&str] = &["memory", "pids", "cpu", "io"];
/// The v2 leaf pilot moves itself to.
const PILOT_LEAF: &str = "pilot";
/// Prefix of container cgroup names.
const CONTAINER_PREFIX: &str = "ctr-";
/// Bound on waiting for a killed cgroup to empty.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone)]
struct Mounted {
    mount_point: PathBuf,
    /// Path inside the hierarchy that is mounted at `mount_point`.
    mount_root: PathBuf,
    /// v1 controllers of the hierarchy; empty for v2.
    controllers: Vec<String>,
    v2: bool,
}

/// The cgroup hierarchies container cgroups are made in, and the machine's cgroup
/// directory in each.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    /// Directory of the machine's cgroup (the parent of container cgroups), one
    /// per hierarchy used.
    parents: Vec<PathBuf>,
    /// True on a pure cgroup v2 host.
    pub unified: bool,
}

impl CgroupLayout {
    /// Finds the hierarchies and the machine's cgroup. `parent` (a path inside
    /// every hierarchy, like `/hangar/m-1`) overrides pilot's own cgroup and is
    /// created when missing. On pure cgroup v2 without `parent`, moves the calling
    /// process into the `pilot` leaf of its cgroup.
    pub fn discover(parent: Option<&Path>) -> io::Result<CgroupLayout> {
        let mounts = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo")?);
        let own = parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup")?);
        Self::discover_from(&mounts, &own, parent)
    }

    /// [`discover`](Self::discover) from parsed `/proc/self/mountinfo` and
    /// `/proc/self/cgroup`.
    fn discover_from(
        mounts: &[Mounted],
        own: &[(String, PathBuf)],
        parent: Option<&Path>,
    ) -> io::Result<CgroupLayout> {
        let unified = !mounts.iter().any(|m| !m.v2 && !m.controllers.is_empty())
            && mounts.iter().any(|m| m.v2);
        let mut parents = Vec::new();
        if unified {
            let Some(m) = mounts.iter().find(|m| m.v2) else {
                return Ok(CgroupLayout { parents, unified });
            };
            let dir = match parent {
                Some(p) => {
                    let dir = m.mount_point.join(p.strip_prefix("/").unwrap_or(p));
                    fs::create_dir_all(&dir)?;
                    enable_controllers_down_to(&m.mount_point, &dir);
                    dir
                }
                None => {
                    let own_path = own.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p);
                    let own_path = own_path.map(PathBuf::as_path).unwrap_or(Path::new("/"));
                    let own_dir = dir_of(m, own_path);
                    machine_dir_v2(&own_dir, own_path == Path::new("/"))?
                }
            };
            enable_controllers(&dir);
            parents.push(dir);
            return Ok(CgroupLayout { parents, unified });
        }
        let mut seen: Vec<&Path> = Vec::new();
        for controller in V1_CONTROLLERS {
            let Some(m) = mounts
                .iter()
                .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
            else {
                tracing::warn!(controller, "cgroup v1 controller not mounted; skipped");
                continue;
            };
            if seen.contains(&m.mount_point.as_path()) {
                continue;
            }
            seen.push(&m.mount_point);
            let dir = match parent {
                Some(p) => m.mount_point.join(p.strip_prefix("/").unwrap_or(p)),
                None => {
                    let Some((_, path)) = own
                        .iter()
                        .find(|(ctrls, _)| ctrls.split(',').any(|c| c == *controller))
                    else {
                        tracing::warn!(controller, "pilot is in no cgroup of this controller");
                        continue;
                    };
                    dir_of(m, path)
                }
            };
            if let Err(e) = fs::create_dir_all(&dir) {
                tracing::warn!(controller, dir = %dir.display(), error = %e, "cgroup parent unusable; skipped");
                continue;
            }
            parents.push(dir);
        }
        Ok(CgroupLayout { parents, unified })
    }

    /// The machine cgroup directories, one per hierarchy used.
    pub fn parents(&self) -> &[PathBuf] {
        &self.parents
    }

    /// Creates the container's cgroups, returning those that exist afterwards. A
    /// leftover cgroup of the same name is emptied and reused.
    pub(crate) fn create_container(&self, name: &str) -> Vec<PathBuf> {
        let leaf = format!(
            "{CONTAINER_PREFIX}{}-{}",
            std::process::id(),
            name.replace(['/', '.'], "_")
        );
        let mut made = Vec::with_capacity(self.parents.len());
        for parent in &self.parents {
            let dir = parent.join(&leaf);
            match fs::create_dir(&dir) {
                Ok(()) => made.push(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if let Err(e) = kill_and_drain(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "leftover container cgroup could not be emptied");
                    }
                    made.push(dir);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "container cgroup not created; continuing without it");
                }
            }
        }
        made
    }
}

/// Cgroup mounts listed in a mountinfo text.
fn parse_mountinfo(text: &str) -> Vec<Mounted> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (fstype, superopts) = (post[0], post[2]);
        let v2 = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            superopts
                .split(',')
                .filter(|o| {
                    !o.contains('=')
                        && !matches!(*o, "rw" | "ro" | "relatime" | "noexec" | "nosuid" | "nodev")
                })
                .map(str::to_string)
                .collect()
        };
        out.push(Mounted {
            mount_point: PathBuf::from(pre[4]),
            mount_root: PathBuf::from(pre[3]),
            controllers,
            v2,
        });
    }
    out
}

/// `/proc/self/cgroup` as (controllers, path) pairs; v2 has empty controllers.
fn parse_proc_cgroup(text: &str) -> Vec<(String, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctrls = parts.next()?.to_string();
            let path = PathBuf::from(parts.next()?);
            Some((ctrls, path))
        })
        .collect()
}

/// Directory on disk of cgroup `path` in hierarchy `m`.
fn dir_of(m: &Mounted, path: &Path) -> PathBuf {
    let rel = path.strip_prefix(&m.mount_root).unwrap_or(path);
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    m.mount_point.join(rel)
}

/// On v2, the machine cgroup is pilot's cgroup, with pilot moved to its `pilot`
/// leaf (unless already there, or in the root cgroup, which may hold processes).
fn machine_dir_v2(own_dir: &Path, is_root: bool) -> io::Result<PathBuf> {
    if is_root {
        return Ok(own_dir.to_path_buf());
    }
    if own_dir.file_name().is_some_and(|n| n == PILOT_LEAF)
        && let Some(parent) = own_dir.parent()
    {
        return Ok(parent.to_path_buf());
    }
    let leaf = own_dir.join(PILOT_LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())?;
    Ok(own_dir.to_path_buf())
}

/// Enables the wanted v2 controllers for the children of `dir` (logged when not).
fn enable_controllers(dir: &Path) {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in V2_CONTROLLERS {
        if !available.split_whitespace().any(|a| a == *c) {
            continue;
        }
        if let Err(e) = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}")) {
            tracing::warn!(dir = %dir.display(), controller = c, error = %e, "cgroup v2 controller not enabled");
        }
    }
}

/// Enables controllers on every ancestor of `dir` below (and including) `root`,
/// so `dir` has them; errors are ignored (an ancestor with processes refuses).
fn enable_controllers_down_to(root: &Path, dir: &Path) {
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(root))
        .collect();
    ancestors.reverse();
    for a in ancestors {
        let available = fs::read_to_string(a.join("cgroup.controllers")).unwrap_or_default();
        for c in V2_CONTROLLERS {
            if available.split_whitespace().any(|x| x == *c) {
                let _ = fs::write(a.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
    }
}

/// Writes `pid` (0: the calling process) into each `cgroup.procs` file.
pub(crate) fn join(procs_files: &[PathBuf], pid: i32) -> io::Result<()> {
    for f in procs_files {
        fs::write(f, pid.to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.display())))?;
    }
    Ok(())
}

/// Pids in a cgroup (in the caller's PID namespace).
fn procs(dir: &Path) -> io::Result<Vec<i32>> {
    Ok(fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// SIGKILLs every process in the cgroup (once; see [`kill_and_drain`]).
pub(crate) fn kill_all(dir: &Path) -> io::Result<()> {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        return fs::write(&kill_file, "1");
    }
    for pid in procs(dir)? {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    Ok(())
}

/// SIGKILLs every process in the cgroup until it is empty (bounded).
pub(crate) fn kill_and_drain(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut pause = Duration::from_micros(50);
    loop {
        if procs(dir)?.is_empty() {
            return Ok(());
        }
        kill_all(dir)?;
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}: processes left after SIGKILL", dir.display()),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// Kills what is left in a container cgroup and removes it. Missing is fine.
pub(crate) fn remove(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    kill_and_drain(dir)?;
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// OOM kills recorded in the first memory cgroup among `dirs`.
pub(crate) fn oom_kills(dirs: &[PathBuf]) -> u64 {
    for dir in dirs {
        for file in ["memory.oom_control", "memory.events"] {
            if let Ok(text) = fs::read_to_string(dir.join(file)) {
                return text
                    .lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    0
}

/// Resource limits of a machine cgroup.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineLimits {
    pub memory_mb: Option<u64>,
    pub cpus: Option<f64>,
}

/// Creates the machine cgroup `path` (inside every hierarchy) with `limits` and
/// moves the calling process into it. Returns the directories made; a hierarchy
/// that refuses is reported through `warn` and skipped.
pub(crate) fn create_machine(
    path: &Path,
    limits: MachineLimits,
    warn: &mut dyn FnMut(String),
) -> io::Result<Vec<PathBuf>> {
    let mounts = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo")?);
    let unified = !mounts.iter().any(|m| !m.v2 && !m.controllers.is_empty());
    let rel = path.strip_prefix("/").unwrap_or(path);
    let mut dirs = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for m in &mounts {
        if seen.contains(&m.mount_point) {
            continue;
        }
        let wanted = if unified {
            m.v2
        } else {
            !m.v2
                && m.controllers
                    .iter()
                    .any(|c| V1_CONTROLLERS.contains(&c.as_str()))
        };
        if !wanted {
            continue;
        }
        seen.push(m.mount_point.clone());
        let dir = m.mount_point.join(rel);
        if let Err(e) = fs::create_dir_all(&dir) {
            warn(format!("cgroup {}: {e}", dir.display()));
            continue;
        }
        if m.v2 {
            enable_controllers_down_to(&m.mount_point, &dir);
        }
        let mut set = |file: &str, value: String| {
            if dir.join(file).exists()
                && let Err(e) = fs::write(dir.join(file), &value)
            {
                warn(format!("cgroup {}/{file} = {value}: {e}", dir.display()));
            }
        };
        if let Some(mb) = limits.memory_mb {
            let bytes = mb * 1024 * 1024;
            set("memory.limit_in_bytes", bytes.to_string());
            set("memory.max", bytes.to_string());
            set("memory.swap.max", "0".to_string());
        }
        if let Some(cpus) = limits.cpus {
            let period = 100_000u64;
            let quota = (cpus * period as f64).round().max(1000.0) as u64;
            set("cpu.cfs_period_us", period.to_string());
            set("cpu.cfs_quota_us", quota.to_string());
            set("cpu.max", format!("{quota} {period}"));
        }
        if let Err(e) = fs::write(dir.join("cgroup.procs"), "0") {
            warn(format!("join cgroup {}: {e}", dir.display()));
            continue;
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mountinfo(root: &Path, lines: &[(&str, &str, &str)]) -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, (dir, fstype, opts))| {
                format!(
                    "{} 1 0:{i} / {} rw,relatime - {fstype} {fstype} {opts}\n",
                    30 + i,
                    root.join(dir).display()
                )
            })
            .collect()
    }

    #[test]
    fn v2_moves_pilot_into_a_leaf_and_uses_its_cgroup_as_the_machine() {
        let tmp = tempfile::tempdir().unwrap();
        let machine = tmp.path().join("cg/hangar/m-1");
        fs::create_dir_all(&machine).unwrap();
        let mounts = parse_mountinfo(&mountinfo(tmp.path(), &[("cg", "cgroup2", "rw")]));
        let own = parse_proc_cgroup("0::/hangar/m-1\n");
        let layout = CgroupLayout::discover_from(&mounts, &own, None).unwrap();
        assert!(layout.unified);
        assert_eq!(layout.parents(), std::slice::from_ref(&machine));
        assert_eq!(
            fs::read_to_string(machine.join("pilot/cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
        // Already in the leaf: the machine is its parent, nothing moves.
        let own = parse_proc_cgroup("0::/hangar/m-1/pilot\n");
        let layout = CgroupLayout::discover_from(&mounts, &own, None).unwrap();
        assert_eq!(layout.parents(), std::slice::from_ref(&machine));
        assert_eq!(
            layout.create_container("web"),
            vec![machine.join(format!("ctr-{}-web", std::process::id()))]
        );
    }

    #[test]
    fn v1_uses_each_controller_hierarchy_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mounts = parse_mountinfo(&mountinfo(
            tmp.path(),
            &[
                ("memory", "cgroup", "rw,memory"),
                ("cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
                ("pids", "cgroup", "rw,pids"),
                ("systemd", "cgroup", "rw,xattr,name=systemd"),
                ("unified", "cgroup2", "rw"),
            ],
        ));
        let own = parse_proc_cgroup(
            "5:memory:/user/m\n4:cpu,cpuacct:/m\n3:pids:/\n1:name=systemd:/\n0::/\n",
        );
        let layout = CgroupLayout::discover_from(&mounts, &own, None).unwrap();
        assert!(!layout.unified);
        assert_eq!(
            layout.parents(),
            [
                tmp.path().join("memory/user/m"),
                tmp.path().join("pids"),
                tmp.path().join("cpu,cpuacct/m"),
            ]
        );
        let parent = Path::new("/hangar/m-2");
        let layout = CgroupLayout::discover_from(&mounts, &own, Some(parent)).unwrap();
        assert_eq!(layout.parents()[0], tmp.path().join("memory/hangar/m-2"));
        assert!(tmp.path().join("pids/hangar/m-2").is_dir());
    }
}
