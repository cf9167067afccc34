//! Manifest and index parsing: decides what a pushed document is and what it references.
//!
//! The document's type is fixed by its `mediaType` field and the request's
//! `Content-Type` before its body is interpreted, so one digest can never mean an image
//! to one reader and an index to another (CVE-2021-41190).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Digest;
use crate::media_type;
use crate::strict_json::check_no_duplicate_keys;

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The document is not a valid manifest; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// Docker schema 1 manifests are deprecated and not accepted.
    #[error("Docker schema 1 manifests are not supported; push with schema 2 or OCI media types")]
    Schema1,
}

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

/// Whether a document lists layers (an image or artifact) or child manifests (an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// Image manifest (OCI or Docker schema 2), including artifact manifests.
    Image,
    /// Image index or Docker manifest list.
    Index,
}

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Content address.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// External URLs the content may be fetched from (foreign layers), as written; the
    /// registry decides which it admits.
    pub urls: Vec<String>,
    /// `artifactType` of the referenced content, if given.
    pub artifact_type: Option<String>,
}

/// A validated manifest: its type and everything it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The media type the document is stored and served with.
    pub media_type: String,
    /// Image or index.
    pub kind: ManifestKind,
    /// The config descriptor (images only).
    pub config: Option<Descriptor>,
    /// Layers (images) — blobs that must exist unless they carry URLs.
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes) — manifests that must exist in the same repository.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs, attestations).
    pub subject: Option<Descriptor>,
    /// The artifact type for the referrers API: `artifactType`, else (for an image manifest)
    /// the config's media type.
    pub artifact_type: Option<String>,
    /// Annotations, as a JSON object text, for referrer descriptors.
    pub annotations: Option<String>,
}

impl ParsedManifest {
    /// Parses `body` as pushed with `content_type` (the request's `Content-Type`, if any).
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        check_no_duplicate_keys(body).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
        let raw: RawManifest =
            serde_json::from_slice(body).map_err(|e| invalid(format!("invalid manifest: {e}")))?;

        // Both are compared and stored lower-cased: media type names are case-insensitive.
        // The field is a value of the document, so unlike the header it may not carry
        // parameters.
        let declared = raw.media_type.as_deref().map(str::to_ascii_lowercase);
        let header = content_type.map(media_type::canonical).filter(|ct| {
            !ct.is_empty() && ct != "application/json" && ct != "application/octet-stream"
        });
        let (declared, header) = (declared.as_deref(), header.as_deref());
        if raw.schema_version == Some(1)
            || [declared, header]
                .into_iter()
                .flatten()
                .any(|t| t == media_type::DOCKER_SCHEMA1 || t == media_type::DOCKER_SCHEMA1_SIGNED)
        {
            return Err(ManifestError::Schema1);
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        if let (Some(d), Some(h)) = (declared, header)
            && d != h
        {
            return Err(invalid(format!(
                "mediaType {d:?} does not match Content-Type {h:?}"
            )));
        }
        if raw.layers.is_some() && raw.manifests.is_some() {
            return Err(invalid("a manifest cannot have both layers and manifests"));
        }
        let media_type = match declared.or(header) {
            Some(t) => t.to_owned(),
            None if raw.manifests.is_some() => media_type::OCI_INDEX.to_owned(),
            None => media_type::OCI_MANIFEST.to_owned(),
        };
        let kind = match media_type.as_str() {
            media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => ManifestKind::Image,
            media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => ManifestKind::Index,
            other => {
                return Err(invalid(format!(
                    "unsupported manifest media type {other:?}"
                )));
            }
        };

        let subject = raw.subject.map(RawDescriptor::validate).transpose()?;
        let annotations = raw
            .annotations
            .as_ref()
            .map(|a| serde_json::to_string(a).expect("a string map always serializes"));
        match kind {
            ManifestKind::Image => {
                if raw.manifests.is_some() {
                    return Err(invalid("an image manifest cannot list manifests"));
                }
                let config = raw
                    .config
                    .ok_or_else(|| invalid("image manifest has no config"))?
                    .validate()?;
                let layers = match raw.layers {
                    Some(l) => l
                        .into_iter()
                        .map(RawDescriptor::validate)
                        .collect::<Result<_, _>>()?,
                    None if media_type == media_type::DOCKER_MANIFEST => {
                        return Err(invalid("Docker manifest has no layers"));
                    }
                    None => Vec::new(),
                };
                // The referrers API lists an image manifest without `artifactType` under
                // its config's media type, whatever that type is.
                let artifact_type = raw
                    .artifact_type
                    .filter(|t| !t.is_empty())
                    .or_else(|| Some(config.media_type.clone()));
                Ok(ParsedManifest {
                    media_type,
                    kind,
                    config: Some(config),
                    layers,
                    manifests: Vec::new(),
                    subject,
                    artifact_type,
                    annotations,
                })
            }
            ManifestKind::Index => {
                if raw.layers.is_some() || raw.config.is_some() {
                    return Err(invalid("an index cannot have a config or layers"));
                }
                let manifests: Vec<Descriptor> = raw
                    .manifests
                    .ok_or_else(|| invalid("index has no manifests"))?
                    .into_iter()
                    .map(RawDescriptor::validate)
                    .collect::<Result<_, _>>()?;
                // Children are manifests in the same repository; a layer or config type
                // would send clients that follow the descriptor to the wrong endpoint.
                if let Some(child) = manifests
                    .iter()
                    .find(|d| !media_type::is_manifest_type(&d.media_type))
                {
                    return Err(invalid(format!(
                        "index child {} has media type {:?}, which is not a manifest type",
                        child.digest, child.media_type
                    )));
                }
                Ok(ParsedManifest {
                    media_type,
                    kind,
                    config: None,
                    layers: Vec::new(),
                    manifests,
                    subject,
                    artifact_type: raw.artifact_type.filter(|t| !t.is_empty()),
                    annotations,
                })
            }
        }
    }

