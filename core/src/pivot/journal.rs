//! The move journal: what a move has done so far, kept in the target cluster so that an
//! agent killed at any moment resumes the same move instead of starting another.
//!
//! The journal is the move's only memory. Every step is idempotent and is recorded after
//! it is done, so a step repeated after a crash finds its work done (an object already
//! created is recognised by name and content hash) and records it. The order of steps is
//! what keeps the invariants: no source object is deleted before every copy exists in the
//! target, and the source is never left paused by a move that is not finished.
//!
//! The executor pauses the source Cluster and marks it as paused by this move in one write,
//! before it records `Paused`: a source found paused with that mark on resume is this
//! move's own pause, to be finished, not someone else's to respect.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{MovePlan, SourceObject, content_hash};

/// Which way the objects go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Management cluster → workload cluster.
    Pivot,
    /// Workload cluster → management cluster (before the cluster is deleted).
    Reverse,
}

/// Where a move stands. Phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MovePhase {
    /// Planned; nothing touched yet.
    Planned,
    /// The source Cluster is paused; no controller acts on the source objects.
    Paused,
    /// Every object exists in the target (with its status restored).
    Created,
    /// Every (non-global) object is gone from the source.
    SourceDeleted,
    /// The target Cluster is unpaused: the move is done.
    Done,
}

/// One object's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectState {
    Pending,
    /// Exists in the target with the source's content.
    Created,
    /// Its status is written in the target too (kinds with a status subresource).
    StatusRestored,
    /// Deleted from the source (never for global objects).
    SourceDeleted,
}

/// One object of the move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub api_version: String,
    pub kind: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub source_uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_uid: Option<String>,
    /// The source's content when planned: a source object that changes during the move
    /// stops it, and the target copy must match it.
    pub content_hash: String,
    /// Has a status subresource whose status is written after the create.
    pub has_status: bool,
    /// Kept by the source (an identity and its Secret, an object shared with another
    /// cluster): created if absent, never deleted from the source.
    pub global: bool,
    pub state: ObjectState,
}

impl JournalEntry {
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    fn created(&self) -> bool {
        self.state >= ObjectState::Created
            && (!self.has_status || self.state >= ObjectState::StatusRestored)
    }
}

/// The journal of one move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveJournal {
    pub cluster: String,
    pub direction: Direction,
    pub source_namespace: String,
    pub target_namespace: String,
    pub phase: MovePhase,
    /// Creation order: groups of source UIDs; each group after all its owners.
    pub groups: Vec<Vec<String>>,
    /// By source UID.
    pub objects: BTreeMap<String, JournalEntry>,
    /// The source Cluster was paused by this move (so a paused source found on resume is
    /// this move's doing, to be finished, not someone else's pause to respect).
    #[serde(default)]
    pub paused_by_move: bool,
}

/// What the executor must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStep {
    PauseSource,
    /// Create these objects (source UIDs) in the target; they may go in parallel.
    Create(Vec<String>),
    /// Write these objects' status in the target.
    RestoreStatus(Vec<String>),
    /// Delete these objects from the source (dependents before owners).
    DeleteFromSource(Vec<String>),
    /// Nothing to do in either cluster: record the next phase.
    Advance(MovePhase),
    UnpauseTarget,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("the move journal of cluster {cluster} has no object with source UID {uid}")]
    UnknownObject { cluster: String, uid: String },
    #[error(
        "cannot delete {object} from the source of cluster {cluster}'s move: its copy does not exist in the target yet"
    )]
    DeleteBeforeCopy { cluster: String, object: String },
    #[error(
        "{object} changed in the source during cluster {cluster}'s move (content {found}, planned {planned}); the move stops and loses nothing"
    )]
    SourceChanged {
        cluster: String,
        object: String,
        planned: String,
        found: String,
    },
    #[error(
        "{object} in the target of cluster {cluster}'s move is not the source's copy (content {found}, expected {planned}); remove it or resolve the conflict"
    )]
    TargetConflict {
        cluster: String,
        object: String,
        planned: String,
        found: String,
    },
    #[error("cluster {cluster}'s move cannot go from phase {from:?} to {to:?}")]
    Phase {
        cluster: String,
        from: MovePhase,
        to: MovePhase,
    },
}

impl MoveJournal {
    /// A new journal for `plan`, recording each object's content as read in `objects`.
    pub fn from_plan(
        plan: &MovePlan,
        objects: &[SourceObject],
        direction: Direction,
        source_namespace: &str,
        target_namespace: &str,
    ) -> MoveJournal {
        let by_uid: BTreeMap<&str, &SourceObject> =
            objects.iter().map(|o| (o.uid.as_str(), o)).collect();
        let mut entries = BTreeMap::new();
        for object in plan.objects() {
            let hash = by_uid
                .get(object.uid.as_str())
                .map(|o| content_hash(&o.json))
                .unwrap_or_default();
            entries.insert(
                object.uid.clone(),
                JournalEntry {
                    api_version: object.kind.api_version.clone(),
                    kind: object.kind.kind.clone(),
                    namespace: object.namespace.clone(),
                    name: object.name.clone(),
                    source_uid: object.uid.clone(),
                    target_uid: None,
                    content_hash: hash,
                    has_status: plan.restores_status(object),
                    global: plan.is_global(object),
                    state: ObjectState::Pending,
                },
            );
        }
        MoveJournal {
            cluster: plan.cluster.name.clone(),
            direction,
            source_namespace: source_namespace.to_string(),
            target_namespace: target_namespace.to_string(),
            phase: MovePhase::Planned,
            groups: plan
                .groups
                .iter()
                .map(|g| g.iter().map(|o| o.uid.clone()).collect())
                .collect(),
            objects: entries,
            paused_by_move: false,
        }
    }

