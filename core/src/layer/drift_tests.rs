#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;

fn deployment(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy"},
                {"name": "web", "image": image},
            ]}},
        },
    })
}

#[test]
fn a_live_object_holding_every_desired_field_has_no_difference() {
    let desired = deployment("nginx");
    let mut live = deployment("nginx");
    // What the apiserver and other managers add is not the layer's.
    live["metadata"]["uid"] = json!("1234");
    live["metadata"]["labels"] = json!({"added-by": "someone"});
    live["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] = json!("Always");
    live["status"] = json!({"replicas": 2});
    assert_eq!(first_difference(&desired, &live), None);
}

#[test]
fn a_changed_scalar_is_named_by_its_path() {
    let desired = json!({"data": {"level": "info", "mode": "fast"}});
    let live = json!({"data": {"level": "debug", "mode": "fast", "extra": "kept"}});
    assert_eq!(
        first_difference(&desired, &live).as_deref(),
        Some("data.level")
    );
}

#[test]
fn a_changed_list_element_is_named_by_its_index() {
    let desired = deployment("nginx");
    let live = deployment("nginx:1.27");
    assert_eq!(
        first_difference(&desired, &live).as_deref(),
        Some("spec.template.spec.containers[1].image")
    );
}

#[test]
fn a_missing_field_is_a_difference() {
    let desired = json!({"spec": {"replicas": 2, "paused": false}});
    let live = json!({"spec": {"replicas": 2}});
    assert_eq!(
        first_difference(&desired, &live).as_deref(),
        Some("spec.paused")
    );
}

#[test]
fn lists_of_different_lengths_differ_as_a_whole() {
    let desired = json!({"spec": {"args": ["--a"]}});
    let longer = json!({"spec": {"args": ["--a", "--b"]}});
    assert_eq!(
        first_difference(&desired, &longer).as_deref(),
        Some("spec.args")
    );
    let empty = json!({"spec": {"args": []}});
    assert_eq!(
        first_difference(&empty, &longer).as_deref(),
        Some("spec.args")
    );
}

#[test]
fn a_value_of_another_type_is_a_difference() {
    let desired = json!({"spec": {"ports": [{"port": 80}]}});
    let live = json!({"spec": {"ports": {"port": 80}}});
    assert_eq!(
        first_difference(&desired, &live).as_deref(),
        Some("spec.ports")
    );
    assert_eq!(
        first_difference(&json!({"a": "1"}), &json!({"a": 1})).as_deref(),
        Some("a")
    );
}

#[test]
fn keys_that_are_not_plain_names_are_quoted() {
    let desired = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}}});
    let live = json!({"metadata": {"labels": {"app.kubernetes.io/name": "api"}}});
    assert_eq!(
        first_difference(&desired, &live).as_deref(),
        Some(r#"metadata.labels["app.kubernetes.io/name"]"#)
    );
    let desired = json!({"data": {"config.yaml": "a: 1"}});
    assert_eq!(
        first_difference(&desired, &json!({"data": {}})).as_deref(),
        Some(r#"data["config.yaml"]"#)
    );
}

#[test]
fn numbers_compare_by_value() {
    assert_eq!(
        first_difference(&json!({"replicas": 2}), &json!({"replicas": 2.0})),
        None
    );
    assert_eq!(
        first_difference(&json!({"replicas": 2}), &json!({"replicas": 3})).as_deref(),
        Some("replicas")
    );
}

#[test]
fn a_desired_null_sets_nothing() {
    let desired = json!({"metadata": {"creationTimestamp": null, "name": "web"}});
    let live = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z", "name": "web"}});
    assert_eq!(first_difference(&desired, &live), None);
    assert_eq!(
        first_difference(&desired, &json!({"metadata": {"name": "web"}})),
        None
    );
}

#[test]
fn an_empty_desired_mapping_or_list_matches_an_absent_field_only() {
    let desired = json!({"metadata": {"annotations": {}}, "spec": {"args": [], "x": {}}});
    assert_eq!(
        first_difference(&desired, &json!({"metadata": {}, "spec": {"x": {"y": 1}}})),
        None
    );
    let live = json!({"metadata": {"annotations": "text"}, "spec": {}});
    assert_eq!(
        first_difference(&desired, &live).as_deref(),
        Some("metadata.annotations")
    );
}

#[test]
fn objects_that_differ_as_wholes_are_named_by_the_root() {
    assert_eq!(
        first_difference(&json!({"a": 1}), &json!([1])).as_deref(),
        Some(".")
    );
}

#[test]
fn a_quantity_stored_in_another_spelling_is_the_same_amount() {
    let desired = json!({"spec": {"containers": [{"resources": {
        "limits": {"cpu": "1000m", "memory": "1024Mi", "nvidia.com/gpu": 1},
        "requests": {"cpu": 0.5}}}],
        "volumes": [{"emptyDir": {"sizeLimit": "1Gi"}}]}});
    let stored = json!({"spec": {"containers": [{"resources": {
        "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "500m"}}}],
        "volumes": [{"emptyDir": {"sizeLimit": "1024Mi"}}]}});
    assert_eq!(first_difference(&desired, &stored), None);

    let changed = json!({"spec": {"containers": [{"resources": {
        "limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "requests": {"cpu": "500m"}}}],
        "volumes": [{"emptyDir": {"sizeLimit": "1024Mi"}}]}});
    assert_eq!(
        first_difference(&desired, &changed).as_deref(),
        Some("spec.containers[0].resources.limits.cpu")
    );
    // Elsewhere a string is a string: a ConfigMap's "1000m" is not its "1".
    let config = json!({"data": {"cpu": "1000m"}});
    assert_eq!(
        first_difference(&config, &json!({"data": {"cpu": "1"}})).as_deref(),
        Some("data.cpu")
    );
    // A ResourceQuota's hard limits, and a claim's requested storage.
    let quota = json!({"spec": {"hard": {"requests.memory": "2Gi", "pods": "10"}}});
    let quota_stored = json!({"spec": {"hard": {"requests.memory": "2048Mi", "pods": "10"}}});
    assert_eq!(first_difference(&quota, &quota_stored), None);
}
