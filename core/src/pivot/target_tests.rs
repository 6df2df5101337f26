//! Tests of the target copy (what is stripped, what is rewritten, what is kept) and of the
//! content hash that proves a copy equals its source.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::pivot::{PlanError, SourceObject};

/// A KubeadmControlPlane as an apiserver returns it, after an interrupted earlier move
/// attempt annotated it for deletion.
fn control_plane() -> Value {
    json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
        "kind": "KubeadmControlPlane",
        "metadata": {
            "name": "edge-1-cp",
            "namespace": "strata-edge",
            "uid": "src-kcp",
            "resourceVersion": "4711",
            "generation": 3,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "deletionTimestamp": "2025-01-02T00:00:00Z",
            "deletionGracePeriodSeconds": 0,
            "selfLink": "/apis/controlplane.cluster.x-k8s.io/v1beta2/namespaces/strata-edge/kubeadmcontrolplanes/edge-1-cp",
            "managedFields": [{"manager": "strata.dev/controller", "operation": "Apply"}],
            "labels": {"cluster.x-k8s.io/cluster-name": "edge-1"},
            "annotations": {
                "clusterctl.cluster.x-k8s.io/delete-for-move": "",
                "strata.dev/revision": "4",
            },
            "finalizers": ["kubeadm.controlplane.cluster.x-k8s.io"],
            "ownerReferences": [{
                "apiVersion": "cluster.x-k8s.io/v1beta2",
                "kind": "Cluster",
                "name": "edge-1",
                "uid": "src-cluster",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {"replicas": 1, "version": "v1.33.1"},
        "status": {"replicas": 1, "initialization": {"controlPlaneInitialized": true}},
    })
}

fn source(json: Value) -> SourceObject {
    SourceObject::from_json(json).unwrap()
}

fn uids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(from, to)| (from.to_string(), to.to_string()))
        .collect()
}

#[test]
fn the_copy_loses_server_set_metadata_and_keeps_the_rest() {
    let (copy, _) = target_object(
        &source(control_plane()),
        true,
        &uids(&[("src-cluster", "dst-cluster")]),
    )
    .unwrap();
    let metadata = copy["metadata"].as_object().unwrap();
    let mut keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "annotations",
            "finalizers",
            "labels",
            "name",
            "namespace",
            "ownerReferences"
        ]
    );
    assert_eq!(
        copy["metadata"]["annotations"],
        json!({"strata.dev/revision": "4"})
    );
    assert_eq!(
        copy["metadata"]["finalizers"],
        json!(["kubeadm.controlplane.cluster.x-k8s.io"])
    );
    assert_eq!(copy["spec"], control_plane()["spec"]);
    assert_eq!(copy["kind"], "KubeadmControlPlane");
}

#[test]
fn owner_references_point_at_the_targets_uids() {
    let (copy, _) = target_object(
        &source(control_plane()),
        true,
        &uids(&[("src-cluster", "dst-cluster"), ("unrelated", "x")]),
    )
    .unwrap();
    let mut expected = control_plane()["metadata"]["ownerReferences"].clone();
    expected[0]["uid"] = json!("dst-cluster");
    assert_eq!(copy["metadata"]["ownerReferences"], expected);
}

#[test]
fn an_owner_not_yet_in_the_target_is_an_error_naming_it() {
    let err = target_object(&source(control_plane()), true, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err,
        PlanError::OwnerNotInTarget {
            object: "KubeadmControlPlane strata-edge/edge-1-cp".into(),
            owner: "Cluster edge-1 (source uid src-cluster)".into(),
        }
    );
}

#[test]
fn status_is_returned_apart_for_kinds_with_a_status_subresource() {
    let owners = uids(&[("src-cluster", "dst-cluster")]);
    let (copy, status) = target_object(&source(control_plane()), true, &owners).unwrap();
    assert!(copy.get("status").is_none());
    assert_eq!(status, Some(control_plane()["status"].clone()));

    // Without the subresource the status is part of the object and is created with it.
    let (copy, status) = target_object(&source(control_plane()), false, &owners).unwrap();
    assert_eq!(copy["status"], control_plane()["status"]);
    assert_eq!(status, None);

    // An empty status is nothing to restore.
    let mut fresh = control_plane();
    fresh["status"] = json!({});
    let (copy, status) = target_object(&source(fresh), true, &owners).unwrap();
    assert!(copy.get("status").is_none());
    assert_eq!(status, None);
}

