//! The pivot executor: moves one cluster's CAPI objects from a source cluster into a
//! target cluster by the plan and journal of `strata_shared::pivot`, resumably.
//!
//! Kinds are discovered from the target's CRDs (the provider components are installed
//! there before anything moves, and the agent administers that cluster), so the agent
//! needs nothing cluster-wide in the management cluster.

mod discover;
pub(crate) mod fault_hooks;
mod journal_store;
mod steps;

use std::time::Duration;

use strata_shared::contracts::names::AGENT_NAMESPACE;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::pivot::journal::{Direction, JournalError, MoveJournal, MovePhase, MoveStep};
use strata_shared::pivot::{PlanError, plan};

pub(crate) use discover::{kinds, resource, snapshot};
pub use journal_store::JournalStore;

#[derive(Debug, thiserror::Error)]
pub enum PivotError {
    #[error("in the {side} cluster: {source}")]
    Api {
        side: &'static str,
        #[source]
        source: WriteError,
    },
    #[error("the move of cluster {cluster} cannot be planned: {source}")]
    Plan {
        cluster: String,
        #[source]
        source: PlanError,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the move journal {name} cannot be {action}: {reason}")]
    JournalStore {
        name: String,
        action: &'static str,
        reason: String,
    },
    /// Waiting: the move may go on later by itself.
    #[error("{what} is not ready after {waited:?}: {reason}")]
    NotReady {
        what: String,
        waited: Duration,
        reason: String,
    },
    /// The move cannot go on however long it waits: it is reported, and what was done stays
    /// recorded in the journal.
    #[error("{object} {cause}; the move stops")]
    Stopped { object: String, cause: StopCause },
}

/// Why a move cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopCause {
    #[error("is gone from the source before its copy was made")]
    GoneFromSource,
    #[error("cannot be copied: its copy is not an object ({reason})")]
    CopyNotAnObject { reason: String },
    #[error("is of kind {kind}, which is not installed in the target")]
    KindNotInTarget { kind: String },
}

impl PivotError {
    /// Whether the move only waits (and is not reported as stopped).
    pub fn is_waiting(&self) -> bool {
        matches!(self, PivotError::NotReady { .. })
    }
}

/// The two clusters of a move and where the objects are in each.
pub struct MoveSides {
    pub source: KubeWriter,
    pub target: KubeWriter,
    pub cluster: String,
    pub source_namespace: String,
    pub target_namespace: String,
    pub direction: Direction,
    /// Where the journal is kept (always in the workload cluster).
    pub journal: KubeWriter,
    /// The pivot round the move is of (the agent's link says which).
    pub round: u32,
}

/// A move ready to run: its kinds and its journal (resumed or new).
pub struct PreparedMove {
    kinds: Vec<strata_shared::pivot::MoveKind>,
    journal: MoveJournal,
    version: Option<String>,
    store: JournalStore,
}

impl PreparedMove {
    /// A move not started before (no journal yet): nothing has been touched.
    pub fn is_new(&self) -> bool {
        self.version.is_none()
    }

    pub fn is_done(&self) -> bool {
        self.journal.phase == MovePhase::Done
    }
}

/// Discovers the kinds (the target must have the CAPI CRDs), then resumes the journal, or
/// checks the source is ready and plans a new move. Changes nothing.
pub async fn prepare(sides: &MoveSides) -> Result<PreparedMove, PivotError> {
    let store = JournalStore::new(&sides.journal, &sides.cluster, sides.direction);
    // Reads of both sides, side by side: in a small move they are most of the fixed cost.
    let (kinds, loaded) = tokio::try_join!(
        discover::kinds(&sides.target, &sides.source_namespace),
        store.load()
    )?;
    if let Some(loaded) = loaded {
        // The caller keeps an earlier round's journal aside before it asks for the move; one
        // still here is not resumed, nor is a new move planned over it.
        if loaded.round < sides.round {
            return Err(PivotError::JournalStore {
                name: format!("{AGENT_NAMESPACE}/{}", store.name()),
                action: "resumed",
                reason: format!(
                    "it is the journal of round {}, and this move is of round {}; it must be kept aside first",
                    loaded.round, sides.round
                ),
            });
        }
        let journal = loaded.journal;
        if journal.phase != MovePhase::Done {
            tracing::info!(phase = ?journal.phase, objects = journal.objects.len(), "resuming the move from its journal");
        }
        return Ok(PreparedMove {
            kinds,
            journal,
            version: Some(loaded.version),
            store: store.in_round(loaded.round),
        });
    }
    let store = store.in_round(sides.round);
    // The source is read while its readiness is checked; a source that was not ready at
    // once is read again once it is.
    let (ready, objects) = tokio::try_join!(
        discover::preflight(&sides.source, &sides.source_namespace, &sides.cluster),
        discover::snapshot(&sides.source, &sides.source_namespace, &kinds)
    )?;
    let objects = match ready {
        discover::Preflight::Ready => objects,
        discover::Preflight::ReadyAfterWaiting => {
            discover::snapshot(&sides.source, &sides.source_namespace, &kinds).await?
        }
    };
    let planned =
        plan(&sides.cluster, &sides.source_namespace, &kinds, &objects).map_err(|source| {
            PivotError::Plan {
                cluster: sides.cluster.clone(),
                source,
            }
        })?;
    for stay in &planned.stays {
        tracing::info!(object = %stay.object, reason = %stay.reason, "stays");
    }
    tracing::info!(
        objects = planned.len(),
        groups = planned.groups.len(),
        "planned the move"
    );
    let journal = MoveJournal::from_plan(
        &planned,
        &objects,
        sides.direction,
        &sides.source_namespace,
        &sides.target_namespace,
    );
    Ok(PreparedMove {
        kinds,
        journal,
        version: None,
        store,
    })
}

/// The plan of a move as text, changing nothing in either cluster (a dry run).
pub async fn dry_run(
    source: &KubeWriter,
    target: &KubeWriter,
    cluster: &str,
    namespace: &str,
) -> Result<String, PivotError> {
    let kinds = discover::kinds(target, namespace).await?;
    let objects = discover::snapshot(source, namespace, &kinds).await?;
    let planned =
        plan(cluster, namespace, &kinds, &objects).map_err(|source| PivotError::Plan {
            cluster: cluster.to_string(),
            source,
        })?;
    Ok(planned.describe())
}

/// Runs a prepared move to its end, recording every step in the journal.
pub async fn run_move(sides: &MoveSides, prepared: PreparedMove) -> Result<(), PivotError> {
    let PreparedMove {
        kinds,
        mut journal,
        mut version,
        store,
    } = prepared;
    let executor = steps::Executor::new(sides, &kinds);
    loop {
        version = Some(store.save(&journal, version.as_deref()).await?);
        let step = journal.next_step();
        tracing::info!(?step, phase = ?journal.phase, "move step");
        if step == MoveStep::Finished {
            return Ok(());
        }
        executor.perform(&mut journal, step).await?;
        fault_hooks::crash_point(&journal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_move_names_the_object_and_the_cause_and_does_not_wait() {
        let stopped = PivotError::Stopped {
            object: "Secret strata-wc-a/demo-ca".into(),
            cause: StopCause::GoneFromSource,
        };
        assert_eq!(
            stopped.to_string(),
            "Secret strata-wc-a/demo-ca is gone from the source before its copy was made; the move stops"
        );
        assert!(!stopped.is_waiting());
        let waiting = PivotError::NotReady {
            what: "Cluster a/demo".into(),
            waited: Duration::ZERO,
            reason: "its control plane is not initialized".into(),
        };
        assert!(waiting.is_waiting());
    }
}
