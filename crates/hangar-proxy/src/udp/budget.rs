//! How many UDP flows the whole proxy may hold: each flow has a socket of
//! its own, so all UDP ports together keep at most half of the process's
//! open-file limit (and the API, the agent and TCP connections the rest).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The flows of every UDP port, counted against one limit.
#[derive(Debug)]
pub struct FlowBudget {
    live: AtomicUsize,
    limit: usize,
}

impl FlowBudget {
    pub fn new(limit: usize) -> Arc<FlowBudget> {
        Arc::new(FlowBudget {
            live: AtomicUsize::new(0),
            limit: limit.max(1),
        })
    }

    /// Half the process's soft open-file limit (1024 assumed when it
    /// cannot be read).
    pub fn from_open_file_limit() -> Arc<FlowBudget> {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        FlowBudget::new(open_file_limit(&limits).unwrap_or(1024) / 2)
    }

    /// Whether one more flow fits.
    pub fn has_room(&self) -> bool {
        self.live.load(Ordering::Relaxed) < self.limit
    }

    /// Counts a flow until the ticket is dropped.
    pub fn take(self: &Arc<Self>) -> FlowTicket {
        self.live.fetch_add(1, Ordering::Relaxed);
        FlowTicket {
            budget: self.clone(),
        }
    }

    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// One flow's place in the [`FlowBudget`].
#[derive(Debug)]
pub struct FlowTicket {
    budget: Arc<FlowBudget>,
}

impl Drop for FlowTicket {
    fn drop(&mut self) {
        self.budget.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The soft limit in a `/proc/PID/limits` text (`unlimited` as `usize::MAX`).
pub fn open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(usize::MAX);
    }
    soft.parse().ok()
}
