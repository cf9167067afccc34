//! Response bodies sent from a shared buffer while holding their room in the buffer
//! budget.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use berth_app::BufferPermit;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// Bytes handed to the connection at a time: slices of the shared buffer, so a client
/// that reads slowly keeps the body (and its permit) alive until it has read it all.
const SLICE: usize = 64 << 10;

/// `content`, sent in slices, holding `permit` until the last slice is taken.
pub fn held_body(content: Bytes, permit: BufferPermit) -> Body {
    Body::new(HeldBody {
        rest: content,
        _permit: permit,
    })
}

struct HeldBody {
    rest: Bytes,
    _permit: BufferPermit,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(take)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}
