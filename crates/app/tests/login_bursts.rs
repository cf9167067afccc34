//! A burst of logins with the same credentials runs argon2 once, not once per request:
//! the others wait for that verification. Measured at the real hashing cost.

use std::time::Instant;

use berth_app::identity::HashCost;
use berth_testkit::{ADMIN_PASSWORD, TestRegistry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_with_the_same_credentials_share_one_verification() {
    let reg = TestRegistry::secure_hashing_at(HashCost::default()).await;
    let authenticator = reg.identity.authenticator.clone();
    // One verification alone, for scale (then forgotten).
    let start = Instant::now();
    authenticator
        .login("admin", ADMIN_PASSWORD, None)
        .await
        .unwrap();
    let one = start.elapsed();
    authenticator.forget_all();

    let start = Instant::now();
    let logins: Vec<_> = (0..64)
        .map(|_| {
            let authenticator = authenticator.clone();
            tokio::spawn(async move { authenticator.login("admin", ADMIN_PASSWORD, None).await })
        })
        .collect();
    for login in logins {
        login.await.unwrap().unwrap();
    }
    let burst = start.elapsed();
    // 64 verifications on two cores would take about 32 times one.
    assert!(
        burst < one * 6,
        "64 concurrent logins took {burst:?}, one takes {one:?}"
    );
}
