//! End-to-end tests of pilot: the real binary as PID 1 of a sandbox (new PID and
//! network namespaces, its own cgroup), real containers from a busybox + testapp
//! image, driven over its unix socket with the typed client.

mod machine_support;

use std::time::Duration;

use machine_support::*;
use pilot::api::protocol::ErrorCode;
use pilot::client::ClientError;
use pilot::status::{ContainerState, EventKind, MachineState};
use serde_json::json;

const EXIT_LIMIT: Duration = Duration::from_secs(30);

fn testapp(args: &[&str]) -> serde_json::Value {
    let mut v = vec!["/usr/local/bin/testapp"];
    v.extend_from_slice(args);
    json!(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_log_shipper_starts_only_after_the_app_passed_its_checks() {
    // The first example of seed 000, with an app that answers 503 for its first
    // two seconds: the log shipper must wait for two consecutive passes.
    let m = Machine::start(json!({"containers": [
        {"name": "my-app", "image": "img", "env": {"PORT": "8080"},
         "cmd": testapp(&["serve-http", "8080", "--healthy-after", "2"]),
         "health_checks": [{"type": "http", "port": 8080, "path": "/health", "interval": "1s",
                            "timeout": "1s", "grace_period": "0s",
                            "success_threshold": 2, "failure_threshold": 3}]},
        {"name": "log-shipper", "image": "img", "env": {"LOG_LEVEL": "info"},
         "cmd": testapp(&["sleep", "60"]),
         "depends_on": [{"container": "my-app", "condition": "healthy"}]}
    ]}));
    let s = m
        .wait_status("log-shipper running", |s| {
            s.containers[1].state == ContainerState::Running
        })
        .await;
    assert_eq!(s.containers[0].state, ContainerState::Healthy);
    let ev = m.events().await;
    let failing = pos(&ev, "my-app", |e| {
        matches!(e, EventKind::CheckPassing { .. })
    });
    let healthy = pos(&ev, "my-app", |e| *e == EventKind::Healthy);
    let shipper = pos(&ev, "log-shipper", is_starting);
    assert!(failing <= healthy && healthy < shipper, "{ev:#?}");
    // Two passes one interval apart, after two seconds of 503s.
    let app_started = find(&ev, "my-app", is_started).ts_ms;
    let shipper_started = find(&ev, "log-shipper", is_started).ts_ms;
    assert!(
        shipper_started >= app_started + 2_500,
        "{app_started} -> {shipper_started}"
    );
    let check = &s.containers[0].health[0];
    assert!(check.consecutive_passes >= 2, "{check:?}");
    assert!(m.client.stop(None, None, true).await.unwrap().accepted);
    let fin = m.wait_exit(EXIT_LIMIT);
    assert_eq!(fin.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_and_a_diamond_start_in_dependency_order() {
    let m = Machine::start(json!({"containers": [
        // chain: a -> b (healthy) -> c (exited_successfully) -> d
        {"name": "a", "image": "img", "cmd": testapp(&["sleep", "60"])},
        {"name": "b", "image": "img", "cmd": testapp(&["serve-tcp", "7001"]),
         "depends_on": [{"name": "a", "condition": "started"}],
         "health_checks": [{"type": "tcp", "port": 7001, "interval": "200ms"}]},
        {"name": "c", "image": "img", "cmd": testapp(&["exit", "0"]), "restart": {"policy": "no"},
         "depends_on": [{"name": "b", "condition": "healthy"}]},
        {"name": "d", "image": "img", "cmd": testapp(&["sleep", "60"]),
         "depends_on": [{"name": "c", "condition": "exited_successfully"}]},
        // diamond: top -> left, right -> bottom
        {"name": "top", "image": "img", "cmd": testapp(&["serve-http", "7100"]),
         "health_checks": [{"type": "http", "port": 7100, "path": "/health", "interval": "200ms"}]},
        {"name": "left", "image": "img", "cmd": testapp(&["sleep", "60"]),
         "depends_on": [{"name": "top", "condition": "healthy"}]},
        {"name": "right", "image": "img", "cmd": testapp(&["sleep", "60"]),
         "depends_on": [{"name": "top", "condition": "healthy"}]},
        {"name": "bottom", "image": "img", "cmd": testapp(&["sleep", "60"]),
         "depends_on": [{"name": "left", "condition": "started"}, {"name": "right", "condition": "started"}]}
    ]}));
    let s = m
        .wait_status("d and bottom running", |s| {
            s.containers[3].state == ContainerState::Running
                && s.containers[7].state == ContainerState::Running
        })
        .await;
    assert_eq!(s.state, MachineState::Running);
    assert_eq!(s.containers[2].state, ContainerState::Exited);
    let ev = m.events().await;
    assert!(pos(&ev, "a", is_started) < pos(&ev, "b", is_starting));
    assert!(pos(&ev, "b", |e| *e == EventKind::Healthy) < pos(&ev, "c", is_starting));
    assert!(pos(&ev, "c", is_exited) < pos(&ev, "d", is_starting));
    let top_healthy = pos(&ev, "top", |e| *e == EventKind::Healthy);
    assert!(top_healthy < pos(&ev, "left", is_starting));
    assert!(top_healthy < pos(&ev, "right", is_starting));
    assert!(pos(&ev, "left", is_started) < pos(&ev, "bottom", is_starting));
    assert!(pos(&ev, "right", is_started) < pos(&ev, "bottom", is_starting));
    // Independent containers (a and top) are started in the same pass: both are
    // being started before either has been.
    assert!(pos(&ev, "a", is_starting) < pos(&ev, "top", is_started));
    assert!(pos(&ev, "top", is_starting) < pos(&ev, "a", is_started));
    m.client.stop(None, Some(2), false).await.unwrap();
    assert_eq!(m.wait_exit(EXIT_LIMIT).exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_containers_start_concurrently() {
    let names = ["x", "y", "z"];
    let m = Machine::start(json!({"containers": names.iter().map(|n| json!({
        "name": n, "image": "img", "cmd": testapp(&["sleep", "60"])
    })).collect::<Vec<_>>()}));
    m.wait_status("all running", |s| {
        s.containers
            .iter()
            .all(|c| c.state == ContainerState::Running)
    })
    .await;
    let ev = m.events().await;
    let first_started = names.iter().map(|n| pos(&ev, n, is_started)).min().unwrap();
    for n in names {
        assert!(
            pos(&ev, n, is_starting) < first_started,
            "{n} waited for another start: {ev:#?}"
        );
    }
    m.client.stop(None, None, false).await.unwrap();
    m.wait_exit(EXIT_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_migration_blocks_its_dependents_with_a_reason() {
    let m = Machine::start(json!({"containers": [
        {"name": "migrate", "image": "img", "cmd": testapp(&["exit", "1"]), "restart": {"policy": "no"}},
        {"name": "app", "image": "img", "cmd": testapp(&["serve-http", "8080"]),
         "depends_on": [{"name": "migrate", "condition": "exited_successfully"}]},
        {"name": "proxy", "image": "img", "cmd": testapp(&["sleep", "60"]),
         "depends_on": [{"name": "app", "condition": "healthy"}]}
    ]}));
    // Nothing can run any more: pilot ends the machine by itself.
    let fin = m.wait_exit(EXIT_LIMIT);
    assert_eq!(fin.exit_code, Some(1));
    let migrate = &fin.containers[0];
    assert_eq!(migrate.state, ContainerState::Failed);
    assert_eq!(migrate.last_exit.as_ref().unwrap().exit_code, Some(1));
    let app = &fin.containers[1];
    assert_eq!(app.state, ContainerState::Failed);
    assert!(app.started_at_ms.is_none());
    let reason = app.reason.as_deref().unwrap();
    assert!(
        reason.contains("\"migrate\"")
            && reason.contains("exited_successfully")
            && reason.contains("exited with code 1"),
        "{reason}"
    );
    let reason = fin.containers[2].reason.as_deref().unwrap();
    assert!(
        reason.contains("\"app\"") && reason.contains("healthy"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_talk_over_localhost_but_see_neither_processes_nor_files_of_each_other() {
    let m = Machine::start(json!({"containers": [
        {"name": "server", "image": "img", "cmd": testapp(&["serve-http", "8080", "--body", "from-server"])},
        {"name": "client", "image": "img", "cmd": testapp(&["sleep", "60"])}
    ]}));
    m.wait_line("server", "listening on 8080").await;
    // The server may be listening before the client container has started.
    m.wait_status("both running", |s| {
        s.containers
            .iter()
            .all(|c| c.state == ContainerState::Running)
    })
    .await;
    let got = m
        .client
        .exec(
            Some("client"),
            &["wget", "-qO-", "http://127.0.0.1:8080/"],
            None,
            Some(10),
        )
        .await
        .unwrap();
    assert_eq!(got.exit_code, Some(0), "{got:?}");
    assert!(got.stdout.contains("from-server"), "{got:?}");

    let w = m
        .client
        .exec(
            Some("server"),
            &["sh", "-c", "echo s3cret > /tmp/private"],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(w.exit_code, Some(0), "{w:?}");
    let own = m
        .client
        .exec(Some("server"), &["cat", "/tmp/private"], None, None)
        .await
        .unwrap();
    assert_eq!(own.stdout, "s3cret\n");
    let other = m
        .client
        .exec(Some("client"), &["cat", "/tmp/private"], None, None)
        .await
        .unwrap();
    assert_ne!(
        other.exit_code,
        Some(0),
        "client sees the server's file: {other:?}"
    );

    let ps = m
        .client
        .exec(
            Some("client"),
            &["/usr/local/bin/testapp", "ps"],
            None,
            None,
        )
        .await
        .unwrap();
    assert!(
        !ps.stdout.contains("serve-http") && !ps.stdout.contains("testapp serve"),
        "{}",
        ps.stdout
    );
    let comms: Vec<&str> = ps
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert!(
        comms
            .iter()
            .all(|c| *c != "testapp" || ps.stdout.matches("testapp").count() <= 2),
        "{}",
        ps.stdout
    );
    m.client.stop(None, None, false).await.unwrap();
    m.wait_exit(EXIT_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_health_check_sees_the_containers_own_files() {
    let ready = json!([{"guest_path": "/run/ready", "raw_value": "eWVz"}]);
    let check = json!([{"type": "exec", "command": ["test", "-f", "/run/ready"], "interval": "200ms",
                        "failure_threshold": 2}]);
    let m = Machine::start(json!({"containers": [
        {"name": "with", "image": "img", "cmd": testapp(&["sleep", "60"]), "files": ready, "health_checks": check},
        {"name": "without", "image": "img", "cmd": testapp(&["sleep", "60"]), "health_checks": check}
    ]}));
    let s = m
        .wait_status("both checks decided", |s| {
            s.containers[0].state == ContainerState::Healthy
                && s.containers[1].state == ContainerState::Unhealthy
        })
        .await;
    assert!(
        s.containers[1].health[0]
            .last_output
            .as_deref()
            .unwrap()
            .contains("exit 1"),
        "{s:#?}"
    );
    m.client.stop(None, None, false).await.unwrap();
    m.wait_exit(EXIT_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_failure_with_unhealthy_stop_restarts_by_policy() {
    let m = Machine::start(json!({"containers": [
        {"name": "web", "image": "img", "cmd": testapp(&["serve-http", "8080", "--unhealthy-after", "1"]),
         "restart": {"policy": "on-failure", "max_retries": 1},
         "health_checks": [{"name": "alive", "type": "http", "port": 8080, "path": "/health",
                            "interval": "300ms", "failure_threshold": 2, "kind": "liveness",
                            "unhealthy": "stop"}]}
    ]}));
    // Run 1 turns unhealthy and is stopped, restarted once; run 2 likewise, and
    // then no retry is left.
    let fin = m.wait_exit(EXIT_LIMIT);
    let web = &fin.containers[0];
    assert_eq!(web.restart_count, 1, "{web:#?}");
    assert_eq!(web.exits.len(), 2);
    for e in &web.exits {
        assert_eq!(e.requested.as_deref(), Some("unhealthy"));
        assert_eq!(
            e.signal,
            Some(libc::SIGINT),
            "stopped with the default stop signal: {e:?}"
        );
    }
    assert_eq!(web.state, ContainerState::Failed);
    assert_eq!(fin.exit_code, Some(128 + libc::SIGINT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_honours_order_signals_and_timeouts_and_leaves_nothing_behind() {
    let m = Machine::start(json!({"containers": [
        {"name": "db", "image": "img", "cmd": testapp(&["trap-signal"]),
         "stop": {"signal": "SIGUSR1", "timeout": "10s"}},
        {"name": "app", "image": "img", "cmd": testapp(&["ignore-signals"]),
         "stop": {"signal": "SIGTERM", "timeout": "1s"},
         "depends_on": [{"name": "db", "condition": "started"}]},
        {"name": "orphans", "image": "img",
         "cmd": ["sh", "-c", "for i in 1 2 3; do (sleep 0.1 &) ; done; exec /usr/local/bin/testapp sleep 60"]}
    ]}));
    m.wait_line("db", "waiting for a signal").await;
    m.wait_status("all running", |s| {
        s.containers
            .iter()
            .all(|c| c.state == ContainerState::Running)
    })
    .await;
    for _ in 0..3 {
        let r = m
            .client
            .exec(Some("app"), &["true"], None, None)
            .await
            .unwrap();
        assert_eq!(r.exit_code, Some(0));
    }
    let host_pids = descendants(m.pid);
    assert!(
        eventually(Duration::from_secs(5), || m.zombie_children().is_empty()),
        "zombies: {:?}",
        m.zombie_children()
    );

    assert!(m.client.stop(None, None, false).await.unwrap().accepted);
    let again = m.client.stop(None, None, false).await.unwrap();
    assert!(
        !again.accepted && again.message.contains("already stopping"),
        "{again:?}"
    );
    let fin = m.wait_exit(EXIT_LIMIT);
    assert_eq!(fin.exit_code, Some(0));
    let app = fin.containers.iter().find(|c| c.name == "app").unwrap();
    let db = fin.containers.iter().find(|c| c.name == "db").unwrap();
    // app ignored SIGTERM and was killed after its 1s; only then was db stopped,
    // with its own signal, which it reported before exiting 0.
    assert_eq!(app.last_exit.as_ref().unwrap().signal, Some(libc::SIGKILL));
    assert_eq!(db.last_exit.as_ref().unwrap().exit_code, Some(0));
    assert!(
        db.last_exit.as_ref().unwrap().exited_at_ms >= app.last_exit.as_ref().unwrap().exited_at_ms
    );
    assert!(
        fin.containers
            .iter()
            .all(|c| c.state == ContainerState::Exited),
        "{fin:#?}"
    );
    let log = std::fs::read_to_string(m.state_dir.join("status.json")).unwrap();
    assert!(log.contains("\"exited\""));
    for pid in host_pids {
        assert!(!alive(pid), "process {pid} survived the machine");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_exist_with_their_mode_and_owner_before_the_process_starts() {
    let m = Machine::start_with(
        json!({"containers": [
            {"name": "app", "image": "img", "user": "app",
             "files": [{"guest_path": "/etc/app/config.toml", "raw_value": "a2V5ID0gMQo=", "mode": 384},
                       {"guest_path": "/etc/app/token", "secret_name": "TOKEN", "mode": 256}],
             "cmd": ["sh", "-c", "stat -c '%a %u:%g %n' /etc/app/config.toml /etc/app/token; cat /etc/app/config.toml /etc/app/token; echo; id -u; exec sleep 60"]}
        ]}),
        json!({"secrets": {"TOKEN": "dG9wc2VjcmV0"}}),
    );
    m.wait_line("app", "1000").await;
    let lines = m.lines("app").await;
    assert_eq!(
        lines,
        vec![
            "600 1000:1000 /etc/app/config.toml",
            "400 1000:1000 /etc/app/token",
            "key = 1",
            "topsecret",
            "1000"
        ],
    );
    m.client.stop(None, None, false).await.unwrap();
    m.wait_exit(EXIT_LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agent_input_gets_clear_errors() {
    let m = Machine::start(json!({"containers": [
        {"name": "app", "image": "img", "cmd": testapp(&["sleep", "60"])},
        {"name": "side", "image": "img", "cmd": testapp(&["sleep", "60"])}
    ]}));
    m.wait_status("running", |s| {
        s.containers
            .iter()
            .all(|c| c.state == ContainerState::Running)
    })
    .await;
    fn api<T: std::fmt::Debug>(r: Result<T, ClientError>) -> pilot::api::protocol::ApiError {
        match r {
            Err(ClientError::Api(e)) => e,
            other => panic!("expected an API error, got {other:?}"),
        }
    }
    let e = api(m.client.exec(Some("db"), &["true"], None, None).await);
    assert_eq!(e.code, ErrorCode::UnknownContainer);
    assert!(
        e.message.contains("\"db\"") && e.message.contains("app, side"),
        "{}",
        e.message
    );
    let e = api(m.client.exec(Some("app"), &[], None, None).await);
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.starts_with("cmd:"), "{}", e.message);
    let e = api(m.client.exec(None, &["true"], None, None).await);
    assert!(e.message.contains("container: required"), "{}", e.message);
    let e = api(m.client.signal(Some("app"), "SIGNOPE").await);
    assert!(e.message.contains("SIGNOPE"), "{}", e.message);
    let e = api(m
        .client
        .logs(Some("nope"), None, false)
        .await
        .unwrap()
        .next_line()
        .await);
    assert_eq!(e.code, ErrorCode::UnknownContainer);
    // Not JSON, and an unknown op.
    for raw in ["{not json\n", "{\"op\":\"reboot\"}\n"] {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut s = tokio::net::UnixStream::connect(&m.socket).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(s)
            .read_line(&mut line)
            .await
            .unwrap();
        assert!(
            line.contains("\"bad_request\"") && line.contains("invalid request"),
            "{line}"
        );
    }
    let first = m.client.stop(None, None, false).await.unwrap();
    assert!(first.accepted);
    // The containers die at once on SIGINT: the machine may already be down.
    let second = m.client.stop(None, None, false).await.unwrap();
    assert!(
        !second.accepted && second.message.contains("already stop"),
        "{second:?}"
    );
    m.wait_exit(EXIT_LIMIT);
}
