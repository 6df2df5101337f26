//! An export larger than one Secret holds is split into parts. The Secret
//! `strata-site-export` (the head) holds the first part and says how many there are and the
//! digest of the whole; the others are Secrets named after that digest, so that a new export
//! never overwrites a part the current head names. The agent writes the other parts first and
//! the head last, then removes parts no head names: whatever stops it on the way, the head
//! names a whole, earlier or new.
//!
//! The parts are the site's data like the rest of the export: their count is bounded, their
//! names are derived here (never read from the site), and the joined bytes must have the
//! digest the head names.

use std::collections::BTreeMap;

use crate::pack::archive::sha256_digest;

/// The most one part holds: a Secret holds at most 1 MiB, with its metadata.
pub const EXPORT_PART_BYTES: usize = 900 * 1024;
/// The most parts an export has: 14.4 MiB compressed at the default part size, about 15,000
/// machines at under 1 KiB per machine.
pub const MAX_EXPORT_PARTS: usize = 16;
/// The smallest part size an agent may be set to.
pub const MIN_EXPORT_PART_BYTES: usize = 1024;
/// On the head: how many parts the export has (absent: one, the head itself).
pub const EXPORT_PARTS_ANNOTATION: &str = "strata.dev/export-parts";
/// On the head: the digest of the whole export, its parts joined in order.
pub const EXPORT_SHA256_ANNOTATION: &str = "strata.dev/export-sha256";
/// On each part after the first: the short digest of the export it belongs to.
pub const EXPORT_PART_LABEL: &str = "strata.dev/site-export-part";
/// The key of a part's bytes.
pub const EXPORT_PART_KEY: &str = "part";

/// Why parts cannot be made or joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportPartsError {
    #[error(
        "the export is {bytes} bytes compressed: more than {MAX_EXPORT_PARTS} parts of {part_bytes} bytes; back the cluster up by hand (strata-agent backup)"
    )]
    TooLarge { bytes: usize, part_bytes: usize },
    #[error(
        "annotation {EXPORT_PARTS_ANNOTATION} is {found:?}: expected a count from 1 to {MAX_EXPORT_PARTS}"
    )]
    BadCount { found: String },
    #[error(
        "annotation {EXPORT_SHA256_ANNOTATION} is {found:?}: expected sha256: and 64 hexadecimal digits"
    )]
    BadDigest { found: String },
    #[error(
        "the export has {parts} parts but no annotation {EXPORT_SHA256_ANNOTATION} to check them against"
    )]
    NoDigest { parts: usize },
    #[error(
        "its {parts} parts joined are {found}, not {expected} as the head says: a part was changed, or belongs to another export; nothing was restored"
    )]
    DigestMismatch {
        parts: usize,
        expected: String,
        found: String,
    },
}

/// An export split for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParts {
    /// The digest of the whole (`sha256:…`).
    pub sha256: String,
    /// The first part goes into the head, the others into their own Secrets.
    pub parts: Vec<Vec<u8>>,
}

/// Splits `bytes` into parts of at most `part_bytes` (at least [`MIN_EXPORT_PART_BYTES`]).
pub fn split(bytes: &[u8], part_bytes: usize) -> Result<ExportParts, ExportPartsError> {
    let part_bytes = part_bytes.max(MIN_EXPORT_PART_BYTES);
    let parts: Vec<Vec<u8>> = if bytes.is_empty() {
        vec![Vec::new()]
    } else {
        bytes.chunks(part_bytes).map(<[u8]>::to_vec).collect()
    };
    if parts.len() > MAX_EXPORT_PARTS {
        return Err(ExportPartsError::TooLarge {
            bytes: bytes.len(),
            part_bytes,
        });
    }
    Ok(ExportParts {
        sha256: sha256_digest(bytes),
        parts,
    })
}

/// The short digest that names an export's parts and labels them.
pub fn short_digest(sha256: &str) -> &str {
    let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    hex.get(..12).unwrap_or(hex)
}

/// The Secret of part `index` (from 1; part 0 is the head) of the export with `sha256`.
pub fn part_secret_name(head: &str, sha256: &str, index: usize) -> String {
    format!("{head}-{}-{index}", short_digest(sha256))
}

/// What the head says of the parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportHead {
    pub parts: usize,
    /// The digest of the whole; None for an export in one part written before parts.
    pub sha256: Option<String>,
}

/// The head's annotations as written for `split`.
pub fn head_annotations(split: &ExportParts) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            EXPORT_PARTS_ANNOTATION.to_string(),
            split.parts.len().to_string(),
        ),
        (EXPORT_SHA256_ANNOTATION.to_string(), split.sha256.clone()),
    ])
}

