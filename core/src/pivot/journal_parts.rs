//! A move journal too large for one ConfigMap, kept in several.
//!
//! The compressed journal is cut into chunks: the first stays in the journal's own
//! ConfigMap (the main map), the others go to part ConfigMaps. The main map also holds an
//! index (under `data`): the digest and size of the whole compressed journal and the
//! ordered names and sizes of its parts. A journal that fits one ConfigMap is kept exactly
//! as before parts existed: one map, no index.
//!
//! Parts are immutable and named after what they hold, the round and the version their
//! writer replaced, so a name never stands for two contents and no save reuses a part an
//! earlier save may still delete. The main map is the commit point: a save creates its
//! parts, then writes the main map (guarded by its resourceVersion), then deletes the parts
//! nothing can name any more ([`dead_parts`]). A crash between any two writes leaves a
//! main map whose index names parts that exist.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::journal::MoveJournal;
use super::journal_record::{
    CONFIG_MAP_LIMIT, JOURNAL_KEY, JournalRecordError, compressed, decompressed,
};
use crate::contracts::labels::{
    JOURNAL_PART_BASE_LABEL, JOURNAL_PART_OF_LABEL, JOURNAL_PART_ROUND_LABEL,
};

/// The `data` key of a split journal's index, in its main map.
pub const INDEX_KEY: &str = "journal-index.json";
/// The `binaryData` key of one chunk of a split journal, in the main map and in each part.
pub const CHUNK_KEY: &str = "journal-chunk.gz";
/// What a label value may hold.
const LABEL_VALUE_MAX: usize = 63;
/// What an object name may hold.
const NAME_MAX: usize = 253;

/// How much of a journal each ConfigMap carries, and how many it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// A compressed journal up to this stays whole in one map.
    pub whole_bytes: usize,
    /// The chunk each map of a split journal carries: below the ConfigMap limit, with room
    /// for the index in the main map.
    pub part_bytes: usize,
    /// The main map and its parts together.
    pub max_maps: usize,
}

impl RecordLimits {
    /// 16 maps of 900 KiB: some 14 MiB compressed. A new journal may take half (the copies'
    /// UIDs make it grow), about 20,000 machines of four objects with random UIDs.
    pub const DEFAULT: RecordLimits = RecordLimits {
        whole_bytes: CONFIG_MAP_LIMIT - JOURNAL_KEY.len(),
        part_bytes: 900 * 1024,
        max_maps: 16,
    };

    /// The most a journal may take compressed: a new one (no target UIDs yet) half of it,
    /// as a move that can no longer record its progress half way would be stuck with its
    /// source paused. Refused at the first write, a move touches nothing.
    pub fn limit(&self, new: bool) -> usize {
        let total = (self.part_bytes * self.max_maps).max(self.whole_bytes);
        if new { total / 2 } else { total }
    }
}

/// The index of a split journal, in its main map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartIndex {
    /// `sha256:<hex>` of the whole compressed journal.
    pub digest: String,
    /// The size of the whole compressed journal.
    pub bytes: usize,
    /// The size of the chunk in the main map.
    pub first: usize,
    /// The other chunks, in order.
    pub parts: Vec<PartRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    pub name: String,
    pub bytes: usize,
}

/// Where a journal's parts go: the journal (its main map's name), its round, and the
/// resourceVersion of the main map the save replaces (None for the first write).
#[derive(Debug, Clone, Copy)]
pub struct PartNaming<'a> {
    pub journal: &'a str,
    pub round: u32,
    pub base: Option<&'a str>,
}

/// One chunk of a split journal, for its own ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A main map's `data` (the index of a split journal) and `binaryData`.
pub type MainContents = (
    Option<BTreeMap<String, String>>,
    BTreeMap<String, ByteString>,
);

/// How a journal is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRecord {
    /// In the main map alone, as `binaryData[journal.json.gz]`.
    Whole(Vec<u8>),
    /// The main map's chunk and index, and the parts to create before it is written.
    Split {
        index: PartIndex,
        first: Vec<u8>,
        parts: Vec<Part>,
    },
}

impl JournalRecord {
    /// The `data` and `binaryData` of the main map.
    pub fn main_contents(&self) -> Result<MainContents, JournalRecordError> {
        match self {
            JournalRecord::Whole(bytes) => Ok((
                None,
                BTreeMap::from([(JOURNAL_KEY.to_string(), ByteString(bytes.clone()))]),
            )),
            JournalRecord::Split { index, first, .. } => {
                let index = serde_json::to_string(index)
                    .map_err(|e| JournalRecordError::Encode(e.to_string()))?;
                Ok((
                    Some(BTreeMap::from([(INDEX_KEY.to_string(), index)])),
                    BTreeMap::from([(CHUNK_KEY.to_string(), ByteString(first.clone()))]),
                ))
            }
        }
    }

