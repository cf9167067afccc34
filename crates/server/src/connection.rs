//! Guards each client connection against a client that stalls: one that never finishes
//! its request head, keeps an idle connection open, stops sending a body half-way, or
//! stops reading a response. Each such connection is dropped after its timeout, so no
//! client can hold sockets, tasks or buffers for ever. A transfer that makes progress,
//! however slowly, is never cut.
//!
//! Three parts cooperate through one [`Activity`] record per connection:
//! - [`WatchedIo`] wraps the socket: it notes when a request head starts arriving and
//!   fails a write that has been blocked (the client not reading) for too long;
//! - [`Watched`] wraps the HTTP service: it counts requests in flight, times out request
//!   bodies that send nothing, and notes progress of response bodies (HTTP/2 never
//!   blocks a socket write when a client's flow-control window is shut);
//! - [`watch`] checks the record and resolves when the connection must go.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use berth_api::ClientAddr;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a connection may wait on its client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its header section.
    pub header_read: Duration,
    /// An open connection with no request in progress.
    pub idle: Duration,
    /// The window over which a request body must send at least `body_min_rate` bytes a
    /// second (and at least one byte).
    pub body_idle: Duration,
    /// Bytes a second a request body must send, averaged over `body_idle`.
    pub body_min_rate: u64,
    /// A response the client does not read.
    pub send: Duration,
}

/// What one connection is doing, shared by its socket wrapper, its service and its
/// watchdog. Times are milliseconds since `epoch`.
pub struct Activity {
    epoch: Instant,
    timeouts: Timeouts,
    /// Requests handed to the service whose responses are not finished.
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened).
    idle_since: AtomicU64,
    /// When bytes of a new request head first arrived while idle; `u64::MAX` when none.
    head_started: AtomicU64,
    /// Response bodies not yet sent to their end.
    bodies: AtomicUsize,
    /// When a response body last yielded bytes (or was created).
    body_progress: AtomicU64,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    /// A record for a connection opened now.
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Activity {
            epoch: Instant::now(),
            timeouts,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NO_HEAD),
            bodies: AtomicUsize::new(0),
            body_progress: AtomicU64::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_started.store(self.now(), Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(NO_HEAD, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Why the connection must be dropped at `now`, and otherwise how long until the
    /// next moment it might have to be.
    fn check(&self, now: u64) -> Result<Duration, &'static str> {
        let t = &self.timeouts;
        let ms = |d: Duration| d.as_millis() as u64;
        let mut deadlines = Vec::with_capacity(2);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let head = self.head_started.load(Ordering::Relaxed);
            deadlines.push(if head == NO_HEAD {
                (self.idle_since.load(Ordering::Relaxed) + ms(t.idle), "idle")
            } else {
                (head + ms(t.header_read), "request head not sent in time")
            });
        }
        if self.bodies.load(Ordering::Acquire) > 0 {
            let progress = self.body_progress.load(Ordering::Relaxed);
            deadlines.push((progress + ms(t.send), "response not read in time"));
        }
        let mut next = ms(t.header_read.min(t.idle).min(t.send));
        for (deadline, reason) in deadlines {
            if now >= deadline {
                return Err(reason);
            }
            next = next.min(deadline - now);
        }
        Ok(Duration::from_millis(next.max(10)))
    }
}

/// Resolves once the connection has waited on its client for too long, with the reason.
pub async fn watch(activity: Arc<Activity>) -> &'static str {
    loop {
        match activity.check(activity.now()) {
            Ok(wait) => tokio::time::sleep(wait).await,
            Err(reason) => return reason,
        }
    }
}

