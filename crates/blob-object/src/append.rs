//! Appending a request body to an upload: every full part's worth goes to the multipart
//! upload as a part, the rest to a chunk object, and a new state object names them all.
//! A part the body is known to fill (it declared its length) is streamed as its bytes
//! arrive where the backend allows it; any other is put once its bytes are all here.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use berth_blob::{AppendOutcome, BlobError, BodyLength, ByteStream};
use berth_oci::{ResumableHasher, UploadId};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::PutPayload;
use object_store::multipart::PartId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::bucket::{Bucket, View, storage};
use crate::finalize::finalize;
use crate::keys::{UploadKeys, new_chunk_name, state_name};
use crate::part_stream::{StreamedPart, e_tag_of};
use crate::state::{Chunk, Multipart, Part, SavedHash, UploadState};

/// Most parts a multipart upload may have (S3's limit).
const MAX_PARTS: usize = 10_000;

/// Parts being put at once by one append, while the next is received.
pub(crate) const PARTS_IN_FLIGHT: usize = 2;

/// Appends `body` to the upload at `offset` (see [`berth_blob::BlobStore::append_upload`]).
pub(crate) async fn append(
    bucket: &Arc<Bucket>,
    id: &UploadId,
    offset: u64,
    mut hasher: ResumableHasher,
    mut body: ByteStream,
    length: BodyLength,
) -> Result<AppendOutcome, BlobError> {
    let limit = length.limit();
    // An empty body touches nothing.
    let first = loop {
        match body.next().await {
            Some(Ok(frame)) if frame.is_empty() => continue,
            Some(Ok(frame)) => break frame,
            Some(Err(e)) => return Err(BlobError::Body(e)),
            None => return Ok(AppendOutcome { written: 0, hasher }),
        }
    };
    let up = bucket.keys.upload(id);
    let view = bucket.view(&up, offset).await?;
    // The acknowledged state was written by the append that computed the caller's hash
    // state; any other is not the upload the caller knows.
    if view.exact
        && view
            .state
            .hash
            .as_ref()
            .is_some_and(|h| *h != SavedHash::of(&hasher))
    {
        return Err(BlobError::UploadTruncated);
    }
    let base = match view.state.truncated(offset) {
        Some(base) => base,
        None => finalize(bucket, &up, view.state.clone())
            .await?
            .truncated(offset)
            .expect("a completed upload's bytes are all in readable chunks"),
    };
    if view.exact {
        forget_superseded(bucket, &up, &view.state);
    }
    let mut writer = PartWriter::new(bucket.clone(), up.clone(), base, length.declared());
    let received = match stream_body(&mut writer, &mut hasher, first, &mut body, limit).await {
        Ok(received) => received,
        Err(e) => {
            writer.abandon().await;
            return Err(e);
        }
    };
    let complete = |state: &mut UploadState| {
        if view.exact {
            state.superseded = superseded(&view, state);
        }
    };
    writer.finish(offset + received, &hasher, complete).await?;
    Ok(AppendOutcome {
        written: received,
        hasher,
    })
}

/// Deletes, in the background, the objects only the state before the acknowledged
/// `state` needed. No state the caller can name needs them, so the deletion may outlive
/// the append; one that fails leaves them to the upload's removal.
fn forget_superseded(bucket: &Arc<Bucket>, up: &UploadKeys, state: &UploadState) {
    if state.superseded.is_empty() {
        return;
    }
    let paths = state
        .superseded
        .iter()
        .map(|name| up.object(name))
        .collect();
    let bucket = bucket.clone();
    tokio::spawn(async move {
        if let Err(e) = bucket.delete_all(paths).await {
            tracing::debug!(error = %e, "could not delete superseded upload objects");
        }
    });
}

/// Feeds the body, from `first` on, to `writer`; returns the bytes received.
async fn stream_body(
    writer: &mut PartWriter,
    hasher: &mut ResumableHasher,
    first: Bytes,
    body: &mut ByteStream,
    limit: u64,
) -> Result<u64, BlobError> {
    let mut received = 0u64;
    let mut frame = first;
    loop {
        received += frame.len() as u64;
        if received > limit {
            return Err(BlobError::TooLarge);
        }
        hasher.update(&frame);
        writer.push(frame).await?;
        frame = match body.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(BlobError::Body(e)),
            None => return Ok(received),
        };
    }
}

