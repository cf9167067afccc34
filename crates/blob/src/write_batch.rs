//! Gathers upload body frames into pooled buffers for the writer thread.
//!
//! Body frames arrive in whatever sizes the connection delivers; the writer thread is
//! woken once per full batch instead of once per frame. Each batch sits in its
//! page-aligned buffer at the same offset modulo a page as its first byte has in the
//! file, so the kernel's copy into the page cache never hits the slow case described in
//! [`crate::buffer_pool`].

use std::sync::Arc;

use bytes::Bytes;

use crate::buffer_pool::{BufferPool, PAGE, PooledBuffer};

/// Batches the bytes of one append.
pub(crate) struct WriteBatcher {
    pool: Arc<BufferPool>,
    /// The buffer being filled, taken from the pool on the first byte.
    current: Option<PooledBuffer>,
    /// Where the current batch starts in its buffer.
    start: usize,
    /// One past the last byte gathered.
    end: usize,
}

impl WriteBatcher {
    /// Batches bytes that will be written to the file from `offset` on, each batch as
    /// large as the pool's buffers allow.
    pub(crate) fn new(pool: Arc<BufferPool>, offset: u64) -> Self {
        debug_assert_eq!(pool.buffer_size() % PAGE, 0);
        let start = (offset % PAGE as u64) as usize;
        WriteBatcher {
            pool,
            current: None,
            start,
            end: start,
        }
    }

    /// Takes as much of `bytes` as the current batch has room for. Returns the batch if
    /// that filled it, and the bytes not taken yet.
    pub(crate) fn push<'a>(&mut self, bytes: &'a [u8]) -> (Option<Bytes>, &'a [u8]) {
        let pool = &self.pool;
        let buf = self.current.get_or_insert_with(|| pool.take());
        let room = buf.as_slice().len() - self.end;
        let (taken, rest) = bytes.split_at(room.min(bytes.len()));
        buf.as_mut_slice()[self.end..self.end + taken.len()].copy_from_slice(taken);
        self.end += taken.len();
        let full = (self.end == self.pool.buffer_size()).then(|| self.seal());
        (full, rest)
    }

    /// The last, partly filled batch, if any bytes are left.
    pub(crate) fn finish(mut self) -> Option<Bytes> {
        (self.end > self.start).then(|| self.seal())
    }

    /// Hands out the current batch. It ended on a page boundary (or the append did), so
    /// the next batch starts at the beginning of a new buffer.
    fn seal(&mut self) -> Bytes {
        let buf = self.current.take().expect("a batch being filled");
        let batch = buf.freeze(self.start..self.end);
        (self.start, self.end) = (0, 0);
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_all(offset: u64, frames: &[&[u8]], size: usize) -> Vec<Bytes> {
        let mut batcher = WriteBatcher::new(BufferPool::new(size, 4), offset);
        let mut batches = Vec::new();
        for frame in frames {
            let mut rest = *frame;
            while !rest.is_empty() {
                let (full, left) = batcher.push(rest);
                batches.extend(full);
                rest = left;
            }
        }
        batches.extend(batcher.finish());
        batches
    }

    #[test]
    fn frames_are_regrouped_into_full_batches_in_order() {
        let data: Vec<u8> = (0..3 * PAGE + 100).map(|i| (i % 253) as u8).collect();
        let frames: Vec<&[u8]> = data.chunks(1000).collect();
        let batches = batch_all(0, &frames, PAGE);
        assert_eq!(
            batches.iter().map(Bytes::len).collect::<Vec<_>>(),
            [PAGE, PAGE, PAGE, 100]
        );
        assert_eq!(batches.concat(), data);
    }

    #[test]
    fn each_byte_sits_at_its_file_offset_modulo_a_page() {
        let data = vec![7u8; 2 * PAGE];
        let offset = 5 * PAGE as u64 + 17;
        let batches = batch_all(offset, &[&data], PAGE);
        assert_eq!(
            batches[0].len(),
            PAGE - 17,
            "the first batch ends on a page boundary"
        );
        let mut at = offset;
        for batch in &batches {
            assert_eq!(batch.as_ptr() as usize % PAGE, (at % PAGE as u64) as usize);
            at += batch.len() as u64;
        }
        assert_eq!(batches.concat(), data);
    }

    #[test]
    fn nothing_pushed_means_no_batch() {
        assert!(batch_all(123, &[], PAGE).is_empty());
    }
}
