//! The processes of a machine, read from /proc for the pids of its cgroup.

use serde::{Deserialize, Serialize};

/// One process of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Host pid.
    pub pid: i32,
    pub command: String,
    /// Working directory as the process sees it, when readable.
    pub directory: String,
    /// CPU time (user + system) in clock ticks.
    pub cpu: i64,
    /// Resident set size in bytes.
    pub rss: i64,
    pub utime: i64,
    pub stime: i64,
}

/// Reads what /proc says about `pids`; pids that vanished are skipped.
pub fn list(pids: &[i32]) -> Vec<ProcessInfo> {
    let page = 4096i64;
    pids.iter()
        .filter_map(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command is in parentheses and may contain spaces: split after it.
            let after = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = after.split(' ').collect();
            let num = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            // Fields after the command start at field 3 (state) of proc(5).
            let (utime, stime, rss_pages) = (num(11), num(12), num(21));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let command = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let directory = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            Some(ProcessInfo {
                pid,
                command,
                directory,
                cpu: utime + stime,
                rss: rss_pages * page,
                utime,
                stime,
            })
        })
        .collect()
}
