//! What every handler shares: the store, the backends and the settings.

use crate::backend::{MachineBackend, VolumeBackend};
use hangar_agent::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The region this host is in; new machines and volumes land here when
    /// the request names none.
    pub region: String,
    /// The organization apps belong to when the request names none.
    pub org_slug: String,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Where volumes live on the host (`<dir>/<volume id>`).
    pub volume_dir: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            region: "local".into(),
            org_slug: "personal".into(),
            max_body_bytes: 4 * 1024 * 1024,
            volume_dir: PathBuf::from("/var/lib/hangar/volumes"),
        }
    }
}

/// The state handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub machines: Arc<dyn MachineBackend>,
    pub volumes: Arc<dyn VolumeBackend>,
    pub config: Arc<ApiConfig>,
}

impl ApiState {
    pub fn new(
        store: Store,
        machines: Arc<dyn MachineBackend>,
        volumes: Arc<dyn VolumeBackend>,
        config: ApiConfig,
    ) -> ApiState {
        ApiState {
            store,
            machines,
            volumes,
            config: Arc::new(config),
        }
    }
}
