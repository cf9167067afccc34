//! Berth on PostgreSQL (`database.url`): `berth migrate`, the offline commands, and two
//! `berth serve` nodes on one database and one blob directory, each seeing what the
//! other wrote.

mod support;

use std::process::{Command, Output};

use berth_testkit_postgres::TempDatabase;
use reqwest::StatusCode;
use support::{Berth, client, free_port, sha256};

/// Runs `berth <args>` with `env`.
fn berth(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("running berth")
}

/// Runs a command that must succeed; returns its standard output.
fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = berth(args, env);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Pushes a blob in one request; returns its digest.
async fn push_blob(node: &Berth, repository: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let pushed = client()
        .post(format!(
            "{}/v2/{repository}/blobs/uploads/?digest={digest}",
            node.url()
        ))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);
    digest
}

/// `GET` of `path` on `node`: status and body.
async fn get(node: &Berth, path: &str) -> (StatusCode, Vec<u8>) {
    let response = client()
        .get(format!("{}{path}", node.url()))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_database_serve_one_registry() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("storage");
    let env = [
        ("BERTH_DATABASE__URL", db.url()),
        ("BERTH_STORAGE__PATH", storage.to_str().unwrap()),
        ("BERTH_ADMIN_PASSWORD", "Adm1nPassword"),
        ("BERTH_DATA_DIR", work.path().to_str().unwrap()),
    ];
    let migrated = ok(&["migrate"], &env);
    assert!(migrated.contains("is up to date"), "{migrated}");
    assert!(ok(&["migrate"], &env).contains("is up to date"), "twice");
    ok(
        &["user", "add", "carol", "--password", "Car0lPassword"],
        &env,
    );
    let users = ok(&["user", "list"], &env);
    assert!(
        users.contains("admin") && users.contains("carol"),
        "{users}"
    );
    assert!(
        !work.path().join("berth.db").exists(),
        "no SQLite database beside PostgreSQL"
    );

    let one = Berth::start_with(&work.path().join("one"), free_port(), &env);
    let two = Berth::start_with(&work.path().join("two"), free_port(), &env);
    let config = push_blob(&one, "team/app", b"{}").await;
    let layer = push_blob(&one, "team/app", b"layer bytes").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}]}}"#
    );
    let put = client()
        .put(format!("{}/v2/team/app/manifests/v1", one.url()))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);

    // The other node serves it: manifest, blob and tags.
    let pulled = get(&two, "/v2/team/app/manifests/v1").await;
    assert_eq!(pulled, (StatusCode::OK, manifest.clone().into_bytes()));
    let blob = get(&two, &format!("/v2/team/app/blobs/{layer}")).await;
    assert_eq!(blob, (StatusCode::OK, b"layer bytes".to_vec()));
    let tags = get(&one, "/v2/team/app/tags/list").await;
    assert_eq!(tags.0, StatusCode::OK);
    assert!(String::from_utf8_lossy(&tags.1).contains(r#"["v1"]"#));

    // A tag deleted on one node is gone on the other, whose tag list was cached.
    let deleted = client()
        .delete(format!("{}/v2/team/app/manifests/v1", two.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let tags = get(&one, "/v2/team/app/tags/list").await;
    assert!(
        String::from_utf8_lossy(&tags.1).contains(r#""tags":[]"#),
        "{tags:?}"
    );
    let by_digest = format!("/v2/team/app/manifests/{}", sha256(manifest.as_bytes()));
    assert_eq!(
        get(&one, &by_digest).await.0,
        StatusCode::OK,
        "the manifest stays"
    );
    let deleted = client()
        .delete(format!("{}{by_digest}", one.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    assert_eq!(get(&two, &by_digest).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_moves_to_postgres_with_migrate_from_sqlite() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("single");
    let single = [
        ("BERTH_DATA_DIR", data.to_str().unwrap()),
        ("BERTH_ADMIN_PASSWORD", "Adm1nPassword"),
    ];
    ok(&["migrate"], &single);
    ok(
        &["user", "add", "carol", "--password", "Car0lPassword"],
        &single,
    );
    let node = Berth::start_with(&data, free_port(), &single);
    let layer = push_blob(&node, "team/app", b"layer bytes").await;
    let config = push_blob(&node, "team/app", b"{}").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}]}}"#
    );
    let put = client()
        .put(format!("{}/v2/team/app/manifests/v1", node.url()))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert!(node.terminate(), "the single node stops cleanly");

    let from = format!("sqlite:{}", data.join("berth.db").display());
    let copied = ok(&["migrate", "--from", &from, "--to", db.url()], &[]);
    assert!(
        copied.contains("users") && copied.contains("manifests"),
        "{copied}"
    );
    let again = berth(&["migrate", "--from", &from, "--to", db.url()], &[]);
    assert!(
        !again.status.success(),
        "a second copy over the first is refused"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // A node on PostgreSQL, with the same blob directory, serves what the single node
    // stored, and knows its users.
    let storage = data.join("storage");
    let cluster = [
        ("BERTH_DATABASE__URL", db.url()),
        ("BERTH_STORAGE__PATH", storage.to_str().unwrap()),
        ("BERTH_DATA_DIR", work.path().to_str().unwrap()),
    ];
    let moved = Berth::start_with(&work.path().join("moved"), free_port(), &cluster);
    let pulled = get(&moved, "/v2/team/app/manifests/v1").await;
    assert_eq!(pulled, (StatusCode::OK, manifest.into_bytes()));
    let blob = get(&moved, &format!("/v2/team/app/blobs/{layer}")).await;
    assert_eq!(blob, (StatusCode::OK, b"layer bytes".to_vec()));
    let users = ok(&["user", "list"], &cluster);
    assert!(users.contains("carol"), "{users}");
    // Ids continue after the copied ones.
    ok(
        &["user", "add", "dave", "--password", "Dav3Password"],
        &cluster,
    );
    let listed = ok(&["user", "list"], &cluster);
    let id_of = |name: &str| -> i64 {
        listed
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {listed}"))
    };
    assert!(id_of("dave") > id_of("carol"), "{listed}");
}
