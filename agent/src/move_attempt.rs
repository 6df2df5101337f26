//! One attempt at moving the agent's cluster's CAPI objects, either way (the pivot in, the
//! move back out): the same sides, preparation and error reporting, so the two differ only
//! in what they check and announce before they start.

use strata_shared::contracts::conditions::REASON_MOVE_STOPPED;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pivot::journal::Direction;

use crate::management_link::ManagementLink;
use crate::pivot::{MoveSides, PreparedMove, prepare, run_move};
use crate::status_report::StatusReport;

/// A move ready to run, and the management cluster it goes from or to.
pub struct Attempt {
    pub management: KubeWriter,
    sides: MoveSides,
    pub prepared: PreparedMove,
}

fn what(direction: Direction) -> &'static str {
    match direction {
        Direction::Pivot => "the move",
        Direction::Reverse => "the move back",
    }
}

/// Reaches the management cluster and prepares the move (resuming its journal); None,
/// with the reason logged, when it is to be tried again later.
pub async fn prepare_attempt(
    workload: &KubeWriter,
    link: &ManagementLink,
    direction: Direction,
) -> Option<Attempt> {
    let management = match link.management().await {
        Ok(management) => management,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the management cluster; retrying");
            return None;
        }
    };
    let round = match link.data().await {
        Ok(data) => data.pivot_round,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the agent's link; retrying");
            return None;
        }
    };
    let (source, target) = match direction {
        Direction::Pivot => (management.clone(), workload.clone()),
        Direction::Reverse => (workload.clone(), management.clone()),
    };
    let sides = MoveSides {
        source,
        target,
        cluster: link.cluster.clone(),
        source_namespace: link.objects_namespace.clone(),
        target_namespace: link.objects_namespace.clone(),
        direction,
        journal: workload.clone(),
        round,
    };
    match prepare(&sides).await {
        Ok(prepared) => Some(Attempt {
            management,
            sides,
            prepared,
        }),
        Err(e) if e.is_waiting() => {
            tracing::info!(error = %e, "{} is not ready to start", what(direction));
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "{} cannot start; retrying", what(direction));
            None
        }
    }
}

/// Runs a prepared move to its end; true when it got there. A move stopped by an error
/// is reported on the WorkloadCluster (`MoveStopped`, with `pivoted_status` as the
/// condition's status), since the agent alone sees it.
pub async fn run_attempt(
    attempt: Attempt,
    link: &ManagementLink,
    pivoted_status: &str,
    report: &StatusReport,
) -> bool {
    let direction = attempt.sides.direction;
    match run_move(&attempt.sides, attempt.prepared).await {
        Ok(()) => true,
        Err(e) if e.is_waiting() => {
            tracing::info!(error = %e, "{} waits", what(direction));
            false
        }
        // Stopped for good (an object gone, a copy refused) or on a failed call: either is
        // reported, naming the object and the cause.
        Err(e) => {
            tracing::error!(error = %e, "{} stopped; retrying", what(direction));
            let message = format!("{} stopped (the agent retries): {e}", what(direction));
            report.set_pivoted(pivoted_status, REASON_MOVE_STOPPED, &message);
            if let Err(e) = report.send(&attempt.management, link).await {
                tracing::warn!(error = %e, "cannot report the stopped move");
            }
            false
        }
    }
}
