//! An HTTP proxy between a store and its S3 server, which can alter what passes through:
//! a request body changed on the way, an answer the server never gave, another entity
//! tag. It also answers a conditional `GET` (`If-None-Match`) with `304 Not Modified`
//! when the object still has that entity tag, as S3 and Garage do (`s3s-fs` ignores
//! the header).
//!
//! Every request goes to the upstream server, whatever its target, so the proxy serves
//! both as the store's endpoint and as a forward proxy (`proxy_url`). The `Host` header
//! is passed on as received, so signatures still match.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use md5::Digest as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
}

impl Seen {
    /// The part number of an `UploadPart` request.
    pub fn part_number(&self) -> Option<u32> {
        if self.method != Method::PUT {
            return None;
        }
        self.query
            .split('&')
            .find_map(|pair| pair.strip_prefix("partNumber="))
            .and_then(|n| n.parse().ok())
    }

    /// True for a streamed part: an `UploadPart` whose payload is not signed.
    pub fn is_unsigned_part(&self) -> bool {
        self.part_number().is_some()
            && self
                .headers
                .get("x-amz-content-sha256")
                .is_some_and(|v| v == "UNSIGNED-PAYLOAD")
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Passes it on, and the answer back.
    Pass,
    /// Passes it on with the first byte of its body changed.
    CorruptBody,
    /// Passes it on, and the answer back with this `ETag` instead of the server's.
    ReplaceETag(String),
    /// Passes it on, and the answer back with the server's `ETag` in upper case.
    UpperCaseETag,
    /// Passes it on with the first byte of its body changed, and answers the entity tag
    /// of the body received (its MD5): what a party on the way could do to a payload
    /// no signature covers.
    CorruptBodyForgeETag,
    /// Passes it on, and the answer back after this long.
    Delay(std::time::Duration),
    /// Answers this instead of passing it on.
    Answer(StatusCode, Bytes),
    /// Holds the request this long, then passes it on (a request held in flight).
    Hold(std::time::Duration),
}

/// Decides the fault for each request (called once per request, in order).
pub type Rule = Arc<dyn Fn(&Seen) -> Fault + Send + Sync>;

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Logged {
    pub seen: Seen,
    /// The status answered, or `None` when the request's body never arrived whole.
    pub status: Option<StatusCode>,
    /// The `ETag` answered, if any.
    pub e_tag: Option<String>,
    /// Bytes of the request body received.
    pub body_len: usize,
}

/// A running proxy, stopped when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    rule: Rule,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Logged>>>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://host:port`) applying `rule`.
    pub async fn start(upstream: &str, rule: Rule) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rule,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            log: log.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(shared.handle(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { addr, log, task }
    }

    /// A proxy that passes everything on (and answers conditional `GET`s).
    pub async fn passing(upstream: &str) -> FaultProxy {
        FaultProxy::start(upstream, Arc::new(|_: &Seen| Fault::Pass)).await
    }

    /// The proxy's URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they were answered.
    pub fn log(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

impl Shared {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let seen = Seen {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts.headers.clone(),
        };
        let fault = (self.rule)(&seen);
        let mut logged = Logged {
            seen: seen.clone(),
            status: None,
            e_tag: None,
            body_len: 0,
        };
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                // Cut short: the server never sees it.
                self.log.lock().unwrap().push(logged);
                return respond(StatusCode::BAD_REQUEST, HeaderMap::new(), Bytes::new());
            }
        };
        logged.body_len = body.len();
        let response = self.answer(&seen, fault, body).await;
        logged.status = Some(response.status());
        logged.e_tag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.log.lock().unwrap().push(logged);
        response
    }

    async fn answer(&self, seen: &Seen, fault: Fault, body: Bytes) -> Response<Full<Bytes>> {
        if let Fault::Hold(hold) = fault {
            tokio::time::sleep(hold).await;
        }
        let forged = format!("\"{}\"", hex::encode(md5::Md5::digest(&body)));
        let body = match fault {
            Fault::Answer(status, body) => return respond(status, HeaderMap::new(), body),
            Fault::CorruptBody | Fault::CorruptBodyForgeETag if !body.is_empty() => {
                let mut changed = body.to_vec();
                changed[0] ^= 0xff;
                Bytes::from(changed)
            }
            _ => body,
        };
        let (status, mut headers, body) = self.forward(seen, body).await;
        if let Fault::Delay(delay) = fault {
            tokio::time::sleep(delay).await;
        }
        let e_tag = headers.get(header::ETAG).and_then(|v| v.to_str().ok());
        let e_tag = match fault {
            Fault::ReplaceETag(e_tag) => Some(e_tag),
            Fault::UpperCaseETag => e_tag.map(str::to_ascii_uppercase),
            Fault::CorruptBodyForgeETag => Some(forged),
            _ => None,
        };
        if let Some(e_tag) = e_tag {
            headers.insert(header::ETAG, HeaderValue::from_str(&e_tag).unwrap());
        }
        let unchanged = seen
            .headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|asked| Some(asked) == headers.get(header::ETAG));
        if seen.method == Method::GET && status == StatusCode::OK && unchanged {
            let mut kept = HeaderMap::new();
            kept.insert(header::ETAG, headers[header::ETAG].clone());
            return respond(StatusCode::NOT_MODIFIED, kept, Bytes::new());
        }
        respond(status, headers, body)
    }

    async fn forward(&self, seen: &Seen, body: Bytes) -> (StatusCode, HeaderMap, Bytes) {
        let mut target = format!("{}{}", self.upstream, seen.path);
        if !seen.query.is_empty() {
            target = format!("{target}?{}", seen.query);
        }
        let mut headers = seen.headers.clone();
        headers.remove(header::CONNECTION);
        headers.remove(header::TRANSFER_ENCODING);
        let answer = self
            .http
            .request(seen.method.clone(), target)
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let mut headers = answer.headers().clone();
        headers.remove(header::CONNECTION);
        headers.remove(header::TRANSFER_ENCODING);
        let body = answer.bytes().await.unwrap();
        (status, headers, body)
    }
}

fn respond(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
