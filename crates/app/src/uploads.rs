//! Blob uploads: sessions, chunks, completion, mounts.

use std::net::IpAddr;
use std::sync::Arc;

use berth_blob::{BlobError, BodyLength, ByteStream};
use berth_meta::{
    PinOutcome, QuotaExceeded, SessionLimits, UploadAdvance, UploadPin, UploadSession,
};
use berth_oci::{
    Algorithm, ContentRange, Digest, RepositoryName, ResumableHasher, UploadId, UploadRef,
};

use crate::error::RegistryError;
use crate::metered_body::metered;
use crate::opened_uploads::{UNRECORDED_BODY_MAX, UploadState};
use crate::registry::{MountOutcome, Registry};
use crate::upload_claims::{ClaimLost, SessionClaim};
use crate::upload_limits::{OpenBytesExhausted, OpenBytesReading, Reservation};

/// The body of a `PATCH` or final `PUT` on an upload, with its framing headers.
pub struct UploadBody {
    /// The bytes.
    pub stream: ByteStream,
    /// `Content-Length`, when the client sent one.
    pub content_length: Option<u64>,
    /// `Content-Range`, when the client sent one.
    pub content_range: Option<ContentRange>,
    /// The client's address, for the limit on bodies one client streams at once.
    pub client: Option<IpAddr>,
}

impl UploadBody {
    /// True when the request certainly carries no bytes.
    fn is_empty(&self) -> bool {
        self.content_length == Some(0)
    }

    /// True when the body is a whole blob small enough to complete a session before the
    /// session has a record: some bytes, at most [`UNRECORDED_BODY_MAX`], of a declared
    /// length, with no range.
    pub(crate) fn completes_in_one_go(&self) -> bool {
        self.content_range.is_none()
            && self
                .content_length
                .is_some_and(|len| (1..=UNRECORDED_BODY_MAX).contains(&len))
    }
}

/// What an append wrote.
pub(crate) struct Appended {
    /// The hash state after the appended bytes.
    pub(crate) hasher: ResumableHasher,
    /// The upload's new length.
    pub(crate) end: u64,
    /// The appended bytes' place in the budget for open uploads.
    pub(crate) reservation: Reservation,
}

