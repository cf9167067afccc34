//! Checks of [`crate::ArtifactStore`]: repositories and artifacts as Harbor lists them,
//! their sizes, counts and times, and the changes Harbor's API makes.

use berth_oci::{Digest, Reference, Tag};

use super::support::{
    Case, PROJECT_ADMIN, any_of, audit, audited, check_listings, digest, exact, fuzzy, manifest,
    new_project, query, range, repo,
};
use crate::Metadata;
use crate::{
    AddTagError, ArtifactField, ArtifactInfo, Deletion, ListQuery, Listed, Match, NewManifest,
    PullRecord, RepositoryField, RepositoryInfo, TagInfo,
};

/// Runs the artifact checks.
pub(super) async fn run(store: &dyn Metadata) {
    let gallery = Gallery::push(store).await;
    repositories_list_with_counts_and_times(store, &gallery).await;
    descriptions_are_set_on_existing_repositories(store).await;
    artifacts_list_with_tags_sizes_and_times(store).await;
    artifacts_are_found_by_tag_or_digest(store).await;
    tags_are_added_to_artifacts_of_their_repository(store).await;
    stored_bytes_count_each_blob_once(store, &gallery).await;
    deleting_a_repository_removes_what_it_held(store, &gallery).await;
}

const APP: &str = "cf-art/app";
const WEB: &str = "cf-art/web";
const OTHER: &str = "cf-art-other/app";
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The bodies of the manifests of `cf-art/app`, in push order.
const M1: &str = "cf-art m1";
const M2: &str = "cf-art m2, larger";
const M3: &str = "cf-art m3";
const IDX: &str = "cf-art index";
const SIG: &str = "cf-art signature";
/// The config blob every image of the gallery references.
const CFG: (&str, u64) = ("cf-art cfg", 30);

/// Two projects: `cf-art` with repositories `app` (an image, a larger image, an untagged
/// image, an index of the first two, a signature of the first) and `web` (one image),
/// and `cf-art-other` with one image. Blob sizes: config 30, layers 40, 50, 60 and 70.
struct Gallery {
    /// The project `cf-art`.
    art: i64,
    /// The project `cf-art-other`.
    other: i64,
}

