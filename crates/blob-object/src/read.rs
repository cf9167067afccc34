//! Streamed reads that fail, rather than hang, when the backend stops sending.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use tokio::time::{Instant, Sleep};

/// A backend's byte stream that fails with `TimedOut` once it has sent nothing for
/// `idle` while being waited on.
pub(crate) struct IdleTimeout {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    ended: bool,
}

impl IdleTimeout {
    /// Watches `inner`.
    pub(crate) fn new(
        inner: BoxStream<'static, object_store::Result<Bytes>>,
        idle: Duration,
    ) -> Self {
        IdleTimeout {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            ended: false,
        }
    }
}

impl Stream for IdleTimeout {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                let next = Instant::now() + self.idle;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.ended = true;
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the object store sent nothing for too long",
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn a_silent_source_fails_after_the_idle_time() {
        let source = futures_util::stream::iter([Ok(Bytes::from_static(b"a"))])
            .chain(futures_util::stream::pending())
            .boxed();
        let mut s = IdleTimeout::new(source, Duration::from_secs(5));
        assert_eq!(s.next().await.unwrap().unwrap(), "a");
        let started = Instant::now();
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(s.next().await.is_none());
    }
}
