//! The handshake before a move: the agent asks (its `Pivoted` condition, `MoveRequested`) and
//! moves only once the controller has recorded its grant in the cluster's ledger (an
//! annotation on the objects namespace, which the agent may read and not write). The grant and
//! the controller's decision to delete the cluster where it is exclude each other, so a
//! deletion landing at any moment has one outcome: either nothing moves, or the move was
//! granted and the objects come back before the machines are deleted.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use strata_shared::cluster::ledger::{ClusterLedger, PivotLatch};
use strata_shared::contracts::conditions::REASON_MOVE_REQUESTED;
use strata_shared::kube_writer::KubeWriter;

use crate::management_link::ManagementLink;
use crate::status_report::StatusReport;

/// How often the ledger is read while the agent waits.
const POLL: Duration = Duration::from_secs(2);
/// How long one wait lasts before the caller looks at the rest of the world again.
const WAIT: Duration = Duration::from_secs(60);

/// What the controller decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The agent may move the objects.
    Granted,
    /// The cluster is being deleted where it is: nothing may move.
    Refused,
    /// Nothing yet (or the management cluster could not be read): ask again later.
    Pending,
}

/// The decision in a ledger.
pub fn decision(ledger: &ClusterLedger) -> Grant {
    match ledger.pivot {
        PivotLatch::Granted => Grant::Granted,
        // Back for a deletion: the move is over for good.
        PivotLatch::Returned => Grant::Refused,
        PivotLatch::NotGranted | PivotLatch::Reclaimed if ledger.deletion_decided => Grant::Refused,
        // Reclaimed: the objects were restored into the management cluster; this agent
        // asks for a move of its own.
        PivotLatch::NotGranted | PivotLatch::Reclaimed => Grant::Pending,
    }
}

async fn read(management: &KubeWriter, link: &ManagementLink) -> Option<Grant> {
    let namespaces = management.cluster_scoped::<Namespace>();
    match namespaces.get(&link.objects_namespace).await {
        Ok(Some(namespace)) => Some(decision(&ClusterLedger::read(
            namespace.metadata.annotations.as_ref(),
        ))),
        Ok(None) => {
            tracing::debug!("the cluster's objects namespace, its ledger, is not there");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the cluster's ledger");
            None
        }
    }
}

/// Asks for the move and waits up to a minute for the answer.
pub async fn ask(management: &KubeWriter, link: &ManagementLink, report: &StatusReport) -> Grant {
    if let Some(decided @ (Grant::Granted | Grant::Refused)) = read(management, link).await {
        return decided;
    }
    report.set_pivoted(
        "False",
        REASON_MOVE_REQUESTED,
        "the provider components are installed; the agent waits for the controller to grant it the move of the CAPI objects",
    );
    if let Err(e) = report.send(management, link).await {
        tracing::warn!(error = %e, "cannot ask the controller for the move; retrying");
        // The caller asks again at once after Pending: not in a busy loop.
        tokio::time::sleep(POLL).await;
        return Grant::Pending;
    }
    tracing::info!("asked the controller for the move");
    let started = Instant::now();
    while started.elapsed() < WAIT {
        tokio::time::sleep(POLL).await;
        if let Some(decided @ (Grant::Granted | Grant::Refused)) = read(management, link).await {
            tracing::info!(?decided, "the controller decided");
            return decided;
        }
    }
    Grant::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_shared::cluster::ledger::{decide_deletion, grant_move, objects_returned, reclaim};

    fn ledger(pairs: &[(&str, &str)]) -> ClusterLedger {
        ClusterLedger::of_pairs(pairs)
    }

    #[test]
    fn only_a_grant_lets_the_agent_move() {
        assert_eq!(decision(&ledger(&[])), Grant::Pending);
        assert_eq!(decision(&ledger(&[grant_move()])), Grant::Granted);
        assert_eq!(decision(&ledger(&[decide_deletion()])), Grant::Refused);
        assert_eq!(
            decision(&ledger(&[objects_returned(), decide_deletion()])),
            Grant::Refused
        );
        // A reclaimed cluster's new agent asks anew, unless the cluster is being deleted.
        let [reclaimed, round] = reclaim("2");
        assert_eq!(decision(&ledger(&[reclaimed, round])), Grant::Pending);
        assert_eq!(
            decision(&ledger(&[reclaimed, round, decide_deletion()])),
            Grant::Refused
        );
        assert_eq!(decision(&ledger(&[round, grant_move()])), Grant::Granted);
    }
}
