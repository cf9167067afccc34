//! Three Berth nodes on one PostgreSQL database and one Garage bucket, behind nginx
//! round robin: pushes and pulls through the balancer, an upload whose requests go to
//! every node in turn, a node killed during pushes, a schedule that fires once for the
//! cluster, and every acknowledged push pulled back byte-identical at the end.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit_postgres::TempDatabase;
use support::garage::Garage;
use support::nginx::Nginx;
use support::{Berth, client, free_port, image, random_bytes, run, sha256};

const ADMIN_PASSWORD: &str = "Cluster-Adm1n-Passw0rd";
/// A dead node's claim on an upload it was writing lapses after this.
const LEASE_SECS: u64 = 3;
/// The upload purge's schedule, short so that it fires several times in a test.
const PURGE_EVERY_SECS: u64 = 2;

struct Cluster {
    nodes: Vec<Option<Berth>>,
    balancer: Nginx,
    database: TempDatabase,
    _garage: Garage,
}

impl Cluster {
    async fn start(work: &Path) -> Option<Cluster> {
        let database = TempDatabase::create().await?;
        let garage = Garage::start(&work.join("garage"));
        let key = work.join("token-signing-key.pem");
        let mut env: Vec<(String, String)> = garage.berth_env();
        env.extend(
            [
                ("BERTH_DATABASE__URL", database.url()),
                ("BERTH_AUTH__MODE", "secure"),
                ("BERTH_AUTH__TOKEN_KEY", key.to_str().unwrap()),
                ("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD),
                ("BERTH_LIMITS__MAX_UPLOAD_BODIES_PER_CLIENT", "0"),
                ("BERTH_LIMITS__UPLOAD_LEASE_SECS", &LEASE_SECS.to_string()),
                (
                    "BERTH_LIMITS__UPLOAD_PURGE_INTERVAL_SECS",
                    &PURGE_EVERY_SECS.to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // The first node generates the signing key all of them share.
        let nodes: Vec<Option<Berth>> = (0..3)
            .map(|i| {
                Some(Berth::start_with(
                    &work.join(format!("node{i}")),
                    free_port(),
                    &env,
                ))
            })
            .collect();
        let upstreams: Vec<String> = nodes.iter().flatten().map(|n| n.addr.clone()).collect();
        let balancer = Nginx::start(&work.join("nginx"), &upstreams);
        Some(Cluster {
            nodes,
            balancer,
            database,
            _garage: garage,
        })
    }

    fn node(&self, i: usize) -> &Berth {
        self.nodes[i].as_ref().expect("a live node")
    }

    fn lb(&self) -> String {
        format!("http://{}", self.balancer.addr)
    }
}

/// An authenticated request to `url`.
fn as_admin(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.basic_auth("admin", Some(ADMIN_PASSWORD))
}

/// Copies an OCI layout to `dest` (`host:port/repo:tag`) with skopeo; returns whether
/// skopeo acknowledged it.
fn skopeo_push(layout: &Path, dest: &str) -> bool {
    Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            "--retry-times",
            "0",
        ])
        .args(["--dest-creds", &format!("admin:{ADMIN_PASSWORD}")])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{dest}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// An acknowledged push: where it went and the layout it came from.
struct Pushed {
    repository: String,
    digest: String,
    layout: std::path::PathBuf,
}

/// Pulls `pushed` back through the balancer, manifest and every blob it names (for an
/// index, every child's too), and checks each against the layout's bytes.
async fn pulls_back_identical(cluster: &Cluster, pushed: &Pushed) {
    let http = client();
    let mut pending = vec![pushed.digest.clone()];
    while let Some(digest) = pending.pop() {
        let url = format!(
            "{}/v2/{}/manifests/{digest}",
            cluster.lb(),
            pushed.repository
        );
        let response = as_admin(http.get(&url))
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body = response.bytes().await.unwrap();
        assert_eq!(sha256(&body), digest, "{url} served other bytes");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for child in doc["manifests"].as_array().into_iter().flatten() {
            pending.push(child["digest"].as_str().unwrap().to_owned());
        }
        let blobs = doc["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(doc.get("config"));
        for blob in blobs {
            let d = blob["digest"].as_str().unwrap();
            let url = format!("{}/v2/{}/blobs/{d}", cluster.lb(), pushed.repository);
            let response = as_admin(http.get(&url)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            let bytes = response.bytes().await.unwrap();
            assert_eq!(sha256(&bytes), d, "{url} served other bytes");
            let local = std::fs::read(pushed.layout.join("blobs/sha256").join(&d[7..])).unwrap();
            assert_eq!(bytes.len(), local.len());
        }
    }
}

/// Opens an upload on `node`; returns its path (`/v2/…/blobs/uploads/<id>`).
async fn open_upload(node: &Berth, repository: &str) -> String {
    let response =
        as_admin(client().post(format!("{}/v2/{repository}/blobs/uploads/", node.url())))
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    match location.find("/v2/") {
        Some(i) => location[i..].to_owned(),
        None => panic!("Location {location}"),
    }
}

/// Sends one chunk at `offset` to `node`; returns the status.
async fn patch(node: &Berth, upload: &str, offset: usize, chunk: &[u8]) -> reqwest::StatusCode {
    as_admin(client().patch(format!("{}{upload}", node.url())))
        .header("Content-Type", "application/octet-stream")
        .header(
            "Content-Range",
            format!("{offset}-{}", offset + chunk.len() - 1),
        )
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

/// Completes an upload on `node` as `digest`; returns the status.
async fn finish(node: &Berth, upload: &str, digest: &str) -> reqwest::StatusCode {
    let sep = if upload.contains('?') { '&' } else { '?' };
    as_admin(client().put(format!("{}{upload}{sep}digest={digest}", node.url())))
        .send()
        .await
        .unwrap()
        .status()
}

/// Checks the blob `digest` in `repository`, read through the balancer, is `bytes`.
async fn blob_reads_back(cluster: &Cluster, repository: &str, digest: &str, bytes: &[u8]) {
    let url = format!("{}/v2/{repository}/blobs/{digest}", cluster.lb());
    let response = as_admin(client().get(&url)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    assert!(response.bytes().await.unwrap() == bytes, "{url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_nginx_on_postgres_and_garage() {
    support::require_tool("skopeo");
    let work = tempfile::tempdir().unwrap();
    let Some(mut cluster) = Cluster::start(work.path()).await else {
        return;
    };
    let http = client();
    let created = as_admin(http.post(format!("{}/api/v2.0/projects", cluster.lb())))
        .header("Content-Type", "application/json")
        .body(r#"{"project_name":"cluster","metadata":{"public":"false"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut acknowledged = Vec::new();

    // 1. skopeo pushes a multi-layer image and a multi-arch index through the balancer.
    let layered = work.path().join("layered");
    let digest = image::write_layered_layout(&layered, &[3 << 20, 1 << 20, 64 << 10]);
    let dest = format!("{}/cluster/layered:latest", cluster.balancer.addr);
    assert!(skopeo_push(&layered, &dest), "pushing the layered image");
    acknowledged.push(Pushed {
        repository: "cluster/layered".into(),
        digest,
        layout: layered,
    });
    let multi = work.path().join("multi");
    let digest = image::write_layout(&multi, &["amd64", "arm64"]);
    let dest = format!("{}/cluster/multi:latest", cluster.balancer.addr);
    assert!(skopeo_push(&multi, &dest), "pushing the multi-arch index");
    acknowledged.push(Pushed {
        repository: "cluster/multi".into(),
        digest,
        layout: multi,
    });
    let pulled = work.path().join("pulled");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .args(["--src-creds", &format!("admin:{ADMIN_PASSWORD}")])
        .arg(format!(
            "docker://{}/cluster/multi:latest",
            cluster.balancer.addr
        ))
        .arg(format!("oci:{}:latest", pulled.display())));

    // 2. One upload, its chunks sent to each node in turn and completed on another.
    let blob = random_bytes(5 << 20);
    let upload = open_upload(cluster.node(0), "cluster/chunked").await;
    for (i, chunk) in blob.chunks(700 << 10).enumerate() {
        let status = patch(cluster.node(i % 3), &upload, i * (700 << 10), chunk).await;
        assert_eq!(status, 202, "chunk {i} on node {}", i % 3);
    }
    let digest = sha256(&blob);
    assert_eq!(finish(cluster.node(1), &upload, &digest).await, 201);
    blob_reads_back(&cluster, "cluster/chunked", &digest, &blob).await;

    // 3. A node dies during pushes, one of them a chunk it is receiving. Pushes through
    //    the balancer go on (a client retries a push cut by the death, as clients do),
    //    and the upload the dead node was writing continues on another node once the
    //    dead node's claim on it has lapsed.
    let orphan = random_bytes(3 << 20);
    let (first, second) = orphan.split_at(1 << 20);
    let upload = open_upload(cluster.node(2), "cluster/orphan").await;
    assert_eq!(patch(cluster.node(2), &upload, 0, first).await, 202);
    let (feed, body) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let cut_patch = tokio::spawn({
        let url = format!("{}{upload}", cluster.node(2).url());
        let body = futures_util::stream::unfold(body, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let range = format!("{}-{}", first.len(), orphan.len() - 1);
        let length = second.len();
        async move {
            as_admin(client().patch(url))
                .header("Content-Range", range)
                .header("Content-Length", length)
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
        }
    });
    feed.send(Ok(second[..4096].to_vec())).await.unwrap();
    let pushes: Vec<_> = (0..4)
        .map(|i| {
            let layout = work.path().join(format!("during-{i}"));
            let digest = image::write_layered_layout(&layout, &[32 << 20, 512 << 10]);
            let dest = format!("{}/cluster/during-{i}:latest", cluster.balancer.addr);
            tokio::task::spawn_blocking(move || {
                let acked = (0..3).any(|_| skopeo_push(&layout, &dest));
                (
                    acked,
                    Pushed {
                        repository: format!("cluster/during-{i}"),
                        digest,
                        layout,
                    },
                )
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        pushes.iter().any(|p| !p.is_finished()),
        "the node dies while pushes are in flight"
    );
    cluster.nodes[2].take().unwrap().kill9();
    assert!(
        cut_patch.await.unwrap().is_err(),
        "the cut chunk was never answered"
    );
    for push in pushes {
        let (acked, pushed) = push.await.unwrap();
        assert!(acked, "{} was never acknowledged", pushed.repository);
        acknowledged.push(pushed);
    }
    let status = as_admin(client().get(format!("{}{upload}", cluster.node(0).url())))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], format!("0-{}", first.len() - 1));
    let started = Instant::now();
    let status = patch(cluster.node(0), &upload, first.len(), second).await;
    assert_eq!(status, 202, "the dead node's upload continues on another");
    assert!(started.elapsed() < Duration::from_secs(LEASE_SECS * 2 + 2));
    let digest = sha256(&orphan);
    assert_eq!(finish(cluster.node(1), &upload, &digest).await, 201);
    blob_reads_back(&cluster, "cluster/orphan", &digest, &orphan).await;

    // 4. The upload purge is scheduled every PURGE_EVERY_SECS on every node, and runs
    //    once per period for the cluster.
    let since = scheduled_runs(&cluster, "upload-purge").await;
    tokio::time::sleep(Duration::from_secs(PURGE_EVERY_SECS * 4)).await;
    let fired = scheduled_runs(&cluster, "upload-purge").await - since;
    assert!(
        (3..=5).contains(&fired),
        "the purge ran {fired} times in {} periods on two nodes",
        4
    );

    // 5. Every acknowledged push pulls back byte-identical.
    for pushed in &acknowledged {
        pulls_back_identical(&cluster, pushed).await;
    }
}

/// How many times the schedule `name` has fired, as the cluster's job table says.
async fn scheduled_runs(cluster: &Cluster, name: &str) -> i64 {
    let output = Command::new("psql")
        .arg(cluster.database.url())
        .args([
            "-tAc",
            &format!("SELECT count(*) FROM jobs WHERE kind = '{name}'"),
        ])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}
