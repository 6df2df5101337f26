//! The move journal's ConfigMaps: one (the main map) for a journal that fits, the main map
//! and its parts for one that does not (see `strata_core::pivot::journal_parts`).
//!
//! A save is three steps, each safe to crash after:
//! 1. create the parts (immutable, named after their content, round and the version being
//!    replaced; one that exists already holds that content);
//! 2. write the main map, guarded by its resourceVersion: the commit;
//! 3. delete the parts no save can name any more (sweep).
//!
//! A crash after 1 leaves parts nothing names, after 2 the replaced version's parts: the
//! next save sweeps both. The main map only ever names parts created before it was
//! written, and a sweep deletes neither a part it names nor one written over the version
//! just committed (a writer that read it may still commit its parts).
//!
//! A journal carries the pivot round it was started in. A site rebuilt from a snapshot can
//! still hold the journal of a move that ended before its cluster was reclaimed; the next
//! round keeps that journal aside under another name ([`JournalMaps::retire_earlier_round`])
//! with its parts, which no save of the next round touches.

mod read;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use strata_core::contracts::labels::PIVOT_ROUND_ANNOTATION;
use strata_core::pivot::journal::MoveJournal;
use strata_core::pivot::journal_parts::{
    JournalRecord, PartNaming, RecordLimits, dead_parts, index_of, part_map, parts_selector, record,
};
use strata_core::pivot::journal_record::JournalRecordError;

pub use read::read_journal;

use crate::kube_writer::{BoundedApi, WriteError};

/// How often a load starts over when a part its main map named was swept meanwhile by a
/// newer save.
const READ_ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum JournalMapsError {
    #[error("the move journal {journal} cannot be {action}: {source}")]
    Api {
        journal: String,
        action: &'static str,
        #[source]
        source: WriteError,
    },
    #[error("the move journal {journal} cannot be {action}: {source}")]
    Record {
        journal: String,
        action: &'static str,
        #[source]
        source: Box<JournalRecordError>,
    },
}

impl JournalMapsError {
    pub fn journal(&self) -> &str {
        match self {
            JournalMapsError::Api { journal, .. } | JournalMapsError::Record { journal, .. } => {
                journal
            }
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            JournalMapsError::Api { action, .. } | JournalMapsError::Record { action, .. } => {
                action
            }
        }
    }

    /// What went wrong, without the journal and action.
    pub fn reason(&self) -> String {
        match self {
            JournalMapsError::Api { source, .. } => source.to_string(),
            JournalMapsError::Record { source, .. } => source.to_string(),
        }
    }

    fn part_missing(&self) -> bool {
        matches!(
            self,
            JournalMapsError::Record { source, .. }
                if matches!(**source, JournalRecordError::PartMissing { .. })
        )
    }
}

/// A journal as it was read.
pub struct LoadedJournal {
    pub journal: MoveJournal,
    pub version: String,
    pub round: u32,
}

/// A save's writes, decided before any is made.
pub struct PreparedSave {
    record: JournalRecord,
    main: ConfigMap,
    parts: Vec<ConfigMap>,
}

impl PreparedSave {
    /// The names of the parts the main map will name (none for a journal kept whole).
    pub fn part_names(&self) -> Vec<String> {
        self.record.parts().iter().map(|p| p.name.clone()).collect()
    }

    /// The compressed size of the whole journal.
    pub fn bytes(&self) -> usize {
        self.record.bytes()
    }
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

/// One journal's maps in one namespace.
pub struct JournalMaps {
    maps: BoundedApi<ConfigMap>,
    namespace: String,
    name: String,
    /// The round a journal this store creates is of.
    round: u32,
    limits: RecordLimits,
}

impl JournalMaps {
    /// The journal kept in ConfigMap `name` of `namespace`, through `maps` (of that
    /// namespace), for a move of round 1.
    pub fn new(maps: BoundedApi<ConfigMap>, namespace: &str, name: &str) -> JournalMaps {
        JournalMaps {
            maps,
            namespace: namespace.to_string(),
            name: name.to_string(),
            round: 1,
            limits: RecordLimits::DEFAULT,
        }
    }

    /// For a move of `round`: a journal it creates says so, and its parts are of it.
    pub fn in_round(self, round: u32) -> JournalMaps {
        JournalMaps { round, ..self }
    }

