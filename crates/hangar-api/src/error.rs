//! API errors and the one table that maps them to HTTP statuses. Every error
//! body is `{"error": "..."}`; validation errors also list each problem with
//! its JSON path under `details.problems`.

use crate::backend::BackendError;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hangar_agent::store::StoreError;
use serde_json::json;

/// One problem of a request, at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// An error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{}", join_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Unavailable(String),
}

fn join_problems(p: &[Problem]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    format!("invalid request: {}", parts.join("; "))
}

impl ApiError {
    /// The status of each error: the only place that decides it.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A single validation problem.
    pub fn invalid(path: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![Problem {
            path: path.into(),
            message: message.into(),
        }])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let msg = e.to_string();
        match e {
            StoreError::AppNotFound(_)
            | StoreError::MachineNotFound(_)
            | StoreError::VersionNotFound { .. }
            | StoreError::OperationNotFound(_)
            | StoreError::VolumeNotFound(_)
            | StoreError::SecretNotFound { .. }
            | StoreError::TokenNotFound(_) => ApiError::NotFound(msg),
            StoreError::AppExists(_)
            | StoreError::MachineNameTaken { .. }
            | StoreError::VersionMismatch { .. }
            | StoreError::LeaseHeld { .. }
            | StoreError::VolumeAttached { .. }
            | StoreError::AddressTaken(_) => ApiError::Conflict(msg),
            StoreError::IdempotencyConflict { .. } => ApiError::Invalid(vec![Problem {
                path: "idempotency_key".into(),
                message: msg,
            }]),
            StoreError::InvalidTransition { .. } => ApiError::PreconditionFailed(msg),
            StoreError::PoolExhausted(_) => ApiError::Unavailable(msg),
            StoreError::Open { .. }
            | StoreError::Thread(_)
            | StoreError::Closed
            | StoreError::Sqlite(_)
            | StoreError::Corrupt(_)
            | StoreError::SchemaTooNew { .. }
            | StoreError::Json { .. } => ApiError::Internal(msg),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> ApiError {
        match e {
            BackendError::InvalidState(m) => ApiError::PreconditionFailed(m),
            BackendError::Invalid(m) => ApiError::BadRequest(m),
            BackendError::Unavailable(m) => ApiError::Unavailable(m),
            BackendError::Timeout(m) => ApiError::Timeout(m),
            BackendError::Store(s) => s.into(),
            BackendError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self, "request failed");
        }
        let body = match &self {
            ApiError::Invalid(problems) => json!({
                "error": self.to_string(),
                "details": {
                    "problems": problems
                        .iter()
                        .map(|p| json!({"path": p.path, "message": p.message}))
                        .collect::<Vec<_>>(),
                },
            }),
            _ => json!({ "error": self.to_string() }),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Answer for paths no route matches.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

/// Answer for a known path with a method it does not take.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
