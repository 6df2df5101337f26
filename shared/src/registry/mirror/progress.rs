//! What a mirror reports while it runs and when it is done: counts of manifests and blobs
//! copied and skipped, and their bytes.

use serde::Serialize;

/// Counts of what was copied and what the target already held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub manifests_copied: u64,
    pub manifests_skipped: u64,
    pub blobs_copied: u64,
    pub blobs_skipped: u64,
    /// Bytes of blobs and manifests copied.
    pub bytes_copied: u64,
    /// Bytes of blobs and manifests the target already held.
    pub bytes_skipped: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.manifests_copied += other.manifests_copied;
        self.manifests_skipped += other.manifests_skipped;
        self.blobs_copied += other.blobs_copied;
        self.blobs_skipped += other.blobs_skipped;
        self.bytes_copied += other.bytes_copied;
        self.bytes_skipped += other.bytes_skipped;
    }

    /// `2 manifests, 3 blobs copied (1234 bytes); 1 manifest, 0 blobs skipped (56 bytes)`.
    pub fn summary(&self) -> String {
        format!(
            "{} copied ({} bytes); {} skipped, already there ({} bytes)",
            counts(self.manifests_copied, self.blobs_copied),
            self.bytes_copied,
            counts(self.manifests_skipped, self.blobs_skipped),
            self.bytes_skipped
        )
    }
}

fn counts(manifests: u64, blobs: u64) -> String {
    let plural = |n: u64, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{}, {}",
        plural(manifests, "manifest"),
        plural(blobs, "blob")
    )
}

/// A pack or an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    Pack,
    Image,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Pack => "pack",
            ObjectKind::Image => "image",
        })
    }
}

/// What happened, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorEvent {
    /// Copying the `index`-th (from 1) of `total` packs and images begins.
    ObjectStarted {
        index: usize,
        total: usize,
        kind: ObjectKind,
        name: String,
        source: String,
        target: String,
    },
    BlobCopied {
        digest: String,
        bytes: u64,
    },
    BlobSkipped {
        digest: String,
        bytes: u64,
    },
    /// A manifest or index was put at the target (`reference`: its tag or digest there).
    ManifestCopied {
        digest: String,
        reference: String,
    },
    ManifestSkipped {
        digest: String,
    },
    ObjectDone {
        name: String,
        digest: String,
        tally: Tally,
    },
}

/// One pack or image, mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirroredObject {
    pub kind: ObjectKind,
    /// `name:version` of a pack; an image as its pack lists it.
    pub name: String,
    /// `host/repository:tag` or `…@digest` it was read from.
    pub source: String,
    /// `host/repository:tag` or `…@digest` it is at now.
    pub target: String,
    /// Its manifest's (or index's) digest: the same at both ends.
    pub digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listed_by: Vec<String>,
    #[serde(flatten)]
    pub tally: Tally,
}

/// A whole mirror.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorReport {
    pub source: String,
    pub target: String,
    pub objects: Vec<MirroredObject>,
    pub total: Tally,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn summaries_read_well() {
        let mut tally = Tally {
            manifests_copied: 1,
            blobs_copied: 2,
            bytes_copied: 300,
            ..Tally::default()
        };
        tally.add(&Tally {
            manifests_skipped: 2,
            blobs_skipped: 1,
            bytes_skipped: 40,
            ..Tally::default()
        });
        assert_eq!(
            tally.summary(),
            "1 manifest, 2 blobs copied (300 bytes); 2 manifests, 1 blob skipped, already there (40 bytes)"
        );
        let json = serde_json::to_value(tally).unwrap();
        assert_eq!(json["blobsCopied"], 2);
        assert_eq!(json["bytesSkipped"], 40);
    }
}
