//! App secrets: listing, setting one, setting many (where `null` deletes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `AppSecret`. `value` is only filled when the caller asked for values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSecret {
    pub name: String,
    /// A digest of the value, so clients can tell whether it changed.
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `AppSecrets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSecrets {
    pub secrets: Vec<AppSecret>,
}

/// `AppSecretsUpdateRequest`: set several secrets; a `null` value deletes one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSecretsUpdateRequest {
    pub values: BTreeMap<String, Option<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `AppSecretsUpdateResp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSecretsUpdateResponse {
    pub secrets: Vec<AppSecret>,
    pub version: i64,
    /// Deprecated duplicate of `version`, still sent for old clients.
    #[serde(rename = "Version")]
    pub version_legacy: i64,
}

/// `SetAppSecretRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetAppSecretRequest {
    pub value: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `SetAppSecretResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetAppSecretResponse {
    pub name: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    pub version: i64,
    #[serde(rename = "Version")]
    pub version_legacy: i64,
}

/// `DeleteAppSecretResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeleteAppSecretResponse {
    pub version: i64,
    #[serde(rename = "Version")]
    pub version_legacy: i64,
}

/// Check a secret name: it becomes an environment variable, so letters, digits
/// and `_`, not starting with a digit, at most 256 characters.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 {
        return Err(format!("secret name {name:?} must be 1 to 256 characters"));
    }
    if name.as_bytes()[0].is_ascii_digit()
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "secret name {name:?} must be letters, digits and '_', not starting with a digit"
        ));
    }
    Ok(())
}
