//! The agent's SQLite store: durability across reopen, atomic transitions
//! with their events, lease expiry, durable operations, secrets, tokens,
//! volumes and IP allocations.

use hangar_agent::store::*;
use serde_json::json;
use std::sync::Arc;

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hangar.db");
    (dir, path)
}

async fn app(store: &Store, name: &str) -> AppRecord {
    store
        .create_app(NewApp {
            name: name.into(),
            org_slug: "personal".into(),
            network: "default".into(),
        })
        .await
        .unwrap()
}

fn new_machine(app: &str, config: serde_json::Value) -> NewMachine {
    NewMachine {
        app: app.into(),
        name: None,
        region: "local".into(),
        config,
        source: "user".into(),
        lease_owner: "tester".into(),
        ..Default::default()
    }
}

fn to(machine_id: &str, state: MachineState, kind: &str) -> Transition {
    Transition {
        machine_id: machine_id.into(),
        to: state,
        event: NewEvent::agent(kind),
    }
}

#[tokio::test]
async fn everything_survives_reopen() {
    let (_dir, path) = temp_db();
    let config = json!({"image": "busybox", "guest": {"cpus": 1, "memory_mb": 256}, "env": null});
    let (mid, op, vol, token) = {
        let store = Store::open(&path).unwrap();
        app(&store, "alpha").await;
        let (m, op, _) = store
            .create_machine(new_machine("alpha", config.clone()))
            .await
            .unwrap();
        store
            .transition(to(&m.id, MachineState::Starting, "start"))
            .await
            .unwrap();
        store
            .transition(to(&m.id, MachineState::Started, "start"))
            .await
            .unwrap();
        store
            .update_metadata(&m.id, vec![("role".into(), Some("web".into()))], None)
            .await
            .unwrap();
        store
            .set_secrets(
                "alpha",
                vec![("DB_PASSWORD".into(), Some("hunter2".into()))],
            )
            .await
            .unwrap();
        let vol = store
            .create_volume(NewVolume {
                name: "data".into(),
                app: "alpha".into(),
                region: "local".into(),
                size_gb: 1,
                encrypted: false,
                fstype: "ext4".into(),
                auto_backup_enabled: false,
                snapshot_retention: 5,
                host_dir: "/var/lib/hangar/volumes".into(),
            })
            .await
            .unwrap();
        let token = store.create_token("admin", true, None).await.unwrap();
        (m.id, op, vol, token)
    };
    let store = Store::open(&path).unwrap();
    let m = store.machine(&mid).await.unwrap();
    assert_eq!(m.state, MachineState::Started);
    assert_eq!(m.config, config, "config comes back exactly as sent");
    assert_eq!(
        serde_json::to_string(&m.config).unwrap(),
        config.to_string()
    );
    assert_eq!(m.metadata.get("role").map(String::as_str), Some("web"));
    let events = store.events(&mid, 10).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.status.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("start", "started"),
            ("start", "starting"),
            ("launch", "created")
        ]
    );
    assert!(events[0].seq > events[1].seq && events[1].seq > events[2].seq);
    assert_eq!(store.unfinished_operations().await.unwrap()[0].id, op);
    assert_eq!(store.volume(&vol.id).await.unwrap(), vol);
    assert_eq!(
        store.secret_values("alpha").await.unwrap()["DB_PASSWORD"],
        "hunter2"
    );
    assert_eq!(
        store.authenticate(&token.token).await.unwrap().unwrap().id,
        token.record.id
    );
    assert_eq!(store.app("alpha").await.unwrap().machine_count, 1);
}

