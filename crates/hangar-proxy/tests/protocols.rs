//! The proxy's handlers and limits against loopback machines: TLS (HTTP/1.1
//! and HTTP/2 by ALPN), force_https, raw TCP, PROXY protocol v1 and v2,
//! oversized request heads and slow clients.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A certificate for `sec.localhost` written to PEM files, and a client
/// config trusting it.
fn cert_files(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, rustls::ClientConfig) {
    let c = rcgen::generate_simple_self_signed(vec!["sec.localhost".into(), "localhost".into()])
        .unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(c.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (cert, key, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_terminates_with_http1_and_http2_and_force_https_redirects() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, client_config) = cert_files(tmp.path());
    let fleet = TestFleet::new();
    let (https, plain) = (free_port(), free_port());
    let services = json!([{"internal_port": free_port(), "ports": [
        {"port": https, "handlers": ["tls", "http"]},
        {"port": plain, "handlers": ["http"], "force_https": true}]}]);
    fleet.add("sec", "t1", Kind::Http, services, true).await;
    let mut opts = options();
    opts.tls_cert = Some(cert);
    opts.tls_key = Some(key);
    let _proxy = start_proxy(&fleet, opts).await;
    wait_port(https).await;

    for h2 in [false, true] {
        let mut config = client_config.clone();
        if !h2 {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(("127.0.0.1", https)).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("sec.localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(if h2 { &b"h2"[..] } else { &b"http/1.1"[..] })
        );
        let mut req = http::Request::builder()
            .uri(format!("https://sec.localhost:{https}/"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        if !h2 {
            req.headers_mut()
                .insert("host", http::HeaderValue::from_static("sec.localhost"));
        }
        let resp = send_over(tls, req, h2).await;
        assert_eq!(resp.status(), 200, "h2={h2}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with("t1\n"), "{body}");
        assert!(body.contains("\nx-forwarded-proto: https\n"), "{body}");
        assert!(body.contains("\nhost: sec.localhost"), "{body}");
    }

    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{plain}/a?b=c"))
        .header("host", "sec.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://sec.localhost/a?b=c");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_tcp_and_proxy_protocol_v1_and_v2() {
    let fleet = TestFleet::new();
    let (p_raw, p_v1, p_v2) = (free_port(), free_port(), free_port());
    let internal = free_port();
    fleet
        .add(
            "raw",
            "r1",
            Kind::Echo,
            json!([{"internal_port": internal, "ports": [{"port": p_raw}]}]),
            true,
        )
        .await;
    fleet
        .add(
            "pp1",
            "v1",
            Kind::Echo,
            json!([{"internal_port": internal, "ports": [
            {"port": p_v1, "handlers": ["proxy_proto"]}]}]),
            true,
        )
        .await;
    fleet
        .add(
            "pp2",
            "v2",
            Kind::Echo,
            json!([{"internal_port": internal, "ports": [
            {"port": p_v2, "handlers": ["proxy_proto"],
             "proxy_proto_options": {"version": "v2"}}]}]),
            true,
        )
        .await;
    let _proxy = start_proxy(&fleet, options()).await;
    for p in [p_raw, p_v1, p_v2] {
        wait_port(p).await;
    }

    let mut c = TcpStream::connect(("127.0.0.1", p_raw)).await.unwrap();
    c.write_all(b"ping\n").await.unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping\n");

    let mut c = TcpStream::connect(("127.0.0.1", p_v1)).await.unwrap();
    let local = c.local_addr().unwrap();
    c.write_all(b"x").await.unwrap();
    let want = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {p_v1}\r\nx",
        local.port()
    );
    let mut buf = vec![0u8; want.len()];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&buf), want);

    let mut c = TcpStream::connect(("127.0.0.1", p_v2)).await.unwrap();
    let local = c.local_addr().unwrap();
    c.write_all(b"y").await.unwrap();
    let mut buf = [0u8; 29];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&buf[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(&buf[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
    assert_eq!(u16::from_be_bytes([buf[24], buf[25]]), local.port());
    assert_eq!(u16::from_be_bytes([buf[26], buf[27]]), p_v2);
    assert_eq!(buf[28], b'y');
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_heads_and_slow_clients_are_cut_off_without_hurting_others() {
    let fleet = TestFleet::new();
    let public = free_port();
    fleet
        .add(
            "lim",
            "l1",
            Kind::Http,
            http_service(free_port(), public),
            true,
        )
        .await;
    let mut opts = options();
    opts.max_header_bytes = 16 * 1024;
    opts.header_timeout = Duration::from_millis(500);
    opts.idle_timeout = Duration::from_secs(1);
    let _proxy = start_proxy(&fleet, opts).await;
    wait_port(public).await;

    // A slow client trickles a request head; an idle one sends nothing.
    let mut slow = TcpStream::connect(("127.0.0.1", public)).await.unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", public)).await.unwrap();
    let began = Instant::now();
    let trickle = tokio::spawn(async move {
        let head = b"GET / HTTP/1.1\r\nHost: lim.localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in head.iter() {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
        (Instant::now(), buf)
    });

    // Meanwhile others are served, and an oversized head gets 431.
    for _ in 0..5 {
        assert_eq!(get(public, "lim.localhost", "/").await.0, 200);
    }
    let big = "a".repeat(20 * 1024);
    let r = client()
        .get(format!("http://127.0.0.1:{public}/"))
        .header("host", "lim.localhost")
        .header("x-big", big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(get(public, "lim.localhost", "/").await.0, 200);

    let (cut_at, answer) = trickle.await.unwrap();
    let cut = cut_at - began;
    assert!(
        cut < Duration::from_secs(3),
        "slow client cut after {cut:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK"), "{answer}");

    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf))
        .await
        .expect("the idle connection was closed");
    assert!(n.is_ok());
    assert_eq!(get(public, "lim.localhost", "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ports_http_options_timeouts_override_the_proxys() {
    let fleet = TestFleet::new();
    let (short, long) = (free_port(), free_port());
    // Port `short` closes idle connections after 1 s and gives a request
    // head 1 s; port `long` keeps the proxy's 60 s and 10 s.
    let services = json!([{"internal_port": free_port(), "ports": [
        {"port": short, "handlers": ["http"],
         "http_options": {"idle_timeout": 1, "headers_read_timeout": 1}},
        {"port": long, "handlers": ["http"]}]}]);
    fleet.add("to", "t1", Kind::Http, services, true).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(short).await;
    wait_port(long).await;

    let closed_within = |port: u16, head: &'static [u8], limit: Duration| async move {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(head).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(limit, c.read_to_end(&mut buf))
            .await
            .is_ok()
    };
    let began = Instant::now();
    assert!(
        closed_within(short, b"", Duration::from_secs(5)).await,
        "an idle connection on the short port is closed"
    );
    assert!(began.elapsed() >= Duration::from_millis(900));
    assert!(
        closed_within(short, b"GET / HTTP/1.1\r\nHost: to", Duration::from_secs(5)).await,
        "a half-sent head on the short port is cut off"
    );
    assert!(
        !closed_within(long, b"", Duration::from_secs(3)).await,
        "the other port keeps the proxy's 60 s idle timeout"
    );
    assert!(
        !closed_within(long, b"GET / HTTP/1.1\r\nHost: to", Duration::from_secs(3)).await,
        "and its 10 s head timeout"
    );
    assert_eq!(get(short, "to.localhost", "/").await.0, 200);
}
