//! How a running machine's health checks stand, as pilot reports them.

use pilot::status::CheckState;
use serde::{Deserialize, Serialize};

use super::{Agent, AgentError};

/// One health check of a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// The check's name; `<container>/<check>` when the machine has several
    /// containers.
    pub name: String,
    /// `None` until the check has decided (grace period, first results).
    pub passing: Option<bool>,
    /// What the last run said.
    pub output: String,
    /// When it last ran (ms since the epoch).
    pub checked_at_ms: Option<u64>,
}

impl Agent {
    /// The health checks of a running machine (its containers' checks and
    /// the machine's own `checks`).
    pub async fn checks(&self, machine_id: &str) -> Result<Vec<CheckInfo>, AgentError> {
        let status = self
            .pilot(machine_id)?
            .status()
            .await
            .map_err(|e| AgentError::Unavailable(format!("machine {machine_id}: {e}")))?;
        let several = status.containers.len() > 1;
        Ok(status
            .containers
            .iter()
            .flat_map(|c| {
                c.health.iter().map(move |h| CheckInfo {
                    name: if several {
                        format!("{}/{}", c.name, h.name)
                    } else {
                        h.name.clone()
                    },
                    passing: match h.status {
                        CheckState::Unknown => None,
                        CheckState::Passing => Some(true),
                        CheckState::Failing => Some(false),
                    },
                    output: h.last_output.clone().unwrap_or_default(),
                    checked_at_ms: h.last_checked_ms,
                })
            })
            .collect())
    }
}
