//! Checks of [`crate::SettingsStore`]: settings put, and set once at first start.

use std::collections::BTreeMap;

use super::support::{audit, audited};
use crate::Metadata;

/// Runs the settings checks.
pub(super) async fn run(store: &dyn Metadata) {
    settings_are_put_and_initialised(store).await;
}

/// The settings this check writes (`cf.…`).
async fn ours(store: &dyn Metadata) -> BTreeMap<String, String> {
    let mut all = store.settings().await.unwrap();
    all.retain(|key, _| key.starts_with("cf."));
    all
}

/// Key → value text pairs.
fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A first start sets the settings without a value; a put replaces the values it names,
/// keeps the others and is audited; a later start changes no value.
async fn settings_are_put_and_initialised(store: &dyn Metadata) {
    let actor = "cf-settings-actor";
    store
        .init_settings(&values(&[("cf.a", "1"), ("cf.b", r#""first""#)]))
        .await
        .unwrap();
    assert_eq!(
        ours(store).await,
        values(&[("cf.a", "1"), ("cf.b", r#""first""#)])
    );
    let put = values(&[("cf.b", r#""second""#), ("cf.c", "true")]);
    store
        .put_settings(&put, &audit(actor, "update", "settings"))
        .await
        .unwrap();
    assert_eq!(
        ours(store).await,
        values(&[("cf.a", "1"), ("cf.b", r#""second""#), ("cf.c", "true")])
    );
    store
        .init_settings(&values(&[("cf.a", "2"), ("cf.d", "[1,2]")]))
        .await
        .unwrap();
    assert_eq!(
        ours(store).await,
        values(&[
            ("cf.a", "1"),
            ("cf.b", r#""second""#),
            ("cf.c", "true"),
            ("cf.d", "[1,2]")
        ]),
        "a start keeps the values set"
    );
    assert_eq!(audited(store, actor).await, ["settings"]);
}
