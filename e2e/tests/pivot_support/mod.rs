//! What the pivot tests share: listing a cluster's objects and machines, the loss watcher,
//! the move's journal, and the checks of what a move left in either cluster (mid-move and
//! at its end). A test using it declares `mod controller_support;` too.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use strata_shared::contracts::labels::PAUSED_BY_MOVE_ANNOTATION;
use strata_shared::contracts::names::{AGENT_NAMESPACE, pivot_journal_name, reverse_journal_name};
use strata_shared::pivot::journal::{JournalEntry, MoveJournal, MovePhase, ObjectState};

use strata_e2e::cloud_sim::workload::Workload;
use strata_e2e::management::{ControllerProcess, ManagementEnv};
use strata_e2e::wait::eventually;
use strata_shared::contracts::names::objects_namespace;

use crate::controller_support::{
    cluster, condition, describe, get_dynamic, machine_instances, resource,
};

/// A cluster's workload control plane once it runs, and its first control-plane machine
/// (name → provider ID) once it has its instance: what a pivot starts from.
pub async fn first_control_plane_node(
    env: &ManagementEnv,
    objects: &str,
    name: &str,
) -> (std::sync::Arc<Workload>, BTreeMap<String, String>) {
    let client = env.client();
    let workload = eventually(
        "the workload control plane",
        Duration::from_secs(180),
        || async { env.workload(objects, name).await.ok().flatten() },
    )
    .await;
    let machines = eventually(
        "the first control-plane machine's instance",
        Duration::from_secs(60),
        || async {
            let m = machine_instances(&client, objects).await;
            (m.len() == 1 && m.values().all(|id| !id.is_empty())).then_some(m)
        },
    )
    .await;
    (workload, machines)
}

/// The moved Cluster is in the target, and not left paused.
pub async fn assert_target_unpaused(target: &Client, namespace: &str, name: &str) {
    let cluster = get_dynamic(
        target,
        "cluster.x-k8s.io/v1beta2",
        "Cluster",
        Some(namespace),
        name,
    )
    .await
    .expect("the Cluster in the target");
    assert_ne!(
        cluster.data.pointer("/spec/paused"),
        Some(&Value::Bool(true)),
        "the target is left paused"
    );
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

/// (api version, kind, name) of the source objects watched for loss.
pub type Watched = Vec<(String, String, String)>;

/// The objects every pivot of cluster `name` moves: its Cluster, kubeconfig Secret and
/// control plane, and `machines`.
pub fn watched_objects<'a>(name: &str, machines: impl IntoIterator<Item = &'a String>) -> Watched {
    let mut watched: Watched = vec![
        (
            "cluster.x-k8s.io/v1beta2".into(),
            "Cluster".into(),
            name.into(),
        ),
        ("v1".into(), "Secret".into(), format!("{name}-kubeconfig")),
        (
            "controlplane.cluster.x-k8s.io/v1beta2".into(),
            "KubeadmControlPlane".into(),
            format!("{name}-control-plane"),
        ),
    ];
    for machine in machines {
        watched.push((
            "cluster.x-k8s.io/v1beta2".into(),
            "Machine".into(),
            machine.clone(),
        ));
    }
    watched
}

/// Polls until stopped: records any moment an object is in neither cluster.
pub fn watch_for_loss(
    source: Client,
    target: Client,
    namespace: String,
    watched: Watched,
) -> (
    tokio::task::JoinHandle<Vec<String>>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut lost = Vec::new();
        // Only what the source has had can be lost (the kubeconfig appears a moment after
        // the workload control plane does).
        let mut seen = BTreeSet::new();
        loop {
            for (api_version, kind, name) in &watched {
                let in_source = exists(&source, api_version, kind, &namespace, name).await;
                if in_source == Some(true) {
                    seen.insert(name.clone());
                }
                if in_source == Some(false) && seen.contains(name) {
                    let in_target = exists(&target, api_version, kind, &namespace, name).await;
                    if in_target == Some(false) {
                        lost.push(format!("{kind} {name} was in neither cluster"));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => return lost,
            }
        }
    });
    (task, stop)
}

/// Whether an object exists; None when the API could not say (a kind not installed yet).
pub async fn exists(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<bool> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind));
    api.get_opt(name).await.ok().map(|o| o.is_some())
}

