//! Threshold counting for one health check, as a pure state machine.
#![forbid(unsafe_code)]

use crate::status::CheckState;

/// Consecutive results of one check.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub passes: u32,
    pub failures: u32,
    pub state: Option<CheckState>,
}

impl Tracker {
    /// Records one probe result; returns the new state when it changed.
    pub fn record(
        &mut self,
        ok: bool,
        success_threshold: u32,
        failure_threshold: u32,
    ) -> Option<CheckState> {
        let before = self.state();
        if ok {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            if self.passes >= success_threshold.max(1) {
                self.state = Some(CheckState::Passing);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            if self.failures >= failure_threshold.max(1) {
                self.state = Some(CheckState::Failing);
            }
        }
        let after = self.state();
        (after != before).then_some(after)
    }

    pub fn state(&self) -> CheckState {
        self.state.unwrap_or(CheckState::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_needs_consecutive_successes_and_failing_consecutive_failures() {
        let mut t = Tracker::default();
        assert_eq!(t.record(true, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(true, 2, 3), None);
        assert_eq!(t.record(true, 2, 3), Some(CheckState::Passing));
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), Some(CheckState::Failing));
        assert_eq!(t.record(true, 2, 3), None);
        assert_eq!(t.record(true, 2, 3), Some(CheckState::Passing));
    }
}
