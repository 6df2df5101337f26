//! The agent's `Pivoted` condition on its WorkloadCluster: where the CAPI objects are, and
//! why a move is stuck, for operators and for the controller (which leaves the objects
//! alone while the agent holds them).

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_shared::cluster::{PIVOTED_CONDITION, WorkloadCluster};

use crate::management_link::ManagementLink;
use crate::work::FIELD_MANAGER;

/// A move stopped on an error (the message says which object and why). The agent retries;
/// the condition stays until the move ends (False for a pivot, True for a move back, since
/// the objects are still partly in the workload cluster).
pub const REASON_MOVE_STOPPED: &str = "MoveStopped";

/// Writes the condition (server-side apply; the agent owns it).
pub async fn set(
    management: &Client,
    link: &ManagementLink,
    status: &str,
    reason: &str,
    message: &str,
) -> Result<(), String> {
    let clusters: Api<WorkloadCluster> =
        Api::namespaced(management.clone(), &link.cluster_namespace);
    // The agent's apply also owns the node counts it reported: an apply without them would
    // take them away, leaving counts the schema refuses. They are sent again as they are.
    let current = clusters
        .get_status(&link.cluster)
        .await
        .map_err(|e| format!("cannot read the WorkloadCluster's status: {e}"))?
        .status
        .unwrap_or_default();
    let mut patch = json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "status": { "conditions": [{
            "type": PIVOTED_CONDITION,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": Timestamp::now().to_string(),
        }]},
    });
    if let Some(counts) = current.control_plane {
        patch["status"]["controlPlane"] = json!(counts);
    }
    if let Some(counts) = current.workers {
        patch["status"]["workers"] = json!(counts);
    }
    clusters
        .patch_status(
            &link.cluster,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot write the Pivoted condition: {e}"))
}