#[test]
fn an_object_without_owners_or_annotations_is_copied_as_is_apart_from_server_fields() {
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "edge-1-etcd", "namespace": "strata-edge", "uid": "src-etcd", "resourceVersion": "9"},
        "type": "cluster.x-k8s.io/secret",
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
    });
    let (copy, status) = target_object(&source(secret.clone()), false, &BTreeMap::new()).unwrap();
    let mut expected = secret;
    let metadata = expected["metadata"].as_object_mut().unwrap();
    metadata.remove("uid");
    metadata.remove("resourceVersion");
    assert_eq!(copy, expected);
    assert_eq!(status, None);
}

#[test]
fn a_source_that_is_not_an_object_is_refused() {
    let mut broken = source(control_plane());
    broken.json = json!(["not", "an", "object"]);
    let err = target_object(&broken, true, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err,
        PlanError::NotAnObject {
            object: "KubeadmControlPlane strata-edge/edge-1-cp".into()
        }
    );
}

#[test]
fn the_copy_hashes_like_its_source() {
    let original = control_plane();
    let (copy, _) = target_object(
        &source(original.clone()),
        true,
        &uids(&[("src-cluster", "dst-cluster")]),
    )
    .unwrap();
    assert_eq!(content_hash(&copy), content_hash(&original));
}

#[test]
fn the_hash_ignores_metadata_status_and_key_order() {
    let original = control_plane();
    let mut read_back = json!({
        "status": {"replicas": 3},
        "spec": {"version": "v1.33.1", "replicas": 1},
        "metadata": {"name": "edge-1-cp", "uid": "dst-kcp", "resourceVersion": "1"},
        "kind": "KubeadmControlPlane",
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
    });
    assert_eq!(content_hash(&read_back), content_hash(&original));
    read_back["spec"]["replicas"] = json!(3);
    assert_ne!(content_hash(&read_back), content_hash(&original));
}

#[test]
fn the_hash_covers_nested_spec_changes_and_array_order() {
    let a = json!({"spec": {"files": [{"path": "/a"}, {"path": "/b"}]}});
    let b = json!({"spec": {"files": [{"path": "/b"}, {"path": "/a"}]}});
    let c = json!({"spec": {"files": [{"path": "/a"}, {"path": "/c"}]}});
    assert_ne!(content_hash(&a), content_hash(&b));
    assert_ne!(content_hash(&a), content_hash(&c));
}

#[test]
fn the_hash_of_a_secret_covers_its_data_and_type() {
    let secret = |value: &str, kind: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "edge-1-kubeconfig"},
            "type": kind,
            "data": {"value": value},
        })
    };
    let base = content_hash(&secret("a3ViZWNvbmZpZw==", "cluster.x-k8s.io/secret"));
    assert_ne!(
        base,
        content_hash(&secret("b3RoZXI=", "cluster.x-k8s.io/secret"))
    );
    assert_ne!(base, content_hash(&secret("a3ViZWNvbmZpZw==", "Opaque")));
    assert!(base.starts_with("sha256:"));
    let hex = base.trim_start_matches("sha256:");
    assert_eq!(hex.len(), 64);
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn the_hash_of_an_object_without_content_is_still_defined() {
    let only_metadata = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    assert_eq!(content_hash(&only_metadata), content_hash(&json!({})));
    assert_eq!(content_hash(&json!(null)), content_hash(&json!({})));
}

#[test]
fn the_hash_of_a_cluster_ignores_the_pause_the_move_sets_and_clears() {
    let cluster = |paused: bool, service_domain: &str| {
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": "edge-1"},
            "spec": {"paused": paused, "clusterNetwork": {"serviceDomain": service_domain}},
        })
    };
    assert_eq!(
        content_hash(&cluster(false, "cluster.local")),
        content_hash(&cluster(true, "cluster.local"))
    );
    assert_ne!(
        content_hash(&cluster(true, "cluster.local")),
        content_hash(&cluster(true, "edge.local"))
    );
    // Other kinds' pause is their content: only the move's own pause is ignored.
    let deployment = |paused: bool| json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment", "spec": {"paused": paused}});
    assert_ne!(
        content_hash(&deployment(false)),
        content_hash(&deployment(true))
    );
}

#[test]
fn a_selector_identity_says_which_labels_admit_a_namespace() {
    let vsphere = json!({
        "kind": "VSphereClusterIdentity",
        "spec": {"allowedNamespaces": {"selector": {"matchLabels": {"strata.dev/objects-namespace": "team-edge"}}}},
    });
    assert_eq!(
        admitted_namespace_labels(&vsphere),
        BTreeMap::from([(
            "strata.dev/objects-namespace".to_string(),
            "team-edge".to_string()
        )])
    );
    // By a list of names (AWS, Azure), or admitting all: no label needed.
    let by_name = json!({"spec": {"allowedNamespaces": {"list": ["team-edge"]}}});
    assert!(admitted_namespace_labels(&by_name).is_empty());
    assert!(admitted_namespace_labels(&json!({"spec": {}})).is_empty());
}
