//! The error body of every endpoint: `{"error": "..."}`, plus the spec's
//! optional `status` code and deprecated `details`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `main.statusCode`: a machine-readable reason some errors carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    Unknown,
    InsufficientCapacity,
    VolumePlacementCapacity,
    NameTaken,
}

/// `ErrorResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ErrorStatus>,
    /// Deprecated by the spec; Hangar puts validation problems here as a list of
    /// `{"path": ..., "message": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl ErrorResponse {
    pub fn new(message: impl Into<String>) -> Self {
        ErrorResponse {
            error: message.into(),
            status: None,
            details: None,
        }
    }

    pub fn with_status(mut self, status: ErrorStatus) -> Self {
        self.status = Some(status);
        self
    }
}

impl From<&crate::validate::Problems> for ErrorResponse {
    /// All problems in `error`, one per line, and as a list in `details`.
    fn from(p: &crate::validate::Problems) -> Self {
        ErrorResponse {
            error: p.to_string(),
            status: None,
            details: Some(Value::Array(
                p.iter()
                    .map(|pr| serde_json::json!({"path": pr.path, "message": pr.message}))
                    .collect(),
            )),
        }
    }
}
