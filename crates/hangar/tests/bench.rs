//! Benchmarks of `hangar serve` over its API (ignored by default; needs root):
//!
//! ```text
//! cargo test -p hangar --release --test bench -- --ignored --nocapture
//! ```
//!
//! Measures create (cached image) → `started`, start of a stopped machine →
//! `started` and → its port answering from the host, stop, 100 machines
//! created and started, and the server's RSS with many machines; and, in the
//! same run, `runc run` of the same image's rootfs as the floor. Writes the
//! figures to `bench/results/serve.md`.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use hangar_test_support::{ImageBuilder, Registry, unpacked_layers, workspace_root};
use reqwest::StatusCode;
use serde_json::{Value, json};

const APP: &str = "bench";
/// Iterations of each single-machine measurement.
const ITERATIONS: usize = 20;
/// Machines created and started at once.
const FLEET: usize = 100;
/// Machines created and never started (`skip_launch`), for the RSS figure.
const IDLE: usize = 1000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `(p50, p90)` in milliseconds.
fn percentiles(samples: &[Duration]) -> (f64, f64) {
    let mut v: Vec<f64> = samples.iter().copied().map(ms).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9))
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Polls `addr` with an HTTP GET until it answers 200 (at most 10 s).
async fn until_answers(client: &reqwest::Client, url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(url)
            .timeout(Duration::from_millis(500))
            .send()
            .await
            && r.status() == StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

async fn create_started(server: &Server, config: &Value) -> (String, Duration) {
    let t = Instant::now();
    let m = server.create_machine(APP, config.clone()).await;
    let id = m["id"].as_str().unwrap().to_owned();
    server.wait_ok(APP, &id, "started", 60).await;
    (id, t.elapsed())
}

async fn start_started(server: &Server, id: &str) -> Duration {
    let t = Instant::now();
    let (s, b) = server
        .post(&format!("/apps/{APP}/machines/{id}/start"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "start {id}: {b}");
    server.wait_ok(APP, id, "started", 60).await;
    t.elapsed()
}

async fn stop_stopped(server: &Server, id: &str) -> Duration {
    let t = Instant::now();
    let (s, b) = server
        .post(&format!("/apps/{APP}/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "stop {id}: {b}");
    server.wait_ok(APP, id, "stopped", 60).await;
    t.elapsed()
}

/// A runc bundle whose rootfs is the image's layers under a read-only
/// overlay; unmounted on drop.
struct RuncBundle {
    dir: tempfile::TempDir,
}

impl RuncBundle {
    fn new(layers: &[PathBuf], args: &[&str]) -> RuncBundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("lowerdir={}", lower.join(":")))
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success(), "mounting the overlay rootfs");
        let status = Command::new("runc")
            .arg("spec")
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "runc spec");
        let path = dir.path().join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        spec["root"]["readonly"] = json!(true);
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
        RuncBundle { dir }
    }

    fn run(&self, name: &str) -> Duration {
        let t = Instant::now();
        let status = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .unwrap();
        let elapsed = t.elapsed();
        assert!(status.success(), "runc run {name}");
        elapsed
    }
}

