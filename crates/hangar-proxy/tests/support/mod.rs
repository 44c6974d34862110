//! A fleet for the proxy's loopback tests: each "machine" is a real HTTP
//! (with a small WebSocket echo at `/ws`) or TCP echo server on its own
//! 127.x.y.z address, started and stopped
//! through the [`Fleet`] seam the way the Machines API would.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hangar_proxy::{Fleet, FleetError, MachineInfo, MachineState, Proxy, ProxyOptions};
use hangar_types::config::MachineService;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a test machine serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// HTTP: `/` answers `ID\n` then the request's headers, one per line;
    /// `/slow` sleeps the machine's delay first; `/health` answers 200 or 503.
    Http,
    /// Echoes bytes back.
    Echo,
}

pub struct TestMachine {
    pub info: MachineInfo,
    pub kind: Kind,
    pub healthy: Arc<AtomicBool>,
    pub delay_ms: Arc<AtomicU64>,
    pub start_delay: Duration,
    pub served: Arc<AtomicU32>,
    pub task: Option<JoinHandle<()>>,
}

#[derive(Default)]
pub struct TestFleet {
    pub machines: Mutex<Vec<TestMachine>>,
    pub starts: AtomicU32,
    pub stops: AtomicU32,
    pub suspends: AtomicU32,
}

