//! Running a command inside a started container (the agent's `exec` call and exec
//! health checks): spawned through [`Runtime::exec`], fed its stdin, its output
//! collected (bounded), its exit collected by the reaper, killed on timeout.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::reaper::{ExitStatus, reaper};
use crate::runtime::{ContainerHandle, ExecSpec, Runtime, RuntimeError};

/// Output kept per stream; the rest is read and dropped.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` only if the process could not be collected after being killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The timeout passed and the process was killed.
    pub timed_out: bool,
}

/// Runs `spec` in the container of `handle`.
pub async fn run(
    runtime: Arc<dyn Runtime>,
    handle: ContainerHandle,
    spec: ExecSpec,
    stdin: Vec<u8>,
    timeout: Duration,
) -> Result<ExecOutput, RuntimeError> {
    let r = reaper();
    let container = handle.name.clone();
    let started = tokio::task::spawn_blocking(move || runtime.exec(&handle, &spec))
        .await
        .map_err(|e| RuntimeError::Setup {
            container,
            message: format!("exec task failed: {e}"),
        })??;
    let pid = started.pid;
    let mut exited = r.watch(pid);

    let stdin_task = tokio::spawn(async move {
        if let Ok(mut tx) = tokio::net::unix::pipe::Sender::from_owned_fd(started.stdin) {
            let _ = tx.write_all(&stdin).await;
        }
        // Dropping the sender closes the process's stdin.
    });
    let out_task = tokio::spawn(read_bounded(started.stdout));
    let err_task = tokio::spawn(read_bounded(started.stderr));

    let mut timed_out = false;
    let status = match tokio::time::timeout(timeout, &mut exited).await {
        Ok(s) => s.ok(),
        Err(_) => {
            timed_out = true;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            match tokio::time::timeout(Duration::from_secs(5), exited).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    r.unwatch(pid);
                    None
                }
            }
        }
    };
    stdin_task.abort();
    // Background children of the command may keep the pipes open: bound the wait.
    let collect = |t: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(Duration::from_secs(1), t).await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        }
    };
    let stdout = collect(out_task).await;
    let stderr = collect(err_task).await;
    Ok(ExecOutput {
        status,
        stdout,
        stderr,
        timed_out,
    })
}

async fn read_bounded(fd: std::os::fd::OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return out;
    };
    let mut buf = vec![0u8; 8192];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
