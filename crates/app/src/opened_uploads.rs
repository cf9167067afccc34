//! Upload sessions before their first record.
//!
//! Opening a session (`POST`) writes nothing: the upload URL it answers names the new
//! id and when it was opened ([`UploadRef::opened`]), and that URL alone records the
//! session with its first request. A chunk records it, then appends to it as to any
//! session. A small whole blob sent with `PUT ?digest=` is written to a byte area of its
//! own and hashed as it arrives, published (the area kept), and completed in one step
//! ([`berth_meta::CollectionStore::pin_new_upload`]): the blob is linked at once when no
//! sweep can have taken its bytes since they were published, so that a blob pushed with
//! `POST` and `PUT` costs the metadata store one round trip. Otherwise the step records
//! the session already pinned on the digest and claimed, and the bytes are published
//! again under the pin before the session is completed, as any session's. An ended id
//! is remembered as ended until the URL that opened it is no longer valid, so that it
//! never opens again (see `docs/design/uploads.md`).

use std::sync::{Arc, LazyLock};

use berth_blob::{BlobError, Committed};
use berth_meta::{
    CreateUploadError, MarkedBlob, NewUploadPin, PinOutcome, SessionLimits, UploadSession,
};
use berth_oci::{Algorithm, Digest, Opening, RepositoryName, ResumableHasher, UploadId, UploadRef};
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::error::RegistryError;
use crate::registry::Registry;
use crate::upload_limits::OpenBytesReading;
use crate::uploads::{UploadBody, over_quota};

/// Largest body that completes a session before the session has a record: a blob this
/// small costs little to send again if its request fails, and its byte area lives
/// only as long as its request.
pub(crate) const UNRECORDED_BODY_MAX: u64 = 4 << 20;

/// How far ahead of this node's clock the node that opened an upload may have been.
const CLOCK_SKEW_MS: i64 = 60_000;

/// The key that seals upload URLs ([`Opening::seal`]), binding each to its id, time and
/// repository: a URL that opened a session in one repository opens nothing in another,
/// and nobody but the registry makes one. Every node serving one registry must hold the
/// same key, so that a URL one node opened is recorded by any.
#[derive(Clone)]
pub struct UploadUrlKey(hmac::Key);

impl UploadUrlKey {
    /// The key derived from `secret`: the token signing key, which every node shares.
    pub fn derived_from(secret: &[u8]) -> Self {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret),
            b"berth upload URL seals",
        );
        UploadUrlKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// A key random to this process, for registries whose upload URLs no other process
    /// serves.
    pub fn of_this_process() -> Self {
        static KEY: LazyLock<UploadUrlKey> =
            LazyLock::new(|| UploadUrlKey::derived_from(&rand::random::<[u8; 32]>()));
        KEY.clone()
    }

    /// The seal of the URL that opened session `id` in `repository` at `at`.
    fn seal(&self, id: &UploadId, at: i64, repository: &RepositoryName) -> [u8; Opening::SEAL_LEN] {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(id.as_str().as_bytes());
        context.update(&at.to_be_bytes());
        context.update(repository.as_str().as_bytes());
        let mut seal = [0; Opening::SEAL_LEN];
        seal.copy_from_slice(&context.sign().as_ref()[..Opening::SEAL_LEN]);
        seal
    }
}

impl std::fmt::Debug for UploadUrlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadUrlKey(..)")
    }
}

/// An upload session as a request found or left it, with the URL its next request names.
#[derive(Debug, Clone)]
pub struct UploadState {
    /// The session (as it is to be recorded, when it has no record yet).
    pub session: UploadSession,
    /// The URL its next request names: the one that opened it, until it has a record.
    pub url: UploadRef,
}

impl Registry {
    /// Opens a session without recording it: its URL records it with its first request.
    pub(crate) fn open_unrecorded(&self, repository: &RepositoryName) -> UploadState {
        let id = UploadId::from_random(rand::random());
        let at = self.clock.now_ms();
        let seal = self.config.upload_url_key.seal(&id, at, repository);
        UploadState {
            session: self.unrecorded(repository, &id, at),
            url: UploadRef::opened(id, Opening { at, seal }),
        }
    }

