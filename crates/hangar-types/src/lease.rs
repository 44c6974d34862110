//! Machine leases: exclusive holds on a machine, passed back in the
//! `fly-machine-lease-nonce` header.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Header carrying the nonce of a held lease.
pub const LEASE_NONCE_HEADER: &str = "fly-machine-lease-nonce";
/// Lease length when the request gives no `ttl`.
pub const DEFAULT_LEASE_TTL_SECS: i64 = 30;

/// `Lease`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub nonce: String,
    /// Unix seconds, UTC.
    pub expires_at: i64,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The machine version the lease was taken on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `CreateLeaseRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateLeaseRequest {
    /// Seconds the lease is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CreateLeaseRequest {
    /// The ttl, [`DEFAULT_LEASE_TTL_SECS`] when none (or a non-positive one) is given.
    pub fn ttl_or_default(&self) -> i64 {
        self.ttl
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_LEASE_TTL_SECS)
    }
}
