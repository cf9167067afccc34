//! Upload bodies whose length was not declared, counted as they stream against the
//! budget for bytes in open uploads (a declared length is set aside up front instead).

use std::io;

use berth_blob::ByteStream;
use futures_util::StreamExt;

use crate::upload_limits::Reservation;

/// `body`, with every frame set aside in `reservation` before it is passed on; a frame
/// the budget has no room for fails the body with `OpenBytesExhausted`. The reservation
/// is held until the stream is dropped, which the store does only once its writes are
/// done.
pub(crate) fn metered(body: ByteStream, reservation: Reservation) -> ByteStream {
    Box::pin(body.map(move |frame| {
        let frame = frame?;
        reservation
            .grow(frame.len() as u64)
            .map_err(io::Error::other)?;
        Ok(frame)
    }))
}
