//! Completing an upload's multipart upload, so that all its bytes can be read (parts of
//! an incomplete multipart upload cannot be) or copied.

use berth_blob::BlobError;
use object_store::PutPayload;
use object_store::multipart::PartId;

use crate::bucket::{Bucket, View, is_not_found, storage};
use crate::keys::{DATA, UploadKeys};
use crate::state::{Chunk, UploadState};

/// `state` with its staged chunks put as the last part and its multipart upload completed
/// into the `data` object, stored in place of `state`. A state without a multipart
/// upload is returned as it is.
pub(crate) async fn finalize(
    bucket: &Bucket,
    up: &UploadKeys,
    state: UploadState,
) -> Result<UploadState, BlobError> {
    let Some(multipart) = &state.multipart else {
        return Ok(state);
    };
    let data = up.data();
    let mut parts: Vec<PartId> = multipart
        .parts
        .iter()
        .map(|p| PartId {
            content_id: p.id.clone(),
        })
        .collect();
    // The chunks hold less than a part, so they are read into memory.
    let mut tail = Vec::new();
    for chunk in &state.chunks {
        let path = up.object(&chunk.name);
        tail.extend(bucket.read_range(&path, chunk.start, chunk.len).await?);
    }
    if !tail.is_empty() {
        let last = bucket
            .writes
            .put_part(
                &data,
                &multipart.id,
                parts.len(),
                PutPayload::from_iter(tail),
            )
            .await
            .map_err(storage)?;
        parts.push(last);
    }
    match bucket
        .writes
        .complete_multipart(&data, &multipart.id, parts)
        .await
    {
        Ok(_) => {}
        // Completed before, by a call cut short before it stored the new state.
        Err(e) if is_not_found(&e) => {
            if bucket.size(&data).await? != Some(state.offset) {
                return Err(BlobError::UploadTruncated);
            }
        }
        Err(e) => return Err(storage(e)),
    }
    let mut superseded: Vec<String> = state
        .superseded
        .iter()
        .filter(|name| *name != DATA)
        .cloned()
        .collect();
    superseded.extend(state.chunks.iter().map(|c| c.name.clone()));
    let done = UploadState {
        offset: state.offset,
        hash: state.hash,
        multipart: None,
        chunks: vec![Chunk::whole(DATA.to_owned(), state.offset)],
        superseded,
    };
    bucket.put_state(up, &done).await?;
    // Nothing is left to abort.
    bucket
        .delete_all(vec![up.object(&multipart.marker)])
        .await?;
    Ok(done)
}

/// The objects holding the first `len` bytes of the upload `view` shows, readable in
/// order (its multipart upload completed first if it has one).
pub(crate) async fn readable(
    bucket: &Bucket,
    up: &UploadKeys,
    view: View,
    len: u64,
) -> Result<Vec<Chunk>, BlobError> {
    let state = finalize(bucket, up, view.state).await?;
    Ok(state
        .truncated(len)
        .expect("a completed upload's bytes are all in readable chunks")
        .chunks)
}
