#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

fn config(greeting: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "web", "namespace": "shop", "labels": { "app": "web" } },
        "data": { "greeting": greeting },
    })
}

/// As the apiserver returns it: more metadata, a key another manager added.
fn live(greeting: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "web", "namespace": "shop", "resourceVersion": "7",
            "labels": { "app": "web", "app.kubernetes.io/managed-by": "Helm" },
            "annotations": { "meta.helm.sh/release-name": "web" },
        },
        "data": { "greeting": greeting, "extra": "someone else's" },
    })
}

fn key() -> ObjectKey {
    ObjectKey {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("shop".into()),
        name: "web".into(),
    }
}

fn differs(field: &str) -> Finding {
    Finding::Differs {
        field: field.into(),
    }
}

#[test]
fn only_what_the_release_applied_is_compared() {
    let desired = config("hello");
    assert_eq!(compare(&desired, Some(&live("hello"))), None);
    assert_eq!(
        compare(&desired, Some(&live("edited"))),
        Some(differs("data.greeting"))
    );
    assert_eq!(compare(&desired, None), Some(Finding::Missing));
}

#[test]
fn an_object_that_holds_after_the_upgrade_is_a_correction_of_its_kind() {
    let desired = config("hello");
    assert_eq!(
        verdict(
            &desired,
            &Finding::Missing,
            None,
            Some(&live("hello")),
            Some("9")
        ),
        Verdict::Corrected(DriftKind::Recreated)
    );
    assert_eq!(
        verdict(
            &desired,
            &differs("data.greeting"),
            Some("7"),
            Some(&live("hello")),
            Some("8")
        ),
        Verdict::Corrected(DriftKind::FieldReset {
            field: "data.greeting".into()
        })
    );
}

#[test]
fn a_difference_the_upgrade_left_unchanged_is_the_apiservers_and_settles() {
    let desired = config("hello");
    assert_eq!(
        verdict(
            &desired,
            &differs("data.greeting"),
            Some("7"),
            Some(&live("edited")),
            Some("7")
        ),
        Verdict::Settled {
            field: "data.greeting".into()
        }
    );
    let mut settled = SettledDifferences::default();
    settled.remember(&key(), "data.greeting", "7");
    assert!(settled.holds(&key(), &differs("data.greeting"), Some("7")));
    // Changed since, or another field: drift again.
    assert!(!settled.holds(&key(), &differs("data.greeting"), Some("8")));
    assert!(!settled.holds(&key(), &differs("metadata.labels.app"), Some("7")));
    assert!(!settled.holds(&key(), &Finding::Missing, Some("7")));
}

#[test]
fn what_the_upgrade_did_not_set_back_is_said() {
    let desired = config("hello");
    assert_eq!(
        verdict(&desired, &Finding::Missing, None, None, None),
        Verdict::NotRestored {
            reason: "still missing after helm upgrade".into()
        }
    );
    // Changed by the upgrade, yet still not as applied (someone writes it back at once).
    assert_eq!(
        verdict(
            &desired,
            &differs("data.greeting"),
            Some("7"),
            Some(&live("edited again")),
            Some("8")
        ),
        Verdict::NotRestored {
            reason: "data.greeting still differs after helm upgrade".into()
        }
    );
    // Re-created by someone else as something else: not settled, since it was missing.
    assert!(matches!(
        verdict(
            &desired,
            &Finding::Missing,
            None,
            Some(&live("x")),
            Some("3")
        ),
        Verdict::NotRestored { .. }
    ));
}
