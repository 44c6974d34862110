//! The API's happy paths over real HTTP against the real store: apps,
//! machines (config echoed as sent), secrets, leases, metadata, wait,
//! events, versions, tokens, volumes.

mod common;

use common::server;
use hangar_agent::store::{MachineState, NewEvent, Transition};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

const APP: &str = "/v1/apps/shop";

#[tokio::test]
async fn apps_create_list_get_delete() {
    let s = server().await;
    let r = s
        .post(
            "/v1/apps",
            json!({"app_name": "one", "org_slug": "personal"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["name"], "one");
    let r = s
        .post(
            "/v1/apps?wait=true",
            json!({"name": "two", "org_slug": "team", "unknown_key": [1]}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["organization"]["slug"], "team");
    let r = s.get("/v1/apps").await;
    assert_eq!(r.body["total_apps"], 2);
    let r = s.get("/v1/apps?org_slug=team").await;
    assert_eq!(r.body["apps"].as_array().unwrap().len(), 1);
    let r = s.get("/v1/apps/one").await;
    assert_eq!((r.status, r.body["machine_count"].clone()), (200, json!(0)));
    s.create_machine("one", json!({"config": {"image": "busybox"}}))
        .await;
    assert_eq!(s.get("/v1/apps/one").await.body["machine_count"], 1);
    let r = s.delete("/v1/apps/one").await;
    assert_eq!(r.status, 202);
    assert!(
        s.backend
            .calls()
            .iter()
            .any(|c| c.starts_with("destroy") && c.ends_with("force=true"))
    );
    assert_eq!(s.get("/v1/apps/one").await.status, 404);
}

#[tokio::test]
async fn fly_v1_scheme_is_accepted() {
    let s = server().await;
    let r = s
        .send(
            s.http
                .get(format!("{}/v1/apps", s.url))
                .header("authorization", format!("FlyV1 {}", s.token)),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn machine_config_is_echoed_exactly_as_sent() {
    let s = server().await;
    s.create_app("shop").await;
    let config = json!({
        "image": "registry.local:5000/team/web:v1",
        "env": null,
        "guest": {"cpus": 1, "memory_mb": 256, "cpu_kind": "shared"},
        "future_field": {"kept": true},
        "restart": {"policy": "on-failure", "max_retries": 3},
        "stop_config": {"timeout": "10s", "signal": "SIGTERM"}
    });
    let m = s
        .create_machine(
            "shop",
            json!({"config": config, "region": "ord", "name": "web-1", "extra": 1}),
        )
        .await;
    assert_eq!(m["config"], config);
    assert_eq!(
        serde_json::to_string(&m["config"]).unwrap(),
        config.to_string(),
        "same keys, same order"
    );
    assert_eq!(m["state"], "started");
    assert_eq!(m["region"], "ord");
    assert_eq!(m["name"], "web-1");
    assert_eq!(m["image_ref"]["registry"], "registry.local:5000");
    assert_eq!(m["image_ref"]["tag"], "v1");
    assert_eq!(m["instance_id"], m["version"]);
    let id = m["id"].as_str().unwrap();
    assert_eq!(id.len(), 14);
    let got = s.get(&format!("{APP}/machines/{id}")).await;
    assert_eq!(got.body["config"], config);
    let list = s.get(&format!("{APP}/machines")).await;
    assert_eq!(list.body[0]["config"], config);
}

#[tokio::test]
async fn bodyless_posts_work_with_and_without_content_type() {
    let s = server().await;
    s.create_app("shop").await;
    let m = s
        .create_machine("shop", json!({"config": {"image": "x"}}))
        .await;
    let id = m["id"].as_str().unwrap();
    let r = s
        .send(s.req(Method::POST, &format!("{APP}/machines/{id}/stop")))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .send(
            s.req(Method::POST, &format!("{APP}/machines/{id}/start"))
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["previous_state"], "stopped");
    let r = s
        .send(s.req(Method::POST, &format!("{APP}/machines/{id}/cordon")))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.get(&format!("{APP}/machines/{id}")).await.body["cordoned"],
        true
    );
    s.send(s.req(Method::POST, &format!("{APP}/machines/{id}/uncordon")))
        .await;
    assert_eq!(
        s.get(&format!("{APP}/machines/{id}")).await.body["cordoned"],
        false
    );
}

#[tokio::test]
async fn lifecycle_events_versions_and_destroyed_machines() {
    let s = server().await;
    s.create_app("shop").await;
    let m = s
        .create_machine("shop", json!({"config": {"image": "a"}}))
        .await;
    let id = m["id"].as_str().unwrap().to_owned();
    let v1 = m["version"].as_str().unwrap().to_owned();
    let r = s
        .post(
            &format!("{APP}/machines/{id}"),
            json!({"config": {"image": "b"}, "current_version": v1}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v2 = r.body["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    assert_eq!(r.body["config"], json!({"image": "b"}));
    let versions = s.get(&format!("{APP}/machines/{id}/versions")).await.body;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[1]["user_config"], json!({"image": "a"}));
    assert_eq!(versions[1]["replaced"], true);
    let old = s
        .get(&format!("{APP}/machines/{id}?version={v1}"))
        .await
        .body;
    assert_eq!(old["config"], json!({"image": "a"}));

    let r = s
        .post(
            &format!("{APP}/machines/{id}/signal"),
            json!({"signal": "SIGUSR1"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .post(
            &format!("{APP}/machines/{id}/signal"),
            json!({"signal": 10}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .post(
            &format!("{APP}/machines/{id}/stop"),
            json!({"signal": "SIGTERM", "timeout": "3s"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let calls = s.backend.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with(&format!("signal {id} 10")))
            .count(),
        2
    );
    assert!(
        calls
            .iter()
            .any(|c| c == &format!("stop {id} signal=Some(15) timeout=Some(3s)")),
        "{calls:?}"
    );

    let events = s.get(&format!("{APP}/machines/{id}/events")).await.body;
    let kinds: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(kinds.first().unwrap(), &("exit".into(), "stopped".into()));
    assert_eq!(kinds.last().unwrap(), &("launch".into(), "created".into()));
    assert!(kinds.contains(&("update".into(), "started".into())));

    assert_eq!(s.delete(&format!("{APP}/machines/{id}")).await.status, 200);
    let r = s
        .get(&format!(
            "{APP}/machines/{id}/wait?state=destroyed&timeout=1"
        ))
        .await;
    assert_eq!(
        (r.status, r.body["state"].clone()),
        (200, json!("destroyed"))
    );
    assert!(
        s.get(&format!("{APP}/machines"))
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    let all = s
        .get(&format!("{APP}/machines?include_deleted=true"))
        .await
        .body;
    assert_eq!(all[0]["state"], "destroyed");
}

#[tokio::test]
async fn wait_wakes_on_the_transition_and_honours_versions_and_event_ids() {
    let s = server().await;
    s.create_app("shop").await;
    s.backend.hold.store(true, Ordering::SeqCst);
    let m = s
        .create_machine(
            "shop",
            json!({"config": {"image": "a"}, "skip_launch": false}),
        )
        .await;
    assert_eq!(m["state"], "created");
    let id = m["id"].as_str().unwrap().to_owned();
    let first_event = m["events"][0]["id"].as_str().unwrap().to_owned();
    let version = m["version"].as_str().unwrap().to_owned();

    let waiter = {
        let url = format!(
            "{}{APP}/machines/{id}/wait?state=started&state=stopped&timeout=10&version={version}",
            s.url
        );
        let req = s.http.get(url).bearer_auth(&s.token);
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "wait must block until the state is reached"
    );
    for to in [MachineState::Starting, MachineState::Started] {
        s.store
            .transition(Transition {
                machine_id: id.clone(),
                to,
                event: NewEvent::agent("start"),
            })
            .await
            .unwrap();
    }
    let r = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["state"], "started");
    assert_eq!(body["version"], version.as_str());

    // Already started: answers at once; `settled` matches it too.
    let r = s
        .get(&format!("{APP}/machines/{id}/wait?state=settled&timeout=1"))
        .await;
    assert_eq!(r.body["state"], "started");
    // from_event_id: the first event after launch that reached a wanted state.
    let r = s
        .get(&format!(
            "{APP}/machines/{id}/wait?state=starting&from_event_id={first_event}&timeout=1"
        ))
        .await;
    assert_eq!(
        (r.status, r.body["state"].clone()),
        (200, json!("starting"))
    );
    let last = r.body["event_id"].as_str().unwrap().to_owned();
    let r = s
        .get(&format!(
            "{APP}/machines/{id}/wait?state=starting&from_event_id={last}&timeout=1"
        ))
        .await;
    assert_eq!(r.status, 408, "no starting event after the last one");
}

#[tokio::test]
async fn leases_acquire_refresh_use_and_release() {
    let s = server().await;
    s.create_app("shop").await;
    let m = s
        .create_machine("shop", json!({"config": {"image": "a"}, "lease_ttl": 120}))
        .await;
    let id = m["id"].as_str().unwrap().to_owned();
    let nonce = m["nonce"]
        .as_str()
        .expect("create with lease_ttl returns the nonce")
        .to_owned();
    let lease = s.get(&format!("{APP}/machines/{id}/lease")).await;
    assert_eq!(lease.body["nonce"], nonce.as_str());
    assert_eq!(lease.body["owner"], "admin");
    let with_nonce =
        |rb: reqwest::RequestBuilder| rb.header("fly-machine-lease-nonce", nonce.clone());
    let r = s
        .send(
            with_nonce(s.req(Method::POST, &format!("{APP}/machines/{id}/lease")))
                .json(&json!({"ttl": 300})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["nonce"], nonce.as_str(), "refresh keeps the nonce");
    assert!(r.body["expires_at"].as_i64().unwrap() > lease.body["expires_at"].as_i64().unwrap());
    let r = s
        .send(with_nonce(
            s.req(Method::POST, &format!("{APP}/machines/{id}/stop")),
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .send(with_nonce(
            s.req(Method::DELETE, &format!("{APP}/machines/{id}/lease")),
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.get(&format!("{APP}/machines/{id}/lease")).await.status,
        404
    );
    let r = s
        .post(&format!("{APP}/machines/{id}/start"), json!({}))
        .await;
    assert_eq!(r.status, 200, "free again without a nonce");
}

#[tokio::test]
async fn metadata_set_get_patch_delete_without_new_version() {
    let s = server().await;
    s.create_app("shop").await;
    let m = s
        .create_machine(
            "shop",
            json!({"config": {"image": "a", "metadata": {"tier": "web"}}}),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_owned();
    let base = format!("{APP}/machines/{id}/metadata");
    assert_eq!(s.get(&base).await.body, json!({"tier": "web"}));
    assert_eq!(
        s.post(&format!("{base}/owner"), json!({"value": "ops"}))
            .await
            .status,
        204
    );
    assert_eq!(
        s.get(&format!("{base}/owner")).await.body,
        json!({"value": "ops"})
    );
    let r = s
        .send(s.req(Method::PATCH, &base).json(
            &json!({"metadata": {"tier": null, "zone": "a"}, "machine_version": m["version"]}),
        ))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(
        s.get(&base).await.body,
        json!({"owner": "ops", "zone": "a"})
    );
    assert_eq!(s.delete(&format!("{base}/owner")).await.status, 204);
    let got = s.get(&format!("{APP}/machines/{id}")).await.body;
    assert_eq!(
        got["version"], m["version"],
        "metadata does not make a version"
    );
    assert_eq!(got["config"]["metadata"], json!({"zone": "a"}));
    let filtered = s.get(&format!("{APP}/machines?metadata.zone=a")).await.body;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let none = s.get(&format!("{APP}/machines?metadata.zone=b")).await.body;
    assert!(none.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn secrets_are_never_returned() {
    let s = server().await;
    s.create_app("shop").await;
    let r = s
        .post(
            &format!("{APP}/secrets/DATABASE_URL"),
            json!({"value": "postgres://secret@db"}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["name"], "DATABASE_URL");
    let r = s
        .post(
            &format!("{APP}/secrets"),
            json!({"values": {"API_KEY": "k-123", "OLD": null}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let list = s.get(&format!("{APP}/secrets?show_secrets=true")).await;
    let text = list.body.to_string();
    assert!(
        !text.contains("postgres://secret@db") && !text.contains("k-123"),
        "{text}"
    );
    let names: Vec<&str> = list.body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["API_KEY", "DATABASE_URL"]);
    assert_eq!(
        s.delete(&format!("{APP}/secrets/API_KEY")).await.status,
        200
    );
    assert_eq!(
        s.get(&format!("{APP}/secrets")).await.body["secrets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.store.secret_values("shop").await.unwrap()["DATABASE_URL"],
        "postgres://secret@db"
    );
}

#[tokio::test]
async fn exec_ps_restart_go_to_the_backend() {
    let s = server().await;
    s.create_app("shop").await;
    let m = s
        .create_machine("shop", json!({"config": {"image": "a"}}))
        .await;
    let id = m["id"].as_str().unwrap().to_owned();
    let r = s
        .post(
            &format!("{APP}/machines/{id}/exec"),
            json!({"cmd": "echo hi"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["stdout"].clone()),
        (200, json!("echo hi"))
    );
    let r = s.get(&format!("{APP}/machines/{id}/ps")).await;
    assert_eq!(r.body[0]["command"], "pilot");
    let r = s
        .post(
            &format!("{APP}/machines/{id}/restart?signal=SIGHUP&timeout=5"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        s.backend
            .calls()
            .contains(&format!("restart {id} signal=Some(1)"))
    );
    assert_eq!(s.store.machine(&id).await.unwrap().restart_count, 1);
}

#[tokio::test]
async fn volumes_create_list_extend_delete() {
    let s = server().await;
    s.create_app("shop").await;
    let r = s
        .post(
            &format!("{APP}/volumes"),
            json!({"name": "data", "size_gb": 1, "region": "local"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "created");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("vol_"));
    assert_eq!(
        s.get(&format!("{APP}/volumes"))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s
        .send(
            s.req(Method::PUT, &format!("{APP}/volumes/{id}/extend"))
                .json(&json!({"size_gb": 2})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["volume"]["size_gb"].clone()),
        (200, json!(2))
    );
    assert_eq!(
        s.get(&format!("{APP}/volumes/{id}/snapshots")).await.body,
        json!([])
    );
    assert_eq!(s.delete(&format!("{APP}/volumes/{id}")).await.status, 200);
    assert_eq!(s.get(&format!("{APP}/volumes/{id}")).await.status, 404);
}

#[tokio::test]
async fn first_start_writes_an_admin_token_file_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = hangar_agent::store::Store::open(dir.path().join("db")).unwrap();
    let out = hangar_api::bootstrap_admin_token(&store, dir.path(), None)
        .await
        .unwrap();
    let path = dir.path().join("admin-token");
    assert_eq!(out, hangar_api::AdminToken::Written(path.clone()));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(
        store
            .authenticate(token.trim())
            .await
            .unwrap()
            .unwrap()
            .admin
    );
    let again = hangar_api::bootstrap_admin_token(&store, dir.path(), Some("ignored".into()))
        .await
        .unwrap();
    assert_eq!(again, hangar_api::AdminToken::Existing);
    assert!(store.authenticate("ignored").await.unwrap().is_none());
}

#[tokio::test]
async fn explicit_nulls_are_absent_values() {
    let s = server().await;
    s.create_app("shop").await;
    let body = json!({"config": {"image": "a"}, "name": null, "region": null, "lease_ttl": null, "skip_launch": null});
    let m = s.create_machine("shop", body).await;
    assert_eq!(m["region"], "local");
    assert!(m.get("nonce").is_none());
    assert_eq!(m["state"], "started");
    let r = s
        .post(
            "/v1/apps",
            json!({"app_name": "nulls", "org_slug": null, "network": null}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["organization"]["slug"].clone()),
        (201, json!("personal"))
    );
}

#[tokio::test]
async fn org_machines_span_the_org_apps() {
    let s = server().await;
    s.create_app("shop").await;
    let r = s
        .post(
            "/v1/apps",
            json!({"app_name": "other", "org_slug": "elsewhere"}),
        )
        .await;
    assert_eq!(r.status, 201);
    s.create_machine("shop", json!({"config": {"image": "a"}}))
        .await;
    s.create_machine("other", json!({"config": {"image": "a"}}))
        .await;
    let r = s.get("/v1/orgs/personal/machines").await;
    let ms = r.body["machines"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["app_name"], "shop");
    let r = s.get("/v1/orgs/personal/machines?state=stopped").await;
    assert!(r.body["machines"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn app_create_retries_with_an_idempotency_key() {
    let s = server().await;
    let body = json!({"app_name": "retry", "idempotency_key": "k-1"});
    let first = s.post("/v1/apps", body.clone()).await;
    assert_eq!(first.status, 201);
    let again = s.post("/v1/apps", body).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    let other = s
        .post(
            "/v1/apps",
            json!({"app_name": "different", "idempotency_key": "k-1"}),
        )
        .await;
    other.expect_error(422, &["idempotency_key", "already created app \"retry\""]);
    let plain = s.post("/v1/apps", json!({"app_name": "retry"})).await;
    plain.expect_error(409, &["already exists"]);
    assert_eq!(s.get("/v1/apps").await.body["total_apps"], 1);
}
