#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn profile(rollout: serde_json::Value, approval: Option<&str>) -> ClusterProfile {
    let mut annotations = serde_json::Map::new();
    if let Some(approval) = approval {
        annotations.insert(APPROVAL_ANNOTATION.into(), approval.into());
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterProfile",
        "metadata": {"name": "sim-addons-1-0-0", "namespace": "strata-system", "generation": 3,
                     "annotations": annotations},
        "spec": {"name": "sim-addons", "type": "add-on", "version": "1.0.0", "cloudType": "all",
                 "layers": [], "rollout": rollout},
    }))
    .unwrap()
}

fn cluster(name: &str, status: serde_json::Value) -> WorkloadCluster {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "WorkloadCluster",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {
            "cloudType": "sim",
            "profiles": [{"name": "sim-infra", "version": "1.0.0"}, {"name": "sim-addons", "version": "1.0.0"}],
            "nodePools": {"controlPlane": {"count": 1, "machine": {"cpus": 2, "memoryMib": 4096}}, "workers": []},
        },
        "status": status,
    }))
    .unwrap()
}

fn fleet() -> Vec<WorkloadCluster> {
    vec![
        cluster(
            "c1",
            serde_json::json!({"phase": "Pivoted", "revision": 2, "appliedRevision": 2}),
        ),
        cluster(
            "c2",
            serde_json::json!({
                "phase": "Pivoted", "revision": 2, "appliedRevision": 1,
                "rollout": {"revision": 2, "step": "Layers", "state": "Failed", "message": "layer gated-chart: the gate is shut"},
            }),
        ),
        cluster(
            "c3",
            serde_json::json!({
                "phase": "Pivoted", "revision": 1, "appliedRevision": 1,
                "conditions": [{"type": "RevisionPublished", "status": "False", "reason": "RolloutPaused",
                                "message": "paused", "lastTransitionTime": "2026-12-04T10:00:00Z"}],
            }),
        ),
        cluster(
            "c4",
            serde_json::json!({"phase": "Provisioning", "revision": 1}),
        ),
    ]
}

#[test]
fn the_report_says_each_clusters_state_and_what_holds_the_next() {
    let report = report_of(&profile(serde_json::json!({}), None), &fleet());
    let states: Vec<(&str, &str)> = report
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("team/c1", "done"),
            ("team/c2", "failed"),
            ("team/c3", "held"),
            ("team/c4", "not pivoted"),
        ]
    );
    assert!(
        report.gate.contains("paused")
            && report
                .gate
                .contains("cluster team/c2 failed: Layers: layer gated-chart: the gate is shut"),
        "{}",
        report.gate
    );
    let printed = text(&report);
    assert!(printed.starts_with("profile sim-addons:1.0.0 (strata-system/sim-addons-1-0-0, generation 3)\npolicy: Automatic, 1 at a time, pause on failure\n"), "{printed}");
    // The approval of this moment acknowledges c2's failure and opens the gate.
    let token = approval_token(&profile(serde_json::json!({}), None), &fleet());
    assert_eq!(token, "g3;team/c2@r2");
    let approved = report_of(&profile(serde_json::json!({}), Some(&token)), &fleet());
    assert_eq!(approved.gate, "open");
}

#[test]
fn a_profile_without_a_policy_has_the_default_one() {
    let mut plain = profile(serde_json::json!({}), None);
    plain.spec.rollout = None;
    let report = report_of(&plain, &fleet());
    assert_eq!(report.policy, RolloutPolicy::default());
    assert!(report.default_policy);
    let shown = text(&report);
    assert!(
        shown.contains("policy: Automatic, 1 at a time, pause on failure (the default: the profile sets no spec.rollout)"),
        "{shown}"
    );
    // Its failures are acknowledged like those of any policy.
    assert!(approval_token(&plain, &fleet()).starts_with('g'));
}

#[test]
fn an_unknown_or_ambiguous_version_is_an_error_naming_it() {
    let args = |version: &str, namespace: Option<&str>| RolloutArgs {
        name: "sim-addons".into(),
        version: version.into(),
        namespace: namespace.map(str::to_string),
        approve: false,
        kubeconfig: None,
        output: OutputFormat::Text,
    };
    let one = profile(serde_json::json!({}), None);
    let mut other = one.clone();
    other.metadata.namespace = Some("team".into());
    let profiles = vec![one, other];
    let missing = the_profile(&profiles, &args("9.9.9", None))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no published version \"9.9.9\""),
        "{missing}"
    );
    let ambiguous = the_profile(&profiles, &args("1.0.0", None))
        .unwrap_err()
        .to_string();
    assert!(
        ambiguous.contains("several namespaces (strata-system, team)"),
        "{ambiguous}"
    );
    let chosen = the_profile(&profiles, &args("1.0.0", Some("team"))).unwrap();
    assert_eq!(chosen.namespace().as_deref(), Some("team"));
}
