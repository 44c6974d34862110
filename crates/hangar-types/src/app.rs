//! Apps: the create body (which real clients send with `app_name` or `name`) and
//! the app resource.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AppName, IdError};

/// `CreateAppRequest`. Clients name the app `app_name` (flyctl, the API docs'
/// curl examples) or `name` (the spec); both are accepted and kept as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateAppRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_subdomains: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a create-app body names no valid app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppNameError {
    #[error("app_name: missing (give \"app_name\" or \"name\")")]
    Missing,
    #[error("app_name: \"app_name\" ({app_name:?}) and \"name\" ({name:?}) disagree")]
    Conflict { app_name: String, name: String },
    #[error("app_name: {0}")]
    Invalid(#[from] IdError),
}

impl CreateAppRequest {
    /// The requested app name, whichever key carried it, checked.
    pub fn app_name(&self) -> Result<AppName, AppNameError> {
        let chosen = match (self.app_name.as_deref(), self.name.as_deref()) {
            (Some(a), Some(n)) if a != n => {
                return Err(AppNameError::Conflict {
                    app_name: a.to_owned(),
                    name: n.to_owned(),
                });
            }
            (Some(a), _) => a,
            (None, Some(n)) => n,
            (None, None) => return Err(AppNameError::Missing),
        };
        Ok(AppName::parse(chosen)?)
    }
}

/// `CreateAppResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateAppResponse {
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// `AppOrganizationInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppOrganizationInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_numeric_id: Option<i64>,
}

/// `App`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: AppName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<AppOrganizationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_numeric_id: Option<i64>,
}

/// `ListAppsResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListAppsResponse {
    pub apps: Vec<App>,
    pub total_apps: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
