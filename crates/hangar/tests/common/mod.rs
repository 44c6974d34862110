//! A real `hangar serve` process for end-to-end tests: started on a free
//! loopback port with a temp data dir, its own cgroup prefix, loopback-only
//! machine networking and a known admin token; SIGKILLed and restarted on
//! demand; on drop every machine is destroyed through the API, the server is
//! killed, and whatever is left under the cgroup prefix is killed and removed.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hangar_test_support::{ImageBuilder, Registry};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The admin token the tests' servers are started with.
pub const TOKEN: &str = "e2e-test-token";

/// Cgroup v1 hierarchies (and the v2 mount) a machine's cgroup may live in.
const HIERARCHIES: &[&str] = &[
    "memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "systemd",
    "unified",
];

pub use hangar_test_support::pilot_binary;

/// Pushes the default test image (busybox + testapp, `serve-http 8080`) under
/// `tag` and returns its full reference.
pub async fn pushed_image(registry: &Registry, tag: &str) -> String {
    let image = ImageBuilder::new().build();
    registry.push(&image, tag).await.unwrap();
    registry.reference(tag)
}

/// A free TCP port on loopback (another process may still take it; the
/// server start is retried on a new port then).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub addr: SocketAddr,
    pub cgroup_prefix: String,
    child: Option<Child>,
    pub client: reqwest::Client,
    /// Networking arguments of `hangar serve`.
    network: Vec<String>,
    /// The test's own bridge (with [`Server::start_bridged`]), removed on drop.
    bridge: Option<hangar_agent::network::NetworkConfig>,
}

impl Server {
    /// Starts `hangar serve` with loopback-only machines (which the proxy
    /// cannot reach, so it is not run) and waits until its API answers.
    pub async fn start() -> Server {
        Self::start_with(&["--network", "none", "--no-proxy"]).await
    }

    /// Starts `hangar serve` with these networking arguments.
    pub async fn start_with(network: &[&str]) -> Server {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut server = Server {
            data,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            cgroup_prefix: format!("hangar-e2e-{}-{n}", std::process::id()),
            child: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
            tmp,
            network: network.iter().map(|s| s.to_string()).collect(),
            bridge: None,
        };
        server.spawn().await;
        server
    }

    /// Starts `hangar serve` with bridge networking on a bridge and an IPv4
    /// subnet of its own (no NAT) and its proxy on loopback: machines get
    /// addresses the host reaches (`private_ip`, IPv6, and IPv4). The bridge
    /// and its firewall rules are removed when the server is dropped.
    pub async fn start_bridged() -> Server {
        Self::start_bridged_with(&[]).await
    }

    /// [`start_bridged`](Self::start_bridged) with more arguments of `hangar serve`.
    pub async fn start_bridged_with(extra: &[&str]) -> Server {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Interface names: at most 15 bytes, and not Hangar's default prefixes.
        let bridge = format!("tbr{}x{n}", pid % 1_000_000);
        let subnet = format!("10.246.{}.0/24", (pid as u64 * 7 + n as u64) % 250);
        let mut args = vec!["--proxy-bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        Self::start_on_bridge(&bridge, &subnet, &args).await
    }

    /// `hangar serve` with bridge networking on `bridge` and `subnet` (no
    /// NAT) and `extra` arguments; the bridge and its firewall rules are
    /// removed when the server is dropped, after its machines.
    pub async fn start_on_bridge(bridge: &str, subnet: &str, extra: &[&str]) -> Server {
        let mut args = vec![
            "--network",
            "bridge",
            "--bridge",
            bridge,
            "--ipv4-subnet",
            subnet,
            "--no-nat",
        ];
        args.extend_from_slice(extra);
        let mut server = Self::start_with(&args).await;
        let prefix =
            hangar_agent::network::Ipv6Prefix::load_or_generate(&server.data.join("ipv6-prefix"))
                .expect("the server's IPv6 prefix");
        let mut net = hangar_agent::network::NetworkConfig::new(prefix);
        net.set_bridge(bridge);
        net.ipv4_subnet = subnet.parse().expect("test subnet");
        net.nat = false;
        server.bridge = Some(net);
        server
    }

    fn log_path(&self) -> PathBuf {
        self.tmp.path().join("serve.log")
    }

    /// The server's log so far (stderr of every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Spawns the server process on the same data dir and waits (at most 30
    /// s) until `GET /v1/apps` answers.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        for attempt in 0..5 {
            if attempt > 0 {
                self.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_hangar"))
                .arg("serve")
                .arg("--data-dir")
                .arg(&self.data)
                .arg("--listen")
                .arg(self.addr.to_string())
                .args(&self.network)
                .arg("--pilot")
                .arg(pilot_binary())
                .arg("--cgroup-prefix")
                .arg(&self.cgroup_prefix)
                .env("HANGAR_API_TOKEN", TOKEN)
                // HANGAR_TEST_LOG (e.g. `info,hangar_proxy=debug`) to see more.
                .env(
                    "HANGAR_LOG",
                    std::env::var("HANGAR_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawning hangar serve");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    self.child = None;
                    if self.log().contains("--listen") {
                        break; // port taken meanwhile: try another
                    }
                    panic!("hangar serve exited with {status}:\n{}", self.log());
                }
                if let Ok(r) = self
                    .client
                    .get(self.url("/apps"))
                    .bearer_auth(TOKEN)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    assert_eq!(r.status(), StatusCode::OK, "GET /v1/apps after start");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.child.is_some() {
                panic!("hangar serve did not answer in 30 s:\n{}", self.log());
            }
        }
        panic!("hangar serve could not bind a port:\n{}", self.log());
    }

