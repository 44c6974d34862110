//! Supervisor logic against plain host processes (a test-only [`Runtime`] without
//! namespaces): start order, blocked dependents, restarts, health, stop order.
//! The end-to-end tests in `tests/` run the same behaviour in real containers.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use crate::plan::*;
use crate::runtime::{
    ContainerHandle, ContainerLaunch, ExecSpec, ExecStarted, ProcessSpec, Rootfs, Runtime,
    RuntimeError, Started, User,
};
use crate::status::{ContainerState, EventKind};

/// Runs each container as a plain child process of the test.
struct PlainRuntime;

fn io(name: &str, e: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        container: name.into(),
        what: "spawn".into(),
        source: e,
    }
}

impl Runtime for PlainRuntime {
    fn start(&self, l: &ContainerLaunch) -> Result<Started, RuntimeError> {
        let mut child = Command::new(&l.process.argv[0])
            .args(&l.process.argv[1..])
            .env_clear()
            .envs(l.process.env.iter().filter_map(|e| e.split_once('=')))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io(&l.name, e))?;
        let pid = child.id() as i32;
        Ok(Started {
            pid,
            stdout: OwnedFd::from(child.stdout.take().unwrap()),
            stderr: OwnedFd::from(child.stderr.take().unwrap()),
            handle: ContainerHandle {
                name: l.name.clone(),
                ns_pid: pid,
                cgroups: vec![],
                state_dir: l.rootfs.state_dir.clone(),
            },
        })
    }

    fn exec(&self, h: &ContainerHandle, spec: &ExecSpec) -> Result<ExecStarted, RuntimeError> {
        let mut child = Command::new(&spec.argv[0])
            .args(&spec.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io(&h.name, e))?;
        Ok(ExecStarted {
            pid: child.id() as i32,
            stdin: OwnedFd::from(child.stdin.take().unwrap()),
            stdout: OwnedFd::from(child.stdout.take().unwrap()),
            stderr: OwnedFd::from(child.stderr.take().unwrap()),
        })
    }

    fn oom_kills(&self, _: &ContainerHandle) -> u64 {
        0
    }

    fn cleanup(&self, _: &ContainerHandle) -> Result<(), RuntimeError> {
        Ok(())
    }
}

fn c(name: &str, argv: &[&str]) -> ContainerPlan {
    ContainerPlan {
        name: name.into(),
        launch: ContainerLaunch {
            name: name.into(),
            rootfs: Rootfs {
                layers: vec![],
                state_dir: "/nonexistent".into(),
            },
            process: ProcessSpec {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/usr/bin:/bin".into()],
                cwd: "/".into(),
                user: User::default(),
            },
            files: vec![],
            mounts: vec![],
            hostname: "m".into(),
        },
        depends_on: vec![],
        checks: vec![],
        restart: RestartPlan::new(RestartPolicyKind::No, None),
        stop: StopPlan {
            signal: libc::SIGTERM,
            timeout: Duration::from_secs(5),
        },
    }
}

fn dep(mut p: ContainerPlan, on: &str, condition: Condition) -> ContainerPlan {
    p.depends_on.push(Dependency {
        container: on.into(),
        condition,
    });
    p
}

fn exec_check(
    argv: &[&str],
    success: u32,
    failure: u32,
    on_unhealthy: UnhealthyAction,
) -> CheckPlan {
    CheckPlan {
        name: "probe".into(),
        kind: CheckKind::Liveness,
        probe: Probe::Exec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        },
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        grace_period: Duration::ZERO,
        success_threshold: success,
        failure_threshold: failure,
        on_unhealthy,
    }
}

fn machine(containers: Vec<ContainerPlan>) -> MachinePlan {
    MachinePlan {
        machine_id: "m".into(),
        containers,
        log_buffer_lines: 100,
    }
}

/// Position of the first event matching `pred`.
fn pos(events: &[(u64, Event)], container: &str, pred: impl Fn(&EventKind) -> bool) -> usize {
    events
        .iter()
        .position(|(_, e)| e.container.as_deref() == Some(container) && pred(&e.kind))
        .unwrap_or_else(|| panic!("no such event for {container}: {events:#?}"))
}

