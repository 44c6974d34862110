//! Autostop: every period, per app service and region, stop (or suspend)
//! one idle machine when the others have room for its load — Fly's
//! excess-capacity rule, `running − (machines over soft_limit + 1) ≥ 1`, or
//! a lone machine with no load — never going below `min_machines_running`
//! in any region (Fly only guards its primary region), and never stopping a
//! machine that has load, was active within the period, or said it is busy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hangar_types::config::AutostopMode;

use crate::live::Live;
use crate::shared::Shared;

pub async fn autostop_loop(shared: Arc<Shared>) {
    let period = shared
        .opts
        .autostop_period
        .max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        run_once(&shared).await;
    }
}

/// One pass of the autostop rule; returns the machines it stopped.
pub async fn run_once(shared: &Arc<Shared>) -> Vec<String> {
    let period_ms = u64::try_from(shared.opts.autostop_period.as_millis()).unwrap_or(u64::MAX);
    let catalog = shared.catalog();
    let mut seen = HashSet::new();
    let mut stops: Vec<(Arc<Live>, AutostopMode)> = Vec::new();
    for route in catalog.ports.values().chain(catalog.udp_ports.values()) {
        for g in route.apps.values() {
            if g.autostop == AutostopMode::Off || !seen.insert((g.app.clone(), g.internal_port)) {
                continue;
            }
            let mut regions: HashMap<&str, Vec<&Arc<Live>>> = HashMap::new();
            for l in &g.machines {
                if l.running() && !l.cordoned() {
                    regions.entry(l.region.as_str()).or_default().push(l);
                }
            }
            for machines in regions.values() {
                let running = machines.len() as u32;
                if running <= g.min_running {
                    continue;
                }
                let over = machines.iter().filter(|l| l.load() > g.soft_limit).count() as u32;
                let candidate = machines
                    .iter()
                    .filter(|l| {
                        l.load() == 0
                            && !l.busy()
                            && l.idle_ms() >= period_ms
                            && !stops.iter().any(|(s, _)| s.id == l.id)
                    })
                    .max_by_key(|l| l.idle_ms());
                let excess = running >= over + 2;
                let lone = running == 1;
                if let Some(l) = candidate
                    && (excess || lone)
                {
                    stops.push(((*l).clone(), g.autostop));
                }
            }
        }
    }
    let mut stopped = Vec::new();
    for (live, mode) in stops {
        // Every service of the machine stops taking requests first; one that
        // got a request meanwhile keeps the machine running.
        let mut lives = shared.lives_of(&live.id);
        if !lives.iter().any(|l| Arc::ptr_eq(l, &live)) {
            lives.push(live.clone());
        }
        let mut marks = Vec::new();
        for l in &lives {
            match l.try_mark_stopping() {
                Some(mark) => marks.push((l, mark)),
                None => break,
            }
        }
        if marks.len() < lives.len() {
            for (l, mark) in marks {
                l.unmark_stopping(mark);
            }
            tracing::debug!(machine = %live.id, "autostop: a request came in, the machine stays");
            continue;
        }
        tracing::info!(app = %live.app, machine = %live.id, ?mode, "autostop");
        let mut result = match mode {
            AutostopMode::Suspend => shared.fleet.suspend(&live.app, &live.id).await,
            _ => shared.fleet.stop(&live.app, &live.id).await,
        };
        if mode == AutostopMode::Suspend
            && let Err(e) = &result
            && e.status() == Some(501)
        {
            // This host cannot suspend: stop instead.
            result = shared.fleet.stop(&live.app, &live.id).await;
        }
        match result {
            Ok(()) => {
                shared.metrics.autostops.inc();
                stopped.push(live.id.clone());
            }
            Err(e) => tracing::warn!(machine = %live.id, "autostop: {e}"),
        }
        shared.request_refresh();
    }
    stopped
}