/// Objects the acknowledged state `view` read that `next` does not, with `view`'s own
/// state object.
fn superseded(view: &View, next: &UploadState) -> Vec<String> {
    let mut gone = vec![state_name(view.state.offset)];
    for chunk in &view.state.chunks {
        if !next.needs(&chunk.name) && !gone.contains(&chunk.name) {
            gone.push(chunk.name.clone());
        }
    }
    gone
}

/// Turns an upload's staged bytes and a body into full parts, in order, and stages what
/// is left over.
///
/// It holds at most a part of body bytes not yet in a part (or the part being streamed),
/// and [`PARTS_IN_FLIGHT`] parts being put.
struct PartWriter {
    bucket: Arc<Bucket>,
    up: UploadKeys,
    multipart: Option<Multipart>,
    /// Parts being put, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Staged bytes not yet in a part, in order.
    carry: VecDeque<Chunk>,
    carry_len: u64,
    /// Body bytes not yet in a part, in order.
    pending: VecDeque<Bytes>,
    pending_len: u64,
    /// Body bytes still to come, when the body declared its length.
    to_come: Option<u64>,
    /// The part being streamed as its bytes arrive, if any.
    open: Option<OpenPart>,
}

/// A part being put.
struct InFlight {
    len: u64,
    /// The MD5 of its bytes, known before it is stored (a streamed part's, once its
    /// bytes are all sent): its entity tag to be.
    md5: Option<oneshot::Receiver<String>>,
    job: JoinHandle<object_store::Result<PartId>>,
}

/// A part whose request started before all its bytes were here.
struct OpenPart {
    index: usize,
    stream: StreamedPart,
    /// Its bytes so far, to put it whole should the stream fail.
    bytes: Vec<Bytes>,
    /// Bytes it still lacks.
    missing: u64,
}

impl PartWriter {
    fn new(bucket: Arc<Bucket>, up: UploadKeys, base: UploadState, declared: Option<u64>) -> Self {
        let carry_len = base.chunks.iter().map(|c| c.len).sum();
        PartWriter {
            bucket,
            up,
            multipart: base.multipart,
            in_flight: VecDeque::new(),
            carry: base.chunks.into(),
            carry_len,
            pending: VecDeque::new(),
            pending_len: 0,
            to_come: declared,
            open: None,
        }
    }

    fn part_size(&self) -> u64 {
        self.bucket.part_size as u64
    }

    /// Takes the next body bytes, putting every full part they complete and starting to
    /// stream every part the rest of the body is known to fill.
    async fn push(&mut self, frame: Bytes) -> Result<(), BlobError> {
        if let Some(to_come) = &mut self.to_come {
            *to_come = to_come.saturating_sub(frame.len() as u64);
        }
        self.pending_len += frame.len() as u64;
        self.pending.push_back(frame);
        loop {
            if self.open.is_some() {
                if !self.feed_open() {
                    return Ok(());
                }
                self.close_open();
            } else if self.will_fill_a_part() {
                self.open_part().await?;
            } else if self.carry_len + self.pending_len >= self.part_size() {
                self.put_part().await?;
            } else {
                return Ok(());
            }
        }
    }

    /// True when the staged bytes, the pending ones and those the body declared still to
    /// come fill a part, and it can be streamed (the streamer is asked last: it may let
    /// this part be the one that tries streaming again).
    fn will_fill_a_part(&self) -> bool {
        let fills = self
            .to_come
            .is_some_and(|c| self.carry_len + self.pending_len + c >= self.part_size());
        fills && self.bucket.streamer.as_ref().is_some_and(|s| s.enabled())
    }

    /// Starts streaming the next part, staged bytes first.
    async fn open_part(&mut self) -> Result<(), BlobError> {
        let streamer = self
            .bucket
            .streamer
            .clone()
            .expect("parts are streamed only with a streamer");
        let index = self.next_index().await?;
        let bytes = self.take_carry(self.part_size()).await?;
        let staged: u64 = bytes.iter().map(|b| b.len() as u64).sum();
        let stream = streamer.start(self.up.data(), self.multipart_id(), index, self.part_size());
        for piece in &bytes {
            stream.send(piece.clone());
        }
        self.open = Some(OpenPart {
            index,
            stream,
            bytes,
            missing: self.part_size() - staged,
        });
        Ok(())
    }

    /// Moves pending bytes into the open part; true once it has all its bytes.
    fn feed_open(&mut self) -> bool {
        let open = self.open.as_mut().expect("a part is open");
        let frames = take_frames(&mut self.pending, &mut self.pending_len, open.missing);
        for frame in frames {
            open.missing -= frame.len() as u64;
            open.stream.send(frame.clone());
            open.bytes.push(frame);
        }
        open.missing == 0
    }

