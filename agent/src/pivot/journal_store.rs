//! The move journal, kept in the workload cluster's `strata-system` (the cluster that
//! survives the move in both directions): one ConfigMap, or several for a journal too large
//! for one (see `strata_shared::journal_maps`, which keeps them).
//!
//! A journal carries the pivot round it was started in (the ledger's, handed to the agent in
//! its link). A site rebuilt from a snapshot can still hold the journal of a move that ended
//! before its cluster was reclaimed; the next round's agent keeps that journal aside under
//! another name, rather than resume a move that is over.

use strata_shared::contracts::names::{AGENT_NAMESPACE, pivot_journal_name, reverse_journal_name};
use strata_shared::journal_maps::{JournalMaps, JournalMapsError};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pivot::journal::{Direction, MoveJournal};

pub use strata_shared::journal_maps::LoadedJournal;

use super::PivotError;

pub struct JournalStore {
    maps: JournalMaps,
}

impl From<JournalMapsError> for PivotError {
    fn from(e: JournalMapsError) -> PivotError {
        PivotError::JournalStore {
            name: e.journal().to_string(),
            action: e.action(),
            reason: e.reason(),
        }
    }
}

impl JournalStore {
    /// The journal of `cluster`'s move in `direction`, kept through `workload`.
    pub fn new(workload: &KubeWriter, cluster: &str, direction: Direction) -> JournalStore {
        let name = match direction {
            Direction::Pivot => pivot_journal_name(cluster),
            Direction::Reverse => reverse_journal_name(cluster),
        };
        JournalStore {
            maps: JournalMaps::new(workload.namespaced(AGENT_NAMESPACE), AGENT_NAMESPACE, &name),
        }
    }

    pub fn name(&self) -> &str {
        self.maps.name()
    }

    /// The store for a move of `round`: a journal it creates says so.
    pub fn in_round(self, round: u32) -> JournalStore {
        JournalStore {
            maps: self.maps.in_round(round),
        }
    }

    /// Keeps a journal of a round before this store's aside, so that this round's move
    /// starts anew. Returns the name it was kept under, if there was one to keep.
    pub async fn retire_earlier_round(&self) -> Result<Option<String>, PivotError> {
        Ok(self.maps.retire_earlier_round().await?)
    }

    /// The journal, its resourceVersion and its round, if a move was started.
    pub async fn load(&self) -> Result<Option<LoadedJournal>, PivotError> {
        Ok(self.maps.load().await?)
    }

    /// Writes the journal; `version` guards against a writer this agent does not know of.
    /// Returns the new resourceVersion.
    pub async fn save(
        &self,
        journal: &MoveJournal,
        version: Option<&str>,
    ) -> Result<String, PivotError> {
        Ok(self.maps.save(journal, version).await?)
    }
}