/// A socket that reports reads to its connection's [`Activity`] and fails a write the
/// client has not let through for the send timeout.
pub struct WatchedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    /// Running while a write is blocked on the client.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<T> WatchedIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        WatchedIo {
            inner,
            activity,
            write_stall: None,
        }
    }

    /// Turns a blocked write into an error once it has been blocked for too long.
    fn stalled<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.write_stall = None;
            return poll;
        }
        let send = self.activity.timeouts.send;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send)));
        if stall.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stalled(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stalled(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.stalled(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The HTTP service of one connection, watched by its [`Activity`]; it tells each
/// request which client sent it.
#[derive(Clone)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    peer: IpAddr,
}

impl<S> Watched<S> {
    /// Wraps the service of a connection from `peer`.
    pub fn new(inner: S, activity: Arc<Activity>, peer: IpAddr) -> Self {
        Watched {
            inner,
            activity,
            peer,
        }
    }
}

/// Counts a request as in flight until dropped (with its response body, or with its
/// handler when the client goes away first).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, std::convert::Infallible>> + Send>>;

impl<S, B> hyper::service::Service<Request<B>> for Watched<S>
where
    S: hyper::service::Service<
            Request<MinRateBody<B>>,
            Response = Response<Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Response = Response<TrackedBody>;
    type Error = std::convert::Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<B>) -> Self::Future {
        self.activity.request_started();
        let in_flight = InFlight(self.activity.clone());
        let t = &self.activity.timeouts;
        let (window, min_rate) = (t.body_idle, t.body_min_rate);
        let mut req = req.map(|body| MinRateBody::new(body, window, min_rate));
        // Only limits on request bodies use the client's address.
        if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
            req.extensions_mut().insert(ClientAddr(self.peer));
        }
        let response = self.inner.call(req);
        let activity = self.activity.clone();
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody::new(body, activity, in_flight)))
        })
    }
}

/// A request body that fails when, over a window of `body_idle` spent waiting for it, it
/// sent nothing or fewer than `body_min_rate` bytes a second: a client that trickles
/// cannot hold an upload slot for ever. Only time the handler spends waiting for the
/// next frame counts (time it spends writing what it got does not).
pub struct MinRateBody<B> {
    inner: B,
    window: Duration,
    /// Bytes the window must bring (at least one).
    window_bytes: u64,
    /// Bytes received in the current window.
    received: u64,
    /// Time spent waiting in the current window, before the wait in progress.
    waited: Duration,
    /// When the wait in progress began.
    waiting_since: Option<Instant>,
    /// Fires when the wait in progress fills the window.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> MinRateBody<B> {
    fn new(inner: B, window: Duration, min_rate: u64) -> Self {
        MinRateBody {
            inner,
            window,
            window_bytes: min_rate.saturating_mul(window.as_secs()).max(1),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        }
    }

    /// Ends the wait in progress at `now`; fails when it closed a window that brought
    /// too little, and otherwise starts a new window when one was filled.
    fn end_wait(&mut self, now: Instant) -> Result<(), RequestBodyError> {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now - since;
        }
        if self.waited < self.window {
            return Ok(());
        }
        if self.received < self.window_bytes {
            return Err(RequestBodyError::TooSlow {
                received: self.received,
                window: self.window,
            });
        }
        self.received = 0;
        self.waited = Duration::ZERO;
        Ok(())
    }
}

/// Why a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// The client sent too little while the handler waited for it.
    #[error("the client sent {received} body bytes in {window:?}, too few")]
    TooSlow {
        /// Bytes it sent in the window.
        received: u64,
        /// The window.
        window: Duration,
    },
    /// The connection failed.
    #[error(transparent)]
    Connection(Box<dyn std::error::Error + Send + Sync>),
}

