//! Negotiation of `Accept-Encoding`, which responses are compressed and
//! how, and the streaming encoder (progress, end, trailers).

use std::collections::VecDeque;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};

use super::accept::parse_q;
use super::encoder::Encoder;
use super::qualify::compressible_type;
use super::*;

fn accept(values: &[&str]) -> Option<Encoding> {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
    }
    negotiate(&Method::GET, &h)
}

#[test]
fn negotiate_prefers_zstd_then_br_gzip_deflate() {
    assert_eq!(accept(&["gzip, deflate, br, zstd"]), Some(Encoding::Zstd));
    assert_eq!(accept(&["gzip, deflate, br"]), Some(Encoding::Br));
    assert_eq!(accept(&["deflate, gzip"]), Some(Encoding::Gzip));
    assert_eq!(accept(&["deflate"]), Some(Encoding::Deflate));
    assert_eq!(accept(&["gzip"]), Some(Encoding::Gzip));
    // Names in any case; `x-gzip` is gzip.
    assert_eq!(accept(&["GZip"]), Some(Encoding::Gzip));
    assert_eq!(accept(&["x-gzip"]), Some(Encoding::Gzip));
    // Several header lines add up.
    assert_eq!(accept(&["gzip", "br"]), Some(Encoding::Br));
}

#[test]
fn negotiate_follows_q_values() {
    assert_eq!(accept(&["br;q=0.5, gzip"]), Some(Encoding::Gzip));
    assert_eq!(accept(&["gzip;q=0.5, br;q=0.8"]), Some(Encoding::Br));
    assert_eq!(
        accept(&["deflate;q=1.0, gzip;q=0.999"]),
        Some(Encoding::Deflate)
    );
    assert_eq!(accept(&["gzip ; q=0.3 , br;Q=0.2"]), Some(Encoding::Gzip));
    // q=0 refuses.
    assert_eq!(accept(&["gzip;q=0"]), None);
    assert_eq!(
        accept(&["zstd;q=0, br;q=0.000, gzip"]),
        Some(Encoding::Gzip)
    );
    // Other parameters are not weights.
    assert_eq!(accept(&["gzip;level=1"]), Some(Encoding::Gzip));
    // A malformed weight makes its entry say nothing.
    assert_eq!(accept(&["gzip;q=2"]), None);
    assert_eq!(
        accept(&["gzip;q=0.0001, br;q=abc, deflate"]),
        Some(Encoding::Deflate)
    );
    // Listed twice: the higher weight.
    assert_eq!(accept(&["gzip;q=0, gzip;q=0.4"]), Some(Encoding::Gzip));
}

#[test]
fn negotiate_star_and_identity() {
    assert_eq!(accept(&["*"]), Some(Encoding::Zstd));
    assert_eq!(accept(&["*;q=0"]), None);
    // `*` stands for what is not named.
    assert_eq!(accept(&["zstd;q=0, br;q=0, *"]), Some(Encoding::Gzip));
    assert_eq!(accept(&["gzip;q=0.2, *;q=0.5"]), Some(Encoding::Zstd));
    assert_eq!(accept(&["gzip, *;q=0"]), Some(Encoding::Gzip));
    // identity is not an encoding the proxy applies...
    assert_eq!(accept(&["identity"]), None);
    assert_eq!(accept(&["identity;q=0"]), None);
    assert_eq!(accept(&["identity;q=0, gzip"]), Some(Encoding::Gzip));
    // ...and a client weighing it above the rest gets it.
    assert_eq!(accept(&["gzip;q=0.5, identity"]), None);
    assert_eq!(
        accept(&["gzip;q=0.5, identity;q=0.5"]),
        Some(Encoding::Gzip)
    );
}

#[test]
fn negotiate_ignores_unknown_codings_and_head() {
    assert_eq!(accept(&["compress, lzma, exi"]), None);
    assert_eq!(accept(&["compress, br"]), Some(Encoding::Br));
    assert_eq!(accept(&[""]), None);
    assert_eq!(accept(&[" , ;q=1"]), None);
    assert_eq!(accept(&[]), None);
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    assert_eq!(negotiate(&Method::HEAD, &h), None);
    assert_eq!(negotiate(&Method::CONNECT, &h), None);
    assert_eq!(negotiate(&Method::POST, &h), Some(Encoding::Gzip));
}

