//! Putting a part of an S3 multipart upload while its bytes are still arriving.
//!
//! `object_store` puts a part from bytes held whole, so a part could only start once the
//! body had delivered all of it. When a body declares its length, the store knows ahead
//! which parts it will fill, and this module sends such a part as its bytes arrive: an
//! `UploadPart` request of a declared length, whose body is each byte as it comes. A
//! request cut short (the client's body failed) is never stored as a part.
//!
//! Its payload cannot be signed (SigV4 signs the payload's SHA-256 in the headers, before
//! the body), so it is sent `UNSIGNED-PAYLOAD` and checked afterwards instead: the MD5 of
//! the bytes sent must be the part's entity tag, which S3 and its compatibles compute as
//! the MD5 of the bytes they received. That entity tag is therefore known once the bytes
//! are all sent, before the store answers. A part whose check or request fails is put
//! again whole, signed, through `object_store` and its retries, from the bytes the append
//! holds anyway (the same part number: the new part replaces it). After
//! [`FAILURES_TO_STOP`] such failures in a row (a bucket encrypted with KMS keys, whose
//! entity tags are no MD5, or a server refusing unsigned payloads) parts are no longer
//! streamed for [`PAUSE`]; then one part is streamed again, and its outcome decides (a
//! run of passing failures, a store's outage or clients the store timed out, must not
//! stop streaming for good).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use md5::{Digest as _, Md5};
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::HttpRequestBody;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::signer::Signer as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Streamed parts that may fail in a row before parts are no longer streamed.
const FAILURES_TO_STOP: u32 = 3;

/// How long parts are put whole after streaming stopped, before one is streamed again.
const PAUSE: Duration = Duration::from_secs(600);

/// Most bytes of an error answer's body read and reported.
const EXCERPT: usize = 512;

/// Why a part could not be streamed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// The credentials or the object's URL could not be had.
    #[error("preparing the request failed: {0}")]
    Prepare(#[from] object_store::Error),
    /// The request could not be built.
    #[error("building the request failed: {0}")]
    Build(#[from] http::Error),
    /// The request failed on its way (connection, body).
    #[error("the request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The store did not answer in time once the part's bytes were all handed over.
    #[error("no answer within {0:?} of the part's last byte")]
    TimedOut(Duration),
    /// The server refused it.
    #[error("the server answered {status}: {body}")]
    Refused {
        /// The answer's status.
        status: reqwest::StatusCode,
        /// The start of its body.
        body: String,
    },
    /// The entity tag the server gave is not the MD5 of the bytes sent.
    #[error("the part's entity tag {e_tag} is not the MD5 of its bytes ({md5})")]
    Mismatch {
        /// What the server answered.
        e_tag: String,
        /// What was sent.
        md5: String,
    },
    /// The request's task ended abnormally.
    #[error("the request's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Sends parts of S3 multipart uploads as their bytes arrive.
pub(crate) struct PartStreamer {
    /// The store, for its credentials and its objects' URLs.
    s3: AmazonS3,
    /// The region requests are signed for.
    region: String,
    http: reqwest::Client,
    /// How long the store has to answer once a part's bytes are all handed over.
    timeout: Duration,
    /// Streamed parts that failed in a row, and when the last one did.
    failures: Mutex<Failures>,
}

/// Streamed parts that failed in a row.
#[derive(Default)]
struct Failures {
    in_a_row: u32,
    /// When the last one failed, or a part was let try again after [`PAUSE`].
    last: Option<Instant>,
}

/// How the streamer's connections are made: as the store's own client makes them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections {
    /// Plain HTTP allowed.
    pub allow_http: bool,
    /// TLS certificates not checked.
    pub allow_invalid_certificates: bool,
    /// HTTP/1 only.
    pub http1_only: bool,
    /// HTTP/2 only, without negotiating it.
    pub http2_only: bool,
    /// The proxy every request goes through.
    pub proxy_url: Option<String>,
    /// The proxy's certificate authority, in PEM.
    pub proxy_ca_certificate: Option<String>,
    /// Hosts reached without the proxy (as `NO_PROXY` lists them).
    pub proxy_excludes: Option<String>,
    /// The `User-Agent` of each request.
    pub user_agent: Option<String>,
}

impl Connections {
    /// A client making its connections so, which gives up connecting after 5 s.
    fn client(&self) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .https_only(!self.allow_http)
            .danger_accept_invalid_certs(self.allow_invalid_certificates);
        if let Some(url) = &self.proxy_url {
            let mut proxy = reqwest::Proxy::all(url)?;
            if let Some(pem) = &self.proxy_ca_certificate {
                builder =
                    builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
            }
            if let Some(excludes) = &self.proxy_excludes {
                proxy = proxy.no_proxy(reqwest::NoProxy::from_string(excludes));
            }
            builder = builder.proxy(proxy);
        }
        if let Some(agent) = &self.user_agent {
            builder = builder.user_agent(agent);
        }
        if self.http1_only {
            builder = builder.http1_only();
        }
        if self.http2_only {
            builder = builder.http2_prior_knowledge();
        }
        builder.build()
    }
}

