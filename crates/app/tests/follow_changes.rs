//! A node that follows the store's change mark drops its cached credentials when
//! another node changes a password: the old password stops working here too.

use berth_meta::AuditEntry;
use berth_testkit::{ADMIN_PASSWORD, TestRegistry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_on_another_node_stops_working_here() {
    let reg = TestRegistry::secure().await;
    let here = &reg.identity;
    let mut seen = None;
    here.follow_changes(&mut seen).await.unwrap();
    here.authenticator
        .login("admin", ADMIN_PASSWORD, None)
        .await
        .expect("the administrator logs in");

    // Another node changes the password: a write to the shared store that this node's
    // caches know nothing of.
    let admin = here
        .stores
        .users
        .user_by_name("admin")
        .await
        .unwrap()
        .unwrap();
    let new_password = "An0ther-Passw0rd";
    let audit = AuditEntry {
        project_id: None,
        username: "admin".into(),
        operation: "update".into(),
        resource_type: "user".into(),
        resource: "admin".into(),
        success: true,
        client_ip: String::new(),
        op_time: 1,
    };
    here.stores
        .users
        .set_password(admin.id, &here.passwords.hash(new_password), 1, &audit)
        .await
        .unwrap();
    assert!(
        here.authenticator
            .login("admin", ADMIN_PASSWORD, None)
            .await
            .is_ok(),
        "until this node looks, it remembers the old password"
    );

    here.follow_changes(&mut seen).await.unwrap();
    assert!(
        here.authenticator
            .login("admin", ADMIN_PASSWORD, None)
            .await
            .is_err(),
        "the old password still works after the change was seen"
    );
    here.authenticator
        .login("admin", new_password, None)
        .await
        .expect("the new password works");
}
