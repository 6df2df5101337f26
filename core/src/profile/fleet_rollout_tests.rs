#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Clusters c1..c5, all pivoted and at revision 1.
fn fleet() -> Vec<FleetMember> {
    (1..=5)
        .map(|i| FleetMember {
            key: format!("team/c{i}"),
            pivoted: true,
            published: Some(1),
            applied: Some(1),
            failure: None,
            held: false,
        })
        .collect()
}

fn gate<'a>(
    policy: &'a RolloutPolicy,
    members: &'a [FleetMember],
    approval: Option<&'a str>,
    released: &'a BTreeSet<String>,
) -> RolloutGate<'a> {
    RolloutGate {
        profile: "sim-addons:1.0.0".into(),
        policy,
        generation: 2,
        approval,
        members,
        released,
    }
}

#[test]
fn one_at_a_time_releases_the_next_cluster_only_when_the_last_is_done() {
    let policy = RolloutPolicy::default();
    let none = BTreeSet::new();
    let mut members = fleet();
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c1"),
        Ok(())
    );
    // c1 published revision 2 and is applying it: c2 waits, c1 itself may go on.
    members[0].published = Some(2);
    let held = gate(&policy, &members, None, &none)
        .decide("team/c2")
        .unwrap_err();
    assert_eq!(held.reason(), "RolloutWaiting");
    assert!(held.to_string().contains("waiting for team/c1"), "{held}");
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c1"),
        Ok(())
    );
    // Released by this controller but its status not caught up: still holds the place.
    let released = BTreeSet::from(["team/c1".to_string()]);
    members[0].applied = Some(2);
    assert!(
        gate(&policy, &members, None, &released)
            .decide("team/c2")
            .is_err()
    );
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c2"),
        Ok(())
    );
}

#[test]
fn max_in_flight_lets_that_many_go_together() {
    let policy = RolloutPolicy {
        max_in_flight: Some(2),
        ..RolloutPolicy::default()
    };
    let none = BTreeSet::new();
    let mut members = fleet();
    members[0].published = Some(2);
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c2"),
        Ok(())
    );
    members[1].published = Some(2);
    assert!(
        gate(&policy, &members, None, &none)
            .decide("team/c3")
            .is_err()
    );
}

#[test]
fn a_failure_pauses_the_rollout_until_an_approval_acknowledges_it() {
    let policy = RolloutPolicy::default();
    let none = BTreeSet::new();
    let mut members = fleet();
    members[2].published = Some(2);
    members[2].failure = Some("Layers: gated-chart Failed".into());
    let held = gate(&policy, &members, None, &none)
        .decide("team/c4")
        .unwrap_err();
    assert_eq!(held.reason(), "RolloutPaused");
    let text = held.to_string();
    assert!(
        text.contains("cluster team/c3 failed: Layers: gated-chart Failed")
            && text.contains("strata profile rollout sim-addons --version 1.0.0 --approve"),
        "{text}"
    );
    // The failed cluster itself is not held by its own failure: its next revision is
    // how it is fixed.
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c3"),
        Ok(())
    );
    let token = gate(&policy, &members, None, &none).approval_token();
    assert_eq!(token, "g2;team/c3@r2");
    // Acknowledged: the failed cluster no longer holds the one place, the rest go on.
    assert_eq!(
        gate(&policy, &members, Some(&token), &none).decide("team/c4"),
        Ok(())
    );
    // Trying again, its site says nothing failed for a while: it still holds no place.
    members[2].failure = None;
    assert_eq!(
        gate(&policy, &members, Some(&token), &none).decide("team/c4"),
        Ok(())
    );
    members[2].failure = Some("Layers: gated-chart Failed".into());
    // The same cluster failing its next revision pauses again.
    members[2].published = Some(3);
    assert!(
        gate(&policy, &members, Some(&token), &none)
            .decide("team/c4")
            .is_err()
    );
    let again = gate(&policy, &members, Some(&token), &none).approval_token();
    assert_eq!(again, "g2;team/c3@r2;team/c3@r3");
}

#[test]
fn without_pause_on_failure_a_failed_cluster_only_holds_its_place() {
    let policy = RolloutPolicy {
        pause_on_failure: Some(false),
        max_in_flight: Some(2),
        ..RolloutPolicy::default()
    };
    let none = BTreeSet::new();
    let mut members = fleet();
    members[2].published = Some(2);
    members[2].failure = Some("Workers: no machine".into());
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c4"),
        Ok(())
    );
}

#[test]
fn the_approval_strategy_waits_for_the_current_generation() {
    let policy = RolloutPolicy {
        strategy: RolloutStrategy::Approval,
        ..RolloutPolicy::default()
    };
    let none = BTreeSet::new();
    let members = fleet();
    let held = gate(&policy, &members, None, &none)
        .decide("team/c1")
        .unwrap_err();
    assert_eq!(held.reason(), "RolloutAwaitingApproval");
    assert!(held.to_string().contains("\"g2\""), "{held}");
    // An approval of an earlier generation approves nothing now.
    assert!(
        gate(&policy, &members, Some("g1"), &none)
            .decide("team/c1")
            .is_err()
    );
    assert_eq!(
        gate(&policy, &members, Some("g2"), &none).decide("team/c1"),
        Ok(())
    );
}

