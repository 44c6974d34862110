//! Bad requests over real HTTP against the real store: each asserts its
//! status and the message a user would read.

mod common;

use common::{MAX_BODY, server};
use reqwest::Method;
use serde_json::json;

const APP: &str = "/v1/apps/shop";

async fn with_machine() -> (common::Server, String) {
    let s = server().await;
    s.create_app("shop").await;
    let m = s
        .create_machine("shop", json!({"config": {"image": "busybox"}}))
        .await;
    (s, m["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn auth_is_required_and_checked() {
    let s = server().await;
    let r = s.send(s.http.get(format!("{}/v1/apps", s.url))).await;
    r.expect_error(401, &["missing Authorization header"]);
    let r = s
        .send(s.http.get(format!("{}/v1/apps", s.url)).bearer_auth("nope"))
        .await;
    r.expect_error(401, &["invalid or revoked token"]);
    let r = s
        .send(
            s.http
                .get(format!("{}/v1/apps", s.url))
                .header("authorization", "Basic abc"),
        )
        .await;
    r.expect_error(401, &["unsupported authorization scheme \"Basic\""]);
    let r = s
        .send(
            s.http
                .get(format!("{}/v1/apps", s.url))
                .header("authorization", "Bearer "),
        )
        .await;
    r.expect_error(401, &["Authorization header must be"]);
}

#[tokio::test]
async fn revoked_and_non_admin_tokens() {
    let s = server().await;
    let r = s.post("/v1/tokens", json!({"name": "ci"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let ci = r.body["token"].as_str().unwrap().to_owned();
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = s
        .send(s.http.get(format!("{}/v1/tokens", s.url)).bearer_auth(&ci))
        .await;
    r.expect_error(403, &["needs an admin token"]);
    let r = s.post("/v1/tokens", json!({})).await;
    r.expect_error(422, &["name: required"]);
    assert_eq!(s.delete(&format!("/v1/tokens/{id}")).await.status, 200);
    let r = s
        .send(s.http.get(format!("{}/v1/apps", s.url)).bearer_auth(&ci))
        .await;
    r.expect_error(401, &["invalid or revoked token"]);
    s.delete("/v1/tokens/unknown")
        .await
        .expect_error(404, &["token \"unknown\" not found"]);
}

#[tokio::test]
async fn app_create_problems() {
    let s = server().await;
    s.post("/v1/apps", json!({"org_slug": "personal"}))
        .await
        .expect_error(422, &["app_name: required"]);
    s.post("/v1/apps", json!({"app_name": "Bad_Name"}))
        .await
        .expect_error(422, &["app_name: invalid app name \"Bad_Name\""]);
    s.post_raw("/v1/apps", "{\"app_name\": ")
        .await
        .expect_error(400, &["malformed JSON", "line 1, column 13"]);
    s.post("/v1/apps", json!({"app_name": 5}))
        .await
        .expect_error(
            400,
            &[
                "at app_name: invalid type: integer `5`, expected a string",
                "line 1",
            ],
        );
    s.post_raw("/v1/apps", "[1,2]")
        .await
        .expect_error(400, &["invalid request body", "expected"]);
    s.create_app("dup").await;
    s.post("/v1/apps", json!({"name": "dup"}))
        .await
        .expect_error(409, &["app \"dup\" already exists"]);
}

#[tokio::test]
async fn unknown_things_are_404() {
    let (s, id) = with_machine().await;
    s.get("/v1/apps/nope")
        .await
        .expect_error(404, &["app \"nope\" not found"]);
    s.get("/v1/apps/nope/machines")
        .await
        .expect_error(404, &["app \"nope\" not found"]);
    s.get(&format!("{APP}/machines/0123456789abcd"))
        .await
        .expect_error(404, &["machine \"0123456789abcd\" not found"]);
    s.get(&format!("{APP}/machines/XYZ"))
        .await
        .expect_error(400, &["invalid machine id \"XYZ\""]);
    s.get("/v1/nothing-here")
        .await
        .expect_error(404, &["no such endpoint: /v1/nothing-here"]);
    s.get(&format!("{APP}/machines/{id}/metadata/absent"))
        .await
        .expect_error(404, &["no metadata key \"absent\""]);
    s.get(&format!("{APP}/machines/{id}/lease"))
        .await
        .expect_error(404, &["has no active lease"]);
    s.get(&format!("{APP}/volumes/vol_0000000000000000"))
        .await
        .expect_error(404, &["volume \"vol_0000000000000000\" not found"]);
    s.get(&format!(
        "{APP}/machines/{id}?version=01ARZ3NDEKTSV4RRFFQ69G5FAV"
    ))
    .await
    .expect_error(404, &["has no version"]);
    let r = s.send(s.req(Method::PUT, "/v1/apps")).await;
    r.expect_error(405, &["PUT is not allowed on /v1/apps"]);
}

#[tokio::test]
async fn machine_config_problems_name_their_paths() {
    let s = server().await;
    s.create_app("shop").await;
    let r = s
        .post(&format!("{APP}/machines"), json!({"region": "local"}))
        .await;
    r.expect_error(422, &["config: required"]);
    let r = s
        .post_raw(
            &format!("{APP}/machines"),
            r#"{"config": {"image": "x", "guest": {"cpus": "two"}}}"#,
        )
        .await;
    r.expect_error(
        400,
        &[
            "at config.guest.cpus",
            "invalid type: string \"two\"",
            "line 1, column",
        ],
    );
    let r = s.post(&format!("{APP}/machines"), json!({"config": {"env": {"A": "1"}}, "name": "bad name!", "region": "NOT A REGION", "lease_ttl": 0})).await;
    r.expect_error(
        422,
        &[
            "config.image: an image is required",
            "name: \"bad name!\"",
            "region: \"NOT A REGION\"",
            "lease_ttl: 0 must be between",
        ],
    );
    let problems = r.body["details"]["problems"].as_array().unwrap();
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["config.image", "name", "region", "lease_ttl"]);
    let r = s
        .post_raw(
            &format!("{APP}/machines"),
            r#"{"config": {"image": "x"}} trailing"#,
        )
        .await;
    r.expect_error(400, &["malformed JSON", "trailing characters"]);
}

#[tokio::test]
async fn every_config_problem_is_listed_with_its_path() {
    let s = server().await;
    s.create_app("shop").await;
    let body = json!({"config": {
        "guest": {"cpus": 1, "memory_mb": 1},
        "containers": [
            {"name": "app", "image": "a", "depends_on": [{"name": "db", "condition": "healthy"}]},
            {"name": "app", "image": "b"}
        ]
    }});
    let r = s.post(&format!("{APP}/machines"), body).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let paths: Vec<&str> = r.body["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"config.guest.memory_mb"), "{paths:?}");
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("config.containers[0].depends_on[0]")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.starts_with("config.containers[1]")),
        "{paths:?}"
    );
    r.expect_error(422, &["invalid request: config.guest.memory_mb"]);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let s = server().await;
    let big = "x".repeat(MAX_BODY + 10);
    let r = s
        .post("/v1/apps", json!({"app_name": "a", "pad": big}))
        .await;
    r.expect_error(413, &["larger than the limit of 65536 bytes"]);
}

#[tokio::test]
async fn duplicate_machine_name_is_409() {
    let s = server().await;
    s.create_app("shop").await;
    s.create_machine("shop", json!({"name": "web", "config": {"image": "x"}}))
        .await;
    let r = s
        .post(
            &format!("{APP}/machines"),
            json!({"name": "web", "config": {"image": "x"}}),
        )
        .await;
    r.expect_error(409, &["a machine named \"web\" already exists"]);
}

#[tokio::test]
async fn lease_conflicts_and_nonces() {
    let (s, id) = with_machine().await;
    let path = format!("{APP}/machines/{id}/lease");
    let r = s
        .post(&path, json!({"ttl": 60, "description": "deploy"}))
        .await;
    assert_eq!(r.status, 201);
    let nonce = r.body["nonce"].as_str().unwrap().to_owned();
    s.post(&path, json!({"ttl": 60}))
        .await
        .expect_error(409, &["lease is held by", "fly-machine-lease-nonce"]);
    let stop = format!("{APP}/machines/{id}/stop");
    s.post(&stop, json!({}))
        .await
        .expect_error(409, &["lease is held by"]);
    let r = s
        .send(
            s.req(Method::POST, &stop)
                .header("fly-machine-lease-nonce", "wrong"),
        )
        .await;
    r.expect_error(409, &["lease is held by"]);
    let r = s
        .send(
            s.req(Method::POST, &format!("{APP}/machines/{id}/metadata/k"))
                .header("fly-machine-lease-nonce", "wrong")
                .json(&json!({"value": "v"})),
        )
        .await;
    r.expect_error(409, &["lease is held by"]);
    s.delete(&path)
        .await
        .expect_error(400, &["fly-machine-lease-nonce header: required"]);
    let r = s
        .send(
            s.req(Method::DELETE, &path)
                .header("fly-machine-lease-nonce", "wrong"),
        )
        .await;
    r.expect_error(409, &["lease is held by"]);
    let r = s
        .send(
            s.req(Method::POST, &path)
                .header("fly-machine-lease-nonce", &nonce)
                .json(&json!({"ttl": -5})),
        )
        .await;
    r.expect_error(400, &["ttl: -5 must be between 1 and 86400"]);
    let r = s
        .send(
            s.req(Method::DELETE, &format!("{APP}/machines/{id}"))
                .header("fly-machine-lease-nonce", "x"),
        )
        .await;
    r.expect_error(409, &["lease is held by"]);
}

#[tokio::test]
async fn wait_problems() {
    let (s, id) = with_machine().await;
    let base = format!("{APP}/machines/{id}/wait");
    s.get(&format!("{base}?state=stopped&timeout=1"))
        .await
        .expect_error(
            408,
            &["timed out after 1s waiting for machine", "to be stopped"],
        );
    s.get(&format!("{base}?state=stopped&timeout=61"))
        .await
        .expect_error(
            400,
            &["timeout: 61 is longer than the maximum of 60 seconds"],
        );
    s.get(&format!("{base}?state=running"))
        .await
        .expect_error(400, &["invalid state \"running\"", "settled"]);
    s.get(&format!("{base}?from_event_id=zzz"))
        .await
        .expect_error(400, &["from_event_id: \"zzz\" is not an event id"]);
    s.get(&format!("{base}?timeout=soon"))
        .await
        .expect_error(400, &["timeout: invalid duration \"soon\""]);
    s.get(&format!("{base}?instance_id=01ARZ3NDEKTSV4RRFFQ69G5FAV"))
        .await
        .expect_error(404, &["has no version"]);
}

#[tokio::test]
async fn action_problems() {
    let (s, id) = with_machine().await;
    let m = format!("{APP}/machines/{id}");
    s.post(&format!("{m}/signal"), json!({"signal": "SIGFOO"}))
        .await
        .expect_error(400, &["signal: unknown signal \"SIGFOO\""]);
    s.post(&format!("{m}/signal"), json!({}))
        .await
        .expect_error(400, &["signal: required"]);
    s.post(&format!("{m}/signal"), json!({"signal": 99}))
        .await
        .expect_error(400, &["unknown signal \"99\""]);
    s.post(&format!("{m}/stop"), json!({"timeout": true}))
        .await
        .expect_error(400, &["at timeout"]);
    s.post(&format!("{m}/suspend"), json!({}))
        .await
        .expect_error(501, &["suspend is not supported", "stop and start"]);
    s.post(&format!("{m}/exec"), json!({"container": "a"}))
        .await
        .expect_error(400, &["command: required"]);
    s.post(
        &format!("{m}/exec"),
        json!({"command": ["ls"], "container": "a", "machine": true}),
    )
    .await
    .expect_error(400, &["mutually exclusive"]);
    s.delete(&m).await.expect_error(
        412,
        &["is started: stop it first, or destroy it with ?force=true"],
    );
    s.post(&format!("{m}/restart?signal=SIGNOPE"), json!({}))
        .await
        .expect_error(400, &["unknown signal \"SIGNOPE\""]);
    assert_eq!(s.post(&format!("{m}/stop"), json!({})).await.status, 200);
    s.post(&format!("{m}/stop"), json!({}))
        .await
        .expect_error(412, &["cannot stop machine", "it is stopped"]);
    s.get(&format!("{m}/ps"))
        .await
        .expect_error(412, &["it is stopped"]);
    s.get(&format!("{APP}/machines?include_deleted=maybe"))
        .await
        .expect_error(400, &["include_deleted: expected true or false"]);
    s.get(&format!("{APP}/machines?state=sleeping"))
        .await
        .expect_error(400, &["unknown machine state \"sleeping\""]);
}

#[tokio::test]
async fn metadata_and_version_problems() {
    let (s, id) = with_machine().await;
    let m = format!("{APP}/machines/{id}");
    s.post(&format!("{m}/metadata/bad key!"), json!({"value": "v"}))
        .await
        .expect_error(400, &["invalid metadata key \"bad key!\""]);
    s.post(&format!("{m}/metadata/ok"), json!({}))
        .await
        .expect_error(400, &["value: required"]);
    let r = s
        .send(
            s.req(Method::PATCH, &format!("{m}/metadata"))
                .json(&json!({"metadata": {"a": "1"}, "machine_version": "stale"})),
        )
        .await;
    r.expect_error(412, &["is at version", "not stale"]);
    let r = s
        .post(
            &m,
            json!({"config": {"image": "y"}, "current_version": "stale"}),
        )
        .await;
    r.expect_error(409, &["is at version", "not stale"]);
}

#[tokio::test]
async fn secret_and_volume_problems() {
    let s = server().await;
    s.create_app("shop").await;
    s.post(&format!("{APP}/secrets/1BAD"), json!({"value": "v"}))
        .await
        .expect_error(422, &["secret name \"1BAD\""]);
    s.post(&format!("{APP}/secrets/GOOD"), json!({}))
        .await
        .expect_error(422, &["value: required"]);
    s.post(&format!("{APP}/secrets"), json!({}))
        .await
        .expect_error(422, &["values: required"]);
    s.delete(&format!("{APP}/secrets/MISSING"))
        .await
        .expect_error(404, &["secret \"MISSING\" not found"]);
    let r = s
        .post(
            &format!("{APP}/volumes"),
            json!({"size_gb": 0, "fstype": "xfs"}),
        )
        .await;
    r.expect_error(
        422,
        &[
            "name: required",
            "size_gb: 0 must be between 1 and 500",
            "fstype: \"xfs\" is not supported",
        ],
    );
}

#[tokio::test]
async fn every_mutating_machine_call_honours_the_lease() {
    let (s, id) = with_machine().await;
    let m = format!("{APP}/machines/{id}");
    let r = s.post(&format!("{m}/lease"), json!({"ttl": 60})).await;
    assert_eq!(r.status, 201);
    let calls: Vec<(Method, String, serde_json::Value)> = vec![
        (Method::POST, m.clone(), json!({"config": {"image": "b"}})),
        (Method::POST, format!("{m}/start"), json!({})),
        (Method::POST, format!("{m}/stop"), json!({})),
        (Method::POST, format!("{m}/restart"), json!({})),
        (
            Method::POST,
            format!("{m}/signal"),
            json!({"signal": "SIGHUP"}),
        ),
        (Method::POST, format!("{m}/suspend"), json!({})),
        (Method::POST, format!("{m}/cordon"), json!({})),
        (Method::POST, format!("{m}/uncordon"), json!({})),
        (
            Method::PATCH,
            format!("{m}/metadata"),
            json!({"metadata": {"a": "b"}}),
        ),
        (
            Method::PUT,
            format!("{m}/metadata"),
            json!({"metadata": {"a": "b"}}),
        ),
        (
            Method::POST,
            format!("{m}/metadata/a"),
            json!({"value": "b"}),
        ),
        (Method::DELETE, format!("{m}/metadata/a"), json!({})),
        (Method::DELETE, m.clone(), json!({})),
    ];
    for (method, path, body) in calls {
        let r = s.send(s.req(method.clone(), &path).json(&body)).await;
        assert_eq!(r.status, 409, "{method} {path}: {:?}", r.body);
        assert!(
            r.error().contains("lease is held by \"admin\""),
            "{method} {path}: {}",
            r.error()
        );
    }
    assert!(
        s.backend.calls().iter().all(|c| c.starts_with("create")),
        "nothing reached the backend: {:?}",
        s.backend.calls()
    );
}