    /// Blobs this manifest needs in its repository: the config and every layer without URLs.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| l.urls.is_empty()))
    }

    /// Every descriptor of the document: config, layers, children and subject.
    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.manifests)
            .chain(&self.subject)
    }
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
    size: i64,
    urls: Option<Vec<String>>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
}

impl RawDescriptor {
    fn validate(self) -> Result<Descriptor, ManifestError> {
        let digest = Digest::parse(&self.digest)
            .map_err(|e| invalid(format!("descriptor digest {:?}: {e}", self.digest)))?;
        let size = u64::try_from(self.size)
            .map_err(|_| invalid(format!("descriptor {digest} has a negative size")))?;
        let media_type = self
            .media_type
            .filter(|m| !m.is_empty())
            .ok_or_else(|| invalid(format!("descriptor {digest} has no mediaType")))?;
        Ok(Descriptor {
            media_type,
            digest,
            size,
            urls: self.urls.unwrap_or_default(),
            artifact_type: self.artifact_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(mt: &str, config_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{config_type}","digest":"{D}","size":0}},"layers":[{{"mediaType":"l","digest":"{D}","size":0}}]}}"#
        )
    }

    fn check(body: &str, ct: Option<&str>) -> Result<ParsedManifest, ManifestError> {
        ParsedManifest::parse(body.as_bytes(), ct)
    }

    #[test]
    fn images_and_artifacts() {
        let m = check(&image(OCI_MANIFEST, OCI_CONFIG), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.artifact_type.as_deref(), Some(OCI_CONFIG));
        assert_eq!(m.required_blobs().count(), 2);
        let helm = check(
            &image(OCI_MANIFEST, "application/vnd.cncf.helm.config.v1+json"),
            Some(OCI_MANIFEST),
        )
        .unwrap();
        assert_eq!(
            helm.artifact_type.as_deref(),
            Some("application/vnd.cncf.helm.config.v1+json")
        );
        let empty_type = image(OCI_MANIFEST, OCI_EMPTY).replacen('{', r#"{"artifactType":"","#, 1);
        assert_eq!(
            check(&empty_type, None).unwrap().artifact_type.as_deref(),
            Some(OCI_EMPTY)
        );
        let docker = check(
            &image(DOCKER_MANIFEST, DOCKER_CONFIG),
            Some(DOCKER_MANIFEST),
        )
        .unwrap();
        assert_eq!(docker.media_type, DOCKER_MANIFEST);
    }

    #[test]
    fn type_must_agree_with_content_type() {
        let body = image(OCI_MANIFEST, OCI_CONFIG);
        assert!(check(&body, Some(DOCKER_MANIFEST)).is_err());
        assert!(
            check(
                &body,
                Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")
            )
            .is_ok()
        );
        for (field, header) in [
            (
                "Application/VND.OCI.image.manifest.v1+JSON",
                Some(OCI_MANIFEST),
            ),
            (
                OCI_MANIFEST,
                Some("Application/VND.OCI.image.manifest.v1+JSON"),
            ),
            (
                OCI_MANIFEST,
                Some("APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON;Charset=UTF-8"),
            ),
            (
                "application/vnd.oci.image.manifest.V1+json",
                Some("Application/JSON"),
            ),
            ("application/vnd.oci.image.manifest.V1+json", None),
        ] {
            let typed = body.replacen(OCI_MANIFEST, field, 1);
            let m = check(&typed, header).unwrap_or_else(|e| panic!("{field} {header:?}: {e}"));
            assert_eq!(m.media_type, OCI_MANIFEST, "stored lower-cased");
        }
        let mixed_docker = body.replacen(
            OCI_MANIFEST,
            "application/VND.docker.distribution.manifest.v2+json",
            1,
        );
        assert!(
            check(&mixed_docker, Some(OCI_MANIFEST)).is_err(),
            "types still differ"
        );
        let schema1 = body.replacen(
            OCI_MANIFEST,
            "Application/vnd.Docker.distribution.manifest.v1+json",
            1,
        );
        assert_eq!(check(&schema1, None), Err(ManifestError::Schema1));
        let with_params = body.replacen(
            OCI_MANIFEST,
            "application/vnd.oci.image.manifest.v1+json; x=y",
            1,
        );
        assert!(
            check(&with_params, None).is_err(),
            "no parameters in the field"
        );
        let no_type = body.replace(&format!(r#""mediaType":"{OCI_MANIFEST}","#), "");
        assert_eq!(
            check(&no_type, Some(OCI_MANIFEST)).unwrap().media_type,
            OCI_MANIFEST
        );
        assert_eq!(check(&no_type, None).unwrap().media_type, OCI_MANIFEST);
    }

    #[test]
    fn refuses_ambiguous_and_bad_documents() {
        let both = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"layers":[]}}"#
        );
        assert!(check(&both, None).is_err());
        assert_eq!(
            check(r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#, None),
            Err(ManifestError::Schema1)
        );
        assert!(check("not json", None).is_err());
        assert!(check(r#"{"schemaVersion":2,"schemaVersion":2}"#, None).is_err());
        let negative = image(OCI_MANIFEST, OCI_CONFIG).replace(r#""size":0}]"#, r#""size":-1}]"#);
        assert!(check(&negative, None).is_err());
        let bad_digest = image(OCI_MANIFEST, OCI_CONFIG).replacen(D, "sha256:../x", 1);
        assert!(check(&bad_digest, None).is_err());
        assert!(
            check(
                r#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn indexes_list_children_and_subjects_are_kept() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1}},"annotations":{{"a":"b"}}}}"#
        );
        let m = check(&body, Some(OCI_INDEX)).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        for child_type in [
            OCI_CONFIG,
            "application/vnd.oci.image.layer.v1.tar",
            OCI_EMPTY,
        ] {
            let odd = body.replacen(OCI_MANIFEST, child_type, 1);
            assert!(check(&odd, Some(OCI_INDEX)).is_err(), "{child_type}");
        }
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.subject.unwrap().digest.as_str(), D);
        assert_eq!(m.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }
}
