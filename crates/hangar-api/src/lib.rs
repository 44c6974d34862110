//! The Machines API over HTTP (Fly's flaps): apps, machines, leases,
//! metadata, secrets, volumes and tokens, backed by the agent's store.
//!
//! Work that touches the host (running, stopping, destroying machines;
//! making volumes) goes through [`MachineBackend`] and [`VolumeBackend`],
//! which the host agent implements. Everything else — bookkeeping, leases,
//! metadata, waiting for states — is answered from the store.
#![forbid(unsafe_code)]

mod actions;
mod apps;
mod auth;
mod backend;
mod body;
mod error;
mod leases;
mod logs;
mod lookup;
mod machines;
mod metadata;
mod orgs;
mod render;
mod secrets;
mod state;
mod tokens;
mod validate;
mod volumes;
mod wait;

pub use auth::{AdminToken, bootstrap_admin_token};
pub use backend::{
    BackendError, CheckStat, DestroyOptions, ExecRequest, ExecResponse, LaunchOptions,
    ListenSocket, LogEntry, LogOptions, MachineBackend, ProcessStat, StopOptions, VolumeBackend,
};
pub use error::ApiError;
pub use state::{ApiConfig, ApiState};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use tokio::net::TcpListener;

/// The whole API as an axum router.
pub fn router(state: ApiState) -> Router {
    let limit = state.config.max_body_bytes;
    let v1 = Router::new()
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{app}", get(apps::get).delete(apps::delete))
        .route(
            "/apps/{app}/secrets",
            get(secrets::list).post(secrets::update),
        )
        .route(
            "/apps/{app}/secrets/{name}",
            get(secrets::get).post(secrets::set).delete(secrets::delete),
        )
        .route(
            "/apps/{app}/machines",
            get(machines::list).post(machines::create),
        )
        .route(
            "/apps/{app}/machines/{id}",
            get(machines::get)
                .post(machines::update)
                .delete(machines::destroy),
        )
        .route("/apps/{app}/machines/{id}/events", get(machines::events))
        .route(
            "/apps/{app}/machines/{id}/versions",
            get(machines::versions),
        )
        .route("/apps/{app}/machines/{id}/start", post(actions::start))
        .route("/apps/{app}/machines/{id}/stop", post(actions::stop))
        .route("/apps/{app}/machines/{id}/restart", post(actions::restart))
        .route("/apps/{app}/machines/{id}/signal", post(actions::signal))
        .route("/apps/{app}/machines/{id}/suspend", post(actions::suspend))
        .route("/apps/{app}/machines/{id}/cordon", post(actions::cordon))
        .route(
            "/apps/{app}/machines/{id}/uncordon",
            post(actions::uncordon),
        )
        .route("/apps/{app}/machines/{id}/exec", post(actions::exec))
        .route("/apps/{app}/machines/{id}/ps", get(actions::ps))
        .route("/apps/{app}/machines/{id}/logs", get(logs::logs))
        .route("/apps/{app}/machines/{id}/wait", get(wait::wait))
        .route(
            "/apps/{app}/machines/{id}/lease",
            get(leases::get)
                .post(leases::acquire)
                .delete(leases::release),
        )
        .route(
            "/apps/{app}/machines/{id}/metadata",
            get(metadata::get_all)
                .put(metadata::update)
                .patch(metadata::update),
        )
        .route(
            "/apps/{app}/machines/{id}/metadata/{key}",
            get(metadata::get_key)
                .post(metadata::set_key)
                .delete(metadata::delete_key),
        )
        .route(
            "/apps/{app}/volumes",
            get(volumes::list).post(volumes::create),
        )
        .route(
            "/apps/{app}/volumes/{vol}",
            get(volumes::get)
                .put(volumes::update)
                .delete(volumes::destroy),
        )
        .route(
            "/apps/{app}/volumes/{vol}/extend",
            axum::routing::put(volumes::extend),
        )
        .route(
            "/apps/{app}/volumes/{vol}/snapshots",
            get(volumes::snapshots),
        )
        .route("/orgs/{org}/machines", get(orgs::machines))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/current", get(tokens::current))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
