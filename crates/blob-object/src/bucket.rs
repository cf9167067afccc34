//! The operations the store composes: states, chunks, multipart markers and ranges, on
//! the backend's clients.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use berth_blob::BlobError;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, PutPayload};

use crate::backend::Client;
use crate::keys::{Keys, UploadKeys, is_marker, new_marker_name, state_offset};
use crate::part_stream::PartStreamer;
use crate::read::IdleTimeout;
use crate::state::{Multipart, UploadState};
use crate::state_cache::StateCache;

/// Longest a streamed read may wait for its next bytes.
pub(crate) const READ_IDLE: Duration = Duration::from_secs(60);

/// The store's backend and layout.
pub(crate) struct Bucket {
    /// Requests with a deadline: metadata, parts, copies, small reads.
    pub writes: Arc<dyn Client>,
    /// Streamed reads, which last as long as their reader reads.
    pub reads: Arc<dyn Client>,
    /// Where objects live.
    pub keys: Keys,
    /// Bytes in each full part.
    pub part_size: usize,
    /// The largest object one server-side copy moves; larger ones are streamed.
    pub copy_limit: u64,
    /// Puts parts while their bytes arrive, where the backend allows it (S3).
    pub streamer: Option<Arc<PartStreamer>>,
    /// The state objects this process wrote last.
    pub states: StateCache,
}

/// An upload's stored state at or after an offset asked for.
pub(crate) struct View {
    /// The state, as stored.
    pub state: UploadState,
    /// True when the state was stored at the offset asked for, which the caller
    /// acknowledged: it is the state of the append that was acknowledged.
    pub exact: bool,
}

/// A backend failure, as the port reports it.
pub(crate) fn storage(e: object_store::Error) -> BlobError {
    BlobError::Io(io::Error::other(e))
}

