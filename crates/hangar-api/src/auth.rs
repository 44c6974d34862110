//! Authentication: every `/v1` call carries `Authorization: Bearer <token>`
//! or `Authorization: FlyV1 <token>`; tokens are checked against their
//! stored hashes. The first start creates the admin token.

use crate::error::ApiError;
use crate::state::ApiState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use hangar_agent::store::{Store, StoreError, TokenRecord};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Who is calling: the token that authenticated the request.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenRecord);

/// Checks the request's token; 401 without a valid one.
pub async fn require_token(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "missing Authorization header: send \"Authorization: Bearer <token>\"".into(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not valid text".into()))?;
    let token = token_of(header)?;
    let record = state
        .store
        .authenticate(token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid or revoked token".into()))?;
    req.extensions_mut().insert(Caller(record));
    Ok(next.run(req).await)
}

fn token_of(header: &str) -> Result<&str, ApiError> {
    let (scheme, rest) = header.trim().split_once(' ').ok_or_else(|| {
        ApiError::Unauthorized(
            "Authorization header must be \"Bearer <token>\" or \"FlyV1 <token>\"".into(),
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("flyv1") {
        return Err(ApiError::Unauthorized(format!(
            "unsupported authorization scheme {scheme:?}: use Bearer or FlyV1"
        )));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(ApiError::Unauthorized(
            "empty token in Authorization header".into(),
        ));
    }
    Ok(token)
}

/// What first start did about the admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// Tokens existed already; nothing was done.
    Existing,
    /// The token given in the environment became the admin token.
    FromEnv,
    /// A new token was generated and written to this file (mode 0600).
    Written(PathBuf),
}

/// On first start (no token in the store), makes the admin token: `env_token`
/// (from `HANGAR_API_TOKEN`) if given, else a random one written to
/// `<data_dir>/admin-token` with mode 0600.
pub async fn bootstrap_admin_token(
    store: &Store,
    data_dir: &Path,
    env_token: Option<String>,
) -> Result<AdminToken, BootstrapError> {
    if store.has_tokens().await? {
        return Ok(AdminToken::Existing);
    }
    if let Some(t) = env_token.filter(|t| !t.trim().is_empty()) {
        store
            .create_token("admin", true, Some(t.trim().to_owned()))
            .await?;
        return Ok(AdminToken::FromEnv);
    }
    // Write the file first: a token stored but never written would lock
    // everyone out, while a file whose token was never stored is replaced
    // at the next start.
    let token = hangar_agent::store::ids::token();
    let path = data_dir.join("admin-token");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(token.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    write().map_err(|e| BootstrapError::Write {
        path: path.clone(),
        source: e,
    })?;
    store.create_token("admin", true, Some(token)).await?;
    Ok(AdminToken::Written(path))
}

/// Why the admin token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the admin token to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