impl Gallery {
    async fn push(store: &dyn Metadata) -> Gallery {
        let mut ids = Vec::new();
        for name in ["cf-art", "cf-art-other"] {
            let project = new_project(name, None, false);
            let created = audit("cf-art-pusher", "create", name);
            ids.push(
                store
                    .create_project(&project, PROJECT_ADMIN, 1, &created)
                    .await
                    .unwrap(),
            );
        }
        for (repository, blob, size, at) in [
            (APP, CFG.0, CFG.1, 10),
            (APP, "cf-art layer", 40, 10),
            (APP, "cf-art layer2", 50, 10),
            (WEB, CFG.0, CFG.1, 15),
            (WEB, "cf-art web layer", 60, 15),
            (OTHER, CFG.0, CFG.1, 16),
            (OTHER, "cf-art other layer", 70, 16),
        ] {
            let repository = repo(repository);
            store
                .link_blob(&repository, &digest(blob), size, at)
                .await
                .unwrap();
        }
        let at = |m: NewManifest, pushed_at| NewManifest { pushed_at, ..m };
        let mut index = at(manifest(APP, IDX, &[], &["multi"]), 400);
        index.media_type = INDEX.into();
        index.children = vec![(digest(M1), 9), (digest(M2), 17)];
        let mut signature = at(manifest(APP, SIG, &[], &[]), 500);
        signature.subject = Some(digest(M1));
        signature.artifact_type = Some(SIGNATURE.into());
        signature.annotations = Some(r#"{"signed":"yes"}"#.into());
        for m in [
            at(
                manifest(APP, M1, &[CFG, ("cf-art layer", 40)], &["v1", "latest"]),
                100,
            ),
            at(
                manifest(WEB, "cf-art w1", &[CFG, ("cf-art web layer", 60)], &["v1"]),
                150,
            ),
            at(
                manifest(OTHER, "cf-art o1", &[CFG, ("cf-art other layer", 70)], &[]),
                160,
            ),
            at(
                manifest(APP, M2, &[CFG, ("cf-art layer2", 50)], &["v2"]),
                200,
            ),
            at(manifest(APP, M3, &[CFG], &[]), 300),
            index,
            signature,
        ] {
            store.put_manifest(&m).await.unwrap();
        }
        Gallery {
            art: ids[0],
            other: ids[1],
        }
    }
}

/// The names of a page of repositories.
fn repository_names(listed: &Listed<RepositoryInfo>) -> Vec<&str> {
    listed.items.iter().map(|r| r.name.as_str()).collect()
}

/// A repository counts its artifacts and the pulls recorded; it was created by its first
/// blob and changed by its last push. Listings are per project, filtered, sorted, paged.
async fn repositories_list_with_counts_and_times(store: &dyn Metadata, gallery: &Gallery) {
    let app = store.repository_info(&repo(APP)).await.unwrap().unwrap();
    assert_eq!(
        (app.project_id, app.artifact_count, app.pull_count),
        (gallery.art, 5, 0)
    );
    assert_eq!((app.created_at, app.updated_at), (10, 500));
    assert_eq!(app.description, "");
    assert!(
        store
            .repository_info(&repo("cf-art/none"))
            .await
            .unwrap()
            .is_none()
    );

    let pulls = [
        PullRecord {
            repository: repo(APP),
            digest: digest(M2),
            tag: Some(Tag::parse("v2").unwrap()),
            count: 2,
        },
        PullRecord {
            repository: repo(APP),
            digest: digest(M1),
            tag: None,
            count: 1,
        },
    ];
    store.record_pulls(&pulls, 700, &[]).await.unwrap();
    let later = [PullRecord {
        repository: repo(APP),
        digest: digest(M1),
        tag: Some(Tag::parse("v1").unwrap()),
        count: 2,
    }];
    store.record_pulls(&later, 800, &[]).await.unwrap();
    let app = store.repository_info(&repo(APP)).await.unwrap().unwrap();
    assert_eq!(app.pull_count, 5, "pull counts add up");

    let list = async |filters: &[(RepositoryField, Match)], sort: &[(RepositoryField, bool)]| {
        let query = query(filters, sort);
        store
            .list_repositories(&[gallery.art], &query)
            .await
            .unwrap()
    };
    let all = list(&[], &[]).await;
    assert_eq!(repository_names(&all), [APP, WEB]);
    for listed in &all.items {
        let stored = store.repository_info(&listed.name).await.unwrap();
        assert_eq!(Some(listed), stored.as_ref(), "listed as stored");
    }
    let web = &all.items[1];
    assert_eq!(
        (
            web.artifact_count,
            web.pull_count,
            web.created_at,
            web.updated_at
        ),
        (1, 0, 15, 150)
    );
    let cases: [Case<RepositoryField>; 8] = [
        (&[(RepositoryField::Name, exact(WEB))], &[], &[WEB]),
        (&[(RepositoryField::Name, fuzzy("T/WE"))], &[], &[WEB]),
        (&[], &[(RepositoryField::Name, true)], &[WEB, APP]),
        (&[], &[(RepositoryField::PullCount, true)], &[APP, WEB]),
        (&[], &[(RepositoryField::Id, true)], &[WEB, APP]),
        (
            &[(RepositoryField::CreationTime, range(None, Some(12)))],
            &[],
            &[APP],
        ),
        (
            &[(RepositoryField::UpdateTime, range(Some(450), None))],
            &[],
            &[APP],
        ),
        (&[(RepositoryField::Id, any_of(&[web.id]))], &[], &[WEB]),
    ];
    check_listings(&cases, &list, |r: &RepositoryInfo| r.name.as_str()).await;
    let page = ListQuery {
        offset: 1,
        limit: 1,
        ..query(&[], &[(RepositoryField::Name, false)])
    };
    let page = store
        .list_repositories(&[gallery.art], &page)
        .await
        .unwrap();
    assert_eq!((repository_names(&page), page.total), (vec![WEB], 2));
    let both = store
        .list_repositories(&[gallery.art, gallery.other], &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(both.total, 3);
    let none = store
        .list_repositories(&[], &ListQuery::default())
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
}

/// A description is set on an existing repository only, stamping its update time, with
/// its audit entry.
async fn descriptions_are_set_on_existing_repositories(store: &dyn Metadata) {
    let actor = "cf-art-describer";
    let described = audit(actor, "update", "described");
    assert!(
        store
            .set_repository_description(&repo(APP), "the app", 900, &described)
            .await
            .unwrap()
    );
    let app = store.repository_info(&repo(APP)).await.unwrap().unwrap();
    assert_eq!((app.description.as_str(), app.updated_at), ("the app", 900));
    let missed = audit(actor, "update", "missed");
    let unknown = repo("cf-art/none");
    assert!(
        !store
            .set_repository_description(&unknown, "x", 901, &missed)
            .await
            .unwrap()
    );
    assert!(store.repository_info(&unknown).await.unwrap().is_none());
    assert_eq!(audited(store, actor).await, ["described"]);
}

/// A tag as listed: pushed with its manifest, maybe pulled.
fn tag(name: &str, artifact_id: i64, pushed_at: i64, pulled_at: Option<i64>) -> TagInfo {
    TagInfo {
        name: Tag::parse(name).unwrap(),
        artifact_id,
        pushed_at,
        pulled_at,
    }
}

/// The body of an artifact of `cf-art/app`.
fn body(artifact: &ArtifactInfo) -> &'static str {
    let known = [M1, M2, M3, IDX, SIG];
    let body = known.into_iter().find(|b| digest(b) == artifact.digest);
    body.expect("an artifact of cf-art/app")
}

/// The bodies of a page of `cf-art/app`'s artifacts.
fn bodies(listed: &Listed<ArtifactInfo>) -> Vec<&'static str> {
    listed.items.iter().map(body).collect()
}

