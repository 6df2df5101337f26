//! Tests of the move journal's state machine: the order of steps, and the checks that
//! keep a crashed move from losing anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn entry(kind: &str, name: &str, uid: &str, has_status: bool, global: bool) -> JournalEntry {
    JournalEntry {
        api_version: "cluster.x-k8s.io/v1beta2".into(),
        kind: kind.into(),
        namespace: (!global).then(|| "team-a-edge".to_string()),
        name: name.into(),
        source_uid: uid.into(),
        target_uid: None,
        content_hash: format!("sha256:{uid}"),
        has_status,
        global,
        state: ObjectState::Pending,
    }
}

/// Cluster (status) → [KCP (status), Secret] → Machine (status); plus a global identity.
fn journal() -> MoveJournal {
    let objects = [
        entry("Cluster", "edge", "c", true, false),
        entry("KubeadmControlPlane", "edge-cp", "k", true, false),
        entry("Secret", "edge-kubeconfig", "s", false, false),
        entry("Machine", "edge-cp-1", "m", true, false),
        entry(
            "AWSClusterStaticIdentity",
            "strata-team-a-edge",
            "i",
            false,
            true,
        ),
    ];
    MoveJournal {
        cluster: "edge".into(),
        direction: Direction::Pivot,
        source_namespace: "team-a-edge".into(),
        target_namespace: "team-a-edge".into(),
        phase: MovePhase::Planned,
        groups: vec![
            vec!["c".into(), "i".into()],
            vec!["k".into(), "s".into()],
            vec!["m".into()],
        ],
        objects: objects
            .into_iter()
            .map(|e| (e.source_uid.clone(), e))
            .collect(),
        paused_by_move: false,
    }
}

fn uids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Runs the journal to the end, doing each step as a perfect executor would, and returns
/// the steps taken.
fn run(journal: &mut MoveJournal) -> Vec<MoveStep> {
    let mut steps = Vec::new();
    loop {
        let step = journal.next_step();
        steps.push(step.clone());
        match step {
            MoveStep::PauseSource => journal.advance(MovePhase::Paused).unwrap(),
            MoveStep::Create(list) => {
                for uid in list {
                    journal
                        .record_created(&uid, &format!("t-{uid}"), &format!("sha256:{uid}"))
                        .unwrap();
                }
            }
            MoveStep::RestoreStatus(list) => {
                for uid in list {
                    journal.record_status_restored(&uid).unwrap();
                }
            }
            MoveStep::DeleteFromSource(list) => {
                for uid in list {
                    journal
                        .check_delete(&uid, &format!("sha256:{uid}"))
                        .unwrap();
                    journal.record_source_deleted(&uid).unwrap();
                }
            }
            MoveStep::Advance(phase) => journal.advance(phase).unwrap(),
            MoveStep::UnpauseTarget => journal.advance(MovePhase::Done).unwrap(),
            MoveStep::Finished => return steps,
        }
    }
}

#[test]
fn steps_create_owners_first_and_delete_dependents_first() {
    let mut j = journal();
    let steps = run(&mut j);
    assert_eq!(
        steps,
        [
            MoveStep::PauseSource,
            MoveStep::Create(uids(&["c", "i"])),
            MoveStep::RestoreStatus(uids(&["c"])),
            MoveStep::Create(uids(&["k", "s"])),
            MoveStep::RestoreStatus(uids(&["k"])),
            MoveStep::Create(uids(&["m"])),
            MoveStep::RestoreStatus(uids(&["m"])),
            MoveStep::Advance(MovePhase::Created),
            MoveStep::DeleteFromSource(uids(&["m"])),
            MoveStep::DeleteFromSource(uids(&["k", "s"])),
            // The global identity stays in the source.
            MoveStep::DeleteFromSource(uids(&["c"])),
            MoveStep::Advance(MovePhase::SourceDeleted),
            MoveStep::UnpauseTarget,
            MoveStep::Finished,
        ]
    );
    assert!(j.paused_by_move);
    assert_eq!(j.objects["i"].state, ObjectState::Created);
    assert_eq!(j.target_uids()["k"], "t-k");
}

#[test]
fn a_journal_read_back_after_any_step_resumes_to_the_same_end() {
    // Stop after every number of steps, serialise, read back, and finish: the end state
    // is the same as an uninterrupted run's.
    let mut whole = journal();
    let total = run(&mut whole).len();
    for stop_after in 0..total {
        let mut j = journal();
        for _ in 0..stop_after {
            run_one(&mut j);
        }
        let text = serde_json::to_string(&j).unwrap();
        let mut resumed: MoveJournal = serde_json::from_str(&text).unwrap();
        run(&mut resumed);
        assert_eq!(resumed, whole, "resumed after {stop_after} steps");
    }
}

