//! `/v1/apps/{app}/secrets`: set, list, delete. Values go in and never come
//! out: answers carry names, digests and times only.

use crate::body::Body;
use crate::error::ApiError;
use crate::lookup;
use crate::render;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hangar_types::secret::check_secret_name;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Secret names become environment variable names.
fn check_name(path: &str, name: &str) -> Result<(), ApiError> {
    check_secret_name(name).map_err(|m| ApiError::invalid(path, m))
}

#[derive(Debug, Default, Deserialize)]
struct UpdateSecrets {
    values: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
struct SetSecret {
    value: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let s = state.store.list_secrets(&app).await?;
    Ok(Json(json!({
        "secrets": s.secrets.iter().map(render::secret).collect::<Vec<_>>(),
        "version": s.version,
    })))
}

/// Sets several secrets at once; a `null` value removes that secret.
pub async fn update(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let req: UpdateSecrets = body.parse()?;
    let values = req
        .values
        .ok_or_else(|| ApiError::invalid("values", "required"))?;
    for name in values.keys() {
        check_name(&format!("values.{name}"), name)?;
    }
    let s = state
        .store
        .set_secrets(&app, values.into_iter().collect())
        .await?;
    Ok(Json(json!({
        "secrets": s.secrets.iter().map(render::secret).collect::<Vec<_>>(),
        "version": s.version,
        "Version": s.version,
    })))
}

pub async fn get(
    State(state): State<ApiState>,
    Path((app, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let s = state.store.list_secrets(&app).await?;
    let found =
        s.secrets.iter().find(|x| x.name == name).ok_or_else(|| {
            ApiError::NotFound(format!("secret {name:?} not found in app {app:?}"))
        })?;
    Ok(Json(render::secret(found)))
}

pub async fn set(
    State(state): State<ApiState>,
    Path((app, name)): Path<(String, String)>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    lookup::app(&state, &app).await?;
    check_name("name", &name)?;
    let req: SetSecret = body.parse()?;
    let value = req
        .value
        .ok_or_else(|| ApiError::invalid("value", "required"))?;
    let s = state
        .store
        .set_secrets(&app, vec![(name.clone(), Some(value))])
        .await?;
    let info = s
        .secrets
        .iter()
        .find(|x| x.name == name)
        .map(render::secret)
        .unwrap_or_default();
    let mut out = info;
    out["version"] = json!(s.version);
    out["Version"] = json!(s.version);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((app, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let v = state.store.delete_secret(&app, &name).await?;
    Ok(Json(json!({"version": v, "Version": v})))
}