/// True for a backend's "no such object" (or multipart upload).
pub(crate) fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Bucket {
    /// The state stored at `offset` and holding at least its bytes: the one stored at
    /// `offset` itself, or else the first stored after it (of an append never
    /// acknowledged, whose bytes past `offset` do not count). `NotFound` when the upload
    /// has no objects, `UploadTruncated` when it has none that far.
    pub(crate) async fn view(&self, up: &UploadKeys, offset: u64) -> Result<View, BlobError> {
        if let Some(state) = self.state(up, offset).await? {
            return Ok(View { state, exact: true });
        }
        let objects = self.objects(up).await?;
        if objects.is_empty() {
            return Err(BlobError::NotFound);
        }
        let later = objects
            .iter()
            .filter_map(|o| state_offset(o.location.filename()?))
            .filter(|&o| o > offset)
            .min()
            .ok_or(BlobError::UploadTruncated)?;
        let state = self
            .state(up, later)
            .await?
            .ok_or(BlobError::UploadTruncated)?;
        Ok(View {
            state,
            exact: false,
        })
    }

    /// The state stored at `offset`, if any. When this process wrote the last state of
    /// the upload at `offset`, the store is only asked whether the object is still that
    /// one (`If-None-Match` its entity tag), and a `304` answer is taken from memory.
    pub(crate) async fn state(
        &self,
        up: &UploadKeys,
        offset: u64,
    ) -> Result<Option<UploadState>, BlobError> {
        let remembered = self.states.recall(up, offset);
        let options = GetOptions {
            if_none_match: remembered.as_ref().map(|(_, e_tag)| e_tag.clone()),
            ..GetOptions::default()
        };
        let stored = match self.writes.get_opts(&up.state(offset), options).await {
            Ok(result) => result.bytes().await.map_err(storage)?,
            Err(object_store::Error::NotModified { .. }) if remembered.is_some() => {
                return Ok(remembered.map(|(state, _)| state));
            }
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let state = UploadState::from_bytes(&stored)
            .map_err(|e| BlobError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(Some(state))
    }

    /// Stores `state` under its offset.
    pub(crate) async fn put_state(
        &self,
        up: &UploadKeys,
        state: &UploadState,
    ) -> Result<(), BlobError> {
        let payload = PutPayload::from(state.to_bytes());
        let stored = self
            .writes
            .put(&up.state(state.offset), payload)
            .await
            .map_err(storage)?;
        self.states.remember(up, state, stored.e_tag);
        Ok(())
    }

    /// Writes (or replaces) the object at `path`.
    pub(crate) async fn put(&self, path: &Path, payload: PutPayload) -> Result<(), BlobError> {
        self.writes
            .put(path, payload)
            .await
            .map(drop)
            .map_err(storage)
    }

    /// Size of the object at `path`, or `None` when there is none.
    pub(crate) async fn size(&self, path: &Path) -> Result<Option<u64>, BlobError> {
        match self.writes.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(storage(e)),
        }
    }

    /// Every object of an upload.
    pub(crate) async fn objects(&self, up: &UploadKeys) -> Result<Vec<ObjectMeta>, BlobError> {
        self.writes
            .list(Some(up.dir()))
            .try_collect()
            .await
            .map_err(storage)
    }

    /// Whether any object of the upload is stored (one page of a listing at most).
    pub(crate) async fn has_objects(&self, up: &UploadKeys) -> Result<bool, BlobError> {
        let mut listing = self.writes.list(Some(up.dir()));
        Ok(listing.try_next().await.map_err(storage)?.is_some())
    }

    /// Bytes `start..start + len` of the object at `path`, read into memory (for at most
    /// a part's worth). An object shorter than that is `UploadTruncated`.
    pub(crate) async fn read_range(
        &self,
        path: &Path,
        start: u64,
        len: u64,
    ) -> Result<Vec<Bytes>, BlobError> {
        let mut out = Vec::new();
        let mut stream = self.open_range(&*self.writes, path, start, len).await?;
        while let Some(bytes) = stream.next().await {
            out.push(bytes.map_err(BlobError::Io)?);
        }
        Ok(out)
    }

    /// The object at `path`, or the `range` of it, opened for a streamed read: its bytes
    /// and their count. `NotFound` when there is none; a store that does not answer
    /// within [`READ_IDLE`] fails with `TimedOut`.
    pub(crate) async fn open_read(
        &self,
        path: &Path,
        range: Option<GetRange>,
    ) -> Result<(BoxStream<'static, io::Result<Bytes>>, u64), BlobError> {
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let result = match tokio::time::timeout(READ_IDLE, self.reads.get_opts(path, options)).await
        {
            Err(_) => {
                let silent = "the object store did not answer";
                return Err(BlobError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    silent,
                )));
            }
            Ok(Err(e)) if is_not_found(&e) => return Err(BlobError::NotFound),
            Ok(result) => result.map_err(storage)?,
        };
        let len = result.range.end - result.range.start;
        Ok((
            IdleTimeout::new(result.into_stream(), READ_IDLE).boxed(),
            len,
        ))
    }

    /// Bytes `start..start + len` of the object at `path`, streamed; a stream that ends
    /// early fails with `UploadTruncated`.
    pub(crate) async fn stream_range(
        &self,
        path: &Path,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, BlobError> {
        self.open_range(&*self.reads, path, start, len).await
    }

    async fn open_range(
        &self,
        client: &dyn Client,
        path: &Path,
        start: u64,
        len: u64,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, BlobError> {
        if len == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let result = match client.get_opts(path, options).await {
            Ok(result) => result,
            Err(e) if is_not_found(&e) => return Err(BlobError::UploadTruncated),
            Err(e) => return Err(storage(e)),
        };
        if result.range.end - result.range.start != len {
            return Err(BlobError::UploadTruncated);
        }
        Ok(IdleTimeout::new(result.into_stream(), READ_IDLE).boxed())
    }

    /// Starts a multipart upload into the upload's `data` object, recording its id in
    /// a marker object before any part is put, so that whoever ends the upload can abort
    /// it.
    pub(crate) async fn start_multipart(&self, up: &UploadKeys) -> Result<Multipart, BlobError> {
        let id = self
            .writes
            .create_multipart(&up.data())
            .await
            .map_err(storage)?;
        let marker = new_marker_name();
        let payload = PutPayload::from(id.clone().into_bytes());
        self.put(&up.object(&marker), payload).await?;
        Ok(Multipart {
            id,
            marker,
            parts: Vec::new(),
        })
    }

    /// Removes everything of an upload: aborts its multipart uploads, then deletes its
    /// objects, its states last (while one remains, the upload is still listed for the
    /// purge).
    pub(crate) async fn remove_upload(&self, up: &UploadKeys) -> Result<(), BlobError> {
        self.states.forget(up);
        let objects = self.objects(up).await?;
        for marker in objects
            .iter()
            .filter(|o| o.location.filename().is_some_and(is_marker))
        {
            self.abort_marked(up, &marker.location).await?;
        }
        let (states, others): (Vec<Path>, Vec<Path>) = objects
            .into_iter()
            .map(|o| o.location)
            .partition(|p| p.filename().and_then(state_offset).is_some());
        self.delete_all(others).await?;
        self.delete_all(states).await
    }

    /// Aborts the multipart upload a marker names. A refusal is only logged: the upload
    /// may have been completed by a call cut short before it removed the marker (some
    /// servers then answer "access denied" rather than "no such upload"), and the
    /// objects must go all the same; parts of an upload that really could not be aborted
    /// are left to the bucket's lifecycle rule.
    async fn abort_marked(&self, up: &UploadKeys, marker: &Path) -> Result<(), BlobError> {
        let id = match self.writes.get(marker).await {
            Ok(result) => result.bytes().await.map_err(storage)?,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(storage(e)),
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        match self.writes.abort_multipart(&up.data(), &id).await {
            Err(e) if !is_not_found(&e) => {
                tracing::warn!(upload = %up.dir(), error = %e, "could not abort a multipart upload");
            }
            _ => {}
        }
        Ok(())
    }

    /// Deletes objects (absent ones are no error).
    pub(crate) async fn delete_all(&self, paths: Vec<Path>) -> Result<(), BlobError> {
        if paths.is_empty() {
            return Ok(());
        }
        let locations = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut deleted = self.writes.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Err(e) if !is_not_found(&e) => return Err(storage(e)),
                _ => {}
            }
        }
        Ok(())
    }
}
