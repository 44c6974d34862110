//! The restart policy as a pure function: given a container's policy, how its last
//! run ended and when it was restarted before, restart (after a backoff) or not.
#![forbid(unsafe_code)]

use std::time::Duration;

use tokio::time::Instant;

use crate::plan::{RestartPlan, RestartPolicyKind};

/// What to do after a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay`; this will be restart number `attempt`.
    Restart { delay: Duration, attempt: u32 },
    /// Leave it finished; `reason` says why.
    Finish { reason: String },
}

/// Decides whether to restart. `failed` is true when the run counts as a failure
/// (non-zero exit, killed by a signal, or stopped by a liveness check);
/// `history` holds the times of earlier restarts and is pruned to the policy window.
pub fn decide(
    plan: &RestartPlan,
    failed: bool,
    history: &mut Vec<Instant>,
    now: Instant,
) -> Decision {
    history.retain(|t| now.duration_since(*t) < plan.window);
    let recent = history.len() as u32;
    match plan.policy {
        RestartPolicyKind::No => {
            return Decision::Finish {
                reason: "restart policy is \"no\"".into(),
            };
        }
        RestartPolicyKind::OnFailure if !failed => {
            return Decision::Finish {
                reason: "exited successfully; restart policy is \"on-failure\"".into(),
            };
        }
        RestartPolicyKind::OnFailure if recent >= plan.max_retries => {
            return Decision::Finish {
                reason: format!(
                    "restart policy \"on-failure\": {recent} restarts within {}s, max_retries is {}",
                    plan.window.as_secs(),
                    plan.max_retries
                ),
            };
        }
        RestartPolicyKind::OnFailure | RestartPolicyKind::Always => {}
    }
    history.push(now);
    Decision::Restart {
        delay: backoff(plan, recent),
        attempt: recent + 1,
    }
}

/// `base * 2^n`, capped.
pub fn backoff(plan: &RestartPlan, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
    plan.backoff_base
        .checked_mul(factor)
        .unwrap_or(plan.backoff_cap)
        .min(plan.backoff_cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_never_restarts() {
        let p = RestartPlan::new(RestartPolicyKind::No, None);
        let d = decide(&p, true, &mut vec![], Instant::now());
        assert!(matches!(d, Decision::Finish { .. }));
    }

    #[test]
    fn on_failure_restarts_failures_up_to_max_retries_in_the_window() {
        let p = RestartPlan::new(RestartPolicyKind::OnFailure, Some(2));
        let mut h = vec![];
        let t0 = Instant::now();
        assert!(matches!(
            decide(&p, false, &mut h, t0),
            Decision::Finish { .. }
        ));
        assert_eq!(
            decide(&p, true, &mut h, t0),
            Decision::Restart {
                delay: Duration::from_millis(100),
                attempt: 1
            }
        );
        assert_eq!(
            decide(&p, true, &mut h, t0),
            Decision::Restart {
                delay: Duration::from_millis(200),
                attempt: 2
            }
        );
        match decide(&p, true, &mut h, t0) {
            Decision::Finish { reason } => assert!(reason.contains("max_retries is 2"), "{reason}"),
            d => panic!("{d:?}"),
        }
        // Outside the window the count starts again.
        let later = t0 + Duration::from_secs(301);
        assert!(matches!(
            decide(&p, true, &mut h, later),
            Decision::Restart { attempt: 1, .. }
        ));
    }

    #[test]
    fn always_restarts_even_success_with_capped_backoff() {
        let p = RestartPlan::new(RestartPolicyKind::Always, None);
        let mut h = vec![];
        let t0 = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..30 {
            match decide(&p, false, &mut h, t0) {
                Decision::Restart { delay, .. } => last = delay,
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(last, Duration::from_secs(10));
    }
}
