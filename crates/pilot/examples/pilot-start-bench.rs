//! Benchmark of a machine's start with pilot: from launching
//! `pilot sandbox ... -- pilot run` until every container runs (its `started`
//! event read over the API), for 1, 3 and 10 containers without health checks;
//! the per-container overhead from the slope; and `runc run --detach` of the
//! same rootfs and command, in the same run, as the reference. Writes
//! `bench/results/pilot-start.md`.
//!
//! Run as root from the repository root (see `bench/pilot-start.sh`):
//! `cargo build --release -p pilot --bin pilot --example pilot-start-bench &&
//!  cargo run --release -p pilot --example pilot-start-bench -- [ITERATIONS]`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pilot::client::Client;
use pilot::status::EventKind;
use serde_json::json;

const WARMUP: usize = 2;
const SIZES: [usize; 3] = [1, 3, 10];

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20)
        .clamp(1, 200);
    let exe = std::env::current_exe()?;
    let pilot = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("pilot"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("build the pilot binary first: cargo build --release -p pilot")
        })?;
    let load_before = loadavg();
    let tmp = tempfile::Builder::new()
        .prefix("hangar-start-bench-")
        .tempdir()?;
    let layer = busybox_layer(tmp.path())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut pilot_rows = Vec::new();
    let mut failures = Vec::new();
    for n in SIZES {
        let mut samples = Vec::with_capacity(iterations);
        let mut i = 0;
        while samples.len() < iterations && i < 2 * (WARMUP + iterations) {
            match rt.block_on(start_machine(&pilot, &layer, tmp.path(), n, i)) {
                Ok(t) if i >= WARMUP => samples.push(t),
                Ok(_) => {}
                Err(e) => failures.push(format!("{n} container(s), run {i}: {e:#}")),
            }
            i += 1;
        }
        anyhow::ensure!(
            !samples.is_empty(),
            "no successful run with {n} containers: {failures:?}"
        );
        pilot_rows.push((n, samples));
    }
    let runc = bench_runc(&layer, tmp.path(), iterations)?;
    let load = format!("{load_before} before, {} after", loadavg());
    let mut report = render(iterations, &pilot_rows, runc.as_deref(), &load);
    if !failures.is_empty() {
        report.push_str(&format!(
            "\nFailed machine starts in this run ({}; not counted, the machine was killed and \
             the run repeated):\n\n",
            failures.len()
        ));
        for f in &failures {
            report.push_str(&format!("- {}\n", f.replace('\n', " ")));
        }
    }
    let out = PathBuf::from("bench/results/pilot-start.md");
    std::fs::create_dir_all(out.parent().expect("parent"))?;
    std::fs::write(&out, &report)?;
    print!("{report}");
    Ok(())
}

