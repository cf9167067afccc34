//! Health probes.

mod common;

use common::*;

/// Concurrent readiness probes each write their own probe file, so none fails because
/// another removed a shared one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readiness_probes_all_succeed() {
    let reg = std::sync::Arc::new(TestRegistry::new());
    let probes: Vec<_> = (0..64)
        .map(|_| {
            let reg = reg.clone();
            tokio::spawn(async move { reg.get("/readyz").await })
        })
        .collect();
    for probe in probes {
        expect_status(&probe.await.unwrap(), 200, "readyz");
    }
    let uploads = reg.dir.path().join("storage/uploads");
    assert_eq!(
        std::fs::read_dir(uploads).unwrap().count(),
        0,
        "no probe file is left"
    );
}
