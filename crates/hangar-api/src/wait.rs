//! `GET /v1/apps/{app}/machines/{id}/wait`: blocks until the machine reaches
//! one of the wanted states (repeated or comma-separated `state`, default
//! `started`; `settled` = any state that is not transient), optionally for a
//! given `version`/`instance_id` or after `from_event_id`; at most `timeout`
//! seconds (default and maximum 60), then 408. Answered from the store's
//! events and states, woken by every new event.

use crate::body::Params;
use crate::error::ApiError;
use crate::lookup;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use hangar_agent::store::{ALL_STATES, MachineState, seq_of_event_id};
use hangar_types::Duration;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The longest a wait may last, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    State(MachineState),
    Settled,
}

impl Want {
    fn matches(&self, s: MachineState) -> bool {
        match self {
            Want::State(w) => *w == s,
            Want::Settled => s.is_settled(),
        }
    }
}

fn parse_wants(names: Vec<String>) -> Result<Vec<Want>, ApiError> {
    if names.is_empty() {
        return Ok(vec![Want::State(MachineState::Started)]);
    }
    names
        .into_iter()
        .map(|n| {
            if n == "settled" {
                return Ok(Want::Settled);
            }
            n.parse::<MachineState>().map(Want::State).map_err(|_| {
                let known: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!(
                    "invalid state {n:?}: expected one of {}, settled",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

fn parse_timeout(p: &Params) -> Result<std::time::Duration, ApiError> {
    let Some(raw) = p.get("timeout").filter(|s| !s.is_empty()) else {
        return Ok(std::time::Duration::from_secs(MAX_WAIT_SECS));
    };
    let d = Duration::parse(raw).map_err(|e| ApiError::BadRequest(format!("timeout: {e}")))?;
    if d.as_std() > std::time::Duration::from_secs(MAX_WAIT_SECS) {
        return Err(ApiError::BadRequest(format!(
            "timeout: {raw} is longer than the maximum of {MAX_WAIT_SECS} seconds"
        )));
    }
    Ok(d.as_std())
}

pub async fn wait(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q);
    let wants = parse_wants(p.all("state"))?;
    let timeout = parse_timeout(&p)?;
    let version = p
        .get("version")
        .or_else(|| p.get("instance_id"))
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let from = match p.get("from_event_id").filter(|v| !v.is_empty()) {
        None => None,
        Some(e) => Some(seq_of_event_id(e).ok_or_else(|| {
            ApiError::BadRequest(format!("from_event_id: {e:?} is not an event id"))
        })?),
    };
    let m = lookup::machine(&state, &app, &id).await?;
    if let Some(v) = &version {
        let known = state.store.versions(&m.id).await?;
        if !known.iter().any(|x| &x.version == v) {
            return Err(ApiError::NotFound(format!(
                "machine {id} has no version {v:?}"
            )));
        }
    }
    let mut changes = state.store.subscribe();
    let deadline = Instant::now() + timeout;
    loop {
        changes.borrow_and_update();
        if let Some(found) = check(&state, &m.id, &wants, version.as_deref(), from).await? {
            return Ok(Json(found));
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err(ApiError::Internal("the store closed while waiting".into())),
            Err(_) => {
                let names: Vec<String> = wants
                    .iter()
                    .map(|w| match w {
                        Want::State(s) => s.as_str().to_owned(),
                        Want::Settled => "settled".to_owned(),
                    })
                    .collect();
                return Err(ApiError::Timeout(format!(
                    "timed out after {}s waiting for machine {id} to be {}",
                    timeout.as_secs_f64(),
                    names.join(" or ")
                )));
            }
        }
    }
}

/// The answer if the wait is over.
async fn check(
    state: &ApiState,
    id: &str,
    wants: &[Want],
    version: Option<&str>,
    from: Option<i64>,
) -> Result<Option<Value>, ApiError> {
    if let Some(after) = from {
        let events = state.store.events_after(id, after).await?;
        let hit = events.into_iter().find(|e| {
            let st = e.status.parse::<MachineState>();
            st.is_ok_and(|s| wants.iter().any(|w| w.matches(s)))
                && version.is_none_or(|v| v == e.version)
        });
        return Ok(hit.map(
            |e| json!({"ok": true, "state": e.status, "event_id": e.id, "version": e.version}),
        ));
    }
    let m = state.store.machine(id).await?;
    let last = state.store.events(id, 1).await?;
    let event_id = last.first().map(|e| e.id.clone()).unwrap_or_default();
    let answer = |st: MachineState, v: &str| json!({"ok": true, "state": st.as_str(), "event_id": event_id, "version": v});
    match version {
        Some(v) if v != m.version => {
            // A replaced version no longer runs: it counts as stopped.
            let stopped = MachineState::Stopped;
            Ok(wants
                .iter()
                .any(|w| w.matches(stopped))
                .then(|| answer(stopped, v)))
        }
        _ => Ok(wants
            .iter()
            .any(|w| w.matches(m.state))
            .then(|| answer(m.state, &m.version))),
    }
}
