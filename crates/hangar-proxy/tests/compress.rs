//! Response compression through the proxy, over HTTP/1.1 and HTTP/2 from
//! the client: bodies encoded as the client accepts and decoding to the
//! machine's bytes, left alone without `Accept-Encoding`, with
//! `compress = false`, `response.pristine`, `Content-Encoding: none` or an
//! encoding of the app's own, and a streamed body arriving as it is sent.

mod support;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hangar_proxy::MachineState;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

/// 40 KB of HTML-ish text.
static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    let mut s = String::from("<!doctype html><title>hangar</title>\n");
    for i in 0..600 {
        s.push_str(&format!("<p class=\"row\">row {i} of the page</p>\n"));
    }
    Bytes::from(s)
});

static PAGE_GZIP: LazyLock<Bytes> = LazyLock::new(|| {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&PAGE).unwrap();
    Bytes::from(e.finish().unwrap())
});

const PART_ONE: &str = "the first part of a long answer\n";
const PART_TWO: &str = "and the rest, sent later\n";

/// A body fed through a channel, so a route can stream at its own pace.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type Reply = hyper::Response<BoxBody<Bytes, Infallible>>;

fn reply(content_type: &str, extra: &[(&str, &str)], body: BoxBody<Bytes, Infallible>) -> Reply {
    let mut b = hyper::Response::builder().header("content-type", content_type);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

/// What the test machine answers, by path.
fn route(path: &str, release: &Arc<Notify>) -> Reply {
    let full = |b: Bytes| Full::new(b).boxed();
    match path {
        "/page" => reply("text/html; charset=utf-8", &[], full(PAGE.clone())),
        // The page in four chunks, with no length.
        "/chunked" => {
            let (tx, rx) = mpsc::channel(4);
            for chunk in PAGE.chunks(PAGE.len() / 4 + 1) {
                tx.try_send(Bytes::copy_from_slice(chunk)).unwrap();
            }
            reply("application/json", &[], ChannelBody(rx).boxed())
        }
        "/small" => reply("text/plain", &[], full(PAGE.slice(..200))),
        "/none" => reply(
            "text/html",
            &[("content-encoding", "none")],
            full(PAGE.clone()),
        ),
        "/encoded" => reply(
            "text/html",
            &[("content-encoding", "gzip")],
            full(PAGE_GZIP.clone()),
        ),
        "/png" => reply("image/png", &[], full(PAGE.clone())),
        // The first part at once, the rest once the test releases it.
        "/stream" => {
            let (tx, rx) = mpsc::channel(2);
            let release = release.clone();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(PART_ONE.as_bytes())).await;
                release.notified().await;
                let _ = tx.send(Bytes::from_static(PART_TWO.as_bytes())).await;
            });
            reply("text/plain", &[], ChannelBody(rx).boxed())
        }
        _ => reply("text/plain", &[], full(Bytes::from_static(b"?\n"))),
    }
}

