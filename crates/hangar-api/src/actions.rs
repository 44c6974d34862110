//! Machine actions: start, stop, restart, signal, suspend, cordon,
//! uncordon, exec, ps. Each checks the lease (when it changes the machine)
//! and the machine's state, then asks the backend. A suspended machine
//! resumes with start, stops with stop; restart, signal, exec and ps refuse
//! it (its processes are frozen).

use crate::backend::{BackendError, ExecRequest, StopOptions};
use crate::body::{Body, Params};
use crate::error::ApiError;
use crate::lookup;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use hangar_agent::store::{MachineRecord, MachineState};
use hangar_types::Duration;
use hangar_types::config::Signal;
use serde::Deserialize;
use serde_json::{Value, json};

fn require_state(
    m: &MachineRecord,
    allowed: &[MachineState],
    action: &str,
) -> Result<(), ApiError> {
    if allowed.contains(&m.state) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    Err(ApiError::PreconditionFailed(format!(
        "cannot {action} machine {}: it is {} (possible when {})",
        m.id,
        m.state,
        names.join(", ")
    )))
}

fn signal_number(field: &str, s: &Signal) -> Result<i32, ApiError> {
    s.number()
        .ok_or_else(|| ApiError::BadRequest(format!("{field}: unknown signal {:?}", s.to_string())))
}

const STARTABLE: &[MachineState] = &[
    MachineState::Created,
    MachineState::Stopped,
    MachineState::Failed,
    MachineState::Suspended,
];
const RUNNING: &[MachineState] = &[MachineState::Started, MachineState::Starting];
/// A suspended machine stops too (it is thawed first).
const STOPPABLE: &[MachineState] = &[
    MachineState::Started,
    MachineState::Starting,
    MachineState::Suspended,
];

pub async fn start(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    require_state(&m, STARTABLE, "start")?;
    state.machines.start(&m).await?;
    Ok(Json(
        json!({"previous_state": m.state.as_str(), "migrated": false, "new_host": ""}),
    ))
}

#[derive(Debug, Default, Deserialize)]
struct StopBody {
    signal: Option<Signal>,
    timeout: Option<Duration>,
}

pub async fn stop(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: StopBody = body.parse()?;
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    let signal = req
        .signal
        .as_ref()
        .map(|s| signal_number("signal", s))
        .transpose()?;
    require_state(&m, STOPPABLE, "stop")?;
    let opts = StopOptions {
        signal,
        timeout: req.timeout.map(|d| d.as_std()),
    };
    state.machines.stop(&m, &opts).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn restart(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q);
    let signal = p
        .get("signal")
        .filter(|s| !s.is_empty())
        .map(|s| signal_number("signal", &Signal::named(s)))
        .transpose()?;
    let timeout = p
        .get("timeout")
        .filter(|s| !s.is_empty())
        .map(|s| Duration::parse(s).map_err(|e| ApiError::BadRequest(format!("timeout: {e}"))))
        .transpose()?;
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    require_state(&m, &[MachineState::Started], "restart")?;
    let opts = StopOptions {
        signal,
        timeout: timeout.map(|d| d.as_std()),
    };
    state.machines.restart(&m, &opts).await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Debug, Default, Deserialize)]
struct SignalBody {
    signal: Option<Signal>,
}

pub async fn signal(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: SignalBody = body.parse()?;
    let sig = req
        .signal
        .ok_or_else(|| ApiError::BadRequest("signal: required".into()))?;
    let n = signal_number("signal", &sig)?;
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    require_state(&m, RUNNING, "signal")?;
    state.machines.signal(&m, n).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn suspend(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    require_state(&m, &[MachineState::Started], "suspend")?;
    match state.machines.suspend(&m).await {
        Ok(()) => Ok(Json(json!({"ok": true}))),
        // The host (or this machine's run) cannot be suspended: 501 tells a
        // client (the proxy's autostop) to stop it instead.
        Err(BackendError::Unavailable(msg)) => Err(ApiError::NotImplemented(msg)),
        Err(e) => Err(e.into()),
    }
}

pub async fn cordon(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    state.store.set_cordoned(&m.id, true).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn uncordon(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine_for_change(&state, &app, &id, &headers).await?;
    state.store.set_cordoned(&m.id, false).await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Debug, Default, Deserialize)]
struct ExecBody {
    cmd: Option<String>,
    command: Option<Vec<String>>,
    container: Option<String>,
    machine: Option<bool>,
    stdin: Option<String>,
    timeout: Option<u64>,
}

pub async fn exec(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: ExecBody = body.parse()?;
    let command = match (
        req.command.filter(|c| !c.is_empty()),
        req.cmd.filter(|c| !c.trim().is_empty()),
    ) {
        (Some(c), _) => c,
        (None, Some(cmd)) => cmd.split_whitespace().map(str::to_owned).collect(),
        (None, None) => {
            return Err(ApiError::BadRequest(
                "command: required (a list of strings)".into(),
            ));
        }
    };
    let machine = req.machine.unwrap_or(false);
    if machine && req.container.is_some() {
        return Err(ApiError::BadRequest(
            "container and machine are mutually exclusive".into(),
        ));
    }
    let m = lookup::machine(&state, &app, &id).await?;
    require_state(&m, &[MachineState::Started], "exec in")?;
    let exec = ExecRequest {
        command,
        container: req.container,
        machine,
        stdin: req.stdin,
        timeout: req.timeout,
    };
    let out = state.machines.exec(&m, &exec).await?;
    Ok(Json(serde_json::to_value(out).unwrap_or_default()))
}

pub async fn ps(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let m = lookup::machine(&state, &app, &id).await?;
    require_state(&m, &[MachineState::Started], "list processes of")?;
    let procs = state.machines.ps(&m).await?;
    Ok(Json(serde_json::to_value(procs).unwrap_or_default()))
}
