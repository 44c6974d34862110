//! Response compression (`http_options.compress`): the encoding a client
//! accepts ([`negotiate`], from its `Accept-Encoding`) and the machine's
//! response compressed into it as a stream ([`apply`]) when it is worth it
//! and the app did not opt out (`Content-Encoding` already set, `none` to
//! refuse, `Cache-Control: no-transform`).

mod accept;
mod encoder;
mod qualify;
mod stream;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response};

use crate::body::ProxyBody;

pub use accept::negotiate;
pub use stream::Compressed;

/// A content coding the proxy can produce, in its order of preference when
/// a client accepts several equally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Zstd,
    Br,
    Gzip,
    Deflate,
}

impl Encoding {
    /// Every encoding, the preferred first.
    pub const PREFERENCE: [Encoding; 4] = [
        Encoding::Zstd,
        Encoding::Br,
        Encoding::Gzip,
        Encoding::Deflate,
    ];

    /// The token in `Content-Encoding` / `Accept-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }
}

/// Bodies known to be smaller than this are sent as they are: the
/// encoding's framing would eat most of the gain.
pub const MIN_LENGTH: u64 = 1024;

/// The machine's response as the client gets it: compressed into `enc`
/// when there is one and the response qualifies (see the crate README),
/// else untouched, except that an app's `Content-Encoding: none` (its way
/// to refuse compression) is removed when `enc` is given.
pub fn apply(resp: Response<ProxyBody>, enc: Option<Encoding>) -> Response<ProxyBody> {
    let Some(enc) = enc else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    match qualify::check(parts.status, &parts.headers, &body) {
        qualify::Verdict::Compress => {}
        qualify::Verdict::Keep => return Response::from_parts(parts, body),
        qualify::Verdict::RefusedByApp => {
            parts.headers.remove(header::CONTENT_ENCODING);
            return Response::from_parts(parts, body);
        }
    }
    let encoder = match encoder::Encoder::new(enc) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("proxy: starting a {} encoder: {e}", enc.as_str());
            return Response::from_parts(parts, body);
        }
    };
    mark_encoded(&mut parts.headers, enc);
    let body = ProxyBody::Compressed(Box::new(Compressed::new(body, encoder)));
    Response::from_parts(parts, body)
}

/// The headers of a response whose body is now encoded with `enc`.
fn mark_encoded(h: &mut HeaderMap, enc: Encoding) {
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(enc.as_str()),
    );
    h.remove(header::CONTENT_LENGTH);
    // Byte ranges of the encoded body are not those of the original.
    h.remove(header::ACCEPT_RANGES);
    // Other encodings of the same resource differ in bytes: a strong
    // validator would claim otherwise.
    if let Some(tag) = h.get(header::ETAG)
        && tag.as_bytes().first() == Some(&b'"')
    {
        let mut weak = Vec::with_capacity(tag.len() + 2);
        weak.extend_from_slice(b"W/");
        weak.extend_from_slice(tag.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(&weak) {
            h.insert(header::ETAG, v);
        }
    }
    add_vary(h);
}

/// Adds `Accept-Encoding` to the response's `Vary` (one merged value),
/// unless it is there already or `Vary: *` covers it.
fn add_vary(h: &mut HeaderMap) {
    let mut merged = String::new();
    for v in h.get_all(header::VARY) {
        let Ok(v) = v.to_str() else { continue };
        if v.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.eq_ignore_ascii_case("accept-encoding"))
        {
            return;
        }
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        if !merged.is_empty() {
            merged.push_str(", ");
        }
        merged.push_str(v);
    }
    if merged.is_empty() {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        return;
    }
    merged.push_str(", Accept-Encoding");
    if let Ok(v) = HeaderValue::from_str(&merged) {
        h.insert(header::VARY, v);
    }
}

#[cfg(test)]
mod tests;