    fn entry_mut(&mut self, uid: &str) -> Result<&mut JournalEntry, JournalError> {
        let cluster = self.cluster.clone();
        self.objects
            .get_mut(uid)
            .ok_or(JournalError::UnknownObject {
                cluster,
                uid: uid.to_string(),
            })
    }

    /// The next thing to do, from what the journal says is done.
    pub fn next_step(&self) -> MoveStep {
        match self.phase {
            MovePhase::Planned => MoveStep::PauseSource,
            MovePhase::Paused => {
                for group in &self.groups {
                    let pending: Vec<String> = group
                        .iter()
                        .filter(|uid| {
                            self.objects
                                .get(*uid)
                                .is_some_and(|e| e.state < ObjectState::Created)
                        })
                        .cloned()
                        .collect();
                    if !pending.is_empty() {
                        return MoveStep::Create(pending);
                    }
                    let statuses: Vec<String> = group
                        .iter()
                        .filter(|uid| {
                            self.objects.get(*uid).is_some_and(|e| {
                                e.has_status && e.state < ObjectState::StatusRestored
                            })
                        })
                        .cloned()
                        .collect();
                    if !statuses.is_empty() {
                        return MoveStep::RestoreStatus(statuses);
                    }
                }
                MoveStep::Advance(MovePhase::Created)
            }
            MovePhase::Created => {
                for group in self.groups.iter().rev() {
                    let pending: Vec<String> = group
                        .iter()
                        .filter(|uid| {
                            self.objects
                                .get(*uid)
                                .is_some_and(|e| !e.global && e.state < ObjectState::SourceDeleted)
                        })
                        .cloned()
                        .collect();
                    if !pending.is_empty() {
                        return MoveStep::DeleteFromSource(pending);
                    }
                }
                MoveStep::Advance(MovePhase::SourceDeleted)
            }
            MovePhase::SourceDeleted => MoveStep::UnpauseTarget,
            MovePhase::Done => MoveStep::Finished,
        }
    }

    /// Whether every object has its copy in the target.
    pub fn all_created(&self) -> bool {
        self.objects.values().all(JournalEntry::created)
    }

    pub fn advance(&mut self, to: MovePhase) -> Result<(), JournalError> {
        let allowed = match to {
            MovePhase::Paused => self.phase == MovePhase::Planned,
            MovePhase::Created => self.phase == MovePhase::Paused && self.all_created(),
            MovePhase::SourceDeleted => {
                self.phase == MovePhase::Created
                    && self
                        .objects
                        .values()
                        .all(|e| e.global || e.state == ObjectState::SourceDeleted)
            }
            MovePhase::Done => self.phase >= MovePhase::Created,
            MovePhase::Planned => false,
        };
        if !allowed && self.phase != to {
            return Err(JournalError::Phase {
                cluster: self.cluster.clone(),
                from: self.phase,
                to,
            });
        }
        if to == MovePhase::Paused {
            self.paused_by_move = true;
        }
        self.phase = self.phase.max(to);
        Ok(())
    }

    /// Records a created copy. `found_hash` is the target's content: a copy that exists
    /// with other content is someone else's object, not ours to adopt.
    pub fn record_created(
        &mut self,
        uid: &str,
        target_uid: &str,
        found_hash: &str,
    ) -> Result<(), JournalError> {
        let cluster = self.cluster.clone();
        let entry = self.entry_mut(uid)?;
        if entry.content_hash != found_hash {
            return Err(JournalError::TargetConflict {
                cluster,
                object: entry.describe(),
                planned: entry.content_hash.clone(),
                found: found_hash.to_string(),
            });
        }
        entry.target_uid = Some(target_uid.to_string());
        entry.state = entry.state.max(ObjectState::Created);
        Ok(())
    }

    pub fn record_status_restored(&mut self, uid: &str) -> Result<(), JournalError> {
        let entry = self.entry_mut(uid)?;
        entry.state = entry.state.max(ObjectState::StatusRestored);
        Ok(())
    }

    /// Checks that deleting a source object is safe now: its copy exists, and the source
    /// still has the planned content (`found_hash`).
    pub fn check_delete(&self, uid: &str, found_hash: &str) -> Result<(), JournalError> {
        let entry = self.objects.get(uid).ok_or(JournalError::UnknownObject {
            cluster: self.cluster.clone(),
            uid: uid.to_string(),
        })?;
        if self.phase < MovePhase::Created || !entry.created() {
            return Err(JournalError::DeleteBeforeCopy {
                cluster: self.cluster.clone(),
                object: entry.describe(),
            });
        }
        if entry.content_hash != found_hash {
            return Err(JournalError::SourceChanged {
                cluster: self.cluster.clone(),
                object: entry.describe(),
                planned: entry.content_hash.clone(),
                found: found_hash.to_string(),
            });
        }
        Ok(())
    }

    pub fn record_source_deleted(&mut self, uid: &str) -> Result<(), JournalError> {
        let phase = self.phase;
        let cluster = self.cluster.clone();
        let entry = self.entry_mut(uid)?;
        if phase < MovePhase::Created || !entry.created() {
            return Err(JournalError::DeleteBeforeCopy {
                cluster,
                object: entry.describe(),
            });
        }
        entry.state = ObjectState::SourceDeleted;
        Ok(())
    }

    /// Source UID → target UID of every created object, for rewriting owner references.
    pub fn target_uids(&self) -> BTreeMap<String, String> {
        self.objects
            .iter()
            .filter_map(|(uid, e)| e.target_uid.clone().map(|t| (uid.clone(), t)))
            .collect()
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
