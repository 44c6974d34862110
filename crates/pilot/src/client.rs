//! The agent's typed client for pilot's API (one connection per call).
//!
//! ```no_run
//! # async fn demo() -> Result<(), pilot::client::ClientError> {
//! let c = pilot::client::Client::new("/run/hangar/m1/pilot.sock");
//! let status = c.status().await?;
//! let out = c.exec(Some("app"), &["cat", "/etc/hostname"], None, None).await?;
//! let mut events = c.events(0, true).await?;
//! while let Some((id, event)) = events.next().await? {
//!     println!("{id}: {event:?}");
//! }
//! # let _ = (status, out); Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::api::protocol::{
    ApiError, ExecResult, Request, Response, SignalArg, SignalResult, StopResult,
};
use crate::logs::LogLine;
use crate::status::{Event, MachineStatus};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("pilot socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pilot answered something unexpected: {0}")]
    Protocol(String),
    /// pilot refused the request.
    #[error("pilot: {0}")]
    Api(#[from] ApiError),
}

/// A client of one pilot.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A stream of answers to `events` or `logs`.
pub struct Stream {
    lines: Lines<BufReader<OwnedReadHalf>>,
    /// Kept open until the stream is dropped.
    _write: OwnedWriteHalf,
    socket: PathBuf,
    ended: bool,
    /// Entries the server reported dropped so far.
    pub missed: u64,
}

impl Stream {
    async fn next_response(&mut self) -> Result<Option<Response>, ClientError> {
        if self.ended {
            return Ok(None);
        }
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .map_err(|source| ClientError::Io {
                    path: self.socket.clone(),
                    source,
                })?;
            let Some(line) = line else {
                self.ended = true;
                return Ok(None);
            };
            let r: Response =
                serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
            match r {
                Response::End => {
                    self.ended = true;
                    return Ok(None);
                }
                Response::Missed { count } => self.missed += count,
                Response::Error(e) => return Err(e.into()),
                other => return Ok(Some(other)),
            }
        }
    }

    /// The next event, `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<(u64, Event)>, ClientError> {
        match self.next_response().await? {
            Some(Response::Event { id, event }) => Ok(Some((id, event))),
            None => Ok(None),
            Some(other) => Err(ClientError::Protocol(format!(
                "expected an event, got {other:?}"
            ))),
        }
    }

    /// The next log line, `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Result<Option<(u64, LogLine)>, ClientError> {
        match self.next_response().await? {
            Some(Response::Log { id, line }) => Ok(Some((id, line))),
            None => Ok(None),
            Some(other) => Err(ClientError::Protocol(format!(
                "expected a log line, got {other:?}"
            ))),
        }
    }
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    fn io(&self) -> impl Fn(std::io::Error) -> ClientError + '_ {
        |source| ClientError::Io {
            path: self.socket.clone(),
            source,
        }
    }

    async fn open(&self, req: &Request) -> Result<Stream, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(self.io())?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        write.write_all(&line).await.map_err(self.io())?;
        Ok(Stream {
            _write: write,
            lines: BufReader::new(read).lines(),
            socket: self.socket.clone(),
            ended: false,
            missed: 0,
        })
    }

    /// Sends a raw request and returns pilot's single answer.
    pub async fn request(&self, req: &Request) -> Result<Response, ClientError> {
        let mut s = self.open(req).await?;
        match s.next_response().await? {
            Some(r) => Ok(r),
            None => Err(ClientError::Protocol(
                "connection closed without an answer".into(),
            )),
        }
    }

    pub async fn status(&self) -> Result<MachineStatus, ClientError> {
        match self.request(&Request::Status).await? {
            Response::Status(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Events after id `after` (0: all kept), following new ones with `follow`.
    pub async fn events(&self, after: u64, follow: bool) -> Result<Stream, ClientError> {
        self.open(&Request::Events { after, follow }).await
    }

    /// The last `tail` lines (all kept when `None`), following new ones with `follow`.
    pub async fn logs(
        &self,
        container: Option<&str>,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<Stream, ClientError> {
        self.open(&Request::Logs {
            container: container.map(str::to_string),
            tail,
            follow,
        })
        .await
    }

    /// Runs `cmd` in `container`; `timeout` in seconds (default 30).
    pub async fn exec(
        &self,
        container: Option<&str>,
        cmd: &[&str],
        stdin: Option<&str>,
        timeout: Option<u64>,
    ) -> Result<ExecResult, ClientError> {
        let req = Request::Exec {
            container: container.map(str::to_string),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.map(str::to_string),
            timeout,
        };
        match self.request(&req).await? {
            Response::Exec(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `signal` (e.g. `"SIGUSR1"`) to `container`, or to every running one.
    pub async fn signal(
        &self,
        container: Option<&str>,
        signal: &str,
    ) -> Result<SignalResult, ClientError> {
        let req = Request::Signal {
            container: container.map(str::to_string),
            signal: SignalArg::Name(signal.to_string()),
        };
        match self.request(&req).await? {
            Response::Signal(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Stops the machine; with `wait`, answers once every container is down.
    pub async fn stop(
        &self,
        signal: Option<&str>,
        timeout_secs: Option<u64>,
        wait: bool,
    ) -> Result<StopResult, ClientError> {
        let req = Request::Stop {
            signal: signal.map(|s| SignalArg::Name(s.to_string())),
            timeout: timeout_secs,
            wait,
        };
        match self.request(&req).await? {
            Response::Stop(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(r: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {r:?}"))
}
