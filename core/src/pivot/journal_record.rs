//! How a move journal is kept in a ConfigMap: gzip-compressed JSON under `binaryData`.
//! The JSON takes about 440 bytes an object, so a cluster of some 600 machines (each with
//! its infrastructure machine, bootstrap config and secret) would outgrow the apiserver's
//! 1 MiB object limit as plain text, and its move could never be recorded. Compressed, a
//! journal is about a tenth of that.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;

use super::journal::MoveJournal;

/// The `binaryData` key holding the journal.
pub const JOURNAL_KEY: &str = "journal.json.gz";
/// The apiserver refuses a ConfigMap whose data exceed this.
pub const CONFIG_MAP_LIMIT: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalRecordError {
    #[error("it holds no {JOURNAL_KEY}")]
    Missing,
    #[error("its {JOURNAL_KEY} is not a gzip-compressed journal: {0}")]
    Unreadable(String),
    #[error("the journal cannot be encoded: {0}")]
    Encode(String),
    #[error(
        "the journal of the move of cluster {cluster} takes {bytes} bytes compressed, more than the {limit} a ConfigMap leaves it; the move is too large to record, and nothing was moved"
    )]
    TooLarge {
        cluster: String,
        bytes: usize,
        limit: usize,
    },
}

/// A new journal (no target UIDs yet) must fit in this: it grows by about two thirds as
/// the copies' UIDs are recorded, and a move that can no longer record its progress half
/// way would be stuck with its source paused. Refused at the first write, it touches
/// nothing.
pub const NEW_JOURNAL_LIMIT: usize = CONFIG_MAP_LIMIT / 2;

/// The ConfigMap `binaryData` recording `journal`; `new` for its first write.
pub fn journal_data(
    journal: &MoveJournal,
    new: bool,
) -> Result<BTreeMap<String, ByteString>, JournalRecordError> {
    let json =
        serde_json::to_vec(journal).map_err(|e| JournalRecordError::Encode(e.to_string()))?;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(&json)
        .map_err(|e| JournalRecordError::Encode(e.to_string()))?;
    let bytes = encoder
        .finish()
        .map_err(|e| JournalRecordError::Encode(e.to_string()))?;
    let limit = if new {
        NEW_JOURNAL_LIMIT
    } else {
        CONFIG_MAP_LIMIT
    };
    if bytes.len() > limit {
        return Err(JournalRecordError::TooLarge {
            cluster: journal.cluster.clone(),
            bytes: bytes.len(),
            limit,
        });
    }
    Ok(BTreeMap::from([(
        JOURNAL_KEY.to_string(),
        ByteString(bytes),
    )]))
}

/// The journal a ConfigMap records.
pub fn journal_from(map: &ConfigMap) -> Result<MoveJournal, JournalRecordError> {
    let bytes = map
        .binary_data
        .as_ref()
        .and_then(|d| d.get(JOURNAL_KEY))
        .ok_or(JournalRecordError::Missing)?;
    let mut json = Vec::new();
    GzDecoder::new(bytes.0.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| JournalRecordError::Unreadable(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| JournalRecordError::Unreadable(e.to_string()))
}

/// The compressed size of a journal's record, for reports.
pub fn recorded_bytes(map: &ConfigMap) -> usize {
    map.binary_data
        .as_ref()
        .and_then(|d| d.get(JOURNAL_KEY))
        .map_or(0, |b| b.0.len())
}
