//! How a move journal is kept in a ConfigMap: gzip-compressed JSON under `binaryData`.
//! The JSON takes about 440 bytes an object, so a cluster of some 600 machines (each with
//! its infrastructure machine, bootstrap config and secret) would outgrow the apiserver's
//! 1 MiB object limit as plain text, and its move could never be recorded. Compressed, a
//! journal is about a tenth of that; one that still does not fit one ConfigMap is split
//! across several (the module `journal_parts`, which also reads a map: `journal_from`).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::journal::MoveJournal;

/// The `binaryData` key holding a journal that fits one ConfigMap.
pub const JOURNAL_KEY: &str = "journal.json.gz";
/// The apiserver refuses a ConfigMap whose data (keys and values) exceed this.
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
        "the journal of the move of cluster {cluster} takes {bytes} bytes compressed, more than the {limit} its ConfigMaps leave it; the move is too large to record, and nothing was moved"
    )]
    TooLarge {
        cluster: String,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "{map} holds a journal split across {parts} more ConfigMaps; it can only be read with them"
    )]
    Split { map: String, parts: usize },
    #[error("{map} has an index of journal parts that cannot be read: {reason}")]
    BadIndex { map: String, reason: String },
    #[error("{map} names the journal part {part}, which is gone")]
    PartMissing { map: String, part: String },
    #[error(
        "the journal part {part} named by {map} holds {bytes} bytes where the index says {expected}"
    )]
    PartWrongSize {
        map: String,
        part: String,
        bytes: usize,
        expected: usize,
    },
    #[error(
        "the journal of {map}, put together from its parts ({parts}), has digest {found} where the index says {expected}"
    )]
    DigestMismatch {
        map: String,
        parts: String,
        expected: String,
        found: String,
    },
}

/// The journal as gzip-compressed JSON.
pub fn compressed(journal: &MoveJournal) -> Result<Vec<u8>, JournalRecordError> {
    let json =
        serde_json::to_vec(journal).map_err(|e| JournalRecordError::Encode(e.to_string()))?;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(&json)
        .map_err(|e| JournalRecordError::Encode(e.to_string()))?;
    encoder
        .finish()
        .map_err(|e| JournalRecordError::Encode(e.to_string()))
}

/// The journal in gzip-compressed JSON.
pub fn decompressed(bytes: &[u8]) -> Result<MoveJournal, JournalRecordError> {
    let mut json = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| JournalRecordError::Unreadable(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| JournalRecordError::Unreadable(e.to_string()))
}
