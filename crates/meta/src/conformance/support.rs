//! What the checks share: names and digests, manifests, accounts, roles, listing queries
//! and audit trails.

use std::collections::BTreeMap;
use std::fmt::Debug;

use berth_oci::{Algorithm, Digest, RepositoryName, Tag, UploadId};
use bytes::Bytes;

use crate::{
    AuditEntry, AuditField, AuditStore, CollectionStore, FieldFilter, ListQuery, Listed, Match,
    NewManifest, NewProject, NewUploadPin, NewUser, PinOutcome, ProjectStore, Role, SortKey,
    UploadAdvance, UploadPin, UploadSession,
};

/// A repository name the checks know to be valid.
pub(super) fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

/// The sha256 digest of `s`.
pub(super) fn digest(s: &str) -> Digest {
    Digest::compute(Algorithm::Sha256, s.as_bytes())
}

/// A session of `repository` at offset 0, its id made of `n`.
pub(super) fn upload_session(n: u8, repository: &RepositoryName) -> UploadSession {
    UploadSession {
        id: UploadId::from_random([n; 16]),
        repository: repository.clone(),
        algorithm: Algorithm::Sha256,
        offset: 0,
        hash_state: vec![0],
        verified_by: None,
        verified_digest: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// A session of `repository` recorded as it completes ([`crate::CollectionStore::pin_new_upload`]):
/// its id made of `n`, `size` bytes written (a one-byte hash state of `n`), published
/// long ago, pinned on `digest` and claimed by holder 5 until 1000.
pub(super) fn new_pin(
    n: u8,
    repository: &RepositoryName,
    digest: &Digest,
    size: u64,
) -> NewUploadPin {
    NewUploadPin {
        session: UploadSession {
            offset: size,
            hash_state: vec![n],
            verified_by: Some(5),
            ..upload_session(n, repository)
        },
        digest: digest.clone(),
        holder: 5,
        until: 1_000,
        // Long ago: the step pins the session rather than linking the blob.
        published_at: 0,
    }
}

/// A session's move from `from` to `to` bytes, written by `writer` at `now`, with a
/// one-byte hash state.
pub(super) fn advance(from: u64, to: u64, state: u8, writer: i64, now: i64) -> UploadAdvance {
    UploadAdvance {
        from,
        to,
        hash_state: vec![state],
        writer,
        now,
    }
}

/// Pins `digest` in session `id` of `repository`, recording nothing more; what the pin
/// did.
pub(super) async fn pin(
    store: &dyn CollectionStore,
    id: &UploadId,
    repository: &RepositoryName,
    digest: &Digest,
) -> PinOutcome {
    let pin = UploadPin {
        id: id.clone(),
        repository: repository.clone(),
        digest: digest.clone(),
        append: None,
    };
    store.pin_upload_digest(&pin).await.unwrap().outcome
}

/// An image manifest of `repository` whose bytes are `body`, referencing `blobs` (by the
/// text their digest is made of, with their sizes), tagged `tags`, pushed at time 1.
pub(super) fn manifest(
    repository: &str,
    body: &str,
    blobs: &[(&str, u64)],
    tags: &[&str],
) -> NewManifest {
    NewManifest {
        repository: repo(repository),
        digest: digest(body),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        annotations: None,
        subject: None,
        content: Bytes::from(body.to_owned()),
        blobs: blobs.iter().map(|(b, s)| (digest(b), *s)).collect(),
        children: Vec::new(),
        tags: tags.iter().map(|t| Tag::parse(t).unwrap()).collect(),
        pushed_at: 1,
        audit: None,
        guard: None,
    }
}

/// Harbor's project administrator role id (seeded by [`seed_roles`]).
pub(super) const PROJECT_ADMIN: i64 = 1;
/// Harbor's developer role id.
pub(super) const DEVELOPER: i64 = 2;
/// Harbor's guest role id.
pub(super) const GUEST: i64 = 3;
/// Harbor's maintainer role id.
pub(super) const MAINTAINER: i64 = 4;

/// Stores the roles above, with a permission each; seeding again changes nothing.
pub(super) async fn seed_roles(store: &dyn ProjectStore) {
    let role = |id, name: &str| Role {
        id,
        name: name.into(),
        permissions: vec![("repository".into(), "pull".into())],
    };
    let roles = [
        role(PROJECT_ADMIN, "projectAdmin"),
        role(DEVELOPER, "developer"),
        role(GUEST, "guest"),
        role(MAINTAINER, "maintainer"),
    ];
    store.seed_roles(&roles).await.unwrap();
}

/// A user to create, not an administrator, whose other fields are made of its name.
pub(super) fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        realname: format!("{name} in full"),
        comment: format!("about {name}"),
        password_hash: format!("$argon2id$v=19$m=8,t=1,p=1${name}"),
        sysadmin: false,
    }
}

