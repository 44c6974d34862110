//! Hangar's proxy: routes client traffic to machines' services, balances load,
//! starts stopped machines on demand and stops idle ones.
//!
//! Use [`Proxy::start`] with a [`Fleet`] (normally [`HttpFleet`], a Machines
//! API client) to run it inside another program (`hangar serve` does), or
//! `hangar proxy` ([`run`]) to run it on its own:
//!
//! ```text
//! hangar proxy --api-url http://127.0.0.1:4280 --token $TOKEN \
//!     --proxy-bind 127.0.0.1 --proxy-metrics 127.0.0.1:4281
//! ```
//!
//! Service ports come from the machines' configs (`services[].ports[]`); the
//! proxy listens on each on `--proxy-bind` (all addresses by default) and
//! routes by the Host header (or TLS SNI) `<app>.<domain>` when several apps
//! share a port. With the `http` handler, a machine's load is its number of
//! in-flight requests whatever the concurrency `type` (upstream connections
//! are pooled); without it, its number of open connections.

#![forbid(unsafe_code)]

mod autostop;
mod balance;
mod body;
mod catalog;
mod checks;
mod clock;
pub mod compress;
mod conn;
mod control;
pub mod fleet;
mod frozen;
mod http;
mod listener;
mod live;
mod metrics;
pub mod options;
mod proxy_proto;
mod shared;
mod tcp;
pub mod tls;
mod udp;
mod upgrade;
mod workers;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::watch;

pub use fleet::{Fleet, FleetError, HttpFleet, MachineInfo, MachineState};
pub use options::ProxyOptions;

/// Options of `hangar proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// The Machines API the proxy reads machines from and starts/stops them with.
    #[arg(long, env = "HANGAR_API_URL", default_value = "http://127.0.0.1:4280")]
    pub api_url: String,
    /// API token (an admin token: the proxy sees every app).
    #[arg(long, env = "HANGAR_API_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Region of this proxy (machines here are preferred).
    #[arg(long, env = "HANGAR_REGION", default_value = "local")]
    pub region: String,
    #[command(flatten)]
    pub options: ProxyOptions,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("starting the proxy's threads: {0}")]
    Threads(#[source] std::io::Error),
    #[error("--proxy-metrics {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running proxy; it stops (listeners closed, loops ended) when dropped.
pub struct Proxy {
    shared: Arc<shared::Shared>,
    metrics_addr: Option<SocketAddr>,
    _tasks: shared::Tasks,
    _workers: workers::WorkersGuard,
}

impl Proxy {
    /// Starts the refresh, autostop and (with `opts.metrics`) control tasks.
    /// `changes`, when given, triggers a machine list refresh on every bump
    /// (e.g. `Store::subscribe()` inside `hangar serve`).
    pub async fn start(
        opts: ProxyOptions,
        region: &str,
        fleet: Arc<dyn Fleet>,
        changes: Option<watch::Receiver<i64>>,
    ) -> Result<Proxy, ProxyError> {
        let tls = tls::server_config(
            opts.tls_cert.as_deref(),
            opts.tls_key.as_deref(),
            opts.tls_dir.as_deref(),
            &opts.domain,
        )?;
        let metrics = opts.metrics;
        let (workers, workers_guard) =
            workers::Workers::start(opts.threads).map_err(ProxyError::Threads)?;
        let shared = Arc::new(shared::Shared::new(
            opts,
            region.to_owned(),
            fleet,
            Some(tls.configs),
            workers,
        ));
        let mut tasks = Vec::new();
        if let Some(watch) = tls.watch {
            tasks.push(tokio::spawn(watch.run()));
        }
        let mut metrics_addr = None;
        if let Some(addr) = metrics {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Metrics { addr, source })?;
            metrics_addr = l.local_addr().ok();
            tasks.push(tokio::spawn(control::serve(shared.clone(), l)));
        }
        tasks.push(tokio::spawn(shared::refresh_loop(shared.clone(), changes)));
        tasks.push(tokio::spawn(autostop::autostop_loop(shared.clone())));
        Ok(Proxy {
            shared,
            metrics_addr,
            _tasks: shared::Tasks(Mutex::new(tasks)),
            _workers: workers_guard,
        })
    }

    /// Where `GET /metrics` and `POST /busy` are served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Re-reads the machine list now and waits (at most a second) for it.
    pub async fn refresh(&self) {
        self.shared
            .refresh_and_wait(std::time::Duration::from_secs(1))
            .await;
    }

    /// Runs one autostop pass now; returns the ids of the machines stopped.
    pub async fn autostop_now(&self) -> Vec<String> {
        autostop::run_once(&self.shared).await
    }
}

/// Runs the proxy on its own, against a Machines API, until SIGINT or SIGTERM.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let fleet = Arc::new(HttpFleet::new(&args.api_url, &args.token));
    let proxy = Proxy::start(args.options.clone(), &args.region, fleet, None)
        .await
        .context("starting the proxy")?;
    eprintln!(
        "hangar proxy: routing service ports on {} for the Machines API at {}{}",
        args.options.bind,
        args.api_url,
        proxy
            .metrics_addr()
            .map(|a| format!("; metrics on http://{a}/metrics"))
            .unwrap_or_default()
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(proxy);
    Ok(())
}
