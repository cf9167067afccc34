//! Checks of the registry traits: [`crate::BlobLinkStore`], [`crate::ManifestStore`],
//! [`crate::UploadStore`] and the catalog of [`crate::RepositoryStore`].

use std::sync::Arc;

use berth_oci::{Algorithm, Digest, Reference, Tag, UploadId};

use super::support::{
    PROJECT_ADMIN, advance, audit, audit_trail, digest, manifest, new_project, repo,
};
use crate::Metadata;
use crate::{
    CreateUploadError, Deletion, MetaStore, NewManifest, PullRecord, PutManifestError, Referrer,
    ReferrerLimit, ReferrerPage, SessionLimits, UploadSession, Visibility,
};

/// Runs the registry checks: blob links, manifests, tags, referrers, upload sessions and
/// the audit entries of registry changes.
pub(super) async fn run(store: Arc<dyn Metadata>) {
    blobs_are_linked_per_repository(&*store).await;
    manifests_need_their_blobs(&*store).await;
    referenced_content_is_not_deleted(&*store).await;
    a_deleted_manifest_takes_its_tags(&*store).await;
    tags_and_catalog_page_in_order(&*store).await;
    referrers_filter_by_artifact_type(&*store).await;
    referrers_page_by_count_and_size(&*store).await;
    uploads_advance_only_from_their_offset(&*store).await;
    session_limits_hold(&*store).await;
    session_limits_hold_under_concurrent_creations(store.clone()).await;
    changes_are_audited_with_their_project(&*store).await;
    concurrent_writes_all_commit(store).await;
}

async fn blobs_are_linked_per_repository(store: &dyn MetaStore) {
    let (a, b) = (repo("p1/a"), repo("p1/b"));
    let d = digest("layer");
    store.link_blob(&a, &d, 5, 1).await.unwrap();
    assert_eq!(store.linked_blob(&a, &d).await.unwrap(), Some(5));
    assert_eq!(store.linked_blob(&b, &d).await.unwrap(), None);
    assert_eq!(
        store.blob_repositories(&d, 10).await.unwrap(),
        vec![a.clone()]
    );
    store.link_blob(&a, &d, 5, 2).await.unwrap();
    assert_eq!(
        store.unlink_blob(&a, &d, None).await.unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        store.unlink_blob(&a, &d, None).await.unwrap(),
        Deletion::NotFound
    );
    assert_eq!(
        store.unlink_blob(&repo("p1/none"), &d, None).await.unwrap(),
        Deletion::NotFound
    );
    assert_eq!(store.linked_blob(&a, &d).await.unwrap(), None);
    assert!(store.blob_repositories(&d, 10).await.unwrap().is_empty());
}

