//! Media types of the manifests and configs Berth understands.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config; a manifest whose config has another type is an artifact.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI empty descriptor (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker schema 1 manifest (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1 manifest (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type Berth stores, for `Accept` negotiation and `Content-Type` checks.
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// True for the image-config media types, whose manifests are images rather than artifacts.
pub fn is_image_config(media_type: &str) -> bool {
    media_type.eq_ignore_ascii_case(OCI_CONFIG) || media_type.eq_ignore_ascii_case(DOCKER_CONFIG)
}

/// True for the four manifest media types, in any letter case.
pub fn is_manifest_type(media_type: &str) -> bool {
    MANIFEST_TYPES
        .iter()
        .any(|t| media_type.eq_ignore_ascii_case(t))
}

/// Drops parameters such as `; charset=utf-8` and surrounding spaces.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// The form in which Berth compares and stores a `Content-Type`: its essence, lower-cased.
/// Type and subtype names are case-insensitive (RFC 6838, section 4.2), so
/// `Application/VND.OCI.image.manifest.v1+JSON` is the OCI manifest type.
pub fn canonical(content_type: &str) -> String {
    essence(content_type).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_ignore_case_and_parameters() {
        assert_eq!(
            canonical(" Application/VND.OCI.image.manifest.v1+JSON ; charset=UTF-8"),
            OCI_MANIFEST
        );
        assert!(is_manifest_type(
            "APPLICATION/VND.DOCKER.DISTRIBUTION.MANIFEST.LIST.V2+JSON"
        ));
        assert!(!is_manifest_type(OCI_CONFIG));
        assert!(is_image_config("application/vnd.oci.image.CONFIG.v1+json"));
    }
}
