//! Repositories, artifacts and tags as Harbor's API shows and changes them. Deletes go
//! through the registry, so the API and `/v2/` refuse the same things (a manifest an
//! index still lists, for one).

use std::sync::Arc;

use berth_authz::{Action, Resource};
use berth_meta::{
    AddTagError, ArtifactField, ArtifactInfo, Deletion, Label, ListQuery, Listed, Project,
    RepositoryField, RepositoryInfo,
};
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use serde_json::{Value, json};

use super::projects::Projects;
use super::{ManageError, Requester};
use crate::identity::Identity;
use crate::immutability::Protection;
use crate::{Registry, RegistryError};

/// Manifests up to this size are read to describe their artifact (type, platforms).
const DESCRIBED_MANIFEST_BYTES: u64 = 1 << 20;
/// Configs up to this size are read for an artifact's extra attributes.
const DESCRIBED_CONFIG_BYTES: u64 = 1 << 20;

/// An artifact with what Harbor derives from its manifest and config.
#[derive(Debug, Clone)]
pub struct ArtifactView {
    /// What the store holds.
    pub info: ArtifactInfo,
    /// Its project.
    pub project_id: i64,
    /// Its repository.
    pub repository: RepositoryName,
    /// Harbor's type: `IMAGE`, `CHART`, `CNAB`, `SIGNATURE`, `SBOM`, `UNKNOWN`.
    pub kind: &'static str,
    /// The config's media type, for an image manifest.
    pub config_media_type: Option<String>,
    /// `architecture`, `os`, `config`, … from the config, or a chart's metadata.
    pub extra_attrs: Value,
    /// An index's children: digest, id when stored, platform, annotations, urls.
    pub references: Vec<ChildReference>,
    /// Signatures, SBOMs and other artifacts about this one, when asked for.
    pub accessories: Vec<Accessory>,
    /// The labels it carries, by id, when asked for.
    pub labels: Vec<Label>,
    /// Its tags that an immutability rule protects.
    pub immutable_tags: Vec<Tag>,
}

/// What an artifact's description includes besides what its manifest and config give.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArtifactDetail {
    /// Its accessories.
    pub accessories: bool,
    /// Its labels.
    pub labels: bool,
}

/// A child manifest of an index.
#[derive(Debug, Clone)]
pub struct ChildReference {
    /// Its digest.
    pub digest: Digest,
    /// Its artifact id, when stored.
    pub id: Option<i64>,
    /// `platform` as the index gives it.
    pub platform: Option<Value>,
    /// `annotations` as the index gives them.
    pub annotations: Option<Value>,
    /// `urls` as the index gives them.
    pub urls: Option<Value>,
}

/// An artifact about another one (Harbor's accessory).
#[derive(Debug, Clone)]
pub struct Accessory {
    /// Its artifact id.
    pub id: i64,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// `signature.cosign`, `signature.notation`, `sbom.harbor`, `attestation`, …
    pub kind: String,
    /// When it was pushed.
    pub created_at: i64,
}

/// The repository and artifact use cases.
pub struct Artifacts {
    identity: Arc<Identity>,
    registry: Arc<Registry>,
}

impl Artifacts {
    /// The use cases over `identity` and `registry`.
    pub fn new(identity: Arc<Identity>, registry: Arc<Registry>) -> Self {
        Artifacts { identity, registry }
    }

    async fn project(
        &self,
        who: &Requester,
        project: &str,
        resource: Resource,
        action: Action,
    ) -> Result<Project, ManageError> {
        Projects::new(self.identity.clone())
            .with_permission(who, project, true, resource, action)
            .await
    }

    /// The full name of repository `name` (without the project) of `project`.
    pub(super) fn repository_name(
        project: &Project,
        name: &str,
    ) -> Result<RepositoryName, ManageError> {
        RepositoryName::parse(&format!("{}/{name}", project.name))
            .map_err(|e| ManageError::Invalid(e.to_string()))
    }

