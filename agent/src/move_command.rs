//! `strata-agent move`: one cluster's move run by hand, with the agent's own engine and
//! journal, so a move that stops half-way is continued by running the same command again.
//!
//! Progress comes from the journal itself: the executor saves it before every step, so a
//! watch on it sees each step as it starts without the executor knowing it is watched.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::oneshot;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::names::AGENT_NAMESPACE;
use strata_shared::journal_maps;
use strata_shared::kube_writer::{BoundedApi, KubeWriter, WriteError};
use strata_shared::pivot::journal::{Direction, MoveJournal, MovePhase, MoveStep, ObjectState};

use crate::pivot::{self, JournalStore, MoveSides, PivotError};

/// How long the report may lag behind a finished move before the command ends anyway.
const REPORT_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum MoveCommandError {
    #[error("in the target cluster, where the move journal is kept: {0}")]
    JournalNamespace(#[source] WriteError),
    #[error(
        "Cluster {namespace}/{cluster} ({api_version}) is not in the source cluster, and no move of it was started",
        api_version = CLUSTER.api_version
    )]
    ClusterNotFound { namespace: String, cluster: String },
    #[error("in the source cluster: {0}")]
    ReadCluster(#[source] WriteError),
    #[error("the move of Cluster {namespace}/{cluster} cannot start: {source}")]
    Prepare {
        namespace: String,
        cluster: String,
        #[source]
        source: PivotError,
    },
    #[error(
        "the move of Cluster {namespace}/{cluster} stopped after {elapsed:.1?}: {source} (what was done is in the journal; the same command continues the move)"
    )]
    Move {
        namespace: String,
        cluster: String,
        elapsed: Duration,
        #[source]
        source: PivotError,
    },
    #[error("the journal of the move of Cluster {namespace}/{cluster} {reason}")]
    Journal {
        namespace: String,
        cluster: String,
        reason: String,
    },
}

