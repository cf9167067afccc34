//! Response bodies that hold their room in the buffer budget until they are sent: slices
//! of a shared buffer, or a stream of chunks.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Frame, SizeHint};

/// Bytes handed to the connection at a time: slices of the shared buffer, so a client
/// that reads slowly keeps the body (and its permit) alive until it has read it all.
const SLICE: usize = 64 << 10;

/// `content`, sent in slices, holding `room` (its place in the buffer budget) until the
/// last slice is taken.
pub fn held_body<R: Send + Sync + Unpin + 'static>(content: Bytes, room: R) -> Body {
    Body::new(HeldBody {
        rest: content,
        _room: room,
    })
}

struct HeldBody<R> {
    rest: Bytes,
    _room: R,
}

impl<R: Send + Sync + Unpin + 'static> http_body::Body for HeldBody<R> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = this.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(Frame::data(this.rest.split_to(take)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// `chunks`, holding `room` (their place in the buffer budget) until the stream ends.
pub fn held_stream<S, R>(chunks: S, room: R) -> Body
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    R: Send + Sync + Unpin + 'static,
{
    Body::from_stream(HeldStream {
        chunks,
        _room: room,
    })
}

struct HeldStream<S, R> {
    chunks: S,
    _room: R,
}

impl<S: Stream + Unpin, R: Unpin> Stream for HeldStream<S, R> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().chunks).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}
