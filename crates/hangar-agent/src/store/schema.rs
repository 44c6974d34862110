//! Schema migrations, numbered. `PRAGMA user_version` records the last one
//! applied; each runs in its own transaction, so a crash leaves the database
//! at a whole version.

use super::StoreError;
use rusqlite::Connection;

/// The migrations, in order: entry `i` moves the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE apps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    id TEXT NOT NULL UNIQUE,
    org_slug TEXT NOT NULL,
    network TEXT NOT NULL,
    secrets_version INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    state TEXT NOT NULL,
    version TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    private_ip TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    cordoned INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}',
    restart_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX machines_by_app ON machines(app);
CREATE TABLE machine_versions (
    version TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    config TEXT NOT NULL,
    image_ref TEXT,
    created_at INTEGER NOT NULL,
    replaced_at INTEGER
);
CREATE INDEX versions_by_machine ON machine_versions(machine_id, created_at);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    request TEXT NOT NULL
);
CREATE INDEX events_by_machine ON events(machine_id, id);
CREATE TABLE operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    machine_id TEXT,
    phase TEXT NOT NULL,
    payload TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT
);
CREATE INDEX operations_unfinished ON operations(finished_at);
CREATE TABLE volumes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    region TEXT NOT NULL,
    size_gb INTEGER NOT NULL,
    state TEXT NOT NULL,
    attached_machine_id TEXT,
    encrypted INTEGER NOT NULL,
    fstype TEXT NOT NULL,
    auto_backup_enabled INTEGER NOT NULL,
    snapshot_retention INTEGER NOT NULL,
    host_path TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX volumes_by_app ON volumes(app);
CREATE TABLE leases (
    machine_id TEXT PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    nonce TEXT NOT NULL,
    owner TEXT NOT NULL,
    description TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE secrets (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    digest TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app, name)
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    admin INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE ip_allocations (
    ip TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    owner TEXT NOT NULL,
    allocated_at INTEGER NOT NULL
);
CREATE INDEX ips_by_owner ON ip_allocations(owner);
"#,
    r#"
ALTER TABLE apps ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX apps_by_idempotency_key ON apps(idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"#,
];

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies every migration newer than the database's version.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: latest(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