#[test]
fn q_values_follow_the_grammar() {
    assert_eq!(parse_q("0"), Some(0));
    assert_eq!(parse_q("0."), Some(0));
    assert_eq!(parse_q("0.5"), Some(500));
    assert_eq!(parse_q("0.05"), Some(50));
    assert_eq!(parse_q("0.125"), Some(125));
    assert_eq!(parse_q("1"), Some(1000));
    assert_eq!(parse_q("1.000"), Some(1000));
    assert_eq!(parse_q("1.001"), None);
    assert_eq!(parse_q("0.1234"), None);
    assert_eq!(parse_q("2"), None);
    assert_eq!(parse_q("-0"), None);
    assert_eq!(parse_q(".5"), None);
    assert_eq!(parse_q("0.x"), None);
    assert_eq!(parse_q(""), None);
}

#[test]
fn compressible_types() {
    for t in [
        "text/html",
        "text/html; charset=utf-8",
        "TEXT/CSS",
        "text/plain",
        "application/json",
        "application/json; charset=utf-8",
        "application/javascript",
        "application/xml",
        "application/wasm",
        "application/vnd.api+json",
        "application/atom+xml",
        "image/svg+xml",
        "font/ttf",
    ] {
        assert!(compressible_type(t), "{t}");
    }
    for t in [
        "text/event-stream",
        "image/png",
        "image/jpeg",
        "application/octet-stream",
        "application/zip",
        "application/gzip",
        "video/mp4",
        "font/woff2",
        "",
        "html",
        "application/+json",
    ] {
        assert!(!compressible_type(t), "{t}");
    }
}

/// A compressible text of `n` bytes.
fn text(n: usize) -> Bytes {
    let line = b"Hangar proxies this line to the client, compressed if asked.\n";
    Bytes::from(line.iter().copied().cycle().take(n).collect::<Vec<u8>>())
}

