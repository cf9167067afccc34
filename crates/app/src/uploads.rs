//! Blob uploads: sessions, chunks, completion, mounts.

use berth_blob::ByteStream;
use berth_meta::UploadSession;
use berth_oci::{Algorithm, ContentRange, Digest, RepositoryName, ResumableHasher, UploadId};

use crate::error::RegistryError;
use crate::registry::{MountOutcome, Registry};

/// The body of a `PATCH` or final `PUT` on an upload, with its framing headers.
pub struct UploadBody {
    /// The bytes.
    pub stream: ByteStream,
    /// `Content-Length`, when the client sent one.
    pub content_length: Option<u64>,
    /// `Content-Range`, when the client sent one.
    pub content_range: Option<ContentRange>,
}

impl UploadBody {
    /// True when the request certainly carries no bytes.
    fn is_empty(&self) -> bool {
        self.content_length == Some(0)
    }
}

impl Registry {
    /// Opens an upload session (`POST /v2/<name>/blobs/uploads/`).
    pub async fn start_upload(
        &self,
        repository: &RepositoryName,
        algorithm: Algorithm,
    ) -> Result<UploadSession, RegistryError> {
        let id = UploadId::from_random(rand::random());
        self.blobs.create_upload(&id).await?;
        let now = self.clock.now_ms();
        let session = UploadSession {
            id,
            repository: repository.clone(),
            algorithm,
            offset: 0,
            hash_state: ResumableHasher::new(algorithm).save(),
            created_at: now,
            updated_at: now,
        };
        self.meta.create_upload(&session).await?;
        Ok(session)
    }

    /// Stores a whole blob sent with `POST ?digest=` in one request.
    pub async fn upload_monolithic(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        body: UploadBody,
    ) -> Result<(), RegistryError> {
        if body.content_range.is_some() {
            return Err(RegistryError::BlobUploadInvalid(
                "Content-Range is not allowed on a monolithic upload".into(),
            ));
        }
        let id = UploadId::from_random(rand::random());
        self.blobs.create_upload(&id).await?;
        let result = async {
            let hasher = ResumableHasher::new(digest.algorithm());
            let (hasher, len) = self.append(&id, 0, hasher, body).await?;
            self.verify(&hasher.finish(), digest)?;
            self.blobs.commit_upload(&id, len, digest).await?;
            self.meta
                .link_blob(repository, digest, len, self.clock.now_ms())
                .await?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self.blobs.delete_upload(&id).await;
        }
        result
    }

    /// Links a blob from another repository (`POST ?mount=&from=`), or opens a session
    /// when the blob cannot be mounted.
    pub async fn mount_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<MountOutcome, RegistryError> {
        let size = match from {
            Some(source) => self.meta.linked_blob(source, digest).await?,
            None => self.meta.any_linked_blob(digest).await?,
        };
        match size {
            Some(size) => {
                self.meta
                    .link_blob(repository, digest, size, self.clock.now_ms())
                    .await?;
                Ok(MountOutcome::Mounted)
            }
            None => Ok(MountOutcome::Started(
                self.start_upload(repository, digest.algorithm()).await?,
            )),
        }
    }

    /// Where an upload stands (`GET` on the upload URL).
    pub async fn upload_status(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadSession, RegistryError> {
        self.session(repository, id).await
    }

    /// Appends a chunk (`PATCH`); returns the session at its new offset.
    pub async fn append_chunk(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        body: UploadBody,
    ) -> Result<UploadSession, RegistryError> {
        let _lock = self.upload_locks.lock(id).await;
        let session = self.session(repository, id).await?;
        self.append_to_session(session, body).await
    }

    /// Finishes an upload (`PUT ?digest=`), with an optional last chunk.
    pub async fn complete_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
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
        let _lock = self.upload_locks.lock(id).await;
        let mut session = self.session(repository, id).await?;
        if !body.is_empty() {
            session = self.append_to_session(session, body).await?;
        }
        let hasher = Self::restore_hasher(&session)?;
        if hasher.algorithm() != digest.algorithm() {
            return Err(RegistryError::DigestInvalid(format!(
                "the upload was hashed with {}",
                hasher.algorithm().as_str()
            )));
        }
        if let Err(e) = self.verify(&hasher.finish(), &digest) {
            self.discard(id).await;
            return Err(e);
        }
        self.blobs
            .commit_upload(id, session.offset, &digest)
            .await?;
        self.meta
            .complete_upload(id, repository, &digest, session.offset, self.clock.now_ms())
            .await?;
        Ok(digest)
    }

