//! Objects written by streaming bytes through this process into a multipart upload,
//! which only its completing request makes visible: blobs past what one server-side copy
//! moves, as they are published, retired or restored. An upload that fails, or whose
//! caller stops waiting for it, is aborted, so that no parts are left behind.

use std::io;
use std::sync::Arc;

use berth_blob::{BlobError, Moved};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{MultipartId, PutPayload, PutPayloadMut};
use tokio::task::JoinSet;

use crate::append::PARTS_IN_FLIGHT;
use crate::backend::Client;
use crate::bucket::{Bucket, storage};

/// The bytes of one source of a streamed copy.
pub(crate) type Source = BoxStream<'static, io::Result<Bytes>>;

/// Streams the bytes of `sources`, opened one after the other, into a multipart upload
/// at `to` (which replaces any object there once completed): a part of the bucket's
/// part size at a time, [`PARTS_IN_FLIGHT`] of them put while the next is read. Tells
/// `moved` of each piece once it is handed on; returns the bytes written.
pub(crate) async fn stream_to(
    bucket: &Bucket,
    to: &Path,
    sources: impl Stream<Item = Result<Source, BlobError>>,
    moved: Moved<'_>,
) -> Result<u64, BlobError> {
    let id = bucket.writes.create_multipart(to).await.map_err(storage)?;
    let mut upload = Upload {
        client: bucket.writes.clone(),
        path: to.clone(),
        id: Some(id),
        in_flight: JoinSet::new(),
        put: Vec::new(),
    };
    let (mut buffer, mut written) = (PutPayloadMut::new(), 0u64);
    let mut sources = std::pin::pin!(sources);
    while let Some(source) = sources.next().await {
        let mut source = source?;
        while let Some(piece) = source.next().await {
            let mut piece = piece.map_err(BlobError::Io)?;
            let len = piece.len() as u64;
            while !piece.is_empty() {
                let room = bucket.part_size - buffer.content_length();
                buffer.push(piece.split_to(room.min(piece.len())));
                if buffer.content_length() == bucket.part_size {
                    upload.put(std::mem::take(&mut buffer).freeze()).await?;
                }
            }
            written += len;
            moved(len);
        }
    }
    // An upload has at least one part, if only an empty one.
    if !buffer.is_empty() || upload.parts() == 0 {
        upload.put(buffer.freeze()).await?;
    }
    upload.complete().await?;
    Ok(written)
}

/// A multipart upload under way, aborted if it is dropped before it completed.
struct Upload {
    client: Arc<dyn Client>,
    path: Path,
    /// The upload's id; `None` once it completed.
    id: Option<MultipartId>,
    /// Parts being put, each answering its index and its id.
    in_flight: JoinSet<object_store::Result<(usize, PartId)>>,
    /// Parts put, by index.
    put: Vec<(usize, PartId)>,
}

impl Upload {
    /// Parts started so far.
    fn parts(&self) -> usize {
        self.put.len() + self.in_flight.len()
    }

    /// Starts putting `part` as the next part, once fewer than [`PARTS_IN_FLIGHT`] are
    /// being put.
    async fn put(&mut self, part: PutPayload) -> Result<(), BlobError> {
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.join_one().await?;
        }
        let index = self.parts();
        let (client, path) = (self.client.clone(), self.path.clone());
        let id = self.id.clone().expect("parts are put before completion");
        self.in_flight.spawn(async move {
            let part = client.put_part(&path, &id, index, part).await?;
            Ok((index, part))
        });
        Ok(())
    }

    /// Waits for one part being put.
    async fn join_one(&mut self) -> Result<(), BlobError> {
        if let Some(joined) = self.in_flight.join_next().await {
            let put = joined.map_err(|e| BlobError::Io(io::Error::other(e)))?;
            self.put.push(put.map_err(storage)?);
        }
        Ok(())
    }

    /// Waits for every part, then completes the upload.
    async fn complete(mut self) -> Result<(), BlobError> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let mut put = std::mem::take(&mut self.put);
        put.sort_by_key(|(index, _)| *index);
        let parts = put.into_iter().map(|(_, part)| part).collect();
        let id = self.id.clone().expect("an upload completes once");
        (self.client)
            .complete_multipart(&self.path, &id, parts)
            .await
            .map_err(storage)?;
        self.id = None;
        Ok(())
    }
}

impl Drop for Upload {
    /// Aborts an upload that did not complete, in a task of its own once its parts in
    /// flight have stopped (a part landing after the abort would be left behind).
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(path = %self.path, "a multipart upload left unaborted: no runtime");
            return;
        };
        let mut in_flight = std::mem::take(&mut self.in_flight);
        let (client, path) = (self.client.clone(), self.path.clone());
        runtime.spawn(async move {
            in_flight.abort_all();
            while in_flight.join_next().await.is_some() {}
            if let Err(e) = client.abort_multipart(&path, &id).await {
                tracing::warn!(%path, error = %e, "could not abort a multipart upload");
            }
        });
    }
}
