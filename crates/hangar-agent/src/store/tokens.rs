//! API tokens. A token is 32 random bytes; only its SHA-256 is stored (a
//! fast hash is enough for random secrets of that length), so a copy of the
//! database does not reveal usable tokens.

use super::{Store, StoreError, ids};
use rusqlite::{OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

/// A token as stored (without the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub admin: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A token just created: the only time its plaintext is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub record: TokenRecord,
    pub token: String,
}

/// The stored hash of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        admin: r.get(2)?,
        created_at: r.get(3)?,
        revoked_at: r.get(4)?,
    })
}

impl Store {
    /// Creates a token. With `token = None` a random one is generated; a
    /// given one (e.g. `HANGAR_API_TOKEN` at first start) is stored as is.
    pub async fn create_token(
        &self,
        name: &str,
        admin: bool,
        token: Option<String>,
    ) -> Result<NewToken, StoreError> {
        let name = name.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let token = token.unwrap_or_else(ids::token);
            let record = TokenRecord { id: ids::ulid_at(now).to_lowercase(), name, admin, created_at: now, revoked_at: None };
            c.execute(
                "INSERT INTO tokens (id, name, hash, admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.id, record.name, hash_token(&token), admin, now],
            )?;
            Ok(NewToken { record, token })
        })
        .await
    }

    /// The live (not revoked) token whose plaintext is `token`, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash_token(token);
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT id, name, admin, created_at, revoked_at FROM tokens WHERE hash = ?1 AND revoked_at IS NULL",
                [&hash],
                from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare("SELECT id, name, admin, created_at, revoked_at FROM tokens ORDER BY created_at, id")?;
            let rows = st.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Revokes a token; it stops authenticating at once.
    pub async fn revoke_token(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let n = c.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, now],
            )?;
            if n == 0 {
                return Err(StoreError::TokenNotFound(id));
            }
            Ok(())
        })
        .await
    }

    /// Whether any token exists (first start creates the admin token).
    pub async fn has_tokens(&self) -> Result<bool, StoreError> {
        self.call(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))? > 0)
        })
        .await
    }
}