#[test]
fn clusters_before_the_pivot_and_garbage_approvals_hold_nothing() {
    let policy = RolloutPolicy::default();
    let none = BTreeSet::new();
    let mut members = fleet();
    members[0].pivoted = false;
    members[0].published = Some(2);
    members[0].applied = None;
    for approval in [None, Some(""), Some("yes please"), Some("g;;;")] {
        assert_eq!(
            gate(&policy, &members, approval, &none).decide("team/c2"),
            Ok(()),
            "{approval:?}"
        );
    }
}

fn cluster_with(status: serde_json::Value) -> WorkloadCluster {
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

#[test]
fn a_failed_step_or_layer_of_the_published_revision_is_a_failure() {
    let failed_step = FleetMember::of(
        &cluster_with(serde_json::json!({
            "phase": "Pivoted", "revision": 2, "appliedRevision": 1,
            "rollout": {"revision": 2, "step": "Workers", "state": "Failed", "message": "no machine"},
        })),
        "sim-addons:1.0.0",
    );
    assert_eq!(failed_step.key, "team/c3");
    assert_eq!(failed_step.failure.as_deref(), Some("Workers: no machine"));
    let failed_layer = FleetMember::of(
        &cluster_with(serde_json::json!({
            "phase": "Pivoted", "revision": 2, "appliedRevision": 1,
            "rollout": {"revision": 2, "step": "Layers", "state": "InProgress"},
            "layers": [
                {"name": "hello-chart", "version": "0.4.0", "state": "Ready"},
                {"name": "gated-chart", "version": "1.0.0", "state": "Failed", "message": "the gate is shut"},
            ],
        })),
        "sim-addons:1.0.0",
    );
    assert_eq!(
        failed_layer.failure.as_deref(),
        Some("Layers: layer gated-chart 1.0.0 failed: the gate is shut")
    );
    assert!(failed_layer.pivoted);
    assert_eq!(
        (failed_layer.published, failed_layer.applied),
        (Some(2), Some(1))
    );
}

#[test]
fn a_report_about_another_revision_is_no_failure_of_this_one() {
    let stale = FleetMember::of(
        &cluster_with(serde_json::json!({
            "phase": "Pivoted", "revision": 3, "appliedRevision": 1,
            "rollout": {"revision": 2, "step": "Workers", "state": "Failed", "message": "old"},
        })),
        "sim-addons:1.0.0",
    );
    assert_eq!(stale.failure, None);
}

#[test]
fn a_cluster_uses_a_profile_by_name_and_version() {
    let c = cluster_with(serde_json::json!({}));
    let profile = |name: &str, version: &str| -> ClusterProfile {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterProfile",
            "metadata": {"name": "sim-addons-x", "namespace": "strata-system"},
            "spec": {"name": name, "type": "add-on", "version": version, "cloudType": "all", "layers": []},
        }))
        .unwrap()
    };
    assert!(uses(&c, &profile("sim-addons", "1.0.0")));
    assert!(!uses(&c, &profile("sim-addons", "1.1.0")));
    assert!(!uses(&c, &profile("sim-infra", "1.0.0")));
}

#[test]
fn held_clusters_go_in_name_order() {
    let policy = RolloutPolicy::default();
    let none = BTreeSet::new();
    let mut members = fleet();
    for m in &mut members {
        m.held = true;
    }
    // c1 goes first; c2 waits for it although nothing is applying.
    assert_eq!(
        gate(&policy, &members, None, &none).decide("team/c1"),
        Ok(())
    );
    let held = gate(&policy, &members, None, &none)
        .decide("team/c2")
        .unwrap_err();
    assert!(held.to_string().contains("waiting for team/c1"), "{held}");
    // Two places: c2 may go beside c1, c3 waits for both.
    let two = RolloutPolicy {
        max_in_flight: Some(2),
        ..RolloutPolicy::default()
    };
    assert_eq!(gate(&two, &members, None, &none).decide("team/c2"), Ok(()));
    assert!(gate(&two, &members, None, &none).decide("team/c3").is_err());
}

#[test]
fn a_hold_names_the_rollout_it_belongs_to() {
    let c = cluster_with(serde_json::json!({
        "phase": "Pivoted", "revision": 1, "appliedRevision": 1,
        "conditions": [{"type": "RevisionPublished", "status": "False", "reason": "RolloutWaiting",
                        "message": "the change waits and revision 1 stays in force: the rollout of profile sim-addons:1.0.0 applies 1 cluster(s) at a time, in name order; waiting for team/c1",
                        "lastTransitionTime": "2026-12-04T10:00:00Z"}],
    }));
    assert!(FleetMember::of(&c, "sim-addons:1.0.0").held);
    assert!(!FleetMember::of(&c, "sim-infra:1.0.0").held);
    assert!(!FleetMember::of(&c, "sim-addons:1.0.1").held);
}