/// A part being streamed: feed it exactly its length, then [`StreamedPart::finish`].
pub(crate) struct StreamedPart {
    feed: mpsc::UnboundedSender<Bytes>,
    /// The MD5 of the part's bytes, once they are all sent.
    md5: oneshot::Receiver<String>,
    request: JoinHandle<Result<PartId, StreamError>>,
    /// How long the store has to answer once the part's bytes are all handed over.
    timeout: Duration,
}

impl PartStreamer {
    /// A streamer for `s3`'s parts, signed for `region`, connecting as `connections`
    /// say, whose store has `timeout` to answer once a part's bytes are all handed over.
    ///
    /// Until then the request lasts as long as the body takes to bring the part's bytes
    /// (a request timeout would cut short every part of a client slower than a part per
    /// `timeout`, and have it put again whole): the caller's body has timeouts of its
    /// own, and a body that fails cuts the part short ([`StreamedPart::abort`]).
    pub(crate) fn new(
        s3: AmazonS3,
        region: String,
        timeout: Duration,
        connections: &Connections,
    ) -> Result<Self, reqwest::Error> {
        let http = connections.client()?;
        Ok(PartStreamer {
            s3,
            region,
            http,
            timeout,
            failures: Mutex::default(),
        })
    }

    /// Whether to stream the next part: false once streamed parts failed
    /// [`FAILURES_TO_STOP`] times in a row, until [`PAUSE`] has passed since; then true
    /// for one caller, which is to stream a part (whose outcome decides), and false for
    /// the others for another pause.
    pub(crate) fn enabled(&self) -> bool {
        let mut failures = self.failures();
        if failures.in_a_row < FAILURES_TO_STOP {
            return true;
        }
        let now = Instant::now();
        if failures.last.is_some_and(|last| now < last + PAUSE) {
            return false;
        }
        failures.last = Some(now);
        true
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures
            .lock()
            .expect("the failure count is never poisoned")
    }

    /// Starts putting part `index` (from 0) of multipart upload `upload_id` into `path`:
    /// `len` bytes, to be fed to the returned part.
    pub(crate) fn start(
        self: &Arc<Self>,
        path: Path,
        upload_id: String,
        index: usize,
        len: u64,
    ) -> StreamedPart {
        let (feed, bytes) = mpsc::unbounded_channel();
        let (sent, md5) = oneshot::channel();
        let this = self.clone();
        let request =
            tokio::spawn(async move { this.put(&path, &upload_id, index, len, bytes, sent).await });
        StreamedPart {
            feed,
            md5,
            request,
            timeout: self.timeout,
        }
    }

    /// Records how a streamed part ended.
    pub(crate) fn record(&self, outcome: &Result<PartId, StreamError>) {
        let mut failures = self.failures();
        let Err(e) = outcome else {
            *failures = Failures::default();
            return;
        };
        failures.in_a_row += 1;
        failures.last = Some(Instant::now());
        tracing::warn!(error = %e, "a part could not be streamed; it is put whole");
        if failures.in_a_row == FAILURES_TO_STOP {
            tracing::warn!(
                "parts failed to stream {FAILURES_TO_STOP} times in a row; they are put whole \
                 for the next {PAUSE:?}"
            );
        }
    }