    /// SIGKILLs the server process (machines keep running).
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/v1{path}", self.addr)
    }

    /// One API call; the body is parsed as JSON (`Null` when empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .bearer_auth(TOKEN);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None, &[]).await
    }

    pub async fn create_app(&self, app: &str) {
        let (s, b) = self.post("/apps", json!({"app_name": app})).await;
        assert_eq!(s, StatusCode::CREATED, "create app {app}: {b}");
    }

    /// Creates a machine and returns its JSON.
    pub async fn create_machine(&self, app: &str, body: Value) -> Value {
        let (s, b) = self.post(&format!("/apps/{app}/machines"), body).await;
        assert_eq!(s, StatusCode::OK, "create machine in {app}: {b}");
        b
    }

    pub async fn machine(&self, app: &str, id: &str) -> Value {
        let (s, b) = self.get(&format!("/apps/{app}/machines/{id}")).await;
        assert_eq!(s, StatusCode::OK, "get machine {id}: {b}");
        b
    }

    pub async fn state(&self, app: &str, id: &str) -> String {
        self.machine(app, id).await["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `GET .../wait?state=STATE&timeout=SECS`, returning the status.
    pub async fn wait(&self, app: &str, id: &str, state: &str, secs: u32) -> (StatusCode, Value) {
        self.get(&format!(
            "/apps/{app}/machines/{id}/wait?state={state}&timeout={secs}"
        ))
        .await
    }

    /// Waits for `state`, panicking with the machine and the server log when
    /// it is not reached in `secs`.
    pub async fn wait_ok(&self, app: &str, id: &str, state: &str, secs: u32) {
        let (s, b) = self.wait(app, id, state, secs).await;
        if s != StatusCode::OK {
            let m = self.machine(app, id).await;
            panic!(
                "machine {id} never reached {state}: {s} {b}\nmachine: {m:#}\nlog:\n{}",
                self.log()
            );
        }
    }

    pub async fn events(&self, app: &str, id: &str) -> Vec<Value> {
        let (s, b) = self.get(&format!("/apps/{app}/machines/{id}/events")).await;
        assert_eq!(s, StatusCode::OK, "events of {id}: {b}");
        b.as_array().cloned().unwrap_or_default()
    }

    /// `POST .../exec`; returns the status and the body.
    pub async fn exec(
        &self,
        app: &str,
        id: &str,
        container: Option<&str>,
        cmd: &[&str],
    ) -> (StatusCode, Value) {
        let mut body = json!({"command": cmd, "timeout": 10});
        if let Some(c) = container {
            body["container"] = json!(c);
        }
        self.post(&format!("/apps/{app}/machines/{id}/exec"), body)
            .await
    }

    /// Runs `cmd` until it exits 0 (servers take a moment to listen), at most
    /// ~10 s; returns its stdout.
    pub async fn exec_ok(
        &self,
        app: &str,
        id: &str,
        container: Option<&str>,
        cmd: &[&str],
    ) -> String {
        let mut last = Value::Null;
        for _ in 0..100 {
            let (s, b) = self.exec(app, id, container, cmd).await;
            if s == StatusCode::OK && b["exit_code"] == json!(0) {
                return b["stdout"].as_str().unwrap_or_default().to_owned();
            }
            last = json!({"status": s.as_u16(), "body": b});
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{cmd:?} in {id} never succeeded: {last}\nlog:\n{}",
            self.log()
        );
    }

    /// Every machine of every app, as `(app, machine)`.
    pub async fn all_machines(&self) -> Vec<(String, Value)> {
        let (s, apps) = self.get("/apps").await;
        assert_eq!(s, StatusCode::OK, "{apps}");
        let apps = apps["apps"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for a in apps {
            let name = a["name"].as_str().unwrap_or_default().to_owned();
            let (s, ms) = self.get(&format!("/apps/{name}/machines")).await;
            assert_eq!(s, StatusCode::OK, "{ms}");
            for m in ms.as_array().cloned().unwrap_or_default() {
                out.push((name.clone(), m));
            }
        }
        out
    }

    /// The cgroup directories of machine `id` under this server's prefix.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        HIERARCHIES
            .iter()
            .map(|h| {
                Path::new("/sys/fs/cgroup")
                    .join(h)
                    .join(&self.cgroup_prefix)
                    .join(id)
            })
            .filter(|p| p.exists())
            .collect()
    }

    /// Every directory below this server's cgroup prefix (none once all its
    /// machines are stopped or destroyed).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in HIERARCHIES {
            let root = Path::new("/sys/fs/cgroup")
                .join(h)
                .join(&self.cgroup_prefix);
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
        out
    }
}

