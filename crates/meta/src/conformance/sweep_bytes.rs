//! Stand-ins for a blob store's side of a sweep ([`SweepBytes`]), for the tests of the
//! metadata adapters: bytes kept in memory, and retires that behave as a test needs.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use async_trait::async_trait;
use berth_oci::Digest;

use crate::{Moved, SweepBytes, SweepFailed};

/// The retire a [`RetireWith`] starts.
pub type BoxedRetire<'a> = Pin<Box<dyn Future<Output = Result<(), SweepFailed>> + Send + 'a>>;

/// Sweep bytes whose retire is a closure of the test's (it may pause, fail or count),
/// and whose discard and restore do nothing.
pub struct RetireWith<F>(pub F);

#[async_trait]
impl<'a, F> SweepBytes for RetireWith<F>
where
    F: Fn() -> BoxedRetire<'a> + Send + Sync,
{
    async fn retire(&self, _: &Digest, _: &str, _: Moved<'_>) -> Result<(), SweepFailed> {
        (self.0)().await
    }

    async fn discard(&self, _digest: &Digest, _token: &str) -> Result<(), SweepFailed> {
        Ok(())
    }

    async fn restore(&self, _digest: &Digest, _token: &str) -> Result<(), SweepFailed> {
        Ok(())
    }
}

/// Sweep bytes with nothing behind them: every operation succeeds.
pub struct NoBytes;

#[async_trait]
impl SweepBytes for NoBytes {
    async fn retire(&self, _: &Digest, _: &str, _: Moved<'_>) -> Result<(), SweepFailed> {
        Ok(())
    }

    async fn discard(&self, _digest: &Digest, _token: &str) -> Result<(), SweepFailed> {
        Ok(())
    }

    async fn restore(&self, _digest: &Digest, _token: &str) -> Result<(), SweepFailed> {
        Ok(())
    }
}

/// Published and retired blobs in memory, moved as a blob store moves them.
#[derive(Default)]
pub struct MemoryBytes {
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    published: HashSet<Digest>,
    retired: HashSet<(Digest, String)>,
}

impl MemoryBytes {
    /// Publishes `digest`'s bytes (kept if present).
    pub fn publish(&self, digest: &Digest) {
        self.state.lock().unwrap().published.insert(digest.clone());
    }

    /// Whether `digest`'s bytes are published.
    pub fn is_published(&self, digest: &Digest) -> bool {
        self.state.lock().unwrap().published.contains(digest)
    }

    /// How many retired copies are kept, of any blob.
    pub fn retired(&self) -> usize {
        self.state.lock().unwrap().retired.len()
    }
}

#[async_trait]
impl SweepBytes for MemoryBytes {
    async fn retire(&self, digest: &Digest, token: &str, _: Moved<'_>) -> Result<(), SweepFailed> {
        let mut held = self.state.lock().unwrap();
        if held.published.remove(digest) {
            held.retired.insert((digest.clone(), token.to_owned()));
        }
        Ok(())
    }

    async fn discard(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        let key = (digest.clone(), token.to_owned());
        self.state.lock().unwrap().retired.remove(&key);
        Ok(())
    }

    async fn restore(&self, digest: &Digest, token: &str) -> Result<(), SweepFailed> {
        let mut held = self.state.lock().unwrap();
        if held.retired.contains(&(digest.clone(), token.to_owned())) {
            held.published.insert(digest.clone());
        }
        Ok(())
    }
}