async fn wait_for(
    handle: &Handle,
    what: &str,
    pred: impl Fn(&MachineStatus) -> bool,
) -> MachineStatus {
    for _ in 0..200 {
        let s = handle.status().await.unwrap();
        if pred(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}: {:#?}", handle.status().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_gate_starts_in_order() {
    let mut b = dep(c("b", &["sleep", "30"]), "a", Condition::Started);
    b.checks
        .push(exec_check(&["true"], 3, 1, UnhealthyAction::Report));
    let plan = machine(vec![
        c("a", &["sleep", "30"]),
        b,
        dep(c("c", &["true"]), "b", Condition::Healthy),
        dep(c("d", &["sleep", "30"]), "c", Condition::ExitedSuccessfully),
    ]);
    let (h, task) = spawn(plan, Arc::new(PlainRuntime));
    wait_for(&h, "d running", |s| {
        s.containers[3].state == ContainerState::Running
    })
    .await;
    let st = h.status().await.unwrap();
    assert_eq!(st.containers[1].state, ContainerState::Healthy);
    assert_eq!(st.containers[2].state, ContainerState::Exited);
    h.stop(None, None, "test").await.unwrap();
    let fin = task.await.unwrap();
    assert_eq!(fin.exit_code, Some(0));
    let ev = h.events.since(0);
    let started = |e: &EventKind| matches!(e, EventKind::Started { .. });
    assert!(pos(&ev, "a", started) < pos(&ev, "b", started));
    assert!(pos(&ev, "b", |e| *e == EventKind::Healthy) < pos(&ev, "c", started));
    assert!(pos(&ev, "c", |e| matches!(e, EventKind::Exited { .. })) < pos(&ev, "d", started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_blocks_dependents_and_the_machine_ends() {
    let plan = machine(vec![
        c("migrate", &["sh", "-c", "echo migrating; exit 1"]),
        dep(
            c("app", &["sleep", "30"]),
            "migrate",
            Condition::ExitedSuccessfully,
        ),
        dep(c("sidecar", &["sleep", "30"]), "app", Condition::Started),
    ]);
    let (h, task) = spawn(plan, Arc::new(PlainRuntime));
    let fin = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fin.exit_code, Some(1));
    let app = &fin.containers[1];
    assert_eq!(app.state, ContainerState::Failed);
    let reason = app.reason.as_deref().unwrap();
    assert!(
        reason.contains("\"migrate\"") && reason.contains("exited_successfully"),
        "{reason}"
    );
    assert!(reason.contains("exited with code 1"), "{reason}");
    assert!(
        fin.containers[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("\"app\"")
    );
    assert!(
        h.logs
            .since(0)
            .iter()
            .any(|(_, l)| l.line == "migrating" && l.container == "migrate")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_up_to_max_retries() {
    let mut p = c("flaky", &["sh", "-c", "exit 3"]);
    p.restart = RestartPlan::new(RestartPolicyKind::OnFailure, Some(2));
    p.restart.backoff_base = Duration::from_millis(10);
    let (_h, task) = spawn(machine(vec![p]), Arc::new(PlainRuntime));
    let fin = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let s = &fin.containers[0];
    assert_eq!(s.restart_count, 2);
    assert_eq!(s.exits.len(), 3);
    assert!(s.exits.iter().all(|e| e.exit_code == Some(3)));
    assert_eq!(s.state, ContainerState::Failed);
    assert_eq!(fin.exit_code, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_failure_with_unhealthy_stop_restarts_the_container() {
    let mut p = c("live", &["sleep", "30"]);
    p.checks
        .push(exec_check(&["false"], 1, 2, UnhealthyAction::Stop));
    p.restart = RestartPlan::new(RestartPolicyKind::OnFailure, Some(1));
    p.restart.backoff_base = Duration::from_millis(10);
    let (_h, task) = spawn(machine(vec![p]), Arc::new(PlainRuntime));
    let fin = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let s = &fin.containers[0];
    assert_eq!(s.restart_count, 1);
    assert_eq!(s.exits.len(), 2);
    assert!(s.exits.iter().all(|e| e.requested.as_deref() == Some("unhealthy") && e.signal == Some(libc::SIGTERM)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_goes_in_reverse_order_and_kills_after_the_timeout() {
    let mut db = c(
        "db",
        &["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"],
    );
    db.stop.timeout = Duration::from_millis(300);
    let plan = machine(vec![
        db,
        dep(c("app", &["sleep", "30"]), "db", Condition::Started),
    ]);
    let (h, task) = spawn(plan, Arc::new(PlainRuntime));
    wait_for(&h, "both running", |s| {
        s.containers
            .iter()
            .all(|c| c.state == ContainerState::Running)
    })
    .await;
    // The trap must be installed before the stop.
    for _ in 0..100 {
        if h.logs.since(0).iter().any(|(_, l)| l.line == "ready") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.stop(None, None, "test").await.unwrap().accepted);
    let again = h.stop(None, None, "test").await.unwrap();
    assert!(!again.accepted && again.message.contains("already stopping"));
    let fin = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let ev = h.events.since(0);
    let signaled = |e: &EventKind| matches!(e, EventKind::Signaled { .. });
    assert!(pos(&ev, "app", |e| matches!(e, EventKind::Exited { .. })) < pos(&ev, "db", signaled));
    assert!(pos(&ev, "db", signaled) < pos(&ev, "db", |e| *e == EventKind::Killed));
    assert_eq!(
        fin.containers[0].last_exit.as_ref().unwrap().signal,
        Some(libc::SIGKILL)
    );
    assert_eq!(
        fin.containers[1].last_exit.as_ref().unwrap().signal,
        Some(libc::SIGTERM)
    );
    assert!(
        fin.containers
            .iter()
            .all(|c| c.state == ContainerState::Exited)
    );
}