impl Registry {
    /// Opens an upload session (`POST /v2/<name>/blobs/uploads/`). A session hashed
    /// with SHA-256 is recorded by its first request (see [`crate::opened_uploads`]);
    /// one hashed otherwise is recorded now, with its algorithm.
    pub async fn start_upload(
        &self,
        repository: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadState, RegistryError> {
        if algorithm == Algorithm::Sha256 {
            return Ok(self.open_unrecorded(repository));
        }
        let session = self
            .open_session(repository, algorithm, self.limits.sessions())
            .await?;
        Ok(UploadState {
            url: UploadRef::recorded(session.id.clone()),
            session,
        })
    }

    /// Records a new session, within `limits`, and creates its byte area.
    async fn open_session(
        &self,
        repository: &RepositoryName,
        algorithm: Algorithm,
        limits: SessionLimits,
    ) -> Result<UploadSession, RegistryError> {
        let now = self.clock.now_ms();
        let session = UploadSession {
            id: UploadId::from_random(rand::random()),
            repository: repository.clone(),
            algorithm,
            offset: 0,
            hash_state: ResumableHasher::new(algorithm).save(),
            verified_by: Some(self.instance),
            verified_digest: None,
            created_at: now,
            updated_at: now,
        };
        // The store checks the limits on open sessions as it records this one, so a
        // refused session never touches the blob store.
        self.meta.create_upload(&session, limits).await?;
        if let Err(e) = self.blobs.create_upload(&session.id).await {
            let _ = self.meta.delete_upload(&session.id, now).await;
            return Err(e.into());
        }
        Ok(session)
    }

    /// Stores a whole blob sent with `POST ?digest=` in one request.
    pub async fn upload_monolithic(
        self: &Arc<Self>,
        repository: &RepositoryName,
        digest: &Digest,
        body: UploadBody,
    ) -> Result<(), RegistryError> {
        if body.content_range.is_some() {
            return Err(RegistryError::BlobUploadInvalid(
                "Content-Range is not allowed on a monolithic upload".into(),
            ));
        }
        if body.completes_in_one_go() {
            let opened = self.open_unrecorded(repository);
            let opened_at = opened.session.created_at;
            return self
                .complete_unrecorded(repository, &opened.url.id, opened_at, digest, body)
                .await;
        }
        // A session, so that its bytes are claimed and never purged while they arrive,
        // on this node or another. The limits on open sessions bound sessions left
        // between requests; this one lives only as long as its request, which holds a
        // body slot, so they do not apply.
        let session = self
            .open_session(repository, digest.algorithm(), SessionLimits::NONE)
            .await?;
        let completed = self
            .complete_recorded(repository, &session.id, digest.clone(), body)
            .await;
        if completed.is_err() {
            let _ = self
                .cancel_upload(repository, &UploadRef::recorded(session.id))
                .await;
        }
        completed.map(drop)
    }

    /// Links a blob from another repository (`POST ?mount=&from=`), or opens a session
    /// when the blob cannot be mounted from there. The caller has checked that the
    /// source may be read.
    pub async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<MountOutcome, RegistryError> {
        let size = match from {
            Some(source) => self.meta.linked_blob(source, digest).await?,
            None => None,
        };
        if let Some(size) = size {
            self.check_blob_quota(repository, digest, size).await?;
        }
        let found = size.is_some();
        // A blob marked for deletion or deleted since it was found is not linked: the
        // client uploads it instead.
        let mounted = found
            && (self.meta)
                .mount_blob(repository, digest, self.clock.now_ms())
                .await?;
        if mounted {
            return Ok(MountOutcome::Mounted);
        }
        Ok(MountOutcome::Started(Box::new(
            self.start_upload(repository, digest.algorithm()).await?,
        )))
    }

    /// Some repositories (at most 100) holding the blob, candidates for a mount
    /// without `from`.
    pub async fn blob_repositories(
        &self,
        digest: &Digest,
    ) -> Result<Vec<RepositoryName>, RegistryError> {
        Ok(self.meta.blob_repositories(digest, 100).await?)
    }

    /// Where an upload stands (`GET` on the upload URL).
    pub async fn upload_status(
        &self,
        repository: &RepositoryName,
        url: &UploadRef,
    ) -> Result<UploadState, RegistryError> {
        match self.meta.upload(&url.id).await? {
            Some(session) if &session.repository == repository => Ok(UploadState {
                url: UploadRef::recorded(session.id.clone()),
                session,
            }),
            Some(_) => Err(RegistryError::BlobUploadUnknown),
            None => self.unrecorded_status(repository, url).await,
        }
    }

    /// Appends a chunk (`PATCH`); returns the session at its new offset.
    ///
    /// The append runs in a task of its own, under the session's claim, to its end: a
    /// client that disconnects cannot leave a write running while another request, on
    /// this node or another, proceeds on the same session.
    pub async fn append_chunk(
        self: &Arc<Self>,
        repository: &RepositoryName,
        url: &UploadRef,
        body: UploadBody,
    ) -> Result<UploadState, RegistryError> {
        if let Some(opened_at) = self.may_record(url, repository) {
            self.record_opened(repository, &url.id, opened_at, self.limits.sessions())
                .await?;
        }
        let (this, repository, id) = (self.clone(), repository.clone(), url.id.clone());
        let session = self
            .detached(async move {
                let claim = this.claim_session(&id).await?;
                let result = async {
                    let session = Self::of_repository(&claim, &repository)?;
                    this.ensure_area(&session).await?;
                    this.append_to_session(session, body, &claim).await
                }
                .await;
                claim.release().await;
                result
            })
            .await?;
        Ok(UploadState {
            url: UploadRef::recorded(session.id.clone()),
            session,
        })
    }

    /// Finishes an upload (`PUT ?digest=`), with an optional last chunk.
    ///
    /// Idempotent: when an earlier attempt published the bytes but was cut before
    /// linking them, a retry links the published blob.
    pub async fn complete_upload(
        self: &Arc<Self>,
        repository: &RepositoryName,
        url: &UploadRef,
        digest: Option<&str>,
        body: UploadBody,
    ) -> Result<Digest, RegistryError> {
        let digest = digest
            .ok_or_else(|| {
                RegistryError::DigestInvalid("the digest query parameter is required".into())
            })
            .and_then(|d| {
                Digest::parse(d).map_err(|e| RegistryError::DigestInvalid(e.to_string()))
            })?;
        let whole = body.completes_in_one_go();
        if let Some(opened_at) = self.completes_unrecorded(url, repository, whole).await? {
            self.complete_unrecorded(repository, &url.id, opened_at, &digest, body)
                .await?;
            return Ok(digest);
        }
        if let Some(opened_at) = self.may_record(url, repository) {
            // The session lives on only if this request fails, as after a chunk.
            self.record_opened(repository, &url.id, opened_at, self.limits.sessions())
                .await?;
        }
        self.complete_recorded(repository, &url.id, digest, body)
            .await
    }

    /// Finishes an upload that has a record, with an optional last chunk.
    async fn complete_recorded(
        self: &Arc<Self>,
        repository: &RepositoryName,
        id: &UploadId,
        digest: Digest,
        body: UploadBody,
    ) -> Result<Digest, RegistryError> {
        let (this, repository, id) = (self.clone(), repository.clone(), id.clone());
        self.detached(async move {
            let claim = this.claim_session(&id).await?;
            let result = async {
                let session = Self::of_repository(&claim, &repository)?;
                this.ensure_area(&session).await?;
                let last_chunk = if body.is_empty() {
                    Unrecorded::Nothing(session)
                } else {
                    Unrecorded::Chunk(this.write_to_session(session, body, &claim).await?)
                };
                this.finish_session(last_chunk, &digest).await
            }
            .await;
            match result {
                Ok(()) => claim.ended(),
                Err(_) => claim.release().await,
            }
            result.map(|()| digest)
        })
        .await
    }

    /// Abandons an upload (`DELETE` on the upload URL). A session the URL opened and
    /// that has no record ends all the same.
    ///
    /// Such a session is recorded first and then claimed, as any other: a request
    /// completing it in one go (which records it claimed) on this node or another either
    /// finds the id ended, or holds the claim until it is done, so that the id is never
    /// reported ended while that request publishes its bytes and links them.
    pub async fn cancel_upload(
        self: &Arc<Self>,
        repository: &RepositoryName,
        url: &UploadRef,
    ) -> Result<(), RegistryError> {
        let opened_at = self.may_record(url, repository);
        let (this, repository, id) = (self.clone(), repository.clone(), url.id.clone());
        self.detached(async move {
            let claim = match (this.claim_session(&id).await, opened_at) {
                (Err(RegistryError::BlobUploadUnknown), Some(opened_at)) => {
                    // Only to end it: the limits on open sessions do not apply. An id
                    // ended meanwhile is left as it is, and the claim finds it gone.
                    this.record_opened(&repository, &id, opened_at, SessionLimits::NONE)
                        .await?;
                    this.claim_session(&id).await?
                }
                (claim, _) => claim?,
            };
            let found = Self::of_repository(&claim, &repository).map(drop);
            if found.is_ok() {
                this.discard(&id).await;
            }
            claim.release().await;
            found
        })
        .await
    }

    /// Removes sessions idle for longer than the configured age, and stray upload bytes
    /// with no session; returns how many uploads were removed.
    ///
    /// An upload with a request in flight, on this node or another, is in use whatever
    /// its age: it is skipped without waiting for it, and each session is checked again
    /// once it is claimed.
    pub async fn purge_stale_uploads(&self) -> Result<usize, RegistryError> {
        let cutoff = self.clock.now_ms() - self.config.upload_max_age.as_millis() as i64;
        (self.meta)
            .purge_ended_uploads(self.ended_ids_expire_before())
            .await?;
        let mut purged = 0;
        for id in self.meta.stale_uploads(cutoff).await? {
            let Some(claim) = self.try_claim_session(&id).await? else {
                continue;
            };
            if claim.session.updated_at < cutoff {
                self.discard(&id).await;
                purged += 1;
            }
            claim.release().await;
        }
        for (id, modified) in self.blobs.list_uploads().await? {
            let modified_ms = modified
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            if modified_ms >= cutoff {
                continue;
            }
            let Some(_lock) = self.upload_locks.try_lock(&id) else {
                continue;
            };
            if self.meta.upload(&id).await?.is_none() {
                self.blobs.delete_upload(&id).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Runs `work` in a task of its own, so it completes even if the caller is dropped.
    pub(crate) async fn detached<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, RegistryError>> + Send + 'static,
    ) -> Result<T, RegistryError> {
        tokio::spawn(work)
            .await
            .map_err(|e| RegistryError::Internal(format!("upload task failed: {e}")))?
    }

    /// Checks the session's bytes (with its last chunk, still to be recorded) against
    /// `digest`, publishes them and links the blob.
    ///
    /// Every check of the bytes comes before the pin, which would revive a blob of that
    /// digest marked for deletion: naming a digest without its bytes keeps no blob from
    /// collection.
    async fn finish_session(
        &self,
        last_chunk: Unrecorded,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let hashed = Self::restore_hasher(last_chunk.session())?;
        // The stored hash state speaks for the bytes the client sent when it was computed
        // with the algorithm the client now names.
        let hashed_alike = hashed.algorithm() == digest.algorithm();
        if hashed_alike && let Err(e) = self.verify(&hashed.finish(), digest) {
            self.discard(&last_chunk.session().id).await;
            return Err(e);
        }
        let checked = self
            .check_at_rest(last_chunk.session(), digest, hashed_alike)
            .await?;
        let session = self.pin_digest(last_chunk, digest).await?;
        let session = &session;
        if checked == AtRest::Hashed
            && !self
                .meta
                .record_upload_digest(&session.id, session.offset, digest)
                .await?
        {
            return Err(RegistryError::BlobUploadUnknown);
        }
        let published = match checked {
            AtRest::Gone => Published::Gone,
            AtRest::Vouched | AtRest::Hashed => self.publish(session, digest).await?,
        };
        if let Published::Gone = published {
            // The bytes are gone from the upload area: an earlier attempt published them
            // and was cut before linking (a session that vouches for none was refused
            // before its pin). The blob published under the digest holds the session's
            // bytes only if it has the session's size.
            if self.blobs.size(digest).await? != Some(session.offset) {
                self.discard(&session.id).await;
                return Err(RegistryError::UploadLost);
            }
        }
        self.meta
            .complete_upload(
                &session.id,
                &session.repository,
                digest,
                session.offset,
                self.clock.now_ms(),
            )
            .await?;
        Ok(())
    }

    /// Checks that the session's bytes, as they are at rest, hash to `digest`, unless
    /// the session's hash state speaks for them: bytes this process wrote and hashed with
    /// the digest's algorithm (`hashed_alike`, already checked against the digest) and
    /// bytes any process wrote to a store whose appends are durable once acknowledged.
    /// Any others, written before a restart or by several processes, or hashed with
    /// another algorithm, are hashed again. The session's claim is held throughout, so
    /// nothing writes to the bytes between this check and their publishing.
    ///
    /// Bytes found gone from the upload area (an earlier attempt published them and was
    /// cut before linking) are [`AtRest::Gone`] only if the session vouches for the
    /// digest — its stored hash state matched it, or its bytes at rest were found to hash
    /// to it before that attempt published them —; otherwise the session is ended as
    /// lost: knowing a digest is never enough to have a blob linked.
    async fn check_at_rest(
        &self,
        session: &UploadSession,
        digest: &Digest,
        hashed_alike: bool,
    ) -> Result<AtRest, RegistryError> {
        let hashed_here = session.verified_by == Some(self.instance);
        if hashed_alike && (hashed_here || self.blobs.appends_are_durable()) {
            return Ok(AtRest::Vouched);
        }
        let computed = match (self.blobs)
            .hash_upload(&session.id, session.offset, digest.algorithm())
            .await
        {
            Ok(computed) => computed,
            Err(BlobError::NotFound)
                if hashed_alike || session.verified_digest.as_ref() == Some(digest) =>
            {
                return Ok(AtRest::Gone);
            }
            Err(BlobError::NotFound) => {
                self.discard(&session.id).await;
                return Err(RegistryError::UploadLost);
            }
            Err(e) => return Err(self.refuse_commit(&session.id, e).await),
        };
        if &computed != digest {
            self.discard(&session.id).await;
            // When the stored hash matched the digest, the bytes at rest were lost or
            // altered after they were acknowledged.
            return Err(if hashed_alike {
                RegistryError::UploadLost
            } else {
                RegistryError::DigestInvalid(format!("content hashes to {computed}, not {digest}"))
            });
        }
        Ok(AtRest::Hashed)
    }

    /// Pins `digest` in the session before its bytes are published, so that garbage
    /// collection does not delete a blob of that digest meanwhile, recording the last
    /// chunk in the same step; returns the session as recorded. A blob of the digest
    /// marked for deletion is revived: a sweep under way restores what it retired, and
    /// the session's own bytes are published unless the blob's are there. A collection
    /// cut between marking and sweeping, or a store refusing deletions, thus holds up
    /// no push.
    ///
    /// An upload its project's quota refuses (the pin checks it) changes nothing: it is
    /// not pinned, no blob is revived, and its bytes go with its session.
    async fn pin_digest(
        &self,
        last_chunk: Unrecorded,
        digest: &Digest,
    ) -> Result<UploadSession, RegistryError> {
        let (session, append, reservation) = match last_chunk {
            Unrecorded::Nothing(session) => (session, None, None),
            Unrecorded::Chunk(written) => (
                written.session,
                Some(written.advance),
                Some(written.reservation),
            ),
        };
        let pin = UploadPin {
            id: session.id.clone(),
            repository: session.repository.clone(),
            digest: digest.clone(),
            append,
        };
        let pinned = self.meta.pin_upload_digest(&pin).await?;
        match pinned.outcome {
            PinOutcome::Pinned => {}
            PinOutcome::Revived => {
                tracing::info!(%digest, "a completing upload revived a blob marked for deletion");
            }
            // Taken and Linked answer only the pin of a new session.
            PinOutcome::NoSession | PinOutcome::Taken | PinOutcome::Linked => {
                return Err(RegistryError::BlobUploadUnknown);
            }
            PinOutcome::Moved => {
                return Err(RegistryError::UploadRangeInvalid {
                    offset: pin.append.map_or(session.offset, |a| a.from),
                });
            }
            PinOutcome::OverQuota => {
                self.discard(&session.id).await;
                return Err(over_quota(pinned.refusal));
            }
        }
        if let Some(reservation) = reservation {
            reservation.stored();
        }
        Ok(session)
    }

    /// Publishes the session's bytes, checked by [`Self::check_at_rest`], as `digest`,
    /// unless they are gone from the upload area.
    async fn publish(
        &self,
        session: &UploadSession,
        digest: &Digest,
    ) -> Result<Published, RegistryError> {
        match self
            .blobs
            .commit_upload(&session.id, session.offset, digest)
            .await
        {
            Ok(_) => Ok(Published::Done),
            Err(BlobError::NotFound) => Ok(Published::Gone),
            Err(e) => Err(self.refuse_commit(&session.id, e).await),
        }
    }

    /// Maps a failure to hash or publish an upload to the client's answer, ending the
    /// session when its bytes can no longer be completed (and keeping it when a retry may
    /// succeed).
    async fn refuse_commit(&self, id: &UploadId, e: BlobError) -> RegistryError {
        let final_error = match e {
            BlobError::UploadTruncated => Some(RegistryError::UploadLost),
            BlobError::SyncFailed(ref cause) => Some(RegistryError::Internal(format!(
                "flushing the upload failed ({cause}); start the upload again"
            ))),
            _ => None,
        };
        match final_error {
            Some(err) => {
                self.discard(id).await;
                err
            }
            None => e.into(),
        }
    }

    /// The claimed session, if it belongs to `repository` (an upload URL names both).
    fn of_repository(
        claim: &SessionClaim<'_>,
        repository: &RepositoryName,
    ) -> Result<UploadSession, RegistryError> {
        if &claim.session.repository == repository {
            Ok(claim.session.clone())
        } else {
            Err(RegistryError::BlobUploadUnknown)
        }
    }

    fn restore_hasher(session: &UploadSession) -> Result<ResumableHasher, RegistryError> {
        ResumableHasher::restore(session.algorithm, &session.hash_state)
            .map_err(|e| RegistryError::Internal(format!("upload {}: {e}", session.id)))
    }

    /// Writes `body` to the session and records it there; returns the session at its
    /// new offset.
    async fn append_to_session(
        &self,
        session: UploadSession,
        body: UploadBody,
        claim: &SessionClaim<'_>,
    ) -> Result<UploadSession, RegistryError> {
        let written = self.write_to_session(session, body, claim).await?;
        if !self
            .meta
            .advance_upload(&written.session.id, &written.advance)
            .await?
        {
            return Err(RegistryError::UploadRangeInvalid {
                offset: written.advance.from,
            });
        }
        written.reservation.stored();
        Ok(written.session)
    }

    /// Writes `body` to the session's bytes, under its claim; returns the chunk, still
    /// to be recorded in the store.
    async fn write_to_session(
        &self,
        mut session: UploadSession,
        body: UploadBody,
        claim: &SessionClaim<'_>,
    ) -> Result<WrittenChunk, RegistryError> {
        let body = UploadBody {
            stream: claim.fence(body.stream),
            ..body
        };
        if let Some(range) = body.content_range {
            if range.0.start != session.offset {
                return Err(RegistryError::UploadRangeInvalid {
                    offset: session.offset,
                });
            }
            if body.content_length.is_some_and(|len| len != range.0.len()) {
                return Err(RegistryError::SizeInvalid(
                    "Content-Length differs from the Content-Range length".into(),
                ));
            }
        }
        let hasher = Self::restore_hasher(&session)?;
        let appended = match self
            .append(&session.id, session.offset, hasher, body, claim.open_bytes)
            .await
        {
            Err(RegistryError::UploadLost) => {
                // The bytes at rest are shorter than acknowledged (lost in a crash).
                self.discard(&session.id).await;
                return Err(RegistryError::UploadLost);
            }
            other => other?,
        };
        let advance = UploadAdvance {
            from: session.offset,
            to: appended.end,
            hash_state: appended.hasher.save(),
            writer: self.instance,
            now: self.clock.now_ms(),
        };
        session.offset = advance.to;
        session.hash_state = advance.hash_state.clone();
        session.updated_at = advance.now;
        Ok(WrittenChunk {
            session,
            advance,
            reservation: appended.reservation,
        })
    }

    /// Writes `body` at `offset`; returns the hash state and the new end offset, and the
    /// bytes set aside for them in the budget for open uploads, to hold until the new
    /// offset is stored.
    pub(crate) async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: ResumableHasher,
        body: UploadBody,
        open_bytes: OpenBytesReading,
    ) -> Result<Appended, RegistryError> {
        let expected = body
            .content_range
            .map(|r| r.0.len())
            .or(body.content_length);
        let room = self.config.max_blob_bytes.saturating_sub(offset);
        if expected.is_some_and(|e| e > room) {
            return Err(RegistryError::TooLarge(
                "blob exceeds the allowed size".into(),
            ));
        }
        let _slot = self.limits.body_slot(body.client).await?;
        let reservation = self.limits.reserve_bytes(open_bytes, expected)?;
        let stream = match expected {
            Some(_) => body.stream,
            None => metered(body.stream, reservation.clone()),
        };
        let length = match expected {
            Some(e) => BodyLength::Declared(e),
            None => BodyLength::AtMost(room),
        };
        let outcome = match (
            self.blobs
                .append_upload(id, offset, hasher, stream, length)
                .await,
            expected,
        ) {
            // With a declared length within the room, the limit was that length: the body
            // is longer than it said, which is a size mismatch, not an oversized blob.
            (Err(BlobError::TooLarge), Some(e)) => {
                return Err(RegistryError::SizeInvalid(format!(
                    "received more than the {e} bytes declared"
                )));
            }
            (Err(BlobError::TooLarge), None) => {
                return Err(RegistryError::TooLarge(
                    "blob exceeds the allowed size".into(),
                ));
            }
            (Err(BlobError::Body(e)), _)
                if e.get_ref().is_some_and(|e| e.is::<OpenBytesExhausted>()) =>
            {
                return Err(RegistryError::TooManyRequests(e.to_string()));
            }
            (Err(BlobError::Body(e)), _) if e.get_ref().is_some_and(|e| e.is::<ClaimLost>()) => {
                return Err(RegistryError::BlobUploadInvalid(e.to_string()));
            }
            // A body that ends early or stalls is shorter than it said.
            (Err(BlobError::Body(e)), Some(declared)) => {
                return Err(RegistryError::SizeInvalid(format!(
                    "the body ended before the {declared} bytes declared: {e}"
                )));
            }
            // The upload's bytes at rest are shorter than acknowledged, or gone.
            (Err(BlobError::UploadTruncated | BlobError::NotFound), _) => {
                return Err(RegistryError::UploadLost);
            }
            (other, _) => other?,
        };
        if let Some(e) = expected
            && outcome.written != e
        {
            return Err(RegistryError::SizeInvalid(format!(
                "received {} bytes, expected {e}",
                outcome.written
            )));
        }
        Ok(Appended {
            hasher: outcome.hasher,
            end: offset + outcome.written,
            reservation,
        })
    }

    pub(crate) fn verify(&self, computed: &Digest, claimed: &Digest) -> Result<(), RegistryError> {
        if computed == claimed {
            Ok(())
        } else {
            Err(RegistryError::DigestInvalid(format!(
                "content hashes to {computed}, not {claimed}"
            )))
        }
    }

    /// Ends session `id` and discards its bytes.
    pub(crate) async fn discard(&self, id: &UploadId) {
        if let Err(e) = self.meta.delete_upload(id, self.clock.now_ms()).await {
            tracing::warn!(upload = %id, error = %e, "could not delete upload session");
        }
        if let Err(e) = self.blobs.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %e, "could not delete upload bytes");
        }
    }
}

