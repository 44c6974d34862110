//! Machine leases: an exclusive, expiring claim on changing a machine. The
//! holder proves it with the lease's nonce (sent in `fly-machine-lease-nonce`).

use super::{Store, StoreError, ids};
use rusqlite::{OptionalExtension, Row, Transaction, params};

/// A lease as stored. `expires_at` is in Unix seconds, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub machine_id: String,
    pub nonce: String,
    pub owner: String,
    pub description: String,
    pub expires_at: i64,
    /// The machine version when the lease was taken.
    pub version: String,
}

/// The outcome of checking a caller's nonce against a machine's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheck {
    /// Nobody holds a live lease.
    Free,
    /// The caller holds it.
    Holder,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<LeaseRecord> {
    Ok(LeaseRecord {
        machine_id: r.get(0)?,
        nonce: r.get(1)?,
        owner: r.get(2)?,
        description: r.get(3)?,
        expires_at: r.get(4)?,
        version: r.get(5)?,
    })
}

fn live_lease(
    tx: &Transaction<'_>,
    machine_id: &str,
    now_s: i64,
) -> Result<Option<LeaseRecord>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT machine_id, nonce, owner, description, expires_at, version FROM leases
             WHERE machine_id = ?1 AND expires_at > ?2",
            params![machine_id, now_s],
            from_row,
        )
        .optional()?)
}

fn held(l: LeaseRecord) -> StoreError {
    StoreError::LeaseHeld {
        machine: l.machine_id,
        owner: l.owner,
        expires_at: l.expires_at,
    }
}

/// Acquires (or, with the holder's nonce, refreshes) a lease inside the
/// caller's transaction.
pub(crate) fn acquire_in(
    tx: &Transaction<'_>,
    machine_id: &str,
    nonce: Option<&str>,
    ttl_secs: i64,
    owner: &str,
    description: &str,
    now_ms: i64,
) -> Result<LeaseRecord, StoreError> {
    let now_s = now_ms.div_euclid(1000);
    let version: String = tx
        .query_row(
            "SELECT version FROM machines WHERE id = ?1",
            [machine_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::MachineNotFound(machine_id.to_owned()))?;
    let nonce = match live_lease(tx, machine_id, now_s)? {
        Some(l) if Some(l.nonce.as_str()) == nonce => l.nonce,
        Some(l) => return Err(held(l)),
        None => ids::nonce(),
    };
    let lease = LeaseRecord {
        machine_id: machine_id.to_owned(),
        nonce,
        owner: owner.to_owned(),
        description: description.to_owned(),
        expires_at: now_s + ttl_secs.max(1),
        version,
    };
    tx.execute(
        "INSERT INTO leases (machine_id, nonce, owner, description, expires_at, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(machine_id) DO UPDATE SET nonce = excluded.nonce, owner = excluded.owner,
            description = excluded.description, expires_at = excluded.expires_at, version = excluded.version",
        params![lease.machine_id, lease.nonce, lease.owner, lease.description, lease.expires_at, lease.version],
    )?;
    Ok(lease)
}

impl Store {
    /// Acquires a lease for `ttl_secs`. If someone else holds a live lease,
    /// fails with [`StoreError::LeaseHeld`]; with the holder's nonce, extends it.
    pub async fn acquire_lease(
        &self,
        machine_id: &str,
        nonce: Option<String>,
        ttl_secs: i64,
        owner: &str,
        description: &str,
    ) -> Result<LeaseRecord, StoreError> {
        let (id, owner, description) = (
            machine_id.to_owned(),
            owner.to_owned(),
            description.to_owned(),
        );
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            let l = acquire_in(
                &tx,
                &id,
                nonce.as_deref(),
                ttl_secs,
                &owner,
                &description,
                now,
            )?;
            tx.commit()?;
            Ok(l)
        })
        .await
    }

    /// The live lease on a machine, if any.
    pub async fn lease(&self, machine_id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        let id = machine_id.to_owned();
        let now_s = self.now_ms().div_euclid(1000);
        self.call(move |c| {
            let tx = c.transaction()?;
            live_lease(&tx, &id, now_s)
        })
        .await
    }

    /// Checks that a caller with `nonce` may change the machine: nobody holds
    /// a live lease, or the caller holds it.
    pub async fn check_lease(
        &self,
        machine_id: &str,
        nonce: Option<String>,
    ) -> Result<LeaseCheck, StoreError> {
        match self.lease(machine_id).await? {
            None => Ok(LeaseCheck::Free),
            Some(l) if Some(&l.nonce) == nonce.as_ref() => Ok(LeaseCheck::Holder),
            Some(l) => Err(held(l)),
        }
    }

    /// Releases the lease held with `nonce`. Releasing when no live lease
    /// exists succeeds; releasing someone else's lease fails.
    pub async fn release_lease(&self, machine_id: &str, nonce: &str) -> Result<(), StoreError> {
        let (id, nonce) = (machine_id.to_owned(), nonce.to_owned());
        let now_s = self.now_ms().div_euclid(1000);
        self.call(move |c| {
            let tx = c.transaction()?;
            match live_lease(&tx, &id, now_s)? {
                Some(l) if l.nonce != nonce => return Err(held(l)),
                _ => {
                    tx.execute("DELETE FROM leases WHERE machine_id = ?1", [&id])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
