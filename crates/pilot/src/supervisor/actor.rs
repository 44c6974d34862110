//! The supervisor task: one `match` over incoming messages, each handler changing
//! the state of one container and then re-evaluating what follows (dependents to
//! start or block, the next stop wave, the machine's end).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::deps::{DepState, dependency_state};
use super::slot::{Phase, Slot};
use super::{Command, Msg};
use crate::api::protocol::{ApiError, ErrorCode, SignalResult, StopResult};
use crate::health::{self, ExecTarget};
use crate::journal::Journal;
use crate::logs::{self, LogJournal, Stream, now_ms};
use crate::plan::{MachinePlan, StopPlan, UnhealthyAction};
use crate::reaper::{ExitStatus, reaper};
use crate::restart::{self, Decision};
use crate::runtime::{ExecSpec, Runtime, RuntimeError, Started};
use crate::status::{CheckState, Event, EventKind, ExitInfo, MachineState, MachineStatus};

/// How long output readers may take to drain after the machine is down.
const LOG_DRAIN: Duration = Duration::from_secs(1);

pub(crate) struct Actor {
    machine_id: String,
    slots: Vec<Slot>,
    runtime: Arc<dyn Runtime>,
    tx: mpsc::UnboundedSender<Msg>,
    logs: Arc<LogJournal>,
    events: Arc<Journal<Event>>,
    /// Set once a stop was requested: (overrides, reason).
    stopping: Option<(Option<i32>, Option<Duration>)>,
    running_announced: bool,
    final_status: watch::Sender<Option<MachineStatus>>,
    /// Timers (stop timeouts, restart backoffs): aborted at the end.
    background: Vec<JoinHandle<()>>,
    /// Runtime cleanups: awaited at the end.
    cleanups: Vec<JoinHandle<()>>,
    captures: Vec<JoinHandle<()>>,
}

impl Actor {
    pub fn new(
        plan: MachinePlan,
        runtime: Arc<dyn Runtime>,
        tx: mpsc::UnboundedSender<Msg>,
        logs: Arc<LogJournal>,
        events: Arc<Journal<Event>>,
        final_status: watch::Sender<Option<MachineStatus>>,
    ) -> Self {
        Actor {
            machine_id: plan.machine_id,
            slots: plan.containers.into_iter().map(Slot::new).collect(),
            runtime,
            tx,
            logs,
            events,
            stopping: None,
            running_announced: false,
            final_status,
            background: Vec::new(),
            cleanups: Vec::new(),
            captures: Vec::new(),
        }
    }

