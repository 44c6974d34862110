//! Protocol upgrades through the `http` handler: an HTTP/1.1 `Upgrade`
//! (WebSocket or any other protocol) or HTTP/2's extended CONNECT (RFC 8441,
//! `:protocol`). Either reaches the machine as an HTTP/1.1 upgrade; once the
//! machine answers `101 Switching Protocols`, the client gets its own
//! protocol's answer (101 on HTTP/1.1, 200 on HTTP/2) and the proxy relays
//! bytes both ways until either side closes.

use std::hash::{BuildHasher, Hasher};

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::ProxyBody;
use crate::catalog::Group;
use crate::live::Held;

static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
static SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// A client's request to switch protocols.
#[derive(Debug)]
pub struct Asked {
    protocol: HeaderValue,
    /// An HTTP/2 extended CONNECT (else an HTTP/1.1 `Upgrade`).
    h2: bool,
}

/// What a request asks to switch to, if anything: `Upgrade` with
/// `Connection: upgrade` on HTTP/1.1, or a CONNECT with a `:protocol` on
/// HTTP/2.
pub fn asked(req: &Request<Incoming>) -> Option<Asked> {
    match req.version() {
        Version::HTTP_11 => {
            let asks = req
                .headers()
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
            let protocol = req.headers().get(header::UPGRADE).filter(|_| asks)?;
            Some(Asked {
                protocol: protocol.clone(),
                h2: false,
            })
        }
        Version::HTTP_2 if req.method() == Method::CONNECT => {
            let p = req.extensions().get::<hyper::ext::Protocol>()?;
            Some(Asked {
                protocol: HeaderValue::from_str(p.as_str()).ok()?,
                h2: true,
            })
        }
        _ => None,
    }
}

/// The client's side of an upgrade the machine has been asked for.
pub struct ClientSide {
    on: OnUpgrade,
    h2: bool,
}

/// Turns a request already prepared for the machine (origin-form, HTTP/1.1,
/// forwarding headers) into an HTTP/1.1 upgrade request, and takes the
/// client's side of the upgrade. An HTTP/2 WebSocket CONNECT carries no
/// `Sec-WebSocket-Key` (RFC 8441): the machine's WebSocket server gets a
/// fresh one, and version 13 when the client named none.
pub fn to_machine(req: &mut Request<Incoming>, asked: Asked) -> ClientSide {
    if asked.h2 {
        *req.method_mut() = Method::GET;
        if asked.protocol.as_bytes().eq_ignore_ascii_case(b"websocket") {
            let h = req.headers_mut();
            if !h.contains_key(&SEC_WEBSOCKET_KEY) {
                h.insert(SEC_WEBSOCKET_KEY.clone(), websocket_key());
            }
            if !h.contains_key(&SEC_WEBSOCKET_VERSION) {
                h.insert(
                    SEC_WEBSOCKET_VERSION.clone(),
                    HeaderValue::from_static("13"),
                );
            }
        }
    }
    let h = req.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, asked.protocol);
    ClientSide {
        on: hyper::upgrade::on(req),
        h2: asked.h2,
    }
}

/// The client's answer to the machine's `101`, and the relay between the two
/// upgraded connections (holding `unit` of the machine's load while open).
/// `headers` are the machine's, hop-by-hop ones already removed.
pub fn switch(
    machine: OnUpgrade,
    mut parts: http::response::Parts,
    protocol: Option<HeaderValue>,
    group: &Group,
    client: ClientSide,
    unit: Held,
) -> Response<ProxyBody> {
    group.response_headers.apply(&mut parts.headers);
    if client.h2 {
        // An accepted extended CONNECT is a 200, with no upgrade headers.
        parts.status = StatusCode::OK;
        parts.headers.remove(&SEC_WEBSOCKET_ACCEPT);
        parts.headers.remove(header::CONTENT_LENGTH);
    } else {
        if let Some(protocol) = protocol {
            parts.headers.insert(header::UPGRADE, protocol);
        }
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    tokio::spawn(relay(client.on, machine, unit));
    Response::from_parts(parts, ProxyBody::text(""))
}

/// Copies bytes both ways between the client's upgraded connection (or
/// HTTP/2 stream) and the machine's until one side closes.
async fn relay(client: OnUpgrade, machine: OnUpgrade, unit: Held) {
    match tokio::try_join!(client, machine) {
        Ok((client, machine)) => {
            let (mut client, mut machine) = (TokioIo::new(client), TokioIo::new(machine));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut machine).await {
                tracing::debug!(machine = %unit.live().id, "proxy: upgraded connection: {e}");
            }
        }
        Err(e) => {
            tracing::debug!(machine = %unit.live().id, "proxy: upgrade: {e}");
        }
    }
    drop(unit);
}

/// A `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 4.1). The
/// bytes come from the standard library's randomly keyed hasher.
fn websocket_key() -> HeaderValue {
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(crate::clock::now_ms());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    HeaderValue::from_str(&base64(&bytes)).expect("base64 is a valid header value")
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (raw, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), want);
        }
    }

    #[test]
    fn websocket_keys_are_16_bytes_and_differ() {
        let (a, b) = (websocket_key(), websocket_key());
        assert_eq!(a.len(), 24);
        assert!(a.to_str().unwrap().ends_with("=="));
        assert_ne!(a, b);
    }
}
