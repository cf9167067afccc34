//! The data model and the metadata-store port.
//!
//! All metadata lives in SQL; blob stores hold only bytes. Repositories belong to
//! projects; artifacts (manifests) record push and last-pull times; every reference
//! (manifest → blob, index → manifest, referrer → subject) is a row, so quotas, GC,
//! retention and access control can be derived in the same transaction as a push.
//!
//! Architecture invariant: this crate holds no SQL. Adapters (`meta-sqlite`, …)
//! implement the traits and must pass the same behaviour checks.

mod accounts;
mod artifacts;
mod audit;
pub mod cache;
mod collection;
mod immutable;
mod jobs;
mod labels;
mod listing;
mod metadata;
mod model;
mod projects;
mod quotas;
mod retention;
mod robots;
mod sessions;
mod settings;
mod store;

pub use accounts::{NewUser, ProfileUpdate, User, UserError, UserField, UserStore};
pub use artifacts::{
    AddTagError, ArtifactField, ArtifactInfo, ArtifactStore, RepositoryField, RepositoryInfo,
    TagInfo,
};
pub use audit::{AuditEntry, AuditField, AuditRecord, AuditStore};
pub use collection::{
    CollectionStore, MarkedBlob, Moved, NewUploadPin, PinOutcome, PinnedUpload, RecordedBlob,
    SWEPT_BLOBS_KEPT_FOR, SweepBytes, SweepError, SweepFailed, UnlinkBatch, UntaggedManifest,
    UploadPin, settle_retired,
};
pub use immutable::{
    GuardFailure, ImmutableRule, ImmutableRuleError, ImmutableRuleStore, ProjectRules, TagGuard,
};
pub use jobs::{
    Checkpoint, ClaimedJob, CronError, CronSchedule, Enqueued, JobError, JobId, JobLogLine,
    JobOutcome, JobRecord, JobSpec, JobState, JobStore, Lease, MAX_BACKOFF_MS, NewJob, Period,
    PeriodError, RUNNER_LOST, RetryPolicy, RunEnd, Schedule, StopRequest,
};
pub use labels::{
    AddLabelError, Label, LabelError, LabelField, LabelScope, LabelStore, LabelUpdate, NewLabel,
};
pub use listing::{FieldFilter, ListQuery, Listed, Match, SortKey};
pub use metadata::Metadata;
pub use projects::{
    Member, MemberError, MemberKind, NewProject, Project, ProjectAccessInfo, ProjectError,
    ProjectField, ProjectStore, ProjectUpdate, Role, Visibility,
};
pub use quotas::{
    BlobQuota, Quota, QuotaExceeded, QuotaField, QuotaStore, UNLIMITED, UsageDrift, WarningMark,
};
pub use retention::{
    ExecutionStart, ExecutionStatus, RETENTION_ID_KEY, RetentionCandidate, RetentionExecution,
    RetentionPolicy, RetentionPolicyError, RetentionStore, RetentionTask, ScheduleFire,
    StartedExecution, TaskEnd, TaskStatus,
};
pub use robots::{
    NewRobot, Robot, RobotError, RobotField, RobotGrant, RobotLevel, RobotStore, RobotUpdate,
};
pub use sessions::{SessionStore, StoredSession};
pub use settings::SettingsStore;

pub use model::{
    NewManifest, PullRecord, Referrer, ReferrerLimit, ReferrerPage, SessionLimits, StoredManifest,
    TagPage, UploadSession,
};
pub use store::{
    BlobLinkStore, CreateUploadError, Deletion, GrantedUpload, ManifestStore, MetaError, MetaStore,
    PutManifestError, RepositoryStore, UploadAdvance, UploadLease, UploadStore,
};

#[cfg(feature = "conformance")]
pub mod conformance;
