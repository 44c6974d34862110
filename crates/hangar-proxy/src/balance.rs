//! Choosing a machine for a request or connection: the least-loaded healthy
//! machine in the closest region under its soft limit; else a suspended or
//! stopped one (suspended first: it resumes faster), started on the spot
//! (concurrent cold requests share the start); else one
//! under its hard limit; else wait a bounded time, then give up (503).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::catalog::Group;
use crate::fleet::MachineState;
use crate::live::{Live, LoadGuard};
use crate::shared::Shared;

/// Request preferences (`Fly-Prefer-Region`, `Fly-Force-Instance-Id`).
#[derive(Debug, Default, Clone)]
pub struct Prefs {
    pub region: Option<String>,
    pub instance: Option<String>,
}

/// Why no machine was found.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("app {0} has no machine that can take the request")]
    NoMachine(String),
    #[error("every machine of app {0} is at its hard limit")]
    Capacity(String),
    #[error("starting machine {id}: {reason}")]
    Start { id: String, reason: String },
}

fn region_rank(shared: &Shared, prefs: &Prefs, live: &Live) -> u8 {
    if prefs.region.as_deref() == Some(live.region.as_str()) {
        0
    } else if live.region == shared.region {
        1
    } else {
        2
    }
}

/// Takes a unit of load on a machine of `group`, starting one if needed.
/// `avoid` holds machines a connect just failed on.
pub async fn acquire(
    shared: &Arc<Shared>,
    group: &Arc<Group>,
    prefs: &Prefs,
    avoid: &[Arc<Live>],
) -> Result<LoadGuard, PickError> {
    let deadline = Instant::now() + shared.opts.queue_timeout;
    let start_deadline = Instant::now() + shared.opts.start_timeout;
    let mut queued = false;
    loop {
        let eligible =
            |l: &&Arc<Live>| !l.cordoned() && prefs.instance.as_deref().is_none_or(|id| id == l.id);
        // Ties go round-robin: the scan starts at a rotating machine.
        let offset = shared.next_rotation() % group.machines.len().max(1);
        let ready = || {
            group
                .machines
                .iter()
                .cycle()
                .skip(offset)
                .take(group.machines.len())
                .filter(eligible)
                .filter(|l| l.running() && l.healthy() && !avoid.iter().any(|a| Arc::ptr_eq(a, l)))
        };
        let best = |limit: u32| {
            ready()
                .filter(|l| l.load() < limit)
                .min_by_key(|l| (region_rank(shared, prefs, l), l.load()))
                .cloned()
        };
        if let Some(l) = best(group.soft_limit)
            && let Some(g) = l.try_acquire(group.soft_limit)
        {
            return Ok(g);
        }
        let may_start = group.autostart || prefs.instance.is_some();
        let startable = group
            .machines
            .iter()
            .filter(eligible)
            .filter(|l| !l.running() && l.api_state().startable())
            // A suspended machine resumes faster than a stopped one boots.
            .min_by_key(|l| {
                let suspended = l.api_state() == MachineState::Suspended;
                (region_rank(shared, prefs, l), !suspended, l.id.clone())
            })
            .cloned();
        if may_start && let Some(l) = startable {
            if let Err(reason) = ensure_started(shared, &l).await {
                return Err(PickError::Start {
                    id: l.id.clone(),
                    reason,
                });
            }
            if let Some(g) = l.try_acquire(group.hard_limit) {
                return Ok(g);
            }
            continue;
        }
        if let Some(l) = best(group.hard_limit)
            && let Some(g) = l.try_acquire(group.hard_limit)
        {
            return Ok(g);
        }
        if ready().next().is_none() {
            // A machine that runs but refused a connect may still be
            // booting its app: hold the request until its port accepts.
            let refused =
                group.machines.iter().filter(eligible).find(|l| {
                    l.running() && l.healthy() && avoid.iter().any(|a| Arc::ptr_eq(a, l))
                });
            if let Some(l) = refused {
                if wait_for_port(l, start_deadline).await
                    && let Some(g) = l.try_acquire(group.hard_limit)
                {
                    return Ok(g);
                }
                return Err(PickError::NoMachine(group.app.clone()));
            }
            // Nothing runs: wait only for a machine on its way up or down
            // (a stopping one is started again once it has stopped).
            let transient = group.machines.iter().filter(eligible).any(|l| {
                matches!(
                    l.api_state(),
                    MachineState::Starting | MachineState::Stopping
                )
            });
            if !transient || Instant::now() >= start_deadline {
                return Err(PickError::NoMachine(group.app.clone()));
            }
        } else if Instant::now() >= deadline {
            return Err(PickError::Capacity(group.app.clone()));
        }
        if !queued {
            queued = true;
            shared.metrics.queued.inc();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts `live`'s machine unless it runs, and waits until its port accepts
/// connections (polled every ~2 ms). Concurrent callers share one start.
pub async fn ensure_started(shared: &Arc<Shared>, live: &Arc<Live>) -> Result<(), String> {
    let _start = live.start_lock.lock().await;
    if live.running() {
        return Ok(());
    }
    let began = Instant::now();
    let deadline = began + shared.opts.start_timeout;
    tracing::info!(app = %live.app, machine = %live.id, "autostart");
    start_machine(shared, live, deadline, true).await?;
    loop {
        if port_accepts(live).await {
            tracing::info!(app = %live.app, machine = %live.id, ms = began.elapsed().as_millis() as u64, "autostart: port accepts");
            live.mark_started();
            shared.request_refresh();
            shared.metrics.start_ms.observe(began.elapsed());
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "port {} did not accept connections within {:?}",
                live.addr, shared.opts.start_timeout
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Asks the Machines API to start `live`'s machine (on the proxy's main
/// runtime, whatever thread asks). A 412 (already started or starting,
/// perhaps by someone else; or still stopping) is waited out until the
/// machine is `started` (or `starting`, with `starting_will_do`), or it is
/// started again once stopped, until `deadline`. Counts the starts it made.
pub async fn start_machine(
    shared: &Arc<Shared>,
    live: &Live,
    deadline: Instant,
    starting_will_do: bool,
) -> Result<(), String> {
    loop {
        let (fleet, app, id) = (shared.fleet.clone(), live.app.clone(), live.id.clone());
        let started = match shared
            .main
            .spawn(async move { fleet.start(&app, &id).await })
            .await
        {
            Ok(r) => r,
            Err(e) => return Err(format!("the proxy is shutting down: {e}")),
        };
        match started {
            // Counted when this call started it, not when someone else had.
            Ok(()) => {
                shared.metrics.autostarts.inc();
                return Ok(());
            }
            Err(e) if e.status() == Some(412) => {
                if Instant::now() >= deadline {
                    return Err(e.to_string());
                }
                shared.refresh_and_wait(Duration::from_millis(250)).await;
                match live.api_state() {
                    MachineState::Started => return Ok(()),
                    MachineState::Starting if starting_will_do => return Ok(()),
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Polls `live`'s port every ~2 ms until it accepts or `deadline` passes.
async fn wait_for_port(live: &Live, deadline: Instant) -> bool {
    loop {
        if port_accepts(live).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn port_accepts(live: &Live) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(live.addr)).await,
        Ok(Ok(_))
    )
}

/// How long each attempt of [`connect_upstream`] waits for the handshake.
const CONNECT_ATTEMPTS_MS: [u64; 5] = [100, 250, 500, 1000, 1150];

/// Connects to `live`'s service, with `TCP_NODELAY`. A handshake that does
/// not complete soon is abandoned: the machine list is read again, and a
/// machine that has stopped meanwhile (a stopped machine's network is off the
/// bridge, so its SYNs go unanswered rather than refused) is given up at once
/// so the caller can start it or pick another; one still running is tried
/// again from a new socket (a new source port) rather than waiting for the
/// kernel's SYN retransmits (1 s, then 3 s). A refused connection is
/// answered at once.
pub async fn connect_upstream(shared: &Shared, live: &Live) -> std::io::Result<TcpStream> {
    for ms in CONNECT_ATTEMPTS_MS {
        let attempt = TcpStream::connect(live.addr);
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(ms), attempt).await {
            let stream = r?;
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
        tracing::debug!(addr = %live.addr, ms, "proxy: connect attempt timed out");
        shared.refresh_and_wait(Duration::from_millis(300)).await;
        if !live.running() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the machine is no longer running",
            ));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "connect timed out after {} ms",
            CONNECT_ATTEMPTS_MS.iter().sum::<u64>()
        ),
    ))
}
