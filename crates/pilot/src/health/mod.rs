//! Health checks: one task per check of a running container probes it at its
//! interval (after its grace period) and reports each result to the supervisor,
//! which counts thresholds ([`tracker`]) and acts.
#![forbid(unsafe_code)]

pub mod probe;
pub mod tracker;

use std::sync::Arc;
use std::time::Duration;

use crate::exec;
use crate::plan::{CheckPlan, Probe};
use crate::runtime::{ContainerHandle, ExecSpec, Runtime};

/// Output kept from a probe for the status answer.
const MAX_REPORTED_OUTPUT: usize = 512;

/// One probe result.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Index of the check in the container's plan.
    pub check: usize,
    pub ok: bool,
    pub output: String,
}

/// Where exec probes run: the started container.
#[derive(Clone)]
pub struct ExecTarget {
    pub runtime: Arc<dyn Runtime>,
    pub handle: ContainerHandle,
    /// The container's environment, working dir and user; `argv` is replaced.
    pub base: ExecSpec,
}

/// Runs check `index` until the returned task is aborted.
pub fn spawn(
    index: usize,
    check: CheckPlan,
    target: ExecTarget,
    report: impl Fn(ProbeReport) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(check.grace_period).await;
        let mut ticker = tokio::time::interval(check.interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let result = run_probe(&check.probe, &target, check.timeout).await;
            let (ok, mut output) = match result {
                Ok(o) => (true, o),
                Err(e) => (false, e),
            };
            truncate(&mut output, MAX_REPORTED_OUTPUT);
            report(ProbeReport {
                check: index,
                ok,
                output,
            });
        }
    })
}

async fn run_probe(
    probe: &Probe,
    target: &ExecTarget,
    timeout: Duration,
) -> Result<String, String> {
    let timed = |r: Result<Result<String, String>, tokio::time::error::Elapsed>| {
        r.unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
    };
    match probe {
        Probe::Tcp { port } => timed(tokio::time::timeout(timeout, probe::tcp(*port)).await),
        Probe::Http(p) => timed(tokio::time::timeout(timeout, probe::http(p)).await),
        // exec::run enforces the timeout itself, killing the process.
        Probe::Exec { argv } => {
            let spec = ExecSpec {
                argv: argv.clone(),
                ..target.base.clone()
            };
            let out = exec::run(
                target.runtime.clone(),
                target.handle.clone(),
                spec,
                Vec::new(),
                timeout,
            )
            .await
            .map_err(|e| format!("exec {argv:?}: {e}"))?;
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            match out.status {
                Some(s) if s.success() => Ok(text),
                Some(s) => Err(format!("exit {}: {text}", s.code())),
                None => Err(format!("timed out: {text}")),
            }
        }
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
