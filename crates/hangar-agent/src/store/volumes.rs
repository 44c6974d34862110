//! Volumes: persistent storage of one app on this host, attached to at most
//! one machine at a time.

use super::{Store, StoreError, ids};
use rusqlite::{OptionalExtension, Row, params};

/// A volume as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    pub id: String,
    pub name: String,
    pub app: String,
    pub region: String,
    pub size_gb: i64,
    /// `creating`, `created`, `extending`, `destroying`, ...
    pub state: String,
    pub attached_machine_id: Option<String>,
    pub encrypted: bool,
    pub fstype: String,
    pub auto_backup_enabled: bool,
    pub snapshot_retention: i64,
    /// Where the volume lives on the host.
    pub host_path: String,
    pub created_at: i64,
}

/// What creating a volume needs; the id is generated.
#[derive(Debug, Clone)]
pub struct NewVolume {
    pub name: String,
    pub app: String,
    pub region: String,
    pub size_gb: i64,
    pub encrypted: bool,
    pub fstype: String,
    pub auto_backup_enabled: bool,
    pub snapshot_retention: i64,
    /// The directory volumes live under; the volume's path is `<dir>/<id>`.
    pub host_dir: String,
}

const COLUMNS: &str =
    "id, name, app, region, size_gb, state, attached_machine_id, encrypted, fstype,
    auto_backup_enabled, snapshot_retention, host_path, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<VolumeRecord> {
    Ok(VolumeRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        app: r.get(2)?,
        region: r.get(3)?,
        size_gb: r.get(4)?,
        state: r.get(5)?,
        attached_machine_id: r.get(6)?,
        encrypted: r.get(7)?,
        fstype: r.get(8)?,
        auto_backup_enabled: r.get(9)?,
        snapshot_retention: r.get(10)?,
        host_path: r.get(11)?,
        created_at: r.get(12)?,
    })
}

impl Store {
    /// Records a new volume in state `creating`.
    pub async fn create_volume(&self, v: NewVolume) -> Result<VolumeRecord, StoreError> {
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.query_row("SELECT 1 FROM apps WHERE name = ?1", [&v.app], |_| Ok(()))
                .optional()?
                .ok_or_else(|| StoreError::AppNotFound(v.app.clone()))?;
            let id = ids::volume_id();
            let path = format!("{}/{}", v.host_dir.trim_end_matches('/'), id);
            tx.execute(
                &format!("INSERT INTO volumes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, 'creating', NULL, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![id, v.name, v.app, v.region, v.size_gb, v.encrypted, v.fstype, v.auto_backup_enabled,
                    v.snapshot_retention, path, now],
            )?;
            let rec = tx.query_row(&format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"), [&id], from_row)?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }

    /// A volume by id.
    pub async fn volume(&self, id: &str) -> Result<VolumeRecord, StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
                [&id],
                from_row,
            )
            .optional()?
            .ok_or(StoreError::VolumeNotFound(id))
        })
        .await
    }

    /// The volumes of an app, oldest first.
    pub async fn list_volumes(&self, app: &str) -> Result<Vec<VolumeRecord>, StoreError> {
        let app = app.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM volumes WHERE app = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([&app], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Applies `f` to a volume and stores the result (state, size, settings).
    pub async fn update_volume<F>(&self, id: &str, f: F) -> Result<VolumeRecord, StoreError>
    where
        F: FnOnce(&mut VolumeRecord) + Send + 'static,
    {
        let id = id.to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut v = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
                    [&id],
                    from_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::VolumeNotFound(id.clone()))?;
            f(&mut v);
            tx.execute(
                "UPDATE volumes SET name = ?2, size_gb = ?3, state = ?4, attached_machine_id = ?5,
                    auto_backup_enabled = ?6, snapshot_retention = ?7 WHERE id = ?1",
                params![
                    id,
                    v.name,
                    v.size_gb,
                    v.state,
                    v.attached_machine_id,
                    v.auto_backup_enabled,
                    v.snapshot_retention
                ],
            )?;
            tx.commit()?;
            Ok(v)
        })
        .await
    }

    /// Attaches a volume to a machine; fails if another machine has it.
    pub async fn attach_volume(
        &self,
        id: &str,
        machine_id: &str,
    ) -> Result<VolumeRecord, StoreError> {
        let (vid, mid) = (id.to_owned(), machine_id.to_owned());
        self.call(move |c| {
            let tx = c.transaction()?;
            let v = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
                    [&vid],
                    from_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::VolumeNotFound(vid.clone()))?;
            if let Some(other) = v.attached_machine_id.filter(|m| *m != mid) {
                return Err(StoreError::VolumeAttached {
                    volume: vid,
                    machine: other,
                });
            }
            tx.execute(
                "UPDATE volumes SET attached_machine_id = ?2 WHERE id = ?1",
                params![vid, mid],
            )?;
            let v = tx.query_row(
                &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
                [&vid],
                from_row,
            )?;
            tx.commit()?;
            Ok(v)
        })
        .await
    }

    /// Detaches a volume from whichever machine has it.
    pub async fn detach_volume(&self, id: &str) -> Result<VolumeRecord, StoreError> {
        self.update_volume(id, |v| v.attached_machine_id = None)
            .await
    }

    /// Deletes a volume record; fails while a machine has it attached.
    pub async fn delete_volume(&self, id: &str) -> Result<VolumeRecord, StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            let v = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
                    [&id],
                    from_row,
                )
                .optional()?
                .ok_or_else(|| StoreError::VolumeNotFound(id.clone()))?;
            if let Some(m) = &v.attached_machine_id {
                return Err(StoreError::VolumeAttached {
                    volume: id,
                    machine: m.clone(),
                });
            }
            tx.execute("DELETE FROM volumes WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(v)
        })
        .await
    }
}