/// A project to create, without metadata.
pub(super) fn new_project(name: &str, owner_id: Option<i64>, public: bool) -> NewProject {
    NewProject {
        name: name.into(),
        owner_id,
        public,
        metadata: BTreeMap::new(),
        storage_limit: None,
    }
}

/// An audit entry by `actor` about `resource`, at time 1. Each check names its own actor,
/// so that [`audit_trail`] finds its entries only.
pub(super) fn audit(actor: &str, operation: &str, resource: &str) -> AuditEntry {
    AuditEntry {
        project_id: None,
        username: actor.into(),
        operation: operation.into(),
        resource_type: "conformance".into(),
        resource: resource.into(),
        success: true,
        client_ip: "192.0.2.7".into(),
        op_time: 1,
    }
}

/// The entries naming `actor`, in the order they were recorded (by id).
pub(super) async fn audit_trail(store: &dyn AuditStore, actor: &str) -> Vec<AuditEntry> {
    let query = query(&[(AuditField::Username, exact(actor))], &[]);
    let listed = store.list_audit(None, &query).await.unwrap();
    assert_eq!(listed.total, listed.items.len() as u64);
    listed.items.into_iter().map(|r| r.entry).collect()
}

/// The resources of the entries naming `actor`, in the order they were recorded.
pub(super) async fn audited(store: &dyn AuditStore, actor: &str) -> Vec<String> {
    let trail = audit_trail(store, actor).await;
    trail.into_iter().map(|e| e.resource).collect()
}

/// A whole listing of the rows matching every filter, sorted by the keys given
/// (`true`: descending).
pub(super) fn query<F: Copy>(filters: &[(F, Match)], sort: &[(F, bool)]) -> ListQuery<F> {
    ListQuery {
        filters: filters
            .iter()
            .map(|(field, matching)| FieldFilter {
                field: *field,
                matching: matching.clone(),
            })
            .collect(),
        sort: sort
            .iter()
            .map(|&(field, descending)| SortKey { field, descending })
            .collect(),
        ..ListQuery::default()
    }
}

/// One listing to check: its filters, its sort keys (`true`: descending) and the labels
/// of the rows expected, in order.
pub(super) type Case<'a, F> = (&'a [(F, Match)], &'a [(F, bool)], &'a [&'a str]);

/// Checks that `list` gives each case's rows, by `label`, and their number as the total.
pub(super) async fn check_listings<F: Debug, T>(
    cases: &[Case<'_, F>],
    list: impl AsyncFn(&[(F, Match)], &[(F, bool)]) -> Listed<T>,
    label: impl Fn(&T) -> &str,
) {
    for (filters, sort, expected) in cases {
        let listed = list(filters, sort).await;
        let labels: Vec<&str> = listed.items.iter().map(&label).collect();
        assert_eq!(labels, *expected, "{filters:?} sorted by {sort:?}");
        assert_eq!(listed.total, expected.len() as u64, "total of {filters:?}");
    }
}

/// Equal to `value`.
pub(super) fn exact(value: impl ToString) -> Match {
    Match::Exact(value.to_string())
}

/// Contains `value`.
pub(super) fn fuzzy(value: &str) -> Match {
    Match::Fuzzy(value.into())
}

/// Within the bounds, inclusive.
pub(super) fn range(low: Option<i64>, high: Option<i64>) -> Match {
    Match::Range(low.map(|n| n.to_string()), high.map(|n| n.to_string()))
}

/// Equal to one of `values`.
pub(super) fn any_of<T: ToString>(values: &[T]) -> Match {
    Match::AnyOf(values.iter().map(ToString::to_string).collect())
}
