//! The pivot executor: moves one cluster's CAPI objects from a source cluster into a
//! target cluster by the plan and journal of `strata_shared::pivot`, resumably.
//!
//! Kinds are discovered from the target's CRDs (the provider components are installed
//! there before anything moves, and the agent administers that cluster), so the agent
//! needs nothing cluster-wide in the management cluster.

mod discover;
mod journal_store;
mod steps;

use std::time::Duration;

use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::pivot::journal::{Direction, JournalError, MoveJournal, MovePhase, MoveStep};
use strata_shared::pivot::{PlanError, plan};

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
    #[error("{what} is not ready after {waited:?}: {reason}")]
    NotReady {
        what: String,
        waited: Duration,
        reason: String,
    },
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
    let kinds = discover::kinds(&sides.target, &sides.source_namespace).await?;
    if let Some((journal, version)) = store.load().await? {
        if journal.phase != MovePhase::Done {
            tracing::info!(phase = ?journal.phase, objects = journal.objects.len(), "resuming the move from its journal");
        }
        return Ok(PreparedMove {
            kinds,
            journal,
            version: Some(version),
            store,
        });
    }
    discover::preflight(&sides.source, &sides.source_namespace, &sides.cluster).await?;
    let objects = discover::snapshot(&sides.source, &sides.source_namespace, &kinds).await?;
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
        crash_point(&journal);
    }
}

/// Test fault injection: with `STRATA_MOVE_EXIT_AFTER=<n>` the agent exits at once (as if
/// killed) after performing its (n+1)-th step, before recording it. Each process so
/// records n steps and leaves one done but unrecorded, which the next process must redo:
/// a test restarting the agent reaches every step boundary both ways.
fn crash_point(journal: &MoveJournal) {
    static PERFORMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some(limit) = std::env::var("STRATA_MOVE_EXIT_AFTER")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let performed = PERFORMED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if performed > limit {
        tracing::warn!(performed, phase = ?journal.phase, "exiting mid-move (STRATA_MOVE_EXIT_AFTER)");
        std::process::exit(137);
    }
}

/// Test fault injection: with `STRATA_MOVE_WRITE_DELAY_MS=<ms>` the object-level writes of
/// the move (pause, create, status, the annotate, delete and release of a source delete,
/// unpause) go one at a time; each that succeeds is logged as a "move write" with its kind
/// and object, then followed by a pause of that long. A test watching the log can so kill
/// the agent (SIGKILL) right after any chosen write, with no other write in flight: inside
/// a group, not only at step boundaries. Without the variable it only awaits the write.
pub(crate) async fn write<T, E>(
    kind: &'static str,
    object: &str,
    write: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    static DELAY: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    static TURN: std::sync::OnceLock<futures::lock::Mutex<()>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var("STRATA_MOVE_WRITE_DELAY_MS")
            .ok()?
            .parse()
            .ok()
            .map(Duration::from_millis)
    });
    let Some(delay) = *delay else {
        return write.await;
    };
    // Parallel writes of a group would otherwise land together, and a kill after one of
    // them would not be a kill after that one only.
    let _turn = TURN
        .get_or_init(|| futures::lock::Mutex::new(()))
        .lock()
        .await;
    let result = write.await;
    if result.is_ok() {
        // The object last: the test reads it to the end of the line.
        tracing::info!(write = %kind, %object, "move write");
        tokio::time::sleep(delay).await;
    }
    result
}
