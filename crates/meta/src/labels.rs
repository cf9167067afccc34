//! Labels (Harbor's `harbor_label`): global ones, managed by the system, and project
//! ones, each in one project; and the labels added to artifacts (`label_reference`).

use async_trait::async_trait;

use crate::audit::AuditEntry;
use crate::listing::{ListQuery, Listed};
use crate::store::MetaError;

/// Where a label may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelScope {
    /// Harbor's `g`: on artifacts of every project.
    Global,
    /// Harbor's `p`: on artifacts of this project only; deleted with it.
    Project(i64),
}

impl LabelScope {
    /// Harbor's scope letter: `g` or `p`.
    pub fn letter(self) -> &'static str {
        match self {
            LabelScope::Global => "g",
            LabelScope::Project(_) => "p",
        }
    }

    /// The project, for a project label.
    pub fn project_id(self) -> Option<i64> {
        match self {
            LabelScope::Global => None,
            LabelScope::Project(id) => Some(id),
        }
    }
}

/// A stored label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Stable id, never reused.
    pub id: i64,
    /// Name, unique within its scope (and project).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Free text, a colour as the UI writes it (`#FFFFFF`).
    pub color: String,
    /// Global or of one project.
    pub scope: LabelScope,
    /// When it was created (Unix milliseconds).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A label to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLabel {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Colour.
    pub color: String,
    /// Global or of one (existing) project.
    pub scope: LabelScope,
}

/// What an update changes: the scope stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelUpdate {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Colour.
    pub color: String,
}

/// The fields labels can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelField {
    /// `name`
    Name,
    /// `description`
    Description,
    /// `color`
    Color,
    /// `scope` (`g` or `p`)
    Scope,
    /// `project_id` (0 for a global label)
    ProjectId,
    /// `creation_time`
    CreationTime,
    /// `update_time`
    UpdateTime,
    /// `id`
    Id,
}

/// Why a label could not be created or changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LabelError {
    /// Another label of the same scope (and project) has the name.
    #[error("label {0} already exists")]
    NameTaken(String),
    /// The project of a project label does not exist (any more).
    #[error("the label's project does not exist")]
    NoProject,
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Why a label could not be added to an artifact.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AddLabelError {
    /// The artifact already carries the label.
    #[error("label {label} is already added to the artifact {artifact}")]
    AlreadyAdded {
        /// The label.
        label: i64,
        /// The artifact.
        artifact: i64,
    },
    /// The label or the artifact does not exist (any more).
    #[error("label {label} or artifact {artifact} not found")]
    NotFound {
        /// The label.
        label: i64,
        /// The artifact.
        artifact: i64,
    },
    /// The backend failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Labels and the artifacts that carry them. Each change records its `audit` entry in
/// its own transaction, when it changed something. An artifact's labels go with it
/// when it is deleted, whichever way (its repository deleted, a manifest delete).
#[async_trait]
pub trait LabelStore: Send + Sync {
    /// Creates a label; returns its id, which no label ever had.
    async fn create_label(
        &self,
        label: &NewLabel,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<i64, LabelError>;
    /// The label with this id.
    async fn label(&self, id: i64) -> Result<Option<Label>, MetaError>;
    /// A page of labels.
    async fn list_labels(&self, query: &ListQuery<LabelField>) -> Result<Listed<Label>, MetaError>;
    /// Changes name, description and colour; returns whether the label exists.
    async fn update_label(
        &self,
        id: i64,
        update: &LabelUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, LabelError>;
    /// Deletes a label and removes it from every artifact; returns whether it existed.
    async fn delete_label(&self, id: i64, audit: &AuditEntry) -> Result<bool, MetaError>;
    /// Adds a label to an artifact (by its id).
    async fn add_artifact_label(
        &self,
        artifact_id: i64,
        label_id: i64,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<(), AddLabelError>;
    /// Removes a label from an artifact; returns whether the artifact carried it.
    async fn remove_artifact_label(
        &self,
        artifact_id: i64,
        label_id: i64,
        audit: &AuditEntry,
    ) -> Result<bool, MetaError>;
    /// The labels the artifacts with these ids carry, as `(artifact id, label)` pairs
    /// in artifact id, then label id order.
    async fn artifact_labels(&self, artifact_ids: &[i64]) -> Result<Vec<(i64, Label)>, MetaError>;
}
