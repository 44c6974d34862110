//! Which machine responses the proxy compresses: ones with a body, not
//! already encoded, not marked `no-transform`, of a type that compresses
//! (text, JSON, JavaScript, XML, SVG, WebAssembly, …) and not tiny.

use http::StatusCode;
use http::header::{self, HeaderMap};
use hyper::body::Body;

use super::MIN_LENGTH;
use crate::body::ProxyBody;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Compress,
    /// Sent as it is.
    Keep,
    /// The app said `Content-Encoding: none`: sent as it is, without that
    /// header.
    RefusedByApp,
}

pub fn check(status: StatusCode, h: &HeaderMap, body: &ProxyBody) -> Verdict {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        // A part's byte range is one of the unencoded representation.
        || status == StatusCode::PARTIAL_CONTENT
    {
        return Verdict::Keep;
    }
    if let Some(ce) = h.get(header::CONTENT_ENCODING) {
        if ce.as_bytes().eq_ignore_ascii_case(b"none") {
            return Verdict::RefusedByApp;
        }
        return Verdict::Keep;
    }
    if h.contains_key(header::CONTENT_RANGE) || no_transform(h) {
        return Verdict::Keep;
    }
    let compressible = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compressible_type);
    if !compressible || body.is_end_stream() {
        return Verdict::Keep;
    }
    let length = match h.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()),
        None => body.size_hint().exact(),
    };
    if length.is_some_and(|n| n < MIN_LENGTH) {
        return Verdict::Keep;
    }
    Verdict::Compress
}

/// `Cache-Control: no-transform` forbids changing the content coding.
fn no_transform(h: &HeaderMap) -> bool {
    h.get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
}

/// Whether a `Content-Type` names a media type worth compressing.
pub fn compressible_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    let sub = sub.trim();
    if kind.eq_ignore_ascii_case("text") {
        // Events are read as they come: leave their stream alone.
        return !sub.eq_ignore_ascii_case("event-stream");
    }
    let suffix = |s: &str| {
        sub.len() > s.len()
            && sub.is_char_boundary(sub.len() - s.len())
            && sub[sub.len() - s.len()..].eq_ignore_ascii_case(s)
    };
    if suffix("+json") || suffix("+xml") || suffix("+yaml") {
        return true;
    }
    let one_of = |list: &[&str]| list.iter().any(|s| sub.eq_ignore_ascii_case(s));
    if kind.eq_ignore_ascii_case("application") {
        return one_of(&[
            "json",
            "javascript",
            "x-javascript",
            "ecmascript",
            "xml",
            "wasm",
            "yaml",
            "x-yaml",
            "toml",
            "graphql",
            "x-ndjson",
            "x-sh",
            "x-httpd-php",
            "vnd.ms-fontobject",
            "x-font-ttf",
            "x-font-opentype",
            "x-web-app-manifest+json",
        ]);
    }
    if kind.eq_ignore_ascii_case("image") {
        return one_of(&["x-icon", "vnd.microsoft.icon", "bmp"]);
    }
    if kind.eq_ignore_ascii_case("font") {
        return one_of(&["ttf", "otf", "collection"]);
    }
    false
}
