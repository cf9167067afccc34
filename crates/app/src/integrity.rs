//! `berth fsck`: the stored usage counters against a recomputation from the manifests,
//! and, when asked, every stored blob's bytes against its digest.

use berth_blob::BlobError;
use berth_meta::{ListQuery, Quota, RecordedBlob, UsageDrift};
use berth_oci::{Digest, ResumableHasher};
use futures_util::StreamExt;

use crate::error::RegistryError;
use crate::registry::Registry;

/// Blobs listed per page while re-hashing.
const BLOB_PAGE: usize = 1000;

/// A blob whose bytes are not what its name or its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBlob {
    /// The blob.
    pub digest: Digest,
    /// What is wrong with it.
    pub problem: String,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Where the stored usage differs from the recomputation (none when they agree).
    pub drift: Vec<UsageDrift>,
    /// Every project's quota, as stored (when asked for).
    pub quotas: Vec<Quota>,
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Blobs whose bytes do not hash to their digest, and recorded blobs whose bytes
    /// are missing or of another size than recorded.
    pub corrupt: Vec<CorruptBlob>,
}

impl IntegrityReport {
    /// Whether nothing differs.
    pub fn is_clean(&self) -> bool {
        self.drift.is_empty() && self.corrupt.is_empty()
    }
}

impl Registry {
    /// Recomputes usage and counts from scratch and lists where they differ from the
    /// stored ones; with `quotas`, also lists every quota; with `rehash`, also reads
    /// every stored blob and checks its bytes against its digest, and checks that every
    /// blob the metadata records has its bytes, of the recorded size.
    pub async fn check_integrity(
        &self,
        quotas: bool,
        rehash: bool,
    ) -> Result<IntegrityReport, RegistryError> {
        let mut report = IntegrityReport {
            drift: self.meta.usage_drift().await?,
            ..IntegrityReport::default()
        };
        if quotas {
            report.quotas = self.meta.quotas(&ListQuery::default()).await?.items;
        }
        if rehash {
            let mut after: Option<Digest> = None;
            loop {
                let page = self.blobs.list_blobs(after.as_ref(), BLOB_PAGE).await?;
                for blob in &page {
                    report.blobs_checked += 1;
                    if let Some(problem) = self.rehash(&blob.digest, blob.size).await? {
                        report.corrupt.push(CorruptBlob {
                            digest: blob.digest.clone(),
                            problem,
                        });
                    }
                }
                if page.len() < BLOB_PAGE {
                    break;
                }
                after = page.last().map(|b| b.digest.clone());
            }
            report.corrupt.extend(self.missing_bytes().await?);
        }
        Ok(report)
    }

    /// Recorded blobs whose bytes the blob store lacks, or holds at another size. A
    /// blob found so is looked at again once its row is known to be still live: a
    /// collection may have marked and swept it since its page was read.
    async fn missing_bytes(&self) -> Result<Vec<CorruptBlob>, RegistryError> {
        let mut found = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.meta.present_blobs(&after, BLOB_PAGE as u32).await?;
            let mut suspects = Vec::new();
            for blob in &page {
                if self.size_problem(blob).await?.is_some() {
                    suspects.push(blob.digest.clone());
                }
            }
            let live = match suspects.is_empty() {
                true => Vec::new(),
                false => self.meta.live_blobs(&suspects).await?,
            };
            for blob in page
                .iter()
                .filter(|b| live.iter().any(|l| l.digest == b.digest))
            {
                if let Some(problem) = self.size_problem(blob).await? {
                    found.push(CorruptBlob {
                        digest: blob.digest.clone(),
                        problem,
                    });
                }
            }
            match page.last() {
                Some(last) if page.len() == BLOB_PAGE => after = last.digest.to_string(),
                _ => return Ok(found),
            }
        }
    }

    /// What is wrong with the stored bytes of a recorded blob: none, or another size.
    async fn size_problem(&self, blob: &RecordedBlob) -> Result<Option<String>, RegistryError> {
        Ok(match self.blobs.size(&blob.digest).await? {
            None => Some(format!("recorded with {} bytes, none stored", blob.size)),
            Some(size) if size != blob.size => {
                Some(format!("recorded with {} bytes, {size} stored", blob.size))
            }
            Some(_) => None,
        })
    }

    /// Reads a blob through the store and says what is wrong with it, if anything.
    async fn rehash(&self, digest: &Digest, size: u64) -> Result<Option<String>, RegistryError> {
        let mut read = match self.blobs.read(digest, None).await {
            Ok(read) => read,
            // Deleted since it was listed.
            Err(BlobError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = ResumableHasher::new(digest.algorithm());
        let mut length = 0u64;
        while let Some(chunk) = read.body.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Internal(e.to_string()))?;
            length += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let hashed = hasher.finish();
        Ok(if &hashed != digest {
            Some(format!("its {length} bytes hash to {hashed}"))
        } else if length != size {
            Some(format!("{length} bytes read, {size} listed"))
        } else {
            None
        })
    }
}