impl Drop for RuncBundle {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(self.dir.path().join("rootfs"))
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: cargo test -p hangar --release --test bench -- --ignored --nocapture"]
async fn serve_benchmarks() {
    let pid = std::process::id();
    let bridge = format!("bnch{}", pid % 100_000);
    // Room for the 1000 idle machines and the rest.
    let subnet = format!("10.{}.{}.0/21", 232 + pid % 8, (pid / 8 % 32) * 8);
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new().build();
    registry.push(&image, "bench/app:1").await.unwrap();
    let reference = registry.reference("bench/app:1");
    let server = Server::start_on_bridge(&bridge, &subnet, &[]).await;
    let server_pid = server.pid().expect("server runs");
    server.create_app(APP).await;
    let config = json!({"config": {"image": reference, "guest": {"cpus": 1, "memory_mb": 128}}});
    let mut report = String::new();

    // The first machine pulls and unpacks the image; later creates use the cache.
    let t = Instant::now();
    let (first, _) = create_started(&server, &config).await;
    let first_pull = t.elapsed();

    // Create → started, cached image.
    let mut create = Vec::new();
    let mut ids = vec![first];
    for _ in 0..ITERATIONS {
        let (id, d) = create_started(&server, &config).await;
        create.push(d);
        ids.push(id);
    }
    // Stop, then start of a stopped machine → started, and → port answering.
    let mut stop = Vec::new();
    let mut start = Vec::new();
    let mut start_port = Vec::new();
    let client = reqwest::Client::new();
    let mut port_note = String::new();
    for id in ids.iter().take(ITERATIONS) {
        stop.push(stop_stopped(&server, id).await);
        start.push(start_started(&server, id).await);
    }
    for id in ids.iter().take(ITERATIONS) {
        stop_stopped(&server, id).await;
        // The machine keeps its addresses while stopped.
        let Some(ip) = server.machine(APP, id).await["private_ipv4"]
            .as_str()
            .map(str::to_owned)
        else {
            port_note = format!("machine {id} has no private_ipv4");
            break;
        };
        let t = Instant::now();
        let (s, b) = server
            .post(&format!("/apps/{APP}/machines/{id}/start"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "start {id}: {b}");
        if !until_answers(&client, &format!("http://{ip}:8080/")).await {
            port_note = format!("{ip}:8080 of {id} never answered");
            break;
        }
        start_port.push(t.elapsed());
    }

    // The floor: runc run of the same image's rootfs.
    let layers = unpacked_layers(&image).unwrap();
    let bundle = RuncBundle::new(&layers, &["/bin/true"]);
    let app_bundle = RuncBundle::new(&layers, &["/usr/local/bin/testapp", "exit", "0"]);
    let mut runc_true = Vec::new();
    let mut runc_testapp = Vec::new();
    for i in 0..ITERATIONS {
        runc_true.push(bundle.run(&format!("hangar-bench-{pid}-t{i}")));
        runc_testapp.push(app_bundle.run(&format!("hangar-bench-{pid}-a{i}")));
    }
    drop(bundle);
    drop(app_bundle);

    // 100 machines created and started at once.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..FLEET {
        let (c, url, cfg, wait_base) = (
            server.client.clone(),
            server.url(&format!("/apps/{APP}/machines")),
            config.clone(),
            server.url(&format!("/apps/{APP}/machines")),
        );
        tasks.push(tokio::spawn(async move {
            let m: Value = c
                .post(url)
                .bearer_auth(common::TOKEN)
                .json(&cfg)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = m["id"]
                .as_str()
                .unwrap_or_else(|| panic!("create: {m}"))
                .to_owned();
            let r = c
                .get(format!("{wait_base}/{id}/wait?state=started&timeout=60"))
                .bearer_auth(common::TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{id} started");
            id
        }));
    }
    let mut fleet = Vec::new();
    for t in tasks {
        fleet.push(t.await.unwrap());
    }
    let fleet_time = t.elapsed();
    let running_now = FLEET + ITERATIONS + 1;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_running = rss_mib(server_pid);
    // 1000 more machines that are created but not started (16 creates in
    // flight at a time): the RSS with those and the fleet running.
    let idle_config = {
        let mut c = config.clone();
        c["skip_launch"] = json!(true);
        c
    };
    let t = Instant::now();
    let mut idle_created = 0usize;
    for chunk in (0..IDLE).collect::<Vec<_>>().chunks(16) {
        let mut tasks = Vec::new();
        for _ in chunk {
            let (c, url, cfg) = (
                server.client.clone(),
                server.url(&format!("/apps/{APP}/machines")),
                idle_config.clone(),
            );
            tasks.push(tokio::spawn(async move {
                c.post(url)
                    .bearer_auth(common::TOKEN)
                    .json(&cfg)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }));
        }
        for t in tasks {
            idle_created += usize::from(t.await.unwrap());
        }
    }
    let idle_time = t.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_with_idle = rss_mib(server_pid);
    // Stop the fleet: the RSS with those stopped.
    for id in &fleet {
        stop_stopped(&server, id).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_stopped = rss_mib(server_pid);

    let (c50, c90) = percentiles(&create);
    let (s50, s90) = percentiles(&start);
    let (x50, x90) = percentiles(&stop);
    let (t50, t90) = percentiles(&runc_true);
    let (a50, a90) = percentiles(&runc_testapp);
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(report, "# `hangar serve` benchmarks\n");
    let _ = writeln!(
        report,
        "Command (as root, from the workspace root):\n\n```\ncargo test -p hangar --release --test bench -- --ignored --nocapture\n```\n"
    );
    let _ = writeln!(
        report,
        "Run: {date}, {} cores, kernel {}. One `hangar serve` (release build) with a bridge network, \
         driven over its HTTP API on loopback; single-container machines of the test image \
         (busybox + testapp, `testapp serve-http 8080`), guest 1 CPU / 128 MB. Times are from the \
         client: the API call, then `GET .../wait?state=...` returning. {ITERATIONS} iterations each.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
    );
    let _ = writeln!(
        report,
        "| measurement | p50 ms | p90 ms | p50 vs runc run /bin/true |"
    );
    let _ = writeln!(report, "|---|---|---|---|");
    let row = |r: &mut String, name: &str, p50: f64, p90: f64| {
        let _ = writeln!(r, "| {name} | {p50:.1} | {p90:.1} | {:.2}x |", p50 / t50);
    };
    row(&mut report, "create (cached image) → `started`", c50, c90);
    row(
        &mut report,
        "start of a stopped machine → `started`",
        s50,
        s90,
    );
    if start_port.is_empty() {
        let _ = writeln!(
            report,
            "| start of a stopped machine → port 8080 answering | not measured: {port_note} | | |"
        );
    } else {
        let (p50, p90) = percentiles(&start_port);
        row(
            &mut report,
            "start of a stopped machine → port 8080 answering (HTTP 200 from the host)",
            p50,
            p90,
        );
    }
    row(&mut report, "stop → `stopped`", x50, x90);
    row(
        &mut report,
        "floor: `runc run` of the image's rootfs, `/bin/true`",
        t50,
        t90,
    );
    row(
        &mut report,
        "floor: `runc run` of the image's rootfs, `testapp exit 0`",
        a50,
        a90,
    );
    let _ = writeln!(report);
    let _ = writeln!(report, "| measurement | value | target |");
    let _ = writeln!(report, "|---|---|---|");
    let _ = writeln!(
        report,
        "| first create, image pulled from a loopback registry → `started` | {:.0} ms | |",
        ms(first_pull)
    );
    let _ = writeln!(
        report,
        "| {FLEET} machines created and started concurrently (total) | {:.2} s | ≤ 10 s |",
        fleet_time.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| agent RSS, {running_now} machines running | {rss_running:.1} MiB | ≤ 150 MiB |"
    );
    let _ = writeln!(
        report,
        "| {idle_created} machines created with `skip_launch` (16 at a time, total) | {:.2} s | |",
        idle_time.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| agent RSS, {running_now} machines running + {idle_created} created, not started | {rss_with_idle:.1} MiB | ≤ 150 MiB |"
    );
    let _ = writeln!(
        report,
        "| agent RSS, {} running + {} stopped or never started | {rss_stopped:.1} MiB | ≤ 150 MiB |",
        ITERATIONS + 1,
        FLEET + idle_created
    );
    let _ = writeln!(report);
    let _ = writeln!(
        report,
        "Targets from issue 4: start of a stopped single-container machine ≤ 25 ms p50 to `started`: {}; \
         100 machines ≤ 10 s: {}. RSS is asked for at 1000 stopped and 100 running machines: \
         the 1000 here were created and never started (no pilot runs for them either way).",
        if s50 <= 25.0 { "met" } else { "not met" },
        if fleet_time <= Duration::from_secs(10) {
            "met"
        } else {
            "not met"
        },
    );
    let _ = writeln!(
        report,
        "\nNotes: the machine is shared (other builds may run during a run), so figures vary between \
         runs. `started` is reported once pilot has started the container's process, so the HTTP port \
         usually answers at the same moment; the two start rows come from separate passes over the \
         same machines. The `runc run` floor covers creating and tearing down a container whose \
         process exits at once (no image pull, no API, no store)."
    );
    print!("{report}");
    let path = workspace_root().join("bench/results/serve.md");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, report).unwrap();
    eprintln!("bench: wrote {}", path.display());
}
