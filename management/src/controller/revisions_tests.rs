#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// A desired state with Kubernetes `version` and `workers` machines in pool general.
fn desired(version: &str, workers: u32) -> DesiredState {
    serde_json::from_value(serde_json::json!({
        "cloudType": "sim",
        "profiles": ["sim-infra:1.0.0"],
        "kubernetesVersion": version,
        "os": {"pack": "ubuntu-sim", "version": "22.04"},
        "kubeadm": {},
        "layers": [
            {"order": 1, "name": "kubernetes", "version": version.trim_start_matches('v'),
             "layer": "k8s", "digest": format!("sha256:k8s-{version}"), "values": "pack: {}\n"},
        ],
        "nodePools": {
            "controlPlane": {"count": 1, "machine": {"cpus": 2, "memoryMib": 4096}},
            "workers": [{"name": "general", "count": workers, "machine": {"cpus": 2, "memoryMib": 4096}}],
        },
        "network": {"podCidrs": ["192.168.0.0/16"], "serviceCidrs": ["10.96.0.0/12"], "serviceDomain": "cluster.local"},
    }))
    .unwrap()
}

fn revision(number: i64, desired: DesiredState, rollback_of: Option<i64>) -> ClusterRevision {
    ClusterRevision::new(
        &revision_name("demo", number),
        ClusterRevisionSpec {
            cluster_name: "demo".into(),
            number,
            content_hash: content_hash(&desired),
            desired,
            rollback_of,
            sources: None,
        },
    )
}

/// Revision 1: 1.30 with 1 worker; 2: 1.30 with 3; 3: 1.31 with 3.
fn history() -> Vec<ClusterRevision> {
    vec![
        revision(1, desired("v1.30.2", 1), None),
        revision(2, desired("v1.30.2", 3), None),
        revision(3, desired("v1.31.0", 3), None),
    ]
}

/// What the specs of these tests are built from.
static SOURCES: RevisionSources = RevisionSources {
    cluster: String::new(),
    profiles: BTreeMap::new(),
};

fn spec(desired: &DesiredState) -> Wanted<'_> {
    Wanted::Spec {
        desired,
        constraints: &[],
        sources: &SOURCES,
    }
}