    async fn put(
        &self,
        path: &Path,
        upload_id: &str,
        index: usize,
        len: u64,
        bytes: mpsc::UnboundedReceiver<Bytes>,
        sent: oneshot::Sender<String>,
    ) -> Result<PartId, StreamError> {
        let credential = self.s3.credentials().get_credential().await?;
        // The object's URL as `object_store` builds it (endpoint, bucket, encoded key).
        let mut url = self
            .s3
            .signed_url(http::Method::PUT, path, Duration::from_secs(60))
            .await?;
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair("partNumber", &(index + 1).to_string())
            .append_pair("uploadId", upload_id);
        let mut signed = http::Request::builder()
            .method(http::Method::PUT)
            .uri(url.as_str())
            .body(HttpRequestBody::empty())?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .with_sign_payload(false)
            .authorize(&mut signed, None);
        let (md5_tx, md5_rx) = oneshot::channel();
        let response = self
            .http
            .put(url)
            .headers(signed.headers().clone())
            .header(http::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(passed_on(
                bytes,
                len,
                [md5_tx, sent],
            )))
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = excerpt(response).await;
            return Err(StreamError::Refused { status, body });
        }
        let e_tag = response
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // The body was sent whole, so its MD5 is known.
        let md5 = md5_rx.await.unwrap_or_default();
        if !is_md5(&e_tag, &md5) {
            return Err(StreamError::Mismatch { e_tag, md5 });
        }
        // Recorded as the store wrote it: the store compares it at completion.
        Ok(PartId { content_id: e_tag })
    }
}

impl StreamedPart {
    /// Sends the part's next bytes. A request that already failed drops them: its
    /// outcome says so.
    pub(crate) fn send(&self, bytes: Bytes) {
        let _ = self.feed.send(bytes);
    }

    /// Ends a part fed all its bytes: the MD5 of its bytes (sent once they all are;
    /// never, should its request fail before), which [`e_tag_of`] makes the entity tag
    /// it will have, and its request, which answers once it is stored (and checks it has
    /// that entity tag). From now on the store has the streamer's timeout to take the
    /// bytes and answer; past it the request is dropped.
    pub(crate) fn finish(
        self,
    ) -> (
        oneshot::Receiver<String>,
        impl Future<Output = Result<PartId, StreamError>> + Send + 'static,
    ) {
        drop(self.feed);
        let (mut request, timeout) = (self.request, self.timeout);
        let answered = async move {
            match tokio::time::timeout(timeout, &mut request).await {
                Ok(joined) => joined?,
                Err(_) => {
                    request.abort();
                    Err(StreamError::TimedOut(timeout))
                }
            }
        };
        (self.md5, answered)
    }

    /// Cuts the part short (it was not fed all its bytes, so the server never stores
    /// it): its request is dropped at once, even one waiting for a store that stopped
    /// reading, and is over when this returns.
    pub(crate) async fn abort(self) {
        drop(self.feed);
        self.request.abort();
        let _ = self.request.await;
    }
}

/// The start of an answer's body, to report it: at most [`EXCERPT`] bytes, cut on a
/// character boundary, and nothing more is read.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < EXCERPT
        && let Ok(Some(chunk)) = response.chunk().await
    {
        body.extend_from_slice(&chunk);
    }
    body.truncate(EXCERPT);
    let text = String::from_utf8_lossy(&body);
    text[..text.floor_char_boundary(EXCERPT)].to_owned()
}

/// The entity tag S3 gives a part whose bytes have this MD5 (in hex).
pub(crate) fn e_tag_of(md5: &str) -> String {
    format!("\"{md5}\"")
}

/// True when `e_tag`, as a store answered it, is the MD5 `md5` (in hex): S3 quotes it in
/// lower case, Aliyun OSS in upper case, and some stores leave the quotes out.
fn is_md5(e_tag: &str, md5: &str) -> bool {
    let bare = e_tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(e_tag);
    !md5.is_empty() && bare.eq_ignore_ascii_case(md5)
}