fn response(status: u16, headers: &[(&str, &str)], body: Bytes) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Full(Some(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(
            header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}

fn decode(enc: Encoding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match enc {
        Encoding::Gzip => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        Encoding::Deflate => {
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        Encoding::Br => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Encoding::Zstd => out = zstd::decode_all(data).unwrap(),
    }
    out
}

async fn collect(r: Response<ProxyBody>) -> (http::response::Parts, Bytes) {
    let (parts, body) = r.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn each_encoding_round_trips_with_its_headers() {
    let original = text(50_000);
    for enc in Encoding::PREFERENCE {
        let len = original.len().to_string();
        let r = response(
            200,
            &[
                ("content-type", "text/html; charset=utf-8"),
                ("content-length", &len),
                ("accept-ranges", "bytes"),
                ("etag", "\"v1\""),
            ],
            original.clone(),
        );
        let (parts, body) = collect(apply(r, Some(enc))).await;
        assert_eq!(
            header(&parts.headers, "content-encoding"),
            Some(enc.as_str())
        );
        assert_eq!(header(&parts.headers, "content-length"), None);
        assert_eq!(header(&parts.headers, "accept-ranges"), None);
        assert_eq!(header(&parts.headers, "etag"), Some("W/\"v1\""));
        assert_eq!(header(&parts.headers, "vary"), Some("Accept-Encoding"));
        assert!(
            body.len() < original.len() / 4,
            "{enc:?}: {} bytes",
            body.len()
        );
        assert_eq!(decode(enc, &body), original, "{enc:?}");
    }
}

#[tokio::test]
async fn vary_is_merged_and_weak_etags_stay() {
    let cases = [
        (vec!["Origin"], "Origin, Accept-Encoding"),
        (vec!["Origin", "Cookie"], "Origin, Cookie, Accept-Encoding"),
        (vec!["accept-encoding"], "accept-encoding"),
        (vec!["Origin, Accept-Encoding"], "Origin, Accept-Encoding"),
        (vec!["*"], "*"),
    ];
    for (vary, want) in cases {
        let mut h = vec![("content-type", "application/json"), ("etag", "W/\"x\"")];
        h.extend(vary.iter().map(|v| ("vary", *v)));
        let (parts, _) = collect(apply(response(200, &h, text(4096)), Some(Encoding::Gzip))).await;
        let got: Vec<_> = parts.headers.get_all("vary").iter().collect();
        assert_eq!(got, [want], "{vary:?}");
        assert_eq!(header(&parts.headers, "etag"), Some("W/\"x\""));
    }
}

/// Responses sent exactly as the machine sent them.
#[tokio::test]
async fn responses_that_do_not_qualify_are_untouched() {
    let big = text(8192);
    let cases: Vec<(u16, Vec<(&str, &str)>)> = vec![
        (204, vec![("content-type", "text/html")]),
        (304, vec![("content-type", "text/html")]),
        (206, vec![("content-type", "text/html")]),
        (
            200,
            vec![
                ("content-type", "text/html"),
                ("content-range", "bytes 0-1/9000"),
            ],
        ),
        (
            200,
            vec![("content-type", "text/html"), ("content-encoding", "br")],
        ),
        (
            200,
            vec![("content-type", "text/html"), ("content-encoding", "gzip")],
        ),
        (
            200,
            vec![
                ("content-type", "text/html"),
                ("cache-control", "public, No-Transform"),
            ],
        ),
        (200, vec![("content-type", "image/png")]),
        (200, vec![("content-type", "text/event-stream")]),
        (200, vec![]),
        (
            200,
            vec![("content-type", "text/html"), ("content-length", "1023")],
        ),
    ];
    for (status, headers) in cases {
        let (parts, body) = collect(apply(
            response(status, &headers, big.clone()),
            Some(Encoding::Gzip),
        ))
        .await;
        assert_eq!(parts.status.as_u16(), status);
        let want: HeaderMap = response(status, &headers, Bytes::new())
            .into_parts()
            .0
            .headers;
        assert_eq!(parts.headers, want, "{status} {headers:?}");
        assert_eq!(body, big, "{status} {headers:?}");
    }
    // A body known to be small, with no Content-Length header.
    let (parts, body) = collect(apply(
        response(200, &[("content-type", "text/html")], text(100)),
        Some(Encoding::Gzip),
    ))
    .await;
    assert!(parts.headers.get("content-encoding").is_none());
    assert_eq!(body, text(100));
    // A body that has ended already.
    let mut r = response(200, &[("content-type", "text/html")], Bytes::new());
    *r.body_mut() = ProxyBody::Full(None);
    let (parts, _) = collect(apply(r, Some(Encoding::Gzip))).await;
    assert!(parts.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn content_encoding_none_refuses_and_is_removed() {
    let r = response(
        200,
        &[("content-type", "text/html"), ("content-encoding", "none")],
        text(8192),
    );
    let (parts, body) = collect(apply(r, Some(Encoding::Br))).await;
    assert!(parts.headers.get("content-encoding").is_none());
    assert!(parts.headers.get("vary").is_none());
    assert_eq!(body, text(8192));
}

#[tokio::test]
async fn without_an_encoding_nothing_changes() {
    let headers = [
        ("content-type", "text/html"),
        ("content-encoding", "none"),
        ("content-length", "8192"),
    ];
    let (parts, body) = collect(apply(response(200, &headers, text(8192)), None)).await;
    let want = response(200, &headers, Bytes::new()).into_parts().0.headers;
    assert_eq!(parts.headers, want);
    assert_eq!(body, text(8192));
}

/// A machine's body played step by step: frames, and points where it has
/// nothing ready.
struct Script(VecDeque<Option<Frame<Bytes>>>);

impl Body for Script {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.0.pop_front() {
            Some(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(None) => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

fn poll(body: &mut Compressed<Script>) -> Poll<Option<Frame<Bytes>>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(body)
        .poll_frame(&mut cx)
        .map(|f| f.map(|f| f.unwrap()))
}

/// Each stretch of the body is decodable as soon as the machine pauses,
/// the stream ends with the body, and trailers come after it.
#[test]
fn a_streamed_body_is_sent_as_it_comes() {
    for enc in Encoding::PREFERENCE {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let script = Script(VecDeque::from([
            Some(Frame::data(Bytes::from_static(b"first part, "))),
            Some(Frame::data(Bytes::from_static(b"still the first. "))),
            None,
            None,
            Some(Frame::data(Bytes::from_static(b"second part."))),
            Some(Frame::trailers(trailers.clone())),
        ]));
        let mut body = Compressed::new(script, Encoder::new(enc).unwrap());
        let mut decoder = Incremental::new(enc);

        let Poll::Ready(Some(f)) = poll(&mut body) else {
            panic!("{enc:?}: the first part was held back");
        };
        let mut all = f.data_ref().unwrap().to_vec();
        decoder.feed(&all);
        assert_eq!(decoder.text(), "first part, still the first. ", "{enc:?}");
        // Nothing new from the machine: nothing to send.
        assert!(poll(&mut body).is_pending(), "{enc:?}");
        assert!(!body.is_end_stream());

        let mut rest = Vec::new();
        loop {
            match poll(&mut body) {
                Poll::Ready(Some(f)) if f.is_data() => rest.push(f.into_data().unwrap()),
                Poll::Ready(Some(f)) => {
                    assert_eq!(f.into_trailers().unwrap(), trailers, "{enc:?}");
                    break;
                }
                other => panic!("{enc:?}: {other:?} before the trailers"),
            }
        }
        assert!(body.is_end_stream(), "{enc:?}");
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        for chunk in rest {
            decoder.feed(&chunk);
            all.extend_from_slice(&chunk);
        }
        // One whole encoded stream, as a client reading it at once sees it.
        assert_eq!(
            decode(enc, &all),
            b"first part, still the first. second part.",
            "{enc:?}"
        );
        assert_eq!(
            decoder.finish(),
            "first part, still the first. second part.",
            "{enc:?}"
        );
    }
}

/// A long run of ready input is sent in batches, not held to the end.
#[test]
fn a_fast_long_body_is_sent_in_batches() {
    let frames = (0..64).map(|_| Some(Frame::data(text(16 * 1024))));
    let mut body = Compressed::new(
        Script(frames.collect()),
        Encoder::new(Encoding::Gzip).unwrap(),
    );
    let mut sent = 0;
    while let Poll::Ready(Some(f)) = poll(&mut body) {
        assert!(f.is_data());
        sent += 1;
    }
    assert!(body.is_end_stream());
    assert!(sent >= 8, "{sent} frames for 1 MiB");
}

/// Decodes an encoded stream chunk by chunk.
enum Incremental {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Incremental {
    fn new(enc: Encoding) -> Incremental {
        match enc {
            Encoding::Gzip => Incremental::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            Encoding::Deflate => Incremental::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            Encoding::Br => {
                Incremental::Br(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096)))
            }
            Encoding::Zstd => {
                Incremental::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap())
            }
        }
    }

    fn feed(&mut self, data: &[u8]) {
        use std::io::Write;
        let w: &mut dyn Write = match self {
            Incremental::Gzip(d) => d,
            Incremental::Deflate(d) => d,
            Incremental::Br(d) => &mut **d,
            Incremental::Zstd(d) => d,
        };
        w.write_all(data).unwrap();
        w.flush().unwrap();
    }

    fn text(&mut self) -> String {
        let out = match self {
            Incremental::Gzip(d) => d.get_ref(),
            Incremental::Deflate(d) => d.get_ref(),
            Incremental::Br(d) => d.get_ref(),
            Incremental::Zstd(d) => d.get_ref(),
        };
        String::from_utf8(out.clone()).unwrap()
    }

    /// Everything decoded; panics unless the stream was complete.
    fn finish(self) -> String {
        let out = match self {
            Incremental::Gzip(d) => d.finish().unwrap(),
            Incremental::Deflate(d) => d.finish().unwrap(),
            Incremental::Br(d) => d.into_inner().unwrap(),
            Incremental::Zstd(mut d) => {
                use std::io::Write;
                d.flush().unwrap();
                d.into_inner()
            }
        };
        String::from_utf8(out).unwrap()
    }
}
