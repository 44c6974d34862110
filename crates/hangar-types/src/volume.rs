//! Volumes: the resource, its create/update/extend bodies and snapshots.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::GuestConfig;
use crate::ids::VolumeId;

/// `Volume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub id: VolumeId,
    pub name: String,
    /// `created`, `attached`, `pending_destroy`, `destroyed`, …
    pub state: String,
    pub size_gb: i64,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_machine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_alloc_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_retention: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_backup_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_free: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_avail: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_used: Option<i64>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_host_features: Option<Vec<String>>,
}

/// `CreateVolumeRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateVolumeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_unique_zone: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_zone_app_wide: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_retention: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_volume_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_backup_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<GuestConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_image: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Size of a volume created without `size_gb`.
pub const DEFAULT_VOLUME_SIZE_GB: i64 = 1;
/// Longest volume name.
pub const VOLUME_NAME_MAX_LEN: usize = 30;

/// Check a volume name: 1 to 30 lowercase letters, digits and `_`.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > VOLUME_NAME_MAX_LEN {
        return Err(format!("volume name {name:?} must be 1 to 30 characters"));
    }
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
    {
        return Err(format!(
            "volume name {name:?} may only contain lowercase letters, digits and '_'"
        ));
    }
    Ok(())
}

/// `UpdateVolumeRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateVolumeRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_retention: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_backup_enabled: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ExtendVolumeRequest`: the new (larger) size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtendVolumeRequest {
    pub size_gb: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ExtendVolumeResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendVolumeResponse {
    pub volume: Volume,
    pub needs_restart: bool,
}

/// `VolumeSnapshot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeSnapshot {
    pub id: String,
    /// Bytes.
    pub size: i64,
    pub digest: String,
    /// RFC 3339.
    pub created_at: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i64>,
    /// Size of the volume, GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<i64>,
}
