//! Health probes.

mod common;

use common::*;

/// Concurrent readiness probes each write their own probe file (or object), so none fails
/// because another removed a shared one, and none is left behind.
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
    let left: Vec<_> = reg
        .blob_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("readyz"))
        .collect();
    assert!(left.is_empty(), "probe files are left: {left:?}");
}
