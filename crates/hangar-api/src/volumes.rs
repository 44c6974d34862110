//! `/v1/apps/{app}/volumes`: create, list, get, update, extend, delete, and
//! snapshots (none are taken on this host yet, so the list is empty). The
//! volume is recorded first, then made on the host by the backend.

use crate::body::Body;
use crate::error::{ApiError, Problem};
use crate::lookup;
use crate::render;
use crate::state::ApiState;
use crate::validate;
use axum::Json;
use axum::extract::{Path, State};
use hangar_agent::store::{NewVolume, VolumeRecord};
use hangar_types::volume::check_volume_name;
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest volume, in GB.
const MAX_SIZE_GB: i64 = 500;

#[derive(Debug, Default, Deserialize)]
struct CreateVolume {
    name: Option<String>,
    region: Option<String>,
    size_gb: Option<i64>,
    encrypted: Option<bool>,
    fstype: Option<String>,
    auto_backup_enabled: Option<bool>,
    snapshot_retention: Option<i64>,
}

fn check_name(name: &str) -> Option<Problem> {
    check_volume_name(name).err().map(|message| Problem {
        path: "name".into(),
        message,
    })
}

async fn volume_of(state: &ApiState, app: &str, id: &str) -> Result<VolumeRecord, ApiError> {
    lookup::app(state, app).await?;
    match state.store.volume(id).await {
        Ok(v) if v.app == app => Ok(v),
        _ => Err(ApiError::NotFound(format!(
            "volume {id:?} not found in app {app:?}"
        ))),
    }
}

pub async fn create(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let req: CreateVolume = body.parse()?;
    let mut problems = Vec::new();
    match &req.name {
        None => problems.push(Problem {
            path: "name".into(),
            message: "required".into(),
        }),
        Some(n) => problems.extend(check_name(n)),
    }
    let size = req.size_gb.unwrap_or(1);
    if !(1..=MAX_SIZE_GB).contains(&size) {
        problems.push(Problem {
            path: "size_gb".into(),
            message: format!("{size} must be between 1 and {MAX_SIZE_GB}"),
        });
    }
    problems.extend(req.region.as_deref().and_then(validate::region));
    let fstype = req.fstype.unwrap_or_else(|| "ext4".into());
    if fstype != "ext4" {
        problems.push(Problem {
            path: "fstype".into(),
            message: format!("{fstype:?} is not supported (use ext4)"),
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let v = state
        .store
        .create_volume(NewVolume {
            name: req.name.unwrap_or_default(),
            app,
            region: req.region.unwrap_or_else(|| state.config.region.clone()),
            size_gb: size,
            encrypted: req.encrypted.unwrap_or(false),
            fstype,
            auto_backup_enabled: req.auto_backup_enabled.unwrap_or(false),
            snapshot_retention: req.snapshot_retention.unwrap_or(5),
            host_dir: state.config.volume_dir.display().to_string(),
        })
        .await?;
    if let Err(e) = state.volumes.create(&v).await {
        let _ = state.store.delete_volume(&v.id).await;
        return Err(e.into());
    }
    Ok(Json(render::volume(&state.store.volume(&v.id).await?)))
}

pub async fn list(
    State(state): State<ApiState>,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let vols = state.store.list_volumes(&app).await?;
    Ok(Json(Value::Array(
        vols.iter().map(render::volume).collect(),
    )))
}

pub async fn get(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(render::volume(&volume_of(&state, &app, &id).await?)))
}

#[derive(Debug, Default, Deserialize)]
struct UpdateVolume {
    auto_backup_enabled: Option<bool>,
    snapshot_retention: Option<i64>,
}

pub async fn update(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: UpdateVolume = body.parse()?;
    if let Some(r) = req.snapshot_retention
        && !(1..=60).contains(&r)
    {
        return Err(ApiError::invalid(
            "snapshot_retention",
            format!("{r} must be between 1 and 60 days"),
        ));
    }
    let v = volume_of(&state, &app, &id).await?;
    let v = state
        .store
        .update_volume(&v.id, move |v| {
            if let Some(b) = req.auto_backup_enabled {
                v.auto_backup_enabled = b;
            }
            if let Some(r) = req.snapshot_retention {
                v.snapshot_retention = r;
            }
        })
        .await?;
    Ok(Json(render::volume(&v)))
}

#[derive(Debug, Default, Deserialize)]
struct ExtendVolume {
    size_gb: Option<i64>,
}

pub async fn extend(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: ExtendVolume = body.parse()?;
    let v = volume_of(&state, &app, &id).await?;
    let size = req
        .size_gb
        .ok_or_else(|| ApiError::invalid("size_gb", "required"))?;
    if size <= v.size_gb || size > MAX_SIZE_GB {
        return Err(ApiError::invalid(
            "size_gb",
            format!(
                "{size} must be larger than the current {} and at most {MAX_SIZE_GB}",
                v.size_gb
            ),
        ));
    }
    let needs_restart = state.volumes.extend(&v, size).await?;
    let v = state
        .store
        .update_volume(&v.id, move |v| v.size_gb = size)
        .await?;
    Ok(Json(
        json!({"volume": render::volume(&v), "needs_restart": needs_restart}),
    ))
}

pub async fn destroy(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let v = volume_of(&state, &app, &id).await?;
    if let Some(m) = &v.attached_machine_id {
        return Err(ApiError::Conflict(format!(
            "volume {id} is attached to machine {m}: destroy the machine first"
        )));
    }
    state.volumes.destroy(&v).await?;
    let mut v = state.store.delete_volume(&v.id).await?;
    v.state = "destroyed".into();
    Ok(Json(render::volume(&v)))
}

pub async fn snapshots(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    volume_of(&state, &app, &id).await?;
    Ok(Json(json!([])))
}
