//! The checks of a pivot's move: its journal in the workload cluster, how many steps it
//! takes, what must hold at any moment of it, and what it left in either cluster once done.
//!
//! A failed check, or a read the API server refuses, panics with the object named: these
//! are for tests, where that is the failure. The mid-move check returns its violations
//! instead, for the test to report them all.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::DynamicObject;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use strata_shared::contracts::capi::{CLUSTER, KUBEADM_CONTROL_PLANE};
use strata_shared::contracts::labels::PAUSED_BY_MOVE_ANNOTATION;
use strata_shared::contracts::names::{AGENT_NAMESPACE, pivot_journal_name};
use strata_shared::journal_maps::{JournalMapsError, read_journal};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pivot::journal::{JournalEntry, MoveJournal, MovePhase, ObjectState};

use crate::dynamic_objects::get_dynamic;

/// The pivot's journal in the workload cluster, once the move has written it.
pub async fn pivot_journal(workload: &Client, cluster: &str) -> Option<MoveJournal> {
    let map: ConfigMap = Api::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get_opt(&pivot_journal_name(cluster))
        .await
        .ok()
        .flatten()?;
    journal_of_map(workload, &map).await.ok()
}

/// The journal `map` records, with its parts read when it is split across several.
pub async fn journal_of_map(
    client: &Client,
    map: &ConfigMap,
) -> Result<MoveJournal, JournalMapsError> {
    let writer = KubeWriter::new(client.clone(), "strata-e2e", Duration::from_secs(60));
    let namespace = map.metadata.namespace.as_deref().unwrap_or(AGENT_NAMESPACE);
    read_journal(&writer.namespaced(namespace), map).await
}

/// How many steps the move takes: the pause, per group a create (and a status restore
/// when any object of it has a status subresource), a phase record, per group with an
/// object that leaves the source a delete, a phase record, and the unpause.
pub fn move_steps(journal: &MoveJournal) -> usize {
    let entry = |uid: &String| &journal.objects[uid];
    let creates: usize = journal
        .groups
        .iter()
        .map(|g| 1 + usize::from(g.iter().any(|u| entry(u).has_status)))
        .sum();
    let deletes = journal
        .groups
        .iter()
        .filter(|g| g.iter().any(|u| !entry(u).global))
        .count();
    1 + creates + 1 + deletes + 2
}

/// The moved Cluster is in the target, and not left paused.
pub async fn assert_target_unpaused(target: &Client, namespace: &str, name: &str) {
    let cluster = get_dynamic(
        target,
        CLUSTER.api_version,
        CLUSTER.kind,
        Some(namespace),
        name,
    )
    .await
    .unwrap_or_else(|| panic!("the Cluster {namespace}/{name} is not in the target"));
    assert_ne!(
        cluster.data.pointer("/spec/paused"),
        Some(&Value::Bool(true)),
        "the target is left paused"
    );
}

/// An entry's object in one cluster (the pivot keeps namespaces).
async fn get_entry(client: &Client, entry: &JournalEntry) -> Option<DynamicObject> {
    get_dynamic(
        client,
        &entry.api_version,
        &entry.kind,
        entry.namespace.as_deref(),
        &entry.name,
    )
    .await
}

/// An object's content hash as the move computes it. The scale-out after a move raises
/// the control plane's replicas; the move copied 1.
fn hash_of(object: &DynamicObject, entry: &JournalEntry) -> String {
    let mut json = serde_json::to_value(object)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", entry.describe()));
    json["apiVersion"] = json!(entry.api_version);
    json["kind"] = json!(entry.kind);
    if entry.kind == KUBEADM_CONTROL_PLANE.kind {
        json["spec"]["replicas"] = json!(1);
    }
    strata_shared::pivot::content_hash(&json)
}

fn is_cluster(entry: &JournalEntry, journal: &MoveJournal) -> bool {
    CLUSTER.is(&entry.api_version, &entry.kind) && entry.name == journal.cluster
}

fn paused(object: &DynamicObject) -> bool {
    object.data.pointer("/spec/paused") == Some(&Value::Bool(true))
}

fn paused_by_move(object: &DynamicObject) -> bool {
    paused(object) && object.annotations().contains_key(PAUSED_BY_MOVE_ANNOTATION)
}

