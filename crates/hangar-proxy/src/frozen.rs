//! Requests caught by a suspend. A machine suspended through the API after
//! the proxy picked it for a request (or while a pooled connection to it
//! looked ready) is frozen in place: its kernel still takes the request's
//! bytes, and nothing answers until it resumes. Every request sent to a
//! machine is counted on it until its answer arrives; the refresh that
//! records the suspend finds the machine with requests waiting and resumes
//! it (when its service autostarts), and a request that finds the machine
//! already suspended resumes it before sending. Either way the same request
//! is answered where it was sent.

use std::future::Future;
use std::sync::Arc;

use crate::catalog::{Catalog, Group};
use crate::fleet::MachineState;
use crate::live::Live;
use crate::shared::Shared;

/// The request's machine is suspended and its service does not autostart.
#[derive(Debug)]
pub struct Frozen;

/// Awaits `sent` (a request's answer from `live`), counted as waiting on
/// the machine meanwhile.
pub async fn answer<T>(
    shared: &Arc<Shared>,
    group: &Group,
    live: &Arc<Live>,
    sent: impl Future<Output = T>,
) -> Result<T, Frozen> {
    let exchange = Exchange(live);
    if live.begin_exchange() && !live.running() {
        if !group.autostart {
            tracing::info!(machine = %live.id, "proxy: the machine was suspended under a request, and its service does not autostart");
            return Err(Frozen);
        }
        if !resume(shared, live).await {
            return Err(Frozen);
        }
    }
    let out = sent.await;
    drop(exchange);
    Ok(out)
}

/// Ends a counted exchange, however the request ends.
struct Exchange<'a>(&'a Live);

impl Drop for Exchange<'_> {
    fn drop(&mut self) {
        self.0.end_exchange();
    }
}

/// After a refresh: resumes the suspended machines of autostarting services
/// that requests are waiting on.
pub fn resume_caught(shared: &Arc<Shared>, catalog: &Catalog) {
    let groups = catalog.ports.values().flat_map(|r| r.apps.values());
    for l in groups.filter(|g| g.autostart).flat_map(|g| &g.machines) {
        if l.api_state() == MachineState::Suspended && !l.running() && l.waiting() > 0 {
            let (shared, l) = (shared.clone(), l.clone());
            tokio::spawn(async move {
                resume(&shared, &l).await;
            });
        }
    }
}

/// Resumes the machine; whether it runs now.
async fn resume(shared: &Arc<Shared>, live: &Arc<Live>) -> bool {
    tracing::info!(machine = %live.id, "proxy: the machine was suspended under a request: resuming it");
    match crate::balance::ensure_started(shared, live).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(machine = %live.id, "proxy: resuming the machine: {e}");
            false
        }
    }
}
