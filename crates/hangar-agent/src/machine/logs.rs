//! A running machine's output, as its pilot keeps and streams it.

use pilot::client::Stream;

use super::{Agent, AgentError};

impl Agent {
    /// Opens the log stream of a running machine: the last `tail` kept lines
    /// (all when `None`) of `container` (every container when `None`), then
    /// new lines with `follow`. Read it with [`Stream::next_line`].
    pub async fn logs(
        &self,
        machine_id: &str,
        container: Option<&str>,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<Stream, AgentError> {
        let pilot = self.pilot(machine_id)?;
        if let Some(name) = container {
            let status = pilot
                .status()
                .await
                .map_err(|e| AgentError::Unavailable(format!("machine {machine_id}: {e}")))?;
            if !status.containers.iter().any(|c| c.name == name) {
                let names: Vec<&str> = status.containers.iter().map(|c| c.name.as_str()).collect();
                return Err(AgentError::Invalid(format!(
                    "container: machine {machine_id} has no container {name:?} (it has {})",
                    names.join(", ")
                )));
            }
        }
        pilot
            .logs(container, tail, follow)
            .await
            .map_err(|e| match e {
                pilot::client::ClientError::Api(api) => {
                    AgentError::Invalid(format!("machine {machine_id}: {}", api.message))
                }
                other => AgentError::Unavailable(format!("machine {machine_id}: {other}")),
            })
    }
}
