//! The machine lifecycle end to end on this host: real images pulled from a real
//! registry, pilot in real namespaces and cgroups, the SQLite store (needs root).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hangar_agent::machine::{Agent, AgentConfig};
use hangar_agent::store::{MachineRecord, MachineState, NewApp, NewMachine, Store};
use hangar_test_support::{ImageBuilder, Registry, pilot_binary};
use serde_json::{Value, json};

struct Host {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    store: Store,
    agent: Agent,
    cgroup_prefix: String,
}

impl Host {
    async fn new() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().to_path_buf();
        let store = Store::open(data.join("hangar.db")).unwrap();
        // One prefix per host: an agent owns every cgroup under its prefix.
        static HOSTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = HOSTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let cgroup_prefix = format!("hangar-test-{}-{n}", std::process::id());
        let agent = Agent::open(config(&data, &cgroup_prefix), store.clone())
            .await
            .unwrap();
        Host {
            _tmp: tmp,
            data,
            store,
            agent,
            cgroup_prefix,
        }
    }

    async fn reopen(&mut self) {
        self.agent.detach();
        self.agent = Agent::open(config(&self.data, &self.cgroup_prefix), self.store.clone())
            .await
            .unwrap();
    }

    async fn machine(&self, app: &str, config: Value) -> MachineRecord {
        if self.store.app(app).await.is_err() {
            self.store
                .create_app(NewApp {
                    name: app.into(),
                    org_slug: "personal".into(),
                    network: "default".into(),
                })
                .await
                .unwrap();
        }
        let (rec, op, _) = self
            .store
            .create_machine(NewMachine {
                app: app.into(),
                region: "local".into(),
                config,
                source: "user".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        self.agent.create(&rec, op, false).await.unwrap();
        self.store.machine(&rec.id).await.unwrap()
    }

    fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        ["memory", "pids", "cpu", "unified"]
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
}

impl Drop for Host {
    fn drop(&mut self) {
        // Kill whatever still runs of this test's machines and remove their cgroups.
        for h in [
            "memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "systemd",
            "unified",
        ] {
            let root = Path::new("/sys/fs/cgroup")
                .join(h)
                .join(&self.cgroup_prefix);
            if root.exists() {
                kill_tree(&root);
            }
        }
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
                kill(pid);
            }
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` runs (exists and is not a zombie waiting for the host's init).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn config(data: &Path, cgroup_prefix: &str) -> AgentConfig {
    let mut c = AgentConfig::new(data);
    c.pilot_bin = pilot_binary();
    c.cgroup_prefix = cgroup_prefix.into();
    c
}

async fn pushed_image(registry: &Registry, tag: &str) -> String {
    let image = ImageBuilder::new().build();
    registry.push(&image, tag).await.unwrap();
    registry.reference(tag)
}

/// Runs `cmd` in the machine until it succeeds (servers take a moment to listen).
async fn exec_ok(agent: &Agent, id: &str, container: Option<&str>, cmd: &[&str]) -> String {
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let mut last = String::new();
    for _ in 0..100 {
        match agent.exec(id, container, &cmd, None, Some(5)).await {
            Ok(r) if r.exit_code == Some(0) => return r.stdout,
            Ok(r) => last = format!("{r:?}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(agent.paths(id).log()).unwrap_or_default();
    let status = std::fs::read_to_string(agent.paths(id).final_status()).unwrap_or_default();
    panic!("{cmd:?} never succeeded: {last}\npilot log:\n{log}\nstatus: {status}");
}

async fn events(store: &Store, id: &str) -> Vec<(String, String)> {
    store
        .events(id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_start_stop_start_destroy() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "lifecycle/app:1").await;
    let host = Host::new().await;
    let m = host
        .machine(
            "lc-basic",
            json!({"image": image, "guest": {"cpus": 1, "memory_mb": 128}}),
        )
        .await;
    assert_eq!(m.state, MachineState::Started);
    let pid = host.agent.pilot_pid(&m.id).expect("pilot runs");
    assert!(!host.cgroup_dirs(&m.id).is_empty(), "machine cgroup made");

    let body = exec_ok(
        &host.agent,
        &m.id,
        None,
        &[
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/?env=FLY_MACHINE_ID",
        ],
    )
    .await;
    assert!(body.contains(&format!("FLY_MACHINE_ID={}", m.id)), "{body}");
    assert!(body.contains(&format!("hostname={}", m.id)), "{body}");
    // The rootfs is writable during a run...
    exec_ok(
        &host.agent,
        &m.id,
        None,
        &["sh", "-c", "echo scratch > /tmp/mark"],
    )
    .await;

    host.agent
        .stop(&m.id, None, Some(Duration::from_secs(2)))
        .await
        .unwrap();
    assert_eq!(
        host.store.machine(&m.id).await.unwrap().state,
        MachineState::Stopped
    );
    assert!(!alive(pid), "pilot gone after stop");
    assert!(
        host.cgroup_dirs(&m.id).is_empty(),
        "cgroup removed after stop"
    );
    let exit = host.store.events(&m.id, 100).await.unwrap();
    let exit = exit.iter().find(|e| e.kind == "exit").expect("exit event");
    assert_eq!(exit.request["exit_event"]["requested_stop"], json!(true));

    // ...and blank again at the next start.
    host.agent.start(&m.id).await.unwrap();
    assert_eq!(
        host.store.machine(&m.id).await.unwrap().state,
        MachineState::Started
    );
    let out = exec_ok(
        &host.agent,
        &m.id,
        None,
        &["sh", "-c", "test ! -e /tmp/mark && echo blank"],
    )
    .await;
    assert_eq!(out.trim(), "blank");

    let err = host.agent.destroy(&m.id, false).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("stop it first, or destroy with force=true"),
        "{err}"
    );
    host.agent.destroy(&m.id, true).await.unwrap();
    let gone = host.store.machine(&m.id).await.unwrap();
    assert_eq!(gone.state, MachineState::Destroyed);
    assert!(
        !host.agent.paths(&m.id).dir().exists(),
        "machine files removed"
    );
    assert!(host.cgroup_dirs(&m.id).is_empty());
    let kinds: Vec<String> = events(&host.store, &m.id)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    for k in ["launch", "start", "exit", "destroy"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing in {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_outlive_the_agent_and_exits_meanwhile_are_recorded() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "lifecycle/outlive:1").await;
    let mut host = Host::new().await;
    let a = host.machine("lc-outlive", json!({"image": image})).await;
    let b = host.machine("lc-outlive", json!({"image": image})).await;
    let pid_a = host.agent.pilot_pid(&a.id).unwrap();
    let pid_b = host.agent.pilot_pid(&b.id).unwrap();

    // The agent goes away (as after a SIGKILL: nothing is stopped).
    host.agent.detach();
    assert!(alive(pid_a), "machine a survives the agent");
    // While it is away, machine b's pilot dies.
    kill(pid_b);
    tokio::time::sleep(Duration::from_millis(200)).await;

    host.reopen().await;
    assert_eq!(host.agent.pilot_pid(&a.id), Some(pid_a), "re-attached to a");
    exec_ok(&host.agent, &a.id, None, &["true"]).await;
    assert_eq!(
        host.store.machine(&a.id).await.unwrap().state,
        MachineState::Started
    );
    let b_now = host.store.machine(&b.id).await.unwrap();
    assert_eq!(b_now.state, MachineState::Stopped, "b's death recorded");
    assert!(host.cgroup_dirs(&b.id).is_empty(), "b's cgroup cleaned");

    // The re-attached agent still sees a's exit when it happens.
    kill(pid_a);
    for _ in 0..100 {
        if host.store.machine(&a.id).await.unwrap().state == MachineState::Stopped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        host.store.machine(&a.id).await.unwrap().state,
        MachineState::Stopped
    );
    let exit = host.store.events(&a.id, 100).await.unwrap();
    let exit = exit
        .iter()
        .find(|e| e.kind == "exit")
        .expect("exit event for a");
    assert_eq!(exit.request["exit_event"]["requested_stop"], json!(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_whose_process_exits_stops_and_auto_destroy_removes_it() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "lifecycle/exit:1").await;
    let host = Host::new().await;
    let m = host
        .machine(
            "lc-exit",
            json!({"image": image, "auto_destroy": true, "restart": {"policy": "no"},
                   "init": {"cmd": ["/usr/local/bin/testapp", "exit", "3"]}}),
        )
        .await;
    let mut state = m.state;
    for _ in 0..200 {
        state = host.store.machine(&m.id).await.unwrap().state;
        if state == MachineState::Destroyed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, MachineState::Destroyed);
    let evs = host.store.events(&m.id, 100).await.unwrap();
    let exit = evs.iter().find(|e| e.kind == "exit").expect("exit event");
    assert_eq!(exit.request["exit_event"]["exit_code"], json!(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_interrupted_by_an_agent_restart_is_rolled_back_and_can_start() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "lifecycle/interrupted:1").await;
    let mut host = Host::new().await;
    host.store
        .create_app(NewApp {
            name: "lc-interrupted".into(),
            org_slug: "personal".into(),
            network: "default".into(),
        })
        .await
        .unwrap();
    // The API recorded the machine and its create operation, then the agent died
    // before carrying it out.
    let (rec, _op, _) = host
        .store
        .create_machine(NewMachine {
            app: "lc-interrupted".into(),
            region: "local".into(),
            config: json!({"image": image}),
            source: "user".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    host.reopen().await;
    let m = host.store.machine(&rec.id).await.unwrap();
    assert_eq!(m.state, MachineState::Failed);
    let evs = host.store.events(&rec.id, 100).await.unwrap();
    let failed = evs
        .iter()
        .find(|e| e.kind == "launch_failed")
        .expect("launch_failed event");
    assert!(
        failed.request["error"]
            .as_str()
            .unwrap()
            .contains("start it to retry"),
        "{:?}",
        failed.request
    );
    assert!(host.store.unfinished_operations().await.unwrap().is_empty());
    host.agent.start(&rec.id).await.unwrap();
    assert_eq!(
        host.store.machine(&rec.id).await.unwrap().state,
        MachineState::Started
    );
    exec_ok(&host.agent, &rec.id, None, &["true"]).await;
    host.agent.destroy(&rec.id, true).await.unwrap();
}
