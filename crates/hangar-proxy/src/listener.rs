//! One service port: accepts connections and hands each to its handler
//! (TLS first when asked, with the server config of the port's
//! `tls_options`, then HTTP or raw TCP) per the current routing table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::shared::Shared;

pub async fn accept_loop(shared: Arc<Shared>, port: u16, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(port, "proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.workers.dispatch(shared.clone(), port, stream, peer);
    }
}

pub async fn handle(shared: Arc<Shared>, port: u16, stream: TcpStream, peer: SocketAddr) {
    let Some(route) = shared.catalog().ports.get(&port).cloned() else {
        return;
    };
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(shared.opts.bind, port));
    let conn = crate::conn::ClientConn {
        peer: crate::conn::canonical(peer),
        local,
        port,
    };
    if route.handlers.tls {
        let Some(tls) = shared.tls.as_ref() else {
            return;
        };
        let settings = crate::tls::TlsSettings::of(route.tls_options.as_ref(), route.handlers.http);
        let config = match tls.get(&settings) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(port, "proxy: TLS settings of the port: {e}");
                return;
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let stream =
            match tokio::time::timeout(shared.opts.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "proxy: TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
        let sni = stream.get_ref().1.server_name().map(str::to_owned);
        if route.handlers.http {
            crate::http::serve(shared, route, conn, stream, true).await;
        } else {
            crate::tcp::serve(shared, route, conn, stream, sni).await;
        }
    } else if route.handlers.http {
        crate::http::serve(shared, route, conn, stream, false).await;
    } else {
        crate::tcp::serve(shared, route, conn, stream, None).await;
    }
}