fn refused(decision: PublishDecision) -> (i64, Vec<UpgradeRule>, String) {
    match decision {
        PublishDecision::Keep {
            current,
            refused: Some(refused),
        } => (
            current.number,
            refused.violations.iter().map(|v| v.rule).collect(),
            refused.to_string(),
        ),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_first_revision_is_created_and_a_repeat_is_kept() {
    let state = desired("v1.30.2", 1);
    let PublishDecision::Create(first) = decide("demo", &[], spec(&state)).unwrap() else {
        panic!("no first revision");
    };
    assert_eq!((first.number, first.rollback_of), (1, None));
    assert_eq!(
        first.sources.as_ref(),
        Some(&SOURCES),
        "what it was built from"
    );
    let existing = vec![revision(1, state.clone(), None)];
    assert_eq!(
        decide("demo", &existing, spec(&state)).unwrap(),
        PublishDecision::Keep {
            current: existing[0].spec.clone(),
            refused: None
        }
    );
}

#[test]
fn a_rollback_republishes_the_earlier_content_as_the_next_revision() {
    let mut existing = vec![
        revision(1, desired("v1.31.0", 1), None),
        revision(2, desired("v1.31.0", 3), None),
    ];
    let first_sources = RevisionSources {
        cluster: "sha256:spec-of-1".into(),
        profiles: BTreeMap::from([("sim-infra:1.0.0".into(), "sha256:profile-of-1".into())]),
    };
    existing[0].spec.sources = Some(first_sources.clone());
    let PublishDecision::Create(next) = decide("demo", &existing, Wanted::Rollback(1)).unwrap()
    else {
        panic!("no rollback revision");
    };
    assert_eq!((next.number, next.rollback_of), (3, Some(1)));
    // It is revision 1's content, built from what revision 1 was built from.
    assert_eq!(next.sources, Some(first_sources));
    assert_eq!(next.desired, existing[0].spec.desired);
    assert_eq!(next.content_hash, existing[0].spec.content_hash);
    // Once published, asking again changes nothing.
    let mut after = existing.clone();
    after.push(revision(3, next.desired.clone(), Some(1)));
    assert!(matches!(
        decide("demo", &after, Wanted::Rollback(1)).unwrap(),
        PublishDecision::Keep { refused: None, .. }
    ));
}

#[test]
fn a_rollback_that_takes_kubernetes_down_is_refused_with_the_rule() {
    let (number, rules, message) =
        refused(decide("demo", &history(), Wanted::Rollback(2)).unwrap());
    assert_eq!(number, 3);
    assert_eq!(rules, [UpgradeRule::KubernetesNeverDown]);
    assert!(
        message.contains("1.31.0") && message.contains("1.30.2"),
        "{message}"
    );
}

#[test]
fn a_rollback_to_no_earlier_revision_is_refused_naming_the_field() {
    for (asked, expected) in [
        (7, "spec.rollbackTo is 7; the cluster has revisions 1 to 3"),
        (3, "spec.rollbackTo is 3, the revision the cluster runs"),
    ] {
        let (number, rules, message) =
            refused(decide("demo", &history(), Wanted::Rollback(asked)).unwrap());
        assert_eq!((number, rules), (3, vec![UpgradeRule::RollbackTarget]));
        assert!(message.contains(expected), "{message}");
    }
    let error = decide("demo", &[], Wanted::Rollback(1)).unwrap_err();
    assert!(
        error.to_string().contains("spec.rollbackTo is 1")
            && error.to_string().contains("no revision yet"),
        "{error}"
    );
}

#[test]
fn a_spec_change_after_a_rollback_is_the_next_revision() {
    let mut existing = history();
    existing.push(revision(4, desired("v1.31.0", 1), Some(2)));
    let next_state = desired("v1.31.0", 5);
    let PublishDecision::Create(next) = decide("demo", &existing, spec(&next_state)).unwrap()
    else {
        panic!("no new revision");
    };
    assert_eq!((next.number, next.rollback_of), (5, None));
}

#[test]
fn a_two_minor_jump_is_refused_and_the_latest_stays() {
    let jump = desired("v1.33.0", 3);
    let (number, rules, _) = refused(decide("demo", &history(), spec(&jump)).unwrap());
    assert_eq!((number, rules), (3, vec![UpgradeRule::KubernetesMinorStep]));
}

#[test]
fn the_pending_revision_is_planned_from_the_one_the_site_runs() {
    let specs: Vec<ClusterRevisionSpec> = history().into_iter().map(|r| r.spec).collect();
    let latest = &specs[2];
    assert_eq!(pending(&specs, latest, None), None, "before the pivot");
    assert_eq!(pending(&specs, latest, Some(3)), None, "runs the latest");
    let from_two = pending(&specs, latest, Some(2)).unwrap();
    assert_eq!((from_two.revision, from_two.from), (3, Some(2)));
    assert!(
        from_two.summary.contains("Kubernetes v1.30.2 → v1.31.0"),
        "{}",
        from_two.summary
    );
    let from_one = pending(&specs, latest, Some(1)).unwrap();
    assert!(
        from_one.summary.contains("pool general resized 1 → 3"),
        "{}",
        from_one.summary
    );
}

#[test]
fn a_revision_the_site_invents_gets_no_plan() {
    let specs: Vec<ClusterRevisionSpec> = history().into_iter().map(|r| r.spec).collect();
    for invented in [9, -1] {
        let pending = pending(&specs, &specs[2], Some(invented)).unwrap();
        assert_eq!(pending.from, Some(invented));
        assert!(
            pending
                .summary
                .starts_with("no plan: the cluster reports revision"),
            "{}",
            pending.summary
        );
    }
}

#[test]
fn only_a_later_revision_from_the_spec_waits_for_a_rollout() {
    let state = desired("v1.30.2", 1);
    assert!(!gated(&[], spec(&state)), "the first revision");
    assert!(gated(&history(), spec(&state)));
    assert!(!gated(&history(), Wanted::Rollback(1)), "a rollback");
}
