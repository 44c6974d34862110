//! The proxy inside `hangar serve`, end to end: a real server with its own
//! bridge, real machines running testapp, real HTTP and TCP clients on
//! loopback (needs root).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Server, pushed_image};
use hangar_test_support::Registry;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TESTAPP: &str = "/usr/local/bin/testapp";

/// A `hangar serve` with its own bridge and the proxy on loopback; the
/// bridge is removed after the server (fields drop in order).
struct ProxyEnv {
    server: Server,
    _bridge: BridgeGuard,
    metrics: SocketAddr,
    http: reqwest::Client,
}

struct BridgeGuard(hangar_agent::network::NetworkConfig);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        if let Err(e) = hangar_agent::network::HostNetwork::teardown(&self.0) {
            eprintln!("proxy test: removing bridge {}: {e}", self.0.bridge);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ProxyEnv {
    async fn start(extra: &[&str]) -> ProxyEnv {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let bridge = format!("tpx{}x{n}", pid % 1_000_000);
        let subnet = format!("10.245.{}.0/24", (pid as u64 * 7 + n as u64) % 250);
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let metrics_s = metrics.to_string();
        let mut args = vec![
            "--network",
            "bridge",
            "--bridge",
            &bridge,
            "--ipv4-subnet",
            &subnet,
            "--no-nat",
            "--proxy-bind",
            "127.0.0.1",
            "--proxy-metrics",
            &metrics_s,
        ];
        args.extend_from_slice(extra);
        let server = Server::start_with(&args).await;
        let prefix =
            hangar_agent::network::Ipv6Prefix::load_or_generate(&server.data.join("ipv6-prefix"))
                .expect("the server's IPv6 prefix");
        let mut net = hangar_agent::network::NetworkConfig::new(prefix);
        net.bridge = bridge;
        net.ipv4_subnet = subnet.parse().expect("test subnet");
        net.nat = false;
        ProxyEnv {
            server,
            _bridge: BridgeGuard(net),
            metrics,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// `GET http://127.0.0.1:port{path}` with `Host: app.localhost`.
    async fn get(&self, port: u16, app: &str, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("host", format!("{app}.localhost"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET :{port}{path} for {app}: {e}"));
        let s = r.status();
        (s, r.text().await.unwrap_or_default())
    }

    /// Retries `get` until it answers 200 (the proxy learns of new machines
    /// within its refresh), at most ~10 s.
    async fn get_ok(&self, port: u16, app: &str, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .header("host", format!("{app}.localhost"))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == StatusCode::OK => return r.text().await.unwrap(),
                other if Instant::now() > deadline => panic!(
                    "GET :{port}{path} for {app} never answered 200: {:?}\nlog:\n{}",
                    other.map(|r| r.status()),
                    self.server.log()
                ),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

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
