//! Purging stale uploads (scenario S17): idle sessions and their bytes go, active ones stay.

mod common;

use std::time::Duration;

use berth_app::RegistryConfig;
use common::*;

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn only_idle_sessions_are_purged() {
    let reg = TestRegistry::with_config(RegistryConfig {
        upload_max_age: Duration::from_millis(400),
        ..RegistryConfig::default()
    });
    let uploads_dir = reg.dir.path().join("storage/uploads");
    let idle: Vec<String> =
        futures_util::future::join_all((0..5).map(|_| start_upload(&reg, "p/idle"))).await;
    let active = start_upload(&reg, "p/active").await;
    expect_status(
        &patch(&reg, &idle[0], Some("0-2"), b"abc").await,
        202,
        "idle data",
    );
    assert_eq!(files_under(&uploads_dir), 6);

    tokio::time::sleep(Duration::from_millis(250)).await;
    expect_status(
        &patch(&reg, &active, Some("0-2"), b"abc").await,
        202,
        "keep alive",
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(reg.registry.purge_stale_uploads().await.unwrap(), 5);

    for location in &idle {
        expect_error(
            &reg.get(location).await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
            "purged",
        );
    }
    expect_upload_at(&reg, &active, 3, "active session survives").await;
    assert_eq!(
        files_under(&uploads_dir),
        1,
        "purged bytes are gone from disk"
    );
    let data = b"abcdef";
    expect_status(
        &patch(&reg, &active, Some("3-5"), &data[3..]).await,
        202,
        "resume",
    );
    let d = sha256(data);
    expect_status(
        &put_upload(&reg, &active, d.as_str(), None, b"").await,
        201,
        "finish",
    );
    expect_blob(&reg, "p/active", &d, data, "after purge").await;
}
