//! Streams a byte range of a file as pooled chunks.
//!
//! Chunks whose pages are already cached are read on the thread that polls the stream, so
//! the bytes are still hot in that core's cache when the same thread writes them to the
//! socket, and no thread hand-off happens per chunk. Only a chunk that would wait for the
//! disk (`preadv2` with `RWF_NOWAIT` says so) is read on a blocking thread.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::Stream;
use rustix::io::{Errno, ReadWriteFlags};
use tokio::task::JoinHandle;

use crate::buffer_pool::BufferPool;

/// The bytes `[offset, offset + remaining)` of a file, as a stream of chunks.
pub(crate) struct FileChunks {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    pool: Arc<BufferPool>,
    /// A chunk being read on a blocking thread because its pages were not cached.
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileChunks {
    /// Streams `len` bytes of `file` from `offset`, in chunks of the pool's buffer size.
    pub(crate) fn new(file: File, offset: u64, len: u64, pool: Arc<BufferPool>) -> Self {
        FileChunks {
            file: Arc::new(file),
            offset,
            remaining: len,
            pool,
            pending: None,
        }
    }

    fn next_len(&self) -> usize {
        self.remaining.min(self.pool.buffer_size() as u64) as usize
    }

    /// Reads the next chunk if every byte of it can come from the page cache without
    /// waiting; an empty chunk means "not cached".
    fn read_cached(&self) -> io::Result<Bytes> {
        let want = self.next_len();
        self.pool.fill(|buf| {
            let mut slices = [IoSliceMut::new(&mut buf[..want])];
            match rustix::io::preadv2(
                &*self.file,
                &mut slices,
                self.offset,
                ReadWriteFlags::NOWAIT,
            ) {
                Ok(n) => Ok(n),
                Err(Errno::AGAIN | Errno::OPNOTSUPP) => Ok(0),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Starts reading the next chunk on a blocking thread.
    fn read_blocking(&self) -> JoinHandle<io::Result<Bytes>> {
        let (file, pool, offset, want) = (
            self.file.clone(),
            self.pool.clone(),
            self.offset,
            self.next_len(),
        );
        tokio::task::spawn_blocking(move || {
            pool.fill(|buf| file.read_exact_at(&mut buf[..want], offset).map(|()| want))
        })
    }

    fn advance(&mut self, chunk: io::Result<Bytes>) -> Poll<Option<io::Result<Bytes>>> {
        match chunk {
            Ok(chunk) => {
                self.offset += chunk.len() as u64;
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            Err(e) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let pending = match &mut this.pending {
            Some(pending) => pending,
            None => match this.read_cached() {
                Ok(chunk) if !chunk.is_empty() => return this.advance(Ok(chunk)),
                Ok(_) => this.pending.insert(this.read_blocking()),
                Err(e) => return this.advance(Err(e)),
            },
        };
        let chunk = ready!(Pin::new(pending).poll(cx)).unwrap_or_else(|e| Err(io::Error::other(e)));
        this.pending = None;
        this.advance(chunk)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::TryStreamExt;
    use rustix::fs::Advice;

    use super::*;

    const CHUNK: usize = 4096;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        (dir, File::open(path).unwrap())
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    async fn collect(chunks: FileChunks) -> io::Result<Vec<u8>> {
        let parts: Vec<Bytes> = chunks.try_collect().await?;
        Ok(parts.concat())
    }

    #[tokio::test]
    async fn a_range_comes_back_exactly_in_pool_sized_chunks() {
        let data = pattern(3 * CHUNK + 123);
        let (_dir, file) = file_with(&data);
        let pool = BufferPool::new(CHUNK, 2);
        let chunks: Vec<Bytes> = FileChunks::new(file, 100, 2 * CHUNK as u64 + 50, pool)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(chunks.concat(), data[100..100 + 2 * CHUNK + 50]);
    }

    #[tokio::test]
    async fn the_blocking_read_yields_what_the_cached_read_does() {
        let data = pattern(2 * CHUNK);
        let (_dir, file) = file_with(&data);
        let chunks = FileChunks::new(
            file,
            CHUNK as u64 / 2,
            CHUNK as u64,
            BufferPool::new(CHUNK, 2),
        );
        let blocking = chunks.read_blocking().await.unwrap().unwrap();
        assert_eq!(blocking, data[CHUNK / 2..CHUNK / 2 + CHUNK]);
        let cached = chunks.read_cached().unwrap();
        assert!(
            blocking.starts_with(&cached),
            "a cached read is a prefix of the chunk"
        );
    }

    #[tokio::test]
    async fn a_file_evicted_from_the_page_cache_still_reads_back_whole() {
        let data = pattern(64 * CHUNK);
        let (_dir, file) = file_with(&data);
        file.sync_all().unwrap();
        rustix::fs::fadvise(&file, 0, None, Advice::DontNeed).unwrap();
        let pool = BufferPool::new(CHUNK, 2);
        assert_eq!(
            collect(FileChunks::new(file, 0, data.len() as u64, pool))
                .await
                .unwrap(),
            data
        );
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_fails_instead_of_hanging() {
        let (_dir, file) = file_with(&pattern(CHUNK));
        let pool = BufferPool::new(CHUNK, 2);
        let err = collect(FileChunks::new(file, 0, 2 * CHUNK as u64, pool))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
