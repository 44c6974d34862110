//! `tls_options` of a port: the ALPN protocols offered (h2 + http/1.1 by
//! default with the `http` handler, none on a raw TLS port), the TLS
//! versions allowed, and `default_self_signed` (a name no certificate
//! serves gets a self-signed certificate of its own), each per port of one
//! proxy, with `--proxy-tls-dir` certificates still picked by SNI.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ProtocolVersion;
use rustls::server::ParsedCertificate;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A client offering `alpn` and allowing `versions`.
struct Client {
    alpn: Vec<&'static str>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
}

impl Client {
    /// A browser-like client: h2 then http/1.1, TLS 1.2 and 1.3.
    fn browser() -> Client {
        Client {
            alpn: vec!["h2", "http/1.1"],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
        }
    }

    fn only(version: &'static rustls::SupportedProtocolVersion) -> Client {
        Client {
            versions: vec![version],
            ..Client::browser()
        }
    }

    fn alpn(alpn: &[&'static str]) -> Client {
        Client {
            alpn: alpn.to_vec(),
            ..Client::browser()
        }
    }

    /// A handshake with the proxy's `port`, naming `sni` (none: an IP
    /// address, for which rustls sends no SNI).
    async fn connect(&self, port: u16, sni: Option<&str>) -> Result<Tls, std::io::Error> {
        let connector = any_cert_connector(&self.alpn, &self.versions);
        let name = server_name(sni);
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("TLS handshake in time")
    }
}

fn alpn_of(tls: &Tls) -> Option<String> {
    tls.get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone()
}

/// Whether `cert` is valid for the DNS name `name`.
fn serves(cert: &CertificateDer<'_>, name: &str) -> bool {
    let parsed = ParsedCertificate::try_from(cert).unwrap();
    let name = ServerName::try_from(name).unwrap();
    rustls::client::verify_server_name(&parsed, &name).is_ok()
}

/// One machine of app `app` behind public `port` with `handlers` and
/// `tls_options` (none when null).
async fn machine(
    fleet: &Arc<TestFleet>,
    app: &str,
    kind: Kind,
    port: u16,
    handlers: &[&str],
    tls_options: Value,
) {
    let mut p = json!({"port": port, "handlers": handlers});
    if !tls_options.is_null() {
        p["tls_options"] = tls_options;
    }
    let services = json!([{"internal_port": free_port(), "ports": [p]}]);
    fleet
        .add(app, &format!("{app}-1"), kind, services, true)
        .await;
}

/// GET / over `tls` as HTTP/2 or HTTP/1.1; the status, the response's
/// version and its body.
async fn get(tls: Tls, h2: bool) -> (u16, http::Version, String) {
    let mut req = http::Request::builder()
        .uri("https://app.localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    if !h2 {
        req.headers_mut()
            .insert("host", http::HeaderValue::from_static("app.localhost"));
    }
    let resp = send_over(tls, req, h2).await;
    let (status, version) = (resp.status().as_u16(), resp.version());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, version, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn alpn_is_negotiated_per_port() {
    let fleet = TestFleet::new();
    let (default_http, http1_only, raw, raw_h2) =
        (free_port(), free_port(), free_port(), free_port());
    machine(
        &fleet,
        "web",
        Kind::Http,
        default_http,
        &["tls", "http"],
        Value::Null,
    )
    .await;
    let alpn = json!({"alpn": ["http/1.1"]});
    machine(
        &fleet,
        "old",
        Kind::Http,
        http1_only,
        &["tls", "http"],
        alpn,
    )
    .await;
    machine(&fleet, "raw", Kind::Echo, raw, &["tls"], Value::Null).await;
    let alpn = json!({"alpn": ["h2"]});
    machine(&fleet, "grpc", Kind::Echo, raw_h2, &["tls"], alpn).await;
    let _proxy = start_proxy(&fleet, options()).await;
    for port in [default_http, http1_only, raw, raw_h2] {
        wait_port(port).await;
    }

    // tls + http, no options: h2 is picked, and requests are HTTP/2.
    let tls = Client::browser().connect(default_http, None).await.unwrap();
    assert_eq!(alpn_of(&tls).as_deref(), Some("h2"));
    let (status, version, body) = get(tls, true).await;
    assert_eq!((status, version), (200, http::Version::HTTP_2), "{body}");
    assert!(body.starts_with("web-1\n"), "{body}");
    // A client offering only http/1.1 gets it there too.
    let tls = Client::alpn(&["http/1.1"])
        .connect(default_http, None)
        .await
        .unwrap();
    assert_eq!(alpn_of(&tls).as_deref(), Some("http/1.1"));

    // alpn = ["http/1.1"]: a client that prefers h2 gets http/1.1, and its
    // requests still work.
    let tls = Client::browser().connect(http1_only, None).await.unwrap();
    assert_eq!(alpn_of(&tls).as_deref(), Some("http/1.1"));
    let (status, version, body) = get(tls, false).await;
    assert_eq!((status, version), (200, http::Version::HTTP_11), "{body}");
    assert!(body.starts_with("old-1\n"), "{body}");
    // A client that only speaks h2 finds no protocol in common.
    assert!(
        Client::alpn(&["h2"])
            .connect(http1_only, None)
            .await
            .is_err()
    );
    // One that offers no ALPN and sends HTTP/2's preface anyway gets HTTP/2
    // on the default port, not on this one.
    let tls = Client::alpn(&[]).connect(default_http, None).await.unwrap();
    assert_eq!(alpn_of(&tls), None);
    assert_eq!(get(tls, true).await.1, http::Version::HTTP_2);
    let tls = Client::alpn(&[]).connect(http1_only, None).await.unwrap();
    let (mut s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(c);
    let req = http::Request::get("https://old.localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), s.send_request(req))
        .await
        .expect("an answer in time");
    assert!(r.is_err(), "HTTP/2 on an http/1.1-only port: {r:?}");

    // tls only (raw TCP behind): no protocol is negotiated, bytes still go
    // through both ways.
    let mut tls = Client::browser()
        .connect(raw, Some("raw.localhost"))
        .await
        .unwrap();
    assert_eq!(alpn_of(&tls), None);
    tls.write_all(b"PRI * HTTP/2.0 is just bytes here\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 34];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&buf, b"PRI * HTTP/2.0 is just bytes here\n");

    // tls only with alpn = ["h2"]: offered because it was asked for.
    let mut tls = Client::browser().connect(raw_h2, None).await.unwrap();
    assert_eq!(alpn_of(&tls).as_deref(), Some("h2"));
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_allow_only_the_listed_tls_versions() {
    let fleet = TestFleet::new();
    let (only13, only12, both) = (free_port(), free_port(), free_port());
    let v13 = json!({"versions": ["TLSv1.3"]});
    machine(&fleet, "new", Kind::Http, only13, &["tls", "http"], v13).await;
    let v12 = json!({"versions": ["tlsv1.2"]});
    machine(&fleet, "old", Kind::Http, only12, &["tls", "http"], v12).await;
    machine(
        &fleet,
        "any",
        Kind::Http,
        both,
        &["tls", "http"],
        Value::Null,
    )
    .await;
    let _proxy = start_proxy(&fleet, options()).await;
    for port in [only13, only12, both] {
        wait_port(port).await;
    }
    let tls12 = Client::only(&rustls::version::TLS12);
    let tls13 = Client::only(&rustls::version::TLS13);
    let version = |tls: &Tls| tls.get_ref().1.protocol_version();

    assert!(tls12.connect(only13, None).await.is_err());
    let tls = tls13.connect(only13, None).await.unwrap();
    assert_eq!(version(&tls), Some(ProtocolVersion::TLSv1_3));
    let (status, _, body) = get(tls, true).await;
    assert!(
        status == 200 && body.starts_with("new-1\n"),
        "{status} {body}"
    );

    assert!(tls13.connect(only12, None).await.is_err());
    let tls = tls12.connect(only12, None).await.unwrap();
    assert_eq!(version(&tls), Some(ProtocolVersion::TLSv1_2));
    let (status, _, body) = get(tls, true).await;
    assert!(
        status == 200 && body.starts_with("old-1\n"),
        "{status} {body}"
    );
    // A client allowing both gets the one the port allows.
    let tls = Client::browser().connect(only12, None).await.unwrap();
    assert_eq!(version(&tls), Some(ProtocolVersion::TLSv1_2));

    // Without versions, both are allowed (1.3 preferred).
    let tls = tls12.connect(both, None).await.unwrap();
    assert_eq!(version(&tls), Some(ProtocolVersion::TLSv1_2));
    let tls = Client::browser().connect(both, None).await.unwrap();
    assert_eq!(version(&tls), Some(ProtocolVersion::TLSv1_3));
}

/// Writes `<stem>.key` then `<stem>.crt` into `dir`, each through a rename.
fn write_pair(dir: &std::path::Path, stem: &str, c: &rcgen::CertifiedKey) {
    for (ext, text) in [("key", c.key_pair.serialize_pem()), ("crt", c.cert.pem())] {
        let tmp = dir.join(format!(".{stem}.{ext}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(format!("{stem}.{ext}"))).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn default_self_signed_makes_a_certificate_for_names_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    std::fs::create_dir(&dir).unwrap();
    let known = rcgen::generate_simple_self_signed(vec!["known.example.test".into()]).unwrap();
    write_pair(&dir, "known.example.test", &known);
    // The default certificate (--proxy-tls-cert) serves a wildcard.
    let default_names = vec!["example.org".to_owned(), "*.apps.example.org".to_owned()];
    let default_pair = rcgen::generate_simple_self_signed(default_names).unwrap();
    let (cert, key) = (
        tmp.path().join("default.crt"),
        tmp.path().join("default.key"),
    );
    std::fs::write(&cert, default_pair.cert.pem()).unwrap();
    std::fs::write(&key, default_pair.key_pair.serialize_pem()).unwrap();
    let default = default_pair.cert.der().clone();

    let fleet = TestFleet::new();
    let (signed, plain) = (free_port(), free_port());
    let on = json!({"default_self_signed": true});
    machine(&fleet, "signed", Kind::Http, signed, &["tls", "http"], on).await;
    let off = json!({"default_self_signed": false});
    machine(&fleet, "plain", Kind::Http, plain, &["tls", "http"], off).await;
    let mut opts = options();
    opts.tls_dir = Some(dir.clone());
    opts.tls_cert = Some(cert);
    opts.tls_key = Some(key);
    let _proxy = start_proxy(&fleet, opts).await;
    wait_port(signed).await;
    wait_port(plain).await;
    let client = Client::browser();

    assert_eq!(
        presented(&client.connect(plain, None).await.unwrap()),
        default
    );

    // A name no certificate serves: its own certificate on the port that
    // asks for one, the same on the next handshake; the default elsewhere.
    let tls = client
        .connect(signed, Some("unknown.example.test"))
        .await
        .unwrap();
    let made = presented(&tls);
    assert_ne!(made, default);
    assert!(serves(&made, "unknown.example.test"));
    assert!(!serves(&made, "other.example.test") && !serves(&made, "example.org"));
    let (status, _, body) = get(tls, true).await;
    assert!(
        status == 200 && body.starts_with("signed-1\n"),
        "{status} {body}"
    );
    let again = client
        .connect(signed, Some("UNKNOWN.example.test"))
        .await
        .unwrap();
    assert_eq!(presented(&again), made);
    let other = client
        .connect(signed, Some("other.example.test"))
        .await
        .unwrap();
    let other = presented(&other);
    assert!(serves(&other, "other.example.test") && other != made);
    let tls = client
        .connect(plain, Some("unknown.example.test"))
        .await
        .unwrap();
    assert_eq!(presented(&tls), default);

    // Names a certificate serves keep it: the directory's pair, the default
    // certificate's own names, and no SNI at all.
    let known_der = known.cert.der().clone();
    let tls = client
        .connect(signed, Some("known.example.test"))
        .await
        .unwrap();
    assert_eq!(presented(&tls), known_der);
    for name in ["x.apps.example.org", "example.org"] {
        let tls = client.connect(signed, Some(name)).await.unwrap();
        assert_eq!(presented(&tls), default, "{name}");
    }
    // The wildcard covers one label only.
    let tls = client
        .connect(signed, Some("y.x.apps.example.org"))
        .await
        .unwrap();
    assert!(serves(&presented(&tls), "y.x.apps.example.org"));
    assert_eq!(
        presented(&client.connect(signed, None).await.unwrap()),
        default
    );

    // A pair added to the directory while running takes over from the
    // self-signed certificate, on this port as on the others.
    let later = rcgen::generate_simple_self_signed(vec!["later.example.test".into()]).unwrap();
    let tls = client
        .connect(signed, Some("later.example.test"))
        .await
        .unwrap();
    assert!(serves(&presented(&tls), "later.example.test"));
    assert_ne!(presented(&tls), *later.cert.der());
    write_pair(&dir, "later.example.test", &later);
    let began = Instant::now();
    loop {
        let on_signed = client
            .connect(signed, Some("later.example.test"))
            .await
            .unwrap();
        let on_plain = client
            .connect(plain, Some("later.example.test"))
            .await
            .unwrap();
        if presented(&on_signed) == *later.cert.der() && presented(&on_plain) == *later.cert.der() {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the new pair was not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