/// The `len` bytes arriving on `bytes`, as a request body, whose MD5 (in hex) goes to
/// each of `md5` with the last of them. Bytes that stop short fail the body, and the
/// request.
fn passed_on(
    bytes: mpsc::UnboundedReceiver<Bytes>,
    len: u64,
    md5: [oneshot::Sender<String>; 2],
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let state = (bytes, len, Md5::new(), Some(md5));
    futures_util::stream::unfold(state, |(mut bytes, left, mut hash, md5)| async move {
        let md5 = md5?;
        let Some(piece) = bytes.recv().await else {
            let short = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the part's bytes stopped short",
            );
            return Some((Err(short), (bytes, 0, hash, None)));
        };
        let piece = piece.slice(..piece.len().min(left as usize));
        hash.update(&piece);
        let left = left - piece.len() as u64;
        if left > 0 {
            return Some((Ok(piece), (bytes, left, hash, Some(md5))));
        }
        let hex = hex::encode(hash.finalize_reset());
        for to in md5 {
            let _ = to.send(hex.clone());
        }
        Some((Ok(piece), (bytes, 0, hash, None)))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_testkit_s3::S3Server;
    use object_store::ObjectStore;
    use object_store::aws::AmazonS3Builder;
    use object_store::multipart::MultipartStore;

    use super::*;

    fn s3(server: &S3Server) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(server.endpoint())
            .with_region(berth_testkit_s3::REGION)
            .with_bucket_name(server.bucket())
            .with_access_key_id(server.access_key_id())
            .with_secret_access_key(server.secret_access_key())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    fn streamer(s3: AmazonS3, timeout: Duration) -> Arc<PartStreamer> {
        let plain = Connections {
            allow_http: true,
            ..Connections::default()
        };
        Arc::new(PartStreamer::new(s3, berth_testkit_s3::REGION.into(), timeout, &plain).unwrap())
    }

    /// How a [`fake`] server treats each connection.
    #[derive(Clone, Copy)]
    enum Fake {
        /// Reads the request head, sends these bytes and closes.
        Answer(&'static str),
        /// Reads nothing, answers nothing, and keeps the connection open.
        Silent,
        /// Reads everything, answers nothing.
        Drain,
    }

    /// A stand-in for an S3 server on a loopback port, as `fake` says: a store for it.
    async fn fake(kind: Fake) -> AmazonS3 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                match kind {
                    Fake::Silent => held.push(socket),
                    Fake::Drain => {
                        tokio::spawn(async move {
                            let mut sink = vec![0u8; 64 << 10];
                            while socket.read(&mut sink).await.unwrap_or(0) > 0 {}
                        });
                    }
                    Fake::Answer(answer) => {
                        tokio::spawn(async move {
                            let mut head = Vec::new();
                            let mut byte = [0u8; 1];
                            while !head.ends_with(b"\r\n\r\n")
                                && socket.read(&mut byte).await.unwrap_or(0) == 1
                            {
                                head.push(byte[0]);
                            }
                            let _ = socket.write_all(answer.as_bytes()).await;
                            let _ = socket.shutdown().await;
                        });
                    }
                }
            }
        });
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_region(berth_testkit_s3::REGION)
            .with_bucket_name("bucket")
            .with_access_key_id("AKFAKE")
            .with_secret_access_key("secret")
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[tokio::test]
    async fn a_streamed_part_is_stored_whole_and_one_cut_short_not_at_all() {
        let Some(server) = S3Server::start() else {
            return;
        };
        let store = s3(&server);
        let streamer = streamer(store.clone(), Duration::from_secs(30));
        let path = Path::from("streamed/data");
        let id = store.create_multipart(&path).await.unwrap();
        let (first, second) = (bytes(5 << 20, 1), bytes(200_001, 2));
        let mut parts = Vec::new();
        for content in [&first, &second] {
            let len = content.len() as u64;
            let part = streamer.start(path.clone(), id.clone(), parts.len(), len);
            for frame in content.chunks(100_003) {
                part.send(Bytes::copy_from_slice(frame));
            }
            let (expected, request) = part.finish();
            let outcome = request.await;
            streamer.record(&outcome);
            let expected = e_tag_of(&expected.await.unwrap());
            assert_eq!(outcome.as_ref().unwrap().content_id, expected);
            parts.push(outcome.unwrap());
        }
        assert!(streamer.enabled());
        // A third part, cut short: its request fails and nothing is stored.
        let cut = streamer.start(path.clone(), id.clone(), 2, 1 << 20);
        cut.send(Bytes::from(bytes(1000, 3)));
        cut.abort().await;
        store.complete_multipart(&path, &id, parts).await.unwrap();
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.len(), first.len() + second.len());
        assert!(stored[..first.len()] == first[..] && stored[first.len()..] == second[..]);
        // A refused request is reported as such.
        let refused = streamer.start(path.clone(), "no-such-upload".into(), 0, 10);
        refused.send(Bytes::from_static(b"0123456789"));
        let outcome = refused.finish().1.await;
        assert!(
            matches!(outcome, Err(StreamError::Refused { .. })),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn an_error_answer_is_reported_however_its_body_is_written() {
        // More than 512 bytes of three-byte characters: byte 512 is inside one.
        const ANSWER: &str = concat!(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: 900\r\nconnection: close\r\n\r\n",
            "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€",
            "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€",
            "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€",
            "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€",
            "€€€€",
        );
        let streamer = streamer(fake(Fake::Answer(ANSWER)).await, Duration::from_secs(30));
        let part = streamer.start(Path::from("data"), "upload".into(), 0, 10);
        part.send(Bytes::from_static(b"0123456789"));
        let outcome = part.finish().1.await;
        let Err(StreamError::Refused { status, body }) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(status, 403);
        assert!(body.len() <= 512 && body.starts_with("€€€"), "{body}");
    }

    #[tokio::test]
    async fn a_part_whose_bytes_arrive_slowly_is_not_cut_short() {
        let Some(server) = S3Server::start() else {
            return;
        };
        let store = s3(&server);
        // A request timeout shorter than the client takes to send the part.
        let streamer = streamer(store.clone(), Duration::from_secs(1));
        let path = Path::from("slow/data");
        let id = store.create_multipart(&path).await.unwrap();
        let content = bytes(1 << 20, 4);
        let part = streamer.start(path.clone(), id.clone(), 0, content.len() as u64);
        let (first, second) = content.split_at(1000);
        part.send(Bytes::copy_from_slice(first));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        part.send(Bytes::copy_from_slice(second));
        let outcome = part.finish().1.await;
        assert!(outcome.is_ok(), "{outcome:?}");
        store
            .complete_multipart(&path, &id, vec![outcome.unwrap()])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_part_the_store_does_not_answer_fails_after_the_timeout() {
        let streamer = streamer(fake(Fake::Drain).await, Duration::from_millis(500));
        let part = streamer.start(Path::from("data"), "upload".into(), 0, 10);
        part.send(Bytes::from_static(b"0123456789"));
        let started = tokio::time::Instant::now();
        let (md5, request) = part.finish();
        let outcome = request.await;
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(md5.await.unwrap(), hex::encode(Md5::digest(b"0123456789")));
    }

    #[tokio::test]
    async fn a_part_cut_short_ends_at_once_even_when_the_store_stalls() {
        let streamer = streamer(fake(Fake::Silent).await, Duration::from_secs(20));
        // More than the connection's buffers take: the request waits for the store.
        let part = streamer.start(Path::from("data"), "upload".into(), 0, 256 << 20);
        for _ in 0..64 {
            part.send(Bytes::from(vec![7u8; 1 << 20]));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = tokio::time::Instant::now();
        part.abort().await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_entity_tag_is_the_md5_whatever_its_case_and_quotes() {
        let md5 = "5d41402abc4b2a76b9719d911017c592";
        for e_tag in [
            "\"5d41402abc4b2a76b9719d911017c592\"",
            "\"5D41402ABC4B2A76B9719D911017C592\"",
            "5d41402abc4b2a76b9719d911017c592",
        ] {
            assert!(is_md5(e_tag, md5), "{e_tag}");
        }
        for e_tag in [
            "\"5d41402abc4b2a76b9719d911017c593\"",
            "\"\"",
            "",
            "\"5d41\"",
        ] {
            assert!(!is_md5(e_tag, md5), "{e_tag}");
        }
        assert!(!is_md5("\"\"", ""));
    }

    #[tokio::test(start_paused = true)]
    async fn parts_are_streamed_again_after_a_pause() {
        let streamer = streamer(fake(Fake::Silent).await, Duration::from_secs(30));
        let failed = || {
            Err(StreamError::Mismatch {
                e_tag: "\"a\"".into(),
                md5: "b".into(),
            })
        };
        for _ in 0..FAILURES_TO_STOP {
            assert!(streamer.enabled());
            streamer.record(&failed());
        }
        assert!(!streamer.enabled());
        tokio::time::advance(Duration::from_secs(3600)).await;
        // One part tries again; the others wait for its outcome.
        assert!(streamer.enabled());
        assert!(!streamer.enabled());
        streamer.record(&Ok(PartId {
            content_id: "\"b\"".into(),
        }));
        assert!(streamer.enabled() && streamer.enabled());
    }
}
