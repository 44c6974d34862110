//! `hangar serve`: the Machines API, the host agent and the proxy in one
//! process, with an embedded SQLite store.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use hangar_agent::machine::{Agent, AgentConfig};
use hangar_agent::network::{Ipv4Subnet, Ipv6Prefix, NetworkConfig};
use hangar_agent::store::Store;
use hangar_api::{AdminToken, ApiConfig, ApiState, bootstrap_admin_token};

use crate::backend::AgentBackend;

/// How machines are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// A host bridge: every machine gets an IPv6 and an IPv4 address, machines
    /// reach each other and, with NAT, the outside.
    Bridge,
    /// Every machine gets a network namespace with loopback only.
    None,
}

/// Options of `hangar serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where Hangar keeps its store, images, machines and volumes.
    #[arg(long, env = "HANGAR_DATA_DIR", default_value = "/var/lib/hangar")]
    pub data_dir: PathBuf,
    /// Address of the Machines API.
    #[arg(long, env = "HANGAR_LISTEN", default_value = "127.0.0.1:4280")]
    pub listen: SocketAddr,
    /// Region of this host.
    #[arg(long, env = "HANGAR_REGION", default_value = "local")]
    pub region: String,
    /// Machine networking.
    #[arg(long, value_enum, default_value = "bridge")]
    pub network: NetworkMode,
    /// Host bridge of the machines (with `--network bridge`).
    #[arg(long, default_value = hangar_agent::network::DEFAULT_BRIDGE)]
    pub bridge: String,
    /// IPv4 subnet of the machines (with `--network bridge`).
    #[arg(long, default_value = hangar_agent::network::DEFAULT_IPV4_SUBNET)]
    pub ipv4_subnet: String,
    /// Do not masquerade machines' traffic leaving the host.
    #[arg(long)]
    pub no_nat: bool,
    /// The pilot binary (default: `pilot` next to this executable).
    #[arg(long, env = "HANGAR_PILOT")]
    pub pilot: Option<PathBuf>,
    /// Parent of the machines' cgroups.
    #[arg(long, default_value = "hangar")]
    pub cgroup_prefix: String,
    /// Do not run the proxy (machines' service ports are not served).
    #[arg(long)]
    pub no_proxy: bool,
    #[command(flatten)]
    pub proxy: hangar_proxy::ProxyOptions,
}

/// Name of the admin token `hangar serve` mints for its own proxy at every
/// start (the previous one is revoked).
const PROXY_TOKEN_NAME: &str = "internal:proxy";

/// Starts the proxy against this server's own API on loopback, with a fresh
/// internal admin token.
async fn start_proxy(
    args: &ServeArgs,
    store: &Store,
    api: SocketAddr,
) -> anyhow::Result<hangar_proxy::Proxy> {
    for t in store.list_tokens().await.context("listing tokens")? {
        if t.name == PROXY_TOKEN_NAME && t.revoked_at.is_none() {
            store
                .revoke_token(&t.id)
                .await
                .context("revoking the previous proxy token")?;
        }
    }
    let token = store
        .create_token(PROXY_TOKEN_NAME, true, None)
        .await
        .context("creating the proxy's token")?
        .token;
    let api = if api.ip().is_unspecified() {
        SocketAddr::new(
            if api.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            api.port(),
        )
    } else {
        api
    };
    let fleet = std::sync::Arc::new(hangar_proxy::HttpFleet::new(
        &format!("http://{api}"),
        &token,
    ));
    if args.network == NetworkMode::None {
        tracing::warn!(
            "--network none: machines are not reachable from the host, so the proxy cannot route to them"
        );
    }
    let proxy = hangar_proxy::Proxy::start(
        args.proxy.clone(),
        &args.region,
        fleet,
        Some(store.subscribe()),
    )
    .await?;
    eprintln!(
        "hangar: proxy serving machines' service ports on {} (apps as <app>.{}){}",
        args.proxy.bind,
        args.proxy.domain,
        proxy
            .metrics_addr()
            .map(|a| format!("; metrics on http://{a}/metrics"))
            .unwrap_or_default()
    );
    Ok(proxy)
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("--data-dir {}", args.data_dir.display()))?;
    let store = Store::open(args.data_dir.join("hangar.db"))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;

    let mut config = AgentConfig::new(&args.data_dir);
    config.region = args.region.clone();
    config.cgroup_prefix = args.cgroup_prefix.clone();
    if let Some(pilot) = &args.pilot {
        config.pilot_bin = pilot.clone();
    }
    anyhow::ensure!(
        config.pilot_bin.exists(),
        "the pilot binary {} does not exist: build it (cargo build -p pilot) or pass --pilot",
        config.pilot_bin.display()
    );
    if args.network == NetworkMode::Bridge {
        let prefix = Ipv6Prefix::load_or_generate(&args.data_dir.join("ipv6-prefix"))
            .context("the host's IPv6 prefix")?;
        let mut net = NetworkConfig::new(prefix);
        net.set_bridge(&args.bridge);
        net.ipv4_subnet = args
            .ipv4_subnet
            .parse::<Ipv4Subnet>()
            .with_context(|| format!("--ipv4-subnet {}", args.ipv4_subnet))?;
        net.nat = !args.no_nat;
        net.validate().context("machine network")?;
        config.network = Some(net);
    }

    match bootstrap_admin_token(
        &store,
        &args.data_dir,
        std::env::var("HANGAR_API_TOKEN").ok(),
    )
    .await
    .context("creating the admin token")?
    {
        AdminToken::Existing => {}
        AdminToken::FromEnv => tracing::info!("admin token taken from HANGAR_API_TOKEN"),
        AdminToken::Written(path) => {
            eprintln!("admin token written to {}", path.display())
        }
    }

    let agent = Agent::open(config, store.clone())
        .await
        .context("starting the host agent")?;
    let backend = AgentBackend::arc(agent.clone());
    let api = ApiConfig {
        region: args.region.clone(),
        volume_dir: args.data_dir.join("volumes"),
        ..ApiConfig::default()
    };
    let state = ApiState::new(store.clone(), backend.clone(), backend, api);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    let proxy = if args.no_proxy {
        None
    } else {
        Some(
            start_proxy(&args, &store, listener.local_addr()?)
                .await
                .context("starting the proxy")?,
        )
    };
    eprintln!(
        "hangar: Machines API on http://{} (data in {})",
        listener.local_addr()?,
        args.data_dir.display()
    );
    hangar_api::serve(listener, state, shutdown_signal()).await?;
    drop(proxy);
    // Machines keep running: they do not depend on this process.
    agent.detach();
    eprintln!("hangar: stopped; machines keep running and are re-attached at the next start");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
