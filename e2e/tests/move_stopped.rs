//! A move that cannot go on is reported, not waited on: an object of the plan disappears
//! from the source after the plan was made and before its copy, for real (deleted from the
//! management cluster while `block-move` holds the move at its pause). The agent must say so
//! on the WorkloadCluster (`Pivoted=False`, reason `MoveStopped`, naming the object and the
//! cause), and nothing else may be lost: every other object of the plan is still in the
//! management cluster, and nothing was deleted there by the move.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::wait::eventually;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::conditions::{PIVOTED, REASON_MOVE_STOPPED};
use strata_shared::contracts::labels::BLOCK_MOVE_ANNOTATION;
use strata_shared::pivot::journal::{JournalEntry, MoveJournal, ObjectState};

use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{get_dynamic, resource};
use strata_e2e::move_checks::pivot_journal;
use strata_e2e::pivoted_cluster::ReadyToPivot;

const NAMESPACE: &str = "strata-demo";
const CLUSTER: &str = "demo";

/// The object the test takes away: one of the move's own (not shared, in the objects
/// namespace) that nothing recreates while the source Cluster is paused, in the latest group
/// so that the move has copied others before it stops. A template is what the cluster's
/// objects refer to and no controller writes.
fn object_to_take_away<'a>(journal: &'a MoveJournal, objects: &str) -> &'a JournalEntry {
    let candidates: Vec<&JournalEntry> = journal
        .groups
        .iter()
        .rev()
        .flatten()
        .filter_map(|uid| journal.objects.get(uid))
        .filter(|e| !e.global && e.namespace.as_deref() == Some(objects))
        .collect();
    candidates
        .iter()
        .find(|e| e.kind.ends_with("Template"))
        .or_else(|| candidates.iter().find(|e| e.kind == "ConfigMap"))
        .copied()
        .unwrap_or_else(|| panic!("no object to take away in the plan: {:?}", journal.objects))
}

async fn in_source(client: &Client, entry: &JournalEntry) -> Option<DynamicObject> {
    get_dynamic(
        client,
        &entry.api_version,
        &entry.kind,
        entry.namespace.as_deref(),
        &entry.name,
    )
    .await
}

#[tokio::test]
async fn an_object_gone_from_the_source_stops_the_move_and_is_reported() {
    let _stop = StopWorkloads;
    let ReadyToPivot {
        env,
        controller,
        client,
        workload,
        objects,
        ..
    } = ReadyToPivot::start("move-stopped", NAMESPACE, CLUSTER).await;
    let w = workload.client();

    // block-move holds the move at its pause, after the plan: the window in which an object
    // of the plan is taken away.
    let control_plane = format!("{CLUSTER}-control-plane");
    let kcp_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &objects,
        &resource(
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
        ),
    );
    let block = |value: serde_json::Value| json!({ "metadata": { "annotations": { BLOCK_MOVE_ANNOTATION: value } } });
    kcp_api
        .patch(
            &control_plane,
            &PatchParams::default(),
            &Patch::Merge(&block(json!("true"))),
        )
        .await
        .unwrap();
    assert!(env.run_agents_of(&objects, CLUSTER).await.unwrap());
    let kubelet = env.agents_of(&objects, CLUSTER).unwrap();
    let logs = || {
        let agents: Vec<String> = kubelet
            .processes()
            .iter()
            .map(|p| {
                format!(
                    "--- {} ---\n{}",
                    p.pod_name,
                    strata_e2e::control_plane::log_tail(&p.log, 30)
                )
            })
            .collect();
        format!(
            "--- controller ---\n{}\n{}",
            controller.log_tail(20),
            agents.join("\n")
        )
    };
    // The journal is written once the move is planned, before its first step.
    let journal = eventually("the move's plan", Duration::from_secs(180), || async {
        pivot_journal(&w, CLUSTER).await
    })
    .await;
    let taken = object_to_take_away(&journal, &objects).clone();
    let kept: Vec<&JournalEntry> = journal
        .objects
        .values()
        .filter(|e| e.source_uid != taken.source_uid)
        .collect();
    let taken_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &objects,
        &resource(&taken.api_version, &taken.kind),
    );
    taken_api
        .delete(&taken.name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the object to be gone from the source",
        Duration::from_secs(30),
        || async { in_source(&client, &taken).await.is_none().then_some(()) },
    )
    .await;
    kcp_api
        .patch(
            &control_plane,
            &PatchParams::default(),
            &Patch::Merge(&block(serde_json::Value::Null)),
        )
        .await
        .unwrap();

    // Reported: Pivoted=False, MoveStopped, with the object and the cause.
    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), NAMESPACE);
    let object = taken.describe();
    let (status, message) = eventually(
        "the Pivoted condition to say MoveStopped",
        Duration::from_secs(120),
        || async {
            let cluster = clusters.get_opt(CLUSTER).await.ok().flatten()?;
            let condition = cluster
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == PIVOTED && c.reason == REASON_MOVE_STOPPED)?;
            Some((condition.status, condition.message))
        },
    )
    .await;
    assert_eq!(status, "False", "{message}");
    assert!(
        message.contains(&object) && message.contains("is gone from the source"),
        "the MoveStopped message does not name {object} and the cause: {message}\n{}",
        logs()
    );

    // Nothing lost: every other object of the plan is still in the management cluster, and
    // the move deleted nothing there.
    for entry in &kept {
        assert!(
            in_source(&client, entry).await.is_some(),
            "{} is gone from the management cluster after the stopped move\n{}",
            entry.describe(),
            logs()
        );
    }
    let now = pivot_journal(&w, CLUSTER).await.unwrap();
    let deleted: Vec<String> = now
        .objects
        .values()
        .filter(|e| e.state == ObjectState::SourceDeleted)
        .map(JournalEntry::describe)
        .collect();
    assert!(
        deleted.is_empty(),
        "the stopped move deleted {deleted:?}\n{}",
        logs()
    );
    // Stopped for good: still stopped a retry later, never started deleting.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let cluster = clusters.get(CLUSTER).await.unwrap();
    let condition = strata_e2e::workload_cluster_status::condition(&cluster, PIVOTED);
    assert_eq!(
        (condition.0, condition.1),
        ("False", REASON_MOVE_STOPPED),
        "{}",
        condition.2
    );
    for entry in &kept {
        assert!(
            in_source(&client, entry).await.is_some(),
            "{} is gone from the management cluster",
            entry.describe()
        );
    }
    eprintln!(
        "the move stopped on {object}: {message}; {} other objects of the plan kept",
        kept.len()
    );
}
