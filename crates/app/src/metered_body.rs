//! Upload bodies counted as they stream, against the limits that bound what uploads in
//! progress may hold: bytes in open uploads (for a body whose length was not declared,
//! so could not be set aside up front) and memory.
//!
//! The memory a body's writes may buffer is charged to the buffer budget only once the
//! body has sent [`STREAMING_AFTER`] bytes: a client that sends a byte and stalls holds
//! no more than that byte, so it must not hold the room of a whole write pipeline, or a
//! few hundred such clients would lock every other request out of the budget.

use std::io;

use berth_blob::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::buffer_budget::{BufferBudget, BufferPermit};
use crate::upload_limits::Reservation;

/// Bytes a body sends before its write buffers are charged to the memory budget.
const STREAMING_AFTER: u64 = 64 << 10;

/// What a body is counted against.
pub(crate) struct Meter {
    /// The body's bytes in open uploads, when they must be counted as they arrive.
    pub(crate) open_bytes: Option<Reservation>,
    /// The memory budget, and how much the store buffers for one streaming body.
    pub(crate) memory: (BufferBudget, usize),
    /// The room held once the body streams.
    held: Option<BufferPermit>,
    received: u64,
}

/// A limit a body ran into while it streamed; the client may retry later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LimitReached(pub(crate) String);

impl Meter {
    /// A meter over `open_bytes` (when counted as they arrive) and `memory`.
    pub(crate) fn new(open_bytes: Option<Reservation>, memory: (BufferBudget, usize)) -> Self {
        Meter {
            open_bytes,
            memory,
            held: None,
            received: 0,
        }
    }

    async fn count(&mut self, frame: &Bytes) -> Result<(), LimitReached> {
        self.received += frame.len() as u64;
        if let Some(reservation) = &self.open_bytes {
            reservation
                .grow(frame.len() as u64)
                .map_err(|e| LimitReached(e.to_string()))?;
        }
        if self.held.is_none() && self.received >= STREAMING_AFTER {
            let (budget, bytes) = &self.memory;
            let permit = budget
                .reserve(*bytes)
                .await
                .map_err(|e| LimitReached(e.to_string()))?;
            self.held = Some(permit);
        }
        Ok(())
    }
}

/// `body`, with every frame counted by `meter` before it is passed on; a frame that runs
/// into a limit fails the body with [`LimitReached`]. The meter's room is held until the
/// stream is dropped, which the store does only once its writes are done.
pub(crate) fn metered(body: ByteStream, meter: Meter) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        (body, meter),
        |(mut body, mut meter)| async move {
            let item = match body.next().await? {
                Ok(frame) => match meter.count(&frame).await {
                    Ok(()) => Ok(frame),
                    Err(limit) => Err(io::Error::other(limit)),
                },
                Err(e) => Err(e),
            };
            Some((item, (body, meter)))
        },
    ))
}
