//! Harness of pilot's end-to-end tests: real images (busybox + testapp), the real
//! pilot binary launched through `pilot sandbox` (new PID and network namespaces,
//! its own cgroup), driven over its socket with [`pilot::client::Client`].

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hangar_test_support::{ImageBuilder, testapp_binary, unpacked_layers};
use pilot::client::Client;
use pilot::status::{Event, EventKind, MachineStatus};
use serde_json::{Value, json};

pub const PILOT: &str = env!("CARGO_BIN_EXE_pilot");

/// The test image: busybox + testapp, default cmd `testapp serve-http 8080`.
pub fn image() -> &'static Value {
    static IMAGE: OnceLock<Value> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let _ = testapp_binary();
        let img = ImageBuilder::new().build();
        let layers = unpacked_layers(&img).expect("unpack layers");
        let raw = String::from_utf8(img.config.data.to_vec()).expect("utf-8 config");
        let cfg: Value = serde_json::from_str(&raw).expect("config json");
        json!({"layers": layers, "config": cfg["config"], "raw_config": raw})
    })
}

/// `[prefix]-[pid]-[counter]`, unique across parallel tests.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running machine: pilot as PID 1 of its own PID and network namespaces.
pub struct Machine {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub pid: i32,
    pub cgroup: String,
    pub client: Client,
}

impl Machine {
    /// Writes the spec for `config` (every image is the test image, named `img`)
    /// and starts pilot.
    pub fn start(config: Value) -> Machine {
        Self::start_with(config, json!({}))
    }

    /// Like [`Machine::start`], with extra top-level spec fields (e.g. secrets).
    pub fn start_with(config: Value, extra: Value) -> Machine {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = unique("m");
        let state_dir = dir.path().join("state");
        let socket = dir.path().join("pilot.sock");
        let mut spec = json!({
            "machine_id": id,
            "config": config,
            "images": {"img": image()},
            "state_dir": state_dir,
        });
        for (k, v) in extra.as_object().expect("object").iter() {
            spec[k] = v.clone();
        }
        let spec_path = dir.path().join("spec.json");
        std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        let pidfile = dir.path().join("pilot.pid");
        let cgroup = format!("hangar-test/{id}");
        let log = std::fs::File::create(dir.path().join("pilot.log")).unwrap();
        let status = std::process::Command::new(PILOT)
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
            .args(["--", PILOT, "run", "--spec"])
            .arg(&spec_path)
            .arg("--socket")
            .arg(&socket)
            .env("PILOT_LOG", "pilot=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .expect("run pilot sandbox");
        assert!(status.success(), "pilot sandbox failed: {status}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let m = Machine {
            client: Client::new(&socket),
            dir,
            socket,
            state_dir,
            pid,
            cgroup,
        };
        assert!(
            eventually(Duration::from_secs(10), || m.socket.exists() || !m.alive()),
            "pilot did not open its socket; log:\n{}",
            m.log()
        );
        m
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pilot.log")).unwrap_or_default()
    }

    pub fn alive(&self) -> bool {
        alive(self.pid)
    }

    /// Waits (bounded) for pilot to exit; returns its final status file.
    pub fn wait_exit(&self, limit: Duration) -> MachineStatus {
        assert!(
            eventually(limit, || !self.alive()),
            "pilot still running after {limit:?}; log:\n{}",
            self.log()
        );
        let text =
            std::fs::read_to_string(self.state_dir.join("status.json")).expect("status.json");
        serde_json::from_str(&text).expect("status.json parses")
    }

    /// Polls status until `pred` holds (bounded).
    pub async fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(&MachineStatus) -> bool,
    ) -> MachineStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = match self.client.status().await {
                Ok(s) => s,
                Err(e) => panic!("status: {e}\nlog:\n{}", self.log()),
            };
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: {s:#?}\nlog:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event so far.
    pub async fn events(&self) -> Vec<(u64, Event)> {
        let mut s = self.client.events(0, false).await.expect("events");
        let mut out = Vec::new();
        while let Some(e) = s.next().await.expect("event") {
            out.push(e);
        }
        out
    }

    /// Log lines of `container` so far.
    pub async fn lines(&self, container: &str) -> Vec<String> {
        let mut s = self
            .client
            .logs(Some(container), None, false)
            .await
            .expect("logs");
        let mut out = Vec::new();
        while let Some((_, l)) = s.next_line().await.expect("log line") {
            out.push(l.line);
        }
        out
    }

    /// Waits (bounded) until `container` printed `line`.
    pub async fn wait_line(&self, container: &str, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.lines(container).await.iter().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{container} never printed {line:?}; log:\n{}", self.log());
    }

    /// Pids of pilot's children that are zombies (exited, not reaped).
    pub fn zombie_children(&self) -> Vec<i32> {
        children_of(self.pid)
            .into_iter()
            .filter(|(_, state)| *state == 'Z')
            .map(|(p, _)| p)
            .collect()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            eventually(Duration::from_secs(5), || !self.alive());
        }
        remove_cgroup(&self.cgroup);
        let _ = std::fs::remove_dir("/sys/fs/cgroup/unified/hangar-test");
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie is not alive; pilot's parent (init) reaps it shortly.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, r)| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// `(pid, state)` of every process whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[1].parse::<i32>().ok() == Some(ppid) {
            out.push((pid, f[0].chars().next().unwrap_or('?')));
        }
    }
    out
}

/// Every descendant of `pid` (host pids).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (c, _) in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes `rel` (and what is under it) from every cgroup hierarchy.
fn remove_cgroup(rel: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in entries.flatten() {
        let dir = h.path().join(rel);
        if dir.is_dir() {
            remove_tree(&dir);
        }
        let _ = std::fs::remove_dir(h.path().join("hangar-test"));
    }
    let root = Path::new("/sys/fs/cgroup").join(rel);
    if root.join("cgroup.procs").exists() {
        remove_tree(&root);
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
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Position of the first event of `container` matching `pred`.
pub fn pos(events: &[(u64, Event)], container: &str, pred: impl Fn(&EventKind) -> bool) -> usize {
    events
        .iter()
        .position(|(_, e)| e.container.as_deref() == Some(container) && pred(&e.kind))
        .unwrap_or_else(|| panic!("no matching event for {container}: {events:#?}"))
}

/// The event itself.
pub fn find<'a>(
    events: &'a [(u64, Event)],
    container: &str,
    pred: impl Fn(&EventKind) -> bool,
) -> &'a Event {
    &events[pos(events, container, pred)].1
}

pub fn is_started(e: &EventKind) -> bool {
    matches!(e, EventKind::Started { .. })
}

pub fn is_starting(e: &EventKind) -> bool {
    matches!(e, EventKind::Starting { .. })
}

pub fn is_exited(e: &EventKind) -> bool {
    matches!(e, EventKind::Exited { .. })
}
