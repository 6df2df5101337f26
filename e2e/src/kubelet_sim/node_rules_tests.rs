#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use serde_json::json;

use super::*;

fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: value.map(String::from),
        effect: effect.into(),
        ..Taint::default()
    }
}

fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Toleration {
        key: some(key),
        operator: some(operator),
        value: some(value),
        effect: some(effect),
        ..Toleration::default()
    }
}

#[test]
fn toleration_matching_follows_kubernetes() {
    let cp = taint(CONTROL_PLANE_TAINT, None, "NoSchedule");
    let dedicated = taint("dedicated", Some("gpu"), "NoExecute");
    // Exists with the key, any effect.
    assert!(tolerates(
        &toleration(CONTROL_PLANE_TAINT, "Exists", "", ""),
        &cp
    ));
    // Exists with the key and the wrong effect.
    assert!(!tolerates(
        &toleration(CONTROL_PLANE_TAINT, "Exists", "", "NoExecute"),
        &cp
    ));
    // An empty key with Exists tolerates everything, of its effect if it names one.
    assert!(tolerates(&toleration("", "Exists", "", ""), &cp));
    assert!(tolerates(&toleration("", "Exists", "", ""), &dedicated));
    assert!(!tolerates(
        &toleration("", "Exists", "", "NoSchedule"),
        &dedicated
    ));
    // Equal (or no operator) compares the value.
    assert!(tolerates(
        &toleration("dedicated", "Equal", "gpu", "NoExecute"),
        &dedicated
    ));
    assert!(tolerates(
        &toleration("dedicated", "", "gpu", ""),
        &dedicated
    ));
    assert!(!tolerates(
        &toleration("dedicated", "Equal", "cpu", ""),
        &dedicated
    ));
    assert!(!tolerates(
        &toleration("dedicated", "Equal", "", ""),
        &dedicated
    ));
    // Another key, or an unknown operator, tolerates nothing.
    assert!(!tolerates(&toleration("other", "Exists", "", ""), &cp));
    assert!(!tolerates(
        &toleration(CONTROL_PLANE_TAINT, "Lt", "", ""),
        &cp
    ));
}

#[test]
fn only_repelling_taints_must_be_tolerated() {
    let taints = [
        taint(CONTROL_PLANE_TAINT, None, "NoSchedule"),
        taint("soft", None, "PreferNoSchedule"),
    ];
    assert!(!tolerates_all(&[], &taints));
    assert!(tolerates_all(
        &[toleration(CONTROL_PLANE_TAINT, "Exists", "", "NoSchedule")],
        &taints
    ));
    assert!(tolerates_all(&[], &taints[1..]));
    // Every repelling taint needs its own toleration.
    let both = [
        taint(CONTROL_PLANE_TAINT, None, "NoSchedule"),
        taint(NOT_READY_TAINT, None, "NoSchedule"),
    ];
    assert!(!tolerates_all(
        &[toleration(CONTROL_PLANE_TAINT, "Exists", "", "NoSchedule")],
        &both
    ));
    // The DaemonSet controller's own tolerations (NoExecute not-ready) do not let a pod
    // onto a not-ready node's NoSchedule taint.
    assert!(!tolerates_all(
        &[toleration(NOT_READY_TAINT, "Exists", "", "NoExecute")],
        &both[1..]
    ));
}

#[test]
fn a_node_is_ready_once_networked_unless_a_fault_holds_it() {
    assert_eq!(
        NodeReadiness::of(false, false),
        NodeReadiness::NetworkNotReady
    );
    assert_eq!(NodeReadiness::of(true, false), NodeReadiness::Ready);
    assert_eq!(NodeReadiness::of(true, true), NodeReadiness::Fault);
    assert_eq!(NodeReadiness::of(false, true), NodeReadiness::Fault);
    let (status, reason, message) = NodeReadiness::NetworkNotReady.condition();
    assert_eq!((status, reason), ("False", "KubeletNotReady"));
    assert!(message.contains("cni config uninitialized"), "{message}");
    assert_eq!(NodeReadiness::Ready.condition().0, "True");
}

#[test]
fn own_taints_follow_the_role_and_readiness_and_keep_others() {
    let keys = |taints: &[Taint]| -> Vec<String> { taints.iter().map(|t| t.key.clone()).collect() };
    assert_eq!(
        keys(&own_taints(true, false)),
        [CONTROL_PLANE_TAINT, NOT_READY_TAINT]
    );
    assert_eq!(keys(&own_taints(true, true)), [CONTROL_PLANE_TAINT]);
    assert_eq!(keys(&own_taints(false, false)), [NOT_READY_TAINT]);
    assert!(own_taints(false, true).is_empty());
    // The lifecycle controller's NoExecute taint and a user's taint stay.
    let current = [
        taint(NOT_READY_TAINT, None, "NoSchedule"),
        taint(NOT_READY_TAINT, None, "NoExecute"),
        taint("dedicated", Some("gpu"), "NoSchedule"),
    ];
    let merged = merged_taints(&current, &own_taints(false, true));
    assert_eq!(
        merged,
        [
            taint(NOT_READY_TAINT, None, "NoExecute"),
            taint("dedicated", Some("gpu"), "NoSchedule")
        ]
    );
    assert!(is_control_plane(&BTreeMap::from([(
        MASTER_LABEL.to_string(),
        String::new()
    )])));
    assert!(!is_control_plane(&BTreeMap::new()));
}

#[test]
fn without_a_network_only_host_network_pods_start_and_cni_pods_are_known_by_owner() {
    assert!(may_start(true, false));
    assert!(!may_start(false, false));
    assert!(may_start(false, true));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "calico-node-x", "namespace": "calico-system",
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "calico-node", "uid": "1" }],
        },
        "spec": { "hostNetwork": true, "containers": [] },
    }))
    .unwrap();
    assert!(host_network(&pod));
    let cni = [("calico-system".to_string(), "calico-node".to_string())];
    assert!(is_cni_pod(&pod, &cni));
    assert!(!is_cni_pod(
        &pod,
        &[("kube-system".into(), "calico-node".into())]
    ));
    assert!(!is_cni_pod(&pod, &[]));
}