/// Moves Cluster `namespace/cluster` and what belongs to it from `source` into the same
/// namespace of `target`, printing the plan, each step and the end.
pub async fn run(
    source: KubeWriter,
    target: KubeWriter,
    namespace: &str,
    cluster: &str,
) -> Result<(), MoveCommandError> {
    let started = Instant::now();
    println!("moving Cluster {namespace}/{cluster} into the target cluster");
    ensure_journal_namespace(&target).await?;
    check_cluster_exists(&source, &target, namespace, cluster).await?;
    let sides = MoveSides {
        source,
        target: target.clone(),
        cluster: cluster.to_string(),
        source_namespace: namespace.to_string(),
        target_namespace: namespace.to_string(),
        direction: Direction::Pivot,
        journal: target.clone(),
        // A move by hand is outside Strata's ledger and its rounds.
        round: 1,
    };
    let prepared = pivot::prepare(&sides)
        .await
        .map_err(|source| MoveCommandError::Prepare {
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            source,
        })?;
    let (finished, outcome) = oneshot::channel();
    let moving = async {
        let result = pivot::run_move(&sides, prepared).await;
        let _ = finished.send(result.is_ok());
        result
    };
    let (result, reported) =
        tokio::join!(moving, report(target.clone(), cluster, started, outcome));
    result.map_err(|source| MoveCommandError::Move {
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
        elapsed: started.elapsed(),
        source,
    })?;
    let journal = match reported {
        Some(journal) => journal,
        None => read_journal(&target, namespace, cluster).await?,
    };
    println!(
        "moved {} objects in {} groups of Cluster {namespace}/{cluster} in {:.2} s",
        journal.objects.len(),
        journal.groups.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The journal store writes into `strata-system` but does not create it: in a workload
/// cluster the agent's installation has made it, a target given by hand may lack it.
async fn ensure_journal_namespace(target: &KubeWriter) -> Result<(), MoveCommandError> {
    let namespaces = target.cluster_scoped::<Namespace>();
    if namespaces
        .get(AGENT_NAMESPACE)
        .await
        .map_err(MoveCommandError::JournalNamespace)?
        .is_some()
    {
        return Ok(());
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(AGENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create_or_adopt(&namespace)
        .await
        .map_err(MoveCommandError::JournalNamespace)?;
    tracing::info!(
        namespace = AGENT_NAMESPACE,
        "the journal's namespace is in the target"
    );
    Ok(())
}

/// The engine's preflight waits up to ten minutes for a Cluster that is not ready, which
/// suits an agent whose cluster is still being provisioned; a name mistyped by hand should
/// fail at once. A missing Cluster is fine when a journal exists: a resumed move may have
/// deleted it from the source already.
async fn check_cluster_exists(
    source: &KubeWriter,
    target: &KubeWriter,
    namespace: &str,
    cluster: &str,
) -> Result<(), MoveCommandError> {
    let clusters = source.dynamic(&CLUSTER.api_resource(), Some(namespace));
    let found = match clusters.get(cluster).await {
        Ok(found) => found.is_some(),
        // The kind itself is not served: no Cluster of that name either.
        Err(e) if e.is_gone() => false,
        Err(e) => return Err(MoveCommandError::ReadCluster(e)),
    };
    if found {
        return Ok(());
    }
    match JournalStore::new(target, cluster, Direction::Pivot)
        .load()
        .await
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(MoveCommandError::ClusterNotFound {
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
        }),
        Err(e) => Err(MoveCommandError::Journal {
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            reason: format!("cannot be read: {e}"),
        }),
    }
}

async fn read_journal(
    target: &KubeWriter,
    namespace: &str,
    cluster: &str,
) -> Result<MoveJournal, MoveCommandError> {
    let failed = |reason: String| MoveCommandError::Journal {
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
        reason,
    };
    match JournalStore::new(target, cluster, Direction::Pivot)
        .load()
        .await
    {
        Ok(Some(loaded)) => Ok(loaded.journal),
        Ok(None) => Err(failed("is gone from the target after the move".into())),
        Err(e) => Err(failed(format!("cannot be read: {e}"))),
    }
}

/// This cluster's pivot journal, if `map` holds it (with its parts, read through `maps`,
/// when it is split). Recognised by content rather than by name, so the report does not
/// depend on how the store names its ConfigMap. A split journal whose parts a newer save
/// swept meanwhile is skipped: the newer version is on its way.
async fn journal_in(
    maps: &BoundedApi<ConfigMap>,
    map: &ConfigMap,
    cluster: &str,
) -> Option<MoveJournal> {
    journal_maps::read_journal(maps, map)
        .await
        .ok()
        .filter(|j| j.cluster == cluster && j.direction == Direction::Pivot)
}

/// Prints each journal version as the step it starts, until the move is done (returning
/// the last journal), failed, or finished without the report catching up.
async fn report(
    target: KubeWriter,
    cluster: &str,
    started: Instant,
    mut outcome: oneshot::Receiver<bool>,
) -> Option<MoveJournal> {
    // A watch: the one call the writer does not make.
    let api: Api<ConfigMap> = Api::namespaced(target.client().clone(), AGENT_NAMESPACE);
    let parts: BoundedApi<ConfigMap> = target.namespaced(AGENT_NAMESPACE);
    let mut maps = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    let mut progress = Progress::new(started);
    let mut give_up_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            next = maps.next() => match next {
                Some(Ok(map)) => {
                    if let Some(journal) = journal_in(&parts, &map, cluster).await {
                        progress.show(&journal);
                        if journal.phase == MovePhase::Done {
                            return Some(journal);
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot watch the move journal; progress is not shown");
                    return None;
                }
                None => return None,
            },
            succeeded = &mut outcome, if give_up_at.is_none() => match succeeded {
                Ok(true) => give_up_at = Some(tokio::time::Instant::now() + REPORT_GRACE),
                _ => return None,
            },
            _ = tokio::time::sleep_until(give_up_at.unwrap_or_else(tokio::time::Instant::now)), if give_up_at.is_some() => {
                return None;
            }
        }
    }
}

struct Progress {
    started: Instant,
    summarized: bool,
    last: Option<(MovePhase, MoveStep)>,
    steps: usize,
}

impl Progress {
    fn new(started: Instant) -> Progress {
        Progress {
            started,
            summarized: false,
            last: None,
            steps: 0,
        }
    }

    fn show(&mut self, journal: &MoveJournal) {
        if !self.summarized {
            self.summarized = true;
            summarize(journal);
        }
        let step = journal.next_step();
        let key = (journal.phase, step.clone());
        // The executor saves the journal again on resuming, unchanged.
        if self.last.as_ref() == Some(&key) {
            return;
        }
        self.last = Some(key);
        if step == MoveStep::Finished {
            return;
        }
        self.steps += 1;
        println!(
            "[{:>7.2} s] step {}: {}",
            self.started.elapsed().as_secs_f64(),
            self.steps,
            describe(journal, &step)
        );
    }
}

fn summarize(journal: &MoveJournal) {
    let objects = journal.objects.values();
    let statuses = objects.clone().filter(|e| e.has_status).count();
    let shared = objects.clone().filter(|e| e.global).count();
    println!(
        "plan: {} objects in {} groups, {statuses} with a status to restore, {shared} shared (created if absent, never deleted)",
        journal.objects.len(),
        journal.groups.len(),
    );
    for (i, group) in journal.groups.iter().enumerate() {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in group.iter().filter_map(|uid| journal.objects.get(uid)) {
            *kinds.entry(entry.kind.as_str()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("  group {}: {}", i + 1, kinds.join(", "));
    }
    let created = objects
        .clone()
        .filter(|e| e.state >= ObjectState::Created)
        .count();
    if journal.phase != MovePhase::Planned || created > 0 {
        let deleted = objects
            .filter(|e| e.state == ObjectState::SourceDeleted)
            .count();
        println!(
            "resuming from the journal: phase {:?}, {created} of {} created, {deleted} deleted from the source",
            journal.phase,
            journal.objects.len()
        );
    }
}

fn describe(journal: &MoveJournal, step: &MoveStep) -> String {
    let group_of = |list: &[String]| {
        let index = list
            .first()
            .and_then(|uid| journal.groups.iter().position(|g| g.contains(uid)))
            .map_or(0, |i| i + 1);
        format!("group {index}/{}", journal.groups.len())
    };
    match step {
        MoveStep::PauseSource => {
            "pause the source Cluster (and wait while an object carries block-move)".into()
        }
        MoveStep::Create(list) => format!(
            "create {} objects of {} in the target",
            list.len(),
            group_of(list)
        ),
        MoveStep::RestoreStatus(list) => format!(
            "restore the status of {} objects of {}",
            list.len(),
            group_of(list)
        ),
        MoveStep::DeleteFromSource(list) => format!(
            "delete {} objects of {} from the source",
            list.len(),
            group_of(list)
        ),
        MoveStep::Advance(phase) => format!("record phase {phase:?}"),
        MoveStep::UnpauseTarget => "unpause the target Cluster".into(),
        MoveStep::Finished => "finished".into(),
    }
}
