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
use berth_oci::{Algorithm, ByteRange, Digest, ResumableHasher, UploadId};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::buffer_pool::BufferPool;
use crate::durable_dirs::{DurableDirs, sync_dir};
use crate::file_chunks::FileChunks;
use crate::port::{
    AppendOutcome, BlobError, BlobRead, BlobStore, BodyLength, ByteStream, Committed, Moved,
    RetiredBlob, StoredBlob, checked_token,
};
use crate::retired;
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
/// Full batches queued before the receiver waits for the write in flight.
const PIPE_DEPTH: usize = 4;

/// Blob store on a local directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: Arc<PathBuf>,
    /// Directories whose entries are known durable, so that commits sync a directory's
    /// parent only when they first use it.
    dirs: Arc<DurableDirs>,
    /// Buffers blob reads are served from.
    read_buffers: Arc<BufferPool>,
    /// Buffers upload bodies are gathered in.
    write_buffers: Arc<BufferPool>,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        create_root_durably(&root)?;
        let dirs = DurableDirs::new(root.clone());
        for dir in ["blobs", "uploads"] {
            dirs.ensure(&root.join(dir))?;
        }
        Ok(FsBlobStore {
            root: Arc::new(root),
            dirs: Arc::new(dirs),
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

    fn retired_path(&self, digest: &Digest, token: &str) -> Result<PathBuf, BlobError> {
        let token = checked_token(token)?;
        Ok(retired::retired_path(&self.root, digest, token))
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

/// The file side of one append, handed to a blocking thread for each run of batches and
/// back, so that no thread waits while the client is slow to send.
struct UploadWriter {
    file: File,
    hasher: ResumableHasher,
    /// File offset the append started at.
    offset: u64,
    /// Bytes written so far by this append.
    written: u64,
    /// Bytes whose write-back has been started.
    kicked: u64,
}

impl UploadWriter {
    /// Hashes and writes `batches`, in order.
    fn write(&mut self, batches: &[Bytes]) -> io::Result<()> {
        for batch in batches {
            self.hasher.update(batch);
            self.file.write_all(batch)?;
            self.written += batch.len() as u64;
        }
        if self.written - self.kicked >= WRITEBACK_STEP {
            start_writeback(
                &self.file,
                self.offset + self.kicked,
                self.written - self.kicked,
            );
            self.kicked = self.written;
        }
        Ok(())
    }
}

/// A run of batches being written on a blocking thread.
type WriteJob = tokio::task::JoinHandle<(UploadWriter, io::Result<()>)>;

/// Feeds batches to blocking writes, at most one at a time, while the body is still
/// being received.
struct WritePipeline {
    /// The writer, when no write is running.
    idle: Option<UploadWriter>,
    running: Option<WriteJob>,
    /// Batches waiting for the running write to finish.
    queued: Vec<Bytes>,
}

impl WritePipeline {
    fn new(writer: UploadWriter) -> Self {
        WritePipeline {
            idle: Some(writer),
            running: None,
            queued: Vec::new(),
        }
    }

    /// Queues a full batch; waits for the running write only when too much is queued.
    async fn push(&mut self, batch: Bytes) -> Result<(), BlobError> {
        self.queued.push(batch);
        if self.running.as_ref().is_some_and(|j| j.is_finished()) || self.queued.len() >= PIPE_DEPTH
        {
            self.wait().await?;
        }
        self.start();
        Ok(())
    }

    /// Writes everything queued and returns the writer once no write is running.
    async fn finish(mut self) -> Result<UploadWriter, BlobError> {
        self.wait().await?;
        self.start();
        self.wait().await?;
        Ok(self.idle.take().expect("no write is running"))
    }

    /// Waits for the running write, if any, without starting another: after this no
    /// write to the file is in progress.
    async fn wait(&mut self) -> Result<(), BlobError> {
        if let Some(job) = self.running.take() {
            let (writer, result) = job.await.map_err(|e| BlobError::Io(io::Error::other(e)))?;
            self.idle = Some(writer);
            result?;
        }
        Ok(())
    }

    fn start(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        if let Some(mut writer) = self.idle.take() {
            let batches = std::mem::take(&mut self.queued);
            self.running = Some(tokio::task::spawn_blocking(move || {
                let result = writer.write(&batches);
                (writer, result)
            }));
        }
    }
}

/// Hashes the first `len` bytes of `file` with `algorithm`.
fn hash_file(file: &mut File, len: u64, algorithm: Algorithm) -> io::Result<Digest> {
    let mut hasher = ResumableHasher::new(algorithm);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(hasher.finish())
}

/// Creates `root` and any missing ancestors, making each new entry durable, so a fresh
/// store survives a power loss right after it was created.
fn create_root_durably(root: &Path) -> io::Result<()> {
    if root.exists() {
        return Ok(());
    }
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    create_root_durably(&parent)?;
    match std::fs::create_dir(root) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    sync_dir(&parent)
}

/// What publishing an upload leaves of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// Gone: renamed to the blob, or deleted when the blob was there.
    Consumed,
    /// Still there: hard-linked to the blob, or left as it was when the blob was there.
    Kept,
}

impl FsBlobStore {
    /// Makes the upload's first `len` bytes durable and publishes them as `digest` unless
    /// the blob exists ([`BlobStore::commit_upload`]), consuming or keeping the upload.
    async fn publish(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
        upload: Upload,
    ) -> Result<Committed, BlobError> {
        let from = self.upload_path(id);
        let to = self.blob_path(digest);
        let dirs = self.dirs.clone();
        blocking(move || {
            let file = OpenOptions::new()
                .write(true)
                .open(&from)
                .map_err(not_found_as)?;
            let at_rest = file.metadata()?.len();
            if at_rest < len {
                return Err(BlobError::UploadTruncated);
            }
            if at_rest > len {
                file.set_len(len)?;
            }
            let dir = to.parent().expect("blob paths have a parent");
            dirs.ensure(dir)?;
            let already_present = |file: File| -> Result<Committed, BlobError> {
                drop(file);
                if upload == Upload::Consumed {
                    std::fs::remove_file(&from)?;
                }
                // Another commit may have published it without syncing the directory yet.
                sync_dir(dir)?;
                Ok(Committed::AlreadyPresent)
            };
            if to.exists() {
                return already_present(file);
            }
            if let Err(e) = file.sync_data() {
                // After a failed flush the kernel may have dropped the dirty pages:
                // nothing about these bytes can be trusted any more.
                drop(file);
                let _ = std::fs::remove_file(&from);
                return Err(BlobError::SyncFailed(e));
            }
            let published = match upload {
                Upload::Consumed => rename_no_replace(&from, &to)?,
                Upload::Kept => link_no_replace(&from, &to)?,
            };
            if !published {
                return already_present(file);
            }
            drop(file);
            sync_dir(dir)?;
            Ok(Committed::Published)
        })
        .await
    }
}

/// Hard-links `to` to `from` unless `to` exists; returns whether it was linked. A
/// filesystem that makes no hard links (some FUSE ones) is [`BlobError::CannotKeep`].
fn link_no_replace(from: &Path, to: &Path) -> Result<bool, BlobError> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if links_unsupported(&e) => Err(BlobError::CannotKeep(e)),
        Err(e) => Err(e.into()),
    }
}

