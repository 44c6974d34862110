//! The machine of a new UDP flow: the running, healthy, uncordoned machine
//! with the fewest flows (ties in rotation); when none runs, a stopped one
//! is started (autostart) while the flow's datagrams wait in its queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::fleet::MachineState;
use crate::live::{Live, LoadGuard};
use crate::shared::Shared;

/// Why a flow has no machine.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("no app serves UDP port {0}")]
    NoRoute(u16),
    #[error("app {0} has no machine that can take a UDP flow")]
    NoMachine(String),
    #[error("starting machine {id}: {reason}")]
    Start { id: String, reason: String },
}

/// A machine for a flow, with the flow's unit of its load.
#[derive(Debug)]
pub struct Picked {
    pub guard: LoadGuard,
    /// The flow started the machine (its app may not be listening yet).
    pub started: bool,
}

/// Picks (and if need be starts) the machine for a new flow on UDP `port`,
/// per the current routing table. Waits at most `--proxy-start-timeout`
/// for a machine on its way up or down.
pub async fn pick(shared: &Arc<Shared>, port: u16) -> Result<Picked, PickError> {
    let deadline = Instant::now() + shared.opts.start_timeout;
    loop {
        let catalog = shared.catalog();
        let group = catalog
            .udp_ports
            .get(&port)
            .and_then(|route| route.apps.values().next())
            .cloned()
            .ok_or(PickError::NoRoute(port))?;
        if let Some(guard) = least_loaded(&group.machines, shared.next_rotation())
            .and_then(|l| l.try_acquire(u32::MAX))
        {
            return Ok(Picked {
                guard,
                started: false,
            });
        }
        if group.autostart
            && let Some(live) = startable(&group.machines, &shared.region)
        {
            start(shared, &live)
                .await
                .map_err(|reason| PickError::Start {
                    id: live.id.clone(),
                    reason,
                })?;
            if let Some(guard) = live.try_acquire(u32::MAX) {
                return Ok(Picked {
                    guard,
                    started: true,
                });
            }
            continue;
        }
        // Nothing runs: wait only for a machine on its way up or down.
        let transient = group.machines.iter().any(|l| {
            !l.cordoned()
                && matches!(
                    l.api_state(),
                    MachineState::Starting | MachineState::Stopping
                )
        });
        if !transient || Instant::now() >= deadline {
            return Err(PickError::NoMachine(group.app.clone()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The running, healthy, uncordoned machine with the fewest flows; among
/// equals, the first at or after `rotation`.
pub fn least_loaded(machines: &[Arc<Live>], rotation: usize) -> Option<&Arc<Live>> {
    let n = machines.len();
    if n == 0 {
        return None;
    }
    machines
        .iter()
        .cycle()
        .skip(rotation % n)
        .take(n)
        .filter(|l| l.running() && l.healthy() && !l.cordoned())
        .min_by_key(|l| l.load())
}

/// The machine to start: one in `region` first, then by id.
pub fn startable(machines: &[Arc<Live>], region: &str) -> Option<Arc<Live>> {
    machines
        .iter()
        .filter(|l| !l.cordoned() && !l.running() && l.api_state().startable())
        .min_by(|a, b| (a.region != region, &a.id).cmp(&(b.region != region, &b.id)))
        .cloned()
}

/// Starts `live`'s machine unless it runs; concurrent flows share one
/// start. A UDP port cannot be probed the way a TCP port is (a datagram to
/// it would reach the app), so the machine counts as running once the API
/// has started it; the flow then resends its first datagrams while the
/// machine's port refuses them (see `flow.rs`).
async fn start(shared: &Arc<Shared>, live: &Arc<Live>) -> Result<(), String> {
    let _start = live.start_lock.lock().await;
    if live.running() {
        return Ok(());
    }
    let began = Instant::now();
    let deadline = began + shared.opts.start_timeout;
    tracing::info!(app = %live.app, machine = %live.id, "autostart for a UDP flow");
    crate::balance::start_machine(shared, live, deadline, false).await?;
    live.mark_started();
    shared.request_refresh();
    shared.metrics.start_ms.observe(began.elapsed());
    Ok(())
}
