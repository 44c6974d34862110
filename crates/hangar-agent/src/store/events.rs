//! Machine events: append-only, with monotonic ids. The public id of an
//! event is ULID-shaped (26 characters, sortable) and encodes the event's
//! timestamp and its sequence number, so `from_event_id` compares in order.

use super::{Store, StoreError, ids};
use rusqlite::{Row, Transaction, params};
use serde_json::{Value, json};

/// An event to append with a state transition.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `launch`, `start`, `exit`, `update`, `destroy`, `restart`, ...
    pub kind: String,
    /// Who caused it: `user` (an API call) or `flyd` (the agent itself).
    pub source: String,
    /// Details, e.g. the exit code; `{}` when there are none.
    pub request: Value,
}

impl NewEvent {
    pub fn user(kind: &str) -> NewEvent {
        NewEvent {
            kind: kind.to_owned(),
            source: "user".to_owned(),
            request: json!({}),
        }
    }

    pub fn agent(kind: &str) -> NewEvent {
        NewEvent {
            kind: kind.to_owned(),
            source: "flyd".to_owned(),
            request: json!({}),
        }
    }

    pub fn with_request(mut self, request: Value) -> NewEvent {
        self.request = request;
        self
    }

    /// An `exit` event describing how the machine's main process ended.
    pub fn exit(info: &ExitInfo) -> NewEvent {
        NewEvent::agent("exit").with_request(json!({
            "exit_event": {
                "exit_code": info.exit_code,
                "signal": info.signal,
                "oom_killed": info.oom_killed,
                "requested_stop": info.requested_stop,
                "restarting": info.restarting,
                "exited_at": info.exited_at,
            },
            "restart_count": info.restart_count,
        }))
    }
}

/// How a machine's run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub requested_stop: bool,
    pub restarting: bool,
    pub restart_count: i64,
    /// RFC 3339 or empty.
    pub exited_at: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Monotonic sequence number (never reused).
    pub seq: i64,
    /// The public, ULID-shaped id.
    pub id: String,
    pub machine_id: String,
    /// The machine version current when the event happened.
    pub version: String,
    pub kind: String,
    /// The machine's state after the event.
    pub status: String,
    pub source: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub request: Value,
}

/// The sequence number inside a public event id.
pub fn seq_of_event_id(id: &str) -> Option<i64> {
    ids::decode_ulid(id).and_then(|(_, tail)| i64::try_from(tail).ok())
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, machine_id, version, type, status, source, timestamp, request";

pub(crate) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let seq: i64 = r.get(0)?;
    let ts: i64 = r.get(6)?;
    let req: String = r.get(7)?;
    Ok(EventRecord {
        seq,
        id: ids::encode_ulid(ts, seq as u128),
        machine_id: r.get(1)?,
        version: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        source: r.get(5)?,
        timestamp: ts,
        request: serde_json::from_str(&req).unwrap_or(Value::Null),
    })
}

/// Appends an event inside the caller's transaction; returns its sequence.
pub(crate) fn append(
    tx: &Transaction<'_>,
    machine_id: &str,
    version: &str,
    status: &str,
    ev: &NewEvent,
    now: i64,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO events (machine_id, version, type, status, source, timestamp, request)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            machine_id,
            version,
            ev.kind,
            status,
            ev.source,
            now,
            ev.request.to_string()
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

impl Store {
    /// A machine's events, newest first, at most `limit`.
    pub async fn events(
        &self,
        machine_id: &str,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let id = machine_id.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE machine_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = st.query_map(params![id, limit as i64], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// A machine's events with a sequence number above `after_seq`, oldest first.
    pub async fn events_after(
        &self,
        machine_id: &str,
        after_seq: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let id = machine_id.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE machine_id = ?1 AND id > ?2 ORDER BY id"
            ))?;
            let rows = st.query_map(params![id, after_seq], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
