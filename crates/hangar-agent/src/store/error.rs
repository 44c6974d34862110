//! Errors of the store: each names the record and what is wrong with it.

use super::MachineState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the store thread: {0}")]
    Thread(std::io::Error),
    #[error("the store is closed")]
    Closed,
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("the store's schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("app {0:?} not found")]
    AppNotFound(String),
    #[error("app {0:?} already exists")]
    AppExists(String),
    #[error(
        "idempotency key {key:?} already created app {existing:?}; a retry must ask for the same name, not {asked:?}"
    )]
    IdempotencyConflict {
        key: String,
        existing: String,
        asked: String,
    },
    #[error("machine {0:?} not found")]
    MachineNotFound(String),
    #[error("a machine named {name:?} already exists in app {app:?}")]
    MachineNameTaken { app: String, name: String },
    #[error("machine {machine} version {version:?} not found")]
    VersionNotFound { machine: String, version: String },
    #[error("machine {machine} cannot go from {from} to {to}")]
    InvalidTransition {
        machine: String,
        from: MachineState,
        to: MachineState,
    },
    #[error("machine {machine} is at version {current}, not {expected}")]
    VersionMismatch {
        machine: String,
        current: String,
        expected: String,
    },
    #[error("operation {0} not found")]
    OperationNotFound(i64),
    #[error("volume {0:?} not found")]
    VolumeNotFound(String),
    #[error("volume {volume} is attached to machine {machine}")]
    VolumeAttached { volume: String, machine: String },
    #[error(
        "machine {machine} lease is held by {owner:?} until {expires_at} (unix seconds); send its nonce in fly-machine-lease-nonce"
    )]
    LeaseHeld {
        machine: String,
        owner: String,
        expires_at: i64,
    },
    #[error("secret {name:?} not found in app {app:?}")]
    SecretNotFound { app: String, name: String },
    #[error("token {0:?} not found")]
    TokenNotFound(String),
    #[error("no free address left in pool {0}")]
    PoolExhausted(String),
    #[error("address {0} is already allocated")]
    AddressTaken(String),
    #[error("invalid JSON stored in {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}