impl Server {
    /// The live processes of machine `id`: pilot (its pid file) and whatever
    /// runs in the machine's cgroups.
    pub fn machine_pids(&self, id: &str) -> Vec<i32> {
        let mut out = Vec::new();
        let pidfile = self.data.join("machines").join(id).join("pilot.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if alive(pid) && exe.to_string_lossy().contains("pilot") {
                out.push(pid);
            }
        }
        for dir in self.cgroup_dirs(id) {
            collect_procs(&dir, &mut out);
        }
        out.retain(|p| alive(*p));
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            collect_procs(&e.path(), out);
        }
    }
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn kill_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            kill_tree(&entry.path());
        }
    }
    for _ in 0..100 {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Destroy the machines through the API (on a thread with its own
        // runtime: drop may run inside the test's runtime).
        if self.child.is_some() {
            let addr = self.addr;
            let client = self.client.clone();
            let view = ServerView { addr, client };
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(180), view.destroy_all()).await;
                });
            })
            .join();
        }
        self.sigkill();
        for h in HIERARCHIES {
            let root = Path::new("/sys/fs/cgroup")
                .join(h)
                .join(&self.cgroup_prefix);
            if root.exists() {
                kill_tree(&root);
            }
        }
        if let Some(net) = self.bridge.take()
            && let Err(e) = hangar_agent::network::HostNetwork::teardown(&net)
        {
            eprintln!("test server: removing bridge {}: {e}", net.bridge);
        }
    }
}

/// Just enough of a server to destroy its machines from another thread.
struct ServerView {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl ServerView {
    async fn destroy_all(&self) {
        let base = format!("http://{}/v1", self.addr);
        let get = |p: String| {
            let c = self.client.clone();
            async move {
                c.get(p)
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .ok()?
                    .json::<Value>()
                    .await
                    .ok()
            }
        };
        let Some(apps) = get(format!("{base}/apps")).await else {
            return;
        };
        for a in apps["apps"].as_array().cloned().unwrap_or_default() {
            let app = a["name"].as_str().unwrap_or_default().to_owned();
            let Some(ms) = get(format!("{base}/apps/{app}/machines")).await else {
                continue;
            };
            for m in ms.as_array().cloned().unwrap_or_default() {
                let id = m["id"].as_str().unwrap_or_default();
                let _ = self
                    .client
                    .delete(format!("{base}/apps/{app}/machines/{id}?force=true"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await;
            }
        }
    }
}

/// A `hangar serve` with its own bridge (removed with it) and the proxy on
/// loopback, with its metrics endpoint.
pub struct ProxyEnv {
    pub server: Server,
    pub metrics: SocketAddr,
    pub http: reqwest::Client,
}

impl ProxyEnv {
    pub async fn start(extra: &[&str]) -> ProxyEnv {
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let metrics_s = metrics.to_string();
        let mut args = vec!["--proxy-metrics", metrics_s.as_str()];
        args.extend_from_slice(extra);
        let server = Server::start_bridged_with(&args).await;
        ProxyEnv {
            server,
            metrics,
            // A connection per request: under the default concurrency type
            // (`connections`) an idle pooled connection would hold a unit of
            // load on its machine and keep its later requests there.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// `GET http://127.0.0.1:port{path}` with `Host: app.localhost`.
    pub async fn get(&self, port: u16, app: &str, path: &str) -> (StatusCode, String) {
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
    pub async fn get_ok(&self, port: u16, app: &str, path: &str) -> String {
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

    pub async fn metrics(&self) -> String {
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
