//! The proxy's control endpoint: `GET /metrics` (Prometheus text) and
//! `POST /busy` — a machine calls it (from its own address, or anyone on
//! loopback with `?machine=ID`) to hold off autostop for `?seconds=N`
//! (default 60, at most 3600).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::shared::Shared;

pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, peer, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

fn handle(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut r = reply(StatusCode::OK, shared.metrics.render(&shared.catalog()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::POST, "/busy") => {
            let seconds = match query(&req, "seconds").map(str::parse::<u64>) {
                None => 60,
                Some(Ok(s)) if s <= 3600 => s,
                _ => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "seconds: a whole number from 0 to 3600\n".into(),
                    );
                }
            };
            let peer = crate::conn::canonical(peer).ip();
            let catalog = shared.catalog();
            let lives: Vec<_> = match query(&req, "machine") {
                Some(id) if peer.is_loopback() => {
                    catalog.lives.iter().filter(|l| l.id == id).collect()
                }
                Some(_) => {
                    return reply(
                        StatusCode::FORBIDDEN,
                        "machine: only callers on loopback may name a machine\n".into(),
                    );
                }
                None => catalog
                    .lives
                    .iter()
                    .filter(|l| crate::conn::canonical(l.addr).ip() == peer)
                    .collect(),
            };
            let Some(first) = lives.first() else {
                return reply(
                    StatusCode::NOT_FOUND,
                    format!("no machine with a service is known at {peer}\n"),
                );
            };
            let id = first.id.clone();
            let until = crate::clock::now_ms() + seconds * 1000;
            for l in &lives {
                l.set_busy_until(until);
            }
            reply(
                StatusCode::OK,
                format!("machine {id} busy for {seconds} s\n"),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, "GET /metrics, POST /busy\n".into()),
    }
}
