//! The response body the proxy sends: a machine's response streamed through
//! (its upstream connection goes back to the pool and its load unit is given
//! back when the body ends), or a short body of the proxy's own, either of
//! them possibly compressed on the way.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::live::{Held, Live};

pub enum ProxyBody {
    Full(Option<Bytes>),
    Upstream {
        inner: Incoming,
        /// The connection to pool once the body has ended.
        sender: Option<(SendRequest<Incoming>, Arc<Live>)>,
        guard: Option<Held>,
    },
    /// Another body compressed as it streams (`http_options.compress`).
    Compressed(Box<crate::compress::Compressed>),
}

impl ProxyBody {
    pub fn text(s: &'static str) -> ProxyBody {
        ProxyBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }

    /// `sender` is the HTTP/1.1 connection to pool when the body ends (none
    /// for HTTP/2, whose connection is shared).
    pub fn upstream(
        inner: Incoming,
        sender: Option<SendRequest<Incoming>>,
        live: Arc<Live>,
        guard: Held,
    ) -> ProxyBody {
        if inner.is_end_stream() {
            if let Some(sender) = sender {
                live.checkin(sender);
            }
            drop(guard);
            return ProxyBody::Upstream {
                inner,
                sender: None,
                guard: None,
            };
        }
        ProxyBody::Upstream {
            inner,
            sender: sender.map(|s| (s, live)),
            guard: Some(guard),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream {
                inner,
                sender,
                guard,
            } => {
                let r = Pin::new(&mut *inner).poll_frame(cx);
                match &r {
                    Poll::Ready(None) => {
                        if let Some((s, live)) = sender.take() {
                            live.checkin(s);
                        }
                        guard.take();
                    }
                    Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => {
                        if let Some((s, live)) = sender.take() {
                            live.checkin(s);
                        }
                        guard.take();
                    }
                    Poll::Ready(Some(Err(_))) => {
                        sender.take();
                        guard.take();
                    }
                    _ => {}
                }
                r
            }
            ProxyBody::Compressed(c) => Pin::new(&mut **c).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
            ProxyBody::Compressed(c) => c.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
            ProxyBody::Compressed(c) => c.size_hint(),
        }
    }
}