/// A loopback address no other test uses (random 127.x.y.z).
pub fn loopback_ip() -> IpAddr {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    IpAddr::V4(Ipv4Addr::new(
        127,
        (pid % 200) as u8 + 20,
        ((pid / 200) % 250) as u8 + 1,
        (n % 250) as u8 + 1,
    ))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestFleet {
    pub fn new() -> Arc<TestFleet> {
        Arc::new(TestFleet::default())
    }

    /// Adds a machine of `app` (stopped unless `started`) serving
    /// `services` (a JSON array of `MachineService`).
    pub async fn add(
        &self,
        app: &str,
        id: &str,
        kind: Kind,
        services: serde_json::Value,
        started: bool,
    ) -> SocketAddr {
        let services: Vec<MachineService> = serde_json::from_value(services).unwrap();
        let port = services[0].internal_port.unwrap() as u16;
        let ip = loopback_ip();
        let m = TestMachine {
            info: MachineInfo {
                app: app.into(),
                id: id.into(),
                state: MachineState::Stopped,
                region: "local".into(),
                private_ip: Some(ip),
                cordoned: false,
                services,
            },
            kind,
            healthy: Arc::new(AtomicBool::new(true)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            start_delay: Duration::ZERO,
            served: Arc::new(AtomicU32::new(0)),
            task: None,
        };
        self.machines.lock().unwrap().push(m);
        if started {
            self.run(id).await;
        }
        SocketAddr::new(ip, port)
    }

    pub fn with<R>(&self, id: &str, f: impl FnOnce(&mut TestMachine) -> R) -> R {
        let mut ms = self.machines.lock().unwrap();
        let m = ms
            .iter_mut()
            .find(|m| m.info.id == id)
            .expect("test machine");
        f(m)
    }

    pub fn state(&self, id: &str) -> MachineState {
        self.with(id, |m| m.info.state)
    }

    pub fn served(&self, id: &str) -> u32 {
        self.with(id, |m| m.served.load(Ordering::SeqCst))
    }

    async fn run(&self, id: &str) {
        let (addr, kind, healthy, delay, served, start_delay) = self.with(id, |m| {
            m.info.state = MachineState::Started;
            (
                SocketAddr::new(
                    m.info.private_ip.unwrap(),
                    m.info.services[0].internal_port.unwrap() as u16,
                ),
                m.kind,
                m.healthy.clone(),
                m.delay_ms.clone(),
                m.served.clone(),
                m.start_delay,
            )
        });
        let id2 = id.to_owned();
        let task = tokio::spawn(async move {
            // Like a booting machine: the port opens a little later.
            tokio::time::sleep(start_delay).await;
            let listener = TcpListener::bind(addr).await.expect("test machine bind");
            serve(listener, id2, kind, healthy, delay, served).await;
        });
        self.with(id, |m| m.task = Some(task));
    }

    fn halt(&self, id: &str) {
        self.with(id, |m| {
            m.info.state = MachineState::Stopped;
            if let Some(t) = m.task.take() {
                t.abort();
            }
        });
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        for m in self.machines.lock().unwrap().iter_mut() {
            if let Some(t) = m.task.take() {
                t.abort();
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    id: String,
    kind: Kind,
    healthy: Arc<AtomicBool>,
    delay: Arc<AtomicU64>,
    served: Arc<AtomicU32>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let id = id.clone();
        let (healthy, delay, served) = (healthy.clone(), delay.clone(), served.clone());
        conns.spawn(async move {
            if kind == Kind::Echo {
                served.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let id = id.clone();
                let (healthy, delay, served) = (healthy.clone(), delay.clone(), served.clone());
                async move {
                    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                    match req.uri().path() {
                        "/ws" => return Ok(websocket(req)),
                        "/health" => {
                            if !healthy.load(Ordering::SeqCst) {
                                *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                            }
                        }
                        path => {
                            served.fetch_add(1, Ordering::SeqCst);
                            if path == "/slow" {
                                let ms = delay.load(Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            let mut text = format!("{id}\nversion: {:?}\n", req.version());
                            for (k, v) in req.headers() {
                                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
                            }
                            *resp.body_mut() = Full::new(Bytes::from(text));
                        }
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            // HTTP/1.1, or h2c with prior knowledge.
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
        });
    }
}

/// `/ws`: a WebSocket handshake as a server checks it (`Upgrade: websocket`,
/// `Connection: upgrade`, a `Sec-WebSocket-Key`, version 13), else 400. Once
/// switched, the machine writes `key=KEY\n` (the key it was sent), then
/// echoes every byte.
fn websocket(mut req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
    let h = req.headers();
    let has = |name: &str, want: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(want)))
    };
    let key = h
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (true, true, true, Some(key)) = (
        has("upgrade", "websocket"),
        has("connection", "upgrade"),
        has("sec-websocket-version", "13"),
        key,
    ) else {
        let mut resp = hyper::Response::new(Full::new(Bytes::from("not a websocket handshake\n")));
        *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
        return resp;
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut io = TokioIo::new(up);
        if io
            .write_all(format!("key={key}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        let mut buf = [0u8; 4096];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert("upgrade", "websocket".parse().unwrap());
    resp.headers_mut()
        .insert("connection", "upgrade".parse().unwrap());
    resp.headers_mut().insert(
        "sec-websocket-accept",
        "not-checked-by-the-tests".parse().unwrap(),
    );
    resp
}

#[async_trait]
impl Fleet for TestFleet {
    async fn machines(&self) -> Result<Vec<MachineInfo>, FleetError> {
        Ok(self
            .machines
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.info.clone())
            .collect())
    }

    async fn start(&self, _app: &str, id: &str) -> Result<(), FleetError> {
        if self.state(id) == MachineState::Started {
            return Err(FleetError::Status {
                url: format!("test://{id}/start"),
                status: 412,
                body: "already started".into(),
            });
        }
        self.starts.fetch_add(1, Ordering::SeqCst);
        self.run(id).await;
        Ok(())
    }

    async fn stop(&self, _app: &str, id: &str) -> Result<(), FleetError> {
        self.stops.fetch_add(1, Ordering::SeqCst);
        self.halt(id);
        Ok(())
    }

    async fn suspend(&self, _app: &str, id: &str) -> Result<(), FleetError> {
        self.suspends.fetch_add(1, Ordering::SeqCst);
        Err(FleetError::Status {
            url: format!("test://{id}/suspend"),
            status: 501,
            body: "suspend is not supported".into(),
        })
    }
}

/// Proxy options for tests: loopback, fast refresh, short timeouts.
pub fn options() -> ProxyOptions {
    ProxyOptions {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        refresh: Duration::from_millis(100),
        metrics: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        autostop_period: Duration::from_secs(3600),
        queue_timeout: Duration::from_millis(500),
        start_timeout: Duration::from_secs(5),
        ..ProxyOptions::default()
    }
}

pub async fn start_proxy(fleet: &Arc<TestFleet>, opts: ProxyOptions) -> Proxy {
    let proxy = Proxy::start(opts, "local", fleet.clone(), None)
        .await
        .unwrap();
    proxy.refresh().await;
    proxy
}

/// Waits (at most 5 s) until `port` accepts connections on loopback.
pub async fn wait_port(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("port {port} never accepted");
}

pub fn http_service(internal: u16, public: u16) -> serde_json::Value {
    serde_json::json!([{"protocol": "tcp", "internal_port": internal,
        "ports": [{"port": public, "handlers": ["http"]}]}])
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub async fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The proxy's metrics page.
pub async fn metrics(proxy: &Proxy) -> String {
    let addr = proxy.metrics_addr().unwrap();
    client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled metric in a metrics page.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Sends `req` over `io` as HTTP/2 (prior knowledge, or after ALPN picked
/// it) or HTTP/1.1, the connection driven by a task of its own.
pub async fn send_over<IO>(
    io: IO,
    req: hyper::Request<http_body_util::Empty<Bytes>>,
    http2: bool,
) -> hyper::Response<hyper::body::Incoming>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if http2 {
        let (mut s, c) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(c);
        s.send_request(req).await.unwrap()
    } else {
        let (mut s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(c);
        s.send_request(req).await.unwrap()
    }
}

/// Takes any certificate: the TLS tests look at what was presented
/// themselves.
#[derive(Debug)]
pub struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client taking any certificate, offering `alpn` and allowing
/// `versions`.
pub fn any_cert_connector(
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The name a TLS client sends: `sni`, or none (for an IP address rustls
/// sends no SNI).
pub fn server_name(sni: Option<&str>) -> rustls_pki_types::ServerName<'static> {
    match sni {
        Some(n) => rustls_pki_types::ServerName::try_from(n.to_owned()).unwrap(),
        None => rustls_pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    }
}