/// A loss watcher over every object of the move: the `fixed` ones from the start, and each
/// object of the journal once the journal exists (it is written before anything is
/// touched). Every 100 ms it lists each kind in the source, and in the target for what
/// the source has had and lost: an object then in neither is a loss.
pub struct LossWatch {
    task: tokio::task::JoinHandle<Vec<String>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl LossWatch {
    pub fn start(
        source: Client,
        target: Client,
        namespace: &str,
        cluster: &str,
        fixed: Watched,
    ) -> LossWatch {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let namespace = namespace.to_string();
        let cluster = cluster.to_string();
        let task = tokio::spawn(async move {
            let mut lost = Vec::new();
            let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
            loop {
                let mut watched: BTreeSet<(String, String, String)> =
                    fixed.iter().cloned().collect();
                if let Some(journal) = pivot_journal(&target, &cluster).await {
                    watched.extend(
                        journal
                            .objects
                            .values()
                            .filter(|e| e.namespace.as_deref() == Some(namespace.as_str()))
                            .map(|e| (e.api_version.clone(), e.kind.clone(), e.name.clone())),
                    );
                }
                let kinds: BTreeSet<(String, String)> = watched
                    .iter()
                    .map(|(v, k, _)| (v.clone(), k.clone()))
                    .collect();
                for (api_version, kind) in kinds {
                    let Some(in_source) = names(&source, &namespace, &api_version, &kind).await
                    else {
                        continue;
                    };
                    let mut missing = Vec::new();
                    for key in watched
                        .iter()
                        .filter(|(v, k, _)| *v == api_version && *k == kind)
                    {
                        if in_source.contains(&key.2) {
                            seen.insert(key.clone());
                        } else if seen.contains(key) {
                            missing.push(key.2.clone());
                        }
                    }
                    if missing.is_empty() {
                        continue;
                    }
                    // Read after the source: a copy made later cannot hide a loss.
                    let Some(in_target) = names(&target, &namespace, &api_version, &kind).await
                    else {
                        continue;
                    };
                    for name in missing.iter().filter(|n| !in_target.contains(*n)) {
                        lost.push(format!("{kind} {namespace}/{name} was in neither cluster"));
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => return lost,
                }
            }
        });
        LossWatch { task, stop }
    }

    /// Stops watching; the losses seen.
    pub async fn finish(self) -> Vec<String> {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}

/// The names of a kind's objects in a namespace; None when the API could not say.
async fn names(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
) -> Option<BTreeSet<String>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind));
    let list = api.list(&ListParams::default()).await.ok()?;
    Some(list.items.iter().map(|o| o.name_any()).collect())
}

/// The pivot's journal in the workload cluster, once the move has written it.
pub async fn pivot_journal(workload: &Client, cluster: &str) -> Option<MoveJournal> {
    let map: ConfigMap = Api::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get_opt(&pivot_journal_name(cluster))
        .await
        .ok()
        .flatten()?;
    strata_shared::pivot::journal_record::journal_from(&map).ok()
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
    let mut json = serde_json::to_value(object).unwrap();
    json["apiVersion"] = json!(entry.api_version);
    json["kind"] = json!(entry.kind);
    if entry.kind == "KubeadmControlPlane" {
        json["spec"]["replicas"] = json!(1);
    }
    strata_shared::pivot::content_hash(&json)
}

fn is_cluster(entry: &JournalEntry, journal: &MoveJournal) -> bool {
    entry.kind == "Cluster"
        && entry.api_version.starts_with("cluster.x-k8s.io/")
        && entry.name == journal.cluster
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
        .expect("the move's journal");
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

/// Deleting the pivoted WorkloadCluster: the agent moves the objects back (nothing lost on
/// the way, no machine replaced), reports MovedBack, and CAPI in the management cluster
/// then deletes the cluster, after which the WorkloadCluster and its namespace are gone.
///
/// The controller is stopped while the objects move back: the agent needs nothing of it,
/// and otherwise CAPI could delete what arrives before the test has seen it. A new one,
/// with `kubeconfig`, then finishes the deletion.
pub async fn moves_back_when_deleted(
    env: &ManagementEnv,
    controller: &mut ControllerProcess,
    kubeconfig: &std::path::Path,
    ns: &str,
    name: &str,
    w: &Client,
    in_workload: &BTreeMap<String, String>,
) {
    let client = env.client();
    let objects = objects_namespace(ns, name);
    controller.kill();
    let (watcher, stop_watching) = watch_for_loss(
        w.clone(),
        client.clone(),
        objects.clone(),
        watched_objects(name, in_workload.keys()),
    );
    Api::<strata_shared::cluster::WorkloadCluster>::namespaced(client.clone(), ns)
        .delete(name, &Default::default())
        .await
        .unwrap();
    let moved_back = eventually(
        "the agent to report the objects moved back",
        Duration::from_secs(240),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let status = wc.status.as_ref()?;
            let pivoted = strata_shared::conditions::find(&status.conditions, "Pivoted")?;
            (pivoted.reason == strata_shared::contracts::conditions::REASON_MOVED_BACK)
                .then(|| wc.clone())
        },
    )
    .await;
    let _ = stop_watching.send(true);
    let lost = watcher.await.unwrap();
    assert!(lost.is_empty(), "objects were lost moving back: {lost:?}");
    assert_eq!(
        condition(&moved_back, "Pivoted").0,
        "False",
        "{}",
        describe(Some(&moved_back))
    );
    let journal: ConfigMap = Api::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(&reverse_journal_name(name))
        .await
        .unwrap();
    let journal = strata_shared::pivot::journal_record::journal_from(&journal).unwrap();
    assert_eq!(journal.phase, MovePhase::Done);
    let machines_moved = journal
        .objects
        .values()
        .filter(|e| e.kind == "Machine")
        .count();
    assert_eq!(machines_moved, in_workload.len(), "{:?}", journal.objects);
    // Every machine is back with its instance, and none is left in the workload cluster.
    assert_eq!(&machine_instances(&client, &objects).await, in_workload);
    assert!(machine_instances(w, &objects).await.is_empty());

    // CAPI in the management cluster deletes the cluster; the WorkloadCluster goes.
    let controller = ControllerProcess::start(
        kubeconfig,
        env.dir.path(),
        "controller-after-move-back",
        &[],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while cluster(&client, ns, name).await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the WorkloadCluster was not deleted after the move back: {}\n{}",
            describe(cluster(&client, ns, name).await.as_ref()),
            controller.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let namespace: Option<k8s_openapi::api::core::v1::Namespace> =
        Api::all(client.clone()).get_opt(&objects).await.unwrap();
    assert!(
        namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the objects namespace is left"
    );
}
