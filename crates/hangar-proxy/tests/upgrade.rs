//! WebSockets through the `http` handler: HTTP/1.1 `Upgrade`, and HTTP/2's
//! extended CONNECT (RFC 8441), which the machine gets as an HTTP/1.1
//! WebSocket handshake with a key of the proxy's making.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until `want` has arrived (at most 5 s); returns what was read.
async fn read_until<S: AsyncRead + Unpin>(s: &mut S, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(want.len()).any(|w| w == want) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("waiting for {want:?}, got {got:?}"))
            .unwrap();
        assert!(n > 0, "closed before {want:?}: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn ws_app(fleet: &std::sync::Arc<TestFleet>) -> u16 {
    let public = free_port();
    fleet
        .add(
            "ws",
            "w1",
            Kind::Http,
            http_service(free_port(), public),
            true,
        )
        .await;
    public
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_websocket_handshake_and_frames_pass_through() {
    let fleet = TestFleet::new();
    let public = ws_app(&fleet).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    let mut c = TcpStream::connect(("127.0.0.1", public)).await.unwrap();
    c.write_all(
        b"GET /ws HTTP/1.1\r\nHost: ws.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_until(&mut c, b"key=dGhlIHNhbXBsZSBub25jZQ==\n").await;
    let got = String::from_utf8_lossy(&got);
    let head = got.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{got}");
    assert!(head.contains("upgrade: websocket"), "{got}");
    assert!(head.contains("sec-websocket-accept:"), "{got}");
    c.write_all(b"\x81\x05hello").await.unwrap();
    read_until(&mut c, b"\x81\x05hello").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_extended_connect_reaches_the_machine_as_a_websocket_upgrade() {
    let fleet = TestFleet::new();
    let public = ws_app(&fleet).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    let tcp = TcpStream::connect(("127.0.0.1", public)).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let root = || {
        http::Request::get("http://ws.localhost/")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // An ordinary request first: by its answer the proxy's SETTINGS, which
    // allow extended CONNECT, have arrived.
    assert_eq!(send.send_request(root()).await.unwrap().status(), 200);

    let connect = |protocol: &'static str| {
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("http://ws.localhost/ws")
            .header("sec-websocket-version", "13")
            .body(Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static(protocol));
        req
    };
    let resp = send.send_request(connect("websocket")).await.unwrap();
    assert_eq!(resp.status(), 200, "an accepted extended CONNECT is a 200");
    assert!(
        !resp.headers().contains_key("sec-websocket-accept"),
        "no HTTP/1.1 handshake headers on HTTP/2: {:?}",
        resp.headers()
    );
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    let first = String::from_utf8(read_until(&mut io, b"\n").await).unwrap();
    let key = first
        .trim_end()
        .strip_prefix("key=")
        .expect("the machine's first line");
    assert_eq!(key.len(), 24, "a base64 16-byte key: {key:?}");
    io.write_all(b"\x81\x02hi").await.unwrap();
    read_until(&mut io, b"\x81\x02hi").await;

    // A machine that refuses the handshake answers as it would: no tunnel.
    let resp = send.send_request(connect("not-websocket")).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"not a websocket handshake\n");
    // The connection still serves ordinary requests.
    assert_eq!(send.send_request(root()).await.unwrap().status(), 200);
}