    /// The parts to create before the main map is written (none for a whole journal).
    pub fn parts(&self) -> &[Part] {
        match self {
            JournalRecord::Whole(_) => &[],
            JournalRecord::Split { parts, .. } => parts,
        }
    }

    pub fn index(&self) -> Option<&PartIndex> {
        match self {
            JournalRecord::Whole(_) => None,
            JournalRecord::Split { index, .. } => Some(index),
        }
    }

    /// The compressed size of the whole journal.
    pub fn bytes(&self) -> usize {
        match self {
            JournalRecord::Whole(bytes) => bytes.len(),
            JournalRecord::Split { index, .. } => index.bytes,
        }
    }
}

/// How `journal` is to be written; `new` for its first write.
pub fn record(
    journal: &MoveJournal,
    new: bool,
    naming: PartNaming<'_>,
    limits: RecordLimits,
) -> Result<JournalRecord, JournalRecordError> {
    let bytes = compressed(journal)?;
    let limit = limits.limit(new);
    if bytes.len() > limit {
        return Err(JournalRecordError::TooLarge {
            cluster: journal.cluster.clone(),
            bytes: bytes.len(),
            limit,
        });
    }
    if bytes.len() <= limits.whole_bytes {
        return Ok(JournalRecord::Whole(bytes));
    }
    let digest = format!("sha256:{}", hex(&bytes));
    let key = short_hex(&format!(
        "{}/{}/{digest}",
        naming.round,
        base_label(naming.base)
    ));
    let stem = bounded(naming.journal, NAME_MAX - "-part-".len() - key.len() - 4);
    let mut chunks = bytes.chunks(limits.part_bytes.max(1));
    let first = chunks.next().unwrap_or_default().to_vec();
    let parts: Vec<Part> = chunks
        .enumerate()
        .map(|(i, chunk)| Part {
            name: format!("{stem}-part-{key}-{}", i + 1),
            bytes: chunk.to_vec(),
        })
        .collect();
    let index = PartIndex {
        digest,
        bytes: bytes.len(),
        first: first.len(),
        parts: parts
            .iter()
            .map(|p| PartRef {
                name: p.name.clone(),
                bytes: p.bytes.len(),
            })
            .collect(),
    };
    Ok(JournalRecord::Split {
        index,
        first,
        parts,
    })
}

/// The ConfigMap of one part: immutable, labelled with its journal, round and base.
pub fn part_map(part: &Part, naming: PartNaming<'_>, namespace: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(part.name.clone()),
            namespace: Some(namespace.to_string()),
            labels: Some(part_labels(naming)),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(
            CHUNK_KEY.to_string(),
            ByteString(part.bytes.clone()),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

fn part_labels(naming: PartNaming<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            JOURNAL_PART_OF_LABEL.to_string(),
            journal_label(naming.journal),
        ),
        (
            JOURNAL_PART_ROUND_LABEL.to_string(),
            naming.round.to_string(),
        ),
        (JOURNAL_PART_BASE_LABEL.to_string(), base_label(naming.base)),
    ])
}

/// The label selector of every part of `journal`'s `round`.
pub fn parts_selector(journal: &str, round: u32) -> String {
    format!(
        "{JOURNAL_PART_OF_LABEL}={},{JOURNAL_PART_ROUND_LABEL}={round}",
        journal_label(journal)
    )
}

/// The base label of parts written over `version` (`new` for a journal's first write).
pub fn base_label(version: Option<&str>) -> String {
    version.map_or_else(|| "new".to_string(), short_hex)
}

/// The parts (of one journal and round, as [`parts_selector`] lists them) that no save can
/// name any more, once the main map at `committed` names `index`: those it does not name
/// and that were not written over `committed` (a writer that read the committed map may
/// still be creating its parts, and its write of the main map could succeed).
pub fn dead_parts(index: Option<&PartIndex>, committed: &str, parts: &[ObjectMeta]) -> Vec<String> {
    let live_base = base_label(Some(committed));
    parts
        .iter()
        .filter(|meta| {
            let named = meta.name.as_ref().is_some_and(|name| {
                index.is_some_and(|index| index.parts.iter().any(|p| &p.name == name))
            });
            let base = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(JOURNAL_PART_BASE_LABEL));
            !named && base != Some(&live_base)
        })
        .filter_map(|meta| meta.name.clone())
        .collect()
}