/// Whether `e`, from making a hard link, says the filesystem makes none (or no more of
/// this file, or not across these directories).
fn links_unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let Some(raw) = e.raw_os_error() else {
        return false;
    };
    [
        Errno::PERM,
        Errno::NOTSUP,
        Errno::NOSYS,
        Errno::MLINK,
        Errno::XDEV,
    ]
    .iter()
    .any(|errno| errno.raw_os_error() == raw)
}

/// Renames `from` to `to` unless `to` exists; returns whether it was renamed.
pub(crate) fn rename_no_replace(from: &Path, to: &Path) -> io::Result<bool> {
    match rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(e.into()),
    }
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

    async fn retire(&self, digest: &Digest, token: &str, _: Moved<'_>) -> Result<(), BlobError> {
        let (blob, to) = (self.blob_path(digest), self.retired_path(digest, token)?);
        let dirs = self.dirs.clone();
        blocking(move || Ok(retired::retire(&dirs, &blob, &to)?)).await
    }

    async fn discard_retired(&self, digest: &Digest, token: &str) -> Result<(), BlobError> {
        let path = self.retired_path(digest, token)?;
        blocking(move || Ok(retired::discard(&path)?)).await
    }

    async fn restore_retired(&self, digest: &Digest, token: &str) -> Result<bool, BlobError> {
        let (from, blob) = (self.retired_path(digest, token)?, self.blob_path(digest));
        let dirs = self.dirs.clone();
        blocking(move || Ok(retired::restore(&dirs, &from, &blob)?)).await
    }

    async fn list_retired(
        &self,
        after: Option<&RetiredBlob>,
        limit: usize,
    ) -> Result<Vec<RetiredBlob>, BlobError> {
        let (root, after) = (self.root.join("retired"), after.cloned());
        blocking(move || Ok(retired::list(&root, after.as_ref(), limit)?)).await
    }

    async fn retired_copies(&self, digest: &Digest) -> Result<Vec<RetiredBlob>, BlobError> {
        let (root, digest) = (self.root.clone(), digest.clone());
        blocking(move || Ok(retired::copies_of(&root, &digest)?)).await
    }

    fn read_chunk_bytes(&self) -> usize {
        READ_CHUNK
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
        length: BodyLength,
    ) -> Result<AppendOutcome, BlobError> {
        let limit = length.limit();
        // An empty body touches nothing: the file is opened with the first byte.
        let first = loop {
            match body.next().await {
                Some(Ok(frame)) if frame.is_empty() => continue,
                Some(Ok(frame)) => break frame,
                Some(Err(e)) => return Err(BlobError::Body(e)),
                None => return Ok(AppendOutcome { written: 0, hasher }),
            }
        };
        let mut body: ByteStream =
            Box::pin(futures_util::stream::once(async { Ok(first) }).chain(body));
        let path = self.upload_path(id);
        let file = blocking(move || {
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(not_found_as)?;
            let meta = file.metadata()?;
            // A second name means a crash left the upload also published as a blob (on a
            // filesystem whose rename is not atomic): never write into a published file.
            if std::os::unix::fs::MetadataExt::nlink(&meta) != 1 {
                return Err(BlobError::NotFound);
            }
            let at_rest = meta.len();
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

        let mut pipeline = WritePipeline::new(UploadWriter {
            file,
            hasher,
            offset,
            written: 0,
            kicked: 0,
        });
        let mut received = 0u64;
        let mut failure = None;
        let mut batcher = WriteBatcher::new(self.write_buffers.clone(), offset);
        // Frames wait here until a batch's worth arrived: a body that trickles holds only
        // the bytes it sent, not a whole batch buffer.
        let mut frames: Vec<Bytes> = Vec::new();
        let mut gathered = 0usize;
        'body: loop {
            let item = body.next().await;
            let end = item.is_none();
            match item {
                Some(Ok(frame)) => {
                    received += frame.len() as u64;
                    if received > limit {
                        failure = Some(BlobError::TooLarge);
                        break;
                    }
                    gathered += frame.len();
                    frames.push(frame);
                }
                Some(Err(e)) => {
                    failure = Some(BlobError::Body(e));
                    break;
                }
                None => {}
            }
            if end || gathered >= WRITE_BATCH {
                gathered = 0;
                for frame in frames.drain(..) {
                    let mut rest = &frame[..];
                    while !rest.is_empty() {
                        let (full, left) = batcher.push(rest);
                        rest = left;
                        if let Some(batch) = full
                            && let Err(e) = pipeline.push(batch).await
                        {
                            failure = Some(e);
                            break 'body;
                        }
                    }
                }
            }
            if end {
                break;
            }
        }
        if failure.is_none()
            && let Some(last) = batcher.finish()
        {
            pipeline.queued.push(last);
        }
        if failure.is_some() {
            pipeline.queued.clear();
        }
        // Always wait for the write in flight, so nothing touches the file after return.
        let writer = pipeline.finish().await;
        if let Some(err) = failure {
            return Err(err);
        }
        let writer = writer?;
        Ok(AppendOutcome {
            written: writer.written,
            hasher: writer.hasher,
        })
    }

    async fn hash_upload(
        &self,
        id: &UploadId,
        len: u64,
        algorithm: Algorithm,
    ) -> Result<Digest, BlobError> {
        let path = self.upload_path(id);
        blocking(move || {
            let mut file = File::open(path).map_err(not_found_as)?;
            if file.metadata()?.len() < len {
                return Err(BlobError::UploadTruncated);
            }
            Ok(hash_file(&mut file, len, algorithm)?)
        })
        .await
    }

    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError> {
        self.publish(id, len, digest, Upload::Consumed).await
    }

    async fn publish_upload(
        &self,
        id: &UploadId,
        len: u64,
        digest: &Digest,
    ) -> Result<Committed, BlobError> {
        self.publish(id, len, digest, Upload::Kept).await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn upload_exists(&self, id: &UploadId) -> Result<bool, BlobError> {
        Ok(tokio::fs::try_exists(self.upload_path(id)).await?)
    }

    async fn list_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<StoredBlob>, BlobError> {
        let root = self.root.join("blobs");
        let after = after.map(Digest::to_string);
        blocking(move || Ok(committed_blobs(&root, after.as_deref(), limit)?)).await
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
        // Each probe has its own file, so concurrent probes cannot collide.
        let name = format!(".readyz-{:016x}", rand::random::<u64>());
        let probe = self.root.join("uploads").join(name);
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

/// The names in `dir`, sorted; none when it does not exist.
pub(crate) fn sorted_names(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The metadata of the file at `path`, `None` when it is gone (removed since it was
/// listed).
pub(crate) fn metadata_if_present(path: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        meta => meta.map(Some),
    }
}

/// The committed blobs under `root` (`<alg>/<xx>/<hex>`) whose digest's text comes
/// after `after`, in that order, up to `limit`; only the directories at or past
/// `after`'s are read.
fn committed_blobs(root: &Path, after: Option<&str>, limit: usize) -> io::Result<Vec<StoredBlob>> {
    let mut found = Vec::new();
    for algorithm in sorted_names(root)? {
        for prefix in sorted_names(&root.join(&algorithm))? {
            let directory = format!("{algorithm}:{prefix}");
            if after.is_some_and(|a| directory.as_str() < a.get(..directory.len()).unwrap_or(a)) {
                continue;
            }
            let dir = root.join(&algorithm).join(&prefix);
            for name in sorted_names(&dir)? {
                let text = format!("{algorithm}:{name}");
                if after.is_some_and(|a| text.as_str() <= a) {
                    continue;
                }
                let Ok(digest) = Digest::parse(&text) else {
                    continue;
                };
                let Some(meta) = metadata_if_present(&dir.join(&name))? else {
                    continue;
                };
                found.push(StoredBlob {
                    digest,
                    size: meta.len(),
                    written: meta.modified()?,
                });
                if found.len() == limit {
                    return Ok(found);
                }
            }
        }
    }
    Ok(found)
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
    async fn an_upload_that_is_also_a_published_blob_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = UploadId::from_random([8; 16]);
        store.create_upload(&id).await.unwrap();
        std::fs::hard_link(store.upload_path(&id), dir.path().join("published")).unwrap();
        let hasher = ResumableHasher::new(berth_oci::Algorithm::Sha256);
        let body: ByteStream = Box::pin(futures_util::stream::once(async {
            Ok(Bytes::from_static(b"more"))
        }));
        let err = store
            .append_upload(&id, 0, hasher, body, BodyLength::AtMost(100))
            .await;
        assert!(matches!(err, Err(BlobError::NotFound)));
        assert_eq!(std::fs::read(dir.path().join("published")).unwrap(), b"");
    }

    #[tokio::test]
    async fn a_truncated_upload_is_reported_not_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let id = UploadId::from_random([7; 16]);
        store.create_upload(&id).await.unwrap();
        let hasher = ResumableHasher::new(berth_oci::Algorithm::Sha256);
        let body: ByteStream = Box::pin(futures_util::stream::once(async {
            Ok(Bytes::from_static(b"more"))
        }));
        let err = store
            .append_upload(&id, 10, hasher, body, BodyLength::AtMost(100))
            .await;
        assert!(matches!(err, Err(BlobError::UploadTruncated)));
    }
}
