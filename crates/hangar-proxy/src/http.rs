//! The `http` handler: HTTP/1.1 and HTTP/2 from clients (hyper), HTTP/1.1 to
//! machines over pooled connections, with the `Fly-*` and `X-Forwarded-*`
//! headers, `force_https`, header size and time limits and an idle timeout.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::balance::{PickError, Prefs, acquire};
use crate::body::ProxyBody;
use crate::catalog::{ConcurrencyType, Group};
use crate::conn::{ClientConn, Stamped};
use crate::live::{Held, Live, LoadGuard};
use crate::shared::Shared;

static FLY_CLIENT_IP: HeaderName = HeaderName::from_static("fly-client-ip");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static FLY_REGION: HeaderName = HeaderName::from_static("fly-region");
static FLY_REQUEST_ID: HeaderName = HeaderName::from_static("fly-request-id");
static FLY_PREFER_REGION: HeaderName = HeaderName::from_static("fly-prefer-region");
static FLY_FORCE_INSTANCE_ID: HeaderName = HeaderName::from_static("fly-force-instance-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Serves one client connection until it closes, errs, or idles out.
pub async fn serve<S>(
    shared: Arc<Shared>,
    route: Arc<crate::catalog::PortRoute>,
    conn: ClientConn,
    stream: S,
    tls: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let opts = &shared.opts;
    let idle_limit = route.handlers.idle_timeout.unwrap_or(opts.idle_timeout);
    let header_limit = route
        .handlers
        .headers_read_timeout
        .unwrap_or(opts.header_timeout);
    // A TLS port whose `tls_options.alpn` leaves out h2 speaks HTTP/1.1 only,
    // also to a client that ignores ALPN and sends HTTP/2's preface.
    let http1_only = tls
        && !crate::tls::TlsSettings::of(route.tls_options.as_ref(), true)
            .alpn
            .iter()
            .any(|p| p == b"h2");
    drop(route);
    let fwd = Forwarded::new(conn, tls);
    let (io, last) = Stamped::new(stream);
    let inflight = Arc::new(AtomicU32::new(0));
    // One reference per connection, cloned per request: cloning `shared`
    // itself per request would bounce its count between threads.
    let ctx = Arc::new(ConnCtx {
        shared: shared.clone(),
        fwd,
        inflight: inflight.clone(),
        binding: Mutex::new(None),
    });
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move {
            let shared = &ctx.shared;
            ctx.inflight.fetch_add(1, Ordering::Relaxed);
            let began = Instant::now();
            let resp = forward(&ctx, req).await;
            shared
                .metrics
                .response(resp.status().as_u16(), began.elapsed());
            ctx.inflight.fetch_sub(1, Ordering::Relaxed);
            Ok::<_, Infallible>(resp)
        }
    });
    let max_buf = opts.max_header_bytes.max(8192);
    let io = TokioIo::new(io);
    if http1_only {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_limit)
            .max_buf_size(max_buf);
        let served = h1.serve_connection(io, svc).with_upgrades();
        until_idle(served, &conn, &last, &inflight, idle_limit).await;
        return;
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_limit)
        .max_buf_size(max_buf);
    builder
        .http2()
        .enable_connect_protocol()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX));
    let served = builder.serve_connection_with_upgrades(io, svc);
    until_idle(served, &conn, &last, &inflight, idle_limit).await;
}

/// Drives a client connection until it ends or idles out.
async fn until_idle<E: std::fmt::Display>(
    served: impl std::future::Future<Output = Result<(), E>>,
    conn: &ClientConn,
    last: &AtomicU64,
    inflight: &AtomicU32,
    idle_limit: Duration,
) {
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                tracing::debug!(peer = %conn.peer, "proxy: client connection: {e}");
            }
        }
        () = idle(last, inflight, idle_limit) => {
            tracing::debug!(peer = %conn.peer, "proxy: idle client connection closed");
        }
    }
}

