#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn cluster(status: serde_json::Value) -> WorkloadCluster {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "WorkloadCluster",
        "metadata": {"name": "c3", "namespace": "team"},
        "spec": {
            "cloudType": "sim",
            "profiles": [{"name": "sim-addons", "version": "1.0.0"}],
            "nodePools": {"controlPlane": {"count": 1, "machine": {"cpus": 2, "memoryMib": 4096}}, "workers": []},
        },
        "status": status,
    }))
    .unwrap()
}

/// A gate whose store holds `clusters`, filled.
fn gate_over(clusters: &[WorkloadCluster]) -> FleetGate {
    let (store, mut writer) = kube::runtime::reflector::store();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    for cluster in clusters {
        writer.apply_watcher_event(&kube::runtime::watcher::Event::InitApply(cluster.clone()));
    }
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    let gate = FleetGate::default();
    gate.watch(store);
    gate
}

fn approval_profile() -> ClusterProfile {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterProfile",
        "metadata": {"name": "sim-addons", "namespace": "strata-system", "generation": 2},
        "spec": {"type": "add-on", "version": "1.0.0", "cloudType": "all", "layers": [],
                 "rollout": {"strategy": "Approval"}},
    }))
    .unwrap()
}

/// The change is `profile`'s, paced by its policy.
fn paced_by(profile: &ClusterProfile) -> Vec<(&ClusterProfile, RolloutPolicy)> {
    vec![(profile, profile.spec.rollout.clone().unwrap_or_default())]
}

#[tokio::test]
async fn a_cluster_before_the_pivot_is_admitted_whatever_the_policy() {
    let profile = approval_profile();
    let c = cluster(serde_json::json!({"phase": "Provisioning", "revision": 1}));
    let pivoted =
        cluster(serde_json::json!({"phase": "Pivoted", "revision": 1, "appliedRevision": 1}));
    let gate = gate_over(std::slice::from_ref(&pivoted));
    assert!(gate.admit(&c, paced_by(&profile)).await.is_ok());
    let held = gate
        .admit(&pivoted, paced_by(&profile))
        .await
        .err()
        .unwrap();
    assert_eq!(held.reason(), "RolloutAwaitingApproval");
}

#[tokio::test]
async fn without_the_clusters_the_gate_holds() {
    let profile = approval_profile();
    let pivoted =
        cluster(serde_json::json!({"phase": "Pivoted", "revision": 1, "appliedRevision": 1}));
    let held = FleetGate::default()
        .admit(&pivoted, paced_by(&profile))
        .await
        .err()
        .unwrap();
    assert!(held.to_string().contains("still loading"), "{held}");
}

#[tokio::test]
async fn a_released_cluster_holds_its_place_until_its_status_shows_the_revision() {
    let mut profile = approval_profile();
    profile.spec.rollout = Some(Default::default());
    let mut c1 =
        cluster(serde_json::json!({"phase": "Pivoted", "revision": 1, "appliedRevision": 1}));
    c1.metadata.name = Some("c1".into());
    let c3 = cluster(serde_json::json!({"phase": "Pivoted", "revision": 1, "appliedRevision": 1}));
    let gate = gate_over(&[c1.clone(), c3.clone()]);
    gate.admit(&c1, paced_by(&profile))
        .await
        .ok()
        .unwrap()
        .published(2);
    let held = gate.admit(&c3, paced_by(&profile)).await.err().unwrap();
    assert!(held.to_string().contains("waiting for team/c1"), "{held}");
}
