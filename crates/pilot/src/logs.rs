//! Container output: each line of a container's stdout and stderr, stamped with
//! the time, the container name and the stream, kept in the machine's bounded log
//! journal and streamed to subscribers.
#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::journal::Journal;

/// Longest line kept as one entry; longer output is split.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of container output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix time in milliseconds when pilot read the line.
    pub ts_ms: u64,
    pub container: String,
    pub stream: Stream,
    /// The line without its newline (invalid UTF-8 replaced).
    pub line: String,
}

pub type LogJournal = Journal<LogLine>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads `fd` until EOF, appending each line to `journal`. Returns when the
/// writing end is closed (every process of the container holding it exited).
pub async fn capture(fd: OwnedFd, container: String, stream: Stream, journal: Arc<LogJournal>) {
    let push = |bytes: &[u8]| {
        journal.push(LogLine {
            ts_ms: now_ms(),
            container: container.clone(),
            stream,
            line: String::from_utf8_lossy(bytes).into_owned(),
        });
    };
    match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(mut rx) => {
            let mut pending = Vec::new();
            let mut buf = vec![0u8; 8192];
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        pending.extend_from_slice(&buf[..n]);
                        split_lines(&mut pending, &push);
                    }
                }
            }
            if !pending.is_empty() {
                push(&pending);
            }
        }
        Err(e) => tracing::warn!(%container, ?stream, "cannot read container output: {e}"),
    }
}

/// Emits every complete line of `pending` (and over-long chunks), keeping the rest.
fn split_lines(pending: &mut Vec<u8>, push: &impl Fn(&[u8])) {
    let mut start = 0;
    while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
        let mut line = &pending[start..start + pos];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        for chunk in line.chunks(MAX_LINE) {
            push(chunk);
        }
        if line.is_empty() {
            push(line);
        }
        start += pos + 1;
    }
    while pending.len() - start >= MAX_LINE {
        push(&pending[start..start + MAX_LINE]);
        start += MAX_LINE;
    }
    pending.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn splits_lines_and_keeps_partial_rest() {
        let got = RefCell::new(Vec::new());
        let push = |b: &[u8]| {
            got.borrow_mut()
                .push(String::from_utf8_lossy(b).into_owned())
        };
        let mut pending = b"one\r\ntwo\n\nthr".to_vec();
        split_lines(&mut pending, &push);
        assert_eq!(*got.borrow(), vec!["one", "two", ""]);
        assert_eq!(pending, b"thr");
        let mut long = vec![b'x'; MAX_LINE + 5];
        split_lines(&mut long, &push);
        assert_eq!(got.borrow().len(), 4);
        assert_eq!(long.len(), 5);
    }
}