#[tokio::test]
async fn invalid_transition_changes_nothing_and_appends_no_event() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "beta").await;
    let (m, _, _) = store
        .create_machine(new_machine("beta", json!({"image": "x"})))
        .await
        .unwrap();
    let err = store
        .transition(to(&m.id, MachineState::Stopped, "exit"))
        .await;
    assert!(
        err.is_ok(),
        "created -> stopped is allowed (failed to launch)"
    );
    let err = store
        .transition(to(&m.id, MachineState::Started, "start"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidTransition {
                from: MachineState::Stopped,
                to: MachineState::Started,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.machine(&m.id).await.unwrap().state,
        MachineState::Stopped
    );
    assert_eq!(store.events(&m.id, 100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn transition_notifies_subscribers_with_the_new_event_id() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "gamma").await;
    let (m, _, _) = store
        .create_machine(new_machine("gamma", json!({"image": "x"})))
        .await
        .unwrap();
    let mut rx = store.subscribe();
    let before = *rx.borrow_and_update();
    store
        .transition(to(&m.id, MachineState::Starting, "start"))
        .await
        .unwrap();
    rx.changed().await.unwrap();
    let after = *rx.borrow();
    assert!(after > before);
    assert_eq!(store.events(&m.id, 1).await.unwrap()[0].seq, after);
}

#[tokio::test]
async fn exit_events_record_code_signal_and_oom_and_restarts_count() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "delta").await;
    let (m, _, _) = store
        .create_machine(new_machine("delta", json!({"image": "x"})))
        .await
        .unwrap();
    store
        .transition(to(&m.id, MachineState::Starting, "start"))
        .await
        .unwrap();
    store
        .transition(to(&m.id, MachineState::Started, "start"))
        .await
        .unwrap();
    let info = ExitInfo {
        exit_code: Some(137),
        signal: Some(9),
        oom_killed: true,
        ..Default::default()
    };
    store
        .transition(Transition {
            machine_id: m.id.clone(),
            to: MachineState::Stopped,
            event: NewEvent::exit(&info),
        })
        .await
        .unwrap();
    store
        .transition(to(&m.id, MachineState::Starting, "restart"))
        .await
        .unwrap();
    let m2 = store.machine(&m.id).await.unwrap();
    assert_eq!(m2.restart_count, 1);
    let ev = &store.events(&m.id, 2).await.unwrap()[1];
    assert_eq!(ev.kind, "exit");
    assert_eq!(ev.request["exit_event"]["exit_code"], 137);
    assert_eq!(ev.request["exit_event"]["oom_killed"], true);
}

#[tokio::test]
async fn leases_conflict_refresh_and_expire() {
    let (_dir, path) = temp_db();
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::open_with_clock(&path, Arc::new(clock.clone())).unwrap();
    app(&store, "eps").await;
    let (m, _, _) = store
        .create_machine(new_machine("eps", json!({"image": "x"})))
        .await
        .unwrap();
    let l = store
        .acquire_lease(&m.id, None, 30, "alice", "deploy")
        .await
        .unwrap();
    assert_eq!(l.expires_at, 1_700_000_030);
    let err = store
        .acquire_lease(&m.id, None, 30, "bob", "")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseHeld { ref owner, .. } if owner == "alice"),
        "{err}"
    );
    assert!(
        store
            .check_lease(&m.id, Some("wrong".into()))
            .await
            .is_err()
    );
    assert_eq!(
        store
            .check_lease(&m.id, Some(l.nonce.clone()))
            .await
            .unwrap(),
        LeaseCheck::Holder
    );
    clock.advance_ms(20_000);
    let refreshed = store
        .acquire_lease(&m.id, Some(l.nonce.clone()), 30, "alice", "deploy")
        .await
        .unwrap();
    assert_eq!(refreshed.nonce, l.nonce);
    assert_eq!(refreshed.expires_at, 1_700_000_050);
    clock.advance_ms(31_000);
    assert_eq!(
        store.lease(&m.id).await.unwrap(),
        None,
        "expired lease is gone"
    );
    assert_eq!(
        store.check_lease(&m.id, None).await.unwrap(),
        LeaseCheck::Free
    );
    let bob = store
        .acquire_lease(&m.id, None, 10, "bob", "")
        .await
        .unwrap();
    assert_ne!(bob.nonce, l.nonce);
    assert!(
        store.release_lease(&m.id, &l.nonce).await.is_err(),
        "old nonce cannot release bob's lease"
    );
    store.release_lease(&m.id, &bob.nonce).await.unwrap();
    assert_eq!(store.lease(&m.id).await.unwrap(), None);
}