/// Resolves once nothing moved on the connection for `limit` while no
/// request was in flight (`activity` counts reads and writes).
async fn idle(activity: &AtomicU64, inflight: &AtomicU32, limit: Duration) {
    let step = (limit / 4).max(Duration::from_millis(50));
    let mut seen = activity.load(Ordering::Relaxed);
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(step).await;
        let now = activity.load(Ordering::Relaxed);
        if now != seen || inflight.load(Ordering::Relaxed) != 0 {
            seen = now;
            quiet = Duration::ZERO;
            continue;
        }
        quiet += step;
        if quiet >= limit {
            return;
        }
    }
}

/// The answer to a request whose machine was suspended under it and is not
/// resumed.
fn frozen() -> Response<ProxyBody> {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "the app's machine was suspended while handling the request\n",
    )
}

fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::text(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn host_of(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// What a client connection adds to each of its requests.
struct Forwarded {
    conn: ClientConn,
    tls: bool,
    /// The client's address as a header value.
    ip: HeaderValue,
    port: HeaderValue,
}

impl Forwarded {
    fn new(conn: ClientConn, tls: bool) -> Forwarded {
        Forwarded {
            conn,
            tls,
            ip: HeaderValue::from_str(&conn.peer.ip().to_string())
                .expect("an IP address is a valid header value"),
            port: HeaderValue::from(conn.port),
        }
    }
}

/// What one client connection's requests share.
struct ConnCtx {
    shared: Arc<Shared>,
    fwd: Forwarded,
    /// Requests in flight (the idle timeout waits for none).
    inflight: Arc<AtomicU32>,
    /// For concurrency type `connections`: the machine this connection was
    /// given and the unit of its load the connection holds while open.
    binding: Mutex<Option<Binding>>,
}

struct Binding {
    app: String,
    internal_port: u16,
    unit: Arc<LoadGuard>,
}

/// The load unit for a request. Type `requests`: one of its own. Type
/// `connections`: the connection's, taken by its first request and kept
/// while the machine stays usable (running, healthy, not cordoned, still in
/// the app, not one a connect just failed on, the instance a request
/// forces); otherwise a new machine is picked and the connection moves.
async fn take_unit(
    ctx: &ConnCtx,
    group: &Arc<Group>,
    prefs: &Prefs,
    avoid: &[Arc<Live>],
) -> Result<Held, PickError> {
    if group.concurrency == ConcurrencyType::Requests {
        return acquire(&ctx.shared, group, prefs, avoid)
            .await
            .map(Held::Own);
    }
    if let Some(b) = ctx.binding.lock().expect("binding lock").as_ref()
        && b.app == group.app
        && b.internal_port == group.internal_port
    {
        let l = b.unit.live();
        let usable = l.running()
            && l.healthy()
            && !l.cordoned()
            && prefs.instance.as_deref().is_none_or(|id| id == l.id)
            && !avoid.iter().any(|a| Arc::ptr_eq(a, l))
            && group.machines.iter().any(|m| Arc::ptr_eq(m, l));
        if usable {
            return Ok(Held::Conn(b.unit.clone()));
        }
    }
    let unit = Arc::new(acquire(&ctx.shared, group, prefs, avoid).await?);
    *ctx.binding.lock().expect("binding lock") = Some(Binding {
        app: group.app.clone(),
        internal_port: group.internal_port,
        unit: unit.clone(),
    });
    Ok(Held::Conn(unit))
}

async fn forward(ctx: &ConnCtx, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let (shared, fwd) = (&ctx.shared, &ctx.fwd);
    let (conn, tls) = (fwd.conn, fwd.tls);
    let mut group = None;
    let mut h2_backend = false;
    for attempt in 0..2 {
        if attempt > 0 {
            // An unknown app may have just been created: look again.
            shared.refresh_and_wait(Duration::from_secs(1)).await;
        }
        let found = shared.with_catalog(|catalog| {
            let route = catalog.ports.get(&conn.port)?;
            if route.handlers.force_https && !tls {
                return Some(Err(()));
            }
            let g = route.route(host_of(&req), &shared.opts.domain)?;
            Some(Ok((g.clone(), route.handlers.h2_backend)))
        });
        match found {
            Some(Err(())) => return redirect_https(&req),
            Some(Ok((g, h2))) => {
                group = Some(g);
                h2_backend = h2;
                break;
            }
            None => {}
        }
    }
    let Some(group) = group else {
        return plain(
            StatusCode::NOT_FOUND,
            "no app is served here for this host\n",
        );
    };
    let prefs = Prefs {
        region: header_string(req.headers(), &FLY_PREFER_REGION),
        instance: header_string(req.headers(), &FLY_FORCE_INSTANCE_ID),
    };
    // An upgrade (WebSocket and the like) goes to HTTP/1.1 machines only.
    let upgrade = crate::upgrade::asked(&req).filter(|_| !h2_backend);
    let enc = (group.compress && !group.pristine)
        .then(|| crate::compress::negotiate(req.method(), req.headers()))
        .flatten();
    prepare(shared, fwd, &mut req);
    let mut client_upgrade = upgrade.map(|asked| crate::upgrade::to_machine(&mut req, asked));

    let mut avoid: Vec<Arc<Live>> = Vec::new();
    for _ in 0..3 {
        let guard = match take_unit(ctx, &group, &prefs, &avoid).await {
            Ok(g) => g,
            Err(PickError::Capacity(_)) => {
                shared.metrics.rejected_capacity.inc();
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "every machine of this app is at its concurrency limit\n",
                );
            }
            Err(PickError::NoMachine(_)) => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no machine of this app can take the request\n",
                );
            }
            Err(e @ PickError::Start { .. }) => {
                tracing::warn!(app = %group.app, "proxy: {e}");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the app's machine could not be started\n",
                );
            }
        };
        let live = guard.live().clone();
        if h2_backend {
            match h2_sender(shared, &live).await {
                Ok(mut sender) => {
                    set_absolute_uri(&mut req);
                    let answered =
                        crate::frozen::answer(shared, &group, &live, sender.send_request(req));
                    let Ok(answered) = answered.await else {
                        return frozen();
                    };
                    return match answered {
                        Ok(resp) => crate::compress::apply(
                            respond(resp, &group, None, live, guard, None),
                            enc,
                        ),
                        Err(e) => {
                            tracing::debug!(machine = %live.id, "proxy: upstream h2: {e}");
                            live.h2.lock().expect("h2 lock").take();
                            plain(StatusCode::BAD_GATEWAY, "the machine's response failed\n")
                        }
                    };
                }
                Err(e) => {
                    tracing::info!(machine = %live.id, addr = %live.addr, "proxy: connect failed, trying again: {e}");
                    shared.metrics.connect_retries.inc();
                    drop(guard);
                    avoid.push(live);
                    shared.refresh_and_wait(Duration::from_millis(300)).await;
                    continue;
                }
            }
        }
        // Pooled connections first, then a fresh one. A connection the
        // machine closed meanwhile gives the request back unsent: a pooled
        // one is followed by the next; a fresh one means the machine is going
        // away, and another machine may take the request.
        loop {
            let (mut sender, fresh) = match checkout(&live).await {
                Some(s) => (s, false),
                None => match connect(shared, &live).await {
                    Ok(s) => (s, true),
                    Err(e) => {
                        tracing::info!(machine = %live.id, addr = %live.addr, "proxy: connect failed, trying again: {e}");
                        break;
                    }
                },
            };
            let answered =
                crate::frozen::answer(shared, &group, &live, sender.try_send_request(req));
            let Ok(answered) = answered.await else {
                return frozen();
            };
            match answered {
                Ok(resp) => {
                    let resp = respond(
                        resp,
                        &group,
                        Some(sender),
                        live,
                        guard,
                        client_upgrade.take(),
                    );
                    return crate::compress::apply(resp, enc);
                }
                Err(mut e) => {
                    let Some(r) = e.take_message() else {
                        tracing::debug!(machine = %live.id, "proxy: upstream: {}", e.error());
                        return plain(StatusCode::BAD_GATEWAY, "the machine's response failed\n");
                    };
                    req = r;
                    if fresh {
                        tracing::debug!(machine = %live.id, "proxy: upstream: {}", e.error());
                        break;
                    }
                }
            }
        }
        shared.metrics.connect_retries.inc();
        drop(guard);
        avoid.push(live);
        shared.refresh_and_wait(Duration::from_millis(300)).await;
    }
    plain(
        StatusCode::BAD_GATEWAY,
        "no machine of this app accepted a connection\n",
    )
}

