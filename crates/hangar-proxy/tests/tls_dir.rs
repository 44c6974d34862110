//! `--proxy-tls-dir`: the certificate a `tls` port presents is picked by SNI
//! (exact hostname, then the parent domain's wildcard, then the default);
//! pairs added, replaced or removed while the proxy runs are served within
//! the poll time; broken pairs are skipped with a warning naming the file;
//! a missing directory stops the proxy from starting.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hangar_proxy::tls::{CertDir, PairProblem};
use hangar_proxy::{Proxy, ProxyOptions};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use serde_json::json;
use support::*;
use tokio::net::TcpStream;

/// A self-signed certificate for `names`: its PEM, its key's PEM, its DER.
struct TestCert {
    pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn cert(names: &[&str]) -> TestCert {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    TestCert {
        pem: c.cert.pem(),
        key_pem: c.key_pair.serialize_pem(),
        der: c.cert.der().clone(),
    }
}

/// Writes `<stem>.key` then `<stem>.crt`, each through a rename, as a
/// careful operator (or a certificate tool) would.
fn write_pair(dir: &Path, stem: &str, crt: &str, key: &str) {
    for (ext, text) in [("key", key), ("crt", crt)] {
        let tmp = dir.join(format!(".{stem}.{ext}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(format!("{stem}.{ext}"))).unwrap();
    }
}

/// A TLS connection to the proxy's `port` with `sni` (none: the client
/// names an IP address, and rustls then sends no SNI).
async fn connect(port: u16, sni: Option<&str>) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = any_cert_connector(
        &["h2", "http/1.1"],
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(server_name(sni), tcp),
    )
    .await
    .expect("TLS handshake in time")
    .expect("TLS handshake")
}

/// The end-entity certificate the proxy presents for `sni`.
async fn presented(port: u16, sni: Option<&str>) -> CertificateDer<'static> {
    let tls = connect(port, sni).await;
    let (_, session) = tls.get_ref();
    assert_eq!(
        session.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN for {sni:?}"
    );
    session.peer_certificates().expect("a certificate")[0].clone()
}

/// Waits (at most 10 s, several poll periods) until `sni` gets `want`.
async fn wait_presented(port: u16, sni: &str, want: &CertificateDer<'_>) {
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(10) {
        if presented(port, Some(sni)).await == *want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sni} was not served its new certificate within 10 s");
}

/// A one-machine app with a `tls` + `http` port; returns the port.
async fn tls_app(fleet: &Arc<TestFleet>, app: &str) -> u16 {
    let public = free_port();
    let services = json!([{"internal_port": free_port(), "ports": [
        {"port": public, "handlers": ["tls", "http"]}]}]);
    fleet
        .add(app, &format!("{app}-1"), Kind::Http, services, true)
        .await;
    public
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_picked_by_sni_and_directory_changes_are_served_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    std::fs::create_dir(&dir).unwrap();
    let default = cert(&["localhost"]);
    std::fs::write(tmp.path().join("default.crt"), &default.pem).unwrap();
    std::fs::write(tmp.path().join("default.key"), &default.key_pem).unwrap();
    let a = cert(&["a.example"]);
    let b = cert(&["b.example"]);
    let wild = cert(&["*.wild.example"]);
    write_pair(&dir, "a.example", &a.pem, &a.key_pem);
    write_pair(&dir, "b.example", &b.pem, &b.key_pem);
    write_pair(&dir, "_wildcard.wild.example", &wild.pem, &wild.key_pem);
    // Other files in the directory are not certificates.
    std::fs::write(dir.join("README"), "certificates per hostname\n").unwrap();

    let fleet = TestFleet::new();
    let port = tls_app(&fleet, "site").await;
    let mut opts = options();
    opts.tls_cert = Some(tmp.path().join("default.crt"));
    opts.tls_key = Some(tmp.path().join("default.key"));
    opts.tls_dir = Some(dir.clone());
    let _proxy = start_proxy(&fleet, opts).await;
    wait_port(port).await;

    assert_eq!(presented(port, Some("a.example")).await, a.der);
    assert_eq!(presented(port, Some("b.example")).await, b.der);
    assert_eq!(presented(port, Some("x.wild.example")).await, wild.der);
    // A wildcard covers one label, not the domain itself nor deeper names.
    assert_eq!(presented(port, Some("wild.example")).await, default.der);
    assert_eq!(presented(port, Some("y.x.wild.example")).await, default.der);
    assert_eq!(presented(port, Some("other.example")).await, default.der);
    assert_eq!(presented(port, None).await, default.der);

    // The connection carries HTTP to the app.
    let tls = connect(port, Some("b.example")).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("https://b.example:{port}/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"site-1\n"), "{body:?}");

    // Added, replaced and removed while running.
    assert_eq!(presented(port, Some("c.example")).await, default.der);
    let c = cert(&["c.example"]);
    write_pair(&dir, "c.example", &c.pem, &c.key_pem);
    wait_presented(port, "c.example", &c.der).await;
    let a2 = cert(&["a.example"]);
    write_pair(&dir, "a.example", &a2.pem, &a2.key_pem);
    wait_presented(port, "a.example", &a2.der).await;
    std::fs::remove_file(dir.join("b.example.crt")).unwrap();
    std::fs::remove_file(dir.join("b.example.key")).unwrap();
    wait_presented(port, "b.example", &default.der).await;
    assert_eq!(presented(port, Some("x.wild.example")).await, wild.der);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_pairs_are_skipped_once_and_the_others_keep_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = cert(&["good.example"]);
    let other = cert(&["mismatch.example"]);
    let mismatch = cert(&["mismatch.example"]);
    write_pair(dir, "good.example", &good.pem, &good.key_pem);
    write_pair(dir, "badpem.example", "not a certificate\n", &good.key_pem);
    let truncated = &good.pem[..good.pem.len() / 2];
    write_pair(dir, "truncated.example", truncated, &good.key_pem);
    write_pair(
        dir,
        "badkey.example",
        &good.pem,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    );
    write_pair(dir, "mismatch.example", &mismatch.pem, &other.key_pem);
    std::fs::write(dir.join("lonely.example.crt"), &good.pem).unwrap();
    std::fs::write(dir.join("orphan.example.key"), &good.key_pem).unwrap();
    write_pair(dir, "not a host", &good.pem, &good.key_pem);

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut certs = CertDir::open(dir, provider).unwrap();
    let scan = certs.scan().unwrap();
    let table = scan.table.expect("a first table");
    assert_eq!(table.names(), vec!["good.example".to_string()]);
    let mut skipped: Vec<(String, PairProblem)> = scan
        .skipped
        .iter()
        .map(|s| {
            let file = s.file.file_name().unwrap().to_string_lossy().into_owned();
            (file, s.problem.clone())
        })
        .collect();
    skipped.sort_by(|x, y| x.0.cmp(&y.0));
    let kinds: Vec<(&str, &str)> = skipped
        .iter()
        .map(|(f, p)| {
            let kind = match p {
                PairProblem::BadName => "name",
                PairProblem::MissingKey => "no key",
                PairProblem::MissingCert => "no crt",
                PairProblem::NoCertificate => "no certificate",
                PairProblem::CertPem(_) => "cert pem",
                PairProblem::KeyPem(_) => "key pem",
                PairProblem::KeyMismatch => "mismatch",
                other => panic!("{f}: unexpected {other}"),
            };
            (f.as_str(), kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("badkey.example.key", "key pem"),
            ("badpem.example.crt", "no certificate"),
            ("lonely.example.crt", "no key"),
            ("mismatch.example.key", "mismatch"),
            ("not a host.crt", "name"),
            ("orphan.example.key", "no crt"),
            ("truncated.example.crt", "cert pem"),
        ]
    );
    // The warning names the file and the problem.
    let warning = scan
        .skipped
        .iter()
        .find(|s| s.problem == PairProblem::KeyMismatch)
        .unwrap()
        .to_string();
    assert!(
        warning.contains(&dir.join("mismatch.example.key").display().to_string())
            && warning.contains("does not match"),
        "{warning}"
    );
    // Unchanged files are not read (nor warned about) again.
    let again = certs.scan().unwrap();
    assert!(again.table.is_none());
    assert!(again.skipped.is_empty());

    // Served: the good pair; the broken ones fall back to the default.
    let fleet = TestFleet::new();
    let port = tls_app(&fleet, "mixed").await;
    let mut opts = options();
    opts.tls_dir = Some(dir.to_owned());
    let _proxy = start_proxy(&fleet, opts).await;
    wait_port(port).await;
    let fallback = presented(port, None).await;
    assert_ne!(fallback, good.der);
    assert_eq!(presented(port, Some("good.example")).await, good.der);
    for name in [
        "badpem.example",
        "mismatch.example",
        "lonely.example",
        "badkey.example",
    ] {
        assert_eq!(presented(port, Some(name)).await, fallback, "{name}");
    }
    // Fixing a pair serves it.
    write_pair(dir, "mismatch.example", &mismatch.pem, &mismatch.key_pem);
    wait_presented(port, "mismatch.example", &mismatch.der).await;
    assert_eq!(presented(port, Some("good.example")).await, good.der);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_dir_that_is_not_a_directory_stops_the_start_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    for (path, reason) in [
        (tmp.path().join("missing"), "No such file"),
        (file, "not a directory"),
    ] {
        let opts = ProxyOptions {
            tls_dir: Some(path.clone()),
            ..options()
        };
        let err = Proxy::start(opts, "local", TestFleet::new(), None)
            .await
            .err()
            .expect("the start fails")
            .to_string();
        assert!(
            err.contains("--proxy-tls-dir")
                && err.contains(&path.display().to_string())
                && err.contains(reason),
            "{err}"
        );
    }
}
