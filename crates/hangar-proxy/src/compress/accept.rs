//! `Accept-Encoding` (RFC 9110 §12.5.3): which of the proxy's encodings a
//! client takes, by q-value, `*` and `identity`, without allocating.

use http::Method;
use http::header::{self, HeaderMap};

use super::Encoding;

/// The encoding to compress the response to this request with: the one the
/// client weighs highest among those the proxy supports (ties go to
/// zstd, then br, gzip, deflate). None for a HEAD request (no body), a
/// CONNECT (a tunnel, e.g. a WebSocket over HTTP/2), without
/// `Accept-Encoding`, when it accepts none of them (`q=0` refuses one,
/// `*` stands for those it does not name), or when it weighs `identity`
/// above all of them.
pub fn negotiate(method: &Method, headers: &HeaderMap) -> Option<Encoding> {
    if method == Method::HEAD || method == Method::CONNECT {
        return None;
    }
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    values.peek()?;
    let mut weights = Weights::default();
    for v in values {
        // A value that is not visible ASCII names nothing we know.
        if let Ok(v) = v.to_str() {
            weights.read(v);
        }
    }
    weights.choose()
}

/// Q-values in thousandths, as the client listed them.
#[derive(Default, Debug)]
struct Weights {
    /// One per [`Encoding::PREFERENCE`] entry.
    named: [Option<u16>; 4],
    star: Option<u16>,
    identity: Option<u16>,
}

impl Weights {
    /// Reads one header value: `gzip, br;q=0.8, *;q=0`.
    fn read(&mut self, value: &str) {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(v.trim());
                }
            }
            // A malformed weight: the entry says nothing usable.
            let Some(q) = q else { continue };
            let slot = if name == "*" {
                &mut self.star
            } else if name.eq_ignore_ascii_case("identity") {
                &mut self.identity
            } else if let Some(i) = index_of(name) {
                &mut self.named[i]
            } else {
                continue;
            };
            // Listed twice: the higher weight stands.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }

    fn choose(&self) -> Option<Encoding> {
        let mut best: Option<(Encoding, u16)> = None;
        for (i, enc) in Encoding::PREFERENCE.into_iter().enumerate() {
            let q = self.named[i].or(self.star).unwrap_or(0);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((enc, q));
            }
        }
        let (enc, q) = best?;
        match self.identity {
            Some(identity) if identity > q => None,
            _ => Some(enc),
        }
    }
}

/// Where `name` is in [`Encoding::PREFERENCE`] (`x-gzip` is gzip).
fn index_of(name: &str) -> Option<usize> {
    let enc = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
        Encoding::Gzip
    } else if name.eq_ignore_ascii_case("br") {
        Encoding::Br
    } else if name.eq_ignore_ascii_case("zstd") {
        Encoding::Zstd
    } else if name.eq_ignore_ascii_case("deflate") {
        Encoding::Deflate
    } else {
        return None;
    };
    Encoding::PREFERENCE.iter().position(|e| *e == enc)
}

/// A qvalue in thousandths: `0`, `0.5`, `0.125`, `1`, `1.000`; None when
/// it is not one (more than three decimals, above 1, not a number).
pub(super) fn parse_q(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}