    /// With maps of other sizes (tests: a small journal in many parts).
    pub fn with_limits(self, limits: RecordLimits) -> JournalMaps {
        JournalMaps { limits, ..self }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn api(&self, action: &'static str) -> impl FnOnce(WriteError) -> JournalMapsError + '_ {
        move |source| JournalMapsError::Api {
            journal: self.full_name(),
            action,
            source,
        }
    }

    /// The journal, its resourceVersion and its round, if a move was started.
    #[tracing::instrument(skip_all, fields(journal = %self.name))]
    pub async fn load(&self) -> Result<Option<LoadedJournal>, JournalMapsError> {
        let mut read_version = None;
        let mut attempt = 1;
        loop {
            let Some(map) = self.maps.get(&self.name).await.map_err(self.api("read"))? else {
                return Ok(None);
            };
            let version = map.metadata.resource_version.clone().unwrap_or_default();
            match read_journal(&self.maps, &map).await {
                Ok(journal) => {
                    return Ok(Some(LoadedJournal {
                        journal,
                        version,
                        round: round_of(&map),
                    }));
                }
                // A save committed after the main map was read and swept its parts: the
                // newer main map names parts that exist. The same version missing a part
                // is a loss, told as it is.
                Err(e)
                    if e.part_missing()
                        && attempt < READ_ATTEMPTS
                        && read_version.as_ref() != Some(&version) =>
                {
                    tracing::debug!(error = %e, "a newer save swept the parts read; reading again");
                    read_version = Some(version);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the journal; `version` (None for its first write) guards against a writer
    /// this one does not know of. Returns the new resourceVersion.
    #[tracing::instrument(skip_all, fields(journal = %self.name, round = self.round))]
    pub async fn save(
        &self,
        journal: &MoveJournal,
        version: Option<&str>,
    ) -> Result<String, JournalMapsError> {
        let prepared = self.prepare(journal, version)?;
        self.write_parts(&prepared).await?;
        let committed = self.write_main(&prepared).await?;
        if !prepared.record.parts().is_empty() {
            // The journal is saved; what is left behind is only room, taken back by a
            // later save.
            if let Err(e) = self.sweep(&committed).await {
                tracing::warn!(error = %e, "journal parts no longer named are left for a later save");
            }
        }
        Ok(committed)
    }

    /// Decides the writes of a save (a journal too large is refused here, before any).
    pub fn prepare(
        &self,
        journal: &MoveJournal,
        version: Option<&str>,
    ) -> Result<PreparedSave, JournalMapsError> {
        let naming = PartNaming {
            journal: &self.name,
            round: self.round,
            base: version,
        };
        let record = record(journal, version.is_none(), naming, self.limits).map_err(|source| {
            JournalMapsError::Record {
                journal: self.full_name(),
                action: "written",
                source: Box::new(source),
            }
        })?;
        let (data, binary_data) =
            record
                .main_contents()
                .map_err(|source| JournalMapsError::Record {
                    journal: self.full_name(),
                    action: "written",
                    source: Box::new(source),
                })?;
        let main = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version: version.map(String::from),
                annotations: Some(BTreeMap::from([(
                    PIVOT_ROUND_ANNOTATION.to_string(),
                    self.round.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data,
            binary_data: Some(binary_data),
            ..ConfigMap::default()
        };
        let parts = record
            .parts()
            .iter()
            .map(|p| part_map(p, naming, &self.namespace))
            .collect();
        Ok(PreparedSave {
            record,
            main,
            parts,
        })
    }

    /// Step 1: creates the parts. One that exists already holds the same chunk: its name
    /// says what it holds, and parts are immutable.
    pub async fn write_parts(&self, prepared: &PreparedSave) -> Result<(), JournalMapsError> {
        for part in &prepared.parts {
            match self.maps.create(part).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(self.api("written")(e)),
            }
        }
        if !prepared.parts.is_empty() {
            tracing::debug!(
                parts = prepared.parts.len(),
                bytes = prepared.bytes(),
                "journal parts written"
            );
        }
        Ok(())
    }

    /// Step 2: writes the main map (created for a first write, else replaced at the version
    /// read); returns the new resourceVersion.
    pub async fn write_main(&self, prepared: &PreparedSave) -> Result<String, JournalMapsError> {
        let written = match prepared.main.metadata.resource_version {
            None => self.maps.create(&prepared.main).await,
            Some(_) => self.maps.replace(&prepared.main).await,
        }
        .map_err(self.api("written"))?;
        Ok(written.metadata.resource_version.unwrap_or_default())
    }

    /// Step 3: deletes this journal's parts of this round that no save can name any more,
    /// once the main map is at `committed`. A main map found at another version was written
    /// by another writer, whose own sweep is left to it.
    pub async fn sweep(&self, committed: &str) -> Result<usize, JournalMapsError> {
        let Some(main) = self.maps.get(&self.name).await.map_err(self.api("swept"))? else {
            return Ok(0);
        };
        if main.metadata.resource_version.as_deref() != Some(committed) {
            tracing::debug!("the journal moved on since this save; its writer sweeps");
            return Ok(0);
        }
        let index = index_of(&main).map_err(|source| JournalMapsError::Record {
            journal: self.full_name(),
            action: "swept",
            source: Box::new(source),
        })?;
        let listed = self
            .maps
            .list_metadata(&ListParams::default().labels(&parts_selector(&self.name, self.round)))
            .await
            .map_err(self.api("swept"))?;
        let dead = dead_parts(index.as_ref(), committed, &listed);
        for part in &dead {
            self.maps.delete(part).await.map_err(self.api("swept"))?;
        }
        if !dead.is_empty() {
            tracing::debug!(parts = dead.len(), "journal parts no longer named deleted");
        }
        Ok(dead.len())
    }

    /// Keeps a journal of a round before this store's aside (copied under
    /// [`retired_name`], then removed), so that this round's move starts anew. Its parts
    /// stay: the copy names them, and they are of its round. Returns the name it was kept
    /// under, if there was one to keep.
    pub async fn retire_earlier_round(&self) -> Result<Option<String>, JournalMapsError> {
        let Some(map) = self.maps.get(&self.name).await.map_err(self.api("read"))? else {
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
                namespace: Some(self.namespace.clone()),
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
            Err(e) => return Err(self.api("kept aside")(e)),
        }
        self.maps
            .delete(&self.name)
            .await
            .map_err(self.api("removed after it was kept aside"))?;
        Ok(Some(format!("{}/{kept}", self.namespace)))
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
