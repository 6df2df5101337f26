//! Reading a journal's record: one ConfigMap, or a main map and the parts its index names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use strata_core::pivot::journal::MoveJournal;
use strata_core::pivot::journal_parts::journal_from;
use strata_core::pivot::journal_parts::{index_of, journal_from_parts};
use strata_core::pivot::journal_record::JournalRecordError;

use super::JournalMapsError;
use crate::kube_writer::BoundedApi;

/// The journal `map` records, its parts read through `maps` when it is split. A part that
/// is gone or differs from what the index says is an error naming it, never a journal in
/// part.
pub async fn read_journal(
    maps: &BoundedApi<ConfigMap>,
    map: &ConfigMap,
) -> Result<MoveJournal, JournalMapsError> {
    let name = format!(
        "{}/{}",
        map.metadata.namespace.as_deref().unwrap_or_default(),
        map.metadata.name.as_deref().unwrap_or_default()
    );
    let record = |source: JournalRecordError| JournalMapsError::Record {
        journal: name.clone(),
        action: "read",
        source: Box::new(source),
    };
    let Some(index) = index_of(map).map_err(record)? else {
        return journal_from(map).map_err(record);
    };
    let mut parts = BTreeMap::new();
    for part in &index.parts {
        let found = maps
            .get(&part.name)
            .await
            .map_err(|source| JournalMapsError::Api {
                journal: name.clone(),
                action: "read",
                source,
            })?;
        // One gone is told by journal_from_parts, with the map that names it.
        if let Some(found) = found {
            parts.insert(part.name.clone(), found);
        }
    }
    journal_from_parts(map, &index, &parts).map_err(record)
}