/// Reads and checks what a head's annotations say.
pub fn read_head(
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<ExportHead, ExportPartsError> {
    let get = |key: &str| annotations.and_then(|a| a.get(key));
    let parts = match get(EXPORT_PARTS_ANNOTATION) {
        None => 1,
        Some(found) => found
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_EXPORT_PARTS).contains(n))
            .ok_or_else(|| ExportPartsError::BadCount {
                found: found.clone(),
            })?,
    };
    let sha256 = match get(EXPORT_SHA256_ANNOTATION) {
        None => None,
        Some(found) => {
            let hex = found.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(ExportPartsError::BadDigest {
                    found: found.clone(),
                });
            }
            Some(found.clone())
        }
    };
    if parts > 1 && sha256.is_none() {
        return Err(ExportPartsError::NoDigest { parts });
    }
    Ok(ExportHead { parts, sha256 })
}

/// Joins the parts, in order, and checks the whole has the digest the head names.
pub fn join(head: &ExportHead, parts: &[Vec<u8>]) -> Result<Vec<u8>, ExportPartsError> {
    let whole = parts.concat();
    if let Some(expected) = &head.sha256 {
        let found = sha256_digest(&whole);
        if &found != expected {
            return Err(ExportPartsError::DigestMismatch {
                parts: parts.len(),
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(whole)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_export_splits_into_named_parts_and_joins_back() {
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let split = split(&bytes, 2048).unwrap();
        assert_eq!(
            split.parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [2048, 2048, 904]
        );
        let head = read_head(Some(&head_annotations(&split))).unwrap();
        assert_eq!(head.parts, 3);
        assert_eq!(join(&head, &split.parts).unwrap(), bytes);
        let name = part_secret_name("strata-site-export", &split.sha256, 2);
        assert_eq!(
            name,
            format!("strata-site-export-{}-2", &split.sha256[7..19])
        );
    }

    #[test]
    fn a_small_export_is_one_part_and_an_old_head_reads_as_one() {
        let split = split(b"small", EXPORT_PART_BYTES).unwrap();
        assert_eq!(split.parts, [b"small".to_vec()]);
        assert_eq!(
            read_head(None).unwrap(),
            ExportHead {
                parts: 1,
                sha256: None
            }
        );
        // An old head's single part is taken as it is (its objects are checked after).
        assert_eq!(
            join(&read_head(None).unwrap(), &[b"x".to_vec()]).unwrap(),
            b"x"
        );
    }

    #[test]
    fn a_part_size_below_the_floor_is_raised_to_it() {
        let split = split(&[7u8; 3000], 10).unwrap();
        assert_eq!(split.parts.len(), 3);
        assert_eq!(split.parts[0].len(), MIN_EXPORT_PART_BYTES);
    }

    #[test]
    fn too_many_parts_is_refused_with_what_to_do() {
        let error = split(
            &vec![0u8; MIN_EXPORT_PART_BYTES * 17],
            MIN_EXPORT_PART_BYTES,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("more than 16 parts of 1024 bytes")
                && error.contains("strata-agent backup"),
            "{error}"
        );
    }

    #[test]
    fn a_changed_or_foreign_part_is_refused() {
        let bytes = vec![1u8; 3000];
        let split = split(&bytes, 1024).unwrap();
        let head = read_head(Some(&head_annotations(&split))).unwrap();
        let mut changed = split.parts.clone();
        changed[1][0] ^= 1;
        assert!(matches!(
            join(&head, &changed),
            Err(ExportPartsError::DigestMismatch { parts: 3, .. })
        ));
        // A part missing from the end is a different whole too.
        assert!(join(&head, &split.parts[..2]).is_err());
    }

    #[test]
    fn what_a_site_wrote_on_the_head_is_checked() {
        let annotations = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let digest = format!("sha256:{}", "a".repeat(64));
        for (pairs, expected) in [
            (
                vec![
                    (EXPORT_PARTS_ANNOTATION, "0"),
                    (EXPORT_SHA256_ANNOTATION, digest.as_str()),
                ],
                "expected a count from 1 to 16",
            ),
            (
                vec![
                    (EXPORT_PARTS_ANNOTATION, "17"),
                    (EXPORT_SHA256_ANNOTATION, digest.as_str()),
                ],
                "expected a count from 1 to 16",
            ),
            (
                vec![
                    (EXPORT_PARTS_ANNOTATION, "2"),
                    (EXPORT_SHA256_ANNOTATION, "sha256:../x"),
                ],
                "expected sha256: and 64 hexadecimal digits",
            ),
            (
                vec![(EXPORT_PARTS_ANNOTATION, "2")],
                "no annotation strata.dev/export-sha256",
            ),
        ] {
            let error = read_head(Some(&annotations(&pairs)))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }
}