    /// The session `id` opened at `opened_at` is, before its first record.
    fn unrecorded(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        opened_at: i64,
    ) -> UploadSession {
        UploadSession {
            id: id.clone(),
            repository: repository.clone(),
            algorithm: Algorithm::Sha256,
            offset: 0,
            hash_state: ResumableHasher::new(Algorithm::Sha256).save(),
            verified_by: Some(self.instance),
            verified_digest: None,
            created_at: opened_at,
            updated_at: opened_at,
        }
    }

    /// When the URL opened its session, if it is a URL that opened one in `repository`
    /// (its seal says so) and may still record it: opened less than `upload_max_age` ago,
    /// and not ahead of this node's clock by more than two clocks may differ.
    pub(crate) fn may_record(&self, url: &UploadRef, repository: &RepositoryName) -> Option<i64> {
        let Opening { at, seal } = url.opening?;
        let expected = self.config.upload_url_key.seal(&url.id, at, repository);
        if !bool::from(seal.ct_eq(&expected)) {
            return None;
        }
        let now = self.clock.now_ms();
        let max_age = i64::try_from(self.config.upload_max_age.as_millis()).unwrap_or(i64::MAX);
        (at >= now.saturating_sub(max_age) && at <= now.saturating_add(CLOCK_SKEW_MS)).then_some(at)
    }

    /// Ids ended before this time are forgotten: no URL that opened one is valid any
    /// more, whichever node's clock it was opened by.
    pub(crate) fn ended_ids_expire_before(&self) -> i64 {
        let max_age = i64::try_from(self.config.upload_max_age.as_millis()).unwrap_or(i64::MAX);
        self.clock
            .now_ms()
            .saturating_sub(max_age)
            .saturating_sub(2 * CLOCK_SKEW_MS)
    }