/// Artifacts carry their content up to the limit asked, their total size (an index
/// counts its children's), their push and pull times and their tags by name; they are
/// filtered (tags included), sorted (never-pulled ones as the oldest) and paged.
async fn artifacts_list_with_tags_sizes_and_times(store: &dyn Metadata) {
    let app = store.repository_info(&repo(APP)).await.unwrap().unwrap();
    let list = async |filters: &[(ArtifactField, Match)], sort: &[(ArtifactField, bool)]| {
        let query = query(filters, sort);
        store
            .list_artifacts(&repo(APP), &query, u64::MAX)
            .await
            .unwrap()
    };
    let all = list(&[], &[]).await;
    assert_eq!(bodies(&all), [M1, M2, M3, IDX, SIG]);
    assert_eq!(all.total, 5);
    let m1 = &all.items[0];
    let expected = ArtifactInfo {
        id: m1.id,
        repository_id: app.id,
        digest: digest(M1),
        media_type: IMAGE.into(),
        artifact_type: None,
        annotations: None,
        subject: None,
        content: Some(M1.into()),
        total_size: 9 + 30 + 40,
        pushed_at: 100,
        pulled_at: Some(800),
        tags: vec![
            tag("latest", m1.id, 100, None),
            tag("v1", m1.id, 100, Some(800)),
        ],
    };
    assert_eq!(m1, &expected);
    let m2 = &all.items[1];
    assert_eq!((m2.total_size, m2.pulled_at), (17 + 30 + 50, Some(700)));
    assert_eq!(m2.tags, [tag("v2", m2.id, 200, Some(700))]);
    let m3 = &all.items[2];
    assert_eq!((m3.total_size, m3.pulled_at), (9 + 30, None));
    assert!(m3.tags.is_empty());
    let index = &all.items[3];
    assert_eq!(index.media_type, INDEX);
    assert_eq!(
        index.total_size,
        12 + 79 + 97,
        "an index counts its children"
    );
    let signature = &all.items[4];
    assert_eq!(
        (
            signature.subject.as_ref(),
            signature.artifact_type.as_deref(),
            signature.annotations.as_deref(),
            signature.total_size
        ),
        (
            Some(&digest(M1)),
            Some(SIGNATURE),
            Some(r#"{"signed":"yes"}"#),
            16
        )
    );
    assert_eq!(
        all.items
            .iter()
            .map(|a| a.repository_id)
            .collect::<Vec<_>>(),
        [app.id; 5]
    );
    let default = ListQuery::default();
    let small = store.list_artifacts(&repo(APP), &default, 9).await.unwrap();
    let content: Vec<Option<&[u8]>> = small.items.iter().map(|a| a.content.as_deref()).collect();
    assert_eq!(
        content,
        [Some(M1.as_bytes()), None, Some(M3.as_bytes()), None, None],
        "bytes up to the limit only"
    );

    let tags = ArtifactField::Tags;
    let cases: [Case<ArtifactField>; 14] = [
        (&[(tags, exact("*"))], &[], &[M1, M2, IDX]),
        (&[(tags, exact("nil"))], &[], &[M3, SIG]),
        (&[(tags, exact("v2"))], &[], &[M2]),
        (&[(tags, fuzzy("ates"))], &[], &[M1]),
        (&[(ArtifactField::Digest, exact(digest(M2)))], &[], &[M2]),
        (&[(ArtifactField::MediaType, exact(INDEX))], &[], &[IDX]),
        (
            &[(ArtifactField::PushTime, range(Some(200), Some(400)))],
            &[],
            &[M2, M3, IDX],
        ),
        (
            &[(ArtifactField::PullTime, range(Some(750), None))],
            &[],
            &[M1],
        ),
        (
            &[
                (tags, exact("*")),
                (ArtifactField::PushTime, range(Some(150), None)),
            ],
            &[],
            &[M2, IDX],
        ),
        (
            &[(
                ArtifactField::Id,
                any_of(&[all.items[2].id, all.items[4].id]),
            )],
            &[],
            &[M3, SIG],
        ),
        (
            &[],
            &[(ArtifactField::PushTime, true)],
            &[SIG, IDX, M3, M2, M1],
        ),
        (
            &[],
            &[(ArtifactField::PullTime, true)],
            &[M1, M2, M3, IDX, SIG],
        ),
        (
            &[],
            &[(ArtifactField::PullTime, false)],
            &[M3, IDX, SIG, M2, M1],
        ),
        (&[], &[(ArtifactField::Id, true)], &[SIG, IDX, M3, M2, M1]),
    ];
    check_listings(&cases, &list, |a: &ArtifactInfo| body(a)).await;
    let mut by_digest = vec![M1, M2, M3, IDX, SIG];
    by_digest.sort_by_key(|b| digest(b).as_str().to_owned());
    let listed = list(&[], &[(ArtifactField::Digest, false)]).await;
    assert_eq!(bodies(&listed), by_digest);

    let page = |filters: &[(ArtifactField, Match)], offset, limit| ListQuery {
        offset,
        limit,
        ..query(filters, &[(ArtifactField::PushTime, false)])
    };
    let second = store
        .list_artifacts(&repo(APP), &page(&[], 1, 2), u64::MAX)
        .await
        .unwrap();
    assert_eq!((bodies(&second), second.total), (vec![M2, M3], 5));
    let tagged = page(&[(tags, exact("*"))], 0, 1);
    let tagged = store
        .list_artifacts(&repo(APP), &tagged, u64::MAX)
        .await
        .unwrap();
    assert_eq!((bodies(&tagged), tagged.total), (vec![M1], 3));
    let unknown = store
        .list_artifacts(&repo("cf-art/none"), &ListQuery::default(), u64::MAX)
        .await
        .unwrap();
    assert_eq!((unknown.items.len(), unknown.total), (0, 0));
}

/// An artifact is found by tag or digest in its own repository only, as listed; the
/// referrers of a subject are found in the subject's repository.
async fn artifacts_are_found_by_tag_or_digest(store: &dyn Metadata) {
    let listed = store
        .list_artifacts(&repo(APP), &ListQuery::default(), u64::MAX)
        .await
        .unwrap();
    let by_tag = Reference::Tag(Tag::parse("v1").unwrap());
    let found = store.artifact(&repo(APP), &by_tag, u64::MAX).await.unwrap();
    assert_eq!(found.as_ref(), Some(&listed.items[0]));
    let by_digest = Reference::Digest(digest(M3));
    let found = store.artifact(&repo(APP), &by_digest, u64::MAX).await;
    assert_eq!(found.unwrap().as_ref(), Some(&listed.items[2]));
    let without_bytes = store.artifact(&repo(APP), &by_tag, 8).await.unwrap();
    assert_eq!(without_bytes.unwrap().content, None);
    let m1 = Reference::Digest(digest(M1));
    assert!(store.artifact(&repo(WEB), &m1, 0).await.unwrap().is_none());
    let missing = Reference::Tag(Tag::parse("missing").unwrap());
    assert!(
        store
            .artifact(&repo(APP), &missing, 0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .artifact(&repo("cf-art/none"), &m1, 0)
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        store
            .referring_artifacts(&repo(APP), &digest(M1), u64::MAX)
            .await
            .unwrap(),
        [listed.items[4].clone()]
    );
    assert!(
        store
            .referring_artifacts(&repo(APP), &digest(M2), u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .referring_artifacts(&repo(WEB), &digest(M1), u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A new tag points at an artifact of its repository, with its audit entry; a name in
/// use or an artifact elsewhere is refused and not audited.
async fn tags_are_added_to_artifacts_of_their_repository(store: &dyn Metadata) {
    let actor = "cf-art-tagger";
    let v3 = Tag::parse("v3").unwrap();
    let tagged = audit(actor, "create", "tagged");
    store
        .add_tag(&repo(APP), &digest(M3), &v3, 900, &tagged)
        .await
        .unwrap();
    let by_tag = Reference::Tag(v3.clone());
    let found = store
        .artifact(&repo(APP), &by_tag, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.digest, digest(M3));
    assert_eq!(found.tags, [tag("v3", found.id, 900, None)]);
    let resolved = store.manifest(&repo(APP), &by_tag).await.unwrap().unwrap();
    assert_eq!(resolved.digest, digest(M3));
    let page = store.tags(&repo(APP), None, 100).await.unwrap().unwrap();
    assert!(page.names().contains(&"v3".to_string()));

    let refused = audit(actor, "create", "refused");
    for (repository, body, name) in [(APP, M1, "v3"), (APP, M3, "v3"), (APP, M1, "latest")] {
        let tag = Tag::parse(name).unwrap();
        let (repository, digest) = (repo(repository), digest(body));
        let added = store
            .add_tag(&repository, &digest, &tag, 901, &refused)
            .await;
        assert!(
            matches!(added, Err(AddTagError::Exists)),
            "{name} on {body}"
        );
    }
    let found = store
        .artifact(&repo(APP), &by_tag, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.digest, digest(M3), "a refused tag does not move");
    let v4 = Tag::parse("v4").unwrap();
    for (repository, body) in [(APP, "cf-art none"), (WEB, M2), ("cf-art/none", M1)] {
        let (repository, digest) = (repo(repository), digest(body));
        let added = store
            .add_tag(&repository, &digest, &v4, 902, &refused)
            .await;
        assert!(
            matches!(added, Err(AddTagError::NoArtifact)),
            "{body} in {repository}"
        );
    }
    let v4 = Reference::Tag(v4);
    assert!(store.artifact(&repo(WEB), &v4, 0).await.unwrap().is_none());
    assert_eq!(audited(store, actor).await, ["tagged"]);
}

/// Stored bytes count each distinct blob linked in the projects once.
async fn stored_bytes_count_each_blob_once(store: &dyn Metadata, gallery: &Gallery) {
    let (art, other) = (gallery.art, gallery.other);
    assert_eq!(store.stored_bytes(&[art]).await.unwrap(), 30 + 40 + 50 + 60);
    assert_eq!(store.stored_bytes(&[other]).await.unwrap(), 30 + 70);
    assert_eq!(store.stored_bytes(&[art, other]).await.unwrap(), 250);
    assert_eq!(store.stored_bytes(&[]).await.unwrap(), 0);
}

/// Deleting a repository removes its artifacts, tags and blob links, with its audit
/// entry; a repository of the name made later starts empty.
async fn deleting_a_repository_removes_what_it_held(store: &dyn Metadata, gallery: &Gallery) {
    let actor = "cf-art-deleter";
    let web = repo(WEB);
    let deleted = audit(actor, "delete", "deleted");
    assert_eq!(
        store.delete_repository(&web, None, &deleted).await.unwrap(),
        Deletion::Deleted
    );
    assert!(store.repository_info(&web).await.unwrap().is_none());
    assert!(store.tags(&web, None, 10).await.unwrap().is_none());
    let layer: Digest = digest("cf-art web layer");
    assert!(store.linked_blob(&web, &layer).await.unwrap().is_none());
    let v1 = Reference::Tag(Tag::parse("v1").unwrap());
    assert!(store.manifest(&web, &v1).await.unwrap().is_none());
    assert!(store.artifact(&web, &v1, 0).await.unwrap().is_none());
    let listed = store
        .list_repositories(&[gallery.art], &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(repository_names(&listed), [APP]);
    assert_eq!(store.stored_bytes(&[gallery.art]).await.unwrap(), 120);
    assert!(store.manifest(&repo(APP), &v1).await.unwrap().is_some());

    let missed = audit(actor, "delete", "missed");
    for missing in [web.clone(), repo("cf-art/none")] {
        assert_eq!(
            store
                .delete_repository(&missing, None, &missed)
                .await
                .unwrap(),
            Deletion::NotFound
        );
    }
    store.link_blob(&web, &layer, 60, 950).await.unwrap();
    let again = store.repository_info(&web).await.unwrap().unwrap();
    assert_eq!(
        (
            again.artifact_count,
            again.pull_count,
            again.description.as_str()
        ),
        (0, 0, "")
    );
    assert_eq!((again.created_at, again.project_id), (950, gallery.art));
    assert_eq!(audited(store, actor).await, ["deleted"]);
}
