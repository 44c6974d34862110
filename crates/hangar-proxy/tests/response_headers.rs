//! `http_options.response.headers` of a port: headers added to, replaced in
//! and removed from the machines' responses (over HTTP/1.1 and HTTP/2 from
//! the client), per app, and not on the proxy's own answers.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hangar_proxy::MachineState;
use http_body_util::Full;
use http_body_util::{BodyExt, Empty};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::*;
use tokio::net::TcpListener;

/// A machine whose responses carry headers of its own.
async fn serve_with_headers(addr: SocketAddr, id: &'static str) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(
                    move |_req: hyper::Request<hyper::body::Incoming>| async move {
                        let resp = hyper::Response::builder()
                            .header("x-machine", id)
                            .header("x-secret", "internal detail")
                            .header("cache-control", "no-store")
                            .header("x-multi", "from the machine")
                            .body(Full::new(Bytes::from(format!("hello from {id}\n"))))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// Adds a started machine of `app` served by [`serve_with_headers`].
async fn add_machine(
    fleet: &Arc<TestFleet>,
    app: &str,
    id: &'static str,
    services: serde_json::Value,
) -> tokio::task::JoinHandle<()> {
    let addr = fleet.add(app, id, Kind::Http, services, false).await;
    let task = serve_with_headers(addr, id).await;
    fleet.with(id, |m| m.info.state = MachineState::Started);
    task
}

/// A GET to the proxy's `port` over HTTP/1.1 or HTTP/2 (h2c), with a fresh
/// connection: status, headers and body.
async fn get_as(port: u16, host: &str, http2: bool) -> (u16, http::HeaderMap, String) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = http::Request::builder()
        .uri(format!("http://{host}/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    if !http2 {
        *req.uri_mut() = http::Uri::from_static("/");
        req.headers_mut()
            .insert("host", http::HeaderValue::from_str(host).unwrap());
    }
    let resp = send_over(tcp, req, http2).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn values(h: &http::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn response_headers_are_added_replaced_and_removed_per_app() {
    let fleet = TestFleet::new();
    let public = free_port();
    let internal = free_port();
    let shaped = json!([{"internal_port": internal, "ports": [{
    "port": public, "handlers": ["http"],
    "http_options": {"response": {"headers": {
        "X-Added": "by the proxy",
        "Cache-Control": "public, max-age=60",
        "x-secret": false,
        "x-multi": ["one", "two"],
        "x-number": 42,
        "content-length": "1",
        "bad header": "ignored"
    }}}}]}]);
    let plain = json!([{"internal_port": internal, "ports": [
        {"port": public, "handlers": ["http"]}]}]);
    let _a = add_machine(&fleet, "shaped", "s1", shaped).await;
    let _b = add_machine(&fleet, "plain", "p1", plain).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;

    for http2 in [false, true] {
        let (status, h, body) = get_as(public, "shaped.localhost", http2).await;
        assert_eq!(status, 200, "http2={http2}");
        assert_eq!(values(&h, "x-machine"), ["s1"]);
        assert_eq!(values(&h, "x-added"), ["by the proxy"]);
        assert_eq!(values(&h, "cache-control"), ["public, max-age=60"]);
        assert!(values(&h, "x-secret").is_empty(), "http2={http2}");
        assert_eq!(values(&h, "x-multi"), ["one", "two"]);
        assert_eq!(values(&h, "x-number"), ["42"]);
        // The body's framing is the machine's.
        assert_eq!(body, "hello from s1\n");

        // Another app on the same port keeps its machine's headers.
        let (status, h, _) = get_as(public, "plain.localhost", http2).await;
        assert_eq!(status, 200, "http2={http2}");
        assert_eq!(values(&h, "x-machine"), ["p1"]);
        assert_eq!(values(&h, "x-secret"), ["internal detail"]);
        assert_eq!(values(&h, "cache-control"), ["no-store"]);
        assert_eq!(values(&h, "x-multi"), ["from the machine"]);
        assert!(values(&h, "x-added").is_empty());
    }

    // The proxy's own answers are not the machines' responses.
    let (status, h, _) = get_as(public, "nobody.localhost", false).await;
    assert_eq!(status, 404);
    assert!(values(&h, "x-added").is_empty());
}
