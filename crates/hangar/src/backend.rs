//! The host agent behind the API's seams: `hangar serve` runs both in one process.

use std::sync::Arc;

use async_trait::async_trait;
use hangar_agent::machine::Agent;
use hangar_agent::store::{MachineRecord, OperationId, VolumeRecord};
use hangar_api::{
    BackendError, CheckStat, DestroyOptions, ExecRequest, ExecResponse, LaunchOptions, LogEntry,
    LogOptions, MachineBackend, ProcessStat, StopOptions, VolumeBackend,
};

/// [`Agent`] as the API's machine and volume backend.
#[derive(Clone)]
pub struct AgentBackend(pub Agent);

impl AgentBackend {
    pub fn arc(agent: Agent) -> Arc<Self> {
        Arc::new(Self(agent))
    }
}

#[async_trait]
impl MachineBackend for AgentBackend {
    async fn create(
        &self,
        machine: &MachineRecord,
        op: OperationId,
        opts: &LaunchOptions,
    ) -> Result<(), BackendError> {
        self.0.create(machine, op, opts.skip_launch).await
    }

    async fn update(
        &self,
        machine: &MachineRecord,
        op: OperationId,
        opts: &LaunchOptions,
    ) -> Result<(), BackendError> {
        self.0.update(machine, op, opts.skip_launch).await
    }

    async fn start(&self, machine: &MachineRecord) -> Result<(), BackendError> {
        self.0.start(&machine.id).await
    }

    async fn stop(&self, machine: &MachineRecord, opts: &StopOptions) -> Result<(), BackendError> {
        self.0.stop(&machine.id, opts.signal, opts.timeout).await
    }

    async fn suspend(&self, machine: &MachineRecord) -> Result<(), BackendError> {
        self.0.suspend(&machine.id).await
    }

    async fn restart(
        &self,
        machine: &MachineRecord,
        opts: &StopOptions,
    ) -> Result<(), BackendError> {
        self.0.restart(&machine.id, opts.signal, opts.timeout).await
    }

    async fn signal(&self, machine: &MachineRecord, signal: i32) -> Result<(), BackendError> {
        self.0.signal(&machine.id, signal).await
    }

    async fn destroy(
        &self,
        machine: &MachineRecord,
        opts: &DestroyOptions,
    ) -> Result<(), BackendError> {
        self.0.destroy(&machine.id, opts.force).await
    }

    async fn exec(
        &self,
        machine: &MachineRecord,
        req: &ExecRequest,
    ) -> Result<ExecResponse, BackendError> {
        let out = self
            .0
            .exec(
                &machine.id,
                req.container.as_deref(),
                &req.command,
                req.stdin.as_deref(),
                req.timeout,
            )
            .await?;
        Ok(ExecResponse {
            exit_code: out
                .exit_code
                .unwrap_or_else(|| 128 + out.signal.unwrap_or(0)),
            exit_signal: out.signal,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn ps(&self, machine: &MachineRecord) -> Result<Vec<ProcessStat>, BackendError> {
        let list = self.0.ps(&machine.id).await?;
        Ok(list
            .into_iter()
            .map(|p| ProcessStat {
                pid: i64::from(p.pid),
                command: p.command,
                directory: p.directory,
                cpu: p.cpu,
                rss: p.rss,
                rtime: p.utime,
                stime: p.stime,
                listen_sockets: Vec::new(),
            })
            .collect())
    }

    async fn logs(
        &self,
        machine: &MachineRecord,
        opts: &LogOptions,
    ) -> Result<tokio::sync::mpsc::Receiver<LogEntry>, BackendError> {
        let mut stream = self
            .0
            .logs(
                &machine.id,
                opts.container.as_deref(),
                opts.tail,
                opts.follow,
            )
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let id = machine.id.clone();
        tokio::spawn(async move {
            loop {
                let line = match stream.next_line().await {
                    Ok(Some((_, line))) => line,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(machine_id = id, "log stream ended: {e}");
                        break;
                    }
                };
                let entry = LogEntry {
                    timestamp: hangar_agent::machine::rfc3339_ms(
                        i64::try_from(line.ts_ms).unwrap_or(i64::MAX),
                    ),
                    container: line.container,
                    stream: match line.stream {
                        pilot::logs::Stream::Stdout => "stdout",
                        pilot::logs::Stream::Stderr => "stderr",
                    }
                    .to_owned(),
                    message: line.line,
                };
                // The client went away: stop reading.
                if tx.send(entry).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    async fn checks(&self, machine: &MachineRecord) -> Vec<CheckStat> {
        let Ok(checks) = self.0.checks(&machine.id).await else {
            return Vec::new();
        };
        checks
            .into_iter()
            .map(|c| CheckStat {
                name: c.name,
                status: match c.passing {
                    Some(true) => "passing",
                    Some(false) => "critical",
                    None => "warning",
                }
                .to_owned(),
                output: c.output,
                updated_at: c
                    .checked_at_ms
                    .and_then(|ms| i64::try_from(ms).ok())
                    .map(hangar_agent::machine::rfc3339),
            })
            .collect()
    }
}

#[async_trait]
impl VolumeBackend for AgentBackend {
    async fn create(&self, volume: &VolumeRecord) -> Result<(), BackendError> {
        let size = u32::try_from(volume.size_gb).map_err(|_| {
            BackendError::Invalid(format!("size_gb: {} is too large", volume.size_gb))
        })?;
        let volumes = self.0.volumes().clone();
        let id = volume.id.clone();
        tokio::task::spawn_blocking(move || volumes.create(&id, size))
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(|e| BackendError::Invalid(e.to_string()))
    }

    async fn extend(&self, volume: &VolumeRecord, size_gb: i64) -> Result<bool, BackendError> {
        let size = u32::try_from(size_gb)
            .map_err(|_| BackendError::Invalid(format!("size_gb: {size_gb} is too large")))?;
        let volumes = self.0.volumes().clone();
        let id = volume.id.clone();
        let outcome = tokio::task::spawn_blocking(move || volumes.extend(&id, size))
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
        Ok(outcome.needs_restart)
    }

    async fn destroy(&self, volume: &VolumeRecord) -> Result<(), BackendError> {
        let volumes = self.0.volumes().clone();
        let id = volume.id.clone();
        tokio::task::spawn_blocking(move || volumes.destroy(&id))
            .await
            .map_err(|e| BackendError::Internal(e.to_string()))?
            .map_err(|e| BackendError::Internal(e.to_string()))
    }
}
