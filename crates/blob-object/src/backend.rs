//! Clients of the configured object store, built by `object_store`'s builders (which
//! also read the provider's usual environment variables and instance credentials).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::MultipartStore;
use object_store::signer::Signer;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore};

use crate::config::{AzureSettings, Backend, GcsSettings, OpenError, S3Settings};
use crate::part_stream::{Connections, PartStreamer};

/// Settings of the HTTP client the operator may give in `AWS_*` variables (a proxy and
/// its certificate, invalid certificates allowed, the HTTP version, ...): all but the
/// timeout and `allow_http`, which the store decides.
const OPERATOR_CLIENT_KEYS: [ClientConfigKey; 16] = [
    ClientConfigKey::AllowInvalidCertificates,
    ClientConfigKey::ConnectTimeout,
    ClientConfigKey::DefaultContentType,
    ClientConfigKey::Http1Only,
    ClientConfigKey::Http2Only,
    ClientConfigKey::Http2KeepAliveInterval,
    ClientConfigKey::Http2KeepAliveTimeout,
    ClientConfigKey::Http2KeepAliveWhileIdle,
    ClientConfigKey::Http2MaxFrameSize,
    ClientConfigKey::PoolIdleTimeout,
    ClientConfigKey::PoolMaxIdlePerHost,
    ClientConfigKey::ProxyUrl,
    ClientConfigKey::ProxyCaCertificate,
    ClientConfigKey::ProxyExcludes,
    ClientConfigKey::RandomizeAddresses,
    ClientConfigKey::UserAgent,
];

/// What the store needs of a backend: objects, multipart uploads, presigned URLs.
pub(crate) trait Client: ObjectStore + MultipartStore + Signer {}

impl<T: ObjectStore + MultipartStore + Signer> Client for T {}

/// A client of `backend` whose connections follow `options`.
pub(crate) fn client(
    backend: &Backend,
    options: ClientOptions,
) -> Result<Arc<dyn Client>, object_store::Error> {
    Ok(match backend {
        Backend::S3(s3) => Arc::new(s3_builder(AmazonS3Builder::from_env(), s3, options).build()?),
        Backend::Azure(azure) => Arc::new(azure_client(azure, options)?),
        Backend::Gcs(gcs) => Arc::new(gcs_client(gcs, options)?),
    })
}

/// A streamer of parts for `backend` when it is S3, configured with nothing a streamed
/// part would not send: no checksums, customer-provided encryption keys (both sent with
/// every part), requester-pays or S3 Express sessions, and signed requests.
pub(crate) fn part_streamer(
    backend: &Backend,
    timeout: Duration,
) -> Result<Option<PartStreamer>, OpenError> {
    part_streamer_on(AmazonS3Builder::from_env(), backend, timeout)
}

/// [`part_streamer`], with the settings of `base` where the environment's would be.
fn part_streamer_on(
    base: AmazonS3Builder,
    backend: &Backend,
    timeout: Duration,
) -> Result<Option<PartStreamer>, OpenError> {
    let Backend::S3(s3) = backend else {
        return Ok(None);
    };
    let builder = s3_builder(base, s3, ClientOptions::new().with_timeout(timeout));
    let set = |key: AmazonS3ConfigKey| {
        builder
            .get_config_value(&key)
            .is_some_and(|value| !value.is_empty() && value != "false")
    };
    let customer_key = "aws_sse_customer_key_base64"
        .parse::<AmazonS3ConfigKey>()
        .expect("object_store knows its own keys");
    let unsupported = [
        AmazonS3ConfigKey::Checksum,
        AmazonS3ConfigKey::SkipSignature,
        AmazonS3ConfigKey::S3Express,
        AmazonS3ConfigKey::RequestPayer,
        customer_key,
    ];
    if unsupported.into_iter().any(set) {
        return Ok(None);
    }
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    let connections = connections(&builder);
    Ok(Some(PartStreamer::new(
        builder.build()?,
        region,
        timeout,
        &connections,
    )?))
}

/// How the client `builder` builds makes its connections, for the streamer's own.
fn connections(builder: &AmazonS3Builder) -> Connections {
    let value = |key| builder.get_config_value(&AmazonS3ConfigKey::Client(key));
    let flag = |key| value(key).is_some_and(|v| is_truthy(&v));
    Connections {
        allow_http: flag(ClientConfigKey::AllowHttp),
        allow_invalid_certificates: flag(ClientConfigKey::AllowInvalidCertificates),
        http1_only: flag(ClientConfigKey::Http1Only),
        http2_only: flag(ClientConfigKey::Http2Only),
        proxy_url: value(ClientConfigKey::ProxyUrl),
        proxy_ca_certificate: value(ClientConfigKey::ProxyCaCertificate),
        proxy_excludes: value(ClientConfigKey::ProxyExcludes),
        user_agent: value(ClientConfigKey::UserAgent),
    }
}

/// A true setting, as `object_store` reads one.
fn is_truthy(value: &str) -> bool {
    ["1", "true", "on", "yes", "y"]
        .iter()
        .any(|t| value.eq_ignore_ascii_case(t))
}

/// `options`, with the client settings the operator gave (`given` says which: a
/// builder's `from_env` reads them, and a builder's `with_client_options` replaces them
/// all).
fn with_operator_settings(
    given: impl Fn(ClientConfigKey) -> Option<String>,
    mut options: ClientOptions,
) -> ClientOptions {
    for key in OPERATOR_CLIENT_KEYS {
        if let Some(value) = given(key) {
            options = options.with_config(key, value);
        }
    }
    options
}

