//! API tokens: the `Authorization` header schemes and the token endpoints' bodies.

use serde::{Deserialize, Serialize};

/// How a token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: FlyV1 <token>` (Fly's macaroon scheme; Hangar treats the
    /// token as opaque, like a bearer token).
    FlyV1,
}

/// Split an `Authorization` header value into its scheme and token. Scheme
/// names are case-insensitive; `None` for other schemes or an empty token.
pub fn parse_authorization(header: &str) -> Option<(AuthScheme, &str)> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((AuthScheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("flyv1") {
        Some((AuthScheme::FlyV1, token))
    } else {
        None
    }
}

/// `main.tokenInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_to_machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_machine_id: Option<String>,
}

/// `CurrentTokenResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrentTokenResponse {
    pub tokens: Vec<TokenInfo>,
}

/// `CreateAppDeployTokenRequest`: `expiry` is a duration string like `"720h"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateAppDeployTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

/// `CreateAppDeployTokenResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateAppDeployTokenResponse {
    pub token: String,
}
