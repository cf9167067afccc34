//! Test support: a complete in-process Berth, driven through its real router with
//! `tower::ServiceExt::oneshot`, on the stores `BERTH_TEST_BACKENDS` selects (see
//! [`Backends`]): SQLite and the filesystem store in a temporary directory by default.

mod at_rest;
mod backends;
mod faults;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use berth_app::identity::{
    HashCost, Htpasswd, Identity, IdentityConfig, IdentityStores, SigningKey, SystemSettings,
};
use berth_app::{Clock, Registry, RegistryConfig, SystemClock};
use berth_blob::BlobStore;
use berth_meta::JobStore;
use berth_oci::{Algorithm, Digest};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub use crate::at_rest::StoredPart;
use crate::backends::ScaleOutServers;
pub use crate::backends::{BACKENDS_VARIABLE, Backends, OBJECT_COPY_LIMIT};
use crate::faults::FaultyMeta;
pub use crate::faults::{LinkHold, MetaFaults};

/// A clock that moves only when a test moves it; it starts at the system time.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading the current system time.
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(SystemClock.now_ms())))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Moves the clock back, as a node whose clock runs behind another's sees that
    /// node's times.
    pub fn rewind(&self, by: std::time::Duration) {
        self.0.fetch_sub(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An in-process registry on the [`Backends`] `BERTH_TEST_BACKENDS` selects.
pub struct TestRegistry {
    /// The HTTP application under test.
    pub router: Router,
    /// The registry behind it, for calling use cases directly.
    pub registry: Arc<Registry>,
    /// The blob store behind it, for looking at bytes at rest whatever the backend.
    pub blobs: Arc<dyn BlobStore>,
    /// The data directory, alive for the test's duration: it holds the SQLite database
    /// and the filesystem store's files, and stays empty on the other backends.
    pub dir: tempfile::TempDir,
    /// Failures to inject into the metadata store.
    pub faults: Arc<MetaFaults>,
    /// Accounts, projects and access.
    pub identity: Arc<Identity>,
    /// The job queue (to run a job runner beside the registry).
    pub jobs: Arc<dyn JobStore>,
    /// The metadata store behind the registry, for looking at records whatever the
    /// backend.
    pub meta: Arc<dyn berth_meta::Metadata>,
    /// The PEM of the key registry tokens are signed with (to forge tokens in tests).
    pub signing_key_pem: String,
    /// The `Authorization` sent with requests that name none.
    authorization: std::sync::Mutex<Option<String>>,
    /// The database and S3 server of the scale-out backends; declared last, so they are
    /// dropped after everything that uses them.
    scale_out: Option<ScaleOutServers>,
}

/// The administrator's password in [`TestRegistry::secure`] registries.
pub const ADMIN_PASSWORD: &str = "Harbor12345";

/// argon2id at its cheapest, so tests do not wait on hashing.
pub const CHEAP_HASHING: HashCost = HashCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// A response with its body collected.
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Bytes,
}

impl TestResponse {
    /// A header's value as text (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first OCI error code in the body (empty when none).
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

impl TestRegistry {
    /// Starts a registry with default limits. Like every constructor, it is called within
    /// a Tokio runtime, which the registry's database connections then belong to.
    pub fn new() -> Self {
        Self::with_config(RegistryConfig::default())
    }

    /// Starts a registry with the given limits.
    pub fn with_config(config: RegistryConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Starts a registry with the given limits and clock, in open mode (every `/v2/`
    /// request allowed), as the core registry's tests expect.
    pub fn with_clock(config: RegistryConfig, clock: Arc<dyn Clock>) -> Self {
        Self::build(config, clock, true, None, CHEAP_HASHING)
    }

    /// Starts a registry with accounts and permissions applied, its database
    /// bootstrapped with the administrator `admin` / [`ADMIN_PASSWORD`].
    pub async fn secure() -> Self {
        Self::secure_with(RegistryConfig::default(), Arc::new(SystemClock), None).await
    }

    /// Like [`TestRegistry::secure`], hashing passwords and secrets at `cost` (timing
    /// tests need the real cost).
    pub async fn secure_hashing_at(cost: HashCost) -> Self {
        let registry = Self::build(
            RegistryConfig::default(),
            Arc::new(SystemClock),
            false,
            None,
            cost,
        );
        registry.identity.bootstrap().await.expect("bootstrap");
        registry
    }

    /// [`TestRegistry::secure`] with the given limits, clock and htpasswd users.
    pub async fn secure_with(
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
        htpasswd: Option<Htpasswd>,
    ) -> Self {
        let registry = Self::build(config, clock, false, htpasswd, CHEAP_HASHING);
        registry.identity.bootstrap().await.expect("bootstrap");
        registry
    }

    fn build(
        config: RegistryConfig,
        clock: Arc<dyn Clock>,
        open: bool,
        htpasswd: Option<Htpasswd>,
        cost: HashCost,
    ) -> Self {
        let signing_key_pem = SigningKey::generate_pem().expect("key");
        let dir = tempfile::tempdir().expect("temp dir");
        let stores = Backends::selected().open(dir.path());
        let store = stores.meta;
        let jobs: Arc<dyn JobStore> = store.clone();
        let meta_store = store.clone();
        let faults = Arc::new(MetaFaults::default());
        let meta = FaultyMeta {
            inner: store.clone(),
            faults: faults.clone(),
        };
        let registry = Arc::new(Registry::new(
            Arc::new(meta),
            stores.blobs.clone(),
            clock.clone(),
            config,
        ));
        let identity = Arc::new(
            Identity::new(
                IdentityStores {
                    users: store.clone(),
                    projects: store.clone(),
                    robots: store.clone(),
                    settings: store.clone(),
                    audit: store.clone(),
                    artifacts: store.clone(),
                    labels: store.clone(),
                    sessions: store,
                },
                IdentityConfig {
                    open,
                    hash_cost: cost,
                    admin_password: Some(ADMIN_PASSWORD.into()),
                    htpasswd,
                    signing_key_pem: signing_key_pem.clone(),
                    issuer: "berth-test".into(),
                    service: "berth-test".into(),
                    initial_settings: SystemSettings::default(),
                },
                clock,
            )
            .expect("identity"),
        );
        let services = Arc::new(berth_api::Services {
            registry: registry.clone(),
            identity: identity.clone(),
            jobs: jobs.clone(),
            external_url: None,
            scheme: "http",
        });
        TestRegistry {
            router: berth_api::router(services),
            registry,
            blobs: stores.blobs,
            identity,
            jobs,
            meta: meta_store,
            dir,
            faults,
            signing_key_pem,
            authorization: std::sync::Mutex::new(None),
            scale_out: stores.scale_out,
        }
    }

    /// Sends Basic credentials with every later request that names no
    /// `Authorization` of its own (`None`: send none).
    pub fn log_in(&self, credentials: Option<(&str, &str)>) {
        use base64::Engine as _;
        *self.authorization.lock().expect("auth lock") = credentials.map(|(user, password)| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {encoded}")
        });
    }

    /// Sends an HTTP/1.1 request and collects the response. It carries `Host: berth.test`
    /// unless `headers` name a host, as every HTTP/1.1 client sends one.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(uri);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header(http::header::HOST, "berth.test");
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            && let Some(value) = self.authorization.lock().expect("auth lock").clone()
        {
            req = req.header(http::header::AUTHORIZATION, value);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send_request(req.body(body.into()).expect("request"))
            .await
    }

    /// Sends `req` exactly as built (no `Host` is added) and collects the response.
    pub async fn send_request(&self, req: Request<Body>) -> TestResponse {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router is infallible");
        let (parts, body) = resp.into_parts();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.expect("body").to_bytes(),
        }
    }

    /// Sends a request without headers or body.
    pub async fn send_empty(&self, method: Method, uri: &str) -> TestResponse {
        self.send(method, uri, &[], Body::empty()).await
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send_empty(Method::GET, uri).await
    }

    /// Pushes a blob monolithically; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::compute(Algorithm::Sha256, data);
        let uri = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let r = self
            .send(Method::POST, &uri, &[], Bytes::copy_from_slice(data))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "push blob: {:?}", r.body);
        digest
    }

    /// Pushes `data` as a blob in one `POST ?digest=` that declares its length, as
    /// clients send it: a small blob completes in one step, before its session has a
    /// record.
    pub async fn push_whole_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::compute(Algorithm::Sha256, data);
        let uri = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let len = data.len().to_string();
        let r = self
            .send(
                Method::POST,
                &uri,
                &[("content-length", len.as_str())],
                Bytes::copy_from_slice(data),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "push blob: {:?}", r.body);
        digest
    }

    /// Pushes an OCI image (config + one layer per item of `layers`) under `tag`;
    /// returns the manifest digest and bytes.
    pub async fn push_image(&self, repo: &str, tag: &str, layers: &[&[u8]]) -> (Digest, Vec<u8>) {
        let config_bytes: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;
        let config = self.push_blob(repo, config_bytes).await;
        let mut descriptors = Vec::new();
        for layer in layers {
            let d = self.push_blob(repo, layer).await;
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d.as_str(),
                "size": layer.len(),
            }));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": berth_oci::media_type::OCI_MANIFEST,
            "config": {"mediaType": berth_oci::media_type::OCI_CONFIG, "digest": config.as_str(), "size": config_bytes.len()},
            "layers": descriptors,
        }))
        .expect("json");
        let r = self
            .put_manifest(repo, tag, berth_oci::media_type::OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "push manifest: {:?}", r.body);
        (Digest::compute(Algorithm::Sha256, &manifest), manifest)
    }

    /// `PUT` a manifest with a content type.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> TestResponse {
        let uri = format!("/v2/{repo}/manifests/{reference}");
        self.send(
            Method::PUT,
            &uri,
            &[("content-type", media_type)],
            Bytes::copy_from_slice(body),
        )
        .await
    }
}

