//! Checks on the request itself: exactly one host (RFC 9112 §3.2; `:authority` for
//! HTTP/2), and percent-encoded unreserved characters in `/v2/` paths decoded while an
//! encoded `/` stays a character of its segment.

mod common;

use common::*;
use http::{Request, Version};

/// A `GET` with `version`, `uri` and one `Host` line per item of `hosts`.
fn get_with_hosts(version: Version, uri: &str, hosts: &[&str]) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::GET)
        .version(version)
        .uri(uri);
    for host in hosts {
        req = req.header(http::header::HOST, *host);
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_request_names_exactly_one_host() {
    let reg = TestRegistry::new();
    let v11 = Version::HTTP_11;
    let v2 = Version::HTTP_2;
    let absolute = "http://berth.test/v2/";
    let cases: &[(Version, &str, &[&str], u16)] = &[
        (v11, "/v2/", &["berth.test"], 200),
        (v11, "/v2/", &["berth.test:5000"], 200),
        (v11, "/v2/", &["127.0.0.1:5000"], 200),
        (v11, "/v2/", &["[::1]:5000"], 200),
        // RFC 9112: empty when the target URI has no authority.
        (v11, "/v2/", &[""], 200),
        (v11, "/v2/", &[], 400),
        (v11, "/v2/", &["berth.test", "berth.test"], 400),
        (v11, "/v2/", &["berth.test", "other.test"], 400),
        (v11, "/v2/", &["user@berth.test"], 400),
        (v11, "/v2/", &["berth.test/x"], 400),
        (v11, "/v2/", &["berth test"], 400),
        // HTTP/1.1 needs Host even with an absolute-form target.
        (v11, absolute, &[], 400),
        (v11, absolute, &["berth.test"], 200),
        (v11, "/healthz", &[], 400),
        (v11, "/v2/nosuch/tags/list", &[], 400),
        // HTTP/1.0 predates Host, but two are still two.
        (Version::HTTP_10, "/v2/", &[], 200),
        (Version::HTTP_10, "/v2/", &["a.test", "a.test"], 400),
        // HTTP/2: hyper puts `:authority` in the URI and sends no Host.
        (v2, absolute, &[], 200),
        (v2, absolute, &["berth.test"], 200),
        (v2, absolute, &["BERTH.test"], 200),
        (v2, absolute, &["other.test"], 400),
        (v2, absolute, &["berth.test", "berth.test"], 400),
        (v2, "/v2/", &["berth.test"], 200),
        (v2, "/v2/", &[], 400),
    ];
    for (version, uri, hosts, status) in cases {
        let r = reg.send_request(get_with_hosts(*version, uri, hosts)).await;
        assert_eq!(
            r.status.as_u16(),
            *status,
            "{version:?} {uri} Host {hosts:?}"
        );
    }

    // A refused request never reaches its handler.
    let d = sha256(b"x");
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/v2/no/host/blobs/uploads/?digest={d}"))
        .body(Body::from("x"))
        .unwrap();
    assert_eq!(reg.send_request(req).await.status, 400);
    expect_no_blob(&reg, "no/host", &d, "POST without Host").await;
    assert_eq!(
        reg.get("/v2/_catalog").await.json(),
        json!({"repositories": []})
    );
}

#[tokio::test]
async fn percent_encoded_unreserved_characters_are_decoded() {
    let reg = TestRegistry::new();
    let (digest, manifest) = reg.push_image("library/x", "v1", &[b"layer"]).await;
    let layer = sha256(b"layer");

    let r = reg.get("/v2/library/x/manifests/%76%31").await;
    expect_status(&r, 200, "tag v1 spelled %76%31");
    assert_eq!(r.body, manifest);
    let r = reg.get("/v2/%6Cibrary/%78/tags/%6C%69st").await;
    expect_status(&r, 200, "tags/list with encoded letters");
    assert_eq!(r.json(), json!({"name": "library/x", "tags": ["v1"]}));
    let hex = layer.encoded();
    let encoded_hex = format!("%{:X}{}", hex.as_bytes()[0], &hex[1..]);
    let r = reg
        .get(&format!("/v2/library/x/blobs/sha256:{encoded_hex}"))
        .await;
    expect_status(&r, 200, "blob digest with an encoded hex digit");
    assert_eq!(r.body, &b"layer"[..]);
    let r = reg
        .put_manifest(
            "library/x",
            "%76%32%2D%5Fa%2e%62",
            media_type::OCI_MANIFEST,
            &manifest,
        )
        .await;
    expect_status(&r, 201, "PUT tag v2-_a.b spelled with escapes");
    let r = reg.get("/v2/library/x/tags/list").await;
    assert_eq!(r.json()["tags"], json!(["v1", "v2-_a.b"]));
    let start = reg
        .send(
            Method::POST,
            "/v2/%6Cibrary/x/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await;
    expect_status(&start, 202, "POST upload with an encoded name");
    assert!(
        start
            .header("location")
            .starts_with("/v2/library/x/blobs/uploads/"),
        "{}",
        start.header("location")
    );
    let r = reg
        .get(&format!(
            "/v2/library/x/manifests/{}",
            digest.as_str().replace(':', "%3a")
        ))
        .await;
    // `:` is reserved, so `%3a` stays: without its colon the reference is a tag, an
    // invalid one.
    expect_error(&r, 404, "MANIFEST_UNKNOWN", "digest with %3a");

    // An encoded `/` (or an encoded `%` before `2F`) never separates segments.
    for uri in [
        "/v2/library%2Fx/manifests/v1",
        "/v2/library%2fx/manifests/v1",
        "/v2/library%2Fx/tags/list",
        "/v2/library%252Fx/tags/list",
        "/v2/%6Cibrary%2F%78/tags/list",
    ] {
        expect_error(&reg.get(uri).await, 400, "NAME_INVALID", uri);
    }
    for uri in [
        "/v2/library/x/manifests/v1%2F",
        "/v2/library/x/manifests/%2Fv1",
        "/v2/library/x/manifests/library%2Fx",
    ] {
        expect_error(&reg.get(uri).await, 404, "MANIFEST_UNKNOWN", uri);
    }
    let r = reg
        .put_manifest("library/x", "a%2Fb", media_type::OCI_MANIFEST, &manifest)
        .await;
    expect_error(&r, 400, "MANIFEST_INVALID", "PUT tag a%2Fb");
    let r = reg.get("/v2/library/x/tags/list").await;
    assert_eq!(r.json()["tags"], json!(["v1", "v2-_a.b"]));
    assert_eq!(
        reg.get("/v2/_catalog").await.json(),
        json!({"repositories": ["library/x"]})
    );
}

/// Over real connections, as hyper's HTTP/1.1 and HTTP/2 servers hand requests over.
#[tokio::test]
async fn hosts_over_http1_and_http2_connections() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let reg = TestRegistry::new();
    reg.push_image("library/x", "v1", &[b"layer"]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper_util::service::TowerToHyperService::new(reg.router.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let connect =
        || async move { TokioIo::new(tokio::net::TcpStream::connect(addr).await.unwrap()) };
    let request = |uri: String, hosts: &[&str]| {
        let mut req = Request::builder().uri(uri);
        for host in hosts {
            req = req.header(http::header::HOST, *host);
        }
        req.body(Empty::<Bytes>::new()).unwrap()
    };

    // HTTP/2 (prior knowledge): the client sends `:authority` from the URI, no Host.
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), connect().await)
            .await
            .unwrap();
    tokio::spawn(conn);
    let base = format!("http://{addr}");
    for (uri, status) in [
        (format!("{base}/v2/"), 200),
        (format!("{base}/v2/library/x/manifests/%76%31"), 200),
        (format!("{base}/v2/library%2Fx/tags/list"), 400),
    ] {
        let r = h2.send_request(request(uri.clone(), &[])).await.unwrap();
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.status().as_u16(), status, "HTTP/2 {uri}");
        r.into_body().collect().await.unwrap();
    }

    // HTTP/1.1: whatever the client puts in Host lines is what the server sees.
    for (hosts, status) in [
        (&[][..], 400),
        (&["localhost"][..], 200),
        (&["localhost", "localhost"][..], 400),
    ] {
        let (mut h1, conn) = hyper::client::conn::http1::handshake(connect().await)
            .await
            .unwrap();
        tokio::spawn(conn);
        let r = h1
            .send_request(request("/v2/library/x/manifests/%76%31".into(), hosts))
            .await
            .unwrap();
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(r.status().as_u16(), status, "HTTP/1.1 with Host {hosts:?}");
    }
}
