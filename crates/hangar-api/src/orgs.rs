//! `GET /v1/orgs/{org}/machines`: the machines of every app of an
//! organization (`include_deleted`, `region`, `state` filters).

use crate::body::Params;
use crate::error::ApiError;
use crate::render;
use crate::state::ApiState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use hangar_agent::store::{MachineFilter, MachineState};
use serde_json::{Value, json};

pub async fn machines(
    State(state): State<ApiState>,
    Path(org): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q);
    let mut states = Vec::new();
    for s in p.all("state") {
        states.push(
            s.parse::<MachineState>()
                .map_err(|e| ApiError::BadRequest(format!("query parameter state: {e}")))?,
        );
    }
    let include_deleted = p.bool("include_deleted")?.unwrap_or(false);
    let region = p.get("region").filter(|r| !r.is_empty()).map(str::to_owned);
    let mut out = Vec::new();
    for app in state.store.list_apps(Some(org)).await? {
        let filter = MachineFilter {
            app: Some(app.name.clone()),
            include_deleted,
            region: region.clone(),
            states: states.clone(),
            metadata: Vec::new(),
        };
        for m in state.store.list_machines(filter).await? {
            out.push(json!({
                "id": m.id,
                "name": m.name,
                "app_name": m.app,
                "state": m.state.as_str(),
                "region": m.region,
                "private_ip": m.private_ip.clone().unwrap_or_default(),
                "version": m.version,
                "created_at": render::rfc3339(m.created_at),
                "updated_at": render::rfc3339(m.updated_at),
            }));
        }
    }
    Ok(Json(json!({"machines": out})))
}
