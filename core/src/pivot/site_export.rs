//! A pivoted cluster's copy of its own CAPI objects, which its agent keeps in the
//! management cluster (Secret [`SITE_EXPORT_SECRET`](crate::contracts::names::SITE_EXPORT_SECRET) in the cluster's objects namespace),
//! so that a site whose control plane is lost can be restored from there.
//!
//! The copy is a backup ([`super::backup`]) packed as one gzipped tarball, `backup/` holding
//! `backup.json` and `objects/`. It leaves out the shared objects (identities and their
//! Secrets): the management cluster keeps its own.
//!
//! A site writes the copy, so reading it back treats it as a site's data: unpacked with
//! limits (size, entries), then every check of a backup directory, then the site's own
//! bound: only what the site's agent may write in its objects namespace itself (objects of
//! the CAPI groups, Secrets and ConfigMaps, all in that namespace) and nothing shared. A
//! restore from it therefore creates nothing the site could not have created there anyway.

use sha2::{Digest, Sha256};

use super::backup::{Backup, BackupEntry, BackupFiles, MANIFEST_FILE};
use super::site_export_parts::{EXPORT_PART_BYTES, MAX_EXPORT_PARTS};
use crate::contracts::capi::CAPI_GROUPS;
use crate::pack::archive::{ArchiveError, ArchiveLimits, archive_of_files};

/// The export's key in its Secret.
pub const EXPORT_DATA_KEY: &str = "backup.tar.gz";
/// The folder at the top of the tarball.
pub const EXPORT_ROOT: &str = "backup";
/// On the Secret: the digest of what the copy holds (not of when it was taken), so that an
/// unchanged cluster is not written again.
pub const EXPORT_CONTENT_ANNOTATION: &str = "strata.dev/export-content";
/// On the Secret: when the copy was taken (the site's clock), for people.
pub const EXPORT_TAKEN_AT_ANNOTATION: &str = "strata.dev/export-taken-at";
/// On the Secret: how many objects the copy holds, for people.
pub const EXPORT_OBJECTS_ANNOTATION: &str = "strata.dev/export-objects";
/// The largest export written: as many parts as an export may have, each as large as a
/// Secret holds (see [`super::site_export_parts`]).
pub const MAX_EXPORT_BYTES: usize = MAX_EXPORT_PARTS * EXPORT_PART_BYTES;

/// What an export may unpack to: far above a cluster of thousands of machines (about 15 KiB
/// of objects per machine), far below what would hurt the machine reading it.
pub const EXPORT_LIMITS: ArchiveLimits = ArchiveLimits {
    max_total_bytes: 256 << 20,
    max_entries: 200_000,
    max_file_bytes: 4 << 20,
};

/// Why a site's copy cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum SiteExportError {
    #[error("cannot pack the export: {source}")]
    Pack {
        #[source]
        source: ArchiveError,
    },
    #[error(
        "the export of {objects} objects is {bytes} bytes compressed, more than the {MAX_EXPORT_BYTES} its {MAX_EXPORT_PARTS} Secrets can hold; back the cluster up by hand (strata-agent backup)"
    )]
    TooLarge { objects: usize, bytes: usize },
    #[error("{file}: {object} is shared (an identity or its Secret); a site's export holds none")]
    Shared { file: String, object: String },
    #[error(
        "{file}: {object} is of {api_version}, which a site's agent may not write; only the CAPI groups, Secrets and ConfigMaps"
    )]
    KindNotAllowed {
        file: String,
        object: String,
        api_version: String,
    },
}

/// The part of a backup a site exports: everything but the shared objects.
pub fn site_copy(files: BackupFiles) -> BackupFiles {
    let BackupFiles {
        mut manifest,
        files,
    } = files;
    manifest.objects.retain(|entry| !entry.global);
    let kept: std::collections::BTreeSet<&str> =
        manifest.objects.iter().map(|e| e.file.as_str()).collect();
    let files = files
        .into_iter()
        .filter(|(file, _)| kept.contains(file.as_str()))
        .collect();
    BackupFiles { manifest, files }
}

/// The digest of what a backup holds: its cluster and every object file's digest, not the
/// time it was taken.
pub fn content_digest(files: &BackupFiles) -> String {
    let mut hasher = Sha256::new();
    let manifest = &files.manifest;
    for part in [&manifest.format, &manifest.namespace, &manifest.cluster] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for entry in &manifest.objects {
        hasher.update(entry.file.as_bytes());
        hasher.update([0]);
        hasher.update(entry.sha256.as_bytes());
        hasher.update([0]);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The export's bytes: the backup as a gzipped tarball, at most [`MAX_EXPORT_BYTES`].
pub fn pack(files: &BackupFiles) -> Result<Vec<u8>, SiteExportError> {
    let mut all = files.files.clone();
    all.push((MANIFEST_FILE.to_string(), files.manifest_bytes()));
    let bytes =
        archive_of_files(EXPORT_ROOT, &all).map_err(|source| SiteExportError::Pack { source })?;
    if bytes.len() > MAX_EXPORT_BYTES {
        return Err(SiteExportError::TooLarge {
            objects: files.manifest.objects.len(),
            bytes: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Checks that a backup read from a site's export holds only what the site's agent may
/// write itself (the backup's own checks keep it in the cluster's namespace).
pub fn check_site_objects(backup: &Backup) -> Result<(), SiteExportError> {
    for (entry, _) in &backup.objects {
        if entry.global {
            return Err(SiteExportError::Shared {
                file: entry.file.clone(),
                object: entry.describe(),
            });
        }
        if !site_writable(entry) {
            return Err(SiteExportError::KindNotAllowed {
                file: entry.file.clone(),
                object: entry.describe(),
                api_version: entry.api_version.clone(),
            });
        }
    }
    Ok(())
}

/// The kinds of the agent's role in its objects namespace (`strata-agent-objects`).
fn site_writable(entry: &BackupEntry) -> bool {
    match entry.api_version.rsplit_once('/') {
        Some((group, _)) => CAPI_GROUPS.contains(&group),
        None => entry.api_version == "v1" && matches!(entry.kind.as_str(), "Secret" | "ConfigMap"),
    }
}

#[cfg(test)]
#[path = "site_export_tests.rs"]
mod tests;