/// `base` (the environment's settings) with `s3`'s, its connections following
/// `options`.
fn s3_builder(base: AmazonS3Builder, s3: &S3Settings, options: ClientOptions) -> AmazonS3Builder {
    let plain_http = s3
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let given = |key| base.get_config_value(&AmazonS3ConfigKey::Client(key));
    let options = with_operator_settings(given, options).with_allow_http(plain_http);
    let mut builder = base
        .with_bucket_name(&s3.bucket)
        .with_virtual_hosted_style_request(!s3.path_style)
        .with_client_options(options);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(bucket_endpoint(endpoint, &s3.bucket, s3.path_style));
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret.expose());
    }
    builder
}

/// The endpoint `object_store` expects: the service URL itself for path-style requests,
/// the bucket's own host name otherwise.
fn bucket_endpoint(endpoint: &str, bucket: &str, path_style: bool) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    match (path_style, endpoint.split_once("://")) {
        (false, Some((scheme, host))) => format!("{scheme}://{bucket}.{host}"),
        _ => endpoint.to_owned(),
    }
}

fn azure_client(
    azure: &AzureSettings,
    options: ClientOptions,
) -> Result<object_store::azure::MicrosoftAzure, object_store::Error> {
    let plain_http = azure
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let base = MicrosoftAzureBuilder::from_env();
    let given = |key| base.get_config_value(&AzureConfigKey::Client(key));
    let options = with_operator_settings(given, options).with_allow_http(plain_http);
    let mut builder = base
        .with_account(&azure.account)
        .with_container_name(&azure.container)
        .with_client_options(options);
    if let Some(endpoint) = &azure.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if let Some(key) = &azure.access_key {
        builder = builder.with_access_key(key.expose());
    }
    builder.build()
}

fn gcs_client(
    gcs: &GcsSettings,
    options: ClientOptions,
) -> Result<object_store::gcp::GoogleCloudStorage, object_store::Error> {
    let base = GoogleCloudStorageBuilder::from_env();
    let given = |key| base.get_config_value(&GoogleConfigKey::Client(key));
    let options = with_operator_settings(given, options);
    let mut builder = base
        .with_bucket_name(&gcs.bucket)
        .with_client_options(options);
    if let Some(path) = &gcs.service_account_path {
        builder = builder.with_service_account_path(path.to_string_lossy());
    }
    builder.build()
}

/// The backend of a test S3 server's bucket.
#[cfg(test)]
pub(crate) fn test_backend(server: &berth_testkit_s3::S3Server) -> Backend {
    Backend::S3(S3Settings {
        endpoint: Some(server.endpoint().to_owned()),
        region: Some(berth_testkit_s3::REGION.to_owned()),
        bucket: server.bucket().to_owned(),
        access_key_id: Some(server.access_key_id().to_owned()),
        secret_access_key: Some(crate::config::Secret::new(server.secret_access_key())),
        path_style: true,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use berth_testkit_s3::S3Server;
    use bytes::Bytes;
    use object_store::aws::AmazonS3Builder;
    use object_store::multipart::MultipartStore;
    use object_store::path::Path;

    use super::*;

    #[test]
    fn virtual_hosted_requests_name_the_bucket_in_the_host() {
        let oss = "https://oss-cn-hangzhou.aliyuncs.com/";
        assert_eq!(
            bucket_endpoint(oss, "images", false),
            "https://images.oss-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            bucket_endpoint("http://127.0.0.1:3900", "images", true),
            "http://127.0.0.1:3900"
        );
    }

    /// A forward proxy that relays every connection to `upstream` and counts them.
    async fn relay(upstream: &str) -> (String, Arc<AtomicUsize>) {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut from, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut to = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut from, &mut to).await;
                });
            }
        });
        (url, connections)
    }

    #[tokio::test]
    async fn every_request_goes_through_the_proxy_of_the_environment() {
        let Some(server) = S3Server::start() else {
            return;
        };
        let (proxy, connections) = relay(server.endpoint()).await;
        // As `AWS_PROXY_URL` would set it.
        let key = "aws_proxy_url".parse().unwrap();
        let environment = || AmazonS3Builder::new().with_config(key, &proxy);
        let backend = test_backend(&server);
        let Backend::S3(s3) = &backend else {
            unreachable!()
        };
        let store = s3_builder(environment(), s3, ClientOptions::new())
            .build()
            .unwrap();
        let path = Path::from("through/proxy");
        let id = store.create_multipart(&path).await.unwrap();
        let relayed = connections.load(Ordering::SeqCst);
        assert!(relayed > 0, "object_store's requests go through the proxy");
        let streamer = part_streamer_on(environment(), &backend, Duration::from_secs(30))
            .unwrap()
            .unwrap();
        let part = Arc::new(streamer).start(path.clone(), id.clone(), 0, 10);
        part.send(Bytes::from_static(b"0123456789"));
        let streamed = part.finish().1.await.unwrap();
        assert!(
            connections.load(Ordering::SeqCst) > relayed,
            "streamed parts go through the proxy"
        );
        store
            .complete_multipart(&path, &id, vec![streamed])
            .await
            .unwrap();
    }
}
