//! Lookups every handler needs: the app, the machine (of that app), and the
//! lease check for calls that change a machine.

use crate::error::ApiError;
use crate::state::ApiState;
use axum::http::HeaderMap;
use hangar_agent::store::{AppRecord, MachineRecord};
use hangar_types::{AppName, MachineId};

/// The header carrying a lease's nonce.
pub const LEASE_NONCE: &str = "fly-machine-lease-nonce";

/// The app named in the path, or 404.
pub async fn app(state: &ApiState, name: &str) -> Result<AppRecord, ApiError> {
    if AppName::parse(name).is_err() {
        return Err(ApiError::NotFound(format!("app {name:?} not found")));
    }
    Ok(state.store.app(name).await?)
}

/// The machine `id` of app `app`: 404 for an unknown app or machine, 400
/// for an id that cannot be a machine id.
pub async fn machine(
    state: &ApiState,
    app_name: &str,
    id: &str,
) -> Result<MachineRecord, ApiError> {
    app(state, app_name).await?;
    MachineId::parse(id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state
        .store
        .app_machine(app_name, id)
        .await
        .map_err(|_| ApiError::NotFound(format!("machine {id:?} not found in app {app_name:?}")))
}

/// The lease nonce the caller sent, if any.
pub fn nonce(headers: &HeaderMap) -> Option<String> {
    headers
        .get(LEASE_NONCE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Fails with 409 unless nobody holds a live lease on the machine or the
/// caller sent its nonce.
pub async fn lease_guard(
    state: &ApiState,
    m: &MachineRecord,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    state.store.check_lease(&m.id, nonce(headers)).await?;
    Ok(())
}

/// Looks up the machine and checks the lease: the start of every mutating call.
pub async fn machine_for_change(
    state: &ApiState,
    app_name: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<MachineRecord, ApiError> {
    let m = machine(state, app_name, id).await?;
    lease_guard(state, &m, headers).await?;
    Ok(m)
}
