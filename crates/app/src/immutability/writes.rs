//! The registry's writes that immutability rules govern. Each is decided on the
//! project's rules as read just before, and committed with a guard ([`TagGuard`]) that
//! the store checks in the write's own transaction: the rules' revision, and the tags
//! the decision looked at. A rule change or a tag move in between makes the guard stale;
//! nothing is written, and the write is decided again on what is current. So a write
//! never commits after a rule change that would have refused it was acknowledged, and
//! two pushes of one protected tag cannot both move it.
//!
//! [`TagGuard`]: berth_meta::TagGuard

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use berth_meta::{
    AuditEntry, Deletion, GuardFailure, MetaError, NewManifest, PutManifestError, TagGuard,
    WarningMark,
};
use berth_oci::{Digest, RepositoryName, Tag};

use super::rules::{ProtectingRule, Protection};
use crate::{Registry, RegistryError};

/// Decisions a write makes again when the rules or tags keep changing under it.
const GUARD_ATTEMPTS: usize = 16;

/// What an immutable tag refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Moving the tag to another manifest.
    Overwrite,
    /// Deleting the tag, or its manifest.
    Delete,
}

/// A write refused because an immutability rule protects a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableTag {
    /// The repository.
    pub repository: RepositoryName,
    /// The protected tag.
    pub tag: Tag,
    /// The rule protecting it.
    pub rule: ProtectingRule,
    /// What was refused.
    pub refused: Refused,
}

/// Harbor's messages, with the rule named.
impl fmt::Display for ImmutableTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tag, rule) = (&self.tag, &self.rule);
        match self.refused {
            Refused::Overwrite => {
                let name = self.repository.as_str();
                let name = name.split_once('/').map_or(name, |(_, rest)| rest);
                write!(
                    f,
                    "Failed to process request due to '{name}:{tag}' configured as immutable ({rule})"
                )
            }
            Refused::Delete => write!(
                f,
                "the tag {tag} configured as immutable, cannot be deleted ({rule})"
            ),
        }
    }
}

impl Registry {
    /// The immutability rules of `repository`'s project as they stand.
    pub async fn protection(
        &self,
        repository: &RepositoryName,
    ) -> Result<Protection, RegistryError> {
        let stored = self.meta.immutable_rules_of(repository.project()).await?;
        Ok(Protection::new(&stored))
    }

    /// The immutability rules of `repository`'s project as last read, or as they stand
    /// when none were.
    async fn last_protection(
        &self,
        repository: &RepositoryName,
    ) -> Result<Arc<Protection>, RegistryError> {
        match self.protections.get(repository.project()) {
            Some(protection) => Ok(protection),
            None => self.fresh_protection(repository).await,
        }
    }

    /// The immutability rules of `repository`'s project as they stand, kept as the
    /// last read.
    async fn fresh_protection(
        &self,
        repository: &RepositoryName,
    ) -> Result<Arc<Protection>, RegistryError> {
        let protection = Arc::new(self.protection(repository).await?);
        (self.protections).store(repository.project(), protection.clone());
        Ok(protection)
    }

