//! Machines and their versions, and the one function through which every
//! state change goes ([`Store::transition`]).

use super::events::{self, NewEvent};
use super::leases::{self, LeaseRecord};
use super::operations::{self, OperationId};
use super::{MachineState, Store, StoreError, ids};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A machine as stored, with the config of its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRecord {
    pub id: String,
    pub app: String,
    pub name: String,
    pub region: String,
    pub state: MachineState,
    /// The current version's id (also reported as `instance_id`).
    pub version: String,
    pub instance_id: String,
    pub private_ip: Option<String>,
    /// The machine's IPv4 address on the host bridge, when it has one.
    pub private_ipv4: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub cordoned: bool,
    pub metadata: BTreeMap<String, String>,
    pub restart_count: i64,
    /// The config exactly as the client sent it for the current version.
    pub config: Value,
    pub image_ref: Option<Value>,
}

/// One version of a machine's config.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub version: String,
    pub machine_id: String,
    pub config: Value,
    pub image_ref: Option<Value>,
    pub created_at: i64,
    /// When a newer version replaced it.
    pub replaced_at: Option<i64>,
}

/// What creating a machine needs.
#[derive(Debug, Clone, Default)]
pub struct NewMachine {
    pub app: String,
    /// Generated when `None`.
    pub name: Option<String>,
    pub region: String,
    pub config: Value,
    pub image_ref: Option<Value>,
    pub private_ip: Option<String>,
    /// Acquire a lease for this many seconds, owned by `lease_owner`.
    pub lease_ttl: Option<i64>,
    pub lease_owner: String,
    /// Who asked (`user` for the API).
    pub source: String,
}

/// A change of state and the event that records it.
#[derive(Debug, Clone)]
pub struct Transition {
    pub machine_id: String,
    pub to: MachineState,
    pub event: NewEvent,
}

/// Which machines [`Store::list_machines`] returns.
#[derive(Debug, Clone, Default)]
pub struct MachineFilter {
    pub app: Option<String>,
    pub include_deleted: bool,
    pub region: Option<String>,
    pub states: Vec<MachineState>,
    /// Every pair must match the machine's metadata.
    pub metadata: Vec<(String, String)>,
}

const SELECT: &str = "SELECT m.id, m.app, m.name, m.region, m.state, m.version, m.instance_id,
    m.private_ip, m.created_at, m.updated_at, m.cordoned, m.metadata, m.restart_count,
    v.config, v.image_ref,
    (SELECT a.ip FROM ip_allocations a WHERE a.owner = m.id AND a.ip NOT LIKE '%:%' LIMIT 1)
    FROM machines m JOIN machine_versions v ON v.version = m.version";

