//! The move journal, kept in a ConfigMap of the workload cluster's `strata-system` (the
//! cluster that survives the move in both directions), compressed (see
//! `strata_shared::pivot::journal_record`).
//!
//! A journal carries the pivot round it was started in (the ledger's, handed to the agent in
//! its link). A site rebuilt from a snapshot can still hold the journal of a move that ended
//! before its cluster was reclaimed; the next round's agent keeps that journal aside under
//! another name, rather than resume a move that is over.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strata_shared::contracts::labels::PIVOT_ROUND_ANNOTATION;
use strata_shared::contracts::names::{AGENT_NAMESPACE, pivot_journal_name, reverse_journal_name};
use strata_shared::kube_writer::{BoundedApi, KubeWriter};
use strata_shared::pivot::journal::{Direction, MoveJournal};
use strata_shared::pivot::journal_record::{journal_data, journal_from};

use super::PivotError;

pub struct JournalStore {
    maps: BoundedApi<ConfigMap>,
    name: String,
    /// The round a journal this store creates is of.
    round: u32,
}

/// A journal as it was read.
pub struct LoadedJournal {
    pub journal: MoveJournal,
    pub version: String,
    pub round: u32,
}

/// The round a journal's ConfigMap says it is of (journals from before rounds: the first).
pub fn round_of(map: &ConfigMap) -> u32 {
    map.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PIVOT_ROUND_ANNOTATION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
}

/// The name an earlier round's journal is kept under.
pub fn retired_name(name: &str, round: u32) -> String {
    format!("{name}-round-{round}")
}

impl JournalStore {
    /// The journal of `cluster`'s move in `direction`, kept through `workload`.
    pub fn new(workload: &KubeWriter, cluster: &str, direction: Direction) -> JournalStore {
        let name = match direction {
            Direction::Pivot => pivot_journal_name(cluster),
            Direction::Reverse => reverse_journal_name(cluster),
        };
        JournalStore {
            maps: workload.namespaced(AGENT_NAMESPACE),
            name,
            round: 1,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store for a move of `round`: a journal it creates says so.
    pub fn in_round(self, round: u32) -> JournalStore {
        JournalStore { round, ..self }
    }

    /// Keeps a journal of a round before this store's aside (copied under
    /// [`retired_name`], then removed), so that this round's move starts anew. Returns the
    /// name it was kept under, if there was one to keep.
    pub async fn retire_earlier_round(&self) -> Result<Option<String>, PivotError> {
        let Some(map) = self
            .maps
            .get(&self.name)
            .await
            .map_err(|e| self.failed("read", e.to_string()))?
        else {
            return Ok(None);
        };
        let round = round_of(&map);
        if round >= self.round {
            return Ok(None);
        }
        let kept = retired_name(&self.name, round);
        let copy = ConfigMap {
            metadata: ObjectMeta {
                name: Some(kept.clone()),
                namespace: Some(AGENT_NAMESPACE.into()),
                annotations: map.metadata.annotations.clone(),
                labels: map.metadata.labels.clone(),
                ..ObjectMeta::default()
            },
            data: map.data.clone(),
            binary_data: map.binary_data.clone(),
            ..ConfigMap::default()
        };
        // Copied before it is removed: a restart in between finds the copy made (and the
        // original still there) and goes on.
        match self.maps.create(&copy).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(self.failed("kept aside", e.to_string())),
        }
        self.maps
            .delete(&self.name)
            .await
            .map_err(|e| self.failed("removed after it was kept aside", e.to_string()))?;
        Ok(Some(format!("{AGENT_NAMESPACE}/{kept}")))
    }

    fn failed(&self, action: &'static str, reason: String) -> PivotError {
        PivotError::JournalStore {
            name: format!("{AGENT_NAMESPACE}/{}", self.name),
            action,
            reason,
        }
    }

    /// The journal, its resourceVersion and its round, if a move was started.
    pub async fn load(&self) -> Result<Option<LoadedJournal>, PivotError> {
        let Some(map) = self
            .maps
            .get(&self.name)
            .await
            .map_err(|e| self.failed("read", e.to_string()))?
        else {
            return Ok(None);
        };
        let version = map.metadata.resource_version.clone().unwrap_or_default();
        let journal = journal_from(&map).map_err(|e| self.failed("read", e.to_string()))?;
        Ok(Some(LoadedJournal {
            journal,
            version,
            round: round_of(&map),
        }))
    }

    /// Writes the journal; `version` guards against a writer this agent does not know of.
    /// Returns the new resourceVersion.
    pub async fn save(
        &self,
        journal: &MoveJournal,
        version: Option<&str>,
    ) -> Result<String, PivotError> {
        let data = journal_data(journal, version.is_none())
            .map_err(|e| self.failed("written", e.to_string()))?;
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(AGENT_NAMESPACE.into()),
                resource_version: version.map(String::from),
                annotations: Some(BTreeMap::from([(
                    PIVOT_ROUND_ANNOTATION.to_string(),
                    self.round.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            binary_data: Some(data),
            ..ConfigMap::default()
        };
        let written = match version {
            None => self.maps.create(&map).await,
            Some(_) => self.maps.replace(&map).await,
        }
        .map_err(|e| self.failed("written", e.to_string()))?;
        Ok(written.metadata.resource_version.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_without_a_round_is_of_the_first() {
        let mut map = ConfigMap::default();
        assert_eq!(round_of(&map), 1);
        map.metadata.annotations = Some(BTreeMap::from([(
            PIVOT_ROUND_ANNOTATION.to_string(),
            "3".to_string(),
        )]));
        assert_eq!(round_of(&map), 3);
        assert_eq!(
            retired_name("strata-move-edge-1-pivot", 1),
            "strata-move-edge-1-pivot-round-1"
        );
    }
}