async fn manifests_need_their_blobs(store: &dyn MetaStore) {
    let r = repo("p2/app");
    let m = manifest("p2/app", "m1", &[("cfg", 3), ("l1", 4)], &["v1"]);
    match store.put_manifest(&m).await {
        Err(PutManifestError::BlobUnknown(d)) => assert_eq!(d, digest("cfg")),
        other => panic!("expected BlobUnknown, got {other:?}"),
    }
    let listed = store.catalog(&Visibility::All, None, 1000).await.unwrap();
    assert!(
        !listed.names().contains(&r.to_string()),
        "a refused push creates no repository"
    );
    store.link_blob(&r, &digest("cfg"), 3, 1).await.unwrap();
    store.link_blob(&r, &digest("l1"), 99, 1).await.unwrap();
    assert!(matches!(
        store.put_manifest(&m).await,
        Err(PutManifestError::SizeMismatch {
            declared: 4,
            actual: 99,
            ..
        })
    ));
    let m = manifest("p2/app", "m1", &[("cfg", 3)], &["v1", "latest"]);
    store.put_manifest(&m).await.unwrap();
    let mut retyped = manifest("p2/app", "m1", &[("cfg", 3)], &["docker"]);
    retyped.media_type = "application/vnd.docker.distribution.manifest.v2+json".into();
    match store.put_manifest(&retyped).await {
        Err(PutManifestError::MediaTypeConflict { stored }) => assert_eq!(stored, m.media_type),
        other => panic!("expected MediaTypeConflict, got {other:?}"),
    }
    let docker_tag = Reference::Tag(Tag::parse("docker").unwrap());
    assert!(store.manifest(&r, &docker_tag).await.unwrap().is_none());
    store.put_manifest(&m).await.unwrap();
    let by_tag = Reference::Tag(Tag::parse("latest").unwrap());
    let got = store.manifest(&r, &by_tag).await.unwrap().unwrap();
    assert_eq!((got.digest.clone(), got.size), (digest("m1"), 2));
    if let Some(cached) = &got.cached {
        assert_eq!(&cached[..], b"m1", "cached bytes are the manifest's");
    }
    let content = store.manifest_content(&r, &got.digest).await.unwrap();
    assert_eq!(content.as_deref(), Some(&b"m1"[..]));
    assert_eq!(
        store
            .manifest_content(&repo("p2/other"), &got.digest)
            .await
            .unwrap(),
        None,
        "content is read through the repository"
    );
    let by_digest = Reference::Digest(digest("m1"));
    assert!(store.manifest(&r, &by_digest).await.unwrap().is_some());
    assert!(
        store
            .manifest(&repo("p2/other"), &by_digest)
            .await
            .unwrap()
            .is_none()
    );

    let mut index = manifest("p2/app", "idx", &[], &["multi"]);
    index.children = vec![(digest("m1"), 2), (digest("nope"), 4)];
    assert!(matches!(
        store.put_manifest(&index).await,
        Err(PutManifestError::ManifestUnknown(_))
    ));
    index.children = vec![(digest("m1"), 3)];
    assert!(matches!(
        store.put_manifest(&index).await,
        Err(PutManifestError::ManifestSizeMismatch {
            declared: 3,
            actual: 2,
            ..
        })
    ));
    index.children = vec![(digest("m1"), 2)];
    store.put_manifest(&index).await.unwrap();

    let pulls = [PullRecord {
        repository: r.clone(),
        digest: digest("m1"),
        tag: Some(Tag::parse("v1").unwrap()),
        count: 3,
    }];
    store.record_pulls(&pulls, 7, &[]).await.unwrap();

    assert!(
        store
            .delete_tag(&r, &Tag::parse("v1").unwrap(), None, None, 0)
            .await
            .unwrap()
            == Deletion::Deleted
    );
    assert!(
        store
            .delete_tag(&r, &Tag::parse("v1").unwrap(), None, None, 0)
            .await
            .unwrap()
            == Deletion::NotFound
    );
    assert!(store.manifest(&r, &by_tag).await.unwrap().is_some());
    assert_eq!(
        store
            .delete_manifest(&r, &digest("idx"), None, None, 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        store
            .delete_manifest(&r, &digest("m1"), None, None, 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert!(
        store.manifest(&r, &by_tag).await.unwrap().is_none(),
        "tags go with the manifest"
    );
    assert_eq!(
        store
            .delete_manifest(&r, &digest("m1"), None, None, 2)
            .await
            .unwrap(),
        Deletion::NotFound
    );
}

async fn referenced_content_is_not_deleted(store: &dyn MetaStore) {
    let (r, other) = (repo("p7/app"), repo("p7/other"));
    for repository in [&r, &other] {
        store
            .link_blob(repository, &digest("p7-layer"), 1, 1)
            .await
            .unwrap();
    }
    let image = manifest("p7/app", "p7-image", &[("p7-layer", 1)], &["v1"]);
    store.put_manifest(&image).await.unwrap();
    let mut index = manifest("p7/app", "p7-index", &[], &["multi"]);
    index.children = vec![(digest("p7-image"), 8)];
    store.put_manifest(&index).await.unwrap();
    let mut referrer = manifest("p7/app", "p7-sig", &[], &[]);
    referrer.subject = Some(digest("p7-index"));
    store.put_manifest(&referrer).await.unwrap();

    assert_eq!(
        store
            .unlink_blob(&r, &digest("p7-layer"), None)
            .await
            .unwrap(),
        Deletion::ReferencedBy(digest("p7-image"))
    );
    assert_eq!(
        store.linked_blob(&r, &digest("p7-layer")).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .unlink_blob(&other, &digest("p7-layer"), None)
            .await
            .unwrap(),
        Deletion::Deleted,
        "a manifest holds its blobs in its own repository only"
    );
    assert_eq!(
        store
            .delete_manifest(&r, &digest("p7-image"), None, None, 2)
            .await
            .unwrap(),
        Deletion::ReferencedBy(digest("p7-index"))
    );
    let by_digest = Reference::Digest(digest("p7-image"));
    assert!(store.manifest(&r, &by_digest).await.unwrap().is_some());
    assert!(
        store
            .delete_tag(&r, &Tag::parse("v1").unwrap(), None, None, 0)
            .await
            .unwrap()
            == Deletion::Deleted,
        "tags of a listed manifest can go"
    );
    assert_eq!(
        store
            .delete_manifest(&r, &digest("p7-index"), None, None, 2)
            .await
            .unwrap(),
        Deletion::Deleted,
        "a referrer does not hold its subject"
    );
    assert_eq!(
        store
            .referrers(&r, &digest("p7-index"), None, None, NO_LIMIT)
            .await
            .unwrap()
            .referrers
            .len(),
        1,
        "referrers outlive their subject"
    );
    assert_eq!(
        store
            .delete_manifest(&r, &digest("p7-image"), None, None, 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        store
            .unlink_blob(&r, &digest("p7-layer"), None)
            .await
            .unwrap(),
        Deletion::Deleted
    );
}

/// A manifest deleted by digest takes its tags with it, and leaves the other tags.
async fn a_deleted_manifest_takes_its_tags(store: &dyn MetaStore) {
    let r = repo("p8/app");
    store
        .link_blob(&r, &digest("p8-layer"), 1, 1)
        .await
        .unwrap();
    let doomed = manifest("p8/app", "p8-doomed", &[("p8-layer", 1)], &["v1", "v2"]);
    store.put_manifest(&doomed).await.unwrap();
    let kept = manifest("p8/app", "p8-kept", &[("p8-layer", 1)], &["v3"]);
    store.put_manifest(&kept).await.unwrap();
    assert_eq!(
        store
            .delete_manifest(&r, &digest("p8-doomed"), None, None, 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    let tags = store.tags(&r, None, 100).await.unwrap().unwrap();
    assert_eq!(tags.names(), ["v3"]);
    let v1 = Reference::Tag(Tag::parse("v1").unwrap());
    assert!(store.manifest(&r, &v1).await.unwrap().is_none());
}

async fn tags_and_catalog_page_in_order(store: &dyn MetaStore) {
    let r = repo("p3/list");
    let names = ["0.1.2", "0.1.20", "0.1.2-rc", "b", "a"];
    let m = manifest("p3/list", "list", &[], &names);
    store.put_manifest(&m).await.unwrap();
    let all = store.tags(&r, None, 100).await.unwrap().unwrap();
    assert_eq!(all.names(), ["0.1.2", "0.1.2-rc", "0.1.20", "a", "b"]);
    assert!(!all.more);
    let p1 = store.tags(&r, None, 2).await.unwrap().unwrap();
    assert_eq!(
        (p1.names(), p1.more),
        (&["0.1.2".to_string(), "0.1.2-rc".into()][..], true)
    );
    let p2 = store.tags(&r, Some("0.1.2-rc"), 2).await.unwrap().unwrap();
    assert_eq!(p2.names(), ["0.1.20", "a"]);
    assert_eq!(
        store
            .tags(&r, Some("zz"), 2)
            .await
            .unwrap()
            .unwrap()
            .names()
            .len(),
        0
    );
    assert!(
        store
            .tags(&repo("p3/none"), None, 2)
            .await
            .unwrap()
            .is_none()
    );
    // The spec's lexical order is case-insensitive; names equal but for case go by bytes,
    // and `last` continues right after its place in that order, listed or not.
    let mixed = repo("p3/mixed");
    let names = ["b", "B", "a", "A", "Z", "aB", "Ab", "_x", "10"];
    store
        .put_manifest(&manifest("p3/mixed", "mixed", &[], &names))
        .await
        .unwrap();
    let order = ["10", "_x", "A", "a", "Ab", "aB", "B", "b", "Z"];
    for cached in [false, true] {
        // The first reads come from the database, and a full read fills the cache.
        if cached {
            assert_eq!(
                store
                    .tags(&mixed, None, 100)
                    .await
                    .unwrap()
                    .unwrap()
                    .names(),
                order
            );
        }
        for (i, last) in order.iter().enumerate() {
            let page = store.tags(&mixed, Some(last), 2).await.unwrap().unwrap();
            let end = (i + 3).min(order.len());
            assert_eq!(
                page.names(),
                &order[i + 1..end],
                "last={last} cached={cached}"
            );
            assert_eq!(page.more, end < order.len(), "last={last} cached={cached}");
        }
        for (last, next) in [
            ("", "10"),
            ("AA", "Ab"),
            ("aa", "Ab"),
            ("a-", "Ab"),
            ("Ba", "Z"),
            ("z", ""),
        ] {
            let page = store.tags(&mixed, Some(last), 1).await.unwrap().unwrap();
            let first = page.names().first().map_or("", String::as_str);
            assert_eq!(first, next, "last={last} cached={cached}");
        }
    }
    let cat = store.catalog(&Visibility::All, None, 1000).await.unwrap();
    let mut sorted = cat.names().to_vec();
    sorted.sort();
    assert_eq!(cat.names(), sorted);
    assert!(cat.names().contains(&"p3/list".to_string()));
    let first = store.catalog(&Visibility::All, None, 1).await.unwrap();
    assert!(first.more);
    let next = store
        .catalog(&Visibility::All, Some(&first.names()[0]), 1)
        .await
        .unwrap();
    assert!(next.names()[0] > first.names()[0]);
}

/// A limit no test page reaches.
const NO_LIMIT: ReferrerLimit = ReferrerLimit {
    count: 1000,
    bytes: u64::MAX,
};

async fn referrers_filter_by_artifact_type(store: &dyn MetaStore) {
    let r = repo("p4/img");
    let subject = digest("subject");
    for (body, at) in [
        ("sig", "application/vnd.dev.cosign"),
        ("sbom", "application/spdx+json"),
    ] {
        let mut m = manifest("p4/img", body, &[], &[]);
        m.subject = Some(subject.clone());
        m.artifact_type = Some(at.into());
        store.put_manifest(&m).await.unwrap();
    }
    let all = store
        .referrers(&r, &subject, None, None, NO_LIMIT)
        .await
        .unwrap();
    assert_eq!(all.referrers.len(), 2);
    assert!(!all.more);
    let sboms = store
        .referrers(&r, &subject, Some("application/spdx+json"), None, NO_LIMIT)
        .await
        .unwrap();
    assert_eq!(sboms.referrers.len(), 1);
    assert_eq!(sboms.referrers[0].digest, digest("sbom"));
    assert_eq!(sboms.referrers[0].size, 4);
    assert!(
        store
            .referrers(&repo("p4/other"), &subject, None, None, NO_LIMIT)
            .await
            .unwrap()
            .referrers
            .is_empty()
    );
}

/// Pages of referrers, in digest order, each starting after the previous page's last.
async fn referrers_page_by_count_and_size(store: &dyn MetaStore) {
    let r = repo("p7/img");
    let subject = digest("paged subject");
    let mut expected = Vec::new();
    for i in 0..5 {
        let body = format!("referrer {i}");
        let mut m = manifest("p7/img", &body, &[], &[]);
        m.subject = Some(subject.clone());
        m.artifact_type = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
        m.annotations = Some(format!(r#"{{"n":"{i}"}}"#));
        store.put_manifest(&m).await.unwrap();
        expected.push(m.digest);
    }
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));

    // Walks every page under `limit`, checking no page breaks it.
    let walk = async |artifact_type: Option<&str>, limit: ReferrerLimit| {
        let (mut seen, mut after, mut pages) = (Vec::new(), None::<Digest>, 0);
        loop {
            let page = store
                .referrers(&r, &subject, artifact_type, after.as_ref(), limit)
                .await
                .unwrap();
            pages += 1;
            assert!(
                !page.referrers.is_empty() || !page.more,
                "an empty page says more"
            );
            assert!(page.referrers.len() <= limit.count as usize);
            let size: u64 = page.referrers.iter().map(|x| x.listed_size()).sum();
            assert!(
                page.referrers.len() == 1 || size <= limit.bytes,
                "{size} bytes"
            );
            seen.extend(page.referrers.iter().map(|x| x.digest.clone()));
            if !page.more {
                return (seen, pages);
            }
            after = page.referrers.last().map(|x| x.digest.clone());
        }
    };
    let by_count = ReferrerLimit {
        count: 2,
        bytes: u64::MAX,
    };
    assert_eq!(walk(None, by_count).await, (expected.clone(), 3));
    let exact = ReferrerLimit {
        count: 5,
        bytes: u64::MAX,
    };
    assert_eq!(walk(None, exact).await, (expected.clone(), 1));
    // A byte budget below one descriptor still lists one per page.
    let tiny = ReferrerLimit {
        count: 100,
        bytes: 1,
    };
    assert_eq!(walk(None, tiny).await, (expected.clone(), 5));
    // The descriptors differ in size by a byte at most, so twice the largest holds two.
    let largest = store
        .referrers(&r, &subject, None, None, NO_LIMIT)
        .await
        .unwrap()
        .referrers
        .iter()
        .map(Referrer::listed_size)
        .max()
        .unwrap();
    let two = ReferrerLimit {
        count: 100,
        bytes: 2 * largest,
    };
    assert_eq!(walk(None, two).await, (expected.clone(), 3));
    // The filter applies before the count.
    let evens: Vec<Digest> = {
        let all = store
            .referrers(&r, &subject, Some("even"), None, NO_LIMIT)
            .await
            .unwrap();
        all.referrers.into_iter().map(|x| x.digest).collect()
    };
    assert_eq!(evens.len(), 3);
    let one = ReferrerLimit {
        count: 1,
        bytes: u64::MAX,
    };
    assert_eq!(walk(Some("even"), one).await, (evens, 3));
    // A cursor past every digest, or one that names no referrer, still pages on.
    let past = store
        .referrers(&r, &subject, None, Some(&expected[4]), NO_LIMIT)
        .await
        .unwrap();
    assert_eq!(
        past,
        ReferrerPage {
            referrers: Vec::new(),
            more: false
        }
    );
    let gone = digest("never pushed");
    let after_gone = store
        .referrers(&r, &subject, None, Some(&gone), NO_LIMIT)
        .await
        .unwrap();
    let rest: Vec<Digest> = expected
        .iter()
        .filter(|d| d.as_str() > gone.as_str())
        .cloned()
        .collect();
    assert_eq!(
        after_gone
            .referrers
            .into_iter()
            .map(|x| x.digest)
            .collect::<Vec<_>>(),
        rest
    );
}

async fn uploads_advance_only_from_their_offset(store: &dyn MetaStore) {
    let id = UploadId::from_random([9; 16]);
    let session = UploadSession {
        id: id.clone(),
        repository: repo("p5/up"),
        algorithm: Algorithm::Sha256,
        offset: 0,
        hash_state: vec![1, 2],
        verified_by: Some(77),
        verified_digest: None,
        created_at: 10,
        updated_at: 10,
    };
    store.create_upload(&session, ROOMY).await.unwrap();
    assert_eq!(store.upload(&id).await.unwrap(), Some(session));
    // A digest is recorded for the bytes at the session's offset only, and an advance
    // clears it.
    let hashed = digest("hashed at rest");
    assert!(!store.record_upload_digest(&id, 3, &hashed).await.unwrap());
    assert!(store.record_upload_digest(&id, 0, &hashed).await.unwrap());
    let recorded = store.upload(&id).await.unwrap().unwrap();
    assert_eq!(recorded.verified_digest.as_ref(), Some(&hashed));
    assert_eq!(recorded.updated_at, 10, "recording is not progress");
    assert!(
        store
            .advance_upload(&id, &advance(0, 5, 3, 77, 20))
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_upload(&id, &advance(0, 9, 4, 77, 21))
            .await
            .unwrap()
    );
    let now = store.upload(&id).await.unwrap().unwrap();
    assert_eq!(
        (now.offset, now.hash_state.as_slice(), now.updated_at),
        (5, &[3u8][..], 20)
    );
    assert_eq!(now.verified_digest, None, "cleared by the advance");
    let unknown = UploadId::from_random([10; 16]);
    assert!(
        !store
            .record_upload_digest(&unknown, 0, &hashed)
            .await
            .unwrap()
    );
    assert_eq!(store.stale_uploads(21).await.unwrap(), vec![id.clone()]);
    assert!(store.stale_uploads(20).await.unwrap().is_empty());
    assert!(store.delete_upload(&id, 1000).await.unwrap());
    assert!(store.upload(&id).await.unwrap().is_none());

    // An ended id is never opened again: the session goes on under a new one.
    let id = UploadId::from_random([11; 16]);
    store
        .create_upload(
            &UploadSession {
                id: id.clone(),
                ..now
            },
            ROOMY,
        )
        .await
        .unwrap();
    let d = digest("uploaded");
    store
        .complete_upload(&id, &repo("p5/up"), &d, 8, 30)
        .await
        .unwrap();
    assert!(store.upload(&id).await.unwrap().is_none());
    assert_eq!(
        store.linked_blob(&repo("p5/up"), &d).await.unwrap(),
        Some(8)
    );

    // Completing into a repository that exists links there too, and ends the session.
    let next = new_session(50, "p5/up");
    store.create_upload(&next, ROOMY).await.unwrap();
    let d2 = digest("uploaded again");
    store
        .complete_upload(&next.id, &repo("p5/up"), &d2, 14, 31)
        .await
        .unwrap();
    assert!(store.upload(&next.id).await.unwrap().is_none());
    assert_eq!(
        store.linked_blob(&repo("p5/up"), &d2).await.unwrap(),
        Some(14)
    );
}

/// Limits no check reaches.
const ROOMY: SessionLimits = SessionLimits {
    total: 1000,
    per_repository: 1000,
};

/// A new session at offset 0 in `repository`, with an id made of `seed`.
fn new_session(seed: u16, repository: &str) -> UploadSession {
    let mut id = [0xa5; 16];
    id[..2].copy_from_slice(&seed.to_be_bytes());
    UploadSession {
        id: UploadId::from_random(id),
        repository: repo(repository),
        algorithm: Algorithm::Sha256,
        offset: 0,
        hash_state: Vec::new(),
        verified_by: None,
        verified_digest: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// A session past a limit is refused, says which limit and how many are open, and is not
/// recorded. Expects no open session.
async fn session_limits_hold(store: &dyn MetaStore) {
    let limits = SessionLimits {
        total: 4,
        per_repository: 2,
    };
    let mut open = vec![
        new_session(1, "p8/a"),
        new_session(2, "p8/a"),
        new_session(3, "p8/b"),
    ];
    for session in &open {
        store.create_upload(session, limits).await.unwrap();
    }
    let third_in_a = new_session(4, "p8/a");
    match store.create_upload(&third_in_a, limits).await {
        Err(CreateUploadError::TooManyInRepository { open: 2 }) => {}
        other => panic!("expected TooManyInRepository {{ open: 2 }}, got {other:?}"),
    }
    open.push(new_session(5, "p8/c"));
    store.create_upload(&open[3], limits).await.unwrap();
    let fifth = new_session(6, "p8/d");
    match store.create_upload(&fifth, limits).await {
        Err(CreateUploadError::TooManySessions { open: 4 }) => {}
        other => panic!("expected TooManySessions {{ open: 4 }}, got {other:?}"),
    }
    for refused in [&third_in_a, &fifth] {
        assert!(store.upload(&refused.id).await.unwrap().is_none());
    }
    // An ended session makes room again.
    assert!(store.delete_upload(&open[0].id, 1000).await.unwrap());
    store.create_upload(&third_in_a, limits).await.unwrap();
    for session in open[1..].iter().chain([&third_in_a]) {
        assert!(store.delete_upload(&session.id, 1000).await.unwrap());
    }
}

/// Creations racing each other never open more sessions than the limits allow: the count
/// and the insert are one step. Expects no open session.
async fn session_limits_hold_under_concurrent_creations(store: Arc<dyn MetaStore>) {
    let limits = SessionLimits {
        total: 5,
        per_repository: 3,
    };
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            let session = new_session(100 + i, if i % 2 == 0 { "p9/a" } else { "p9/b" });
            tokio::spawn(async move {
                let created = store.create_upload(&session, limits).await;
                (session, created)
            })
        })
        .collect();
    let mut opened = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (session, Ok(())) => opened.push(session),
            (_, Err(CreateUploadError::TooManySessions { open })) => assert_eq!(open, 5),
            (_, Err(CreateUploadError::TooManyInRepository { open })) => assert_eq!(open, 3),
            (_, Err(e)) => panic!("{e}"),
        }
    }
    assert_eq!(opened.len(), 5, "sessions in all");
    for r in ["p9/a", "p9/b"] {
        let in_repository = opened.iter().filter(|s| s.repository.as_str() == r);
        assert!(in_repository.count() <= 3, "sessions in {r}");
    }
    for session in &opened {
        assert!(store.delete_upload(&session.id, 1000).await.unwrap());
    }
}

async fn concurrent_writes_all_commit(store: Arc<dyn MetaStore>) {
    let r = repo("p6/many");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (store, r) = (store.clone(), r.clone());
            tokio::spawn(async move {
                let d = digest(&format!("blob-{i}"));
                store.link_blob(&r, &d, i, 1).await.unwrap();
                let m = manifest("p6/many", &format!("m-{i}"), &[], &[&format!("t{i}")]);
                store.put_manifest(&m).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store
            .tags(&r, None, 1000)
            .await
            .unwrap()
            .unwrap()
            .names()
            .len(),
        64
    );
}

/// A registry change records its audit entry, naming the repository's project, exactly
/// when it changed something: a refused push, a missing tag or a held blob or manifest
/// records none.
async fn changes_are_audited_with_their_project(store: &dyn Metadata) {
    let actor = "cf-raud-actor";
    let project = new_project("cf-raud", None, false);
    let created = audit("cf-raud-creator", "create", "cf-raud");
    let project = store
        .create_project(&project, PROJECT_ADMIN, 1, &created)
        .await
        .unwrap();
    let r = repo("cf-raud/app");
    let layer = digest("cf-raud layer");
    store.link_blob(&r, &layer, 5, 1).await.unwrap();
    let missed = audit(actor, "delete", "missed");

    let refused = NewManifest {
        audit: Some(audit(actor, "create", "refused push")),
        guard: None,
        ..manifest(
            "cf-raud/app",
            "cf-raud refused",
            &[("cf-raud none", 1)],
            &["v0"],
        )
    };
    assert!(matches!(
        store.put_manifest(&refused).await,
        Err(PutManifestError::BlobUnknown(_))
    ));
    let pushed = NewManifest {
        audit: Some(audit(actor, "create", "pushed")),
        guard: None,
        ..manifest(
            "cf-raud/app",
            "cf-raud m",
            &[("cf-raud layer", 5)],
            &["v1", "v2"],
        )
    };
    store.put_manifest(&pushed).await.unwrap();
    let pull = PullRecord {
        repository: r.clone(),
        digest: pushed.digest.clone(),
        tag: Some(Tag::parse("v1").unwrap()),
        count: 1,
    };
    let pulled = (r.clone(), audit(actor, "pull", "pulled"));
    store.record_pulls(&[pull], 2, &[pulled]).await.unwrap();

    let v2 = Tag::parse("v2").unwrap();
    let untagged = audit(actor, "delete", "untagged");
    assert!(
        store
            .delete_tag(&r, &v2, None, Some(&untagged), 0)
            .await
            .unwrap()
            == Deletion::Deleted
    );
    assert!(
        store
            .delete_tag(&r, &v2, None, Some(&missed), 0)
            .await
            .unwrap()
            == Deletion::NotFound
    );
    assert_eq!(
        store.unlink_blob(&r, &layer, Some(&missed)).await.unwrap(),
        Deletion::ReferencedBy(pushed.digest.clone())
    );
    let deleted = audit(actor, "delete", "deleted");
    assert_eq!(
        store
            .delete_manifest(&r, &pushed.digest, None, Some(&deleted), 2)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        store
            .delete_manifest(&r, &pushed.digest, None, Some(&missed), 2)
            .await
            .unwrap(),
        Deletion::NotFound
    );
    let unlinked = audit(actor, "delete", "unlinked");
    let unlink = store.unlink_blob(&r, &layer, Some(&unlinked)).await;
    assert_eq!(unlink.unwrap(), Deletion::Deleted);
    let unlink = store.unlink_blob(&r, &layer, Some(&missed)).await;
    assert_eq!(unlink.unwrap(), Deletion::NotFound);

    let trail = audit_trail(store, actor).await;
    let recorded: Vec<(&str, Option<i64>)> = trail
        .iter()
        .map(|e| (e.resource.as_str(), e.project_id))
        .collect();
    let expected = ["pushed", "pulled", "untagged", "deleted", "unlinked"];
    assert_eq!(
        recorded,
        expected.map(|resource| (resource, Some(project))),
        "each change once, naming its project"
    );
}