async fn serve_routes(addr: SocketAddr, release: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let release = release.clone();
            conns.spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let resp = route(req.uri().path(), &release);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// A proxy in front of three apps on one port, all serving [`route`]:
/// `on` (compression by default), `off` (`compress = false`) and `raw`
/// (`response.pristine = true`).
struct Setup {
    port: u16,
    release: Arc<Notify>,
    _proxy: hangar_proxy::Proxy,
    _fleet: Arc<TestFleet>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn setup() -> Setup {
    let fleet = TestFleet::new();
    let port = free_port();
    let internal = free_port();
    let release = Arc::new(Notify::new());
    let apps = [
        ("on", json!({})),
        ("off", json!({"compress": false})),
        ("raw", json!({"response": {"pristine": true}})),
    ];
    let mut tasks = Vec::new();
    for (app, options) in apps {
        let services = json!([{"internal_port": internal, "ports": [{
            "port": port, "handlers": ["http"], "http_options": options}]}]);
        let id = format!("{app}1");
        let addr = fleet.add(app, &id, Kind::Http, services, false).await;
        tasks.push(serve_routes(addr, release.clone()).await);
        fleet.with(&id, |m| m.info.state = MachineState::Started);
    }
    let proxy = start_proxy(&fleet, options()).await;
    wait_port(port).await;
    Setup {
        port,
        release,
        _proxy: proxy,
        _fleet: fleet,
        tasks,
    }
}

/// Sends a GET for `path` of `app` over a fresh HTTP/1.1 or HTTP/2 (h2c)
/// connection to the proxy.
async fn send(
    port: u16,
    app: &str,
    path: &str,
    accept: Option<&str>,
    http2: bool,
) -> hyper::Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut b = http::Request::builder();
    if http2 {
        b = b.uri(format!("http://{app}.localhost{path}"));
    } else {
        b = b.uri(path).header("host", format!("{app}.localhost"));
    }
    if let Some(a) = accept {
        b = b.header("accept-encoding", a);
    }
    let req = b.body(Empty::<Bytes>::new()).unwrap();
    send_over(tcp, req, http2).await
}

/// Status, headers and the whole body (as sent, not decoded).
async fn get(
    port: u16,
    app: &str,
    path: &str,
    accept: Option<&str>,
    http2: bool,
) -> (u16, http::HeaderMap, Bytes) {
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        send(port, app, path, accept, http2),
    )
    .await
    .expect("a response head within 10 s");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the body within 10 s")
        .unwrap()
        .to_bytes();
    (status, headers, body)
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(data).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_are_compressed_as_the_client_accepts() {
    let s = setup().await;
    for http2 in [false, true] {
        for (accept, want) in [
            ("gzip", "gzip"),
            ("br", "br"),
            ("gzip, deflate, br, zstd", "zstd"),
            ("gzip;q=0.5, deflate", "deflate"),
        ] {
            for path in ["/page", "/chunked"] {
                let (status, h, body) = get(s.port, "on", path, Some(accept), http2).await;
                let what = format!("{path} {accept} http2={http2}");
                assert_eq!(status, 200, "{what}");
                assert_eq!(header(&h, "content-encoding"), Some(want), "{what}");
                assert_eq!(header(&h, "content-length"), None, "{what}");
                assert_eq!(header(&h, "vary"), Some("Accept-Encoding"), "{what}");
                assert!(body.len() < PAGE.len() / 4, "{what}: {} bytes", body.len());
                assert_eq!(decode(want, &body), PAGE.as_ref(), "{what}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_pass_untouched_when_not_compressed() {
    let s = setup().await;
    for http2 in [false, true] {
        // The client accepts no encoding: the machine's very bytes.
        for accept in [None, Some("identity"), Some("gzip;q=0")] {
            for path in ["/page", "/chunked"] {
                let (status, h, body) = get(s.port, "on", path, accept, http2).await;
                let what = format!("{path} {accept:?} http2={http2}");
                assert_eq!(status, 200, "{what}");
                assert_eq!(header(&h, "content-encoding"), None, "{what}");
                assert_eq!(header(&h, "vary"), None, "{what}");
                assert_eq!(body, *PAGE, "{what}");
            }
            let (_, h, _) = get(s.port, "on", "/page", accept, http2).await;
            let len = PAGE.len().to_string();
            assert_eq!(header(&h, "content-length"), Some(len.as_str()));
        }
        // Not worth it, or not compressible.
        for path in ["/small", "/png"] {
            let (_, h, body) = get(s.port, "on", path, Some("gzip, br"), http2).await;
            assert_eq!(header(&h, "content-encoding"), None, "{path}");
            assert!(PAGE.starts_with(&body) && !body.is_empty(), "{path}");
        }
        // `compress = false` and `response.pristine = true` services.
        for app in ["off", "raw"] {
            for path in ["/page", "/chunked"] {
                let (status, h, body) = get(s.port, app, path, Some("gzip, br"), http2).await;
                assert_eq!(status, 200);
                assert_eq!(header(&h, "content-encoding"), None, "{app}{path}");
                assert_eq!(body, *PAGE, "{app}{path}");
            }
        }
        // Pristine passes even the app's `Content-Encoding: none` on.
        let (_, h, body) = get(s.port, "raw", "/none", Some("gzip"), http2).await;
        assert_eq!(header(&h, "content-encoding"), Some("none"));
        assert_eq!(body, *PAGE);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_opt_out_with_content_encoding() {
    let s = setup().await;
    for http2 in [false, true] {
        // `none`: not compressed, and the header is not passed on.
        let (status, h, body) = get(s.port, "on", "/none", Some("gzip, br"), http2).await;
        assert_eq!(status, 200);
        assert_eq!(header(&h, "content-encoding"), None, "http2={http2}");
        assert_eq!(body, *PAGE, "http2={http2}");
        // Already gzip: sent as the app encoded it, not encoded again.
        let (_, h, body) = get(s.port, "on", "/encoded", Some("br, gzip"), http2).await;
        assert_eq!(
            header(&h, "content-encoding"),
            Some("gzip"),
            "http2={http2}"
        );
        assert_eq!(body, *PAGE_GZIP, "http2={http2}");
        assert_eq!(decode("gzip", &body), PAGE.as_ref());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_response_arrives_in_parts() {
    let s = setup().await;
    for http2 in [false, true] {
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            send(s.port, "on", "/stream", Some("gzip"), http2),
        )
        .await
        .expect("a response head within 10 s");
        assert_eq!(header(resp.headers(), "content-encoding"), Some("gzip"));
        let mut body = resp.into_body();
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        let mut sent = Vec::new();
        // The first part decodes while the machine still holds the rest.
        while decoder.get_ref().len() < PART_ONE.len() {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("the first part within 10 s, before the end")
                .expect("more body")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                decoder.write_all(&data).unwrap();
                decoder.flush().unwrap();
                sent.extend_from_slice(&data);
            }
        }
        assert_eq!(decoder.get_ref().as_slice(), PART_ONE.as_bytes());
        s.release.notify_one();
        let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
            .await
            .expect("the rest within 10 s")
            .unwrap()
            .to_bytes();
        sent.extend_from_slice(&rest);
        let whole = format!("{PART_ONE}{PART_TWO}");
        assert_eq!(decode("gzip", &sent), whole.as_bytes(), "http2={http2}");
    }
}