#[tokio::test]
async fn unfinished_operations_are_listed_after_reopen() {
    let (_dir, path) = temp_db();
    let (a, b) = {
        let store = Store::open(&path).unwrap();
        let a = store
            .begin_operation(
                "stop",
                Some("0123456789abcd"),
                "signalled",
                json!({"signal": 15}),
            )
            .await
            .unwrap();
        let b = store
            .begin_operation("destroy", Some("0123456789abce"), "begun", json!({}))
            .await
            .unwrap();
        store
            .advance_operation(b, "cgroup_removed", json!({"left": ["veth"]}))
            .await
            .unwrap();
        let c = store
            .begin_operation("create", None, "begun", json!({}))
            .await
            .unwrap();
        store.finish_operation(c, "done").await.unwrap();
        (a, b)
    };
    let store = Store::open(&path).unwrap();
    let ops = store.unfinished_operations().await.unwrap();
    assert_eq!(ops.iter().map(|o| o.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(ops[1].phase, "cgroup_removed");
    assert_eq!(ops[1].payload, json!({"left": ["veth"]}));
    store.finish_operation(a, "rolled_back").await.unwrap();
    assert!(
        store.finish_operation(a, "done").await.is_err(),
        "an operation finishes once"
    );
    assert_eq!(
        store.operation(a).await.unwrap().outcome.as_deref(),
        Some("rolled_back")
    );
}

#[tokio::test]
async fn update_makes_a_new_version_and_replaces_the_old() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "zeta").await;
    let (m, _, _) = store
        .create_machine(new_machine("zeta", json!({"image": "a"})))
        .await
        .unwrap();
    let err = store
        .update_machine_config(
            &m.id,
            json!({"image": "b"}),
            None,
            Some("stale".into()),
            "user",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionMismatch { .. }));
    let (m2, _) = store
        .update_machine_config(
            &m.id,
            json!({"image": "b", "metadata": {"k": "v"}}),
            None,
            Some(m.version.clone()),
            "user",
        )
        .await
        .unwrap();
    assert_ne!(m2.version, m.version);
    assert_eq!(m2.config["image"], "b");
    assert_eq!(m2.metadata["k"], "v");
    let versions = store.versions(&m.id).await.unwrap();
    assert_eq!(versions.len(), 2);
    let old = versions.iter().find(|v| v.version == m.version).unwrap();
    assert!(old.replaced_at.is_some());
    assert_eq!(old.config, json!({"image": "a"}));
}