    /// A page of a project's repositories.
    pub async fn repositories(
        &self,
        who: &Requester,
        project: &str,
        query: &ListQuery<RepositoryField>,
    ) -> Result<Listed<RepositoryInfo>, ManageError> {
        let project = self
            .project(who, project, Resource::Repository, Action::List)
            .await?;
        Ok(self
            .identity
            .stores
            .artifacts
            .list_repositories(&[project.id], query)
            .await?)
    }

    /// A page of every repository the caller may read.
    pub async fn all_repositories(
        &self,
        who: &Requester,
        query: &ListQuery<RepositoryField>,
    ) -> Result<Listed<RepositoryInfo>, ManageError> {
        let visibility = match &who.account {
            Some(a) => crate::identity::visibility_of(a),
            None => berth_meta::Visibility::PublicOnly,
        };
        let projects = self
            .identity
            .stores
            .projects
            .list_projects(&visibility, &ListQuery::default())
            .await?;
        let ids: Vec<i64> = projects.items.iter().map(|p| p.id).collect();
        Ok(self
            .identity
            .stores
            .artifacts
            .list_repositories(&ids, query)
            .await?)
    }

    /// One repository.
    pub async fn repository(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
    ) -> Result<RepositoryInfo, ManageError> {
        let project = self
            .project(who, project, Resource::Repository, Action::Read)
            .await?;
        let name = Self::repository_name(&project, name)?;
        self.identity
            .stores
            .artifacts
            .repository_info(&name)
            .await?
            .ok_or_else(|| repository_not_found(&name))
    }

    /// Sets a repository's description.
    pub async fn describe(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        description: &str,
    ) -> Result<(), ManageError> {
        let (name, audit, now) = self
            .repository_change(who, project, name, Action::Update, "update")
            .await?;
        let found = self
            .identity
            .stores
            .artifacts
            .set_repository_description(&name, description, now, &audit)
            .await?;
        found
            .then_some(())
            .ok_or_else(|| repository_not_found(&name))
    }

    /// The repository a change names, once the caller may perform `action` on
    /// repositories of its project, with the change's audit entry and time.
    async fn repository_change(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        action: Action,
        operation: &str,
    ) -> Result<(RepositoryName, berth_meta::AuditEntry, i64), ManageError> {
        let project = self
            .project(who, project, Resource::Repository, action)
            .await?;
        let name = Self::repository_name(&project, name)?;
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit(
            operation,
            "repository",
            name.as_str(),
            Some(project.id),
            now,
        );
        Ok((name, audit, now))
    }

    /// Deletes a repository with everything in it.
    pub async fn delete_repository(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
    ) -> Result<(), ManageError> {
        let (name, audit, _) = self
            .repository_change(who, project, name, Action::Delete, "delete")
            .await?;
        let (store, name, audit) = (&self.identity.stores.artifacts, &name, &audit);
        let deletion = self
            .registry
            .delete_guarded(name, |guard| async move {
                store.delete_repository(name, Some(&guard), audit).await
            })
            .await
            .map_err(registry_error)?;
        match deletion {
            Deletion::Deleted => Ok(()),
            _ => Err(repository_not_found(name)),
        }
    }

    /// A page of a repository's artifacts, described.
    pub async fn list(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        query: &ListQuery<ArtifactField>,
        detail: ArtifactDetail,
    ) -> Result<Listed<ArtifactView>, ManageError> {
        let project = self
            .project(who, project, Resource::Artifact, Action::List)
            .await?;
        let repository = Self::repository_name(&project, name)?;
        let store = &self.identity.stores.artifacts;
        if store.repository_info(&repository).await?.is_none() {
            return Err(ManageError::NotFound(format!(
                "repository {repository} not found"
            )));
        }
        let listed = store
            .list_artifacts(&repository, query, DESCRIBED_MANIFEST_BYTES)
            .await?;
        let protection = self.protection(&repository).await?;
        let mut items = Vec::with_capacity(listed.items.len());
        for info in listed.items {
            items.push(
                self.describe_artifact(
                    &project,
                    &repository,
                    info,
                    &protection,
                    detail.accessories,
                )
                .await?,
            );
        }
        if detail.labels {
            self.add_labels(&mut items).await?;
        }
        Ok(Listed {
            items,
            total: listed.total,
        })
    }

