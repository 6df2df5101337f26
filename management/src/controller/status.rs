//! The WorkloadCluster's status as the controller sees it, written with server-side apply
//! on the status subresource. The controller sends only its own conditions; the agent
//! owns the others (Pivoted, layer states) under its own field manager.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;
use strata_shared::cluster::{ClusterPhase, PendingRevision, ReplicaCounts, WorkloadCluster};
use strata_shared::conditions::{ConditionUpdate, set_condition};
use strata_shared::kube_writer::WriteError;

use super::cluster_story::story;
use super::context::Context;

/// The status could not be written (the error names the cluster).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StatusError(#[from] WriteError);

/// What one reconcile found.
#[derive(Debug, Default)]
pub struct StatusUpdate<'a> {
    pub phase: Option<ClusterPhase>,
    pub conditions: Vec<ConditionUpdate<'a>>,
    pub revision: Option<i64>,
    pub namespace: Option<String>,
    pub control_plane: Option<ReplicaCounts>,
    pub workers: Option<ReplicaCounts>,
    pub agent_image: Option<String>,
    pub pending: Option<PendingRevision>,
}

impl<'a> StatusUpdate<'a> {
    pub fn condition(&mut self, update: ConditionUpdate<'a>) {
        self.conditions.retain(|c| c.type_ != update.type_);
        self.conditions.push(update);
    }
}

/// The status fields the controller owns.
const OWN_FIELDS: [&str; 9] = [
    "phase",
    "observedGeneration",
    "conditions",
    "revision",
    "namespace",
    "controlPlane",
    "workers",
    "agentImage",
    "pending",
];

/// Whether the cluster's status already says what `status` would (the controller's
/// conditions and fields; the agent's are not compared).
fn unchanged(
    cluster: &WorkloadCluster,
    status: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    let Some(existing) = cluster
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
    else {
        return false;
    };
    let mine: Vec<&str> = status
        .get("conditions")
        .and_then(|c| c.as_array())
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("type").and_then(|t| t.as_str()))
                .collect()
        })
        .unwrap_or_default();
    OWN_FIELDS.iter().all(|field| {
        let ours = status.get(*field);
        let theirs = existing.get(*field).filter(|v| !v.is_null());
        if *field == "conditions" {
            let theirs: Vec<&serde_json::Value> = theirs
                .and_then(|c| c.as_array())
                .map(|c| {
                    c.iter()
                        .filter(|c| {
                            c.get("type")
                                .and_then(|t| t.as_str())
                                .is_some_and(|t| mine.contains(&t))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ours: Vec<&serde_json::Value> = ours
                .and_then(|c| c.as_array())
                .map(|c| c.iter().collect())
                .unwrap_or_default();
            return ours == theirs;
        }
        ours == theirs
    })
}

pub async fn write(
    ctx: &Context,
    cluster: &WorkloadCluster,
    update: StatusUpdate<'_>,
) -> Result<(), StatusError> {
    let writer = &ctx.writer;
    // Told once the status that says it is written.
    let events = story(cluster.status.as_ref(), update.phase, &update.conditions);
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Timestamp::now();
    let mine: Vec<String> = update
        .conditions
        .iter()
        .map(|c| c.type_.to_string())
        .collect();
    for condition in update.conditions {
        set_condition(&mut conditions, condition, generation, now);
    }
    conditions.retain(|c| mine.contains(&c.type_));
    let status = json!({
        "phase": update.phase,
        "observedGeneration": generation,
        "conditions": conditions,
        "revision": update.revision,
        "namespace": update.namespace,
        "controlPlane": update.control_plane,
        "workers": update.workers,
        "agentImage": update.agent_image,
        "pending": update.pending,
    });
    // Unset fields are left out rather than sent as null.
    let status: serde_json::Map<String, serde_json::Value> = status
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if unchanged(cluster, &status) {
        // Writing the same status would only wake this cluster's reconcile again.
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "status": status,
    });
    let clusters = writer.namespaced::<WorkloadCluster>(&namespace);
    match clusters.apply_status(&name, &patch).await {
        Ok(_) => {
            ctx.story.tell(cluster, events).await;
            Ok(())
        }
        // Deleted meanwhile: nothing to report on.
        Err(e) if e.is_gone() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