#[tokio::test]
async fn names_are_unique_among_live_machines_and_filters_apply() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "eta").await;
    let mut nm = new_machine("eta", json!({"image": "x", "metadata": {"tier": "web"}}));
    nm.name = Some("web-1".into());
    let (m, _, _) = store.create_machine(nm.clone()).await.unwrap();
    assert!(matches!(
        store.create_machine(nm.clone()).await,
        Err(StoreError::MachineNameTaken { .. })
    ));
    store
        .transition(to(&m.id, MachineState::Destroying, "destroy"))
        .await
        .unwrap();
    store
        .transition(to(&m.id, MachineState::Destroyed, "destroy"))
        .await
        .unwrap();
    let (m2, _, _) = store.create_machine(nm).await.unwrap();
    let live = store
        .list_machines(MachineFilter {
            app: Some("eta".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(live.iter().map(|m| &m.id).collect::<Vec<_>>(), vec![&m2.id]);
    let all = store
        .list_machines(MachineFilter {
            app: Some("eta".into()),
            include_deleted: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let f = MachineFilter {
        metadata: vec![("tier".into(), "db".into())],
        ..Default::default()
    };
    assert!(store.list_machines(f).await.unwrap().is_empty());
}

#[tokio::test]
async fn secrets_are_listed_without_values_and_tokens_revoke() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "theta").await;
    let v = store
        .set_secrets(
            "theta",
            vec![
                ("A".into(), Some("1".into())),
                ("B".into(), Some("2".into())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(v.version, 1);
    assert_eq!(
        v.secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["A", "B"]
    );
    assert_ne!(v.secrets[0].digest, v.secrets[1].digest);
    assert_eq!(store.delete_secret("theta", "A").await.unwrap(), 2);
    assert!(matches!(
        store.delete_secret("theta", "A").await,
        Err(StoreError::SecretNotFound { .. })
    ));
    let t = store.create_token("ci", false, None).await.unwrap();
    assert!(t.token.starts_with("hgr_") && t.token.len() == 68);
    store.revoke_token(&t.record.id).await.unwrap();
    assert_eq!(store.authenticate(&t.token).await.unwrap(), None);
    assert_eq!(store.authenticate("hgr_nope").await.unwrap(), None);
}

#[tokio::test]
async fn ip_allocation_hands_out_the_lowest_free_address() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let pool = IpPool {
        name: "v4".into(),
        first: "172.19.0.2".parse().unwrap(),
        last: "172.19.0.3".parse().unwrap(),
    };
    let a = store.allocate_ip(pool.clone(), "m1").await.unwrap();
    let b = store.allocate_ip(pool.clone(), "m2").await.unwrap();
    assert_eq!(a.ip.to_string(), "172.19.0.2");
    assert_eq!(b.ip.to_string(), "172.19.0.3");
    assert!(matches!(
        store.allocate_ip(pool.clone(), "m3").await,
        Err(StoreError::PoolExhausted(_))
    ));
    assert_eq!(store.release_ips("m1").await.unwrap(), 1);
    assert_eq!(
        store.allocate_ip(pool, "m3").await.unwrap().ip.to_string(),
        "172.19.0.2"
    );
    assert_eq!(store.ips_of("m3").await.unwrap().len(), 1);
}

#[tokio::test]
async fn volumes_attach_to_one_machine_at_a_time() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "iota").await;
    let v = store
        .create_volume(NewVolume {
            name: "data".into(),
            app: "iota".into(),
            region: "local".into(),
            size_gb: 1,
            encrypted: true,
            fstype: "ext4".into(),
            auto_backup_enabled: true,
            snapshot_retention: 5,
            host_dir: "/srv/vols/".into(),
        })
        .await
        .unwrap();
    assert!(v.id.starts_with("vol_"));
    assert_eq!(v.host_path, format!("/srv/vols/{}", v.id));
    store.attach_volume(&v.id, "m1").await.unwrap();
    assert!(matches!(
        store.attach_volume(&v.id, "m2").await,
        Err(StoreError::VolumeAttached { .. })
    ));
    assert!(store.delete_volume(&v.id).await.is_err());
    store.detach_volume(&v.id).await.unwrap();
    store.delete_volume(&v.id).await.unwrap();
    assert!(matches!(
        store.volume(&v.id).await,
        Err(StoreError::VolumeNotFound(_))
    ));
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let (dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    app(&store, "kappa").await;
    assert!(dir.path().join("hangar.db-wal").exists());
}

/// Runs only as the child of `sigkill_mid_write_keeps_states_and_events_consistent`:
/// cycles machines through their states until killed (at most 20 s).
#[tokio::test]
#[ignore = "child process of sigkill_mid_write_keeps_states_and_events_consistent"]
async fn crash_writer_child() {
    let Ok(path) = std::env::var("HANGAR_STORE_CRASH_DB") else {
        return;
    };
    let store = Store::open(&path).unwrap();
    app(&store, "crash").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (m, _, _) = store
            .create_machine(new_machine("crash", json!({"image": "x"})))
            .await
            .unwrap();
        ids.push(m.id);
    }
    std::fs::write(format!("{path}.ready"), b"1").unwrap();
    let cycle = [
        MachineState::Starting,
        MachineState::Started,
        MachineState::Stopping,
        MachineState::Stopped,
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut i = 0usize;
    while std::time::Instant::now() < deadline {
        let id = &ids[i % ids.len()];
        let next = cycle[(i / ids.len()) % cycle.len()];
        store.transition(to(id, next, "cycle")).await.unwrap();
        i += 1;
    }
}

#[tokio::test]
async fn sigkill_mid_write_keeps_states_and_events_consistent() {
    let (_dir, path) = temp_db();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer_child", "--exact", "--ignored", "--nocapture"])
        .env("HANGAR_STORE_CRASH_DB", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = format!("{}.ready", path.display());
    let start = std::time::Instant::now();
    while !std::path::Path::new(&ready).exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "writer never got ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    child.kill().unwrap(); // SIGKILL, mid-transaction most likely
    child.wait().unwrap();

    let store = Store::open(&path).unwrap();
    let machines = store
        .list_machines(MachineFilter {
            app: Some("crash".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(machines.len(), 4);
    let mut total = 0;
    for m in machines {
        let events = store.events(&m.id, 100_000).await.unwrap();
        total += events.len();
        assert_eq!(
            events[0].status,
            m.state.as_str(),
            "state and last event of {} agree",
            m.id
        );
        assert!(events.windows(2).all(|w| w[0].seq > w[1].seq));
    }
    assert!(
        total > 8,
        "the writer made progress before it was killed ({total} events)"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let (_dir, path) = temp_db();
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(version >= 2, "migrations ran up to {version}");
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn idempotent_app_create_returns_the_first_app() {
    let (_dir, path) = temp_db();
    let store = Store::open(&path).unwrap();
    let new = |name: &str| NewApp {
        name: name.into(),
        org_slug: "personal".into(),
        network: "default".into(),
    };
    let (a, created) = store
        .create_app_idempotent(new("lambda"), "key")
        .await
        .unwrap();
    assert!(created);
    let (b, created) = store
        .create_app_idempotent(new("lambda"), "key")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(a.id, b.id);
    let err = store
        .create_app_idempotent(new("mu"), "key")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IdempotencyConflict { .. }),
        "{err}"
    );
    assert!(matches!(
        store.create_app_idempotent(new("lambda"), "other").await,
        Err(StoreError::AppExists(_))
    ));
}
