//! Benchmark of pilot's container runtime against `runc run`: per container,
//! create + start + wait + cleanup of `/bin/true` from the same busybox rootfs,
//! both measured in the same run. Writes its figures to
//! `bench/results/pilot-runtime.md`.
//!
//! Run as root (see `bench/pilot-runtime.sh`):
//! `cargo build --release -p pilot && cargo run --release -p pilot --example runtime-bench -- [ITERATIONS]`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use pilot::runtime::{
    ContainerLaunch, NamespaceRuntime, NamespaceRuntimeConfig, ProcessSpec, Rootfs, Runtime, User,
};

const WARMUP: usize = 5;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50)
        .clamp(1, 1000);
    pilot::runtime::set_child_subreaper()?;
    let exe = std::env::current_exe()?;
    let pilot_exe = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("pilot"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("build the pilot binary first: cargo build --release -p pilot")
        })?;
    let load_before = loadavg();
    let tmp = tempfile::Builder::new().prefix("hangar-bench-").tempdir()?;
    let layer = busybox_layer(tmp.path())?;

    let cgroup_parent = PathBuf::from(format!("/hangar-bench-{}", std::process::id()));
    let rt = NamespaceRuntime::new(NamespaceRuntimeConfig {
        pilot_exe,
        cgroup_parent: Some(cgroup_parent),
    })?;
    let pilot = bench_pilot(&rt, &layer, tmp.path(), iterations)?;
    for p in rt.cgroups().parents() {
        let _ = std::fs::remove_dir(p);
    }
    let runc = bench_runc(&layer, tmp.path(), iterations)?;

    let load = format!("{load_before} before, {} after", loadavg());
    let report = render(iterations, &pilot, runc.as_deref(), &load);
    print!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/pilot-runtime.md");
    std::fs::create_dir_all(out.parent().unwrap())?;
    std::fs::write(&out, report)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Per-iteration durations of the NamespaceRuntime phases.
#[derive(Default)]
struct PilotSamples {
    total: Vec<Duration>,
    start: Vec<Duration>,
    wait: Vec<Duration>,
    cleanup: Vec<Duration>,
}

fn bench_pilot(
    rt: &NamespaceRuntime,
    layer: &Path,
    tmp: &Path,
    iterations: usize,
) -> anyhow::Result<PilotSamples> {
    let mut samples = PilotSamples::default();
    for i in 0..WARMUP + iterations {
        let name = format!("bench-{i}");
        let launch = ContainerLaunch {
            rootfs: Rootfs {
                layers: vec![layer.to_path_buf()],
                state_dir: tmp.join(&name),
            },
            name,
            process: ProcessSpec {
                argv: vec!["/bin/true".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: User::default(),
            },
            files: Vec::new(),
            mounts: Vec::new(),
            hostname: "bench".into(),
        };
        let t0 = Instant::now();
        let started = rt.start(&launch)?;
        let t1 = Instant::now();
        waitpid(Pid::from_raw(started.pid), None)?;
        let t2 = Instant::now();
        rt.cleanup(&started.handle)?;
        let t3 = Instant::now();
        if i >= WARMUP {
            samples.start.push(t1 - t0);
            samples.wait.push(t2 - t1);
            samples.cleanup.push(t3 - t2);
            samples.total.push(t3 - t0);
        }
    }
    Ok(samples)
}

/// `runc run` of the same rootfs, or `None` when runc is not installed.
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
        .args(["-a"])
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
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
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
        let id = format!("hangar-bench-{}-{i}", std::process::id());
        let t0 = Instant::now();
        let status = Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()?;
        let t = t0.elapsed();
        anyhow::ensure!(status.success(), "runc run {id}: {status}");
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

fn row(name: &str, samples: &[Duration]) -> (String, Duration) {
    let mut s = samples.to_vec();
    s.sort();
    let p50 = percentile(&s, 0.5);
    (
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            ms(p50),
            ms(percentile(&s, 0.9)),
            ms(s[0]),
            ms(s[s.len() - 1])
        ),
        p50,
    )
}

/// The 1-minute load average (other work on the host skews the figures).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn render(
    iterations: usize,
    pilot: &PilotSamples,
    runc: Option<&[Duration]>,
    load: &str,
) -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "cgroup v2".to_string()
    } else {
        "cgroup v1 hybrid".to_string()
    };
    let favor = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("cgroup") && l.contains("favordynmods"));
    cgroups.push_str(if favor {
        " (favordynmods)"
    } else {
        " (no favordynmods)"
    });
    let mut md = String::new();
    md.push_str("# pilot container runtime: per-container cost\n\n");
    md.push_str(&format!(
        "Command: `bench/pilot-runtime.sh` (= `cargo build --release -p pilot && \
         cargo run --release -p pilot --example runtime-bench -- {iterations}`), as root.\n\n"
    ));
    md.push_str(&format!(
        "Date: {date}. Host: kernel {}, {cpus} CPUs, {cgroups}, load average {load}. {iterations} iterations each after {WARMUP} warm-up runs, \
         same busybox rootfs, `/bin/true`, run one after the other in the same process.\n\n",
        kernel.trim()
    ));
    md.push_str("| what (ms) | p50 | p90 | min | max |\n|---|---|---|---|---|\n");
    let (r, pilot_p50) = row("NamespaceRuntime: start + wait + cleanup", &pilot.total);
    md.push_str(&r);
    for (name, samples) in [
        ("- of which `start` (returns after exec)", &pilot.start),
        ("- of which wait for exit", &pilot.wait),
        ("- of which `cleanup`", &pilot.cleanup),
    ] {
        md.push_str(&row(name, samples).0);
    }
    match runc {
        Some(runc) => {
            let (r, runc_p50) = row("`runc run` (create + start + wait + delete)", runc);
            md.push_str(&r);
            md.push_str(&format!(
                "\nRatio of p50s, runc / NamespaceRuntime: {:.1}x.\n",
                runc_p50.as_secs_f64() / pilot_p50.as_secs_f64()
            ));
        }
        None => md.push_str("\n`runc` is not installed: no reference figures in this run.\n"),
    }
    md.push_str(
        "\nNamespaceRuntime per container: overlay mount over the layer with a fresh upper \
         dir, new mount + PID namespaces, /proc (masked and read-only paths), /sys, tmpfs /dev \
         with devices, pts, shm, mqueue, cgroups in memory, pids, cpu, cpuacct, default \
         capabilities, no_new_privs, seccomp; cleanup removes the cgroups and upper dir. \
         The runtime keeps one `pilot __cinit` started ahead (exec'd, waiting for its \
         request) and refills it in the background: in this serial loop every start finds \
         one ready; of several containers started at once, only the first does, the others \
         also pay for spawning the helper (1-3 ms in traces on this host). \
         runc: its own `runc spec` defaults (network, UTS and IPC namespaces removed, as \
         pilot shares the machine's), a plain rootfs directory (no overlay).\n",
    );
    md
}

/// Same layer as the tests: static busybox with applet symlinks.
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
    Ok(layer)
}
