//! `/v1/tokens`: create, list and revoke API tokens (admin tokens only), and
//! `/v1/tokens/current` for the caller's own token.

use crate::auth::Caller;
use crate::body::Body;
use crate::error::ApiError;
use crate::render;
use crate::state::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "managing tokens needs an admin token".into(),
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
struct CreateToken {
    name: Option<String>,
    admin: Option<bool>,
}

pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&caller)?;
    let req: CreateToken = body.parse()?;
    let name = req
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("name", "required"))?;
    let t = state
        .store
        .create_token(&name, req.admin.unwrap_or(false), None)
        .await?;
    let mut out = render::token(&t.record);
    out["token"] = json!(t.token);
    Ok((StatusCode::CREATED, Json(out)))
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let tokens = state.store.list_tokens().await?;
    Ok(Json(
        json!({"tokens": tokens.iter().map(render::token).collect::<Vec<_>>()}),
    ))
}

pub async fn revoke(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    state.store.revoke_token(&id).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn current(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(
        json!({"tokens": [{"token_id": caller.0.id, "user": caller.0.name, "organization": "personal", "org_slug": "personal"}]}),
    )
}
