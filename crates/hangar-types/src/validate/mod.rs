//! Validation of a machine config: every problem at once, each with the JSON
//! path of the offending value (rooted at `config`) and a plain message, e.g.
//! `config.containers[1].depends_on[0]: no container named "db"`.
//!
//! Validation reads only fields Hangar knows; unknown keys (`extra`) are never
//! looked at.

mod checks;
mod container;
mod machine;

use std::fmt;

use crate::config::MachineConfig;

/// The largest `guest.cpus` any host could give. No single host has more than
/// 1024 hardware threads: the largest two-socket x86 servers have 768 (2 × 192
/// cores × 2 threads), the largest Arm ones fewer.
pub const MAX_GUEST_CPUS: i64 = 1024;
/// The largest `guest.memory_mb` any host could give: 64 TiB. The largest
/// single-system-image servers sold (e.g. 16-socket machines) top out at 48 TiB.
pub const MAX_GUEST_MEMORY_MB: i64 = 64 * 1024 * 1024;
/// The smallest `guest.memory_mb` a machine can run in: 16 MiB. Below that the
/// memory cgroup leaves no room for pilot (PID 1, a few MiB resident) plus the
/// process it starts.
pub const MIN_GUEST_MEMORY_MB: i64 = 16;
/// The most GPUs one host carries (8 is the common maximum of GPU servers; 16
/// leaves headroom).
pub const MAX_GUEST_GPUS: i64 = 16;
/// Longest container name: names become directory and cgroup names.
pub const CONTAINER_NAME_MAX_LEN: usize = 63;

/// One problem: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    /// JSON path, like `config.containers[1].depends_on[0]`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a config, in the order the config is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// `Ok(())` when there are no problems.
    pub fn into_result(self) -> Result<(), Problems> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One problem per line.
impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl MachineConfig {
    /// Check the config; `Err` lists every problem found.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        machine::validate_machine(self, "config", &mut p);
        p.into_result()
    }
}

/// Helpers shared by the rule files.
pub(crate) mod util {
    use super::Problems;

    pub fn check_port(port: Option<i64>, path: &str, p: &mut Problems) {
        if let Some(n) = port
            && !(1..=65535).contains(&n)
        {
            p.push(path, format!("port {n} is outside 1–65535"));
        }
    }

    pub fn check_guest_path(gp: &str, path: &str, p: &mut Problems) {
        if !gp.starts_with('/') {
            p.push(path, format!("must be an absolute path (got {gp:?})"));
            return;
        }
        if gp.split('/').any(|c| c == "..") {
            p.push(path, format!("must not contain \"..\" (got {gp:?})"));
            return;
        }
        for dir in ["/proc", "/sys", "/dev"] {
            let normalized = squeeze_slashes(gp);
            if normalized == dir || normalized.starts_with(&format!("{dir}/")) {
                p.push(path, format!("must not be under {dir} (got {gp:?})"));
                return;
            }
        }
        if gp.ends_with('/') {
            p.push(
                path,
                format!("must name a file, not a directory (got {gp:?})"),
            );
        }
    }

    fn squeeze_slashes(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for part in s.split('/').filter(|c| !c.is_empty() && *c != ".") {
            out.push('/');
            out.push_str(part);
        }
        if out.is_empty() { "/".into() } else { out }
    }

    /// "a, b or c".
    pub fn one_of(items: &[&str]) -> String {
        match items {
            [] => String::new(),
            [one] => one.to_string(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}