/// The index of a split journal, None for a journal kept whole.
pub fn index_of(map: &ConfigMap) -> Result<Option<PartIndex>, JournalRecordError> {
    let Some(index) = map.data.as_ref().and_then(|d| d.get(INDEX_KEY)) else {
        return Ok(None);
    };
    serde_json::from_str(index)
        .map(Some)
        .map_err(|e| JournalRecordError::BadIndex {
            map: map_name(map),
            reason: e.to_string(),
        })
}

/// The journal of a split main map, put together from its `parts` (by name; a part not
/// there is gone). Every chunk's size and the whole digest are checked: a journal is read
/// whole or not at all.
pub fn journal_from_parts(
    map: &ConfigMap,
    index: &PartIndex,
    parts: &BTreeMap<String, ConfigMap>,
) -> Result<MoveJournal, JournalRecordError> {
    let main = map_name(map);
    let first = chunk(map);
    if first.len() != index.first {
        return Err(JournalRecordError::PartWrongSize {
            map: main.clone(),
            part: main,
            bytes: first.len(),
            expected: index.first,
        });
    }
    let mut bytes = Vec::with_capacity(index.bytes);
    bytes.extend_from_slice(first);
    for part in &index.parts {
        let held = parts
            .get(&part.name)
            .ok_or_else(|| JournalRecordError::PartMissing {
                map: main.clone(),
                part: part.name.clone(),
            })?;
        let held = chunk(held);
        if held.len() != part.bytes {
            return Err(JournalRecordError::PartWrongSize {
                map: main.clone(),
                part: part.name.clone(),
                bytes: held.len(),
                expected: part.bytes,
            });
        }
        bytes.extend_from_slice(held);
    }
    let found = format!("sha256:{}", hex(&bytes));
    if bytes.len() != index.bytes || found != index.digest {
        let names: Vec<&str> = index.parts.iter().map(|p| p.name.as_str()).collect();
        return Err(JournalRecordError::DigestMismatch {
            map: main,
            parts: names.join(", "),
            expected: format!("{} ({} bytes)", index.digest, index.bytes),
            found: format!("{found} ({} bytes)", bytes.len()),
        });
    }
    decompressed(&bytes)
}

/// The chunk a map holds (none: empty, which no index names).
fn chunk(map: &ConfigMap) -> &[u8] {
    map.binary_data
        .as_ref()
        .and_then(|d| d.get(CHUNK_KEY))
        .map_or(&[][..], |b| b.0.as_slice())
}

/// A map's name, for errors.
pub fn map_name(map: &ConfigMap) -> String {
    match (&map.metadata.namespace, &map.metadata.name) {
        (Some(ns), Some(name)) => format!("ConfigMap {ns}/{name}"),
        (None, Some(name)) => format!("ConfigMap {name}"),
        _ => "the ConfigMap".to_string(),
    }
}

/// A journal's name as a label value: itself when short enough, else cut with a digest of
/// the whole, so two long names never share a value.
fn journal_label(journal: &str) -> String {
    bounded(journal, LABEL_VALUE_MAX)
}

fn bounded(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let digest = short_hex(name);
    let keep = max.saturating_sub(digest.len() + 1);
    let head: String = name.chars().take(keep).collect();
    format!("{}-{digest}", head.trim_end_matches(['-', '.']))
}

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn short_hex(text: &str) -> String {
    hex(text.as_bytes())[..16].to_string()
}

#[cfg(test)]
#[path = "journal_parts_tests.rs"]
mod tests;

/// The journal a ConfigMap records by itself. A journal split across parts is refused
/// ([`JournalRecordError::Split`]) rather than read in part: its reader must fetch the parts
/// ([`journal_from_parts`]).
pub fn journal_from(map: &ConfigMap) -> Result<MoveJournal, JournalRecordError> {
    if let Some(index) = index_of(map)? {
        return Err(JournalRecordError::Split {
            map: map_name(map),
            parts: index.parts.len(),
        });
    }
    let bytes = map
        .binary_data
        .as_ref()
        .and_then(|d| d.get(JOURNAL_KEY))
        .ok_or(JournalRecordError::Missing)?;
    decompressed(&bytes.0)
}

/// The compressed size of a journal's record (all its parts), for reports.
pub fn recorded_bytes(map: &ConfigMap) -> usize {
    if let Ok(Some(index)) = index_of(map) {
        return index.bytes;
    }
    map.binary_data
        .as_ref()
        .and_then(|d| d.get(JOURNAL_KEY))
        .map_or(0, |b| b.0.len())
}
