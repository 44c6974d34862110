//! The proxy inside `hangar serve`, end to end: a real server with its own
//! bridge, real machines running testapp, real HTTP and TCP clients on
//! loopback (needs root).

mod common;

use std::time::{Duration, Instant};

use common::{ProxyEnv, free_port, pushed_image};
use hangar_test_support::Registry;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TESTAPP: &str = "/usr/local/bin/testapp";

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

fn id_of(m: &Value) -> String {
    m["id"].as_str().expect("machine id").to_owned()
}

/// A machine config running `testapp serve-http 8080 ARGS` behind `services`.
fn http_machine(image: &str, body: &str, services: Value, extra: &[&str]) -> Value {
    let mut cmd = vec![TESTAPP, "serve-http", "8080", "--body", body];
    cmd.extend_from_slice(extra);
    json!({"config": {"image": image, "init": {"cmd": cmd}, "services": services}})
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_request_starts_a_stopped_machine_and_gets_200() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-cold:1").await;
    let env = ProxyEnv::start(&[]).await;
    let port = free_port();
    env.server.create_app("cold").await;
    let services = json!([{"protocol": "tcp", "internal_port": 8080, "autostart": true,
        "autostop": "off",
        "ports": [{"port": port, "handlers": ["http"]}]}]);
    let m = env
        .server
        .create_machine("cold", http_machine(&image, "cold-body", services, &[]))
        .await;
    let id = id_of(&m);
    env.server.wait_ok("cold", &id, "started", 30).await;
    // Warm: routed to the machine, with the forwarding headers.
    let body = env.get_ok(port, "cold", "/?env=HOSTNAME").await;
    assert!(body.starts_with("cold-body"), "{body}");

    let (s, b) = env
        .server
        .post(&format!("/apps/cold/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "stop: {b}");
    env.server.wait_ok("cold", &id, "stopped", 30).await;

    // Cold: several concurrent requests share one start, none fails.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let http = env.http.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/"))
                .header("host", "cold.localhost")
                .send()
                .await
                .expect("cold request");
            (r.status(), r.text().await.unwrap_or_default())
        }));
    }
    for t in tasks {
        let (s, body) = t.await.unwrap();
        assert_eq!(
            s,
            StatusCode::OK,
            "cold request: {body}\nlog:\n{}",
            env.server.log()
        );
        assert!(body.starts_with("cold-body"), "{body}");
    }
    eprintln!("cold start through the proxy: {:?}", started.elapsed());
    assert_eq!(env.server.state("cold", &id).await, "started");
    let (s, body) = env.get(port, "cold", "/").await;
    assert_eq!(s, StatusCode::OK, "warm again: {body}");
    let starts = env
        .server
        .events("cold", &id)
        .await
        .iter()
        .filter(|e| e["type"] == json!("start"))
        .count();
    let metrics = env.metrics().await;
    assert_eq!(
        metric(&metrics, "hangar_proxy_autostarts_total"),
        1.0,
        "{metrics}"
    );
    assert!(
        starts >= 2,
        "one start at create, one by the proxy: {starts}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn load_spreads_an_unhealthy_machine_leaves_rotation_and_raw_tcp_with_proxy_protocol() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-lb:1").await;
    let env = ProxyEnv::start(&[]).await;
    let port = free_port();
    env.server.create_app("lb").await;
    let services = |extra: Value| {
        let mut s = json!([{"protocol": "tcp", "internal_port": 8080, "autostop": "off",
            "ports": [{"port": port, "handlers": ["http"]}]}]);
        if !extra.is_null() {
            s[0]["checks"] = extra;
        }
        s
    };
    let check =
        json!([{"type": "http", "path": "/health", "interval": "200ms", "timeout": "200ms"}]);
    // m1 fails /health for its first 8 seconds; m2 always passes.
    let m1 = env
        .server
        .create_machine(
            "lb",
            http_machine(
                &image,
                "one",
                services(check.clone()),
                &["--healthy-after", "8"],
            ),
        )
        .await;
    let m2 = env
        .server
        .create_machine("lb", http_machine(&image, "two", services(check), &[]))
        .await;
    // A TCP echo machine behind a raw port and a PROXY protocol port.
    env.server.create_app("echo").await;
    let (raw, pp) = (free_port(), free_port());
    let echo = env
        .server
        .create_machine(
            "echo",
            json!({"config": {"image": image, "init": {"cmd": [TESTAPP, "serve-tcp", "9000"]},
                "services": [{"protocol": "tcp", "internal_port": 9000, "ports": [
                    {"port": raw}, {"port": pp, "handlers": ["proxy_proto"]}]}]}}),
        )
        .await;
    for (app, m) in [("lb", &m1), ("lb", &m2), ("echo", &echo)] {
        env.server.wait_ok(app, &id_of(m), "started", 30).await;
    }
    env.get_ok(port, "lb", "/").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // While m1 fails its check, everything goes to m2.
    for _ in 0..8 {
        let (s, body) = env.get(port, "lb", "/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.starts_with("two"), "m1 is failing its check: {body}");
    }
    // Once it passes, it is back, and load spreads over both.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let (s, body) = env.get(port, "lb", "/").await;
            assert_eq!(s, StatusCode::OK);
            seen.insert(body.lines().next().unwrap_or_default().to_owned());
        }
        if seen.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "m1 never came back: {seen:?}\nlog:\n{}",
            env.server.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", raw))
        .await
        .unwrap();
    c.write_all(b"hello\n").await.unwrap();
    let mut buf = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut buf))
        .await
        .expect("echo through the raw TCP port")
        .unwrap();
    assert_eq!(&buf, b"hello\n");
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", pp))
        .await
        .unwrap();
    let local = c.local_addr().unwrap();
    c.write_all(b"!").await.unwrap();
    let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {pp}\r\n!", local.port());
    let mut buf = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut buf))
        .await
        .expect("echo through the PROXY protocol port")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&buf), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_machines_are_stopped_down_to_min_machines_running() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-idle:1").await;
    let env = ProxyEnv::start(&["--autostop-period", "1s"]).await;
    let port = free_port();
    env.server.create_app("idle").await;
    let services = json!([{"protocol": "tcp", "internal_port": 8080, "autostop": "stop",
        "min_machines_running": 1, "ports": [{"port": port, "handlers": ["http"]}]}]);
    let mut ids = Vec::new();
    for body in ["i1", "i2", "i3"] {
        let m = env
            .server
            .create_machine("idle", http_machine(&image, body, services.clone(), &[]))
            .await;
        ids.push(id_of(&m));
    }
    for id in &ids {
        env.server.wait_ok("idle", id, "started", 30).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut running = 0;
        for id in &ids {
            if env.server.state("idle", id).await == "started" {
                running += 1;
            }
        }
        if running == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{running} machines still run\nlog:\n{}",
            env.server.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // It stays at one, and that one still answers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut running = 0;
    for id in &ids {
        if env.server.state("idle", id).await == "started" {
            running += 1;
        }
    }
    assert_eq!(running, 1, "never below min_machines_running");
    let (s, _) = env.get(port, "idle", "/").await;
    assert_eq!(s, StatusCode::OK);
    let m = env.metrics().await;
    assert_eq!(metric(&m, "hangar_proxy_autostops_total"), 2.0, "{m}");
}