    /// One artifact, by tag or digest, described.
    pub async fn get(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        reference: &Reference,
        detail: ArtifactDetail,
    ) -> Result<ArtifactView, ManageError> {
        let project = self
            .project(who, project, Resource::Artifact, Action::Read)
            .await?;
        let repository = Self::repository_name(&project, name)?;
        let info = self.find(&repository, reference).await?;
        let protection = self.protection(&repository).await?;
        let mut view = self
            .describe_artifact(&project, &repository, info, &protection, detail.accessories)
            .await?;
        if detail.labels {
            self.add_labels(std::slice::from_mut(&mut view)).await?;
        }
        Ok(view)
    }

    /// Fills in the labels of described artifacts, read in one query.
    async fn add_labels(&self, views: &mut [ArtifactView]) -> Result<(), ManageError> {
        let ids: Vec<i64> = views.iter().map(|v| v.info.id).collect();
        let carried = self.identity.stores.labels.artifact_labels(&ids).await?;
        for (artifact, label) in carried {
            if let Some(view) = views.iter_mut().find(|v| v.info.id == artifact) {
                view.labels.push(label);
            }
        }
        Ok(())
    }

    async fn protection(&self, repository: &RepositoryName) -> Result<Protection, ManageError> {
        self.registry
            .protection(repository)
            .await
            .map_err(registry_error)
    }

    /// Deletes an artifact (with its tags).
    pub async fn delete(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        reference: &Reference,
    ) -> Result<(), ManageError> {
        let project = self
            .project(who, project, Resource::Artifact, Action::Delete)
            .await?;
        let repository = Self::repository_name(&project, name)?;
        let info = self.find(&repository, reference).await?;
        self.registry
            .delete_manifest(&repository, &Reference::Digest(info.digest), &who.actor())
            .await
            .map_err(registry_error)
    }

    /// Adds a tag to an artifact.
    pub async fn add_tag(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        reference: &Reference,
        tag: &str,
    ) -> Result<(), ManageError> {
        let project = self
            .project(who, project, Resource::Tag, Action::Create)
            .await?;
        let repository = Self::repository_name(&project, name)?;
        let tag = Tag::parse(tag).map_err(|e| ManageError::Invalid(e.to_string()))?;
        let info = self.find(&repository, reference).await?;
        let now = self.identity.clock.now_ms();
        let audit = who.actor().audit(
            "create",
            "tag",
            &format!("{repository}:{tag}"),
            Some(project.id),
            now,
        );
        self.identity
            .stores
            .artifacts
            .add_tag(&repository, &info.digest, &tag, now, &audit)
            .await
            .map_err(|e| match e {
                AddTagError::Exists => {
                    ManageError::Conflict(format!("tag {tag} already exists in {repository}"))
                }
                AddTagError::NoArtifact => ManageError::NotFound("artifact not found".into()),
                AddTagError::Meta(e) => ManageError::Meta(e),
            })
    }

    /// Deletes a tag of an artifact.
    pub async fn delete_tag(
        &self,
        who: &Requester,
        project: &str,
        name: &str,
        reference: &Reference,
        tag: &str,
    ) -> Result<(), ManageError> {
        let project = self
            .project(who, project, Resource::Tag, Action::Delete)
            .await?;
        let repository = Self::repository_name(&project, name)?;
        let info = self.find(&repository, reference).await?;
        let tag = Tag::parse(tag).map_err(|e| ManageError::Invalid(e.to_string()))?;
        if !info.tags.iter().any(|t| t.name == tag) {
            return Err(ManageError::NotFound(format!("tag {tag} not found")));
        }
        self.registry
            .delete_manifest(&repository, &Reference::Tag(tag), &who.actor())
            .await
            .map_err(registry_error)
    }