    /// Records, within `limits`, the session the URL opened at `opened_at`; its byte area
    /// is created by the first request that claims it ([`Self::ensure_area`]). A session
    /// recorded already, or ended, is left as it is: the claim that follows finds which.
    pub(crate) async fn record_opened(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        opened_at: i64,
        limits: SessionLimits,
    ) -> Result<(), RegistryError> {
        let mut session = self.unrecorded(repository, id, opened_at);
        session.updated_at = self.clock.now_ms();
        match self.meta.create_upload(&session, limits).await {
            Ok(()) | Err(CreateUploadError::Taken) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the byte area of a claimed session at its start that has none: one
    /// recorded by the URL that opened it. The caller holds the session's claim, so no
    /// other request writes to the area meanwhile.
    pub(crate) async fn ensure_area(&self, session: &UploadSession) -> Result<(), RegistryError> {
        if session.offset == 0 && !self.blobs.upload_exists(&session.id).await? {
            self.blobs.create_upload(&session.id).await?;
        }
        Ok(())
    }

    /// Where a session stands that the URL opened and that has no record: at its start,
    /// unless its id ended.
    pub(crate) async fn unrecorded_status(
        &self,
        repository: &RepositoryName,
        url: &UploadRef,
    ) -> Result<UploadState, RegistryError> {
        match self.may_record(url, repository) {
            Some(opened_at) if !self.meta.upload_ended(&url.id).await? => Ok(UploadState {
                session: self.unrecorded(repository, &url.id, opened_at),
                url: url.clone(),
            }),
            _ => Err(RegistryError::BlobUploadUnknown),
        }
    }

    /// When the URL opened its session, if a body that is a small whole blob (`whole`,
    /// [`UploadBody::completes_in_one_go`]) completes the session before it has a record:
    /// sent on a URL that may still record it, for a session that has no byte area yet.
    /// A session with one was recorded, and claimed by a request that created it: some
    /// clients send every request to the URL that opened the session, so its chunks went
    /// there first and this body is its last.
    pub(crate) async fn completes_unrecorded(
        &self,
        url: &UploadRef,
        repository: &RepositoryName,
        whole: bool,
    ) -> Result<Option<i64>, RegistryError> {
        let Some(opened_at) = self.may_record(url, repository).filter(|_| whole) else {
            return Ok(None);
        };
        let recorded = self.blobs.upload_exists(&url.id).await?;
        Ok((!recorded).then_some(opened_at))
    }

    /// Completes session `id`, opened at `opened_at` and not recorded yet, with the whole
    /// blob `body`: writes it to a byte area of its own, hashing it; publishes the bytes,
    /// keeping the area; links the blob, or, when a sweep may have taken the bytes since,
    /// records the session pinned on `digest` and claimed, publishes the area again and
    /// links the blob.
    ///
    /// A session recorded meanwhile (a chunk was sent to it first) is answered with the
    /// offset it stands at (`416`), so that the client resumes from there; an ended one is
    /// unknown.
    pub(crate) async fn complete_unrecorded(
        self: &Arc<Self>,
        repository: &RepositoryName,
        id: &UploadId,
        opened_at: i64,
        digest: &Digest,
        body: UploadBody,
    ) -> Result<(), RegistryError> {
        let (this, repository, id, digest) =
            (self.clone(), repository.clone(), id.clone(), digest.clone());
        self.detached(async move {
            let area = UploadId::from_random(rand::random());
            // Held while the area exists: the upload purge skips an area in use, as it
            // skips a session's.
            let _area_lock = this.upload_locks.lock(&area).await;
            let result = this
                .complete_in_area(&repository, &id, opened_at, &digest, &area, body)
                .await;
            if result.is_err()
                && let Err(e) = this.blobs.delete_upload(&area).await
            {
                tracing::warn!(upload = %id, error = %e, "could not delete upload bytes");
            }
            result
        })
        .await
    }

    /// [`Self::complete_unrecorded`], with the bytes in `area`, which the caller deletes
    /// when this fails.
    async fn complete_in_area(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        opened_at: i64,
        digest: &Digest,
        area: &UploadId,
        body: UploadBody,
    ) -> Result<(), RegistryError> {
        let local = self.upload_locks.lock(id).await;
        self.blobs.create_upload(area).await?;
        let reading = OpenBytesReading {
            mark: self.limits.stored_mark(),
            stored: 0,
        };
        let hasher = ResumableHasher::new(digest.algorithm());
        let written = self.append(area, 0, hasher, body, reading).await?;
        if let Err(e) = self.verify(&written.hasher.clone().finish(), digest) {
            drop(local);
            return Err(self.refuse_unrecorded(repository, id, opened_at, e).await);
        }
        // Published first and kept: the step below links the blob at once when no sweep
        // can have taken the bytes since; else it pins the digest, and they are
        // published again under the pin. A store that cannot keep them publishes
        // nothing here: the step, told they were published long ago, pins.
        let published_at = self.clock.now_ms();
        let (published_at, published) =
            match self.blobs.publish_upload(area, written.end, digest).await {
                Ok(published) => (published_at, Some(published)),
                Err(BlobError::CannotKeep(_)) => (0, None),
                Err(e) => return Err(lost_as_upload_lost(e)),
            };
        let now = self.clock.now_ms();
        let session = UploadSession {
            offset: written.end,
            hash_state: written.hasher.save(),
            algorithm: digest.algorithm(),
            updated_at: now,
            ..self.unrecorded(repository, id, opened_at)
        };
        let ask = self.ask_lease();
        let pinned = self
            .meta
            .pin_new_upload(&NewUploadPin {
                session: session.clone(),
                digest: digest.clone(),
                holder: ask.holder,
                until: ask.until,
                published_at,
            })
            .await?;
        match pinned.outcome {
            PinOutcome::Linked => {
                written.reservation.stored();
                if let Err(e) = self.blobs.delete_upload(area).await {
                    tracing::warn!(upload = %id, error = %e, "could not delete upload bytes");
                }
                return Ok(());
            }
            PinOutcome::Pinned => {}
            PinOutcome::Revived => {
                tracing::info!(%digest, "a completing upload revived a blob marked for deletion");
            }
            PinOutcome::Taken => {
                self.withdraw(digest, written.end, published).await;
                return Err(self.moved_on(id).await);
            }
            PinOutcome::NoSession | PinOutcome::Moved => {
                self.withdraw(digest, written.end, published).await;
                return Err(RegistryError::BlobUploadUnknown);
            }
            PinOutcome::OverQuota => {
                self.withdraw(digest, written.end, published).await;
                // Nothing was recorded: the id ends as after other bytes, under the
                // claim of the session it is recorded as, never under another's.
                drop(local);
                let refusal = over_quota(pinned.refusal);
                return Err(self
                    .refuse_unrecorded(repository, id, opened_at, refusal)
                    .await);
            }
        }
        written.reservation.stored();
        let claim = self.recorded_claim(local, ask, session);
        let result = self.publish_area(area, id, digest, written.end).await;
        let result = match result {
            Ok(()) => self
                .meta
                .complete_upload(id, repository, digest, written.end, self.clock.now_ms())
                .await
                .map_err(RegistryError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => claim.ended(),
            Err(_) => claim.release().await,
        }
        result
    }

    /// Takes back the `size` bytes of `digest` that a refused completion published
    /// (`published`, if it did), when they were new: claimed as bytes no row knows and swept at
    /// once, through garbage collection's own steps, so that a refused push leaves
    /// nothing stored. A row or a pin that names the digest by then (another push of the
    /// same bytes) keeps them; a completion that found them in place and completes after
    /// the claim finds the blob marked or swept, and publishes its own bytes. A failure
    /// leaves them to the next collection.
    async fn withdraw(&self, digest: &Digest, size: u64, published: Option<Committed>) {
        if published != Some(Committed::Published) {
            return;
        }
        let orphan = MarkedBlob {
            digest: digest.clone(),
            size,
        };
        let claimed = self
            .meta
            .claim_orphan_blobs(std::slice::from_ref(&orphan), self.clock.now_ms())
            .await;
        let swept = match claimed {
            Ok(claimed) if claimed.is_empty() => return,
            Ok(_) => self.sweep(digest).await.map(drop),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = swept {
            tracing::warn!(%digest, error = %e, "could not take back the bytes of a refused upload");
        }
    }

    /// Refuses bytes that hash to another digest than the client named (or that its
    /// project's quota has no room for) with `mismatch`. When the id has
    /// a record by now, the bytes were most likely the last chunk of a session whose
    /// earlier chunks went to this URL too: the session is left as it is, and the client
    /// told where it stands. Otherwise the id ends, as a session's whose bytes do not
    /// hash to their digest.
    ///
    /// The id is recorded and claimed before it ends, as any session is: a request that
    /// records it meanwhile (a whole blob completing it on another node, pinned and
    /// claimed) is never ended under its claim, its pin removed while it publishes.
    async fn refuse_unrecorded(
        &self,
        repository: &RepositoryName,
        id: &UploadId,
        opened_at: i64,
        mismatch: RegistryError,
    ) -> RegistryError {
        let mut session = self.unrecorded(repository, id, opened_at);
        session.updated_at = self.clock.now_ms();
        match self.meta.create_upload(&session, SessionLimits::NONE).await {
            Ok(()) => {}
            Err(CreateUploadError::Taken) => {
                return match self.meta.upload(id).await {
                    Ok(Some(session)) => RegistryError::UploadRangeInvalid {
                        offset: session.offset,
                    },
                    Ok(None) => mismatch,
                    Err(e) => e.into(),
                };
            }
            Err(e) => return e.into(),
        }
        let claim = match self.claim_session(id).await {
            Ok(claim) => claim,
            Err(RegistryError::BlobUploadUnknown) => return mismatch,
            Err(e) => return e,
        };
        // Another request may have taken the session between its record and this claim.
        if claim.session.offset > 0 {
            let offset = claim.session.offset;
            claim.release().await;
            return RegistryError::UploadRangeInvalid { offset };
        }
        self.discard(id).await;
        claim.ended();
        mismatch
    }

    /// The answer to a request that meant to complete session `id` in one go, when the
    /// session has a record by then: where it stands (`416`), to resume from there.
    async fn moved_on(&self, id: &UploadId) -> RegistryError {
        match self.meta.upload(id).await {
            Ok(Some(session)) => RegistryError::UploadRangeInvalid {
                offset: session.offset,
            },
            Ok(None) => RegistryError::BlobUploadUnknown,
            Err(e) => e.into(),
        }
    }

    /// Publishes the `size` bytes of `area`, which hash to `digest`, as that blob; a
    /// failure ends session `id`, whose bytes they were.
    async fn publish_area(
        &self,
        area: &UploadId,
        id: &UploadId,
        digest: &Digest,
        size: u64,
    ) -> Result<(), RegistryError> {
        match self.blobs.commit_upload(area, size, digest).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.discard(id).await;
                Err(lost_as_upload_lost(e))
            }
        }
    }
}

/// A failure to publish an upload's bytes, with bytes gone from under it as
/// [`RegistryError::UploadLost`].
fn lost_as_upload_lost(e: BlobError) -> RegistryError {
    match e {
        BlobError::NotFound | BlobError::UploadTruncated => RegistryError::UploadLost,
        e => e.into(),
    }
}