/// The machine's answer as the client gets it, with the port's
/// `http_options.response.headers` applied. A `101 Switching Protocols`
/// answer to a client's upgrade request joins the two upgraded connections
/// (the machine's is not pooled again) until either side closes, holding a
/// unit of the machine's load meanwhile.
fn respond(
    mut resp: Response<Incoming>,
    group: &crate::catalog::Group,
    sender: Option<SendRequest<Incoming>>,
    live: Arc<Live>,
    guard: Held,
    client_upgrade: Option<crate::upgrade::ClientSide>,
) -> Response<ProxyBody> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client) = client_upgrade
    {
        let protocol = resp.headers().get(header::UPGRADE).cloned();
        let machine = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return crate::upgrade::switch(machine, parts, protocol, group, client, guard);
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    group.response_headers.apply(&mut parts.headers);
    Response::from_parts(parts, ProxyBody::upstream(body, sender, live, guard))
}

async fn checkout(live: &Live) -> Option<SendRequest<Incoming>> {
    loop {
        let mut s = live.checkout()?;
        if s.ready().await.is_ok() {
            return Some(s);
        }
    }
}

/// The machine's shared h2c connection, made on first use.
async fn h2_sender(
    shared: &Shared,
    live: &Live,
) -> std::io::Result<hyper::client::conn::http2::SendRequest<Incoming>> {
    if let Some(s) = live.h2.lock().expect("h2 lock").as_ref()
        && !s.is_closed()
    {
        return Ok(s.clone());
    }
    let stream = crate::balance::connect_upstream(shared, live).await?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    *live.h2.lock().expect("h2 lock") = Some(sender.clone());
    Ok(sender)
}

