//! Whether a dependency meets its condition, can still meet it, or never will.
#![forbid(unsafe_code)]

use crate::plan::Condition;

/// What the supervisor knows about a dependency, as far as conditions go.
#[derive(Debug, Clone, Copy, Default)]
pub struct DepFacts {
    pub ever_started: bool,
    pub ever_healthy: bool,
    pub ever_succeeded: bool,
    /// Finished for good: no run and no restart will follow.
    pub finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepState {
    Met,
    Pending,
    /// The condition can never be met.
    Never,
}

/// Conditions latch: once met, a later exit does not un-meet them.
pub fn dependency_state(facts: DepFacts, condition: Condition) -> DepState {
    let met = match condition {
        Condition::Started => facts.ever_started,
        Condition::Healthy => facts.ever_healthy,
        Condition::ExitedSuccessfully => facts.ever_succeeded,
    };
    if met {
        DepState::Met
    } else if facts.finished {
        DepState::Never
    } else {
        DepState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_latch_and_finished_dependencies_block() {
        let running = DepFacts {
            ever_started: true,
            ..Default::default()
        };
        assert_eq!(dependency_state(running, Condition::Started), DepState::Met);
        assert_eq!(
            dependency_state(running, Condition::Healthy),
            DepState::Pending
        );
        let failed = DepFacts {
            ever_started: true,
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            dependency_state(failed, Condition::ExitedSuccessfully),
            DepState::Never
        );
        assert_eq!(dependency_state(failed, Condition::Started), DepState::Met);
        let never_ran = DepFacts {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            dependency_state(never_ran, Condition::Started),
            DepState::Never
        );
    }
}
