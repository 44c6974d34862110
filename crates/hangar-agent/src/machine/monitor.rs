//! What a finished pilot left behind: its final status file, turned into the
//! machine's `exit` event.

use pilot::status::MachineStatus;

use super::paths::MachinePaths;
use crate::store::ExitInfo;

pub(super) fn read_status(paths: &MachinePaths) -> Option<MachineStatus> {
    let text = std::fs::read(paths.final_status()).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The machine's exit as the API reports it. The machine's exit code is pilot's
/// (see pilot's docs); signal and OOM come from the container that ended it: the
/// first that failed, else the last that exited. Without a status file (pilot was
/// killed) the exit is recorded as a SIGKILL.
pub fn read_exit(paths: &MachinePaths, requested_stop: bool) -> ExitInfo {
    let now = now_rfc3339();
    let Some(status) = read_status(paths) else {
        return ExitInfo {
            exit_code: None,
            signal: Some(libc::SIGKILL),
            oom_killed: false,
            requested_stop,
            restarting: false,
            restart_count: 0,
            exited_at: now,
        };
    };
    let exits = status
        .containers
        .iter()
        .filter_map(|c| c.last_exit.as_ref())
        .collect::<Vec<_>>();
    let deciding = exits
        .iter()
        .find(|e| e.exit_code != Some(0))
        .or_else(|| exits.iter().max_by_key(|e| e.exited_at_ms));
    ExitInfo {
        exit_code: status.exit_code,
        signal: deciding.and_then(|e| e.signal),
        oom_killed: exits.iter().any(|e| e.oom_killed),
        requested_stop,
        restarting: false,
        restart_count: status
            .containers
            .iter()
            .map(|c| i64::from(c.restart_count))
            .sum(),
        exited_at: now,
    }
}

/// Why pilot could not run the machine, when it said so.
pub fn read_exit_reason(paths: &MachinePaths) -> Option<String> {
    let status = read_status(paths)?;
    if let Some(error) = status.error {
        return Some(error);
    }
    status
        .containers
        .iter()
        .find_map(|c| c.reason.clone().map(|r| format!("{}: {r}", c.name)))
}

/// RFC 3339 UTC time (`2024-05-01T12:00:00Z`) of milliseconds since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// [`rfc3339`] with milliseconds (`2024-05-01T12:00:00.250Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    let whole = rfc3339(ms);
    format!(
        "{}.{:03}Z",
        whole.trim_end_matches('Z'),
        ms.rem_euclid(1000)
    )
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    rfc3339(ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400_999), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(
            super::rfc3339_ms(1_795_000_000_042),
            "2026-11-18T11:06:40.042Z"
        );
    }
}
