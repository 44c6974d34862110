//! `hangar serve` end to end over HTTP: a real server process, images pushed
//! to a real registry and pulled by the server, machines in real namespaces
//! and cgroups (needs root).

mod common;

use std::time::Duration;

use common::{Server, pushed_image};
use hangar_test_support::{ImageBuilder, Registry};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TESTAPP: &str = "/usr/local/bin/testapp";

fn id_of(m: &Value) -> String {
    m["id"].as_str().expect("machine id").to_owned()
}

/// The `exit_event` of the newest exit event of a machine.
async fn last_exit(server: &Server, app: &str, id: &str) -> Value {
    let events = server.events(app, id).await;
    let exit = events
        .iter()
        .filter(|e| e["type"] == json!("exit"))
        .max_by_key(|e| e["timestamp"].as_i64().unwrap_or_default())
        .unwrap_or_else(|| panic!("no exit event in {events:#?}"));
    exit["request"]["exit_event"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_000_app_and_log_shipper_start_in_dependency_order() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/seed000:1").await;
    let server = Server::start().await;
    server.create_app("e2e-seed").await;
    // The first example of seed 000. The app answers 503 on /health for its
    // first second; the log shipper records what /health said when it began.
    let m = server
        .create_machine(
            "e2e-seed",
            json!({"config": {"containers": [
                {"name": "my-app", "image": image, "env": {"PORT": "8080"},
                 "cmd": [TESTAPP, "serve-http", "8080", "--healthy-after", "1"],
                 "services": [{"internal_port": 8080, "protocol": "tcp",
                               "ports": [{"port": 80, "handlers": ["http"]}]}],
                 "health_checks": [{"type": "http", "port": 8080, "path": "/health",
                                    "interval": "1s", "timeout": "1s", "grace_period": "0s",
                                    "success_threshold": 2, "failure_threshold": 3}]},
                {"name": "log-shipper", "image": image, "env": {"LOG_LEVEL": "info"},
                 "cmd": ["/bin/sh", "-c",
                         "wget -q -O /tmp/health http://127.0.0.1:8080/health; echo $? > /tmp/wget-status; exec /usr/local/bin/testapp sleep 600"],
                 "depends_on": [{"container": "my-app", "condition": "healthy"}]}
            ]}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-seed", &id, "started", 30).await;
    assert_eq!(server.state("e2e-seed", &id).await, "started");
    assert!(!server.machine_pids(&id).is_empty(), "pilot runs for {id}");

    // The log shipper began only once the app was healthy: its first request
    // to /health succeeded and got `ok`.
    let status = server
        .exec_ok(
            "e2e-seed",
            &id,
            Some("log-shipper"),
            &["cat", "/tmp/wget-status"],
        )
        .await;
    assert_eq!(status.trim(), "0", "wget of /health from the log shipper");
    let health = server
        .exec_ok(
            "e2e-seed",
            &id,
            Some("log-shipper"),
            &["cat", "/tmp/health"],
        )
        .await;
    assert_eq!(health.trim(), "ok");

    // Both containers run: the app serves, and both processes are listed.
    let body = server
        .exec_ok(
            "e2e-seed",
            &id,
            Some("my-app"),
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/?env=PORT"],
        )
        .await;
    assert!(body.contains("PORT=8080"), "{body}");
    let (s, procs) = server
        .get(&format!("/apps/e2e-seed/machines/{id}/ps"))
        .await;
    assert_eq!(s, StatusCode::OK, "{procs}");
    let commands: Vec<String> = procs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| p["command"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        commands.iter().any(|c| c.contains("serve-http")),
        "app process in {commands:?}"
    );
    assert!(
        commands.iter().any(|c| c.contains("sleep")),
        "log shipper process in {commands:?}"
    );
    let kinds: Vec<Value> = server
        .events("e2e-seed", &id)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert!(kinds.contains(&json!("launch")), "{kinds:?}");
    assert!(kinds.contains(&json!("start")), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_start_blanks_the_rootfs_and_a_volume_survives_it_an_image_update_and_a_server_restart()
 {
    let registry = Registry::start().unwrap();
    let v1 = pushed_image(&registry, "e2e/vol:1").await;
    let v2_image = ImageBuilder::new()
        .file("/etc/app-version", "two\n", 0o644)
        .build();
    registry.push(&v2_image, "e2e/vol:2").await.unwrap();
    let v2 = registry.reference("e2e/vol:2");
    let server = Server::start().await;
    server.create_app("e2e-vol").await;

    let (s, vol) = server
        .post(
            "/apps/e2e-vol/volumes",
            json!({"name": "data", "size_gb": 1, "region": "local"}),
        )
        .await;
    assert!(s.is_success(), "create volume: {s} {vol}");
    let vol_id = vol["id"].as_str().expect("volume id").to_owned();
    let mounts = json!([{"volume": vol_id, "path": "/data"}]);

    let m = server
        .create_machine(
            "e2e-vol",
            json!({"config": {"image": v1, "mounts": mounts, "guest": {"cpus": 1, "memory_mb": 256}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-vol", &id, "started", 30).await;
    server
        .exec_ok(
            "e2e-vol",
            &id,
            None,
            &[
                "sh",
                "-c",
                "echo kept > /data/keep && echo scratch > /tmp/scratch",
            ],
        )
        .await;

    let (s, b) = server
        .post(&format!("/apps/e2e-vol/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "stop: {b}");
    server.wait_ok("e2e-vol", &id, "stopped", 30).await;
    assert!(server.machine_pids(&id).is_empty(), "no pilot after stop");
    assert!(server.cgroup_dirs(&id).is_empty(), "no cgroup after stop");

    let (s, b) = server
        .post(&format!("/apps/e2e-vol/machines/{id}/start"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "start: {b}");
    server.wait_ok("e2e-vol", &id, "started", 30).await;
    let out = server
        .exec_ok(
            "e2e-vol",
            &id,
            None,
            &[
                "sh",
                "-c",
                "test ! -e /tmp/scratch && echo blank; cat /data/keep",
            ],
        )
        .await;
    assert_eq!(
        out, "blank\nkept\n",
        "rootfs blank, volume kept after stop/start"
    );

    // An update to another image: a new version, the volume still there.
    let (s, updated) = server
        .post(
            &format!("/apps/e2e-vol/machines/{id}"),
            json!({"config": {"image": v2, "mounts": mounts, "guest": {"cpus": 1, "memory_mb": 256}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "update: {updated}");
    assert_ne!(updated["instance_id"], m["instance_id"], "a new version");
    server.wait_ok("e2e-vol", &id, "started", 30).await;
    let out = server
        .exec_ok(
            "e2e-vol",
            &id,
            None,
            &["sh", "-c", "cat /etc/app-version /data/keep"],
        )
        .await;
    assert_eq!(out, "two\nkept\n", "new image, same volume");
    let (s, versions) = server
        .get(&format!("/apps/e2e-vol/machines/{id}/versions"))
        .await;
    assert_eq!(s, StatusCode::OK, "{versions}");
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{versions}");

    // SIGKILL the server: the machine keeps running with its volume; the
    // restarted server re-attaches it, and a stop/start after that still
    // finds the data.
    let mut server = server;
    let pids = server.machine_pids(&id);
    assert!(!pids.is_empty(), "the machine runs");
    server.sigkill();
    assert!(
        pids.iter().all(|p| common::alive(*p)),
        "the machine outlives the server"
    );
    server.spawn().await;
    assert_eq!(server.state("e2e-vol", &id).await, "started");
    server
        .exec_ok(
            "e2e-vol",
            &id,
            None,
            &["sh", "-c", "echo more >> /data/keep"],
        )
        .await;
    let (s, b) = server
        .post(&format!("/apps/e2e-vol/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "stop after the restart: {b}");
    server.wait_ok("e2e-vol", &id, "stopped", 30).await;
    let (s, b) = server
        .post(&format!("/apps/e2e-vol/machines/{id}/start"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "start after the restart: {b}");
    server.wait_ok("e2e-vol", &id, "started", 30).await;
    let out = server
        .exec_ok("e2e-vol", &id, None, &["cat", "/data/keep"])
        .await;
    assert_eq!(out, "kept\nmore\n", "volume data across a server restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_refuse_other_callers_until_released() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/lease:1").await;
    let server = Server::start().await;
    server.create_app("e2e-lease").await;
    let m = server
        .create_machine("e2e-lease", json!({"config": {"image": image}}))
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-lease", &id, "started", 30).await;
    let base = format!("/apps/e2e-lease/machines/{id}");

    let (s, lease) = server
        .post(
            &format!("{base}/lease"),
            json!({"ttl": 60, "description": "deploy"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lease}");
    let nonce = lease["nonce"].as_str().expect("nonce").to_owned();
    let (s, got) = server.get(&format!("{base}/lease")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["description"], json!("deploy"));

    // Someone else: a second lease, and changes without or with a wrong nonce.
    let (s, b) = server
        .post(&format!("{base}/lease"), json!({"ttl": 60}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "second lease: {b}");
    let (s, b) = server.post(&format!("{base}/stop"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "stop without nonce: {b}");
    assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
    let (s, b) = server
        .call(
            Method::POST,
            &format!("{base}/stop"),
            Some(json!({})),
            &[("fly-machine-lease-nonce", "not-the-nonce")],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "stop with a wrong nonce: {b}");
    assert_eq!(server.state("e2e-lease", &id).await, "started");

    // The holder may.
    let (s, b) = server
        .call(
            Method::POST,
            &format!("{base}/stop"),
            Some(json!({})),
            &[("fly-machine-lease-nonce", &nonce)],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "stop with the nonce: {b}");
    server.wait_ok("e2e-lease", &id, "stopped", 30).await;

    let (s, b) = server
        .call(
            Method::DELETE,
            &format!("{base}/lease"),
            None,
            &[("fly-machine-lease-nonce", &nonce)],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "release: {b}");
    let (s, _) = server.get(&format!("{base}/lease")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no lease after release");
    let (s, b) = server.post(&format!("{base}/start"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "start after release: {b}");
    server.wait_ok("e2e-lease", &id, "started", 30).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_times_out_with_408_and_sees_stopped_and_destroyed() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/wait:1").await;
    let server = Server::start().await;
    server.create_app("e2e-wait").await;
    let m = server
        .create_machine("e2e-wait", json!({"config": {"image": image}}))
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-wait", &id, "started", 30).await;

    let started = std::time::Instant::now();
    let (s, b) = server.wait("e2e-wait", &id, "stopped", 1).await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{b}");
    assert!(b["error"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited the timeout"
    );

    // A waiter started before the stop sees it.
    let waiter = {
        let url = server.url(&format!(
            "/apps/e2e-wait/machines/{id}/wait?state=stopped&timeout=30"
        ));
        let client = server.client.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(common::TOKEN)
                .send()
                .await
                .map(|r| r.status())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, b) = server
        .post(&format!("/apps/e2e-wait/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(waiter.await.unwrap().unwrap(), StatusCode::OK);
    assert_eq!(server.state("e2e-wait", &id).await, "stopped");

    let (s, b) = server
        .delete(&format!("/apps/e2e-wait/machines/{id}"))
        .await;
    assert!(s.is_success(), "destroy a stopped machine: {s} {b}");
    let (s, b) = server.wait("e2e-wait", &id, "destroyed", 30).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(server.cgroup_dirs(&id).is_empty());
    assert!(
        !std::path::Path::new("/run/netns")
            .join(format!("hangar-{id}"))
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_exits_under_restart_policy_no_leaves_the_machine_stopped() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/exit:1").await;
    let server = Server::start().await;
    server.create_app("e2e-exit").await;
    let m = server
        .create_machine(
            "e2e-exit",
            json!({"config": {"image": image, "restart": {"policy": "no"},
                              "init": {"cmd": [TESTAPP, "exit", "3"]}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-exit", &id, "stopped", 30).await;
    let exit = last_exit(&server, "e2e-exit", &id).await;
    assert_eq!(exit["exit_code"], json!(3), "{exit}");
    assert_eq!(exit["requested_stop"], json!(false), "{exit}");
    assert_eq!(exit["oom_killed"], json!(false), "{exit}");
    assert!(server.machine_pids(&id).is_empty());
    assert!(server.cgroup_dirs(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_over_its_memory_is_oom_killed_and_the_exit_event_says_so() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/oom:1").await;
    let server = Server::start().await;
    server.create_app("e2e-oom").await;
    let m = server
        .create_machine(
            "e2e-oom",
            json!({"config": {"image": image, "restart": {"policy": "no"},
                              "guest": {"cpus": 1, "memory_mb": 256},
                              "init": {"cmd": [TESTAPP, "alloc", "1024"]}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-oom", &id, "stopped", 60).await;
    let exit = last_exit(&server, "e2e-oom", &id).await;
    assert_eq!(exit["oom_killed"], json!(true), "{exit}");
    assert_eq!(exit["requested_stop"], json!(false), "{exit}");
}

/// Seed 002's `[processes]`: one image, several processes in one machine, each
/// supervised like a container under the machine's restart policy.
#[tokio::test(flavor = "multi_thread")]
async fn processes_of_one_image_run_side_by_side_and_restart_by_the_machine_policy() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/procs:1").await;
    let server = Server::start().await;
    server.create_app("e2e-procs").await;
    let m = server
        .create_machine(
            "e2e-procs",
            json!({"config": {"image": image, "restart": {"policy": "always"},
            "processes": [
                {"cmd": [TESTAPP, "serve-http", "8080", "--body", "web"]},
                {"cmd": [TESTAPP, "serve-tcp", "9000"], "env": {"ROLE": "worker"}}
            ]}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-procs", &id, "started", 30).await;
    // The second process reaches the first over localhost, and each has its
    // own environment.
    let mut reached = None;
    for _ in 0..50 {
        let (s, b) = server
            .exec(
                "e2e-procs",
                &id,
                Some("process-1"),
                &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/?env=ROLE"],
            )
            .await;
        if s == StatusCode::OK && b["exit_code"] == json!(0) {
            reached = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = reached.expect("process-1 reaches process-0 on localhost");
    let stdout = body["stdout"].as_str().unwrap_or_default();
    assert!(stdout.starts_with("web"), "{stdout}");
    assert!(
        stdout.contains("ROLE=<unset>"),
        "process-0 has no ROLE: {stdout}"
    );
    let env = server
        .exec_ok("e2e-procs", &id, Some("process-1"), &["env"])
        .await;
    assert!(env.contains("ROLE=worker"), "{env}");
    // Each process sees only its own processes.
    let ps = server
        .exec_ok("e2e-procs", &id, Some("process-0"), &[TESTAPP, "ps"])
        .await;
    assert!(!ps.contains("serve-tcp") && ps.contains("testapp"), "{ps}");

    // process-0 exits 7; under `always` it is started again and the machine
    // stays started.
    let _ = server
        .exec(
            "e2e-procs",
            &id,
            Some("process-1"),
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/exit?code=7"],
        )
        .await;
    let mut answered_again = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, b) = server
            .exec(
                "e2e-procs",
                &id,
                Some("process-1"),
                &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
            )
            .await;
        if b["exit_code"] == json!(0) {
            answered_again = true;
            break;
        }
    }
    assert!(answered_again, "process-0 was restarted:\n{}", server.log());
    assert_eq!(server.state("e2e-procs", &id).await, "started");
}

/// `restart: on-failure` with `max_retries`: a process that keeps failing is
/// started again that many times, then the machine stops with its exit code.
#[tokio::test(flavor = "multi_thread")]
async fn on_failure_restarts_a_failing_process_max_retries_times_then_stops() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/onfail:1").await;
    let server = Server::start().await;
    server.create_app("e2e-onfail").await;
    // The process fails each time it runs.
    let m = server
        .create_machine(
            "e2e-onfail",
            json!({"config": {"image": image,
                              "restart": {"policy": "on-failure", "max_retries": 2},
                              "init": {"cmd": [TESTAPP, "exit", "5"]}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-onfail", &id, "stopped", 60).await;
    let exit = last_exit(&server, "e2e-onfail", &id).await;
    assert_eq!(exit["exit_code"], json!(5), "{exit}");
    assert_eq!(exit["requested_stop"], json!(false), "{exit}");
    // The first run and two retries.
    let events = server.events("e2e-onfail", &id).await;
    let exit_event = events
        .iter()
        .find(|e| e["type"] == json!("exit"))
        .unwrap_or_else(|| panic!("no exit event: {events:#?}"));
    assert_eq!(
        exit_event["request"]["restart_count"],
        json!(2),
        "{exit_event}"
    );
}

/// With bridge networking every machine has an IPv6 `private_ip` and an IPv4
/// address (`private_ipv4`) that the host reaches, and machines of one app
/// reach each other.
#[tokio::test(flavor = "multi_thread")]
async fn bridged_machines_answer_the_host_on_both_addresses_and_reach_each_other() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/bridge:1").await;
    let server = Server::start_bridged().await;
    server.create_app("e2e-bridge").await;
    let mut machines = Vec::new();
    for body in ["first", "second"] {
        let m = server
            .create_machine(
                "e2e-bridge",
                json!({"config": {"image": image,
                                  "init": {"cmd": [TESTAPP, "serve-http", "8080", "--body", body]}}}),
            )
            .await;
        let id = id_of(&m);
        server.wait_ok("e2e-bridge", &id, "started", 30).await;
        machines.push(server.machine("e2e-bridge", &id).await);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .unwrap();
    for (m, body) in machines.iter().zip(["first", "second"]) {
        let v6: std::net::Ipv6Addr = m["private_ip"].as_str().unwrap().parse().unwrap();
        let v4: std::net::Ipv4Addr = m["private_ipv4"]
            .as_str()
            .unwrap_or_else(|| panic!("no private_ipv4 in {m:#}"))
            .parse()
            .unwrap();
        for url in [format!("http://[{v6}]:8080/"), format!("http://{v4}:8080/")] {
            let mut answer = None;
            for _ in 0..50 {
                if let Ok(r) = client.get(&url).send().await {
                    answer = Some(r.text().await.unwrap());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let text = answer.unwrap_or_else(|| panic!("{url} never answered"));
            assert!(text.starts_with(body), "{url}: {text}");
        }
    }
    // The first machine fetches from the second over IPv6 and IPv4.
    let first = id_of(&machines[0]);
    for target in [
        format!(
            "http://[{}]:8080/",
            machines[1]["private_ip"].as_str().unwrap()
        ),
        format!(
            "http://{}:8080/",
            machines[1]["private_ipv4"].as_str().unwrap()
        ),
    ] {
        let out = server
            .exec_ok(
                "e2e-bridge",
                &first,
                None,
                &["wget", "-q", "-O", "-", &target],
            )
            .await;
        assert!(out.starts_with("second"), "{target}: {out}");
    }
    // By name: `<id>.vm.<app>.internal` of a machine that started after the
    // first one (its /etc/hosts is kept up to date), and `<app>.internal`.
    let second = id_of(&machines[1]);
    let by_name = format!("http://{second}.vm.e2e-bridge.internal:8080/");
    let mut named = None;
    for _ in 0..50 {
        let (_, b) = server
            .exec(
                "e2e-bridge",
                &first,
                None,
                &["wget", "-q", "-O", "-", &by_name],
            )
            .await;
        if b["exit_code"] == json!(0) {
            named = b["stdout"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let named = named.unwrap_or_else(|| panic!("{by_name} never answered"));
    assert!(named.starts_with("second"), "{named}");
    let out = server
        .exec_ok(
            "e2e-bridge",
            &first,
            None,
            &["wget", "-q", "-O", "-", "http://e2e-bridge.internal:8080/"],
        )
        .await;
    assert!(
        out.starts_with("first") || out.starts_with("second"),
        "{out}"
    );
    // Once the second machine stops, the first no longer lists it.
    let (s, b) = server
        .post(
            &format!("/apps/e2e-bridge/machines/{second}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    server.wait_ok("e2e-bridge", &second, "stopped", 30).await;
    let mut gone = false;
    for _ in 0..50 {
        let hosts = server
            .exec_ok("e2e-bridge", &first, None, &["cat", "/etc/hosts"])
            .await;
        if !hosts.contains(&second) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "{second} left the first machine's /etc/hosts");
}

/// The machine's own `checks` run, and `GET .../machines/{id}` reports them
/// (what `hangar deploy` waits for).
#[tokio::test(flavor = "multi_thread")]
async fn machine_checks_run_and_are_reported_with_the_machine() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/checks:1").await;
    let server = Server::start().await;
    server.create_app("e2e-checks").await;
    let m = server
        .create_machine(
            "e2e-checks",
            json!({"config": {"image": image,
                              "init": {"cmd": [TESTAPP, "serve-http", "8080", "--healthy-after", "1"]},
                              "checks": {
                                  "web": {"type": "http", "port": 8080, "path": "/health",
                                          "interval": "1s", "timeout": "1s"},
                                  "closed": {"type": "tcp", "port": 9999, "interval": "1s",
                                             "timeout": "1s"}}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-checks", &id, "started", 30).await;
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = server.machine("e2e-checks", &id).await["checks"].clone();
        let status = |name: &str| {
            seen.as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == json!(name)))
                .map(|c| c["status"].clone())
        };
        if status("web") == Some(json!("passing")) && status("closed") == Some(json!("critical")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let checks = seen.as_array().cloned().unwrap_or_default();
    let web = checks.iter().find(|c| c["name"] == json!("web"));
    let closed = checks.iter().find(|c| c["name"] == json!("closed"));
    assert_eq!(
        web.map(|c| &c["status"]),
        Some(&json!("passing")),
        "{seen:#}"
    );
    assert_eq!(
        closed.map(|c| &c["status"]),
        Some(&json!("critical")),
        "{seen:#}"
    );
    assert!(
        web.unwrap()["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{seen:#}"
    );
    // A failing machine check reports; it does not stop the machine.
    assert_eq!(server.state("e2e-checks", &id).await, "started");
}

/// `GET .../logs`: the kept lines of a running machine as JSON lines, one
/// container's with `container`, the last N with `tail`, new ones with
/// `follow`; clear errors for an unknown container and a stopped machine.
#[tokio::test(flavor = "multi_thread")]
async fn logs_of_a_running_machine_are_kept_filtered_and_followed() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/logs:1").await;
    let server = Server::start().await;
    server.create_app("e2e-logs").await;
    let m = server
        .create_machine(
            "e2e-logs",
            json!({"config": {"containers": [
                {"name": "talker", "image": image,
                 "cmd": ["/bin/sh", "-c",
                         "echo hello; echo oops >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]},
                {"name": "quiet", "image": image, "cmd": [TESTAPP, "sleep", "600"]}
            ]}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok("e2e-logs", &id, "started", 30).await;
    let url = |q: &str| server.url(&format!("/apps/e2e-logs/machines/{id}/logs?{q}"));
    let get_lines = |q: String| {
        let client = server.client.clone();
        async move {
            let r = client
                .get(q)
                .bearer_auth(common::TOKEN)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            (status, text)
        }
    };
    // Kept lines: wait until a few ticks are there.
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let (s, text) = get_lines(url("container=talker")).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // stdout and stderr are read separately: their lines may interleave.
    let hello = lines
        .iter()
        .find(|l| l["message"] == json!("hello"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(hello["container"], json!("talker"));
    assert_eq!(hello["stream"], json!("stdout"));
    assert!(hello["timestamp"].as_str().unwrap().ends_with('Z'));
    let ticks: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("tick"))
        .collect();
    assert_eq!(ticks.first(), Some(&"tick 0"), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == json!("oops") && l["stream"] == json!("stderr")),
        "{lines:#?}"
    );
    let (_, tail) = get_lines(url("container=talker&tail=1")).await;
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.contains("tick"), "{tail}");
    let (_, quiet) = get_lines(url("container=quiet")).await;
    assert_eq!(quiet, "", "the quiet container said nothing");

    // Follow: lines keep coming after the kept ones.
    let resp = server
        .client
        .get(url("container=talker&tail=1&follow=true"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut resp = resp;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lines().count() < 4 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(seen.lines().count() >= 4, "followed lines: {seen}");
    drop(resp);

    let (s, text) = get_lines(url("container=nope")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("no container \"nope\" (it has talker, quiet)")),
        "{text}"
    );
    let (s, b) = server
        .post(&format!("/apps/e2e-logs/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    server.wait_ok("e2e-logs", &id, "stopped", 30).await;
    let (s, text) = get_lines(url("")).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{text}");
    assert!(text.contains("only while it runs"), "{text}");
}