/// One machine of `n` containers: launch → all started; then stop and clean up.
async fn start_machine(
    pilot: &Path,
    layer: &Path,
    tmp: &Path,
    n: usize,
    i: usize,
) -> anyhow::Result<Duration> {
    let id = format!("bench-{}-{n}-{i}", std::process::id());
    let dir = tmp.join(&id);
    std::fs::create_dir_all(&dir)?;
    let containers: Vec<_> = (0..n)
        .map(|k| json!({"name": format!("c{k}"), "image": "busybox", "cmd": ["/bin/sleep", "60"]}))
        .collect();
    let spec = json!({
        "machine_id": id,
        "config": {"containers": containers},
        "images": {"busybox": {"layers": [layer]}},
        "state_dir": dir.join("state"),
    });
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let socket = dir.join("pilot.sock");
    let pidfile = dir.join("pilot.pid");
    let cgroup = format!("hangar-start-bench/{id}");
    let id = id.to_string();

    let t0 = Instant::now();
    let status = Command::new(pilot)
        .args([
            "sandbox",
            "--new-netns",
            "--hostname",
            &id,
            "--cgroup-parent",
            &cgroup,
            "--pidfile",
        ])
        .arg(&pidfile)
        .arg("--")
        .arg(pilot)
        .args(["run", "--spec"])
        .arg(&spec_path)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "pilot sandbox: {status}");
    let deadline = t0 + Duration::from_secs(10);
    while !socket.exists() {
        anyhow::ensure!(Instant::now() < deadline, "pilot did not open its socket");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let client = Client::new(&socket);
    let mut events = client.events(0, true).await?;
    let mut started = 0;
    while started < n {
        let next = tokio::time::timeout_at((deadline).into(), events.next()).await??;
        match next {
            Some((_, e)) if matches!(e.kind, EventKind::Started { .. }) => started += 1,
            Some((_, e)) if matches!(e.kind, EventKind::StartFailed { .. }) => {
                anyhow::bail!("start failed: {e:?}")
            }
            Some(_) => {}
            None => anyhow::bail!("event stream ended before every container started"),
        }
    }
    let elapsed = t0.elapsed();
    drop(events);

    client.stop(Some("SIGKILL"), None, true).await?;
    let pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid) {
        anyhow::ensure!(Instant::now() < deadline, "pilot {pid} did not exit");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    remove_cgroup(&cgroup);
    let _ = std::fs::remove_dir_all(dir);
    Ok(elapsed)
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn remove_cgroup(rel: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let dir = root.join(rel);
        if dir.join("cgroup.procs").exists() {
            remove_tree(&dir);
        }
        let _ = std::fs::remove_dir(root.join("hangar-start-bench"));
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `runc run --detach` of the same rootfs and command (until it returns with the
/// container running), then `runc delete --force`; `None` without runc.
fn bench_runc(
    layer: &Path,
    tmp: &Path,
    iterations: usize,
) -> anyhow::Result<Option<Vec<Duration>>> {
    if Command::new("runc").arg("--version").output().is_err() {
        return Ok(None);
    }
    let bundle = tmp.join("runc-bundle");
    std::fs::create_dir_all(&bundle)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(layer)
        .arg(bundle.join("rootfs"))
        .status()?;
    anyhow::ensure!(status.success(), "copy the rootfs for runc");
    let status = Command::new("runc")
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle)
        .status()?;
    anyhow::ensure!(status.success(), "runc spec");
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = json!(["/bin/sleep", "60"]);
    config["root"]["readonly"] = false.into();
    // Like pilot's containers: network, UTS and IPC are the machine's.
    if let Some(obj) = config.as_object_mut() {
        obj.remove("hostname");
    }
    if let Some(ns) = config["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| !matches!(n["type"].as_str(), Some("network" | "uts" | "ipc")));
    }
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let state = tmp.join("runc-state");
    let mut out = Vec::with_capacity(iterations);
    for i in 0..WARMUP + iterations {
        let id = format!("hangar-start-bench-{}-{i}", std::process::id());
        let t0 = Instant::now();
        let status = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["run", "--detach", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()?;
        let t = t0.elapsed();
        anyhow::ensure!(status.success(), "runc run {id}: {status}");
        let status = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["delete", "--force", &id])
            .status()?;
        anyhow::ensure!(status.success(), "runc delete {id}");
        if i >= WARMUP {
            out.push(t);
        }
    }
    Ok(Some(out))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn p50(samples: &[Duration]) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    percentile(&s, 0.5)
}

fn row(name: &str, samples: &[Duration]) -> String {
    let mut s = samples.to_vec();
    s.sort();
    format!(
        "| {name} | {} | {} | {} | {} |\n",
        ms(percentile(&s, 0.5)),
        ms(percentile(&s, 0.9)),
        ms(s[0]),
        ms(s[s.len() - 1])
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn render(
    iterations: usize,
    pilot: &[(usize, Vec<Duration>)],
    runc: Option<&[Duration]>,
    load: &str,
) -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut md = String::new();
    md.push_str("# pilot: machine start → all containers running\n\n");
    md.push_str(&format!(
        "Command: `bench/pilot-start.sh {iterations}` (as root, from the repository root)  \n\
         Date: {date}  \nKernel: {}  \nIterations: {iterations} per row after {WARMUP} warm-ups; \
         1-minute load average: {load}.\n\n",
        kernel.trim()
    ));
    md.push_str(
        "A pilot row: from launching `pilot sandbox --new-netns --cgroup-parent ... -- pilot run` \
         (new PID, network, UTS, IPC and mount namespaces, a machine cgroup) until the \
         `started` event of every container has been read over pilot's socket. Each \
         container: busybox `sleep 60` in its own mount and PID namespaces, overlayfs \
         rootfs, cgroup, OCI default capabilities and seccomp; no health checks. \
         Containers start concurrently.\n\n",
    );
    md.push_str("| what | p50 ms | p90 ms | min ms | max ms |\n|---|---|---|---|---|\n");
    for (n, s) in pilot {
        md.push_str(&row(&format!("pilot, {n} container(s)"), s));
    }
    if let Some(r) = runc {
        md.push_str(&row(
            "`runc run --detach` (one container, same rootfs and command)",
            r,
        ));
    }
    let first = pilot.first().map(|(n, s)| (*n, p50(s)));
    let last = pilot.last().map(|(n, s)| (*n, p50(s)));
    if let (Some((n1, t1)), Some((n2, t2))) = (first, last) {
        let per = (t2.as_secs_f64() - t1.as_secs_f64()) / (n2 - n1) as f64;
        md.push_str(&format!(
            "\nPer-container overhead (slope of the p50s from {n1} to {n2} containers): {:.2} ms.  \n\
             Fixed machine cost (1-container p50 minus that slope): {:.2} ms.\n",
            per * 1000.0,
            (t1.as_secs_f64() - per) * 1000.0
        ));
        if let Some(r) = runc {
            let rp = p50(r).as_secs_f64();
            md.push_str(&format!(
                "`runc run --detach` p50: {:.2} ms; ratio runc p50 / pilot per-container overhead: {:.1}x; \
                 ratio pilot 1-container machine p50 / runc p50: {:.2}x.\n",
                rp * 1000.0,
                rp / per.max(1e-9),
                t1.as_secs_f64() / rp
            ));
        }
    }
    md
}

/// A busybox rootfs: `/bin/busybox` and its applets.
fn busybox_layer(dir: &Path) -> anyhow::Result<PathBuf> {
    let layer = dir.join("layer");
    let bin = layer.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(layer.join(d))?;
    }
    std::fs::write(layer.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    Ok(layer)
}
