//! Serves the agent API on a unix socket: one task per connection, requests read
//! line by line, answered from the supervisor's handle.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::protocol::{ApiError, ErrorCode, ExecResult, Request, Response};
use crate::exec;
use crate::journal::Item;
use crate::reaper::ExitStatus;
use crate::supervisor::Handle;

/// Longest accepted request line.
const MAX_REQUEST: usize = 1024 * 1024;
/// Default exec timeout.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may take to finish once pilot is exiting.
const DRAIN: Duration = Duration::from_secs(2);

/// Binds `path` (replacing a stale socket file). The socket is bound and
/// listening under a temporary name first and then renamed into place, so a
/// client that sees `path` exist can connect: between `bind` and `listen` a
/// socket file exists that refuses connections.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    if tmp.as_os_str().len() >= SUN_PATH_MAX {
        // No room for the temporary name: bind in place.
        remove_stale(path)?;
        return UnixListener::bind(path);
    }
    remove_stale(&tmp)?;
    let listener = UnixListener::bind(&tmp)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// Room for a socket path in `sockaddr_un` (with its terminating NUL).
const SUN_PATH_MAX: usize = 108;

fn remove_stale(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Accepts connections until `shutdown` turns true, then lets open connections
/// finish for a bounded time.
pub async fn serve(listener: UnixListener, handle: Handle, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let h = handle.clone();
                    conns.spawn(async move {
                        if let Err(e) = connection(stream, h).await {
                            tracing::debug!("api connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("api accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
}

async fn connection(stream: tokio::net::UnixStream, handle: Handle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut lines)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_REQUEST {
            send(
                &mut write,
                &Response::Error(ApiError::bad_request("request longer than 1 MiB")),
            )
            .await?;
            return Ok(());
        }
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        let req: Request = match serde_json::from_str(text.trim()) {
            Ok(r) => r,
            Err(e) => {
                let err = ApiError::bad_request(format!("invalid request: {e}"));
                send(&mut write, &Response::Error(err)).await?;
                continue;
            }
        };
        match req {
            Request::Events { after, follow } => {
                return events(&mut write, &handle, after, follow).await;
            }
            Request::Logs {
                container,
                tail,
                follow,
            } => {
                return logs(&mut write, &handle, container, tail, follow).await;
            }
            other => {
                let answer = unary(&handle, other).await;
                send(&mut write, &answer.unwrap_or_else(Response::Error)).await?;
            }
        }
    }
}

async fn send(w: &mut OwnedWriteHalf, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

async fn unary(handle: &Handle, req: Request) -> Result<Response, ApiError> {
    match req {
        Request::Status => Ok(Response::Status(handle.status().await?)),
        Request::Exec {
            container,
            cmd,
            stdin,
            timeout,
        } => {
            if cmd.is_empty() || cmd[0].is_empty() {
                return Err(ApiError::bad_request(
                    "cmd: must name a command, got an empty list",
                ));
            }
            let timeout = match timeout {
                Some(0) => return Err(ApiError::bad_request("timeout: must be at least 1 second")),
                Some(s) => Duration::from_secs(s),
                None => EXEC_TIMEOUT,
            };
            let target = handle.exec_target(container).await?;
            let spec = crate::runtime::ExecSpec {
                argv: cmd,
                ..target.base
            };
            let out = exec::run(
                target.runtime,
                target.handle,
                spec,
                stdin.unwrap_or_default().into_bytes(),
                timeout,
            )
            .await
            .map_err(|e| ApiError::new(ErrorCode::ExecFailed, e.to_string()))?;
            Ok(Response::Exec(ExecResult {
                exit_code: match out.status {
                    Some(ExitStatus::Exited(c)) => Some(c),
                    _ => None,
                },
                signal: match out.status {
                    Some(ExitStatus::Signaled(s)) => Some(s),
                    _ => None,
                },
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                timed_out: out.timed_out,
            }))
        }
        Request::Signal { container, signal } => {
            let sig = signal.number()?;
            Ok(Response::Signal(handle.signal(container, sig).await?))
        }
        Request::Stop {
            signal,
            timeout,
            wait,
        } => {
            let sig = signal.map(|s| s.number()).transpose()?;
            let mut result = handle
                .stop(sig, timeout.map(Duration::from_secs), "agent request")
                .await?;
            if wait {
                result.status = Some(handle.wait_exited().await?);
            }
            Ok(Response::Stop(result))
        }
        Request::Events { .. } | Request::Logs { .. } => Err(ApiError::new(
            ErrorCode::Internal,
            "stream request in the unary path",
        )),
    }
}

async fn events(
    w: &mut OwnedWriteHalf,
    handle: &Handle,
    after: u64,
    follow: bool,
) -> std::io::Result<()> {
    if !follow {
        for (id, event) in handle.events.since(after) {
            send(w, &Response::Event { id, event }).await?;
        }
        return send(w, &Response::End).await;
    }
    let mut sub = handle.events.subscribe(after);
    while let Some(item) = sub.next().await {
        let r = match item {
            Item::Entry(id, event) => Response::Event { id, event },
            Item::Missed(count) => Response::Missed { count },
        };
        send(w, &r).await?;
    }
    send(w, &Response::End).await
}

async fn logs(
    w: &mut OwnedWriteHalf,
    handle: &Handle,
    container: Option<String>,
    tail: Option<usize>,
    follow: bool,
) -> std::io::Result<()> {
    if let Some(c) = &container {
        // Validates the name against the machine's containers.
        let known = match handle.status().await {
            Ok(s) => s.containers.iter().any(|x| &x.name == c),
            Err(_) => true,
        };
        if !known {
            let err = ApiError::new(
                ErrorCode::UnknownContainer,
                format!("container: no container named {c:?}"),
            );
            return send(w, &Response::Error(err)).await;
        }
    }
    let matches = |name: &str| container.as_deref().is_none_or(|c| c == name);
    let kept = handle.logs.since(0);
    let last = kept.last().map(|(id, _)| *id).unwrap_or(0);
    let selected: Vec<_> = kept
        .into_iter()
        .filter(|(_, l)| matches(&l.container))
        .collect();
    let skip = tail.map(|n| selected.len().saturating_sub(n)).unwrap_or(0);
    for (id, line) in selected.into_iter().skip(skip) {
        send(w, &Response::Log { id, line }).await?;
    }
    if follow {
        let mut sub = handle.logs.subscribe(last);
        while let Some(item) = sub.next().await {
            match item {
                Item::Entry(id, line) if matches(&line.container) => {
                    send(w, &Response::Log { id, line }).await?
                }
                Item::Entry(..) => {}
                Item::Missed(count) => send(w, &Response::Missed { count }).await?,
            }
        }
    }
    send(w, &Response::End).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_replaces_a_stale_socket_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pilot.sock");
        std::fs::write(&path, b"stale").unwrap();
        let listener = bind(&path).unwrap();
        // The path is a listening socket as soon as bind returns.
        let client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (_server_side, _) = listener.accept().await.unwrap();
        drop(client);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["pilot.sock"]);
    }
}