impl<B> HttpBody for MinRateBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(frame) => {
                    if let Some(since) = this.waiting_since.take() {
                        this.waited += since.elapsed();
                    }
                    if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
                        && let Some(data) = data
                    {
                        this.received += data.len() as u64;
                    }
                    // A window filled while frames kept coming is judged at its end too.
                    if this.waited >= this.window
                        && let Err(e) = this.end_wait(Instant::now())
                    {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(
                        frame.map(|f| f.map_err(|e| RequestBodyError::Connection(e.into()))),
                    );
                }
                Poll::Pending => {
                    let since = *this.waiting_since.get_or_insert_with(Instant::now);
                    let deadline = since + this.window.saturating_sub(this.waited);
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if let Err(e) = this.end_wait(Instant::now()) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    // A new window began: wait on.
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that reports its progress to the connection's [`Activity`], and
/// ends its request's time in flight when dropped.
pub struct TrackedBody {
    inner: Body,
    activity: Arc<Activity>,
    _in_flight: InFlight,
}

impl TrackedBody {
    fn new(inner: Body, activity: Arc<Activity>, in_flight: InFlight) -> Self {
        activity
            .body_progress
            .store(activity.now(), Ordering::Relaxed);
        activity.bodies.fetch_add(1, Ordering::AcqRel);
        TrackedBody {
            inner,
            activity,
            _in_flight: in_flight,
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.activity.bodies.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let activity = &self.activity;
        activity
            .body_progress
            .store(activity.now(), Ordering::Relaxed);
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header_read: Duration::from_millis(100),
            idle: Duration::from_millis(300),
            body_idle: Duration::from_millis(100),
            body_min_rate: 0,
            send: Duration::from_millis(200),
        }
    }

    /// A request body whose frames a test sends.
    struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    /// A body guarded over a 10 s window at 100 bytes a second, and its feed.
    fn guarded() -> (tokio::sync::mpsc::Sender<Bytes>, MinRateBody<Fed>) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        (tx, MinRateBody::new(Fed(rx), Duration::from_secs(10), 100))
    }

    /// Feeds `bytes` every second for `seconds`, while the handler waits for the body;
    /// returns whether the body failed as too slow.
    async fn trickle(bytes: usize, seconds: u64) -> bool {
        use http_body_util::BodyExt;
        let (tx, mut body) = guarded();
        let feeder = tokio::spawn(async move {
            for _ in 0..seconds {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tx.send(Bytes::from(vec![0; bytes])).await.is_err() {
                    return;
                }
            }
        });
        let failed = loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(RequestBodyError::TooSlow { .. })) => break true,
                Some(Err(e)) => panic!("{e}"),
                None => break false,
            }
        };
        feeder.abort();
        failed
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_trickles_below_the_minimum_rate_fails() {
        assert!(trickle(10, 60).await, "10 bytes a second, 100 required");
        assert!(trickle(0, 60).await, "nothing at all");
        assert!(!trickle(150, 60).await, "150 bytes a second is enough");
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_spends_elsewhere_does_not_count() {
        use http_body_util::BodyExt;
        let (tx, mut body) = guarded();
        for _ in 0..5 {
            tx.send(Bytes::from(vec![0; 300])).await.unwrap();
            assert!(body.frame().await.unwrap().is_ok());
            // Writing what arrived takes long; the client is not waited on meanwhile.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        drop(tx);
        assert!(
            body.frame().await.is_none(),
            "the body ends without failing"
        );
    }

    #[test]
    fn an_idle_connection_expires_after_the_idle_timeout() {
        let a = Activity::new(timeouts());
        assert!(a.check(299).is_ok());
        assert_eq!(a.check(300), Err("idle"));
    }

    #[test]
    fn a_started_head_must_finish_within_the_header_timeout() {
        let a = Activity::new(timeouts());
        a.head_started.store(50, Ordering::Relaxed);
        assert!(a.check(149).is_ok());
        assert_eq!(a.check(150), Err("request head not sent in time"));
        // Once the request is dispatched, the head timer no longer applies.
        a.request_started();
        assert!(a.check(10_000).is_ok());
    }

    #[test]
    fn a_response_nobody_reads_expires_after_the_send_timeout() {
        let a = Activity::new(timeouts());
        a.request_started();
        let body = TrackedBody::new(Body::empty(), a.clone(), InFlight(a.clone()));
        assert!(a.check(199).is_ok());
        assert_eq!(a.check(200), Err("response not read in time"));
        drop(body);
        // The request is over: the connection is idle from now on.
        assert!(a.check(200).is_ok());
    }
}