/// HTTP/2 needs the scheme and authority: `http://HOST/path`.
fn set_absolute_uri(req: &mut Request<Incoming>) {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    if let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(pq)
        .build()
    {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = Version::HTTP_2;
    req.headers_mut().remove(header::HOST);
}

async fn connect(shared: &Shared, live: &Live) -> std::io::Result<SendRequest<Incoming>> {
    let stream = crate::balance::connect_upstream(shared, live).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

fn header_string(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn redirect_https(req: &Request<Incoming>) -> Response<ProxyBody> {
    let host = crate::catalog::strip_port(host_of(req).unwrap_or("localhost"));
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut r = plain(StatusCode::MOVED_PERMANENTLY, "use https\n");
    if let Ok(v) = HeaderValue::from_str(&format!("https://{host}{path}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(c) = h.remove(header::CONNECTION)
        && let Ok(list) = c.to_str()
    {
        for name in list.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                h.remove(name);
            }
        }
    }
    h.remove(&KEEP_ALIVE);
    h.remove(&PROXY_CONNECTION);
    h.remove(header::TE);
    h.remove(header::TRAILER);
    h.remove(header::UPGRADE);
    h.remove(header::TRANSFER_ENCODING);
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// Rewrites a client request for a machine: origin-form URI, HTTP/1.1, a
/// Host header, no hop-by-hop headers, and the forwarding headers.
fn prepare(shared: &Shared, fwd: &Forwarded, req: &mut Request<Incoming>) {
    if !req.headers().contains_key(header::HOST)
        && let Some(a) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    if req.uri().authority().is_some() || req.uri().scheme().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    let h = req.headers_mut();
    strip_hop_by_hop(h);
    let xff = match h.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + fwd.ip.len());
            v.extend_from_slice(prev);
            v.extend_from_slice(b", ");
            v.extend_from_slice(fwd.ip.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| fwd.ip.clone())
        }
        _ => fwd.ip.clone(),
    };
    h.insert(X_FORWARDED_FOR.clone(), xff);
    h.insert(FLY_CLIENT_IP.clone(), fwd.ip.clone());
    h.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if fwd.tls { "https" } else { "http" }),
    );
    h.insert(X_FORWARDED_PORT.clone(), fwd.port.clone());
    if let Some(region) = &shared.region_header {
        h.insert(FLY_REGION.clone(), region.clone());
        let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
        if let Ok(id) = HeaderValue::from_str(&format!(
            "{:08x}{seq:010x}-{}",
            std::process::id(),
            shared.region
        )) {
            h.insert(FLY_REQUEST_ID.clone(), id);
        }
    }
}