fn run_one(journal: &mut MoveJournal) -> MoveStep {
    let step = journal.next_step();
    match &step {
        MoveStep::PauseSource => journal.advance(MovePhase::Paused).unwrap(),
        MoveStep::Create(list) => {
            for uid in list {
                journal
                    .record_created(uid, &format!("t-{uid}"), &format!("sha256:{uid}"))
                    .unwrap();
            }
        }
        MoveStep::RestoreStatus(list) => {
            for uid in list {
                journal.record_status_restored(uid).unwrap();
            }
        }
        MoveStep::DeleteFromSource(list) => {
            for uid in list {
                journal.record_source_deleted(uid).unwrap();
            }
        }
        MoveStep::Advance(phase) => journal.advance(*phase).unwrap(),
        MoveStep::UnpauseTarget => journal.advance(MovePhase::Done).unwrap(),
        MoveStep::Finished => {}
    }
    step
}

#[test]
fn nothing_is_deleted_before_every_copy_exists() {
    let mut j = journal();
    j.advance(MovePhase::Paused).unwrap();
    j.record_created("c", "t-c", "sha256:c").unwrap();
    j.record_status_restored("c").unwrap();
    let early = j.check_delete("c", "sha256:c").unwrap_err();
    assert!(
        matches!(early, JournalError::DeleteBeforeCopy { .. }),
        "{early}"
    );
    assert!(j.record_source_deleted("c").is_err());
    // The phase cannot skip ahead while copies are missing.
    let skipped = j.advance(MovePhase::Created).unwrap_err();
    assert!(
        skipped
            .to_string()
            .contains("cannot go from phase Paused to Created"),
        "{skipped}"
    );
}

#[test]
fn a_changed_source_or_a_foreign_target_stops_the_move() {
    let mut j = journal();
    j.advance(MovePhase::Paused).unwrap();
    let conflict = j.record_created("s", "t-s", "sha256:other").unwrap_err();
    assert_eq!(
        conflict.to_string(),
        "Secret team-a-edge/edge-kubeconfig in the target of cluster edge's move is not the source's copy (content sha256:other, expected sha256:s); remove it or resolve the conflict"
    );
    let mut j = journal();
    run_until_created(&mut j);
    let changed = j.check_delete("k", "sha256:edited").unwrap_err();
    assert!(
        changed
            .to_string()
            .contains("KubeadmControlPlane team-a-edge/edge-cp changed in the source"),
        "{changed}"
    );
    assert!(j.check_delete("k", "sha256:k").is_ok());
    let unknown = j.record_status_restored("nope").unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("no object with source UID nope")
    );
}

fn run_until_created(j: &mut MoveJournal) {
    while j.phase < MovePhase::Created {
        run_one(j);
    }
}

#[test]
fn recording_twice_is_harmless() {
    let mut j = journal();
    j.advance(MovePhase::Paused).unwrap();
    j.advance(MovePhase::Paused).unwrap();
    j.record_created("c", "t-c", "sha256:c").unwrap();
    j.record_status_restored("c").unwrap();
    j.record_created("c", "t-c", "sha256:c").unwrap();
    assert_eq!(
        j.objects["c"].state,
        ObjectState::StatusRestored,
        "a repeat does not go back"
    );
}

#[test]
fn a_journal_from_a_plan_records_order_content_and_kinds() {
    use crate::pivot::{MoveKind, SourceObject, plan};
    use serde_json::json;
    let kinds = [
        MoveKind::from_crd(&json!({
            "metadata": { "name": "clusters.cluster.x-k8s.io", "labels": { "clusterctl.cluster.x-k8s.io": "" } },
            "spec": { "group": "cluster.x-k8s.io", "scope": "Namespaced",
                "names": { "kind": "Cluster", "plural": "clusters" },
                "versions": [{ "name": "v1beta2", "served": true, "storage": true, "subresources": { "status": {} } }] },
        }))
        .unwrap(),
        MoveKind::secret(),
    ];
    let cluster = SourceObject::from_json(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": { "name": "edge", "namespace": "ns", "uid": "u-c" },
        "spec": { "paused": false },
    }))
    .unwrap();
    let secret = SourceObject::from_json(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "edge-kubeconfig", "namespace": "ns", "uid": "u-s" },
        "data": { "value": "eA==" },
    }))
    .unwrap();
    let objects = vec![cluster.clone(), secret.clone()];
    let plan = plan("edge", "ns", &kinds, &objects).unwrap();
    let journal = MoveJournal::from_plan(&plan, &objects, Direction::Pivot, "ns", "ns");
    assert_eq!(journal.cluster, "edge");
    // The kubeconfig is soft-owned (by name), so it has no owner to wait for.
    assert_eq!(journal.groups, [["u-c", "u-s"]]);
    assert!(journal.objects["u-c"].has_status);
    assert!(!journal.objects["u-s"].has_status);
    assert_eq!(
        journal.objects["u-s"].content_hash,
        crate::pivot::content_hash(&secret.json)
    );
    assert_eq!(journal.next_step(), MoveStep::PauseSource);
}