    /// Abandons an upload (`DELETE` on the upload URL).
    pub async fn cancel_upload(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
    ) -> Result<(), RegistryError> {
        let _lock = self.upload_locks.lock(id).await;
        self.session(repository, id).await?;
        self.discard(id).await;
        Ok(())
    }

    /// Removes sessions idle for longer than the configured age, and stray upload bytes
    /// with no session; returns how many uploads were removed.
    pub async fn purge_stale_uploads(&self) -> Result<usize, RegistryError> {
        let cutoff = self.clock.now_ms() - self.config.upload_max_age.as_millis() as i64;
        let mut purged = 0;
        for id in self.meta.stale_uploads(cutoff).await? {
            let _lock = self.upload_locks.lock(&id).await;
            self.discard(&id).await;
            purged += 1;
        }
        for (id, modified) in self.blobs.list_uploads().await? {
            let modified_ms = modified
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            if modified_ms < cutoff && self.meta.upload(&id).await?.is_none() {
                self.blobs.delete_upload(&id).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn session(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadSession, RegistryError> {
        match self.meta.upload(id).await? {
            Some(s) if &s.repository == repository => Ok(s),
            _ => Err(RegistryError::BlobUploadUnknown),
        }
    }

    fn restore_hasher(session: &UploadSession) -> Result<ResumableHasher, RegistryError> {
        ResumableHasher::restore(session.algorithm, &session.hash_state)
            .map_err(|e| RegistryError::Internal(format!("upload {}: {e}", session.id)))
    }

    async fn append_to_session(
        &self,
        mut session: UploadSession,
        body: UploadBody,
    ) -> Result<UploadSession, RegistryError> {
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
        let (hasher, end) = match self.append(&session.id, session.offset, hasher, body).await {
            Err(RegistryError::BlobUploadUnknown) => {
                // The bytes at rest were lost (a crash before they reached the disk).
                self.discard(&session.id).await;
                return Err(RegistryError::BlobUploadUnknown);
            }
            other => other?,
        };
        let state = hasher.save();
        let now = self.clock.now_ms();
        if !self
            .meta
            .advance_upload(&session.id, session.offset, end, &state, now)
            .await?
        {
            return Err(RegistryError::UploadRangeInvalid {
                offset: session.offset,
            });
        }
        session.offset = end;
        session.hash_state = state;
        session.updated_at = now;
        Ok(session)
    }

    /// Writes `body` at `offset`; returns the hash state and the new end offset.
    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: ResumableHasher,
        body: UploadBody,
    ) -> Result<(ResumableHasher, u64), RegistryError> {
        let expected = body
            .content_range
            .map(|r| r.0.len())
            .or(body.content_length);
        let room = self.config.max_blob_bytes.saturating_sub(offset);
        let limit = expected.map_or(room, |e| e.min(room));
        if expected.is_some_and(|e| e > room) {
            return Err(RegistryError::TooLarge(
                "blob exceeds the allowed size".into(),
            ));
        }
        let stream: ByteStream = body.stream;
        let outcome = match (
            self.blobs
                .append_upload(id, offset, hasher, stream, limit)
                .await,
            expected,
        ) {
            // With a declared length within the room, the limit was that length: the body
            // is longer than it said, which is a size mismatch, not an oversized blob.
            (Err(berth_blob::BlobError::TooLarge), Some(e)) => {
                return Err(RegistryError::SizeInvalid(format!(
                    "received more than the {e} bytes declared"
                )));
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
        Ok((outcome.hasher, offset + outcome.written))
    }

    fn verify(&self, computed: &Digest, claimed: &Digest) -> Result<(), RegistryError> {
        if computed == claimed {
            Ok(())
        } else {
            Err(RegistryError::DigestInvalid(format!(
                "content hashes to {computed}, not {claimed}"
            )))
        }
    }

    async fn discard(&self, id: &UploadId) {
        if let Err(e) = self.meta.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %e, "could not delete upload session");
        }
        if let Err(e) = self.blobs.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %e, "could not delete upload bytes");
        }
    }
}