    async fn find(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<ArtifactInfo, ManageError> {
        self.identity
            .stores
            .artifacts
            .artifact(repository, reference, DESCRIBED_MANIFEST_BYTES)
            .await?
            .ok_or_else(|| {
                ManageError::NotFound(format!("artifact {repository}:{reference} not found"))
            })
    }

    /// Derives Harbor's description of an artifact from its manifest and config.
    async fn describe_artifact(
        &self,
        project: &Project,
        repository: &RepositoryName,
        info: ArtifactInfo,
        protection: &Protection,
        with_accessories: bool,
    ) -> Result<ArtifactView, ManageError> {
        let manifest: Value = info
            .content
            .as_deref()
            .and_then(|c| serde_json::from_slice(c).ok())
            .unwrap_or(Value::Null);
        let config_media_type = manifest["config"]["mediaType"].as_str().map(str::to_owned);
        let kind = artifact_kind(&info, config_media_type.as_deref(), &manifest);
        let extra_attrs = match manifest["config"]["digest"].as_str().map(Digest::parse) {
            Some(Ok(config)) if matches!(kind, "IMAGE" | "CHART") => {
                self.extra_attrs(repository, &config, kind).await?
            }
            _ => json!({}),
        };
        let mut references = Vec::new();
        if let Some(children) = manifest["manifests"].as_array() {
            for child in children {
                let Some(Ok(digest)) = child["digest"].as_str().map(Digest::parse) else {
                    continue;
                };
                let id = self
                    .identity
                    .stores
                    .artifacts
                    .artifact(repository, &Reference::Digest(digest.clone()), 0)
                    .await?
                    .map(|a| a.id);
                let field = |k: &str| child.get(k).filter(|v| !v.is_null()).cloned();
                references.push(ChildReference {
                    digest,
                    id,
                    platform: field("platform"),
                    annotations: field("annotations"),
                    urls: field("urls"),
                });
            }
        }
        let accessories = if with_accessories {
            self.accessories(repository, &info.digest).await?
        } else {
            Vec::new()
        };
        let immutable_tags = info
            .tags
            .iter()
            .filter(|t| protection.rule_for(repository, &t.name).is_some())
            .map(|t| t.name.clone())
            .collect();
        Ok(ArtifactView {
            info,
            project_id: project.id,
            repository: repository.clone(),
            kind,
            config_media_type,
            extra_attrs,
            references,
            accessories,
            labels: Vec::new(),
            immutable_tags,
        })
    }

    async fn extra_attrs(
        &self,
        repository: &RepositoryName,
        config: &Digest,
        kind: &str,
    ) -> Result<Value, ManageError> {
        let bytes = self
            .registry
            .small_blob(repository, config, DESCRIBED_CONFIG_BYTES)
            .await
            .map_err(registry_error)?;
        let Some(config) = bytes.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
            return Ok(json!({}));
        };
        if kind == "CHART" {
            return Ok(config);
        }
        let mut attrs = serde_json::Map::new();
        for key in [
            "architecture",
            "os",
            "config",
            "created",
            "author",
            "variant",
        ] {
            if let Some(v) = config.get(key).filter(|v| !v.is_null()) {
                attrs.insert(key.into(), v.clone());
            }
        }
        Ok(Value::Object(attrs))
    }