/// A `hangar proxy` process, killed on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hangar_proxy_on_its_own_in_front_of_a_server_without_one() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-alone:1").await;
    let env = ProxyEnv::start(&["--no-proxy"]).await;
    let port = free_port();
    let log = env.server.data.with_file_name("proxy.log");
    let proxy = ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_hangar"))
            .args(["proxy", "--api-url"])
            .arg(format!("http://{}", env.server.addr))
            .args(["--token", common::TOKEN, "--proxy-bind", "127.0.0.1"])
            .args(["--proxy-refresh", "200ms"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning hangar proxy"),
    );
    env.server.create_app("alone").await;
    let services = json!([{"protocol": "tcp", "internal_port": 8080,
        "ports": [{"port": port, "handlers": ["http"]}]}]);
    let m = env
        .server
        .create_machine("alone", http_machine(&image, "alone-body", services, &[]))
        .await;
    let id = id_of(&m);
    env.server.wait_ok("alone", &id, "started", 30).await;
    let body = env.get_ok(port, "alone", "/").await;
    assert!(body.starts_with("alone-body"), "{body}");

    let (s, b) = env
        .server
        .post(&format!("/apps/alone/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "stop: {b}");
    env.server.wait_ok("alone", &id, "stopped", 30).await;
    // Give the proxy a refresh to see it stopped, then a cold request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, body) = env.get(port, "alone", "/").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "{body}\nproxy log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(env.server.state("alone", &id).await, "started");
    drop(proxy);
}

/// The value of `hangar_proxy_machine_load` for machine `id`.
fn machine_load(metrics: &str, id: &str) -> f64 {
    let label = format!("machine=\"{id}\"");
    metrics
        .lines()
        .find(|l| l.starts_with("hangar_proxy_machine_load{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no load of {id} in\n{metrics}"))
}

/// Reads from `stream` until `want` has been seen (at most 10 s).
async fn read_until(stream: &mut tokio::net::TcpStream, want: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "waiting for {want:?}: {other:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn upgraded_connections_are_relayed_both_ways_and_count_as_load() {
    use tokio::io::AsyncWriteExt;
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-upgrade:1").await;
    let env = ProxyEnv::start(&[]).await;
    let port = free_port();
    env.server.create_app("upg").await;
    let services = json!([{"protocol": "tcp", "internal_port": 8080,
        "ports": [{"port": port, "handlers": ["http"]}]}]);
    let m = env
        .server
        .create_machine("upg", http_machine(&image, "upg-body", services, &[]))
        .await;
    let id = id_of(&m);
    env.server.wait_ok("upg", &id, "started", 30).await;
    env.get_ok(port, "upg", "/").await;

    // Without the upgrade headers the machine refuses: the proxy does not
    // invent an upgrade.
    let (s, body) = env.get(port, "upg", "/echo").await;
    assert_eq!(s.as_u16(), 426, "{body}");

    let mut ws = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    ws.write_all(
        b"GET /echo HTTP/1.1\r\nHost: upg.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_until(&mut ws, "\r\n\r\n").await;
    let lower = head.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 101"), "{head}");
    assert!(lower.contains("upgrade: echo"), "{head}");
    assert!(lower.contains("connection: upgrade"), "{head}");
    for word in ["ping", "pong", "a longer message after those"] {
        ws.write_all(format!("{word}\n").as_bytes()).await.unwrap();
        let echoed = read_until(&mut ws, &format!("{word}\n")).await;
        assert_eq!(echoed, format!("{word}\n"));
    }
    // The open tunnel is load on the machine (autostop leaves it alone) ...
    assert_eq!(machine_load(&env.metrics().await, &id), 1.0);
    // ... until the client closes it.
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let load = machine_load(&env.metrics().await, &id);
        if load == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "load stays {load}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ordinary requests still work on the same port.
    let body = env.get_ok(port, "upg", "/").await;
    assert!(body.starts_with("upg-body"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn autostop_suspends_and_a_request_resumes_the_same_processes() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-suspend:1").await;
    let env = ProxyEnv::start(&["--autostop-period", "1s"]).await;
    let port = free_port();
    env.server.create_app("sus").await;
    let services = json!([{"protocol": "tcp", "internal_port": 8080, "autostop": "suspend",
        "concurrency": {"type": "requests"},
        "ports": [{"port": port, "handlers": ["http"]}]}]);
    let m = env
        .server
        .create_machine("sus", http_machine(&image, "sus", services, &[]))
        .await;
    let id = id_of(&m);
    env.server.wait_ok("sus", &id, "started", 30).await;
    let first = env.get_ok(port, "sus", "/count").await;
    assert_eq!(first.trim(), "count=1");
    let pids = env.server.machine_pids(&id);
    assert!(!pids.is_empty());

    // Idle, the lone machine is suspended (not stopped): frozen in place.
    env.server.wait_ok("sus", &id, "suspended", 30).await;
    let m = env.metrics().await;
    assert_eq!(metric(&m, "hangar_proxy_autostops_total"), 1.0, "{m}");
    assert_eq!(env.server.machine_pids(&id), pids, "the processes stay");

    // A request resumes it: the same processes answer, their memory intact.
    let (s, body) = env.get(port, "sus", "/count").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body.trim(), "count=2", "resumed, not booted again");
    assert_eq!(env.server.state("sus", &id).await, "started");
    assert_eq!(env.server.machine_pids(&id), pids);
    let m = env.metrics().await;
    assert!(metric(&m, "hangar_proxy_autostarts_total") >= 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_sent_to_a_machine_suspended_under_it_is_answered_once_resumed() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-frozen:1").await;
    let env = ProxyEnv::start(&[]).await;
    let port = free_port();
    env.server.create_app("frz").await;
    let services = json!([{"protocol": "tcp", "internal_port": 8080, "autostop": "off",
        "concurrency": {"type": "requests"},
        "ports": [{"port": port, "handlers": ["http"]}]}]);
    let m = env
        .server
        .create_machine("frz", http_machine(&image, "frz", services, &[]))
        .await;
    let id = id_of(&m);
    env.server.wait_ok("frz", &id, "started", 30).await;
    let mut count = env
        .get_ok(port, "frz", "/count")
        .await
        .trim()
        .trim_start_matches("count=")
        .parse::<u32>()
        .unwrap();
    // Suspended through the API, then asked at once: the request may reach
    // the frozen machine before the proxy has seen the suspend (a pooled
    // connection to it still looks ready). Either way it is answered by the
    // same processes, resumed.
    for round in 0..5 {
        let (s, b) = env
            .server
            .post(&format!("/apps/frz/machines/{id}/suspend"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        env.server.wait_ok("frz", &id, "suspended", 30).await;
        let asked = tokio::time::timeout(Duration::from_secs(10), env.get(port, "frz", "/count"))
            .await
            .unwrap_or_else(|_| panic!("round {round}: no answer\n{}", env.server.log()));
        assert_eq!(asked.0, StatusCode::OK, "round {round}: {}", asked.1);
        count += 1;
        assert_eq!(asked.1.trim(), format!("count={count}"), "round {round}");
        env.server.wait_ok("frz", &id, "started", 30).await;
    }
}