impl Default for TestRegistry {
    fn default() -> Self {
        Self::new()
    }
}

/// `inner` with the failures and holds `faults` arms, for registries a test builds
/// itself (several nodes on one store, say).
pub fn faulty_meta(
    inner: Arc<dyn berth_meta::MetaStore>,
    faults: Arc<MetaFaults>,
) -> Arc<dyn berth_meta::MetaStore> {
    Arc::new(FaultyMeta { inner, faults })
}

/// An upload session opened and recorded, as a client's first chunk records it.
pub struct RecordedUpload {
    /// The session's id.
    pub id: berth_oci::UploadId,
    /// The URL its next requests name.
    pub url: berth_oci::UploadRef,
}

/// Opens an upload session on `registry` and records it with an empty chunk, as the
/// first `PATCH` of a client does.
pub async fn open_recorded_upload(
    registry: &Arc<Registry>,
    repository: &berth_oci::RepositoryName,
) -> RecordedUpload {
    let opened = registry
        .start_upload(repository, Algorithm::Sha256)
        .await
        .expect("open an upload");
    let empty = berth_app::UploadBody {
        stream: Box::pin(futures_util::stream::empty()),
        content_length: Some(0),
        content_range: None,
        client: None,
    };
    let recorded = registry
        .append_chunk(repository, &opened.url, empty)
        .await
        .expect("record the upload");
    RecordedUpload {
        id: recorded.session.id,
        url: recorded.url,
    }
}
