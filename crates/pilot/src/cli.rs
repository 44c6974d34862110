//! pilot's command line: `pilot run --spec FILE --socket PATH [--state-dir DIR]`.
//!
//! `run` loads and resolves the spec, starts the reaper, the supervisor and the
//! agent API, and exits once every container is finished, after writing
//! `status.json` into the state dir. Exit codes: pilot's machine exit code (see the
//! crate docs); 2 for bad arguments or an invalid spec.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::api::server;
use crate::reaper::reaper;
use crate::resolve::resolve;
use crate::spec::MachineSpec;
use crate::status::{MachineState, MachineStatus};

const USAGE: &str = "usage: pilot run --spec FILE --socket PATH [--state-dir DIR]";

/// Arguments of `pilot run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub spec: PathBuf,
    pub socket: PathBuf,
    pub state_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<RunArgs, String> {
    let mut it = args.iter();
    let (mut spec, mut socket, mut state_dir) = (None, None, None);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{key} needs a value"))
        };
        match key {
            "--spec" => spec = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(RunArgs {
        spec: spec.ok_or("--spec is required")?,
        socket: socket.ok_or("--socket is required")?,
        state_dir,
    })
}

/// Runs pilot's public subcommands.
pub fn main(args: Vec<String>) -> ExitCode {
    match args.get(1).map(String::as_str) {
        Some("run") => match parse(&args[2..]) {
            Ok(a) => run(a),
            Err(e) => {
                eprintln!("pilot run: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    init_tracing();
    match run_inner(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("pilot: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PILOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run_inner(args: RunArgs) -> anyhow::Result<i32> {
    let mut spec = MachineSpec::load(&args.spec)?;
    if let Some(dir) = args.state_dir {
        spec.state_dir = dir;
    }
    std::fs::create_dir_all(&spec.state_dir)
        .with_context(|| format!("create state dir {}", spec.state_dir.display()))?;
    let plan = match resolve(&spec) {
        Ok(p) => p,
        Err(e) => {
            write_status(
                &spec.state_dir,
                &MachineStatus {
                    machine_id: spec.machine_id.clone(),
                    state: MachineState::Exited,
                    exit_code: Some(2),
                    containers: Vec::new(),
                    error: Some(e.to_string()),
                },
            )?;
            anyhow::bail!("{e}");
        }
    };
    if std::process::id() != 1 {
        // Orphans of our containers come back to us, not to the host's init.
        nix::sys::prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER")?;
    }
    // Before any child exists.
    let _ = reaper();
    let runtime = make_runtime().context("container runtime")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let state_dir = spec.state_dir.clone();
    let status = rt.block_on(async move {
        let listener = server::bind(&args.socket)
            .with_context(|| format!("bind the API socket {}", args.socket.display()))?;
        let (handle, task) = crate::supervisor::spawn(plan, runtime);
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let api = tokio::spawn(server::serve(listener, handle.clone(), shutdown_rx));
        let signals = tokio::spawn(stop_on_signals(handle.clone()));
        let status = task.await.context("supervisor task")?;
        signals.abort();
        write_status(&state_dir, &status)?;
        let _ = shutdown_tx.send(true);
        let _ = api.await;
        let _ = std::fs::remove_file(&args.socket);
        anyhow::Ok(status)
    })?;
    // Blocking tasks (runtime calls) must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(status.exit_code.unwrap_or(0))
}

/// The namespace runtime; containers' cgroups go under pilot's own (the
/// machine's) cgroup.
fn make_runtime() -> anyhow::Result<Arc<dyn crate::runtime::Runtime>> {
    use crate::runtime::{NamespaceRuntime, NamespaceRuntimeConfig};
    Ok(Arc::new(NamespaceRuntime::new(
        NamespaceRuntimeConfig::default(),
    )?))
}

/// SIGTERM, SIGINT, SIGHUP to pilot itself stop the machine.
async fn stop_on_signals(handle: crate::supervisor::Handle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        let _ = handle
            .stop(None, None, &format!("pilot received {name}"))
            .await;
    }
}

/// Writes `status.json` in `dir` atomically (temp file, fsync, rename).
pub fn write_status(dir: &Path, status: &MachineStatus) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = dir.join(".status.json.tmp");
    let path = dir.join("status.json");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(status)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_run_arguments() {
        let a: Vec<String> = ["--spec", "s.json", "--socket=/run/p.sock"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parse(&a).unwrap(),
            RunArgs {
                spec: "s.json".into(),
                socket: "/run/p.sock".into(),
                state_dir: None
            }
        );
        let e = parse(&["--spec".to_string()]).unwrap_err();
        assert!(e.contains("--spec needs a value"), "{e}");
        assert!(
            parse(&["--bogus".to_string()])
                .unwrap_err()
                .contains("--bogus")
        );
    }
}
