//! `/v1/apps/{app}/machines/{id}/lease`: acquire (201), get, release. The
//! holder proves itself with the nonce in `fly-machine-lease-nonce`.

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::lookup;
use crate::render;
use crate::state::ApiState;
use crate::validate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

/// Lease length when the request gives none, in seconds.
const DEFAULT_TTL: i64 = 30;

#[derive(Debug, Default, Deserialize)]
struct CreateLease {
    ttl: Option<i64>,
    description: Option<String>,
}

pub async fn get(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    let l = state
        .store
        .lease(&m.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("machine {id} has no active lease")))?;
    Ok(Json(render::lease(&l)))
}

pub async fn acquire(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let req: CreateLease = body.parse()?;
    let m = lookup::machine(&state, &app, &id).await?;
    let ttl = req.ttl.unwrap_or(DEFAULT_TTL);
    if let Some(p) = validate::lease_ttl("ttl", ttl) {
        return Err(ApiError::BadRequest(format!("{}: {}", p.path, p.message)));
    }
    let l = state
        .store
        .acquire_lease(
            &m.id,
            lookup::nonce(&headers),
            ttl,
            &caller.0.name,
            req.description.as_deref().unwrap_or(""),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(render::lease(&l))))
}

pub async fn release(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    let nonce = lookup::nonce(&headers).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{} header: required to release a lease",
            lookup::LEASE_NONCE
        ))
    })?;
    state.store.release_lease(&m.id, &nonce).await?;
    Ok(Json(json!({"ok": true})))
}