    /// Ends the open part, which has all its bytes: it is in flight until its request
    /// answers, and put whole should that fail.
    fn close_open(&mut self) {
        let open = self.open.take().expect("a part is open");
        let streamer = self
            .bucket
            .streamer
            .clone()
            .expect("parts are streamed only with a streamer");
        let (client, path, id) = (
            self.bucket.writes.clone(),
            self.up.data(),
            self.multipart_id(),
        );
        let (md5, request) = open.stream.finish();
        let job = tokio::spawn(async move {
            let streamed = request.await;
            streamer.record(&streamed);
            match streamed {
                Ok(part) => Ok(part),
                Err(_) => {
                    let payload = PutPayload::from_iter(open.bytes);
                    client.put_part(&path, &id, open.index, payload).await
                }
            }
        });
        self.in_flight.push_back(InFlight {
            len: self.part_size(),
            md5: Some(md5),
            job,
        });
    }

    /// Puts the next part's worth, staged bytes first, as a part.
    async fn put_part(&mut self) -> Result<(), BlobError> {
        let index = self.next_index().await?;
        let mut payload = self.take_carry(self.part_size()).await?;
        let staged: u64 = payload.iter().map(|b| b.len() as u64).sum();
        let need = self.part_size() - staged;
        payload.extend(take_frames(&mut self.pending, &mut self.pending_len, need));
        let (client, path, id) = (
            self.bucket.writes.clone(),
            self.up.data(),
            self.multipart_id(),
        );
        let job = tokio::spawn(async move {
            client
                .put_part(&path, &id, index, PutPayload::from_iter(payload))
                .await
        });
        self.in_flight.push_back(InFlight {
            len: self.part_size(),
            md5: None,
            job,
        });
        Ok(())
    }

    /// The id of the multipart upload, once started.
    fn multipart_id(&self) -> String {
        self.multipart
            .as_ref()
            .expect("a part belongs to a multipart upload")
            .id
            .clone()
    }

