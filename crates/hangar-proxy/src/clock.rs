//! A coarse monotonic clock in milliseconds since the process's first use,
//! cheap to store in atomics.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the clock's epoch (never 0 after the first call's
/// first millisecond; callers that need "unset" use 0).
pub fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}
