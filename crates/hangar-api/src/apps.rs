//! `/v1/apps`: create (201), list, get, delete (202).

use crate::body::{Body, Params};
use crate::error::ApiError;
use crate::lookup;
use crate::render;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hangar_agent::store::{MachineFilter, MachineState, NewApp};
use hangar_types::AppName;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
struct CreateApp {
    app_name: Option<String>,
    name: Option<String>,
    org_slug: Option<String>,
    network: Option<String>,
    idempotency_key: Option<String>,
}

pub async fn create(
    State(state): State<ApiState>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let req: CreateApp = body.parse()?;
    let name = req
        .app_name
        .or(req.name)
        .ok_or_else(|| ApiError::invalid("app_name", "required (or \"name\")"))?;
    AppName::parse(&name).map_err(|e| ApiError::invalid("app_name", e.to_string()))?;
    let new = NewApp {
        name,
        org_slug: req
            .org_slug
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| state.config.org_slug.clone()),
        network: req
            .network
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
    };
    let app = match req.idempotency_key.filter(|k| !k.is_empty()) {
        Some(key) => state.store.create_app_idempotent(new, &key).await?.0,
        None => state.store.create_app(new).await?,
    };
    Ok((StatusCode::CREATED, Json(render::app(&app))))
}

pub async fn list(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(q);
    let apps = state
        .store
        .list_apps(params.get("org_slug").map(str::to_owned))
        .await?;
    Ok(Json(json!({
        "total_apps": apps.len(),
        "apps": apps.iter().map(render::app).collect::<Vec<_>>(),
    })))
}

pub async fn get(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(render::app(&lookup::app(&state, &app).await?)))
}

/// Destroys the app's machines (killing running ones) and volumes, then the
/// app itself.
pub async fn delete(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    lookup::app(&state, &app).await?;
    let machines = state
        .store
        .list_machines(MachineFilter {
            app: Some(app.clone()),
            ..Default::default()
        })
        .await?;
    for m in machines
        .iter()
        .filter(|m| m.state != MachineState::Destroyed)
    {
        state
            .machines
            .destroy(m, &crate::backend::DestroyOptions { force: true })
            .await?;
    }
    for v in state.store.list_volumes(&app).await? {
        state.volumes.destroy(&v).await?;
    }
    state.store.delete_app(&app).await?;
    Ok(StatusCode::ACCEPTED)
}
