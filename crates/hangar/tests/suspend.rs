//! Suspend and resume end to end (needs root): a real `hangar serve` with
//! bridge networking, machines from the test image serving HTTP on their own
//! addresses. Suspend freezes a machine's processes in place (its port stops
//! answering, its processes and memory stay); start resumes the same
//! processes; stop, destroy and a server restart handle suspended machines.
//!
//! The resume benchmark is ignored by default:
//!
//! ```text
//! cargo test -p hangar --release --test suspend -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use common::{Server, alive, pushed_image};
use hangar_test_support::Registry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TESTAPP: &str = "/usr/local/bin/testapp";

fn id_of(m: &Value) -> String {
    m["id"].as_str().expect("machine id").to_owned()
}

/// An HTTP client that opens a new connection for every request (a kept
/// connection to a frozen machine would hang the next request).
fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .unwrap()
}

/// A started http machine of app `app`; returns its id and its `http://IPv4:8080`.
async fn http_machine(server: &Server, app: &str, image: &str) -> (String, String) {
    server.create_app(app).await;
    let m = server
        .create_machine(
            app,
            json!({"config": {"image": image,
                              "init": {"cmd": [TESTAPP, "serve-http", "8080"]}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok(app, &id, "started", 30).await;
    let m = server.machine(app, &id).await;
    let v4 = m["private_ipv4"]
        .as_str()
        .unwrap_or_else(|| panic!("no private_ipv4 in {m:#}"))
        .to_owned();
    let base = format!("http://{v4}:8080");
    // The server takes a moment to listen after `started`.
    let probe = client(Duration::from_secs(1));
    for _ in 0..100 {
        if probe.get(format!("{base}/health")).send().await.is_ok() {
            return (id, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} never answered\nlog:\n{}", server.log());
}

/// `GET {base}/count`: the machine's in-memory counter after one more.
async fn count(base: &str) -> u64 {
    let r = client(Duration::from_secs(2))
        .get(format!("{base}/count"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{base}/count: {e}"));
    let text = r.text().await.unwrap();
    text.trim()
        .strip_prefix("count=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{base}/count answered {text:?}"))
}

/// Whether `{base}/health` answers within 300 ms.
async fn answers(base: &str) -> bool {
    client(Duration::from_millis(300))
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok()
}

async fn action(server: &Server, app: &str, id: &str, what: &str) -> (StatusCode, Value) {
    server
        .post(&format!("/apps/{app}/machines/{id}/{what}"), json!({}))
        .await
}

fn error_of(b: &Value) -> String {
    b["error"].as_str().unwrap_or_default().to_owned()
}

/// Suspends `id` and checks the answer, the state, and the events.
async fn suspend_ok(server: &Server, app: &str, id: &str) {
    let (s, b) = action(server, app, id, "suspend").await;
    assert_eq!(s, StatusCode::OK, "suspend: {b}\nlog:\n{}", server.log());
    assert_eq!(b, json!({"ok": true}));
    server.wait_ok(app, id, "suspended", 10).await;
    assert_eq!(server.state(app, id).await, "suspended");
}

#[tokio::test(flavor = "multi_thread")]
async fn suspended_machine_keeps_its_processes_and_memory_and_resumes_at_once() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/suspend:1").await;
    let server = Server::start_bridged().await;
    let app = "e2e-suspend";
    let (id, base) = http_machine(&server, app, &image).await;
    assert_eq!(count(&base).await, 1);
    assert_eq!(count(&base).await, 2);
    let pids = server.machine_pids(&id);
    assert!(pids.len() >= 2, "pilot and testapp run: {pids:?}");
    let ip = server.machine(app, &id).await["private_ip"].clone();

    suspend_ok(&server, app, &id).await;
    // Frozen: the port does not answer, but every process is still there.
    assert!(!answers(&base).await, "a suspended machine answered");
    assert_eq!(server.machine_pids(&id), pids, "the processes stay");
    let m = server.machine(app, &id).await;
    assert_eq!(m["private_ip"], ip, "the machine keeps its address");
    let states: Vec<String> = server
        .events(app, &id)
        .await
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["status"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        states.contains(&"suspend:suspending".to_owned())
            && states.contains(&"suspend:suspended".to_owned()),
        "events: {states:?}"
    );

    // What would talk to the frozen processes is refused, clearly.
    for what in ["suspend", "restart"] {
        let (s, b) = action(&server, app, &id, what).await;
        assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{what}: {b}");
        assert!(error_of(&b).contains("suspended"), "{what}: {b}");
    }
    let (s, b) = server.exec(app, &id, None, &["true"]).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "exec: {b}");
    assert!(error_of(&b).contains("it is suspended"), "exec: {b}");
    let (s, b) = server.get(&format!("/apps/{app}/machines/{id}/ps")).await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "ps: {b}");
    assert!(error_of(&b).contains("it is suspended"), "ps: {b}");
    let (s, b) = server
        .post(
            &format!("/apps/{app}/machines/{id}/signal"),
            json!({"signal": "SIGTERM"}),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "signal: {b}");
    assert_eq!(server.machine_pids(&id), pids, "nothing was delivered");

    // Resume: the same processes continue; the counter kept its value.
    let (s, b) = action(&server, app, &id, "start").await;
    assert_eq!(s, StatusCode::OK, "start: {b}");
    assert_eq!(b["previous_state"], json!("suspended"));
    assert_eq!(server.state(app, &id).await, "started");
    assert_eq!(count(&base).await, 3, "the counter in memory survived");
    assert_eq!(server.machine_pids(&id), pids, "nothing was relaunched");
    let resumed = server
        .events(app, &id)
        .await
        .into_iter()
        .any(|e| e["type"] == json!("start") && e["request"]["resumed"] == json!(true));
    assert!(resumed, "a start event says the machine resumed");
    let exits: Vec<Value> = server
        .events(app, &id)
        .await
        .into_iter()
        .filter(|e| e["type"] == json!("exit"))
        .collect();
    assert!(exits.is_empty(), "nothing exited while frozen: {exits:?}");
    // And it runs as before: exec works again.
    let out = server
        .exec_ok(app, &id, None, &[TESTAPP, "cat", "/etc/hostname"])
        .await;
    assert_eq!(out.trim(), id);

    // The CLI: `hangar machine suspend`, then `start` resumes.
    let out = cli(&server, &["machine", "suspend", "-a", app, &id]).await;
    assert_eq!(out.trim(), format!("Suspended {id}"));
    assert_eq!(server.state(app, &id).await, "suspended");
    assert!(!answers(&base).await, "suspended through the CLI");
    let out = cli(&server, &["machine", "start", "-a", app, &id]).await;
    assert_eq!(out.trim(), format!("Started {id}"));
    assert_eq!(count(&base).await, 4);
    assert_eq!(server.machine_pids(&id), pids);
}

/// Runs `hangar ARGS` against `server`; returns its stdout (it must exit 0).
async fn cli(server: &Server, args: &[&str]) -> String {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hangar"));
    c.args(args)
        .env("HANGAR_API_URL", format!("http://{}", server.addr))
        .env("HANGAR_API_TOKEN", common::TOKEN)
        .env("HANGAR_LOG", "warn")
        .env_remove("HANGAR_APP")
        .env_remove("FLY_API_TOKEN");
    let out = tokio::task::spawn_blocking(move || c.output().expect("running hangar"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "hangar {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_update_and_destroy_of_suspended_machines_leave_nothing() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/suspend-stop:1").await;
    let server = Server::start_bridged().await;
    let app = "e2e-suspend-stop";
    let (id, base) = http_machine(&server, app, &image).await;
    let pids = server.machine_pids(&id);

    // Stop: thawed, stopped the usual way, nothing left.
    suspend_ok(&server, app, &id).await;
    let (s, b) = action(&server, app, &id, "stop").await;
    assert_eq!(s, StatusCode::OK, "stop of a suspended machine: {b}");
    server.wait_ok(app, &id, "stopped", 30).await;
    assert!(pids.iter().all(|p| !alive(*p)), "processes left: {pids:?}");
    assert_eq!(server.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
    // It starts cold again afterwards, from a fresh counter.
    let (s, b) = action(&server, app, &id, "start").await;
    assert_eq!(s, StatusCode::OK, "start after stop: {b}");
    server.wait_ok(app, &id, "started", 30).await;
    let mut first = None;
    for _ in 0..100 {
        if answers(&base).await {
            first = Some(count(&base).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first, Some(1), "a stopped machine starts afresh");

    // Destroy without force: a suspended machine does not run for its user.
    let pids = server.machine_pids(&id);
    suspend_ok(&server, app, &id).await;
    let (s, b) = server.delete(&format!("/apps/{app}/machines/{id}")).await;
    assert_eq!(s, StatusCode::OK, "destroy of a suspended machine: {b}");
    server.wait_ok(app, &id, "destroyed", 30).await;
    assert!(pids.iter().all(|p| !alive(*p)), "processes left: {pids:?}");

    // Destroy with force.
    let m = server
        .create_machine(
            app,
            json!({"config": {"image": image,
                              "init": {"cmd": [TESTAPP, "serve-http", "8080"]}}}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok(app, &id, "started", 30).await;

    // Update: the suspended run is thawed and stopped, the new version starts.
    let pids = server.machine_pids(&id);
    suspend_ok(&server, app, &id).await;
    let (s, b) = server
        .post(
            &format!("/apps/{app}/machines/{id}"),
            json!({"config": {"image": image,
                              "init": {"cmd": [TESTAPP, "serve-http", "8080", "--body", "v2"]}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "update of a suspended machine: {b}");
    server.wait_ok(app, &id, "started", 30).await;
    assert!(pids.iter().all(|p| !alive(*p)), "old run left: {pids:?}");
    let out = server
        .exec_ok(
            app,
            &id,
            None,
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
        )
        .await;
    assert!(out.starts_with("v2"), "the new version runs: {out}");

    let pids = server.machine_pids(&id);
    suspend_ok(&server, app, &id).await;
    let (s, b) = server
        .delete(&format!("/apps/{app}/machines/{id}?force=true"))
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "forced destroy of a suspended machine: {b}"
    );
    server.wait_ok(app, &id, "destroyed", 30).await;
    assert!(pids.iter().all(|p| !alive(*p)), "processes left: {pids:?}");
    assert_eq!(server.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_needs_a_started_machine_and_the_lease() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/suspend-state:1").await;
    let server = Server::start_bridged().await;
    let app = "e2e-suspend-state";
    server.create_app(app).await;
    let m = server
        .create_machine(
            app,
            json!({"config": {"image": image}, "skip_launch": true}),
        )
        .await;
    let id = id_of(&m);
    server.wait_ok(app, &id, "created", 30).await;
    let (s, b) = action(&server, app, &id, "suspend").await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{b}");
    assert!(
        error_of(&b).contains("it is created (possible when started)"),
        "{b}"
    );
    let (s, b) = action(&server, app, &id, "start").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    server.wait_ok(app, &id, "started", 30).await;

    // Someone else holds the lease: refused like a stop; the holder may.
    let base = format!("/apps/{app}/machines/{id}");
    let (s, lease) = server
        .post(&format!("{base}/lease"), json!({"ttl": 60}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{lease}");
    let nonce = lease["nonce"].as_str().expect("nonce").to_owned();
    let (s, b) = action(&server, app, &id, "suspend").await;
    assert_eq!(s, StatusCode::CONFLICT, "suspend without the nonce: {b}");
    assert_eq!(server.state(app, &id).await, "started");
    let (s, b) = leased(&server, &base, "suspend", &nonce).await;
    assert_eq!(s, StatusCode::OK, "suspend with the nonce: {b}");
    server.wait_ok(app, &id, "suspended", 10).await;
    let (s, b) = leased(&server, &base, "stop", &nonce).await;
    assert_eq!(s, StatusCode::OK, "stop with the nonce: {b}");
    server.wait_ok(app, &id, "stopped", 30).await;
    let (s, b) = action(&server, app, &id, "suspend").await;
    assert_eq!(s, StatusCode::CONFLICT, "still leased: {b}");
    let (s, b) = leased(&server, &base, "suspend", &nonce).await;
    assert_eq!(
        s,
        StatusCode::PRECONDITION_FAILED,
        "suspend when stopped: {b}"
    );
    assert!(error_of(&b).contains("it is stopped"), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn suspended_machines_stay_suspended_across_a_server_restart() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/suspend-restart:1").await;
    let mut server = Server::start_bridged().await;
    let app = "e2e-suspend-restart";
    let (id, base) = http_machine(&server, app, &image).await;
    assert_eq!(count(&base).await, 1);
    let pids = server.machine_pids(&id);
    suspend_ok(&server, app, &id).await;

    server.sigkill();
    server.spawn().await;
    assert_eq!(server.state(app, &id).await, "suspended");
    assert_eq!(server.machine_pids(&id), pids, "the processes survived");
    assert!(!answers(&base).await, "still frozen after the restart");
    let (s, b) = action(&server, app, &id, "start").await;
    assert_eq!(s, StatusCode::OK, "resume after a restart: {b}");
    assert_eq!(count(&base).await, 2, "memory kept across the restart");
    assert_eq!(server.machine_pids(&id), pids);

    // A suspended machine whose processes are gone when the server comes
    // back (as after a host reboot) is stopped.
    suspend_ok(&server, app, &id).await;
    server.sigkill();
    let freezer = server
        .cgroup_dirs(&id)
        .into_iter()
        .find(|d| d.join("freezer.state").exists());
    if let Some(dir) = &freezer {
        // v1: a frozen task dies only once thawed.
        std::fs::write(dir.join("freezer.state"), "THAWED").unwrap();
    }
    for p in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for _ in 0..200 {
        if pids.iter().all(|p| !alive(*p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(pids.iter().all(|p| !alive(*p)), "killed: {pids:?}");
    server.spawn().await;
    server.wait_ok(app, &id, "stopped", 10).await;
    assert_eq!(server.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
    let (s, b) = action(&server, app, &id, "start").await;
    assert_eq!(s, StatusCode::OK, "cold start after the loss: {b}");
    server.wait_ok(app, &id, "started", 30).await;
}

/// `POST {base}/{what}` with the lease's nonce.
async fn leased(server: &Server, base: &str, what: &str, nonce: &str) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            &format!("{base}/{what}"),
            Some(json!({})),
            &[("fly-machine-lease-nonce", nonce)],
        )
        .await
}

/// Time from `POST .../start` to the machine's port answering, resuming a
/// suspended machine vs starting a stopped one.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_resume_vs_cold_start() {
    const RUNS: usize = 10;
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/suspend-bench:1").await;
    let server = Server::start_bridged().await;
    let app = "e2e-suspend-bench";
    let (id, base) = http_machine(&server, app, &image).await;
    let probe = client(Duration::from_millis(250));
    let start_until_answering = || async {
        let t = Instant::now();
        let (s, b) = action(&server, app, &id, "start").await;
        assert_eq!(s, StatusCode::OK, "start: {b}");
        if std::env::var_os("SUSPEND_BENCH_VERBOSE").is_some() {
            eprintln!("  POST start answered after {:?}", t.elapsed());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if probe.get(format!("{base}/health")).send().await.is_ok() {
                return t.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("{base} never answered after a start");
    };
    let mut resume = Vec::new();
    let mut cold = Vec::new();
    for _ in 0..RUNS {
        suspend_ok(&server, app, &id).await;
        resume.push(start_until_answering().await);
        let (s, b) = action(&server, app, &id, "stop").await;
        assert_eq!(s, StatusCode::OK, "stop: {b}");
        server.wait_ok(app, &id, "stopped", 30).await;
        cold.push(start_until_answering().await);
        server.wait_ok(app, &id, "started", 30).await;
    }
    let row = |what: &str, v: &mut Vec<Duration>| {
        v.sort();
        let f = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "| {what} | {:.2} | {:.2} | {:.2} |",
            f(v[0]),
            f(v[v.len() / 2]),
            f(v[v.len() - 1])
        )
    };
    let resume = row("resume of a suspended machine", &mut resume);
    let cold = row("start of a stopped machine", &mut cold);
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let report = format!(
        "# Suspend: resume vs cold start\n\n\
         Command (as root, from the workspace root):\n\n\
         ```\ncargo test -p hangar --release --test suspend -- --ignored --nocapture\n```\n\n\
         One `hangar serve` ({build} build) with a bridge network; one machine of the test \
         image (`testapp serve-http 8080`). Each run: `POST .../suspend` (answered once \
         `suspended`), then the time from `POST .../start` to `GET /health` on the \
         machine's IPv4 address answering from the host; then `POST .../stop`, and the same \
         time from `POST .../start` of the stopped machine. {RUNS} runs each.\n\n\
         | POST start → port answers | min ms | median ms | max ms |\n|---|---|---|---|\n\
         {resume}\n{cold}\n"
    );
    println!("{report}");
    let path = hangar_test_support::workspace_root().join("bench/results/suspend.md");
    std::fs::write(&path, report).unwrap();
    println!("written to {}", path.display());
}
