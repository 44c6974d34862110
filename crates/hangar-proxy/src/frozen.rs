//! Requests caught by a suspend. A machine suspended through the API after
//! the proxy sent it a request (or while a pooled connection to it looked
//! ready) is frozen in place: its kernel still takes the request's bytes,
//! and nothing answers until it resumes. The proxy waits for the answer as
//! usual, and meanwhile looks at the machine's state now and then (from
//! [`FIRST_CHECK`] to every [`CHECK_EVERY`]): once the routing table says it
//! is suspended, the machine is resumed (when its service autostarts) and
//! the same request is answered where it was sent; without autostart the
//! request is given up.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Group;
use crate::fleet::MachineState;
use crate::live::Live;
use crate::shared::Shared;

/// A request still waiting for its answer looks at the state of its machine
/// after [`FIRST_CHECK`], then at twice the last wait, up to every
/// [`CHECK_EVERY`]: a request caught right after a suspend (the proxy learns
/// of it within milliseconds) is resumed soon, a slow answer costs a few
/// timer wakeups on the connection's own thread.
pub const FIRST_CHECK: Duration = Duration::from_millis(5);
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The request's machine is suspended and stays so.
#[derive(Debug)]
pub struct Frozen;

/// Awaits `sent` (a request's answer from `live`), resuming the machine if
/// it was suspended under the request.
pub async fn answer<T>(
    shared: &Arc<Shared>,
    group: &Group,
    live: &Arc<Live>,
    sent: impl Future<Output = T>,
) -> Result<T, Frozen> {
    tokio::pin!(sent);
    let mut wait = FIRST_CHECK;
    loop {
        tokio::select! {
            biased;
            out = &mut sent => return Ok(out),
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(CHECK_EVERY);
        if live.api_state() != MachineState::Suspended || live.running() {
            continue;
        }
        if !group.autostart {
            tracing::info!(machine = %live.id, "proxy: the machine was suspended under a request, and its service does not autostart");
            return Err(Frozen);
        }
        tracing::info!(machine = %live.id, "proxy: the machine was suspended under a request: resuming it");
        if let Err(e) = crate::balance::ensure_started(shared, live).await {
            tracing::warn!(machine = %live.id, "proxy: resuming the machine: {e}");
            return Err(Frozen);
        }
    }
}