    fn emit(&self, container: Option<&str>, kind: EventKind) {
        match &kind {
            EventKind::StartFailed { error } => tracing::warn!(container, "start failed: {error}"),
            EventKind::Failed { reason } => tracing::warn!(container, "failed: {reason}"),
            _ => tracing::debug!(container, ?kind),
        }
        self.events.push(Event {
            ts_ms: now_ms(),
            container: container.map(str::to_string),
            kind,
        });
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) -> MachineStatus {
        self.emit(None, EventKind::MachineStarting);
        self.evaluate();
        while !self.finished() {
            let Some(msg) = rx.recv().await else { break };
            self.handle(msg);
            self.evaluate();
        }
        self.finish().await
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::StartDone { idx, epoch, result } if self.slots[idx].epoch == epoch => {
                self.on_started(idx, result)
            }
            Msg::Exited { idx, epoch, status } if self.slots[idx].epoch == epoch => {
                self.on_exit(idx, status)
            }
            Msg::Probe { idx, epoch, report } if self.slots[idx].epoch == epoch => {
                self.on_probe(idx, report)
            }
            Msg::RestartDue { idx, epoch }
                if self.slots[idx].epoch == epoch
                    && matches!(self.slots[idx].phase, Phase::Backoff)
                    && self.stopping.is_none() =>
            {
                self.start(idx);
            }
            Msg::KillDue { idx, epoch } if self.slots[idx].epoch == epoch => {
                if let Phase::Stopping { pid, .. } = self.slots[idx].phase {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    self.emit(Some(self.slots[idx].name()), EventKind::Killed);
                }
            }
            Msg::Command(c) => self.command(c),
            // A report about an earlier run of the container.
            _ => {}
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Status(reply) => {
                let _ = reply.send(self.status(None));
            }
            Command::ExecTarget { container, reply } => {
                let _ = reply.send(self.exec_target(container));
            }
            Command::Signal {
                container,
                signal,
                reply,
            } => {
                let _ = reply.send(self.signal(container, signal));
            }
            Command::Stop {
                signal,
                timeout,
                reason,
                reply,
            } => {
                let _ = reply.send(self.request_stop(signal, timeout, &reason));
            }
        }
    }

    // ---- starting -------------------------------------------------------------

    /// Starts every waiting container whose dependencies are met and fails those
    /// whose dependencies can never be met, until nothing changes.
    fn evaluate(&mut self) {
        if self.stopping.is_some() {
            self.stop_wave();
            return;
        }
        loop {
            let mut changed = false;
            for idx in 0..self.slots.len() {
                if !matches!(self.slots[idx].phase, Phase::Waiting) {
                    continue;
                }
                let mut all_met = true;
                let mut blocked = None;
                for dep in &self.slots[idx].plan.depends_on {
                    let Some(d) = self.slots.iter().find(|s| s.name() == dep.container) else {
                        blocked = Some((dep.clone(), "no such container".to_string()));
                        break;
                    };
                    match dependency_state(d.facts(), dep.condition) {
                        DepState::Met => {}
                        DepState::Pending => all_met = false,
                        DepState::Never => {
                            blocked = Some((dep.clone(), describe_end(d)));
                            break;
                        }
                    }
                }
                if let Some((dep, why)) = blocked {
                    let name = self.slots[idx].name().to_string();
                    let reason = format!(
                        "dependency {:?} can never be {}: {why}",
                        dep.container, dep.condition
                    );
                    self.emit(
                        Some(&name),
                        EventKind::Blocked {
                            dependency: dep.container.clone(),
                            condition: dep.condition,
                            reason: why,
                        },
                    );
                    self.emit(
                        Some(&name),
                        EventKind::Failed {
                            reason: reason.clone(),
                        },
                    );
                    let s = &mut self.slots[idx];
                    s.reason = Some(reason);
                    s.phase = Phase::Done { failed: true };
                    changed = true;
                } else if all_met {
                    self.start(idx);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if !self.running_announced
            && self
                .slots
                .iter()
                .all(|s| s.ever_started || matches!(s.phase, Phase::Done { .. }))
        {
            self.running_announced = true;
            self.emit(None, EventKind::MachineRunning);
        }
    }

    fn start(&mut self, idx: usize) {
        let s = &mut self.slots[idx];
        s.epoch += 1;
        s.phase = Phase::Starting;
        s.reset_checks();
        let (epoch, attempt) = (s.epoch, s.restart_count + 1);
        let launch = s.plan.launch.clone();
        self.emit(Some(&launch.name), EventKind::Starting { attempt });
        let runtime = self.runtime.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = runtime.start(&launch);
            // Register at once (the reaper keeps a status that comes earlier), and
            // report the start before the exit can be reported.
            let exited = result.as_ref().ok().map(|s| reaper().watch(s.pid));
            let _ = tx.send(Msg::StartDone { idx, epoch, result });
            if let Some(exited) = exited {
                tokio::runtime::Handle::current().spawn(async move {
                    if let Ok(status) = exited.await {
                        let _ = tx.send(Msg::Exited { idx, epoch, status });
                    }
                });
            }
        });
    }

    fn on_started(&mut self, idx: usize, result: Result<Started, RuntimeError>) {
        let name = self.slots[idx].name().to_string();
        let started = match result {
            Ok(s) => s,
            Err(e) => {
                let error = e.to_string();
                self.emit(
                    Some(&name),
                    EventKind::StartFailed {
                        error: error.clone(),
                    },
                );
                self.slots[idx].reason = Some(format!("start failed: {error}"));
                self.after_run(idx, true);
                return;
            }
        };
        for (fd, stream) in [
            (started.stdout, Stream::Stdout),
            (started.stderr, Stream::Stderr),
        ] {
            self.captures.push(tokio::spawn(logs::capture(
                fd,
                name.clone(),
                stream,
                self.logs.clone(),
            )));
        }
        self.captures.retain(|h| !h.is_finished());
        let oom_before = self.runtime.oom_kills(&started.handle);
        let target = ExecTarget {
            runtime: self.runtime.clone(),
            handle: started.handle.clone(),
            base: exec_base(&self.slots[idx]),
        };
        let s = &mut self.slots[idx];
        s.phase = Phase::Running {
            pid: started.pid,
            handle: started.handle,
        };
        s.oom_before = oom_before;
        s.ever_started = true;
        s.started_at_ms = Some(now_ms());
        s.reason = None;
        s.requested = None;
        if s.plan.checks.is_empty() {
            s.ever_healthy = true;
        }
        let epoch = s.epoch;
        for (i, check) in s.plan.checks.iter().enumerate() {
            let tx = self.tx.clone();
            s.checks.push(health::spawn(
                i,
                check.clone(),
                target.clone(),
                move |report| {
                    let _ = tx.send(Msg::Probe { idx, epoch, report });
                },
            ));
        }
        // Started while the machine stops: the next stop wave stops it.
        self.emit(Some(&name), EventKind::Started { pid: started.pid });
    }

    // ---- health ---------------------------------------------------------------

    fn on_probe(&mut self, idx: usize, report: health::ProbeReport) {
        if !matches!(self.slots[idx].phase, Phase::Running { .. }) {
            return;
        }
        let name = self.slots[idx].name().to_string();
        let s = &mut self.slots[idx];
        let check = s.plan.checks[report.check].clone();
        s.last_output[report.check] = Some(report.output.clone());
        s.last_checked_ms[report.check] = Some(now_ms());
        let change = s.trackers[report.check].record(
            report.ok,
            check.success_threshold,
            check.failure_threshold,
        );
        match change {
            Some(CheckState::Passing) => {
                self.emit(
                    Some(&name),
                    EventKind::CheckPassing {
                        check: check.name.clone(),
                    },
                );
                let s = &mut self.slots[idx];
                if s.all_passing() && !s.healthy_now {
                    s.healthy_now = true;
                    s.ever_healthy = true;
                    self.emit(Some(&name), EventKind::Healthy);
                }
            }
            Some(CheckState::Failing) => {
                self.slots[idx].healthy_now = false;
                self.emit(
                    Some(&name),
                    EventKind::CheckFailing {
                        check: check.name.clone(),
                        output: Some(report.output),
                    },
                );
                self.emit(
                    Some(&name),
                    EventKind::Unhealthy {
                        check: check.name.clone(),
                    },
                );
                if check.on_unhealthy == UnhealthyAction::Stop && self.stopping.is_none() {
                    let stop = self.slots[idx].plan.stop;
                    self.begin_stop(idx, stop, "unhealthy");
                }
            }
            _ => {}
        }
    }

    // ---- exits and restarts ---------------------------------------------------

    fn on_exit(&mut self, idx: usize, status: ExitStatus) {
        let name = self.slots[idx].name().to_string();
        let handle = match std::mem::replace(&mut self.slots[idx].phase, Phase::Starting) {
            Phase::Running { handle, .. } | Phase::Stopping { handle, .. } => handle,
            other => {
                self.slots[idx].phase = other;
                return;
            }
        };
        let oom = self.runtime.oom_kills(&handle) > self.slots[idx].oom_before;
        let s = &mut self.slots[idx];
        s.reset_checks();
        let requested = s.requested.take();
        let exit = ExitInfo {
            exit_code: match status {
                ExitStatus::Exited(c) => Some(c),
                ExitStatus::Signaled(_) => None,
            },
            signal: match status {
                ExitStatus::Signaled(sig) => Some(sig),
                ExitStatus::Exited(_) => None,
            },
            oom_killed: oom,
            exited_at_ms: now_ms(),
            requested: requested.map(str::to_string),
        };
        if exit.success() {
            s.ever_succeeded = true;
        }
        s.record_exit(exit.clone());
        let failed = !exit.success() || requested == Some("unhealthy");
        self.emit(Some(&name), EventKind::Exited { exit: exit.clone() });

        let runtime = self.runtime.clone();
        let (done_tx, cleanup) = oneshot::channel();
        self.cleanups.retain(|h| !h.is_finished());
        self.cleanups.push(tokio::task::spawn_blocking(move || {
            if let Err(e) = runtime.cleanup(&handle) {
                tracing::warn!("cleanup: {e}");
            }
            let _ = done_tx.send(());
        }));
        if self.stopping.is_some() || requested == Some("stop") {
            self.slots[idx].phase = Phase::Done { failed: false };
            self.slots[idx].reason = Some("stopped".into());
            return;
        }
        self.slots[idx].reason = match status {
            ExitStatus::Exited(c) => Some(format!("exited with code {c}")),
            ExitStatus::Signaled(sig) => Some(format!("killed by signal {sig}")),
        };
        if oom {
            self.slots[idx].reason = Some("killed by the OOM killer".into());
        }
        self.after_run_with_cleanup(idx, failed, Some(cleanup));
    }

    fn after_run(&mut self, idx: usize, failed: bool) {
        self.after_run_with_cleanup(idx, failed, None);
    }

    /// Applies the restart policy after a run ended (or failed to start).
    fn after_run_with_cleanup(
        &mut self,
        idx: usize,
        failed: bool,
        cleanup: Option<oneshot::Receiver<()>>,
    ) {
        let name = self.slots[idx].name().to_string();
        let s = &mut self.slots[idx];
        let decision = if self.stopping.is_some() {
            Decision::Finish {
                reason: "machine stopping".into(),
            }
        } else {
            restart::decide(
                &s.plan.restart,
                failed,
                &mut s.restart_history,
                Instant::now(),
            )
        };
        match decision {
            Decision::Restart { delay, attempt } => {
                s.phase = Phase::Backoff;
                s.restart_count += 1;
                let epoch = s.epoch;
                self.emit(
                    Some(&name),
                    EventKind::Restarting {
                        attempt,
                        delay_ms: delay.as_millis() as u64,
                    },
                );
                let tx = self.tx.clone();
                self.background.push(tokio::spawn(async move {
                    if let Some(c) = cleanup {
                        let _ = c.await;
                    }
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::RestartDue { idx, epoch });
                }));
            }
            Decision::Finish { reason } => {
                s.phase = Phase::Done { failed };
                if failed {
                    let why = format!("{}; {reason}", s.reason.clone().unwrap_or_default());
                    s.reason = Some(why.clone());
                    self.emit(Some(&name), EventKind::Failed { reason: why });
                }
            }
        }
        self.background.retain(|h| !h.is_finished());
    }

    // ---- stopping -------------------------------------------------------------

    fn begin_stop(&mut self, idx: usize, plan: StopPlan, why: &'static str) {
        if !matches!(self.slots[idx].phase, Phase::Running { .. }) {
            return;
        }
        let Phase::Running { pid, handle } =
            std::mem::replace(&mut self.slots[idx].phase, Phase::Starting)
        else {
            return;
        };
        let name = self.slots[idx].name().to_string();
        let _ = kill(Pid::from_raw(pid), Signal::try_from(plan.signal).ok());
        self.slots[idx].phase = Phase::Stopping { pid, handle };
        self.slots[idx].requested = Some(why);
        self.emit(
            Some(&name),
            EventKind::Signaled {
                signal: plan.signal,
                reason: why.to_string(),
            },
        );
        if plan.signal != libc::SIGKILL {
            let tx = self.tx.clone();
            let epoch = self.slots[idx].epoch;
            self.background.push(tokio::spawn(async move {
                tokio::time::sleep(plan.timeout).await;
                let _ = tx.send(Msg::KillDue { idx, epoch });
            }));
        }
    }

    fn request_stop(
        &mut self,
        signal: Option<i32>,
        timeout: Option<Duration>,
        reason: &str,
    ) -> StopResult {
        if self.stopping.is_some() {
            return StopResult {
                accepted: false,
                message: "the machine is already stopping; this stop request changed nothing"
                    .into(),
                status: None,
            };
        }
        self.stopping = Some((signal, timeout));
        self.emit(
            None,
            EventKind::MachineStopping {
                reason: reason.to_string(),
            },
        );
        for s in &mut self.slots {
            if matches!(s.phase, Phase::Waiting | Phase::Backoff) {
                s.epoch += 1; // invalidates a pending restart
                let never = !s.ever_started;
                s.phase = Phase::Done { failed: false };
                s.reason = Some(if never {
                    "machine stopped before the container started".into()
                } else {
                    "machine stopped while the container waited to restart".into()
                });
            }
        }
        StopResult {
            accepted: true,
            message: format!("stopping the machine ({reason})"),
            status: None,
        }
    }

    /// Sends the stop signal to every running container no live container
    /// depends on: dependents stop before their dependencies.
    fn stop_wave(&mut self) {
        let Some((sig, timeout)) = self.stopping else {
            return;
        };
        for idx in 0..self.slots.len() {
            if !matches!(self.slots[idx].phase, Phase::Running { .. }) {
                continue;
            }
            let name = self.slots[idx].name().to_string();
            let has_live_dependent = self
                .slots
                .iter()
                .any(|d| d.is_live() && d.plan.depends_on.iter().any(|dep| dep.container == name));
            if has_live_dependent {
                continue;
            }
            let own = self.slots[idx].plan.stop;
            let plan = StopPlan {
                signal: sig.unwrap_or(own.signal),
                timeout: timeout.unwrap_or(own.timeout),
            };
            self.begin_stop(idx, plan, "stop");
        }
    }

    // ---- API ------------------------------------------------------------------

    fn find(&self, container: &str) -> Result<usize, ApiError> {
        self.slots
            .iter()
            .position(|s| s.name() == container)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownContainer,
                    format!(
                        "container: no container named {container:?} (this machine has: {})",
                        self.names()
                    ),
                )
            })
    }

    fn names(&self) -> String {
        self.slots
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn exec_target(&self, container: Option<String>) -> Result<ExecTarget, ApiError> {
        let idx = match container {
            Some(c) => self.find(&c)?,
            None if self.slots.len() == 1 => 0,
            None => {
                return Err(ApiError::bad_request(format!(
                    "container: required, this machine runs {} containers ({})",
                    self.slots.len(),
                    self.names()
                )));
            }
        };
        let s = &self.slots[idx];
        match &s.phase {
            Phase::Running { handle, .. } => Ok(ExecTarget {
                runtime: self.runtime.clone(),
                handle: handle.clone(),
                base: exec_base(s),
            }),
            _ => Err(ApiError::new(
                ErrorCode::NotRunning,
                format!(
                    "container {:?} is not running (state {:?})",
                    s.name(),
                    s.state()
                ),
            )),
        }
    }

    fn signal(&mut self, container: Option<String>, signal: i32) -> Result<SignalResult, ApiError> {
        let sig = Signal::try_from(signal).map_err(|_| {
            ApiError::bad_request(format!("signal: {signal} is not a signal number"))
        })?;
        let targets: Vec<usize> = match container {
            Some(c) => {
                let idx = self.find(&c)?;
                if self.slots[idx].pid().is_none() {
                    return Err(ApiError::new(
                        ErrorCode::NotRunning,
                        format!(
                            "container {c:?} is not running (state {:?})",
                            self.slots[idx].state()
                        ),
                    ));
                }
                vec![idx]
            }
            None => (0..self.slots.len())
                .filter(|i| self.slots[*i].pid().is_some())
                .collect(),
        };
        if targets.is_empty() {
            return Err(ApiError::new(
                ErrorCode::NotRunning,
                "no container is running",
            ));
        }
        let mut names = Vec::new();
        for idx in targets {
            if let Some(pid) = self.slots[idx].pid() {
                let _ = kill(Pid::from_raw(pid), sig);
                let name = self.slots[idx].name().to_string();
                self.emit(
                    Some(&name),
                    EventKind::Signaled {
                        signal,
                        reason: "agent request".into(),
                    },
                );
                names.push(name);
            }
        }
        Ok(SignalResult {
            containers: names,
            signal,
        })
    }

    // ---- the end ----------------------------------------------------------------

    fn machine_state(&self) -> MachineState {
        if self.finished() {
            MachineState::Exited
        } else if self.stopping.is_some() {
            MachineState::Stopping
        } else if self.running_announced {
            MachineState::Running
        } else {
            MachineState::Starting
        }
    }

    fn finished(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s.phase, Phase::Done { .. }))
    }

    /// pilot's exit code: 0 after a requested stop or when every container exited
    /// 0; else the code of the first failed container (128 + signal when killed,
    /// 1 when it never ran).
    fn exit_code(&self) -> i32 {
        if self.stopping.is_some() {
            return 0;
        }
        for s in &self.slots {
            if matches!(s.phase, Phase::Done { failed: true }) {
                return match s.exits.back() {
                    Some(e) => e.exit_code.unwrap_or(128 + e.signal.unwrap_or(0)).max(1),
                    None => 1,
                };
            }
        }
        0
    }

    fn status(&self, exit_code: Option<i32>) -> MachineStatus {
        MachineStatus {
            machine_id: self.machine_id.clone(),
            state: self.machine_state(),
            exit_code,
            error: None,
            containers: self
                .slots
                .iter()
                .map(|s| {
                    let waiting = if matches!(s.phase, Phase::Waiting) {
                        s.plan
                            .depends_on
                            .iter()
                            .filter(|d| {
                                self.slots
                                    .iter()
                                    .find(|x| x.name() == d.container)
                                    .is_none_or(|x| {
                                        dependency_state(x.facts(), d.condition) != DepState::Met
                                    })
                            })
                            .map(|d| format!("{} ({})", d.container, d.condition))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    s.status(waiting)
                })
                .collect(),
        }
    }

    async fn finish(mut self) -> MachineStatus {
        let code = self.exit_code();
        for h in self.background.drain(..) {
            h.abort();
        }
        for h in self.cleanups.drain(..) {
            if tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .is_err()
            {
                tracing::warn!("a runtime cleanup did not finish within 10s");
            }
        }
        for h in self.captures.drain(..) {
            let _ = tokio::time::timeout(LOG_DRAIN, h).await;
        }
        self.emit(None, EventKind::MachineExited { exit_code: code });
        let status = self.status(Some(code));
        let _ = self.final_status.send(Some(status.clone()));
        self.events.close();
        self.logs.close();
        status
    }
}

/// The ExecSpec base of a container: its environment, working dir and user.
fn exec_base(s: &Slot) -> ExecSpec {
    let p = &s.plan.launch.process;
    ExecSpec {
        argv: Vec::new(),
        env: p.env.clone(),
        cwd: p.cwd.clone(),
        user: p.user,
    }
}

/// Why a finished dependency can never meet a condition.
fn describe_end(d: &Slot) -> String {
    let reason = d.reason.clone().unwrap_or_else(|| "finished".into());
    let state = serde_json::to_value(d.state()).ok();
    let state = state
        .as_ref()
        .and_then(|v| v.as_str())
        .unwrap_or("finished");
    format!("{:?} {state}: {reason}", d.name())
}
