//! Clients of the configured object store, built by `object_store`'s builders (which
//! also read the provider's usual environment variables and instance credentials).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::multipart::MultipartStore;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore};

use crate::config::{AzureSettings, Backend, GcsSettings, OpenError, S3Settings};
use crate::part_stream::PartStreamer;

/// What the store needs of a backend: objects, multipart uploads, presigned URLs.
pub(crate) trait Client: ObjectStore + MultipartStore + Signer {}

impl<T: ObjectStore + MultipartStore + Signer> Client for T {}

/// A client of `backend` whose connections follow `options`.
pub(crate) fn client(
    backend: &Backend,
    options: ClientOptions,
) -> Result<Arc<dyn Client>, object_store::Error> {
    Ok(match backend {
        Backend::S3(s3) => Arc::new(s3_client(s3, options)?),
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
    let Backend::S3(s3) = backend else {
        return Ok(None);
    };
    let builder = s3_builder(s3, ClientOptions::new().with_timeout(timeout));
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
    Ok(Some(PartStreamer::new(builder.build()?, region, timeout)?))
}

fn s3_client(
    s3: &S3Settings,
    options: ClientOptions,
) -> Result<object_store::aws::AmazonS3, object_store::Error> {
    s3_builder(s3, options).build()
}

fn s3_builder(s3: &S3Settings, options: ClientOptions) -> AmazonS3Builder {
    let plain_http = s3
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_virtual_hosted_style_request(!s3.path_style)
        .with_client_options(options.with_allow_http(plain_http));
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
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_account(&azure.account)
        .with_container_name(&azure.container)
        .with_client_options(options.with_allow_http(plain_http));
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
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&gcs.bucket)
        .with_client_options(options);
    if let Some(path) = &gcs.service_account_path {
        builder = builder.with_service_account_path(path.to_string_lossy());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::bucket_endpoint;

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
}
