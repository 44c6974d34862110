//! App secrets. Values are readable only through [`Store::secret_values`],
//! which the agent uses to hand them to machines; listings carry names,
//! digests and times, never values. Every change bumps the app's secrets
//! version.

use super::{Store, StoreError};
use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A secret without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    /// The first 16 hex digits of the value's SHA-256.
    pub digest: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An app's secrets after a change, and the new secrets version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsVersion {
    pub version: i64,
    pub secrets: Vec<SecretInfo>,
}

fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))[..16].to_owned()
}

fn require_app(tx: &Transaction<'_>, app: &str) -> Result<(), StoreError> {
    tx.query_row("SELECT 1 FROM apps WHERE name = ?1", [app], |_| Ok(()))
        .optional()?
        .ok_or_else(|| StoreError::AppNotFound(app.to_owned()))
}

fn list_in(tx: &Transaction<'_>, app: &str) -> Result<Vec<SecretInfo>, StoreError> {
    let mut st = tx.prepare(
        "SELECT name, digest, created_at, updated_at FROM secrets WHERE app = ?1 ORDER BY name",
    )?;
    let rows = st.query_map([app], |r| {
        Ok(SecretInfo {
            name: r.get(0)?,
            digest: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn bump(tx: &Transaction<'_>, app: &str) -> Result<i64, StoreError> {
    tx.execute(
        "UPDATE apps SET secrets_version = secrets_version + 1 WHERE name = ?1",
        [app],
    )?;
    Ok(tx.query_row(
        "SELECT secrets_version FROM apps WHERE name = ?1",
        [app],
        |r| r.get(0),
    )?)
}

impl Store {
    /// Sets (`Some`) or removes (`None`) secrets of an app in one transaction.
    pub async fn set_secrets(
        &self,
        app: &str,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<SecretsVersion, StoreError> {
        let app = app.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            require_app(&tx, &app)?;
            for (name, value) in changes {
                match value {
                    Some(v) => {
                        tx.execute(
                            "INSERT INTO secrets (app, name, value, digest, created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                             ON CONFLICT(app, name) DO UPDATE SET value = excluded.value,
                                digest = excluded.digest, updated_at = excluded.updated_at",
                            params![app, name, v.as_bytes(), digest(&v), now],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "DELETE FROM secrets WHERE app = ?1 AND name = ?2",
                            params![app, name],
                        )?;
                    }
                }
            }
            let version = bump(&tx, &app)?;
            let secrets = list_in(&tx, &app)?;
            tx.commit()?;
            Ok(SecretsVersion { version, secrets })
        })
        .await
    }

    /// Deletes one secret; fails if it does not exist. Returns the new version.
    pub async fn delete_secret(&self, app: &str, name: &str) -> Result<i64, StoreError> {
        let (app, name) = (app.to_owned(), name.to_owned());
        self.call(move |c| {
            let tx = c.transaction()?;
            require_app(&tx, &app)?;
            let n = tx.execute(
                "DELETE FROM secrets WHERE app = ?1 AND name = ?2",
                params![app, name],
            )?;
            if n == 0 {
                return Err(StoreError::SecretNotFound { app, name });
            }
            let v = bump(&tx, &app)?;
            tx.commit()?;
            Ok(v)
        })
        .await
    }

    /// An app's secrets (names, digests, times) and its secrets version.
    pub async fn list_secrets(&self, app: &str) -> Result<SecretsVersion, StoreError> {
        let app = app.to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            require_app(&tx, &app)?;
            let version = tx.query_row(
                "SELECT secrets_version FROM apps WHERE name = ?1",
                [&app],
                |r| r.get(0),
            )?;
            Ok(SecretsVersion {
                version,
                secrets: list_in(&tx, &app)?,
            })
        })
        .await
    }

    /// The plaintext values of an app's secrets, for the agent to give to
    /// machines (`files[].secret_name`, container `secrets`). Never log them.
    pub async fn secret_values(&self, app: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let app = app.to_owned();
        self.call(move |c| {
            let mut st = c.prepare("SELECT name, value FROM secrets WHERE app = ?1")?;
            let rows = st.query_map([&app], |r| {
                let v: Vec<u8> = r.get(1)?;
                Ok((
                    r.get::<_, String>(0)?,
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })?;
            Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
        })
        .await
    }
}
