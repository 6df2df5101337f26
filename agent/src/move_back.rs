//! Deleting a pivoted cluster: its CAPI objects live here, so only the agent can hand them
//! back. When the WorkloadCluster is being deleted, the agent moves them back into the
//! cluster's namespace of the management cluster (the same engine as the pivot, in
//! reverse, with its own journal), then reports `Pivoted=False, MovedBack`, which lets
//! the controller delete the CAPI Cluster there and CAPI tear the machines down.

use std::time::Duration;

use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::conditions::{REASON_MOVED_BACK, REASON_MOVING_BACK};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pivot::journal::Direction;

use crate::management_link::ManagementLink;
use crate::move_attempt::{prepare_attempt, run_attempt};
use crate::pivot::JournalStore;
use crate::status_report::StatusReport;

const RETRY: Duration = Duration::from_secs(5);

/// Whether the objects are to move back: a move back has started already (its journal
/// exists), or they came here and the WorkloadCluster is being deleted. None when that
/// cannot be told.
pub async fn requested(workload: &KubeWriter, link: &ManagementLink) -> Option<bool> {
    let back = JournalStore::new(workload, &link.cluster, Direction::Reverse);
    if let Ok(Some(_)) = back.load().await {
        return Some(true);
    }
    // Nothing came here, so nothing goes back: the controller deletes the objects where
    // they are.
    let forth = JournalStore::new(workload, &link.cluster, Direction::Pivot);
    if let Ok(None) = forth.load().await {
        return Some(false);
    }
    deletion_requested(link).await
}

/// Whether the WorkloadCluster is being deleted; None when the management cluster cannot
/// say.
pub async fn deletion_requested(link: &ManagementLink) -> Option<bool> {
    let management = link.management().await.ok()?;
    let clusters = management.namespaced::<WorkloadCluster>(&link.cluster_namespace);
    match clusters.get(&link.cluster).await {
        Ok(Some(found)) => Some(found.metadata.deletion_timestamp.is_some()),
        // Gone without a move back (its finalizer removed by hand): the objects stay here.
        Ok(None) => Some(false),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the WorkloadCluster");
            None
        }
    }
}

/// Moves the objects back, resuming a move back a crash interrupted, and reports it done.
/// Returns once the management cluster has been told.
pub async fn move_back(workload: &KubeWriter, link: &ManagementLink, report: &StatusReport) {
    let management = loop {
        let Some(attempt) = prepare_attempt(workload, link, Direction::Reverse).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        if attempt.prepared.is_done() {
            break attempt.management;
        }
        if attempt.prepared.is_new() {
            report.set_pivoted(
                "True",
                REASON_MOVING_BACK,
                "the cluster is being deleted; the agent is moving its CAPI objects back to the management cluster",
            );
            if let Err(e) = report.send(&attempt.management, link).await {
                tracing::warn!(error = %e, "retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        let management = attempt.management.clone();
        // The objects are partly in the workload cluster until the move back ends.
        if run_attempt(attempt, link, "True", report).await {
            break management;
        }
        tokio::time::sleep(RETRY).await;
    };
    tracing::info!(cluster = %link.cluster, "the cluster's CAPI objects are back in the management cluster");
    let message = format!(
        "the CAPI objects are back in namespace {} of the management cluster, for CAPI there to delete the cluster",
        link.objects_namespace
    );
    report.set_pivoted("False", REASON_MOVED_BACK, &message);
    while let Err(e) = report.send(&management, link).await {
        tracing::warn!(error = %e, "retrying");
        tokio::time::sleep(RETRY).await;
    }
}