    /// The index of the next part, once fewer than [`PARTS_IN_FLIGHT`] are being put,
    /// starting the multipart upload with the first.
    async fn next_index(&mut self) -> Result<usize, BlobError> {
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.settle_oldest().await?;
        }
        let multipart = match &mut self.multipart {
            Some(m) => m,
            None => self
                .multipart
                .insert(self.bucket.start_multipart(&self.up).await?),
        };
        let index = multipart.parts.len() + self.in_flight.len();
        if index >= MAX_PARTS {
            return Err(BlobError::Io(io::Error::other(format!(
                "an upload holds at most {MAX_PARTS} parts of {} bytes",
                self.bucket.part_size
            ))));
        }
        Ok(index)
    }

    /// Reads back up to `need` bytes of the staged chunks (which hold less than a part),
    /// oldest first, and drops them from the staged bytes.
    async fn take_carry(&mut self, mut need: u64) -> Result<Vec<Bytes>, BlobError> {
        let mut bytes = Vec::new();
        while need > 0
            && let Some(chunk) = self.carry.front_mut()
        {
            let take = chunk.len.min(need);
            let path = self.up.object(&chunk.name);
            bytes.extend(self.bucket.read_range(&path, chunk.start, take).await?);
            chunk.start += take;
            chunk.len -= take;
            self.carry_len -= take;
            need -= take;
            if chunk.len == 0 {
                self.carry.pop_front();
            }
        }
        Ok(bytes)
    }

    /// Waits for the oldest part in flight and records it.
    async fn settle_oldest(&mut self) -> Result<(), BlobError> {
        let Some(part) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let put = part
            .job
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?
            .map_err(storage)?;
        self.multipart
            .as_mut()
            .expect("parts in flight belong to a multipart upload")
            .parts
            .push(Part {
                id: put.content_id,
                len: part.len,
            });
        Ok(())
    }

    /// Waits for every part in flight and records them; should one fail, waits for the
    /// others all the same.
    async fn settle_all(&mut self) -> Result<(), BlobError> {
        while !self.in_flight.is_empty() {
            if let Err(e) = self.settle_oldest().await {
                self.stop().await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Cuts the open part short and waits for every part in flight, whatever its
    /// outcome: after this nothing of the append is still writing.
    async fn stop(&mut self) {
        if let Some(open) = self.open.take() {
            open.stream.abort().await;
        }
        for part in self.in_flight.drain(..) {
            let _ = part.job.await;
        }
    }

    /// The entity tags the parts in flight will have, once their bytes are all sent, when
    /// they were all streamed (and none failed before sending them all).
    async fn expected_e_tags(&mut self) -> Option<Vec<String>> {
        let mut expected = Vec::new();
        for part in &mut self.in_flight {
            let md5 = part.md5.take()?.await.ok()?;
            expected.push(e_tag_of(&md5));
        }
        Some(expected)
    }

    /// Gives the append up: nothing of it is still writing once this returns.
    async fn abandon(mut self) {
        self.stop().await;
    }

    /// Settles the parts in flight, stages what is left, and stores the upload's state
    /// at `offset`, made whole by `complete`. A part still open means the body ended
    /// before the length it declared.
    ///
    /// When the parts still in flight were all streamed, the entity tags they will have
    /// are known (the MD5s of their bytes), so the state is stored while their answers
    /// come: the append returns, and is acknowledged, only once both are stored. A part
    /// that ends with another entity tag (put again whole after its stream failed, or the
    /// same MD5 written otherwise by the store, as Aliyun OSS's upper case) has the state
    /// stored again. A state stored for parts that then failed is one no
    /// acknowledged offset names, as after any failed append.
    async fn finish(
        mut self,
        offset: u64,
        hasher: &ResumableHasher,
        complete: impl FnOnce(&mut UploadState),
    ) -> Result<(), BlobError> {
        if let Some(missing) = self.to_come.filter(|_| self.open.is_some()) {
            self.abandon().await;
            return Err(BlobError::Body(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the body ended {missing} bytes before the length it declared"),
            )));
        }
        let expected = self.expected_e_tags().await;
        if expected.is_none() {
            self.settle_all().await?;
        }
        if self.pending_len > 0 {
            match self.stage_rest().await {
                Ok(chunk) => self.carry.push_back(chunk),
                Err(e) => {
                    self.abandon().await;
                    return Err(e);
                }
            }
        }
        let mut state = UploadState {
            offset,
            hash: Some(SavedHash::of(hasher)),
            multipart: self.multipart.clone(),
            chunks: self.carry.iter().cloned().collect(),
            superseded: Vec::new(),
        };
        if let (Some(multipart), Some(expected)) = (&mut state.multipart, expected) {
            let lens = self.in_flight.iter().map(|p| p.len);
            multipart.parts.extend(
                expected
                    .into_iter()
                    .zip(lens)
                    .map(|(id, len)| Part { id, len }),
            );
        }
        complete(&mut state);
        let (bucket, up) = (self.bucket.clone(), self.up.clone());
        let (stored, settled) = tokio::join!(bucket.put_state(&up, &state), self.settle_all());
        settled?;
        stored?;
        if state.multipart != self.multipart {
            state.multipart = self.multipart;
            bucket.put_state(&up, &state).await?;
        }
        Ok(())
    }

    /// Writes the pending bytes as one new chunk object, together with the staged chunks
    /// at most twice their length before them. Each remaining chunk is then more than
    /// twice as long as the next, so an upload has at most about log2(part size) chunks,
    /// and a chunk rewritten grows by half at least, so a byte is rewritten at most
    /// about log1.5(part size) times however small the appends.
    async fn stage_rest(&mut self) -> Result<Chunk, BlobError> {
        let mut bytes = std::mem::take(&mut self.pending);
        let mut len = std::mem::take(&mut self.pending_len);
        while let Some(last) = self.carry.back()
            && last.len <= 2 * len
        {
            let last = self.carry.pop_back().expect("just looked at");
            self.carry_len -= last.len;
            let path = self.up.object(&last.name);
            let read = self.bucket.read_range(&path, last.start, last.len).await?;
            for piece in read.into_iter().rev() {
                bytes.push_front(piece);
            }
            len += last.len;
        }
        let name = new_chunk_name();
        let payload = PutPayload::from_iter(bytes);
        self.bucket.put(&self.up.object(&name), payload).await?;
        Ok(Chunk::whole(name, len))
    }
}

/// Takes frames off the front of `pending` (of `pending_len` bytes) up to `need` bytes,
/// splitting the last one taken if it holds more.
fn take_frames(pending: &mut VecDeque<Bytes>, pending_len: &mut u64, mut need: u64) -> Vec<Bytes> {
    let mut taken = Vec::new();
    while need > 0
        && let Some(mut frame) = pending.pop_front()
    {
        if frame.len() as u64 > need {
            pending.push_front(frame.split_off(need as usize));
        }
        need -= frame.len() as u64;
        *pending_len -= frame.len() as u64;
        taken.push(frame);
    }
    taken
}
