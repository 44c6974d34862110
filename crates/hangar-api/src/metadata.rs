//! `/v1/apps/{app}/machines/{id}/metadata`: read, set and remove metadata
//! keys. Metadata changes do not make a new machine version.

use crate::body::Body;
use crate::error::ApiError;
use crate::lookup;
use crate::state::ApiState;
use crate::validate;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hangar_agent::store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn check_key(key: &str) -> Result<(), ApiError> {
    match validate::metadata_key(key) {
        Some(p) => Err(ApiError::BadRequest(format!(
            "invalid metadata key {key:?}: {}",
            p.message
        ))),
        None => Ok(()),
    }
}

pub async fn get_all(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    Ok(Json(json!(m.metadata)))
}

#[derive(Debug, Default, Deserialize)]
struct UpdateMetadata {
    metadata: Option<BTreeMap<String, Option<String>>>,
    machine_version: Option<String>,
}

/// Sets the given keys; `null` or `""` removes a key; other keys stay.
pub async fn update(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let req: UpdateMetadata = body.parse()?;
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    let changes = req
        .metadata
        .ok_or_else(|| ApiError::BadRequest("metadata: required".into()))?;
    for k in changes.keys() {
        check_key(k)?;
    }
    let changes = changes
        .into_iter()
        .map(|(k, v)| (k, v.filter(|s| !s.is_empty())))
        .collect();
    let expected = req.machine_version.filter(|v| !v.is_empty());
    match state.store.update_metadata(&m.id, changes, expected).await {
        Err(e @ StoreError::VersionMismatch { .. }) => {
            Err(ApiError::PreconditionFailed(e.to_string()))
        }
        other => other.map(|_| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}

pub async fn get_key(
    State(state): State<ApiState>,
    Path((app, id, key)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    let v = m
        .metadata
        .get(&key)
        .ok_or_else(|| ApiError::NotFound(format!("machine {id} has no metadata key {key:?}")))?;
    Ok(Json(json!({"value": v})))
}

#[derive(Debug, Default, Deserialize)]
struct SetKey {
    value: Option<String>,
}

pub async fn set_key(
    State(state): State<ApiState>,
    Path((app, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    check_key(&key)?;
    let req: SetKey = body.parse()?;
    let value = req
        .value
        .ok_or_else(|| ApiError::BadRequest("value: required".into()))?;
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    state
        .store
        .update_metadata(&m.id, vec![(key, Some(value))], None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_key(
    State(state): State<ApiState>,
    Path((app, id, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_key(&key)?;
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    state
        .store
        .update_metadata(&m.id, vec![(key, None)], None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