/// What must hold at any moment of a move, checked while no agent runs (right after a
/// kill): an object is never in neither cluster; no source object is gone while a copy is
/// still missing; every copy has its source's content; the source Cluster stays paused by
/// the move, and the target's stays paused until every source object is gone; an object
/// recorded deleted is gone. Returns the violations. Sources are read before targets and
/// the journal read again last, so a move going on meanwhile cannot fake a violation.
pub async fn mid_move_violations(source: &Client, target: &Client, cluster: &str) -> Vec<String> {
    let Some(before) = pivot_journal(target, cluster).await else {
        return Vec::new();
    };
    let mut in_source = BTreeMap::new();
    for (uid, entry) in &before.objects {
        in_source.insert(uid.clone(), get_entry(source, entry).await);
    }
    let mut in_target = BTreeMap::new();
    for (uid, entry) in &before.objects {
        in_target.insert(uid.clone(), get_entry(target, entry).await);
    }
    let after = pivot_journal(target, cluster)
        .await
        .unwrap_or(before.clone());
    let mut violations = Vec::new();
    let gone = |o: &Option<DynamicObject>| {
        o.as_ref()
            .is_none_or(|o| o.metadata.deletion_timestamp.is_some())
    };
    let all_copied = in_target.values().all(Option::is_some);
    for (uid, entry) in &before.objects {
        let source_object = &in_source[uid];
        let copy = &in_target[uid];
        let what = entry.describe();
        if source_object.is_none() && copy.is_none() {
            violations.push(format!("{what} is in neither cluster"));
        }
        if gone(source_object) && !all_copied && !entry.global {
            violations.push(format!(
                "{what} left the source before every copy existed in the target"
            ));
        }
        if let Some(copy) = copy
            && !entry.global
            && hash_of(copy, entry) != entry.content_hash
        {
            violations.push(format!("{what}'s copy differs from its source"));
        }
        // Released of its finalizers, a deleted object may linger only for the moment the
        // apiserver takes to remove it.
        if entry.state == ObjectState::SourceDeleted
            && let Some(found) = source_object
            && (found.metadata.deletion_timestamp.is_none() || !found.finalizers().is_empty())
        {
            violations.push(format!(
                "{what} is recorded deleted but still in the source (finalizers {:?})",
                found.finalizers()
            ));
        }
        if is_cluster(entry, &before) {
            if before.phase >= MovePhase::Paused
                && let Some(found) = source_object
                && !gone(source_object)
                && !paused_by_move(found)
            {
                violations.push(format!("the source {what} is not paused by the move"));
            }
            if after.phase < MovePhase::SourceDeleted
                && let Some(found) = copy
                && !paused(found)
            {
                violations.push(format!(
                    "the target {what} is unpaused in phase {:?}",
                    after.phase
                ));
            }
        }
    }
    violations
}

/// Checks a finished move: the journal is done; every object exists once, in the target,
/// with the content its source had when planned, and is gone from the source (objects the
/// source keeps, identities and shared objects, are in both); the target Cluster is
/// unpaused and the source not left paused. Returns the objects checked, described.
pub async fn check_moved(source: &Client, target: &Client, cluster: &str) -> Vec<String> {
    let journal = pivot_journal(target, cluster)
        .await
        .unwrap_or_else(|| panic!("the move's journal of {cluster} is not in the target"));
    assert_eq!(journal.phase, MovePhase::Done, "the journal is not done");
    let mut checked = Vec::new();
    for entry in journal.objects.values() {
        let what = entry.describe();
        let copy = get_entry(target, entry)
            .await
            .unwrap_or_else(|| panic!("{what} is missing from the target"));
        if !entry.global {
            assert_eq!(
                hash_of(&copy, entry),
                entry.content_hash,
                "{what} differs from its source"
            );
        }
        let left = get_entry(source, entry).await;
        assert_eq!(
            left.is_some(),
            entry.global,
            "{what}: {}",
            if entry.global {
                "kept by the source, but gone from it"
            } else {
                "still in the source"
            }
        );
        if is_cluster(entry, &journal) {
            assert!(!paused(&copy), "the target {what} is left paused");
            assert!(
                left.as_ref().is_none_or(|c| !paused(c)),
                "the source {what} is left paused"
            );
        }
        checked.push(what);
    }
    checked
}

/// Checks every object of a finished move in `journal`: its copy is in the target with the
/// content its source had when planned (objects the source keeps too); objects the source
/// keeps (identities and their Secrets, shared objects) are still there, and nothing else
/// is. Returns the entries checked, described. Unlike [`check_moved`], it neither reads the
/// journal nor checks its phase or the Clusters' pause.
pub async fn check_moved_objects(
    source: &Client,
    target: &Client,
    journal: &MoveJournal,
) -> Vec<String> {
    let mut checked = Vec::new();
    for entry in journal.objects.values() {
        let copy = get_entry(target, entry)
            .await
            .unwrap_or_else(|| panic!("{} is missing from the target", entry.describe()));
        assert_eq!(
            hash_of(&copy, entry),
            entry.content_hash,
            "{} differs from its source",
            entry.describe()
        );
        let in_source = get_entry(source, entry).await;
        assert_eq!(
            in_source.is_some(),
            entry.global,
            "{}: {}",
            entry.describe(),
            if entry.global {
                "kept by the source, but gone from it"
            } else {
                "still in the source"
            }
        );
        checked.push(entry.describe());
    }
    checked
}
