//! `/v1/apps/{app}/machines`: list, create, get, update, destroy, events,
//! versions. Create and update persist the request first (new machine or
//! new version, with its event and operation), then hand the work to the
//! backend.

use crate::auth::Caller;
use crate::backend::{DestroyOptions, LaunchOptions};
use crate::body::{Body, Params};
use crate::error::{ApiError, Problem};
use crate::lookup;
use crate::render;
use crate::state::ApiState;
use crate::validate;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use hangar_agent::store::{MachineFilter, MachineRecord, MachineState, NewMachine};
use hangar_types::MachineConfig;
use serde::Deserialize;
use serde_json::{Value, json};

/// `CreateMachineRequest` / `UpdateMachineRequest` (unknown keys ignored).
#[derive(Debug, Default, Deserialize)]
struct MachineRequest {
    config: Option<MachineConfig>,
    name: Option<String>,
    region: Option<String>,
    skip_launch: Option<bool>,
    lease_ttl: Option<i64>,
    current_version: Option<String>,
}

/// Parses and checks a create/update body; returns it with the config
/// exactly as sent.
fn read_request(body: &Body) -> Result<(MachineRequest, Value), ApiError> {
    let req: MachineRequest = body.parse()?;
    let raw = body.value()?;
    let mut problems: Vec<Problem> = Vec::new();
    match &req.config {
        None => problems.push(Problem {
            path: "config".into(),
            message: "required".into(),
        }),
        Some(cfg) => problems.extend(validate::machine_config(cfg)),
    }
    problems.extend(req.name.as_deref().and_then(validate::machine_name));
    problems.extend(req.region.as_deref().and_then(validate::region));
    problems.extend(
        req.lease_ttl
            .and_then(|t| validate::lease_ttl("lease_ttl", t)),
    );
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let config = raw.get("config").cloned().unwrap_or(Value::Null);
    Ok((req, config))
}

async fn view(state: &ApiState, m: &MachineRecord) -> Result<Value, ApiError> {
    let events = state.store.events(&m.id, 10).await?;
    let lease = state.store.lease(&m.id).await?;
    let mut out = render::machine(m, &events, lease.as_ref());
    if m.state == MachineState::Started {
        out["checks"] = serde_json::to_value(state.machines.checks(m).await)
            .unwrap_or_else(|_| Value::Array(Vec::new()));
    }
    Ok(out)
}

pub async fn list(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let p = Params::parse(q);
    let mut states = Vec::new();
    for s in p.all("state") {
        states.push(
            s.parse::<MachineState>()
                .map_err(|e| ApiError::BadRequest(format!("query parameter state: {e}")))?,
        );
    }
    let metadata =
        p.0.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("metadata.")
                    .map(|k| (k.to_owned(), v.clone()))
            })
            .collect();
    let filter = MachineFilter {
        app: Some(app),
        include_deleted: p.bool("include_deleted")?.unwrap_or(false),
        region: p.get("region").filter(|r| !r.is_empty()).map(str::to_owned),
        states,
        metadata,
    };
    let summary = p.bool("summary")?.unwrap_or(false);
    let mut out = Vec::new();
    for m in state.store.list_machines(filter).await? {
        let mut v = render::machine(&m, &[], None);
        if summary && let Some(o) = v.as_object_mut() {
            o.remove("config");
            o.remove("events");
        }
        out.push(v);
    }
    Ok(Json(Value::Array(out)))
}

pub async fn create(
    State(state): State<ApiState>,
    Path(app): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    lookup::app(&state, &app).await?;
    let (req, config) = read_request(&body)?;
    let (m, op, lease) = state
        .store
        .create_machine(NewMachine {
            app,
            name: req.name,
            region: req.region.unwrap_or_else(|| state.config.region.clone()),
            config,
            image_ref: None,
            private_ip: None,
            lease_ttl: req.lease_ttl,
            lease_owner: caller.0.name.clone(),
            source: "user".into(),
        })
        .await?;
    let opts = LaunchOptions {
        skip_launch: req.skip_launch.unwrap_or(false),
    };
    state.machines.create(&m, op, &opts).await?;
    let m = state.store.machine(&m.id).await?;
    let mut out = view(&state, &m).await?;
    if let Some(l) = lease {
        out["nonce"] = json!(l.nonce);
    }
    Ok(Json(out))
}

pub async fn get(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut m = lookup::machine(&state, &app, &id).await?;
    if let Some(v) = Params::parse(q).get("version").filter(|v| !v.is_empty()) {
        let found = state
            .store
            .versions(&m.id)
            .await?
            .into_iter()
            .find(|x| x.version == v)
            .ok_or_else(|| ApiError::NotFound(format!("machine {id} has no version {v:?}")))?;
        m.config = found.config;
        m.version = found.version.clone();
        m.instance_id = found.version;
        m.image_ref = found.image_ref;
    }
    Ok(Json(view(&state, &m).await?))
}

pub async fn update(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    let (req, config) = read_request(&body)?;
    let expected = req.current_version.filter(|v| !v.is_empty());
    let (m, op) = state
        .store
        .update_machine_config(&m.id, config, None, expected, "user")
        .await?;
    let opts = LaunchOptions {
        skip_launch: req.skip_launch.unwrap_or(false),
    };
    state.machines.update(&m, op, &opts).await?;
    let m = state.store.machine(&m.id).await?;
    Ok(Json(view(&state, &m).await?))
}

pub async fn destroy(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    let p = Params::parse(q);
    let force = p.bool("force")?.unwrap_or(false) || p.bool("kill")?.unwrap_or(false);
    if m.state == MachineState::Destroyed {
        return Ok(Json(json!({"ok": true})));
    }
    let running = matches!(
        m.state,
        MachineState::Started
            | MachineState::Starting
            | MachineState::Stopping
            | MachineState::Suspending
            | MachineState::Replacing
    );
    if running && !force {
        return Err(ApiError::PreconditionFailed(format!(
            "machine {id} is {}: stop it first, or destroy it with ?force=true",
            m.state
        )));
    }
    state
        .machines
        .destroy(&m, &DestroyOptions { force })
        .await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn events(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    let limit = Params::parse(q).u64("limit")?.unwrap_or(100).clamp(1, 1000) as usize;
    let events = state.store.events(&m.id, limit).await?;
    Ok(Json(Value::Array(
        events.iter().map(render::event).collect(),
    )))
}

pub async fn versions(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    let versions = state.store.versions(&m.id).await?;
    Ok(Json(Value::Array(
        versions.iter().map(render::version).collect(),
    )))
}
