//! The move journal, kept in a ConfigMap of the workload cluster's `strata-system` (the
//! cluster that survives the move in both directions), compressed (see
//! `strata_shared::pivot::journal_record`).

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strata_shared::contracts::names::{AGENT_NAMESPACE, pivot_journal_name, reverse_journal_name};
use strata_shared::kube_writer::{BoundedApi, KubeWriter};
use strata_shared::pivot::journal::{Direction, MoveJournal};
use strata_shared::pivot::journal_record::{journal_data, journal_from};

use super::PivotError;

pub struct JournalStore {
    maps: BoundedApi<ConfigMap>,
    name: String,
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
        }
    }

    fn failed(&self, action: &'static str, reason: String) -> PivotError {
        PivotError::JournalStore {
            name: format!("{AGENT_NAMESPACE}/{}", self.name),
            action,
            reason,
        }
    }

    /// The journal and its resourceVersion, if a move was started.
    pub async fn load(&self) -> Result<Option<(MoveJournal, String)>, PivotError> {
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
        Ok(Some((journal, version)))
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
