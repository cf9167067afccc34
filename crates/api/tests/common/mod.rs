//! Helpers shared by the API integration tests: request shorthands, the error-body check
//! every 4xx goes through, and manifest builders.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod harbor;
pub mod jobs;
pub mod swagger;

pub use axum::body::Body;
pub use berth_oci::{Algorithm, Digest, media_type};
pub use berth_testkit::{TestRegistry, TestResponse};
pub use bytes::Bytes;
pub use http::{Method, StatusCode};
pub use serde_json::{Value, json};

/// The 14 codes of the distribution spec, the only ones a 4xx body may carry ("The
/// `code` field MUST be one of the following").
pub const SPEC_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

pub fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

pub fn sha512(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha512, data)
}

/// `len` bytes of a repeating, position-dependent pattern (so ranges are distinguishable).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// A valid sha256 digest that no test ever pushes content for.
pub fn unknown_digest() -> Digest {
    sha256(b"content nobody pushed")
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Checks the shape of a 4xx body (checklist row 80): `{"errors":[{"code","message",...}]}`,
/// every code one of [`SPEC_CODES`]. HEAD responses must have no body at all.
pub fn check_error_body(r: &TestResponse, ctx: &str) {
    if r.body.is_empty() {
        panic!("{ctx}: {} with an empty body", r.status);
    }
    assert!(
        r.header("content-type").starts_with("application/json"),
        "{ctx}: error content type {:?}",
        r.header("content-type")
    );
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{ctx}: error body is not JSON ({e}): {:?}", r.body));
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: no errors array in {body}"));
    assert!(!errors.is_empty(), "{ctx}: empty errors array");
    for e in errors {
        let code = e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: entry without code: {e}"));
        assert!(
            SPEC_CODES.contains(&code),
            "{ctx}: code {code:?} is not one of the spec's 14"
        );
        assert!(
            e["message"].is_string(),
            "{ctx}: entry without a message: {e}"
        );
    }
}

/// Asserts the status and, for a 4xx, the error body and that its code is `code`.
pub fn expect_error(r: &TestResponse, status: u16, code: &str, ctx: &str) {
    assert_eq!(
        r.status.as_u16(),
        status,
        "{ctx}: body {}",
        String::from_utf8_lossy(&r.body)
    );
    check_error_body(r, ctx);
    assert_eq!(r.error_code(), code, "{ctx}: error code");
}

/// Asserts a successful status, showing the body on failure.
pub fn expect_status(r: &TestResponse, status: u16, ctx: &str) {
    assert_eq!(
        r.status.as_u16(),
        status,
        "{ctx}: body {}",
        String::from_utf8_lossy(&r.body)
    );
}

/// `HEAD uri`.
pub async fn head(reg: &TestRegistry, uri: &str) -> TestResponse {
    reg.send_empty(Method::HEAD, uri).await
}

/// `DELETE uri`.
pub async fn delete(reg: &TestRegistry, uri: &str) -> TestResponse {
    reg.send_empty(Method::DELETE, uri).await
}

/// A body sent without `Content-Length`, in `parts` pieces (like chunked transfer).
pub fn streamed(data: &[u8], parts: usize) -> Body {
    let step = data.len().div_ceil(parts.max(1)).max(1);
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(step)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

/// `POST /v2/<repo>/blobs/uploads/`; asserts 202 and returns the session `Location`.
pub async fn start_upload(reg: &TestRegistry, repo: &str) -> String {
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[("content-length", "0")],
            Body::empty(),
        )
        .await;
    expect_status(&r, 202, "start upload");
    let location = r.header("location").to_owned();
    assert!(
        location.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "location {location}"
    );
    location
}

/// `PATCH` a chunk with `Content-Length` and, when given, `Content-Range`.
pub async fn patch(
    reg: &TestRegistry,
    location: &str,
    range: Option<&str>,
    data: &[u8],
) -> TestResponse {
    let len = data.len().to_string();
    let mut headers = vec![
        ("content-type", "application/octet-stream"),
        ("content-length", len.as_str()),
    ];
    if let Some(range) = range {
        headers.push(("content-range", range));
    }
    reg.send(
        Method::PATCH,
        location,
        &headers,
        Bytes::copy_from_slice(data),
    )
    .await
}

/// `PUT <location>?digest=<digest>` with an optional final chunk and range.
pub async fn put_upload(
    reg: &TestRegistry,
    location: &str,
    digest: &str,
    range: Option<&str>,
    data: &[u8],
) -> TestResponse {
    let len = data.len().to_string();
    let mut headers = vec![("content-length", len.as_str())];
    if let Some(range) = range {
        headers.push(("content-range", range));
    }
    let uri = with_query(location, &format!("digest={digest}"));
    reg.send(Method::PUT, &uri, &headers, Bytes::copy_from_slice(data))
        .await
}

/// Asserts a `GET` of the upload answers 204 with `Range: 0-<offset-1>` (`0-0` when empty)
/// and the session's `Location`.
pub async fn expect_upload_at(reg: &TestRegistry, location: &str, offset: u64, ctx: &str) {
    let r = reg.get(location).await;
    expect_status(&r, 204, ctx);
    assert_eq!(
        r.header("range"),
        format!("0-{}", offset.saturating_sub(1)),
        "{ctx}: Range"
    );
    expect_same_session(r.header("location"), location, ctx);
    assert!(r.body.is_empty(), "{ctx}: status has a body");
}

/// Asserts that the upload URL `answered` names the session `location` names: the URL
/// itself or, for the URL that opened a session recorded since (its id followed by when
/// it was opened and its seal), the session's recorded URL.
pub fn expect_same_session(answered: &str, location: &str, ctx: &str) {
    let recorded_of_opening =
        answered.len() + 48 == location.len() && location.starts_with(answered);
    assert!(
        answered == location || recorded_of_opening,
        "{ctx}: Location {answered} for {location}"
    );
}

/// Asserts `GET /v2/<repo>/blobs/<digest>` serves exactly `data`.
pub async fn expect_blob(reg: &TestRegistry, repo: &str, digest: &Digest, data: &[u8], ctx: &str) {
    let r = reg.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    expect_status(&r, 200, ctx);
    assert!(
        r.body[..] == data[..],
        "{ctx}: blob content differs ({} bytes, expected {})",
        r.body.len(),
        data.len()
    );
    assert_eq!(r.header("docker-content-digest"), digest.as_str(), "{ctx}");
}

/// Asserts the blob is not readable in `repo`: `HEAD` 404 with no body, `GET` 404 BLOB_UNKNOWN.
pub async fn expect_no_blob(reg: &TestRegistry, repo: &str, digest: &Digest, ctx: &str) {
    let uri = format!("/v2/{repo}/blobs/{digest}");
    let r = head(reg, &uri).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{ctx}: HEAD");
    assert!(r.body.is_empty(), "{ctx}: HEAD 404 with a body");
    expect_error(&reg.get(&uri).await, 404, "BLOB_UNKNOWN", ctx);
}

/// An OCI descriptor as JSON.
pub fn descriptor(media_type: &str, digest: &Digest, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": digest.as_str(), "size": size})
}

/// Pushes `data` as a blob and returns its descriptor.
pub async fn push_descriptor(
    reg: &TestRegistry,
    repo: &str,
    media_type: &str,
    data: &[u8],
) -> Value {
    let d = reg.push_blob(repo, data).await;
    descriptor(media_type, &d, data.len())
}

/// An image manifest document of `media_type` over a config and layers.
pub fn image_manifest(media_type: &str, config: Value, layers: Vec<Value>) -> Value {
    json!({"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers})
}

/// Pushes a config and one layer to `repo` and returns an OCI image manifest over them.
pub async fn simple_image(reg: &TestRegistry, repo: &str, layer: &[u8]) -> Value {
    let config = push_descriptor(
        reg,
        repo,
        media_type::OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux"}"#,
    )
    .await;
    let layer = push_descriptor(reg, repo, "application/vnd.oci.image.layer.v1.tar", layer).await;
    image_manifest(media_type::OCI_MANIFEST, config, vec![layer])
}

/// Serializes a JSON document.
pub fn bytes_of(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).expect("json")
}

/// Pushes a manifest document under `reference` with its own `mediaType` as Content-Type;
/// asserts 201 and returns its digest and bytes.
pub async fn push_manifest(
    reg: &TestRegistry,
    repo: &str,
    reference: &str,
    doc: &Value,
) -> (Digest, Vec<u8>) {
    let body = bytes_of(doc);
    let mt = doc["mediaType"]
        .as_str()
        .unwrap_or(media_type::OCI_MANIFEST);
    let r = reg.put_manifest(repo, reference, mt, &body).await;
    expect_status(&r, 201, &format!("push manifest {repo}:{reference}"));
    (sha256(&body), body)
}

/// The URL of a `Link: <url>; rel="next"` header, if any.
pub fn next_link(r: &TestResponse) -> Option<String> {
    let link = r.header("link");
    if link.is_empty() {
        return None;
    }
    assert!(
        link.ends_with("rel=\"next\""),
        "Link {link:?} is not rel=\"next\""
    );
    let start = link.find('<').expect("Link has <") + 1;
    let end = link.find('>').expect("Link has >");
    Some(link[start..end].to_owned())
}

/// The strings of a JSON array field.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}
