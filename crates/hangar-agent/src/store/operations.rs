//! Durable long operations (create, update, stop, destroy, ...). The agent
//! begins one before it changes anything on the host, advances its phase as
//! each step completes, and finishes it at the end. After a crash,
//! [`Store::unfinished_operations`] lists what must be resumed or rolled back.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde_json::Value;

/// The id of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationId(pub i64);

impl std::fmt::Display for OperationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "op-{}", self.0)
    }
}

/// An operation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    pub id: OperationId,
    pub kind: String,
    pub machine_id: Option<String>,
    pub phase: String,
    pub payload: Value,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// `done`, `rolled_back`, `failed: ...`; `None` while unfinished.
    pub outcome: Option<String>,
}

const COLUMNS: &str =
    "id, kind, machine_id, phase, payload, started_at, updated_at, finished_at, outcome";

fn from_row(r: &Row<'_>) -> rusqlite::Result<OperationRecord> {
    let payload: String = r.get(4)?;
    Ok(OperationRecord {
        id: OperationId(r.get(0)?),
        kind: r.get(1)?,
        machine_id: r.get(2)?,
        phase: r.get(3)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        started_at: r.get(5)?,
        updated_at: r.get(6)?,
        finished_at: r.get(7)?,
        outcome: r.get(8)?,
    })
}

pub(crate) fn begin_in(
    tx: &Transaction<'_>,
    kind: &str,
    machine_id: Option<&str>,
    phase: &str,
    payload: &Value,
    now: i64,
) -> Result<OperationId, StoreError> {
    tx.execute(
        "INSERT INTO operations (kind, machine_id, phase, payload, started_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![kind, machine_id, phase, payload.to_string(), now],
    )?;
    Ok(OperationId(tx.last_insert_rowid()))
}

impl Store {
    /// Records the start of an operation.
    pub async fn begin_operation(
        &self,
        kind: &str,
        machine_id: Option<&str>,
        phase: &str,
        payload: Value,
    ) -> Result<OperationId, StoreError> {
        let (kind, machine_id, phase) = (
            kind.to_owned(),
            machine_id.map(str::to_owned),
            phase.to_owned(),
        );
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            let id = begin_in(&tx, &kind, machine_id.as_deref(), &phase, &payload, now)?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Records that an operation reached `phase`, with the data needed to
    /// resume or undo it from there.
    pub async fn advance_operation(
        &self,
        id: OperationId,
        phase: &str,
        payload: Value,
    ) -> Result<(), StoreError> {
        let phase = phase.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let n = c.execute(
                "UPDATE operations SET phase = ?2, payload = ?3, updated_at = ?4
                 WHERE id = ?1 AND finished_at IS NULL",
                params![id.0, phase, payload.to_string(), now],
            )?;
            if n == 0 {
                return Err(StoreError::OperationNotFound(id.0));
            }
            Ok(())
        })
        .await
    }

    /// Marks an operation finished with `outcome` (`done`, `rolled_back`, ...).
    pub async fn finish_operation(&self, id: OperationId, outcome: &str) -> Result<(), StoreError> {
        let outcome = outcome.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let n = c.execute(
                "UPDATE operations SET finished_at = ?2, updated_at = ?2, outcome = ?3
                 WHERE id = ?1 AND finished_at IS NULL",
                params![id.0, now, outcome],
            )?;
            if n == 0 {
                return Err(StoreError::OperationNotFound(id.0));
            }
            Ok(())
        })
        .await
    }

    /// One operation.
    pub async fn operation(&self, id: OperationId) -> Result<OperationRecord, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM operations WHERE id = ?1"),
                [id.0],
                from_row,
            )
            .optional()?
            .ok_or(StoreError::OperationNotFound(id.0))
        })
        .await
    }

    /// Operations begun and not finished, oldest first.
    pub async fn unfinished_operations(&self) -> Result<Vec<OperationRecord>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM operations WHERE finished_at IS NULL ORDER BY id"
            ))?;
            let rows = st.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