/// The refusal of a blob the store found over its project's quota (`refusal`: why).
pub(crate) fn over_quota(refusal: Option<QuotaExceeded>) -> RegistryError {
    match refusal {
        Some(refusal) => RegistryError::QuotaExceeded(refusal),
        None => RegistryError::Internal(
            "the store refused a blob over its project's quota without saying why".into(),
        ),
    }
}

/// A session with the bytes a request wrote to it and has not recorded in the store.
enum Unrecorded {
    /// The request wrote nothing.
    Nothing(UploadSession),
    /// The request wrote a chunk.
    Chunk(WrittenChunk),
}

impl Unrecorded {
    /// The session as it stands with the request's chunk.
    fn session(&self) -> &UploadSession {
        match self {
            Unrecorded::Nothing(session) => session,
            Unrecorded::Chunk(written) => &written.session,
        }
    }
}

/// A chunk written to a session's bytes, to record in the store.
struct WrittenChunk {
    /// The session as it stands with the chunk.
    session: UploadSession,
    /// The session's move over the chunk.
    advance: UploadAdvance,
    /// The chunk's place in the budget for open uploads, held until it is recorded.
    reservation: Reservation,
}

/// What checking a session's bytes at rest found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtRest {
    /// The session's hash state speaks for them.
    Vouched,
    /// They were hashed again, and hash to the digest.
    Hashed,
    /// They are gone from the upload area, and the session vouches for the digest.
    Gone,
}

/// What publishing a session's bytes did.
enum Published {
    /// The bytes are now the blob, or the blob was already present.
    Done,
    /// The bytes were no longer in the upload area.
    Gone,
}