#[test]
fn a_sites_failure_text_is_bounded_before_it_reaches_other_clusters() {
    let huge = "é".repeat(100_000);
    let hostile = cluster_with(serde_json::json!({
        "phase": "Pivoted", "revision": 2, "appliedRevision": 1,
        "rollout": {"revision": 2, "step": "Layers", "state": "Failed", "message": huge},
    }));
    let failure = FleetMember::of(&hostile, "sim-addons:1.0.0")
        .failure
        .unwrap();
    assert!(
        failure.len() <= FAILURE_TEXT_LIMIT + "… (cut)".len(),
        "{}",
        failure.len()
    );
    assert!(failure.starts_with("Layers: éé") && failure.ends_with("… (cut)"));
    let members = vec![FleetMember::of(&hostile, "sim-addons:1.0.0")];
    let policy = RolloutPolicy::default();
    let none = BTreeSet::new();
    let hold = gate(&policy, &members, None, &none)
        .decide("team/c4")
        .unwrap_err();
    assert!(hold.to_string().len() < 1_000, "{}", hold.to_string().len());
}

fn profile_named(
    name: &str,
    layers: serde_json::Value,
    rollout: serde_json::Value,
) -> ClusterProfile {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterProfile",
        "metadata": {"name": name, "namespace": "strata-system"},
        "spec": {"type": "add-on", "version": "1.0.0", "cloudType": "all", "layers": layers,
                 "rollout": rollout},
    }))
    .unwrap()
}

fn names(paced: &[(&ClusterProfile, RolloutPolicy)]) -> Vec<String> {
    paced.iter().map(|(p, _)| rollout_name(p)).collect()
}

#[test]
fn only_the_profiles_whose_change_it_is_pace_a_revision() {
    let addons = |version: &str| {
        profile_named(
            "addons",
            serde_json::json!([{"name": "hello", "version": version}]),
            serde_json::Value::Null,
        )
    };
    let infra = profile_named(
        "infra",
        serde_json::json!([]),
        serde_json::json!({"strategy": "Approval"}),
    );
    let mut cluster = cluster_with(serde_json::json!({}));
    let before_profiles = vec!["addons:1.0.0".to_string(), "infra:1.0.0".to_string()];
    let before = RevisionSources::of(&cluster, &[addons("1.0.0"), infra.clone()]);

    // The add-on profile edited in place: its rollout paces the change, with the default
    // policy since it has none (one at a time, pause on a failure).
    let edited = [addons("1.1.0"), infra.clone()];
    let now = RevisionSources::of(&cluster, &edited);
    let paced = gating(Some(&before), &before_profiles, &now, &edited);
    assert_eq!(names(&paced), ["addons:1.0.0"]);
    assert_eq!(paced[0].1, RolloutPolicy::default());
    assert_eq!(paced[0].1.max_in_flight(), 1);
    assert!(paced[0].1.pause_on_failure());

    // A new rollout policy alone is no change of the profile's content.
    let mut retuned = infra.clone();
    retuned.spec.rollout = Some(RolloutPolicy::default());
    assert_eq!(
        RevisionSources::of(&cluster, &[addons("1.0.0"), retuned]),
        before
    );

    // The cluster's own change (more workers): no rollout paces it, and neither does
    // setting rollbackTo (a rollback is published from the earlier revision).
    let same = [addons("1.0.0"), infra.clone()];
    cluster.spec.rollback_to = Some(1);
    assert_eq!(RevisionSources::of(&cluster, &same), before);
    cluster.spec.rollback_to = None;
    cluster.spec.node_pools.control_plane.count = 3;
    let own = RevisionSources::of(&cluster, &same);
    assert!(gating(Some(&before), &before_profiles, &own, &same).is_empty());

    // Neither the cluster nor its profiles changed, yet the content did (a pack pushed
    // again under its version): every profile it uses paces it.
    let unchanged = RevisionSources::of(&cluster_with(serde_json::json!({})), &same);
    assert_eq!(
        names(&gating(Some(&before), &before_profiles, &unchanged, &same)),
        ["addons:1.0.0", "infra:1.0.0"]
    );

    // A profile version the cluster did not use before is the operator's move of this one
    // cluster: not paced. A revision that recorded nothing is paced by all it used.
    let only_infra = vec!["infra:1.0.0".to_string()];
    assert!(
        gating(Some(&before), &only_infra, &now, &edited)
            .iter()
            .all(|(p, _)| rollout_name(p) != "addons:1.0.0")
    );
    assert_eq!(
        names(&gating(None, &before_profiles, &now, &edited)),
        ["addons:1.0.0", "infra:1.0.0"]
    );
}