    /// Referrers (by `subject`) and cosign's tag-scheme signatures of an artifact.
    async fn accessories(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Accessory>, ManageError> {
        let store = &self.identity.stores.artifacts;
        let mut found = Vec::new();
        let referrers = store
            .referring_artifacts(repository, subject, DESCRIBED_MANIFEST_BYTES)
            .await?;
        for referrer in &referrers {
            let manifest: Value = referrer
                .content
                .as_deref()
                .and_then(|c| serde_json::from_slice(c).ok())
                .unwrap_or(Value::Null);
            found.push(Accessory {
                id: referrer.id,
                digest: referrer.digest.clone(),
                size: referrer.total_size,
                kind: accessory_kind(referrer.artifact_type.as_deref(), &manifest),
                created_at: referrer.pushed_at,
            });
        }
        let hex = subject.as_str().replace(':', "-");
        for (suffix, kind) in [
            (".sig", "signature.cosign"),
            (".att", "attestation"),
            (".sbom", "sbom"),
        ] {
            let Ok(tag) = Tag::parse(&format!("{hex}{suffix}")) else {
                continue;
            };
            if let Some(a) = store.artifact(repository, &Reference::Tag(tag), 0).await? {
                found.push(Accessory {
                    id: a.id,
                    digest: a.digest,
                    size: a.total_size,
                    kind: kind.into(),
                    created_at: a.pushed_at,
                });
            }
        }
        Ok(found)
    }
}

/// Harbor's artifact type, from the media types involved.
fn artifact_kind(info: &ArtifactInfo, config: Option<&str>, manifest: &Value) -> &'static str {
    const IMAGE_CONFIGS: &[&str] = &[
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    ];
    const INDEXES: &[&str] = &[
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ];
    let artifact_type = info.artifact_type.as_deref().unwrap_or("");
    if INDEXES.contains(&info.media_type.as_str()) {
        return "IMAGE";
    }
    match (artifact_type, config) {
        ("application/vnd.dev.cosign.artifact.sig.v1+json", _) => "SIGNATURE",
        ("application/vnd.cncf.notary.signature", _) => "SIGNATURE",
        ("application/vnd.goharbor.harbor.sbom.v1", _) => "SBOM",
        (_, Some("application/vnd.cncf.helm.config.v1+json")) => "CHART",
        (_, Some("application/vnd.cnab.manifest.v1" | "application/vnd.cnab.config.v1+json")) => {
            "CNAB"
        }
        (_, Some(c)) if IMAGE_CONFIGS.contains(&c) => {
            let cosign = manifest["layers"][0]["mediaType"].as_str()
                == Some("application/vnd.dev.cosign.simplesigning.v1+json");
            if cosign { "SIGNATURE" } else { "IMAGE" }
        }
        _ => "UNKNOWN",
    }
}

/// Harbor's accessory type of a referrer.
fn accessory_kind(artifact_type: Option<&str>, manifest: &Value) -> String {
    let layer = manifest["layers"][0]["mediaType"].as_str().unwrap_or("");
    match artifact_type.unwrap_or("") {
        "application/vnd.dev.cosign.artifact.sig.v1+json" => "signature.cosign",
        "application/vnd.cncf.notary.signature" => "signature.notation",
        "application/vnd.goharbor.harbor.sbom.v1" => "sbom.harbor",
        t if t.contains("spdx") || t.contains("cyclonedx") => "sbom",
        _ if layer == "application/vnd.dev.cosign.simplesigning.v1+json" => "signature.cosign",
        "application/vnd.in-toto+json" => "attestation",
        _ => "subject.accessory",
    }
    .to_owned()
}

fn repository_not_found(name: &RepositoryName) -> ManageError {
    ManageError::NotFound(format!("repository {name} not found"))
}

fn registry_error(e: RegistryError) -> ManageError {
    match e {
        RegistryError::ManifestUnknown | RegistryError::NameUnknown => {
            ManageError::NotFound(e.to_string())
        }
        RegistryError::ManifestReferenced { .. } | RegistryError::TagImmutable(_) => {
            ManageError::Precondition(e.to_string())
        }
        RegistryError::Internal(m) => ManageError::Meta(berth_meta::MetaError(m)),
        other => ManageError::Invalid(other.to_string()),
    }
}