    /// The rule that makes `tag` of `repository` immutable, if any: what tag retention
    /// asks before it removes a tag. The answer may be stale by the time a removal
    /// commits, but removals go through [`Registry::delete_manifest`], which decides
    /// again under a guard, so no removal commits against a rule that was in force.
    pub async fn immutable_rule_for(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ProtectingRule>, RegistryError> {
        Ok(self
            .protection(repository)
            .await?
            .rule_for(repository, tag)
            .cloned())
    }

    /// Commits a pushed manifest, unless it would move a protected tag to another
    /// manifest (a push of the manifest a protected tag points at is allowed, as in
    /// Harbor); answers whether its project's quota warning mark needs a look.
    pub(crate) async fn commit_manifest(
        &self,
        mut manifest: NewManifest,
    ) -> Result<WarningMark, RegistryError> {
        if manifest.tags.is_empty() {
            // No tag to protect: nothing the rules say matters.
            return Ok(self.meta.put_manifest(&manifest).await?);
        }
        // The rules last read for the project, unless a guard made of them went stale.
        let mut protection = self.last_protection(&manifest.repository).await?;
        for _ in 0..GUARD_ATTEMPTS {
            let protected = manifest
                .tags
                .iter()
                .filter(|t| protection.rule_for(&manifest.repository, t).is_some())
                .cloned()
                .collect();
            manifest.guard = Some(protection.guard(protected));
            match self.meta.put_manifest(&manifest).await {
                Err(PutManifestError::Stale(_)) => {
                    protection = self.fresh_protection(&manifest.repository).await?;
                }
                Err(PutManifestError::TagProtected(tag)) => {
                    return Err(refusal(
                        &protection,
                        &manifest.repository,
                        tag,
                        Refused::Overwrite,
                    ));
                }
                other => return Ok(other?),
            }
        }
        Err(kept_changing(&manifest.repository))
    }

    /// Deletes a tag unless a rule protects it.
    pub(crate) async fn untag(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        audit: &AuditEntry,
    ) -> Result<(), RegistryError> {
        for _ in 0..GUARD_ATTEMPTS {
            let protection = self.protection(repository).await?;
            if protection.rule_for(repository, tag).is_some() {
                return Err(refusal(
                    &protection,
                    repository,
                    tag.clone(),
                    Refused::Delete,
                ));
            }
            let guard = protection.guard(Vec::new());
            match self
                .meta
                .delete_tag(
                    repository,
                    tag,
                    Some(&guard),
                    Some(audit),
                    self.clock.now_ms(),
                )
                .await?
            {
                Deletion::Deleted => return Ok(()),
                Deletion::Stale(_) => continue,
                Deletion::NotFound | Deletion::ReferencedBy(_) => {
                    return Err(RegistryError::ManifestUnknown);
                }
            }
        }
        Err(kept_changing(repository))
    }

    /// Deletes a manifest (with its tags) unless a rule protects one of its tags.
    pub(crate) async fn delete_by_digest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        audit: &AuditEntry,
        now: i64,
    ) -> Result<(), RegistryError> {
        let deletion = self
            .delete_guarded(repository, |guard| async move {
                self.meta
                    .delete_manifest(repository, digest, Some(&guard), Some(audit), now)
                    .await
            })
            .await?;
        match deletion {
            Deletion::Deleted => Ok(()),
            Deletion::ReferencedBy(referrer) => Err(RegistryError::ManifestReferenced {
                digest: digest.clone(),
                referrer,
            }),
            Deletion::NotFound | Deletion::Stale(_) => Err(RegistryError::ManifestUnknown),
        }
    }

    /// Runs `delete`, a guarded deletion in `repository`, until its guard holds, unless
    /// a rule protects a tag it would remove. The first guess is that it removes no tag
    /// (most manifests deleted by digest have none left); a stale guard names the tags
    /// it would remove, which are decided on and put in the next guard. The answer is
    /// never `Stale`.
    pub async fn delete_guarded<F, Fut>(
        &self,
        repository: &RepositoryName,
        mut delete: F,
    ) -> Result<Deletion, RegistryError>
    where
        F: FnMut(TagGuard) -> Fut,
        Fut: Future<Output = Result<Deletion, MetaError>>,
    {
        let mut tags: Vec<Tag> = Vec::new();
        let mut protection = self.protection(repository).await?;
        for _ in 0..GUARD_ATTEMPTS {
            if let Some(tag) = tags
                .iter()
                .find(|t| protection.rule_for(repository, t).is_some())
            {
                return Err(refusal(
                    &protection,
                    repository,
                    tag.clone(),
                    Refused::Delete,
                ));
            }
            match delete(protection.guard(tags.clone())).await? {
                Deletion::Stale(GuardFailure::TagsChanged(current)) => tags = current,
                Deletion::Stale(GuardFailure::RulesChanged) => {
                    protection = self.protection(repository).await?;
                }
                done => return Ok(done),
            }
        }
        Err(kept_changing(repository))
    }
}

/// The refusal of a write to `tag`, naming the rule `protection` found for it.
fn refusal(
    protection: &Protection,
    repository: &RepositoryName,
    tag: Tag,
    refused: Refused,
) -> RegistryError {
    match protection.rule_for(repository, &tag) {
        Some(rule) => RegistryError::TagImmutable(Box::new(ImmutableTag {
            repository: repository.clone(),
            rule: rule.clone(),
            tag,
            refused,
        })),
        // The store found the tag protected by the guard this protection made.
        None => RegistryError::Internal(format!("tag {tag} was protected by no rule")),
    }
}

fn kept_changing(repository: &RepositoryName) -> RegistryError {
    RegistryError::Internal(format!(
        "the immutability rules or tags of {repository} kept changing; try again"
    ))
}
