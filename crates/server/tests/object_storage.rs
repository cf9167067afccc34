//! Berth keeping its blobs in an S3 bucket (`s3s-fs`, started per test): skopeo pushes an
//! image with a layer spanning several multipart parts and pulls it back byte for byte, and
//! with `storage.redirect` blob GETs answer `307` with a presigned URL the client fetches
//! itself. The secret key never reaches the log.

mod support;

use std::path::Path;
use std::process::Command;

use berth_testkit_s3::S3Server;
use support::{Berth, client, free_port, image, random_bytes, require_tool, run, sha256};

/// Starts Berth on `data`, its blobs in `server`'s bucket, with extra `BERTH_*` settings.
fn berth_on(server: &S3Server, data: &Path, extra: &[(&str, &str)]) -> Berth {
    let mut env = vec![
        ("BERTH_STORAGE__KIND", "s3"),
        ("BERTH_STORAGE__ENDPOINT", server.endpoint()),
        ("BERTH_STORAGE__REGION", berth_testkit_s3::REGION),
        ("BERTH_STORAGE__BUCKET", server.bucket()),
        ("BERTH_STORAGE__ACCESS_KEY_ID", server.access_key_id()),
        (
            "BERTH_STORAGE__SECRET_ACCESS_KEY",
            server.secret_access_key(),
        ),
        ("BERTH_STORAGE__PATH_STYLE", "true"),
        ("BERTH_STORAGE__PREFIX", "registry"),
    ];
    env.extend_from_slice(extra);
    Berth::start_with(data, free_port(), &env)
}

#[test]
fn skopeo_pushes_and_pulls_through_the_bucket_unchanged() {
    require_tool("skopeo");
    let Some(server) = S3Server::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let berth = berth_on(&server, &work.path().join("data"), &[]);
    let layout = work.path().join("layout");
    let layer_len = 20 << 20;
    let digest = image::write_layered_layout(&layout, &[layer_len]);
    let image = format!("docker://{}/test/big:latest", berth.addr);
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(&image));
    let out = work.path().join("out");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--src-tls-verify=false"])
        .arg(&image)
        .arg(format!("oci:{}:back", out.display())));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"].as_str().unwrap(), digest);
    // Every blob comes back byte for byte, the large layer (several parts) included.
    let mut largest = 0;
    for entry in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let pulled = std::fs::read(entry.unwrap().path()).unwrap();
        let name = sha256(&pulled);
        let pushed = std::fs::read(layout.join("blobs/sha256").join(&name[7..])).unwrap();
        assert!(pulled == pushed, "{name} differs");
        largest = largest.max(pulled.len());
    }
    assert!(largest > layer_len, "the large layer was pulled");
    // Blobs sit under the prefix; nothing of the uploads is left.
    let objects = server.bucket_dir().join("registry");
    assert!(files_under(&objects.join("blobs")) > 0);
    assert_eq!(files_under(&objects.join("uploads")), 0, "uploads are left");
}

/// Files under `dir` (the server leaves emptied directories behind).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path() {
            p if p.is_dir() => files_under(&p),
            _ => 1,
        })
        .sum()
}

#[tokio::test]
async fn blob_gets_redirect_to_presigned_urls_when_configured() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let berth = berth_on(
        &server,
        &work.path().join("data"),
        &[
            ("BERTH_STORAGE__REDIRECT", "true"),
            ("BERTH_STORAGE__REDIRECT_EXPIRY_SECS", "30"),
            ("BERTH_LOG__LEVEL", "debug"),
        ],
    );
    let http = client();
    let blob = random_bytes(100_000);
    let digest = sha256(&blob);
    let pushed = http
        .post(format!(
            "{}/v2/lib/app/blobs/uploads/?digest={digest}",
            berth.url()
        ))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}/v2/lib/app/blobs/{digest}", berth.url());

    let head = no_redirects.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD is answered by Berth");
    assert_eq!(head.headers()["content-length"], "100000");

    let get = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 307);
    let location = get.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(server.endpoint()), "{location}");
    assert!(location.contains("X-Amz-Expires=30"), "{location}");
    let fetched = http.get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert!(fetched.bytes().await.unwrap() == blob);

    let ranged = no_redirects
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 307, "a ranged GET redirects too");
    let location = ranged.headers()["location"].to_str().unwrap().to_owned();
    let part = http
        .get(&location)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(part.bytes().await.unwrap() == blob[10..20]);

    // A blob the repository does not hold is never redirected.
    let other = format!("{}/v2/lib/other/blobs/{digest}", berth.url());
    let missing = no_redirects.get(&other).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Even at debug level, the log never shows the secret key.
    drop(berth);
    let log = std::fs::read_to_string(work.path().join("data.log")).unwrap();
    assert!(
        log.contains("object store"),
        "the log is the server's: {log}"
    );
    assert!(
        !log.contains(server.secret_access_key()),
        "the secret key is logged"
    );
}
