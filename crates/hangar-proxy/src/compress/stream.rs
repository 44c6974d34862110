//! A response body compressed as it streams: the machine's frames go
//! through the encoder as they arrive, and whatever they produced is sent
//! (flushed, so the client can decode it) as soon as the machine has no
//! more ready, so a long response arrives progressively. The wrapped body
//! (pooling the machine's connection and releasing its load unit when it
//! ends) is polled to its end as before; trailers follow the encoded data.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};

use super::encoder::Encoder;
use crate::body::ProxyBody;

/// Input compressed in one poll before its output is sent even though the
/// machine has more ready: bounds both the buffering and the time one
/// response holds its thread.
const BATCH: usize = 128 * 1024;

/// `B` is the machine's body ([`ProxyBody`]; another in tests).
pub struct Compressed<B = ProxyBody> {
    inner: B,
    /// None once the encoded stream has ended.
    encoder: Option<Encoder>,
    /// Written to the encoder since its last flush.
    unflushed: bool,
    /// The machine's trailers, sent after the encoded stream's end.
    trailers: Option<HeaderMap>,
}

impl<B> Compressed<B> {
    pub(super) fn new(inner: B, encoder: Encoder) -> Compressed<B> {
        Compressed {
            inner,
            encoder: Some(encoder),
            unflushed: false,
            trailers: None,
        }
    }

    /// The encoder failed (it writes to memory, so only a bug gets here):
    /// the body ends where it is and the client's decoder sees the stream
    /// cut short.
    fn broken(&mut self, e: &std::io::Error) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        tracing::warn!("proxy: compressing a response: {e}");
        self.encoder = None;
        self.trailers = None;
        Poll::Ready(None)
    }
}

impl<B> Body for Compressed<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(encoder) = this.encoder.as_mut() else {
            return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
        };
        let mut taken = 0;
        loop {
            if this.inner.is_end_stream() {
                return this.finish_with_pending();
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        if let Err(e) = encoder.write(&data) {
                            return this.broken(&e);
                        }
                        this.unflushed = true;
                        taken += data.len();
                        if taken >= BATCH {
                            break;
                        }
                    }
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        return this.finish_with_pending();
                    }
                },
                Poll::Ready(None) => return this.finish_with_pending(),
                // The machine's response failed: so does the client's.
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => break,
            }
        }
        // Nothing more ready (or a batch's worth): send what there is.
        if this.unflushed {
            this.unflushed = false;
            if let Err(e) = encoder.flush() {
                return this.broken(&e);
            }
        }
        if encoder.pending() == 0 {
            // Only reached with the machine's body pending: it wakes us.
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok(Frame::data(encoder.take()))))
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl<B> Compressed<B> {
    /// The machine's body has ended: what the encoder still holds and the
    /// end of the encoded stream, in one frame.
    fn finish_with_pending(&mut self) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(encoder) = self.encoder.take() else {
            return Poll::Ready(None);
        };
        // `finish` returns everything not taken yet, then the end.
        match encoder.finish() {
            Ok(last) if !last.is_empty() => Poll::Ready(Some(Ok(Frame::data(last)))),
            Ok(_) => Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            Err(e) => self.broken(&e),
        }
    }
}