fn parse_json(s: &str, what: &'static str) -> rusqlite::Result<Value> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(StoreError::Json { what, source: e }),
        )
    })
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<MachineRecord> {
    let state: String = r.get(4)?;
    let metadata: String = r.get(11)?;
    let config: String = r.get(13)?;
    let image_ref: Option<String> = r.get(14)?;
    Ok(MachineRecord {
        id: r.get(0)?,
        app: r.get(1)?,
        name: r.get(2)?,
        region: r.get(3)?,
        state: state.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        version: r.get(5)?,
        instance_id: r.get(6)?,
        private_ip: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        cordoned: r.get(10)?,
        metadata: serde_json::from_value(parse_json(&metadata, "machines.metadata")?)
            .unwrap_or_default(),
        restart_count: r.get(12)?,
        config: parse_json(&config, "machine_versions.config")?,
        image_ref: image_ref
            .map(|s| parse_json(&s, "machine_versions.image_ref"))
            .transpose()?,
        private_ipv4: r.get(15)?,
    })
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<VersionRecord> {
    let config: String = r.get(2)?;
    let image_ref: Option<String> = r.get(3)?;
    Ok(VersionRecord {
        version: r.get(0)?,
        machine_id: r.get(1)?,
        config: parse_json(&config, "machine_versions.config")?,
        image_ref: image_ref
            .map(|s| parse_json(&s, "machine_versions.image_ref"))
            .transpose()?,
        created_at: r.get(4)?,
        replaced_at: r.get(5)?,
    })
}

pub(crate) fn get_in(tx: &Transaction<'_>, id: &str) -> Result<MachineRecord, StoreError> {
    tx.query_row(&format!("{SELECT} WHERE m.id = ?1"), [id], from_row)
        .optional()?
        .ok_or_else(|| StoreError::MachineNotFound(id.to_owned()))
}

/// The `metadata` object of a config, as string pairs.
fn config_metadata(config: &Value) -> BTreeMap<String, String> {
    config
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}

impl Store {
    /// Persists a new machine in state `created` with its first version, its
    /// `launch` event, an unfinished `create` operation for the agent to
    /// carry out, and (if asked) a lease — all in one transaction.
    pub async fn create_machine(
        &self,
        new: NewMachine,
    ) -> Result<(MachineRecord, OperationId, Option<LeaseRecord>), StoreError> {
        let now = self.now_ms();
        let store = self.clone();
        let (rec, op, lease, seq) = self
            .call(move |c| {
                let tx = c.transaction()?;
                let app_exists = tx
                    .query_row("SELECT 1 FROM apps WHERE name = ?1", [&new.app], |_| Ok(()))
                    .optional()?
                    .is_some();
                if !app_exists {
                    return Err(StoreError::AppNotFound(new.app));
                }
                let name = match new.name {
                    Some(n) => {
                        let taken = tx
                            .query_row(
                                "SELECT 1 FROM machines WHERE app = ?1 AND name = ?2 AND state != 'destroyed'",
                                params![new.app, n],
                                |_| Ok(()),
                            )
                            .optional()?
                            .is_some();
                        if taken {
                            return Err(StoreError::MachineNameTaken { app: new.app, name: n });
                        }
                        n
                    }
                    None => ids::machine_name(),
                };
                let id = ids::machine_id();
                let version = ids::ulid_at(now);
                let metadata = config_metadata(&new.config);
                tx.execute(
                    "INSERT INTO machines (id, app, name, region, state, version, instance_id, private_ip,
                        created_at, updated_at, metadata)
                     VALUES (?1, ?2, ?3, ?4, 'created', ?5, ?5, ?6, ?7, ?7, ?8)",
                    params![id, new.app, name, new.region, version, new.private_ip, now, json_text(&metadata)],
                )?;
                tx.execute(
                    "INSERT INTO machine_versions (version, machine_id, config, image_ref, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![version, id, new.config.to_string(), new.image_ref.as_ref().map(Value::to_string), now],
                )?;
                let ev = NewEvent {
                    kind: "launch".into(),
                    source: new.source.clone(),
                    request: json!({}),
                };
                let seq = events::append(&tx, &id, &version, "created", &ev, now)?;
                let op = operations::begin_in(&tx, "create", Some(&id), "persisted", &json!({"version": version}), now)?;
                let lease = match new.lease_ttl {
                    Some(ttl) => Some(leases::acquire_in(&tx, &id, None, ttl, &new.lease_owner, "", now)?),
                    None => None,
                };
                let rec = get_in(&tx, &id)?;
                tx.commit()?;
                Ok((rec, op, lease, seq))
            })
            .await?;
        store.notify(seq);
        Ok((rec, op, lease))
    }

    /// A machine by id, whatever its app.
    pub async fn machine(&self, id: &str) -> Result<MachineRecord, StoreError> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(&format!("{SELECT} WHERE m.id = ?1"), [&id], from_row)
                .optional()?
                .ok_or(StoreError::MachineNotFound(id))
        })
        .await
    }

    /// A machine of `app` (machines of other apps are not found).
    pub async fn app_machine(&self, app: &str, id: &str) -> Result<MachineRecord, StoreError> {
        let m = self.machine(id).await?;
        if m.app != app {
            return Err(StoreError::MachineNotFound(id.to_owned()));
        }
        Ok(m)
    }

    /// Machines matching `filter`, oldest first.
    pub async fn list_machines(
        &self,
        filter: MachineFilter,
    ) -> Result<Vec<MachineRecord>, StoreError> {
        self.call(move |c| {
            let mut st = c.prepare(&format!(
                "{SELECT} WHERE (?1 IS NULL OR m.app = ?1) AND (?2 IS NULL OR m.region = ?2)
                 AND (?3 OR m.state != 'destroyed') ORDER BY m.created_at, m.id"
            ))?;
            let rows = st.query_map(
                params![filter.app, filter.region, filter.include_deleted],
                from_row,
            )?;
            let mut out = Vec::new();
            for r in rows {
                let m = r?;
                if !filter.states.is_empty() && !filter.states.contains(&m.state) {
                    continue;
                }
                if filter
                    .metadata
                    .iter()
                    .all(|(k, v)| m.metadata.get(k) == Some(v))
                {
                    out.push(m);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Every version of a machine, newest first.
    pub async fn versions(&self, machine_id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let id = machine_id.to_owned();
        self.call(move |c| {
            let mut st = c.prepare(
                "SELECT version, machine_id, config, image_ref, created_at, replaced_at
                 FROM machine_versions WHERE machine_id = ?1 ORDER BY created_at DESC, version DESC",
            )?;
            let rows = st.query_map([&id], version_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Replaces a machine's config with a new version (the old one becomes
    /// `replaced`), appends an `update` event and begins an `update`
    /// operation, in one transaction. With `expected_version`, fails with
    /// [`StoreError::VersionMismatch`] unless it is still the current one.
    pub async fn update_machine_config(
        &self,
        machine_id: &str,
        config: Value,
        image_ref: Option<Value>,
        expected_version: Option<String>,
        source: &str,
    ) -> Result<(MachineRecord, OperationId), StoreError> {
        let id = machine_id.to_owned();
        let source = source.to_owned();
        let now = self.now_ms();
        let (rec, op, seq) = self
            .call(move |c| {
                let tx = c.transaction()?;
                let cur = get_in(&tx, &id)?;
                if let Some(exp) = expected_version
                    && exp != cur.version
                {
                    return Err(StoreError::VersionMismatch { machine: id, current: cur.version, expected: exp });
                }
                if cur.state == MachineState::Destroyed || cur.state == MachineState::Destroying {
                    return Err(StoreError::InvalidTransition { machine: id, from: cur.state, to: MachineState::Replacing });
                }
                let version = ids::ulid_at(now.max(cur.created_at));
                tx.execute("UPDATE machine_versions SET replaced_at = ?2 WHERE version = ?1", params![cur.version, now])?;
                tx.execute(
                    "INSERT INTO machine_versions (version, machine_id, config, image_ref, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![version, id, config.to_string(), image_ref.as_ref().map(Value::to_string), now],
                )?;
                tx.execute(
                    "UPDATE machines SET version = ?2, instance_id = ?2, metadata = ?3, updated_at = ?4 WHERE id = ?1",
                    params![id, version, json_text(&config_metadata(&config)), now],
                )?;
                let ev = NewEvent { kind: "update".into(), source, request: json!({"previous_version": cur.version}) };
                let seq = events::append(&tx, &id, &version, cur.state.as_str(), &ev, now)?;
                let op = operations::begin_in(
                    &tx,
                    "update",
                    Some(&id),
                    "persisted",
                    &json!({"previous_version": cur.version, "version": version}),
                    now,
                )?;
                let rec = get_in(&tx, &id)?;
                tx.commit()?;
                Ok((rec, op, seq))
            })
            .await?;
        self.notify(seq);
        Ok((rec, op))
    }

    /// Moves a machine to `t.to` and appends `t.event`, in one transaction,
    /// after checking the move with [`MachineState::can_become`]. An event of
    /// kind `restart` also counts one more restart.
    pub async fn transition(&self, t: Transition) -> Result<MachineRecord, StoreError> {
        let now = self.now_ms();
        let (rec, seq) = self
            .call(move |c| {
                let tx = c.transaction()?;
                let cur = get_in(&tx, &t.machine_id)?;
                if !cur.state.can_become(t.to) {
                    return Err(StoreError::InvalidTransition { machine: t.machine_id, from: cur.state, to: t.to });
                }
                let restarts = i64::from(t.event.kind == "restart");
                tx.execute(
                    "UPDATE machines SET state = ?2, updated_at = ?3, restart_count = restart_count + ?4 WHERE id = ?1",
                    params![t.machine_id, t.to.as_str(), now, restarts],
                )?;
                let seq = events::append(&tx, &t.machine_id, &cur.version, t.to.as_str(), &t.event, now)?;
                if t.to == MachineState::Destroyed {
                    tx.execute("DELETE FROM leases WHERE machine_id = ?1", [&t.machine_id])?;
                }
                let rec = get_in(&tx, &t.machine_id)?;
                tx.commit()?;
                Ok((rec, seq))
            })
            .await?;
        self.notify(seq);
        Ok(rec)
    }

    /// Appends an event to a machine without changing its state (e.g. image
    /// pull progress); its status is the machine's current state.
    pub async fn record_event(&self, machine_id: &str, event: NewEvent) -> Result<(), StoreError> {
        let now = self.now_ms();
        let id = machine_id.to_owned();
        let seq = self
            .call(move |c| {
                let tx = c.transaction()?;
                let cur = get_in(&tx, &id)?;
                let seq = events::append(&tx, &id, &cur.version, cur.state.as_str(), &event, now)?;
                tx.commit()?;
                Ok(seq)
            })
            .await?;
        self.notify(seq);
        Ok(())
    }

    /// Sets or clears the `cordoned` flag (no new version).
    pub async fn set_cordoned(
        &self,
        machine_id: &str,
        cordoned: bool,
    ) -> Result<MachineRecord, StoreError> {
        self.patch_machine(machine_id, move |tx, id, now| {
            tx.execute(
                "UPDATE machines SET cordoned = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, cordoned, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Records the machine's private address.
    pub async fn set_private_ip(
        &self,
        machine_id: &str,
        ip: Option<String>,
    ) -> Result<MachineRecord, StoreError> {
        self.patch_machine(machine_id, move |tx, id, now| {
            tx.execute(
                "UPDATE machines SET private_ip = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, ip, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) metadata keys, without a new version.
    /// With `expected_version`, fails unless it is still the current one.
    pub async fn update_metadata(
        &self,
        machine_id: &str,
        changes: Vec<(String, Option<String>)>,
        expected_version: Option<String>,
    ) -> Result<MachineRecord, StoreError> {
        self.patch_machine(machine_id, move |tx, id, now| {
            let cur = get_in(tx, id)?;
            if let Some(exp) = expected_version
                && exp != cur.version
            {
                return Err(StoreError::VersionMismatch {
                    machine: id.to_owned(),
                    current: cur.version,
                    expected: exp,
                });
            }
            let mut md = cur.metadata;
            for (k, v) in changes {
                match v {
                    Some(v) => md.insert(k, v),
                    None => md.remove(&k),
                };
            }
            tx.execute(
                "UPDATE machines SET metadata = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, json_text(&md), now],
            )?;
            Ok(())
        })
        .await
    }

    async fn patch_machine<F>(&self, machine_id: &str, f: F) -> Result<MachineRecord, StoreError>
    where
        F: FnOnce(&Transaction<'_>, &str, i64) -> Result<(), StoreError> + Send + 'static,
    {
        let id = machine_id.to_owned();
        let now = self.now_ms();
        self.call(move |c| {
            let tx = c.transaction()?;
            get_in(&tx, &id)?;
            f(&tx, &id, now)?;
            let rec = get_in(&tx, &id)?;
            tx.commit()?;
            Ok(rec)
        })
        .await
    }
}
