//! Apps: a name, an id, an organization and a private network.

use super::{Store, StoreError, ids};
use rusqlite::{OptionalExtension, Row, params};

/// An app as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    pub id: String,
    /// A small number unique to the app on this store.
    pub internal_numeric_id: i64,
    pub org_slug: String,
    pub network: String,
    pub created_at: i64,
    /// Machines that are not destroyed.
    pub machine_count: i64,
    pub volume_count: i64,
}

/// What creating an app needs.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub name: String,
    pub org_slug: String,
    pub network: String,
}

const SELECT: &str = "SELECT a.name, a.id, a.seq, a.org_slug, a.network, a.created_at,
    (SELECT COUNT(*) FROM machines m WHERE m.app = a.name AND m.state != 'destroyed'),
    (SELECT COUNT(*) FROM volumes v WHERE v.app = a.name)
    FROM apps a";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AppRecord> {
    Ok(AppRecord {
        name: r.get(0)?,
        id: r.get(1)?,
        internal_numeric_id: r.get(2)?,
        org_slug: r.get(3)?,
        network: r.get(4)?,
        created_at: r.get(5)?,
        machine_count: r.get(6)?,
        volume_count: r.get(7)?,
    })
}

impl Store {
    /// Creates an app; fails with [`StoreError::AppExists`] if the name is taken.
    pub async fn create_app(&self, app: NewApp) -> Result<AppRecord, StoreError> {
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            let exists: bool = tx
                .query_row("SELECT 1 FROM apps WHERE name = ?1", [&app.name], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::AppExists(app.name));
            }
            tx.execute(
                "INSERT INTO apps (name, id, org_slug, network, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![app.name, ids::ulid_at(now).to_lowercase(), app.org_slug, app.network, now],
            )?;
            let rec = tx.query_row(&format!("{SELECT} WHERE a.name = ?1"), [&app.name], from_row)?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }

    /// Creates an app unless `key` already created one: a retry with the same
    /// key and the same name gets the first app back (`false`: not created
    /// now); the same key with another name fails with
    /// [`StoreError::IdempotencyConflict`].
    pub async fn create_app_idempotent(
        &self,
        app: NewApp,
        key: &str,
    ) -> Result<(AppRecord, bool), StoreError> {
        let key = key.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            let earlier: Option<String> = tx
                .query_row(
                    "SELECT name FROM apps WHERE idempotency_key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(existing) = earlier {
                if existing != app.name {
                    return Err(StoreError::IdempotencyConflict {
                        key,
                        existing,
                        asked: app.name,
                    });
                }
                let rec = tx.query_row(
                    &format!("{SELECT} WHERE a.name = ?1"),
                    [&existing],
                    from_row,
                )?;
                return Ok((rec, false));
            }
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM apps WHERE name = ?1",
                    [&app.name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::AppExists(app.name));
            }
            tx.execute(
                "INSERT INTO apps (name, id, org_slug, network, created_at, idempotency_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    app.name,
                    ids::ulid_at(now).to_lowercase(),
                    app.org_slug,
                    app.network,
                    now,
                    key
                ],
            )?;
            let rec = tx.query_row(
                &format!("{SELECT} WHERE a.name = ?1"),
                [&app.name],
                from_row,
            )?;
            tx.commit()?;
            Ok((rec, true))
        })
        .await
    }

    /// The app named `name`.
    pub async fn app(&self, name: &str) -> Result<AppRecord, StoreError> {
        let name = name.to_owned();
        self.call(move |c| {
            c.query_row(&format!("{SELECT} WHERE a.name = ?1"), [&name], from_row)
                .optional()?
                .ok_or(StoreError::AppNotFound(name))
        })
        .await
    }

    /// Every app, oldest first, optionally only those of one organization.
    pub async fn list_apps(&self, org_slug: Option<String>) -> Result<Vec<AppRecord>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "{SELECT} WHERE (?1 IS NULL OR a.org_slug = ?1) ORDER BY a.seq"
            ))?;
            let rows = st.query_map([org_slug], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes an app with everything it owns (machines, versions, events,
    /// volumes records, secrets, leases). The agent must have torn down the
    /// machines' resources before.
    pub async fn delete_app(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM apps WHERE name = ?1", [&name])?;
            if n == 0 {
                return Err(StoreError::AppNotFound(name));
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
