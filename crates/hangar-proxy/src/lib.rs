//! Hangar's proxy: routes client traffic to machines' services, balances load,
//! starts stopped machines on demand and stops idle ones.

/// Options of `hangar proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {}

/// Runs the proxy on its own, against a Machines API.
pub async fn run(_args: ProxyArgs) -> anyhow::Result<()> {
    anyhow::bail!("hangar proxy: not built yet")
}
