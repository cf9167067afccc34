//! The local-filesystem adapter: blobs under `blobs/<alg>/<xx>/<hex>`, uploads under
//! `uploads/<id>`, both on one filesystem so that publishing is a single `rename`.
//!
//! Writes hash while they write, on a blocking thread fed by the async body reader, and
//! start write-back every few MiB (`sync_file_range`) so the single `fdatasync` at commit
//! has little left to flush. Reads stream through [`FileChunks`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_oci::{ByteRange, Digest, ResumableHasher, UploadId};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::buffer_pool::BufferPool;
use crate::file_chunks::FileChunks;
use crate::port::{AppendOutcome, BlobError, BlobRead, BlobStore, ByteStream};
use crate::write_batch::WriteBatcher;

/// Bytes gathered from the body before they are handed to the writer thread.
const WRITE_BATCH: usize = 256 << 10;
/// Write batches kept between appends.
const IDLE_WRITE_BUFFERS: usize = 16;
/// Bytes written between write-back kicks.
const WRITEBACK_STEP: u64 = 8 << 20;
/// Size of each chunk a blob read yields.
const READ_CHUNK: usize = 256 << 10;
/// Read buffers kept between reads.
const IDLE_READ_BUFFERS: usize = 16;
/// Body chunks queued between the receiving task and the writing thread.
const PIPE_DEPTH: usize = 4;

/// Blob store on a local directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: Arc<PathBuf>,
    /// Buffers blob reads are served from.
    read_buffers: Arc<BufferPool>,
    /// Buffers upload bodies are gathered in.
    write_buffers: Arc<BufferPool>,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(FsBlobStore {
            root: Arc::new(root),
            read_buffers: BufferPool::new(READ_CHUNK, IDLE_READ_BUFFERS),
            write_buffers: BufferPool::new(WRITE_BATCH, IDLE_WRITE_BUFFERS),
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.encoded();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.root.join("uploads").join(id.as_str())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(io::Error::other(e)))?
}

fn not_found_as(e: io::Error) -> BlobError {
    if e.kind() == io::ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        BlobError::Io(e)
    }
}

/// Makes a directory entry change (create, rename) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Asks the kernel to start writing back `[from, from+len)` without waiting for it.
#[allow(unsafe_code)]
fn start_writeback(file: &File, from: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is owned by
    // `file`, which outlives the call. A failure is only a lost hint: `commit` still
    // fdatasyncs, so durability never depends on this call.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// The blocking half of an append: hash and write chunks as they arrive.
fn write_chunks(
    mut file: File,
    offset: u64,
    mut hasher: ResumableHasher,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<(ResumableHasher, u64), BlobError> {
    let mut written = 0u64;
    let mut kicked = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
        if written - kicked >= WRITEBACK_STEP {
            start_writeback(&file, offset + kicked, written - kicked);
            kicked = written;
        }
    }
    Ok((hasher, written))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        let path = self.blob_path(digest);
        let (file, start, len) = blocking(move || {
            let file = File::open(&path).map_err(not_found_as)?;
            let size = file.metadata()?.len();
            let (start, len) = match range {
                Some(r) => (r.start, r.len().min(size.saturating_sub(r.start))),
                None => (0, size),
            };
            Ok((file, start, len))
        })
        .await?;
        let body = FileChunks::new(file, start, len, self.read_buffers.clone());
        Ok(BlobRead {
            body: Box::pin(body),
            len,
        })
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn create_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        let path = self.upload_path(id);
        blocking(move || {
            OpenOptions::new().write(true).create_new(true).open(path)?;
            Ok(())
        })
        .await
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: ResumableHasher,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<AppendOutcome, BlobError> {
        let path = self.upload_path(id);
        let file = blocking(move || {
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(not_found_as)?;
            let at_rest = file.metadata()?.len();
            if at_rest < offset {
                return Err(BlobError::UploadTruncated);
            }
            if at_rest > offset {
                file.set_len(offset)?;
            }
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await?;

        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || write_chunks(file, offset, hasher, rx));
        let mut received = 0u64;
        let mut failure = None;
        let mut batcher = WriteBatcher::new(self.write_buffers.clone(), offset);
        'body: while let Some(item) = body.next().await {
            let frame = match item {
                Ok(frame) => frame,
                Err(e) => {
                    failure = Some(BlobError::Body(e));
                    break;
                }
            };
            received += frame.len() as u64;
            if received > limit {
                failure = Some(BlobError::TooLarge);
                break;
            }
            let mut rest = &frame[..];
            while !rest.is_empty() {
                let (full, left) = batcher.push(rest);
                rest = left;
                if let Some(batch) = full
                    && tx.send(batch).await.is_err()
                {
                    break 'body; // The writer failed; its error is reported below.
                }
            }
        }
        if failure.is_none()
            && let Some(last) = batcher.finish()
        {
            let _ = tx.send(last).await;
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| BlobError::Io(io::Error::other(e)))?;
        if let Some(err) = failure {
            return Err(err);
        }
        let (hasher, written) = written?;
        Ok(AppendOutcome { written, hasher })
    }

    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<(), BlobError> {
        let from = self.upload_path(id);
        let to = self.blob_path(digest);
        blocking(move || {
            let file = OpenOptions::new()
                .write(true)
                .open(&from)
                .map_err(not_found_as)?;
            if file.metadata()?.len() != len {
                file.set_len(len)?;
            }
            file.sync_data()?;
            drop(file);
            let dir = to.parent().expect("blob paths have a parent");
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                sync_dir(dir.parent().expect("fan-out dirs have a parent"))?;
            }
            // Concurrent commits of the same digest rename identical bytes over each other.
            std::fs::rename(&from, &to)?;
            sync_dir(dir)?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, SystemTime)>, BlobError> {
        let dir = self.root.join("uploads");
        blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| UploadId::parse(n).ok())
                else {
                    continue;
                };
                out.push((id, entry.metadata()?.modified()?));
            }
            Ok(out)
        })
        .await
    }

    async fn check(&self) -> Result<(), BlobError> {
        let probe = self.root.join("uploads").join(".readyz");
        blocking(move || {
            std::fs::write(&probe, b"ok")?;
            let mut back = String::new();
            File::open(&probe)?.read_to_string(&mut back)?;
            std::fs::remove_file(&probe)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fs_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        crate::conformance::run(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn a_truncated_upload_is_reported_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = UploadId::from_random([7; 16]);
        store.create_upload(&id).await.unwrap();
        let hasher = ResumableHasher::new(berth_oci::Algorithm::Sha256);
        let body: ByteStream = Box::pin(futures_util::stream::empty());
        let err = store.append_upload(&id, 10, hasher, body, 100).await;
        assert!(matches!(err, Err(BlobError::UploadTruncated)));
    }
}
