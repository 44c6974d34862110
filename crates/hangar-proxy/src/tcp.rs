//! Services without the `http` handler: the client's bytes are copied to a
//! machine as they come (after a PROXY protocol header when asked), one
//! unit of load per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::balance::{Prefs, acquire};
use crate::catalog::PortRoute;
use crate::conn::ClientConn;
use crate::live::Live;
use crate::shared::Shared;

pub async fn serve<S>(
    shared: Arc<Shared>,
    route: Arc<PortRoute>,
    conn: ClientConn,
    mut client: S,
    sni: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(group) = route.route(sni.as_deref(), &shared.opts.domain).cloned() else {
        tracing::debug!(port = conn.port, "proxy: no app for this TCP connection");
        return;
    };
    shared.metrics.tcp_connections.inc();
    let mut avoid: Vec<Arc<Live>> = Vec::new();
    for _ in 0..3 {
        let guard = match acquire(&shared, &group, &Prefs::default(), &avoid).await {
            Ok(g) => g,
            Err(e) => {
                tracing::debug!(app = %group.app, "proxy: {e}");
                return;
            }
        };
        let live = guard.live().clone();
        let mut upstream = match crate::balance::connect_upstream(&shared, &live).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(machine = %live.id, addr = %live.addr, "proxy: connect failed, trying again: {e}");
                shared.metrics.connect_retries.inc();
                drop(guard);
                avoid.push(live);
                shared.refresh_and_wait(Duration::from_millis(300)).await;
                continue;
            }
        };
        if let Some(v) = route.handlers.proxy_proto {
            let h = crate::proxy_proto::header(v, conn.peer, conn.local);
            if upstream.write_all(&h).await.is_err() {
                return;
            }
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        drop(guard);
        return;
    }
}
