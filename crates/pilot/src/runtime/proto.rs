//! What pilot and its internal stages say to each other.
//!
//! A stage is started with two extra descriptors: [`REQUEST_FD`], a pipe carrying one
//! JSON request and then a go-ahead byte ([`GO`]), and [`STATUS_FD`], the write end
//! of the status pipe.
//! The status pipe carries lines:
//!
//! - `pid <user> <init>`: the stage forked the process (host pids);
//! - `error <message>`: a step failed (the message names it).
//!
//! Every holder of the status pipe's write end closes it by `exec` (close-on-exec)
//! or by exiting, so end-of-file on the read end means the user's program has been
//! exec'd (no error line) or setup failed (an error line).

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use super::{ContainerLaunch, ExecSpec};

/// Descriptor number of the request pipe in a stage.
pub(crate) const REQUEST_FD: RawFd = 3;
/// Descriptor number of the status pipe in a stage.
pub(crate) const STATUS_FD: RawFd = 4;
/// Descriptor number of the container init's pidfd in `__cexec` (setns target).
pub(crate) const INIT_PIDFD: RawFd = 5;

/// Seccomp programs, each a list of BPF instructions packed as
/// `code << 48 | jt << 40 | jf << 32 | k`, installed in order.
pub(crate) type PackedFilters = Vec<Vec<u64>>;

/// The security settings applied to every container process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Confinement {
    /// Capabilities kept (bit per capability number).
    pub capabilities: u64,
    pub seccomp: PackedFilters,
}

/// Request for `pilot __cinit`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitRequest {
    pub launch: ContainerLaunch,
    pub confinement: Confinement,
}

/// Request for `pilot __cexec`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExecRequest {
    pub container: String,
    pub ns_pid: i32,
    pub spec: ExecSpec,
    pub confinement: Confinement,
}

/// What the status pipe said.
#[derive(Debug, Default)]
pub(crate) struct StatusReport {
    pub pid: Option<i32>,
    pub init_pid: Option<i32>,
    pub errors: Vec<String>,
}

/// Reads the status pipe to end-of-file and parses its lines.
pub(crate) fn read_status(fd: OwnedFd) -> std::io::Result<StatusReport> {
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text)?;
    let mut report = StatusReport::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("pid ") {
            let mut parts = rest.split_whitespace().map(|p| p.parse::<i32>().ok());
            report.pid = parts.next().flatten();
            report.init_pid = parts.next().flatten();
        } else if let Some(msg) = line.strip_prefix("error ") {
            report.errors.push(msg.to_string());
        } else if !line.is_empty() {
            report.errors.push(line.to_string());
        }
    }
    Ok(report)
}

/// Writes one status line to the inherited status descriptor, without taking
/// ownership of it. Newlines inside the message are flattened so a line stays one
/// message (and one atomic pipe write for messages under `PIPE_BUF`).
pub(crate) fn write_status(fd: RawFd, line: &str) {
    let line = format!("{}\n", line.replace('\n', " "));
    // SAFETY: `fd` is the open status descriptor; ManuallyDrop keeps it open.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let _ = file.write_all(line.as_bytes());
}

/// The request pipe carries a little-endian `u32` length, the JSON request, then
/// one [`GO`] byte once pilot has moved the stage into the container's cgroups.
/// The stage reads the request at once and works on what does not need the
/// cgroups (mounts) while pilot is still moving it.
pub(crate) const GO: u8 = b'g';

/// The read side of the request pipe, inside a stage.
pub(crate) struct RequestPipe(std::fs::File);

impl RequestPipe {
    /// Reads and decodes the request from [`REQUEST_FD`].
    pub(crate) fn read<T: serde::de::DeserializeOwned>() -> Result<(T, RequestPipe), String> {
        let fd = super::sys::adopt_fd(REQUEST_FD).map_err(|e| format!("request pipe: {e}"))?;
        let mut file = std::fs::File::from(fd);
        let mut len = [0u8; 4];
        file.read_exact(&mut len)
            .map_err(|e| format!("read request length: {e}"))?;
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        file.read_exact(&mut buf)
            .map_err(|e| format!("read request: {e}"))?;
        let request = serde_json::from_slice(&buf).map_err(|e| format!("decode request: {e}"))?;
        Ok((request, RequestPipe(file)))
    }

    /// Waits for pilot's go-ahead (the stage is in the container's cgroups).
    pub(crate) fn wait_go(mut self) -> Result<(), String> {
        let mut byte = [0u8; 1];
        match self.0.read(&mut byte) {
            Ok(1) if byte[0] == GO => Ok(()),
            Ok(_) => Err("pilot gave up before the container's cgroups were ready".into()),
            Err(e) => Err(format!("read the go-ahead: {e}")),
        }
    }
}

/// Frames a request for the request pipe (without the go byte).
pub(crate) fn frame(request: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.len() + 4);
    out.extend_from_slice(&(request.len() as u32).to_le_bytes());
    out.extend_from_slice(request);
    out
}

/// Serde adapter writing bytes as base64 (file contents in JSON requests).
pub(crate) mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
