//! The agent API's messages: one JSON request per line, one JSON answer per line
//! (streams: one JSON item per line until the end). See the crate docs.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::logs::LogLine;
use crate::status::{Event, MachineStatus};

/// A request from the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Machine and container status.
    Status,
    /// Events with an id greater than `after` (0: every kept event), then, with
    /// `follow`, new events until the machine exits.
    Events {
        #[serde(default)]
        after: u64,
        #[serde(default)]
        follow: bool,
    },
    /// The last `tail` log lines (of `container`, or every container), then, with
    /// `follow`, new lines until the machine exits.
    Logs {
        #[serde(default)]
        container: Option<String>,
        #[serde(default)]
        tail: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
    /// Runs `cmd` in `container` (optional when the machine has one container).
    Exec {
        #[serde(default)]
        container: Option<String>,
        cmd: Vec<String>,
        /// Written to the command's stdin, which is then closed.
        #[serde(default)]
        stdin: Option<String>,
        /// Seconds; default 30.
        #[serde(default)]
        timeout: Option<u64>,
    },
    /// Sends `signal` (name like `SIGUSR1`/`USR1` or number) to `container`, or to
    /// every running container.
    Signal {
        #[serde(default)]
        container: Option<String>,
        signal: SignalArg,
    },
    /// Stops the machine: containers in reverse dependency order. `signal` and
    /// `timeout` (seconds) override every container's stop config. With `wait`,
    /// answers once every container is down.
    Stop {
        #[serde(default)]
        signal: Option<SignalArg>,
        #[serde(default)]
        timeout: Option<u64>,
        #[serde(default)]
        wait: bool,
    },
}

/// A signal given by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SignalArg {
    Number(i32),
    Name(String),
}

impl SignalArg {
    /// The signal number, or an error naming the problem.
    pub fn number(&self) -> Result<i32, ApiError> {
        match self {
            SignalArg::Number(n) => nix::sys::signal::Signal::try_from(*n)
                .map(|s| s as i32)
                .map_err(|_| ApiError::bad_request(format!("signal: {n} is not a signal number"))),
            SignalArg::Name(name) => parse_signal(name).ok_or_else(|| {
                ApiError::bad_request(format!("signal: unknown signal name {name:?}"))
            }),
        }
    }
}

/// `SIGTERM`, `TERM`, `sigterm` or `15`.
pub fn parse_signal(name: &str) -> Option<i32> {
    if let Ok(n) = name.trim().parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok().map(|s| s as i32);
    }
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

/// One line the server writes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Status(MachineStatus),
    Exec(ExecResult),
    Signal(SignalResult),
    Stop(StopResult),
    /// One event of an `events` stream.
    Event {
        id: u64,
        event: Event,
    },
    /// One line of a `logs` stream.
    Log {
        id: u64,
        line: LogLine,
    },
    /// Entries dropped from the bounded buffer before they could be sent.
    Missed {
        count: u64,
    },
    /// The end of a stream (the machine exited, or no `follow`).
    End,
    Error(ApiError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit code; absent when the command was killed by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The timeout passed and the command was killed.
    pub timed_out: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalResult {
    /// Containers the signal was sent to.
    pub containers: Vec<String>,
    pub signal: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopResult {
    /// False when a stop had already been requested: this request changed nothing.
    pub accepted: bool,
    pub message: String,
    /// With `wait`: the final status.
    pub status: Option<MachineStatus>,
}

/// An error answer, naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid.
    BadRequest,
    /// No container has that name.
    UnknownContainer,
    /// The container is not running.
    NotRunning,
    /// The command could not be started.
    ExecFailed,
    /// The machine is stopping or exited.
    Stopping,
    Internal,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}
